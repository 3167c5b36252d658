//! TokenReview (`authentication.k8s.io/v1`) for container-credentials tokens: the projected
//! service account JWT an SDK sends in `Authorization` is validated by the API server.
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::Client;
use kube::api::{Api, PostParams};

/// `status.user.extra` key holding the pod UID of a bound service account token.
pub const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
/// `status.user.extra` key holding the pod name of a bound service account token.
pub const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
/// Longest accepted token, in bytes (projected tokens are ~1 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The identity a valid token asserts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewedToken {
    /// Service account namespace (from `system:serviceaccount:<ns>:<sa>`).
    pub namespace: String,
    /// Service account name.
    pub service_account: String,
    /// Pod name the token is bound to (`extra[authentication.kubernetes.io/pod-name]`).
    pub pod_name: String,
    /// Pod UID the token is bound to (`extra[authentication.kubernetes.io/pod-uid]`).
    pub pod_uid: String,
}

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TokenReviewError {
    /// The API server says the token is invalid (expired, bad signature, deleted pod), or it
    /// is empty/oversized. Permanent: the client must get a new token (4xx).
    #[error("token rejected: {0}")]
    Rejected(String),
    /// The token is valid but not for the expected audience (4xx).
    #[error("token audience does not include {0:?}")]
    WrongAudience(String),
    /// Valid, but not a pod-bound service account token (no pod UID/name, not a service
    /// account user) (4xx).
    #[error("token is not a pod-bound service account token: {0}")]
    NotPodBound(String),
    /// The TokenReview call failed (network, 5xx, RBAC): retryable (5xx).
    #[error("TokenReview failed: {0}")]
    Api(String),
}

/// Validates tokens with the API server's TokenReview.
#[derive(Clone)]
pub struct KubeTokenReviewer {
    client: Client,
}

fn single(extra: &std::collections::BTreeMap<String, Vec<String>>, key: &str) -> Option<String> {
    match extra.get(key).map(Vec::as_slice) {
        Some([v]) if !v.is_empty() => Some(v.clone()),
        _ => None,
    }
}

impl KubeTokenReviewer {
    /// Needs RBAC `create` on `tokenreviews.authentication.k8s.io`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// POST a TokenReview for `token` with `spec.audiences = [audience]` and check the
    /// answer: `status.authenticated`, `audience ∈ status.audiences`, username
    /// `system:serviceaccount:<ns>:<sa>`, exactly one pod UID and pod name in
    /// `status.user.extra`.
    pub async fn review(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<ReviewedToken, TokenReviewError> {
        let token = token.trim();
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(TokenReviewError::Rejected(
                "empty or oversized token".into(),
            ));
        }
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let req = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: Some(vec![audience.to_string()]),
            },
            ..Default::default()
        };
        let resp = api
            .create(&PostParams::default(), &req)
            .await
            .map_err(|e| TokenReviewError::Api(e.to_string()))?;
        interpret(resp, audience)
    }
}

/// Check a TokenReview answer (see [`KubeTokenReviewer::review`]).
pub fn interpret(resp: TokenReview, audience: &str) -> Result<ReviewedToken, TokenReviewError> {
    let status = resp.status.unwrap_or_default();
    if status.authenticated != Some(true) {
        return Err(TokenReviewError::Rejected(
            status.error.unwrap_or_else(|| "not authenticated".into()),
        ));
    }
    let auds = status.audiences.unwrap_or_default();
    if !auds.iter().any(|a| a == audience) {
        return Err(TokenReviewError::WrongAudience(audience.to_string()));
    }
    let user = status.user.unwrap_or_default();
    let username = user.username.unwrap_or_default();
    let rest = username
        .strip_prefix("system:serviceaccount:")
        .ok_or_else(|| TokenReviewError::NotPodBound(format!("user {username:?}")))?;
    let (namespace, service_account) = rest
        .split_once(':')
        .filter(|(n, s)| !n.is_empty() && !s.is_empty() && !s.contains(':'))
        .ok_or_else(|| TokenReviewError::NotPodBound(format!("user {username:?}")))?;
    let extra = user.extra.unwrap_or_default();
    let pod_uid = single(&extra, EXTRA_POD_UID)
        .ok_or_else(|| TokenReviewError::NotPodBound(format!("no {EXTRA_POD_UID}")))?;
    let pod_name = single(&extra, EXTRA_POD_NAME)
        .ok_or_else(|| TokenReviewError::NotPodBound(format!("no {EXTRA_POD_NAME}")))?;
    Ok(ReviewedToken {
        namespace: namespace.to_string(),
        service_account: service_account.to_string(),
        pod_name,
        pod_uid,
    })
}

/// The container-credentials surface validates tokens through TokenReview.
/// `Rejected`/`NotPodBound` → `Invalid` (401), `WrongAudience` → `WrongAudience` (401),
/// `Api` → `Unavailable` (503, retryable).
#[async_trait::async_trait]
impl crate::podidentity::TokenValidator for KubeTokenReviewer {
    async fn validate(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<crate::podidentity::TokenClaims, crate::podidentity::TokenError> {
        use crate::podidentity::{TokenClaims, TokenError};
        match self.review(token, audience).await {
            Ok(r) => Ok(TokenClaims {
                namespace: r.namespace,
                service_account: r.service_account,
                pod_name: r.pod_name,
                pod_uid: r.pod_uid,
            }),
            Err(TokenReviewError::WrongAudience(_)) => Err(TokenError::WrongAudience),
            Err(e @ (TokenReviewError::Rejected(_) | TokenReviewError::NotPodBound(_))) => {
                Err(TokenError::Invalid(e.to_string()))
            }
            Err(e @ TokenReviewError::Api(_)) => Err(TokenError::Unavailable(e.to_string())),
        }
    }
}
