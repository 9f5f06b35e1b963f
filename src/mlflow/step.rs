//! The training workflow's mirror step: at the end of a run, the gate
//! function mirrors the whole store into the environment's MLflow server
//! (the same idempotent [`sync`] as `cargo xtask mlflow`), so a run that a
//! failed mirror missed is caught up by the next one.
//!
//! The server and its credentials come from the environment file's
//! `mlflow:` (rendered into `STOCKCAST_MLFLOW_*`); the credentials live in
//! a Secrets Manager secret that only the gate function may read, never in
//! a variable or the template.

use serde::Deserialize;

use super::client::{Client, Credentials, MlflowError};
use super::mirror::{MirrorError, sync};
use crate::registry::Registry;
use crate::secrets::SecretSource;
use crate::steps::{ErrorName, MirrorOutput, StepError};

/// Where the mirror step sends the store.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorTarget {
    pub tracking_uri: String,
    pub experiment: String,
    /// A Secrets Manager secret (name or ARN) whose value is
    /// `{"username": …, "password": …}` or `{"token": …}`; `None` uses
    /// MLflow's usual `MLFLOW_TRACKING_*` variables (none in AWS).
    pub credentials_secret: Option<String>,
}

impl MirrorTarget {
    /// From `STOCKCAST_MLFLOW_TRACKING_URI` (unset or empty: no mirror),
    /// `STOCKCAST_MLFLOW_EXPERIMENT` (default `stockcast-<STOCKCAST_ENV>`)
    /// and `STOCKCAST_MLFLOW_SECRET`.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let tracking_uri = get("STOCKCAST_MLFLOW_TRACKING_URI")?;
        let experiment = get("STOCKCAST_MLFLOW_EXPERIMENT").unwrap_or_else(|| {
            super::experiment_name(&get("STOCKCAST_ENV").unwrap_or_else(|| "local".to_owned()))
        });
        Some(MirrorTarget {
            tracking_uri,
            experiment,
            credentials_secret: get("STOCKCAST_MLFLOW_SECRET"),
        })
    }
}

/// The credentials a secret holds. A token wins over a user name, as with
/// MLflow's variables.
pub fn credentials_from_secret(id: &str, text: &str) -> Result<Credentials, StepError> {
    #[derive(Deserialize)]
    struct Secret {
        username: Option<String>,
        password: Option<String>,
        token: Option<String>,
    }
    let refused = |why: &str| {
        StepError::new(
            ErrorName::MlflowRefused,
            format!(
                "the secret {id} {why}: store {{\"username\": …, \"password\": …}} or {{\"token\": …}}"
            ),
        )
    };
    // The parse error is not shown: it could quote the secret.
    let secret: Secret = serde_json::from_str(text).map_err(|_| refused("is not JSON"))?;
    match secret {
        Secret {
            token: Some(token), ..
        } => Ok(Credentials::Bearer(token)),
        Secret {
            username: Some(username),
            password: Some(password),
            ..
        } => Ok(Credentials::Basic { username, password }),
        _ => Err(refused("has neither a token nor a username and password")),
    }
}

impl From<MirrorError> for StepError {
    fn from(e: MirrorError) -> Self {
        let name = match &e {
            MirrorError::Mlflow(MlflowError::Unreachable { .. } | MlflowError::Server { .. }) => {
                ErrorName::ServiceUnavailable
            }
            MirrorError::Store(store) if !store.is_transient() => ErrorName::StorageRefused,
            MirrorError::Registry(_) | MirrorError::Store(_) => ErrorName::StorageUnavailable,
            _ => ErrorName::MlflowRefused,
        };
        StepError::new(name, e.to_string())
    }
}

/// Mirrors the store into `target` (nothing when there is no target) and
/// says what it wrote.
pub async fn mirror_step(
    registry: &Registry,
    target: Option<&MirrorTarget>,
    secrets: &impl SecretSource,
    run_id: &str,
) -> Result<MirrorOutput, StepError> {
    let Some(target) = target else {
        return Ok(MirrorOutput {
            mirrored: false,
            summary: "no MLflow server is configured (mlflow.tracking_uri in the environment file)"
                .to_owned(),
            run_url: None,
        });
    };
    let credentials = match &target.credentials_secret {
        Some(id) => credentials_from_secret(id, &secrets.secret(id).await?)?,
        None => Credentials::from_env().map_err(MirrorError::from)?,
    };
    let client = Client::new(&target.tracking_uri, credentials).map_err(MirrorError::from)?;
    let report = sync(&client, registry, &target.experiment).await?;
    Ok(MirrorOutput {
        mirrored: true,
        summary: report
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
        run_url: report.run_urls.get(run_id).cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_gives_basic_or_bearer_credentials_and_never_echoes_itself() {
        let basic =
            credentials_from_secret("s", r#"{"username":"ci","password":"pw"}"#).expect("basic");
        assert!(matches!(basic, Credentials::Basic { ref username, .. } if username == "ci"));
        let bearer =
            credentials_from_secret("s", r#"{"token":"t0k","username":"ci"}"#).expect("bearer");
        assert!(matches!(bearer, Credentials::Bearer(ref t) if t == "t0k"));
        let half =
            credentials_from_secret("arn:secret", r#"{"username":"ci"}"#).expect_err("no password");
        assert_eq!(half.name, ErrorName::MlflowRefused);
        assert!(half.message.contains("arn:secret"), "{}", half.message);
        let garbled = credentials_from_secret("s", "hunter2 {").expect_err("not JSON");
        assert!(!garbled.message.contains("hunter2"), "{}", garbled.message);
    }

    #[test]
    fn the_target_comes_from_the_variables_and_is_optional() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(
            MirrorTarget::from_vars(vars(&[("STOCKCAST_ENV", "dev")])),
            None
        );
        let target = MirrorTarget::from_vars(vars(&[
            ("STOCKCAST_ENV", "prod"),
            (
                "STOCKCAST_MLFLOW_TRACKING_URI",
                "https://mlflow.example.com",
            ),
            ("STOCKCAST_MLFLOW_SECRET", "stockcast/prod/mlflow"),
        ]))
        .expect("configured");
        assert_eq!(target.experiment, "stockcast-prod");
        assert_eq!(
            target.credentials_secret.as_deref(),
            Some("stockcast/prod/mlflow")
        );
    }
}
