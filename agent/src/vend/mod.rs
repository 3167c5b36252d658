//! Credential vending: STS AssumeRole per pod session, cached and refreshed ahead of expiry.
use std::time::SystemTime;

use crate::identity::Caller;
use crate::policy::RoleSpec;

/// Temporary credentials for one pod session.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// Absolute expiry (STS `Expiration`).
    pub expiration: SystemTime,
    /// 12-digit account ID of the assumed role, when known.
    pub account_id: Option<String>,
    /// When these credentials were obtained (IMDS `LastUpdated`).
    pub last_updated: SystemTime,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

/// Why credentials could not be vended.
#[derive(Debug, thiserror::Error)]
pub enum VendError {
    /// Will not succeed on retry (AccessDenied, validation errors): IMDS 404 / container-credentials 403.
    #[error("permanent: {code}")]
    Permanent { code: String },
    /// May succeed later (throttling, STS 5xx, timeouts): HTTP 5xx.
    #[error("retryable: {code}")]
    Retryable { code: String },
}

/// Source of credentials for a (caller, role) pair.
#[async_trait::async_trait]
pub trait CredentialSource: Send + Sync {
    async fn credentials(&self, caller: &Caller, role: &RoleSpec)
    -> Result<Credentials, VendError>;
}
