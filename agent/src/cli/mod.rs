//! Command line: `podiam <subcommand>`. One file per subcommand, each with a clap `Args`
//! struct and a `run(args) -> anyhow::Result<ExitCode>`; add a subcommand by adding a file,
//! a [`Command`] variant and a match arm in [`run`].
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod datapath_attach;
pub mod doctor;
pub mod status;
pub mod uninstall;

/// podiam: per-pod IAM roles through an eBPF-redirected metadata proxy.
#[derive(Debug, Parser)]
#[command(name = "podiam", version, about)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// All subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach the eBPF redirect to a cgroup, pin it, and wait for SIGTERM/SIGINT (pins stay).
    DatapathAttach(datapath_attach::Args),
    /// Detach the eBPF programs and remove every pin.
    Uninstall(uninstall::Args),
    /// Show attached programs, pins, redirect config and counters.
    Status(status::Args),
    /// Check kernel, cgroup v2, bpffs, privileges and BPF; name what is missing.
    Doctor(doctor::Args),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::DatapathAttach(a) => datapath_attach::run(a),
        Command::Uninstall(a) => uninstall::run(a),
        Command::Status(a) => status::run(a),
        Command::Doctor(a) => doctor::run(a),
    }
}

/// Process entry point: parses `std::env::args`, runs, prints a failure as one line
/// `podiam: error: <message>: <cause>: …` on stderr and exits 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("podiam: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
