//! Static inventory: workloads listed in a YAML file, for the demo, tests and hosts without
//! Kubernetes (give each container or network-namespaced service its own role). Processes in
//! the host network namespace are exempt from the redirect, so a workload needs its own
//! network namespace (a container, `ip netns`) to be intercepted.
//!
//! # Format
//!
//! ```yaml
//! # Optional: namespace annotations, used by namespace restrictions.
//! namespaces:
//!   shop:
//!     annotations:
//!       iam.amazonaws.com/allowed-roles: '["arn:aws:iam::123456789012:role/shop-*"]'
//! # Optional: service account annotations (IRSA-style `eks.amazonaws.com/role-arn`).
//! serviceAccounts:
//!   shop/api:
//!     annotations:
//!       eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/shop-api
//! # Optional: associations (namespace, service account) → role, like
//! # PodIdentityAssociation objects (session tags on unless disableSessionTags).
//! associations:
//!   - namespace: shop
//!     serviceAccount: web
//!     roleArn: arn:aws:iam::123456789012:role/shop-web
//!     externalId: shop-ext         # optional
//!     disableSessionTags: false    # optional
//! workloads:                       # matched in file order, first match wins
//!   - name: web                    # required; the "pod name"
//!     namespace: shop              # default "default"
//!     serviceAccount: web          # default "default"
//!     cgroupPath: /podiam-demo/web/**   # glob over the cgroup v2 path (relative to the
//!                                  # cgroup root, leading '/'); '*' stays in one segment,
//!                                  # '**' spans segments
//!     ip: 10.200.0.2               # and/or `ips: [..]`: the workload's IPs (peer-IP
//!                                  # identity, and the cross-check of the cgroup identity)
//!     roleArn: arn:aws:iam::123456789012:role/shop-web   # optional: the role, as is
//!     externalId: shop-ext         # optional, only with roleArn
//!     sessionTags: true            # default false
//!   - name: batch
//!     namespace: shop
//!     cgroupPath: /machine.slice/batch.scope   # e.g. a container outside Kubernetes
//!     ips: [192.0.2.10]
//!     uid: 7d5b4c1e-0000-4000-8000-000000000001  # optional; default derived from
//!                                  # namespace/name (stable across reloads)
//!     annotations:                 # no roleArn: the pod-annotation rules apply
//!       iam.amazonaws.com/role: batch
//! ```
//!
//! Every workload needs `cgroupPath` or `ip`/`ips`. With the kernel (cgroup) identity
//! ([`crate::identity::KernelCallerResolver`]) a connection is accepted only when its peer IP
//! is one of the workload's IPs (fail closed), so give `cgroupPath` workloads their `ip`/`ips`
//! too; with the peer-IP identity only `ip`/`ips` are used. Namespace restrictions apply to
//! `iam.amazonaws.com/role` annotations, not to `roleArn` (the file's author is the admin).
//! Unknown fields are errors (typos must not silently drop a restriction). The file may be
//! at most [`MAX_STATIC_FILE_BYTES`].
//!
//! # Reload
//!
//! [`StaticInventory::spawn_reload`] re-reads the file every interval; a changed file that
//! fails to parse or validate is rejected with a `tracing::warn!`, the last good version
//! keeps serving and [`Inventory::stale`] reports why until a good version is loaded.
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{Association, Inventory, PodInfo};
use crate::policy::RoleSpec;

mod format;
#[cfg(test)]
mod tests;

use format::{Compiled, compile};
pub use format::{
    MAX_STATIC_FILE_BYTES, StaticAssociation, StaticFile, StaticNamespace, StaticWorkload,
    derived_uid,
};

/// Why a static file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum StaticFileError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file is larger than the limit.
    #[error("file is {bytes} bytes, more than the {max}-byte limit")]
    TooLarge {
        /// Size of the input, bytes.
        bytes: usize,
        /// The limit, bytes.
        max: usize,
    },
    /// YAML syntax error, wrong type or unknown field (message includes line/column).
    #[error("invalid YAML: {0}")]
    Parse(String),
    /// A workload entry is inconsistent.
    #[error("workload #{index} ({name:?}): {reason}")]
    Invalid {
        /// 0-based position in `workloads`.
        index: usize,
        /// The entry's `name`.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

struct Loaded {
    compiled: Arc<Compiled>,
    digest: [u8; 32],
    error: Option<String>,
}

/// An [`Inventory`] backed by a static YAML file (see the module docs for the format).
pub struct StaticInventory {
    path: Option<PathBuf>,
    state: RwLock<Loaded>,
}

fn digest(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

fn read_limited(path: &Path) -> Result<Vec<u8>, StaticFileError> {
    let io = |error| StaticFileError::Io {
        path: path.to_path_buf(),
        error,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_STATIC_FILE_BYTES as u64 {
        return Err(StaticFileError::TooLarge {
            bytes: usize::try_from(meta.len()).unwrap_or(usize::MAX),
            max: MAX_STATIC_FILE_BYTES,
        });
    }
    std::fs::read(path).map_err(io)
}

fn compile_bytes(b: &[u8]) -> Result<Compiled, StaticFileError> {
    let text = std::str::from_utf8(b).map_err(|e| StaticFileError::Parse(e.to_string()))?;
    compile(text)
}

impl StaticInventory {
    /// Load `path`; errors if the first version is unreadable or invalid (fail fast at start).
    pub fn load(path: impl Into<PathBuf>) -> Result<Arc<Self>, StaticFileError> {
        let path = path.into();
        let bytes = read_limited(&path)?;
        let compiled = compile_bytes(&bytes)?;
        Ok(Arc::new(Self {
            path: Some(path),
            state: RwLock::new(Loaded {
                compiled: Arc::new(compiled),
                digest: digest(&bytes),
                error: None,
            }),
        }))
    }

    /// Build from YAML text (no file, no reload).
    pub fn from_yaml(text: &str) -> Result<Arc<Self>, StaticFileError> {
        let compiled = compile(text)?;
        Ok(Arc::new(Self {
            path: None,
            state: RwLock::new(Loaded {
                compiled: Arc::new(compiled),
                digest: digest(text.as_bytes()),
                error: None,
            }),
        }))
    }

    fn current(&self) -> Arc<Compiled> {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .compiled
            .clone()
    }

    /// Re-read the file now. `Ok(true)`: a new version is active; `Ok(false)`: unchanged;
    /// `Err`: rejected (the last good version stays active and `stale()` reports the error).
    pub fn reload_now(&self) -> Result<bool, StaticFileError> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let result = read_limited(path).and_then(|b| {
            let d = digest(&b);
            let same = self.state.read().unwrap_or_else(|e| e.into_inner()).digest == d;
            if same {
                return Ok(None);
            }
            compile_bytes(&b).map(|c| Some((c, d)))
        });
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(None) => Ok(false),
            Ok(Some((c, d))) => {
                st.compiled = Arc::new(c);
                st.digest = d;
                st.error = None;
                tracing::info!(path = %path.display(), workloads = st.compiled.pods.len(), "static inventory reloaded");
                Ok(true)
            }
            Err(e) => {
                let msg = format!(
                    "static file {}: {e}; serving the last good version",
                    path.display()
                );
                if st.error.as_deref() != Some(msg.as_str()) {
                    tracing::warn!(path = %path.display(), error = %e, "static inventory rejected; keeping the last good version");
                }
                st.error = Some(msg);
                Err(e)
            }
        }
    }

    /// Spawn a task (on the current tokio runtime) that calls [`Self::reload_now`] every
    /// `interval`. Abort the returned handle to stop it.
    pub fn spawn_reload(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(me) = me.upgrade() else { return };
                let _ = me.reload_now();
            }
        })
    }

    /// All workloads of the active version, in file order.
    pub fn workloads(&self) -> Vec<Arc<PodInfo>> {
        self.current().pods.clone()
    }
}

#[async_trait::async_trait]
impl Inventory for StaticInventory {
    fn source_name(&self) -> &'static str {
        "static"
    }

    fn pod_by_uid(&self, uid: &str) -> Option<Arc<PodInfo>> {
        self.current().by_uid.get(uid).cloned()
    }

    fn pods(&self) -> Vec<Arc<PodInfo>> {
        self.current().pods.clone()
    }

    fn pods_by_ip(&self, ip: IpAddr) -> Vec<Arc<PodInfo>> {
        self.current()
            .pods
            .iter()
            .filter(|p| p.ips.contains(&ip))
            .cloned()
            .collect()
    }

    fn pod_for_cgroup_path(&self, path: &str) -> Option<Arc<PodInfo>> {
        self.current().match_path(path)
    }

    fn namespace_annotations(&self, ns: &str) -> Option<BTreeMap<String, String>> {
        let c = self.current();
        if let Some(a) = c.namespaces.get(ns) {
            return Some(a.clone());
        }
        // A namespace used by a workload exists, without annotations.
        c.pods.iter().any(|p| p.namespace == ns).then(BTreeMap::new)
    }

    fn service_account_annotations(&self, ns: &str, sa: &str) -> Option<BTreeMap<String, String>> {
        self.current()
            .service_accounts
            .get(&(ns.to_string(), sa.to_string()))
            .cloned()
    }

    fn association(&self, ns: &str, sa: &str) -> Option<Association> {
        self.current()
            .associations
            .get(&(ns.to_string(), sa.to_string()))
            .cloned()
    }

    fn workload_role(&self, uid: &str) -> Option<RoleSpec> {
        self.current().roles.get(uid).cloned()
    }

    fn synced(&self) -> bool {
        true
    }

    fn stale(&self) -> Option<String> {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .error
            .clone()
    }
}
