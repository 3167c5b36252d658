//! Builds the eBPF object from `agent-ebpf` with aya-build on the pinned nightly
//! (`cargo xtask setup` installs it and bpf-linker); the loader embeds it from
//! `$OUT_DIR/podiam-ebpf`.
use anyhow::{Context as _, anyhow};

/// Nightly whose LLVM major matches the bpf-linker build (LLVM 22).
const EBPF_TOOLCHAIN: &str = "nightly-2026-08-01";

fn main() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "podiam-ebpf")
        .ok_or_else(|| anyhow!("podiam-ebpf package not found"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("podiam-ebpf manifest has no parent"))?
        .as_str()
        .to_owned();
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "podiam-ebpf",
            root_dir: &root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(EBPF_TOOLCHAIN),
    )
}
