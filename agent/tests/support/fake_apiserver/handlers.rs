//! Request handling of the fake API server: list, watch, single GET, TokenReview, Events.
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::*;

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

pub(super) async fn handle(sh: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
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
            if sh.state.lock().unwrap().missing.contains(coll) {
                return json_response(
                    StatusCode::NOT_FOUND,
                    &status_json(
                        404,
                        "NotFound",
                        "the server could not find the requested resource",
                    ),
                );
            }
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
