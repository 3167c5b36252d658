//! HTTP listeners: the proxy listener (IMDS and container credentials, dispatched by path) and
//! the operations listener (`/healthz`, `/readyz`, `/metrics`).
//!
//! Wiring (from `podiam agent`):
//! ```text
//! let mut metrics = Metrics::new();            // other modules register families here
//! let metrics = Arc::new(metrics);
//! let state = Arc::new(AppState::new(&config, Services { callers, roles, credentials,
//!                                      validator, upstream }, metrics.clone()));
//! let proxy = bind_listeners(&config.proxy_addrs).await?;
//! let ops = tokio::net::TcpListener::bind(config.ops_addr).await?;
//! tokio::try_join!(serve_proxy(proxy, state, shutdown.clone()),
//!                  serve_ops(ops, Arc::new(OpsState { metrics, readiness }), &config.limits,
//!                            shutdown.clone()))?;
//! ```
//!
//! Dispatch on the proxy listener: an origin-form request for exactly `/v1/credentials` goes
//! to the container-credentials surface ([`crate::podidentity`]); everything else to IMDS
//! ([`crate::imds`]), which refuses what it does not know. The caller is resolved through
//! [`CallerResolver::resolve`] on the first request of each connection and cached for the
//! connection's lifetime (a failed resolution is retried on the next request).
mod conn;
mod dispatch;
mod ops;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::identity::CallerResolver;
use crate::imds::{Clock, Imds, ImdsOptions, ImdsUpstream, TokenMinter, system_clock};
use crate::metrics::Metrics;
use crate::podidentity::{PodIdentity, PodIdentityOptions, TokenValidator};
use crate::policy::RoleResolver;
use crate::vend::CredentialSource;

pub use conn::{bind_listeners, serve_proxy};
pub use dispatch::{CONTAINER_CREDENTIALS_PATH, ConnContext, handle_request, surface_of};
pub use ops::{
    CheckStatus, OpsState, Readiness, ReadinessCheck, ReadinessFlag, handle_ops, serve_ops,
};

/// Errors of the listeners.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding a listen address failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that could not be bound.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// No listener was given.
    #[error("no listen address")]
    NoListener,
}

/// Connection and request limits (apply to each listener separately).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line + headers) in bytes; larger → 431 and the
    /// connection is closed. Default 8192.
    pub max_header_bytes: usize,
    /// Time a client gets to send a complete request head, counted from the moment the
    /// server waits for one (new connection, or end of the previous response on a keep-alive
    /// connection). Exceeded → the connection is closed. Default 5 s.
    pub header_read_timeout: Duration,
    /// Idle keep-alive timeout: a connection with no request in flight for this long is
    /// closed. Default 5 s. Note that hyper (1.x) starts the head timer as soon as it waits
    /// for the next request, so an idle keep-alive connection is also closed after
    /// `header_read_timeout`: the effective idle limit is the smaller of the two (verified by
    /// the listener tests).
    pub idle_timeout: Duration,
    /// Deadline for answering one request once its head is read (identity hold, role
    /// resolution, vending, upstream); exceeded → 503. Default 10 s.
    pub request_timeout: Duration,
    /// Maximum simultaneously open connections on the proxy listener(s); excess connections
    /// get a bare `503` and are closed. Default 1024.
    pub max_connections: usize,
    /// Maximum simultaneously open connections on the operations listener. Default 64.
    pub max_ops_connections: usize,
    /// How long shutdown waits for open connections to finish. Default 5 s.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 8192,
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_ops_connections: 64,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Listener configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Proxy listen addresses: the eBPF redirect target (node IP : `--app-port`, default
    /// 8181), IPv4 and/or IPv6.
    pub proxy_addrs: Vec<SocketAddr>,
    /// Operations listener address (`/healthz`, `/readyz`, `/metrics`).
    pub ops_addr: SocketAddr,
    /// Connection/request limits.
    pub limits: Limits,
    /// IMDS behaviour (IMDSv2 required, forwarding allow-list).
    pub imds: ImdsOptions,
    /// Container-credentials behaviour (audience, allowed `Host` values).
    pub pod_identity: PodIdentityOptions,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            proxy_addrs: vec![SocketAddr::from(([0, 0, 0, 0], 8181))],
            ops_addr: SocketAddr::from(([0, 0, 0, 0], 8182)),
            limits: Limits::default(),
            imds: ImdsOptions::default(),
            pod_identity: PodIdentityOptions::default(),
        }
    }
}

/// The services the surfaces depend on (contracts implemented by other modules).
#[derive(Clone)]
pub struct Services {
    /// Connection → calling pod (identity module).
    pub callers: Arc<dyn CallerResolver>,
    /// Pod → IAM role (policy module).
    pub roles: Arc<dyn RoleResolver>,
    /// (pod, role) → credentials (vend module).
    pub credentials: Arc<dyn CredentialSource>,
    /// Container-credentials token validation (identity module, TokenReview).
    pub validator: Arc<dyn TokenValidator>,
    /// The real IMDS ([`crate::imds::HttpImdsUpstream`] in production).
    pub upstream: Arc<dyn ImdsUpstream>,
}

/// Everything the proxy listener needs, shared by all connections.
pub struct AppState {
    /// Connection → calling pod.
    pub callers: Arc<dyn CallerResolver>,
    /// The IMDS surface.
    pub imds: Imds,
    /// The container-credentials surface.
    pub pod_identity: PodIdentity,
    /// Request/connection metrics.
    pub metrics: Arc<Metrics>,
    /// Limits for the proxy listener.
    pub limits: Limits,
}

impl AppState {
    /// Builds the state with the system clock and a fresh random IMDSv2 token key.
    pub fn new(config: &ServerConfig, services: Services, metrics: Arc<Metrics>) -> Self {
        Self::with_clock(config, services, metrics, system_clock())
    }

    /// Like [`AppState::new`] with an injected wall clock (tests).
    pub fn with_clock(
        config: &ServerConfig,
        services: Services,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Self {
        Self {
            callers: services.callers,
            imds: Imds {
                options: config.imds.clone(),
                minter: TokenMinter::new(),
                roles: services.roles.clone(),
                credentials: services.credentials.clone(),
                upstream: services.upstream,
                clock,
                metrics: metrics.clone(),
            },
            pod_identity: PodIdentity {
                options: config.pod_identity.clone(),
                validator: services.validator,
                roles: services.roles,
                credentials: services.credentials,
            },
            metrics,
            limits: config.limits.clone(),
        }
    }
}
