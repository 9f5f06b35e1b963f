//! The AWS commands end to end against the moto emulator on 127.0.0.1:
//! bootstrap, deploy (twice, then with a change), run, status, approve and
//! destroy, through the real AWS SDK. The training image goes to Debian's
//! docker-registry, since moto has no image registry.
//!
//! Where moto differs from AWS, the test says so; the templates are never
//! weakened for it. moto runs with tests/moto_patches.py, which fixes its
//! change sets (imports, outputs, DependsOn order), KMS tags, state machine
//! definitions and EC2/ECR deletions, each with the bug it works around.
//! moto also creates no alarms, budget, schedules, bucket policies or API
//! keys: the test asserts nothing about them (usage plans it creates with
//! patch 9).
#![cfg(feature = "aws")]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

struct Aws<'a> {
    endpoint: &'a str,
}

impl Aws<'_> {
    fn xtask(&self, args: &[&str]) -> Output {
        self.xtask_in("dev", args)
    }

    fn xtask_in(&self, env: &str, args: &[&str]) -> Output {
        let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .args(["--env", env, "--endpoint-url", self.endpoint])
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("runs xtask");
        eprintln!(
            "$ xtask {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.xtask(args);
        assert!(output.status.success(), "xtask {} failed", args.join(" "));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// boto3 from moto's own virtualenv, for what the product never does
    /// itself (creating a queue, reading a message).
    fn python(&self, moto_server: &Path, script: &str) -> String {
        let python = moto_server.with_file_name("python");
        let output = Command::new(python)
            .arg("-c")
            .arg(script)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("ENDPOINT", self.endpoint)
            .output()
            .expect("runs python");
        assert!(
            output.status.success(),
            "python: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

#[test]
fn bootstrap_deploy_run_status_approve_destroy_against_moto() {
    let (Some(moto), Some(registry), Some(artifacts), Some(moto_server)) = (
        test_support::Moto::start_patched(),
        test_support::OciRegistry::start(),
        test_support::tool("STOCKCAST_PACKAGE_DIR"),
        test_support::tool("STOCKCAST_MOTO_SERVER"),
    ) else {
        return;
    };
    let aws = Aws {
        endpoint: &moto.endpoint,
    };
    let artifacts = artifacts.display().to_string();
    let image_registry = format!("{}/stockcast-train", registry.address);
    // moto has no AWS-published layers: a stand-in with the same role.
    let layer = aws.python(
        &moto_server,
        "import boto3, os\nl = boto3.client('lambda', endpoint_url=os.environ['ENDPOINT'], region_name='us-east-1')\nprint(l.publish_layer_version(LayerName='secrets-extension', Content={'ZipFile': b'PK\\x05\\x06' + bytes(18)}, CompatibleArchitectures=['arm64'])['LayerVersionArn'])",
    );
    let deploy_in = |env: &str, extra: &[&str]| {
        let mut args = vec![
            "deploy",
            "--yes",
            "--artifacts",
            &artifacts,
            "--image-registry",
            &image_registry,
            "--secrets-extension-layer",
            &layer,
        ];
        args.extend_from_slice(extra);
        aws.xtask_in(env, &args)
    };
    let deploy = |extra: &[&str]| deploy_in("dev", extra);

    // Deploy says what to do when there is nothing to deploy into.
    let refused = deploy(&[]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cargo xtask bootstrap --env dev"));

    let bootstrapped = aws.ok(&["bootstrap", "--yes"]);
    assert!(
        bootstrapped.contains("stockcast-dev-bootstrap: CREATE_COMPLETE"),
        "{bootstrapped}"
    );
    assert!(
        bootstrapped.contains("ArtifactBucketName"),
        "{bootstrapped}"
    );

    let first = deploy(&[]);
    let out = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(first.status.success(), "first deploy failed");
    for stack in ["data", "app", "monitoring", "orchestration"] {
        assert!(
            out.contains(&format!("stockcast-dev-{stack}: CREATE_COMPLETE")),
            "{stack}: {out}"
        );
    }
    assert_eq!(out.matches("(uploaded)").count(), 5, "{out}");
    assert!(
        out.contains("universe: 8 symbols → s3://") && out.contains("/universes/dev.txt\n"),
        "deploy uploads the universe the plan step reads: {out}"
    );
    assert!(
        out.contains("  + Add"),
        "the preview lists additions: {out}"
    );
    // Not a terminal: the stack events are printed as lines, since they are
    // the progress a CI log shows.
    assert!(
        out.lines()
            .any(|l| l.contains("AWS::CloudFormation::Stack") && l.contains("CREATE_IN_PROGRESS")),
        "the events are followed: {out}"
    );

    let second = deploy(&[]);
    let out = String::from_utf8_lossy(&second.stdout).into_owned();
    assert!(second.status.success());
    assert_eq!(out.matches("(already uploaded)").count(), 5, "{out}");
    assert!(out.contains("\nno changes\n"), "{out}");
    assert!(out.contains("/universes/dev.txt (unchanged)"), "{out}");

    // A changed setting: more memory for the ingest function, in a copy of
    // the dev environment file.
    let variant = tempfile::tempdir().expect("temp dir");
    let dev = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../stacks/environments/dev.yaml"),
    )
    .expect("dev.yaml");
    assert!(
        dev.contains("ingest_memory_mb: 256"),
        "the test edits this line"
    );
    let changed_env = variant.path().join("dev.yaml");
    std::fs::write(
        &changed_env,
        dev.replace("ingest_memory_mb: 256", "ingest_memory_mb: 512"),
    )
    .expect("writes the variant");
    let changed = deploy_in(&changed_env.display().to_string(), &[]);
    let out = String::from_utf8_lossy(&changed.stdout).into_owned();
    assert!(changed.status.success());
    let modified = out
        .lines()
        .find(|l| l.contains("IngestFunction ") && l.contains("Modify"));
    assert!(
        modified.is_some(),
        "the change set modifies the ingest function: {out}"
    );
    assert!(out.contains("stockcast-dev-app: UPDATE_COMPLETE"), "{out}");

    let started = aws.ok(&["run", "--pipeline", "training"]);
    let execution = started
        .split_whitespace()
        .find(|w| w.starts_with("arn:aws:states:"))
        .expect("prints the execution ARN")
        .to_owned();
    let name = execution.rsplit(':').next().expect("a name").to_owned();
    let status = aws.ok(&["status"]);
    assert!(
        status.contains(&name),
        "status lists the execution: {status}"
    );
    assert!(status.contains("stockcast-dev-app"), "{status}");
    // The same report for scripts.
    let report: serde_json::Value =
        serde_json::from_str(&aws.ok(&["status", "--json"])).expect("status --json is JSON");
    assert_eq!(report["env"], "dev", "{report}");
    let listed = report["executions"]
        .as_array()
        .expect("executions")
        .iter()
        .flat_map(|machine| machine["executions"].as_array().into_iter().flatten())
        .any(|execution| execution["name"] == name.as_str());
    assert!(listed, "status --json lists the execution: {report}");
    // The newest training execution's history, read through the SDK: moto
    // runs no task, so its history names no Batch job (the job's view is
    // tested against a Batch stand-in, xtask/src/aws/batch/stand_in.rs).
    assert_eq!(report["training"]["execution"], name.as_str(), "{report}");
    assert_eq!(report["training"]["status"], "not_submitted", "{report}");
    assert!(
        status.contains(&format!("training job: none submitted by {name}")),
        "{status}"
    );

    resume_after_the_spend_cap(&aws, &moto_server);

    // The S&P 500 environment deploys beside dev: its Distributed Map, its
    // array job and its 503-symbol universe.
    let scale = aws.xtask_in("scale", &["bootstrap", "--yes"]);
    assert!(
        scale.status.success(),
        "{}",
        String::from_utf8_lossy(&scale.stderr)
    );
    let scale = deploy_in("scale", &[]);
    let out = String::from_utf8_lossy(&scale.stdout).into_owned();
    assert!(
        scale.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&scale.stderr)
    );
    for stack in ["data", "app", "monitoring", "orchestration"] {
        assert!(
            out.contains(&format!("stockcast-scale-{stack}: CREATE_COMPLETE")),
            "{stack}: {out}"
        );
    }
    assert!(out.contains("universe: 503 symbols → s3://"), "{out}");
    let destroyed = aws.xtask_in("scale", &["destroy", "--yes"]);
    assert!(
        destroyed.status.success(),
        "{}",
        String::from_utf8_lossy(&destroyed.stderr)
    );

    // The registry of the deployed environment, found through its data
    // stack: nothing has been promoted there, which rollback says.
    let rollback = aws.xtask(&["rollback", "--symbol", "AAPL", "--model", "arima"]);
    let said = String::from_utf8_lossy(&rollback.stderr);
    assert!(
        !rollback.status.success() && said.contains("AAPL") && said.contains("production"),
        "{said}"
    );

    // Last of the checks on a deployed stack: the approval switches moto's
    // Step Functions to executing machines, after which it no longer finds
    // the state machines CloudFormation made.
    approve_through_a_waiting_execution(&aws, &moto_server);

    // Without a terminal to ask and without --yes, nothing is deleted and
    // the exit says so (a script must not go on as if it had been).
    let unasked = aws.xtask(&["destroy"]);
    let stderr = String::from_utf8_lossy(&unasked.stderr);
    assert!(
        !unasked.status.success() && stderr.contains("pass --yes"),
        "{stderr}"
    );

    let destroyed = aws.ok(&["destroy", "--yes"]);
    for stack in ["orchestration", "monitoring", "app", "data"] {
        assert!(
            destroyed.contains(&format!("stockcast-dev-{stack}: DELETED")),
            "{destroyed}"
        );
    }
    let status = aws.ok(&["status"]);
    assert!(
        status.contains("stockcast-dev-app") && status.contains("not deployed"),
        "{status}"
    );
}

/// moto runs state machines only when told to, and cannot invoke Lambdas
/// without Docker: the waiting state here sends its token through SQS
/// (which moto runs in-process) instead of the gate Lambda. The gate's part,
/// keeping the token in approvals/<run_id>.json, is written as it would.
fn approve_through_a_waiting_execution(aws: &Aws, moto_server: &Path) {
    let script = r#"
import boto3, json, os, time
kw = dict(endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1")
import urllib.request
urllib.request.urlopen(urllib.request.Request(os.environ["ENDPOINT"] + "/moto-api/config",
    data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(), method="POST",
    headers={"Content-Type": "application/json"}))
sqs = boto3.client("sqs", **kw); sfn = boto3.client("stepfunctions", **kw)
cfn = boto3.client("cloudformation", **kw); s3 = boto3.client("s3", **kw)
queue = sqs.create_queue(QueueName="approvals")["QueueUrl"]
definition = {"StartAt": "WaitForApproval", "States": {"WaitForApproval": {"Type": "Task",
  "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
  "Parameters": {"QueueUrl": queue, "MessageBody": {"token.$": "$$.Task.Token"}}, "End": True}}}
machine = sfn.create_state_machine(name="approval-test", definition=json.dumps(definition),
  roleArn="arn:aws:iam::123456789012:role/test")["stateMachineArn"]
execution = sfn.start_execution(stateMachineArn=machine, name="r-approve",
  input=json.dumps({"run_id": "r-approve"}))["executionArn"]
token = None
for _ in range(100):
    messages = sqs.receive_message(QueueUrl=queue).get("Messages", [])
    if messages:
        token = json.loads(messages[0]["Body"])["token"]; break
    time.sleep(0.1)
outputs = cfn.describe_stacks(StackName="stockcast-dev-data")["Stacks"][0]["Outputs"]
bucket = [o["OutputValue"] for o in outputs if o["OutputKey"] == "DataBucketName"][0]
record = {"run_id": "r-approve", "task_token": token, "decisions": [],
          "requested_at": "2026-11-27T09:00:00.000Z", "answer": None}
s3.put_object(Bucket=bucket, Key="approvals/r-approve.json", Body=json.dumps(record).encode())
print(execution)
"#;
    let execution = aws.python(moto_server, script);
    let answered = aws.ok(&["approve", &execution, "--reason", "plots checked"]);
    assert!(answered.contains("approved"), "{answered}");
    let again = aws.xtask(&["reject", &execution]);
    assert!(
        !again.status.success(),
        "an answered approval cannot be answered again"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = aws.python(
            moto_server,
            &format!(
                "import boto3, os\nd = boto3.client('stepfunctions', endpoint_url=os.environ['ENDPOINT'], region_name='us-east-1').describe_execution(executionArn='{execution}')\nprint(d['status'], d.get('output', ''))"
            ),
        );
        if status.starts_with("SUCCEEDED") {
            assert!(
                status.contains("\"approved\": true") || status.contains("\"approved\":true"),
                "{status}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the execution did not resume: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// moto's CloudFormation creates no schedules (the usage plan it creates
/// with patch 9): they are made here by the templates' names, and with the
/// usage plan put in the state the spend-stop function leaves them (its own
/// test, functions/spend-stop, applies the stop); `resume` must bring back
/// what dev.yaml declares.
fn resume_after_the_spend_cap(aws: &Aws, moto_server: &Path) {
    let script = r#"
import boto3, os
kw = dict(endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1")
scheduler = boto3.client("scheduler", **kw); apigateway = boto3.client("apigateway", **kw)
scheduler.create_schedule_group(Name="stockcast-dev")
for name in ["stockcast-dev-daily", "stockcast-dev-training"]:
    scheduler.create_schedule(GroupName="stockcast-dev", Name=name, State="DISABLED",
        ScheduleExpression="cron(0 9 ? * MON-FRI *)", FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": "arn:aws:states:us-east-1:123456789012:stateMachine:stockcast-dev-daily",
                "RoleArn": "arn:aws:iam::123456789012:role/scheduler", "Input": "{}"})
plan = [p for p in apigateway.get_usage_plans()["items"] if p["name"] == "stockcast-dev"][0]
apigateway.update_usage_plan(usagePlanId=plan["id"], patchOperations=[
    {"op": "replace", "path": "/throttle/rateLimit", "value": "0"},
    {"op": "replace", "path": "/throttle/burstLimit", "value": "0"}])
"#;
    aws.python(moto_server, script);
    let stopped = aws.ok(&["status"]);
    assert!(
        stopped.contains(
            "spend cap: STOPPED: 0 of 2 schedules enabled, API throttle 0 req/s, burst 0"
        ) && stopped.contains("cargo xtask resume --env dev"),
        "{stopped}"
    );
    let resumed = aws.ok(&["resume", "--yes"]);
    assert!(
        resumed.contains(
            "spend cap: running: 2 of 2 schedules enabled, API throttle 10 req/s, burst 20"
        ),
        "{resumed}"
    );
    let again = aws.ok(&["resume", "--yes"]);
    assert!(again.contains("nothing to resume"), "{again}");
}

/// Without any credentials the AWS commands say what to run, before any
/// call, instead of the SDK's provider-chain dump.
#[test]
fn missing_credentials_say_what_to_run() {
    let home = tempfile::tempdir().expect("temp dir");
    let nowhere = home.path().join("none");
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command
        .args(["status", "--env", "dev"])
        .env("HOME", home.path())
        .env("AWS_CONFIG_FILE", &nowhere)
        .env("AWS_SHARED_CREDENTIALS_FILE", &nowhere)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(std::process::Stdio::null());
    for variable in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_ENDPOINT_URL",
    ] {
        command.env_remove(variable);
    }
    let output = command.output().expect("runs xtask");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("no AWS credentials: run `aws configure`"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}
