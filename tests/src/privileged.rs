//! Guard for kernel tests: they must fail, not skip, when they cannot run.

/// `Err` with a clear message when this process is not root, lacks CAP_SYS_ADMIN (or
/// CAP_BPF + CAP_NET_ADMIN), or cannot use `bpf(2)`.
pub fn check_privileged() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!(
            "kernel tests need root (run: sudo -E cargo test -p podiam-tests --test datapath)"
        );
    }
    if !podiam::datapath::sys::has_bpf_caps() {
        anyhow::bail!("kernel tests need CAP_SYS_ADMIN or CAP_BPF+CAP_NET_ADMIN");
    }
    podiam::datapath::sys::probe_bpf_syscall()
        .map_err(|e| anyhow::anyhow!("kernel tests need a usable bpf(2) syscall: {e}"))?;
    Ok(())
}

/// Panics with [`check_privileged`]'s message (so the calling test fails).
pub fn require_privileged() {
    if let Err(e) = check_privileged() {
        panic!("privileged test cannot run: {e:#}");
    }
}
