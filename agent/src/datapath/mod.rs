//! Datapath: loads, attaches and pins the eBPF programs from `podiam-ebpf`, and answers
//! "who made this connection?" from the kernel's origin records.
//!
//! Entry points: [`Datapath::attach`] (load + attach + pin, adopting existing pins),
//! [`Datapath::open`] (maps of an attached datapath), [`Datapath::status`],
//! [`Datapath::uninstall`], [`doctor`]. Kernel side and map layouts: `agent-ebpf`.
use std::net::SocketAddr;

pub mod cgroup;
pub mod collector;
pub mod config;
pub mod doctor;
mod error;
mod loader;
mod maps;
pub mod pins;
pub mod sys;

pub use cgroup::find_cgroup2_root;
pub use config::{DEFAULT_AGENT_MARK, DEFAULT_PIN_DIR, DatapathConfig};
pub use doctor::{Check, DoctorOptions, doctor, doctor_with};
pub use error::{DatapathError, error_chain};
pub use loader::Datapath;
pub use maps::Counters;
pub use pins::{Status, Uninstalled};

/// Which metadata service a redirected connection was aimed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    /// EC2 instance metadata (169.254.169.254:80, [fd00:ec2::254]:80).
    Imds,
    /// EKS Pod Identity / container credentials (169.254.170.23:80, [fd00:ec2::23]:80).
    PodIdentity,
}

/// The kernel's record of a redirected connection, written by `cgroup/connect4|6` at
/// `connect()` time and re-keyed by the client 4-tuple in `sock_ops` (ACTIVE_ESTABLISHED).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// cgroup v2 id of the connecting task (`bpf_get_current_cgroup_id`; equals the inode
    /// number of the cgroup directory).
    pub cgroup_id: u64,
    /// Network namespace cookie of the socket (`bpf_get_netns_cookie`).
    pub netns_cookie: u64,
    /// Process ID (kernel tgid) of the connecting task.
    pub pid: u32,
    /// Thread ID (kernel pid) of the connecting task.
    pub tid: u32,
    /// uid of the connecting task (`bpf_get_current_uid_gid`: the real uid, in the initial
    /// user namespace).
    pub uid: u32,
    /// gid of the connecting task (real gid, initial user namespace).
    pub gid: u32,
    /// The address the application dialled, before the rewrite (IPv4 dials as `V4`;
    /// v4-mapped IPv6 dials are reported as `V4` too).
    pub original_dst: SocketAddr,
    /// Which service that address belongs to.
    pub service: Service,
}

/// Looks up the origin record of an accepted connection.
pub trait OriginLookup: Send + Sync {
    /// `peer` is `accept()`'s remote address (the pod's IP and ephemeral port), `local` the
    /// proxy's address on that connection. `None` when the connection did not come through
    /// the redirect (or the record was evicted).
    fn origin_of(&self, peer: SocketAddr, local: SocketAddr) -> Option<Origin>;

    /// Deletes the record of `peer` → `local` once it has been read, so that a later
    /// connection reusing the same 4-tuple (IP reuse, a direct dial of the proxy) can never
    /// inherit it. Default: nothing (test doubles).
    fn forget(&self, _peer: SocketAddr, _local: SocketAddr) {}
}
