//! Namespace restrictions: glob vs regexp, anchoring, normalisation, default role,
//! malformed annotations.
use super::*;
use crate::policy::{PolicyConfig, RestrictionFormat, RoleSource};

#[test]
fn restrictions_table() {
    use RoleSource::*;
    let cases = vec![
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
            "regexp: unbalanced pattern cannot escape anchoring",
            restricted(RestrictionFormat::Regexp),
            Want::Denied("arn:aws:iam::222222222222:role/evil", "invalid"),
        )
        .pod(&[(ROLE, "arn:aws:iam::222222222222:role/evil")])
        .ns(&[(ALLOWED, r#"["arn:aws:iam::111111111111:role/x)|(.*"]"#)]),
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
