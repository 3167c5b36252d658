//! Small process helpers shared by the xtask commands.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// The workspace root (parent of `xtask/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The project's Python venv (moto, awscli, boto3, kubernetes-validate).
pub fn venv() -> PathBuf {
    root().join(".venv")
}

/// `PATH` with the venv's `bin/` and cargo's bin dir first, so tests find `moto_server`,
/// `aws`, `python3` (with boto3) and `bpf-linker`.
pub fn test_path() -> String {
    let mut parts = vec![venv().join("bin").display().to_string()];
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        parts.push(PathBuf::from(home).join("bin").display().to_string());
    } else if let Some(home) = std::env::var_os("HOME") {
        parts.push(PathBuf::from(home).join(".cargo/bin").display().to_string());
    }
    parts.push(std::env::var("PATH").unwrap_or_default());
    parts.join(":")
}

/// Runs `cmd`, echoing it, and fails if it exits non-zero.
pub fn sh(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("+ {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Runs `cmd` quietly and returns whether it succeeded (false if it could not start).
pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Runs `cmd` and returns its stdout as a string (empty if it could not start).
pub fn stdout_of(cmd: &mut Command) -> String {
    cmd.output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Fails unless running as root (the kernel tests and the demo need it).
pub fn require_root(what: &str) -> anyhow::Result<()> {
    if stdout_of(Command::new("id").arg("-u")).trim() != "0" {
        bail!("{what} needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN): run it as root");
    }
    Ok(())
}

/// A `cargo` command run from the workspace root with the test `PATH`.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root()).env("PATH", test_path());
    c
}
