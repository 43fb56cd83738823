//! One line of the log: its canonical form, its hash and its timestamp.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AuditEvent;

/// The `prev` of the first entry: 64 zeros.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest accepted string in an event field, in bytes. Events hold short opaque ids and codes;
/// the cap keeps every line small enough to be written with one `write` and read back whole.
pub(crate) const MAX_FIELD_BYTES: usize = 256;

/// Longest line `verify` reads (a line of maximal fields, every byte escaped, fits well below).
pub(crate) const MAX_LINE_BYTES: usize = 64 * 1024;

/// An entry as stored. The field order here *is* the canonical order of the hash definition
/// (seq, ts, kind, visit, participant, subject, role, actor, code, prev, then hash), so serde_json
/// writes them in exactly that order. Do not reorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Entry {
    pub(crate) seq: u64,
    pub(crate) ts: String,
    pub(crate) kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) visit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) participant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) code: Option<String>,
    pub(crate) prev: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) hash: Option<String>,
}

impl Entry {
    /// A new, not yet hashed entry continuing the chain after `prev`.
    pub(crate) fn new(seq: u64, ts: String, event: AuditEvent, prev: String) -> Entry {
        Entry {
            seq,
            ts,
            kind: event.kind,
            visit: event.visit,
            participant: event.participant,
            subject: event.subject,
            role: event.role,
            actor: event.actor,
            code: event.code,
            prev,
            hash: None,
        }
    }

    /// The serde_json serialization of the entry without its `hash` field.
    pub(crate) fn canonical_json(&self) -> Vec<u8> {
        let unhashed = Entry {
            hash: None,
            ..self.clone()
        };
        // Serializing a struct of strings and integers into a Vec cannot fail.
        serde_json::to_vec(&unhashed).expect("an entry of strings and integers always serializes")
    }

    /// `hex(SHA-256(prev || "\n" || canonical_json))`.
    pub(crate) fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.prev.as_bytes());
        h.update(b"\n");
        h.update(self.canonical_json());
        hex(&h.finalize())
    }

    /// The full line as written to the file, with `hash`, without the trailing newline.
    pub(crate) fn line(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an entry of strings and integers always serializes")
    }
}

/// Checks an event before it is written: a non-empty `kind` and short fields. Returns the name of
/// the offending field.
pub(crate) fn check_event(event: &AuditEvent) -> Result<(), &'static str> {
    if event.kind.is_empty() {
        return Err("kind");
    }
    let fields: [(&'static str, Option<&str>); 7] = [
        ("kind", Some(event.kind.as_str())),
        ("visit", event.visit.as_deref()),
        ("participant", event.participant.as_deref()),
        ("subject", event.subject.as_deref()),
        ("role", event.role.as_deref()),
        ("actor", event.actor.as_deref()),
        ("code", event.code.as_deref()),
    ];
    for (name, value) in fields {
        if value.is_some_and(|v| v.len() > MAX_FIELD_BYTES) {
            return Err(name);
        }
    }
    Ok(())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Formats milliseconds since the Unix epoch as RFC 3339 UTC with milliseconds,
/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub(crate) fn format_rfc3339_millis(unix_millis: u64) -> String {
    let days = unix_millis / 86_400_000;
    let ms_of_day = unix_millis % 86_400_000;
    let (year, month, day) = civil_from_days(days);
    let (h, rest) = (ms_of_day / 3_600_000, ms_of_day % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, ms) = (rest / 1000, rest % 1000);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

/// The Gregorian date of a day count since 1970-01-01 (proleptic calendar; eras of 400 years).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1st, 0..=365
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The current time as the log writes it. A clock before 1970 is written as the epoch.
pub(crate) fn now_rfc3339_millis() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2))
        .unwrap_or(0);
    format_rfc3339_millis(millis)
}

/// Whether `ts` has the shape `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub(crate) fn is_rfc3339_millis(ts: &str) -> bool {
    let b = ts.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            23 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29T12:34:56.789Z, a leap day in a century leap year.
        assert_eq!(
            format_rfc3339_millis(951_827_696_789),
            "2000-02-29T12:34:56.789Z"
        );
        // 2024-12-31T23:59:59.999Z
        assert_eq!(
            format_rfc3339_millis(1_735_689_599_999),
            "2024-12-31T23:59:59.999Z"
        );
        // 2100-03-01T00:00:00.000Z, after a century non-leap February.
        assert_eq!(
            format_rfc3339_millis(4_107_542_400_000),
            "2100-03-01T00:00:00.000Z"
        );
        assert!(is_rfc3339_millis(&now_rfc3339_millis()));
        assert!(!is_rfc3339_millis("2024-12-31T23:59:59Z"));
    }

    #[test]
    fn hash_matches_the_documented_definition() {
        let e = Entry::new(
            1,
            "2024-01-02T03:04:05.678Z".into(),
            AuditEvent {
                kind: "join".into(),
                visit: Some("v1".into()),
                participant: Some("p7".into()),
                ..AuditEvent::default()
            },
            GENESIS.into(),
        );
        let canonical = String::from_utf8(e.canonical_json()).unwrap();
        assert_eq!(
            canonical,
            format!(
                r#"{{"seq":1,"ts":"2024-01-02T03:04:05.678Z","kind":"join","visit":"v1","participant":"p7","prev":"{GENESIS}"}}"#
            )
        );
        let mut input = Vec::new();
        input.extend_from_slice(GENESIS.as_bytes());
        input.push(b'\n');
        input.extend_from_slice(canonical.as_bytes());
        assert_eq!(e.compute_hash(), hex(&Sha256::digest(&input)));
        assert_eq!(
            hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
