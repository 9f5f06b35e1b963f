use serde_json::json;

use super::*;
use crate::ids::Symbol;
use crate::infra::cost::run::sized;
use crate::ingest::{VendorRequest, vendor_requests};
use crate::steps::{IngestInput, RunDefaults, Source};

fn walked(definition: &Json, run: &Run) -> PathCost {
    longest_success_path(definition, run)
        .expect("walks")
        .expect("has a successful path")
}

fn seed() -> Vec<Symbol> {
    ["AAPL", "^GSPC"]
        .into_iter()
        .map(|s| Symbol::new(s).expect("valid"))
        .collect()
}

#[test]
fn the_longest_successful_path_counts_inline_map_bodies_per_item() {
    let definition = json!({
        "StartAt": "Fetch",
        "States": {
            "Fetch": {"Type": "Map", "ItemsPath": "$.symbols", "Next": "Decide",
                "ItemProcessor": {"StartAt": "One", "States": {
                    "One": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true}}}},
            "Decide": {"Type": "Choice",
                "Choices": [{"Variable": "$.x", "BooleanEquals": true, "Next": "Long"}],
                "Default": "Done"},
            "Long": {"Type": "Pass", "Next": "Longer"},
            "Longer": {"Type": "Pass", "Next": "Done",
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Broken"}]},
            "Broken": {"Type": "Fail"},
            "Done": {"Type": "Succeed"}
        }
    });
    let run = Run::unplanned(json!({"symbols": ["A", "B", "C"]}), &[]);
    let path = walked(&definition, &run);
    // $.x is unknown: both ways, the longer priced.
    // Fetch (1) + 3 x One (3) + Decide + Long + Longer + Done (4) = 8.
    assert_eq!(path.transitions, 8.0);
    assert_eq!(path.tasks.len(), 1);
    assert_eq!(path.tasks[0].times, 3.0);
    assert!(path.children.is_empty() && path.s3.is_empty());
    // Where the state decides it, the Choice goes one way: 6.
    let run = Run::unplanned(json!({"symbols": ["A", "B", "C"], "x": false}), &[]);
    assert_eq!(walked(&definition, &run).transitions, 6.0);
}

/// A plan, a Distributed Map reading the plan's list and writing its
/// results, and an array job sized by the state: the workflows' shape.
fn planned_definition() -> Json {
    json!({"StartAt": "Plan", "States": {
        "Plan": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "${IngestFunctionArn}",
                "Payload": {"action": "plan", "execution_name.$": "$$.Execution.Name", "request.$": "$"}},
            "OutputPath": "$.Payload", "Next": "Ingest"},
        "Ingest": {"Type": "Map",
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
                "ReaderConfig": {"InputType": "JSON"},
                "Parameters": {"Bucket": "${DataBucket}", "Key.$": "$.symbols_key"}},
            "ItemSelector": {"run_id.$": "$.run_id", "symbol.$": "$$.Map.Item.Value",
                "source.$": "$.source", "sentiment.$": "$.sentiment"},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "IngestSymbol", "States": {"IngestSymbol": {"Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": "${IngestFunctionArn}", "Payload.$": "$"},
                    "End": true}}},
            "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
                "Parameters": {"Bucket": "${DataBucket}", "Prefix.$": "States.Format('runs/{}/ingest', $.run_id)"}},
            "ResultPath": "$.ingest", "Next": "TrainShards"},
        "TrainShards": {"Type": "Choice",
            "Choices": [{"Variable": "$.quality.shards", "NumericGreaterThan": 1, "Next": "TrainArray"}],
            "Default": "TrainOne"},
        "TrainArray": {"Type": "Task", "Resource": "arn:aws:states:::batch:submitJob.sync",
            "Parameters": {"JobQueue": "${JobQueueArn}", "JobDefinition": "${JobDefinitionArn}",
                "ArrayProperties": {"Size.$": "$.quality.shards"}},
            "Next": "Done"},
        "TrainOne": {"Type": "Task", "Resource": "arn:aws:states:::batch:submitJob.sync",
            "Parameters": {"JobQueue": "${JobQueueArn}", "JobDefinition": "${JobDefinitionArn}"},
            "Next": "Done"},
        "Done": {"Type": "Succeed"}}})
}

fn defaults(max_parallel_jobs: usize) -> RunDefaults {
    RunDefaults {
        env: "dev".into(),
        universe_key: "universes/dev.txt".into(),
        models: vec![crate::models::ModelKind::Naive],
        horizons: vec![1, 5, 21],
        source: Source::Yahoo,
        sentiment: Some(crate::steps::SentimentSource::AlphaVantage),
        ingest_concurrency: 1,
        tolerated_failure_percent: 10.0,
        max_parallel_jobs,
    }
}

#[test]
fn a_distributed_map_runs_a_child_execution_per_symbol_of_the_plan() {
    for n in [1, 8, 500] {
        let universe = sized(&seed(), n);
        let run = Run::planned(json!({"run_id": "r-1"}), &defaults(4), &universe).expect("plans");
        let path = walked(&planned_definition(), &run);
        // Plan, Ingest, TrainShards, a Train state, Done: the children's
        // transitions are theirs.
        assert_eq!(path.transitions, 5.0, "{n} symbols");
        assert_eq!(
            path.children,
            [ChildRuns {
                map: "Ingest".into(),
                executions: n as f64,
                // One to start, IngestSymbol.
                transitions_each: 2.0,
            }]
        );
        let ingest = &path.tasks[1];
        assert_eq!(
            (ingest.task.state.as_str(), ingest.times),
            ("IngestSymbol", n as f64)
        );
        let s3: Vec<(S3Kind, f64)> = path.s3.iter().map(|s| (s.kind, s.requests)).collect();
        assert_eq!(s3, [(S3Kind::Get, 1.0), (S3Kind::Put, 2.0)]);
        assert_eq!(path.s3[0].bucket.text.as_deref(), Some("${DataBucket}"));
        // The Choice follows the shards: ceil(n / ceil(n / 4)) children.
        let train = &path.tasks[2];
        let shards = n.div_ceil(n.div_ceil(4));
        if shards > 1 {
            assert_eq!(
                (train.task.state.as_str(), train.array_size),
                ("TrainArray", Some(shards))
            );
        } else {
            assert_eq!(
                (train.task.state.as_str(), train.array_size),
                ("TrainOne", None)
            );
        }
        // Each child's payload is the plan's run, source and sentiment and its symbol.
        let payloads: Vec<IngestInput> = (ingest.payloads.iter())
            .map(|p| serde_json::from_value(p.clone()).expect("an ingest input"))
            .collect();
        assert_eq!(payloads.len(), n);
        assert_eq!(payloads[0].run_id.as_str(), "r-1");
        assert_eq!(payloads[0].symbol, universe[0]);
        let news = payloads
            .iter()
            .flat_map(vendor_requests)
            .filter(|r| matches!(r, VendorRequest::NewsSentiment(_)))
            .count();
        // ^GSPC has no news; every other symbol has.
        assert_eq!(news, n - usize::from(n >= 2));
    }
}

#[test]
fn what_the_estimate_cannot_follow_is_an_error() {
    let run = Run::planned(json!({}), &defaults(4), &seed()).expect("plans");
    let mut definition = planned_definition();
    definition["States"]["Ingest"]["ItemReader"]["Parameters"]["Key.$"] = json!("$.run_id");
    let err = longest_success_path(&definition, &run).expect_err("an unknown object");
    assert!(
        err.contains("its ItemReader reads scheduled-run, which the run is not known to write (it writes runs/scheduled-run/passed.json, runs/scheduled-run/symbols.json)"),
        "{err}"
    );
    let mut definition = planned_definition();
    definition["States"]["Ingest"]["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] =
        json!("EXPRESS");
    let err = longest_success_path(&definition, &run).expect_err("express children");
    assert!(
        err.contains("STANDARD child executions only, not EXPRESS"),
        "{err}"
    );
    let mut definition = planned_definition();
    definition["States"]["TrainArray"]["Parameters"]["ArrayProperties"]["Size.$"] =
        json!("$.quality.nothing");
    definition["States"]["TrainShards"]["Default"] = json!("TrainArray");
    let run = Run::planned(json!({}), &defaults(1), &seed()).expect("plans");
    let err = longest_success_path(&definition, &run).expect_err("no size");
    assert!(
        err.contains("state TrainArray: ArrayProperties.Size is not a number"),
        "{err}"
    );
}

#[test]
fn a_map_items_payloads_are_built_by_its_item_selector() {
    let mut definition = json!({"StartAt": "Ingest", "States": {"Ingest": {
        "Type": "Map", "ItemsPath": "$.symbols", "End": true,
        "ItemSelector": {
            "run_id.$": "$$.Execution.Input.run_id",
            "symbol.$": "$$.Map.Item.Value",
            "source.$": "$.source",
            "sentiment.$": "$$.Execution.Input.sentiment",
            "fixed": {"a": 1}},
        "ItemProcessor": {"StartAt": "One", "States": {"One": {
            "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "f", "Payload.$": "$"}, "End": true}}}}}});
    let input = json!({"run_id": "r", "symbols": ["AAPL", "^GSPC"], "source": "yahoo", "sentiment": "alpha-vantage"});
    let run = Run::unplanned(input, &[]);
    let payloads = |definition: &Json| walked(definition, &run).tasks[0].payloads.clone();
    let got = payloads(&definition);
    assert_eq!(
        got[0],
        json!({"run_id": "r", "symbol": "AAPL", "source": "yahoo", "sentiment": "alpha-vantage", "fixed": {"a": 1}})
    );
    let requests: Vec<VendorRequest> = got
        .iter()
        .filter_map(|p| serde_json::from_value::<IngestInput>(p.clone()).ok())
        .flat_map(|input| vendor_requests(&input))
        .collect();
    use crate::steps::SentimentSource;
    assert_eq!(
        requests,
        [
            VendorRequest::DailyPrices(Source::Yahoo),
            VendorRequest::NewsSentiment(SentimentSource::AlphaVantage),
            // ^GSPC: an index has no news.
            VendorRequest::DailyPrices(Source::Yahoo),
        ]
    );
    // A path the estimate cannot follow leaves the payloads unknown, never guessed.
    definition["States"]["Ingest"]["ItemSelector"]["symbol.$"] = json!("$$.Map.Item.Index");
    assert!(payloads(&definition).is_empty());
}

#[test]
fn a_loop_is_an_error() {
    let definition = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Next": "B"},
        "B": {"Type": "Pass", "Next": "A"}}});
    let err =
        longest_success_path(&definition, &Run::unplanned(json!({}), &[])).expect_err("loops");
    assert!(
        err.contains("state A is reached again through A -> B"),
        "{err}"
    );
}
