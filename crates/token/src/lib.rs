//! Join tokens (docs/design.md "Tokens and credentials"): the claims, verification, and the signing
//! that `bedside token` and `bedside dev` use with the dev key.
//!
//! Tokens are signed by the hospital's scheduling system with EdDSA or RS256 (a public key in
//! Bedside's config, preferred), or with HS256 and a shared secret. See [`Verifier::new`] for how
//! a token's algorithm and `kid` select the key.
//!
//! A token is PHI-bearing (`name`, `reason`) and a bearer credential: nothing in this crate
//! formats a token or a claim value into an error message.

use std::fmt;

mod keys;

pub use keys::{PublicAlgorithm, PublicKey};

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
    /// The language the web client speaks to this person: a BCP 47 tag (`es`, `en-US`),
    /// checked by [`is_valid_locale`]. Absent: the browser's language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// FHIR references the scheduler knows for this visit (optional): they become the visit's
    /// FHIR Encounter's subject, appointment and participants (docs/integration.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fhir: Option<FhirRefs>,
}

/// The optional `fhir` claim: relative FHIR references (`Type/id`), opaque like `sub`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirRefs {
    /// The Encounter's subject: `Patient/<id>` (usually on every token of the visit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// The booked appointment: `Appointment/<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment: Option<String>,
    /// This participant's own resource: `Practitioner/<id>`, `PractitionerRole/<id>`,
    /// `RelatedPerson/<id>` (a caregiver) or `Patient/<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<String>,
}

impl FhirRefs {
    /// Whether every reference given is `Type/id` with an allowed type and a FHIR id (1-64 of
    /// `A-Za-z0-9-.`): nothing else can travel into an Encounter.
    pub fn is_valid(&self) -> bool {
        let ok = |r: &Option<String>, types: &[&str]| {
            r.as_deref().is_none_or(|r| {
                r.split_once('/').is_some_and(|(t, id)| {
                    types.contains(&t)
                        && (1..=64).contains(&id.len())
                        && id
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                })
            })
        };
        ok(&self.patient, &["Patient"])
            && ok(&self.appointment, &["Appointment"])
            && ok(
                &self.participant,
                &[
                    "Practitioner",
                    "PractitionerRole",
                    "RelatedPerson",
                    "Patient",
                ],
            )
    }
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
    /// A valid BCP 47 tag from the token's `locale` claim, for the client's language.
    pub locale: Option<String>,
    /// The token's FHIR references (all `None` without a `fhir` claim).
    pub fhir: FhirRefs,
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("visit", &self.visit)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused, or a key not accepted. Messages are safe to show to the client and to
/// log: they never include the token, a claim value or a key id.
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
    /// The `fhir` claim holds something other than FHIR references of the allowed types.
    #[error("the join token's fhir claim is not a set of FHIR references")]
    InvalidFhirClaim,
    /// The token's `alg` is not one this server is configured for (including `none`, and HS256
    /// when only public keys are configured).
    #[error("the join token's signing algorithm is not accepted by this server")]
    AlgorithmNotAllowed,
    /// The token names a key (`kid`) that is not configured, or names none where several keys of
    /// its algorithm are.
    #[error("the join token was signed with a key this server does not know")]
    UnknownKey,
    /// A configured key (or a signing key) is not a valid key of its algorithm.
    #[error("a token key is invalid or of the wrong kind")]
    InvalidKey,
    /// A token longer than [`MAX_TOKEN_BYTES`]: refused when verifying, and when signing so
    /// that no tool mints a token the server would then refuse.
    #[error("the join token is longer than 8 KiB")]
    TooLarge,
    /// The `locale` claim is not a BCP 47 language tag of at most [`MAX_LOCALE_BYTES`].
    #[error("the join token's locale is not a valid language tag")]
    InvalidLocale,
}

/// The longest `locale` claim accepted (RFC 5646 §4.4.1: 35 characters hold any tag a
/// translation needs).
pub const MAX_LOCALE_BYTES: usize = 35;

/// Whether `tag` has the shape of a BCP 47 language tag (RFC 5646 §2.1): a primary language of
/// 2 to 8 letters, then subtags of 1 to 8 letters or digits, separated by `-`, 35 bytes at
/// most. The shape is checked, not the registry: the client falls back to English for a
/// language it has no translation of.
pub fn is_valid_locale(tag: &str) -> bool {
    if tag.is_empty() || tag.len() > MAX_LOCALE_BYTES {
        return false;
    }
    let mut subtags = tag.split('-');
    let primary = subtags.next().unwrap_or_default();
    (2..=8).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && subtags
            .all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The longest join token accepted, in bytes. Real tokens are a few hundred bytes; the bound
/// keeps a hostile one from costing signature work or memory.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Refuses a freshly signed token that the verifier would refuse for its size.
fn within_size(token: String) -> Result<String, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        Err(TokenError::TooLarge)
    } else {
        Ok(token)
    }
}

/// Verifies join tokens against the configured keys.
pub struct Verifier {
    hs256: Option<DecodingKey>,
    public_keys: Vec<keys::VerifyingKey>,
    issuer: Option<String>,
    leeway_seconds: u64,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Verifier { .. }")
    }
}

impl Verifier {
    /// A verifier for HS256 tokens with a shared secret. `issuer`, when set, must match `iss`.
    pub fn hs256(secret: &[u8], issuer: Option<&str>, leeway_seconds: u64) -> Self {
        Verifier {
            hs256: Some(DecodingKey::from_secret(secret)),
            public_keys: Vec::new(),
            issuer: issuer.map(str::to_owned),
            leeway_seconds,
        }
    }

    /// Verifies EdDSA/RS256 tokens with any of `public_keys` (chosen by the token's `kid`; a
    /// token without `kid` is accepted only when exactly one key of its algorithm is
    /// configured), and HS256 tokens with `hs256_secret` if given. With public keys configured
    /// and no HS256 secret, an HS256 token is refused ([`TokenError::AlgorithmNotAllowed`]),
    /// even if it happens to be signed with a public key's bytes (key confusion). `alg: none`
    /// is always refused.
    ///
    /// A token whose `kid` names a configured key must use that key's algorithm; a `kid` is
    /// matched only against keys configured with one.
    ///
    /// [`TokenError::InvalidKey`] when a PEM is not a public key of its algorithm (a private key
    /// is refused too: it does not belong on this server), when two keys share a `kid` or a
    /// `kid` is empty, when the HS256 secret is shorter than 32 bytes, or when no key at all is
    /// given.
    pub fn new(
        hs256_secret: Option<&[u8]>,
        public_keys: &[PublicKey],
        issuer: Option<&str>,
        leeway_seconds: u64,
    ) -> Result<Verifier, TokenError> {
        if hs256_secret.is_none() && public_keys.is_empty() {
            return Err(TokenError::InvalidKey);
        }
        let hs256 = match hs256_secret {
            Some(secret) if secret.len() < MIN_HS256_SECRET_BYTES => {
                return Err(TokenError::InvalidKey)
            }
            Some(secret) => Some(DecodingKey::from_secret(secret)),
            None => None,
        };
        Ok(Verifier {
            hs256,
            public_keys: keys::load_verifying_keys(public_keys)?,
            issuer: issuer.map(str::to_owned),
            leeway_seconds,
        })
    }

    pub fn verify(&self, token: &str) -> Result<Grant, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge);
        }
        let header = keys::read_header(token)?;
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.as_ref().ok_or(TokenError::AlgorithmNotAllowed)?,
            alg => keys::choose(&self.public_keys, alg, header.kid.as_deref())?,
        };
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation(header.alg))
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidAlgorithmName
                | ErrorKind::InvalidKeyFormat
                | ErrorKind::InvalidRsaKey(_)
                | ErrorKind::InvalidEcdsaKey => TokenError::BadSignature,
                ErrorKind::MissingRequiredClaim(_) => TokenError::MissingClaim,
                _ => TokenError::Malformed,
            })?;
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
        if c.locale.as_deref().is_some_and(|l| !is_valid_locale(l)) {
            return Err(TokenError::InvalidLocale);
        }
        let fhir = c.fhir.unwrap_or_default();
        if !fhir.is_valid() {
            return Err(TokenError::InvalidFhirClaim);
        }
        Ok(Grant {
            subject: c.sub,
            visit: VisitId::new(c.visit),
            visit_type,
            role,
            jti: c.jti,
            expires_at: c.exp,
            name: c.name,
            reason: c.reason,
            locale: c.locale,
            fhir,
        })
    }

    /// The claim checks for a token whose header says `alg` (already matched to a key).
    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.leeway = self.leeway_seconds;
        validation.validate_nbf = true;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        if let Some(iss) = &self.issuer {
            validation.set_issuer(&[iss]);
        }
        validation
    }
}

/// Shortest HS256 secret [`Verifier::new`] accepts (the size of the SHA-256 output, RFC 7518).
const MIN_HS256_SECRET_BYTES: usize = 32;

/// Signs claims with HS256 (the dev key of `bedside dev` and `bedside token`).
pub fn sign_hs256(secret: &[u8], claims: &Claims) -> Result<String, TokenError> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|_| TokenError::Malformed)
    .and_then(within_size)
}

/// Signs claims with a private key in PEM (PKCS#8 `PRIVATE KEY`; for RS256 also PKCS#1
/// `RSA PRIVATE KEY`), as the scheduling system does; `kid`, when given, goes in the header.
/// For tests and the scheduling-system simulator: Bedside itself never holds these keys.
pub fn sign_with_pem(
    alg: PublicAlgorithm,
    kid: Option<&str>,
    private_pem: &[u8],
    claims: &Claims,
) -> Result<String, TokenError> {
    if !keys::pem_label_is(private_pem, &["PRIVATE KEY", "RSA PRIVATE KEY"]) {
        return Err(TokenError::InvalidKey);
    }
    let key = match alg {
        PublicAlgorithm::EdDsa => EncodingKey::from_ed_pem(private_pem),
        PublicAlgorithm::Rs256 => EncodingKey::from_rsa_pem(private_pem),
    }
    .map_err(|_| TokenError::InvalidKey)?;
    let mut header = Header::new(alg.jwt());
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidKeyFormat
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::RsaFailedSigning => TokenError::InvalidKey,
            _ => TokenError::Malformed,
        })
        .and_then(within_size)
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
            locale: None,
            fhir: None,
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
    fn fhir_references_travel_to_the_grant_and_anything_else_is_refused() {
        let v = verifier();
        let mut c = claims();
        c.fhir = Some(FhirRefs {
            patient: Some("Patient/pt-889".into()),
            appointment: Some("Appointment/a.1".into()),
            participant: Some("RelatedPerson/rp-7".into()),
        });
        let grant = v.verify(&sign_hs256(SECRET, &c).unwrap()).unwrap();
        assert_eq!(grant.fhir, c.fhir.clone().unwrap());
        assert_eq!(
            v.verify(&sign_hs256(SECRET, &claims()).unwrap())
                .unwrap()
                .fhir,
            FhirRefs::default(),
            "the claim is optional"
        );
        for (patient, appointment, participant) in [
            ("Practitioner/x", "Appointment/a", "Practitioner/p"),
            ("Patient/x", "Patient/a", "Practitioner/p"),
            ("Patient/x", "Appointment/a", "Organization/o"),
            ("Patient/Ada Lovelace", "Appointment/a", "Practitioner/p"),
            ("Patient/", "Appointment/a", "Practitioner/p"),
            (
                "https://ehr.example/Patient/x",
                "Appointment/a",
                "Practitioner/p",
            ),
        ] {
            c.fhir = Some(FhirRefs {
                patient: Some(patient.into()),
                appointment: Some(appointment.into()),
                participant: Some(participant.into()),
            });
            assert_eq!(
                v.verify(&sign_hs256(SECRET, &c).unwrap()).unwrap_err(),
                TokenError::InvalidFhirClaim,
                "{patient} {appointment} {participant}"
            );
        }
        // Unknown keys inside the claim are refused too: nothing unchecked reaches an Encounter.
        let mut raw = serde_json::to_value(claims()).unwrap();
        raw["fhir"] = serde_json::json!({"patient": "Patient/x", "name": "Ada"});
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &raw,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(v.verify(&t).is_err());
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
        assert_eq!(
            v.verify(&unsigned).unwrap_err(),
            TokenError::AlgorithmNotAllowed
        );
        assert_eq!(v.verify("garbage").unwrap_err(), TokenError::Malformed);
        assert_eq!(
            v.verify(&"a".repeat(10_000)).unwrap_err(),
            TokenError::TooLarge
        );
    }

    #[test]
    fn a_locale_claim_is_granted_when_it_is_a_language_tag() {
        let v = verifier();
        for tag in ["es", "en-US", "zh-Hant-TW", "es-419", "sgn-BE-FR"] {
            let mut c = claims();
            c.locale = Some(tag.into());
            let grant = v.verify(&sign_hs256(SECRET, &c).unwrap()).unwrap();
            assert_eq!(grant.locale.as_deref(), Some(tag));
        }
        assert_eq!(
            v.verify(&sign_hs256(SECRET, &claims()).unwrap())
                .unwrap()
                .locale,
            None
        );
        let long = format!("en-{}", ["abcdefgh"; 4].join("-"));
        assert!(long.len() > MAX_LOCALE_BYTES);
        for bad in [
            "",
            "e",
            "es_ES",
            "es-",
            "-es",
            "1s",
            "es-abcdefghi",
            "es--MX",
            "<b>",
            &long,
        ] {
            assert!(!is_valid_locale(bad), "{bad:?}");
            let mut c = claims();
            c.locale = Some(bad.into());
            assert_eq!(
                v.verify(&sign_hs256(SECRET, &c).unwrap()).unwrap_err(),
                TokenError::InvalidLocale,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn debug_output_carries_no_phi() {
        let c = claims();
        let text = format!("{c:?}");
        assert!(!text.contains("Ada"));
        assert!(!text.contains("follow-up"));
    }
}
