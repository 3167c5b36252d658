//! `cargo xtask bench`: setup, release build of the measured binaries, then `podiam-bench`
//! (root), which writes BENCHMARKS.md at the workspace root.
//!
//! `cargo xtask bench -- --quick` runs the same code paths with small sizes (not a report).
use std::time::Instant;

use crate::util::{self, sh, stdout_of};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Smoke run: far smaller sizes and fewer repetitions (figures not representative).
    #[arg(long)]
    pub quick: bool,
    /// Where to write the report (default: BENCHMARKS.md at the workspace root).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    util::require_root("the benchmarks (they attach eBPF programs and create network namespaces)")?;
    crate::setup::run_setup_steps()?;
    let t = Instant::now();
    // The agent (`podiam-cli`, same `podiam::cli::main` as the `podiam` bin), the bench and
    // its load generator, all optimised.
    sh(util::cargo().args([
        "build",
        "--release",
        "-p",
        "podiam-tests",
        "--bin",
        "podiam-cli",
        "--bin",
        "podiam-bench",
        "--bin",
        "podiam-bench-client",
    ]))?;
    let build_secs = t.elapsed().as_secs_f64();
    let root = util::root();
    let commit = stdout_of(
        std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(&root),
    );
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| root.join("BENCHMARKS.md"));
    let mut cmd = std::process::Command::new(root.join("target/release/podiam-bench"));
    cmd.env("PATH", util::test_path())
        .arg("--out")
        .arg(&out)
        .args(["--build-secs", &format!("{build_secs:.0}")]);
    if !commit.trim().is_empty() {
        cmd.args(["--commit", commit.trim()]);
    }
    if args.quick {
        cmd.arg("--quick");
    }
    sh(&mut cmd)
}
