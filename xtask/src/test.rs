//! `cargo xtask test`: setup, then the whole suite. The kernel tests need root; when they
//! cannot run, this command fails rather than skipping them.
use crate::util::{self, sh};

#[derive(clap::Args)]
pub struct TestArgs {
    /// Skip the VM suite (it still runs in CI through the default).
    #[arg(long)]
    pub no_vm: bool,
    /// Extra arguments passed to `cargo test` (e.g. a test name filter) after `--`.
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}

pub fn run_tests(args: &TestArgs) -> anyhow::Result<()> {
    util::require_root("the kernel test suite")?;
    crate::setup::run_setup_steps()?;
    // Build everything first so that test binaries that spawn `podiam` find it built.
    sh(util::cargo().args(["build", "--workspace", "--bins"]))?;
    sh(util::cargo()
        .args(["test", "--workspace", "--no-fail-fast"])
        .arg("--")
        .args(&args.cargo_args))?;
    if !args.no_vm {
        crate::vmtest::run(&crate::vmtest::VmTestArgs::ci_default())?;
    }
    Ok(())
}

pub fn run(args: &TestArgs) -> anyhow::Result<()> {
    run_tests(args)
}
