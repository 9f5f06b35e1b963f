//! The commands that talk to AWS: bootstrap, deploy, run, status,
//! approve/reject, resume, destroy. Built only with the `aws` feature, so that the
//! rest of `cargo xtask` never waits for the AWS SDK to compile; without it
//! these commands re-run `cargo xtask` with the feature (see `main.rs`).
//!
//! Credentials and region come from aws-config's default chain (profiles,
//! SSO, environment, the container role); `--endpoint-url` (or
//! `AWS_ENDPOINT_URL`) sends every call to an emulator.

mod approve;
mod batch;
mod cfn;
mod deploy;
mod destroy;
mod poll;
mod resume;
mod run;
mod status;
mod training_job;

use std::sync::Arc;

use anyhow::Context;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::ProvideCredentials;
use stockcast::infra::render::{Rendered, Sources, render};
use stockcast::store::{S3Options, Store};

use crate::flags;

/// A loaded AWS configuration and the environment it deploys.
pub struct Ctx {
    pub sdk: SdkConfig,
    pub endpoint: Option<String>,
    pub rendered: Rendered,
    pub runtime: tokio::runtime::Runtime,
}

impl flags::Aws {
    pub fn context(&self) -> anyhow::Result<Ctx> {
        let env = &self.env.name;
        let rendered = render(&Sources::in_project(std::path::Path::new(".")), env)
            .with_context(|| format!("cannot render environment {env}"))?;
        let connection = &self.connection;
        let runtime = tokio::runtime::Runtime::new()?;
        let sdk = runtime.block_on(async {
            let mut loader = aws_config::defaults(BehaviorVersion::latest())
                .region(Region::new(rendered.env.region.clone()));
            if let Some(profile) = &connection.profile {
                loader = loader.profile_name(profile);
            }
            if let Some(url) = &connection.endpoint_url {
                loader = loader.endpoint_url(url);
            }
            loader.load().await
        });
        runtime.block_on(check_credentials(&sdk, connection.profile.as_deref()))?;
        Ok(Ctx {
            sdk,
            endpoint: connection.endpoint_url.clone(),
            rendered,
            runtime,
        })
    }
}

/// Fails with the next step when the SDK's provider chain finds no
/// credentials, instead of the chain's dump at the first AWS call.
async fn check_credentials(
    sdk: &aws_config::SdkConfig,
    profile: Option<&str>,
) -> anyhow::Result<()> {
    use aws_credential_types::provider::ProvideCredentials;
    let next = match profile {
        Some(p) => {
            format!("run `aws sso login --profile {p}` (or check [profile {p}] in ~/.aws/config)")
        }
        None => {
            "run `aws configure`, or `aws sso login --profile P` and pass --profile P".to_owned()
        }
    };
    let Some(provider) = sdk.credentials_provider() else {
        anyhow::bail!("no AWS credentials: {next}");
    };
    match provider.provide_credentials().await {
        Ok(_) => Ok(()),
        Err(e) => {
            use std::error::Error;
            // The chain's reason lists every provider it tried, one per
            // line: "none found" is what the first words already say, any
            // other first line (an expired SSO token) is worth showing.
            let reason = e
                .source()
                .map(ToString::to_string)
                .unwrap_or_else(|| e.to_string());
            match reason.lines().next() {
                Some(line) if !line.starts_with("no credentials found in chain") => {
                    anyhow::bail!("no AWS credentials: {next} ({line})")
                }
                _ => anyhow::bail!("no AWS credentials: {next}"),
            }
        }
    }
}

impl Ctx {
    pub fn env(&self) -> &str {
        &self.rendered.env.name
    }

    pub fn region(&self) -> &str {
        &self.rendered.env.region
    }

    pub fn stack_name(&self, stack: &str) -> String {
        format!("stockcast-{}-{stack}", self.env())
    }

    /// A bucket through object_store, with the SDK's credentials.
    pub fn bucket(&self, bucket: &str) -> anyhow::Result<Store> {
        let provider = self.sdk.credentials_provider().context(
            "no AWS credentials: run `aws configure` or `aws sso login`, or set AWS_PROFILE",
        )?;
        Ok(Store::s3_with(
            bucket,
            S3Options {
                endpoint: self.endpoint.clone(),
                region: Some(self.region().to_owned()),
                credentials: None,
                credential_provider: Some(Arc::new(SdkCredentials(provider))),
                retry: None,
            },
        )?)
    }
}

/// The data bucket of a deployed environment, as a store with the SDK's
/// credentials (`cargo xtask rollback --env`), and the runtime its
/// credential provider was made on, to use it on.
pub fn data_store(aws: flags::Aws) -> anyhow::Result<(Store, tokio::runtime::Runtime)> {
    let ctx = aws.context()?;
    let bucket = ctx.runtime.block_on(approve::data_bucket(&ctx))?;
    let store = ctx.bucket(&bucket)?;
    Ok((store, ctx.runtime))
}

/// aws-config's credential chain as an object_store credential provider.
#[derive(Debug)]
struct SdkCredentials(aws_credential_types::provider::SharedCredentialsProvider);

#[async_trait::async_trait]
impl object_store::CredentialProvider for SdkCredentials {
    type Credential = object_store::aws::AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<Self::Credential>> {
        let credentials =
            self.0
                .provide_credentials()
                .await
                .map_err(|e| object_store::Error::Generic {
                    store: "S3",
                    source: Box::new(e),
                })?;
        Ok(Arc::new(object_store::aws::AwsCredential {
            key_id: credentials.access_key_id().to_owned(),
            secret_key: credentials.secret_access_key().to_owned(),
            token: credentials.session_token().map(str::to_owned),
        }))
    }
}

/// Asks a yes/no question on the terminal; `--yes` answers for the user.
pub fn confirm(question: &str, yes: bool) -> anyhow::Result<bool> {
    use std::io::IsTerminal;
    if yes {
        return Ok(true);
    }
    // A script must not read "no" into a missing answer and go on as if
    // the change was made.
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "{question} needs an answer and there is no terminal to ask: run it in a terminal, or pass --yes to go ahead"
        );
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

impl flags::Bootstrap {
    pub fn run(self) -> anyhow::Result<()> {
        let ctx = self.aws.context()?;
        deploy::bootstrap(&ctx, self.yes)
    }
}
