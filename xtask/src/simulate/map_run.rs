//! A Distributed Map's run as the runner emulates it
//! (tests/simulate/distributed_map.mjs): its child executions, and what its
//! ResultWriter must have left in the store for them.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value as Json;

use super::check::Event;

#[derive(Debug, Clone, Deserialize)]
pub struct MapRun {
    pub state: String,
    pub map_run_arn: String,
    /// SUCCEEDED, or FAILED when the failures exceeded the tolerance.
    pub status: String,
    #[serde(default)]
    pub cause: Option<String>,
    /// Items read (before any batching); absent when reading failed.
    #[serde(default)]
    pub item_count: Option<usize>,
    #[serde(default)]
    pub tolerated_failure_percentage: Option<f64>,
    #[serde(default)]
    pub tolerated_failure_count: Option<u64>,
    /// Where the ResultWriter put the manifest.
    #[serde(default)]
    pub result_writer: Option<ResultWriterDetails>,
    /// The child executions that ran, in item order.
    pub children: Vec<ChildExecution>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ResultWriterDetails {
    pub bucket: String,
    pub key: String,
}

/// One child execution of a Distributed Map: its item (or batch) and how it ended.
#[derive(Debug, Clone, Deserialize)]
pub struct ChildExecution {
    pub index: usize,
    /// The input's map label field, else the index.
    pub label: String,
    pub input: Json,
    pub status: String,
    #[serde(default)]
    pub error: Option<String>,
    /// Its own path events.
    pub events: Vec<Event>,
}

impl ChildExecution {
    /// The items it processed: a batch's, or one.
    fn items(&self) -> usize {
        self.input
            .get("Items")
            .and_then(Json::as_array)
            .map_or(1, Vec::len)
    }
}

impl MapRun {
    /// Whether the failed items are within the tolerance (AWS's rule: failed
    /// over all items, exceeded when strictly more; neither setting: none).
    fn within_tolerance(&self) -> bool {
        let failed: usize = self
            .children
            .iter()
            .filter(|c| c.status != "SUCCEEDED")
            .map(ChildExecution::items)
            .sum();
        let total = self.item_count.unwrap_or(0);
        match (
            self.tolerated_failure_percentage,
            self.tolerated_failure_count,
        ) {
            (None, None) => failed == 0,
            (percentage, count) => {
                percentage.is_none_or(|pct| (failed * 100) as f64 <= pct * total as f64)
                    && count.is_none_or(|count| failed as u64 <= count)
            }
        }
    }

    /// What is wrong with the run's record and, for a run that succeeded
    /// with a ResultWriter, with its export in `store` (the data bucket):
    /// every child is in the file of its status, with its input and error.
    pub fn problems(&self, store: &Path) -> Vec<String> {
        let mut p = Vec::new();
        let name = &self.state;
        let indexes: Vec<usize> = self.children.iter().map(|c| c.index).collect();
        if !indexes.windows(2).all(|w| w[0] < w[1]) {
            p.push(format!("{name}: children out of item order: {indexes:?}"));
        }
        if self.status == "FAILED" && self.cause.is_none() {
            p.push(format!("{name}: the Map Run failed without a cause"));
        }
        if (self.status == "SUCCEEDED") != self.within_tolerance() {
            p.push(format!(
                "{name}: the Map Run {} with {} of {:?} items' children failed (tolerated: {:?} %, {:?})",
                self.status,
                self.children.iter().filter(|c| c.status != "SUCCEEDED").count(),
                self.item_count,
                self.tolerated_failure_percentage,
                self.tolerated_failure_count
            ));
        }
        let (Some(writer), "SUCCEEDED") = (&self.result_writer, self.status.as_str()) else {
            return p;
        };
        let manifest = match read_json(&store.join(&writer.key)) {
            Ok(manifest) => manifest,
            Err(e) => return vec![format!("{name}: manifest {}: {e}", writer.key)],
        };
        if manifest["MapRunArn"] != self.map_run_arn.as_str()
            || manifest["DestinationBucket"] != writer.bucket.as_str()
        {
            p.push(format!(
                "{name}: the manifest names another run: {manifest}"
            ));
        }
        for status in ["SUCCEEDED", "FAILED"] {
            p.extend(self.result_file_problems(store, &manifest, status));
        }
        p
    }

    /// The children of `status` against the records of its result files.
    fn result_file_problems(&self, store: &Path, manifest: &Json, status: &str) -> Vec<String> {
        let mut records = Vec::new();
        for file in manifest["ResultFiles"][status]
            .as_array()
            .into_iter()
            .flatten()
        {
            let key = file["Key"].as_str().unwrap_or_default();
            match read_json(&store.join(key)) {
                Ok(Json::Array(items)) => records.extend(items),
                Ok(other) => return vec![format!("{key} is not an array: {other}")],
                Err(e) => return vec![format!("{key}: {e}")],
            }
        }
        let expected: Vec<&ChildExecution> = self
            .children
            .iter()
            .filter(|c| (c.status == "SUCCEEDED") == (status == "SUCCEEDED"))
            .collect();
        let recorded: Vec<(Json, Json)> = records
            .iter()
            .map(|r| {
                let input = r["Input"]
                    .as_str()
                    .and_then(|i| serde_json::from_str(i).ok());
                (input.unwrap_or(Json::Null), r["Error"].clone())
            })
            .collect();
        let wanted: Vec<(Json, Json)> = expected
            .iter()
            .map(|c| {
                (
                    c.input.clone(),
                    c.error.clone().map_or(Json::Null, Json::from),
                )
            })
            .collect();
        if recorded == wanted {
            Vec::new()
        } else {
            vec![format!(
                "{}: the {status} results hold {recorded:?}, the children were {wanted:?}",
                self.state
            )]
        }
    }
}

fn read_json(path: &Path) -> Result<Json, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}
