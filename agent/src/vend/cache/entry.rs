//! One cached pod session: its state, and the background task that owns every STS call
//! for it (which makes STS calls single-flight per session by construction).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::{Notify, Semaphore, watch};
use tokio_util::sync::CancellationToken;

use super::super::clock::{Clock, saturating_sub};
use super::super::config::VendConfig;
use super::super::error::{StsError, StsErrorKind};
use super::super::metrics::{StsOutcome, VendMetrics};
use super::super::session::{session_name, session_tags};
use super::super::sts::{AssumeRoleRequest, Sts};
use super::super::{Credentials, VendError};
use super::SessionKey;
use super::timing::{CHAINING_CAP_SECONDS, DurationPolicy, backoff, refresh_at};
use crate::inventory::PodInfo;
use crate::policy::RoleSpec;

/// What every session task shares: STS, clock, config, metrics, the global STS permit pool.
pub(crate) struct Shared {
    pub sts: Arc<dyn Sts>,
    pub clock: Arc<dyn Clock>,
    pub cfg: VendConfig,
    pub metrics: VendMetrics,
    pub permits: Semaphore,
    pub durations: DurationPolicy,
}

/// The last failed STS call of a session.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    /// What requests get while the failure is active and no usable credentials exist.
    pub error: VendError,
    /// No STS call for this session before this time (backoff or negative-cache window).
    pub until: SystemTime,
    /// Consecutive retryable failures (drives the exponential backoff).
    pub consecutive: u32,
}

/// Published state of a session (watched by waiting requests).
#[derive(Clone, Debug, Default)]
pub(crate) struct Snapshot {
    pub creds: Option<Credentials>,
    /// When the background refresh of `creds` starts.
    pub refresh_at: Option<SystemTime>,
    pub failure: Option<Failure>,
    /// Incremented after every STS call (success or failure).
    pub generation: u64,
}

/// One session: key, the pod and role it is for, state, and task controls.
pub(crate) struct Entry {
    pub key: SessionKey,
    pub pod: Arc<PodInfo>,
    pub role: Mutex<RoleSpec>,
    pub state: watch::Sender<Snapshot>,
    /// Wakes the task to re-plan (a request needs credentials, or a prefetch).
    pub kick: Notify,
    /// A request or prefetch wants credentials although none are cached.
    pub demand: AtomicBool,
    /// Cancelled on eviction: the task stops and waiting requests fail with `Evicted`.
    pub cancel: CancellationToken,
}

impl Entry {
    pub fn new(key: SessionKey, pod: Arc<PodInfo>, role: RoleSpec) -> Self {
        Entry {
            key,
            pod,
            role: Mutex::new(role),
            state: watch::Sender::new(Snapshot::default()),
            kick: Notify::new(),
            demand: AtomicBool::new(false),
            cancel: CancellationToken::new(),
        }
    }

    /// Asks the task for credentials (no-op if it already has fresh ones).
    pub fn request_fetch(&self) {
        self.demand.store(true, Ordering::SeqCst);
        self.kick.notify_one();
    }

    fn role(&self) -> RoleSpec {
        match self.role.lock() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// Next step of a session task.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    FetchNow,
    SleepUntil(SystemTime),
    /// Nothing to do until a request or prefetch kicks.
    Idle,
}

fn plan(cfg: &VendConfig, snap: &Snapshot, now: SystemTime, demand: bool) -> Plan {
    let usable = snap
        .creds
        .as_ref()
        .is_some_and(|c| saturating_sub(c.expiration, now) > cfg.hard_floor);
    let failure_until = snap
        .failure
        .as_ref()
        .filter(|f| f.until > now)
        .map(|f| f.until);
    if usable {
        if let Some(at) = snap.refresh_at.filter(|at| *at > now) {
            return Plan::SleepUntil(at);
        }
    } else if !demand {
        return Plan::Idle;
    }
    match failure_until {
        Some(until) => Plan::SleepUntil(until),
        None => Plan::FetchNow,
    }
}

/// The session task: plans, sleeps, and performs every STS call of `entry` until cancelled.
pub(crate) async fn run(shared: Arc<Shared>, entry: Arc<Entry>) {
    loop {
        let now = shared.clock.now();
        let p = {
            let snap = entry.state.borrow();
            plan(&shared.cfg, &snap, now, entry.demand.load(Ordering::SeqCst))
        };
        match p {
            Plan::FetchNow => {
                entry.demand.store(false, Ordering::SeqCst);
                tokio::select! {
                    _ = entry.cancel.cancelled() => return,
                    _ = fetch(&shared, &entry) => {}
                }
            }
            Plan::SleepUntil(at) => {
                let wait = saturating_sub(at, now);
                tokio::select! {
                    _ = entry.cancel.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                    _ = entry.kick.notified() => {}
                }
            }
            Plan::Idle => {
                tokio::select! {
                    _ = entry.cancel.cancelled() => return,
                    _ = entry.kick.notified() => {}
                }
            }
        }
    }
}

/// Builds the AssumeRole request for the session's current pod and role.
fn build_request(shared: &Shared, pod: &PodInfo, role: &RoleSpec) -> AssumeRoleRequest {
    let tags = if role.session_tags {
        session_tags(
            pod,
            shared.cfg.cluster_name.as_deref(),
            shared.cfg.cluster_arn.as_deref(),
        )
    } else {
        Vec::new()
    };
    let transitive_tag_keys = tags.iter().map(|t| t.key.clone()).collect();
    AssumeRoleRequest {
        role_arn: role.arn.clone(),
        session_name: session_name(&pod.namespace, &pod.name),
        external_id: role.external_id.clone(),
        duration_seconds: shared
            .durations
            .duration_for(&role.arn, shared.cfg.duration_seconds()),
        tags,
        transitive_tag_keys,
    }
}

/// One timed STS call under the global permit pool, with metrics.
async fn call_sts(shared: &Shared, req: &AssumeRoleRequest) -> Result<Credentials, StsError> {
    let _permit = shared.permits.acquire().await;
    let started = tokio::time::Instant::now();
    let res = shared.sts.assume_role(req).await;
    shared
        .metrics
        .sts_latency
        .observe(started.elapsed().as_secs_f64());
    shared.metrics.sts_call(match &res {
        Ok(_) => StsOutcome::Success,
        Err(e) => match e.kind {
            StsErrorKind::Permanent => StsOutcome::Permanent,
            StsErrorKind::Throttled => StsOutcome::Throttled,
            StsErrorKind::Retryable => StsOutcome::Retryable,
        },
    });
    res
}

/// Performs one AssumeRole for `entry` (retrying once at 3600 s if STS refuses the
/// duration) and publishes the result.
async fn fetch(shared: &Shared, entry: &Entry) {
    let role = entry.role();
    let pod = &entry.pod;
    let had_creds = entry.state.borrow().creds.is_some();
    if had_creds {
        shared.metrics.refreshes.inc();
    }
    let mut req = build_request(shared, pod, &role);
    let mut res = call_sts(shared, &req).await;
    if let Err(e) = &res
        && req.duration_seconds > CHAINING_CAP_SECONDS
        && let Some(cap) = e.duration_cap()
    {
        tracing::info!(
            pod_uid = %pod.uid, role = %role.arn, requested = req.duration_seconds, cap = ?cap,
            "STS refused the session duration; using 3600 s from now on"
        );
        shared.durations.record(&role.arn, cap);
        req.duration_seconds = CHAINING_CAP_SECONDS;
        res = call_sts(shared, &req).await;
    }
    let now = shared.clock.now();
    // Credentials that arrive (nearly) expired — a skewed clock or a broken STS — are a
    // retryable failure, so they are not fetched again per request.
    let res = res.and_then(|c| {
        let left = saturating_sub(c.expiration, now);
        if left > shared.cfg.hard_floor {
            Ok(c)
        } else {
            Err(StsError::transport(
                "ShortLivedCredentials",
                Some(format!(
                    "credentials expire in {}s (clock skew?)",
                    left.as_secs()
                )),
            ))
        }
    });
    match res {
        Ok(mut creds) => {
            creds.last_updated = now;
            let at = refresh_at(&shared.cfg, &creds, now);
            tracing::debug!(
                pod = %format_args!("{}/{}", pod.namespace, pod.name), pod_uid = %pod.uid,
                role = %role.arn, session = %req.session_name,
                remaining_s = saturating_sub(creds.expiration, now).as_secs(),
                "assumed role"
            );
            // Requests that kicked until now are answered by this publication.
            entry.demand.store(false, Ordering::SeqCst);
            entry.state.send_modify(|s| {
                s.creds = Some(creds);
                s.refresh_at = Some(at);
                s.failure = None;
                s.generation += 1;
            });
        }
        Err(e) => {
            let consecutive = entry
                .state
                .borrow()
                .failure
                .as_ref()
                .map_or(0, |f| f.consecutive)
                + 1;
            let (until, drop_creds) = match e.kind {
                StsErrorKind::Permanent => (now + shared.cfg.negative_ttl, true),
                kind => (now + backoff(&shared.cfg, consecutive, kind), false),
            };
            tracing::warn!(
                pod = %format_args!("{}/{}", pod.namespace, pod.name), pod_uid = %pod.uid,
                role = %role.arn, code = %e.code, kind = ?e.kind, http_status = ?e.http_status,
                request_id = e.request_id.as_deref().unwrap_or("-"),
                message = e.message.as_deref().unwrap_or("-"),
                retry_in_ms = saturating_sub(until, now).as_millis() as u64,
                consecutive,
                "sts:AssumeRole failed"
            );
            let failure = Failure {
                error: e.to_vend_error(),
                until,
                consecutive,
            };
            entry.demand.store(false, Ordering::SeqCst);
            entry.state.send_modify(|s| {
                if drop_creds {
                    s.creds = None;
                    s.refresh_at = None;
                }
                s.failure = Some(failure);
                s.generation += 1;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + s)
    }

    fn snap(expires: Option<u64>, refresh: Option<u64>, failure_until: Option<u64>) -> Snapshot {
        Snapshot {
            creds: expires.map(|e| Credentials {
                access_key_id: "a".into(),
                secret_access_key: "s".into(),
                session_token: "t".into(),
                expiration: t(e),
                account_id: None,
                last_updated: t(0),
            }),
            refresh_at: refresh.map(t),
            failure: failure_until.map(|u| Failure {
                error: VendError::Retryable {
                    code: "Throttling".into(),
                },
                until: t(u),
                consecutive: 1,
            }),
            generation: 0,
        }
    }

    #[test]
    fn plans() {
        let cfg = VendConfig::default();
        // nothing cached: idle unless demanded
        assert_eq!(plan(&cfg, &snap(None, None, None), t(0), false), Plan::Idle);
        assert_eq!(
            plan(&cfg, &snap(None, None, None), t(0), true),
            Plan::FetchNow
        );
        // fresh: sleep until refresh point
        assert_eq!(
            plan(&cfg, &snap(Some(3600), Some(1500), None), t(10), false),
            Plan::SleepUntil(t(1500))
        );
        // refresh due
        assert_eq!(
            plan(&cfg, &snap(Some(3600), Some(1500), None), t(1500), false),
            Plan::FetchNow
        );
        // refresh due but backing off
        assert_eq!(
            plan(
                &cfg,
                &snap(Some(3600), Some(1500), Some(1600)),
                t(1550),
                false
            ),
            Plan::SleepUntil(t(1600))
        );
        // below the hard floor: on demand only
        assert_eq!(
            plan(&cfg, &snap(Some(3600), Some(1500), None), t(3400), false),
            Plan::Idle
        );
        assert_eq!(
            plan(
                &cfg,
                &snap(Some(3600), Some(1500), Some(3500)),
                t(3400),
                true
            ),
            Plan::SleepUntil(t(3500))
        );
    }
}
