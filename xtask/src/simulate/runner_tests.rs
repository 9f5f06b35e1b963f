//! The runner's emulations of what the interpreter lacks (a Distributed Map:
//! tests/simulate/distributed_map.mjs; a Batch array job: batch.mjs), run on
//! small hand-written definitions whose children are Pass, Choice and Fail
//! states and a toy Lambda, and whose Batch job is a toy Node program: the
//! files a ResultWriter leaves, tolerated and intolerable failures, and an
//! array whose one child is Spot-interrupted once.
//!
//! They need the interpreter (`cargo xtask ci` installs it and sets
//! STOCKCAST_STEP_FUNCTIONS_LOCAL to its Node); without it they skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value as Json, json};

use super::check::RunnerResult;
use super::path::path;

const BUCKET: &str = "toy-data";
const EXECUTION: &str = "arn:aws:states:us-east-1:000000000000:execution:toy:test";

/// A Lambda step: answers its payload's symbol as ingested.
const INGEST: &str = "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const p=JSON.parse(s);\
     console.log(JSON.stringify({symbol:p.symbol,ingested:true}))})";

/// A training shard: says it works, then (unless SIGTERMed first) appends a
/// line to its shard file and exits 1 if it is the FAIL_INDEX child, else 0.
const TRAIN: &str = "const i=process.env.AWS_BATCH_JOB_ARRAY_INDEX;console.log('shard '+i+' working');\
     setTimeout(()=>{require('fs').appendFileSync(process.env.SHARD_DIR+'/shard-'+i,'done\\n');\
     process.exit(i===process.env.FAIL_INDEX?1:0)},400)";

struct Toy {
    node: PathBuf,
    dir: tempfile::TempDir,
}

impl Toy {
    /// A scratch folder with the bucket's folder in it; `None` (skipped)
    /// without the interpreter.
    fn new() -> Option<Toy> {
        let node = test_support::tool("STOCKCAST_STEP_FUNCTIONS_LOCAL")?;
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::create_dir_all(dir.path().join("bucket")).expect("creates the bucket");
        Some(Toy { node, dir })
    }

    fn bucket(&self) -> PathBuf {
        self.dir.path().join("bucket")
    }

    fn put(&self, key: &str, text: &str) {
        let path = self.bucket().join(key);
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("creates");
        std::fs::write(path, text).expect("writes");
    }

    fn object(&self, key: &str) -> Json {
        let path = self.bucket().join(key);
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_slice(&text).expect("JSON")
    }

    /// Runs `definition` on `input` with the toy Lambda and `batch` bindings.
    fn run(&self, definition: Json, input: Json, batch: Json) -> RunnerResult {
        let node_modules = self
            .node
            .parent()
            .and_then(Path::parent)
            .expect("node_modules");
        let job = json!({
            "interpreter": node_modules.join("aws-local-stepfunctions/build/main.node.esm.js"),
            "definition": definition,
            "input": input,
            "context": {"Execution": {"Id": EXECUTION, "Name": "test"}},
            "retry_interval_ms": 0,
            "map_label": "symbol",
            "log_dir": self.dir.path().join("logs"),
            "lambda": {"ingest": {"command": [self.node, "-e", INGEST], "env": {}}},
            "batch": batch,
            "buckets": {BUCKET: self.bucket()},
            "max_parallel": 2,
            "sns": {},
            "state_machines": {},
        });
        let job_path = self.dir.path().join("job.json");
        std::fs::write(&job_path, job.to_string()).expect("writes the job");
        let output = Command::new(&self.node)
            .arg(crate::project_root().join("tests/simulate/runner.mjs"))
            .arg(&job_path)
            .stdin(Stdio::null())
            .output()
            .expect("runs the runner");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let last = stdout.lines().last().unwrap_or_else(|| {
            panic!(
                "the runner wrote no result:\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        serde_json::from_str(last).expect("the runner's result")
    }
}

/// A Distributed Map over the symbols at `$.symbols_key`: unknown symbols
/// (BAD*) fail at a Fail state, the others go through the toy Lambda.
fn ingest_map(extra: Json) -> Json {
    let mut map = json!({
        "Type": "Map",
        "ItemReader": {
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "JSON"},
            "Parameters": {"Bucket": BUCKET, "Key.$": "$.symbols_key"},
        },
        "ItemSelector": {
            "run_id.$": "$.run_id",
            "symbol.$": "$$.Map.Item.Value",
            "position.$": "$$.Map.Item.Index",
            "started_by.$": "$$.Execution.Id",
        },
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Known",
            "States": {
                "Known": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.symbol", "StringMatches": "BAD*", "Next": "Unknown"}],
                    "Default": "IngestSymbol",
                },
                "Unknown": {"Type": "Fail", "Error": "Vendor.UnknownSymbol", "Cause": "the vendor knows no such symbol"},
                "IngestSymbol": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": "ingest", "Payload.$": "$"},
                    "OutputPath": "$.Payload",
                    "End": true,
                },
            },
        },
        "ResultPath": "$.ingest",
    });
    for (key, value) in extra.as_object().expect("fields") {
        map[key] = value.clone();
    }
    map
}

fn symbols(toy: &Toy, list: &[&str]) -> Json {
    toy.put("runs/r1/symbols.json", &json!(list).to_string());
    json!({"run_id": "r1", "symbols_key": "runs/r1/symbols.json", "concurrency": 2, "tolerated": 50})
}

fn parse(text: &Json) -> Json {
    serde_json::from_str(text.as_str().expect("a JSON string")).expect("JSON")
}

#[test]
fn distributed_map_tolerates_failed_children_and_writes_what_aws_writes() {
    let Some(toy) = Toy::new() else { return };
    let writer = json!({
        "Resource": "arn:aws:states:::s3:putObject",
        "Parameters": {"Bucket": BUCKET, "Prefix.$": "States.Format('runs/{}/ingest', $.run_id)"},
    });
    let map = ingest_map(json!({
        "MaxConcurrencyPath": "$.concurrency",
        "ToleratedFailurePercentagePath": "$.tolerated",
        "ResultWriter": writer,
        "End": true,
    }));
    let input = symbols(&toy, &["AAPL", "BAD1", "IBM", "BAD2", "MSFT"]);
    let result = toy.run(
        json!({"StartAt": "Ingest", "States": {"Ingest": map}}),
        input,
        json!({}),
    );
    assert_eq!(result.status, "SUCCEEDED", "{:?}", result.cause);
    assert_eq!(
        path(&result),
        "Ingest{AAPL: Known → IngestSymbol, BAD1: Known → Unknown(Vendor.UnknownSymbol), \
         BAD2: Known → Unknown(Vendor.UnknownSymbol), IBM: Known → IngestSymbol, MSFT: Known → IngestSymbol}"
    );

    // The state's output: the Map Run and where its manifest is.
    let ingest = &result.output["ingest"];
    let map_run_arn = ingest["MapRunArn"].as_str().expect("MapRunArn");
    let (prefix, id) = map_run_arn.rsplit_once(':').expect("an id");
    assert_eq!(
        prefix,
        "arn:aws:states:us-east-1:000000000000:mapRun:toy/Ingest"
    );
    let manifest_key = format!("runs/r1/ingest/{id}/manifest.json");
    assert_eq!(
        ingest["ResultWriterDetails"],
        json!({"Bucket": BUCKET, "Key": manifest_key})
    );
    let run = &result.map_runs[0];
    assert_eq!(
        (run.status.as_str(), run.item_count),
        ("SUCCEEDED", Some(5))
    );
    assert_eq!(run.tolerated_failure_percentage, Some(50.0));

    // The manifest lists one file per status that has executions.
    let manifest = toy.object(&manifest_key);
    assert_eq!(manifest["DestinationBucket"], BUCKET);
    assert_eq!(manifest["MapRunArn"], map_run_arn);
    assert_eq!(manifest["ResultFiles"]["PENDING"], json!([]));
    for (status, symbols) in [
        ("SUCCEEDED", vec!["AAPL", "IBM", "MSFT"]),
        ("FAILED", vec!["BAD1", "BAD2"]),
    ] {
        let files = manifest["ResultFiles"][status].as_array().expect("files");
        assert_eq!(files.len(), 1, "{status}: {files:?}");
        let key = files[0]["Key"].as_str().expect("Key");
        assert_eq!(key, format!("runs/r1/ingest/{id}/{status}_0.json"));
        let size = std::fs::metadata(toy.bucket().join(key))
            .expect("exists")
            .len();
        assert_eq!(files[0]["Size"], size);
        let records = toy.object(key);
        let records = records.as_array().expect("an array");
        let named: Vec<Json> = records
            .iter()
            .map(|r| parse(&r["Input"])["symbol"].clone())
            .collect();
        assert_eq!(named, json!(symbols).as_array().expect("symbols").clone());
        for record in records {
            assert_eq!(record["Status"], status);
            let arn = record["ExecutionArn"].as_str().expect("ExecutionArn");
            assert!(
                arn.starts_with("arn:aws:states:us-east-1:000000000000:execution:toy/Ingest:"),
                "{arn}"
            );
            assert!(
                arn.ends_with(record["Name"].as_str().expect("Name")),
                "{arn}"
            );
            let input = parse(&record["Input"]);
            assert_eq!(input["run_id"], "r1");
            assert_eq!(
                input["started_by"], EXECUTION,
                "$$ in ItemSelector is the parent's"
            );
            if status == "SUCCEEDED" {
                assert_eq!(
                    parse(&record["Output"]),
                    json!({"symbol": input["symbol"], "ingested": true})
                );
            } else {
                assert_eq!(record["Error"], "Vendor.UnknownSymbol");
                assert_eq!(record["Cause"], "the vendor knows no such symbol");
            }
        }
    }

    // What every scenario checks of a Map Run: the export holds its children.
    assert_eq!(run.problems(&toy.bucket()), Vec::<String>::new());
    toy.put(&format!("runs/r1/ingest/{id}/FAILED_0.json"), "[]");
    let problems = run.problems(&toy.bucket());
    assert!(
        problems.len() == 1 && problems[0].contains("the FAILED results hold []"),
        "{problems:?}"
    );
}

#[test]
fn distributed_map_fails_once_the_failures_exceed_the_tolerated_count() {
    let Some(toy) = Toy::new() else { return };
    let map = ingest_map(json!({
        "MaxConcurrency": 1,
        "ToleratedFailureCount": 1,
        "ResultWriter": {
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": BUCKET, "Prefix": "runs/r1/ingest"},
        },
        "Catch": [{"ErrorEquals": ["States.ExceedToleratedFailureThreshold"], "ResultPath": "$.error", "Next": "Tolerance"}],
        "Next": "Done",
    }));
    let definition = json!({"StartAt": "Ingest", "States": {
        "Ingest": map,
        "Tolerance": {"Type": "Pass", "End": true},
        "Done": {"Type": "Pass", "End": true},
    }});
    let input = symbols(&toy, &["AAPL", "BAD1", "IBM", "BAD2", "MSFT", "ORCL"]);
    let result = toy.run(definition, input, json!({}));
    assert_eq!(result.status, "SUCCEEDED", "{:?}", result.cause);
    // One child at a time: the second failure stops the Map Run before MSFT.
    assert_eq!(
        path(&result),
        "Ingest{AAPL: Known → IngestSymbol, BAD1: Known → Unknown(Vendor.UnknownSymbol), \
         BAD2: Known → Unknown(Vendor.UnknownSymbol), IBM: Known → IngestSymbol}\
         (States.ExceedToleratedFailureThreshold→caught) → Tolerance"
    );
    let error = &result.output["error"];
    assert_eq!(error["Error"], "States.ExceedToleratedFailureThreshold");
    let cause = error["Cause"].as_str().expect("a cause");
    assert!(
        cause.contains("2 of 6 items failed") && cause.contains("ToleratedFailureCount 1"),
        "{cause}"
    );
    assert_eq!(result.map_runs[0].status, "FAILED");
    assert_eq!(
        result.map_runs[0].problems(&toy.bucket()),
        Vec::<String>::new()
    );
    assert!(
        !toy.bucket().join("runs/r1/ingest").exists(),
        "a failed Map Run writes no results"
    );
}

#[test]
fn distributed_map_batches_csv_rows_and_without_a_writer_returns_the_outputs() {
    let Some(toy) = Toy::new() else { return };
    toy.put(
        "universe.csv",
        "symbol,name\nAAPL,\"Apple, Inc.\"\nIBM,\"International \"\"Big\"\" Machines\"\nMSFT,Microsoft\n",
    );
    let definition = json!({"StartAt": "Batches", "States": {"Batches": {
        "Type": "Map",
        "ItemReader": {
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
            "Parameters": {"Bucket": BUCKET, "Key": "universe.csv"},
        },
        "ItemBatcher": {"MaxItemsPerBatchPath": "$.per_batch", "BatchInput": {"run_id.$": "$.run_id"}},
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Echo",
            "States": {"Echo": {"Type": "Pass", "End": true}},
        },
        "End": true,
    }}});
    let result = toy.run(
        definition,
        json!({"run_id": "r1", "per_batch": 2}),
        json!({}),
    );
    assert_eq!(result.status, "SUCCEEDED", "{:?}", result.cause);
    let batch_input = json!({"run_id": "r1"});
    assert_eq!(
        result.output,
        json!([
            {"BatchInput": batch_input, "Items": [
                {"symbol": "AAPL", "name": "Apple, Inc."},
                {"symbol": "IBM", "name": "International \"Big\" Machines"},
            ]},
            {"BatchInput": batch_input, "Items": [{"symbol": "MSFT", "name": "Microsoft"}]},
        ])
    );
    assert_eq!(path(&result), "Batches{0: Echo, 1: Echo}");
}

#[test]
fn distributed_map_over_items_path_fails_on_any_failure_by_default() {
    let Some(toy) = Toy::new() else { return };
    let mut map = ingest_map(json!({"ItemsPath": "$.symbols", "End": true}));
    map.as_object_mut().expect("a state").remove("ItemReader");
    let definition = json!({"StartAt": "Ingest", "States": {"Ingest": map}});
    let input = json!({"run_id": "r1", "symbols": ["AAPL", "BAD1", "IBM"]});
    let result = toy.run(definition, input, json!({}));
    assert_eq!(result.status, "FAILED");
    assert_eq!(
        result.error.as_deref(),
        Some("States.ExceedToleratedFailureThreshold")
    );
    let cause = result.cause.as_deref().unwrap_or_default();
    assert!(cause.contains("the default (no failure)"), "{cause}");
}

/// A training job definition whose shards are the toy program.
fn training_job(toy: &Toy, interrupt: Json, fail_index: &str) -> Json {
    json!({"toy-train": {
        "command": [toy.node, "-e", TRAIN],
        "env": {"FAIL_INDEX": fail_index},
        "attempts": 3,
        "evaluate_on_exit": [
            {"OnStatusReason": "Your Spot Task was interrupted.*", "Action": "RETRY"},
            {"OnExitCode": "*", "Action": "EXIT"},
        ],
        "platform": "FARGATE",
        "max_parallel": 2,
        "interrupt": interrupt,
    }})
}

fn train_array() -> Json {
    json!({"StartAt": "Train", "States": {
        "Train": {
            "Type": "Task",
            "Resource": "arn:aws:states:::batch:submitJob.sync",
            "TimeoutSeconds": 600,
            "Parameters": {
                "JobName": "toy",
                "JobQueue": "toy-queue",
                "JobDefinition": "toy-train",
                "ArrayProperties": {"Size.$": "$.shards"},
                "ContainerOverrides": {"Environment": [{"Name": "SHARD_DIR", "Value.$": "$.dir"}]},
            },
            "ResultSelector": {
                "status.$": "$.Status",
                "size.$": "$.ArrayProperties.Size",
                "summary.$": "$.ArrayProperties.StatusSummary",
            },
            "ResultPath": "$.train",
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}],
            "End": true,
        },
        "Failed": {"Type": "Pass", "End": true},
    }})
}

#[test]
fn array_job_retries_the_one_interrupted_child_alone() {
    let Some(toy) = Toy::new() else { return };
    let interrupt = json!({"attempts": [1], "after_output": "working", "array_index": 1});
    let input = json!({"shards": 3, "dir": toy.dir.path()});
    let result = toy.run(train_array(), input, training_job(&toy, interrupt, "none"));
    assert_eq!(result.status, "SUCCEEDED", "{:?}", result.cause);
    assert_eq!(
        path(&result),
        "Train[child 1: attempt 1: Spot interruption, exit 143 -> RETRY; attempt 2: exit 0]"
    );
    let train = &result.output["train"];
    assert_eq!(
        (train["status"].as_str(), train["size"].as_u64()),
        (Some("SUCCEEDED"), Some(3))
    );
    assert_eq!(train["summary"]["SUCCEEDED"], 3);
    assert_eq!(train["summary"]["FAILED"], 0);
    let (parent, children) = result.batch_jobs.split_first().expect("the parent");
    assert_eq!(
        parent["Attempts"],
        json!([]),
        "an array parent has no attempts"
    );
    let attempts: Vec<usize> = children
        .iter()
        .map(|c| c["Attempts"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(attempts, [1, 2, 1], "only child 1 ran again");
    let ids: Vec<&str> = children
        .iter()
        .filter_map(|c| c["JobId"].as_str())
        .collect();
    let parent_id = parent["JobId"].as_str().expect("JobId");
    assert_eq!(ids, [0, 1, 2].map(|i| format!("{parent_id}:{i}")));
    let reclaimed = &children[1]["Attempts"][0];
    assert_eq!(reclaimed["StatusReason"], "Your Spot Task was interrupted.");
    assert_eq!(reclaimed["Container"]["ExitCode"], 143);
    for shard in 0..3 {
        let written = std::fs::read_to_string(toy.dir.path().join(format!("shard-{shard}")))
            .expect("the shard ran");
        assert_eq!(written, "done\n", "shard {shard} finished exactly once");
    }
}

#[test]
fn array_job_fails_when_a_child_fails_and_refuses_a_size_under_two() {
    let Some(toy) = Toy::new() else { return };
    let never = json!({"attempts": [], "after_output": "working", "array_index": null});
    let input = json!({"shards": 3, "dir": toy.dir.path()});
    let result = toy.run(train_array(), input, training_job(&toy, never.clone(), "2"));
    assert_eq!(result.status, "SUCCEEDED", "{:?}", result.cause);
    assert_eq!(
        path(&result),
        "Train[child 2: attempt 1: exit 1 -> EXIT](States.TaskFailed→caught) → Failed"
    );
    let error = &result.output["error"];
    assert_eq!(error["Error"], "States.TaskFailed");
    let job: Json = serde_json::from_str(error["Cause"].as_str().expect("a cause"))
        .expect("the job as the cause");
    assert_eq!(job["Status"], "FAILED");
    assert_eq!(job["ArrayProperties"]["StatusSummary"]["SUCCEEDED"], 2);
    assert_eq!(job["ArrayProperties"]["StatusSummary"]["FAILED"], 1);

    let input = json!({"shards": 1, "dir": toy.dir.path()});
    let result = toy.run(train_array(), input, training_job(&toy, never, "none"));
    assert_eq!(result.output["error"]["Error"], "Batch.ClientException");
    let cause = result.output["error"]["Cause"].as_str().unwrap_or_default();
    assert!(cause.contains("from 2 to 10000"), "{cause}");
}
