//! Forwarding allow-listed paths to the real IMDS.
//!
//! [`ImdsUpstream`] is the seam the handlers call; [`HttpImdsUpstream`] is the production
//! implementation (hyper-util legacy client over plain HTTP). It speaks IMDSv2 itself: it
//! fetches its own session token with `PUT /latest/api/token`
//! (`X-aws-ec2-metadata-token-ttl-seconds: 21600`), caches it until 60 s before expiry, sends
//! it as `X-aws-ec2-metadata-token` on every GET, and on a 401 drops it and retries once with
//! a new one. If the token PUT is answered 403/404/405 (an IMDS without v2, or v2 disabled) it
//! falls back to plain GETs, like botocore does. It never adds `X-Forwarded-For` (or any
//! header from the pod's request): each upstream request is built from scratch with only the
//! `Host` (from the endpoint) and the token header. The agent runs in the host network
//! namespace, which the eBPF redirect leaves untouched, so these connections reach the real
//! IMDS.
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Largest upstream body accepted (bytes). Instance identity documents are ~500 bytes.
pub const MAX_UPSTREAM_BODY: usize = 64 * 1024;

/// An answer from the real IMDS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamResponse {
    /// HTTP status the real IMDS returned.
    pub status: StatusCode,
    /// Its `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body (at most [`MAX_UPSTREAM_BODY`] bytes).
    pub body: Bytes,
}

/// Why the real IMDS could not be asked (→ HTTP 502 to the pod, with no upstream detail).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Connection or protocol failure.
    #[error("IMDS unreachable: {0}")]
    Unreachable(String),
    /// No answer within the configured timeout.
    #[error("IMDS timed out")]
    Timeout,
    /// The IMDSv2 token could not be obtained (PUT answered with an unexpected status).
    #[error("IMDS token request failed with status {0}")]
    Token(u16),
    /// The body exceeded [`MAX_UPSTREAM_BODY`].
    #[error("IMDS response too large")]
    TooLarge,
    /// The configured endpoint is not an `http://host[:port]` URI.
    #[error("invalid IMDS endpoint: {0}")]
    BadEndpoint(String),
}

/// The real IMDS, as seen by the forwarding handler.
#[async_trait::async_trait]
pub trait ImdsUpstream: Send + Sync {
    /// `GET path` on the real IMDS. `path` is a canonical, allow-listed origin-form path
    /// (e.g. `/latest/meta-data/placement/region`), forwarded byte for byte. The pod's
    /// headers and query string are not passed on.
    async fn get(&self, path: &str) -> Result<UpstreamResponse, UpstreamError>;
}

#[derive(Clone)]
enum CachedToken {
    Token {
        value: String,
        refresh_at: Instant,
    },
    /// Upstream does not do IMDSv2; retry the PUT after `retry_at`.
    None {
        retry_at: Instant,
    },
}

/// Production [`ImdsUpstream`]: hyper-util client to `endpoint` (default
/// `http://169.254.169.254`), IMDSv2 token cached.
pub struct HttpImdsUpstream {
    endpoint: String,
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
    token: tokio::sync::Mutex<Option<CachedToken>>,
}

/// Default real-IMDS endpoint.
pub const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254";
const TOKEN_TTL_SECONDS: u64 = 21_600;

impl HttpImdsUpstream {
    /// `endpoint` is `http://host[:port]` (IPv6 as `http://[fd00:ec2::254]`); `timeout`
    /// bounds each upstream exchange (token PUT and GET separately), e.g. 2 s.
    pub fn new(endpoint: &str, timeout: Duration) -> Result<Self, UpstreamError> {
        let uri: Uri = endpoint
            .parse()
            .map_err(|_| UpstreamError::BadEndpoint(endpoint.to_owned()))?;
        let ok = uri.scheme_str() == Some("http")
            && uri.authority().is_some()
            && matches!(uri.path(), "" | "/")
            && uri.query().is_none();
        if !ok {
            return Err(UpstreamError::BadEndpoint(endpoint.to_owned()));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            client,
            timeout,
            token: tokio::sync::Mutex::new(None),
        })
    }

    async fn exchange(
        &self,
        req: Request<Empty<Bytes>>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let fut = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
            let status = resp.status();
            let content_type = resp
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = Limited::new(resp.into_body(), MAX_UPSTREAM_BODY)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        UpstreamError::TooLarge
                    } else {
                        UpstreamError::Unreachable(e.to_string())
                    }
                })?
                .to_bytes();
            Ok(UpstreamResponse {
                status,
                content_type,
                body,
            })
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| UpstreamError::Timeout)?
    }

    fn build(&self, method: Method, path: &str) -> Result<http::request::Builder, UpstreamError> {
        let uri: Uri = format!("{}{}", self.endpoint, path)
            .parse()
            .map_err(|_| UpstreamError::BadEndpoint(path.to_owned()))?;
        Ok(Request::builder().method(method).uri(uri))
    }

    /// The current upstream token, fetching one if needed; `None` when upstream has no v2.
    async fn token(&self) -> Result<Option<String>, UpstreamError> {
        let mut guard = self.token.lock().await;
        let now = Instant::now();
        match &*guard {
            Some(CachedToken::Token { value, refresh_at }) if now < *refresh_at => {
                return Ok(Some(value.clone()));
            }
            Some(CachedToken::None { retry_at }) if now < *retry_at => return Ok(None),
            _ => {}
        }
        let req = self
            .build(Method::PUT, "/latest/api/token")?
            .header(
                "x-aws-ec2-metadata-token-ttl-seconds",
                TOKEN_TTL_SECONDS.to_string(),
            )
            .body(Empty::new())
            .map_err(|e| UpstreamError::BadEndpoint(e.to_string()))?;
        let resp = self.exchange(req).await?;
        match resp.status.as_u16() {
            200 => {
                let value =
                    String::from_utf8(resp.body.to_vec()).map_err(|_| UpstreamError::Token(200))?;
                let value = value.trim().to_owned();
                if value.is_empty() || http::HeaderValue::from_str(&value).is_err() {
                    return Err(UpstreamError::Token(200));
                }
                let refresh_at = now + Duration::from_secs(TOKEN_TTL_SECONDS - 60);
                *guard = Some(CachedToken::Token {
                    value: value.clone(),
                    refresh_at,
                });
                Ok(Some(value))
            }
            403..=405 => {
                *guard = Some(CachedToken::None {
                    retry_at: now + Duration::from_secs(60),
                });
                Ok(None)
            }
            other => Err(UpstreamError::Token(other)),
        }
    }

    async fn get_once(&self, path: &str) -> Result<UpstreamResponse, UpstreamError> {
        let token = self.token().await?;
        let mut b = self.build(Method::GET, path)?;
        if let Some(t) = token {
            b = b.header("x-aws-ec2-metadata-token", t);
        }
        let req = b
            .body(Empty::new())
            .map_err(|e| UpstreamError::BadEndpoint(e.to_string()))?;
        self.exchange(req).await
    }
}

#[async_trait::async_trait]
impl ImdsUpstream for HttpImdsUpstream {
    async fn get(&self, path: &str) -> Result<UpstreamResponse, UpstreamError> {
        let first = self.get_once(path).await?;
        if first.status != StatusCode::UNAUTHORIZED {
            return Ok(first);
        }
        // Our token expired or IMDS restarted: drop it and retry once.
        *self.token.lock().await = None;
        self.get_once(path).await
    }
}
