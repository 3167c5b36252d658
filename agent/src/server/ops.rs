//! The operations listener: `GET /healthz` (liveness), `GET /readyz` (named readiness
//! checks), `GET /metrics` (Prometheus / OpenMetrics text).
//!
//! - `/healthz` → 200 `{"status":"ok"}` while the process serves HTTP.
//! - `/readyz` → 200 when every check is ready, else 503; body
//!   `{"ready":bool,"checks":[{"name":"datapath","ready":true,"detail":"…"},…]}` in
//!   registration order. No checks registered → ready.
//! - `/metrics` → [`Metrics::encode`] with content type
//!   [`crate::metrics::OPENMETRICS_CONTENT_TYPE`].
//! - other paths → 404, other methods → 405.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::conn::{Handler, run};
use super::{Limits, ServerError};
use crate::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE, PathClass, Surface};

/// The state of one readiness check.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CheckStatus {
    /// Whether this part of the agent is ready.
    pub ready: bool,
    /// Human-readable detail (e.g. "attached at /sys/fs/cgroup/unified",
    /// "cgroup v1 host: peer-IP identity fallback").
    pub detail: String,
}

/// A named readiness check (e.g. "datapath attached", "inventory synced"), evaluated on every
/// `/readyz` request; must be cheap and non-blocking.
pub trait ReadinessCheck: Send + Sync {
    /// Name shown in `/readyz` (e.g. `datapath`).
    fn name(&self) -> &str;
    /// Current state.
    fn status(&self) -> CheckStatus;
}

/// A readiness check whose state the owner sets (starts not ready).
pub struct ReadinessFlag {
    name: String,
    state: Mutex<CheckStatus>,
}

impl ReadinessFlag {
    /// A not-yet-ready flag with detail "starting".
    pub fn new(name: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            state: Mutex::new(CheckStatus {
                ready: false,
                detail: "starting".to_owned(),
            }),
        })
    }

    /// Sets the state.
    pub fn set(&self, ready: bool, detail: impl Into<String>) {
        if let Ok(mut s) = self.state.lock() {
            *s = CheckStatus {
                ready,
                detail: detail.into(),
            };
        }
    }
}

impl ReadinessCheck for ReadinessFlag {
    fn name(&self) -> &str {
        &self.name
    }
    fn status(&self) -> CheckStatus {
        self.state.lock().map(|s| s.clone()).unwrap_or(CheckStatus {
            ready: false,
            detail: "state poisoned".to_owned(),
        })
    }
}

/// The set of readiness checks.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<Arc<dyn ReadinessCheck>>,
}

impl Readiness {
    /// No checks (always ready).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check.
    pub fn add(&mut self, check: Arc<dyn ReadinessCheck>) -> &mut Self {
        self.checks.push(check);
        self
    }

    /// Evaluates every check: (all ready, JSON body).
    pub fn evaluate(&self) -> (bool, serde_json::Value) {
        let mut all = true;
        let checks: Vec<serde_json::Value> = self
            .checks
            .iter()
            .map(|c| {
                let s = c.status();
                all &= s.ready;
                serde_json::json!({"name": c.name(), "ready": s.ready, "detail": s.detail})
            })
            .collect();
        (all, serde_json::json!({"ready": all, "checks": checks}))
    }
}

/// What the operations listener serves.
pub struct OpsState {
    /// The registry exposed on `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Checks evaluated on `/readyz`.
    pub readiness: Readiness,
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Answers one operations request.
pub fn handle_ops<B>(state: &OpsState, req: &Request<B>) -> Response<Full<Bytes>> {
    let start = Instant::now();
    let resp = if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "Method Not Allowed",
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        r
    } else {
        match req.uri().path() {
            "/healthz" => respond(StatusCode::OK, "application/json", r#"{"status":"ok"}"#),
            "/readyz" => {
                let (ready, body) = state.readiness.evaluate();
                let status = if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                respond(status, "application/json", body.to_string())
            }
            "/metrics" => respond(
                StatusCode::OK,
                OPENMETRICS_CONTENT_TYPE,
                state.metrics.encode(),
            ),
            _ => respond(StatusCode::NOT_FOUND, "text/plain", "Not Found"),
        }
    };
    state.metrics.observe_request(
        Surface::Ops,
        PathClass::Ops,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

struct OpsHandler(Arc<OpsState>);

impl Handler for OpsHandler {
    type Conn = ();
    const NAME: &'static str = "ops";
    fn connection(&self, _peer: SocketAddr, _local: SocketAddr) {}
    async fn call(
        self: Arc<Self>,
        _conn: Arc<()>,
        req: Request<Incoming>,
    ) -> Response<Full<Bytes>> {
        handle_ops(&self.0, &req)
    }
}

/// Serves the operations endpoints on `listener` until `shutdown` is cancelled. Uses
/// `limits` for timeouts/head size and `limits.max_ops_connections` as the cap.
pub async fn serve_ops(
    listener: TcpListener,
    state: Arc<OpsState>,
    limits: &Limits,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let metrics = state.metrics.clone();
    run(
        vec![listener],
        Arc::new(OpsHandler(state)),
        limits.clone(),
        limits.max_ops_connections,
        metrics,
        shutdown,
    )
    .await
}
