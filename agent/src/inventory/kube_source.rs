//! [`KubeInventory`]: the Kubernetes source — kube-rs reflectors for this node's pods,
//! namespaces, service accounts and `PodIdentityAssociation`s.
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, ListParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::crd::PodIdentityAssociation;
use super::kube_watch::{Shared, WatchSpec, spawn_watch};
use super::{Association, Inventory, InventoryError, PodInfo};

/// Settings of the Kubernetes source.
#[derive(Clone, Debug)]
pub struct KubeInventoryConfig {
    /// This node's name (`--node`, downward API `spec.nodeName`): pods are watched with the
    /// field selector `spec.nodeName=<node>`.
    pub node_name: String,
    /// Watch `PodIdentityAssociation`s (needs the CRD installed; off → no associations).
    pub watch_associations: bool,
    /// First retry delay after a failed list/watch.
    pub backoff_initial: Duration,
    /// Largest retry delay (doubling from `backoff_initial`).
    pub backoff_max: Duration,
}

impl KubeInventoryConfig {
    /// Defaults for `node_name`: associations on, backoff 500 ms doubling to 30 s.
    pub fn new(node_name: impl Into<String>) -> Self {
        Self {
            node_name: node_name.into(),
            watch_associations: true,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// Install rustls' `ring` crypto provider as the process default, once. Needed before any
/// `kube::Client` is built: the dependency graph enables both `ring` (kube) and `aws-lc-rs`
/// (AWS SDK), so rustls cannot pick one by itself. Idempotent; safe to call from anywhere.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A `kube::Client` from the environment (kubeconfig, else in-cluster service account),
/// as `kube::Client::try_default`, with the crypto provider installed.
pub async fn client_default() -> Result<Client, InventoryError> {
    install_crypto_provider();
    Client::try_default()
        .await
        .map_err(|e| InventoryError::Api(e.to_string()))
}

/// A `kube::Client` for an explicit API server URL (tests, `--api-server`), no auth.
pub fn client_for_url(url: &str) -> Result<Client, InventoryError> {
    install_crypto_provider();
    let uri: http::Uri = url
        .parse()
        .map_err(|e| InventoryError::Api(format!("bad API server URL {url:?}: {e}")))?;
    let cfg = kube::Config::new(uri);
    Client::try_from(cfg).map_err(|e| InventoryError::Api(e.to_string()))
}

/// The Kubernetes [`Inventory`]. Built by [`KubeInventory::start`], which spawns one
/// reflector task per resource on the current tokio runtime; dropping the inventory stops
/// them. While the API server is unreachable the last known state keeps serving and
/// [`Inventory::stale`] says why.
pub struct KubeInventory {
    client: Client,
    node: String,
    shared: Arc<Shared>,
    namespaces: Store<Namespace>,
    service_accounts: Store<ServiceAccount>,
    associations: Option<Store<PodIdentityAssociation>>,
    tasks: Vec<AbortHandle>,
    /// Start time of the last direct pod list (coalesces concurrent lookups).
    direct: tokio::sync::Mutex<Option<Instant>>,
}

impl Drop for KubeInventory {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl KubeInventoryConfig {
    fn spec(&self, name: &'static str, optional: bool) -> WatchSpec {
        WatchSpec {
            name,
            backoff: (self.backoff_initial, self.backoff_max),
            optional,
        }
    }
}

fn simple_watch<K>(
    spec: WatchSpec,
    api: Api<K>,
    shared: &Arc<Shared>,
    tasks: &mut Vec<AbortHandle>,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let writer = reflector::store::Writer::<K>::default();
    let store = writer.as_reader();
    let wc = watcher::Config::default();
    tasks.push(spawn_watch(spec, api, wc, shared.clone(), writer, |_| {}));
    store
}

impl KubeInventory {
    /// Start the reflectors (pods on `config.node_name`, namespaces, service accounts and,
    /// if enabled, `PodIdentityAssociation`s — a missing CRD counts as "no associations",
    /// with a warning). Returns at once; [`Inventory::synced`] tells when the initial lists
    /// are in. Must be called within a tokio runtime.
    pub fn start(client: Client, config: KubeInventoryConfig) -> Arc<Self> {
        let shared = Arc::new(Shared::default());
        let mut tasks = Vec::new();

        let pods: Api<Pod> = Api::all(client.clone());
        let wc = watcher::Config::default().fields(&format!("spec.nodeName={}", config.node_name));
        let writer = reflector::store::Writer::<Pod>::default();
        let pod_store = writer.as_reader();
        let pod_shared = shared.clone();
        tasks.push(spawn_watch(
            config.spec("pods", false),
            pods,
            wc,
            shared.clone(),
            writer,
            move |ev| {
                let mut idx = pod_shared.pods_write();
                match ev {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => idx.apply(p),
                    watcher::Event::Delete(p) => idx.delete(p),
                    // The store has just been replaced with the complete list: drop pods
                    // that vanished while the watch was down.
                    watcher::Event::InitDone => {
                        idx.rebuild(pod_store.state().iter().map(|p| p.as_ref()))
                    }
                    watcher::Event::Init => {}
                }
                drop(idx);
                pod_shared.pod_changed.notify_waiters();
            },
        ));

        let namespaces = simple_watch(
            config.spec("namespaces", false),
            Api::all(client.clone()),
            &shared,
            &mut tasks,
        );
        let service_accounts = simple_watch(
            config.spec("serviceaccounts", false),
            Api::all(client.clone()),
            &shared,
            &mut tasks,
        );
        let associations = config.watch_associations.then(|| {
            simple_watch(
                config.spec("podidentityassociations", true),
                Api::all(client.clone()),
                &shared,
                &mut tasks,
            )
        });
        Arc::new(Self {
            client,
            node: config.node_name,
            shared,
            namespaces,
            service_accounts,
            associations,
            tasks,
            direct: tokio::sync::Mutex::new(None),
        })
    }

    /// Resource types the API server does not serve (e.g. `podidentityassociations` when
    /// the CRD is not installed), for `/readyz` details.
    pub fn absent_resources(&self) -> Vec<&'static str> {
        self.shared.absent()
    }

    /// Wait (up to `timeout`) until every reflector has completed its first list.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.synced() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Number of pods currently indexed.
    pub fn pod_count(&self) -> usize {
        self.shared.pods_read().len()
    }

    fn expected_watches(&self) -> usize {
        3 + usize::from(self.associations.is_some())
    }
}

#[async_trait::async_trait]
impl Inventory for KubeInventory {
    fn source_name(&self) -> &'static str {
        "kubernetes"
    }

    fn pod_by_uid(&self, uid: &str) -> Option<Arc<PodInfo>> {
        self.shared.pods_read().get(uid)
    }

    fn pods(&self) -> Vec<Arc<PodInfo>> {
        self.shared.pods_read().all()
    }

    fn pods_by_ip(&self, ip: IpAddr) -> Vec<Arc<PodInfo>> {
        self.shared.pods_read().by_ip(ip)
    }

    fn namespace_annotations(&self, ns: &str) -> Option<BTreeMap<String, String>> {
        let n = self.namespaces.get(&ObjectRef::new(ns))?;
        Some(n.metadata.annotations.clone().unwrap_or_default())
    }

    fn service_account_annotations(&self, ns: &str, sa: &str) -> Option<BTreeMap<String, String>> {
        let s = self.service_accounts.get(&ObjectRef::new(sa).within(ns))?;
        Some(s.metadata.annotations.clone().unwrap_or_default())
    }

    fn association(&self, ns: &str, sa: &str) -> Option<Association> {
        let store = self.associations.as_ref()?;
        store
            .state()
            .iter()
            .filter(|a| a.spec.namespace == ns && a.spec.service_account == sa)
            .filter(|a| a.metadata.deletion_timestamp.is_none())
            .map(|a| Association {
                name: a.metadata.name.clone().unwrap_or_default(),
                namespace: a.spec.namespace.clone(),
                service_account: a.spec.service_account.clone(),
                role_arn: a.spec.role_arn.clone(),
                external_id: a.spec.external_id.clone(),
                disable_session_tags: a.spec.disable_session_tags.unwrap_or(false),
            })
            .min_by(|a, b| a.name.cmp(&b.name))
    }

    fn synced(&self) -> bool {
        self.shared.synced_count() >= self.expected_watches()
    }

    fn stale(&self) -> Option<String> {
        self.shared.stale()
    }

    /// Direct lookup: list this node's pods (`spec.nodeName` field selector; pods cannot be
    /// selected by UID) and index the one with `uid`.
    ///
    /// Concurrent callers share one list: a caller that finds a list started after it asked
    /// uses that result. Pods unknown to the index are added (all of them, so other waiters
    /// benefit); pods the index knows are left to the watch.
    async fn refresh_pod(&self, uid: &str) -> Result<Option<Arc<PodInfo>>, InventoryError> {
        let asked = Instant::now();
        let mut last = self.direct.lock().await;
        if last.is_some_and(|t| t >= asked) {
            return Ok(self.pod_by_uid(uid));
        }
        *last = Some(Instant::now());
        let api: Api<Pod> = Api::all(self.client.clone());
        let lp = ListParams::default().fields(&format!("spec.nodeName={}", self.node));
        let list = api
            .list(&lp)
            .await
            .map_err(|e| InventoryError::Api(e.to_string()))?;
        drop(last);
        let added = {
            let mut idx = self.shared.pods_write();
            list.items.iter().filter(|p| idx.add_from_direct(p)).count()
        };
        if added > 0 {
            tracing::debug!(
                added,
                "direct pod list found pods the watch had not delivered yet"
            );
            self.shared.pod_changed.notify_waiters();
        }
        Ok(self.pod_by_uid(uid))
    }

    /// Waits for the pod watch to deliver `uid`, doing a direct lookup at once and every
    /// 500 ms meanwhile (so a lagging or failing watch does not turn into a refusal).
    async fn wait_for_pod(&self, uid: &str, timeout: Duration) -> Option<Arc<PodInfo>> {
        let deadline = Instant::now() + timeout;
        let mut next_direct = Instant::now();
        loop {
            let notified = self.shared.pod_changed.notified();
            if let Some(p) = self.pod_by_uid(uid) {
                return Some(p);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            if now >= next_direct {
                next_direct = now + Duration::from_millis(500);
                match tokio::time::timeout_at(deadline, self.refresh_pod(uid)).await {
                    Ok(Ok(Some(p))) => return Some(p),
                    Ok(Err(e)) => tracing::debug!(uid, error = %e, "direct pod lookup failed"),
                    _ => {}
                }
                continue;
            }
            let _ = tokio::time::timeout_at(deadline.min(next_direct), notified).await;
        }
    }
}
