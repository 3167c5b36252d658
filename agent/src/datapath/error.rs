//! [`DatapathError`]: every way loading, attaching, inspecting or removing the datapath fails.
//! Each message names the missing thing; causes (kernel `errno`s, aya errors) are attached as
//! `source()` so a chain printer (`anyhow`'s `{:#}`) renders one line.
use std::path::PathBuf;

/// Why a datapath operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    /// The process has neither CAP_SYS_ADMIN nor CAP_BPF + CAP_NET_ADMIN in its effective set.
    #[error("not running as root (CAP_BPF/CAP_SYS_ADMIN needed)")]
    NotRoot,
    /// Kernel older than 5.8 (cgroup `bpf_link`, `BPF_LINK_UPDATE`).
    #[error("kernel {found} is older than 5.8 (needs bpf_link for cgroup)")]
    KernelTooOld {
        /// `uname -r` of the running kernel.
        found: String,
    },
    /// No cgroup2 hierarchy is mounted and mounting a private one failed.
    #[error("no cgroup2 mount found and mounting one failed")]
    NoCgroup2(#[source] std::io::Error),
    /// The attach cgroup directory does not exist.
    #[error("cgroup {0} does not exist")]
    CgroupNotFound(PathBuf),
    /// The attach cgroup exists but is not a directory of a cgroup v2 mount.
    #[error("{0} is not a cgroup v2 directory (the datapath attaches to cgroup2 only)")]
    NotCgroup2(PathBuf),
    /// bpffs is not mounted where pins must go, and mounting it failed.
    #[error("bpffs not mounted at {path}")]
    BpffsNotMounted {
        /// The mount point tried (`/sys/fs/bpf`).
        path: PathBuf,
        /// Why mounting failed.
        #[source]
        source: std::io::Error,
    },
    /// The pin directory is not on a bpffs mount (pins can only live on bpffs).
    #[error("pin dir {0} is not on a bpffs mount (e.g. under /sys/fs/bpf)")]
    PinDirNotBpffs(PathBuf),
    /// Existing link pins in the pin dir belong to a different cgroup.
    #[error(
        "pins in {pin_dir} are attached to cgroup id {pinned_cgroup_id}, not {cgroup} (id {cgroup_id}); run `podiam uninstall --pin-dir {pin_dir}` first"
    )]
    PinnedElsewhere {
        /// The pin directory.
        pin_dir: PathBuf,
        /// cgroup id the pinned links are attached to.
        pinned_cgroup_id: u64,
        /// The cgroup asked for.
        cgroup: PathBuf,
        /// Its cgroup id (inode).
        cgroup_id: u64,
    },
    /// Nothing is installed at the pin dir (status, uninstall).
    #[error("nothing installed at {0} (no podiam pins)")]
    NotInstalled(PathBuf),
    /// The host netns cookie could not be read (`SO_NETNS_COOKIE`, Linux >= 5.14).
    #[error(
        "cannot read the host netns cookie (SO_NETNS_COOKIE, Linux >= 5.14); pass it explicitly"
    )]
    HostNetnsCookie(#[source] std::io::Error),
    /// A configuration value is unusable.
    #[error("invalid datapath config: {0}")]
    InvalidConfig(String),
    /// Loading the eBPF object (maps, relocations) failed.
    #[error("loading the eBPF object failed")]
    Load(#[source] aya::EbpfError),
    /// Loading, attaching or replacing one program failed.
    #[error("eBPF program {name}: {what} failed")]
    Program {
        /// Program name (`connect4`, `connect6`, `sock_ops`).
        name: &'static str,
        /// The step (`load`, `attach`, `pin`, `BPF_LINK_UPDATE`).
        what: &'static str,
        /// Cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A map operation failed.
    #[error("eBPF map {name}: {what} failed")]
    Map {
        /// Map name.
        name: &'static str,
        /// The step.
        what: &'static str,
        /// Cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A system call or file operation on a path failed.
    #[error("{what} {path} failed")]
    Io {
        /// The operation (`mkdir`, `open`, `BPF_OBJ_GET`, `unlink`, …).
        what: &'static str,
        /// The path it was applied to.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

impl DatapathError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn program(
        name: &'static str,
        what: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Program {
            name,
            what,
            source: Box::new(source),
        }
    }

    pub(crate) fn map(
        name: &'static str,
        what: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Map {
            name,
            what,
            source: Box::new(source),
        }
    }
}

/// Renders an error and its `source()` chain on one line, `a: b: c`.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each prerequisite error is one line naming what is missing (the CLI prints it as
    /// `podiam: error: <message>: <cause>`).
    #[test]
    fn prerequisite_errors_are_one_line_and_name_what_is_missing() {
        let cases: Vec<(DatapathError, &str)> = vec![
            (DatapathError::NotRoot, "root"),
            (
                DatapathError::KernelTooOld {
                    found: "4.19.0-27-amd64".into(),
                },
                "4.19.0-27-amd64",
            ),
            (
                DatapathError::NoCgroup2(std::io::Error::from(
                    std::io::ErrorKind::PermissionDenied,
                )),
                "cgroup2",
            ),
            (
                DatapathError::BpffsNotMounted {
                    path: PathBuf::from("/sys/fs/bpf"),
                    source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
                },
                "/sys/fs/bpf",
            ),
        ];
        for (err, needle) in cases {
            let line = error_chain(&err);
            assert!(!line.contains('\n'), "one line: {line:?}");
            assert!(line.contains(needle), "{line:?} names {needle:?}");
        }
    }
}
