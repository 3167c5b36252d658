//! Caller identity: which pod made a connection that reached the proxy.
//!
//! Contract used by the HTTP surfaces: [`CallerResolver::resolve`] maps the accepted
//! connection's peer and local socket addresses to a [`Caller`], or refuses.
use std::net::SocketAddr;
use std::sync::Arc;

use crate::inventory::PodInfo;

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
    UnknownPod { cgroup_id: u64 },
    /// The peer IP does not belong to the pod the cgroup resolved to.
    #[error("peer {peer} does not match pod {pod_uid}")]
    Mismatch { peer: SocketAddr, pod_uid: String },
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
