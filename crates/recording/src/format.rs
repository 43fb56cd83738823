//! The encrypted file format shared by [`crate::EncryptedWriter`] and [`crate::EncryptedReader`].
//! `docs/recording-format.md` is the normative description; keep the two in step.
//!
//! ```text
//! header:  magic "BDSREC" | version 1 (u8) | alg 1 (u8) | chunk_size (u32 BE)
//!          | file_no (u32 BE) | recording id (16 bytes) | name_len (u8) | name
//!          | header tag (16 bytes) = GCM(key, nonce(file_no, 2^64-1), aad = header fields, "")
//! chunk i: GCM(key, nonce(file_no, i), aad = header fields | i (u64 BE) | final (u8), plaintext)
//!          as ciphertext | tag (16 bytes); every chunk but the last holds exactly chunk_size
//!          plaintext bytes, the last (final = 1) holds 0..chunk_size-1 bytes.
//! nonce:   file_no (u32 BE) | index (u64 BE)
//! ```

use std::path::PathBuf;

use aes_gcm::aead::Nonce;
use aes_gcm::Aes256Gcm;

use crate::id::{check_stream_name, RecordingId};

pub(crate) const MAGIC: &[u8; 6] = b"BDSREC";
pub(crate) const VERSION: u8 = 1;
/// AES-256-GCM, 96-bit nonce, 128-bit tag.
pub(crate) const ALG_AES256GCM: u8 = 1;
pub(crate) const TAG_LEN: usize = 16;
/// magic, version, alg, chunk_size, file_no, recording id, name_len.
pub(crate) const FIXED_HEADER_LEN: usize = 6 + 1 + 1 + 4 + 4 + 16 + 1;
/// Index reserved for the header tag's nonce; no chunk may use it.
pub(crate) const HEADER_NONCE_INDEX: u64 = u64::MAX;

/// The plaintext bytes per chunk the writer uses unless told otherwise.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// Largest chunk size a reader accepts (bounds its memory use on hostile files).
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;

/// Why an encrypted file could not be written or read. Tampering, a wrong key and truncation
/// each have their own variant; none carries plaintext or key material.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a Bedside encrypted recording file", path.display())]
    NotEncryptedFile { path: PathBuf },
    #[error("{} uses format version {version}, which this build cannot read", path.display())]
    UnsupportedVersion { path: PathBuf, version: u8 },
    #[error("{}: malformed header: {reason}", path.display())]
    BadHeader { path: PathBuf, reason: &'static str },
    /// The header names another stream: the file was renamed or copied over another.
    #[error("{} holds stream `{found}`, not `{expected}`", path.display())]
    WrongStream {
        path: PathBuf,
        expected: String,
        found: String,
    },
    /// The header names another recording: the file was copied in from elsewhere.
    #[error("{} belongs to recording {found}, not {expected}", path.display())]
    WrongRecording {
        path: PathBuf,
        expected: RecordingId,
        found: RecordingId,
    },
    /// The header's tag does not verify: the data key is wrong or the header was altered.
    #[error("{}: header does not authenticate: wrong data key, or the file was altered", path.display())]
    HeaderNotAuthentic { path: PathBuf },
    /// A complete chunk does not authenticate: altered, reordered, or spliced in from another
    /// file.
    #[error("{}: chunk {chunk} does not authenticate: the file was altered, reordered or spliced", path.display())]
    Tampered { path: PathBuf, chunk: u64 },
    /// The file ends without an authentic final chunk: the writer stopped (crash, `kill -9`,
    /// power loss) or the end of the file was cut off or damaged. The `complete_chunks`
    /// chunks before it were authentic and have been returned.
    #[error(
        "{}: truncated: {complete_chunks} complete chunk(s) ({complete_bytes} bytes) are intact, \
         then {trailing_bytes} byte(s) of an incomplete or damaged chunk, and no final chunk",
        path.display()
    )]
    Truncated {
        path: PathBuf,
        complete_chunks: u64,
        complete_bytes: u64,
        trailing_bytes: u64,
    },
    /// Data after the final chunk.
    #[error("{}: {extra} unexpected byte(s) after the final chunk", path.display())]
    TrailingData { path: PathBuf, extra: u64 },
    #[error("{}: this data key can only read (it was unwrapped from key.json) or has no file numbers left", path.display())]
    KeyCannotWrite { path: PathBuf },
    #[error("chunk size {0} is outside 1..={MAX_CHUNK_SIZE}")]
    BadChunkSize(u32),
    #[error(transparent)]
    InvalidName(#[from] crate::id::InvalidName),
    /// An earlier write failed, so the file's end is uncertain; the writer accepts nothing more.
    #[error("{}: an earlier write failed; this stream accepts no more data", path.display())]
    WriterFailed { path: PathBuf },
    #[error("{}: too many chunks", path.display())]
    TooManyChunks { path: PathBuf },
}

impl FormatError {
    /// True for [`FormatError::Truncated`]: the file is a clean prefix of a valid file.
    pub fn is_truncation(&self) -> bool {
        matches!(self, FormatError::Truncated { .. })
    }
}

/// The authenticated header fields of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) chunk_size: u32,
    pub(crate) file_no: u32,
    pub(crate) recording: RecordingId,
    pub(crate) stream: String,
}

impl Header {
    /// The header fields as bytes (without the tag): the AAD prefix of every chunk.
    pub(crate) fn fields(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED_HEADER_LEN + self.stream.len() + 9);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(ALG_AES256GCM);
        out.extend_from_slice(&self.chunk_size.to_be_bytes());
        out.extend_from_slice(&self.file_no.to_be_bytes());
        out.extend_from_slice(self.recording.as_bytes());
        out.push(u8::try_from(self.stream.len()).expect("stream names are at most 64 bytes"));
        out.extend_from_slice(self.stream.as_bytes());
        out
    }

    /// Parses the fixed part; returns the header (stream name filled in) once the name bytes
    /// are supplied via [`Header::parse_name`].
    pub(crate) fn parse_fixed(
        fixed: &[u8; FIXED_HEADER_LEN],
        path: &std::path::Path,
    ) -> Result<(u32, u32, RecordingId, usize), FormatError> {
        if &fixed[..6] != MAGIC {
            return Err(FormatError::NotEncryptedFile {
                path: path.to_path_buf(),
            });
        }
        if fixed[6] != VERSION {
            return Err(FormatError::UnsupportedVersion {
                path: path.to_path_buf(),
                version: fixed[6],
            });
        }
        let bad = |reason| FormatError::BadHeader {
            path: path.to_path_buf(),
            reason,
        };
        if fixed[7] != ALG_AES256GCM {
            return Err(bad("unknown algorithm"));
        }
        let chunk_size = u32::from_be_bytes(fixed[8..12].try_into().expect("4 bytes"));
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(bad("chunk size out of range"));
        }
        let file_no = u32::from_be_bytes(fixed[12..16].try_into().expect("4 bytes"));
        if file_no == 0 {
            return Err(bad("file number 0"));
        }
        let recording = RecordingId::from_bytes(fixed[16..32].try_into().expect("16 bytes"));
        let name_len = usize::from(fixed[32]);
        if name_len == 0 || name_len > 64 {
            return Err(bad("stream name length out of range"));
        }
        Ok((chunk_size, file_no, recording, name_len))
    }

    pub(crate) fn parse_name(name: &[u8], path: &std::path::Path) -> Result<String, FormatError> {
        let bad = FormatError::BadHeader {
            path: path.to_path_buf(),
            reason: "invalid stream name",
        };
        let name = std::str::from_utf8(name).map_err(|_| bad)?;
        check_stream_name(name).map_err(|_| FormatError::BadHeader {
            path: path.to_path_buf(),
            reason: "invalid stream name",
        })?;
        Ok(name.to_owned())
    }
}

pub(crate) fn nonce(file_no: u32, index: u64) -> Nonce<Aes256Gcm> {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&file_no.to_be_bytes());
    n[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::<Aes256Gcm>::from(n)
}

/// Builds chunk AADs: the header fields, then 9 bytes rewritten per chunk.
pub(crate) struct ChunkAad {
    buf: Vec<u8>,
    prefix: usize,
}

impl ChunkAad {
    pub(crate) fn new(header_fields: Vec<u8>) -> ChunkAad {
        let prefix = header_fields.len();
        let mut buf = header_fields;
        buf.extend_from_slice(&[0u8; 9]);
        ChunkAad { buf, prefix }
    }

    pub(crate) fn header(&self) -> &[u8] {
        &self.buf[..self.prefix]
    }

    pub(crate) fn for_chunk(&mut self, index: u64, last: bool) -> &[u8] {
        self.buf[self.prefix..self.prefix + 8].copy_from_slice(&index.to_be_bytes());
        self.buf[self.prefix + 8] = u8::from(last);
        &self.buf
    }
}
