//! `cargo xtask check` on a deliberately broken copy of the stacks: each kind
//! of mistake is reported by the check meant to catch it.

use std::path::Path;
use std::process::Command;

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creates");
    for entry in std::fs::read_dir(from).expect("reads") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copies");
        }
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("reads");
    assert!(
        text.contains(from),
        "{} should contain {from:?}",
        path.display()
    );
    std::fs::write(path, text.replacen(from, to, 1)).expect("writes");
}

#[test]
fn broken_stacks_fail_with_each_finding_named() {
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = tempfile::tempdir().expect("temp dir");
    copy_dir(&project.join("stacks"), &root.path().join("stacks"));
    copy_dir(&project.join("workflows"), &root.path().join("workflows"));
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
