//! Request-target canonicalisation: the one check every IMDS request passes before routing
//! and before anything is forwarded.
//!
//! Rules (anything else is [`PathError`] → HTTP 400, never routed, never forwarded):
//! - origin-form only (`/path`); absolute-form (`http://host/…`, RFC 9112 §3.2.2) and
//!   authority/asterisk forms are refused, whatever host they name;
//! - characters limited to RFC 3986 `unreserved` plus `sub-delims`, `:` and `@` (no `%`, so
//!   no percent-encoding at all — IMDS paths and IAM role names (`[\w+=,.@-]`) never need it;
//!   no `\`, no control characters or NUL, no spaces);
//! - no empty segments (`//`), no `.` or `..` segments;
//! - the query string is dropped before routing and is **not** forwarded (IMDS paths take no
//!   query parameters); the fragment never reaches a server.
//!
//! Because every accepted path is already canonical, [`CanonicalPath::as_str`] is
//! byte-for-byte the path that was checked, and that string is what routing matches on and
//! what the upstream receives.
use http::Uri;

/// Maximum accepted path length in bytes (real IMDS paths are < 100 bytes).
pub const MAX_PATH_LEN: usize = 1024;

/// A checked, canonical request path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanonicalPath {
    raw: String,
    segments: Vec<String>,
    trailing_slash: bool,
}

/// Why a request target was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    /// The target was not origin-form (`/…`): absolute-form, authority-form or `*`.
    #[error("request target must be origin-form")]
    NotOriginForm,
    /// A byte outside the allowed set (percent-encoding, backslash, control, NUL, space …).
    #[error("forbidden character in path")]
    ForbiddenChar,
    /// An empty segment (`//`) or a `.`/`..` segment.
    #[error("non-canonical path segment")]
    BadSegment,
    /// Longer than [`MAX_PATH_LEN`].
    #[error("path too long")]
    TooLong,
}

fn allowed_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
}

impl CanonicalPath {
    /// Checks a request URI as received by the server (hyper keeps the request-target form:
    /// absolute-form targets carry a scheme and authority).
    pub fn from_uri(uri: &Uri) -> Result<Self, PathError> {
        if uri.scheme().is_some() || uri.authority().is_some() {
            return Err(PathError::NotOriginForm);
        }
        Self::parse(uri.path())
    }

    /// Checks a bare path (no query). Must start with `/`.
    pub fn parse(path: &str) -> Result<Self, PathError> {
        if path.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        if !path.starts_with('/') {
            return Err(PathError::NotOriginForm);
        }
        if !path.bytes().all(allowed_byte) {
            return Err(PathError::ForbiddenChar);
        }
        let rest = &path[1..];
        let trailing_slash = rest.ends_with('/');
        let body = rest.strip_suffix('/').unwrap_or(rest);
        let mut segments = Vec::new();
        if !body.is_empty() {
            for seg in body.split('/') {
                if seg.is_empty() || seg == "." || seg == ".." {
                    return Err(PathError::BadSegment);
                }
                segments.push(seg.to_owned());
            }
        } else if trailing_slash {
            // "//" (rest == "/") is an empty segment.
            return Err(PathError::BadSegment);
        }
        Ok(Self {
            raw: path.to_owned(),
            segments,
            trailing_slash: trailing_slash && !body.is_empty(),
        })
    }

    /// The checked path, exactly as received (e.g. `/latest/meta-data/placement/region`).
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The non-empty segments (`["latest", "meta-data", "placement", "region"]`).
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// Whether the path ended in `/` (and was not just `/`).
    pub fn trailing_slash(&self) -> bool {
        self.trailing_slash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().expect("test uri parses")
    }

    #[test]
    fn accepts_canonical_paths_verbatim() {
        for p in [
            "/latest/meta-data/iam/security-credentials/",
            "/latest/meta-data/iam/security-credentials/my-role",
            "/2021-03-23/meta-data/placement/region",
            "/latest/api/token",
            "/",
        ] {
            let c = CanonicalPath::from_uri(&uri(p)).expect(p);
            assert_eq!(c.as_str(), p);
        }
        let c = CanonicalPath::parse("/latest/meta-data/").unwrap();
        assert_eq!(c.segments(), ["latest", "meta-data"]);
        assert!(c.trailing_slash());
    }

    #[test]
    fn drops_query() {
        let c = CanonicalPath::from_uri(&uri("/latest/meta-data/instance-id?x=../../user-data"))
            .unwrap();
        assert_eq!(c.as_str(), "/latest/meta-data/instance-id");
    }

    #[test]
    fn random_targets_never_panic_and_accepted_ones_are_canonical() {
        use rand::{Rng, SeedableRng};
        let alphabet: &[u8] = b"/./%2eEfF\\\0\t :@?#abc-_~+";
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        for _ in 0..20_000 {
            let len = rng.random_range(0..24);
            let mut p = String::from("/");
            for _ in 0..len {
                p.push(alphabet[rng.random_range(0..alphabet.len())] as char);
            }
            if let Ok(c) = CanonicalPath::parse(&p) {
                assert_eq!(c.as_str(), p);
                assert!(
                    !p.contains("//") && !p.contains('%') && !p.contains('\\'),
                    "{p:?}"
                );
                assert!(
                    !p.bytes().any(|b| b.is_ascii_control() || b == b' '),
                    "{p:?}"
                );
                assert!(
                    c.segments()
                        .iter()
                        .all(|s| s != "." && s != ".." && !s.is_empty()),
                    "{p:?}"
                );
                let rebuilt = format!(
                    "/{}{}",
                    c.segments().join("/"),
                    if c.trailing_slash() { "/" } else { "" }
                );
                assert_eq!(rebuilt, p);
            }
        }
    }

    #[test]
    fn refuses_hostile_targets() {
        let cases = [
            (
                "/latest/meta-data/iam/security-credentials/../../user-data",
                PathError::BadSegment,
            ),
            ("/latest/./meta-data", PathError::BadSegment),
            ("/latest//meta-data", PathError::BadSegment),
            ("//", PathError::BadSegment),
            (
                "/latest/meta-data/%2e%2e/user-data",
                PathError::ForbiddenChar,
            ),
            (
                "/latest/meta-data/iam%2Fsecurity-credentials",
                PathError::ForbiddenChar,
            ),
            ("/latest/meta-data\\..\\user-data", PathError::ForbiddenChar),
            ("/latest/meta data", PathError::ForbiddenChar),
            ("/latest/\u{0}x", PathError::ForbiddenChar),
            ("/latest/\tx", PathError::ForbiddenChar),
            ("latest/meta-data", PathError::NotOriginForm),
        ];
        for (p, want) in cases {
            assert_eq!(CanonicalPath::parse(p), Err(want), "{p:?}");
        }
        assert_eq!(
            CanonicalPath::from_uri(&uri("http://evil.example/latest/meta-data/")),
            Err(PathError::NotOriginForm)
        );
        assert_eq!(
            CanonicalPath::from_uri(&uri("http://169.254.169.254/latest/meta-data/")),
            Err(PathError::NotOriginForm)
        );
        assert_eq!(
            CanonicalPath::parse(&format!("/{}", "a".repeat(MAX_PATH_LEN))),
            Err(PathError::TooLong)
        );
    }
}
