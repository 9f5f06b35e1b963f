//! `cargo xtask check` on a deliberately broken copy of the stacks: each kind
//! of mistake is reported by the check meant to catch it.

use std::process::Command;

use test_support::{copy_tree, edit, project_root};

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

#[test]
fn broken_stacks_fail_with_each_finding_named() {
    let project = project_root();
    let root = tempfile::tempdir().expect("temp dir");
    copy_tree(&project.join("stacks"), &root.path().join("stacks")).expect("copies");
    copy_tree(&project.join("workflows"), &root.path().join("workflows")).expect("copies");
    // A property CloudFormation does not have (cfn-lint).
    edit(
        &root.path().join("stacks/app.yaml"),
        "      MemorySize: {{ env.lambda.ingest_memory_mb }}",
        "      MemorySizeMb: {{ env.lambda.ingest_memory_mb }}",
    );
    // A Next that names no state (asl-validator).
    edit(
        &root.path().join("workflows/training.asl.yaml"),
        "    Next: Quality",
        "    Next: Qualty",
    );
    // A role that may no longer publish the notifications its tasks send (own check).
    edit(
        &root.path().join("stacks/orchestration.yaml"),
        "                Action: sns:Publish",
        "                Action: sns:GetTopicAttributes",
    );

    let output = Command::new(XTASK)
        .current_dir(&project)
        .args(["check", "--env", "dev", "--root"])
        .arg(root.path())
        .output()
        .expect("runs xtask check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "check must fail:\n{text}");
    for expected in [
        "dev: orchestration/TrainingStateMachineRole: roles: does not allow sns:Publish",
        "dev: cfn-lint failed",
        "MemorySizeMb",
        "dev: asl-validator failed",
        "Qualty",
    ] {
        assert!(
            text.contains(expected),
            "the output should name {expected:?}:\n{text}"
        );
    }
}
