//! TokenReview and Event posting against the fake API server.
mod support;

use podiam::inventory::client_for_url;
use serde_json::json;
use support::fake_apiserver::*;
use support::kube::*;

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
    // The same refusal again is suppressed within the dedupe window.
    assert!(
        !rec.record_refused(&p, Some("arn:aws:iam::1:role/x"), "not allowed")
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
