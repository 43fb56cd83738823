//! TURN credentials for participants (docs/design.md "Tokens and credentials"): the TURN REST
//! scheme that coturn calls `use-auth-secret`. Username `<unix expiry>:<opaque id>`, password
//! `base64(HMAC-SHA1(secret, username))`. `bedside-turn` checks them with the same secret.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bedside_proto::IceServer;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// What `bedside` needs to hand out TURN credentials.
#[derive(Clone)]
pub struct TurnSettings {
    /// `turn:`/`turns:` URLs, one per configured transport and port.
    pub urls: Vec<String>,
    /// The TURN REST shared secret (separate from every other secret).
    pub secret: Vec<u8>,
    /// How long credentials stay valid.
    pub ttl: Duration,
}

impl std::fmt::Debug for TurnSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnSettings")
            .field("urls", &self.urls.len())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TurnSettings {
    /// The ICE server entry for one participant; `id` is opaque (never a name).
    pub fn ice_server(&self, id: &str) -> IceServer {
        let expiry = SystemTime::now()
            .checked_add(self.ttl)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let username = format!("{expiry}:{id}");
        IceServer {
            urls: self.urls.clone(),
            credential: Some(password(&self.secret, &username)),
            username: Some(username),
        }
    }
}

/// `base64(HMAC-SHA1(secret, username))`.
pub fn password(secret: &[u8], username: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_turn_rest_scheme() {
        // RFC 2202 test case 2 for HMAC-SHA1: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            password(b"Jefe", "what do ya want for nothing?"),
            "7/zfauXrL6LSdBbV8YTfnCWafHk="
        );
        let t = TurnSettings {
            urls: vec!["turn:192.0.2.1:3478?transport=udp".into()],
            secret: b"s3cret".to_vec(),
            ttl: Duration::from_secs(600),
        };
        let s = t.ice_server("p7");
        let user = s.username.unwrap();
        let (expiry, id) = user.split_once(':').unwrap();
        assert_eq!(id, "p7");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let expiry: u64 = expiry.parse().unwrap();
        assert!(expiry >= now + 590 && expiry <= now + 610);
        assert_eq!(s.credential.unwrap(), password(b"s3cret", &user));
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
