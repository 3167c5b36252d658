//! Per-request dispatch on the proxy listener: caller resolution (cached per connection),
//! surface choice by path, request deadline, metrics.
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tokio::sync::OnceCell;

use super::AppState;
use crate::identity::{Caller, IdentityError};
use crate::imds::Handled;
use crate::metrics::{PathClass, ReasonLabels, Surface};

/// Path of the container-credentials endpoint.
pub const CONTAINER_CREDENTIALS_PATH: &str = "/v1/credentials";

/// One accepted connection: its addresses and, once resolved, its caller.
pub struct ConnContext {
    peer: SocketAddr,
    local: SocketAddr,
    caller: OnceCell<Caller>,
}

impl ConnContext {
    /// `peer` is `accept()`'s remote address, `local` the listener-side address.
    pub fn new(peer: SocketAddr, local: SocketAddr) -> Self {
        Self {
            peer,
            local,
            caller: OnceCell::new(),
        }
    }

    /// The caller, resolving it on first use; successes are cached for the connection,
    /// failures are not (the next request tries again).
    async fn caller(&self, state: &AppState) -> Result<&Caller, IdentityError> {
        self.caller
            .get_or_try_init(|| state.callers.resolve(self.peer, self.local))
            .await
    }
}

fn identity_reason(e: &IdentityError) -> &'static str {
    match e {
        IdentityError::NoOrigin(_) => "no-origin",
        IdentityError::UnknownPod { .. } => "unknown-pod",
        IdentityError::Mismatch { .. } => "mismatch",
        IdentityError::Lookup(_) => "lookup",
    }
}

/// Which surface a request belongs to: container credentials for an origin-form
/// `/v1/credentials` (any query), IMDS for everything else.
pub fn surface_of<B>(req: &Request<B>) -> Surface {
    let uri = req.uri();
    if uri.scheme().is_none()
        && uri.authority().is_none()
        && uri.path() == CONTAINER_CREDENTIALS_PATH
    {
        Surface::ContainerCredentials
    } else {
        Surface::Imds
    }
}

/// Answers one request on the proxy listener. The request body is never read (no route
/// takes one). Never fails: every problem becomes an HTTP status.
pub async fn handle_request<B>(
    state: &AppState,
    conn: &ConnContext,
    req: Request<B>,
) -> Response<Full<Bytes>> {
    let start = Instant::now();
    let surface = surface_of(&req);
    let (parts, _body) = req.into_parts();
    let work = async {
        let caller = conn.caller(state).await;
        if let Err(e) = &caller {
            state
                .metrics
                .identity_failures
                .get_or_create(&ReasonLabels {
                    reason: identity_reason(e),
                })
                .inc();
            tracing::info!(peer = %conn.peer, error = %e, "caller not identified");
        }
        let caller = caller.as_ref().map(|c| *c);
        match surface {
            Surface::ContainerCredentials => state.pod_identity.handle(&parts, caller).await,
            _ => state.imds.handle(&parts, caller).await,
        }
    };
    let handled = match tokio::time::timeout(state.limits.request_timeout, work).await {
        Ok(h) => h,
        Err(_) => {
            tracing::warn!(peer = %conn.peer, path = parts.uri.path(), "request deadline exceeded");
            timeout_response(surface)
        }
    };
    state.metrics.observe_request(
        surface,
        handled.class,
        handled.response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    handled.response
}

fn timeout_response(surface: Surface) -> Handled {
    match surface {
        Surface::ContainerCredentials => crate::podidentity::error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "the request timed out; retry",
            PathClass::Other,
        ),
        _ => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"Service Unavailable")));
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            Handled {
                response,
                class: PathClass::Other,
            }
        }
    }
}
