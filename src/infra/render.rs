//! Rendering: environment file + minijinja templates (stacks/*.yaml) +
//! workflows (workflows/*.asl.yaml) → plain JSON CloudFormation templates,
//! byte for byte the same for the same input.

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use super::cfn;
use super::env::Environment;
use super::file::{self, FileError};

/// The stacks, in deployment order: each may import the exports of those
/// before it (`check` enforces that). The first, [`BOOTSTRAP`], holds where
/// artifacts are uploaded to and is created by `cargo xtask bootstrap`; the
/// others by `cargo xtask deploy`, in this order.
pub const STACKS: [&str; 5] = ["bootstrap", "data", "app", "monitoring", "orchestration"];
/// The stack created before artifacts can be uploaded: the artifact bucket
/// and the training image repository.
pub const BOOTSTRAP: &str = STACKS[0];
pub const WORKFLOWS: [&str; 2] = ["training", "daily"];

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(
        "there is no environment {name} ({file} does not exist); the environments are: {known}. Add one by copying stacks/environments/dev.yaml"
    )]
    NoSuchEnvironment {
        name: String,
        file: String,
        known: String,
    },
}

/// One rendered stack.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedStack {
    /// The template's name in stacks/ ("app").
    pub name: String,
    /// The CloudFormation stack name ("stockcast-dev-app").
    pub stack_name: String,
    pub template: Json,
}

impl RenderedStack {
    /// The template as pretty JSON with a final newline.
    pub fn to_json_string(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.template).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// Everything rendered for one environment.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub env: Environment,
    pub stacks: Vec<RenderedStack>,
    /// The state machine definitions, `${Placeholders}` unbound.
    pub workflows: Vec<(String, Json)>,
}

/// Where templates, workflows and environments live.
#[derive(Debug, Clone)]
pub struct Sources {
    pub stacks_dir: PathBuf,
    pub workflows_dir: PathBuf,
}

impl Sources {
    pub fn in_project(root: &Path) -> Self {
        Sources {
            stacks_dir: root.join("stacks"),
            workflows_dir: root.join("workflows"),
        }
    }

    /// An environment's file: `stacks/environments/<env>.yaml`, or `env`
    /// itself when it is a path to a YAML file (a variant kept elsewhere).
    pub fn env_path(&self, env: &str) -> PathBuf {
        if env.ends_with(".yaml") || env.contains('/') {
            return PathBuf::from(env);
        }
        self.stacks_dir
            .join("environments")
            .join(format!("{env}.yaml"))
    }

    /// The environments that have a file, sorted.
    pub fn environments(&self) -> Result<Vec<String>, RenderError> {
        let dir = self.stacks_dir.join("environments");
        let entries = std::fs::read_dir(&dir).map_err(|source| FileError::Io {
            file: dir.display().to_string(),
            source,
        })?;
        let mut names: Vec<String> = entries
            .filter_map(|e| {
                e.ok()?
                    .path()
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
            })
            .collect();
        names.sort();
        Ok(names)
    }
}

/// Loads a workflow definition (ASL in YAML) as JSON.
pub fn load_workflow(path: &Path) -> Result<Json, RenderError> {
    let (file, text) = file::read(path)?;
    let yaml: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| FileError::invalid(&file, e.to_string()))?;
    Ok(cfn::to_json(yaml).map_err(|message| FileError::invalid(&file, message))?)
}

/// Renders every stack of one environment.
pub fn render(sources: &Sources, env_name: &str) -> Result<Rendered, RenderError> {
    let env_path = sources.env_path(env_name);
    if !env_path.exists() {
        return Err(RenderError::NoSuchEnvironment {
            name: env_name.to_owned(),
            file: env_path.display().to_string(),
            known: sources.environments().unwrap_or_default().join(", "),
        });
    }
    let env = Environment::load_with(&env_path, &sources.stacks_dir.join("universes"))?;
    let mut workflows = Vec::new();
    let mut workflow_json = std::collections::BTreeMap::new();
    for name in WORKFLOWS {
        let definition = load_workflow(&sources.workflows_dir.join(format!("{name}.asl.yaml")))?;
        // One line of JSON: a valid YAML flow mapping wherever the template puts it.
        workflow_json.insert(name, serde_json::to_string(&definition).unwrap_or_default());
        workflows.push((name.to_owned(), definition));
    }
    let mut jinja = minijinja::Environment::new();
    jinja.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    let context = minijinja::context! {
        env => minijinja::Value::from(minijinja::value::Serde(&env)),
        workflows => minijinja::Value::from(minijinja::value::Serde(&workflow_json)),
        // Derived here, not in a template, so the rule has one home.
        vendor_secret => env.uses_alpha_vantage(),
        // One line of JSON, the plan step's defaults (STOCKCAST_RUN_DEFAULTS).
        run_defaults => serde_json::to_string(&env.run_defaults()).unwrap_or_default(),
    };
    let stacks = STACKS
        .into_iter()
        .map(|name| render_stack(&jinja, &context, sources, &env, name))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Rendered {
        env,
        stacks,
        workflows,
    })
}

/// Renders one template with the environment and the workflows, and turns
/// its short tags into plain JSON.
fn render_stack(
    jinja: &minijinja::Environment<'_>,
    context: &minijinja::Value,
    sources: &Sources,
    env: &Environment,
    name: &str,
) -> Result<RenderedStack, FileError> {
    let (file, source) = file::read(&sources.stacks_dir.join(format!("{name}.yaml")))?;
    let text = jinja
        .render_str(&source, context)
        .map_err(|e| FileError::invalid(&file, format!("{e:#}")))?;
    let yaml: serde_norway::Value = serde_norway::from_str(&text)
        .map_err(|e| FileError::invalid(&file, format!("rendered YAML is invalid: {e}")))?;
    let template = cfn::to_json(yaml).map_err(|message| FileError::invalid(&file, message))?;
    Ok(RenderedStack {
        name: name.to_owned(),
        stack_name: format!("stockcast-{}-{name}", env.name),
        template,
    })
}
