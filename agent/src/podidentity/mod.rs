//! Container credentials (`GET /v1/credentials`), the EKS Pod Identity protocol.
//!
//! An SDK with `AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.23/v1/credentials` and
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` sends `GET /v1/credentials` with the raw
//! service-account JWT (audience `pods.eks.amazonaws.com`) in `Authorization` (no `Bearer`).
//! Rules (eks-pod-identity-agent `internal/validation/request.go`, protocols.md §2):
//! - only `GET`/`HEAD` (else 405);
//! - `Host` must be one of [`PodIdentityOptions::allowed_hosts`] (default `169.254.170.23`,
//!   `[fd00:ec2::23]`, each optionally with `:80`), else 403;
//! - `Authorization` present, a single value, three non-empty base64url segments, else 400;
//! - the token is validated by a [`TokenValidator`] (TokenReview or JWKS, audience): invalid,
//!   expired or wrong audience → 401; it must name the calling pod
//!   (`claims.pod_uid == caller.pod.uid`), else 403;
//! - no role → 404, role denied or permanent vending error → 403, retryable vending or
//!   validation-backend errors → 503.
//!
//! Success: `200` JSON `{"AccessKeyId","SecretAccessKey","Token","AccountId","Expiration"}`
//! (`Expiration` as `YYYY-MM-DDTHH:MM:SSZ`; `AccountId` from the credentials or the role ARN,
//! omitted if neither has one). Errors: JSON `{"code": "...", "message": "..."}` — the shape
//! the Go v2 and Rust SDKs parse — with fixed messages: no account IDs, node names or
//! upstream text.
mod handler;
pub mod hs256;

pub use handler::{PodIdentity, error as error_response, identity_error};
pub use hs256::Hs256TokenValidator;

/// Default audience expected in container-credentials tokens.
pub const DEFAULT_AUDIENCE: &str = "pods.eks.amazonaws.com";

/// Default allowed `Host` values (port `:80` is also accepted on each).
pub const DEFAULT_ALLOWED_HOSTS: &[&str] = &["169.254.170.23", "[fd00:ec2::23]"];

/// Container-credentials behaviour switches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodIdentityOptions {
    /// Audience the service-account token must carry. Default [`DEFAULT_AUDIENCE`].
    pub audience: String,
    /// Accepted `Host` header values, compared case-insensitively, each also accepted with
    /// `:80`. Default [`DEFAULT_ALLOWED_HOSTS`]; widen only for loopback testing.
    pub allowed_hosts: Vec<String>,
}

impl Default for PodIdentityOptions {
    fn default() -> Self {
        Self {
            audience: DEFAULT_AUDIENCE.to_owned(),
            allowed_hosts: DEFAULT_ALLOWED_HOSTS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }
}

/// The identity a validated service-account token vouches for (the `kubernetes.io` claims
/// of a bound projected token, or TokenReview's `status.user.extra`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenClaims {
    /// Namespace of the service account (`kubernetes.io.namespace`).
    pub namespace: String,
    /// Service account name (`kubernetes.io.serviceaccount.name`).
    pub service_account: String,
    /// Name of the pod the token is bound to (`kubernetes.io.pod.name`).
    pub pod_name: String,
    /// UID of the pod the token is bound to (`kubernetes.io.pod.uid`); empty if the token is
    /// not pod-bound, which the handler refuses.
    pub pod_uid: String,
}

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Signature, issuer or format invalid, or not authenticated by the API server → 401.
    #[error("token invalid: {0}")]
    Invalid(String),
    /// `exp` has passed (or `nbf` not reached) → 401.
    #[error("token expired")]
    Expired,
    /// The token's audiences do not include the expected one → 401.
    #[error("token audience mismatch")]
    WrongAudience,
    /// The validation backend (TokenReview, JWKS fetch) failed; retrying may help → 503.
    #[error("token validation unavailable: {0}")]
    Unavailable(String),
}

/// Validates container-credentials tokens (implemented by the identity module with
/// TokenReview).
#[async_trait::async_trait]
pub trait TokenValidator: Send + Sync {
    /// Validates `token` (the raw JWT as sent in `Authorization`) for `audience`.
    async fn validate(&self, token: &str, audience: &str) -> Result<TokenClaims, TokenError>;
}

/// Checks the shape of a JWT: three non-empty `.`-separated base64url (no padding) segments.
pub fn looks_like_jwt(token: &str) -> bool {
    let mut n = 0;
    for seg in token.split('.') {
        n += 1;
        if seg.is_empty()
            || !seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return false;
        }
    }
    n == 3
}

/// Whether `host` (a `Host` header value) is one of `allowed` (case-insensitive, with an
/// optional `:80` suffix).
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.trim();
    let bare = host.strip_suffix(":80").unwrap_or(host);
    allowed.iter().any(|a| a.eq_ignore_ascii_case(bare))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt(
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln-_"
        ));
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "a..c",
            "Bearer a.b.c",
            "a.b.c=",
            "a.b.c\n",
            "a.b.c ",
        ] {
            assert!(!looks_like_jwt(bad), "{bad:?}");
        }
    }

    #[test]
    fn hosts() {
        let allowed = PodIdentityOptions::default().allowed_hosts;
        for ok in [
            "169.254.170.23",
            "169.254.170.23:80",
            "[fd00:ec2::23]",
            "[FD00:EC2::23]:80",
        ] {
            assert!(host_allowed(ok, &allowed), "{ok}");
        }
        for bad in [
            "169.254.170.23:8080",
            "127.0.0.1",
            "evil",
            "",
            "169.254.170.2",
            "fd00:ec2::23",
        ] {
            assert!(!host_allowed(bad, &allowed), "{bad}");
        }
    }
}
