//! Accept loops and per-connection serving (hyper 1 HTTP/1.1, hyper-util `TokioIo`/`TokioTimer`)
//! with the [`Limits`]: head size (431), head read timeout, idle timeout, connection cap,
//! graceful shutdown.
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::dispatch::{ConnContext, handle_request};
use super::{AppState, Limits, ServerError};
use crate::metrics::{ConnLabels, ListenerLabels, Metrics};

/// Sent to connections beyond the cap, then the socket is closed.
const OVER_CAPACITY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// What a listener serves.
pub(super) trait Handler: Send + Sync + 'static {
    /// Per-connection state.
    type Conn: Send + Sync + 'static;
    /// Label value of the `listener` metric label.
    const NAME: &'static str;
    fn connection(&self, peer: SocketAddr, local: SocketAddr) -> Self::Conn;
    fn call(
        self: Arc<Self>,
        conn: Arc<Self::Conn>,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<Full<Bytes>>> + Send;
}

struct ProxyHandler(Arc<AppState>);

impl Handler for ProxyHandler {
    type Conn = ConnContext;
    const NAME: &'static str = "proxy";
    fn connection(&self, peer: SocketAddr, local: SocketAddr) -> ConnContext {
        ConnContext::new(peer, local)
    }
    async fn call(
        self: Arc<Self>,
        conn: Arc<ConnContext>,
        req: Request<Incoming>,
    ) -> Response<Full<Bytes>> {
        handle_request(&self.0, &conn, req).await
    }
}

/// Binds one listener per address. Fails on the first address that cannot be bound (callers
/// that treat IPv6 as optional bind that address separately).
pub async fn bind_listeners(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, ServerError> {
    let mut out = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: *addr,
                source,
            })?;
        out.push(l);
    }
    Ok(out)
}

/// Serves IMDS and container credentials on `listeners` until `shutdown` is cancelled, then
/// stops accepting, lets open connections finish their current request (bounded by
/// `limits.shutdown_grace`) and returns. Connection cap, timeouts and head size come from
/// `state.limits`; the cap is shared by all `listeners`.
pub async fn serve_proxy(
    listeners: Vec<TcpListener>,
    state: Arc<AppState>,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let limits = state.limits.clone();
    let metrics = state.metrics.clone();
    run(
        listeners,
        Arc::new(ProxyHandler(state)),
        limits.clone(),
        limits.max_connections,
        metrics,
        shutdown,
    )
    .await
}

pub(super) async fn run<H: Handler>(
    listeners: Vec<TcpListener>,
    handler: Arc<H>,
    limits: Limits,
    max_connections: usize,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    if listeners.is_empty() {
        return Err(ServerError::NoListener);
    }
    let max = max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(max));
    let mut loops = tokio::task::JoinSet::new();
    for l in listeners {
        loops.spawn(accept_loop(
            l,
            handler.clone(),
            limits.clone(),
            permits.clone(),
            metrics.clone(),
            shutdown.clone(),
        ));
    }
    while loops.join_next().await.is_some() {}
    // Wait for open connections (each holds one permit) to drain.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(
        limits.shutdown_grace + Duration::from_millis(500),
        permits.acquire_many(all),
    )
    .await;
    Ok(())
}

async fn accept_loop<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    limits: Limits,
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE/ENFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics
                .connections
                .get_or_create(&ConnLabels {
                    listener: H::NAME,
                    outcome: "refused",
                })
                .inc();
            tokio::spawn(refuse(stream));
            continue;
        };
        metrics
            .connections
            .get_or_create(&ConnLabels {
                listener: H::NAME,
                outcome: "accepted",
            })
            .inc();
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(_) => continue,
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let limits = limits.clone();
        let metrics = metrics.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let gauge = metrics
                .open_connections
                .get_or_create_owned(&ListenerLabels { listener: H::NAME });
            gauge.inc();
            serve_connection(stream, peer, local, handler, &limits, shutdown).await;
            gauge.dec();
            drop(permit);
        });
    }
}

async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(OVER_CAPACITY).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// In-flight request count and time of the last request completion, for the idle timer.
struct Activity {
    in_flight: AtomicUsize,
    last: std::sync::Mutex<Instant>,
}

impl Activity {
    fn touch(&self) {
        if let Ok(mut l) = self.last.lock() {
            *l = Instant::now();
        }
    }
    fn last(&self) -> Instant {
        self.last
            .lock()
            .map(|l| *l)
            .unwrap_or_else(|_| Instant::now())
    }
}

/// Resolves once the connection has had no request in flight for `idle`.
async fn idle_elapsed(activity: &Activity, idle: Duration) {
    loop {
        if activity.in_flight.load(Ordering::Acquire) == 0 {
            let deadline = activity.last() + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        } else {
            tokio::time::sleep(idle).await;
        }
    }
}

async fn serve_connection<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    handler: Arc<H>,
    limits: &Limits,
    shutdown: CancellationToken,
) {
    let conn_state = Arc::new(handler.connection(peer, local));
    let activity = Arc::new(Activity {
        in_flight: AtomicUsize::new(0),
        last: std::sync::Mutex::new(Instant::now()),
    });
    let svc = {
        let activity = activity.clone();
        service_fn(move |req: Request<Incoming>| {
            let handler = handler.clone();
            let conn_state = conn_state.clone();
            let activity = activity.clone();
            activity.in_flight.fetch_add(1, Ordering::AcqRel);
            async move {
                let resp = handler.call(conn_state, req).await;
                activity.touch();
                activity.in_flight.fetch_sub(1, Ordering::AcqRel);
                Ok::<_, Infallible>(resp)
            }
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            return;
        }
        _ = shutdown.cancelled() => {}
        _ = idle_elapsed(&activity, limits.idle_timeout) => {
            tracing::debug!(%peer, "closing idle connection");
        }
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(limits.shutdown_grace, conn.as_mut()).await;
}
