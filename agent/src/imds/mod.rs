//! EC2 instance metadata service (IMDSv1/v2) as seen by a pod.
//!
//! Submodules: [`path`] (one canonicalisation step before routing and forwarding),
//! [`routes`] (what each path means, the forwarding allow-list), [`token`] (locally minted,
//! pod-bound IMDSv2 tokens), [`upstream`] (the real IMDS), [`mod@format`] (timestamps, ARNs) and
//! `handlers` (the request handling, [`Imds::handle`]).
//!
//! Behaviour (EC2 user guide "instance-metadata-v2-how-it-works", "instancedata-data-retrieval";
//! differences from real IMDS are marked **differs**):
//! - `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` 1..=21600 → 200, body
//!   = token, the TTL echoed in the same response header. Missing/invalid TTL → 400; a PUT
//!   carrying `X-Forwarded-For` → 403; PUT to a dated version's `api/token` → 403; other
//!   methods on the token path → 405.
//! - Any other request carrying `X-aws-ec2-metadata-token`: the token must have been minted
//!   for this pod UID and cgroup, and be unexpired, else 401. Without a token: served
//!   (IMDSv1) unless [`ImdsOptions::v2_required`] → 401.
//! - Only GET and HEAD elsewhere (405 with `Allow: GET, HEAD`).
//! - `meta-data/iam/security-credentials[/]` → the bare role name, no newline. **Differs**: real
//!   IMDS answers the slash-less form with 301 to the slashed one; podiam answers both
//!   directly (as kube2iam does), which every SDK handles. No role → 404.
//! - `…/security-credentials/<role>[/]` → credentials JSON; any other name → 404 without
//!   asking for credentials. `security-credentials-extended/…` adds `AccountId`.
//!   Vending failures: permanent → 404 (the SDK sees "no credentials here", as for a role
//!   that does not trust EC2); retryable → 503.
//! - `meta-data/iam/info` → synthesised `{Code, LastUpdated, InstanceProfileArn,
//!   InstanceProfileId}` for the pod's role (ARN = role ARN with `role/` replaced by
//!   `instance-profile/`, id = `AIPA` + 17 characters derived from a SHA-256 of the role ARN);
//!   **differs**: 404 when the pod has no role (real IMDS has no `iam/` at all then).
//! - `meta-data/iam/` → `info\nsecurity-credentials/` when the pod has a role, else 404.
//! - Everything else: forwarded to the real IMDS only if allow-listed
//!   ([`routes::DEFAULT_ALLOW_LIST`]); `user-data`, `identity-credentials/` and any other
//!   `iam/` path are never forwarded; other paths → 404. The query string is dropped and not
//!   forwarded. Upstream failures → 502, upstream 404 → 404, no upstream text is relayed for
//!   errors.
//! - Callers that cannot be identified: 403 (no origin record / peer mismatch) or 503 (pod
//!   not known yet / lookup failure); never another identity.
pub mod format;
mod handlers;
pub mod path;
pub mod routes;
pub mod token;
pub mod upstream;

use std::sync::Arc;
use std::time::SystemTime;

use crate::metrics::Metrics;
use crate::policy::RoleResolver;
use crate::vend::CredentialSource;

pub use handlers::{Handled, TOKEN_HEADER, TTL_HEADER, identity_status};
pub use token::TokenMinter;
pub use upstream::{
    DEFAULT_IMDS_ENDPOINT, HttpImdsUpstream, ImdsUpstream, UpstreamError, UpstreamResponse,
};

/// A wall clock, injectable for tests (`SystemTime::now` in production).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The system clock as a [`Clock`].
pub fn system_clock() -> Clock {
    Arc::new(SystemTime::now)
}

/// IMDS behaviour switches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImdsOptions {
    /// Refuse requests without an IMDSv2 token (401), like `HttpTokens=required`. Default
    /// `false` (IMDSv1 allowed, as most SDKs fall back to it).
    pub v2_required: bool,
    /// Paths forwarded to the real IMDS, relative to the version segment, `/`-separated,
    /// matched exactly (e.g. `meta-data/placement/region`). Default
    /// [`routes::DEFAULT_ALLOW_LIST`].
    pub allow_list: Vec<String>,
}

impl Default for ImdsOptions {
    fn default() -> Self {
        Self {
            v2_required: false,
            allow_list: routes::DEFAULT_ALLOW_LIST
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }
}

/// The IMDS surface: options plus the services it needs.
pub struct Imds {
    /// Behaviour switches.
    pub options: ImdsOptions,
    /// IMDSv2 token minter (random key per agent start).
    pub minter: TokenMinter,
    /// Role resolution for the calling pod.
    pub roles: Arc<dyn RoleResolver>,
    /// Credential vending.
    pub credentials: Arc<dyn CredentialSource>,
    /// The real IMDS, for allow-listed paths.
    pub upstream: Arc<dyn ImdsUpstream>,
    /// Wall clock (token expiry, `LastUpdated` of `iam/info`).
    pub clock: Clock,
    /// Where `podiam_imds_upstream_requests_total` is counted.
    pub metrics: Arc<Metrics>,
}
