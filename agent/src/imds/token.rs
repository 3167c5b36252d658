//! IMDSv2 session tokens, minted locally and bound to the calling pod.
//!
//! Real IMDS tokens are opaque and instance-bound (EC2 user guide,
//! `instance-metadata-v2-how-it-works`). podiam's tokens are bound to the caller instead:
//!
//! ```text
//! token = base64url_nopad( version(1 byte = 1) || expiry (u64, big-endian unix seconds)
//!                          || HMAC-SHA256(key, "podiam-imds-v1" || 0 || pod UID || 0
//!                                          || cgroup tag || expiry) )
//! cgroup tag = 0x01 || cgroup id (u64 big-endian)   when the caller has a cgroup id
//!            = 0x00                                 on the peer-IP fallback (no cgroup id)
//! ```
//!
//! The 32-byte key is random per agent start, so tokens do not survive an agent restart
//! (SDKs then get 401 and fetch a new token, as after an instance stop/start). A token is
//! accepted only before its expiry, only from the same pod UID and the same cgroup (i.e. the
//! same container) it was minted for. The token is 55 ASCII bytes.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::identity::Caller;

type HmacSha256 = Hmac<Sha256>;

const VERSION: u8 = 1;
const RAW_LEN: usize = 1 + 8 + 32;
const DOMAIN: &[u8] = b"podiam-imds-v1";

/// Smallest TTL accepted on `PUT /latest/api/token` (seconds).
pub const MIN_TTL_SECONDS: u64 = 1;
/// Largest TTL accepted on `PUT /latest/api/token` (seconds, 6 h).
pub const MAX_TTL_SECONDS: u64 = 21_600;

/// Why a presented token was refused (every variant → HTTP 401).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenRejection {
    /// Not base64url, wrong length or unknown version.
    #[error("malformed token")]
    Malformed,
    /// The MAC does not match this caller (forged, or minted for another pod/container, or
    /// by an earlier agent instance).
    #[error("token not valid for this caller")]
    WrongCaller,
    /// The expiry has passed.
    #[error("token expired")]
    Expired,
}

/// Mints and checks IMDSv2 tokens with a per-process random key.
pub struct TokenMinter {
    key: [u8; 32],
}

impl std::fmt::Debug for TokenMinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenMinter").finish_non_exhaustive()
    }
}

impl Default for TokenMinter {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenMinter {
    /// A minter with a fresh random 32-byte key (`rand::rng()`, a CSPRNG).
    pub fn new() -> Self {
        Self::with_key(rand::random::<[u8; 32]>())
    }

    /// A minter with a given key (tests, or several listeners sharing one key).
    pub fn with_key(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self, caller: &Caller, expiry: u64) -> HmacSha256 {
        // new_from_slice only fails for invalid key lengths, which HMAC does not have.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(DOMAIN);
        mac.update(&[0]);
        mac.update(caller.pod.uid.as_bytes());
        mac.update(&[0]);
        match caller.cgroup_id {
            Some(id) => {
                mac.update(&[1]);
                mac.update(&id.to_be_bytes());
            }
            None => mac.update(&[0]),
        }
        mac.update(&expiry.to_be_bytes());
        mac
    }

    /// Mints a token for `caller`, valid until `now_unix + ttl_seconds` (unix seconds).
    /// The TTL must already be checked against [`MIN_TTL_SECONDS`]..=[`MAX_TTL_SECONDS`].
    pub fn mint(&self, caller: &Caller, now_unix: u64, ttl_seconds: u64) -> String {
        let expiry = now_unix.saturating_add(ttl_seconds);
        let tag = self.mac(caller, expiry).finalize().into_bytes();
        let mut raw = Vec::with_capacity(RAW_LEN);
        raw.push(VERSION);
        raw.extend_from_slice(&expiry.to_be_bytes());
        raw.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks a presented token for `caller` at `now_unix` (unix seconds). The MAC is
    /// compared in constant time before the expiry is looked at.
    pub fn verify(
        &self,
        token: &str,
        caller: &Caller,
        now_unix: u64,
    ) -> Result<(), TokenRejection> {
        let raw = URL_SAFE_NO_PAD
            .decode(token.as_bytes())
            .map_err(|_| TokenRejection::Malformed)?;
        if raw.len() != RAW_LEN || raw[0] != VERSION {
            return Err(TokenRejection::Malformed);
        }
        let mut exp = [0u8; 8];
        exp.copy_from_slice(&raw[1..9]);
        let expiry = u64::from_be_bytes(exp);
        self.mac(caller, expiry)
            .verify_slice(&raw[9..])
            .map_err(|_| TokenRejection::WrongCaller)?;
        if now_unix >= expiry {
            return Err(TokenRejection::Expired);
        }
        Ok(())
    }
}

/// Parses the `X-aws-ec2-metadata-token-ttl-seconds` request header value: a decimal integer
/// in 1..=21600 (surrounding whitespace tolerated). `None` → HTTP 400.
pub fn parse_ttl(value: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(value).ok()?.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 6 {
        return None;
    }
    let ttl: u64 = s.parse().ok()?;
    (MIN_TTL_SECONDS..=MAX_TTL_SECONDS)
        .contains(&ttl)
        .then_some(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::PodInfo;
    use std::sync::Arc;

    fn caller(uid: &str, cgroup: Option<u64>) -> Caller {
        Caller {
            pod: Arc::new(PodInfo {
                uid: uid.into(),
                ..Default::default()
            }),
            cgroup_id: cgroup,
            container_id: None,
            peer: "10.0.0.1:5555".parse().unwrap(),
        }
    }

    #[test]
    fn round_trip_and_binding() {
        let m = TokenMinter::with_key([7; 32]);
        let a = caller("uid-a", Some(42));
        let t = m.mint(&a, 1000, 60);
        assert_eq!(t.len(), 55);
        assert_eq!(m.verify(&t, &a, 1059), Ok(()));
        assert_eq!(m.verify(&t, &a, 1060), Err(TokenRejection::Expired));
        assert_eq!(
            m.verify(&t, &caller("uid-b", Some(42)), 1001),
            Err(TokenRejection::WrongCaller)
        );
        assert_eq!(
            m.verify(&t, &caller("uid-a", Some(43)), 1001),
            Err(TokenRejection::WrongCaller)
        );
        assert_eq!(
            m.verify(&t, &caller("uid-a", None), 1001),
            Err(TokenRejection::WrongCaller)
        );
        // Another agent instance (other key) does not accept it.
        let other = TokenMinter::with_key([8; 32]);
        assert_eq!(other.verify(&t, &a, 1001), Err(TokenRejection::WrongCaller));
    }

    #[test]
    fn tampered_expiry_and_garbage_refused() {
        let m = TokenMinter::with_key([1; 32]);
        let a = caller("u", Some(1));
        let t = m.mint(&a, 0, 10);
        let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        raw[8] = raw[8].wrapping_add(100); // extend the expiry
        let forged = URL_SAFE_NO_PAD.encode(&raw);
        assert_eq!(m.verify(&forged, &a, 50), Err(TokenRejection::WrongCaller));
        for g in ["", "abc", "!!!!", &"A".repeat(55), &t[..54]] {
            assert!(m.verify(g, &a, 0).is_err(), "{g:?}");
        }
    }

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl(b"21600"), Some(21600));
        assert_eq!(parse_ttl(b"1"), Some(1));
        assert_eq!(parse_ttl(b" 300 "), Some(300));
        for bad in [
            &b"0"[..],
            b"21601",
            b"abc",
            b"",
            b"-5",
            b"+5",
            b"1.5",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_ttl(bad), None, "{bad:?}");
        }
    }
}
