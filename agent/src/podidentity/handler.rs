//! `GET /v1/credentials` handling (rules in the module docs of [`super`]).
use std::sync::Arc;

use bytes::Bytes;
use http::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use http::{Method, Response, StatusCode, request::Parts};
use http_body_util::Full;

use super::{PodIdentityOptions, TokenError, TokenValidator, host_allowed, looks_like_jwt};
use crate::identity::{Caller, IdentityError};
use crate::imds::Handled;
use crate::imds::format::{arn_account, iso8601_seconds};
use crate::metrics::PathClass;
use crate::policy::{RoleDecision, RoleResolver};
use crate::vend::{CredentialSource, VendError};

/// The container-credentials surface.
pub struct PodIdentity {
    /// Audience and allowed hosts.
    pub options: PodIdentityOptions,
    /// Service-account token validation (TokenReview).
    pub validator: Arc<dyn TokenValidator>,
    /// Role resolution for the calling pod.
    pub roles: Arc<dyn RoleResolver>,
    /// Credential vending.
    pub credentials: Arc<dyn CredentialSource>,
}

#[derive(serde::Serialize)]
struct ErrorJson {
    code: &'static str,
    message: &'static str,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct CredentialsJson<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
    expiration: String,
}

fn json_response(status: StatusCode, body: Vec<u8>, class: PathClass) -> Handled {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Handled { response, class }
}

/// An error answer `{"code": code, "message": message}` with `status`.
pub fn error(
    status: StatusCode,
    code: &'static str,
    message: &'static str,
    class: PathClass,
) -> Handled {
    let body = serde_json::to_vec(&ErrorJson { code, message })
        .unwrap_or_else(|_| b"{\"code\":\"InternalError\",\"message\":\"\"}".to_vec());
    json_response(status, body, class)
}

/// The container-credentials answer for a caller that could not be identified.
pub fn identity_error(err: &IdentityError) -> Handled {
    let status = crate::imds::identity_status(err);
    if status == StatusCode::FORBIDDEN {
        error(
            status,
            "AccessDenied",
            "the calling pod could not be identified",
            PathClass::Unauthenticated,
        )
    } else if status == StatusCode::NOT_FOUND {
        error(
            status,
            "ResourceNotFound",
            "no pod is known for this caller",
            PathClass::Unauthenticated,
        )
    } else {
        error(
            status,
            "ServiceUnavailable",
            "the calling pod is not known yet; retry",
            PathClass::Unauthenticated,
        )
    }
}

impl PodIdentity {
    /// Handles one `/v1/credentials` request from `caller`.
    pub async fn handle(&self, parts: &Parts, caller: Result<&Caller, &IdentityError>) -> Handled {
        use PathClass::{Credentials, Refused, Unauthenticated};
        if parts.method != Method::GET && parts.method != Method::HEAD {
            let mut h = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "only GET is supported",
                Refused,
            );
            h.response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return h;
        }
        let host_ok = parts
            .headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|h| host_allowed(h, &self.options.allowed_hosts));
        if !host_ok {
            return error(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "the Host header is not a container-credentials address",
                Refused,
            );
        }
        let mut auth = parts.headers.get_all(AUTHORIZATION).iter();
        let token = match (auth.next(), auth.next()) {
            (Some(v), None) => v.to_str().ok().filter(|t| looks_like_jwt(t)),
            _ => None,
        };
        let Some(token) = token else {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "the Authorization header must carry one service account token (JWT)",
                Unauthenticated,
            );
        };
        let caller = match caller {
            Ok(c) => c,
            Err(e) => return identity_error(e),
        };
        let claims = match self.validator.validate(token, &self.options.audience).await {
            Ok(c) => c,
            Err(TokenError::Unavailable(reason)) => {
                tracing::warn!(%reason, "container credentials: token validation unavailable");
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "the token could not be validated now; retry",
                    Unauthenticated,
                );
            }
            Err(TokenError::Expired) => {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "ExpiredToken",
                    "the service account token has expired",
                    Unauthenticated,
                );
            }
            Err(e) => {
                tracing::info!(pod = %caller.pod.uid, error = %e, "container credentials: token refused");
                return error(
                    StatusCode::UNAUTHORIZED,
                    "InvalidToken",
                    "the service account token is not valid for this service",
                    Unauthenticated,
                );
            }
        };
        if claims.pod_uid.is_empty() || claims.pod_uid != caller.pod.uid {
            tracing::warn!(
                pod = %caller.pod.uid,
                token_pod = %claims.pod_uid,
                "container credentials: token belongs to another pod"
            );
            return error(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "the token does not belong to the calling pod",
                Unauthenticated,
            );
        }
        let spec = match self.roles.resolve_role(caller).await {
            RoleDecision::Role(spec) => spec,
            RoleDecision::NoRole { reason } => {
                tracing::debug!(pod = %caller.pod.uid, %reason, "container credentials: no role");
                return error(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFound",
                    "no IAM role is mapped to this pod",
                    Credentials,
                );
            }
            RoleDecision::Denied { arn, reason } => {
                tracing::info!(pod = %caller.pod.uid, %arn, %reason, "container credentials: role denied");
                return error(
                    StatusCode::FORBIDDEN,
                    "AccessDenied",
                    "the IAM role mapped to this pod is not permitted",
                    Credentials,
                );
            }
        };
        match self.credentials.credentials(caller, &spec).await {
            Ok(c) => {
                let body = CredentialsJson {
                    access_key_id: &c.access_key_id,
                    secret_access_key: &c.secret_access_key,
                    token: &c.session_token,
                    account_id: c.account_id.as_deref().or_else(|| arn_account(&spec.arn)),
                    expiration: iso8601_seconds(c.expiration),
                };
                match serde_json::to_vec(&body) {
                    Ok(b) => json_response(StatusCode::OK, b, Credentials),
                    Err(_) => error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "InternalError",
                        "internal error",
                        Credentials,
                    ),
                }
            }
            Err(VendError::Permanent { code }) => {
                tracing::info!(pod = %caller.pod.uid, role = %spec.arn, %code, "container credentials: vending refused");
                error(
                    StatusCode::FORBIDDEN,
                    "AccessDenied",
                    "credentials could not be issued for the IAM role mapped to this pod",
                    Credentials,
                )
            }
            Err(VendError::Retryable { code }) => {
                tracing::warn!(pod = %caller.pod.uid, role = %spec.arn, %code, "container credentials: vending failed, retryable");
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "credentials are temporarily unavailable; retry",
                    Credentials,
                )
            }
        }
    }
}
