//! The spend cap: what stops an environment's spending once its budget is
//! passed, and what lifts the stop.
//!
//! - **Stop** (the spend-stop Lambda, on the budget's 100 % ACTUAL
//!   notification): every schedule of the group `stockcast-<env>` is
//!   disabled, so no pipeline starts on its own, and the usage plan
//!   `stockcast-<env>` is throttled to 0 requests per second with a burst of
//!   0, so API Gateway answers 429 before the prediction Lambda runs.
//! - **Resume** (`cargo xtask resume`): the schedules are enabled again and
//!   the throttle goes back to the environment file's `api.throttle_*`.
//!
//! The state is read back from the resources themselves (no record to drift
//! from them), which is what `cargo xtask status` shows. Both directions are
//! idempotent: a second notification, or a second resume, changes nothing.
//!
//! Resources are found by their fixed names, which the templates give them,
//! so the Lambda needs no stack outputs and `resume` works from any machine.

use aws_sdk_apigateway::types::{Op, PatchOperation};
use aws_sdk_scheduler::types::ScheduleState;
use serde::Serialize;

/// What failed, with the service's own words.
#[derive(Debug, thiserror::Error)]
pub enum SpendCapError {
    #[error("{action}: {message}")]
    Service {
        action: &'static str,
        message: String,
    },
    #[error("no usage plan named {0}: is the app stack deployed?")]
    NoUsagePlan(String),
    #[error("the schedule group {0} holds no schedule: is the orchestration stack deployed?")]
    NoSchedules(String),
}

/// As the spend-stop function reports it: an AWS call that failed may
/// succeed when SNS delivers again; a stack that is not deployed will not.
impl From<SpendCapError> for crate::steps::StepError {
    fn from(e: SpendCapError) -> Self {
        use crate::steps::ErrorName;
        let name = match e {
            SpendCapError::Service { .. } => ErrorName::ServiceUnavailable,
            SpendCapError::NoUsagePlan(_) | SpendCapError::NoSchedules(_) => {
                ErrorName::InvalidInput
            }
        };
        crate::steps::StepError::new(name, e.to_string())
    }
}

/// Requests per second and burst of a usage plan.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Throttle {
    pub rate_limit: f64,
    pub burst_limit: i32,
}

impl Throttle {
    /// Nothing gets through: API Gateway answers 429 to every request.
    pub const STOPPED: Throttle = Throttle {
        rate_limit: 0.0,
        burst_limit: 0,
    };

    fn is_stopped(&self) -> bool {
        self.rate_limit == 0.0 || self.burst_limit == 0
    }
}

/// One schedule and whether it fires.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schedule {
    pub name: String,
    pub enabled: bool,
}

/// The environment's spend switches as they are now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapState {
    pub schedules: Vec<Schedule>,
    pub usage_plan_id: String,
    pub throttle: Option<Throttle>,
}

impl CapState {
    /// Stopped when any switch is off: a half-applied stop (the Lambda
    /// failed between the two) still shows, and `resume` still lifts it.
    pub fn stopped(&self) -> bool {
        self.schedules.iter().any(|s| !s.enabled)
            || self.throttle.as_ref().is_some_and(Throttle::is_stopped)
    }

    /// One line for `cargo xtask status`.
    pub fn summary(&self) -> String {
        let enabled = self.schedules.iter().filter(|s| s.enabled).count();
        let throttle = match &self.throttle {
            Some(t) => format!("{} req/s, burst {}", t.rate_limit, t.burst_limit),
            None => "none".into(),
        };
        let verdict = if self.stopped() { "STOPPED" } else { "running" };
        format!(
            "{verdict}: {enabled} of {} schedules enabled, API throttle {throttle}",
            self.schedules.len()
        )
    }
}

/// The two services the cap switches, for one environment.
#[derive(Debug, Clone)]
pub struct SpendCap {
    scheduler: aws_sdk_scheduler::Client,
    apigateway: aws_sdk_apigateway::Client,
    env: String,
}

impl SpendCap {
    pub fn new(
        scheduler: aws_sdk_scheduler::Client,
        apigateway: aws_sdk_apigateway::Client,
        env: &str,
    ) -> SpendCap {
        SpendCap {
            scheduler,
            apigateway,
            env: env.to_owned(),
        }
    }

    /// `stockcast-<env>`: the schedule group's and the usage plan's name.
    fn name(&self) -> String {
        format!("stockcast-{}", self.env)
    }

    pub async fn state(&self) -> Result<CapState, SpendCapError> {
        let (usage_plan_id, throttle) = self.usage_plan().await?;
        Ok(CapState {
            schedules: self.schedules().await?,
            usage_plan_id,
            throttle,
        })
    }

    /// Disables every schedule and throttles the API to zero.
    pub async fn stop(&self) -> Result<CapState, SpendCapError> {
        self.switch(false, Throttle::STOPPED).await
    }

    /// Enables every schedule and gives the API `throttle` again.
    pub async fn resume(&self, throttle: Throttle) -> Result<CapState, SpendCapError> {
        self.switch(true, throttle).await
    }

    async fn switch(&self, enabled: bool, throttle: Throttle) -> Result<CapState, SpendCapError> {
        let state = self.state().await?;
        if state.schedules.is_empty() {
            return Err(SpendCapError::NoSchedules(self.name()));
        }
        // The API first: it is what a stranger with the key can spend on.
        if state.throttle != Some(throttle) {
            self.set_throttle(&state.usage_plan_id, throttle).await?;
        }
        for schedule in &state.schedules {
            if schedule.enabled != enabled {
                self.set_schedule(&schedule.name, enabled).await?;
            }
        }
        self.state().await
    }

    async fn schedules(&self) -> Result<Vec<Schedule>, SpendCapError> {
        let summaries = self
            .scheduler
            .list_schedules()
            .group_name(self.name())
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| service("ListSchedules", &e))?;
        let mut schedules: Vec<Schedule> = summaries
            .iter()
            .filter_map(|s| {
                Some(Schedule {
                    name: s.name()?.to_owned(),
                    enabled: s.state() == Some(&ScheduleState::Enabled),
                })
            })
            .collect();
        schedules.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(schedules)
    }

    /// UpdateSchedule replaces the whole schedule: every field is copied
    /// from GetSchedule, or an update would drop the target's input, retry
    /// policy or time zone.
    async fn set_schedule(&self, name: &str, enabled: bool) -> Result<(), SpendCapError> {
        let current = self
            .scheduler
            .get_schedule()
            .group_name(self.name())
            .name(name)
            .send()
            .await
            .map_err(|e| service("GetSchedule", &e))?;
        let state = if enabled {
            ScheduleState::Enabled
        } else {
            ScheduleState::Disabled
        };
        self.scheduler
            .update_schedule()
            .group_name(self.name())
            .name(name)
            .state(state)
            .set_schedule_expression(current.schedule_expression().map(str::to_owned))
            .set_schedule_expression_timezone(
                current.schedule_expression_timezone().map(str::to_owned),
            )
            .set_description(current.description().map(str::to_owned))
            .set_start_date(current.start_date().cloned())
            .set_end_date(current.end_date().cloned())
            .set_kms_key_arn(current.kms_key_arn().map(str::to_owned))
            .set_target(current.target().cloned())
            .set_flexible_time_window(current.flexible_time_window().cloned())
            .set_action_after_completion(current.action_after_completion().cloned())
            .send()
            .await
            .map_err(|e| service("UpdateSchedule", &e))?;
        Ok(())
    }

    async fn usage_plan(&self) -> Result<(String, Option<Throttle>), SpendCapError> {
        let plans = self
            .apigateway
            .get_usage_plans()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| service("GetUsagePlans", &e))?;
        let name = self.name();
        let plan = plans
            .iter()
            .find(|p| p.name() == Some(name.as_str()))
            .ok_or_else(|| SpendCapError::NoUsagePlan(name.clone()))?;
        let id = plan
            .id()
            .ok_or_else(|| SpendCapError::NoUsagePlan(name.clone()))?;
        let throttle = plan.throttle().map(|t| Throttle {
            rate_limit: t.rate_limit(),
            burst_limit: t.burst_limit(),
        });
        Ok((id.to_owned(), throttle))
    }

    async fn set_throttle(&self, id: &str, throttle: Throttle) -> Result<(), SpendCapError> {
        let replace = |path: &str, value: String| {
            PatchOperation::builder()
                .op(Op::Replace)
                .path(path)
                .value(value)
                .build()
        };
        self.apigateway
            .update_usage_plan()
            .usage_plan_id(id)
            .patch_operations(replace(
                "/throttle/rateLimit",
                throttle.rate_limit.to_string(),
            ))
            .patch_operations(replace(
                "/throttle/burstLimit",
                throttle.burst_limit.to_string(),
            ))
            .send()
            .await
            .map_err(|e| service("UpdateUsagePlan", &e))?;
        Ok(())
    }
}

fn service(action: &'static str, error: &dyn std::error::Error) -> SpendCapError {
    SpendCapError::Service {
        action,
        message: crate::functions::error_chain(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(enabled: &[bool], throttle: Option<Throttle>) -> CapState {
        CapState {
            schedules: enabled
                .iter()
                .enumerate()
                .map(|(i, &enabled)| Schedule {
                    name: format!("s{i}"),
                    enabled,
                })
                .collect(),
            usage_plan_id: "p".into(),
            throttle,
        }
    }

    #[test]
    fn any_switch_off_is_a_stop() {
        let open = Some(Throttle {
            rate_limit: 10.0,
            burst_limit: 20,
        });
        assert!(!state(&[true, true], open).stopped());
        assert!(state(&[true, false], open).stopped());
        assert!(state(&[true, true], Some(Throttle::STOPPED)).stopped());
        assert!(state(&[false, false], Some(Throttle::STOPPED)).stopped());
        assert_eq!(
            state(&[false, false], Some(Throttle::STOPPED)).summary(),
            "STOPPED: 0 of 2 schedules enabled, API throttle 0 req/s, burst 0"
        );
        assert_eq!(
            state(&[true, true], open).summary(),
            "running: 2 of 2 schedules enabled, API throttle 10 req/s, burst 20"
        );
    }
}
