//! Role resolution: which IAM role a caller gets, and why.
//!
//! - [`PolicyResolver`] ([`resolver`]) implements [`RoleResolver`] over an
//!   [`Inventory`](crate::inventory::Inventory) with a [`PolicyConfig`].
//! - [`arn`]: role ARN parsing and base-ARN normalisation.
//! - [`restrictions`]: namespace allow-lists (glob or regexp, anchored).
//! - [`events`]: Kubernetes Events for refused roles.
use crate::identity::Caller;

pub mod arn;
pub mod config;
pub mod events;
pub mod resolver;
pub mod restrictions;
#[cfg(test)]
mod tests;

pub use config::{PolicyConfig, PolicySteps, RestrictionFormat};
pub use events::{EventRecorder, refused_role_event};
pub use resolver::{PolicyResolver, decision_reason};

/// Which rule produced a role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoleSource {
    /// A `PodIdentityAssociation` (namespace, service account) → role.
    Association,
    /// Service account annotation `eks.amazonaws.com/role-arn` (IRSA-compatible).
    ServiceAccountAnnotation,
    /// Pod annotation `iam.amazonaws.com/role` (kube2iam).
    PodAnnotation,
    /// `--default-role`.
    DefaultRole,
    /// A workload entry of the static inventory file.
    StaticFile,
}

/// A role to assume for a caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleSpec {
    /// Full role ARN, e.g. `arn:aws:iam::123456789012:role/path/name`.
    pub arn: String,
    /// `ExternalId` to pass to AssumeRole.
    pub external_id: Option<String>,
    /// Attach the EKS-Pod-Identity-style session tags.
    pub session_tags: bool,
    /// The rule that chose this role.
    pub source: RoleSource,
}

impl RoleSpec {
    /// The role name: the last `/`-separated segment of the ARN's resource
    /// (`arn:aws:iam::1:role/path/name` → `name`). This is what IMDS lists.
    pub fn name(&self) -> &str {
        self.arn.rsplit('/').next().unwrap_or(&self.arn)
    }
}

/// The outcome of role resolution, with its reason (for logs, metrics and Events).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoleDecision {
    /// The caller gets this role.
    Role(RoleSpec),
    /// The caller has no role mapped (→ IMDS 404).
    NoRole {
        /// Why (no step matched, or the step that matched holds an invalid value).
        reason: String,
    },
    /// A mapping exists but policy refuses it (namespace restriction).
    Denied {
        /// The refused role ARN.
        arn: String,
        /// The step and the restriction that refused it.
        reason: String,
    },
}

/// Resolves a caller's role. A changed mapping takes effect on the next call.
#[async_trait::async_trait]
pub trait RoleResolver: Send + Sync {
    /// Decide `caller`'s role; never fails — refusals are [`RoleDecision`]s with reasons.
    async fn resolve_role(&self, caller: &Caller) -> RoleDecision;
}
