//! The commands that talk to AWS: bootstrap, deploy, run, status,
//! approve/reject, resume, destroy. Built only with the `aws` feature, so that the
//! rest of `cargo xtask` never waits for the AWS SDK to compile; without it
//! these commands re-run `cargo xtask` with the feature (see `main.rs`).
//!
//! Credentials and region come from aws-config's default chain (profiles,
//! SSO, environment, the container role); `--endpoint-url` (or
//! `AWS_ENDPOINT_URL`) sends every call to an emulator.

mod approve;
mod cfn;
mod deploy;
mod destroy;
mod resume;
mod run;
mod status;

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
        let rendered = render(&Sources::in_project(std::path::Path::new(".")), &self.env)
            .with_context(|| format!("cannot render environment {}", self.env))?;
        let runtime = tokio::runtime::Runtime::new()?;
        let sdk = runtime.block_on(async {
            let mut loader = aws_config::defaults(BehaviorVersion::latest())
                .region(Region::new(rendered.env.region.clone()));
            if let Some(profile) = &self.profile {
                loader = loader.profile_name(profile);
            }
            if let Some(url) = &self.endpoint_url {
                loader = loader.endpoint_url(url);
            }
            loader.load().await
        });
        Ok(Ctx {
            sdk,
            endpoint: self.endpoint_url.clone(),
            rendered,
            runtime,
        })
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
    if yes {
        return Ok(true);
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
