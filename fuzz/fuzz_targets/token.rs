//! The signaling server's tokens and keys (`auth.rs`): any token string
//! verifies to a subject or an error, never a panic; an issued token verifies
//! to its subject until it expires; TURN credentials and resume ids come out
//! of any input. The input is `(control, bytes)` chunks: the secret, the
//! token or subject, the ttl and the clock (seconds since the epoch).
#![no_main]

use std::time::{Duration, SystemTime};

use gamenet_fuzz::Chunks;
use gamenet_signaling::auth::{issue_token, resume_id, turn_credentials, verify_token};
use libfuzzer_sys::fuzz_target;

fn number(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    let mut chunks = Chunks::new(data);
    let (Some((mode, secret)), Some((_, text)), Some((_, ttl)), Some((_, clock))) =
        (chunks.next(), chunks.next(), chunks.next(), chunks.next())
    else {
        return;
    };
    let text = String::from_utf8_lossy(text);
    let ttl = Duration::from_secs(number(ttl));
    let Some(now) = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(number(clock))) else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(subject) = verify_token(secret, &text, now) {
                assert!(
                    text.contains(&format!(".{subject}.")),
                    "{text:?} gave {subject:?}"
                );
            }
        }
        1 => {
            if let Some(token) = issue_token(secret, &text, ttl, now) {
                let verified = verify_token(secret, &token, now);
                if ttl.is_zero() {
                    assert!(verified.is_err(), "{token} valid for 0 s");
                } else {
                    assert_eq!(verified.as_deref(), Ok(&*text), "{token}");
                }
            }
        }
        _ => {
            let (user, credential) = turn_credentials(secret, &text, ttl, now);
            assert!(!user.is_empty() && !credential.is_empty());
            if let Some(id) = resume_id(secret, &text) {
                assert_eq!(resume_id(secret, &text), Some(id));
            }
        }
    }
});
