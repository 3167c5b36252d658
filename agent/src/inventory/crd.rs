//! The cluster-scoped `PodIdentityAssociation` custom resource (`podiam.io/v1alpha1`):
//! (namespace, service account) → role ARN, owned by cluster admins (the EKS Pod Identity
//! model, without EKS).
//!
//! ```yaml
//! apiVersion: podiam.io/v1alpha1
//! kind: PodIdentityAssociation
//! metadata:
//!   name: shop-web
//! spec:
//!   namespace: shop
//!   serviceAccount: web
//!   roleArn: arn:aws:iam::123456789012:role/shop-web
//!   externalId: optional-external-id   # optional
//!   disableSessionTags: false          # optional
//! ```
use kube::CustomResource;
use kube::core::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Spec of a `PodIdentityAssociation`. JSON field names are camelCase.
// Several `printcolumn(...)` entries legitimately repeat `type_ = "string"`.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "podiam.io",
    version = "v1alpha1",
    kind = "PodIdentityAssociation",
    plural = "podidentityassociations",
    shortname = "pia",
    doc = "Maps a Kubernetes service account to an IAM role assumed by podiam for its pods.",
    printcolumn(name = "Namespace", type_ = "string", json_path = ".spec.namespace"),
    printcolumn(
        name = "ServiceAccount",
        type_ = "string",
        json_path = ".spec.serviceAccount"
    ),
    printcolumn(name = "Role", type_ = "string", json_path = ".spec.roleArn")
)]
#[serde(rename_all = "camelCase")]
pub struct PodIdentityAssociationSpec {
    /// Namespace of the service account.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Name of the service account.
    #[schemars(length(min = 1, max = 253))]
    pub service_account: String,
    /// Full IAM role ARN, e.g. `arn:aws:iam::123456789012:role/path/name` (partitions aws,
    /// aws-cn, aws-us-gov, ...).
    #[schemars(regex(pattern = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$"))]
    pub role_arn: String,
    /// `ExternalId` passed to `sts:AssumeRole` (2–1224 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 1224))]
    pub external_id: Option<String>,
    /// Turn off the EKS-Pod-Identity-style session tags (for roles whose trust policy lacks
    /// `sts:TagSession`). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_session_tags: Option<bool>,
}

/// The header placed above the generated YAML.
const HEADER: &str =
    "# Generated from agent/src/inventory/crd.rs by `cargo xtask gen-crd`; do not edit.\n";

/// Render the `CustomResourceDefinition` of [`PodIdentityAssociation`] as YAML (the content
/// of `deploy/crd/podidentityassociation.yaml`, header comment included).
pub fn crd_yaml() -> String {
    let crd = PodIdentityAssociation::crd();
    // Serialising a CRD (plain maps, strings, bools) cannot fail.
    let body = serde_yaml::to_string(&crd).unwrap_or_default();
    format!("{HEADER}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_is_cluster_scoped_with_schema() {
        let crd = PodIdentityAssociation::crd();
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(crd.spec.group, "podiam.io");
        let y = crd_yaml();
        assert!(y.contains("serviceAccount"), "{y}");
        assert!(y.contains("roleArn"));
        assert!(y.starts_with("# Generated"));
    }

    #[test]
    fn committed_crd_matches_rust_type() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/crd/podidentityassociation.yaml"
        );
        if std::env::var_os("PODIAM_UPDATE_CRD").is_some() {
            std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/crd")).unwrap();
            std::fs::write(path, crd_yaml()).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == crd_yaml(),
            "{path} is out of date; regenerate it with `cargo xtask gen-crd` \
             (or PODIAM_UPDATE_CRD=1 cargo test -p podiam --lib inventory::crd)"
        );
    }
}
