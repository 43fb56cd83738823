//! TURN REST credentials (coturn's `use-auth-secret` scheme) and stateless nonces.
//!
//! Username `<unix expiry>[:<opaque id>]`, password `base64(HMAC-SHA1(secret, username))`; the
//! long-term key is `MD5(username ":" realm ":" password)`. Nonces carry their own expiry and a
//! MAC bound to the client address, so every shard and connection can check them without state.

use std::net::IpAddr;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;

/// Shared TURN secrets; the first signs nothing here (signaling mints credentials), all verify,
/// so a secret can be rotated by listing the new one first and removing the old one later.
#[derive(Clone)]
pub struct Secrets(Vec<Vec<u8>>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets([{} redacted])", self.0.len())
    }
}

impl Secrets {
    /// Parse a secret file: one secret per non-empty line, `#` comments ignored.
    pub fn from_file_text(text: &str) -> Option<Self> {
        let v: Vec<Vec<u8>> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.as_bytes().to_vec())
            .collect();
        (!v.is_empty()).then_some(Secrets(v))
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.0.iter().map(Vec::as_slice)
    }
}

/// What a REST username says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestUser<'a> {
    pub expiry_unix: u64,
    /// The opaque id after the colon, or the whole username when there is none.
    pub quota_key: &'a str,
}

/// Parse `expiry` or `expiry:id`. `None` for anything else.
pub fn parse_rest_username(u: &str) -> Option<RestUser<'_>> {
    let (exp, _) = u.split_once(':').unwrap_or((u, ""));
    if exp.is_empty() || exp.len() > 20 || !exp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let expiry_unix = exp.parse().ok()?;
    let quota_key = u.split_once(':').map_or(u, |(_, id)| id);
    Some(RestUser {
        expiry_unix,
        quota_key,
    })
}

/// The REST password for `username` under `secret`.
pub fn rest_password(secret: &[u8], username: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Long-term credential key: MD5(username:realm:password).
pub fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    h.finalize().into()
}

/// Candidate keys for `username`, one per configured secret.
pub fn candidate_keys<'s>(
    secrets: &'s Secrets,
    username: &'s str,
    realm: &'s str,
) -> impl Iterator<Item = [u8; 16]> + 's {
    secrets
        .iter()
        .map(move |s| long_term_key(username, realm, &rest_password(s, username)))
}

/// Mints and checks nonces: `<16 hex expiry><16 hex MAC>`.
#[derive(Clone)]
pub struct NonceKey([u8; 32]);

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceKey(redacted)")
    }
}

/// Result of checking a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    Valid,
    Stale,
    Invalid,
}

impl NonceKey {
    pub fn new(key: [u8; 32]) -> Self {
        NonceKey(key)
    }

    fn mac(&self, expiry: u64, client: IpAddr) -> u64 {
        let mut mac = Hmac::<Sha1>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(&expiry.to_be_bytes());
        match client {
            IpAddr::V4(ip) => mac.update(&ip.octets()),
            IpAddr::V6(ip) => mac.update(&ip.octets()),
        }
        let out = mac.finalize().into_bytes();
        u64::from_be_bytes([
            out[0], out[1], out[2], out[3], out[4], out[5], out[6], out[7],
        ])
    }

    pub fn mint(&self, now_unix: u64, lifetime: u64, client: IpAddr) -> String {
        let exp = now_unix + lifetime;
        format!("{:016x}{:016x}", exp, self.mac(exp, client))
    }

    pub fn check(&self, nonce: &[u8], now_unix: u64, client: IpAddr) -> NonceCheck {
        let parse = |b: &[u8]| {
            std::str::from_utf8(b)
                .ok()
                .and_then(|s| u64::from_str_radix(s, 16).ok())
        };
        if nonce.len() != 32 {
            return NonceCheck::Invalid;
        }
        let (Some(exp), Some(mac)) = (parse(&nonce[..16]), parse(&nonce[16..])) else {
            return NonceCheck::Invalid;
        };
        // Constant time is not needed for a MAC we mint ourselves with a random key, but cheap.
        let ok: bool = subtle::ConstantTimeEq::ct_eq(&self.mac(exp, client), &mac).into();
        if !ok {
            NonceCheck::Invalid
        } else if exp < now_unix {
            NonceCheck::Stale
        } else {
            NonceCheck::Valid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_usernames() {
        assert_eq!(
            parse_rest_username("1700000000:abc"),
            Some(RestUser {
                expiry_unix: 1_700_000_000,
                quota_key: "abc"
            })
        );
        assert_eq!(
            parse_rest_username("1700000000"),
            Some(RestUser {
                expiry_unix: 1_700_000_000,
                quota_key: "1700000000"
            })
        );
        for bad in [
            "",
            ":x",
            "abc:1",
            "-5:x",
            "99999999999999999999999:x",
            "12a",
        ] {
            assert_eq!(parse_rest_username(bad), None, "{bad}");
        }
    }

    #[test]
    fn password_matches_coturn_scheme() {
        // printf '%s' 1700000000:harness | openssl dgst -sha1 -hmac secret -binary | base64
        assert_eq!(
            rest_password(b"secret", "1700000000:harness"),
            "gSS6EMrGGsZrGqp+Riv19BMcbRw="
        );
    }

    #[test]
    fn nonces() {
        let k = NonceKey::new([7; 32]);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let n = k.mint(1000, 600, ip);
        assert_eq!(k.check(n.as_bytes(), 1000, ip), NonceCheck::Valid);
        assert_eq!(k.check(n.as_bytes(), 1601, ip), NonceCheck::Stale);
        assert_eq!(
            k.check(n.as_bytes(), 1000, "192.0.2.2".parse().unwrap()),
            NonceCheck::Invalid
        );
        assert_eq!(k.check(b"garbage", 1000, ip), NonceCheck::Invalid);
        assert_eq!(k.check(&[0xFF; 32], 1000, ip), NonceCheck::Invalid);
    }
}
