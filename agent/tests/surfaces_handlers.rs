//! Handler tests for the IMDS and container-credentials surfaces, through
//! `server::handle_request` with test doubles (no sockets).
mod surfaces_common;

use std::net::SocketAddr;

use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use podiam::server::{ConnContext, ServerConfig, handle_request};
use surfaces_common::*;

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn send(h: &Harness, peer: &str, req: Request<()>) -> Resp {
    let conn = ConnContext::new(
        SocketAddr::new(peer.parse().unwrap(), 40000),
        "10.0.0.9:8181".parse().unwrap(),
    );
    let resp = handle_request(&h.state, &conn, req).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

fn get(path: &str) -> http::request::Builder {
    Request::builder().method("GET").uri(path)
}

fn put_token(ttl: Option<&str>) -> Request<()> {
    let mut b = Request::builder().method("PUT").uri("/latest/api/token");
    if let Some(t) = ttl {
        b = b.header("X-aws-ec2-metadata-token-ttl-seconds", t);
    }
    b.body(()).unwrap()
}

async fn token(h: &Harness, peer: &str, ttl: &str) -> String {
    let r = send(h, peer, put_token(Some(ttl))).await;
    assert_eq!(r.status, StatusCode::OK);
    r.body
}

fn default_harness() -> Harness {
    harness(&ServerConfig::default())
}

const CREDS_A: &str = "/latest/meta-data/iam/security-credentials/app-a";

#[tokio::test]
async fn token_put_ttl_rules() {
    let h = default_harness();
    for bad in [
        Some("0"),
        Some("21601"),
        Some("abc"),
        Some(""),
        Some("-1"),
        None,
    ] {
        let r = send(&h, PEER_A, put_token(bad)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "ttl {bad:?}");
    }
    for ok in ["1", "21600", "300"] {
        let r = send(&h, PEER_A, put_token(Some(ok))).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.headers["x-aws-ec2-metadata-token-ttl-seconds"]
                .to_str()
                .unwrap(),
            ok
        );
        assert_eq!(r.body.len(), 55);
        assert!(
            r.body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }
}

#[tokio::test]
async fn token_put_refusals() {
    let h = default_harness();
    // X-Forwarded-For on the PUT: refused like real IMDS (anti-SSRF).
    let req = Request::builder()
        .method("PUT")
        .uri("/latest/api/token")
        .header("X-aws-ec2-metadata-token-ttl-seconds", "21600")
        .header("X-Forwarded-For", "10.1.2.3")
        .body(())
        .unwrap();
    assert_eq!(send(&h, PEER_A, req).await.status, StatusCode::FORBIDDEN);
    // Version-specific token path → 403.
    let req = Request::builder()
        .method("PUT")
        .uri("/2021-03-23/api/token")
        .header("X-aws-ec2-metadata-token-ttl-seconds", "21600")
        .body(())
        .unwrap();
    assert_eq!(send(&h, PEER_A, req).await.status, StatusCode::FORBIDDEN);
    // GET/POST on the token path → 405.
    for m in ["GET", "POST"] {
        let req = Request::builder()
            .method(m)
            .uri("/latest/api/token")
            .body(())
            .unwrap();
        let r = send(&h, PEER_A, req).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers["allow"], "PUT");
    }
    // An unidentified caller gets no token.
    assert_eq!(
        send(&h, "192.0.2.1", put_token(Some("60"))).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn tokens_are_pod_bound_and_expire() {
    let h = default_harness();
    let t = token(&h, PEER_A, "60").await;
    let with = |tok: &str| {
        get(CREDS_A)
            .header("X-aws-ec2-metadata-token", tok)
            .body(())
            .unwrap()
    };
    assert_eq!(send(&h, PEER_A, with(&t)).await.status, StatusCode::OK);
    // Another pod presenting pod A's token.
    let r = send(&h, PEER_B, with(&t)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Forged / garbage tokens.
    let mut forged = t.clone().into_bytes();
    forged[20] = if forged[20] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for bad in [forged.as_str(), "AQAAAAAAAAAA", "not a token", ""] {
        assert_eq!(
            send(&h, PEER_A, with(bad)).await.status,
            StatusCode::UNAUTHORIZED,
            "{bad:?}"
        );
    }
    // Two token headers → 401.
    let req = get(CREDS_A)
        .header("X-aws-ec2-metadata-token", &t)
        .header("X-aws-ec2-metadata-token", &t)
        .body(())
        .unwrap();
    assert_eq!(send(&h, PEER_A, req).await.status, StatusCode::UNAUTHORIZED);
    // Expiry.
    h.clock.advance(59);
    assert_eq!(send(&h, PEER_A, with(&t)).await.status, StatusCode::OK);
    h.clock.advance(1);
    assert_eq!(
        send(&h, PEER_A, with(&t)).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A token from a previous agent instance (another key) is refused too.
    let other = default_harness();
    let t2 = token(&other, PEER_A, "600").await;
    assert_eq!(
        send(&h, PEER_A, with(&t2)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn v2_required_mode() {
    let mut cfg = ServerConfig::default();
    cfg.imds.v2_required = true;
    let h = harness(&cfg);
    let r = send(&h, PEER_A, get(CREDS_A).body(()).unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = send(
        &h,
        PEER_A,
        get("/latest/meta-data/placement/region").body(()).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(h.upstream.seen().is_empty());
    assert_eq!(h.creds.count(), 0);
    let t = token(&h, PEER_A, "21600").await;
    let r = send(
        &h,
        PEER_A,
        get(CREDS_A)
            .header("X-aws-ec2-metadata-token", &t)
            .body(())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // v1 allowed by default.
    let h = default_harness();
    assert_eq!(
        send(&h, PEER_A, get(CREDS_A).body(()).unwrap())
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn role_listing() {
    let h = default_harness();
    for p in [
        "/latest/meta-data/iam/security-credentials/",
        "/latest/meta-data/iam/security-credentials",
        "/2016-09-02/meta-data/iam/security-credentials/",
        "/latest/meta-data/iam/security-credentials-extended/",
    ] {
        let r = send(&h, PEER_A, get(p).body(()).unwrap()).await;
        assert_eq!(r.status, StatusCode::OK, "{p}");
        assert_eq!(r.body, "app-a", "{p}: exact bare role name, no newline");
    }
    let r = send(
        &h,
        PEER_B,
        get("/latest/meta-data/iam/security-credentials/")
            .body(())
            .unwrap(),
    )
    .await;
    assert_eq!(r.body, "app-b");
    for peer in [PEER_NOROLE, PEER_DENIED] {
        let r = send(
            &h,
            peer,
            get("/latest/meta-data/iam/security-credentials/")
                .body(())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{peer}");
    }
    let r = send(&h, PEER_A, get("/latest/meta-data/iam/").body(()).unwrap()).await;
    assert_eq!(r.body, "info\nsecurity-credentials/");
    let r = send(
        &h,
        PEER_NOROLE,
        get("/latest/meta-data/iam/").body(()).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(h.creds.count(), 0);
    assert!(h.upstream.seen().is_empty());
}

#[tokio::test]
async fn credentials_json() {
    let h = default_harness();
    for p in [CREDS_A, "/latest/meta-data/iam/security-credentials/app-a/"] {
        let r = send(&h, PEER_A, get(p).body(()).unwrap()).await;
        assert_eq!(r.status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = vec![
            "Code",
            "LastUpdated",
            "Type",
            "AccessKeyId",
            "SecretAccessKey",
            "Token",
            "Expiration",
        ];
        let mut got = keys.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(v["Code"], "Success");
        assert_eq!(v["Type"], "AWS-HMAC");
        assert_eq!(v["AccessKeyId"], access_key_for(POD_A_UID));
        let exp = v["Expiration"].as_str().unwrap();
        assert_eq!(exp.len(), 20);
        assert!(
            time::PrimitiveDateTime::parse(
                exp,
                time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z")
            )
            .is_ok(),
            "{exp}"
        );
    }
    // Extended adds AccountId (from the role ARN when the credentials have none).
    let r = send(
        &h,
        PEER_A,
        get("/latest/meta-data/iam/security-credentials-extended/app-a")
            .body(())
            .unwrap(),
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["AccountId"], "111122223333");
    assert_eq!(h.creds.count(), 3);
}

#[tokio::test]
async fn wrong_role_name_never_vends() {
    let h = default_harness();
    for p in [
        "/latest/meta-data/iam/security-credentials/app-b",
        "/latest/meta-data/iam/security-credentials/APP-A",
        "/latest/meta-data/iam/security-credentials/node-role",
        "/latest/meta-data/iam/security-credentials/team",
        "/latest/meta-data/iam/security-credentials/app-a/extra",
    ] {
        let r = send(&h, PEER_A, get(p).body(()).unwrap()).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}");
    }
    let r = send(&h, PEER_NOROLE, get(CREDS_A).body(()).unwrap()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(h.creds.count(), 0);
    assert!(h.upstream.seen().is_empty());
}

#[tokio::test]
async fn vending_errors() {
    let h = default_harness();
    let r = send(&h, PEER_PERM, get(CREDS_A).body(()).unwrap()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r2 = send(&h, PEER_RETRY, get(CREDS_A).body(()).unwrap()).await;
    assert_eq!(r2.status, StatusCode::SERVICE_UNAVAILABLE);
    for body in [&r.body, &r2.body] {
        assert!(
            !body.contains("9999") && !body.contains("node") && !body.contains("Throttling"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn iam_info() {
    let h = default_harness();
    let r = send(
        &h,
        PEER_A,
        get("/latest/meta-data/iam/info").body(()).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["Code"], "Success");
    assert_eq!(
        v["InstanceProfileArn"],
        "arn:aws:iam::111122223333:instance-profile/team/app-a"
    );
    let id = v["InstanceProfileId"].as_str().unwrap();
    assert!(id.starts_with("AIPA") && id.len() == 21, "{id}");
    assert!(v["LastUpdated"].as_str().unwrap().ends_with('Z'));
    let r = send(
        &h,
        PEER_NOROLE,
        get("/latest/meta-data/iam/info").body(()).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(h.upstream.seen().is_empty());
}

#[tokio::test]
async fn hostile_paths_never_reach_upstream() {
    let h = default_harness();
    for p in [
        "/latest/meta-data/iam/security-credentials/../../user-data",
        "/latest/meta-data/placement/../../user-data",
        "/latest/meta-data/%2e%2e/%2e%2e/user-data",
        "/latest/meta-data/placement%2Fregion",
        "/latest/meta-data/placement%2fregion",
        "/latest//meta-data/placement/region",
        "/latest/meta-data/./placement/region",
        "http://evil.example/latest/meta-data/placement/region",
        "http://169.254.169.254/latest/meta-data/placement/region",
    ] {
        let r = send(&h, PEER_A, get(p).body(()).unwrap()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{p}");
    }
    for p in [
        "/latest/user-data",
        "/latest/user-data/",
        "/2009-04-04/user-data",
        "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance",
        "/latest/meta-data/identity-credentials/",
        "/latest/meta-data/iam/security-credentials/app-a/../app-b",
        "/latest/dynamic/instance-identity/pkcs7",
        "/latest/meta-data/",
        "/latest/meta-data/public-keys/0/openssh-key",
        "/",
    ] {
        let r = send(&h, PEER_A, get(p).body(()).unwrap()).await;
        assert!(
            r.status == StatusCode::NOT_FOUND || r.status == StatusCode::BAD_REQUEST,
            "{p}: {}",
            r.status
        );
    }
    assert!(h.upstream.seen().is_empty(), "{:?}", h.upstream.seen());
    assert_eq!(h.creds.count(), 0);
}

#[tokio::test]
async fn never_forwarded_even_if_allow_listed() {
    let mut cfg = ServerConfig::default();
    cfg.imds.allow_list.push("user-data".into());
    cfg.imds
        .allow_list
        .push("meta-data/identity-credentials/ec2/security-credentials/ec2-instance".into());
    cfg.imds
        .allow_list
        .push("meta-data/iam/security-credentials/node".into());
    let h = harness(&cfg);
    for p in [
        "/latest/user-data",
        "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance",
    ] {
        assert_eq!(
            send(&h, PEER_A, get(p).body(()).unwrap()).await.status,
            StatusCode::NOT_FOUND
        );
    }
    assert!(h.upstream.seen().is_empty());
}

#[tokio::test]
async fn allow_listed_paths_forwarded_exactly() {
    let h = default_harness();
    let t = token(&h, PEER_A, "60").await;
    for (req_path, fwd) in [
        (
            "/latest/meta-data/placement/region",
            "/latest/meta-data/placement/region",
        ),
        (
            "/latest/meta-data/placement/availability-zone/",
            "/latest/meta-data/placement/availability-zone/",
        ),
        (
            "/2021-03-23/meta-data/instance-id?x=../../user-data",
            "/2021-03-23/meta-data/instance-id",
        ),
        (
            "/latest/dynamic/instance-identity/document",
            "/latest/dynamic/instance-identity/document",
        ),
    ] {
        let r = send(
            &h,
            PEER_A,
            get(req_path)
                .header("X-aws-ec2-metadata-token", &t)
                .header("X-Forwarded-For", "1.2.3.4")
                .body(())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{req_path}");
        assert_eq!(r.body, format!("upstream:{fwd}"));
    }
    // HEAD is allowed too.
    let r = send(
        &h,
        PEER_A,
        Request::builder()
            .method("HEAD")
            .uri("/latest/meta-data/instance-type")
            .body(())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        h.upstream.seen(),
        [
            "/latest/meta-data/placement/region",
            "/latest/meta-data/placement/availability-zone/",
            "/2021-03-23/meta-data/instance-id",
            "/latest/dynamic/instance-identity/document",
            "/latest/meta-data/instance-type",
        ]
    );
}

#[tokio::test]
async fn methods_other_than_get_head_refused() {
    let h = default_harness();
    for m in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        for p in ["/latest/meta-data/placement/region", CREDS_A] {
            let r = send(
                &h,
                PEER_A,
                Request::builder().method(m).uri(p).body(()).unwrap(),
            )
            .await;
            assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{m} {p}");
            assert_eq!(r.headers["allow"], "GET, HEAD");
        }
    }
    assert!(h.upstream.seen().is_empty());
    assert_eq!(h.creds.count(), 0);
}

#[tokio::test]
async fn unidentified_callers_refused() {
    let h = default_harness();
    let r = send(&h, "192.0.2.10", get(CREDS_A).body(()).unwrap()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Unknown after the hold: 404 (like kube2iam), never a role.
    let r = send(&h, PEER_UNKNOWN, get(CREDS_A).body(()).unwrap()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = send(
        &h,
        "192.0.2.10",
        get("/latest/meta-data/placement/region").body(()).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(h.upstream.seen().is_empty());
    assert_eq!(h.creds.count(), 0);
    let text = h.metrics.encode();
    assert!(
        text.contains(r#"podiam_identity_failures_total{reason="no-origin"} 2"#),
        "{text}"
    );
    assert!(text.contains(r#"podiam_identity_failures_total{reason="unknown-pod"} 1"#));
}

// ---------------------------------------------------------------- container credentials

fn cc(host: Option<&str>, auth: Option<&str>) -> Request<()> {
    let mut b = get("/v1/credentials");
    if let Some(h) = host {
        b = b.header("Host", h);
    }
    if let Some(a) = auth {
        b = b.header("Authorization", a);
    }
    b.body(()).unwrap()
}

fn assert_error_json(r: &Resp, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/json");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let obj = v.as_object().unwrap();
    assert_eq!(obj.len(), 2, "{}", r.body);
    assert_eq!(v["code"], code);
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    for leak in [
        "1111",
        "9999",
        "node",
        "Throttling",
        "ip-10",
        "apiserver",
        "signature",
    ] {
        assert!(!r.body.contains(leak), "leaks {leak}: {}", r.body);
    }
}

#[tokio::test]
async fn container_credentials_success() {
    let h = default_harness();
    let jwt = jwt_for(POD_A_UID);
    for host in [
        "169.254.170.23",
        "169.254.170.23:80",
        "[fd00:ec2::23]",
        "[fd00:ec2::23]:80",
    ] {
        let r = send(&h, PEER_A, cc(Some(host), Some(&jwt))).await;
        assert_eq!(r.status, StatusCode::OK, "{host}: {}", r.body);
        assert_eq!(r.headers["content-type"], "application/json");
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "AccessKeyId",
                "AccountId",
                "Expiration",
                "SecretAccessKey",
                "Token"
            ]
        );
        assert_eq!(v["AccessKeyId"], access_key_for(POD_A_UID));
        assert_eq!(v["AccountId"], "111122223333");
        assert!(v["Expiration"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(
        h.validator
            .audiences
            .lock()
            .unwrap()
            .first()
            .map(String::as_str),
        Some("pods.eks.amazonaws.com")
    );
}

#[tokio::test]
async fn container_credentials_refusals() {
    let h = default_harness();
    let jwt_a = jwt_for(POD_A_UID);
    // Host check.
    for host in [
        None,
        Some("127.0.0.1"),
        Some("169.254.170.23:8080"),
        Some("169.254.169.254"),
        Some("evil"),
    ] {
        let r = send(&h, PEER_A, cc(host, Some(&jwt_a))).await;
        assert_error_json(&r, StatusCode::FORBIDDEN, "AccessDenied");
    }
    // Authorization shape.
    let host = Some("169.254.170.23");
    for auth in [
        None,
        Some(""),
        Some("garbage"),
        Some("a.b"),
        Some("Bearer x.y.z"),
        Some("a.b.c.d"),
        Some("a..c"),
    ] {
        let r = send(&h, PEER_A, cc(host, auth)).await;
        assert_error_json(&r, StatusCode::BAD_REQUEST, "InvalidRequest");
    }
    assert_eq!(
        h.validator.calls.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    // Token validation outcomes.
    let r = send(&h, PEER_A, cc(host, Some("eyJh.bad.c2ln"))).await;
    assert_error_json(&r, StatusCode::UNAUTHORIZED, "InvalidToken");
    let r = send(&h, PEER_A, cc(host, Some("eyJh.expired.c2ln"))).await;
    assert_error_json(&r, StatusCode::UNAUTHORIZED, "ExpiredToken");
    let r = send(&h, PEER_A, cc(host, Some("eyJh.unavailable.c2ln"))).await;
    assert_error_json(&r, StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable");
    // Cross-pod: pod B presents pod A's token; unbound tokens.
    let r = send(&h, PEER_B, cc(host, Some(&jwt_a))).await;
    assert_error_json(&r, StatusCode::FORBIDDEN, "AccessDenied");
    let r = send(&h, PEER_A, cc(host, Some("eyJh.unbound.c2ln"))).await;
    assert_error_json(&r, StatusCode::FORBIDDEN, "AccessDenied");
    assert_eq!(h.creds.count(), 0);
    // Role and vending outcomes: 4xx permanent, 5xx only for retryable.
    let r = send(&h, PEER_NOROLE, cc(host, Some(&jwt_for(POD_NOROLE_UID)))).await;
    assert_error_json(&r, StatusCode::NOT_FOUND, "ResourceNotFound");
    let r = send(&h, PEER_DENIED, cc(host, Some(&jwt_for(POD_DENIED_UID)))).await;
    assert_error_json(&r, StatusCode::FORBIDDEN, "AccessDenied");
    let r = send(&h, PEER_PERM, cc(host, Some(&jwt_for(POD_PERM_UID)))).await;
    assert_error_json(&r, StatusCode::FORBIDDEN, "AccessDenied");
    let r = send(&h, PEER_RETRY, cc(host, Some(&jwt_for(POD_RETRY_UID)))).await;
    assert_error_json(&r, StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable");
    // Unidentified callers.
    let r = send(&h, "192.0.2.1", cc(host, Some(&jwt_a))).await;
    assert_error_json(&r, StatusCode::FORBIDDEN, "AccessDenied");
    let r = send(&h, PEER_UNKNOWN, cc(host, Some(&jwt_a))).await;
    assert_error_json(&r, StatusCode::NOT_FOUND, "ResourceNotFound");
    // Method.
    let req = Request::builder()
        .method("POST")
        .uri("/v1/credentials")
        .header("Host", "169.254.170.23")
        .body(())
        .unwrap();
    assert_error_json(
        &send(&h, PEER_A, req).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
    );
}

#[tokio::test]
async fn configurable_audience_and_hosts() {
    let mut cfg = ServerConfig::default();
    cfg.pod_identity.audience = "podiam".into();
    cfg.pod_identity.allowed_hosts = vec!["127.0.0.1:8181".into()];
    let h = harness(&cfg);
    let r = send(
        &h,
        PEER_A,
        cc(Some("127.0.0.1:8181"), Some(&jwt_for(POD_A_UID))),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(
        &h,
        PEER_A,
        cc(Some("169.254.170.23"), Some(&jwt_for(POD_A_UID))),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(h.validator.audiences.lock().unwrap().as_slice(), ["podiam"]);
}

#[tokio::test]
async fn metrics_record_surface_class_status() {
    let h = default_harness();
    send(&h, PEER_A, put_token(Some("60"))).await;
    send(&h, PEER_A, get(CREDS_A).body(()).unwrap()).await;
    send(&h, PEER_A, get("/latest/user-data").body(()).unwrap()).await;
    send(
        &h,
        PEER_A,
        cc(Some("169.254.170.23"), Some(&jwt_for(POD_A_UID))),
    )
    .await;
    let text = h.metrics.encode();
    for want in [
        r#"podiam_http_requests_total{surface="imds",class="token",status="200"} 1"#,
        r#"podiam_http_requests_total{surface="imds",class="credentials",status="200"} 1"#,
        r#"podiam_http_requests_total{surface="imds",class="refused",status="404"} 1"#,
        r#"podiam_http_requests_total{surface="container-credentials",class="credentials",status="200"} 1"#,
    ] {
        assert!(text.contains(want), "missing {want} in\n{text}");
    }
}
