//! What MLflow records for a registry version or a pipeline run: params,
//! metrics and tags, computed from the store's files without any I/O.
//!
//! Decisions taken here, and why:
//! - Metrics are named per horizon (`mase_h5`, `rmse_h21`), since MLflow
//!   compares runs by metric name; naive's MASE and MAE on the same origins
//!   sit beside them (`naive_mase_h5`), and `r2_h5` is the out-of-sample R²
//!   against naive: 1 − SSE(model) / SSE(naive) on the same points, from
//!   the stored RMSEs (SSE = RMSE² · n) when both cover the same count.
//! - A NaN or infinite metric is not logged (MLflow stores NaN as the string
//!   "NaN" and ±inf as ±1.7976931348623157e308, which charts and sorts then
//!   misread); its name goes to the tag `stockcast.skipped_metrics` instead.
//!   A metric the model does not have (no interval: no `coverage80`) is
//!   simply absent.
//! - Every metric has step 0 and the version's creation time as timestamp,
//!   so logging it again is a no-op for MLflow (it de-duplicates identical
//!   points) and a resumed sync adds nothing.
//! - Params and tags longer than MLflow's limits (6000 and 8000 characters)
//!   are cut, with the cut marked, rather than refused.

use serde_json::Value;

use crate::registry::{HorizonMetrics, Lineage, VersionMetrics};

/// MLflow's `Param.value` limit is 6000 characters; tags allow 8000.
const MAX_VALUE_CHARS: usize = 5000;

#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub key: String,
    pub value: f64,
    /// 0, or the epoch of a training curve point.
    pub step: i64,
}

/// Everything logged on one MLflow run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunRecord {
    pub params: Vec<(String, String)>,
    pub metrics: Vec<Metric>,
    pub tags: Vec<(String, String)>,
    /// Milliseconds since the epoch: the run's start and every metric's time.
    pub timestamp_ms: i64,
    /// When the run ended, where the store knows (a pipeline run's manifest).
    pub end_ms: i64,
}

impl RunRecord {
    pub fn param(&mut self, key: impl Into<String>, value: impl ToString) {
        self.params.push((key.into(), cut(&value.to_string())));
    }

    pub fn tag(&mut self, key: impl Into<String>, value: impl ToString) {
        self.tags.push((key.into(), cut(&value.to_string())));
    }

    /// Adds a metric if it has a value; a non-finite one is listed in
    /// `skipped` instead (see the module comment).
    fn metric(&mut self, key: String, value: Option<f64>, skipped: &mut Vec<String>) {
        match value {
            Some(v) if v.is_finite() => self.metrics.push(Metric {
                key,
                value: v,
                step: 0,
            }),
            Some(v) => skipped.push(format!("{key}={v}")),
            None => {}
        }
    }

    /// A fitted network's loss and validation loss per epoch, as the
    /// metrics `loss` and `validation_loss` with the epoch as step: the
    /// training curve MLflow draws.
    fn training_curves(&mut self, history: Option<&Value>) {
        for epoch in history.and_then(Value::as_array).into_iter().flatten() {
            let Some(step) = epoch.get("epoch").and_then(Value::as_i64) else {
                continue;
            };
            for key in ["loss", "validation_loss"] {
                if let Some(value) = epoch
                    .get(key)
                    .and_then(Value::as_f64)
                    .filter(|v| v.is_finite())
                {
                    self.metrics.push(Metric {
                        key: key.to_owned(),
                        value,
                        step,
                    });
                }
            }
        }
    }

    /// Adds the JSON object's scalar leaves as params, `prefix.a.b = value`
    /// (arrays as JSON text), e.g. a fitted model's coefficients.
    pub fn flattened_params(&mut self, prefix: &str, value: &Value) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    self.flattened_params(&format!("{prefix}.{k}"), v);
                }
            }
            Value::Null => {}
            Value::String(s) => self.param(prefix, s),
            other => self.param(prefix, other),
        }
    }
}

/// Cuts a value to MLflow's limits, saying that it was cut.
fn cut(value: &str) -> String {
    match value.char_indices().nth(MAX_VALUE_CHARS) {
        Some((at, _)) => format!("{}… (cut at {MAX_VALUE_CHARS} characters)", &value[..at]),
        None => value.to_owned(),
    }
}

/// Milliseconds since the epoch of an RFC 3339 time; 0 if it is not one.
pub fn millis(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).map_or(0, |t| t.timestamp_millis())
}

/// Out-of-sample R² against naive on the same points; `None` when the two
/// were not measured on the same number of points or naive has no error.
pub fn r2_vs_naive(model: &HorizonMetrics, naive: &HorizonMetrics) -> Option<f64> {
    let (Some(model_rmse), Some(naive_rmse)) = (model.rmse, naive.rmse) else {
        return None;
    };
    if model.n != naive.n || model.n == 0 || naive_rmse <= 0.0 {
        return None;
    }
    Some(1.0 - (model_rmse * model_rmse) / (naive_rmse * naive_rmse))
}

/// The child run of one registry version.
pub fn version_record(
    metrics: &VersionMetrics,
    lineage: &Lineage,
    model_json: Option<&Value>,
) -> RunRecord {
    let mut record = RunRecord {
        timestamp_ms: millis(&lineage.created_at),
        ..RunRecord::default()
    };
    record.version_params(metrics);
    record.lineage_params(lineage);
    if let Some(Value::Object(fitted)) = model_json {
        record.fitted_params(fitted);
    }
    let skipped = record.version_metrics(metrics);
    record.tag("stockcast.symbol", &metrics.symbol);
    record.tag("stockcast.model", metrics.model);
    record.tag("stockcast.version", &metrics.version);
    record.tag("stockcast.run_id", &metrics.run_id);
    if !skipped.is_empty() {
        record.tag("stockcast.skipped_metrics", skipped.join(", "));
    }
    record
}

impl RunRecord {
    /// What was backtested, how and on which origins.
    fn version_params(&mut self, metrics: &VersionMetrics) {
        self.param("symbol", &metrics.symbol);
        self.param("model", metrics.model);
        self.param("version", &metrics.version);
        self.param("protocol.window", metrics.protocol.window);
        self.param("protocol.test_rows", metrics.protocol.test_rows);
        self.param("protocol.spacing", metrics.protocol.spacing);
        self.param(
            "protocol.horizons",
            join(metrics.protocol.horizons.iter().map(|h| h.to_string())),
        );
        self.param("origins", metrics.origins);
        for (key, date) in [
            ("first_origin", metrics.first_origin),
            ("last_origin", metrics.last_origin),
            ("data_through", metrics.data_through),
        ] {
            if let Some(date) = date {
                self.param(key, date);
            }
        }
    }

    /// Which data, configuration and code the version came from.
    fn lineage_params(&mut self, lineage: &Lineage) {
        self.param("data_key", &lineage.data_key);
        self.param("data_digest", &lineage.data_digest);
        if let Some(digest) = &lineage.sentiment_digest {
            self.param("sentiment_digest", digest);
        }
        self.param("data_rows", lineage.data_rows);
        self.param("config_digest", &lineage.config_digest);
        self.param("code_version", &lineage.code_version);
        if let Some(commit) = &lineage.git_commit {
            self.param("git_commit", commit);
        }
    }

    /// A fitted model's parameters as params, and its training history as
    /// curves.
    fn fitted_params(&mut self, fitted: &serde_json::Map<String, Value>) {
        // Weights and input rows are not parameters anyone compares; the
        // training history becomes curves below.
        let skip = ["model", "net", "recent", "history"];
        for (k, v) in fitted.iter().filter(|(k, _)| !skip.contains(&k.as_str())) {
            self.flattened_params(&format!("fitted.{k}"), v);
        }
        self.training_curves(fitted.get("history"));
    }

    /// The backtest's counts and its metrics per horizon, beside naive's;
    /// returns the non-finite ones, which are not logged.
    fn version_metrics(&mut self, metrics: &VersionMetrics) -> Vec<String> {
        let mut skipped = Vec::new();
        self.metric("origins".into(), Some(metrics.origins as f64), &mut skipped);
        self.metric(
            "failures".into(),
            Some(metrics.failures as f64),
            &mut skipped,
        );
        for m in &metrics.horizons {
            let h = m.horizon;
            let naive = metrics.naive.iter().find(|n| n.horizon == h);
            for (name, value) in [
                ("mae", m.mae),
                ("rmse", m.rmse),
                ("mape", m.mape),
                ("mase", m.mase),
                ("dir_acc", m.dir_acc),
                ("coverage80", m.coverage80),
                ("width80_rel", m.width80_rel),
                ("naive_mase", naive.and_then(|n| n.mase)),
                ("naive_mae", naive.and_then(|n| n.mae)),
                ("r2", naive.and_then(|n| r2_vs_naive(m, n))),
            ] {
                self.metric(format!("{name}_h{h}"), value, &mut skipped);
            }
        }
        skipped
    }
}

/// The parent run of one pipeline run, from its manifest (`runs/<id>/manifest.json`).
pub fn pipeline_record(run_id: &str, manifest: Option<&Value>) -> RunRecord {
    let mut record = RunRecord::default();
    record.tag("stockcast.run_id", run_id);
    let Some(manifest) = manifest else {
        record.tag(
            "stockcast.note",
            "this run has no manifest (runs/<id>/manifest.json); only its versions are mirrored",
        );
        return record;
    };
    let text = |path: &[&str]| {
        path.iter()
            .try_fold(manifest, |v, k| v.get(k))
            .and_then(Value::as_str)
    };
    record.timestamp_ms = text(&["started_at"]).map_or(0, millis);
    if let Some(input) = manifest.get("input") {
        for key in ["env", "source"] {
            if let Some(v) = input.get(key).and_then(Value::as_str) {
                record.param(key, v);
            }
        }
        for key in ["symbols", "models", "horizons"] {
            if let Some(Value::Array(items)) = input.get(key) {
                record.param(
                    key,
                    join(items.iter().map(|i| match i {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })),
                );
            }
        }
    }
    if let Some(config) = manifest.get("config") {
        record.flattened_params("config", config);
    }
    let count = |path: &[&str]| {
        path.iter()
            .try_fold(manifest, |v, k| v.get(k))
            .and_then(Value::as_array)
            .map(|a| a.len() as f64)
    };
    let mut skipped = Vec::new();
    for (name, path) in [
        ("candidates", &["train", "candidates"][..]),
        ("train_failures", &["train", "failures"][..]),
        ("promoted", &["promote", "promoted"][..]),
        ("quality_issues", &["quality", "issues"][..]),
    ] {
        record.metric(name.into(), count(path), &mut skipped);
    }
    if let Some(ok) = manifest
        .get("quality")
        .and_then(|q| q.get("ok"))
        .and_then(Value::as_bool)
    {
        record.tag("stockcast.quality_ok", ok);
    }
    if let Some(finished) = text(&["finished_at"]) {
        record.end_ms = millis(finished);
    }
    record
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{RunId, Symbol, VersionId};

    fn horizon(h: usize, rmse: f64, mase: f64) -> HorizonMetrics {
        HorizonMetrics {
            horizon: h,
            n: 100,
            mae: Some(1.0),
            rmse: Some(rmse),
            mape: Some(0.01),
            mase: Some(mase),
            n_dir: 90,
            dir_acc: Some(0.5),
            coverage80: None,
            width80_rel: None,
        }
    }

    fn metrics(horizons: Vec<HorizonMetrics>, naive: Vec<HorizonMetrics>) -> VersionMetrics {
        VersionMetrics {
            symbol: Symbol::from_static("AAPL"),
            model: crate::models::ModelKind::Drift,
            version: VersionId::from_static("v1"),
            run_id: RunId::from_static("r1"),
            protocol: crate::backtest::Protocol::default(),
            origins: 100,
            first_origin: None,
            last_origin: None,
            data_through: None,
            failures: 0,
            horizons,
            naive,
        }
    }

    fn lineage() -> Lineage {
        Lineage {
            symbol: Symbol::from_static("AAPL"),
            model: crate::models::ModelKind::Drift,
            version: VersionId::from_static("v1"),
            run_id: RunId::from_static("r1"),
            data_key: "curated/AAPL.csv".into(),
            data_digest: "abc".into(),
            sentiment_digest: None,
            data_rows: 1500,
            data_through: None,
            git_commit: None,
            config_digest: "cfg".into(),
            code_version: "0.1.0".into(),
            created_at: "2026-12-01T10:00:00.000Z".into(),
        }
    }

    fn value(record: &RunRecord, key: &str) -> Option<f64> {
        record
            .metrics
            .iter()
            .find(|m| m.key == key)
            .map(|m| m.value)
    }

    #[test]
    fn r2_is_one_minus_the_ratio_of_squared_errors() {
        let m = metrics(vec![horizon(5, 1.0, 0.9)], vec![horizon(5, 2.0, 1.0)]);
        let record = version_record(&m, &lineage(), None);
        approx::assert_abs_diff_eq!(value(&record, "r2_h5").expect("r2"), 0.75, epsilon = 1e-12);
        assert_eq!(value(&record, "naive_mase_h5"), Some(1.0));
        assert_eq!(value(&record, "coverage80_h5"), None, "no interval");
        assert_eq!(record.timestamp_ms, 1_796_119_200_000);
    }

    #[test]
    fn r2_needs_the_same_points() {
        let mut naive = horizon(5, 2.0, 1.0);
        naive.n = 99;
        assert_eq!(r2_vs_naive(&horizon(5, 1.0, 0.9), &naive), None);
        assert_eq!(
            r2_vs_naive(&horizon(5, 1.0, 0.9), &horizon(5, 0.0, 1.0)),
            None
        );
    }

    #[test]
    fn non_finite_metrics_are_skipped_and_named_in_a_tag() {
        let m = metrics(
            vec![horizon(1, 1.0, f64::NAN), horizon(5, f64::INFINITY, 1.0)],
            vec![],
        );
        let record = version_record(&m, &lineage(), None);
        assert!(record.metrics.iter().all(|m| m.value.is_finite()));
        assert_eq!(value(&record, "mase_h1"), None);
        let skipped = record
            .tags
            .iter()
            .find(|(k, _)| k == "stockcast.skipped_metrics")
            .map(|(_, v)| v.as_str());
        assert_eq!(skipped, Some("mase_h1=NaN, rmse_h5=inf"));
    }

    #[test]
    fn fitted_parameters_become_params_and_long_values_are_cut() {
        let fitted = serde_json::json!({
            "model": "arima", "order": [1, 1, 1], "sigma2": 0.5,
            "inner": {"phi": 0.25}, "long": "x".repeat(7000)
        });
        let record = version_record(&metrics(vec![], vec![]), &lineage(), Some(&fitted));
        let param = |k: &str| record.params.iter().find(|(p, _)| p == k).map(|(_, v)| v);
        assert_eq!(param("fitted.order").map(String::as_str), Some("[1,1,1]"));
        assert_eq!(param("fitted.inner.phi").map(String::as_str), Some("0.25"));
        assert_eq!(
            param("fitted.model"),
            None,
            "the family is the `model` param"
        );
        let long = param("fitted.long").expect("kept");
        assert!(long.chars().count() < 6000 && long.ends_with("characters)"));
    }

    #[test]
    fn a_training_history_becomes_curves_and_weights_are_not_params() {
        let fitted = serde_json::json!({
            "model": "lstm", "seed": 15, "net": {"w": [0.1, 0.2]}, "recent": [[1.0]],
            "history": [
                {"epoch": 1, "loss": 0.9, "validation_loss": 1.1},
                {"epoch": 2, "loss": 0.8, "validation_loss": 1.0}
            ]
        });
        let record = version_record(&metrics(vec![], vec![]), &lineage(), Some(&fitted));
        let curve: Vec<(&str, i64, f64)> = record
            .metrics
            .iter()
            .filter(|m| m.step > 0)
            .map(|m| (m.key.as_str(), m.step, m.value))
            .collect();
        assert_eq!(
            curve,
            vec![
                ("loss", 1, 0.9),
                ("validation_loss", 1, 1.1),
                ("loss", 2, 0.8),
                ("validation_loss", 2, 1.0)
            ]
        );
        assert!(
            record
                .params
                .iter()
                .all(|(k, _)| !k.starts_with("fitted.net")
                    && !k.starts_with("fitted.recent")
                    && !k.starts_with("fitted.history"))
        );
        assert!(
            record
                .params
                .iter()
                .any(|(k, v)| k == "fitted.seed" && v == "15")
        );
    }
}
