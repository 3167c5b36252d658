//! Locating the binaries the tests run.
//!
//! Cargo builds every `[[bin]]` of a package before running that package's integration
//! tests, into the same `target/<profile>/` as the test executable
//! (`target/<profile>/deps/<test>-<hash>`). So the binaries are found next to
//! `current_exe()/../..`. `podiam-cli` is the `podiam` CLI built from the same
//! `podiam::cli::main` as the agent's binary; set `PODIAM_BIN` to test another build
//! (e.g. `target/release/podiam`).
use std::path::PathBuf;

/// `target/<profile>/` of the running test executable.
pub fn target_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let deps = exe
        .parent()
        .ok_or_else(|| anyhow::anyhow!("test exe {} has no parent", exe.display()))?;
    let dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().unwrap_or(deps)
    } else {
        deps
    };
    Ok(dir.to_path_buf())
}

fn find(name: &str, env: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Ok(PathBuf::from(p));
    }
    let p = target_dir()?.join(name);
    if !p.exists() {
        anyhow::bail!(
            "{} not found; build it with `cargo build -p podiam-tests --bins` or set {env}",
            p.display()
        );
    }
    Ok(p)
}

/// The `podiam` CLI to test (`$PODIAM_BIN`, else `target/<profile>/podiam-cli`).
pub fn podiam_bin() -> anyhow::Result<PathBuf> {
    find("podiam-cli", "PODIAM_BIN")
}

/// The connect probe (`$PODIAM_PROBE_BIN`, else `target/<profile>/podiam-probe`).
pub fn probe_bin() -> anyhow::Result<PathBuf> {
    find("podiam-probe", "PODIAM_PROBE_BIN")
}
