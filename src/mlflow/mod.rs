//! MLflow as a window on the registry: every pipeline run, version, metric,
//! plot and alias of the store, mirrored into a real MLflow tracking server
//! that people browse.
//!
//! The store stays the source of truth: serving never reads MLflow, and a
//! sync that fails is reported by its caller without blocking anything. The
//! client speaks MLflow's REST API over reqwest ([`client`]); what is
//! logged is computed from the store's files without I/O ([`record`]); the
//! store is read by [`source`] and mirrored, idempotently, by [`mirror`]
//! (runs) and `registered` (models, versions, aliases); [`step`] is the
//! training workflow's mirror step.

pub mod client;
pub mod mirror;
pub mod record;
mod registered;
pub mod source;
pub mod step;

pub use client::{Client, Credentials, MlflowError};
pub use mirror::{Counts, MirrorError, SyncReport, sync};
pub use source::registered_model_name;
pub use step::{MirrorTarget, mirror_step};

/// The experiment a store's runs go to: `stockcast-<env>`.
pub fn experiment_name(env: &str) -> String {
    format!("stockcast-{env}")
}
