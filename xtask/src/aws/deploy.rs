//! `cargo xtask bootstrap` and `cargo xtask deploy`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use serde_json::Value;
use stockcast::infra::render::RenderedStack;

use super::Ctx;
use super::cfn::{self, MAX_TEMPLATE_BODY, Outcome, StackChange, TemplateSource};
use crate::flags;
use crate::package::{self, LAMBDAS};

/// The bootstrap stack's outputs that deploy needs.
struct Bootstrap {
    bucket: String,
    repository: String,
}

const BOOTSTRAP: &str = "bootstrap";

fn rendered<'a>(ctx: &'a Ctx, name: &str) -> anyhow::Result<&'a RenderedStack> {
    ctx.rendered
        .stacks
        .iter()
        .find(|s| s.name == name)
        .with_context(|| format!("no stack {name} in stacks/"))
}

/// The template's declared parameters, with whether each has a default.
fn declared_parameters(stack: &RenderedStack) -> BTreeMap<String, bool> {
    stack.template["Parameters"]
        .as_object()
        .map(|p| {
            p.iter()
                .map(|(k, v)| (k.clone(), v.get("Default").is_some()))
                .collect()
        })
        .unwrap_or_default()
}

/// Creates or updates the artifact stack (bucket and image repository).
pub fn bootstrap(ctx: &Ctx, yes: bool) -> anyhow::Result<()> {
    let stack = rendered(ctx, BOOTSTRAP)?;
    let client = cfn::client(ctx);
    ctx.runtime.block_on(async {
        let change = StackChange {
            stack_name: stack.stack_name.clone(),
            template: TemplateSource::Body(serde_json::to_string(&stack.template)?),
            parameters: BTreeMap::new(),
            env: ctx.env().to_owned(),
        };
        cfn::apply(&client, &change, yes).await?;
        for (key, value) in cfn::outputs(&client, &stack.stack_name).await? {
            println!("  {key:<28} {value}");
        }
        Ok(())
    })
}

async fn read_bootstrap(
    ctx: &Ctx,
    client: &aws_sdk_cloudformation::Client,
) -> anyhow::Result<Bootstrap> {
    let name = ctx.stack_name(BOOTSTRAP);
    let missing = || {
        anyhow!(
            "{name} does not exist: run `cargo xtask bootstrap --env {}` first (it creates the artifact bucket and image repository)",
            ctx.env()
        )
    };
    if cfn::stack_status(client, &name).await?.is_none() {
        return Err(missing());
    }
    let outputs = cfn::outputs(client, &name).await?;
    let get = |key: &str| outputs.get(key).cloned().ok_or_else(missing);
    Ok(Bootstrap {
        bucket: get("ArtifactBucketName")?,
        repository: get("TrainRepositoryUri")?,
    })
}

/// Registry credentials: ECR's token for an ECR repository, none otherwise.
async fn registry_credentials(
    ctx: &Ctx,
    registry: &str,
) -> anyhow::Result<Option<(String, String)>> {
    if !registry.contains(".dkr.ecr.") {
        return Ok(None);
    }
    let token = aws_sdk_ecr::Client::new(&ctx.sdk)
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| anyhow::Error::new(e.into_service_error()))
        .context("cannot get an ECR login token")?;
    let encoded = token
        .authorization_data()
        .first()
        .and_then(|d| d.authorization_token())
        .context("ECR returned no token")?;
    let decoded = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded)?)?;
    let (user, password) = decoded
        .split_once(':')
        .context("the ECR token is not user:password")?;
    Ok(Some((user.to_owned(), password.to_owned())))
}

/// The template parameter that takes an artifact's S3 key:
/// `spend-stop` → `SpendStopCodeKey`.
fn code_key_parameter(artifact: &str) -> String {
    let mut parameter: String = artifact
        .split('-')
        .flat_map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase())
                .into_iter()
                .chain(chars)
        })
        .collect();
    parameter.push_str("CodeKey");
    parameter
}

/// Uploads what is not there yet; returns the keys uploaded.
async fn upload_artifacts(
    ctx: &Ctx,
    bucket: &str,
    dir: &Path,
    manifest: &Value,
) -> anyhow::Result<BTreeMap<String, String>> {
    let store = ctx.bucket(bucket)?;
    let mut keys = BTreeMap::new();
    for (name, _) in LAMBDAS {
        let entry = &manifest["artifacts"][name];
        let key = entry["s3_key"]
            .as_str()
            .with_context(|| format!("manifest.json has no {name}"))?;
        if store.head(key).await?.is_some() {
            println!("  {name:<10} s3://{bucket}/{key} (already uploaded)");
        } else {
            let file = dir.join(entry["file"].as_str().unwrap_or_default());
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            store.create(key, bytes).await?;
            println!("  {name:<10} s3://{bucket}/{key} (uploaded)");
        }
        keys.insert(name.to_owned(), key.to_owned());
    }
    Ok(keys)
}

/// The template as a body, or uploaded (content-addressed) when too big.
async fn template_source(
    ctx: &Ctx,
    bucket: &str,
    stack: &RenderedStack,
) -> anyhow::Result<TemplateSource> {
    let body = serde_json::to_string(&stack.template)?;
    if body.len() <= MAX_TEMPLATE_BODY {
        return Ok(TemplateSource::Body(body));
    }
    let key = format!(
        "templates/{}/{}.json",
        stack.name,
        stockcast::digest::sha256_hex(body.as_bytes())
    );
    let store = ctx.bucket(bucket)?;
    if store.head(&key).await?.is_none() {
        store.create(&key, body.into_bytes()).await?;
    }
    Ok(TemplateSource::Url(format!(
        "https://{bucket}.s3.{}.amazonaws.com/{key}",
        ctx.region()
    )))
}

/// The extension layer AWS publishes in us-east-1 (its account differs in
/// every region, so no other region's ARN can be derived from it).
const US_EAST_1_SECRETS_LAYER: &str = "arn:aws:lambda:us-east-1:177933569100:layer:AWS-Parameters-and-Secrets-Lambda-Extension-Arm64:12";

/// The secrets extension layer for `region`: the one given, which must be
/// of that region (a Lambda cannot use another region's layer), or the
/// known one in us-east-1.
fn secrets_layer(given: Option<&str>, region: &str) -> anyhow::Result<String> {
    const WHERE: &str = "AWS lists the ARNs per region at https://docs.aws.amazon.com/secretsmanager/latest/userguide/retrieving-secrets_lambda.html";
    match given {
        Some(arn) => {
            let arn_region = arn.split(':').nth(3).unwrap_or_default();
            if arn_region != region {
                bail!(
                    "--secrets-extension-layer is a layer of {arn_region:?}, but the environment deploys to {region}: pass the arm64 ARN for {region} ({WHERE})"
                );
            }
            Ok(arn.to_owned())
        }
        None if region == "us-east-1" => Ok(US_EAST_1_SECRETS_LAYER.to_owned()),
        None => bail!(
            "the environment deploys to {region}: pass --secrets-extension-layer with the arm64 ARN of the AWS Parameters and Secrets Lambda Extension there ({WHERE})"
        ),
    }
}

impl flags::Deploy {
    pub fn run(self) -> anyhow::Result<()> {
        let ctx = self.aws.context()?;
        let client = cfn::client(&ctx);
        let bootstrap = ctx.runtime.block_on(read_bootstrap(&ctx, &client))?;
        let dir = match &self.artifacts {
            Some(dir) => dir.clone(),
            None => {
                let out = PathBuf::from("target/package");
                flags::Package::build_only(out.clone()).run()?;
                out
            }
        };
        let manifest = read_manifest(&dir)?;
        let image = package::oci::Image::read_layout(&dir.join("train-image"))?;
        let registry = self
            .image_registry
            .clone()
            .unwrap_or(bootstrap.repository.clone());
        ctx.runtime.block_on(async {
            println!("artifacts → s3://{}", bootstrap.bucket);
            let keys = upload_artifacts(&ctx, &bootstrap.bucket, &dir, &manifest).await?;
            let image_uri = push_image(&ctx, &image, &registry).await?;
            let mut values = BTreeMap::from([
                (
                    "SecretsExtensionLayerArn".to_owned(),
                    secrets_layer(self.secrets_extension_layer.as_deref(), ctx.region())?,
                ),
                ("TrainImageUri".to_owned(), image_uri),
                ("ArtifactBucket".to_owned(), bootstrap.bucket.clone()),
            ]);
            for (name, key) in &keys {
                values.insert(code_key_parameter(name), key.clone());
            }
            if !deploy_stacks(&ctx, &client, &bootstrap.bucket, &values, self.yes).await? {
                return Ok(());
            }
            upload_universe(&ctx).await?;
            print_outputs(&ctx, &client).await
        })
    }
}

/// Writes the environment's symbols to `universes/<env>.txt` in its data
/// bucket, where every run's plan step reads them (unless unchanged).
async fn upload_universe(ctx: &Ctx) -> anyhow::Result<()> {
    let bucket = super::approve::data_bucket(ctx).await?;
    let store = ctx.bucket(&bucket)?;
    let key = stockcast::layout::universe(ctx.env());
    let symbols = ctx.rendered.env.symbols();
    let text = stockcast::universe::render(symbols);
    let written = store.put_derived(&key, text.into_bytes()).await?;
    println!(
        "universe: {} symbols → s3://{bucket}/{key}{}",
        symbols.len(),
        if written { "" } else { " (unchanged)" }
    );
    Ok(())
}

fn read_manifest(dir: &Path) -> anyhow::Result<Value> {
    let bytes = std::fs::read(dir.join("manifest.json")).with_context(|| {
        format!(
            "no manifest.json in {}: run `cargo xtask package`",
            dir.display()
        )
    })?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// Pushes the training image (tagged by its digest) and returns the URI
/// the job definition pins it by: `<registry>@sha256:…`.
async fn push_image(
    ctx: &Ctx,
    image: &package::oci::Image,
    registry: &str,
) -> anyhow::Result<String> {
    let digest = image.manifest_digest().to_owned();
    let tag = format!("sha-{}", &digest.trim_start_matches("sha256:")[..12]);
    let credentials = registry_credentials(ctx, registry).await?;
    package::oci::push(image, &format!("{registry}:{tag}"), credentials).await?;
    let image_uri = format!("{registry}@{digest}");
    println!("  train-image {image_uri}");
    Ok(image_uri)
}

/// Applies every stack after bootstrap, in order, each with the values of
/// the parameters it declares; a declined stack stops the later ones,
/// which depend on it. Returns whether every stack is in place.
async fn deploy_stacks(
    ctx: &Ctx,
    client: &aws_sdk_cloudformation::Client,
    bucket: &str,
    values: &BTreeMap<String, String>,
    yes: bool,
) -> anyhow::Result<bool> {
    let mut changed = false;
    for stack in ctx.rendered.stacks.iter().filter(|s| s.name != BOOTSTRAP) {
        let change = StackChange {
            stack_name: stack.stack_name.clone(),
            template: template_source(ctx, bucket, stack).await?,
            parameters: stack_parameters(stack, values)?,
            env: ctx.env().to_owned(),
        };
        match cfn::apply(client, &change, yes).await? {
            Outcome::Done => changed = true,
            Outcome::NoChanges => {}
            Outcome::Declined => {
                println!("stopped: the later stacks depend on this one");
                return Ok(false);
            }
        }
    }
    if !changed {
        println!("no changes");
    }
    Ok(true)
}

/// The values of the parameters `stack` declares; one without a value
/// and without a default is an error.
fn stack_parameters(
    stack: &RenderedStack,
    values: &BTreeMap<String, String>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut parameters = BTreeMap::new();
    for (name, has_default) in declared_parameters(stack) {
        match values.get(&name) {
            Some(value) => {
                parameters.insert(name, value.clone());
            }
            None if has_default => {}
            None => bail!(
                "{}: deploy has no value for parameter {name}",
                stack.stack_name
            ),
        }
    }
    Ok(parameters)
}

/// What a user needs after a deploy: the API, its key, the state machines.
async fn print_outputs(ctx: &Ctx, client: &aws_sdk_cloudformation::Client) -> anyhow::Result<()> {
    let app = cfn::outputs(client, &ctx.stack_name("app"))
        .await
        .unwrap_or_default();
    let orchestration = cfn::outputs(client, &ctx.stack_name("orchestration"))
        .await
        .unwrap_or_default();
    let region = ctx.region();
    println!();
    if let Some(url) = app.get("ApiUrl") {
        println!("API            {url}");
    }
    if let Some(key) = app.get("ApiKeyId") {
        println!(
            "API key        aws apigateway get-api-key --api-key {key} --include-value --query value --output text"
        );
    }
    for (label, key) in [
        ("training", "TrainingStateMachineArn"),
        ("daily", "DailyStateMachineArn"),
    ] {
        if let Some(arn) = orchestration.get(key) {
            println!("{label:<14} {arn}");
            println!(
                "               https://{region}.console.aws.amazon.com/states/home?region={region}#/statemachines/view/{arn}"
            );
        }
    }
    println!(
        "stacks         https://{region}.console.aws.amazon.com/cloudformation/home?region={region}#/stacks?filteringText=stockcast-{}",
        ctx.env()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secrets_layer_is_the_environment_regions() {
        assert_eq!(
            secrets_layer(None, "us-east-1").expect("known"),
            US_EAST_1_SECRETS_LAYER
        );
        let elsewhere = secrets_layer(None, "eu-west-1").expect_err("unknown");
        assert!(
            elsewhere
                .to_string()
                .contains("pass --secrets-extension-layer"),
            "{elsewhere}"
        );
        let mismatch =
            secrets_layer(Some(US_EAST_1_SECRETS_LAYER), "eu-west-1").expect_err("wrong region");
        assert!(mismatch.to_string().contains("\"us-east-1\""), "{mismatch}");
        let given = "arn:aws:lambda:eu-west-1:123456789012:layer:AWS-Parameters-and-Secrets-Lambda-Extension-Arm64:12";
        assert_eq!(
            secrets_layer(Some(given), "eu-west-1").expect("same region"),
            given
        );
    }
}
