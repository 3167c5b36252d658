//! Inventory: pods, namespaces, service accounts and role mappings, from Kubernetes
//! (kube-rs reflectors, [`KubeInventory`]) or from a static YAML file ([`StaticInventory`]).
//!
//! Both sources implement the [`Inventory`] trait, which is all that
//! [`identity`](crate::identity) and [`policy`](crate::policy) use. [`MemoryInventory`] is a
//! third, hand-filled implementation for tests and demos.
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::policy::RoleSpec;

mod crd;
mod kube_index;
mod kube_source;
mod kube_watch;
mod memory;
mod static_file;
mod token_review;

pub use crd::{PodIdentityAssociation, PodIdentityAssociationSpec, crd_yaml as render_crd_yaml};
pub use kube_source::{
    KubeInventory, KubeInventoryConfig, client_default, client_for_url, install_crypto_provider,
};
pub use memory::MemoryInventory;
pub use static_file::{
    MAX_STATIC_FILE_BYTES, StaticAssociation, StaticFile, StaticFileError, StaticInventory,
    StaticNamespace, StaticWorkload, derived_uid,
};
pub use token_review::{
    EXTRA_POD_NAME, EXTRA_POD_UID, KubeTokenReviewer, ReviewedToken, TokenReviewError,
    interpret as interpret_token_review,
};

/// A pod as podiam needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodInfo {
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `spec.serviceAccountName` (`default` when unset).
    pub service_account: String,
    /// `status.podIPs` (empty until assigned).
    pub ips: Vec<IpAddr>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `spec.hostNetwork`.
    pub host_network: bool,
}

/// A `PodIdentityAssociation` as policy needs it: (namespace, service account) → role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Association {
    /// Name of the cluster-scoped `PodIdentityAssociation` object (for reasons and Events).
    pub name: String,
    /// Namespace of the service account.
    pub namespace: String,
    /// Service account name.
    pub service_account: String,
    /// Role ARN to assume (validated by policy, not here).
    pub role_arn: String,
    /// `ExternalId` for AssumeRole.
    pub external_id: Option<String>,
    /// `true` turns the EKS-Pod-Identity-style session tags off for this association.
    pub disable_session_tags: bool,
}

/// Errors of inventory operations that talk to an API server.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The Kubernetes API call failed (network, HTTP status, decoding).
    #[error("kubernetes API: {0}")]
    Api(String),
}

/// Source of pods, namespaces, service accounts and associations.
///
/// All lookup methods are synchronous reads of an in-memory cache; they never block on the
/// network. Only [`Inventory::refresh_pod`] and [`Inventory::wait_for_pod`] may talk to an API
/// server (bounded by the caller's timeout).
#[async_trait::async_trait]
pub trait Inventory: Send + Sync {
    /// Short name of the source for logs and `/readyz` (`"kubernetes"`, `"static"`, `"memory"`).
    fn source_name(&self) -> &'static str;

    /// The pod with `metadata.uid == uid`, if currently known.
    fn pod_by_uid(&self, uid: &str) -> Option<Arc<PodInfo>>;

    /// Every pod currently known (active or not), in no particular order. Used to prefetch
    /// credentials for mapped pods as they appear.
    fn pods(&self) -> Vec<Arc<PodInfo>>;

    /// Active pods (IP assigned, phase not `Succeeded`/`Failed`) that have `ip` among
    /// `status.podIPs`. More than one entry means the IP is ambiguous (reuse, hostNetwork).
    fn pods_by_ip(&self, ip: IpAddr) -> Vec<Arc<PodInfo>>;

    /// The workload whose cgroup path glob matches `path` (static source only; the path is
    /// relative to the cgroup v2 root and starts with `/`). Kubernetes returns `None`: pods
    /// are found there by the pod UID parsed from the path.
    fn pod_for_cgroup_path(&self, _path: &str) -> Option<Arc<PodInfo>> {
        None
    }

    /// `metadata.annotations` of namespace `ns`; `None` when the namespace is unknown.
    fn namespace_annotations(&self, ns: &str) -> Option<BTreeMap<String, String>>;

    /// `metadata.annotations` of service account `ns/sa`; `None` when unknown.
    fn service_account_annotations(&self, ns: &str, sa: &str) -> Option<BTreeMap<String, String>>;

    /// The association for service account `ns/sa`. If several objects name the same pair,
    /// the one with the lexicographically smallest object name wins (deterministic).
    fn association(&self, ns: &str, sa: &str) -> Option<Association>;

    /// A role attached directly to the workload with pod UID `uid` (static file entries with
    /// `roleArn`; [`crate::policy::RoleSource::StaticFile`]). Kubernetes returns `None`.
    fn workload_role(&self, _uid: &str) -> Option<RoleSpec> {
        None
    }

    /// `true` once every watched resource has completed its initial list.
    fn synced(&self) -> bool;

    /// `Some(reason)` while the cache may be out of date (a watch is failing, the file cannot
    /// be read); the last known state keeps being served meanwhile.
    fn stale(&self) -> Option<String>;

    /// Look the pod up directly at the source (bypassing the watch cache), store it and return
    /// it. Sources without a direct path return the cached value.
    async fn refresh_pod(&self, uid: &str) -> Result<Option<Arc<PodInfo>>, InventoryError> {
        Ok(self.pod_by_uid(uid))
    }

    /// Wait up to `timeout` (tokio time) for pod `uid` to become known: one direct lookup,
    /// then re-checks every 50 ms. `None` after the timeout.
    async fn wait_for_pod(&self, uid: &str, timeout: Duration) -> Option<Arc<PodInfo>> {
        let deadline = tokio::time::Instant::now() + timeout;
        if let Some(p) = self.pod_by_uid(uid) {
            return Some(p);
        }
        match tokio::time::timeout_at(deadline, self.refresh_pod(uid)).await {
            Ok(Ok(Some(p))) => return Some(p),
            Ok(Err(e)) => tracing::debug!(uid, error = %e, "direct pod lookup failed"),
            _ => {}
        }
        loop {
            if let Some(p) = self.pod_by_uid(uid) {
                return Some(p);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return None;
            }
            tokio::time::sleep_until(deadline.min(now + Duration::from_millis(50))).await;
        }
    }
}
