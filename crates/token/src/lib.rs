//! Join tokens (DESIGN.md "Tokens and credentials"): the claims, verification, and the signing
//! that `bedside token` and `bedside dev` use with the dev key.
//!
//! A token is PHI-bearing (`name`, `reason`) and a bearer credential: nothing in this crate
//! formats a token or a claim value into an error message.

use std::fmt;

use bedside_proto::{Role, VisitId, VisitType};
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The claims of a join token as they travel in the JWT.
#[derive(Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// Opaque participant id from the scheduling system.
    pub sub: String,
    pub visit: String,
    #[serde(default)]
    pub visit_type: Option<String>,
    pub role: String,
    pub exp: u64,
    #[serde(default)]
    pub nbf: Option<u64>,
    pub jti: String,
    /// PHI: shown to other participants, never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// PHI: shown only to clinicians, never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names and reasons are PHI; sub and jti are enough to correlate.
        f.debug_struct("Claims")
            .field("sub", &self.sub)
            .field("visit", &self.visit)
            .field("role", &self.role)
            .field("jti", &self.jti)
            .finish_non_exhaustive()
    }
}

/// What a verified token grants.
#[derive(Clone)]
pub struct Grant {
    pub subject: String,
    pub visit: VisitId,
    pub visit_type: VisitType,
    pub role: Role,
    pub jti: String,
    pub expires_at: u64,
    pub name: Option<String>,
    pub reason: Option<String>,
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("visit", &self.visit)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused. Messages are safe to show to the client and to log.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the join token is malformed")]
    Malformed,
    #[error("the join token's signature or algorithm is not accepted")]
    BadSignature,
    #[error("the join token has expired")]
    Expired,
    #[error("the join token is not valid yet")]
    NotYetValid,
    #[error("the join token was issued by an issuer this server does not trust")]
    WrongIssuer,
    #[error("the join token names an unknown role")]
    UnknownRole,
    #[error("the join token names an unknown visit type")]
    UnknownVisitType,
    #[error("the join token lacks a required claim")]
    MissingClaim,
}

/// Verifies join tokens against the configured key.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Verifier { .. }")
    }
}

impl Verifier {
    /// A verifier for HS256 tokens with a shared secret. `issuer`, when set, must match `iss`.
    pub fn hs256(secret: &[u8], issuer: Option<&str>, leeway_seconds: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = leeway_seconds;
        validation.validate_nbf = true;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        if let Some(iss) = issuer {
            validation.set_issuer(&[iss]);
        }
        Verifier {
            key: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn verify(&self, token: &str) -> Result<Grant, TokenError> {
        if token.len() > 8 * 1024 {
            return Err(TokenError::Malformed);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidAlgorithmName
                | ErrorKind::InvalidKeyFormat => TokenError::BadSignature,
                ErrorKind::MissingRequiredClaim(_) => TokenError::MissingClaim,
                _ => TokenError::Malformed,
            },
        )?;
        let c = data.claims;
        if c.visit.is_empty() || c.sub.is_empty() || c.jti.is_empty() || c.visit.len() > 256 {
            return Err(TokenError::MissingClaim);
        }
        let role = c
            .role
            .parse::<Role>()
            .map_err(|_| TokenError::UnknownRole)?;
        let visit_type = match c.visit_type.as_deref() {
            None => VisitType::default(),
            Some(t) => t.parse().map_err(|_| TokenError::UnknownVisitType)?,
        };
        Ok(Grant {
            subject: c.sub,
            visit: VisitId::new(c.visit),
            visit_type,
            role,
            jti: c.jti,
            expires_at: c.exp,
            name: c.name,
            reason: c.reason,
        })
    }
}

/// Signs claims with HS256 (the dev key of `bedside dev` and `bedside token`).
pub fn sign_hs256(secret: &[u8], claims: &Claims) -> Result<String, TokenError> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn claims() -> Claims {
        Claims {
            iss: "bedside-dev".into(),
            sub: "sub-1".into(),
            visit: "visit-1".into(),
            visit_type: None,
            role: "patient".into(),
            exp: now() + 600,
            nbf: Some(now() - 5),
            jti: "jti-1".into(),
            name: Some("Ada Patient".into()),
            reason: Some("follow-up".into()),
        }
    }

    fn verifier() -> Verifier {
        Verifier::hs256(SECRET, Some("bedside-dev"), 5)
    }

    #[test]
    fn round_trip_grants_the_claims() {
        let token = sign_hs256(SECRET, &claims()).unwrap();
        let grant = verifier().verify(&token).unwrap();
        assert_eq!(grant.role, Role::Patient);
        assert_eq!(grant.visit.as_str(), "visit-1");
        assert_eq!(grant.visit_type, VisitType::Consult);
        assert_eq!(grant.name.as_deref(), Some("Ada Patient"));
    }

    #[test]
    fn refuses_wrong_secret_expired_future_issuer_role() {
        let v = verifier();
        let t = sign_hs256(b"another-secret-another-secret-xx", &claims()).unwrap();
        assert_eq!(v.verify(&t).unwrap_err(), TokenError::BadSignature);

        let mut c = claims();
        c.exp = now() - 120;
        assert_eq!(
            v.verify(&sign_hs256(SECRET, &c).unwrap()).unwrap_err(),
            TokenError::Expired
        );

        let mut c = claims();
        c.nbf = Some(now() + 120);
        assert_eq!(
            v.verify(&sign_hs256(SECRET, &c).unwrap()).unwrap_err(),
            TokenError::NotYetValid
        );

        let mut c = claims();
        c.iss = "someone-else".into();
        assert_eq!(
            v.verify(&sign_hs256(SECRET, &c).unwrap()).unwrap_err(),
            TokenError::WrongIssuer
        );

        let mut c = claims();
        c.role = "surgeon".into();
        assert_eq!(
            v.verify(&sign_hs256(SECRET, &c).unwrap()).unwrap_err(),
            TokenError::UnknownRole
        );
    }

    #[test]
    fn refuses_alg_none_and_garbage() {
        let v = verifier();
        // {"alg":"none","typ":"JWT"} . claims . empty signature
        let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        let good = sign_hs256(SECRET, &claims()).unwrap();
        let body = good.split('.').nth(1).unwrap();
        let unsigned = format!("{header}.{body}.");
        assert!(v.verify(&unsigned).is_err());
        assert_eq!(v.verify("garbage").unwrap_err(), TokenError::Malformed);
        assert_eq!(
            v.verify(&"a".repeat(10_000)).unwrap_err(),
            TokenError::Malformed
        );
    }

    #[test]
    fn debug_output_carries_no_phi() {
        let c = claims();
        let text = format!("{c:?}");
        assert!(!text.contains("Ada"));
        assert!(!text.contains("follow-up"));
    }
}
