//! The static inventory file format (serde types) and its validation. See the parent module
//! for the documented format.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::StaticFileError;
use crate::inventory::{Association, PodInfo};
use crate::policy::{RoleSource, RoleSpec, arn};

/// Largest accepted file, in bytes (1 MiB).
pub const MAX_STATIC_FILE_BYTES: usize = 1 << 20;
/// Largest accepted number of workloads.
pub const MAX_WORKLOADS: usize = 10_000;

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticFile {
    /// Namespace annotations (for namespace restrictions), by namespace name.
    #[serde(default)]
    pub namespaces: BTreeMap<String, StaticNamespace>,
    /// Service account annotations (e.g. `eks.amazonaws.com/role-arn`), by
    /// `namespace/name`.
    #[serde(default)]
    pub service_accounts: BTreeMap<String, StaticNamespace>,
    /// Associations (namespace, service account) → role, as `PodIdentityAssociation`s.
    #[serde(default)]
    pub associations: Vec<StaticAssociation>,
    /// The workloads, matched in file order (first match wins).
    #[serde(default)]
    pub workloads: Vec<StaticWorkload>,
}

/// An association entry: the static form of a `PodIdentityAssociation`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticAssociation {
    /// Namespace of the service account.
    pub namespace: String,
    /// Service account name.
    pub service_account: String,
    /// Role ARN to assume.
    pub role_arn: String,
    /// `ExternalId` for AssumeRole.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Turn the session tags off for this association.
    #[serde(default)]
    pub disable_session_tags: bool,
}

/// A namespace entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticNamespace {
    /// `metadata.annotations` of the namespace.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// One workload (a "pod" for the rest of podiam).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticWorkload {
    /// Workload name (the pod name); required.
    pub name: String,
    /// Namespace; default `default`.
    #[serde(default = "default_str")]
    pub namespace: String,
    /// Service account; default `default`.
    #[serde(default = "default_str")]
    pub service_account: String,
    /// Pod UID; default derived from namespace and name (stable across reloads).
    #[serde(default)]
    pub uid: Option<String>,
    /// Glob over the cgroup v2 path relative to the cgroup root, starting with `/`
    /// (`*` stays within one path segment, `**` spans segments).
    #[serde(default)]
    pub cgroup_path: Option<String>,
    /// One IP of the workload (shorthand for `ips: [ip]`).
    #[serde(default)]
    pub ip: Option<IpAddr>,
    /// IPs of the workload (the pod IPs).
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    /// `hostNetwork` pod (shares the node's IPs).
    #[serde(default)]
    pub host_network: bool,
    /// Role assumed for this workload (full ARN), [`RoleSource::StaticFile`].
    #[serde(default)]
    pub role_arn: Option<String>,
    /// `ExternalId` for AssumeRole (only with `roleArn`).
    #[serde(default)]
    pub external_id: Option<String>,
    /// Attach session tags (only with `roleArn`); default false.
    #[serde(default)]
    pub session_tags: bool,
    /// Pod annotations (e.g. `iam.amazonaws.com/role`, used when `roleArn` is absent).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

fn default_str() -> String {
    "default".to_string()
}

/// A validated file, ready for lookups.
pub(crate) struct Compiled {
    pub pods: Vec<Arc<PodInfo>>,
    pub by_uid: HashMap<String, Arc<PodInfo>>,
    pub globs: GlobSet,
    /// Index into `pods` of each glob in `globs`.
    pub glob_owner: Vec<usize>,
    pub roles: HashMap<String, RoleSpec>,
    pub namespaces: HashMap<String, BTreeMap<String, String>>,
    /// Service account annotations by (namespace, name).
    pub service_accounts: HashMap<(String, String), BTreeMap<String, String>>,
    /// Associations by (namespace, service account).
    pub associations: HashMap<(String, String), Association>,
}

/// A stable UID-shaped id (8-4-4-4-12 hex) from namespace and name.
pub fn derived_uid(namespace: &str, name: &str) -> String {
    let d = Sha256::digest(format!("podiam-static/{namespace}/{name}").as_bytes());
    let h: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Parse and validate file content.
pub(crate) fn compile(text: &str) -> Result<Compiled, StaticFileError> {
    if text.len() > MAX_STATIC_FILE_BYTES {
        return Err(StaticFileError::TooLarge {
            bytes: text.len(),
            max: MAX_STATIC_FILE_BYTES,
        });
    }
    let file: StaticFile = if text.trim().is_empty() {
        StaticFile::default()
    } else {
        serde_yaml::from_str(text).map_err(|e| StaticFileError::Parse(e.to_string()))?
    };
    compile_file(file)
}

fn invalid(idx: usize, name: &str, why: impl Into<String>) -> StaticFileError {
    StaticFileError::Invalid {
        index: idx,
        name: name.to_string(),
        reason: why.into(),
    }
}

pub(crate) fn compile_file(file: StaticFile) -> Result<Compiled, StaticFileError> {
    if file.workloads.len() > MAX_WORKLOADS {
        return Err(StaticFileError::Invalid {
            index: MAX_WORKLOADS,
            name: String::new(),
            reason: format!("more than {MAX_WORKLOADS} workloads"),
        });
    }
    let mut pods = Vec::with_capacity(file.workloads.len());
    let mut by_uid = HashMap::new();
    let mut names = HashSet::new();
    let mut globs = GlobSetBuilder::new();
    let mut glob_owner = Vec::new();
    let mut roles = HashMap::new();
    for (i, w) in file.workloads.into_iter().enumerate() {
        if w.name.trim().is_empty() {
            return Err(invalid(i, &w.name, "name is empty"));
        }
        if !names.insert((w.namespace.clone(), w.name.clone())) {
            return Err(invalid(i, &w.name, "duplicate namespace/name"));
        }
        let mut ips = w.ips.clone();
        if let Some(ip) = w.ip
            && !ips.contains(&ip)
        {
            ips.insert(0, ip);
        }
        if w.cgroup_path.is_none() && ips.is_empty() {
            return Err(invalid(
                i,
                &w.name,
                "needs cgroupPath or ip/ips to match callers",
            ));
        }
        let uid = w
            .uid
            .clone()
            .unwrap_or_else(|| derived_uid(&w.namespace, &w.name));
        if by_uid.contains_key(&uid) {
            return Err(invalid(i, &w.name, format!("duplicate uid {uid}")));
        }
        if let Some(g) = &w.cgroup_path {
            if !g.starts_with('/') {
                return Err(invalid(i, &w.name, "cgroupPath must start with '/'"));
            }
            let glob = GlobBuilder::new(g)
                .literal_separator(true)
                .build()
                .map_err(|e| invalid(i, &w.name, format!("cgroupPath: {e}")))?;
            globs.add(glob);
            glob_owner.push(i);
        }
        match &w.role_arn {
            Some(a) => {
                let a = a.trim();
                arn::parse_role_arn(a).map_err(|e| invalid(i, &w.name, format!("roleArn: {e}")))?;
                roles.insert(
                    uid.clone(),
                    RoleSpec {
                        arn: a.to_string(),
                        external_id: w.external_id.clone(),
                        session_tags: w.session_tags,
                        source: RoleSource::StaticFile,
                    },
                );
            }
            None if w.external_id.is_some() => {
                return Err(invalid(i, &w.name, "externalId needs roleArn"));
            }
            None => {}
        }
        let pod = Arc::new(PodInfo {
            uid: uid.clone(),
            namespace: w.namespace,
            name: w.name,
            service_account: w.service_account,
            ips,
            annotations: w.annotations,
            host_network: w.host_network,
        });
        by_uid.insert(uid, pod.clone());
        pods.push(pod);
    }
    let globs = globs
        .build()
        .map_err(|e| StaticFileError::Parse(format!("cgroupPath globs: {e}")))?;
    let mut service_accounts = HashMap::new();
    for (key, sa) in file.service_accounts {
        let Some((ns, name)) = key.split_once('/') else {
            return Err(StaticFileError::Parse(format!(
                "serviceAccounts key {key:?}: use namespace/name"
            )));
        };
        service_accounts.insert((ns.to_string(), name.to_string()), sa.annotations);
    }
    let mut associations = HashMap::new();
    for (i, a) in file.associations.into_iter().enumerate() {
        let role_arn = a.role_arn.trim().to_string();
        arn::parse_role_arn(&role_arn)
            .map_err(|e| StaticFileError::Parse(format!("association #{i} roleArn: {e}")))?;
        let key = (a.namespace.clone(), a.service_account.clone());
        if associations.contains_key(&key) {
            return Err(StaticFileError::Parse(format!(
                "association #{i}: duplicate {}/{}",
                a.namespace, a.service_account
            )));
        }
        associations.insert(
            key,
            Association {
                name: format!("static-{}-{}", a.namespace, a.service_account),
                namespace: a.namespace,
                service_account: a.service_account,
                role_arn,
                external_id: a.external_id,
                disable_session_tags: a.disable_session_tags,
            },
        );
    }
    let namespaces = file
        .namespaces
        .into_iter()
        .map(|(k, v)| (k, v.annotations))
        .collect();
    Ok(Compiled {
        pods,
        by_uid,
        globs,
        glob_owner,
        roles,
        namespaces,
        service_accounts,
        associations,
    })
}

impl Compiled {
    /// The first workload (file order) whose glob matches `path`.
    pub fn match_path(&self, path: &str) -> Option<Arc<PodInfo>> {
        let idx = self.globs.matches(path).into_iter().min()?;
        let owner = *self.glob_owner.get(idx)?;
        self.pods.get(owner).cloned()
    }
}
