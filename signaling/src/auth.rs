//! Access tokens, TURN credentials and the origin allow-list, with no I/O.
//!
//! A token is `<expiry>.<subject>.<signature>`: the expiry in Unix seconds, a
//! subject of up to 64 characters of `[A-Za-z0-9_-]` (a player id, or empty), and
//! the unpadded base64url HMAC-SHA256 of `<expiry>.<subject>` under the shared
//! secret. A game's backend issues them with [`issue_token`] (or
//! `gamenet-signaling token`); clients pass them as `?token=` or as an
//! `Authorization: Bearer` header.
//!
//! TURN credentials follow coturn's shared-secret REST scheme (`use-auth-secret`):
//! the user name is `<expiry>:<subject>` and the password the base64 HMAC-SHA1
//! of the user name under coturn's `static-auth-secret`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::Serialize;
use thiserror::Error;

/// Longest token subject, in bytes.
pub const MAX_SUBJECT: usize = 64;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TokenError {
    /// No token was given.
    #[error("a token is required (?token= or Authorization: Bearer)")]
    Missing,
    /// The token is not `<expiry>.<subject>.<signature>`.
    #[error("malformed token")]
    Malformed,
    /// The signature does not match.
    #[error("invalid token signature")]
    BadSignature,
    /// The token has expired.
    #[error("token expired")]
    Expired,
}

fn valid_subject(subject: &str) -> bool {
    subject.len() <= MAX_SUBJECT
        && subject
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn sha256_mac(secret: &[u8]) -> Hmac<sha2::Sha256> {
    // HMAC takes keys of any length.
    <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

/// Issues a token for `subject` valid for `ttl` from `now`. `None` if the
/// subject is longer than [`MAX_SUBJECT`] or has characters outside `[A-Za-z0-9_-]`.
pub fn issue_token(secret: &[u8], subject: &str, ttl: Duration, now: SystemTime) -> Option<String> {
    if !valid_subject(subject) {
        return None;
    }
    // Saturating: a ttl past the end of time is valid for ever, not expired.
    let payload = format!("{}.{subject}", unix_secs(now).saturating_add(ttl.as_secs()));
    let mut mac = sha256_mac(secret);
    mac.update(payload.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    Some(format!("{payload}.{signature}"))
}

/// Checks a token; returns its subject.
pub fn verify_token(secret: &[u8], token: &str, now: SystemTime) -> Result<String, TokenError> {
    let (payload, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let (expiry, subject) = payload.split_once('.').ok_or(TokenError::Malformed)?;
    let expiry: u64 = expiry.parse().map_err(|_| TokenError::Malformed)?;
    if !valid_subject(subject) {
        return Err(TokenError::Malformed);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Malformed)?;
    let mut mac = sha256_mac(secret);
    mac.update(payload.as_bytes());
    // Constant-time comparison.
    mac.verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;
    if unix_secs(now) >= expiry {
        return Err(TokenError::Expired);
    }
    Ok(subject.to_owned())
}

/// One ICE server as WebRTC's `RTCIceServer` has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IceServerEntry {
    /// `stun:` or `turn:` URLs.
    pub urls: Vec<String>,
    /// TURN user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Time-limited TURN credentials in coturn's REST scheme: valid until `now + ttl`.
pub fn turn_credentials(
    secret: &[u8],
    subject: &str,
    ttl: Duration,
    now: SystemTime,
) -> (String, String) {
    let subject = if valid_subject(subject) && !subject.is_empty() {
        subject
    } else {
        "gamenet"
    };
    let username = format!("{}:{subject}", unix_secs(now).saturating_add(ttl.as_secs()));
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(username.as_bytes());
    let credential = STANDARD.encode(mac.finalize().into_bytes());
    (username, credential)
}

/// Longest resume key accepted, in characters.
pub const MAX_RESUME_KEY: usize = 128;
/// Shortest resume key accepted, in characters (96 bits in base64url, 64 in
/// hex; gamenet's own keys are 32 hex digits, 128 bits).
pub const MIN_RESUME_KEY: usize = 16;

/// The peer id a client's resume key stands for under `secret`: the first 16
/// bytes of HMAC-SHA256(secret, key), as a version 4 UUID. `None` if the key is
/// not [`MIN_RESUME_KEY`] to [`MAX_RESUME_KEY`] characters of `[A-Za-z0-9_-]`.
///
/// The same key gives the same id from any server with the same secret, and
/// nobody can claim an id without its key.
pub fn resume_id(secret: &[u8], key: &str) -> Option<uuid::Uuid> {
    let valid = (MIN_RESUME_KEY..=MAX_RESUME_KEY).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return None;
    }
    let mut mac = sha256_mac(secret);
    mac.update(b"gamenet-resume:");
    mac.update(key.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Some(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

/// Which web origins may connect; empty allows all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    allowed: Vec<String>,
}

impl OriginPolicy {
    /// Allows exactly these origins (`https://game.example.com`), compared without
    /// a trailing slash and ignoring case; no origins allows all.
    pub fn new(allowed: impl IntoIterator<Item = String>) -> Self {
        Self {
            allowed: allowed
                .into_iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|o| !o.is_empty())
                .collect(),
        }
    }

    /// Whether a request with this `Origin` header may go on. Requests without
    /// one (native clients, which browsers cannot impersonate) always may.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        match origin {
            _ if self.allowed.is_empty() => true,
            None => true,
            Some(origin) => {
                let origin = origin.trim_end_matches('/');
                self.allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
            }
        }
    }

    /// Whether an allow-list is in force.
    pub fn is_restricted(&self) -> bool {
        !self.allowed.is_empty()
    }

    /// The allowed origins.
    pub fn allowed(&self) -> &[String] {
        &self.allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"shared secret";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// Found by the `token` fuzz target (`fuzz/regressions/token/`): the
    /// expiry wrapped round (a panic with overflow checks), and a token
    /// meant to last for ever was issued expired.
    #[test]
    fn a_ttl_past_the_end_of_time_lasts_for_ever() {
        let now = at(71_209_857_582_169_896 % (1 << 40));
        let ttl = Duration::from_secs(u64::MAX - 1000);
        let token = issue_token(SECRET, "", ttl, now).unwrap();
        assert_eq!(verify_token(SECRET, &token, now).as_deref(), Ok(""));
        let (username, _) = turn_credentials(SECRET, "p", ttl, now);
        assert_eq!(username, format!("{}:p", u64::MAX));
    }

    #[test]
    fn tokens_verify_until_they_expire() {
        let token = issue_token(SECRET, "player-7", Duration::from_secs(60), at(1000)).unwrap();
        assert!(token.starts_with("1060.player-7."));
        assert_eq!(
            verify_token(SECRET, &token, at(1059)),
            Ok("player-7".into())
        );
        assert_eq!(
            verify_token(SECRET, &token, at(1060)),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify_token(b"other secret", &token, at(1000)),
            Err(TokenError::BadSignature)
        );
        let empty = issue_token(SECRET, "", Duration::from_secs(1), at(0)).unwrap();
        assert_eq!(verify_token(SECRET, &empty, at(0)), Ok(String::new()));
        assert_eq!(issue_token(SECRET, "a.b", Duration::ZERO, at(0)), None);
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let token = issue_token(SECRET, "p", Duration::from_secs(60), at(1000)).unwrap();
        let longer = token.replacen("1060", "9999", 1);
        assert_eq!(
            verify_token(SECRET, &longer, at(1000)),
            Err(TokenError::BadSignature)
        );
        let other = token.replacen(".p.", ".q.", 1);
        assert_eq!(
            verify_token(SECRET, &other, at(1000)),
            Err(TokenError::BadSignature)
        );
        for bad in ["", "x", "1.2", "a.b.c", "1060.p.!!", "1060.a b.AAAA"] {
            assert_eq!(
                verify_token(SECRET, bad, at(0)),
                Err(TokenError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn turn_credentials_follow_coturns_rest_scheme() {
        // Reference value: HMAC-SHA1 of "1060:gamenet" under "shared secret",
        // as `echo -n 1060:gamenet | openssl dgst -sha1 -hmac "shared secret" -binary | base64`.
        let (user, password) = turn_credentials(SECRET, "", Duration::from_secs(60), at(1000));
        assert_eq!(user, "1060:gamenet");
        assert_eq!(password, "b5ILH3F/z926LN+/pvOr83Gl9Kw=");
        let (user, _) = turn_credentials(SECRET, "p1", Duration::from_secs(1), at(0));
        assert_eq!(user, "1:p1");
    }

    #[test]
    fn resume_keys_give_stable_ids_per_secret() {
        let key = "k0123456789abcdef";
        let id = resume_id(SECRET, key).unwrap();
        assert_eq!(resume_id(SECRET, key), Some(id));
        assert_eq!(id.get_version_num(), 4);
        assert_ne!(resume_id(b"other secret", key), Some(id));
        assert_ne!(resume_id(SECRET, "k0123456789abcdeF"), Some(id));
        assert_eq!(resume_id(SECRET, "short"), None);
        assert_eq!(resume_id(SECRET, "k0123456789abcdef/"), None);
        assert_eq!(resume_id(SECRET, &"k".repeat(MAX_RESUME_KEY + 1)), None);
    }

    #[test]
    fn origins_are_allowed_by_list() {
        let open = OriginPolicy::default();
        assert!(open.allows(Some("https://anything.example")) && open.allows(None));
        let list = OriginPolicy::new(["https://Game.example.com/".to_string()]);
        assert!(list.allows(Some("https://game.example.com")));
        assert!(list.allows(Some("https://GAME.example.com/")));
        assert!(!list.allows(Some("https://evil.example.com")));
        assert!(!list.allows(Some("http://game.example.com")));
        assert!(list.allows(None));
    }

    proptest! {
        #[test]
        fn verifying_arbitrary_text_never_panics(token in ".{0,200}") {
            let _ = verify_token(SECRET, &token, at(0));
        }
    }
}
