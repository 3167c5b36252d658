//! [`VendConfig`]: session durations, refresh timing and limits of the credential cache.
use std::time::Duration;

/// Configuration of [`super::VendCache`]. All durations are wall-clock spans.
#[derive(Clone, Debug)]
pub struct VendConfig {
    /// `DurationSeconds` requested from STS (900–43200; default 3600 s). If STS refuses it as
    /// over the role-chaining cap or the role's `MaxSessionDuration`, the cache retries at
    /// 3600 s and remembers that.
    pub session_duration: Duration,
    /// Every credential served while STS is healthy has at least this much lifetime left
    /// (default 30 min; capped at half the session lifetime for short sessions).
    pub min_remaining: Duration,
    /// Background refresh starts this long before a credential would drop below
    /// `min_remaining` (default 5 min), plus up to `refresh_jitter` earlier.
    pub refresh_lead: Duration,
    /// Random extra lead (0..=this) on each background refresh, spreading STS load (default 60 s).
    pub refresh_jitter: Duration,
    /// Credentials with less than this left are never served (default 5 min): the request
    /// needs a new STS call instead and gets its (retryable) error if STS is still failing.
    pub hard_floor: Duration,
    /// How long a permanent STS error (AccessDenied, ValidationError, …) is answered from
    /// the cache before STS is asked again (default 30 s).
    pub negative_ttl: Duration,
    /// First retry delay after a retryable/throttled STS error (default 1 s); doubles per
    /// consecutive failure, with jitter (delay ∈ [d/2, d]).
    pub backoff_base: Duration,
    /// Upper bound of the retry delay (default 60 s).
    pub backoff_max: Duration,
    /// Extra factor on the backoff for throttling errors (default 2).
    pub throttle_multiplier: u32,
    /// Global cap on concurrent `AssumeRole` calls (default 8).
    pub max_concurrent_sts: usize,
    /// How long a request without usable cached credentials waits for the first fetch
    /// before failing with a retryable `Timeout` (default 10 s).
    pub request_wait: Duration,
    /// `eks-cluster-name` session tag value (`--cluster-name`); tag omitted when `None`.
    pub cluster_name: Option<String>,
    /// `eks-cluster-arn` session tag value; tag omitted when `None`.
    pub cluster_arn: Option<String>,
}

impl Default for VendConfig {
    fn default() -> Self {
        VendConfig {
            session_duration: Duration::from_secs(3600),
            min_remaining: Duration::from_secs(30 * 60),
            refresh_lead: Duration::from_secs(5 * 60),
            refresh_jitter: Duration::from_secs(60),
            hard_floor: Duration::from_secs(5 * 60),
            negative_ttl: Duration::from_secs(30),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            throttle_multiplier: 2,
            max_concurrent_sts: 8,
            request_wait: Duration::from_secs(10),
            cluster_name: None,
            cluster_arn: None,
        }
    }
}

impl VendConfig {
    /// `session_duration` clamped to the STS range 900–43200 s.
    pub fn duration_seconds(&self) -> u32 {
        self.session_duration.as_secs().clamp(900, 43200) as u32
    }
}
