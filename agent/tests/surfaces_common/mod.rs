//! Test doubles for the surfaces' dependencies, shared by the `surfaces_*` integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use podiam::identity::{Caller, CallerResolver, IdentityError};
use podiam::imds::{Clock, ImdsUpstream, UpstreamError, UpstreamResponse};
use podiam::inventory::PodInfo;
use podiam::metrics::Metrics;
use podiam::podidentity::{TokenClaims, TokenError, TokenValidator};
use podiam::policy::{RoleDecision, RoleResolver, RoleSource, RoleSpec};
use podiam::server::{AppState, ServerConfig, Services};
use podiam::vend::{CredentialSource, Credentials, VendError};

pub const POD_A_UID: &str = "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa";
pub const POD_B_UID: &str = "bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb";
pub const POD_NOROLE_UID: &str = "cccccccc-3333-4333-8333-cccccccccccc";
pub const POD_DENIED_UID: &str = "dddddddd-4444-4444-8444-dddddddddddd";
pub const POD_PERM_UID: &str = "eeeeeeee-5555-4555-8555-eeeeeeeeeeee";
pub const POD_RETRY_UID: &str = "ffffffff-6666-4666-8666-ffffffffffff";

pub const ROLE_A_ARN: &str = "arn:aws:iam::111122223333:role/team/app-a";
pub const ROLE_B_ARN: &str = "arn:aws:iam::111122223333:role/app-b";

/// Peer addresses that identify the pods (for handler tests and loopback listeners).
pub const PEER_A: &str = "127.0.0.1";
pub const PEER_B: &str = "127.0.0.2";
pub const PEER_NOROLE: &str = "127.0.0.3";
pub const PEER_DENIED: &str = "127.0.0.4";
pub const PEER_PERM: &str = "127.0.0.5";
pub const PEER_RETRY: &str = "127.0.0.6";
/// A peer whose pod is "not known yet" (UnknownPod).
pub const PEER_UNKNOWN: &str = "127.0.0.7";
// Any other peer address: no origin record.

pub fn access_key_for(uid: &str) -> String {
    format!("ASIA{}", &uid[..8].to_uppercase())
}

fn pod(uid: &str, name: &str) -> Arc<PodInfo> {
    Arc::new(PodInfo {
        uid: uid.into(),
        namespace: "team".into(),
        name: name.into(),
        service_account: name.into(),
        ..Default::default()
    })
}

/// Resolves peers by IP (see the `PEER_*` constants).
pub struct FakeCallers {
    pods: HashMap<IpAddr, (Arc<PodInfo>, u64)>,
    pub calls: AtomicUsize,
}

impl FakeCallers {
    pub fn new() -> Self {
        let mut pods = HashMap::new();
        for (i, (ip, uid, name)) in [
            (PEER_A, POD_A_UID, "pod-a"),
            (PEER_B, POD_B_UID, "pod-b"),
            (PEER_NOROLE, POD_NOROLE_UID, "pod-norole"),
            (PEER_DENIED, POD_DENIED_UID, "pod-denied"),
            (PEER_PERM, POD_PERM_UID, "pod-perm"),
            (PEER_RETRY, POD_RETRY_UID, "pod-retry"),
        ]
        .into_iter()
        .enumerate()
        {
            pods.insert(ip.parse().unwrap(), (pod(uid, name), 1000 + i as u64));
        }
        Self {
            pods,
            calls: AtomicUsize::new(0),
        }
    }
}

#[async_trait::async_trait]
impl CallerResolver for FakeCallers {
    async fn resolve(&self, peer: SocketAddr, _local: SocketAddr) -> Result<Caller, IdentityError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if peer.ip() == PEER_UNKNOWN.parse::<IpAddr>().unwrap() {
            return Err(IdentityError::UnknownPod { cgroup_id: 77 });
        }
        match self.pods.get(&peer.ip()) {
            Some((pod, cg)) => Ok(Caller {
                pod: pod.clone(),
                cgroup_id: Some(*cg),
                container_id: None,
                peer,
            }),
            None => Err(IdentityError::NoOrigin(peer)),
        }
    }
}

pub struct FakeRoles;

fn spec(arn: &str) -> RoleSpec {
    RoleSpec {
        arn: arn.into(),
        external_id: None,
        session_tags: true,
        source: RoleSource::Association,
    }
}

#[async_trait::async_trait]
impl RoleResolver for FakeRoles {
    async fn resolve_role(&self, caller: &Caller) -> RoleDecision {
        match caller.pod.uid.as_str() {
            POD_A_UID | POD_PERM_UID | POD_RETRY_UID => RoleDecision::Role(spec(ROLE_A_ARN)),
            POD_B_UID => RoleDecision::Role(spec(ROLE_B_ARN)),
            POD_DENIED_UID => RoleDecision::Denied {
                arn: ROLE_B_ARN.into(),
                reason: "namespace restriction".into(),
            },
            _ => RoleDecision::NoRole {
                reason: "no mapping".into(),
            },
        }
    }
}

/// Counts calls; pod-perm → Permanent, pod-retry → Retryable, others → credentials whose
/// access key is [`access_key_for`] the pod UID.
pub struct FakeCreds {
    pub calls: AtomicUsize,
    pub expiration: SystemTime,
}

impl FakeCreds {
    pub fn new() -> Self {
        Self {
            calls: AtomicUsize::new(0),
            // 2 h from now, whole seconds.
            expiration: SystemTime::UNIX_EPOCH
                + Duration::from_secs(
                    SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap()
                        .as_secs()
                        + 7200,
                ),
        }
    }
    pub fn count(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl CredentialSource for FakeCreds {
    async fn credentials(
        &self,
        caller: &Caller,
        role: &RoleSpec,
    ) -> Result<Credentials, VendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match caller.pod.uid.as_str() {
            POD_PERM_UID => Err(VendError::Permanent {
                code: "AccessDenied: User arn:aws:sts::999988887777:assumed-role/node is not authorized".into(),
            }),
            POD_RETRY_UID => Err(VendError::Retryable {
                code: "Throttling on node ip-10-0-0-1".into(),
            }),
            uid => Ok(Credentials {
                access_key_id: access_key_for(uid),
                secret_access_key: format!("secret-{uid}"),
                session_token: format!("token-{uid}-{}", role.name()),
                expiration: self.expiration,
                account_id: None,
                last_updated: self.expiration - Duration::from_secs(3600),
            }),
        }
    }
}

/// Tokens: `good.<pod uid>.sig` style JWT-shaped strings; see [`jwt_for`].
pub struct FakeValidator {
    pub calls: AtomicUsize,
    pub audiences: Mutex<Vec<String>>,
}

impl FakeValidator {
    pub fn new() -> Self {
        Self {
            calls: AtomicUsize::new(0),
            audiences: Mutex::new(Vec::new()),
        }
    }
}

/// A JWT-shaped token the fake validator maps to `uid`'s claims.
pub fn jwt_for(uid: &str) -> String {
    format!(
        "eyJhbGciOiJSUzI1NiJ9.{}.c2lnbmF0dXJl",
        uid.replace('-', "_")
    )
}

#[async_trait::async_trait]
impl TokenValidator for FakeValidator {
    async fn validate(&self, token: &str, audience: &str) -> Result<TokenClaims, TokenError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.audiences.lock().unwrap().push(audience.to_owned());
        let mid = token.split('.').nth(1).unwrap_or_default();
        match mid {
            "expired" => Err(TokenError::Expired),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Err(TokenError::Unavailable("slow".into()))
            }
            "unavailable" => Err(TokenError::Unavailable("apiserver down".into())),
            "unbound" => Ok(TokenClaims {
                namespace: "team".into(),
                service_account: "x".into(),
                pod_name: String::new(),
                pod_uid: String::new(),
            }),
            m if m.len() == 36 => Ok(TokenClaims {
                namespace: "team".into(),
                service_account: "sa".into(),
                pod_name: "p".into(),
                pod_uid: m.replace('_', "-"),
            }),
            _ => Err(TokenError::Invalid("bad signature".into())),
        }
    }
}

/// Records every path asked for; answers 200 `upstream:<path>`.
pub struct FakeUpstream {
    pub paths: Mutex<Vec<String>>,
}

impl FakeUpstream {
    pub fn new() -> Self {
        Self {
            paths: Mutex::new(Vec::new()),
        }
    }
    pub fn seen(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl ImdsUpstream for FakeUpstream {
    async fn get(&self, path: &str) -> Result<UpstreamResponse, UpstreamError> {
        self.paths.lock().unwrap().push(path.to_owned());
        Ok(UpstreamResponse {
            status: http::StatusCode::OK,
            content_type: Some("text/plain".into()),
            body: bytes::Bytes::from(format!("upstream:{path}")),
        })
    }
}

/// A settable clock (unix seconds).
pub struct TestClock(pub AtomicU64);

impl TestClock {
    pub fn clock(self: &Arc<Self>) -> Clock {
        let me = self.clone();
        Arc::new(move || SystemTime::UNIX_EPOCH + Duration::from_secs(me.0.load(Ordering::SeqCst)))
    }
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

/// All doubles plus the state built on them.
pub struct Harness {
    pub callers: Arc<FakeCallers>,
    pub creds: Arc<FakeCreds>,
    pub validator: Arc<FakeValidator>,
    pub upstream: Arc<FakeUpstream>,
    pub clock: Arc<TestClock>,
    pub metrics: Arc<Metrics>,
    pub state: Arc<AppState>,
}

pub fn harness(config: &ServerConfig) -> Harness {
    let upstream = Arc::new(FakeUpstream::new());
    harness_with_upstream(config, upstream.clone(), upstream)
}

/// Like [`harness`] but with another upstream behind the IMDS surface (`fake` is then unused).
pub fn harness_with_upstream(
    config: &ServerConfig,
    real: Arc<dyn ImdsUpstream>,
    fake: Arc<FakeUpstream>,
) -> Harness {
    let upstream = fake;
    let callers = Arc::new(FakeCallers::new());
    let creds = Arc::new(FakeCreds::new());
    let validator = Arc::new(FakeValidator::new());
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let clock = Arc::new(TestClock(AtomicU64::new(now)));
    let metrics = Arc::new(Metrics::new());
    let services = Services {
        callers: callers.clone(),
        roles: Arc::new(FakeRoles),
        credentials: creds.clone(),
        validator: validator.clone(),
        upstream: real,
    };
    let state = Arc::new(AppState::with_clock(
        config,
        services,
        metrics.clone(),
        clock.clock(),
    ));
    Harness {
        callers,
        creds,
        validator,
        upstream,
        clock,
        metrics,
        state,
    }
}

/// A proxy listener on 127.0.0.1 (ephemeral port) serving a harness.
pub struct Running {
    pub addr: SocketAddr,
    pub h: Harness,
    pub shutdown: tokio_util::sync::CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), podiam::server::ServerError>>,
}

pub async fn start_harness(h: Harness) -> Running {
    let listeners = podiam::server::bind_listeners(&["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    start_on(listeners, h)
}

/// Binds 127.0.0.1:0 first, then builds the harness from `make_config(addr)` (for configs
/// that name the listener's own address, e.g. a widened container-credentials Host set).
pub async fn start_with(make_config: impl FnOnce(SocketAddr) -> ServerConfig) -> Running {
    let listeners = podiam::server::bind_listeners(&["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    let addr = listeners[0].local_addr().unwrap();
    start_on(listeners, harness(&make_config(addr)))
}

fn start_on(listeners: Vec<tokio::net::TcpListener>, h: Harness) -> Running {
    let addr = listeners[0].local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(podiam::server::serve_proxy(
        listeners,
        h.state.clone(),
        shutdown.clone(),
    ));
    Running {
        addr,
        h,
        shutdown,
        task,
    }
}

pub async fn start(config: &ServerConfig) -> Running {
    start_harness(harness(config)).await
}

/// Connects to `addr` from source address `src` (a 127.0.0.0/8 address picks the pod).
pub async fn connect_from(src: &str, addr: SocketAddr) -> tokio::net::TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(src.parse().unwrap(), 0)).unwrap();
    sock.connect(addr).await.unwrap()
}

/// Sends raw bytes from `src` and reads until the server closes (5 s limit). The request
/// should carry `Connection: close`.
pub async fn raw(src: &str, addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = connect_from(src, addr).await;
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("server answered and closed in time")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET path` with `Connection: close` and extra header lines.
pub fn get_req(path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut s = format!("GET {path} HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n");
    for (k, v) in extra {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// Status code of a raw HTTP/1.1 response (0 if none).
pub fn status_of(resp: &str) -> u16 {
    resp.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Body of a raw response (after the blank line).
pub fn body_of(resp: &str) -> &str {
    resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}
