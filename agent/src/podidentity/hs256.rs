//! Container-credentials tokens without Kubernetes: JWTs signed with HMAC-SHA256 (RFC 7519,
//! RFC 7518 §3.2 `HS256`) by a key shared between the agent (`--static-token-key FILE`) and
//! whatever writes the workloads' token files.
//!
//! The claims have the shape of a Kubernetes bound service-account token, so workloads use
//! the same SDK settings as on EKS (`AWS_CONTAINER_CREDENTIALS_FULL_URI` +
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`):
//! ```json
//! {"aud": ["pods.eks.amazonaws.com"], "exp": 1767225600, "iat": 1767139200,
//!  "sub": "system:serviceaccount:ns-a:app",
//!  "kubernetes.io": {"namespace": "ns-a",
//!                    "pod": {"name": "app", "uid": "…"},
//!                    "serviceaccount": {"name": "app"}}}
//! ```
//! `exp` is required (seconds since the epoch); `nbf` is honoured when present.
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{TokenClaims, TokenError, TokenValidator};

type HmacSha256 = Hmac<Sha256>;

/// Shortest accepted key, in bytes (RFC 7518 §3.2: at least the hash output size).
pub const MIN_KEY_BYTES: usize = 32;

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("cannot read key file: {0}")]
    Read(#[from] std::io::Error),
    /// The key is shorter than [`MIN_KEY_BYTES`].
    #[error("key has {0} bytes; at least {MIN_KEY_BYTES} are needed")]
    TooShort(usize),
}

/// Validates (and, for tests and the demo, mints) HS256 container-credentials tokens.
pub struct Hs256TokenValidator {
    /// `None`: refuse every token (no key configured).
    key: Option<Vec<u8>>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Serialize, Deserialize)]
struct Named {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uid: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct KubernetesClaims {
    namespace: String,
    pod: Named,
    serviceaccount: Named,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    aud: Audience,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(rename = "kubernetes.io")]
    kubernetes: KubernetesClaims,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Hs256TokenValidator {
    /// A validator with `key` (raw bytes, ≥ [`MIN_KEY_BYTES`]).
    pub fn new(key: Vec<u8>) -> Result<Self, KeyError> {
        if key.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort(key.len()));
        }
        Ok(Self { key: Some(key) })
    }

    /// Reads the key from a file: its bytes, with trailing `\n`/`\r` removed so that text
    /// editors do not change the key. Use a text key (e.g. `openssl rand -hex 32` gives 64
    /// characters); a raw binary key could lose a final 0x0a byte.
    pub fn from_key_file(path: &Path) -> Result<Self, KeyError> {
        let mut key = std::fs::read(path)?;
        while key.last() == Some(&b'\n') || key.last() == Some(&b'\r') {
            key.pop();
        }
        Self::new(key)
    }

    /// A validator that refuses every token (static inventory without a key: container
    /// credentials are off).
    pub fn refuse_all() -> Self {
        Self { key: None }
    }

    /// HMAC-SHA256 over `signing_input` (`None` only if the key were rejected, which HMAC
    /// never does: it takes keys of any length).
    fn mac(key: &[u8], signing_input: &str) -> Option<HmacSha256> {
        let mut mac = HmacSha256::new_from_slice(key).ok()?;
        mac.update(signing_input.as_bytes());
        Some(mac)
    }

    /// Mints a token for `claims` valid for `ttl_secs` seconds from now, with audience
    /// `audience`. `None` for a validator without a key.
    pub fn mint(&self, claims: &TokenClaims, audience: &str, ttl_secs: u64) -> Option<String> {
        let key = self.key.as_deref()?;
        let now = now_secs();
        let header = Header {
            alg: "HS256".into(),
            typ: Some("JWT".into()),
        };
        let body = Claims {
            aud: Audience::Many(vec![audience.to_owned()]),
            exp: now + ttl_secs,
            nbf: None,
            iat: Some(now),
            sub: Some(format!(
                "system:serviceaccount:{}:{}",
                claims.namespace, claims.service_account
            )),
            kubernetes: KubernetesClaims {
                namespace: claims.namespace.clone(),
                pod: Named {
                    name: claims.pod_name.clone(),
                    uid: Some(claims.pod_uid.clone()),
                },
                serviceaccount: Named {
                    name: claims.service_account.clone(),
                    uid: None,
                },
            },
        };
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).ok()?),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).ok()?)
        );
        let sig = Self::mac(key, &input)?.finalize().into_bytes();
        Some(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }

    fn verify(&self, token: &str, audience: &str, now: u64) -> Result<TokenClaims, TokenError> {
        let Some(key) = self.key.as_deref() else {
            return Err(TokenError::Invalid("no token key configured".into()));
        };
        let invalid = |why: &str| TokenError::Invalid(why.to_owned());
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("not a JWS compact serialisation"));
        };
        let header: Header = URL_SAFE_NO_PAD
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| invalid("bad header"))?;
        if header.alg != "HS256" {
            return Err(invalid("unsupported alg"));
        }
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| invalid("bad signature encoding"))?;
        let signing_input = &token[..h.len() + 1 + p.len()];
        Self::mac(key, signing_input)
            .ok_or_else(|| invalid("bad key"))?
            .verify_slice(&sig)
            .map_err(|_| invalid("bad signature"))?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| invalid("bad claims"))?;
        if claims.exp <= now || claims.nbf.is_some_and(|nbf| nbf > now) {
            return Err(TokenError::Expired);
        }
        let audience_ok = match &claims.aud {
            Audience::One(a) => a == audience,
            Audience::Many(v) => v.iter().any(|a| a == audience),
        };
        if !audience_ok {
            return Err(TokenError::WrongAudience);
        }
        let k = claims.kubernetes;
        Ok(TokenClaims {
            namespace: k.namespace,
            service_account: k.serviceaccount.name,
            pod_name: k.pod.name,
            pod_uid: k.pod.uid.unwrap_or_default(),
        })
    }
}

#[async_trait::async_trait]
impl TokenValidator for Hs256TokenValidator {
    async fn validate(&self, token: &str, audience: &str) -> Result<TokenClaims, TokenError> {
        self.verify(token, audience, now_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> TokenClaims {
        TokenClaims {
            namespace: "ns-a".into(),
            service_account: "app".into(),
            pod_name: "app".into(),
            pod_uid: "uid-a".into(),
        }
    }

    fn validator() -> Hs256TokenValidator {
        Hs256TokenValidator::new(vec![7u8; 32]).expect("key")
    }

    #[test]
    fn minted_token_validates_and_carries_the_pod() {
        let v = validator();
        let t = v
            .mint(&claims(), "pods.eks.amazonaws.com", 600)
            .expect("mint");
        assert!(crate::podidentity::looks_like_jwt(&t));
        let c = v
            .verify(&t, "pods.eks.amazonaws.com", now_secs())
            .expect("valid");
        assert_eq!(c, claims());
    }

    #[test]
    fn refuses_wrong_key_audience_expiry_and_tampering() {
        let v = validator();
        let t = v
            .mint(&claims(), "pods.eks.amazonaws.com", 600)
            .expect("mint");
        let other = Hs256TokenValidator::new(vec![8u8; 32]).expect("key");
        assert!(matches!(
            other.verify(&t, "pods.eks.amazonaws.com", now_secs()),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            v.verify(&t, "sts.amazonaws.com", now_secs()),
            Err(TokenError::WrongAudience)
        ));
        assert!(matches!(
            v.verify(&t, "pods.eks.amazonaws.com", now_secs() + 601),
            Err(TokenError::Expired)
        ));
        // Swap the payload for another pod's, keep the signature.
        let forged_claims = TokenClaims {
            pod_uid: "uid-b".into(),
            ..claims()
        };
        let t2 = v
            .mint(&forged_claims, "pods.eks.amazonaws.com", 600)
            .expect("mint");
        let mut a: Vec<&str> = t.split('.').collect();
        let b: Vec<&str> = t2.split('.').collect();
        a[1] = b[1];
        assert!(matches!(
            v.verify(&a.join("."), "pods.eks.amazonaws.com", now_secs()),
            Err(TokenError::Invalid(_))
        ));
        // alg=none and garbage.
        for bad in ["", "a.b", "a.b.c.d", "e30.e30.", "!!.??.**"] {
            assert!(
                v.verify(bad, "pods.eks.amazonaws.com", now_secs()).is_err(),
                "{bad:?}"
            );
        }
        assert!(
            Hs256TokenValidator::refuse_all()
                .verify(&t, "pods.eks.amazonaws.com", now_secs())
                .is_err()
        );
        assert!(matches!(
            Hs256TokenValidator::new(vec![1; 31]),
            Err(KeyError::TooShort(31))
        ));
    }
}
