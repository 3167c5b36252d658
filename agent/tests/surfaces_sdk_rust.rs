//! The Rust SDK's credential providers (aws-config `ImdsCredentialsProvider` with an endpoint
//! override, and `EcsCredentialsProvider` via `AWS_CONTAINER_CREDENTIALS_FULL_URI`) against the
//! real listener on 127.0.0.1. One test function: the ECS provider reads the process
//! environment, which is set here and read by nothing else in this test binary.
mod surfaces_common;

use aws_config::ecs::EcsCredentialsProvider;
use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_credential_types::provider::ProvideCredentials;
use podiam::server::ServerConfig;
use surfaces_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_imds_and_ecs_providers() {
    let run = start_with(|addr| {
        let mut cfg = ServerConfig::default();
        // Loopback testing only: widen the container-credentials Host set.
        cfg.pod_identity.allowed_hosts.push(addr.to_string());
        cfg.imds.v2_required = true; // aws-config only speaks IMDSv2
        cfg
    })
    .await;

    // IMDS: the Rust client requests a 21600 s token and needs the TTL response header.
    let client = aws_config::imds::Client::builder()
        .endpoint(format!("http://{}", run.addr))
        .unwrap()
        .build();
    let imds = ImdsCredentialsProvider::builder()
        .imds_client(client)
        .build();
    let creds = imds.provide_credentials().await.expect("IMDS credentials");
    assert_eq!(creds.access_key_id(), access_key_for(POD_A_UID));
    assert_eq!(creds.secret_access_key(), format!("secret-{POD_A_UID}"));
    assert_eq!(
        creds.session_token(),
        Some(format!("token-{POD_A_UID}-app-a").as_str())
    );
    assert!(creds.expiry().is_some());

    // Container credentials (EKS Pod Identity protocol).
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("eks-pod-identity-token");
    std::fs::write(&token_file, jwt_for(POD_A_UID)).unwrap();
    // SAFETY: this test binary has a single test; no other thread reads or writes the
    // environment concurrently (the listener tasks never touch it).
    unsafe {
        std::env::set_var(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("http://{}/v1/credentials", run.addr),
        );
        std::env::set_var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_file);
        std::env::remove_var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
        std::env::remove_var("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    }
    let ecs = EcsCredentialsProvider::builder().build();
    let creds = ecs
        .provide_credentials()
        .await
        .expect("container credentials");
    assert_eq!(creds.access_key_id(), access_key_for(POD_A_UID));
    assert_eq!(creds.account_id().map(|a| a.as_str()), Some("111122223333"));

    // Another pod's token is refused with a 4xx, which the Rust provider does not retry.
    std::fs::write(&token_file, jwt_for(POD_B_UID)).unwrap();
    let err = EcsCredentialsProvider::builder()
        .build()
        .provide_credentials()
        .await
        .expect_err("cross-pod token refused");
    let msg = format!("{err:?}");
    assert!(!msg.contains(&access_key_for(POD_B_UID)), "{msg}");
}
