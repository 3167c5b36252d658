//! Each resolution step, precedence, switches, ARNs (paths, partitions, cross-account),
//! whitespace, invalid values.
use super::*;
use crate::policy::{PolicyConfig, PolicySteps, RoleSource};

#[test]
fn steps_table() {
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
    ];
    for c in &cases {
        c.run();
    }
}
