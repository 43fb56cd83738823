//! Keys: the per-recording data key, the key-encryption keys (KEKs) that wrap it, and the
//! `key.json` file that holds the wrapped data key.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine as _;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::id::{check_key_id, InvalidName, RecordingId};

/// Why a key could not be loaded, wrapped or unwrapped. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    InvalidId(#[from] InvalidName),
    /// The KEK text is not 32 bytes as hex (64 digits) or base64 (44 characters).
    #[error("key-encryption key `{id}`: {reason}")]
    BadKek { id: String, reason: &'static str },
    #[error("key-encryption key `{id}`: cannot read {}: {source}", path.display())]
    KekFile {
        id: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("key-encryption key `{id}`: {} is readable by other users; chmod 600 it", path.display())]
    KekFilePermissions { id: String, path: PathBuf },
    #[error("key-encryption key `{id}`: environment variable `{var}` is not set")]
    KekEnvMissing { id: String, var: String },
    #[error("key-encryption key id `{0}` is configured twice")]
    DuplicateKek(String),
    /// key.json names a KEK that is not configured (rotated out, or the wrong config).
    #[error(
        "the recording's data key is wrapped by key-encryption key `{0}`, which is not configured"
    )]
    UnknownKek(String),
    /// The wrapped key does not authenticate: the configured KEK with that id holds other
    /// bytes, or key.json was altered or copied from another recording.
    #[error(
        "cannot unwrap the recording's data key with key-encryption key `{0}`: wrong key, or \
         key.json was altered or belongs to another recording"
    )]
    UnwrapFailed(String),
    #[error("key.json is malformed: {0}")]
    BadKeyFile(String),
}

/// A recording's 256-bit data key. Zeroed when dropped; `Debug` prints `<redacted>`.
///
/// A key made by [`DataKey::generate`] can write: it hands out a distinct file number to every
/// file created with it, and the file number is half of every nonce, so no nonce is ever used
/// twice under one key. A key unwrapped from `key.json` can only read (it cannot know which
/// file numbers were used already).
pub struct DataKey {
    key: Zeroizing<[u8; 32]>,
    recording: RecordingId,
    /// `Some` only for a freshly generated key: the next file number to hand out.
    next_file: Option<AtomicU32>,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey(<redacted>, recording {})", self.recording)
    }
}

impl DataKey {
    /// A fresh random key for a new recording, from the operating system's generator.
    pub fn generate(recording: RecordingId) -> DataKey {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut key[..]);
        DataKey {
            key,
            recording,
            next_file: Some(AtomicU32::new(1)),
        }
    }

    /// The recording this key belongs to; bound into every chunk.
    pub fn recording(&self) -> RecordingId {
        self.recording
    }

    pub(crate) fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&(*self.key).into())
    }

    /// The next unused file number, or `None` if this key may not write (or all 2^32-1 file
    /// numbers are used).
    pub(crate) fn take_file_number(&self) -> Option<u32> {
        let counter = self.next_file.as_ref()?;
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_add(1))
            .ok()
            .filter(|&n| n != 0)
    }
}

/// A key-encryption key: 32 bytes and its id. Used only to wrap recording data keys; separate
/// from every other secret. `Debug` prints the id and `<redacted>`; it has no `Display`.
pub struct Kek {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kek({}, <redacted>)", self.id)
    }
}

impl Kek {
    pub fn new(id: &str, key: [u8; 32]) -> Result<Kek, KeyError> {
        check_key_id(id)?;
        Ok(Kek {
            id: id.to_owned(),
            key: Zeroizing::new(key),
        })
    }

    /// Parses 32 bytes written as 64 hex digits or as base64 (standard alphabet, padded);
    /// surrounding whitespace is ignored.
    pub fn from_text(id: &str, text: &str) -> Result<Kek, KeyError> {
        check_key_id(id)?;
        let text = text.trim();
        let bad = |reason| KeyError::BadKek {
            id: id.to_owned(),
            reason,
        };
        let mut key = Zeroizing::new([0u8; 32]);
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            for (out, pair) in key.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
                let digits = std::str::from_utf8(pair).map_err(|_| bad("not hex"))?;
                *out = u8::from_str_radix(digits, 16).map_err(|_| bad("not hex"))?;
            }
        } else {
            let decoded = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|_| bad("expected 32 bytes as 64 hex digits or base64"))?,
            );
            if decoded.len() != 32 {
                return Err(bad("expected 32 bytes as 64 hex digits or base64"));
            }
            key.copy_from_slice(&decoded);
        }
        Ok(Kek {
            id: id.to_owned(),
            key,
        })
    }

    /// Reads the key from a file (hex or base64 text). On Unix a file readable by other users
    /// (mode `o+r`) is refused.
    pub fn from_file(id: &str, path: &Path) -> Result<Kek, KeyError> {
        check_key_id(id)?;
        let io = |source| KeyError::KekFile {
            id: id.to_owned(),
            path: path.to_path_buf(),
            source,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
            if mode & 0o004 != 0 {
                return Err(KeyError::KekFilePermissions {
                    id: id.to_owned(),
                    path: path.to_path_buf(),
                });
            }
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
        Kek::from_text(id, &text)
    }

    /// Reads the key from an environment variable (hex or base64 text).
    pub fn from_env(id: &str, var: &str) -> Result<Kek, KeyError> {
        check_key_id(id)?;
        let text = Zeroizing::new(std::env::var(var).map_err(|_| KeyError::KekEnvMissing {
            id: id.to_owned(),
            var: var.to_owned(),
        })?);
        Kek::from_text(id, &text)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&(*self.key).into())
    }
}

/// The configured KEKs: `current` wraps new recordings; older ones still unwrap recordings made
/// before a rotation.
#[derive(Debug)]
pub struct Keyring {
    current: Kek,
    older: Vec<Kek>,
}

impl Keyring {
    pub fn new(current: Kek) -> Keyring {
        Keyring {
            current,
            older: Vec::new(),
        }
    }

    /// Adds a KEK kept for reading older recordings. Ids must be distinct.
    pub fn with_older(mut self, kek: Kek) -> Result<Keyring, KeyError> {
        if self.get(kek.id()).is_some() {
            return Err(KeyError::DuplicateKek(kek.id));
        }
        self.older.push(kek);
        Ok(self)
    }

    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    pub fn get(&self, id: &str) -> Option<&Kek> {
        std::iter::once(&self.current)
            .chain(&self.older)
            .find(|k| k.id == id)
    }

    /// Wraps a data key with the current KEK (AES-256-GCM, random 96-bit nonce, AAD binding
    /// the recording id, the KEK id and the creation time).
    pub fn wrap(&self, key: &DataKey, created_unix_ms: u64) -> KeyFile {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let recording = key.recording();
        let aad = wrap_aad(&recording, self.current.id(), created_unix_ms);
        let mut wrapped = *key.key;
        let tag = self
            .current
            .cipher()
            .encrypt_inout_detached(&Nonce::from(nonce), &aad, (&mut wrapped[..]).into())
            .expect("AES-GCM accepts a 32-byte message with a short AAD");
        let mut out = wrapped.to_vec();
        out.extend_from_slice(&tag);
        KeyFile {
            format: 1,
            alg: KEY_WRAP_ALG.to_owned(),
            recording: recording.to_string(),
            kek_id: self.current.id().to_owned(),
            created_unix_ms,
            nonce: hex(&nonce),
            wrapped_key: hex(&out),
        }
    }

    /// Unwraps the data key in `file`, which must belong to `recording`. The result can read
    /// but not write.
    pub fn unwrap(&self, file: &KeyFile, recording: RecordingId) -> Result<DataKey, KeyError> {
        let bad = |m: &str| KeyError::BadKeyFile(m.to_owned());
        if file.format != 1 {
            return Err(bad("unsupported format version"));
        }
        if file.alg != KEY_WRAP_ALG {
            return Err(bad("unsupported algorithm"));
        }
        if RecordingId::parse(&file.recording).ok() != Some(recording) {
            return Err(bad("it names another recording"));
        }
        let kek = self
            .get(&file.kek_id)
            .ok_or_else(|| KeyError::UnknownKek(file.kek_id.clone()))?;
        let nonce: [u8; 12] = unhex(&file.nonce)
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| bad("nonce is not 12 bytes of hex"))?;
        let wrapped = unhex(&file.wrapped_key)
            .filter(|w| w.len() == 48)
            .ok_or_else(|| bad("wrapped_key is not 48 bytes of hex"))?;
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&wrapped[..32]);
        let tag: [u8; 16] = wrapped[32..].try_into().expect("48 - 32 = 16 bytes");
        let aad = wrap_aad(&recording, &file.kek_id, file.created_unix_ms);
        kek.cipher()
            .decrypt_inout_detached(
                &Nonce::from(nonce),
                &aad,
                (&mut key[..]).into(),
                &tag.into(),
            )
            .map_err(|_| KeyError::UnwrapFailed(file.kek_id.clone()))?;
        Ok(DataKey {
            key,
            recording,
            next_file: None,
        })
    }
}

/// The `alg` value in `key.json`.
pub const KEY_WRAP_ALG: &str = "A256GCM";

fn wrap_aad(recording: &RecordingId, kek_id: &str, created_unix_ms: u64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64 + kek_id.len());
    aad.extend_from_slice(b"bedside-recording-key\x00\x01");
    aad.extend_from_slice(recording.as_bytes());
    aad.push(u8::try_from(kek_id.len()).expect("key ids are at most 64 bytes"));
    aad.extend_from_slice(kek_id.as_bytes());
    aad.extend_from_slice(&created_unix_ms.to_be_bytes());
    aad
}

/// The contents of `<recording>/key.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// Always 1.
    pub format: u32,
    /// Always `"A256GCM"`: AES-256-GCM with the KEK.
    pub alg: String,
    /// The recording id (32 hex digits), bound into the wrap.
    pub recording: String,
    /// Which KEK wrapped the data key.
    pub kek_id: String,
    /// When the recording was created (Unix milliseconds), bound into the wrap; retention
    /// counts from here.
    pub created_unix_ms: u64,
    /// 12 bytes, hex.
    pub nonce: String,
    /// The 32-byte encrypted data key followed by the 16-byte tag, hex.
    pub wrapped_key: String,
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        write!(s, "{b:02x}").expect("writing to a String cannot fail");
    }
    s
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    text.as_bytes()
        .chunks_exact(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(id: &str, fill: u8) -> Kek {
        Kek::new(id, [fill; 32]).unwrap()
    }

    #[test]
    fn wrap_unwrap_round_trip_and_rotation() {
        let rec = RecordingId::generate();
        let dk = DataKey::generate(rec);
        let old_ring = Keyring::new(kek("k1", 1));
        let file = old_ring.wrap(&dk, 1234);
        assert_eq!(file.kek_id, "k1");
        let back = old_ring.unwrap(&file, rec).unwrap();
        assert_eq!(*back.key, *dk.key);
        assert!(
            back.take_file_number().is_none(),
            "unwrapped keys cannot write"
        );

        // After rotation the old KEK still reads.
        let rotated = Keyring::new(kek("k2", 2)).with_older(kek("k1", 1)).unwrap();
        assert_eq!(*rotated.unwrap(&file, rec).unwrap().key, *dk.key);
        // Without it: a clear error naming the id.
        let err = Keyring::new(kek("k2", 2)).unwrap(&file, rec).unwrap_err();
        assert!(
            matches!(err, KeyError::UnknownKek(ref id) if id == "k1"),
            "{err}"
        );
        // Same id, other bytes.
        let err = Keyring::new(kek("k1", 9)).unwrap(&file, rec).unwrap_err();
        assert!(matches!(err, KeyError::UnwrapFailed(_)), "{err}");
    }

    #[test]
    fn key_file_bound_to_recording_and_time() {
        let rec = RecordingId::generate();
        let ring = Keyring::new(kek("k1", 1));
        let file = ring.wrap(&DataKey::generate(rec), 1000);
        let other = RecordingId::generate();
        let mut moved = file.clone();
        moved.recording = other.to_string();
        assert!(ring.unwrap(&moved, other).is_err());
        let mut older = file.clone();
        older.created_unix_ms = 1;
        assert!(matches!(
            ring.unwrap(&older, rec),
            Err(KeyError::UnwrapFailed(_))
        ));
    }

    #[test]
    fn kek_text_forms_and_redaction() {
        let hex_text = "00".repeat(31) + "ff";
        let k = Kek::from_text("a", &format!("  {hex_text}\n")).unwrap();
        assert_eq!(k.key[31], 0xff);
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(*Kek::from_text("a", &b64).unwrap().key, [7u8; 32]);
        assert!(Kek::from_text("a", "abcd").is_err());
        assert!(Kek::from_text("a", &"zz".repeat(32)).is_err());
        let shown = format!("{k:?}");
        let shown = format!("{shown} {:?}", Keyring::new(k));
        assert!(
            shown.contains("<redacted>") && !shown.contains("ff"),
            "{shown}"
        );
        let dk = DataKey::generate(RecordingId::generate());
        assert!(format!("{dk:?}").contains("<redacted>"));
    }

    #[test]
    fn file_numbers_are_distinct() {
        let dk = DataKey::generate(RecordingId::generate());
        let a = dk.take_file_number().unwrap();
        let b = dk.take_file_number().unwrap();
        assert_ne!(a, b);
        let full = DataKey {
            next_file: Some(AtomicU32::new(u32::MAX)),
            ..DataKey::generate(RecordingId::generate())
        };
        assert_eq!(full.take_file_number(), None);
    }
}
