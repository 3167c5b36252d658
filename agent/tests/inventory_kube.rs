//! The Kubernetes inventory against an in-process fake API server (real list/watch JSON).
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use podiam::datapath::{Origin, OriginLookup, Service};
use podiam::identity::{CallerResolver, IdentityError, KernelCallerResolver};
use podiam::inventory::{Inventory, KubeInventory, KubeInventoryConfig, client_for_url};
use podiam::policy::{PolicyConfig, PolicyResolver, RoleDecision, RoleResolver, RoleSource};
use serde_json::json;
use support::fake_apiserver::*;

const NODE: &str = "node-a";
const UID1: &str = "11111111-aaaa-4aaa-8aaa-000000000001";
const UID2: &str = "22222222-bbbb-4bbb-8bbb-000000000002";
const UID3: &str = "33333333-cccc-4ccc-8ccc-000000000003";
const ROLE_KEY: &str = "iam.amazonaws.com/role";
const BASE: &str = "arn:aws:iam::111111111111:role/";

async fn setup(srv: &FakeApiServer) -> Arc<KubeInventory> {
    let client = client_for_url(&srv.url()).unwrap();
    let mut cfg = KubeInventoryConfig::new(NODE);
    cfg.backoff_initial = Duration::from_millis(20);
    cfg.backoff_max = Duration::from_millis(200);
    let inv = KubeInventory::start(client, cfg);
    assert!(
        inv.wait_synced(Duration::from_secs(10)).await,
        "inventory did not sync"
    );
    inv
}

/// Poll `f` until true (5 s max).
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn seed(srv: &FakeApiServer) {
    srv.apply(
        NAMESPACES,
        namespace(
            "shop",
            &[("iam.amazonaws.com/allowed-roles", r#"["app*"]"#)],
        ),
    );
    srv.apply(SERVICE_ACCOUNTS, service_account("shop", "web", &[]));
    srv.apply(
        PODS,
        pod(
            "shop",
            "web-1",
            UID1,
            NODE,
            Some("10.0.0.5"),
            &[(ROLE_KEY, "app")],
        ),
    );
    srv.apply(
        PODS,
        pod("shop", "elsewhere", UID2, "node-b", Some("10.0.0.6"), &[]),
    );
}

fn policy(inv: Arc<KubeInventory>) -> PolicyResolver {
    PolicyResolver::new(
        inv,
        PolicyConfig {
            base_role_arn: Some(BASE.into()),
            ..Default::default()
        },
    )
    .unwrap()
}

#[tokio::test]
async fn lists_and_watches_node_pods_namespaces_sas_associations() {
    let srv = FakeApiServer::start().await;
    seed(&srv);
    let inv = setup(&srv).await;
    assert_eq!(inv.source_name(), "kubernetes");
    let p = inv.pod_by_uid(UID1).expect("pod on this node");
    assert_eq!(
        (
            p.namespace.as_str(),
            p.name.as_str(),
            p.service_account.as_str()
        ),
        ("shop", "web-1", "web")
    );
    assert_eq!(p.ips, vec!["10.0.0.5".parse::<std::net::IpAddr>().unwrap()]);
    assert!(
        inv.pod_by_uid(UID2).is_none(),
        "pods of other nodes are not watched"
    );
    assert_eq!(inv.pods_by_ip("10.0.0.5".parse().unwrap()).len(), 1);
    assert!(
        inv.namespace_annotations("shop")
            .unwrap()
            .contains_key("iam.amazonaws.com/allowed-roles")
    );
    assert_eq!(
        inv.service_account_annotations("shop", "web"),
        Some(Default::default())
    );
    assert!(inv.stale().is_none());
    // The pod list/watch used the node field selector.
    assert!(
        srv.requests()
            .iter()
            .any(|r| r.starts_with("GET /api/v1/pods?")
                && r.contains("fieldSelector=spec.nodeName%3Dnode-a")),
        "{:?}",
        srv.requests()
    );

    // Association created → next resolution uses it; deleted → back to the pod annotation.
    let pol = policy(inv.clone());
    let RoleDecision::Role(r) = pol.decide(&p) else {
        panic!()
    };
    assert_eq!(r.source, RoleSource::PodAnnotation);
    srv.apply(
        ASSOCIATIONS,
        association(
            "shop-web",
            "shop",
            "web",
            "arn:aws:iam::222222222222:role/assoc",
        ),
    );
    eventually("association visible", || {
        inv.association("shop", "web").is_some()
    })
    .await;
    let RoleDecision::Role(r) = pol.decide(&p) else {
        panic!()
    };
    assert_eq!(
        (r.arn.as_str(), r.source, r.session_tags),
        (
            "arn:aws:iam::222222222222:role/assoc",
            RoleSource::Association,
            true
        )
    );
    srv.delete(ASSOCIATIONS, "", "shop-web");
    eventually("association gone", || {
        inv.association("shop", "web").is_none()
    })
    .await;
    let RoleDecision::Role(r) = pol.decide(&p) else {
        panic!()
    };
    assert_eq!(r.source, RoleSource::PodAnnotation);

    // SA annotation added → IRSA step.
    srv.apply(
        SERVICE_ACCOUNTS,
        service_account(
            "shop",
            "web",
            &[(
                "eks.amazonaws.com/role-arn",
                "arn:aws:iam::111111111111:role/irsa",
            )],
        ),
    );
    eventually("sa annotation", || {
        matches!(pol.decide(&p), RoleDecision::Role(ref r) if r.source == RoleSource::ServiceAccountAnnotation)
    })
    .await;
}

#[tokio::test]
async fn annotation_change_and_pod_deletion_take_effect() {
    let srv = FakeApiServer::start().await;
    seed(&srv);
    let inv = setup(&srv).await;
    let pol = policy(inv.clone());
    let caller = podiam::identity::Caller {
        pod: inv.pod_by_uid(UID1).unwrap(),
        cgroup_id: Some(1),
        container_id: None,
        peer: "10.0.0.5:1000".parse().unwrap(),
    };
    let RoleDecision::Role(r) = pol.resolve_role(&caller).await else {
        panic!()
    };
    assert_eq!(r.arn, format!("{BASE}app"));
    srv.apply(
        PODS,
        pod(
            "shop",
            "web-1",
            UID1,
            NODE,
            Some("10.0.0.5"),
            &[(ROLE_KEY, "other")],
        ),
    );
    eventually("annotation change", || {
        inv.pod_by_uid(UID1)
            .map(|p| p.annotations.get(ROLE_KEY).cloned())
            == Some(Some("other".into()))
    })
    .await;
    let RoleDecision::Role(r) = pol.resolve_role(&caller).await else {
        panic!()
    };
    assert_eq!(
        r.arn,
        format!("{BASE}other"),
        "next resolution reflects the new annotation"
    );

    srv.delete(PODS, "shop", "web-1");
    eventually("pod deleted", || inv.pod_by_uid(UID1).is_none()).await;
    assert!(inv.pods_by_ip("10.0.0.5".parse().unwrap()).is_empty());
}

#[derive(Default)]
struct FakeOrigins(Mutex<HashMap<SocketAddr, u64>>);

impl OriginLookup for FakeOrigins {
    fn origin_of(&self, peer: SocketAddr, _local: SocketAddr) -> Option<Origin> {
        let id = *self.0.lock().unwrap().get(&peer)?;
        Some(Origin {
            cgroup_id: id,
            netns_cookie: 1,
            pid: 1,
            tid: 1,
            uid: 0,
            gid: 0,
            original_dst: "169.254.169.254:80".parse().unwrap(),
            service: Service::Imds,
        })
    }
}

fn pod_cgroup(root: &std::path::Path, uid: &str) -> u64 {
    let p = root.join(format!("kubepods/besteffort/pod{uid}/0123456789abcdef"));
    std::fs::create_dir_all(&p).unwrap();
    std::fs::metadata(&p).unwrap().ino()
}

#[tokio::test]
async fn request_for_a_pod_added_later_is_held_then_served() {
    let srv = FakeApiServer::start().await;
    seed(&srv);
    let inv = setup(&srv).await;
    let dir = tempfile::tempdir().unwrap();
    let origins = Arc::new(FakeOrigins::default());
    let id = pod_cgroup(dir.path(), UID3);
    origins
        .0
        .lock()
        .unwrap()
        .insert("10.0.0.7:4242".parse().unwrap(), id);
    let resolver = Arc::new(
        KernelCallerResolver::new(origins.clone(), inv.clone(), dir.path())
            .with_pod_lookup_timeout(Duration::from_secs(3)),
    );
    let local: SocketAddr = "192.0.2.1:8181".parse().unwrap();
    let task = {
        let r = resolver.clone();
        tokio::spawn(async move { r.resolve("10.0.0.7:4242".parse().unwrap(), local).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!task.is_finished(), "held while the pod is unknown");
    srv.apply(PODS, pod("shop", "late", UID3, NODE, Some("10.0.0.7"), &[]));
    let caller = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(caller.pod.name, "late");

    // A pod that the watch never reports (silent change) is found by the direct lookup.
    let uid4 = "44444444-dddd-4ddd-8ddd-000000000004";
    let id4 = pod_cgroup(dir.path(), uid4);
    origins
        .0
        .lock()
        .unwrap()
        .insert("10.0.0.8:1".parse().unwrap(), id4);
    srv.apply_silently(
        PODS,
        pod("shop", "quiet", uid4, NODE, Some("10.0.0.8"), &[]),
    );
    let c = resolver
        .resolve("10.0.0.8:1".parse().unwrap(), local)
        .await
        .unwrap();
    assert_eq!(c.pod.name, "quiet");
    assert!(
        srv.requests()
            .iter()
            .filter(|r| r.starts_with("GET /api/v1/pods?") && !r.contains("watch="))
            .count()
            >= 2
    );

    // Never appears → UnknownPod after the timeout.
    let uid5 = "55555555-eeee-4eee-8eee-000000000005";
    let id5 = pod_cgroup(dir.path(), uid5);
    origins
        .0
        .lock()
        .unwrap()
        .insert("10.0.0.9:1".parse().unwrap(), id5);
    let r = KernelCallerResolver::new(origins.clone(), inv.clone(), dir.path())
        .with_pod_lookup_timeout(Duration::from_millis(300));
    let e = r
        .resolve("10.0.0.9:1".parse().unwrap(), local)
        .await
        .unwrap_err();
    assert!(matches!(e, IdentityError::UnknownPod { .. }), "{e:?}");
}

#[tokio::test]
async fn watch_410_gone_relists() {
    let srv = FakeApiServer::start().await;
    seed(&srv);
    srv.apply(
        PODS,
        pod("shop", "doomed", UID3, NODE, Some("10.0.0.9"), &[]),
    );
    let inv = setup(&srv).await;
    assert!(inv.pod_by_uid(UID3).is_some());
    let lists_before = srv
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/pods?") && !r.contains("watch="))
        .count();
    // Changes the open watches never see, then 410 Gone on every watch.
    srv.delete_silently(PODS, "shop", "doomed");
    let uid4 = "44444444-dddd-4ddd-8ddd-000000000004";
    srv.apply_silently(
        PODS,
        pod("shop", "newcomer", uid4, NODE, Some("10.0.0.10"), &[]),
    );
    srv.expire_watches();
    eventually("relist after 410", || {
        inv.pod_by_uid(uid4).is_some() && inv.pod_by_uid(UID3).is_none()
    })
    .await;
    assert!(inv.pods_by_ip("10.0.0.9".parse().unwrap()).is_empty());
    let lists_after = srv
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/pods?") && !r.contains("watch="))
        .count();
    assert!(lists_after > lists_before, "a relist happened");
    // And watching resumes.
    srv.apply(
        PODS,
        pod("shop", "after", UID2, NODE, Some("10.0.0.11"), &[]),
    );
    eventually("watch resumed", || inv.pod_by_uid(UID2).is_some()).await;
    assert!(inv.stale().is_none());
}

#[tokio::test]
async fn unreachable_api_server_keeps_serving_and_reports_stale() {
    let srv = FakeApiServer::start().await;
    seed(&srv);
    let inv = setup(&srv).await;
    srv.stop();
    eventually("stale reported", || inv.stale().is_some()).await;
    let why = inv.stale().unwrap();
    assert!(why.contains("watch failing"), "{why}");
    // Last known state keeps serving.
    assert_eq!(inv.pod_by_uid(UID1).unwrap().name, "web-1");
    assert!(inv.namespace_annotations("shop").is_some());
    // A direct lookup fails cleanly rather than hanging.
    assert!(inv.refresh_pod(UID3).await.is_err());
    // Back again: the relist clears staleness and picks up changes made meanwhile.
    srv.apply(
        PODS,
        pod("shop", "while-down", UID3, NODE, Some("10.0.0.12"), &[]),
    );
    srv.restart().await;
    eventually("recovered", || {
        inv.stale().is_none() && inv.pod_by_uid(UID3).is_some()
    })
    .await;
}

#[tokio::test]
async fn token_review() {
    use podiam::inventory::{KubeTokenReviewer, TokenReviewError};
    let srv = FakeApiServer::start().await;
    let aud = "pods.eks.amazonaws.com";
    srv.add_token(
        "good",
        json!({
        "authenticated": true, "audiences": [aud],
        "user": {"username": "system:serviceaccount:shop:web", "uid": "x",
                 "extra": {"authentication.kubernetes.io/pod-uid": [UID1],
                           "authentication.kubernetes.io/pod-name": ["web-1"]}}}),
    );
    srv.add_token(
        "other-aud",
        json!({
        "authenticated": true, "audiences": ["sts.amazonaws.com"],
        "user": {"username": "system:serviceaccount:shop:web",
                 "extra": {"authentication.kubernetes.io/pod-uid": [UID1],
                           "authentication.kubernetes.io/pod-name": ["web-1"]}}}),
    );
    srv.add_token(
        "unbound",
        json!({
        "authenticated": true, "audiences": [aud],
        "user": {"username": "system:serviceaccount:shop:web"}}),
    );
    srv.add_token(
        "user",
        json!({
        "authenticated": true, "audiences": [aud],
        "user": {"username": "alice", "extra": {"authentication.kubernetes.io/pod-uid": [UID1],
                 "authentication.kubernetes.io/pod-name": ["web-1"]}}}),
    );
    let rev = KubeTokenReviewer::new(client_for_url(&srv.url()).unwrap());
    let ok = rev.review("good", aud).await.unwrap();
    assert_eq!(
        (
            ok.namespace.as_str(),
            ok.service_account.as_str(),
            ok.pod_name.as_str(),
            ok.pod_uid.as_str()
        ),
        ("shop", "web", "web-1", UID1)
    );
    assert!(matches!(
        rev.review("other-aud", aud).await,
        Err(TokenReviewError::WrongAudience(_))
    ));
    assert!(matches!(
        rev.review("unbound", aud).await,
        Err(TokenReviewError::NotPodBound(_))
    ));
    assert!(matches!(
        rev.review("user", aud).await,
        Err(TokenReviewError::NotPodBound(_))
    ));
    assert!(matches!(
        rev.review("forged", aud).await,
        Err(TokenReviewError::Rejected(_))
    ));
    assert!(matches!(
        rev.review("", aud).await,
        Err(TokenReviewError::Rejected(_))
    ));
    srv.stop();
    assert!(matches!(
        rev.review("good", aud).await,
        Err(TokenReviewError::Api(_))
    ));
}

#[tokio::test]
async fn event_recorder_posts_refused_role() {
    use podiam::policy::EventRecorder;
    let srv = FakeApiServer::start().await;
    let rec = EventRecorder::new(client_for_url(&srv.url()).unwrap(), Some(NODE.into()));
    let p = podiam::inventory::PodInfo {
        uid: UID1.into(),
        namespace: "shop".into(),
        name: "web-1".into(),
        ..Default::default()
    };
    assert!(
        rec.record_refused(&p, Some("arn:aws:iam::1:role/x"), "not allowed")
            .await
    );
    let evs = srv.events();
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0]["involvedObject"]["uid"], UID1);
    assert_eq!(evs[0]["reason"], "PodiamRoleForbidden");
    assert_eq!(evs[0]["source"]["host"], NODE);
    srv.stop();
    assert!(
        !rec.record_refused(&p, None, "x").await,
        "best effort: failure reported, no panic"
    );
}
