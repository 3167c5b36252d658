//! `cargo xtask` — project automation: setup, test, demo, vm-test, bench, gen-crd.
//!
//! Every command that needs tools calls [`setup::run`] first, so a fresh machine of this
//! kind needs nothing done by hand.
mod bench;
mod demo;
mod gencrd;
mod setup;
mod test;
mod util;
mod vmtest;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "podiam project automation")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install everything a fresh machine lacks (idempotent): Debian packages, the pinned eBPF
    /// nightly with rust-src, the musl target, bpf-linker, and the Python venv (moto, awscli,
    /// boto3, kubernetes-validate).
    Setup,
    /// Setup, then the whole suite: unit, kernel (root), end-to-end and VM tests.
    Test(test::TestArgs),
    /// Setup, build, then simulate a node whose pods each get their own role (root).
    Demo,
    /// Run the datapath kernel tests inside QEMU on other kernels.
    VmTest(vmtest::VmTestArgs),
    /// Benchmarks (root, release build); writes BENCHMARKS.md.
    Bench(bench::BenchArgs),
    /// Regenerate deploy/crd/podidentityassociation.yaml from the Rust type.
    GenCrd,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Setup => setup::run(),
        Cmd::Test(args) => test::run(&args),
        Cmd::Demo => demo::run(),
        Cmd::VmTest(args) => vmtest::run(&args),
        Cmd::Bench(args) => bench::run(&args),
        Cmd::GenCrd => gencrd::run(),
    }
}
