//! The Kubernetes inventory against an in-process fake API server (real list/watch JSON):
//! sync, field selector, held requests, deletions, 410 Gone relist, outage, missing CRD.
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use podiam::datapath::{Origin, OriginLookup, Service};
use podiam::identity::{CallerResolver, IdentityError, KernelCallerResolver};
use podiam::inventory::{Inventory, KubeInventory, KubeInventoryConfig, client_for_url};
use support::fake_apiserver::*;
use support::kube::*;

#[tokio::test]
async fn lists_and_watches_node_pods_namespaces_sas() {
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
async fn missing_crd_means_no_associations_not_an_outage() {
    let srv = FakeApiServer::start().await;
    seed(&srv);
    srv.set_missing(ASSOCIATIONS, true);
    let inv = setup(&srv).await;
    assert!(inv.stale().is_none(), "{:?}", inv.stale());
    assert_eq!(inv.absent_resources(), vec!["podidentityassociations"]);
    assert!(inv.association("shop", "web").is_none());
    // The CRD gets installed later: the retry picks the associations up.
    srv.set_missing(ASSOCIATIONS, false);
    srv.apply(
        ASSOCIATIONS,
        association(
            "shop-web",
            "shop",
            "web",
            "arn:aws:iam::111111111111:role/a",
        ),
    );
    eventually("association after CRD install", || {
        inv.association("shop", "web").is_some()
    })
    .await;
    assert!(inv.absent_resources().is_empty());
    // Core resources missing are an outage, though.
    let srv2 = FakeApiServer::start().await;
    srv2.set_missing(NAMESPACES, true);
    let mut cfg = KubeInventoryConfig::new(NODE);
    cfg.backoff_initial = Duration::from_millis(20);
    let inv2 = KubeInventory::start(client_for_url(&srv2.url()).unwrap(), cfg);
    eventually("namespaces 404 is stale", || inv2.stale().is_some()).await;
    assert!(!inv2.synced());
}
