//! What a Distributed Map leaves in the bucket: its ResultWriter manifest
//! and result files, read back into the symbols whose child execution
//! failed.
//!
//! The format is AWS's ("Exporting Map Run results", Step Functions
//! developer guide): `<prefix>/<map run id>/manifest.json` lists the result
//! files by status, and each `FAILED_n.json` is an array of child
//! executions with their `Input` (the child's input, as a JSON string),
//! `Error` and `Cause`. Timed-out and aborted children are written there
//! too. Only the failed files are read: the others name symbols that went on.

use serde::Deserialize;

use crate::ids::Symbol;
use crate::steps::{ErrorName, IngestFailure, StepError};
use crate::store::Store;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Manifest {
    result_files: ResultFiles,
}

#[derive(Debug, Default, Deserialize)]
struct ResultFiles {
    #[serde(rename = "FAILED", default)]
    failed: Vec<ResultFile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResultFile {
    key: String,
}

/// One child execution as a result file records it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Child {
    input: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    cause: Option<String>,
}

/// What the ingest Map gave each child.
#[derive(Debug, Deserialize)]
struct ChildInput {
    symbol: Symbol,
}

fn invalid(key: &str, what: &str, e: impl std::fmt::Display) -> StepError {
    StepError::new(
        ErrorName::RegistryInvalid,
        format!("{key} is not {what}: {e}"),
    )
}

async fn read<T: serde::de::DeserializeOwned>(
    store: &Store,
    key: &str,
    what: &str,
) -> Result<T, StepError> {
    let object = store.get(key).await?.ok_or_else(|| {
        StepError::new(
            ErrorName::RegistryInvalid,
            format!("{key} does not exist: the Map run wrote no {what}"),
        )
    })?;
    serde_json::from_slice(&object.bytes).map_err(|e| invalid(key, what, e))
}

/// The symbols whose ingest child failed, with the error it failed with,
/// from the Map run's manifest at `manifest_key`.
pub async fn failed_symbols(
    store: &Store,
    manifest_key: &str,
) -> Result<Vec<IngestFailure>, StepError> {
    let manifest: Manifest = read(store, manifest_key, "a Map run manifest").await?;
    let mut failures = Vec::new();
    for file in &manifest.result_files.failed {
        let children: Vec<Child> = read(store, &file.key, "a Map run result file").await?;
        for child in children {
            let input: ChildInput = serde_json::from_str(&child.input)
                .map_err(|e| invalid(&file.key, "the input of an ingest child", e))?;
            failures.push(IngestFailure {
                symbol: input.symbol,
                error: child.error.unwrap_or_else(|| "States.Failed".into()),
                cause: child.cause.unwrap_or_default(),
            });
        }
    }
    Ok(failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest and a failed file in the shape AWS documents.
    #[tokio::test]
    async fn reads_the_failed_children_of_a_map_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::local(dir.path()).expect("store");
        let prefix = "runs/r1/ingest/0f0e";
        let manifest = serde_json::json!({
            "DestinationBucket": "stockcast-dev-data",
            "MapRunArn": "arn:aws:states:us-east-1:123456789012:mapRun:stockcast-dev-training/Ingest:0f0e",
            "ResultFiles": {
                "FAILED": [{"Key": format!("{prefix}/FAILED_0.json"), "Size": 900}],
                "PENDING": [],
                "SUCCEEDED": [{"Key": format!("{prefix}/SUCCEEDED_0.json"), "Size": 4000}]
            }
        });
        let failed = serde_json::json!([{
            "ExecutionArn": "arn:aws:states:us-east-1:123456789012:execution:stockcast-dev-training/Ingest:1",
            "Input": "{\"run_id\":\"r1\",\"symbol\":\"XYZQ\",\"source\":\"yahoo\",\"sentiment\":null}",
            "InputDetails": {"Included": true},
            "Name": "1",
            "Status": "FAILED",
            "Error": "Vendor.UnknownSymbol",
            "Cause": "yahoo has no symbol XYZQ",
            "StartDate": "2026-12-02T09:00:01.000Z",
            "StopDate": "2026-12-02T09:00:02.000Z"
        }]);
        store
            .create(&format!("{prefix}/manifest.json"), manifest.to_string())
            .await
            .expect("write");
        store
            .create(&format!("{prefix}/FAILED_0.json"), failed.to_string())
            .await
            .expect("write");
        let found = failed_symbols(&store, &format!("{prefix}/manifest.json"))
            .await
            .expect("read");
        assert_eq!(
            found,
            vec![IngestFailure {
                symbol: Symbol::from_static("XYZQ"),
                error: "Vendor.UnknownSymbol".into(),
                cause: "yahoo has no symbol XYZQ".into(),
            }]
        );
        let missing = failed_symbols(&store, "runs/r1/ingest/none/manifest.json")
            .await
            .expect_err("no manifest");
        assert_eq!(missing.name, ErrorName::RegistryInvalid);
    }
}
