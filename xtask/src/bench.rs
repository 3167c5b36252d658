//! `cargo xtask bench`: benchmarks, written to BENCHMARKS.md.

pub fn run() -> anyhow::Result<()> {
    anyhow::bail!("benchmarks are not built yet (issue 8)")
}
