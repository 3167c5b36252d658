//! Error-path tests with the fake STS: throttling backoff without stampede, negative cache
//! for AccessDenied, request timeout.
use std::collections::HashMap;
use std::time::Duration;

use super::super::VendError;
use super::super::config::VendConfig;
use super::super::error::StsErrorKind;
use super::super::metrics::{LookupResult, StsOutcome};
use super::tests_fake::{Mode, pod, role, setup};

#[tokio::test(start_paused = true)]
async fn throttling_backs_off_and_does_not_stampede() {
    let (cache, fake, _) = setup(VendConfig::default());
    fake.set_mode(Mode::Fail("Throttling", StsErrorKind::Throttled));
    let p = pod(1);
    let r = role("cart", true);
    // 100 concurrent requests: one STS call, everyone gets the retryable error.
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (cache, p, r) = (cache.clone(), p.clone(), r.clone());
        tasks.push(tokio::spawn(async move { cache.get(&p, &r).await }));
    }
    for t in tasks {
        let e = t.await.unwrap().unwrap_err();
        assert_eq!(
            e,
            VendError::Retryable {
                code: "Throttling".into()
            }
        );
    }
    assert_eq!(fake.count(), 1);
    // Then a request every 100 ms for 60 s (600 requests): calls follow the backoff.
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(cache.get(&p, &r).await.unwrap_err().is_retryable());
    }
    let calls = fake.calls();
    assert!(
        (4..=8).contains(&calls.len()),
        "{} calls in 60 s",
        calls.len()
    );
    let gaps: Vec<Duration> = calls
        .windows(2)
        .map(|w| w[1].at.duration_since(w[0].at).unwrap())
        .collect();
    for w in gaps.windows(2) {
        assert!(w[1] >= w[0], "backoff grows: {gaps:?}");
    }
    assert!(gaps[0] >= Duration::from_secs(1), "{gaps:?}");
    assert_eq!(
        cache.metrics().sts_call_count(StsOutcome::Throttled),
        calls.len() as u64
    );
    assert!(cache.metrics().lookup_count(LookupResult::Negative) > 500);
}

#[tokio::test(start_paused = true)]
async fn throttled_refreshes_are_jittered_across_pods() {
    let cfg = VendConfig {
        refresh_jitter: Duration::ZERO,
        ..Default::default()
    };
    let (cache, fake, _) = setup(cfg);
    let r = role("cart", true);
    for i in 0..20 {
        cache.get(&pod(i), &r).await.unwrap();
    }
    fake.set_mode(Mode::Fail("Throttling", StsErrorKind::Throttled));
    // Past the refresh point (~25 min) plus a few minutes of retries.
    tokio::time::sleep(Duration::from_secs(30 * 60)).await;
    let mut per_pod: HashMap<String, Vec<std::time::SystemTime>> = HashMap::new();
    for c in fake.calls().into_iter().skip(20) {
        per_pod.entry(c.req.session_name).or_default().push(c.at);
    }
    assert_eq!(per_pod.len(), 20);
    let mut third_gaps = std::collections::HashSet::new();
    for times in per_pod.values() {
        assert!(
            times.len() >= 4 && times.len() <= 15,
            "{} retries",
            times.len()
        );
        if times.len() > 3 {
            third_gaps.insert(times[3].duration_since(times[2]).unwrap().as_millis());
        }
    }
    assert!(
        third_gaps.len() > 10,
        "retries are jittered: {third_gaps:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn access_denied_is_negative_cached() {
    let cfg = VendConfig::default();
    let ttl = cfg.negative_ttl;
    let (cache, fake, _) = setup(cfg);
    fake.set_mode(Mode::Fail("AccessDenied", StsErrorKind::Permanent));
    let p = pod(1);
    let r = role("cart", true);
    for _ in 0..50 {
        let e = cache.get(&p, &r).await.unwrap_err();
        assert_eq!(
            e,
            VendError::Permanent {
                code: "AccessDenied".into()
            }
        );
        assert!(!e.to_string().contains("123456789012"));
        tokio::time::sleep(ttl / 60).await;
    }
    assert_eq!(
        fake.count(),
        1,
        "one STS call for 50 requests within the negative TTL"
    );
    tokio::time::sleep(ttl).await;
    cache.get(&p, &r).await.unwrap_err();
    assert_eq!(fake.count(), 2, "asked again after the negative TTL");
    // No background retries for a permanently failing session without credentials.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(fake.count(), 2);
    // Once allowed, it works.
    fake.set_mode(Mode::Ok);
    cache
        .get(&p, &r)
        .await
        .expect("credentials once the trust policy allows it");
}

#[tokio::test(start_paused = true)]
async fn access_denied_on_refresh_stops_serving_cached_credentials() {
    let (cache, fake, _) = setup(VendConfig::default());
    let p = pod(1);
    let r = role("cart", true);
    cache.get(&p, &r).await.unwrap();
    fake.set_mode(Mode::Fail("AccessDenied", StsErrorKind::Permanent));
    tokio::time::sleep(Duration::from_secs(26 * 60)).await;
    assert_eq!(fake.count(), 2, "refresh attempted");
    let e = cache.get(&p, &r).await.unwrap_err();
    assert_eq!(
        e,
        VendError::Permanent {
            code: "AccessDenied".into()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn slow_sts_times_out_the_request_not_the_call() {
    let (cache, fake, _) = setup(VendConfig::default());
    *fake.latency.lock().unwrap() = Duration::from_secs(20);
    let p = pod(1);
    let r = role("cart", true);
    let started = tokio::time::Instant::now();
    let e = cache.get(&p, &r).await.unwrap_err();
    assert_eq!(
        e,
        VendError::Retryable {
            code: "Timeout".into()
        }
    );
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    // the call completes in the background; the next request is served from cache
    tokio::time::sleep(Duration::from_secs(11)).await;
    cache
        .get(&p, &r)
        .await
        .expect("cached after the slow call finished");
    assert_eq!(fake.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn credentials_expiring_on_arrival_are_a_retryable_failure() {
    let (cache, fake, clock) = setup(VendConfig::default());
    fake.set_mode(Mode::Lifetime(Duration::from_secs(120)));
    let p = pod(1);
    let r = role("cart", true);
    for _ in 0..20 {
        let e = cache.get(&p, &r).await.unwrap_err();
        assert_eq!(
            e,
            VendError::Retryable {
                code: "ShortLivedCredentials".into()
            }
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fake.count(), 1, "backoff, not a call per request");
    fake.set_mode(Mode::Ok);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c = cache.get(&p, &r).await.expect("healthy again");
    assert!(super::tests_fake::remaining(&c, &clock) > Duration::from_secs(3000));
}
