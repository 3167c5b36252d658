//! [`VendCache`]: the per-pod session cache implementing [`CredentialSource`].
//!
//! One session per [`SessionKey`] (pod UID, role ARN, external ID). Each session has a
//! background task that owns all of its STS calls, so N concurrent first requests cause one
//! `AssumeRole` (single-flight). The task refreshes credentials before they fall below
//! `min_remaining` (default 30 min), keeps serving stale-but-valid credentials while STS
//! fails (never below `hard_floor`, never expired), backs off with jitter on throttling and
//! transient errors, and negative-caches permanent errors for `negative_ttl`. A global
//! semaphore caps concurrent STS calls.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Semaphore;

use super::clock::{Clock, SystemClock, saturating_sub};
use super::config::VendConfig;
use super::metrics::{LookupResult, VendMetrics};
use super::sts::Sts;
use super::{CredentialSource, Credentials, VendError};
use crate::identity::Caller;
use crate::inventory::PodInfo;
use crate::policy::RoleSpec;
use timing::thresholds;

mod entry;
pub(crate) mod timing;

#[cfg(test)]
mod tests_errors;
#[cfg(test)]
mod tests_fake;
#[cfg(test)]
mod tests_refresh;

use entry::{Entry, Shared};
use timing::DurationPolicy;

/// Identity of one cached STS session.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct SessionKey {
    /// `metadata.uid` of the pod.
    pub pod_uid: String,
    /// Full role ARN.
    pub role_arn: String,
    /// `ExternalId` passed to AssumeRole.
    pub external_id: Option<String>,
}

impl SessionKey {
    /// The key for `pod` assuming `role`.
    pub fn new(pod: &PodInfo, role: &RoleSpec) -> Self {
        SessionKey {
            pod_uid: pod.uid.clone(),
            role_arn: role.arn.clone(),
            external_id: role.external_id.clone(),
        }
    }
}

struct Inner {
    shared: Arc<Shared>,
    /// pod UID → that pod's sessions (normally one: the pod's current role).
    entries: Mutex<HashMap<String, Vec<Arc<Entry>>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let map = match self.entries.get_mut() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        for e in map.values().flatten() {
            e.cancel.cancel();
        }
    }
}

/// The credential cache. Cheap to clone (shared state); dropping the last clone stops all
/// background tasks. Must be used inside a tokio runtime (sessions spawn tasks).
#[derive(Clone)]
pub struct VendCache {
    inner: Arc<Inner>,
}

impl VendCache {
    /// A cache over `sts` with the real wall clock.
    pub fn new(sts: Arc<dyn Sts>, cfg: VendConfig, metrics: VendMetrics) -> Self {
        Self::with_clock(sts, cfg, metrics, Arc::new(SystemClock))
    }

    /// A cache with an injected clock (tests: [`super::TokioClock`] under paused time).
    pub fn with_clock(
        sts: Arc<dyn Sts>,
        cfg: VendConfig,
        metrics: VendMetrics,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let permits = Semaphore::new(cfg.max_concurrent_sts.max(1));
        VendCache {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared {
                    sts,
                    clock,
                    cfg,
                    metrics,
                    permits,
                    durations: DurationPolicy::default(),
                }),
                entries: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<Arc<Entry>>>> {
        match self.inner.entries.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The session for (pod, role), created (with its task) if missing. Other sessions of
    /// the same pod (an older role mapping) are stopped: a pod has one role at a time.
    fn entry_for(&self, pod: &Arc<PodInfo>, role: &RoleSpec) -> Arc<Entry> {
        let key = SessionKey::new(pod, role);
        let mut map = self.lock();
        let list = map.entry(key.pod_uid.clone()).or_default();
        if let Some(e) = list.iter().find(|e| e.key == key) {
            if let Ok(mut r) = e.role.lock()
                && *r != *role
            {
                *r = role.clone();
            }
            return e.clone();
        }
        let metrics = &self.inner.shared.metrics;
        for old in list.drain(..) {
            tracing::info!(pod_uid = %old.key.pod_uid, old_role = %old.key.role_arn,
                new_role = %role.arn, "pod role changed; dropping old session");
            old.cancel.cancel();
            metrics.sessions.dec();
        }
        let e = Arc::new(Entry::new(key, pod.clone(), role.clone()));
        list.push(e.clone());
        metrics.sessions.inc();
        tokio::spawn(entry::run(self.inner.shared.clone(), e.clone()));
        e
    }

    /// Starts fetching credentials for a mapped pod before it asks (when the pod appears).
    /// Returns immediately.
    pub fn prefetch(&self, pod: Arc<PodInfo>, role: &RoleSpec) {
        let e = self.entry_for(&pod, role);
        let has_creds = e.state.borrow().creds.is_some();
        if !has_creds {
            e.request_fetch();
        }
    }

    /// Forgets every session of pod `uid` and stops their background refresh (the pod is
    /// gone). Requests waiting on them fail with retryable `Evicted`. Returns how many
    /// sessions were dropped.
    pub fn evict_pod(&self, uid: &str) -> usize {
        let removed = self.lock().remove(uid).unwrap_or_default();
        for e in &removed {
            e.cancel.cancel();
            self.inner.shared.metrics.sessions.dec();
        }
        removed.len()
    }

    /// Evicts every session whose pod UID does not satisfy `keep` (resync after missed pod
    /// deletions). Returns how many sessions were dropped.
    pub fn retain_pods(&self, keep: impl Fn(&str) -> bool) -> usize {
        let mut dropped = Vec::new();
        self.lock().retain(|uid, list| {
            let k = keep(uid);
            if !k {
                dropped.append(list);
            }
            k
        });
        for e in &dropped {
            e.cancel.cancel();
            self.inner.shared.metrics.sessions.dec();
        }
        dropped.len()
    }

    /// Number of cached sessions.
    pub fn session_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// The metrics handles this cache updates.
    pub fn metrics(&self) -> &VendMetrics {
        &self.inner.shared.metrics
    }

    /// Credentials for `pod` assuming `role`: cached ones with ≥ `min_remaining` left (hit),
    /// else ones still above `hard_floor` (stale: refresh pending or STS failing), else the
    /// result of an STS call (waiting at most `request_wait`).
    ///
    /// Errors: the session's cached [`VendError`] during a negative-cache/backoff window
    /// (permanent: AccessDenied, …; retryable: Throttling, …); retryable `Timeout` if STS
    /// did not answer within `request_wait`; retryable `Evicted` if the pod was evicted
    /// meanwhile.
    pub async fn get(&self, pod: &Arc<PodInfo>, role: &RoleSpec) -> Result<Credentials, VendError> {
        let shared = self.inner.shared.clone();
        let cfg = &shared.cfg;
        let metrics = &shared.metrics;
        let entry = self.entry_for(pod, role);
        let mut rx = entry.state.subscribe();
        let deadline = tokio::time::Instant::now() + cfg.request_wait;
        let mut waited_for: Option<u64> = None;
        loop {
            let now = shared.clock.now();
            {
                let snap = rx.borrow_and_update();
                if let Some(c) = &snap.creds {
                    let remaining = saturating_sub(c.expiration, now);
                    if remaining > cfg.hard_floor {
                        let fresh = remaining >= thresholds(cfg, c).fresh;
                        if waited_for.is_none() {
                            metrics.lookup(if fresh {
                                LookupResult::Hit
                            } else {
                                LookupResult::Stale
                            });
                        }
                        metrics.served_remaining.observe(remaining.as_secs_f64());
                        return Ok(c.clone());
                    }
                }
                if let Some(f) = &snap.failure {
                    let answered = waited_for.is_some_and(|g| snap.generation > g);
                    if f.until > now || answered {
                        if waited_for.is_none() {
                            metrics.lookup(LookupResult::Negative);
                        }
                        return Err(f.error.clone());
                    }
                }
                if waited_for.is_none() {
                    waited_for = Some(snap.generation);
                    metrics.lookup(LookupResult::Miss);
                }
            }
            entry.request_fetch();
            tokio::select! {
                _ = entry.cancel.cancelled() => {
                    return Err(VendError::Retryable { code: "Evicted".into() });
                }
                r = tokio::time::timeout_at(deadline, rx.changed()) => match r {
                    Err(_) => return Err(VendError::Retryable { code: "Timeout".into() }),
                    Ok(Err(_)) => return Err(VendError::Retryable { code: "Evicted".into() }),
                    Ok(Ok(())) => {}
                },
            }
        }
    }
}

#[async_trait::async_trait]
impl CredentialSource for VendCache {
    async fn credentials(
        &self,
        caller: &Caller,
        role: &RoleSpec,
    ) -> Result<Credentials, VendError> {
        self.get(&caller.pod, role).await
    }
}
