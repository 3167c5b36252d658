//! [`PeerIpCallerResolver`]: the cgroup v1 fallback — identify the caller by its peer IP
//! (kube2iam semantics).
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::kernel::{DEFAULT_POD_LOOKUP_TIMEOUT, canonical};
use super::{Caller, CallerResolver, IdentityError, IdentityMode};
use crate::inventory::{Inventory, PodInfo};

/// Identifies callers by peer IP: the single active non-hostNetwork pod with that IP.
/// No pod (after waiting up to `pod_lookup_timeout`, re-checking every 50 ms) or more than
/// one (IP reuse) → [`IdentityError::Lookup`], never a guess. hostNetwork pods cannot be told
/// apart by IP and are never matched. Weaker than [`super::KernelCallerResolver`]: use only
/// where no cgroup v2 hierarchy exists, and report [`IdentityMode::PeerIp`].
pub struct PeerIpCallerResolver {
    inventory: Arc<dyn Inventory>,
    pod_lookup_timeout: Duration,
}

impl PeerIpCallerResolver {
    /// Pod lookup timeout defaults to [`DEFAULT_POD_LOOKUP_TIMEOUT`].
    pub fn new(inventory: Arc<dyn Inventory>) -> Self {
        Self {
            inventory,
            pod_lookup_timeout: DEFAULT_POD_LOOKUP_TIMEOUT,
        }
    }

    /// Set the bound on waiting for an unknown IP.
    pub fn with_pod_lookup_timeout(mut self, timeout: Duration) -> Self {
        self.pod_lookup_timeout = timeout;
        self
    }

    /// Always [`IdentityMode::PeerIp`].
    pub fn mode(&self) -> IdentityMode {
        IdentityMode::PeerIp
    }

    fn candidates(&self, peer: SocketAddr) -> Vec<Arc<PodInfo>> {
        let ip = canonical(peer.ip());
        let mut v = self.inventory.pods_by_ip(ip);
        if let std::net::IpAddr::V4(v4) = ip {
            // Pods listed with an IPv4-mapped IPv6 address.
            v.extend(self.inventory.pods_by_ip(v4.to_ipv6_mapped().into()));
        }
        v.retain(|p| !p.host_network);
        v.sort_by(|a, b| a.uid.cmp(&b.uid));
        v.dedup_by(|a, b| a.uid == b.uid);
        v
    }
}

#[async_trait::async_trait]
impl CallerResolver for PeerIpCallerResolver {
    async fn resolve(&self, peer: SocketAddr, _local: SocketAddr) -> Result<Caller, IdentityError> {
        let deadline = tokio::time::Instant::now() + self.pod_lookup_timeout;
        loop {
            let pods = self.candidates(peer);
            match pods.len() {
                1 => {
                    return Ok(Caller {
                        pod: pods[0].clone(),
                        cgroup_id: None,
                        container_id: None,
                        peer,
                    });
                }
                0 => {}
                n => {
                    let uids: Vec<&str> = pods.iter().map(|p| p.uid.as_str()).collect();
                    tracing::warn!(%peer, n, ?uids, "several pods share the peer IP; refusing");
                    return Err(IdentityError::Lookup(format!(
                        "{n} pods share IP {} ({}); refusing",
                        peer.ip(),
                        uids.join(", ")
                    )));
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(IdentityError::Lookup(format!(
                    "no running non-hostNetwork pod has IP {}",
                    peer.ip()
                )));
            }
            tokio::time::sleep_until(deadline.min(now + Duration::from_millis(50))).await;
        }
    }
}
