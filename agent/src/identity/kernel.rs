//! [`KernelCallerResolver`]: origin record → cgroup id → cgroup path → pod, cross-checked
//! against the peer IP.
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::cgroup_path::parse_pod_cgroup;
use super::cgroup_walk::CgroupPaths;
use super::{Caller, CallerResolver, IdentityError, IdentityMode};
use crate::datapath::OriginLookup;
use crate::inventory::{Inventory, PodInfo};

/// Default bound on holding a request while the inventory learns a new pod.
pub const DEFAULT_POD_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Identifies callers from the kernel's origin records (cgroup v2 hosts).
///
/// Steps: origin record (none → [`IdentityError::NoOrigin`]) → cgroup id → cgroup path
/// (walk of the cgroup v2 hierarchy, cached) → static-file glob
/// ([`Inventory::pod_for_cgroup_path`]) or pod UID parsed from the kubelet layout → pod by UID,
/// waiting up to `pod_lookup_timeout` (with a direct API lookup) for a pod not yet known
/// (then [`IdentityError::UnknownPod`]) → cross-check: the peer IP must be one of the pod's
/// IPs ([`IdentityError::Mismatch`] otherwise).
///
/// hostNetwork pods: Kubernetes reports the node's IPs as their `status.podIPs`, so the
/// cross-check requires the peer to be one of those node IPs; the cgroup remains the
/// identity. A pod with no IPs yet fails the cross-check (fail closed).
pub struct KernelCallerResolver {
    origins: Arc<dyn OriginLookup>,
    inventory: Arc<dyn Inventory>,
    cgroups: Arc<CgroupPaths>,
    pod_lookup_timeout: Duration,
}

/// Unify v4-mapped IPv6 (`::ffff:a.b.c.d`) with IPv4.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

pub(crate) fn pod_has_ip(pod: &PodInfo, ip: IpAddr) -> bool {
    let ip = canonical(ip);
    pod.ips.iter().any(|p| canonical(*p) == ip)
}

impl KernelCallerResolver {
    /// `cgroup_root`: mount point of the cgroup v2 hierarchy the eBPF programs are attached
    /// to. The pod lookup timeout defaults to [`DEFAULT_POD_LOOKUP_TIMEOUT`].
    pub fn new(
        origins: Arc<dyn OriginLookup>,
        inventory: Arc<dyn Inventory>,
        cgroup_root: impl Into<PathBuf>,
    ) -> Self {
        Self {
            origins,
            inventory,
            cgroups: CgroupPaths::new(cgroup_root),
            pod_lookup_timeout: DEFAULT_POD_LOOKUP_TIMEOUT,
        }
    }

    /// Set the bound on waiting for an unknown pod (`--pod-lookup-timeout`).
    pub fn with_pod_lookup_timeout(mut self, timeout: Duration) -> Self {
        self.pod_lookup_timeout = timeout;
        self
    }

    /// Always [`IdentityMode::Kernel`].
    pub fn mode(&self) -> IdentityMode {
        IdentityMode::Kernel
    }

    /// The cgroup path cache (shared, e.g. for `podiam status`).
    pub fn cgroup_paths(&self) -> &Arc<CgroupPaths> {
        &self.cgroups
    }
}

#[async_trait::async_trait]
impl CallerResolver for KernelCallerResolver {
    async fn resolve(&self, peer: SocketAddr, local: SocketAddr) -> Result<Caller, IdentityError> {
        let origin = self
            .origins
            .origin_of(peer, local)
            .ok_or(IdentityError::NoOrigin(peer))?;
        // One connection, one read: a later connection on the same 4-tuple must bring its
        // own record (the server caches the caller for the connection's lifetime).
        self.origins.forget(peer, local);
        let cgroup_id = origin.cgroup_id;
        let path = self
            .cgroups
            .path_of(cgroup_id)
            .await
            .map_err(|e| IdentityError::Lookup(format!("cgroup walk: {e}")))?
            .ok_or(IdentityError::UnknownPod { cgroup_id })?;
        let parsed = parse_pod_cgroup(&path);
        let container_id = parsed.as_ref().and_then(|p| p.container_id.clone());
        let pod = match self.inventory.pod_for_cgroup_path(&path) {
            Some(p) => p,
            None => {
                let uid = &parsed
                    .as_ref()
                    .ok_or(IdentityError::UnknownPod { cgroup_id })?
                    .pod_uid;
                match self.inventory.pod_by_uid(uid) {
                    Some(p) => p,
                    None => {
                        tracing::debug!(
                            uid,
                            cgroup_id,
                            path,
                            "pod not in inventory yet; holding request"
                        );
                        self.inventory
                            .wait_for_pod(uid, self.pod_lookup_timeout)
                            .await
                            .ok_or(IdentityError::UnknownPod { cgroup_id })?
                    }
                }
            }
        };
        if !pod_has_ip(&pod, peer.ip()) {
            tracing::warn!(%peer, pod = %pod.name, ns = %pod.namespace, uid = %pod.uid, cgroup_id, "peer IP is not the pod's IP; refusing");
            return Err(IdentityError::Mismatch {
                peer,
                pod_uid: pod.uid.clone(),
            });
        }
        Ok(Caller {
            pod,
            cgroup_id: Some(cgroup_id),
            container_id,
            peer,
        })
    }
}
