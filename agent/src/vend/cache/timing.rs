//! Refresh-point, backoff and session-duration arithmetic of the cache (pure functions).
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use rand::Rng;

use super::super::Credentials;
use super::super::clock::saturating_sub;
use super::super::config::VendConfig;
use super::super::error::{DurationCap, StsErrorKind};

/// Smallest gap between two background refreshes of one session, whatever STS returns
/// (guards against refresh loops on short or skewed expirations).
pub(crate) const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// Smallest retry delay, whatever the configuration (guards against retry loops).
pub(crate) const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// The chaining cap STS applies (and the duration used after a [`DurationCap`] error).
pub(crate) const CHAINING_CAP_SECONDS: u32 = 3600;

/// Remaining-lifetime thresholds for one set of credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Thresholds {
    /// At or above this remaining lifetime a credential is "fresh" (served as a hit):
    /// `min(min_remaining, lifetime / 2)`.
    pub fresh: Duration,
    /// Background refresh starts when the remaining lifetime drops to this:
    /// `max(fresh, min(min_remaining + refresh_lead, lifetime × 3/4))`.
    pub refresh: Duration,
}

/// Thresholds for credentials obtained at `last_updated`, expiring at `expiration`.
pub(crate) fn thresholds(cfg: &VendConfig, creds: &Credentials) -> Thresholds {
    let lifetime = saturating_sub(creds.expiration, creds.last_updated);
    let fresh = cfg.min_remaining.min(lifetime / 2);
    let refresh = (cfg.min_remaining + cfg.refresh_lead)
        .min(lifetime * 3 / 4)
        .max(fresh);
    Thresholds { fresh, refresh }
}

/// When to start refreshing `creds` (obtained `now`): `expiration − refresh − jitter`, where
/// jitter ∈ [0, refresh_jitter] is random, but never earlier than `now + MIN_REFRESH_INTERVAL`.
pub(crate) fn refresh_at(cfg: &VendConfig, creds: &Credentials, now: SystemTime) -> SystemTime {
    let t = thresholds(cfg, creds);
    let jitter = random_upto(cfg.refresh_jitter);
    let at = creds
        .expiration
        .checked_sub(t.refresh + jitter)
        .unwrap_or(now);
    at.max(now + MIN_REFRESH_INTERVAL)
}

/// Uniform random duration in `[0, max]` (millisecond resolution).
fn random_upto(max: Duration) -> Duration {
    let ms = max.as_millis() as u64;
    if ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(rand::rng().random_range(0..=ms))
}

/// Retry delay after the `consecutive`-th (1-based) retryable failure:
/// `d = min(backoff_max, backoff_base × 2^(consecutive−1) × (throttle_multiplier if throttled))`,
/// then jittered uniformly into `[d/2, d]` ("equal jitter": never a stampede), and never
/// below [`MIN_BACKOFF`].
pub(crate) fn backoff(cfg: &VendConfig, consecutive: u32, kind: StsErrorKind) -> Duration {
    let exp = consecutive.saturating_sub(1).min(20);
    let mut d = cfg.backoff_base.saturating_mul(1u32 << exp);
    if kind == StsErrorKind::Throttled {
        d = d.saturating_mul(cfg.throttle_multiplier.max(1));
    }
    let d = d.min(cfg.backoff_max);
    (d / 2 + random_upto(d / 2)).max(MIN_BACKOFF)
}

/// Remembers STS's refusals of long sessions: role chaining caps every role at 1 h, a role's
/// `MaxSessionDuration` caps that role.
#[derive(Debug, Default)]
pub(crate) struct DurationPolicy {
    chained: AtomicBool,
    capped_roles: Mutex<HashSet<String>>,
}

impl DurationPolicy {
    /// `DurationSeconds` to request for `role_arn` given the configured value.
    pub fn duration_for(&self, role_arn: &str, configured: u32) -> u32 {
        if configured <= CHAINING_CAP_SECONDS {
            return configured;
        }
        let capped = self.chained.load(Ordering::Relaxed)
            || self
                .capped_roles
                .lock()
                .map(|s| s.contains(role_arn))
                .unwrap_or(false);
        if capped {
            CHAINING_CAP_SECONDS
        } else {
            configured
        }
    }

    /// Records a cap reported by STS for `role_arn`.
    pub fn record(&self, role_arn: &str, cap: DurationCap) {
        match cap {
            DurationCap::RoleChaining => self.chained.store(true, Ordering::Relaxed),
            DurationCap::RoleMaximum => {
                if let Ok(mut s) = self.capped_roles.lock() {
                    s.insert(role_arn.to_string());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(obtained: SystemTime, lifetime: u64) -> Credentials {
        Credentials {
            access_key_id: "AKIA".into(),
            secret_access_key: "s".into(),
            session_token: "t".into(),
            expiration: obtained + Duration::from_secs(lifetime),
            account_id: None,
            last_updated: obtained,
        }
    }

    #[test]
    fn thresholds_default_hour() {
        let cfg = VendConfig::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let c = creds(t0, 3600);
        let t = thresholds(&cfg, &c);
        assert_eq!(t.fresh, Duration::from_secs(1800));
        assert_eq!(t.refresh, Duration::from_secs(2100));
        for _ in 0..100 {
            let at = refresh_at(&cfg, &c, t0);
            let since = at.duration_since(t0).unwrap();
            assert!(
                since >= Duration::from_secs(1440) && since <= Duration::from_secs(1500),
                "{since:?}"
            );
        }
    }

    #[test]
    fn thresholds_short_sessions_do_not_loop() {
        let cfg = VendConfig::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let c = creds(t0, 900);
        let t = thresholds(&cfg, &c);
        assert_eq!(t.fresh, Duration::from_secs(450));
        assert_eq!(t.refresh, Duration::from_secs(675));
        assert!(refresh_at(&cfg, &c, t0) >= t0 + MIN_REFRESH_INTERVAL);
        // already-expired credentials still get a minimum interval
        let dead = creds(t0, 0);
        assert_eq!(refresh_at(&cfg, &dead, t0), t0 + MIN_REFRESH_INTERVAL);
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let cfg = VendConfig::default();
        for n in 1..=10u32 {
            let nominal = (Duration::from_secs(1) * (1 << (n - 1))).min(cfg.backoff_max);
            let d = backoff(&cfg, n, StsErrorKind::Retryable);
            assert!(d >= nominal / 2 && d <= nominal, "n={n} d={d:?}");
        }
        let t = backoff(&cfg, 1, StsErrorKind::Throttled);
        assert!(
            t >= Duration::from_secs(1) && t <= Duration::from_secs(2),
            "{t:?}"
        );
        assert!(backoff(&cfg, 1000, StsErrorKind::Throttled) <= cfg.backoff_max);
        // jitter: not all equal
        let samples: HashSet<Duration> = (0..50)
            .map(|_| backoff(&cfg, 6, StsErrorKind::Retryable))
            .collect();
        assert!(samples.len() > 5);
        // a zero configuration still never retries in a loop
        let zero = VendConfig {
            backoff_base: Duration::ZERO,
            backoff_max: Duration::ZERO,
            ..Default::default()
        };
        assert_eq!(backoff(&zero, 3, StsErrorKind::Retryable), MIN_BACKOFF);
    }

    #[test]
    fn duration_policy() {
        let p = DurationPolicy::default();
        assert_eq!(p.duration_for("a", 7200), 7200);
        assert_eq!(p.duration_for("a", 900), 900);
        p.record("a", DurationCap::RoleMaximum);
        assert_eq!(p.duration_for("a", 7200), 3600);
        assert_eq!(p.duration_for("b", 7200), 7200);
        p.record("b", DurationCap::RoleChaining);
        assert_eq!(p.duration_for("c", 43200), 3600);
        assert_eq!(p.duration_for("c", 1800), 1800);
    }
}
