//! The node's pods indexed by UID and by IP, maintained from the pod reflector's events.
use std::collections::{HashMap, HashSet};
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

#[derive(Default)]
pub(crate) struct PodIndex {
    by_uid: HashMap<String, Arc<PodInfo>>,
    active: HashSet<String>,
    by_ip: HashMap<IpAddr, Vec<String>>,
}

impl PodIndex {
    pub fn get(&self, uid: &str) -> Option<Arc<PodInfo>> {
        self.by_uid.get(uid).cloned()
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
    }

    /// Replace everything with `pods` (after a (re)list).
    pub fn rebuild<'a>(&mut self, pods: impl IntoIterator<Item = &'a Pod>) {
        *self = PodIndex::default();
        for p in pods {
            self.apply(p);
        }
    }
}
