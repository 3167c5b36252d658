//! An in-process fake Kubernetes API server (hyper 1 on 127.0.0.1) speaking the real
//! list/watch JSON, for pointing a `kube::Client` at.
//!
//! Supported: cluster-wide lists and watches of `pods` (with the `spec.nodeName=` field
//! selector), `namespaces`, `serviceaccounts` and `podiam.io/v1alpha1`
//! `podidentityassociations` (list with `metadata.resourceVersion`; `?watch=true` streams
//! newline-delimited `WatchEvent`s from `resourceVersion`, `ERROR` 410 when that version is
//! compacted), `GET` of a single pod, `POST` TokenReviews (answered from registered tokens)
//! and `POST` Events (recorded). Test controls: silent changes (visible only to lists),
//! forcing 410 Gone on every open watch, stopping and restarting the listener.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio::task::AbortHandle;

type Body = BoxBody<Bytes, Infallible>;

/// Collections served, with their list kind and API path.
pub const PODS: &str = "pods";
pub const NAMESPACES: &str = "namespaces";
pub const SERVICE_ACCOUNTS: &str = "serviceaccounts";
pub const ASSOCIATIONS: &str = "podidentityassociations";

#[derive(Clone, Debug)]
enum Msg {
    Event {
        rv: u64,
        kind: &'static str,
        obj: Value,
    },
    Gone,
}

struct Collection {
    objects: BTreeMap<String, Value>,
    history: Vec<(u64, &'static str, Value)>,
    compacted_at: u64,
    tx: broadcast::Sender<(String, Msg)>,
}

#[derive(Default)]
struct State {
    rv: u64,
    collections: HashMap<&'static str, Collection>,
    tokens: HashMap<String, Value>,
    events: Vec<Value>,
    requests: Vec<String>,
}

struct Shared {
    state: Mutex<State>,
    conns: Mutex<Vec<AbortHandle>>,
    accept: Mutex<Option<AbortHandle>>,
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

fn key_of(obj: &Value) -> String {
    let md = &obj["metadata"];
    format!(
        "{}/{}",
        md["namespace"].as_str().unwrap_or(""),
        md["name"].as_str().unwrap_or("")
    )
}

fn list_kind(coll: &str) -> (&'static str, &'static str) {
    match coll {
        PODS => ("v1", "PodList"),
        NAMESPACES => ("v1", "NamespaceList"),
        SERVICE_ACCOUNTS => ("v1", "ServiceAccountList"),
        _ => ("podiam.io/v1alpha1", "PodIdentityAssociationList"),
    }
}

fn percent_decode(s: &str) -> String {
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

fn query_map(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|s| !s.is_empty())
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            Some((percent_decode(k), percent_decode(v)))
        })
        .collect()
}

/// Does `obj` pass a `fieldSelector` of the form `spec.nodeName=<node>` (others: all pass)?
fn field_match(selector: Option<&String>, obj: &Value) -> bool {
    let Some(sel) = selector else { return true };
    sel.split(',').all(|term| match term.split_once('=') {
        Some(("spec.nodeName", node)) => obj["spec"]["nodeName"].as_str() == Some(node),
        _ => true,
    })
}

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())).boxed())
        .unwrap()
}

fn status_json(code: u16, reason: &str, message: &str) -> Value {
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

    /// Events POSTed so far.
    pub fn events(&self) -> Vec<Value> {
        self.shared.state.lock().unwrap().events.clone()
    }

    /// Requests so far as `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.shared.state.lock().unwrap().requests.clone()
    }
}

/// Path → collection for the cluster-wide list/watch endpoints.
fn collection_of(path: &str) -> Option<&'static str> {
    match path {
        "/api/v1/pods" => Some(PODS),
        "/api/v1/namespaces" => Some(NAMESPACES),
        "/api/v1/serviceaccounts" => Some(SERVICE_ACCOUNTS),
        "/apis/podiam.io/v1alpha1/podidentityassociations" => Some(ASSOCIATIONS),
        _ => None,
    }
}

async fn handle(sh: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let q = query_map(req.uri().query());
    sh.state.lock().unwrap().requests.push(format!(
        "{} {}?{}",
        req.method(),
        path,
        req.uri().query().unwrap_or("")
    ));
    let method = req.method().clone();
    if method == Method::GET {
        if let Some(coll) = collection_of(&path) {
            return if q
                .get("watch")
                .map(|w| w == "true" || w == "1")
                .unwrap_or(false)
            {
                watch(&sh, coll, &q)
            } else {
                list(&sh, coll, &q)
            };
        }
        // GET /api/v1/namespaces/{ns}/pods/{name}
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if let ["api", "v1", "namespaces", ns, "pods", name] = segs.as_slice() {
            let st = sh.state.lock().unwrap();
            return match st.collections[PODS].objects.get(&format!("{ns}/{name}")) {
                Some(p) => json_response(StatusCode::OK, p),
                None => json_response(
                    StatusCode::NOT_FOUND,
                    &status_json(404, "NotFound", &format!("pods \"{name}\" not found")),
                ),
            };
        }
    }
    if method == Method::POST {
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if path == "/apis/authentication.k8s.io/v1/tokenreviews" {
            let token = v["spec"]["token"].as_str().unwrap_or("").to_string();
            let st = sh.state.lock().unwrap();
            let status = st.tokens.get(&token).cloned().unwrap_or_else(
                || json!({"authenticated": false, "error": "invalid bearer token"}),
            );
            let mut out = v.clone();
            out["status"] = status;
            return json_response(StatusCode::CREATED, &out);
        }
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if let ["api", "v1", "namespaces", _ns, "events"] = segs.as_slice() {
            let mut out = v.clone();
            let mut st = sh.state.lock().unwrap();
            let n = st.events.len();
            let prefix = v["metadata"]["generateName"]
                .as_str()
                .unwrap_or("event.")
                .to_string();
            out["metadata"]["name"] = json!(format!("{prefix}{n:05}"));
            st.events.push(out.clone());
            return json_response(StatusCode::CREATED, &out);
        }
    }
    json_response(
        StatusCode::NOT_FOUND,
        &status_json(404, "NotFound", &format!("{method} {path}")),
    )
}

fn list(sh: &Shared, coll: &'static str, q: &HashMap<String, String>) -> Response<Body> {
    let st = sh.state.lock().unwrap();
    let c = &st.collections[coll];
    let items: Vec<Value> = c
        .objects
        .values()
        .filter(|o| field_match(q.get("fieldSelector"), o))
        .cloned()
        .collect();
    let (api_version, kind) = list_kind(coll);
    json_response(
        StatusCode::OK,
        &json!({"apiVersion": api_version, "kind": kind,
                "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
    )
}

fn line(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

fn watch(sh: &Shared, coll: &'static str, q: &HashMap<String, String>) -> Response<Body> {
    let since: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let selector = q.get("fieldSelector").cloned();
    let (tx, mut rx_out) = mpsc::channel::<Bytes>(256);
    let gone = || {
        line(
            &json!({"type": "ERROR", "object": status_json(410, "Expired", "too old resource version")}),
        )
    };
    {
        let st = sh.state.lock().unwrap();
        let c = &st.collections[coll];
        let mut live = c.tx.subscribe();
        if since < c.compacted_at {
            let _ = tx.try_send(gone());
            drop(tx);
        } else {
            let mut last = since;
            for (rv, kind, obj) in c.history.iter().filter(|(rv, _, _)| *rv > since) {
                if field_match(selector.as_ref(), obj) {
                    let _ = tx.try_send(line(&json!({"type": kind, "object": obj})));
                }
                last = *rv;
            }
            tokio::spawn(async move {
                loop {
                    match live.recv().await {
                        Ok((_, Msg::Event { rv, kind, obj })) => {
                            if rv <= last || !field_match(selector.as_ref(), &obj) {
                                continue;
                            }
                            last = rv;
                            if tx
                                .send(line(&json!({"type": kind, "object": obj})))
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        Ok((_, Msg::Gone)) | Err(broadcast::error::RecvError::Lagged(_)) => {
                            let _ = tx.send(gone()).await;
                            return;
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            });
        }
    }
    let stream = futures::stream::poll_fn(move |cx| {
        rx_out
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok::<_, Infallible>(Frame::data(b))))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .unwrap()
}

/// A Pod object as the API server returns it.
pub fn pod(
    ns: &str,
    name: &str,
    uid: &str,
    node: &str,
    ip: Option<&str>,
    annotations: &[(&str, &str)],
) -> Value {
    let ann: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let mut status = json!({"phase": "Running"});
    if let Some(ip) = ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": ns, "uid": uid, "annotations": ann},
           "spec": {"nodeName": node, "serviceAccountName": "web", "containers": [{"name": "c", "image": "i"}]},
           "status": status})
}

/// A Namespace object.
pub fn namespace(name: &str, annotations: &[(&str, &str)]) -> Value {
    let ann: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": name, "uid": format!("ns-{name}"), "annotations": ann}})
}

/// A ServiceAccount object.
pub fn service_account(ns: &str, name: &str, annotations: &[(&str, &str)]) -> Value {
    let ann: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({"apiVersion": "v1", "kind": "ServiceAccount",
           "metadata": {"name": name, "namespace": ns, "uid": format!("sa-{ns}-{name}"), "annotations": ann}})
}

/// A PodIdentityAssociation object.
pub fn association(name: &str, ns: &str, sa: &str, role_arn: &str) -> Value {
    json!({"apiVersion": "podiam.io/v1alpha1", "kind": "PodIdentityAssociation",
           "metadata": {"name": name, "uid": format!("pia-{name}")},
           "spec": {"namespace": ns, "serviceAccount": sa, "roleArn": role_arn}})
}
