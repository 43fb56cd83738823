//! Recording ids and stream names: validated before they ever reach a path.

use std::fmt;
use std::str::FromStr;

use rand::RngCore;

/// Why an id or name given from outside was refused. Carries no copy of the input: a refused
/// value may be anything, so it is described, never echoed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    #[error("recording id must be exactly 32 lowercase hex digits (0-9, a-f); got {len} bytes")]
    RecordingId { len: usize },
    #[error(
        "stream name must be 1 to 64 characters of A-Z a-z 0-9 . _ - and not start with '.'; \
         got {len} bytes"
    )]
    Stream { len: usize },
    #[error("stream name `{0}` is reserved")]
    Reserved(&'static str),
    #[error("key id must be 1 to 64 characters of A-Z a-z 0-9 . _ -; got {len} bytes")]
    KeyId { len: usize },
}

/// A recording's id: 128 random bits, written as 32 lowercase hex digits. It is the name of the
/// recording's directory, so it is checked character by character before any path is built:
/// `../`, `/`, NUL, empty, upper case and long strings are all refused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordingId([u8; 16]);

impl RecordingId {
    /// A fresh random id (from the operating system's generator).
    pub fn generate() -> RecordingId {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        RecordingId(bytes)
    }

    /// Parses and validates an id typed by a user or read from a directory name.
    pub fn parse(text: &str) -> Result<RecordingId, InvalidName> {
        let err = InvalidName::RecordingId { len: text.len() };
        let raw = text.as_bytes();
        if raw.len() != 32 {
            return Err(err);
        }
        let mut bytes = [0u8; 16];
        for (out, pair) in bytes.iter_mut().zip(raw.chunks_exact(2)) {
            let hi = lower_hex_digit(pair[0]).ok_or(err.clone())?;
            let lo = lower_hex_digit(pair[1]).ok_or(err.clone())?;
            *out = (hi << 4) | lo;
        }
        Ok(RecordingId(bytes))
    }

    pub fn from_bytes(bytes: [u8; 16]) -> RecordingId {
        RecordingId(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

fn lower_hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for RecordingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for RecordingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordingId({self})")
    }
}

impl FromStr for RecordingId {
    type Err = InvalidName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RecordingId::parse(s)
    }
}

/// The file name stem reserved for the recording's metadata stream.
pub const META_STREAM: &str = "meta.json";

/// Checks a stream name (`p7-audio.wav`, `meta.json`): 1 to 64 of `[A-Za-z0-9._-]`, not starting
/// with a dot. The encrypted file is `<name>.enc` in the recording's directory.
pub fn check_stream_name(name: &str) -> Result<(), InvalidName> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.bytes().all(is_name_byte);
    if ok {
        Ok(())
    } else {
        Err(InvalidName::Stream { len: name.len() })
    }
}

/// Checks a key-encryption key id: 1 to 64 of `[A-Za-z0-9._-]`.
pub fn check_key_id(id: &str) -> Result<(), InvalidName> {
    if !id.is_empty() && id.len() <= 64 && id.bytes().all(is_name_byte) {
        Ok(())
    } else {
        Err(InvalidName::KeyId { len: id.len() })
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_round_trip_and_differ() {
        let a = RecordingId::generate();
        let b = RecordingId::generate();
        assert_ne!(a, b);
        let text = a.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(RecordingId::parse(&text).unwrap(), a);
    }

    #[test]
    fn hostile_ids_are_refused() {
        let good = "0123456789abcdef0123456789abcdef";
        assert!(RecordingId::parse(good).is_ok());
        for bad in [
            "",
            "../../etc/passwd",
            "..",
            "/",
            "0123456789abcdef0123456789abcde/",
            "../3456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcde\0",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcdef0",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdeg",
            " 123456789abcdef0123456789abcdef",
            "é123456789abcdef0123456789abcde",
        ] {
            let err = RecordingId::parse(bad).unwrap_err();
            assert!(err.to_string().contains("32 lowercase hex"), "{err}");
        }
        let long = "a".repeat(10_000);
        assert!(RecordingId::parse(&long).is_err());
    }

    #[test]
    fn stream_names() {
        for good in ["meta.json", "p7-audio.wav", "P_1.ivf", &"a".repeat(64)] {
            check_stream_name(good).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "../x",
            "a\0b",
            "a b",
            &"a".repeat(65),
        ] {
            assert!(check_stream_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_ids() {
        check_key_id("kek-2024.1").unwrap();
        assert!(check_key_id("").is_err());
        assert!(check_key_id("a/b").is_err());
    }
}
