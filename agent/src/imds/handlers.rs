//! IMDS request handling (see the rules in the module docs of [`super`]).
use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, HeaderName, HeaderValue, SERVER};
use http::{Method, Response, StatusCode, request::Parts};
use http_body_util::Full;
use sha2::{Digest, Sha256};

use super::format::{arn_account, iso8601_seconds, unix_seconds};
use super::path::CanonicalPath;
use super::routes::{Route, route};
use super::token::parse_ttl;
use super::{Imds, upstream::UpstreamResponse};
use crate::identity::{Caller, IdentityError};
use crate::metrics::{OutcomeLabels, PathClass};
use crate::policy::{RoleDecision, RoleSpec};
use crate::vend::VendError;

/// Request header carrying the IMDSv2 token.
pub const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
/// Request (PUT) and response header carrying the token TTL in seconds.
pub const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";

/// A response and the path class it is counted under.
#[derive(Debug)]
pub struct Handled {
    /// The HTTP response to send.
    pub response: Response<Full<Bytes>>,
    /// Path class of the request, for metrics.
    pub class: PathClass,
}

fn text(status: StatusCode, body: impl Into<Bytes>, class: PathClass) -> Handled {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    h.insert(SERVER, HeaderValue::from_static("EC2ws"));
    Handled { response, class }
}

fn status_only(status: StatusCode, class: PathClass) -> Handled {
    let reason = status.canonical_reason().unwrap_or("Error");
    text(status, reason.to_owned(), class)
}

fn method_not_allowed(allow: &'static str, class: PathClass) -> Handled {
    let mut h = status_only(StatusCode::METHOD_NOT_ALLOWED, class);
    h.response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    h
}

/// HTTP status for a caller that could not be identified: 403 when the connection did not
/// come through the redirect or does not match the pod; 404 when no pod is known for it
/// after the lookup hold (`--pod-lookup-timeout-ms`; kube2iam answers 404 too, and SDKs
/// treat it as "no credentials here" rather than retrying); 503 when the lookup itself
/// failed (retryable).
pub fn identity_status(err: &IdentityError) -> StatusCode {
    match err {
        IdentityError::NoOrigin(_) | IdentityError::Mismatch { .. } => StatusCode::FORBIDDEN,
        IdentityError::UnknownPod { .. } => StatusCode::NOT_FOUND,
        IdentityError::Lookup(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The single value of a header, `Err` if it appears more than once.
fn single<'a>(parts: &'a Parts, name: &str) -> Result<Option<&'a HeaderValue>, ()> {
    let mut it = parts.headers.get_all(name).iter();
    let first = it.next();
    if it.next().is_some() {
        return Err(());
    }
    Ok(first)
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct CredentialsJson<'a> {
    code: &'static str,
    last_updated: String,
    #[serde(rename = "Type")]
    kind: &'static str,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    token: &'a str,
    expiration: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct InfoJson {
    code: &'static str,
    last_updated: String,
    instance_profile_arn: String,
    instance_profile_id: String,
}

fn json(value: &impl serde::Serialize, class: PathClass) -> Handled {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => text(StatusCode::OK, body, class),
        Err(_) => status_only(StatusCode::INTERNAL_SERVER_ERROR, class),
    }
}

/// Synthesised instance-profile id: `AIPA` + 17 characters of `[A-Z2-7]` from SHA-256(arn).
fn instance_profile_id(arn: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = Sha256::digest(arn.as_bytes());
    let mut id = String::from("AIPA");
    id.extend(
        digest
            .iter()
            .take(17)
            .map(|b| ALPHABET[(*b & 31) as usize] as char),
    );
    id
}

impl Imds {
    /// Handles one IMDS request. `caller` is the connection's resolved caller (or why it
    /// could not be resolved). Never panics on request data; every refusal is a 4xx/5xx.
    pub async fn handle(&self, parts: &Parts, caller: Result<&Caller, &IdentityError>) -> Handled {
        let path = match CanonicalPath::from_uri(&parts.uri) {
            Ok(p) => p,
            Err(_) => return status_only(StatusCode::BAD_REQUEST, PathClass::Refused),
        };
        let route = route(&path, &self.options.allow_list);
        if let Route::Token { latest } = route {
            return self.token_put(parts, caller, latest);
        }
        if parts.method != Method::GET && parts.method != Method::HEAD {
            return method_not_allowed("GET, HEAD", PathClass::Refused);
        }
        let caller = match caller {
            Ok(c) => c,
            Err(e) => return status_only(identity_status(e), PathClass::Unauthenticated),
        };
        let now = (self.clock)();
        match single(parts, TOKEN_HEADER) {
            Err(()) => return status_only(StatusCode::UNAUTHORIZED, PathClass::Unauthenticated),
            Ok(Some(token)) => {
                let ok = token
                    .to_str()
                    .is_ok_and(|t| self.minter.verify(t, caller, unix_seconds(now)).is_ok());
                if !ok {
                    return status_only(StatusCode::UNAUTHORIZED, PathClass::Unauthenticated);
                }
            }
            Ok(None) if self.options.v2_required => {
                return status_only(StatusCode::UNAUTHORIZED, PathClass::Unauthenticated);
            }
            Ok(None) => {}
        }
        match route {
            // Answered by `token_put` above; kept total without a panic path.
            Route::Token { .. } => status_only(StatusCode::INTERNAL_SERVER_ERROR, PathClass::Other),
            Route::IamListing => match self.role(caller).await {
                Some(_) => text(
                    StatusCode::OK,
                    "info\nsecurity-credentials/",
                    PathClass::RoleList,
                ),
                None => status_only(StatusCode::NOT_FOUND, PathClass::RoleList),
            },
            Route::RoleList => match self.role(caller).await {
                Some(spec) => text(StatusCode::OK, spec.name().to_owned(), PathClass::RoleList),
                None => status_only(StatusCode::NOT_FOUND, PathClass::RoleList),
            },
            Route::Credentials { role, extended } => {
                self.credentials(caller, &role, extended).await
            }
            Route::Info => match self.role(caller).await {
                Some(spec) => json(
                    &InfoJson {
                        code: "Success",
                        last_updated: iso8601_seconds(now),
                        instance_profile_arn: spec.arn.replacen(":role/", ":instance-profile/", 1),
                        instance_profile_id: instance_profile_id(&spec.arn),
                    },
                    PathClass::Info,
                ),
                None => status_only(StatusCode::NOT_FOUND, PathClass::Info),
            },
            Route::Forward => self.forward(&path).await,
            Route::Refused => status_only(StatusCode::NOT_FOUND, PathClass::Refused),
            Route::NotFound => status_only(StatusCode::NOT_FOUND, PathClass::Other),
        }
    }

    fn token_put(
        &self,
        parts: &Parts,
        caller: Result<&Caller, &IdentityError>,
        latest: bool,
    ) -> Handled {
        if parts.method != Method::PUT {
            return method_not_allowed("PUT", PathClass::Token);
        }
        if !latest {
            return status_only(StatusCode::FORBIDDEN, PathClass::Token);
        }
        if parts
            .headers
            .contains_key(HeaderName::from_static("x-forwarded-for"))
        {
            return status_only(StatusCode::FORBIDDEN, PathClass::Token);
        }
        let ttl = match single(parts, TTL_HEADER) {
            Ok(Some(v)) => parse_ttl(v.as_bytes()),
            _ => None,
        };
        let Some(ttl) = ttl else {
            return text(
                StatusCode::BAD_REQUEST,
                "Missing or Invalid Parameters",
                PathClass::Token,
            );
        };
        let caller = match caller {
            Ok(c) => c,
            Err(e) => return status_only(identity_status(e), PathClass::Unauthenticated),
        };
        let now = unix_seconds((self.clock)());
        let token = self.minter.mint(caller, now, ttl);
        let mut h = text(StatusCode::OK, token, PathClass::Token);
        h.response
            .headers_mut()
            .insert(TTL_HEADER, HeaderValue::from(ttl));
        h
    }

    async fn role(&self, caller: &Caller) -> Option<RoleSpec> {
        match self.roles.resolve_role(caller).await {
            RoleDecision::Role(spec) => Some(spec),
            RoleDecision::NoRole { reason } => {
                tracing::debug!(pod = %caller.pod.uid, %reason, "IMDS: no role");
                None
            }
            RoleDecision::Denied { arn, reason } => {
                tracing::info!(pod = %caller.pod.uid, %arn, %reason, "IMDS: role denied");
                None
            }
        }
    }

    async fn credentials(&self, caller: &Caller, requested: &str, extended: bool) -> Handled {
        let class = PathClass::Credentials;
        let Some(spec) = self.role(caller).await else {
            return status_only(StatusCode::NOT_FOUND, class);
        };
        if spec.name() != requested {
            return status_only(StatusCode::NOT_FOUND, class);
        }
        match self.credentials.credentials(caller, &spec).await {
            Ok(c) => {
                let account = c.account_id.as_deref().or_else(|| arn_account(&spec.arn));
                json(
                    &CredentialsJson {
                        code: "Success",
                        last_updated: iso8601_seconds(c.last_updated),
                        kind: "AWS-HMAC",
                        access_key_id: &c.access_key_id,
                        secret_access_key: &c.secret_access_key,
                        token: &c.session_token,
                        expiration: iso8601_seconds(c.expiration),
                        account_id: if extended { account } else { None },
                    },
                    class,
                )
            }
            Err(VendError::Permanent { code }) => {
                tracing::info!(pod = %caller.pod.uid, role = %spec.arn, %code, "IMDS: vending refused");
                status_only(StatusCode::NOT_FOUND, class)
            }
            Err(VendError::Retryable { code }) => {
                tracing::warn!(pod = %caller.pod.uid, role = %spec.arn, %code, "IMDS: vending failed, retryable");
                status_only(StatusCode::SERVICE_UNAVAILABLE, class)
            }
        }
    }

    async fn forward(&self, path: &CanonicalPath) -> Handled {
        let class = PathClass::Forwarded;
        let count = |outcome: &'static str| {
            self.metrics
                .upstream
                .get_or_create(&OutcomeLabels { outcome })
                .inc();
        };
        match self.upstream.get(path.as_str()).await {
            Ok(UpstreamResponse {
                status,
                content_type,
                body,
            }) if status == StatusCode::OK => {
                count("ok");
                let mut h = text(StatusCode::OK, body, class);
                if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
                    h.response.headers_mut().insert(CONTENT_TYPE, ct);
                }
                h
            }
            Ok(r) if r.status == StatusCode::NOT_FOUND => {
                count("not-found");
                status_only(StatusCode::NOT_FOUND, class)
            }
            Ok(r) => {
                count("error");
                tracing::warn!(path = path.as_str(), status = %r.status, "IMDS upstream answered with an error");
                status_only(StatusCode::BAD_GATEWAY, class)
            }
            Err(e) => {
                count("error");
                tracing::warn!(path = path.as_str(), error = %e, "IMDS upstream failed");
                status_only(StatusCode::BAD_GATEWAY, class)
            }
        }
    }
}
