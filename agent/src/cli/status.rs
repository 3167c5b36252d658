//! `podiam status`: attached programs, pins, config, counters.
use std::path::PathBuf;
use std::process::ExitCode;

use crate::datapath::{DEFAULT_PIN_DIR, Datapath};

/// Flags of `podiam status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// bpffs directory holding the pins.
    #[arg(long, env = "PODIAM_PIN_DIR", default_value = DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
}

/// Runs the subcommand; exit 0 when all programs are attached, 1 otherwise.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let status = Datapath::status(&args.pin_dir)?;
    print!("{status}");
    Ok(if status.attached() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
