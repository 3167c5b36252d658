//! Real SDK clients (botocore, AWS CLI) against the real listener on 127.0.0.1 with test
//! doubles behind it. Each asserts the client obtained exactly pod A's access key.
mod surfaces_common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use podiam::server::ServerConfig;
use surfaces_common::*;

const BOTOCORE_SNIPPET: &str = r#"
import json, botocore.session
s = botocore.session.get_session()
c = s.get_credentials()
if c is None:
    print(json.dumps({"method": None}))
else:
    f = c.get_frozen_credentials()
    print(json.dumps({"method": c.method, "ak": f.access_key, "sk": f.secret_key, "token": f.token}))
"#;

/// A command with every inherited `AWS_*` variable removed and no config/credential files.
fn aws_cmd(program: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(program);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.env("AWS_CONFIG_FILE", "/nonexistent/podiam-test-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/podiam-test-credentials",
        )
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_METADATA_SERVICE_TIMEOUT", "3")
        .env("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "2")
        .kill_on_drop(true);
    c
}

async fn output(mut c: tokio::process::Command) -> String {
    let out = tokio::time::timeout(Duration::from_secs(60), c.output())
        .await
        .expect("client finished in time")
        .expect("client ran");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "client failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn botocore(env: &[(&str, String)]) -> serde_json::Value {
    let mut c = aws_cmd("python3");
    c.arg("-c").arg(BOTOCORE_SNIPPET);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = output(c).await;
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `aws configure list` resolves credentials through the CLI's chain and prints the access
/// key's last four characters and the provider type.
async fn aws_cli_list(env: &[(&str, String)]) -> String {
    let mut c = aws_cmd("aws");
    c.args(["configure", "list"]);
    for (k, v) in env {
        c.env(k, v);
    }
    output(c).await
}

fn count(run: &Running, needle: &str) -> u64 {
    let text = run.h.metrics.encode();
    text.lines()
        .find(|l| l.starts_with(needle))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

const TOKEN_OK: &str = r#"podiam_http_requests_total{surface="imds",class="token",status="200"}"#;
const CREDS_OK: &str =
    r#"podiam_http_requests_total{surface="imds",class="credentials",status="200"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn botocore_and_aws_cli_via_imds_v2() {
    let run = start(&ServerConfig::default()).await;
    let endpoint = format!("http://{}/", run.addr);
    let env = [("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint)];
    let v = botocore(&env).await;
    assert_eq!(v["method"], "iam-role", "{v}");
    assert_eq!(v["ak"], access_key_for(POD_A_UID));
    assert_eq!(v["sk"], format!("secret-{POD_A_UID}"));
    assert!(count(&run, TOKEN_OK) >= 1, "botocore used an IMDSv2 token");
    assert!(count(&run, CREDS_OK) >= 1);

    let listing = aws_cli_list(&env).await;
    let line = listing
        .lines()
        .find(|l| l.trim_start().starts_with("access_key"))
        .unwrap_or_else(|| panic!("{listing}"));
    let ak = access_key_for(POD_A_UID);
    assert!(
        line.contains(&ak[ak.len() - 4..]) && line.contains("iam-role"),
        "{listing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn botocore_imds_v2_required_mode() {
    let mut cfg = ServerConfig::default();
    cfg.imds.v2_required = true;
    let run = start(&cfg).await;
    let v = botocore(&[(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        format!("http://{}/", run.addr),
    )])
    .await;
    assert_eq!(v["ak"], access_key_for(POD_A_UID), "{v}");
}

/// A front that answers the token PUT with 403 (as an IMDS without v2, or a hop-limited
/// PUT) and relays GETs to the podiam listener: botocore must fall back to IMDSv1.
async fn put_refusing_front(backend: SocketAddr) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = Arc::new(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<Empty<Bytes>>(),
    );
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let client = client.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let client = client.clone();
                    async move {
                        if req.method() == Method::PUT {
                            let mut r = Response::new(Full::new(Bytes::from_static(b"Forbidden")));
                            *r.status_mut() = StatusCode::FORBIDDEN;
                            return Ok::<_, Infallible>(r);
                        }
                        let uri = format!("http://{backend}{}", req.uri().path());
                        let fwd = Request::get(uri).body(Empty::new()).unwrap();
                        let resp = client.request(fwd).await.unwrap();
                        let status = resp.status();
                        let body = resp.into_body().collect().await.unwrap().to_bytes();
                        let mut r = Response::new(Full::new(body));
                        *r.status_mut() = status;
                        Ok(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn botocore_falls_back_to_imds_v1_when_token_put_fails() {
    let run = start(&ServerConfig::default()).await;
    let front = put_refusing_front(run.addr).await;
    let v = botocore(&[(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        format!("http://{front}/"),
    )])
    .await;
    assert_eq!(v["method"], "iam-role", "{v}");
    assert_eq!(v["ak"], access_key_for(POD_A_UID));
    assert_eq!(count(&run, TOKEN_OK), 0, "no token was minted");
    assert!(count(&run, CREDS_OK) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn botocore_and_aws_cli_via_container_credentials() {
    // Loopback testing only: widen the Host set to the listener's own address.
    let run = start_with(|addr| {
        let mut cfg = ServerConfig::default();
        cfg.pod_identity.allowed_hosts.push(addr.to_string());
        cfg
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("eks-pod-identity-token");
    std::fs::write(&token_file, jwt_for(POD_A_UID)).unwrap();
    let env = [
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("http://{}/v1/credentials", run.addr),
        ),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            token_file.display().to_string(),
        ),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ];
    let v = botocore(&env).await;
    assert_eq!(v["method"], "container-role", "{v}");
    assert_eq!(v["ak"], access_key_for(POD_A_UID));
    assert_eq!(v["token"], format!("token-{POD_A_UID}-app-a"));
    let listing = aws_cli_list(&env).await;
    let ak = access_key_for(POD_A_UID);
    assert!(
        listing.contains(&ak[ak.len() - 4..]) && listing.contains("container-role"),
        "{listing}"
    );

    // Pod B's token presented by pod A's connection is refused (botocore then finds no
    // credentials at all rather than another pod's).
    std::fs::write(&token_file, jwt_for(POD_B_UID)).unwrap();
    let mut c = aws_cmd("python3");
    c.arg("-c").arg(BOTOCORE_SNIPPET);
    for (k, v) in &env {
        c.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), c.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(&access_key_for(POD_B_UID)), "{stdout}");
    assert!(!stdout.contains(&access_key_for(POD_A_UID)), "{stdout}");
}
