//! `podiam gen-crd`: the `PodIdentityAssociation` CRD as YAML, rendered from the Rust type
//! (`cargo xtask gen-crd` writes it to `deploy/crd/podidentityassociation.yaml`).
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

/// Flags of `podiam gen-crd`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write to this file instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let yaml = crate::inventory::render_crd_yaml();
    match args.output {
        Some(path) => {
            std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{yaml}"),
    }
    Ok(ExitCode::SUCCESS)
}
