//! Builds the datapath kernel tests (and the binaries they spawn) as static musl binaries.
//!
//! `cargo test -p podiam-tests --test datapath --no-run --target x86_64-unknown-linux-musl`
//! builds the test executable and, as cargo does for every integration test, the package's
//! `[[bin]]`s (`podiam-cli`, `podiam-probe`). The eBPF object is embedded by agent/build.rs
//! (a host build script), so it is the same object the native suite loads. Paths are taken
//! from cargo's JSON messages.
use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context as _, bail};

use crate::util;

/// Rust target of the VM binaries (statically linked; nothing of the host's libc needed).
pub const TARGET: &str = "x86_64-unknown-linux-musl";

/// The binaries shipped into the VM under `/tests/`.
#[derive(Debug, Clone)]
pub struct TestBinaries {
    /// The `datapath` libtest executable.
    pub datapath: PathBuf,
    /// `podiam-cli` (the `podiam` CLI built from `podiam::cli::main`).
    pub podiam_cli: PathBuf,
    /// `podiam-probe` (the connect probe run inside simulated pods).
    pub probe: PathBuf,
}

/// Builds the test binaries for [`TARGET`] and returns their paths.
pub fn build() -> anyhow::Result<TestBinaries> {
    let mut cmd = util::cargo();
    cmd.args([
        "test",
        "-p",
        "podiam-tests",
        "--test",
        "datapath",
        "--no-run",
        "--target",
        TARGET,
        "--message-format=json-render-diagnostics",
    ])
    .stdout(Stdio::piped());
    eprintln!("+ {cmd:?}");
    let mut child = cmd.spawn().context("starting cargo")?;
    let stdout = child.stdout.take().context("cargo stdout")?;
    let (mut datapath, mut podiam_cli, mut probe) = (None, None, None);
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(exe) = msg["executable"].as_str() else {
            continue;
        };
        let name = msg["target"]["name"].as_str().unwrap_or_default();
        let is_test = msg["profile"]["test"].as_bool().unwrap_or(false);
        match (name, is_test) {
            ("datapath", true) => datapath = Some(PathBuf::from(exe)),
            ("podiam-cli", false) => podiam_cli = Some(PathBuf::from(exe)),
            ("podiam-probe", false) => probe = Some(PathBuf::from(exe)),
            _ => {}
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("building the VM test binaries for {TARGET} failed: {status}");
    }
    Ok(TestBinaries {
        datapath: datapath.context("cargo reported no `datapath` test executable")?,
        podiam_cli: podiam_cli.context("cargo reported no `podiam-cli` binary")?,
        probe: probe.context("cargo reported no `podiam-probe` binary")?,
    })
}
