//! STS failures ([`StsError`]) and their classification into [`VendError`].
//!
//! Classification follows the STS API model (`AssumeRole` errors: `MalformedPolicyDocument`,
//! `PackedPolicyTooLarge`, `RegionDisabledException`, `ExpiredTokenException`) and the AWS
//! SDKs' standard retry classifiers (throttling codes, HTTP 429 and 5xx are transient).
use super::VendError;

/// How a failed STS call is handled by the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StsErrorKind {
    /// Will not succeed on retry (AccessDenied, ValidationError, MalformedPolicyDocument,
    /// RegionDisabledException, other 4xx): negative-cached briefly, then retried on demand.
    Permanent,
    /// STS throttled us (`Throttling`, `ThrottlingException`, HTTP 429): back off with jitter.
    Throttled,
    /// Transient (STS 5xx, timeouts, connection failures, problems with the agent's own
    /// credentials): back off with jitter, keep serving stale-but-valid credentials.
    Retryable,
}

/// One failed `sts:AssumeRole` call.
///
/// `message` is the upstream error text, for logs only: it can contain account IDs and
/// ARNs and is never copied into a [`VendError`].
#[derive(Clone, Debug, thiserror::Error)]
#[error("STS error {code} ({kind:?}, HTTP {http_status:?}, request id {request_id:?})")]
pub struct StsError {
    /// STS error code (`AccessDenied`, `Throttling`, …) or a transport code (`Timeout`,
    /// `DispatchFailure`, `ResponseError`, `ConstructionFailure`, `InvalidResponse`).
    pub code: String,
    /// The classification of `code` / `http_status`.
    pub kind: StsErrorKind,
    /// HTTP status of the STS response, when one was received.
    pub http_status: Option<u16>,
    /// STS request id (`x-amzn-RequestId`), when one was received.
    pub request_id: Option<String>,
    /// Upstream message text (logs only).
    pub message: Option<String>,
}

/// Codes the AWS SDKs' standard retry strategy treats as throttling.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "BandwidthLimitExceeded",
    "LimitExceededException",
];

/// Codes that are transient, or that concern the agent's own credentials rather than the
/// pod's request (the agent refreshes those itself).
const RETRYABLE_CODES: &[&str] = &[
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "IDPCommunicationError",
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "UnrecognizedClientException",
    "MissingAuthenticationToken",
];

/// Codes that will not succeed on retry.
const PERMANENT_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "ValidationError",
    "ValidationException",
    "MalformedPolicyDocument",
    "MalformedPolicyDocumentException",
    "PackedPolicyTooLarge",
    "PackedPolicyTooLargeException",
    "RegionDisabledException",
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "InvalidInput",
    "InvalidAction",
];

/// Classifies an STS error code and HTTP status (either may be unknown).
///
/// Known codes win over the status; otherwise 429 → throttled, 5xx → retryable, other 4xx →
/// permanent, and anything without a status (no response) → retryable.
pub fn classify(code: &str, http_status: Option<u16>) -> StsErrorKind {
    if THROTTLING_CODES.contains(&code) {
        return StsErrorKind::Throttled;
    }
    if RETRYABLE_CODES.contains(&code) {
        return StsErrorKind::Retryable;
    }
    if PERMANENT_CODES.contains(&code) {
        return StsErrorKind::Permanent;
    }
    match http_status {
        Some(429) => StsErrorKind::Throttled,
        Some(s) if (500..600).contains(&s) => StsErrorKind::Retryable,
        Some(s) if (400..500).contains(&s) => StsErrorKind::Permanent,
        _ => StsErrorKind::Retryable,
    }
}

/// Keeps a code only if it looks like an AWS error code (ASCII alphanumerics, `.`, `_`, `-`;
/// 1–64 chars), so nothing else from the upstream response reaches a [`VendError`].
fn sanitize_code(code: &str) -> String {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        code.to_string()
    } else {
        "Unknown".to_string()
    }
}

impl StsError {
    /// An error response from STS (`code` as sent by STS), classified with [`classify`].
    pub fn from_response(
        code: Option<&str>,
        http_status: Option<u16>,
        request_id: Option<String>,
        message: Option<String>,
    ) -> Self {
        let code = sanitize_code(code.unwrap_or(""));
        let kind = classify(&code, http_status);
        StsError {
            code,
            kind,
            http_status,
            request_id,
            message,
        }
    }

    /// A failure without an STS error response (timeout, connection error, unparseable
    /// response): always [`StsErrorKind::Retryable`].
    pub fn transport(code: &str, message: Option<String>) -> Self {
        StsError {
            code: sanitize_code(code),
            kind: StsErrorKind::Retryable,
            http_status: None,
            request_id: None,
            message,
        }
    }

    /// The pod-facing error: the code only, `Permanent` or `Retryable` by [`Self::kind`].
    pub fn to_vend_error(&self) -> VendError {
        match self.kind {
            StsErrorKind::Permanent => VendError::Permanent {
                code: self.code.clone(),
            },
            StsErrorKind::Throttled | StsErrorKind::Retryable => VendError::Retryable {
                code: self.code.clone(),
            },
        }
    }

    /// Whether STS rejected the requested `DurationSeconds` as too long, and why.
    ///
    /// `ValidationError` with "… exceeds the 1 hour session limit for roles assumed by role
    /// chaining" → [`DurationCap::RoleChaining`] (applies to every role: the agent's own
    /// credentials are an assumed role); "… exceeds the MaxSessionDuration set for this role"
    /// → [`DurationCap::RoleMaximum`] (that role only).
    pub fn duration_cap(&self) -> Option<DurationCap> {
        if self.code != "ValidationError" {
            return None;
        }
        let msg = self.message.as_deref().unwrap_or("");
        if msg.contains("1 hour session limit") || msg.contains("role chaining") {
            Some(DurationCap::RoleChaining)
        } else if msg.contains("MaxSessionDuration") {
            Some(DurationCap::RoleMaximum)
        } else {
            None
        }
    }
}

/// Why STS refused a session duration (see [`StsError::duration_cap`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurationCap {
    /// The agent's credentials come from an assumed role: every session is capped at 1 h.
    RoleChaining,
    /// The role's `MaxSessionDuration` is lower than requested.
    RoleMaximum,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        use StsErrorKind::*;
        assert_eq!(classify("AccessDenied", Some(403)), Permanent);
        assert_eq!(classify("ValidationError", Some(400)), Permanent);
        assert_eq!(classify("MalformedPolicyDocument", Some(400)), Permanent);
        assert_eq!(classify("RegionDisabledException", Some(403)), Permanent);
        assert_eq!(classify("Throttling", Some(400)), Throttled);
        assert_eq!(classify("ThrottlingException", Some(400)), Throttled);
        assert_eq!(classify("Whatever", Some(429)), Throttled);
        assert_eq!(classify("InternalFailure", Some(500)), Retryable);
        assert_eq!(classify("Whatever", Some(503)), Retryable);
        assert_eq!(classify("Whatever", Some(404)), Permanent);
        assert_eq!(classify("ExpiredTokenException", Some(400)), Retryable);
        assert_eq!(classify("Timeout", None), Retryable);
    }

    #[test]
    fn vend_error_has_code_only() {
        let e = StsError::from_response(
            Some("AccessDenied"),
            Some(403),
            Some("req-1".into()),
            Some("User: arn:aws:sts::123456789012:assumed-role/node/i-1 is not authorized".into()),
        );
        let v = e.to_vend_error();
        assert_eq!(
            v,
            VendError::Permanent {
                code: "AccessDenied".into()
            }
        );
        let shown = v.to_string();
        assert!(!shown.contains("123456789012"), "{shown}");
        assert!(!shown.contains("authorized"), "{shown}");
        assert_eq!(shown, "permanent: AccessDenied");
    }

    #[test]
    fn odd_codes_are_not_echoed() {
        let e = StsError::from_response(Some("<x>123456789012</x>"), Some(500), None, None);
        assert_eq!(e.code, "Unknown");
        assert_eq!(
            e.to_vend_error(),
            VendError::Retryable {
                code: "Unknown".into()
            }
        );
        let t = StsError::transport("Timeout", Some("operation timed out".into()));
        assert_eq!(t.to_vend_error().to_string(), "retryable: Timeout");
    }

    #[test]
    fn duration_caps() {
        let chain = StsError::from_response(
            Some("ValidationError"),
            Some(400),
            None,
            Some("The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.".into()),
        );
        assert_eq!(chain.duration_cap(), Some(DurationCap::RoleChaining));
        let max = StsError::from_response(
            Some("ValidationError"),
            Some(400),
            None,
            Some(
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
                    .into(),
            ),
        );
        assert_eq!(max.duration_cap(), Some(DurationCap::RoleMaximum));
        let other = StsError::from_response(
            Some("ValidationError"),
            Some(400),
            None,
            Some("bad name".into()),
        );
        assert_eq!(other.duration_cap(), None);
        let denied = StsError::from_response(
            Some("AccessDenied"),
            Some(403),
            None,
            Some("1 hour session limit".into()),
        );
        assert_eq!(denied.duration_cap(), None);
    }
}
