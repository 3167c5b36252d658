//! Credential vending: STS AssumeRole per pod session, cached and refreshed ahead of expiry.
//!
//! Layout:
//! - [`sts`]: the [`Sts`] trait (one `sts:AssumeRole` call) and its request shape;
//!   [`aws`]: the real implementation over aws-sdk-sts ([`AwsSts`]).
//! - [`session`]: role session names and EKS-Pod-Identity-style session tags.
//! - [`error`]: STS failures ([`StsError`]) and their classification into [`VendError`].
//! - [`cache`]: [`VendCache`], the per-(pod UID, role ARN, external ID) session cache that
//!   implements [`CredentialSource`] (background refresh, single-flight, stale-while-failing,
//!   backoff, negative cache, concurrency cap).
//! - [`config`]: [`VendConfig`] (durations and limits); [`clock`]: the injectable [`Clock`];
//!   [`metrics`]: [`VendMetrics`] (Prometheus counters and histograms).
use std::time::SystemTime;

use crate::identity::Caller;
use crate::policy::RoleSpec;

pub mod aws;
pub mod cache;
pub mod clock;
pub mod config;
pub mod error;
pub mod metrics;
pub mod session;
pub mod sts;

pub use aws::{AwsSts, StsClientConfig, StsSetupError};
pub use cache::{SessionKey, VendCache};
pub use clock::{Clock, SystemClock, TokioClock};
pub use config::VendConfig;
pub use error::{StsError, StsErrorKind};
pub use metrics::VendMetrics;
pub use session::{SessionTag, session_name, session_tags};
pub use sts::{AssumeRoleRequest, Sts};

/// Temporary credentials for one pod session.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// STS `AccessKeyId` (`ASIA…`).
    pub access_key_id: String,
    /// STS `SecretAccessKey`.
    pub secret_access_key: String,
    /// STS `SessionToken` (IMDS `Token`).
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
///
/// `code` is an STS error code (e.g. `AccessDenied`, `Throttling`) or one of podiam's own
/// codes (`Timeout`, `DispatchFailure`, `Evicted`, …). It never
/// contains upstream message text or account IDs, so `Display` is safe to show to a pod.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VendError {
    /// Will not succeed on retry (AccessDenied, validation errors): IMDS 404 / container-credentials 403.
    #[error("permanent: {code}")]
    Permanent {
        /// STS error code only (e.g. `AccessDenied`); never upstream message text.
        code: String,
    },
    /// May succeed later (throttling, STS 5xx, timeouts): HTTP 5xx.
    #[error("retryable: {code}")]
    Retryable {
        /// STS error code or a local one (`Throttling`, `Timeout`, …).
        code: String,
    },
}

impl VendError {
    /// The error code (STS code or podiam code), without upstream message text.
    pub fn code(&self) -> &str {
        match self {
            VendError::Permanent { code } | VendError::Retryable { code } => code,
        }
    }

    /// `true` for [`VendError::Retryable`].
    pub fn is_retryable(&self) -> bool {
        matches!(self, VendError::Retryable { .. })
    }
}

/// Source of credentials for a (caller, role) pair.
#[async_trait::async_trait]
pub trait CredentialSource: Send + Sync {
    /// Credentials for `caller` assuming `role`, with at least the configured minimum lifetime left when STS is healthy.
    async fn credentials(&self, caller: &Caller, role: &RoleSpec)
    -> Result<Credentials, VendError>;
}
