//! Inventory: pods, namespaces, service accounts and role mappings, from Kubernetes
//! (kube-rs reflectors) or from a static YAML file.
use std::collections::BTreeMap;
use std::net::IpAddr;

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
