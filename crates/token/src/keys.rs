//! Public keys for EdDSA and RS256 tokens, and how a token's header picks one.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::{Deserialize, Serialize};

use crate::TokenError;

/// An asymmetric signing algorithm for join tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PublicAlgorithm {
    /// Ed25519 (`"alg": "EdDSA"`).
    #[serde(rename = "EdDSA")]
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (`"alg": "RS256"`), keys of 2048 bits or more.
    #[serde(rename = "RS256")]
    Rs256,
}

impl PublicAlgorithm {
    pub(crate) fn jwt(self) -> Algorithm {
        match self {
            PublicAlgorithm::EdDsa => Algorithm::EdDSA,
            PublicAlgorithm::Rs256 => Algorithm::RS256,
        }
    }
}

/// A public key that verifies join tokens: SubjectPublicKeyInfo PEM (`PUBLIC KEY`), or for RS256
/// also PKCS#1 (`RSA PUBLIC KEY`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The `kid` tokens signed with this key carry in their header, if any.
    pub kid: Option<String>,
    pub algorithm: PublicAlgorithm,
    pub pem: Vec<u8>,
}

/// A configured public key, parsed.
pub(crate) struct VerifyingKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

pub(crate) fn load_verifying_keys(keys: &[PublicKey]) -> Result<Vec<VerifyingKey>, TokenError> {
    let mut out: Vec<VerifyingKey> = Vec::with_capacity(keys.len());
    for k in keys {
        if let Some(kid) = &k.kid {
            let duplicate = out.iter().any(|o| o.kid.as_ref() == Some(kid));
            if kid.is_empty() || duplicate {
                return Err(TokenError::InvalidKey);
            }
        }
        let labels: &[&str] = match k.algorithm {
            PublicAlgorithm::EdDsa => &["PUBLIC KEY"],
            PublicAlgorithm::Rs256 => &["PUBLIC KEY", "RSA PUBLIC KEY"],
        };
        if !pem_label_is(&k.pem, labels) {
            return Err(TokenError::InvalidKey);
        }
        // These check that the key is one of the algorithm's family (the OID of a PKCS#8 key).
        let key = match k.algorithm {
            PublicAlgorithm::EdDsa => DecodingKey::from_ed_pem(&k.pem),
            PublicAlgorithm::Rs256 => DecodingKey::from_rsa_pem(&k.pem),
        }
        .map_err(|_| TokenError::InvalidKey)?;
        out.push(VerifyingKey {
            kid: k.kid.clone(),
            algorithm: k.algorithm.jwt(),
            key,
        });
    }
    Ok(out)
}

/// Whether `pem` holds exactly one PEM block and its label is one of `labels`. Refusing a
/// `PRIVATE KEY` where a public one belongs keeps private keys off the server, and refusing a
/// `CERTIFICATE` keeps an expiry date from being silently ignored.
pub(crate) fn pem_label_is(pem: &[u8], labels: &[&str]) -> bool {
    let Ok(text) = std::str::from_utf8(pem) else {
        return false;
    };
    let mut begins = text.match_indices("-----BEGIN ");
    let (Some((at, _)), None) = (begins.next(), begins.next()) else {
        return false;
    };
    let rest = &text[at + "-----BEGIN ".len()..];
    let Some(label) = rest.split_once("-----").map(|(label, _)| label) else {
        return false;
    };
    labels.contains(&label)
}

/// The header fields that select a key.
pub(crate) struct KeySelector {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
}

/// The algorithms a token may name at all; anything else, `none` included, is refused before any
/// key is looked at.
const ACCEPTED_ALGS: [&str; 3] = ["HS256", "EdDSA", "RS256"];

/// Reads the token's header: [`TokenError::AlgorithmNotAllowed`] for an `alg` outside HS256,
/// EdDSA and RS256 (such as `none`), [`TokenError::Malformed`] for anything unreadable.
pub(crate) fn read_header(token: &str) -> Result<KeySelector, TokenError> {
    #[derive(Deserialize)]
    struct RawHeader {
        alg: Option<String>,
    }
    let mut parts = token.split('.');
    let (Some(encoded), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| TokenError::Malformed)?;
    let raw: RawHeader = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    match raw.alg.as_deref() {
        None => return Err(TokenError::Malformed),
        Some(alg) if !ACCEPTED_ALGS.contains(&alg) => return Err(TokenError::AlgorithmNotAllowed),
        Some(_) => {}
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    Ok(KeySelector {
        alg: header.alg,
        kid: header.kid,
    })
}

/// The key that must have signed a token of algorithm `alg` (EdDSA or RS256) naming `kid`.
pub(crate) fn choose<'k>(
    keys: &'k [VerifyingKey],
    alg: Algorithm,
    kid: Option<&str>,
) -> Result<&'k DecodingKey, TokenError> {
    if !keys.iter().any(|k| k.algorithm == alg) {
        return Err(TokenError::AlgorithmNotAllowed);
    }
    match kid {
        Some(kid) => {
            let key = keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .ok_or(TokenError::UnknownKey)?;
            // A key is bound to its algorithm: a token may not reuse a kid with another one.
            if key.algorithm != alg {
                return Err(TokenError::AlgorithmNotAllowed);
            }
            Ok(&key.key)
        }
        None => {
            let mut of_alg = keys.iter().filter(|k| k.algorithm == alg);
            match (of_alg.next(), of_alg.next()) {
                (Some(only), None) => Ok(&only.key),
                _ => Err(TokenError::UnknownKey),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_labels() {
        let public = b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert!(pem_label_is(public, &["PUBLIC KEY"]));
        assert!(!pem_label_is(public, &["RSA PUBLIC KEY"]));
        let private = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(!pem_label_is(private, &["PUBLIC KEY"]));
        let two = [&public[..], &private[..]].concat();
        assert!(!pem_label_is(&two, &["PUBLIC KEY", "PRIVATE KEY"]));
        assert!(!pem_label_is(b"not a pem", &["PUBLIC KEY"]));
        assert!(!pem_label_is(&[0xff, 0xfe], &["PUBLIC KEY"]));
        assert!(!pem_label_is(b"-----BEGIN PUBLIC KEY", &["PUBLIC KEY"]));
    }

    #[test]
    fn header_algorithms() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = |h: &str| format!("{}.e30.sig", b64(h));
        for alg in ["none", "None", "NONE", "HS384", "ES256", "PS256", ""] {
            let t = token(&format!(r#"{{"alg":"{alg}"}}"#));
            assert!(
                matches!(read_header(&t), Err(TokenError::AlgorithmNotAllowed)),
                "{alg}"
            );
        }
        assert!(matches!(
            read_header(&token("{}")),
            Err(TokenError::Malformed)
        ));
        assert!(matches!(read_header("a.b"), Err(TokenError::Malformed)));
        assert!(matches!(read_header("a.b.c.d"), Err(TokenError::Malformed)));
        let ok = read_header(&token(r#"{"alg":"EdDSA","kid":"k1","typ":"JWT"}"#)).unwrap();
        assert_eq!(ok.alg, Algorithm::EdDSA);
        assert_eq!(ok.kid.as_deref(), Some("k1"));
    }
}
