//! Test support for the vend integration tests: a moto_server child process (killed on drop)
//! and a tiny recording HTTP proxy in front of it that records every STS request's form
//! parameters and can inject STS error responses.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

pub const MOTO: &str = "/root/.pyenv/shims/moto_server";

/// Sets the agent's own credentials and region for aws-config's default chain, once per test
/// binary, before any test reads the environment: AWS_ACCESS_KEY_ID=testing, …, us-east-1;
/// IMDS disabled and config files pointed away so nothing leaves loopback.
pub fn init_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: runs once, before any test in this binary reads the environment (every
        // test calls init_env() first; Once blocks the others until it is done).
        unsafe {
            std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
            std::env::set_var("AWS_SESSION_TOKEN", "testing");
            std::env::set_var("AWS_REGION", "us-east-1");
            std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
            std::env::set_var("AWS_CONFIG_FILE", "/nonexistent/podiam-test-config");
            std::env::set_var(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/podiam-test-creds",
            );
            std::env::remove_var("AWS_PROFILE");
            std::env::remove_var("AWS_ENDPOINT_URL");
            std::env::remove_var("AWS_ENDPOINT_URL_STS");
        }
    });
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A moto_server on 127.0.0.1 (own process group, killed on drop).
pub struct Moto {
    child: Child,
    pub addr: SocketAddr,
}

impl Moto {
    pub async fn start() -> Moto {
        let port = free_port();
        let child = Command::new(MOTO)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn moto_server");
        let moto = Moto {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        moto.wait_ready().await;
        moto
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn wait_ready(&self) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let deadline = Instant::now() + Duration::from_secs(90);
        let uri: hyper::Uri = format!("{}/moto-api/data.json", self.url())
            .parse()
            .unwrap();
        loop {
            let req = Request::get(uri.clone())
                .body(Full::new(Bytes::new()))
                .unwrap();
            if let Ok(r) = client.request(req).await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: plain syscall; the group was created for this child (process_group(0)).
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// One STS request as the proxy saw it (form-decoded body).
#[derive(Clone, Debug)]
pub struct Recorded {
    pub params: Vec<(String, String)>,
}

impl Recorded {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    pub fn action(&self) -> &str {
        self.get("Action").unwrap_or("")
    }
    /// `Tags.member.N.Key/Value` pairs in order.
    pub fn tags(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for n in 1.. {
            let (Some(k), Some(v)) = (
                self.get(&format!("Tags.member.{n}.Key")),
                self.get(&format!("Tags.member.{n}.Value")),
            ) else {
                break;
            };
            out.push((k.to_string(), v.to_string()));
        }
        out
    }
    /// `TransitiveTagKeys.member.N` in order.
    pub fn transitive(&self) -> Vec<String> {
        (1..)
            .map_while(|n| {
                self.get(&format!("TransitiveTagKeys.member.{n}"))
                    .map(str::to_string)
            })
            .collect()
    }
}

/// An injected STS error response.
#[derive(Clone, Debug)]
pub struct Inject {
    pub status: u16,
    pub code: &'static str,
    pub message: &'static str,
}

type Rule = Box<dyn Fn(&Recorded) -> Option<Inject> + Send + Sync>;

/// Recording proxy in front of moto.
pub struct Proxy {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<Recorded>>>,
    rule: Arc<Mutex<Option<Rule>>>,
    queue: Arc<Mutex<VecDeque<Inject>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn form_decode(body: &[u8]) -> Vec<(String, String)> {
    fn dec(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(v) => {
                            out.push(v);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (dec(k), dec(v)),
            None => (dec(p), String::new()),
        })
        .collect()
}

fn error_response(inj: &Inject, n: usize) -> Response<Full<Bytes>> {
    let rid = format!("injected-{n}");
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{rid}</RequestId></ErrorResponse>",
        inj.code, inj.message
    );
    Response::builder()
        .status(inj.status)
        .header("content-type", "text/xml")
        .header("x-amzn-RequestId", rid)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let rule: Arc<Mutex<Option<Rule>>> = Arc::default();
        let queue: Arc<Mutex<VecDeque<Inject>>> = Arc::default();
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let (l2, r2, q2) = (log.clone(), rule.clone(), queue.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, rule, queue, client) =
                    (l2.clone(), r2.clone(), q2.clone(), client.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (log, rule, queue, client) =
                            (log.clone(), rule.clone(), queue.clone(), client.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await?.to_bytes();
                            let rec = Recorded {
                                params: form_decode(&body),
                            };
                            let n = {
                                let mut l = log.lock().unwrap();
                                l.push(rec.clone());
                                l.len()
                            };
                            let injected =
                                queue.lock().unwrap().pop_front().or_else(|| {
                                    rule.lock().unwrap().as_ref().and_then(|r| r(&rec))
                                });
                            if let Some(inj) = injected {
                                return Ok::<_, hyper::Error>(error_response(&inj, n));
                            }
                            let uri: hyper::Uri = format!(
                                "http://{upstream}{}",
                                parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.as_str())
                                    .unwrap_or("/")
                            )
                            .parse()
                            .unwrap();
                            let mut fwd = Request::builder().method(parts.method).uri(uri);
                            for (k, v) in parts.headers.iter() {
                                fwd = fwd.header(k, v);
                            }
                            let resp = client
                                .request(fwd.body(Full::new(body)).unwrap())
                                .await
                                .expect("moto reachable");
                            let (rp, rb) = resp.into_parts();
                            let rb = rb.collect().await?.to_bytes();
                            Ok(Response::from_parts(rp, Full::new(rb)))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Proxy {
            addr,
            log,
            rule,
            queue,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Recorded requests with `Action=<action>`.
    pub fn requests(&self, action: &str) -> Vec<Recorded> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.action() == action)
            .cloned()
            .collect()
    }

    /// Answers matching requests with an error instead of forwarding them.
    pub fn set_rule(&self, rule: impl Fn(&Recorded) -> Option<Inject> + Send + Sync + 'static) {
        *self.rule.lock().unwrap() = Some(Box::new(rule));
    }

    pub fn clear_rule(&self) {
        *self.rule.lock().unwrap() = None;
    }

    /// Answers the next request with `inj`.
    pub fn inject_once(&self, inj: Inject) {
        self.queue.lock().unwrap().push_back(inj);
    }
}
