//! The plan step, the first state of both workflows: it turns whatever an
//! execution was started with (the full input `cargo xtask run` builds, a
//! schedule's `{"run_id": …}`, the console's `{}` or its default
//! `{"Comment": "Insert your JSON here"}`) into a [`RunPlan`] with every
//! default filled in from the environment, and writes the run's symbols to
//! the store, where the ingest Map reads them.
//!
//! A field the input gives overrides its default; a field it does not know
//! is ignored; a known field with a bad value (a symbol with a slash, a
//! model that does not exist) is `Step.InvalidInput`, naming the field.

use serde_json::Value;

use crate::ids::{RunId, Symbol};
use crate::layout;
use crate::steps::{ErrorName, PlanInput, RunDefaults, RunPlan, RunRequest, StepError};
use crate::store::Store;
use crate::universe;

fn invalid(message: impl Into<String>) -> StepError {
    StepError::new(ErrorName::InvalidInput, message)
}

/// Reads the overrides an execution's input gives; anything else in it is
/// ignored.
pub fn request(input: &Value) -> Result<RunRequest, StepError> {
    let object = match input {
        Value::Object(_) => input.clone(),
        Value::Null => Value::Object(Default::default()),
        other => {
            return Err(invalid(format!(
                "the execution input should be a JSON object (or {{}}), not {other}"
            )));
        }
    };
    serde_path_to_error::deserialize(object)
        .map_err(|e| invalid(format!("execution input: {}: {}", e.path(), e.inner())))
}

/// Plans a run: fills the defaults, reads the universe (unless the input
/// lists symbols), writes `runs/<run_id>/symbols.json`.
pub async fn plan(
    store: &Store,
    defaults: &RunDefaults,
    input: &PlanInput,
) -> Result<RunPlan, StepError> {
    let mut request = request(&input.request)?;
    let symbols = match request.symbols.take() {
        Some(symbols) => symbols,
        None => read_universe(store, &defaults.universe_key).await?,
    };
    let planned = fill(defaults, &input.execution_name, request, &symbols)?;
    store
        .put_derived(&planned.symbols_key, crate::registry::pretty_json(&symbols))
        .await?;
    Ok(planned)
}

/// The plan of a run of `symbols` (the request's, or the universe's), every
/// field the request does not give taken from the defaults: what [`plan`]
/// returns, without the store (the cost estimate plans runs this way).
pub fn fill(
    defaults: &RunDefaults,
    execution_name: &str,
    request: RunRequest,
    symbols: &[Symbol],
) -> Result<RunPlan, StepError> {
    let run_id = match request.run_id {
        Some(id) => id,
        None => RunId::new(execution_name).map_err(|e| {
            invalid(format!(
                "the execution's name cannot be the run id ({e}); give a run_id"
            ))
        })?,
    };
    if symbols.is_empty() {
        return Err(invalid("symbols: the run lists no symbol"));
    }
    Ok(RunPlan {
        symbols_key: layout::run_symbols(&run_id),
        run_id,
        env: defaults.env.clone(),
        models: request.models.unwrap_or_else(|| defaults.models.clone()),
        horizons: request
            .horizons
            .unwrap_or_else(|| defaults.horizons.clone()),
        source: request.source.unwrap_or(defaults.source),
        sentiment: request.sentiment.unwrap_or(defaults.sentiment),
        symbol_count: symbols.len(),
        ingest_concurrency: defaults.ingest_concurrency,
        tolerated_failure_percent: defaults.tolerated_failure_percent,
        shard_size: universe::shard_size(symbols.len(), defaults.max_parallel_jobs),
    })
}

/// The environment's universe, as deploy uploaded it.
async fn read_universe(store: &Store, key: &str) -> Result<Vec<Symbol>, StepError> {
    let object = store.get(key).await?.ok_or_else(|| {
        invalid(format!(
            "the universe {key} is not in the data bucket: `cargo xtask deploy` uploads it"
        ))
    })?;
    let text = String::from_utf8_lossy(&object.bytes);
    universe::parse(&text).map_err(|e| invalid(format!("{key}: {e}")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::models::ModelKind;
    use crate::steps::{SentimentSource, Source};

    fn defaults() -> RunDefaults {
        RunDefaults {
            env: "dev".into(),
            universe_key: layout::universe("dev"),
            models: ModelKind::ALL.to_vec(),
            horizons: vec![1, 5, 21],
            source: Source::Yahoo,
            sentiment: Some(SentimentSource::AlphaVantage),
            ingest_concurrency: 1,
            tolerated_failure_percent: 10.0,
            max_parallel_jobs: 4,
        }
    }

    async fn store_with_universe(text: &str) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::local(dir.path()).expect("store");
        store
            .create(&layout::universe("dev"), text.to_owned())
            .await
            .expect("universe");
        (dir, store)
    }

    fn started_with(request: Value) -> PlanInput {
        PlanInput {
            execution_name: "c0ffee-1234".into(),
            request,
        }
    }

    /// `{}` and the console's default input run the environment's defaults,
    /// with the execution's name as the run id.
    #[tokio::test]
    async fn an_empty_or_console_input_runs_the_defaults() {
        let (_dir, store) = store_with_universe("AAPL\nMSFT\n^GSPC\n").await;
        let empty = plan(&store, &defaults(), &started_with(json!({})))
            .await
            .expect("planned");
        let console = plan(
            &store,
            &defaults(),
            &started_with(json!({"Comment": "Insert your JSON here"})),
        )
        .await
        .expect("planned");
        assert_eq!(empty, console);
        assert_eq!(empty.run_id.as_str(), "c0ffee-1234");
        assert_eq!(empty.models, ModelKind::ALL.to_vec());
        assert_eq!(empty.sentiment, Some(SentimentSource::AlphaVantage));
        assert_eq!(empty.symbol_count, 3);
        assert_eq!(empty.shard_size, 1, "3 symbols over 4 parallel jobs");
        let written = store
            .get(&empty.symbols_key)
            .await
            .expect("read")
            .expect("written");
        let symbols: Vec<Symbol> = serde_json::from_slice(&written.bytes).expect("json array");
        assert_eq!(symbols.len(), 3);
    }

    /// Every field given overrides its default; `sentiment: null` is "none".
    #[tokio::test]
    async fn given_fields_override_the_defaults() {
        let (_dir, store) = store_with_universe("AAPL\n").await;
        let planned = plan(
            &store,
            &defaults(),
            &started_with(json!({
                "run_id": "r-1", "symbols": ["IBM", "KO"], "models": ["naive"],
                "horizons": [5], "source": "sample", "sentiment": null, "env": "ignored"
            })),
        )
        .await
        .expect("planned");
        assert_eq!(planned.run_id.as_str(), "r-1");
        assert_eq!(planned.models, vec![ModelKind::Naive]);
        assert_eq!(planned.horizons, vec![5]);
        assert_eq!(planned.source, Source::Sample);
        assert_eq!(planned.sentiment, None);
        assert_eq!(planned.symbol_count, 2);
        assert_eq!(planned.env, "dev");
    }

    #[tokio::test]
    async fn a_bad_field_is_invalid_input_naming_it() {
        let (_dir, store) = store_with_universe("AAPL\n").await;
        for (request, expected) in [
            (json!({"symbols": ["../etc"]}), "symbols[0]"),
            (json!({"models": ["oracle"]}), "models[0]"),
            (json!("AAPL"), "should be a JSON object"),
            (json!({"symbols": []}), "no symbol"),
        ] {
            let error = plan(&store, &defaults(), &started_with(request))
                .await
                .expect_err("refused");
            assert_eq!(error.name, ErrorName::InvalidInput);
            assert!(error.message.contains(expected), "{}", error.message);
        }
    }

    #[tokio::test]
    async fn a_missing_or_bad_universe_says_what_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::local(dir.path()).expect("store");
        let error = plan(&store, &defaults(), &started_with(json!({})))
            .await
            .expect_err("no universe");
        assert!(
            error.message.contains("cargo xtask deploy"),
            "{}",
            error.message
        );
        let (_dir, store) = store_with_universe("AAPL\nAAPL\n").await;
        let error = plan(&store, &defaults(), &started_with(json!({})))
            .await
            .expect_err("duplicate");
        assert!(
            error.message.contains("line 2: AAPL is already on line 1"),
            "{}",
            error.message
        );
    }
}
