//! `cargo xtask demo`: setup, build, then a simulated node whose pods get their own roles.
use crate::util::{self, sh};

pub fn run() -> anyhow::Result<()> {
    util::require_root("the demo (it attaches eBPF programs and creates network namespaces)")?;
    crate::setup::run_setup_steps()?;
    sh(util::cargo().args(["build", "--workspace", "--bins"]))?;
    sh(util::cargo().args([
        "run",
        "--quiet",
        "-p",
        "podiam-tests",
        "--bin",
        "podiam-demo",
    ]))
}
