//! Role resolution over the Kubernetes inventory: changes made in the (fake) API server take
//! effect on the next resolution.
mod support;

use podiam::inventory::Inventory;
use podiam::policy::{RoleDecision, RoleResolver, RoleSource};
use support::fake_apiserver::*;
use support::kube::*;

#[tokio::test]
async fn associations_and_sa_annotations_drive_resolution() {
    let srv = FakeApiServer::start().await;
    seed(&srv);
    let inv = setup(&srv).await;
    let p = inv.pod_by_uid(UID1).expect("pod on this node");
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
