//! `podiam doctor`: what the datapath needs from this host, checked one item at a time.
use std::fmt;
use std::path::{Path, PathBuf};

use super::{DatapathError, cgroup, sys};

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// Short name (`kernel`, `cgroup2`, `bpffs`, `privileges`, `bpf-syscall`, `netns-cookie`,
    /// `cgroup`, `pin-dir`).
    pub name: &'static str,
    /// Whether the requirement is met.
    pub ok: bool,
    /// What was found, or — when failing — what is missing and why it is needed.
    pub detail: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = if self.ok { "ok  " } else { "FAIL" };
        write!(f, "{tag} {}: {}", self.name, self.detail)
    }
}

fn check(name: &'static str, r: Result<String, String>) -> Check {
    match r {
        Ok(detail) => Check {
            name,
            ok: true,
            detail,
        },
        Err(detail) => Check {
            name,
            ok: false,
            detail,
        },
    }
}

/// Options for [`doctor_with`]: also check a specific attach cgroup / pin directory.
#[derive(Clone, Debug, Default)]
pub struct DoctorOptions {
    /// Attach cgroup to validate (must exist on cgroup2).
    pub cgroup: Option<PathBuf>,
    /// Pin directory to validate (must be on bpffs, or creatable below `/sys/fs/bpf`).
    pub pin_dir: Option<PathBuf>,
}

/// Host checks with default options: kernel, cgroup2, bpffs, privileges, bpf(2), netns cookie.
pub fn doctor() -> Vec<Check> {
    doctor_with(&DoctorOptions::default())
}

/// Host checks, plus the cgroup and pin dir in `opts`. Read-only: mounts nothing.
pub fn doctor_with(opts: &DoctorOptions) -> Vec<Check> {
    let mut out = Vec::new();
    let (release, version) = sys::kernel_version();
    out.push(check(
        "kernel",
        match version {
            Some(v) if v >= (5, 8) => Ok(format!("{release} (>= 5.8: cgroup bpf_link)")),
            Some(_) => Err(DatapathError::KernelTooOld { found: release }.to_string()),
            None => Err(format!("cannot parse kernel release {release:?}")),
        },
    ));
    out.push(check(
        "cgroup2",
        match std::fs::read_to_string("/proc/self/mountinfo") {
            Ok(mi) => match cgroup::parse_cgroup2_mounts(&mi).first() {
                Some(p) => Ok(format!("mounted at {}", p.display())),
                None => Err(format!(
                    "no cgroup2 mount (attach will try to mount one at {})",
                    cgroup::PRIVATE_CGROUP2_MOUNT
                )),
            },
            Err(e) => Err(format!("cannot read /proc/self/mountinfo: {e}")),
        },
    ));
    let bpffs = Path::new(cgroup::BPFFS_MOUNT);
    out.push(check(
        "bpffs",
        if cgroup::is_bpffs(bpffs) {
            Ok(format!("mounted at {}", bpffs.display()))
        } else {
            Err(format!(
                "bpffs not mounted at {} (attach mounts it; pins need it)",
                bpffs.display()
            ))
        },
    ));
    let root = sys::has_bpf_caps();
    out.push(check(
        "privileges",
        if root {
            Ok("CAP_SYS_ADMIN or CAP_BPF+CAP_NET_ADMIN effective".into())
        } else {
            Err(DatapathError::NotRoot.to_string())
        },
    ));
    out.push(check(
        "bpf-syscall",
        match sys::probe_bpf_syscall() {
            Ok(()) => Ok("bpf(BPF_MAP_CREATE) works".into()),
            Err(e) => Err(format!("bpf(2) unusable: {e}")),
        },
    ));
    out.push(check(
        "netns-cookie",
        match sys::current_netns_cookie() {
            Ok(c) => Ok(format!("host netns cookie {c}")),
            Err(e) => Err(format!("SO_NETNS_COOKIE unavailable (Linux >= 5.14): {e}")),
        },
    ));
    if let Some(cg) = &opts.cgroup {
        out.push(check(
            "cgroup",
            cgroup::cgroup2_id(cg)
                .map(|id| format!("{} (cgroup id {id})", cg.display()))
                .map_err(|e| e.to_string()),
        ));
    }
    if let Some(pd) = &opts.pin_dir {
        let mut existing = pd.as_path();
        while !existing.exists() {
            match existing.parent() {
                Some(p) => existing = p,
                None => break,
            }
        }
        let below_default = pd.starts_with(bpffs) && !cgroup::is_bpffs(bpffs);
        out.push(check(
            "pin-dir",
            if cgroup::is_bpffs(existing) || below_default {
                Ok(format!("{} on bpffs", pd.display()))
            } else {
                Err(DatapathError::PinDirNotBpffs(pd.clone()).to_string())
            },
        ));
    }
    out
}
