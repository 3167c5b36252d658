//! Servers the bench runs in the node netns (inside this process):
//! - the floor: a minimal hyper 1 HTTP/1.1 server answering every request with a fixed body
//!   shaped like an IMDS credentials document (same size class as podiam's answer), no
//!   identity, no lookups — the cheapest possible answer on the node address;
//! - the connect sink: accepts connections and drops them (the "non-intercepted listener").
use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use podiam_tests::Node;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The floor's fixed answer: an IMDS credentials document (fake values).
pub const FLOOR_BODY: &str = r#"{
  "Code" : "Success",
  "LastUpdated" : "2026-01-01T00:00:00Z",
  "Type" : "AWS-HMAC",
  "AccessKeyId" : "ASIAFLOORFLOORFLOOR0",
  "SecretAccessKey" : "floorfloorfloorfloorfloorfloorfloorfloor",
  "Token" : "FQoGZXIvYXdzEFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOORFLOOR",
  "Expiration" : "2026-01-01T01:00:00Z"
}"#;

/// Floor server and connect sink, on a 2-worker tokio runtime on a thread in the node
/// netns; stopped on drop.
pub struct NodeServers {
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NodeServers {
    /// Binds `floor` and `sink` (addresses of the node netns) and serves them.
    pub fn start(node: &Node, floor: SocketAddr, sink: SocketAddr) -> anyhow::Result<NodeServers> {
        let (stop, rx) = watch::channel(false);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
        let thread = node.spawn_in_netns(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            rt.block_on(async move {
                let bound = async {
                    let f = TcpListener::bind(floor).await.context("bind floor")?;
                    // A deep accept queue (capped by the netns's somaxconn) so that a
                    // briefly descheduled accept loop does not drop SYNs.
                    let sock = tokio::net::TcpSocket::new_v4().context("sink socket")?;
                    sock.set_reuseaddr(true)?;
                    sock.bind(sink).context("bind sink")?;
                    let s = sock.listen(65535).context("listen sink")?;
                    anyhow::Ok((f, s))
                }
                .await;
                let (f, s) = match bound {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                // Accept loops on the worker threads (as a typical hyper server does), one
                // task per connection.
                let mut rx1 = rx.clone();
                let mut rx2 = rx.clone();
                let floor_loop = tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            _ = rx1.changed() => break,
                            r = f.accept() => if let Ok((stream, _)) = r {
                                tokio::spawn(serve_floor(stream));
                            }
                        }
                    }
                });
                let sink_loop = tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            _ = rx2.changed() => break,
                            r = s.accept() => drop(r),
                        }
                    }
                });
                let _ = tokio::join!(floor_loop, sink_loop);
            });
        })?;
        ready_rx
            .recv()
            .map_err(|_| anyhow::anyhow!("node servers thread died"))??;
        Ok(NodeServers {
            stop,
            thread: Some(thread),
        })
    }
}

async fn serve_floor(stream: tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    let svc = service_fn(|_req: Request<hyper::body::Incoming>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from_static(FLOOR_BODY.as_bytes())))
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))),
        )
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

impl Drop for NodeServers {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
