//! Table tests for role resolution.
use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::inventory::{Association, MemoryInventory, PodInfo};

const BASE: &str = "arn:aws:iam::111111111111:role/";

fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn pod(ann: &[(&str, &str)]) -> PodInfo {
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

fn cfg() -> PolicyConfig {
    PolicyConfig {
        base_role_arn: Some(BASE.into()),
        ..Default::default()
    }
}

fn restricted(format: RestrictionFormat) -> PolicyConfig {
    PolicyConfig {
        namespace_restrictions: true,
        restriction_format: format,
        ..cfg()
    }
}

fn assoc(arn: &str) -> Association {
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
enum Want {
    Role(&'static str, RoleSource, bool, Option<&'static str>),
    NoRole(&'static str),
    Denied(&'static str, &'static str),
}

struct Case {
    name: &'static str,
    config: PolicyConfig,
    pod_ann: Vec<(&'static str, &'static str)>,
    sa_ann: Option<Vec<(&'static str, &'static str)>>,
    ns_ann: Option<Vec<(&'static str, &'static str)>>,
    assoc: Option<Association>,
    want: Want,
}

fn case(name: &'static str, config: PolicyConfig, want: Want) -> Case {
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
    fn pod(mut self, a: &[(&'static str, &'static str)]) -> Self {
        self.pod_ann = a.to_vec();
        self
    }
    fn sa(mut self, a: &[(&'static str, &'static str)]) -> Self {
        self.sa_ann = Some(a.to_vec());
        self
    }
    fn ns(mut self, a: &[(&'static str, &'static str)]) -> Self {
        self.ns_ann = Some(a.to_vec());
        self
    }
    fn assoc(mut self, a: Association) -> Self {
        self.assoc = Some(a);
        self
    }

    fn run(&self) {
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

const ROLE: &str = "iam.amazonaws.com/role";
const EXT: &str = "iam.amazonaws.com/external-id";
const SA: &str = "eks.amazonaws.com/role-arn";
const ALLOWED: &str = "iam.amazonaws.com/allowed-roles";

#[test]
fn resolution_table() {
    use RoleSource::*;
    let cases = vec![
        // --- each step on its own ---
        case(
            "association",
            cfg(),
            Want::Role(
                "arn:aws:iam::222222222222:role/assoc",
                Association,
                true,
                None,
            ),
        )
        .assoc(assoc("arn:aws:iam::222222222222:role/assoc")),
        case(
            "association without tags + external id",
            cfg(),
            Want::Role(
                "arn:aws:iam::222222222222:role/a",
                Association,
                false,
                Some("ext-9"),
            ),
        )
        .assoc(crate::inventory::Association {
            disable_session_tags: true,
            external_id: Some("ext-9".into()),
            ..assoc("arn:aws:iam::222222222222:role/a")
        }),
        case(
            "sa annotation",
            cfg(),
            Want::Role(
                "arn:aws:iam::111111111111:role/irsa",
                ServiceAccountAnnotation,
                true,
                None,
            ),
        )
        .sa(&[(SA, "arn:aws:iam::111111111111:role/irsa")]),
        case(
            "pod annotation relative",
            cfg(),
            Want::Role(
                "arn:aws:iam::111111111111:role/app",
                PodAnnotation,
                false,
                None,
            ),
        )
        .pod(&[(ROLE, "app")]),
        case(
            "pod annotation relative with path",
            cfg(),
            Want::Role(
                "arn:aws:iam::111111111111:role/team/app",
                PodAnnotation,
                false,
                None,
            ),
        )
        .pod(&[(ROLE, "team/app")]),
        case(
            "pod annotation full ARN with path",
            cfg(),
            Want::Role(
                "arn:aws:iam::111111111111:role/a/b/app",
                PodAnnotation,
                false,
                None,
            ),
        )
        .pod(&[(ROLE, "arn:aws:iam::111111111111:role/a/b/app")]),
        case(
            "pod annotation cross-account",
            cfg(),
            Want::Role(
                "arn:aws:iam::999999999999:role/x",
                PodAnnotation,
                false,
                None,
            ),
        )
        .pod(&[(ROLE, "arn:aws:iam::999999999999:role/x")]),
        case(
            "GovCloud",
            cfg(),
            Want::Role(
                "arn:aws-us-gov:iam::111111111111:role/gov",
                PodAnnotation,
                false,
                None,
            ),
        )
        .pod(&[(ROLE, "arn:aws-us-gov:iam::111111111111:role/gov")]),
        case(
            "China",
            cfg(),
            Want::Role(
                "arn:aws-cn:iam::111111111111:role/cn",
                ServiceAccountAnnotation,
                true,
                None,
            ),
        )
        .sa(&[(SA, "arn:aws-cn:iam::111111111111:role/cn")]),
        case(
            "whitespace trimmed + external id",
            cfg(),
            Want::Role(
                "arn:aws:iam::111111111111:role/app",
                PodAnnotation,
                false,
                Some("e-1"),
            ),
        )
        .pod(&[(ROLE, "  app\n"), (EXT, " e-1 ")]),
        case(
            "sa whitespace",
            cfg(),
            Want::Role(
                "arn:aws:iam::111111111111:role/irsa",
                ServiceAccountAnnotation,
                true,
                None,
            ),
        )
        .sa(&[(SA, " arn:aws:iam::111111111111:role/irsa\t")]),
        case(
            "default role",
            PolicyConfig {
                default_role: Some("fallback".into()),
                ..cfg()
            },
            Want::Role(
                "arn:aws:iam::111111111111:role/fallback",
                DefaultRole,
                false,
                None,
            ),
        ),
        case("nothing", cfg(), Want::NoRole("no enabled step matched")),
        case(
            "blank annotation is absent",
            cfg(),
            Want::NoRole("no enabled step matched"),
        )
        .pod(&[(ROLE, "  ")]),
        // --- precedence ---
        case(
            "association beats sa and pod",
            cfg(),
            Want::Role(
                "arn:aws:iam::111111111111:role/assoc",
                Association,
                true,
                None,
            ),
        )
        .assoc(assoc("arn:aws:iam::111111111111:role/assoc"))
        .sa(&[(SA, "arn:aws:iam::111111111111:role/irsa")])
        .pod(&[(ROLE, "app")]),
        case(
            "sa beats pod",
            cfg(),
            Want::Role(
                "arn:aws:iam::111111111111:role/irsa",
                ServiceAccountAnnotation,
                true,
                None,
            ),
        )
        .sa(&[(SA, "arn:aws:iam::111111111111:role/irsa")])
        .pod(&[(ROLE, "app")]),
        case(
            "pod beats default",
            PolicyConfig {
                default_role: Some("fallback".into()),
                ..cfg()
            },
            Want::Role(
                "arn:aws:iam::111111111111:role/app",
                PodAnnotation,
                false,
                None,
            ),
        )
        .pod(&[(ROLE, "app")]),
        // --- step switches ---
        case(
            "associations off",
            PolicyConfig {
                steps: PolicySteps {
                    associations: false,
                    ..Default::default()
                },
                ..cfg()
            },
            Want::Role(
                "arn:aws:iam::111111111111:role/irsa",
                ServiceAccountAnnotation,
                true,
                None,
            ),
        )
        .assoc(assoc("arn:aws:iam::111111111111:role/assoc"))
        .sa(&[(SA, "arn:aws:iam::111111111111:role/irsa")]),
        case(
            "sa off",
            PolicyConfig {
                steps: PolicySteps {
                    sa_annotation: false,
                    ..Default::default()
                },
                ..cfg()
            },
            Want::Role(
                "arn:aws:iam::111111111111:role/app",
                PodAnnotation,
                false,
                None,
            ),
        )
        .sa(&[(SA, "arn:aws:iam::111111111111:role/irsa")])
        .pod(&[(ROLE, "app")]),
        case(
            "pod off",
            PolicyConfig {
                steps: PolicySteps {
                    pod_annotation: false,
                    ..Default::default()
                },
                ..cfg()
            },
            Want::NoRole("no enabled step"),
        )
        .pod(&[(ROLE, "app")]),
        case(
            "default off",
            PolicyConfig {
                default_role: Some("fallback".into()),
                steps: PolicySteps {
                    default_role: false,
                    ..Default::default()
                },
                ..cfg()
            },
            Want::NoRole("no enabled step"),
        ),
        // --- invalid values stop resolution (no fall-through to a broader role) ---
        case(
            "bad pod annotation does not fall to default",
            PolicyConfig {
                default_role: Some("fallback".into()),
                ..cfg()
            },
            Want::NoRole("not an IAM role ARN"),
        )
        .pod(&[(ROLE, "arn:aws:iam::1:role/x")]),
        case(
            "relative without base",
            PolicyConfig::default(),
            Want::NoRole("no base role ARN"),
        )
        .pod(&[(ROLE, "app")]),
        case(
            "bad sa annotation",
            cfg(),
            Want::NoRole("not an IAM role ARN"),
        )
        .sa(&[(SA, "app")]),
        case(
            "bad association",
            cfg(),
            Want::NoRole("association shop-web"),
        )
        .assoc(assoc("arn:aws:s3:::bucket")),
        // --- namespace restrictions ---
        case(
            "glob allows",
            restricted(RestrictionFormat::Glob),
            Want::Role(
                "arn:aws:iam::111111111111:role/app",
                PodAnnotation,
                false,
                None,
            ),
        )
        .pod(&[(ROLE, "app")])
        .ns(&[(ALLOWED, r#"["arn:aws:iam::111111111111:role/app"]"#)]),
        case(
            "glob relative pattern normalised",
            restricted(RestrictionFormat::Glob),
            Want::Role(
                "arn:aws:iam::111111111111:role/app-1",
                PodAnnotation,
                false,
                None,
            ),
        )
        .pod(&[(ROLE, "app-1")])
        .ns(&[(ALLOWED, r#"["app-*"]"#)]),
        case(
            "glob: no longer ARN",
            restricted(RestrictionFormat::Glob),
            Want::Denied("arn:aws:iam::111111111111:role/app-admin", "not allowed"),
        )
        .pod(&[(ROLE, "app-admin")])
        .ns(&[(ALLOWED, r#"["arn:aws:iam::111111111111:role/app"]"#)]),
        case(
            "glob: no foreign account",
            restricted(RestrictionFormat::Glob),
            Want::Denied("arn:aws:iam::222222222222:role/app", "not allowed"),
        )
        .pod(&[(ROLE, "arn:aws:iam::222222222222:role/app")])
        .ns(&[(ALLOWED, r#"["arn:aws:iam::111111111111:role/app"]"#)]),
        case(
            "glob: relative pattern stays in base account",
            restricted(RestrictionFormat::Glob),
            Want::Denied("arn:aws:iam::222222222222:role/app", "not allowed"),
        )
        .pod(&[(ROLE, "arn:aws:iam::222222222222:role/app")])
        .ns(&[(ALLOWED, r#"["app"]"#)]),
        case(
            "glob star spans path",
            restricted(RestrictionFormat::Glob),
            Want::Role(
                "arn:aws:iam::111111111111:role/team/app",
                PodAnnotation,
                false,
                None,
            ),
        )
        .pod(&[(ROLE, "team/app")])
        .ns(&[(ALLOWED, r#"["arn:aws:iam::111111111111:role/*"]"#)]),
        case(
            "regexp anchored: no longer ARN",
            restricted(RestrictionFormat::Regexp),
            Want::Denied("arn:aws:iam::111111111111:role/app-admin", "not allowed"),
        )
        .pod(&[(ROLE, "app-admin")])
        .ns(&[(ALLOWED, r#"["arn:aws:iam::111111111111:role/app"]"#)]),
        case(
            "regexp anchored: no prefix",
            restricted(RestrictionFormat::Regexp),
            Want::Denied("arn:aws:iam::222222222222:role/app", "not allowed"),
        )
        .pod(&[(ROLE, "arn:aws:iam::222222222222:role/app")])
        .ns(&[(ALLOWED, r#"["role/app"]"#)]),
        case(
            "regexp allows",
            restricted(RestrictionFormat::Regexp),
            Want::Role(
                "arn:aws:iam::111111111111:role/app-7",
                PodAnnotation,
                false,
                None,
            ),
        )
        .pod(&[(ROLE, "app-7")])
        .ns(&[(ALLOWED, r#"["app-[0-9]+"]"#)]),
        case(
            "regexp: base ARN is literal",
            PolicyConfig {
                base_role_arn: Some("arn:aws:iam::111111111111:role/a.b/".into()),
                ..restricted(RestrictionFormat::Regexp)
            },
            Want::Denied("arn:aws:iam::111111111111:role/aXb/x", "not allowed"),
        )
        .pod(&[(ROLE, "arn:aws:iam::111111111111:role/aXb/x")])
        .ns(&[(ALLOWED, r#"["x"]"#)]),
        case(
            "regexp: full-ARN pattern is the operator's regexp",
            restricted(RestrictionFormat::Regexp),
            Want::Role(
                "arn:aws:iam::111111111111:role/x",
                PodAnnotation,
                false,
                None,
            ),
        )
        .pod(&[(ROLE, "x")])
        .ns(&[(ALLOWED, r#"["arn:aws:iam::1.1111111111:role/x"]"#)]),
        case(
            "glob vs regexp: glob does not treat [0-9]+ as repetition",
            restricted(RestrictionFormat::Glob),
            Want::Denied("arn:aws:iam::111111111111:role/app-77", "not allowed"),
        )
        .pod(&[(ROLE, "app-77")])
        .ns(&[(ALLOWED, r#"["app-[0-9]+"]"#)]),
        case(
            "default role restricted too",
            PolicyConfig {
                default_role: Some("fallback".into()),
                ..restricted(RestrictionFormat::Glob)
            },
            Want::Denied("arn:aws:iam::111111111111:role/fallback", "default role"),
        )
        .ns(&[(ALLOWED, r#"["app"]"#)]),
        case(
            "default role allowed when listed",
            PolicyConfig {
                default_role: Some("fallback".into()),
                ..restricted(RestrictionFormat::Glob)
            },
            Want::Role(
                "arn:aws:iam::111111111111:role/fallback",
                DefaultRole,
                false,
                None,
            ),
        )
        .ns(&[(ALLOWED, r#"["fallback"]"#)]),
        case(
            "no namespace annotation → denied",
            restricted(RestrictionFormat::Glob),
            Want::Denied(
                "arn:aws:iam::111111111111:role/app",
                "has no iam.amazonaws.com/allowed-roles",
            ),
        )
        .pod(&[(ROLE, "app")])
        .ns(&[]),
        case(
            "unknown namespace → denied",
            restricted(RestrictionFormat::Glob),
            Want::Denied("arn:aws:iam::111111111111:role/app", "unknown"),
        )
        .pod(&[(ROLE, "app")]),
        case(
            "malformed JSON → denied",
            restricted(RestrictionFormat::Glob),
            Want::Denied("arn:aws:iam::111111111111:role/app", "not a JSON array"),
        )
        .pod(&[(ROLE, "app")])
        .ns(&[(ALLOWED, r#"["app""#)]),
        case(
            "JSON of wrong type → denied",
            restricted(RestrictionFormat::Glob),
            Want::Denied("arn:aws:iam::111111111111:role/app", "not a JSON array"),
        )
        .pod(&[(ROLE, "app")])
        .ns(&[(ALLOWED, r#"{"app":1}"#)]),
        case(
            "invalid regexp is reported",
            restricted(RestrictionFormat::Regexp),
            Want::Denied("arn:aws:iam::111111111111:role/app", "invalid"),
        )
        .pod(&[(ROLE, "app")])
        .ns(&[(ALLOWED, r#"["app("]"#)]),
        case(
            "restrictions do not apply to associations",
            restricted(RestrictionFormat::Glob),
            Want::Role(
                "arn:aws:iam::222222222222:role/assoc",
                Association,
                true,
                None,
            ),
        )
        .assoc(assoc("arn:aws:iam::222222222222:role/assoc"))
        .ns(&[]),
        case(
            "restrictions do not apply to sa annotation",
            restricted(RestrictionFormat::Glob),
            Want::Role(
                "arn:aws:iam::111111111111:role/irsa",
                ServiceAccountAnnotation,
                true,
                None,
            ),
        )
        .sa(&[(SA, "arn:aws:iam::111111111111:role/irsa")])
        .ns(&[]),
    ];
    for c in &cases {
        c.run();
    }
}

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
