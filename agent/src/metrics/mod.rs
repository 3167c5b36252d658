//! Prometheus metrics for the agent (prometheus-client 0.26, OpenMetrics text exposition).
//!
//! [`Metrics`] owns the [`Registry`] (prefix `podiam_`) and the families the HTTP surfaces
//! record into. Other modules (vend, datapath counters, identity) register their own families
//! through [`Metrics::registry_mut`] / [`Metrics::sub_registry`] before the `Metrics` is
//! shared, or at any time through [`Metrics::register_with`] (the registry sits behind a
//! mutex that only registration and `/metrics` encoding take). Registered metrics are cheap
//! `Clone` handles (`Arc` inside) that the owning module keeps and updates.
//!
//! Families defined here (all names carry the `podiam_` prefix on exposition):
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `podiam_http_requests_total` | counter | `surface`, `class`, `status` | answered requests |
//! | `podiam_http_request_duration_seconds` | histogram | `surface`, `class` | handler latency, seconds |
//! | `podiam_http_connections_total` | counter | `listener`, `outcome` | accepted / refused (cap) connections |
//! | `podiam_http_open_connections` | gauge | `listener` | connections currently open |
//! | `podiam_identity_failures_total` | counter | `reason` | callers that could not be identified |
//! | `podiam_imds_upstream_requests_total` | counter | `outcome` | forwards to the real IMDS |
//!
//! `surface` is one of `imds`, `container-credentials`, `ops`; `class` is a [`PathClass`];
//! `status` is the numeric HTTP status.
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Which HTTP surface answered a request.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Surface {
    /// EC2 instance metadata (IMDSv1/v2) emulation.
    Imds,
    /// Container credentials (`GET /v1/credentials`, EKS Pod Identity protocol).
    ContainerCredentials,
    /// The operations listener (`/healthz`, `/readyz`, `/metrics`).
    Ops,
}

/// What kind of request a path was, for the `class` label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum PathClass {
    /// `PUT /latest/api/token`.
    Token,
    /// `iam/security-credentials/` (the role-name listing) and the `iam/` listing.
    RoleList,
    /// Credentials (`iam/security-credentials/<role>`, `-extended`, `/v1/credentials`).
    Credentials,
    /// `iam/info`.
    Info,
    /// Forwarded to the real IMDS through the allow-list.
    Forwarded,
    /// Refused by a path or method rule (hostile path, never-forwarded path, 405).
    Refused,
    /// Refused because the caller could not be identified or its token was invalid.
    Unauthenticated,
    /// Health, readiness and metrics endpoints.
    Ops,
    /// Not found / anything else.
    Other,
}

impl Surface {
    /// The label value: `imds`, `container-credentials` or `ops`.
    pub fn as_str(self) -> &'static str {
        match self {
            Surface::Imds => "imds",
            Surface::ContainerCredentials => "container-credentials",
            Surface::Ops => "ops",
        }
    }
}

impl PathClass {
    /// The label value (`token`, `role-list`, `credentials`, `info`, `forwarded`,
    /// `refused`, `unauthenticated`, `ops`, `other`).
    pub fn as_str(self) -> &'static str {
        match self {
            PathClass::Token => "token",
            PathClass::RoleList => "role-list",
            PathClass::Credentials => "credentials",
            PathClass::Info => "info",
            PathClass::Forwarded => "forwarded",
            PathClass::Refused => "refused",
            PathClass::Unauthenticated => "unauthenticated",
            PathClass::Ops => "ops",
            PathClass::Other => "other",
        }
    }
}

impl EncodeLabelValue for Surface {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

impl EncodeLabelValue for PathClass {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// Labels of `podiam_http_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Which surface answered.
    pub surface: Surface,
    /// Path class of the request.
    pub class: PathClass,
    /// HTTP status code sent.
    pub status: u16,
}

/// Labels of `podiam_http_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    /// Which surface answered.
    pub surface: Surface,
    /// Path class of the request.
    pub class: PathClass,
}

/// Labels of the connection families: `listener` is `proxy` or `ops`; `outcome` is
/// `accepted` or `refused` (connection cap reached).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnLabels {
    /// Listener name (`proxy` or `ops`).
    pub listener: &'static str,
    /// What happened to the connection (`accepted`, `over_cap`, …).
    pub outcome: &'static str,
}

/// Labels with a `reason` value.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why the caller was refused (`no_origin`, `mismatch`, `unknown_pod`, `lookup`).
    pub reason: &'static str,
}

/// Labels with an `outcome` value.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// Outcome of the upstream request.
    pub outcome: &'static str,
}

/// Labels of role decisions: `outcome` is `role`, `no-role` or `denied`; `source` is the
/// resolution step that chose the role (`association`, `service-account-annotation`,
/// `pod-annotation`, `default-role`, `static-file`) or `none`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `role`, `no-role` or `denied`.
    pub outcome: &'static str,
    /// The step that produced the role, or `none`.
    pub source: &'static str,
}

/// Labels with a `listener` value.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    /// Listener name (`proxy` or `ops`).
    pub listener: &'static str,
}

type HistogramCtor = fn() -> Histogram;

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~8 s in 15 doubling buckets.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

/// The agent's metric registry and the HTTP surfaces' families.
pub struct Metrics {
    registry: std::sync::Mutex<Registry>,
    /// `podiam_http_requests_total{surface,class,status}`.
    pub requests: Family<RequestLabels, Counter>,
    /// `podiam_http_request_duration_seconds{surface,class}` (seconds).
    pub latency: Family<LatencyLabels, Histogram, HistogramCtor>,
    /// `podiam_http_connections_total{listener,outcome}`.
    pub connections: Family<ConnLabels, Counter>,
    /// `podiam_http_open_connections{listener}`.
    pub open_connections: Family<ListenerLabels, Gauge>,
    /// `podiam_identity_failures_total{reason}` (`no-origin`, `unknown-pod`, `mismatch`, `lookup`).
    pub identity_failures: Family<ReasonLabels, Counter>,
    /// `podiam_imds_upstream_requests_total{outcome}` (`ok`, `not-found`, `error`).
    pub upstream: Family<OutcomeLabels, Counter>,
    /// `podiam_role_decisions_total{outcome,source}`: role resolutions per request.
    pub role_decisions: Family<DecisionLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with prefix `podiam` and the HTTP surfaces' families registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("podiam");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram, HistogramCtor>::new_with_constructor(
            latency_histogram as HistogramCtor,
        );
        let connections = Family::<ConnLabels, Counter>::default();
        let open_connections = Family::<ListenerLabels, Gauge>::default();
        let identity_failures = Family::<ReasonLabels, Counter>::default();
        let upstream = Family::<OutcomeLabels, Counter>::default();
        let role_decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "role_decisions",
            "Role resolutions by outcome (role, no-role, denied) and the step that chose the role",
            role_decisions.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by surface, path class and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request handling latency in seconds, by surface and path class",
            latency.clone(),
        );
        registry.register(
            "http_connections",
            "TCP connections accepted or refused (connection cap), by listener",
            connections.clone(),
        );
        registry.register(
            "http_open_connections",
            "TCP connections currently open, by listener",
            open_connections.clone(),
        );
        registry.register(
            "identity_failures",
            "Connections whose calling pod could not be identified, by reason",
            identity_failures.clone(),
        );
        registry.register(
            "imds_upstream_requests",
            "Requests forwarded to the real IMDS through the allow-list, by outcome",
            upstream.clone(),
        );
        Self {
            registry: std::sync::Mutex::new(registry),
            requests,
            latency,
            connections,
            open_connections,
            identity_failures,
            upstream,
            role_decisions,
        }
    }

    /// The root registry (prefix `podiam`), for other modules to register their own
    /// families before serving, e.g.
    /// `metrics.registry_mut().register("vend_sts_calls", "…", family.clone())`
    /// (exposed as `podiam_vend_sts_calls_total` for counters).
    pub fn registry_mut(&mut self) -> &mut Registry {
        self.registry
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A sub-registry whose metric names get `podiam_<prefix>_`, e.g. `sub_registry("datapath")`.
    pub fn sub_registry(&mut self, prefix: &str) -> &mut Registry {
        self.registry_mut().sub_registry_with_prefix(prefix)
    }

    /// Registers through a shared reference (e.g. after the `Metrics` is in an `Arc`):
    /// `metrics.register_with(|r| r.sub_registry_with_prefix("vend").register("sts_calls", "…", c.clone()))`.
    pub fn register_with<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        let mut guard = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// Records one answered request: increments `podiam_http_requests_total` and observes
    /// `elapsed_seconds` in `podiam_http_request_duration_seconds`.
    pub fn observe_request(
        &self,
        surface: Surface,
        class: PathClass,
        status: u16,
        elapsed_seconds: f64,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                surface,
                class,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels { surface, class })
            .observe(elapsed_seconds);
    }

    /// The whole registry in the OpenMetrics text format (ends with `# EOF`). Content type:
    /// [`OPENMETRICS_CONTENT_TYPE`].
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Writing into a String cannot fail; an Err here would only come from a broken
        // custom collector, in which case the partial text is still returned.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// Content type of [`Metrics::encode`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_prefixed_families_and_hooks() {
        let mut m = Metrics::new();
        let extra = Family::<ReasonLabels, Counter>::default();
        m.sub_registry("vend")
            .register("sts_calls", "STS calls", extra.clone());
        extra.get_or_create(&ReasonLabels { reason: "ok" }).inc();
        let m = std::sync::Arc::new(m);
        let late = Counter::<u64>::default();
        m.register_with(|r| r.register("late", "registered after sharing", late.clone()));
        late.inc();
        m.observe_request(Surface::Imds, PathClass::Token, 200, 0.001);
        m.observe_request(
            Surface::ContainerCredentials,
            PathClass::Credentials,
            503,
            0.2,
        );
        let text = m.encode();
        assert!(
            text.contains(
                r#"podiam_http_requests_total{surface="imds",class="token",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"surface="container-credentials",class="credentials",status="503""#)
        );
        assert!(text.contains("podiam_http_request_duration_seconds_bucket"));
        assert!(
            text.contains(r#"podiam_vend_sts_calls_total{reason="ok"} 1"#),
            "{text}"
        );
        assert!(text.contains("podiam_late_total 1"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"));
    }
}
