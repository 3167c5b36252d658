//! Shared setup for the Kubernetes-source tests: a synced `KubeInventory` on a fake API
//! server, seed objects, polling.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use podiam::inventory::{KubeInventory, KubeInventoryConfig, client_for_url};
use podiam::policy::{PolicyConfig, PolicyResolver};

use super::fake_apiserver::*;

pub const NODE: &str = "node-a";
pub const UID1: &str = "11111111-aaaa-4aaa-8aaa-000000000001";
pub const UID2: &str = "22222222-bbbb-4bbb-8bbb-000000000002";
pub const UID3: &str = "33333333-cccc-4ccc-8ccc-000000000003";
pub const ROLE_KEY: &str = "iam.amazonaws.com/role";
pub const BASE: &str = "arn:aws:iam::111111111111:role/";

pub async fn setup(srv: &FakeApiServer) -> Arc<KubeInventory> {
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
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn seed(srv: &FakeApiServer) {
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

pub fn policy(inv: Arc<KubeInventory>) -> PolicyResolver {
    PolicyResolver::new(
        inv,
        PolicyConfig {
            base_role_arn: Some(BASE.into()),
            ..Default::default()
        },
    )
    .unwrap()
}
