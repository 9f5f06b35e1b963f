//! The GitHub Actions workflows pass actionlint, and actionlint fails on a
//! broken copy of them, naming each mistake (so the gate step that runs it
//! cannot pass by accident).

use std::path::{Path, PathBuf};
use std::process::Command;

use test_support::{edit, project_root, tool};

/// Runs actionlint from `root` on its .github/workflows; (success, output).
fn lint(actionlint: &Path, root: &Path) -> (bool, String) {
    let dir = root.join(".github/workflows");
    let mut workflows: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("lists the workflows")
        .map(|e| e.expect("entry").path())
        .collect();
    workflows.sort();
    assert!(workflows.len() >= 2, "ci.yml and deploy.yml: {workflows:?}");
    let output = Command::new(actionlint)
        .arg("-no-color")
        .args(&workflows)
        .current_dir(root)
        .output()
        .expect("runs actionlint");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn the_workflows_pass_actionlint() {
    let Some(actionlint) = tool("STOCKCAST_ACTIONLINT") else {
        return;
    };
    let (ok, text) = lint(&actionlint, &project_root());
    assert!(ok, "actionlint should pass:\n{text}");
}

#[test]
fn actionlint_fails_on_broken_workflows_with_each_mistake_named() {
    let Some(actionlint) = tool("STOCKCAST_ACTIONLINT") else {
        return;
    };
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join(".github/workflows");
    std::fs::create_dir_all(&dir).expect("creates");
    for name in ["ci.yml", "deploy.yml"] {
        std::fs::copy(
            project_root().join(".github/workflows").join(name),
            dir.join(name),
        )
        .expect("copies");
    }
    // The prod job waits for a job that does not exist.
    edit(&dir.join("deploy.yml"), "    needs: dev", "    needs: deve");
    // A context that does not exist.
    edit(
        &dir.join("deploy.yml"),
        "${{ vars.AWS_REGION }}",
        "${{ variables.AWS_REGION }}",
    );
    // A key a job cannot have.
    edit(
        &dir.join("ci.yml"),
        "    timeout-minutes: 90",
        "    timeout-minute: 90",
    );
    let (ok, text) = lint(&actionlint, root.path());
    assert!(!ok, "actionlint must fail:\n{text}");
    for expected in ["deve", "variables", "timeout-minute"] {
        assert!(
            text.contains(expected),
            "the output should name {expected:?}:\n{text}"
        );
    }
}
