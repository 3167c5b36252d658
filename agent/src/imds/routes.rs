//! Routing of canonical IMDS paths (see [`super::path`]) to what podiam does with them.
use super::path::CanonicalPath;

/// What a canonical path maps to. The version segment (`latest` or `YYYY-MM-DD`) has been
/// checked; `rest` below means the segments after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/<version>/api/token` (PUT only, and only for `latest`).
    Token {
        /// `false` for dated versions (refused with 403, like real IMDS).
        latest: bool,
    },
    /// `meta-data/iam[/]`: the listing `info` + `security-credentials/`, served locally.
    IamListing,
    /// `meta-data/iam/security-credentials[/]` (or `-extended`): the bare role name.
    RoleList,
    /// `meta-data/iam/security-credentials[-extended]/<role>[/]`.
    Credentials {
        /// The role name as requested.
        role: String,
        /// `security-credentials-extended`: the JSON adds `AccountId`.
        extended: bool,
    },
    /// `meta-data/iam/info`.
    Info,
    /// Allow-listed: forward the checked path to the real IMDS.
    Forward,
    /// Never forwarded (`user-data`, `identity-credentials`, other `iam/` paths, not
    /// allow-listed): 404.
    Refused,
    /// Not an IMDS version path (`/`, `/foo/…`): 404.
    NotFound,
}

/// `latest` or a dated API version `YYYY-MM-DD` (as real IMDS accepts, e.g. `2021-03-23`).
pub fn is_version(seg: &str) -> bool {
    if seg == "latest" {
        return true;
    }
    let b = seg.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// Default forwarding allow-list, relative to the version segment. Matching is exact on the
/// segments; a trailing `/` on the request is allowed and forwarded as sent (botocore asks for
/// `placement/availability-zone/`).
///
/// Deliberately absent: `meta-data/` and other listings (they would advertise paths podiam
/// refuses; add `meta-data` to forward the real listing), `user-data`, every `iam/` and
/// `identity-credentials/` path, and the signed identity documents
/// (`dynamic/instance-identity/signature`, `pkcs7`, `rsa2048`): those are proof of the node's
/// identity (accepted by e.g. Vault's AWS `ec2` auth method), not facts an SDK needs.
pub const DEFAULT_ALLOW_LIST: &[&str] = &[
    "meta-data/placement/region",
    "meta-data/placement/availability-zone",
    "meta-data/placement/availability-zone-id",
    "meta-data/instance-id",
    "meta-data/instance-type",
    "meta-data/local-ipv4",
    "meta-data/local-hostname",
    "meta-data/hostname",
    "meta-data/ami-id",
    "meta-data/mac",
    "dynamic/instance-identity/document",
];

/// Paths that are never forwarded, even when an allow-list entry would match them: any path
/// with one of these segments at position 0 (`user-data`) or any position
/// (`identity-credentials`, `iam`).
fn never_forwarded(rest: &[String]) -> bool {
    rest.first().is_some_and(|s| s == "user-data")
        || rest
            .iter()
            .any(|s| s == "identity-credentials" || s == "iam")
}

/// Maps a canonical path to a [`Route`]. `allow_list` entries are `/`-joined segment lists
/// relative to the version (see [`DEFAULT_ALLOW_LIST`]).
pub fn route(path: &CanonicalPath, allow_list: &[String]) -> Route {
    let segs = path.segments();
    let Some((version, rest)) = segs.split_first() else {
        return Route::NotFound;
    };
    if !is_version(version) {
        return Route::NotFound;
    }
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let slash = path.trailing_slash();
    match rest.as_slice() {
        ["api", "token"] if !slash => Route::Token {
            latest: version == "latest",
        },
        ["meta-data", "iam"] => Route::IamListing,
        [
            "meta-data",
            "iam",
            "security-credentials" | "security-credentials-extended",
        ] => Route::RoleList,
        [
            "meta-data",
            "iam",
            kind @ ("security-credentials" | "security-credentials-extended"),
            role,
        ] => Route::Credentials {
            role: (*role).to_owned(),
            extended: *kind == "security-credentials-extended",
        },
        ["meta-data", "iam", "info"] if !slash => Route::Info,
        _ => {
            let rest_owned = &segs[1..];
            if never_forwarded(rest_owned) {
                return Route::Refused;
            }
            let joined = rest.join("/");
            if allow_list.iter().any(|a| a.trim_matches('/') == joined) {
                Route::Forward
            } else {
                Route::Refused
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(p: &str) -> Route {
        let allow: Vec<String> = DEFAULT_ALLOW_LIST.iter().map(|s| s.to_string()).collect();
        route(&CanonicalPath::parse(p).unwrap(), &allow)
    }

    #[test]
    fn routes() {
        assert_eq!(r("/latest/api/token"), Route::Token { latest: true });
        assert_eq!(r("/2021-03-23/api/token"), Route::Token { latest: false });
        assert_eq!(
            r("/latest/meta-data/iam/security-credentials"),
            Route::RoleList
        );
        assert_eq!(
            r("/latest/meta-data/iam/security-credentials/"),
            Route::RoleList
        );
        assert_eq!(
            r("/2016-09-02/meta-data/iam/security-credentials-extended/"),
            Route::RoleList
        );
        assert_eq!(
            r("/latest/meta-data/iam/security-credentials/app/"),
            Route::Credentials {
                role: "app".into(),
                extended: false
            }
        );
        assert_eq!(
            r("/latest/meta-data/iam/security-credentials-extended/app"),
            Route::Credentials {
                role: "app".into(),
                extended: true
            }
        );
        assert_eq!(r("/latest/meta-data/iam/info"), Route::Info);
        assert_eq!(r("/latest/meta-data/iam/"), Route::IamListing);
        assert_eq!(
            r("/latest/meta-data/iam/security-credentials/a/b"),
            Route::Refused
        );
        assert_eq!(r("/latest/meta-data/iam/other"), Route::Refused);
        assert_eq!(r("/latest/meta-data/placement/region"), Route::Forward);
        assert_eq!(
            r("/latest/meta-data/placement/availability-zone/"),
            Route::Forward
        );
        assert_eq!(
            r("/2009-04-04/dynamic/instance-identity/document"),
            Route::Forward
        );
        assert_eq!(r("/latest/dynamic/instance-identity/pkcs7"), Route::Refused);
        assert_eq!(r("/latest/user-data"), Route::Refused);
        assert_eq!(
            r("/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance"),
            Route::Refused
        );
        assert_eq!(r("/latest/meta-data/"), Route::Refused);
        assert_eq!(r("/"), Route::NotFound);
        assert_eq!(r("/v1/credentials"), Route::NotFound);
        assert_eq!(r("/20x1-03-23/meta-data/instance-id"), Route::NotFound);
    }

    #[test]
    fn allow_list_cannot_open_never_forwarded_paths() {
        let allow = vec![
            "user-data".to_string(),
            "meta-data/identity-credentials/ec2/info".into(),
        ];
        for p in [
            "/latest/user-data",
            "/latest/meta-data/identity-credentials/ec2/info",
        ] {
            assert_eq!(
                route(&CanonicalPath::parse(p).unwrap(), &allow),
                Route::Refused
            );
        }
    }
}
