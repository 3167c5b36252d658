//! Caller identity: which pod made a connection that reached the proxy.
//!
//! Contract used by the HTTP surfaces: [`CallerResolver::resolve`] maps the accepted
//! connection's peer and local socket addresses to a [`Caller`], or refuses.
//!
//! Implementations:
//! - [`KernelCallerResolver`] (cgroup v2 hosts): origin record → cgroup id → cgroup path →
//!   pod UID → pod, cross-checked against the peer IP.
//! - [`PeerIpCallerResolver`] (cgroup v1 fallback, kube2iam semantics): peer IP → pod.
//!
//! [`IdentityMode`] names the mode in use for logs and `/readyz`.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::inventory::PodInfo;

pub mod cgroup_path;
pub mod cgroup_walk;
mod kernel;
mod peer_ip;
#[cfg(test)]
mod tests;

pub use cgroup_path::{PodCgroup, parse_pod_cgroup};
pub use cgroup_walk::CgroupPaths;
pub use kernel::{DEFAULT_POD_LOOKUP_TIMEOUT, KernelCallerResolver};
pub use peer_ip::PeerIpCallerResolver;

/// How callers are identified on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityMode {
    /// cgroup v2 origin records (the eBPF datapath): strong identity.
    Kernel,
    /// Peer IP only (cgroup v1 host, kube2iam semantics): weaker, say so.
    PeerIp,
}

impl IdentityMode {
    /// A one-line description for logs and `/readyz` details.
    pub fn describe(self) -> &'static str {
        match self {
            IdentityMode::Kernel => {
                "kernel: callers identified by cgroup v2 origin records, cross-checked by peer IP"
            }
            IdentityMode::PeerIp => {
                "peer-ip: no cgroup v2 hierarchy; callers identified by peer IP only (kube2iam semantics)"
            }
        }
    }
}

/// The mount point of the cgroup v2 hierarchy, from `/proc/self/mountinfo` content
/// (`proc(5)`: field 5 is the mount point, the field after ` - ` is the fs type). On hybrid
/// hosts this is `/sys/fs/cgroup/unified`. `None` on pure cgroup v1 hosts (→
/// [`IdentityMode::PeerIp`]).
pub fn cgroup2_mount_from_mountinfo(mountinfo: &str) -> Option<PathBuf> {
    // Prefer the conventional locations when several are mounted.
    crate::datapath::cgroup::parse_cgroup2_mounts(mountinfo)
        .into_iter()
        .min_by_key(|p| match p.to_str() {
            Some("/sys/fs/cgroup") => 0,
            Some("/sys/fs/cgroup/unified") => 1,
            _ => 2,
        })
}

/// Choose the identity mode for this host, with a reason for logs and `/readyz`.
///
/// `cgroup2_root`: the cgroup v2 mount ([`detect_cgroup2_mount`]); `expect_kubepods`: the
/// inventory is Kubernetes, so pod cgroups must be visible in that hierarchy. On hybrid
/// hosts whose kubelet uses the cgroupfs driver, pods live only in the v1 hierarchies and no
/// directory named `*kubepods*` appears under the v2 root within 3 levels: peer-IP mode then.
pub fn detect_mode(cgroup2_root: Option<&Path>, expect_kubepods: bool) -> (IdentityMode, String) {
    let Some(root) = cgroup2_root else {
        return (
            IdentityMode::PeerIp,
            "no cgroup v2 hierarchy is mounted".into(),
        );
    };
    if !expect_kubepods {
        return (
            IdentityMode::Kernel,
            format!("cgroup v2 at {}", root.display()),
        );
    }
    match find_kubepods(root, 3) {
        Some(p) => (
            IdentityMode::Kernel,
            format!(
                "cgroup v2 at {}, pods under {}",
                root.display(),
                p.display()
            ),
        ),
        None => (
            IdentityMode::PeerIp,
            format!(
                "cgroup v2 at {} holds no kubepods hierarchy (kubelet on cgroup v1?)",
                root.display()
            ),
        ),
    }
}

fn find_kubepods(dir: &Path, depth: usize) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut subdirs = Vec::new();
    for e in entries.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if e.file_name().to_string_lossy().contains("kubepods") {
            return Some(e.path());
        }
        subdirs.push(e.path());
    }
    if depth <= 1 {
        return None;
    }
    subdirs.iter().find_map(|d| find_kubepods(d, depth - 1))
}

/// Build the caller resolver for `mode`: [`KernelCallerResolver`] over `origins` and the
/// cgroup v2 root, or [`PeerIpCallerResolver`]. `pod_lookup_timeout` bounds holding a
/// request for an unknown pod.
pub fn build_resolver(
    mode: IdentityMode,
    origins: Arc<dyn crate::datapath::OriginLookup>,
    inventory: Arc<dyn crate::inventory::Inventory>,
    cgroup2_root: Option<&Path>,
    pod_lookup_timeout: std::time::Duration,
) -> Arc<dyn CallerResolver> {
    match (mode, cgroup2_root) {
        (IdentityMode::Kernel, Some(root)) => Arc::new(
            KernelCallerResolver::new(origins, inventory, root)
                .with_pod_lookup_timeout(pod_lookup_timeout),
        ),
        _ => Arc::new(
            PeerIpCallerResolver::new(inventory).with_pod_lookup_timeout(pod_lookup_timeout),
        ),
    }
}

/// [`cgroup2_mount_from_mountinfo`] on this process's `/proc/self/mountinfo`.
pub fn detect_cgroup2_mount() -> Option<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|s| cgroup2_mount_from_mountinfo(&s))
}

/// The identified caller of one request.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The pod the connection came from.
    pub pod: Arc<PodInfo>,
    /// cgroup v2 id (inode number of the cgroup directory) from the origin record; `None` on
    /// the peer-IP fallback (cgroup v1 hosts).
    pub cgroup_id: Option<u64>,
    /// Container ID parsed from the cgroup path, when known.
    pub container_id: Option<String>,
    /// The connection's peer address as seen by `accept()` (pod IP and ephemeral port).
    pub peer: SocketAddr,
}

/// Why a caller could not be identified. Every variant means: refuse the request
/// (fail closed), never fall back to another identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The connection has no origin record: it did not come through the eBPF redirect.
    #[error("connection from {0} did not come through the redirect (no origin record)")]
    NoOrigin(SocketAddr),
    /// The origin's cgroup maps to no known pod (after the lookup hold-time).
    #[error("no pod known for cgroup {cgroup_id}")]
    UnknownPod {
        /// The origin record's cgroup id.
        cgroup_id: u64,
    },
    /// The peer IP does not belong to the pod the cgroup resolved to.
    #[error("peer {peer} does not match pod {pod_uid}")]
    Mismatch {
        /// `accept()`'s remote address.
        peer: SocketAddr,
        /// UID of the pod the cgroup resolved to.
        pod_uid: String,
    },
    /// Something else failed while resolving (I/O on cgroupfs, inventory unavailable).
    #[error("identity lookup failed: {0}")]
    Lookup(String),
}

/// Resolves accepted connections to callers.
#[async_trait::async_trait]
pub trait CallerResolver: Send + Sync {
    /// `peer` is `accept()`'s remote address, `local` the listener-side address.
    /// May wait (bounded, `--pod-lookup-timeout`) for the inventory to learn a new pod.
    async fn resolve(&self, peer: SocketAddr, local: SocketAddr) -> Result<Caller, IdentityError>;
}
