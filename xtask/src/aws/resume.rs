//! `cargo xtask resume`: lifts the spend cap's stop (see
//! `stockcast::spend_cap`), back to what the environment file declares.

use anyhow::Context;
use stockcast::spend_cap::{SpendCap, Throttle};

use super::{Ctx, confirm};
use crate::flags;

/// The spend switches of the context's environment.
pub fn spend_cap(ctx: &Ctx) -> SpendCap {
    SpendCap::new(
        aws_sdk_scheduler::Client::new(&ctx.sdk),
        aws_sdk_apigateway::Client::new(&ctx.sdk),
        ctx.env(),
    )
}

impl flags::Resume {
    pub fn run(self) -> anyhow::Result<()> {
        let ctx = self.aws.context()?;
        let cap = spend_cap(&ctx);
        let api = &ctx.rendered.env.api;
        let throttle = Throttle {
            rate_limit: api.throttle_rate,
            burst_limit: i32::try_from(api.throttle_burst)
                .context("api.throttle_burst is too large for API Gateway")?,
        };
        ctx.runtime.block_on(async {
            let state = cap
                .state()
                .await
                .context("cannot read the spend switches")?;
            println!("spend cap: {}", state.summary());
            if !state.stopped() && state.throttle == Some(throttle) {
                println!("nothing to resume");
                return Ok(());
            }
            let question = format!(
                "Enable {} schedule(s) and set the API throttle to {} req/s, burst {}? Spending starts again.",
                state.schedules.len(),
                throttle.rate_limit,
                throttle.burst_limit
            );
            if !confirm(&question, self.yes)? {
                anyhow::bail!("not resumed");
            }
            let state = cap.resume(throttle).await.context("resume failed")?;
            println!("spend cap: {}", state.summary());
            Ok(())
        })
    }
}
