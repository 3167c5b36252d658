//! Role resolution tests: shared table machinery, static roles, config, Events.
use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;

mod restrictions;
mod steps;
use crate::inventory::{Association, MemoryInventory, PodInfo};

pub(super) const BASE: &str = "arn:aws:iam::111111111111:role/";

pub(super) fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn pod(ann: &[(&str, &str)]) -> PodInfo {
    PodInfo {
        uid: "uid-1".into(),
        namespace: "shop".into(),
        name: "web-1".into(),
        service_account: "web".into(),
        ips: vec!["10.0.0.5".parse().unwrap()],
        annotations: map(ann),
        host_network: false,
    }
}

pub(super) fn cfg() -> PolicyConfig {
    PolicyConfig {
        base_role_arn: Some(BASE.into()),
        ..Default::default()
    }
}

pub(super) fn restricted(format: RestrictionFormat) -> PolicyConfig {
    PolicyConfig {
        namespace_restrictions: true,
        restriction_format: format,
        ..cfg()
    }
}

pub(super) fn assoc(arn: &str) -> Association {
    Association {
        name: "shop-web".into(),
        namespace: "shop".into(),
        service_account: "web".into(),
        role_arn: arn.into(),
        external_id: None,
        disable_session_tags: false,
    }
}

/// What a case expects.
#[derive(Debug)]
pub(super) enum Want {
    Role(&'static str, RoleSource, bool, Option<&'static str>),
    NoRole(&'static str),
    Denied(&'static str, &'static str),
}

pub(super) struct Case {
    name: &'static str,
    config: PolicyConfig,
    pod_ann: Vec<(&'static str, &'static str)>,
    sa_ann: Option<Vec<(&'static str, &'static str)>>,
    ns_ann: Option<Vec<(&'static str, &'static str)>>,
    assoc: Option<Association>,
    want: Want,
}

pub(super) fn case(name: &'static str, config: PolicyConfig, want: Want) -> Case {
    Case {
        name,
        config,
        pod_ann: vec![],
        sa_ann: None,
        ns_ann: None,
        assoc: None,
        want,
    }
}

impl Case {
    pub(super) fn pod(mut self, a: &[(&'static str, &'static str)]) -> Self {
        self.pod_ann = a.to_vec();
        self
    }
    pub(super) fn sa(mut self, a: &[(&'static str, &'static str)]) -> Self {
        self.sa_ann = Some(a.to_vec());
        self
    }
    pub(super) fn ns(mut self, a: &[(&'static str, &'static str)]) -> Self {
        self.ns_ann = Some(a.to_vec());
        self
    }
    pub(super) fn assoc(mut self, a: Association) -> Self {
        self.assoc = Some(a);
        self
    }

    pub(super) fn run(&self) {
        let inv = Arc::new(MemoryInventory::new());
        if let Some(a) = &self.sa_ann {
            inv.set_service_account("shop", "web", map(a));
        }
        if let Some(a) = &self.ns_ann {
            inv.set_namespace("shop", map(a));
        }
        if let Some(a) = &self.assoc {
            inv.set_association(a.clone());
        }
        let r = PolicyResolver::new(inv, self.config.clone()).expect("valid config");
        let got = r.decide(&pod(&self.pod_ann));
        let ok = match (&self.want, &got) {
            (Want::Role(arn, src, tags, ext), RoleDecision::Role(s)) => {
                s.arn == *arn
                    && s.source == *src
                    && s.session_tags == *tags
                    && s.external_id.as_deref() == *ext
            }
            (Want::NoRole(frag), RoleDecision::NoRole { reason }) => reason.contains(frag),
            (Want::Denied(arn, frag), RoleDecision::Denied { arn: a, reason }) => {
                a == arn && reason.contains(frag)
            }
            _ => false,
        };
        assert!(
            ok,
            "case {:?}: want {:?}, got {:?}",
            self.name, self.want, got
        );
        // Every decision has a non-empty reason.
        assert!(!decision_reason(&got).is_empty());
    }
}

pub(super) const ROLE: &str = "iam.amazonaws.com/role";
pub(super) const EXT: &str = "iam.amazonaws.com/external-id";
pub(super) const SA: &str = "eks.amazonaws.com/role-arn";
pub(super) const ALLOWED: &str = "iam.amazonaws.com/allowed-roles";

#[test]
fn static_workload_role_wins() {
    let inv = Arc::new(MemoryInventory::new());
    let spec = RoleSpec {
        arn: "arn:aws:iam::111111111111:role/static".into(),
        external_id: None,
        session_tags: false,
        source: RoleSource::StaticFile,
    };
    inv.set_workload_role("uid-1", spec.clone());
    inv.set_association(assoc("arn:aws:iam::111111111111:role/assoc"));
    let r = PolicyResolver::new(inv, cfg()).unwrap();
    assert_eq!(r.decide(&pod(&[(ROLE, "app")])), RoleDecision::Role(spec));
}

#[test]
fn config_errors_fail_fast() {
    let bad_base = PolicyConfig {
        base_role_arn: Some("arn:aws:iam::1:role/".into()),
        ..Default::default()
    };
    assert!(PolicyResolver::new(Arc::new(MemoryInventory::new()), bad_base).is_err());
    let bad_default = PolicyConfig {
        default_role: Some("x".into()),
        ..Default::default()
    };
    assert!(PolicyResolver::new(Arc::new(MemoryInventory::new()), bad_default).is_err());
    assert_eq!(
        "regexp".parse::<RestrictionFormat>(),
        Ok(RestrictionFormat::Regexp)
    );
    assert!("wild".parse::<RestrictionFormat>().is_err());
}

#[tokio::test]
async fn resolve_role_sees_changed_annotation() {
    let inv = Arc::new(MemoryInventory::new());
    let p = inv.upsert_pod(pod(&[(ROLE, "one")]));
    let r = PolicyResolver::new(inv.clone(), cfg()).unwrap();
    let caller = crate::identity::Caller {
        pod: p,
        cgroup_id: Some(1),
        container_id: None,
        peer: "10.0.0.5:1234".parse().unwrap(),
    };
    let RoleDecision::Role(s) = r.resolve_role(&caller).await else {
        panic!()
    };
    assert!(s.arn.ends_with("/one"));
    inv.upsert_pod(pod(&[(ROLE, "two")]));
    let RoleDecision::Role(s) = r.resolve_role(&caller).await else {
        panic!()
    };
    assert!(s.arn.ends_with("/two"));
}

#[test]
fn refused_event_shape() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let p = pod(&[]);
    let now = Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap());
    let ev = refused_role_event(
        &p,
        Some("arn:aws:iam::1:role/x"),
        "not allowed",
        Some("node-a"),
        now,
    );
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    assert_eq!(ev.reason.as_deref(), Some(events::REASON_ROLE_FORBIDDEN));
    assert_eq!(ev.involved_object.kind.as_deref(), Some("Pod"));
    assert_eq!(ev.involved_object.uid.as_deref(), Some("uid-1"));
    assert_eq!(ev.metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(ev.metadata.generate_name.as_deref(), Some("web-1."));
    assert!(ev.message.unwrap().contains("not allowed"));
    let ev = refused_role_event(
        &p,
        None,
        &"x".repeat(5000),
        None,
        Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    );
    assert_eq!(ev.reason.as_deref(), Some(events::REASON_NO_ROLE));
    assert!(ev.message.unwrap().chars().count() <= 1024);
    let json = serde_json::to_value(refused_role_event(
        &p,
        None,
        "r",
        None,
        Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    ))
    .unwrap();
    assert_eq!(json["involvedObject"]["name"], "web-1");
}
