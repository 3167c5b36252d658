//! An in-process fake Kubernetes API server (hyper 1 on 127.0.0.1) speaking the real
//! list/watch JSON, for pointing a `kube::Client` at.
//!
//! Supported: cluster-wide lists and watches of `pods` (with the `spec.nodeName=` field
//! selector), `namespaces`, `serviceaccounts` and `podiam.io/v1alpha1`
//! `podidentityassociations` (list with `metadata.resourceVersion`; `?watch=true` streams
//! newline-delimited `WatchEvent`s from `resourceVersion`, `ERROR` 410 when that version is
//! compacted), `GET` of a single pod, `POST` TokenReviews (answered from registered tokens)
//! and `POST` Events (recorded). Test controls: silent changes (visible only to lists),
//! forcing 410 Gone on every open watch, stopping and restarting the listener, serving a
//! collection as missing (404, like an uninstalled CRD).
#![allow(dead_code)]

mod handlers;
mod objects;

use handlers::handle;
pub use objects::*;

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

pub(super) type Body = BoxBody<Bytes, Infallible>;

/// Collections served, with their list kind and API path.
pub const PODS: &str = "pods";
pub const NAMESPACES: &str = "namespaces";
pub const SERVICE_ACCOUNTS: &str = "serviceaccounts";
pub const ASSOCIATIONS: &str = "podidentityassociations";

#[derive(Clone, Debug)]
pub(super) enum Msg {
    Event {
        rv: u64,
        kind: &'static str,
        obj: Value,
    },
    Gone,
}

pub(super) struct Collection {
    pub(super) objects: BTreeMap<String, Value>,
    pub(super) history: Vec<(u64, &'static str, Value)>,
    pub(super) compacted_at: u64,
    pub(super) tx: broadcast::Sender<(String, Msg)>,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) rv: u64,
    pub(super) collections: HashMap<&'static str, Collection>,
    pub(super) tokens: HashMap<String, Value>,
    pub(super) events: Vec<Value>,
    pub(super) requests: Vec<String>,
    /// Collections answered with 404 (resource type not served, e.g. CRD not installed).
    pub(super) missing: std::collections::HashSet<&'static str>,
}

pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    pub(super) conns: Mutex<Vec<AbortHandle>>,
    pub(super) accept: Mutex<Option<AbortHandle>>,
}

/// The fake API server handle. Dropping it stops the listener.
pub struct FakeApiServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(super) fn key_of(obj: &Value) -> String {
    let md = &obj["metadata"];
    format!(
        "{}/{}",
        md["namespace"].as_str().unwrap_or(""),
        md["name"].as_str().unwrap_or("")
    )
}

pub(super) fn list_kind(coll: &str) -> (&'static str, &'static str) {
    match coll {
        PODS => ("v1", "PodList"),
        NAMESPACES => ("v1", "NamespaceList"),
        SERVICE_ACCOUNTS => ("v1", "ServiceAccountList"),
        _ => ("podiam.io/v1alpha1", "PodIdentityAssociationList"),
    }
}

pub(super) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn query_map(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Does `obj` pass a `fieldSelector` of the form `spec.nodeName=<node>` (others: all pass)?
pub(super) fn field_match(selector: Option<&String>, obj: &Value) -> bool {
    let Some(sel) = selector else { return true };
    sel.split(',').all(|term| match term.split_once('=') {
        Some(("spec.nodeName", node)) => obj["spec"]["nodeName"].as_str() == Some(node),
        _ => true,
    })
}

pub(super) fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())).boxed())
        .unwrap()
}

pub(super) fn status_json(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

impl FakeApiServer {
    /// Bind 127.0.0.1 on an ephemeral port and serve.
    pub async fn start() -> Self {
        let mut st = State::default();
        for c in [PODS, NAMESPACES, SERVICE_ACCOUNTS, ASSOCIATIONS] {
            let (tx, _) = broadcast::channel(1024);
            st.collections.insert(
                c,
                Collection {
                    objects: BTreeMap::new(),
                    history: Vec::new(),
                    compacted_at: 0,
                    tx,
                },
            );
        }
        st.rv = 100;
        let shared = Arc::new(Shared {
            state: Mutex::new(st),
            conns: Mutex::new(Vec::new()),
            accept: Mutex::new(None),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let me = Self { addr, shared };
        me.serve(listener);
        me
    }

    fn serve(&self, listener: TcpListener) {
        let shared = self.shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let sh = shared.clone();
                let conn = tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let sh = sh.clone();
                        async move { Ok::<_, Infallible>(handle(sh, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
                let mut conns = shared.conns.lock().unwrap();
                conns.retain(|c| !c.is_finished());
                conns.push(conn.abort_handle());
            }
        });
        *self.shared.accept.lock().unwrap() = Some(task.abort_handle());
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Close the listener and every connection: the API server becomes unreachable.
    pub fn stop(&self) {
        if let Some(a) = self.shared.accept.lock().unwrap().take() {
            a.abort();
        }
        for c in self.shared.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// Listen again on the same port (state is kept).
    pub async fn restart(&self) {
        let mut last = None;
        for _ in 0..50 {
            match TcpListener::bind(self.addr).await {
                Ok(l) => {
                    self.serve(l);
                    return;
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("rebind {}: {last:?}", self.addr);
    }

    fn change(
        &self,
        coll: &'static str,
        obj: Option<Value>,
        delete_key: Option<String>,
        notify: bool,
    ) {
        let mut st = self.shared.state.lock().unwrap();
        st.rv += 1;
        let rv = st.rv;
        let c = st.collections.get_mut(coll).expect("known collection");
        let (kind, obj) = match (obj, delete_key) {
            (Some(mut obj), _) => {
                obj["metadata"]["resourceVersion"] = json!(rv.to_string());
                let key = key_of(&obj);
                let kind = if c.objects.contains_key(&key) {
                    "MODIFIED"
                } else {
                    "ADDED"
                };
                c.objects.insert(key, obj.clone());
                (kind, obj)
            }
            (None, Some(key)) => {
                let Some(mut obj) = c.objects.remove(&key) else {
                    return;
                };
                obj["metadata"]["resourceVersion"] = json!(rv.to_string());
                ("DELETED", obj)
            }
            _ => return,
        };
        if notify {
            c.history.push((rv, kind, obj.clone()));
            let _ = c.tx.send((coll.to_string(), Msg::Event { rv, kind, obj }));
        } else {
            // Not in the watch history either: a watch resuming before this version would
            // miss it, so force a relist for anyone who asks for older versions.
            c.compacted_at = rv;
        }
    }

    /// Create or replace an object (key: metadata.namespace/metadata.name); open watches
    /// get `ADDED`/`MODIFIED`.
    pub fn apply(&self, coll: &'static str, obj: Value) {
        self.change(coll, Some(obj), None, true);
    }

    /// Delete an object; open watches get `DELETED`.
    pub fn delete(&self, coll: &'static str, namespace: &str, name: &str) {
        self.change(coll, None, Some(format!("{namespace}/{name}")), true);
    }

    /// Create or replace without any watch event (only a relist sees it).
    pub fn apply_silently(&self, coll: &'static str, obj: Value) {
        self.change(coll, Some(obj), None, false);
    }

    /// Delete without any watch event (only a relist sees it).
    pub fn delete_silently(&self, coll: &'static str, namespace: &str, name: &str) {
        self.change(coll, None, Some(format!("{namespace}/{name}")), false);
    }

    /// Compact every collection's history and send `ERROR` 410 Gone on every open watch.
    pub fn expire_watches(&self) {
        let mut st = self.shared.state.lock().unwrap();
        let rv = st.rv;
        for (name, c) in st.collections.iter_mut() {
            c.history.clear();
            c.compacted_at = rv;
            let _ = c.tx.send((name.to_string(), Msg::Gone));
        }
    }

    /// Register a token for TokenReview: `status` is the TokenReview `status` to return.
    pub fn add_token(&self, token: &str, status: Value) {
        self.shared
            .state
            .lock()
            .unwrap()
            .tokens
            .insert(token.to_string(), status);
    }

    /// Serve `coll` as a missing resource type (404 on list and watch), or serve it again.
    pub fn set_missing(&self, coll: &'static str, missing: bool) {
        let mut st = self.shared.state.lock().unwrap();
        if missing {
            st.missing.insert(coll);
        } else {
            st.missing.remove(coll);
        }
    }

    /// Events POSTed so far.
    pub fn events(&self) -> Vec<Value> {
        self.shared.state.lock().unwrap().events.clone()
    }

    /// Requests so far as `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.shared.state.lock().unwrap().requests.clone()
    }
}
