//! Infrastructure as code: environment files, template rendering and the
//! project's own checks of the rendered stacks.
//!
//! `stacks/` and `workflows/` are data; this module renders them to plain
//! JSON CloudFormation (deterministically) and checks the wiring that
//! generic validators cannot see: placeholders, task resources, roles,
//! alarms, log retention, the budget; and estimates what they cost a month
//! (`cost`). All of them read the stacks through one model (`model`).

pub mod cfn;
pub mod check;
pub mod cost;
pub mod env;
pub mod file;
pub mod model;
pub mod render;

pub use check::{Finding, check};
pub use env::Environment;
pub use model::Model;
pub use render::{BOOTSTRAP, Rendered, RenderedStack, STACKS, Sources, WORKFLOWS, render};
