//! The reflector loop behind [`super::KubeInventory`]: watcher → store writer → callback,
//! with per-resource health (synced / failing since) and restart-from-list on errors.
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::kube_index::PodIndex;

#[derive(Clone)]
pub(crate) struct ExpBackoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Iterator for ExpBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        Some(d)
    }
}

impl Backoff for ExpBackoff {
    fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[derive(Default)]
pub(crate) struct WatchStatus {
    synced: bool,
    error: Option<(String, Instant)>,
    absent: bool,
}

/// State shared between the reflector tasks and [`super::KubeInventory`].
#[derive(Default)]
pub(crate) struct Shared {
    pods: RwLock<PodIndex>,
    pub pod_changed: Notify,
    status: Mutex<BTreeMap<&'static str, WatchStatus>>,
}

impl Shared {
    fn status(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, WatchStatus>> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record_ok(&self, name: &'static str, init_done: bool) {
        let mut st = self.status();
        let s = st.entry(name).or_default();
        if s.error.take().is_some() {
            tracing::info!(resource = name, "watch recovered");
        }
        s.absent = false;
        s.synced |= init_done;
    }

    fn record_err(&self, name: &'static str, e: String) {
        let mut st = self.status();
        let s = st.entry(name).or_default();
        tracing::warn!(resource = name, error = %e, "watch failed; serving last known state");
        let since = s
            .error
            .as_ref()
            .map(|(_, t)| *t)
            .unwrap_or_else(Instant::now);
        s.error = Some((e, since));
    }

    /// The resource type is not served (CRD not installed): synced and empty, not stale.
    fn record_absent(&self, name: &'static str) {
        let mut st = self.status();
        let s = st.entry(name).or_default();
        if !s.absent {
            tracing::warn!(
                resource = name,
                "resource type not served by the API server (CRD not installed?); treating as empty and retrying"
            );
        }
        s.absent = true;
        s.synced = true;
        s.error = None;
    }

    /// Number of resources whose first list completed (or that are absent).
    pub fn synced_count(&self) -> usize {
        self.status().values().filter(|s| s.synced).count()
    }

    /// `Some(reason)` while any watch is failing.
    pub fn stale(&self) -> Option<String> {
        let st = self.status();
        let failing: Vec<String> = st
            .iter()
            .filter_map(|(name, s)| {
                let (e, since) = s.error.as_ref()?;
                Some(format!(
                    "{name} watch failing for {}s: {e}",
                    since.elapsed().as_secs()
                ))
            })
            .collect();
        (!failing.is_empty()).then(|| failing.join("; "))
    }

    /// Resources reported absent (CRD not installed).
    pub fn absent(&self) -> Vec<&'static str> {
        self.status()
            .iter()
            .filter(|(_, s)| s.absent)
            .map(|(n, _)| *n)
            .collect()
    }

    pub fn pods_write(&self) -> std::sync::RwLockWriteGuard<'_, PodIndex> {
        self.pods.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn pods_read(&self) -> std::sync::RwLockReadGuard<'_, PodIndex> {
        self.pods.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// `true` when the API server says the resource type does not exist (HTTP 404 on the list
/// or watch of a whole collection).
fn is_not_found(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s)) => s.code == 404,
        _ => false,
    }
}

/// How one reflector runs.
pub(crate) struct WatchSpec {
    /// Resource name for status and logs.
    pub name: &'static str,
    /// First retry delay and its cap (doubling).
    pub backoff: (Duration, Duration),
    /// A 404 on the collection means "no objects" (optional CRD), not an outage.
    pub optional: bool,
}

/// Run one reflector: a kube `watcher` feeding a reflector `Store` writer and `on_event`.
/// On any error the watcher is dropped and, after a backoff, restarted from a fresh list
/// (as client-go's reflector does), so recovery is observable (the relist yields events) and
/// objects deleted during an outage are dropped.
pub(crate) fn spawn_watch<K>(
    spec: WatchSpec,
    api: Api<K>,
    wc: watcher::Config,
    shared: Arc<Shared>,
    mut writer: reflector::store::Writer<K>,
    mut on_event: impl FnMut(&watcher::Event<K>) + Send + 'static,
) -> AbortHandle
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (initial, max) = spec.backoff;
    let mut backoff = ExpBackoff {
        initial,
        max,
        next: initial,
    };
    let name = spec.name;
    let task = tokio::spawn(async move {
        loop {
            let mut stream = std::pin::pin!(watcher(api.clone(), wc.clone()));
            while let Some(item) = stream.next().await {
                match item {
                    Ok(ev) => {
                        writer.apply_watcher_event(&ev);
                        // `Init` is emitted before the list request: not yet proof of health.
                        if !matches!(ev, watcher::Event::Init) {
                            shared.record_ok(name, matches!(ev, watcher::Event::InitDone));
                            backoff.reset();
                        }
                        on_event(&ev);
                    }
                    Err(e) if spec.optional && is_not_found(&e) => {
                        shared.record_absent(name);
                        break;
                    }
                    Err(e) => {
                        shared.record_err(name, e.to_string());
                        break;
                    }
                }
            }
            let delay = backoff.next().unwrap_or(max);
            tokio::time::sleep(delay).await;
        }
    });
    task.abort_handle()
}
