//! IAM role ARN parsing and normalisation (`arn:<partition>:iam::<account>:role/<path/>name`).
//!
//! Follows the IAM identifier rules: account is 12 digits; role names are 1–64 characters of
//! `[A-Za-z0-9+=,.@_-]`; paths are `/`-separated segments of the same characters. Partitions
//! are `aws` and `aws-*` (`aws-cn`, `aws-us-gov`, `aws-iso`, ...).

/// Why a string is not an acceptable IAM role ARN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    /// Not of the form `arn:<partition>:iam::<12-digit account>:role/<path/>name`.
    #[error(
        "{0:?} is not an IAM role ARN (arn:<partition>:iam::<12-digit account>:role/[path/]name)"
    )]
    Malformed(String),
    /// A role name was given relative to `--base-role-arn`, but none is configured.
    #[error("role {0:?} is not a full ARN and no base role ARN is configured")]
    NoBaseArn(String),
    /// `--base-role-arn` itself is malformed.
    #[error("base role ARN {0:?} is malformed (want arn:<partition>:iam::<account>:role/[path/])")]
    BadBase(String),
}

/// The parts of a role ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleArnParts<'a> {
    /// `aws`, `aws-cn`, `aws-us-gov`, ...
    pub partition: &'a str,
    /// 12-digit account ID.
    pub account: &'a str,
    /// Path including leading and trailing `/` (`/` when none).
    pub path: String,
    /// Role name (last segment).
    pub name: &'a str,
}

fn valid_partition(p: &str) -> bool {
    let mut parts = p.split('-');
    parts.next() == Some("aws")
        && parts.all(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

fn split_prefix(s: &str) -> Option<(&str, &str, &str)> {
    let rest = s.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    let rest = rest.strip_prefix("iam::")?;
    let (account, resource) = rest.split_once(':')?;
    if !valid_partition(partition)
        || account.len() != 12
        || !account.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some((partition, account, resource))
}

/// Parse a full role ARN. No trimming: callers trim input first.
pub fn parse_role_arn(s: &str) -> Result<RoleArnParts<'_>, ArnError> {
    let bad = || ArnError::Malformed(s.to_string());
    let (partition, account, resource) = split_prefix(s).ok_or_else(bad)?;
    let rest = resource.strip_prefix("role/").ok_or_else(bad)?;
    if rest.len() > 512 {
        return Err(bad());
    }
    let segs: Vec<&str> = rest.split('/').collect();
    if !segs.iter().all(|s| valid_segment(s)) {
        return Err(bad());
    }
    let (name, path_segs) = segs.split_last().ok_or_else(bad)?;
    let path = if path_segs.is_empty() {
        "/".to_string()
    } else {
        format!("/{}/", path_segs.join("/"))
    };
    Ok(RoleArnParts {
        partition,
        account,
        path,
        name,
    })
}

/// Validate `--base-role-arn` and return it with a trailing `/`
/// (`arn:aws:iam::123456789012:role` → `arn:aws:iam::123456789012:role/`).
pub fn normalise_base_arn(base: &str) -> Result<String, ArnError> {
    let base = base.trim();
    let bad = || ArnError::BadBase(base.to_string());
    let (_, _, resource) = split_prefix(base).ok_or_else(bad)?;
    let path = match resource {
        "role" | "role/" => "",
        r => r
            .strip_prefix("role/")
            .ok_or_else(bad)?
            .trim_end_matches('/'),
    };
    if !path.is_empty() && !path.split('/').all(valid_segment) {
        return Err(bad());
    }
    let mut out = base.trim_end_matches('/').to_string();
    out.push('/');
    Ok(out)
}

/// Turn a role reference into a full, validated ARN: input is trimmed; a value starting with
/// `arn:` must be a full role ARN; anything else is a name (optionally with path) relative to
/// `base` (already normalised by [`normalise_base_arn`]).
pub fn role_arn_from(value: &str, base: Option<&str>) -> Result<String, ArnError> {
    let v = value.trim();
    if v.starts_with("arn:") {
        parse_role_arn(v)?;
        return Ok(v.to_string());
    }
    let base = base.ok_or_else(|| ArnError::NoBaseArn(v.to_string()))?;
    let full = format!("{base}{}", v.trim_start_matches('/'));
    parse_role_arn(&full)?;
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_partitions_paths_and_rejects_garbage() {
        let p = parse_role_arn("arn:aws-us-gov:iam::123456789012:role/a/b/name").unwrap();
        assert_eq!(
            (p.partition, p.account, p.path.as_str(), p.name),
            ("aws-us-gov", "123456789012", "/a/b/", "name")
        );
        assert!(parse_role_arn("arn:aws-cn:iam::123456789012:role/x").is_ok());
        for bad in [
            "arn:aws:iam::12345678901:role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a//b",
            "arn:aws:iam::123456789012:role/x y",
            "arn:gcp:iam::123456789012:role/x",
            "arn:aws:iam:us-east-1:123456789012:role/x",
            " arn:aws:iam::123456789012:role/x",
        ] {
            assert!(parse_role_arn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base_and_relative() {
        let b = normalise_base_arn("arn:aws:iam::123456789012:role").unwrap();
        assert_eq!(b, "arn:aws:iam::123456789012:role/");
        let b2 = normalise_base_arn("arn:aws:iam::123456789012:role/k8s/").unwrap();
        assert_eq!(
            role_arn_from(" app ", Some(&b2)).unwrap(),
            "arn:aws:iam::123456789012:role/k8s/app"
        );
        assert_eq!(
            role_arn_from("app", Some(&b)).unwrap(),
            "arn:aws:iam::123456789012:role/app"
        );
        assert!(matches!(
            role_arn_from("app", None),
            Err(ArnError::NoBaseArn(_))
        ));
        assert!(normalise_base_arn("arn:aws:iam::123456789012:user/").is_err());
    }
}
