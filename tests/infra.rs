//! Rendering and the project's own checks of the stacks, on every environment.

use stockcast::infra::{self, Rendered, STACKS, Sources, render};

use test_support::project_root;

fn rendered(env: &str) -> Rendered {
    render(&Sources::in_project(&project_root()), env)
        .unwrap_or_else(|e| panic!("{env} renders: {e}"))
}

fn environments() -> Vec<String> {
    Sources::in_project(&project_root())
        .environments()
        .expect("lists environments")
}

#[test]
fn every_environment_renders_deterministically_and_matches_its_snapshot() {
    let envs = environments();
    assert_eq!(envs, ["dev", "prod", "scale"]);
    for env in envs {
        let first = rendered(&env);
        let second = rendered(&env);
        assert_eq!(first.stacks.len(), STACKS.len());
        for (a, b) in first.stacks.iter().zip(&second.stacks) {
            assert_eq!(
                a.to_json_string(),
                b.to_json_string(),
                "{env}/{} renders the same bytes twice",
                a.name
            );
            insta::assert_snapshot!(format!("{env}-{}", a.name), a.to_json_string());
        }
    }
}

#[test]
fn every_environment_passes_the_own_checks() {
    for env in environments() {
        let findings = infra::check(&rendered(&env));
        assert!(findings.is_empty(), "{env}: {findings:#?}");
    }
}

/// Applies `edit` to one resource of one stack, then runs the checks.
fn findings_after(stack: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<String> {
    let mut r = rendered("dev");
    let stack = r
        .stacks
        .iter_mut()
        .find(|s| s.name == stack)
        .expect("stack exists");
    edit(&mut stack.template);
    infra::check(&r).iter().map(ToString::to_string).collect()
}

fn assert_finds(findings: &[String], expected: &str) {
    assert!(
        findings.iter().any(|f| f.contains(expected)),
        "expected a finding containing {expected:?}, got {findings:#?}"
    );
}

#[test]
fn the_bootstrap_stack_comes_first_and_needs_nothing() {
    assert_eq!(STACKS[0], infra::BOOTSTRAP);
    for env in environments() {
        let r = rendered(&env);
        let bootstrap = &r.stacks[0];
        assert_eq!(bootstrap.stack_name, format!("stockcast-{env}-bootstrap"));
        // `cargo xtask bootstrap` runs before anything exists: no input, no import.
        assert!(bootstrap.template.get("Parameters").is_none(), "{env}");
        assert!(
            !bootstrap.to_json_string().contains("Fn::ImportValue"),
            "{env}"
        );
        let exports: Vec<&str> = bootstrap.template["Outputs"]
            .as_object()
            .expect("outputs")
            .values()
            .filter_map(|o| o["Export"]["Name"].as_str())
            .collect();
        for name in [
            "ArtifactBucketName",
            "TrainRepositoryUri",
            "TrainRepositoryArn",
        ] {
            assert!(
                exports.contains(&format!("stockcast-{env}-{name}").as_str()),
                "{env}: {exports:?}"
            );
        }
    }
}

#[test]
fn imports_must_follow_the_deployment_order() {
    let mut r = rendered("dev");
    let bootstrap = &mut r.stacks[0].template;
    bootstrap["Outputs"]
        .as_object_mut()
        .expect("outputs")
        .remove("TrainRepositoryArn");
    bootstrap["Outputs"]["Twice"] = serde_json::json!({
        "Value": "x",
        "Export": {"Name": "stockcast-dev-DataBucketName"}
    });
    let data = &mut r.stacks[1].template;
    data["Resources"]["DataBucketPolicy"]["Properties"]["Bucket"] =
        serde_json::json!({"Fn::ImportValue": "stockcast-dev-TopicArn"});
    let findings: Vec<String> = infra::check(&r).iter().map(ToString::to_string).collect();
    assert_finds(
        &findings,
        "app/TrainExecutionRole: imports: imports stockcast-dev-TrainRepositoryArn, which no stack exports",
    );
    assert_finds(
        &findings,
        "data/DataBucketPolicy: imports: imports stockcast-dev-TopicArn from stack monitoring, which is not deployed before data",
    );
    assert_finds(
        &findings,
        "data/Outputs.DataBucketName: imports: exports stockcast-dev-DataBucketName, which stack bootstrap exports too",
    );
}

#[test]
fn a_role_missing_a_permission_is_found() {
    let findings = findings_after("orchestration", |t| {
        let statements = t["Resources"]["TrainingStateMachineRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array_mut()
            .expect("statements");
        statements.retain(|s| s["Sid"] != "Notify");
    });
    assert_finds(
        &findings,
        "orchestration/TrainingStateMachineRole: roles: does not allow sns:Publish",
    );
}

/// The daily workflow starts training on drift (issue 8), so its role must
/// be allowed to start exactly the training state machine.
#[test]
fn the_daily_role_must_allow_starting_training() {
    let findings = findings_after("orchestration", |t| {
        let statements =
            t["Resources"]["DailyStateMachineRole"]["Properties"]["Policies"][0]["PolicyDocument"]
                ["Statement"]
                .as_array_mut()
                .expect("statements");
        statements.retain(|s| s["Sid"] != "StartTrainingOnDrift");
    });
    assert_finds(
        &findings,
        "orchestration/DailyStateMachineRole: roles: does not allow states:StartExecution on {\"Ref\":\"TrainingStateMachine\"} (state StartTraining of DailyStateMachine)",
    );
}

#[test]
fn an_unbound_placeholder_and_a_dangling_import_are_found() {
    let findings = findings_after("orchestration", |t| {
        let subs = t["Resources"]["TrainingStateMachine"]["Properties"]["DefinitionSubstitutions"]
            .as_object_mut()
            .expect("substitutions");
        subs.remove("TopicArn");
        subs.insert(
            "GateFunctionArn".into(),
            serde_json::json!({"Fn::ImportValue": "stockcast-dev-NoSuchExport"}),
        );
    });
    assert_finds(&findings, "${TopicArn} is used but not bound");
    assert_finds(
        &findings,
        "imports stockcast-dev-NoSuchExport, which no stack exports",
    );
}

#[test]
fn a_function_without_an_error_alarm_or_a_budget_is_found() {
    let findings = findings_after("monitoring", |t| {
        let resources = t["Resources"].as_object_mut().expect("resources");
        resources.retain(|_, r| {
            r["Properties"]["MetricName"] != "Errors"
                || r["Properties"]["Namespace"] != "AWS/Lambda"
        });
        resources.retain(|_, r| r["Type"] != "AWS::Budgets::Budget");
    });
    assert_finds(
        &findings,
        "app/IngestFunction: alarms: no AWS/Lambda Errors alarm",
    );
    assert_finds(&findings, "budget: no AWS::Budgets::Budget");
}

#[test]
fn a_wildcard_write_without_a_reason_is_found() {
    let findings = findings_after("app", |t| {
        t["Resources"]["MonitorRole"]["Metadata"] = serde_json::Value::Null;
    });
    assert_finds(
        &findings,
        "app/MonitorRole: wildcard writes: statement \"DriftMetrics\" allows cloudwatch:PutMetricData",
    );
}

#[test]
fn log_retention_is_required() {
    let findings = findings_after("app", |t| {
        let resources = t["Resources"].as_object_mut().expect("resources");
        for r in resources.values_mut() {
            if r["Properties"]["LogGroupName"] == "/aws/lambda/stockcast-dev-gate" {
                r["Properties"]
                    .as_object_mut()
                    .expect("properties")
                    .remove("RetentionInDays");
            }
        }
    });
    assert_finds(
        &findings,
        "app/GateFunction: log retention: no log group /aws/lambda/stockcast-dev-gate",
    );
}

#[test]
fn a_budget_that_cannot_stop_spending_is_found() {
    // The stop's notification goes only to the emails.
    let findings = findings_after("monitoring", |t| {
        for n in t["Resources"]["Budget"]["Properties"]["NotificationsWithSubscribers"]
            .as_array_mut()
            .expect("notifications")
        {
            let subscribers = n["Subscribers"].as_array_mut().expect("subscribers");
            subscribers.retain(|s| s["SubscriptionType"] != "SNS");
        }
    });
    assert_finds(
        &findings,
        "monitoring/Budget: spend cap: no ACTUAL notification at 100 % or less goes to an SNS topic",
    );
    // The function may no longer throttle the API.
    let findings = findings_after("monitoring", |t| {
        let statements = t["Resources"]["SpendStopRole"]["Properties"]["Policies"][0]
            ["PolicyDocument"]["Statement"]
            .as_array_mut()
            .expect("statements");
        statements.retain(|s| s["Sid"] != "ThrottleUsagePlan");
    });
    assert_finds(
        &findings,
        "monitoring/Budget: spend cap: SpendStopFunction may not apigateway:PATCH",
    );
    // Nothing subscribes the function.
    let findings = findings_after("monitoring", |t| {
        t["Resources"]
            .as_object_mut()
            .expect("resources")
            .remove("SpendStopSubscription");
    });
    assert_finds(
        &findings,
        "monitoring/Budget: spend cap: no topic its ACTUAL notifications at 100 % or less go to (AlertTopic, SpendCapTopic) has a Lambda subscriber",
    );
}

/// The customer managed key and the vendor secret cost $1.40 a month between
/// them, so they are rendered only where the environment needs them: the key
/// where `customer_managed_key` is set, the secret where Alpha Vantage is
/// used, for prices (`source`) or for news (`sentiment`, issue 15). Every
/// combination passes the own checks, and nothing refers to the key or the
/// secret where they are not rendered.
/// Renders an edited environment file (written to `dir`) and asserts the
/// project's own checks find nothing.
fn render_checked(dir: &std::path::Path, text: &str, case: &str) -> Rendered {
    let path = dir.join("edited.yaml");
    std::fs::write(&path, text).expect("writes the environment");
    let r = render(
        &Sources::in_project(&project_root()),
        &path.display().to_string(),
    )
    .unwrap_or_else(|e| panic!("{case}: renders: {e}"));
    let findings = infra::check(&r);
    assert!(findings.is_empty(), "{case}: {findings:#?}");
    r
}

#[test]
fn the_key_and_the_secret_are_rendered_only_where_the_environment_needs_them() {
    let dev = std::fs::read_to_string(project_root().join("stacks/environments/dev.yaml"))
        .expect("dev.yaml");
    assert!(
        dev.contains("source: yahoo ")
            && dev.contains("sentiment: null ")
            && dev.contains("customer_managed_key: false")
    );
    let dir = tempfile::tempdir().expect("temp dir");
    for (source, sentiment) in [
        ("yahoo", "null"),
        ("yahoo", "alpha-vantage"),
        ("alpha-vantage", "null"),
        ("alpha-vantage", "alpha-vantage"),
    ] {
        for key in [false, true] {
            let text = dev
                .replace("source: yahoo ", &format!("source: {source} "))
                .replace("sentiment: null ", &format!("sentiment: {sentiment} "))
                .replace(
                    "customer_managed_key: false",
                    &format!("customer_managed_key: {key}"),
                );
            let case = format!("{source} prices, {sentiment} news, key {key}");
            let r = render_checked(dir.path(), &text, &case);
            let text: String = r.stacks.iter().map(|s| s.to_json_string()).collect();
            let secret = source == "alpha-vantage" || sentiment == "alpha-vantage";
            for (what, expected) in [
                ("AWS::KMS::Key", key),
                ("stockcast-dev-KmsKeyArn", key),
                ("kms:Decrypt", key),
                ("AWS::SecretsManager::Secret", secret),
                ("secretsmanager:GetSecretValue", secret),
                ("ALPHA_VANTAGE_SECRET_ARN", secret),
                ("stockcast-dev-VendorSecretArn", secret),
            ] {
                assert_eq!(
                    text.contains(what),
                    expected,
                    "{case}: {what} should be rendered: {expected}"
                );
            }
            // The schedules carry the choice into every run's input.
            assert!(
                text.contains(&format!(
                    r#"\"source\":\"{source}\",\"sentiment\":{}"#,
                    if sentiment == "null" {
                        "null".to_owned()
                    } else {
                        format!(r#"\"{sentiment}\""#)
                    }
                )),
                "{case}: the schedules' input"
            );
        }
    }
}

/// The schedules' input is the run input, so what a scheduled run ingests
/// is what the environment file says (issue 15: news from Alpha Vantage
/// beside Yahoo's prices in prod).
#[test]
fn the_schedules_start_runs_with_the_environments_defaults() {
    for env in environments() {
        let r = rendered(&env);
        let stack = |name: &str| {
            &r.stacks
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("the {name} stack"))
                .template
        };
        for (schedule, kind) in [("DailySchedule", "daily"), ("TrainingSchedule", "training")] {
            let input =
                stack("orchestration")["Resources"][schedule]["Properties"]["Target"]["Input"]
                    .as_str()
                    .expect("an input");
            let fired = stockcast::steps::as_fired(input, "2026-11-27T09:00:00Z");
            let run: stockcast::steps::RunRequest = serde_json::from_str(&fired)
                .unwrap_or_else(|e| panic!("{env} {schedule}: not a run request: {e}"));
            assert_eq!(
                run,
                stockcast::steps::RunRequest {
                    run_id: Some(
                        stockcast::ids::RunId::new(format!("2026-11-27T09:00:00Z-{kind}"))
                            .expect("an id")
                    ),
                    ..Default::default()
                },
                "{env} {schedule}: everything else is the plan step's defaults"
            );
        }
        // The plan step's defaults are the environment's.
        let variables =
            &stack("app")["Resources"]["IngestFunction"]["Properties"]["Environment"]["Variables"];
        let defaults: stockcast::steps::RunDefaults = serde_json::from_str(
            variables["STOCKCAST_RUN_DEFAULTS"]
                .as_str()
                .expect("the run defaults"),
        )
        .expect("valid run defaults");
        assert_eq!(defaults, r.env.run_defaults(), "{env}");
        assert_eq!(
            (defaults.source, defaults.sentiment),
            (r.env.source, r.env.sentiment)
        );
    }
}

/// An environment that names an MLflow server gets the mirror's settings on
/// the gate function, and with `credentials: secret` a secret that only the
/// gate role may read, through the extension layer; without one, none of it.
#[test]
fn the_mlflow_mirror_is_configured_only_where_the_environment_names_a_server() {
    let dev = std::fs::read_to_string(project_root().join("stacks/environments/dev.yaml"))
        .expect("dev.yaml");
    let dir = tempfile::tempdir().expect("temp dir");
    for (uri, credentials, key) in [
        ("null", "none", false),
        ("https://mlflow.example.com", "none", false),
        ("https://mlflow.example.com", "secret", false),
        ("https://mlflow.example.com", "secret", true),
    ] {
        let case = format!("{uri} {credentials} key {key}");
        let text = dev
            .replace("tracking_uri: null", &format!("tracking_uri: {uri}"))
            .replace("credentials: none", &format!("credentials: {credentials}"))
            .replace(
                "customer_managed_key: false",
                &format!("customer_managed_key: {key}"),
            );
        let r = render_checked(dir.path(), &text, &case);
        let app = &r
            .stacks
            .iter()
            .find(|s| s.name == "app")
            .expect("the app stack")
            .template["Resources"];
        let gate = &app["GateFunction"]["Properties"];
        let variables = &gate["Environment"]["Variables"];
        let mirrors = uri != "null";
        let secret = credentials == "secret";
        assert_eq!(
            variables["STOCKCAST_MLFLOW_TRACKING_URI"].as_str(),
            mirrors.then_some(uri),
            "{case}"
        );
        assert_eq!(gate["Timeout"], if mirrors { 900 } else { 300 }, "{case}");
        assert_eq!(!app["MlflowSecret"].is_null(), secret, "{case}");
        assert_eq!(
            variables["STOCKCAST_MLFLOW_SECRET"],
            if secret {
                serde_json::json!({"Ref": "MlflowSecret"})
            } else {
                serde_json::Value::Null
            },
            "{case}"
        );
        assert_eq!(
            gate["Layers"].is_array(),
            secret,
            "{case}: the extension layer"
        );
        let statements =
            app["GateRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
                .as_array()
                .expect("statements")
                .clone();
        let reads_secret = statements.iter().any(|s| {
            s["Action"] == "secretsmanager:GetSecretValue"
                && s["Resource"] == serde_json::json!({"Ref": "MlflowSecret"})
        });
        assert_eq!(reads_secret, secret, "{case}");
        // Only the gate reads the MLflow secret.
        for (name, resource) in app.as_object().expect("resources") {
            if name != "GateRole" && resource["Type"] == "AWS::IAM::Role" {
                assert!(
                    !resource.to_string().contains("MlflowSecret"),
                    "{case}: {name} may read the MLflow secret"
                );
            }
        }
    }
}

/// The ingest Map is a Distributed Map: its role must start and follow
/// child executions of its own state machine, and read and write the run's
/// objects for the ItemReader and the ResultWriter.
#[test]
fn a_distributed_map_without_its_permissions_is_found() {
    let findings = findings_after("orchestration", |t| {
        let statements = t["Resources"]["TrainingStateMachineRole"]["Properties"]["Policies"][0]
            ["PolicyDocument"]["Statement"]
            .as_array_mut()
            .expect("statements");
        statements.retain(|s| {
            s["Sid"] != "IngestChildExecutions" && s["Sid"] != "ReadSymbolsWriteIngestResults"
        });
    });
    assert_finds(
        &findings,
        "orchestration/TrainingStateMachineRole: roles: does not allow states:StartExecution on \"stateMachine:stockcast-dev-training\" (Distributed Map Ingest of TrainingStateMachine)",
    );
    assert_finds(
        &findings,
        "does not allow s3:GetObject on {\"Fn::ImportValue\":\"stockcast-dev-DataBucketName\"} (Distributed Map Ingest",
    );
    assert_finds(&findings, "does not allow s3:PutObject on");
}

/// An array whose job definition would not retry a reclaimed child.
#[test]
fn a_batch_array_without_retries_is_found() {
    let findings = findings_after("app", |t| {
        t["Resources"]["TrainJobDefinition"]["Properties"]["RetryStrategy"]["Attempts"] = 1.into();
    });
    assert_finds(
        &findings,
        "state TrainArray: its job definition has no RetryStrategy with Attempts >= 2",
    );
}

/// The job definition retries the exit codes the training job ends with
/// when a new attempt can finish it, before its catch-all EXIT rule.
#[test]
fn a_job_definition_that_exits_on_the_jobs_retryable_codes_is_found() {
    let findings = findings_after("app", |t| {
        let rules =
            t["Resources"]["TrainJobDefinition"]["Properties"]["RetryStrategy"]["EvaluateOnExit"]
                .as_array_mut()
                .expect("rules");
        rules.retain(|r| r["OnExitCode"] != "143");
    });
    assert_finds(
        &findings,
        "state TrainArray: its job definition's RetryStrategy does not retry exit code 143",
    );
    assert!(
        !findings.iter().any(|f| f.contains("exit code 75")),
        "{findings:?}"
    );
    // A catch-all RETRY before the EXIT covers both.
    let findings = findings_after("app", |t| {
        let rules =
            t["Resources"]["TrainJobDefinition"]["Properties"]["RetryStrategy"]["EvaluateOnExit"]
                .as_array_mut()
                .expect("rules");
        rules.retain(|r| r["OnExitCode"].is_null());
        rules.insert(0, serde_json::json!({"OnExitCode": "*", "Action": "RETRY"}));
    });
    assert!(
        !findings
            .iter()
            .any(|f| f.contains("does not retry exit code")),
        "{findings:?}"
    );
}

/// A universe past the vendor's daily quota is found before deploy.
#[test]
fn a_universe_over_the_vendors_daily_quota_is_found() {
    let dev = std::fs::read_to_string(project_root().join("stacks/environments/dev.yaml"))
        .expect("dev.yaml");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("quota.yaml");
    let text = dev
        .replace("universe: seed ", "universe: sp500 ")
        .replace("source: yahoo ", "source: alpha-vantage ")
        .replace(
            "alpha_vantage_daily_quota: null",
            "alpha_vantage_daily_quota: 25",
        );
    std::fs::write(&path, text).expect("writes");
    let r = render(
        &Sources::in_project(&project_root()),
        &path.display().to_string(),
    )
    .expect("renders");
    let findings: Vec<String> = infra::check(&r).iter().map(ToString::to_string).collect();
    assert_finds(
        &findings,
        "environment/dev: vendor quota: 503 symbols make 503 Alpha Vantage requests a run, 1006 on a day",
    );
}
