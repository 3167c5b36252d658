//! [`VendMetrics`]: Prometheus metrics of credential vending (prometheus-client 0.26).
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Outcome of one STS call (label values `success`, `throttled`, `retryable`, `permanent`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum StsOutcome {
    /// AssumeRole returned credentials.
    Success,
    /// STS answered with a throttling error.
    Throttled,
    /// Retryable failure (5xx, timeout, network).
    Retryable,
    /// Permanent failure (AccessDenied, validation).
    Permanent,
}

/// Result of one credential lookup in the cache (label values `hit`, `stale`, `miss`,
/// `negative`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum LookupResult {
    /// Served from cache with at least `min_remaining` left.
    Hit,
    /// Served from cache below `min_remaining` (refresh pending or STS failing).
    Stale,
    /// Had to wait for an STS call.
    Miss,
    /// Answered with a cached error (negative cache or backoff window).
    Negative,
}

impl EncodeLabelValue for StsOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(match self {
            StsOutcome::Success => "success",
            StsOutcome::Throttled => "throttled",
            StsOutcome::Retryable => "retryable",
            StsOutcome::Permanent => "permanent",
        })
    }
}

impl EncodeLabelValue for LookupResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(match self {
            LookupResult::Hit => "hit",
            LookupResult::Stale => "stale",
            LookupResult::Miss => "miss",
            LookupResult::Negative => "negative",
        })
    }
}

/// Label set `{outcome}` of `vend_sts_calls_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// Outcome of the STS call.
    pub outcome: StsOutcome,
}

/// Label set `{result}` of `vend_cache_lookups_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupLabels {
    /// Result of the cache lookup.
    pub result: LookupResult,
}

/// Metrics of the vending cache. Cheap to clone (shared handles).
///
/// Registered by [`VendMetrics::register`] under the prefix `vend_` of the given registry:
/// - `vend_sts_calls_total{outcome=success|throttled|retryable|permanent}` (counter)
/// - `vend_sts_latency_seconds` (histogram, 5 ms – ~20 s)
/// - `vend_cache_lookups_total{result=hit|stale|miss|negative}` (counter)
/// - `vend_cache_refreshes_total` (counter: background refresh attempts)
/// - `vend_served_remaining_seconds` (histogram: lifetime left on served credentials)
/// - `vend_sessions` (gauge: cached pod sessions)
#[derive(Clone, Debug)]
pub struct VendMetrics {
    /// `vend_sts_calls_total{outcome}`.
    pub sts_calls: Family<OutcomeLabels, Counter>,
    /// `vend_sts_latency_seconds`: AssumeRole latency.
    pub sts_latency: Histogram,
    /// `vend_cache_lookups_total{result}`.
    pub lookups: Family<LookupLabels, Counter>,
    /// `vend_cache_refreshes_total`: background refreshes started.
    pub refreshes: Counter,
    /// `vend_served_remaining_seconds`: remaining lifetime of served credentials.
    pub served_remaining: Histogram,
    /// `vend_sessions`: live cached sessions.
    pub sessions: Gauge,
}

impl Default for VendMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl VendMetrics {
    /// Fresh, unregistered metrics.
    pub fn new() -> Self {
        VendMetrics {
            sts_calls: Family::default(),
            sts_latency: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.005, 2.0, 13),
            ),
            lookups: Family::default(),
            refreshes: Counter::default(),
            served_remaining: Histogram::new([
                60.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 2400.0, 3000.0, 3600.0, 7200.0, 21600.0,
                43200.0,
            ]),
            sessions: Gauge::default(),
        }
    }

    /// Registers all metrics in `registry` under the sub-prefix `vend`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("vend");
        r.register(
            "sts_calls",
            "sts:AssumeRole calls by outcome",
            self.sts_calls.clone(),
        );
        r.register_with_unit(
            "sts_latency",
            "sts:AssumeRole call latency",
            Unit::Seconds,
            self.sts_latency.clone(),
        );
        r.register(
            "cache_lookups",
            "Credential cache lookups by result",
            self.lookups.clone(),
        );
        r.register(
            "cache_refreshes",
            "Background credential refresh attempts",
            self.refreshes.clone(),
        );
        r.register_with_unit(
            "served_remaining",
            "Lifetime left on served credentials",
            Unit::Seconds,
            self.served_remaining.clone(),
        );
        r.register(
            "sessions",
            "Pod sessions held by the credential cache",
            self.sessions.clone(),
        );
    }

    pub(crate) fn sts_call(&self, outcome: StsOutcome) {
        self.sts_calls
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub(crate) fn lookup(&self, result: LookupResult) {
        self.lookups.get_or_create(&LookupLabels { result }).inc();
    }

    /// Count of STS calls with `outcome` so far (for tests and status output).
    pub fn sts_call_count(&self, outcome: StsOutcome) -> u64 {
        self.sts_calls
            .get_or_create(&OutcomeLabels { outcome })
            .get()
    }

    /// Count of lookups with `result` so far.
    pub fn lookup_count(&self, result: LookupResult) -> u64 {
        self.lookups.get_or_create(&LookupLabels { result }).get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_and_encodes() {
        let m = VendMetrics::new();
        let mut reg = Registry::with_prefix("podiam");
        m.register(&mut reg);
        m.sts_call(StsOutcome::Success);
        m.lookup(LookupResult::Hit);
        m.sts_latency.observe(0.1);
        m.served_remaining.observe(3000.0);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).expect("encode");
        assert!(
            out.contains("podiam_vend_sts_calls_total{outcome=\"success\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("podiam_vend_cache_lookups_total{result=\"hit\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("podiam_vend_sts_latency_seconds_count 1"),
            "{out}"
        );
        assert!(
            out.contains("podiam_vend_served_remaining_seconds_bucket"),
            "{out}"
        );
        assert!(out.contains("podiam_vend_sessions 0"), "{out}");
    }
}
