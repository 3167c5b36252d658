//! Credential vending against moto's real STS server (moto_server on 127.0.0.1), through a
//! recording proxy that shows exactly what reached STS and can inject STS errors.
//!
//! Needs `/root/.pyenv/shims/moto_server` (moto 5.x).
mod vend_support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_sts::config::{BehaviorVersion, Region};
use podiam::inventory::PodInfo;
use podiam::policy::{RoleSource, RoleSpec};
use podiam::vend::{
    AwsSts, Credentials, StsClientConfig, VendCache, VendConfig, VendError, VendMetrics,
};
use vend_support::{Inject, Moto, Proxy, init_env};

fn pod(ns: &str, name: &str, sa: &str, uid: &str) -> Arc<PodInfo> {
    Arc::new(PodInfo {
        uid: uid.into(),
        namespace: ns.into(),
        name: name.into(),
        service_account: sa.into(),
        ..Default::default()
    })
}

fn role(name: &str, tags: bool, external_id: Option<&str>) -> RoleSpec {
    RoleSpec {
        arn: format!("arn:aws:iam::123456789012:role/{name}"),
        external_id: external_id.map(str::to_string),
        session_tags: tags,
        source: if tags {
            RoleSource::Association
        } else {
            RoleSource::PodAnnotation
        },
    }
}

/// The real STS client from aws-config's default chain (env credentials), endpoint = proxy.
async fn real_sts(endpoint: &str) -> Arc<AwsSts> {
    let cfg = StsClientConfig {
        endpoint_url: Some(endpoint.to_string()),
        ..Default::default()
    };
    Arc::new(AwsSts::from_default_chain(&cfg).await.expect("sts client"))
}

/// `GetCallerIdentity` with the vended credentials, straight to moto.
async fn caller_arn(moto: &Moto, c: &Credentials) -> String {
    let conf = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(moto.url())
        .credentials_provider(aws_credential_types::Credentials::new(
            c.access_key_id.clone(),
            c.secret_access_key.clone(),
            Some(c.session_token.clone()),
            None,
            "vended",
        ))
        .build();
    let out = aws_sdk_sts::Client::from_conf(conf)
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity");
    out.arn().expect("arn").to_string()
}

fn left(c: &Credentials) -> Duration {
    c.expiration
        .duration_since(SystemTime::now())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_get_exactly_their_roles_with_tags_and_duration() {
    init_env();
    let moto = Moto::start().await;
    let proxy = Proxy::start(moto.addr).await;
    let cfg = VendConfig {
        cluster_name: Some("podiam-test".into()),
        cluster_arn: Some("arn:aws:eks:us-east-1:123456789012:cluster/podiam-test".into()),
        ..Default::default()
    };
    let metrics = VendMetrics::new();
    let cache = VendCache::new(real_sts(&proxy.url()).await, cfg, metrics.clone());

    let cart = pod(
        "shop",
        "cart-7f9c",
        "cart",
        "0b9b4a44-7a1d-4b8a-9c55-1f2e3d4c5b6a",
    );
    let cart_role = role("shop-cart", true, None);
    let legacy = pod(
        "legacy",
        "batch-1",
        "default",
        "5c1e0d2f-0000-4000-8000-000000000001",
    );
    let legacy_role = role("legacy-batch", false, Some("ext-1234"));

    let c1 = cache
        .get(&cart, &cart_role)
        .await
        .expect("cart credentials");
    let c2 = cache
        .get(&legacy, &legacy_role)
        .await
        .expect("legacy credentials");
    assert_ne!(c1.access_key_id, c2.access_key_id);
    assert_eq!(c1.account_id.as_deref(), Some("123456789012"));
    // moto honours DurationSeconds: 3600 s sessions
    for c in [&c1, &c2] {
        let l = left(c);
        assert!(
            l > Duration::from_secs(3500) && l <= Duration::from_secs(3601),
            "{l:?}"
        );
    }

    // The credentials are for exactly that role and session.
    assert_eq!(
        caller_arn(&moto, &c1).await,
        "arn:aws:sts::123456789012:assumed-role/shop-cart/shop@cart-7f9c"
    );
    assert_eq!(
        caller_arn(&moto, &c2).await,
        "arn:aws:sts::123456789012:assumed-role/legacy-batch/legacy@batch-1"
    );

    // What reached STS.
    let calls = proxy.requests("AssumeRole");
    assert_eq!(calls.len(), 2);
    let q1 = calls
        .iter()
        .find(|r| r.get("RoleArn") == Some(cart_role.arn.as_str()))
        .expect("cart call");
    assert_eq!(q1.get("RoleSessionName"), Some("shop@cart-7f9c"));
    assert_eq!(q1.get("DurationSeconds"), Some("3600"));
    assert_eq!(q1.get("ExternalId"), None);
    let tags = q1.tags();
    let expect: Vec<(String, String)> = [
        (
            "eks-cluster-arn",
            "arn:aws:eks:us-east-1:123456789012:cluster/podiam-test",
        ),
        ("eks-cluster-name", "podiam-test"),
        ("kubernetes-namespace", "shop"),
        ("kubernetes-service-account", "cart"),
        ("kubernetes-pod-name", "cart-7f9c"),
        ("kubernetes-pod-uid", "0b9b4a44-7a1d-4b8a-9c55-1f2e3d4c5b6a"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(tags, expect);
    let keys: Vec<String> = expect.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(q1.transitive(), keys);

    let q2 = calls
        .iter()
        .find(|r| r.get("RoleArn") == Some(legacy_role.arn.as_str()))
        .expect("legacy call");
    assert_eq!(q2.get("RoleSessionName"), Some("legacy@batch-1"));
    assert_eq!(q2.get("ExternalId"), Some("ext-1234"));
    assert!(
        q2.tags().is_empty(),
        "no session tags for kube2iam-style mappings"
    );
    assert!(q2.transitive().is_empty());

    // Served again from cache: no new STS call.
    let again = cache.get(&cart, &cart_role).await.unwrap();
    assert_eq!(again.access_key_id, c1.access_key_id);
    assert_eq!(proxy.requests("AssumeRole").len(), 2);
    assert_eq!(
        metrics.sts_call_count(podiam::vend::metrics::StsOutcome::Success),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_first_requests_one_assume_role() {
    init_env();
    let moto = Moto::start().await;
    let proxy = Proxy::start(moto.addr).await;
    let cache = VendCache::new(
        real_sts(&proxy.url()).await,
        VendConfig::default(),
        VendMetrics::new(),
    );
    let p = pod("shop", "web-0", "web", "uid-web-0");
    let r = role("web", true, None);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (cache, p, r) = (cache.clone(), p.clone(), r.clone());
        tasks.push(tokio::spawn(async move { cache.get(&p, &r).await }));
    }
    let mut keys = std::collections::HashSet::new();
    for t in tasks {
        keys.insert(t.await.unwrap().expect("credentials").access_key_id);
    }
    assert_eq!(keys.len(), 1);
    assert_eq!(
        proxy.requests("AssumeRole").len(),
        1,
        "exactly one AssumeRole reached STS"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_errors_map_to_permanent_or_retryable() {
    init_env();
    let moto = Moto::start().await;
    let proxy = Proxy::start(moto.addr).await;
    let cache = VendCache::new(
        real_sts(&proxy.url()).await,
        VendConfig::default(),
        VendMetrics::new(),
    );
    let r = role("denied", true, None);

    // AccessDenied (403): permanent, negative-cached, no account ID or message in Display.
    proxy.set_rule(|_| {
        Some(Inject {
            status: 403,
            code: "AccessDenied",
            message: "User: arn:aws:sts::123456789012:assumed-role/node/i-0 is not authorized to perform: sts:AssumeRole",
        })
    });
    let p = pod("shop", "a", "a", "uid-a");
    for _ in 0..20 {
        let e = cache.get(&p, &r).await.unwrap_err();
        assert_eq!(
            e,
            VendError::Permanent {
                code: "AccessDenied".into()
            }
        );
        assert!(!e.to_string().contains("123456789012"));
        assert!(!e.to_string().contains("authorized"));
    }
    assert_eq!(proxy.requests("AssumeRole").len(), 1, "negative cache");

    // Throttling (400 Throttling): retryable; the SDK's own 2 attempts, then backoff.
    proxy.set_rule(|_| {
        Some(Inject {
            status: 400,
            code: "Throttling",
            message: "Rate exceeded",
        })
    });
    let p = pod("shop", "b", "b", "uid-b");
    let before = proxy.requests("AssumeRole").len();
    for _ in 0..20 {
        let e = cache.get(&p, &r).await.unwrap_err();
        assert_eq!(
            e,
            VendError::Retryable {
                code: "Throttling".into()
            }
        );
    }
    let throttled_calls = proxy.requests("AssumeRole").len() - before;
    assert!((1..=2).contains(&throttled_calls), "{throttled_calls}");

    // 503 ServiceUnavailable: retryable.
    proxy.set_rule(|_| {
        Some(Inject {
            status: 503,
            code: "ServiceUnavailable",
            message: "try later",
        })
    });
    let e = cache
        .get(&pod("shop", "c", "c", "uid-c"), &r)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        VendError::Retryable {
            code: "ServiceUnavailable".into()
        }
    );

    // RegionDisabledException (403): permanent.
    proxy.set_rule(|_| {
        Some(Inject {
            status: 403,
            code: "RegionDisabledException",
            message: "STS is not activated in this region for account:123456789012",
        })
    });
    let e = cache
        .get(&pod("shop", "d", "d", "uid-d"), &r)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        VendError::Permanent {
            code: "RegionDisabledException".into()
        }
    );

    // Recovery once STS answers again (new pod: no negative cache entry).
    proxy.clear_rule();
    cache
        .get(&pod("shop", "e", "e", "uid-e"), &r)
        .await
        .expect("credentials after errors stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaining_cap_retries_at_one_hour() {
    init_env();
    let moto = Moto::start().await;
    let proxy = Proxy::start(moto.addr).await;
    proxy.set_rule(|req| {
        let d: u32 = req.get("DurationSeconds")?.parse().ok()?;
        (d > 3600).then_some(Inject {
            status: 400,
            code: "ValidationError",
            message: "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
        })
    });
    let cfg = VendConfig {
        session_duration: Duration::from_secs(4 * 3600),
        ..Default::default()
    };
    let cache = VendCache::new(real_sts(&proxy.url()).await, cfg, VendMetrics::new());
    let c = cache
        .get(&pod("shop", "a", "a", "uid-a"), &role("a", true, None))
        .await
        .expect("retried at 3600");
    assert!(left(&c) <= Duration::from_secs(3601));
    cache
        .get(&pod("shop", "b", "b", "uid-b"), &role("b", true, None))
        .await
        .expect("second role");
    let durations: Vec<String> = proxy
        .requests("AssumeRole")
        .iter()
        .map(|r| r.get("DurationSeconds").unwrap_or("").to_string())
        .collect();
    assert_eq!(durations, ["14400", "3600", "3600"]);
}
