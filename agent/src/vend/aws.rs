//! [`AwsSts`]: the real [`Sts`] over aws-sdk-sts `AssumeRole`, signed with the agent's own
//! credentials from aws-config's default chain (env, profile, web identity, container
//! credentials, IMDS — the node role in production).
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_sdk_sts::config::Region;
use aws_sdk_sts::config::retry::RetryConfig;
use aws_sdk_sts::config::timeout::TimeoutConfig;
use aws_sdk_sts::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::RequestId;
use aws_sdk_sts::operation::assume_role::AssumeRoleError;

use super::Credentials;
use super::error::StsError;
use super::sts::{AssumeRoleRequest, Sts, account_from_arn};

/// Region that selects the global STS endpoint `https://sts.amazonaws.com` (signing region
/// `us-east-1`) in the STS endpoint rules.
pub const GLOBAL_REGION: &str = "aws-global";

/// How to reach STS.
#[derive(Clone, Debug)]
pub struct StsClientConfig {
    /// Region (e.g. `us-east-1`); `None` = from aws-config's chain (`AWS_REGION`, profile,
    /// IMDS `placement/region`).
    pub region: Option<String>,
    /// Endpoint override (e.g. `http://127.0.0.1:5000` for moto); `None` = resolved from
    /// the region.
    pub endpoint_url: Option<String>,
    /// `--use-regional-sts-endpoint` (kube2iam name; default `true` here): use
    /// `sts.<region>.amazonaws.com`. `false` = the global endpoint (ignored with `endpoint_url`).
    pub use_regional_endpoint: bool,
    /// Per-attempt timeout (default 3 s).
    pub attempt_timeout: Duration,
    /// Whole-operation timeout including SDK retries (default 10 s).
    pub operation_timeout: Duration,
    /// SDK attempts per call (default 2; the cache adds its own backoff on top).
    pub max_attempts: u32,
}

impl Default for StsClientConfig {
    fn default() -> Self {
        StsClientConfig {
            region: None,
            endpoint_url: None,
            use_regional_endpoint: true,
            attempt_timeout: Duration::from_secs(3),
            operation_timeout: Duration::from_secs(10),
            max_attempts: 2,
        }
    }
}

/// Why the STS client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StsSetupError {
    /// No region configured and none found by aws-config (set `AWS_REGION`).
    #[error("no AWS region configured for STS (set AWS_REGION or --region)")]
    NoRegion,
}

/// The real [`Sts`]: aws-sdk-sts `AssumeRole`.
#[derive(Clone, Debug)]
pub struct AwsSts {
    client: aws_sdk_sts::Client,
    region: String,
}

impl AwsSts {
    /// Loads the agent's own credentials and region with aws-config's default chain
    /// (`BehaviorVersion::latest()`) and builds the client.
    ///
    /// Errors: [`StsSetupError::NoRegion`] if neither `cfg.region` nor the chain gives one.
    pub async fn from_default_chain(cfg: &StsClientConfig) -> Result<Self, StsSetupError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &cfg.region {
            loader = loader.region(Region::new(region.clone()));
        }
        let sdk = loader.load().await;
        Self::from_sdk_config(&sdk, cfg)
    }

    /// Builds the client from an already loaded `SdkConfig` (credentials, HTTP client);
    /// `cfg` overrides region, endpoint, timeouts and retries.
    pub fn from_sdk_config(
        sdk: &aws_config::SdkConfig,
        cfg: &StsClientConfig,
    ) -> Result<Self, StsSetupError> {
        let region = cfg
            .region
            .clone()
            .or_else(|| sdk.region().map(|r| r.to_string()))
            .ok_or(StsSetupError::NoRegion)?;
        let mut builder = aws_sdk_sts::config::Builder::from(sdk)
            .retry_config(RetryConfig::standard().with_max_attempts(cfg.max_attempts.max(1)))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(cfg.attempt_timeout)
                    .operation_timeout(cfg.operation_timeout)
                    .build(),
            );
        let signing_region = if cfg.use_regional_endpoint || cfg.endpoint_url.is_some() {
            region.clone()
        } else {
            GLOBAL_REGION.to_string()
        };
        builder = builder.region(Region::new(signing_region));
        if let Some(url) = &cfg.endpoint_url {
            builder = builder.endpoint_url(url.clone());
        }
        Ok(AwsSts {
            client: aws_sdk_sts::Client::from_conf(builder.build()),
            region,
        })
    }

    /// The configured region (not `aws-global`).
    pub fn region(&self) -> &str {
        &self.region
    }
}

/// Maps an aws-sdk-sts failure to an [`StsError`] (code, HTTP status, request id, message).
fn map_sdk_error(err: SdkError<AssumeRoleError>) -> StsError {
    let request_id = err.request_id().map(str::to_string);
    match &err {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let e = se.err();
            StsError::from_response(
                e.code(),
                Some(status),
                request_id,
                e.message().map(str::to_string),
            )
        }
        SdkError::TimeoutError(_) => StsError::transport("Timeout", None),
        SdkError::DispatchFailure(d) => {
            let code = if d.is_timeout() {
                "Timeout"
            } else {
                "DispatchFailure"
            };
            StsError::transport(code, Some(DisplayErrorContext(&err).to_string()))
        }
        SdkError::ResponseError(r) => {
            let status = r.raw().status().as_u16();
            let mut e =
                StsError::transport("ResponseError", Some(DisplayErrorContext(&err).to_string()));
            e.http_status = Some(status);
            e.request_id = request_id;
            e
        }
        SdkError::ConstructionFailure(_) => StsError::transport(
            "ConstructionFailure",
            Some(DisplayErrorContext(&err).to_string()),
        ),
        _ => StsError::transport("Unknown", Some(DisplayErrorContext(&err).to_string())),
    }
}

#[async_trait::async_trait]
impl Sts for AwsSts {
    async fn assume_role(&self, req: &AssumeRoleRequest) -> Result<Credentials, StsError> {
        let mut call = self
            .client
            .assume_role()
            .role_arn(&req.role_arn)
            .role_session_name(&req.session_name)
            .duration_seconds(i32::try_from(req.duration_seconds).unwrap_or(i32::MAX))
            .set_external_id(req.external_id.clone());
        for tag in &req.tags {
            let tag = aws_sdk_sts::types::Tag::builder()
                .key(&tag.key)
                .value(&tag.value)
                .build()
                .map_err(|e| StsError::transport("ConstructionFailure", Some(e.to_string())))?;
            call = call.tags(tag);
        }
        for key in &req.transitive_tag_keys {
            call = call.transitive_tag_keys(key);
        }
        let now = SystemTime::now();
        let out = call.send().await.map_err(map_sdk_error)?;
        let creds = out
            .credentials()
            .ok_or_else(|| StsError::transport("InvalidResponse", Some("no Credentials".into())))?;
        let expiration = SystemTime::try_from(*creds.expiration()).map_err(|e| {
            StsError::transport("InvalidResponse", Some(format!("bad Expiration: {e}")))
        })?;
        let account_id = out
            .assumed_role_user()
            .and_then(|u| account_from_arn(u.arn()))
            .or_else(|| account_from_arn(&req.role_arn));
        Ok(Credentials {
            access_key_id: creds.access_key_id().to_string(),
            secret_access_key: creds.secret_access_key().to_string(),
            session_token: creds.session_token().to_string(),
            expiration,
            account_id,
            last_updated: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sts::config::endpoint::{Params, ResolveEndpoint};

    async fn resolve(region: &str) -> String {
        let params = Params::builder()
            .region(region.to_string())
            .use_fips(false)
            .use_dual_stack(false)
            .use_global_endpoint(false)
            .build()
            .expect("params");
        let ep = aws_sdk_sts::config::endpoint::DefaultResolver::new()
            .resolve_endpoint(&params)
            .await
            .expect("endpoint");
        ep.url().to_string()
    }

    #[tokio::test]
    async fn regional_and_global_endpoints() {
        assert_eq!(
            resolve("eu-west-1").await,
            "https://sts.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            resolve("us-east-1").await,
            "https://sts.us-east-1.amazonaws.com"
        );
        assert_eq!(resolve(GLOBAL_REGION).await, "https://sts.amazonaws.com");
    }

    #[test]
    fn region_required() {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .build();
        let err = AwsSts::from_sdk_config(&sdk, &StsClientConfig::default()).unwrap_err();
        assert!(matches!(err, StsSetupError::NoRegion));
        let ok = AwsSts::from_sdk_config(
            &sdk,
            &StsClientConfig {
                region: Some("eu-west-1".into()),
                use_regional_endpoint: false,
                ..Default::default()
            },
        )
        .expect("client");
        assert_eq!(ok.region(), "eu-west-1");
    }
}
