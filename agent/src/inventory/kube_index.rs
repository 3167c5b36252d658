//! The node's pods indexed by UID and by IP, maintained from the pod reflector's events.
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::PodInfo;

/// [`PodInfo`] from a Pod object; `None` without `metadata.uid`. Unparseable IPs are skipped.
pub(crate) fn pod_info_from(pod: &Pod) -> Option<PodInfo> {
    let md = &pod.metadata;
    let uid = md.uid.clone().filter(|u| !u.is_empty())?;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let mut ips: Vec<IpAddr> = status
        .and_then(|s| s.pod_ips.as_ref())
        .map(|v| v.iter().filter_map(|p| p.ip.parse().ok()).collect())
        .unwrap_or_default();
    if let Some(ip) = status
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|s| s.parse().ok())
        && !ips.contains(&ip)
    {
        ips.insert(0, ip);
    }
    Some(PodInfo {
        uid,
        namespace: md.namespace.clone().unwrap_or_default(),
        name: md.name.clone().unwrap_or_default(),
        service_account: spec
            .and_then(|s| s.service_account_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".to_string()),
        ips,
        annotations: md.annotations.clone().unwrap_or_default(),
        host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
    })
}

/// Whether a pod counts for IP lookups: IP assigned and phase not `Succeeded`/`Failed`
/// (kube2iam's informer index rule).
pub(crate) fn is_active(pod: &Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

/// How many recently deleted pod UIDs are remembered (so a racing direct lookup cannot
/// resurrect a pod whose deletion the watch has already delivered).
const TOMBSTONES: usize = 4096;

#[derive(Default)]
pub(crate) struct PodIndex {
    by_uid: HashMap<String, Arc<PodInfo>>,
    active: HashSet<String>,
    by_ip: HashMap<IpAddr, Vec<String>>,
    tombstones: HashSet<String>,
    tombstone_order: VecDeque<String>,
}

impl PodIndex {
    pub fn get(&self, uid: &str) -> Option<Arc<PodInfo>> {
        self.by_uid.get(uid).cloned()
    }

    /// Every indexed pod.
    pub fn all(&self) -> Vec<Arc<PodInfo>> {
        self.by_uid.values().cloned().collect()
    }

    pub fn by_ip(&self, ip: IpAddr) -> Vec<Arc<PodInfo>> {
        self.by_ip
            .get(&ip)
            .map(|uids| {
                uids.iter()
                    .filter_map(|u| self.by_uid.get(u).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.by_uid.len()
    }

    fn unindex_ips(&mut self, info: &PodInfo) {
        for ip in &info.ips {
            if let Some(v) = self.by_ip.get_mut(ip) {
                v.retain(|u| u != &info.uid);
                if v.is_empty() {
                    self.by_ip.remove(ip);
                }
            }
        }
    }

    pub fn apply(&mut self, pod: &Pod) {
        let Some(info) = pod_info_from(pod) else {
            return;
        };
        if let Some(old) = self.by_uid.remove(&info.uid) {
            self.unindex_ips(&old);
        }
        let active = is_active(pod);
        if active {
            for ip in &info.ips {
                let v = self.by_ip.entry(*ip).or_default();
                if !v.contains(&info.uid) {
                    v.push(info.uid.clone());
                }
            }
            self.active.insert(info.uid.clone());
        } else {
            self.active.remove(&info.uid);
        }
        self.by_uid.insert(info.uid.clone(), Arc::new(info));
    }

    pub fn delete(&mut self, pod: &Pod) {
        let Some(uid) = pod.metadata.uid.as_deref() else {
            return;
        };
        if let Some(old) = self.by_uid.remove(uid) {
            self.unindex_ips(&old);
        }
        self.active.remove(uid);
        if self.tombstones.insert(uid.to_string()) {
            self.tombstone_order.push_back(uid.to_string());
            if self.tombstone_order.len() > TOMBSTONES
                && let Some(old) = self.tombstone_order.pop_front()
            {
                self.tombstones.remove(&old);
            }
        }
    }

    /// Add a pod seen by a direct list, unless the index already knows it (the watch is
    /// authoritative) or it was deleted recently. Returns whether it was added.
    pub fn add_from_direct(&mut self, pod: &Pod) -> bool {
        match pod.metadata.uid.as_deref() {
            Some(uid) if !self.by_uid.contains_key(uid) && !self.tombstones.contains(uid) => {
                self.apply(pod);
                true
            }
            _ => false,
        }
    }

    /// Replace everything with `pods` (after a (re)list).
    pub fn rebuild<'a>(&mut self, pods: impl IntoIterator<Item = &'a Pod>) {
        let tombstones = std::mem::take(&mut self.tombstones);
        let tombstone_order = std::mem::take(&mut self.tombstone_order);
        *self = PodIndex {
            tombstones,
            tombstone_order,
            ..Default::default()
        };
        for p in pods {
            self.apply(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, ip: &str, phase: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": uid, "namespace": "ns", "uid": uid},
            "spec": {"containers": []},
            "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}, {"ip": "fd00::1"}]}
        }))
        .unwrap()
    }

    #[test]
    fn indexes_active_pods_by_ip_and_tombstones_deletions() {
        let mut idx = PodIndex::default();
        idx.apply(&pod("a", "10.0.0.1", "Running"));
        idx.apply(&pod("b", "10.0.0.1", "Succeeded"));
        let a = idx.get("a").unwrap();
        assert_eq!(a.service_account, "default");
        assert_eq!(a.ips.len(), 2, "podIP and podIPs merged without duplicates");
        let by_ip: Vec<_> = idx
            .by_ip("10.0.0.1".parse().unwrap())
            .iter()
            .map(|p| p.uid.clone())
            .collect();
        assert_eq!(by_ip, vec!["a"], "completed pods are not indexed by IP");
        assert!(idx.get("b").is_some(), "but still known by UID");
        // IP change moves the index entry.
        idx.apply(&pod("a", "10.0.0.2", "Running"));
        assert!(idx.by_ip("10.0.0.1".parse().unwrap()).is_empty());
        assert_eq!(idx.by_ip("10.0.0.2".parse().unwrap()).len(), 1);
        // Deleted pods cannot be resurrected by a racing direct list; unknown ones can be added.
        idx.delete(&pod("a", "10.0.0.2", "Running"));
        assert!(!idx.add_from_direct(&pod("a", "10.0.0.2", "Running")));
        assert!(idx.get("a").is_none());
        assert!(idx.add_from_direct(&pod("c", "10.0.0.3", "Pending")));
        assert!(
            !idx.add_from_direct(&pod("c", "10.0.0.9", "Running")),
            "known pods are left to the watch"
        );
        assert_eq!(idx.get("c").unwrap().ips[0].to_string(), "10.0.0.3");
        // A relist keeps the tombstones.
        idx.rebuild([&pod("d", "10.0.0.4", "Running")]);
        assert_eq!(idx.len(), 1);
        assert!(!idx.add_from_direct(&pod("a", "10.0.0.2", "Running")));
        // Pods without a UID are ignored.
        let mut no_uid = pod("x", "10.0.0.5", "Running");
        no_uid.metadata.uid = None;
        idx.apply(&no_uid);
        assert_eq!(idx.len(), 1);
    }
}
