//! [`MemoryInventory`]: an [`Inventory`] filled by hand, for tests and demos.
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Notify;

use super::{Association, Inventory, PodInfo};
use crate::policy::RoleSpec;

#[derive(Default)]
struct State {
    pods: HashMap<String, Arc<PodInfo>>,
    cgroup_paths: Vec<(String, String)>,
    namespaces: HashMap<String, BTreeMap<String, String>>,
    service_accounts: HashMap<(String, String), BTreeMap<String, String>>,
    associations: HashMap<(String, String), Association>,
    workload_roles: HashMap<String, RoleSpec>,
    stale: Option<String>,
    unsynced: bool,
}

/// An in-memory [`Inventory`]: every setter takes effect on the next lookup and wakes
/// [`Inventory::wait_for_pod`] waiters.
#[derive(Default)]
pub struct MemoryInventory {
    state: RwLock<State>,
    changed: Notify,
}

impl MemoryInventory {
    /// An empty, synced inventory.
    pub fn new() -> Self {
        Self::default()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Add or replace a pod (keyed by UID).
    pub fn upsert_pod(&self, pod: PodInfo) -> Arc<PodInfo> {
        let pod = Arc::new(pod);
        self.write().pods.insert(pod.uid.clone(), pod.clone());
        self.changed.notify_waiters();
        pod
    }

    /// Remove a pod by UID.
    pub fn remove_pod(&self, uid: &str) {
        let mut st = self.write();
        st.pods.remove(uid);
        st.cgroup_paths.retain(|(_, u)| u != uid);
    }

    /// Map an exact cgroup path (relative to the cgroup root, leading `/`) to a pod UID,
    /// answered by [`Inventory::pod_for_cgroup_path`].
    pub fn set_cgroup_path(&self, path: &str, uid: &str) {
        self.write()
            .cgroup_paths
            .push((path.to_string(), uid.to_string()));
        self.changed.notify_waiters();
    }

    /// Set a namespace's annotations.
    pub fn set_namespace(&self, ns: &str, annotations: BTreeMap<String, String>) {
        self.write().namespaces.insert(ns.to_string(), annotations);
    }

    /// Set a service account's annotations.
    pub fn set_service_account(&self, ns: &str, sa: &str, annotations: BTreeMap<String, String>) {
        self.write()
            .service_accounts
            .insert((ns.to_string(), sa.to_string()), annotations);
    }

    /// Add or replace the association for (namespace, service account).
    pub fn set_association(&self, a: Association) {
        self.write()
            .associations
            .insert((a.namespace.clone(), a.service_account.clone()), a);
    }

    /// Remove the association for (namespace, service account).
    pub fn remove_association(&self, ns: &str, sa: &str) {
        self.write()
            .associations
            .remove(&(ns.to_string(), sa.to_string()));
    }

    /// Attach a role directly to a pod UID (as the static file does).
    pub fn set_workload_role(&self, uid: &str, role: RoleSpec) {
        self.write().workload_roles.insert(uid.to_string(), role);
    }

    /// Mark the inventory stale (`Some(reason)`) or fresh (`None`).
    pub fn set_stale(&self, reason: Option<String>) {
        self.write().stale = reason;
    }

    /// Mark the inventory as not (yet) synced.
    pub fn set_synced(&self, synced: bool) {
        self.write().unsynced = !synced;
    }
}

#[async_trait::async_trait]
impl Inventory for MemoryInventory {
    fn source_name(&self) -> &'static str {
        "memory"
    }

    fn pod_by_uid(&self, uid: &str) -> Option<Arc<PodInfo>> {
        self.read().pods.get(uid).cloned()
    }

    fn pods(&self) -> Vec<Arc<PodInfo>> {
        self.read().pods.values().cloned().collect()
    }

    fn pods_by_ip(&self, ip: IpAddr) -> Vec<Arc<PodInfo>> {
        let mut v: Vec<_> = self
            .read()
            .pods
            .values()
            .filter(|p| p.ips.contains(&ip))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.uid.cmp(&b.uid));
        v
    }

    fn pod_for_cgroup_path(&self, path: &str) -> Option<Arc<PodInfo>> {
        let st = self.read();
        let uid = st.cgroup_paths.iter().find(|(p, _)| p == path)?.1.clone();
        st.pods.get(&uid).cloned()
    }

    fn namespace_annotations(&self, ns: &str) -> Option<BTreeMap<String, String>> {
        self.read().namespaces.get(ns).cloned()
    }

    fn service_account_annotations(&self, ns: &str, sa: &str) -> Option<BTreeMap<String, String>> {
        self.read()
            .service_accounts
            .get(&(ns.to_string(), sa.to_string()))
            .cloned()
    }

    fn association(&self, ns: &str, sa: &str) -> Option<Association> {
        self.read()
            .associations
            .get(&(ns.to_string(), sa.to_string()))
            .cloned()
    }

    fn workload_role(&self, uid: &str) -> Option<RoleSpec> {
        self.read().workload_roles.get(uid).cloned()
    }

    fn synced(&self) -> bool {
        !self.read().unsynced
    }

    fn stale(&self) -> Option<String> {
        self.read().stale.clone()
    }

    async fn wait_for_pod(&self, uid: &str, timeout: Duration) -> Option<Arc<PodInfo>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if let Some(p) = self.pod_by_uid(uid) {
                return Some(p);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.pod_by_uid(uid);
            }
        }
    }
}
