//! `cargo xtask vm-test`: the datapath kernel tests inside QEMU on other kernels.

#[derive(clap::Args)]
pub struct VmTestArgs {
    /// Kernel series to boot (Debian cloud kernels), e.g. `6.1`, `6.12`. Repeatable.
    #[arg(long = "kernel")]
    pub kernels: Vec<String>,
    /// Keep the work directory (initramfs, logs) for inspection.
    #[arg(long)]
    pub keep: bool,
}

impl VmTestArgs {
    /// What `cargo xtask test` runs: one kernel other than the host's.
    pub fn ci_default() -> Self {
        Self {
            kernels: vec!["6.1".into()],
            keep: false,
        }
    }
}

pub fn run(_args: &VmTestArgs) -> anyhow::Result<()> {
    eprintln!("vm-test: not built yet (issue 7); skipping the VM suite");
    Ok(())
}
