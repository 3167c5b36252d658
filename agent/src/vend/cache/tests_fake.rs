//! A scriptable fake [`Sts`] and the basic cache tests (single-flight, role/session/tags,
//! duration cap, prefetch, eviction).
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::super::clock::{Clock, TokioClock};
use super::super::config::VendConfig;
use super::super::error::{StsError, StsErrorKind};
use super::super::metrics::{LookupResult, VendMetrics};
use super::super::sts::{AssumeRoleRequest, Sts};
use super::super::{Credentials, VendError};
use super::VendCache;
use crate::inventory::PodInfo;
use crate::policy::{RoleSource, RoleSpec};

/// What the fake answers.
#[derive(Clone, Debug)]
pub(super) enum Mode {
    Ok,
    /// Fail every call with this code/kind.
    Fail(&'static str, StsErrorKind),
    /// Refuse `DurationSeconds` > 3600 like STS does under role chaining.
    ChainingCap,
    /// Succeed with credentials that live this long, whatever was asked.
    Lifetime(Duration),
}

/// One recorded call: when (clock time) and what.
#[derive(Clone, Debug)]
pub(super) struct Call {
    pub at: SystemTime,
    pub req: AssumeRoleRequest,
}

pub(super) struct FakeSts {
    pub clock: Arc<dyn Clock>,
    pub mode: Mutex<Mode>,
    pub calls: Mutex<Vec<Call>>,
    pub latency: Mutex<Duration>,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    seq: AtomicUsize,
}

impl FakeSts {
    pub fn new(clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(FakeSts {
            clock,
            mode: Mutex::new(Mode::Ok),
            calls: Mutex::new(Vec::new()),
            latency: Mutex::new(Duration::from_millis(50)),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            seq: AtomicUsize::new(0),
        })
    }
    pub fn set_mode(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }
    pub fn count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Sts for FakeSts {
    async fn assume_role(&self, req: &AssumeRoleRequest) -> Result<Credentials, StsError> {
        self.calls.lock().unwrap().push(Call {
            at: self.clock.now(),
            req: req.clone(),
        });
        let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(n, Ordering::SeqCst);
        let latency = *self.latency.lock().unwrap();
        tokio::time::sleep(latency).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let mode = self.mode.lock().unwrap().clone();
        let fail = |code: &str, kind: StsErrorKind, msg: &str| StsError {
            code: code.into(),
            kind,
            http_status: Some(400),
            request_id: Some(format!("req-{}", self.seq.fetch_add(1, Ordering::SeqCst))),
            message: Some(msg.into()),
        };
        match mode {
            Mode::Fail(code, kind) => Err(fail(
                code,
                kind,
                "User: arn:aws:sts::123456789012:assumed-role/node is not authorized",
            )),
            Mode::ChainingCap if req.duration_seconds > 3600 => Err(fail(
                "ValidationError",
                StsErrorKind::Permanent,
                "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
            )),
            Mode::Ok | Mode::ChainingCap | Mode::Lifetime(_) => {
                let i = self.seq.fetch_add(1, Ordering::SeqCst);
                let now = self.clock.now();
                let lifetime = match mode {
                    Mode::Lifetime(l) => l,
                    _ => Duration::from_secs(u64::from(req.duration_seconds)),
                };
                Ok(Credentials {
                    access_key_id: format!("ASIAFAKE{i:08}"),
                    secret_access_key: format!("secret-{i}"),
                    session_token: format!("token-{i}"),
                    expiration: now + lifetime,
                    account_id: Some("123456789012".into()),
                    last_updated: now,
                })
            }
        }
    }
}

pub(super) fn pod(i: usize) -> Arc<PodInfo> {
    Arc::new(PodInfo {
        uid: format!("uid-{i}"),
        namespace: "shop".into(),
        name: format!("cart-{i}"),
        service_account: "cart".into(),
        ..Default::default()
    })
}

pub(super) fn role(name: &str, tags: bool) -> RoleSpec {
    RoleSpec {
        arn: format!("arn:aws:iam::123456789012:role/{name}"),
        external_id: None,
        session_tags: tags,
        source: if tags {
            RoleSource::Association
        } else {
            RoleSource::PodAnnotation
        },
    }
}

/// A cache over a fresh fake on tokio's (paused) clock.
pub(super) fn setup(cfg: VendConfig) -> (VendCache, Arc<FakeSts>, Arc<dyn Clock>) {
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::new());
    let fake = FakeSts::new(clock.clone());
    let cache = VendCache::with_clock(fake.clone(), cfg, VendMetrics::new(), clock.clone());
    (cache, fake, clock)
}

pub(super) fn remaining(c: &Credentials, clock: &Arc<dyn Clock>) -> Duration {
    c.expiration
        .duration_since(clock.now())
        .unwrap_or(Duration::ZERO)
}

#[tokio::test(start_paused = true)]
async fn hundred_concurrent_first_requests_make_one_call() {
    let (cache, fake, _) = setup(VendConfig::default());
    let p = pod(1);
    let r = role("cart", true);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (cache, p, r) = (cache.clone(), p.clone(), r.clone());
        tasks.push(tokio::spawn(async move { cache.get(&p, &r).await }));
    }
    let mut keys = std::collections::HashSet::new();
    for t in tasks {
        keys.insert(t.await.unwrap().expect("credentials").access_key_id);
    }
    assert_eq!(fake.count(), 1, "exactly one AssumeRole");
    assert_eq!(keys.len(), 1, "everyone got the same session");
    assert_eq!(cache.metrics().lookup_count(LookupResult::Miss), 100);
    // a later request is a hit without a call
    cache.get(&p, &r).await.expect("hit");
    assert_eq!(fake.count(), 1);
    assert_eq!(cache.metrics().lookup_count(LookupResult::Hit), 1);
}

#[tokio::test(start_paused = true)]
async fn each_pod_gets_its_own_role_session_and_tags() {
    let cfg = VendConfig {
        cluster_name: Some("prod".into()),
        ..Default::default()
    };
    let (cache, fake, _) = setup(cfg);
    let (a, b) = (pod(1), pod(2));
    let ra = role("cart", true);
    let rb = RoleSpec {
        external_id: Some("ext-42".into()),
        ..role("legacy", false)
    };
    let ca = cache.get(&a, &ra).await.unwrap();
    let cb = cache.get(&b, &rb).await.unwrap();
    assert_ne!(ca.access_key_id, cb.access_key_id);
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    let qa = &calls.iter().find(|c| c.req.role_arn == ra.arn).unwrap().req;
    assert_eq!(qa.session_name, "shop@cart-1");
    assert_eq!(qa.duration_seconds, 3600);
    assert_eq!(qa.external_id, None);
    let tags: Vec<(String, String)> = qa
        .tags
        .iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect();
    assert_eq!(
        tags,
        vec![
            ("eks-cluster-name".to_string(), "prod".to_string()),
            ("kubernetes-namespace".into(), "shop".into()),
            ("kubernetes-service-account".into(), "cart".into()),
            ("kubernetes-pod-name".into(), "cart-1".into()),
            ("kubernetes-pod-uid".into(), "uid-1".into()),
        ]
    );
    assert_eq!(qa.transitive_tag_keys.len(), 5);
    let qb = &calls.iter().find(|c| c.req.role_arn == rb.arn).unwrap().req;
    assert_eq!(qb.session_name, "shop@cart-2");
    assert_eq!(qb.external_id.as_deref(), Some("ext-42"));
    assert!(qb.tags.is_empty() && qb.transitive_tag_keys.is_empty());
}

#[tokio::test(start_paused = true)]
async fn duration_over_chaining_cap_is_retried_at_3600_and_remembered() {
    let cfg = VendConfig {
        session_duration: Duration::from_secs(7200),
        ..Default::default()
    };
    let (cache, fake, clock) = setup(cfg);
    fake.set_mode(Mode::ChainingCap);
    let c = cache
        .get(&pod(1), &role("cart", true))
        .await
        .expect("retried at 3600");
    assert!(remaining(&c, &clock) > Duration::from_secs(3500));
    let durations: Vec<u32> = fake
        .calls()
        .iter()
        .map(|c| c.req.duration_seconds)
        .collect();
    assert_eq!(durations, vec![7200, 3600]);
    cache
        .get(&pod(2), &role("other", true))
        .await
        .expect("second pod");
    let durations: Vec<u32> = fake
        .calls()
        .iter()
        .map(|c| c.req.duration_seconds)
        .collect();
    assert_eq!(
        durations,
        vec![7200, 3600, 3600],
        "cap remembered for all roles"
    );
}

#[tokio::test(start_paused = true)]
async fn prefetch_fetches_before_the_first_request() {
    let (cache, fake, _) = setup(VendConfig::default());
    let p = pod(1);
    let r = role("cart", true);
    cache.prefetch(p.clone(), &r);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fake.count(), 1);
    cache.get(&p, &r).await.unwrap();
    assert_eq!(fake.count(), 1);
    assert_eq!(cache.metrics().lookup_count(LookupResult::Hit), 1);
    // prefetch of an already cached session does nothing
    cache.prefetch(p.clone(), &r);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fake.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn evicted_pod_stops_refreshing() {
    let (cache, fake, _) = setup(VendConfig::default());
    let (a, b) = (pod(1), pod(2));
    let r = role("cart", true);
    cache.get(&a, &r).await.unwrap();
    cache.get(&b, &r).await.unwrap();
    assert_eq!(cache.session_count(), 2);
    assert_eq!(cache.evict_pod("uid-1"), 1);
    assert_eq!(cache.session_count(), 1);
    assert_eq!(cache.metrics().sessions.get(), 1);
    tokio::time::sleep(Duration::from_secs(4 * 3600)).await;
    let calls = fake.calls();
    let for_a = calls
        .iter()
        .filter(|c| c.req.session_name == "shop@cart-1")
        .count();
    let for_b = calls
        .iter()
        .filter(|c| c.req.session_name == "shop@cart-2")
        .count();
    assert_eq!(for_a, 1, "no refresh after eviction");
    assert!(for_b >= 9, "the other pod kept refreshing ({for_b})");
    assert_eq!(cache.evict_pod("uid-1"), 0);
}

#[tokio::test(start_paused = true)]
async fn eviction_fails_waiting_requests() {
    let (cache, fake, _) = setup(VendConfig::default());
    *fake.latency.lock().unwrap() = Duration::from_secs(5);
    let p = pod(1);
    let r = role("cart", true);
    let waiter = {
        let (cache, p, r) = (cache.clone(), p.clone(), r.clone());
        tokio::spawn(async move { cache.get(&p, &r).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    cache.evict_pod("uid-1");
    let err = waiter.await.unwrap().unwrap_err();
    assert_eq!(
        err,
        VendError::Retryable {
            code: "Evicted".into()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn role_change_drops_the_old_session() {
    let (cache, fake, _) = setup(VendConfig::default());
    let p = pod(1);
    cache.get(&p, &role("old", true)).await.unwrap();
    cache.get(&p, &role("new", true)).await.unwrap();
    assert_eq!(cache.session_count(), 1);
    tokio::time::sleep(Duration::from_secs(2 * 3600)).await;
    let old = fake
        .calls()
        .iter()
        .filter(|c| c.req.role_arn.ends_with("/old"))
        .count();
    assert_eq!(old, 1, "old role no longer refreshed");
}

#[tokio::test(start_paused = true)]
async fn sts_concurrency_is_capped() {
    let cfg = VendConfig {
        max_concurrent_sts: 3,
        ..Default::default()
    };
    let (cache, fake, _) = setup(cfg);
    *fake.latency.lock().unwrap() = Duration::from_millis(500);
    let r = role("cart", true);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (cache, p, r) = (cache.clone(), pod(i), r.clone());
        tasks.push(tokio::spawn(async move { cache.get(&p, &r).await }));
    }
    for t in tasks {
        t.await.unwrap().expect("credentials");
    }
    assert_eq!(fake.count(), 20);
    assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn retain_pods_evicts_the_rest() {
    let (cache, fake, _) = setup(VendConfig::default());
    let r = role("cart", true);
    for i in 0..5 {
        cache.get(&pod(i), &r).await.unwrap();
    }
    assert_eq!(cache.retain_pods(|uid| uid == "uid-0" || uid == "uid-3"), 3);
    assert_eq!(cache.session_count(), 2);
    assert_eq!(cache.metrics().sessions.get(), 2);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let refreshed: std::collections::HashSet<String> = fake
        .calls()
        .into_iter()
        .skip(5)
        .map(|c| c.req.session_name)
        .collect();
    let expected: std::collections::HashSet<String> =
        ["shop@cart-0".to_string(), "shop@cart-3".to_string()].into();
    assert_eq!(refreshed, expected);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_cache_stops_background_refresh() {
    let (cache, fake, _) = setup(VendConfig::default());
    cache.get(&pod(1), &role("cart", true)).await.unwrap();
    drop(cache);
    tokio::time::sleep(Duration::from_secs(4 * 3600)).await;
    assert_eq!(fake.count(), 1);
}
