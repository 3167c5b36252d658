//! Real-listener tests over TCP on 127.0.0.1 (ephemeral ports): limits, per-connection
//! callers, hostile request targets on the wire, the ops listener, and the hyper-based
//! upstream against a fake "real IMDS".
mod surfaces_common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use podiam::imds::HttpImdsUpstream;
use podiam::metrics::Metrics;
use podiam::server::{Limits, OpsState, Readiness, ReadinessFlag, ServerConfig, serve_ops};
use surfaces_common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config_with(limits: Limits) -> ServerConfig {
    ServerConfig {
        limits,
        ..ServerConfig::default()
    }
}

const ROLE_LIST: &str = "/latest/meta-data/iam/security-credentials/";

async fn role_list_ok(addr: SocketAddr) {
    let r = raw(PEER_A, addr, &get_req(ROLE_LIST, &[])).await;
    assert_eq!(status_of(&r), 200, "{r}");
    assert_eq!(body_of(&r), "app-a");
}

#[tokio::test]
async fn oversized_headers_get_431_and_listener_keeps_serving() {
    let run = start(&ServerConfig::default()).await;
    let big = "x".repeat(10 * 1024);
    let r = raw(PEER_A, run.addr, &get_req(ROLE_LIST, &[("X-Big", &big)])).await;
    assert_eq!(status_of(&r), 431, "{r}");
    // Many headers adding up past 8 KiB too.
    let many: Vec<(String, String)> = (0..90)
        .map(|i| (format!("X-H{i}"), "y".repeat(100)))
        .collect();
    let many_ref: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = raw(PEER_A, run.addr, &get_req(ROLE_LIST, &many_ref)).await;
    assert_eq!(status_of(&r), 431, "{r}");
    role_list_ok(run.addr).await;
    assert_eq!(run.h.creds.count(), 0);
}

#[tokio::test]
async fn slow_client_is_closed_while_others_are_served() {
    let run = start(&config_with(Limits {
        header_read_timeout: Duration::from_millis(600),
        ..Limits::default()
    }))
    .await;
    let mut slow = connect_from(PEER_A, run.addr).await;
    slow.write_all(b"GET /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // Others are served meanwhile.
    for _ in 0..3 {
        role_list_ok(run.addr).await;
    }
    let mut buf = Vec::new();
    let res = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
    assert!(res.is_ok(), "slow client was not closed");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400),
        "closed too early: {waited:?}"
    );
    assert!(!String::from_utf8_lossy(&buf).contains("app-a"));
    role_list_ok(run.addr).await;
}

#[tokio::test]
async fn idle_keepalive_connection_closed() {
    let run = start(&config_with(Limits {
        idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    }))
    .await;
    let mut s = connect_from(PEER_A, run.addr).await;
    s.write_all(b"GET /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // The connection stays open (keep-alive) until the idle timeout closes it.
    let t0 = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("idle connection closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(t0.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn idle_keepalive_also_bounded_by_header_read_timeout() {
    // hyper starts its head timer while waiting for the next request on a kept-alive
    // connection: idle connections close after min(idle_timeout, header_read_timeout).
    let run = start(&config_with(Limits {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(30),
        ..Limits::default()
    }))
    .await;
    let mut s = connect_from(PEER_A, run.addr).await;
    s.write_all(b"GET /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("closed by the head timer")
        .unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn connection_cap_refuses_excess_and_recovers() {
    let run = start(&config_with(Limits {
        max_connections: 2,
        ..Limits::default()
    }))
    .await;
    let c1 = connect_from(PEER_A, run.addr).await;
    let c2 = connect_from(PEER_A, run.addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = raw(PEER_A, run.addr, &get_req(ROLE_LIST, &[])).await;
    assert_eq!(status_of(&r), 503, "{r}");
    drop(c1);
    // The freed slot is usable again once the server notices the close.
    let mut ok = false;
    for _ in 0..50 {
        let r = raw(PEER_A, run.addr, &get_req(ROLE_LIST, &[])).await;
        if status_of(&r) == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "slot not released");
    let text = run.h.metrics.encode();
    assert!(
        text.contains(r#"podiam_http_open_connections{listener="proxy"} 1"#)
            || text.contains(r#"podiam_http_open_connections{listener="proxy"} 2"#),
        "{text}"
    );
    drop(c2);
    assert!(
        text.contains(r#"podiam_http_connections_total{listener="proxy",outcome="refused"}"#),
        "{text}"
    );
}

#[tokio::test]
async fn caller_is_per_connection_and_tokens_do_not_cross_pods() {
    let run = start(&ServerConfig::default()).await;
    let r = raw(
        PEER_A,
        run.addr,
        b"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&r), 200, "{r}");
    assert!(
        r.to_ascii_lowercase()
            .contains("x-aws-ec2-metadata-token-ttl-seconds: 21600")
    );
    let tok = body_of(&r).to_owned();
    let r = raw(
        PEER_A,
        run.addr,
        &get_req(ROLE_LIST, &[("X-aws-ec2-metadata-token", &tok)]),
    )
    .await;
    assert_eq!(body_of(&r), "app-a");
    let r = raw(
        PEER_B,
        run.addr,
        &get_req(ROLE_LIST, &[("X-aws-ec2-metadata-token", &tok)]),
    )
    .await;
    assert_eq!(status_of(&r), 401, "{r}");
    let r = raw(PEER_B, run.addr, &get_req(ROLE_LIST, &[])).await;
    assert_eq!(body_of(&r), "app-b");
    // Keep-alive: two requests on one connection resolve the caller once.
    let before = run
        .h
        .callers
        .calls
        .load(std::sync::atomic::Ordering::SeqCst);
    let mut s = connect_from(PEER_A, run.addr).await;
    let one = format!("GET {ROLE_LIST} HTTP/1.1\r\nHost: x\r\n\r\n");
    let two = format!("GET {ROLE_LIST} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(format!("{one}{two}").as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out)
            .matches("HTTP/1.1 200")
            .count(),
        2
    );
    let after = run
        .h
        .callers
        .calls
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(after - before, 1);
}

#[tokio::test]
async fn hostile_targets_on_the_wire() {
    let run = start(&ServerConfig::default()).await;
    let lines: [&[u8]; 10] = [
        b"GET /latest/meta-data/iam/security-credentials/../../user-data HTTP/1.1\r\n",
        b"GET /latest/meta-data/%2e%2e/%2e%2e/user-data HTTP/1.1\r\n",
        b"GET /latest/meta-data/placement%2Fregion HTTP/1.1\r\n",
        b"GET /latest/meta-data\\..\\user-data HTTP/1.1\r\n",
        b"GET //latest/meta-data/placement/region HTTP/1.1\r\n",
        b"GET http://evil.example/latest/meta-data/placement/region HTTP/1.1\r\n",
        b"GET http://169.254.169.254/latest/user-data HTTP/1.1\r\n",
        b"GET /latest/meta-data/placement/region\0 HTTP/1.1\r\n",
        b"GET /latest/user-data HTTP/1.1\r\n",
        b"GET /latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance HTTP/1.1\r\n",
    ];
    for line in lines {
        let mut req = line.to_vec();
        req.extend_from_slice(b"Host: 169.254.169.254\r\nConnection: close\r\n\r\n");
        let r = raw(PEER_A, run.addr, &req).await;
        let st = status_of(&r);
        assert!(
            st == 400 || st == 404 || (st == 0 && r.is_empty()),
            "{}: {st} {r}",
            String::from_utf8_lossy(line)
        );
    }
    assert!(
        run.h.upstream.seen().is_empty(),
        "{:?}",
        run.h.upstream.seen()
    );
    role_list_ok(run.addr).await;
}

#[tokio::test]
async fn shutdown_stops_the_listener() {
    let run = start(&ServerConfig::default()).await;
    role_list_ok(run.addr).await;
    run.shutdown.cancel();
    let res = tokio::time::timeout(Duration::from_secs(5), run.task).await;
    assert!(matches!(res, Ok(Ok(Ok(())))));
    assert!(tokio::net::TcpStream::connect(run.addr).await.is_err());
}

#[tokio::test]
async fn ops_listener_health_readiness_metrics() {
    let mut metrics = Metrics::new();
    let extra = prometheus_client::metrics::counter::Counter::<u64>::default();
    metrics
        .sub_registry("datapath")
        .register("redirected", "redirected connects", extra.clone());
    extra.inc_by(5);
    let metrics = Arc::new(metrics);
    let flag = ReadinessFlag::new("datapath");
    let synced = ReadinessFlag::new("inventory");
    synced.set(true, "synced 3 pods");
    let mut readiness = Readiness::new();
    readiness.add(flag.clone()).add(synced.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let limits = Limits::default();
    let task = tokio::spawn({
        let shutdown = shutdown.clone();
        let state = Arc::new(OpsState {
            metrics: metrics.clone(),
            readiness,
        });
        async move { serve_ops(listener, state, &limits, shutdown).await }
    });
    let r = raw("127.0.0.1", addr, &get_req("/healthz", &[])).await;
    assert_eq!(status_of(&r), 200);
    let r = raw("127.0.0.1", addr, &get_req("/readyz", &[])).await;
    assert_eq!(status_of(&r), 503, "{r}");
    let v: serde_json::Value = serde_json::from_str(body_of(&r)).unwrap();
    assert_eq!(v["ready"], false);
    assert_eq!(v["checks"][0]["name"], "datapath");
    assert_eq!(v["checks"][0]["detail"], "starting");
    assert_eq!(v["checks"][1]["ready"], true);
    flag.set(true, "attached at /sys/fs/cgroup/unified");
    let r = raw("127.0.0.1", addr, &get_req("/readyz", &[])).await;
    assert_eq!(status_of(&r), 200, "{r}");
    let r = raw("127.0.0.1", addr, &get_req("/metrics", &[])).await;
    assert_eq!(status_of(&r), 200);
    assert!(r.contains("application/openmetrics-text"));
    assert!(r.contains("podiam_datapath_redirected_total 5"), "{r}");
    assert!(
        r.contains(r#"podiam_http_requests_total{surface="ops",class="ops",status="503"} 1"#),
        "{r}"
    );
    let r = raw("127.0.0.1", addr, &get_req("/nope", &[])).await;
    assert_eq!(status_of(&r), 404);
    let r = raw(
        "127.0.0.1",
        addr,
        b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&r), 405);
    shutdown.cancel();
    assert!(
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .is_ok()
    );
}

// ------------------------------------------------------- fake real IMDS behind the upstream

#[derive(Clone, Copy, PartialEq)]
enum ImdsMode {
    V2,
    /// Token PUT answered 403 (v1 only).
    V1Only,
}

#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
}

struct FakeRealImds {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Token the fake currently accepts (changes to simulate expiry).
    valid: Arc<Mutex<String>>,
}

async fn fake_real_imds(mode: ImdsMode) -> FakeRealImds {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let valid = Arc::new(Mutex::new("up-token-1".to_owned()));
    let issued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (seen2, valid2) = (seen.clone(), valid.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (seen, valid, issued) = (seen2.clone(), valid2.clone(), issued.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (seen, valid, issued) = (seen.clone(), valid.clone(), issued.clone());
                    async move {
                        seen.lock().unwrap().push(Seen {
                            method: req.method().clone(),
                            path: req.uri().to_string(),
                            headers: req.headers().clone(),
                        });
                        let resp = |st: u16, body: &str| {
                            let mut r = Response::new(Full::new(Bytes::from(body.to_owned())));
                            *r.status_mut() = StatusCode::from_u16(st).unwrap();
                            r
                        };
                        let path = req.uri().path().to_owned();
                        let r = if req.method() == Method::PUT && path == "/latest/api/token" {
                            if mode == ImdsMode::V1Only {
                                resp(403, "Forbidden")
                            } else {
                                let n =
                                    issued.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                                let tok = format!("up-token-{n}");
                                let mut r = resp(200, &tok);
                                r.headers_mut().insert(
                                    "x-aws-ec2-metadata-token-ttl-seconds",
                                    http::HeaderValue::from_static("21600"),
                                );
                                r
                            }
                        } else {
                            let tok = req
                                .headers()
                                .get("x-aws-ec2-metadata-token")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned);
                            let current = valid.lock().unwrap().clone();
                            if mode == ImdsMode::V2 && tok.as_deref() != Some(current.as_str()) {
                                resp(401, "Unauthorized")
                            } else if path == "/latest/meta-data/placement/region" {
                                resp(200, "eu-west-3")
                            } else if path == "/latest/meta-data/instance-id" {
                                resp(500, "internal failure on 999988887777 node ip-10-0-0-1")
                            } else {
                                resp(404, "<html>not found on 999988887777</html>")
                            }
                        };
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    FakeRealImds { addr, seen, valid }
}

async fn start_with_real_upstream(fake: &FakeRealImds) -> Running {
    let up = Arc::new(
        HttpImdsUpstream::new(&format!("http://{}", fake.addr), Duration::from_secs(2)).unwrap(),
    );
    start_harness(harness_with_upstream(
        &ServerConfig::default(),
        up,
        Arc::new(FakeUpstream::new()),
    ))
    .await
}

#[tokio::test]
async fn http_upstream_forwards_exactly_with_its_own_token_and_no_xff() {
    let fake = fake_real_imds(ImdsMode::V2).await;
    let run = start_with_real_upstream(&fake).await;
    let r = raw(
        PEER_A,
        run.addr,
        &get_req(
            "/latest/meta-data/placement/region?foo=bar",
            &[
                ("X-Forwarded-For", "6.6.6.6"),
                ("X-aws-ec2-metadata-token", ""),
            ],
        ),
    )
    .await;
    // An empty pod token header is a (bad) token → 401, nothing forwarded.
    assert_eq!(status_of(&r), 401, "{r}");
    assert!(fake.seen.lock().unwrap().is_empty());
    let r = raw(
        PEER_A,
        run.addr,
        &get_req(
            "/latest/meta-data/placement/region?foo=bar",
            &[("X-Forwarded-For", "6.6.6.6"), ("Cookie", "c=1")],
        ),
    )
    .await;
    assert_eq!(status_of(&r), 200, "{r}");
    assert_eq!(body_of(&r), "eu-west-3");
    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].method, Method::PUT);
    assert_eq!(seen[0].path, "/latest/api/token");
    assert_eq!(
        seen[0].headers["x-aws-ec2-metadata-token-ttl-seconds"],
        "21600"
    );
    assert_eq!(seen[1].method, Method::GET);
    assert_eq!(seen[1].path, "/latest/meta-data/placement/region");
    assert_eq!(seen[1].headers["x-aws-ec2-metadata-token"], "up-token-1");
    for s in &seen {
        assert!(!s.headers.contains_key("x-forwarded-for"));
        assert!(!s.headers.contains_key("forwarded"));
        assert!(!s.headers.contains_key("cookie"));
    }
    // The upstream token is cached.
    let r = raw(
        PEER_A,
        run.addr,
        &get_req("/latest/meta-data/placement/region", &[]),
    )
    .await;
    assert_eq!(status_of(&r), 200);
    assert_eq!(fake.seen.lock().unwrap().len(), 3);
    // Upstream rotates its tokens: 401 → new PUT → retry once.
    *fake.valid.lock().unwrap() = "up-token-2".into();
    let r = raw(
        PEER_A,
        run.addr,
        &get_req("/latest/meta-data/placement/region", &[]),
    )
    .await;
    assert_eq!(status_of(&r), 200, "{r}");
    let seen = fake.seen.lock().unwrap().clone();
    let tail: Vec<(Method, String)> = seen[3..]
        .iter()
        .map(|s| (s.method.clone(), s.path.clone()))
        .collect();
    assert_eq!(
        tail,
        [
            (Method::GET, "/latest/meta-data/placement/region".to_owned()),
            (Method::PUT, "/latest/api/token".to_owned()),
            (Method::GET, "/latest/meta-data/placement/region".to_owned()),
        ]
    );
    assert_eq!(seen[5].headers["x-aws-ec2-metadata-token"], "up-token-2");
    // Upstream errors are not relayed verbatim.
    let r = raw(
        PEER_A,
        run.addr,
        &get_req("/latest/meta-data/instance-id", &[]),
    )
    .await;
    assert_eq!(status_of(&r), 502, "{r}");
    assert!(!r.contains("9999") && !r.contains("ip-10"));
    let r = raw(PEER_A, run.addr, &get_req("/latest/meta-data/ami-id", &[])).await;
    assert_eq!(status_of(&r), 404, "{r}");
    assert!(!r.contains("9999"));
    // Refused paths never reach it.
    let n = fake.seen.lock().unwrap().len();
    for p in [
        "/latest/user-data",
        "/latest/meta-data/identity-credentials/ec2/info",
        "/latest/meta-data/iam/security-credentials/node",
    ] {
        let r = raw(PEER_A, run.addr, &get_req(p, &[])).await;
        assert_eq!(status_of(&r), 404, "{p}");
    }
    assert_eq!(fake.seen.lock().unwrap().len(), n);
}

#[tokio::test]
async fn http_upstream_falls_back_to_v1_when_token_put_refused() {
    let fake = fake_real_imds(ImdsMode::V1Only).await;
    let run = start_with_real_upstream(&fake).await;
    let r = raw(
        PEER_A,
        run.addr,
        &get_req("/latest/meta-data/placement/region", &[]),
    )
    .await;
    assert_eq!(status_of(&r), 200, "{r}");
    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert!(!seen[1].headers.contains_key("x-aws-ec2-metadata-token"));
}

#[tokio::test]
async fn http_upstream_unreachable_is_502() {
    // Bind then drop to get a closed port.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = l.local_addr().unwrap();
    drop(l);
    let up = Arc::new(
        HttpImdsUpstream::new(&format!("http://{dead}"), Duration::from_millis(500)).unwrap(),
    );
    let run = start_harness(harness_with_upstream(
        &ServerConfig::default(),
        up,
        Arc::new(FakeUpstream::new()),
    ))
    .await;
    let r = raw(
        PEER_A,
        run.addr,
        &get_req("/latest/meta-data/placement/region", &[]),
    )
    .await;
    assert_eq!(status_of(&r), 502, "{r}");
    assert!(HttpImdsUpstream::new("https://x", Duration::from_secs(1)).is_err());
    assert!(HttpImdsUpstream::new("http://x/path", Duration::from_secs(1)).is_err());
}

struct SlowUpstream;

#[async_trait::async_trait]
impl podiam::imds::ImdsUpstream for SlowUpstream {
    async fn get(
        &self,
        _path: &str,
    ) -> Result<podiam::imds::UpstreamResponse, podiam::imds::UpstreamError> {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Err(podiam::imds::UpstreamError::Timeout)
    }
}

#[tokio::test]
async fn request_deadline_gives_503_and_others_are_served() {
    let cfg = config_with(Limits {
        request_timeout: Duration::from_millis(300),
        ..Limits::default()
    });
    let run = start_harness(harness_with_upstream(
        &cfg,
        Arc::new(SlowUpstream),
        Arc::new(FakeUpstream::new()),
    ))
    .await;
    let addr = run.addr;
    let slow = tokio::spawn(async move {
        raw(
            PEER_A,
            addr,
            &get_req("/latest/meta-data/placement/region", &[]),
        )
        .await
    });
    role_list_ok(run.addr).await;
    let t0 = Instant::now();
    let r = slow.await.unwrap();
    assert_eq!(status_of(&r), 503, "{r}");
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn container_credentials_deadline_is_json_503() {
    let run = start_with(|addr| {
        let mut cfg = config_with(Limits {
            request_timeout: Duration::from_millis(300),
            ..Limits::default()
        });
        cfg.pod_identity.allowed_hosts.push(addr.to_string());
        cfg
    })
    .await;
    let req = format!(
        "GET /v1/credentials HTTP/1.1\r\nHost: {}\r\nAuthorization: eyJh.slow.c2ln\r\nConnection: close\r\n\r\n",
        run.addr
    );
    let r = raw(PEER_A, run.addr, req.as_bytes()).await;
    assert_eq!(status_of(&r), 503, "{r}");
    let v: serde_json::Value = serde_json::from_str(body_of(&r)).unwrap();
    assert_eq!(v["code"], "ServiceUnavailable");
    // Absolute-form request targets are refused, never routed to either surface.
    let req = format!(
        "GET http://{}/v1/credentials HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        run.addr,
        run.addr,
        jwt_for(POD_A_UID)
    );
    let r = raw(PEER_A, run.addr, req.as_bytes()).await;
    assert_eq!(status_of(&r), 400, "{r}");
    assert_eq!(run.h.creds.count(), 0);
}

#[tokio::test]
async fn head_requests_have_no_body() {
    let run = start(&ServerConfig::default()).await;
    let r = raw(
        PEER_A,
        run.addr,
        b"HEAD /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&r), 200, "{r}");
    assert!(r.to_ascii_lowercase().contains("content-length: 5"), "{r}");
    assert_eq!(body_of(&r), "");
}

#[tokio::test]
async fn serves_on_ipv4_and_ipv6_listeners_at_once() {
    let Ok(v6) = tokio::net::TcpListener::bind("[::1]:0").await else {
        // No IPv6 loopback on this host: nothing to test (the v4 path is covered above).
        return;
    };
    let v4 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (a4, a6) = (v4.local_addr().unwrap(), v6.local_addr().unwrap());
    let h = harness(&ServerConfig::default());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(podiam::server::serve_proxy(
        vec![v4, v6],
        h.state.clone(),
        shutdown.clone(),
    ));
    role_list_ok(a4).await;
    // ::1 is no known pod in the fake resolver: refused (403), but served by the v6 listener.
    let mut s = tokio::net::TcpStream::connect(a6).await.unwrap();
    s.write_all(&get_req(ROLE_LIST, &[])).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status_of(&String::from_utf8_lossy(&out)), 403);
    shutdown.cancel();
    assert!(
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .is_ok()
    );
    assert!(
        podiam::server::bind_listeners(&[])
            .await
            .unwrap()
            .is_empty()
    );
}
