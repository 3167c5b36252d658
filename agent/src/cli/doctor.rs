//! `podiam doctor`: one line per requirement; exit 1 if any fails.
use std::path::PathBuf;
use std::process::ExitCode;

use crate::datapath::{DoctorOptions, doctor_with};

/// Flags of `podiam doctor`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also check this attach cgroup.
    #[arg(long, env = "PODIAM_CGROUP")]
    pub cgroup: Option<PathBuf>,
    /// Also check this pin directory.
    #[arg(long, env = "PODIAM_PIN_DIR")]
    pub pin_dir: Option<PathBuf>,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let checks = doctor_with(&DoctorOptions {
        cgroup: args.cgroup,
        pin_dir: args.pin_dir,
    });
    for c in &checks {
        println!("{c}");
    }
    Ok(if checks.iter().all(|c| c.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
