//! [`PolicyResolver`]: the ordered role-resolution rules over an [`Inventory`].
use std::sync::Arc;

use super::arn::{ArnError, parse_role_arn, role_arn_from};
use super::config::{PolicyConfig, SA_ROLE_ARN_KEY};
use super::restrictions::Restrictions;
use super::{RoleDecision, RoleResolver, RoleSource, RoleSpec};
use crate::identity::Caller;
use crate::inventory::{Inventory, PodInfo};

/// Resolves roles, first match wins:
/// 0. a static-file workload's own `roleArn` ([`RoleSource::StaticFile`]);
/// 1. `PodIdentityAssociation` for (namespace, service account) — session tags on unless
///    `disableSessionTags`;
/// 2. service account annotation `eks.amazonaws.com/role-arn` — session tags on;
/// 3. pod annotation `iam_role_key` (name relative to the base ARN, or full ARN; external ID
///    from `iam_external_id_key`) — session tags off;
/// 4. `default_role` — session tags off.
///
/// With `namespace_restrictions`, steps 3 and 4 (the default role included, unlike kube2iam)
/// must match the namespace allow-list anchored against the full ARN, else
/// [`RoleDecision::Denied`]. A present but invalid value at any step stops resolution with
/// [`RoleDecision::NoRole`] (never falls through to a broader role).
pub struct PolicyResolver {
    inventory: Arc<dyn Inventory>,
    config: PolicyConfig,
    base: Option<String>,
    restrictions: Restrictions,
}

impl PolicyResolver {
    /// Validates `config` ([`PolicyConfig::validate`]): a malformed base ARN or default role
    /// is an error.
    pub fn new(inventory: Arc<dyn Inventory>, config: PolicyConfig) -> Result<Self, ArnError> {
        let base = config.validate()?;
        let restrictions = Restrictions::new(
            &config.namespace_key,
            config.restriction_format,
            base.clone(),
        );
        Ok(Self {
            inventory,
            config,
            base,
            restrictions,
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    fn restricted(&self, pod: &PodInfo, spec: RoleSpec, step: &str) -> RoleDecision {
        if !self.config.namespace_restrictions {
            return RoleDecision::Role(spec);
        }
        let ann = self.inventory.namespace_annotations(&pod.namespace);
        match self
            .restrictions
            .check(&pod.namespace, ann.as_ref(), &spec.arn)
        {
            Ok(why) => {
                tracing::debug!(pod = %pod.name, ns = %pod.namespace, arn = %spec.arn, step, "{why}");
                RoleDecision::Role(spec)
            }
            Err(reason) => RoleDecision::Denied {
                arn: spec.arn,
                reason: format!("{step}: {reason}"),
            },
        }
    }

    /// Decide the role of `pod` (the pure rule evaluation behind [`RoleResolver`]).
    pub fn decide(&self, pod: &PodInfo) -> RoleDecision {
        let (ns, sa) = (pod.namespace.as_str(), pod.service_account.as_str());
        if let Some(spec) = self.inventory.workload_role(&pod.uid) {
            return RoleDecision::Role(spec);
        }
        let steps = self.config.steps;
        if steps.associations
            && let Some(a) = self.inventory.association(ns, sa)
        {
            let arn = a.role_arn.trim();
            if let Err(e) = parse_role_arn(arn) {
                return RoleDecision::NoRole {
                    reason: format!("association {} for {ns}/{sa}: {e}", a.name),
                };
            }
            return RoleDecision::Role(RoleSpec {
                arn: arn.to_string(),
                external_id: a.external_id.clone().filter(|s| !s.trim().is_empty()),
                session_tags: !a.disable_session_tags,
                source: RoleSource::Association,
            });
        }
        if steps.sa_annotation {
            let sa_arn = self
                .inventory
                .service_account_annotations(ns, sa)
                .and_then(|a| a.get(SA_ROLE_ARN_KEY).map(|v| v.trim().to_string()))
                .filter(|v| !v.is_empty());
            if let Some(v) = sa_arn {
                if let Err(e) = parse_role_arn(&v) {
                    return RoleDecision::NoRole {
                        reason: format!(
                            "service account {ns}/{sa} annotation {SA_ROLE_ARN_KEY}: {e}"
                        ),
                    };
                }
                return RoleDecision::Role(RoleSpec {
                    arn: v,
                    external_id: None,
                    session_tags: true,
                    source: RoleSource::ServiceAccountAnnotation,
                });
            }
        }
        if steps.pod_annotation {
            let key = &self.config.iam_role_key;
            if let Some(v) = pod.annotations.get(key).filter(|v| !v.trim().is_empty()) {
                let arn = match role_arn_from(v, self.base.as_deref()) {
                    Ok(a) => a,
                    Err(e) => {
                        return RoleDecision::NoRole {
                            reason: format!("pod {ns}/{} annotation {key}: {e}", pod.name),
                        };
                    }
                };
                let external_id = pod
                    .annotations
                    .get(&self.config.iam_external_id_key)
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty());
                let spec = RoleSpec {
                    arn,
                    external_id,
                    session_tags: false,
                    source: RoleSource::PodAnnotation,
                };
                return self.restricted(pod, spec, &format!("pod annotation {key}"));
            }
        }
        if steps.default_role
            && let Some(d) = &self.config.default_role
        {
            return match role_arn_from(d, self.base.as_deref()) {
                Ok(arn) => {
                    let spec = RoleSpec {
                        arn,
                        external_id: None,
                        session_tags: false,
                        source: RoleSource::DefaultRole,
                    };
                    self.restricted(pod, spec, "default role")
                }
                Err(e) => RoleDecision::NoRole {
                    reason: format!("default role: {e}"),
                },
            };
        }
        RoleDecision::NoRole {
            reason: format!(
                "no role for pod {ns}/{} (service account {sa}): no enabled step matched \
                 (association, service account annotation {SA_ROLE_ARN_KEY}, pod annotation {}, default role)",
                pod.name, self.config.iam_role_key
            ),
        }
    }
}

/// A one-line reason for a decision (for logs and metrics): the role and the step, or why
/// none.
pub fn decision_reason(d: &RoleDecision) -> String {
    match d {
        RoleDecision::Role(s) => {
            let step = match s.source {
                RoleSource::Association => "PodIdentityAssociation",
                RoleSource::ServiceAccountAnnotation => "service account annotation",
                RoleSource::PodAnnotation => "pod annotation",
                RoleSource::DefaultRole => "default role",
                RoleSource::StaticFile => "static file",
            };
            format!("role {} from {step}", s.arn)
        }
        RoleDecision::NoRole { reason } => reason.clone(),
        RoleDecision::Denied { arn, reason } => format!("role {arn} denied: {reason}"),
    }
}

#[async_trait::async_trait]
impl RoleResolver for PolicyResolver {
    async fn resolve_role(&self, caller: &Caller) -> RoleDecision {
        // Prefer the inventory's current view of the pod (annotations may have changed since
        // the caller was identified).
        let fresh = self.inventory.pod_by_uid(&caller.pod.uid);
        let pod = fresh.as_deref().unwrap_or(&caller.pod);
        let d = self.decide(pod);
        tracing::debug!(pod = %pod.name, ns = %pod.namespace, decision = %decision_reason(&d), "role resolved");
        d
    }
}
