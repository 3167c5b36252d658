//! The real aws-sdk-sts client's transport failures (no STS at all, an STS that never
//! answers) map to retryable errors with a transport code; nothing leaves loopback.
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sts::config::{BehaviorVersion, Region};
use podiam::inventory::PodInfo;
use podiam::policy::{RoleSource, RoleSpec};
use podiam::vend::{
    AssumeRoleRequest, AwsSts, Sts, StsClientConfig, StsErrorKind, VendCache, VendConfig,
    VendError, VendMetrics,
};

fn sdk_config() -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
            aws_credential_types::Credentials::new("testing", "testing", None, None, "static"),
        ))
        .build()
}

fn client(endpoint: String) -> AwsSts {
    AwsSts::from_sdk_config(
        &sdk_config(),
        &StsClientConfig {
            endpoint_url: Some(endpoint),
            attempt_timeout: Duration::from_millis(300),
            operation_timeout: Duration::from_secs(2),
            max_attempts: 1,
            ..Default::default()
        },
    )
    .expect("client")
}

fn request() -> AssumeRoleRequest {
    AssumeRoleRequest {
        role_arn: "arn:aws:iam::123456789012:role/r".into(),
        session_name: "ns@pod".into(),
        external_id: None,
        duration_seconds: 3600,
        tags: vec![],
        transitive_tag_keys: vec![],
    }
}

#[tokio::test]
async fn connection_refused_is_retryable_dispatch_failure() {
    // Bind then drop: nothing listens on this loopback port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let sts = client(format!("http://127.0.0.1:{port}"));
    let e = sts.assume_role(&request()).await.unwrap_err();
    assert_eq!(e.kind, StsErrorKind::Retryable);
    assert_eq!(e.code, "DispatchFailure");
    assert_eq!(
        e.to_vend_error(),
        VendError::Retryable {
            code: "DispatchFailure".into()
        }
    );
}

#[tokio::test]
async fn silent_sts_times_out_as_retryable() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            conns.push(s);
        }
    });
    let sts = Arc::new(client(format!("http://{addr}")));
    let e = sts.assume_role(&request()).await.unwrap_err();
    assert_eq!(e.kind, StsErrorKind::Retryable);
    assert_eq!(e.code, "Timeout");

    // Through the cache: a retryable error for the pod, with the code only.
    let cache = VendCache::new(sts, VendConfig::default(), VendMetrics::new());
    let pod = Arc::new(PodInfo {
        uid: "u1".into(),
        namespace: "ns".into(),
        name: "pod".into(),
        service_account: "default".into(),
        ..Default::default()
    });
    let role = RoleSpec {
        arn: "arn:aws:iam::123456789012:role/r".into(),
        external_id: None,
        session_tags: false,
        source: RoleSource::PodAnnotation,
    };
    let e = cache.get(&pod, &role).await.unwrap_err();
    assert_eq!(
        e,
        VendError::Retryable {
            code: "Timeout".into()
        }
    );
    hold.abort();
}
