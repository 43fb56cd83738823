//! The signature of a webhook request:
//!
//! `Bedside-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`
//!
//! The timestamp is the moment of this attempt (a retry is signed anew), so a receiver refuses a
//! request whose `t` is more than a few minutes from its own clock: a captured request cannot be
//! replayed later. The body is signed as the bytes on the wire: a receiver verifies before it
//! parses. Several `v1=` values may appear (a secret in rotation); one match is enough.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "Bedside-Signature";
/// The event's id, also in the body: receivers de-duplicate by it.
pub const EVENT_ID_HEADER: &str = "Bedside-Event-Id";
pub const EVENT_TYPE_HEADER: &str = "Bedside-Event-Type";
/// How far a request's timestamp may be from the receiver's clock.
pub const DEFAULT_TOLERANCE_SECONDS: u64 = 300;
/// A signature header longer than this is refused unread.
const MAX_HEADER: usize = 1024;

/// The header value for `body` signed at `timestamp` (unix seconds).
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", hex(&mac(secret, timestamp, body)))
}

fn mac(secret: &[u8], timestamp: u64, body: &[u8]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature header is missing a timestamp or a v1 signature, or is too long")]
    Malformed,
    #[error("the request's timestamp is too far from now (a replay, or a clock that is off)")]
    Stale,
    #[error("no signature matches the body")]
    Mismatch,
}

/// Checks `header` against the raw `body` with any of `secrets`, at `now` (unix seconds), and
/// returns the request's timestamp. Refuses a timestamp more than `tolerance` seconds from `now`
/// in either direction.
pub fn verify(
    secrets: &[&[u8]],
    header: &str,
    body: &[u8],
    now: u64,
    tolerance: u64,
) -> Result<u64, VerifyError> {
    if header.len() > MAX_HEADER {
        return Err(VerifyError::Malformed);
    }
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("v1", v)) => sigs.extend(unhex(v)),
            _ => {}
        }
    }
    let (Some(t), false) = (t, sigs.is_empty()) else {
        return Err(VerifyError::Malformed);
    };
    if t.abs_diff(now) > tolerance {
        return Err(VerifyError::Stale);
    }
    for secret in secrets {
        for sig in &sigs {
            // verify_slice compares in constant time.
            let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
            m.update(t.to_string().as_bytes());
            m.update(b".");
            m.update(body);
            if m.verify_slice(sig).is_ok() {
                return Ok(t);
            }
        }
    }
    Err(VerifyError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"whsec-test-0123456789abcdefghijklmnop";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"visit.started"}"#;

    #[test]
    fn a_signed_body_verifies_and_a_changed_one_does_not() {
        let h = sign(KEY, 1_700_000_000, BODY);
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(
            verify(&[KEY], &h, BODY, 1_700_000_010, 300),
            Ok(1_700_000_000)
        );
        let mut changed = BODY.to_vec();
        changed[10] ^= 1;
        assert_eq!(
            verify(&[KEY], &h, &changed, 1_700_000_010, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(&[b"another-secret"], &h, BODY, 1_700_000_010, 300),
            Err(VerifyError::Mismatch)
        );
        // A changed timestamp breaks the signature too.
        let moved = h.replace("t=1700000000", "t=1700000001");
        assert_eq!(
            verify(&[KEY], &moved, BODY, 1_700_000_010, 300),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn old_and_future_timestamps_are_refused() {
        let h = sign(KEY, 1_000_000, BODY);
        assert_eq!(verify(&[KEY], &h, BODY, 1_000_300, 300), Ok(1_000_000));
        assert_eq!(
            verify(&[KEY], &h, BODY, 1_000_301, 300),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(&[KEY], &h, BODY, 999_699, 300),
            Err(VerifyError::Stale)
        );
    }

    #[test]
    fn malformed_headers_and_rotation() {
        for bad in ["", "t=1", "v1=00", "t=x,v1=zz", &"t=1,".repeat(400)] {
            assert_eq!(
                verify(&[KEY], bad, BODY, 1, 300),
                Err(VerifyError::Malformed),
                "{bad:?}"
            );
        }
        // Two signatures (old and new secret): either secret verifies.
        let old = sign(b"old-secret", 5, BODY);
        let new = sign(KEY, 5, BODY);
        let both = format!("{new},{}", old.split_once(',').unwrap().1);
        assert_eq!(verify(&[b"old-secret"], &both, BODY, 5, 300), Ok(5));
        assert_eq!(verify(&[KEY], &both, BODY, 5, 300), Ok(5));
    }
}
