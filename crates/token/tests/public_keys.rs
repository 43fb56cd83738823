//! Join tokens signed by a scheduling system with EdDSA or RS256 (docs/design.md
//! "Tokens and credentials"), and the attacks a verifier of public-key tokens must refuse.

use base64::Engine as _;
use bedside_proto::Role;
use bedside_token::{
    sign_hs256, sign_with_pem, Claims, PublicAlgorithm, PublicKey, TokenError, Verifier,
};

const ISSUER: &str = "scheduling.example";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const RSA_PRIVATE: &[u8] = include_bytes!("keys/test-only-rs256-private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("keys/test-only-rs256-public.pem");

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Claims {
    Claims {
        iss: ISSUER.into(),
        sub: "sched-4711".into(),
        visit: "visit-9".into(),
        visit_type: None,
        role: "provider".into(),
        exp: now() + 600,
        nbf: Some(now() - 5),
        jti: "jti-77".into(),
        name: Some("Dr. Grace Example".into()),
        reason: None,
        locale: None,
        fhir: None,
    }
}

/// An Ed25519 key pair: (private PEM, public PEM).
fn ed25519() -> (Vec<u8>, Vec<u8>) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    (
        pair.serialize_pem().into_bytes(),
        pair.public_key_pem().into_bytes(),
    )
}

fn key(kid: Option<&str>, algorithm: PublicAlgorithm, pem: &[u8]) -> PublicKey {
    PublicKey {
        kid: kid.map(str::to_owned),
        algorithm,
        pem: pem.to_vec(),
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with any header, signed with HMAC-SHA256 over `secret` (an attacker's tool).
fn hs256_with_header(header: &str, secret: &[u8]) -> String {
    let header: jsonwebtoken::Header = serde_json::from_str(header).unwrap();
    jsonwebtoken::encode(
        &header,
        &claims(),
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

#[test]
fn eddsa_keys_are_chosen_by_kid_so_keys_can_rotate() {
    let (old_private, old_public) = ed25519();
    let (new_private, new_public) = ed25519();
    let v = Verifier::new(
        None,
        &[
            key(Some("2024-old"), PublicAlgorithm::EdDsa, &old_public),
            key(Some("2025-new"), PublicAlgorithm::EdDsa, &new_public),
        ],
        Some(ISSUER),
        5,
    )
    .unwrap();

    let old = sign_with_pem(
        PublicAlgorithm::EdDsa,
        Some("2024-old"),
        &old_private,
        &claims(),
    )
    .unwrap();
    let new = sign_with_pem(
        PublicAlgorithm::EdDsa,
        Some("2025-new"),
        &new_private,
        &claims(),
    )
    .unwrap();
    for token in [&old, &new] {
        let grant = v.verify(token).unwrap();
        assert_eq!(grant.role, Role::Provider);
        assert_eq!(grant.visit.as_str(), "visit-9");
        assert_eq!(grant.subject, "sched-4711");
        assert_eq!(grant.name.as_deref(), Some("Dr. Grace Example"));
    }

    // Signed with the new key but naming the old one: the old key checks it, and it fails.
    let mislabelled = sign_with_pem(
        PublicAlgorithm::EdDsa,
        Some("2024-old"),
        &new_private,
        &claims(),
    )
    .unwrap();
    assert_eq!(
        v.verify(&mislabelled).unwrap_err(),
        TokenError::BadSignature
    );

    // After rotation only the new key is configured: old tokens stop working.
    let rotated = Verifier::new(
        None,
        &[key(Some("2025-new"), PublicAlgorithm::EdDsa, &new_public)],
        Some(ISSUER),
        5,
    )
    .unwrap();
    assert!(rotated.verify(&new).is_ok());
    assert_eq!(rotated.verify(&old).unwrap_err(), TokenError::UnknownKey);
}

#[test]
fn rs256_round_trip() {
    let v = Verifier::new(
        None,
        &[key(Some("rsa-1"), PublicAlgorithm::Rs256, RSA_PUBLIC)],
        Some(ISSUER),
        5,
    )
    .unwrap();
    let mut c = claims();
    c.role = "patient".into();
    c.visit_type = Some("group".into());
    let token = sign_with_pem(PublicAlgorithm::Rs256, Some("rsa-1"), RSA_PRIVATE, &c).unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let grant = v.verify(&token).unwrap();
    assert_eq!(grant.role, Role::Patient);
    assert_eq!(grant.visit_type, bedside_proto::VisitType::Group);

    // Any change to the signed part is caught.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut body = c.clone();
    body.role = "provider".into();
    parts[1] = b64(&serde_json::to_vec(&body).unwrap());
    assert_eq!(
        v.verify(&parts.join(".")).unwrap_err(),
        TokenError::BadSignature
    );
}

#[test]
fn an_unknown_kid_is_refused() {
    let (private, public) = ed25519();
    let v = Verifier::new(
        None,
        &[key(Some("k1"), PublicAlgorithm::EdDsa, &public)],
        None,
        5,
    )
    .unwrap();
    let token = sign_with_pem(PublicAlgorithm::EdDsa, Some("k2"), &private, &claims()).unwrap();
    assert_eq!(v.verify(&token).unwrap_err(), TokenError::UnknownKey);
}

#[test]
fn a_token_without_kid_needs_exactly_one_key_of_its_algorithm() {
    let (private_a, public_a) = ed25519();
    let (_, public_b) = ed25519();
    let token = sign_with_pem(PublicAlgorithm::EdDsa, None, &private_a, &claims()).unwrap();

    // One EdDSA key (and an RSA key, which does not count): accepted.
    let one = Verifier::new(
        None,
        &[
            key(Some("a"), PublicAlgorithm::EdDsa, &public_a),
            key(Some("rsa"), PublicAlgorithm::Rs256, RSA_PUBLIC),
        ],
        Some(ISSUER),
        5,
    )
    .unwrap();
    assert_eq!(one.verify(&token).unwrap().subject, "sched-4711");

    // Two EdDSA keys: which one is meant is unknown, even though one of them would verify it.
    let two = Verifier::new(
        None,
        &[
            key(Some("a"), PublicAlgorithm::EdDsa, &public_a),
            key(Some("b"), PublicAlgorithm::EdDsa, &public_b),
        ],
        Some(ISSUER),
        5,
    )
    .unwrap();
    assert_eq!(two.verify(&token).unwrap_err(), TokenError::UnknownKey);
}

#[test]
fn a_kid_is_bound_to_its_keys_algorithm() {
    let (_, ed_public) = ed25519();
    let v = Verifier::new(
        None,
        &[
            key(Some("ed"), PublicAlgorithm::EdDsa, &ed_public),
            key(Some("rsa"), PublicAlgorithm::Rs256, RSA_PUBLIC),
        ],
        None,
        5,
    )
    .unwrap();
    let token = sign_with_pem(PublicAlgorithm::Rs256, Some("ed"), RSA_PRIVATE, &claims()).unwrap();
    assert_eq!(
        v.verify(&token).unwrap_err(),
        TokenError::AlgorithmNotAllowed
    );
}

#[test]
fn hs256_is_refused_when_only_public_keys_are_configured() {
    let (_, public) = ed25519();
    let v = Verifier::new(
        None,
        &[key(Some("k1"), PublicAlgorithm::EdDsa, &public)],
        Some(ISSUER),
        5,
    )
    .unwrap();
    let token = sign_hs256(SECRET, &claims()).unwrap();
    assert_eq!(
        v.verify(&token).unwrap_err(),
        TokenError::AlgorithmNotAllowed
    );

    // An algorithm family that is not configured at all is refused the same way.
    let rsa = sign_with_pem(PublicAlgorithm::Rs256, None, RSA_PRIVATE, &claims()).unwrap();
    assert_eq!(v.verify(&rsa).unwrap_err(), TokenError::AlgorithmNotAllowed);
}

/// The classic key-confusion attack: the public key is public, so an attacker signs an HS256
/// token using the public key's PEM bytes as the HMAC secret, hoping the server feeds its
/// configured key to whatever algorithm the token names.
#[test]
fn key_confusion_hs256_signed_with_the_public_key_is_refused() {
    let (_, ed_public) = ed25519();
    for (alg, public) in [
        (PublicAlgorithm::Rs256, RSA_PUBLIC.to_vec()),
        (PublicAlgorithm::EdDsa, ed_public),
    ] {
        let v = Verifier::new(None, &[key(Some("k1"), alg, &public)], Some(ISSUER), 5).unwrap();
        for header in [
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#,
        ] {
            let forged = hs256_with_header(header, &public);
            assert_eq!(
                v.verify(&forged).unwrap_err(),
                TokenError::AlgorithmNotAllowed,
                "{alg:?} {header}"
            );
            // Also with the PEM trimmed, as some libraries would use it.
            let trimmed = String::from_utf8(public.clone()).unwrap();
            let forged = hs256_with_header(header, trimmed.trim().as_bytes());
            assert_eq!(
                v.verify(&forged).unwrap_err(),
                TokenError::AlgorithmNotAllowed
            );
        }

        // With an HS256 secret configured as well, HS256 tokens are checked against that
        // secret only, never against a public key.
        let both = Verifier::new(
            Some(SECRET),
            &[key(Some("k1"), alg, &public)],
            Some(ISSUER),
            5,
        )
        .unwrap();
        let forged = hs256_with_header(r#"{"alg":"HS256","kid":"k1"}"#, &public);
        assert_eq!(both.verify(&forged).unwrap_err(), TokenError::BadSignature);
        assert!(both.verify(&sign_hs256(SECRET, &claims()).unwrap()).is_ok());
    }
}

#[test]
fn alg_none_is_always_refused() {
    let (_, public) = ed25519();
    let verifiers = [
        Verifier::new(
            Some(SECRET),
            &[key(Some("k1"), PublicAlgorithm::EdDsa, &public)],
            None,
            5,
        )
        .unwrap(),
        Verifier::new(None, &[key(None, PublicAlgorithm::EdDsa, &public)], None, 5).unwrap(),
        Verifier::hs256(SECRET, None, 5),
    ];
    let body = b64(&serde_json::to_vec(&claims()).unwrap());
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"none","kid":"k1"}"#,
        r#"{"alg":"None"}"#,
        r#"{"alg":"NONE"}"#,
    ] {
        for signature in ["", "c2lnbmF0dXJl"] {
            let token = format!("{}.{body}.{signature}", b64(header.as_bytes()));
            for v in &verifiers {
                assert_eq!(
                    v.verify(&token).unwrap_err(),
                    TokenError::AlgorithmNotAllowed,
                    "{header}"
                );
            }
        }
    }
}

#[test]
fn expiry_and_not_before_allow_the_leeway_and_no_more() {
    let (private, public) = ed25519();
    let v = Verifier::new(
        None,
        &[key(None, PublicAlgorithm::EdDsa, &public)],
        Some(ISSUER),
        30,
    )
    .unwrap();
    let sign = |c: &Claims| sign_with_pem(PublicAlgorithm::EdDsa, None, &private, c).unwrap();

    let mut c = claims();
    c.exp = now() - 10; // expired, but within the 30 s leeway
    assert!(v.verify(&sign(&c)).is_ok());
    c.exp = now() - 120;
    assert_eq!(v.verify(&sign(&c)).unwrap_err(), TokenError::Expired);

    let mut c = claims();
    c.nbf = Some(now() + 10); // a clock slightly ahead of ours
    assert!(v.verify(&sign(&c)).is_ok());
    c.nbf = Some(now() + 120);
    assert_eq!(v.verify(&sign(&c)).unwrap_err(), TokenError::NotYetValid);
}

#[test]
fn a_wrong_issuer_is_refused() {
    let v = Verifier::new(
        None,
        &[key(None, PublicAlgorithm::Rs256, RSA_PUBLIC)],
        Some(ISSUER),
        5,
    )
    .unwrap();
    let mut c = claims();
    c.iss = "someone-else.example".into();
    let token = sign_with_pem(PublicAlgorithm::Rs256, None, RSA_PRIVATE, &c).unwrap();
    assert_eq!(v.verify(&token).unwrap_err(), TokenError::WrongIssuer);
}

#[test]
fn bad_keys_are_refused_at_construction() {
    let (ed_private, ed_public) = ed25519();
    let new = |secret: Option<&[u8]>, keys: &[PublicKey]| Verifier::new(secret, keys, None, 5);
    let invalid = [
        // Not a PEM at all, or a damaged one.
        new(None, &[key(None, PublicAlgorithm::EdDsa, b"hello")]),
        new(
            None,
            &[key(
                None,
                PublicAlgorithm::Rs256,
                &RSA_PUBLIC[..RSA_PUBLIC.len() / 2],
            )],
        ),
        // A private key where the public one belongs.
        new(None, &[key(None, PublicAlgorithm::Rs256, RSA_PRIVATE)]),
        new(None, &[key(None, PublicAlgorithm::EdDsa, &ed_private)]),
        // A key of the other algorithm.
        new(None, &[key(None, PublicAlgorithm::Rs256, &ed_public)]),
        new(None, &[key(None, PublicAlgorithm::EdDsa, RSA_PUBLIC)]),
        // Two keys under one kid, or an empty kid.
        new(
            None,
            &[
                key(Some("k"), PublicAlgorithm::EdDsa, &ed_public),
                key(Some("k"), PublicAlgorithm::Rs256, RSA_PUBLIC),
            ],
        ),
        new(None, &[key(Some(""), PublicAlgorithm::EdDsa, &ed_public)]),
        // A short HMAC secret, or no key at all.
        new(Some(b"short"), &[]),
        new(None, &[]),
    ];
    for (i, result) in invalid.into_iter().enumerate() {
        assert_eq!(result.unwrap_err(), TokenError::InvalidKey, "case {i}");
    }
    assert!(new(Some(SECRET), &[]).is_ok());

    // Signing needs a private key of the right kind.
    for (alg, pem) in [
        (PublicAlgorithm::EdDsa, &ed_public[..]),
        (PublicAlgorithm::Rs256, RSA_PUBLIC),
        (PublicAlgorithm::EdDsa, RSA_PRIVATE),
        (PublicAlgorithm::Rs256, &ed_private[..]),
        (PublicAlgorithm::EdDsa, b"junk"),
    ] {
        assert_eq!(
            sign_with_pem(alg, None, pem, &claims()).unwrap_err(),
            TokenError::InvalidKey,
            "{alg:?}"
        );
    }
}

#[test]
fn hs256_and_public_keys_can_be_configured_together() {
    let (private, public) = ed25519();
    let v = Verifier::new(
        Some(SECRET),
        &[key(Some("k1"), PublicAlgorithm::EdDsa, &public)],
        Some(ISSUER),
        5,
    )
    .unwrap();
    assert!(v.verify(&sign_hs256(SECRET, &claims()).unwrap()).is_ok());
    let ed = sign_with_pem(PublicAlgorithm::EdDsa, Some("k1"), &private, &claims()).unwrap();
    assert!(v.verify(&ed).is_ok());
    // Other algorithms of a configured family are still refused.
    let hs384 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS384),
        &claims(),
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    assert_eq!(
        v.verify(&hs384).unwrap_err(),
        TokenError::AlgorithmNotAllowed
    );
}

#[test]
fn error_messages_never_carry_token_claim_or_kid_values() {
    let errors = [
        TokenError::Malformed,
        TokenError::BadSignature,
        TokenError::Expired,
        TokenError::NotYetValid,
        TokenError::WrongIssuer,
        TokenError::UnknownRole,
        TokenError::UnknownVisitType,
        TokenError::MissingClaim,
        TokenError::AlgorithmNotAllowed,
        TokenError::UnknownKey,
        TokenError::InvalidKey,
    ];
    let (private, _) = ed25519();
    let token = sign_with_pem(PublicAlgorithm::EdDsa, Some("kid-x1"), &private, &claims()).unwrap();
    for e in errors {
        let text = format!("{e} {e:?}");
        for secret in [
            token.as_str(),
            "kid-x1",
            "sched-4711",
            "visit-9",
            "Grace",
            ISSUER,
        ] {
            assert!(!text.contains(secret), "{text}");
        }
    }
}
