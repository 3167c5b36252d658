//! `podiam agent` refuses bad configuration with one clear error line and exit 1, before it
//! touches the kernel (no datapath is attached, nothing is left behind).
use std::process::Command;

fn agent(args: &[&str]) -> (i32, String) {
    let bin = podiam_tests::bins::podiam_bin().expect("podiam-cli is built with the tests");
    let out = Command::new(bin)
        .arg("agent")
        .args([
            "--host-ip",
            "10.200.0.1",
            "--pin-dir",
            "/nonexistent/podiam-cli-test",
        ])
        .args(args)
        .env_remove("NODE_NAME")
        .env_remove("HOST_IP")
        .output()
        .expect("run podiam agent");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stderr)
}

fn error_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("podiam: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "exactly one error line in:\n{stderr}");
    lines[0]
}

#[test]
fn static_inventory_needs_a_file() {
    let (code, err) = agent(&["--inventory", "static"]);
    assert_eq!(code, 1, "{err}");
    assert!(error_line(&err).contains("--static-file"), "{err}");
}

#[test]
fn missing_and_broken_static_files_are_named() {
    let (code, err) = agent(&[
        "--inventory",
        "static",
        "--static-file",
        "/nonexistent/inv.yaml",
    ]);
    assert_eq!(code, 1);
    let line = error_line(&err);
    assert!(line.contains("/nonexistent/inv.yaml"), "{line}");

    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "workloads:\n  - name: [unterminated\n").expect("write");
    let (code, err) = agent(&[
        "--inventory",
        "static",
        "--static-file",
        broken.to_str().unwrap_or_default(),
    ]);
    assert_eq!(code, 1);
    assert!(error_line(&err).contains("invalid YAML"), "{err}");

    let typo = dir.path().join("typo.yaml");
    std::fs::write(
        &typo,
        "workloads:\n  - name: a\n    ip: 10.200.0.9\n    roleArm: x\n",
    )
    .expect("write");
    let (code, err) = agent(&[
        "--inventory",
        "static",
        "--static-file",
        typo.to_str().unwrap_or_default(),
    ]);
    assert_eq!(code, 1);
    assert!(
        error_line(&err).contains("roleArm"),
        "unknown field is named: {err}"
    );
}

#[test]
fn bad_role_flags_and_token_key_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = dir.path().join("inv.yaml");
    std::fs::write(&inv, "workloads: []\n").expect("write");
    let inv = inv.to_str().unwrap_or_default().to_owned();
    let (code, err) = agent(&[
        "--inventory",
        "static",
        "--static-file",
        &inv,
        "--identity",
        "peer-ip",
        "--base-role-arn",
        "not-an-arn",
    ]);
    assert_eq!(code, 1);
    assert!(error_line(&err).contains("--base-role-arn"), "{err}");

    let short = dir.path().join("short.key");
    std::fs::write(&short, "too-short").expect("write");
    let (code, err) = agent(&[
        "--inventory",
        "static",
        "--static-file",
        &inv,
        "--static-token-key",
        short.to_str().unwrap_or_default(),
    ]);
    assert_eq!(code, 1);
    assert!(error_line(&err).contains("at least 32"), "{err}");
}

#[test]
fn kubernetes_inventory_needs_a_node_name() {
    let (code, err) = agent(&["--inventory", "kubernetes"]);
    assert_eq!(code, 1);
    assert!(error_line(&err).contains("--node"), "{err}");
}
