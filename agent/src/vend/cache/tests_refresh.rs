//! Time-controlled refresh tests (tokio paused clock + fake STS): background refresh before
//! the 30-minute floor, stale-but-valid during outages, hard floor, recovery.
use std::time::Duration;

use super::super::VendError;
use super::super::config::VendConfig;
use super::super::error::StsErrorKind;
use super::super::metrics::LookupResult;
use super::tests_fake::{Mode, pod, remaining, role, setup};

const STEP: Duration = Duration::from_secs(10);

#[tokio::test(start_paused = true)]
async fn refresh_happens_in_background_before_the_floor() {
    let (cache, fake, clock) = setup(VendConfig::default());
    let p = pod(1);
    let r = role("cart", true);
    let first = cache.get(&p, &r).await.unwrap();
    let t0 = clock.now();
    let mut min_seen = Duration::MAX;
    let mut keys = std::collections::HashSet::new();
    // 3 hours, a request every 10 s
    for _ in 0..(3 * 360) {
        tokio::time::sleep(STEP).await;
        let calls_before = fake.count();
        let c = cache.get(&p, &r).await.expect("healthy STS always serves");
        assert_eq!(
            fake.count(),
            calls_before,
            "requests never wait for STS (background refresh)"
        );
        min_seen = min_seen.min(remaining(&c, &clock));
        keys.insert(c.access_key_id);
    }
    assert!(
        min_seen >= Duration::from_secs(30 * 60),
        "served credentials with only {min_seen:?} left"
    );
    // refreshes every ~24-25 min (35 min before expiry of 60 min sessions, jittered)
    let calls = fake.calls();
    assert!((7..=9).contains(&calls.len()), "{} calls", calls.len());
    assert_eq!(keys.len(), calls.len());
    for pair in calls.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at).unwrap();
        assert!(
            gap >= Duration::from_secs(1440) && gap <= Duration::from_secs(1501),
            "refresh gap {gap:?}"
        );
    }
    assert!(
        keys.len() > 1 && first.access_key_id != cache.get(&p, &r).await.unwrap().access_key_id
    );
    assert_eq!(cache.metrics().lookup_count(LookupResult::Stale), 0);
    assert!(cache.metrics().refreshes.get() >= 6);
    let _ = t0;
}

#[tokio::test(start_paused = true)]
async fn outage_serves_stale_until_floor_then_errors_then_recovers() {
    let cfg = VendConfig::default();
    let floor = cfg.hard_floor;
    let (cache, fake, clock) = setup(cfg);
    let p = pod(1);
    let r = role("cart", true);
    let good = cache.get(&p, &r).await.unwrap();
    fake.set_mode(Mode::Fail("InternalFailure", StsErrorKind::Retryable));
    let outage_start = fake.count();
    // Serve the same (stale-but-valid) credentials until they are within the hard floor.
    let mut served_stale = 0;
    loop {
        tokio::time::sleep(STEP).await;
        let left = good
            .expiration
            .duration_since(clock.now())
            .unwrap_or_default();
        match cache.get(&p, &r).await {
            Ok(c) => {
                assert_eq!(
                    c.access_key_id, good.access_key_id,
                    "no new credentials during the outage"
                );
                let rem = remaining(&c, &clock);
                assert!(rem > floor, "served with {rem:?} left");
                if rem < Duration::from_secs(1800) {
                    served_stale += 1;
                }
            }
            Err(e) => {
                assert!(left <= floor + STEP, "error while {left:?} were left: {e}");
                assert_eq!(
                    e,
                    VendError::Retryable {
                        code: "InternalFailure".into()
                    }
                );
                break;
            }
        }
    }
    assert!(
        served_stale > 100,
        "stale credentials served {served_stale} times"
    );
    assert!(cache.metrics().lookup_count(LookupResult::Stale) >= served_stale);
    // Never expired credentials: keep asking past expiry, always a retryable error.
    for _ in 0..60 {
        tokio::time::sleep(STEP).await;
        let e = cache.get(&p, &r).await.unwrap_err();
        assert!(e.is_retryable(), "{e}");
    }
    // Backoff bounded the outage's STS calls (capped at one per 30-60 s).
    let outage_calls = fake.count() - outage_start;
    assert!(
        (20..=90).contains(&outage_calls),
        "{outage_calls} calls during the outage"
    );
    // Recovery: once STS works again, the next request after the backoff window succeeds.
    fake.set_mode(Mode::Ok);
    let mut recovered = None;
    for _ in 0..12 {
        tokio::time::sleep(STEP).await;
        if let Ok(c) = cache.get(&p, &r).await {
            recovered = Some(c);
            break;
        }
    }
    let c = recovered.expect("recovered within two minutes");
    assert_ne!(c.access_key_id, good.access_key_id);
    assert!(remaining(&c, &clock) >= Duration::from_secs(3500));
}

#[tokio::test(start_paused = true)]
async fn short_outage_is_invisible() {
    let (cache, fake, clock) = setup(VendConfig::default());
    let p = pod(1);
    let r = role("cart", true);
    cache.get(&p, &r).await.unwrap();
    // STS down from minute 20 to minute 27: spans the refresh point (~24-25 min).
    tokio::time::sleep(Duration::from_secs(20 * 60)).await;
    fake.set_mode(Mode::Fail("Throttling", StsErrorKind::Throttled));
    tokio::time::sleep(Duration::from_secs(7 * 60)).await;
    fake.set_mode(Mode::Ok);
    // The backoff retry (≤ 60 s) picks the refresh up again.
    tokio::time::sleep(Duration::from_secs(90)).await;
    let c = cache.get(&p, &r).await.unwrap();
    assert!(
        remaining(&c, &clock) >= Duration::from_secs(3400),
        "{:?}",
        remaining(&c, &clock)
    );
    assert_eq!(cache.metrics().lookup_count(LookupResult::Stale), 0);
}
