//! [`PolicyConfig`]: the role-resolution settings (kube2iam flag names where they match).
use super::arn::{ArnError, normalise_base_arn, role_arn_from};

/// Pod annotation naming the role (kube2iam `--iam-role-key`).
pub const DEFAULT_IAM_ROLE_KEY: &str = "iam.amazonaws.com/role";
/// Pod annotation carrying the `ExternalId` (kube2iam `--iam-external-id`).
pub const DEFAULT_IAM_EXTERNAL_ID_KEY: &str = "iam.amazonaws.com/external-id";
/// Namespace annotation listing allowed roles (kube2iam `--namespace-key`).
pub const DEFAULT_NAMESPACE_KEY: &str = "iam.amazonaws.com/allowed-roles";
/// Service account annotation of IRSA.
pub const SA_ROLE_ARN_KEY: &str = "eks.amazonaws.com/role-arn";

/// How namespace-restriction patterns are interpreted (`--namespace-restriction-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RestrictionFormat {
    /// Shell-style glob: `*` matches any run of characters (including `/`), `?` one
    /// character, `[..]` a class, `{a,b}` alternatives.
    #[default]
    Glob,
    /// Rust `regex` syntax.
    Regexp,
}

impl std::str::FromStr for RestrictionFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "glob" => Ok(Self::Glob),
            "regexp" | "regex" => Ok(Self::Regexp),
            other => Err(format!(
                "unknown namespace restriction format {other:?} (glob|regexp)"
            )),
        }
    }
}

/// Which resolution steps are enabled (each can be switched off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicySteps {
    /// 1. `PodIdentityAssociation` (namespace, service account) → role.
    pub associations: bool,
    /// 2. Service account annotation `eks.amazonaws.com/role-arn`.
    pub sa_annotation: bool,
    /// 3. Pod annotation (`iam_role_key`).
    pub pod_annotation: bool,
    /// 4. `default_role` (also needs `PolicyConfig::default_role`).
    pub default_role: bool,
}

impl Default for PolicySteps {
    fn default() -> Self {
        Self {
            associations: true,
            sa_annotation: true,
            pod_annotation: true,
            default_role: true,
        }
    }
}

/// Role-resolution settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyConfig {
    /// `--base-role-arn`: prefix for role names that are not full ARNs
    /// (`arn:aws:iam::123456789012:role/` or with a path). `None`: only full ARNs.
    pub base_role_arn: Option<String>,
    /// `--default-role`: name (relative to the base ARN) or full ARN; `None` (the default)
    /// means no fallback role.
    pub default_role: Option<String>,
    /// `--iam-role-key`.
    pub iam_role_key: String,
    /// `--iam-external-id`.
    pub iam_external_id_key: String,
    /// `--namespace-restrictions`: restrict pod-annotation and default roles to the
    /// namespace's allow-list.
    pub namespace_restrictions: bool,
    /// `--namespace-key`: namespace annotation with a JSON array of patterns.
    pub namespace_key: String,
    /// `--namespace-restriction-format`.
    pub restriction_format: RestrictionFormat,
    /// Step switches.
    pub steps: PolicySteps,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            base_role_arn: None,
            default_role: None,
            iam_role_key: DEFAULT_IAM_ROLE_KEY.to_string(),
            iam_external_id_key: DEFAULT_IAM_EXTERNAL_ID_KEY.to_string(),
            namespace_restrictions: false,
            namespace_key: DEFAULT_NAMESPACE_KEY.to_string(),
            restriction_format: RestrictionFormat::Glob,
            steps: PolicySteps::default(),
        }
    }
}

impl PolicyConfig {
    /// Check the base ARN and the default role (at start-up, to fail fast on typos).
    /// Returns the normalised base ARN (with trailing `/`).
    pub fn validate(&self) -> Result<Option<String>, ArnError> {
        let base = self
            .base_role_arn
            .as_deref()
            .map(normalise_base_arn)
            .transpose()?;
        if let Some(d) = &self.default_role {
            role_arn_from(d, base.as_deref())?;
        }
        Ok(base)
    }
}
