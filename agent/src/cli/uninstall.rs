//! `podiam uninstall`: detach the programs and remove the pins.
use std::path::PathBuf;
use std::process::ExitCode;

use crate::datapath::{DEFAULT_PIN_DIR, Datapath};

/// Flags of `podiam uninstall`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// bpffs directory holding the pins.
    #[arg(long, env = "PODIAM_PIN_DIR", default_value = DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::datapath::sys::has_bpf_caps()
        .then_some(())
        .ok_or(crate::datapath::DatapathError::NotRoot)?;
    let done = Datapath::uninstall(&args.pin_dir)?;
    println!(
        "uninstalled {}: detached {} link(s), removed {} map pin(s)",
        args.pin_dir.display(),
        done.links.len(),
        done.maps.len()
    );
    Ok(ExitCode::SUCCESS)
}
