//! Streaming writer of one encrypted file.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aes_gcm::aead::AeadInOut;
use aes_gcm::Aes256Gcm;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::format::{
    nonce, ChunkAad, FormatError, Header, DEFAULT_CHUNK_SIZE, HEADER_NONCE_INDEX, MAX_CHUNK_SIZE,
    TAG_LEN,
};
use crate::fsutil;
use crate::id::check_stream_name;
use crate::keys::{hex, DataKey};

/// What a finished stream holds: recorded in the metadata, checked by `verify`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSummary {
    /// Stream name; the file is `<name>.enc`.
    pub name: String,
    /// Plaintext length in bytes.
    pub bytes: u64,
    /// Number of chunks including the final one.
    pub chunks: u64,
    /// SHA-256 of the plaintext, lowercase hex.
    pub sha256: String,
}

/// Streams of one recording being written: `None` until the stream is finished.
pub(crate) type Registry = Arc<Mutex<BTreeMap<String, Option<StreamSummary>>>>;

/// Options for [`EncryptedWriter::create_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterOptions {
    /// Plaintext bytes per chunk (1..=16 MiB). Default 64 KiB.
    pub chunk_size: u32,
    /// `sync_data` after every this many chunks (0 = only at `finish`). Default 1: a crash
    /// loses at most the open chunk.
    pub sync_every: u32,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            chunk_size: DEFAULT_CHUNK_SIZE,
            sync_every: 1,
        }
    }
}

/// Writes one stream as `<dir>/<stream>.enc`: plaintext is buffered in memory up to one chunk,
/// then sealed and appended. Nothing in plain text ever reaches the file.
///
/// Dropping the writer without [`EncryptedWriter::finish`] leaves a file without a final chunk,
/// which readers report as truncated (after returning every complete chunk).
pub struct EncryptedWriter {
    file: File,
    path: PathBuf,
    name: String,
    cipher: Aes256Gcm,
    file_no: u32,
    aad: ChunkAad,
    chunk_size: usize,
    /// Plaintext of the open chunk, then (briefly) its ciphertext and tag.
    buf: Zeroizing<Vec<u8>>,
    next_index: u64,
    sha: Sha256,
    bytes: u64,
    sync_every: u32,
    unsynced: u32,
    failed: bool,
    registry: Option<Registry>,
}

impl fmt::Debug for EncryptedWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedWriter")
            .field("path", &self.path)
            .field("chunks", &self.next_index)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl EncryptedWriter {
    /// Creates `<dir>/<stream_name>.enc` (it must not exist; mode 0600) with default options,
    /// writes and syncs the header.
    pub fn create(
        dir: &Path,
        stream_name: &str,
        key: &DataKey,
    ) -> Result<EncryptedWriter, FormatError> {
        EncryptedWriter::create_with(dir, stream_name, key, WriterOptions::default())
    }

    pub fn create_with(
        dir: &Path,
        stream_name: &str,
        key: &DataKey,
        options: WriterOptions,
    ) -> Result<EncryptedWriter, FormatError> {
        check_stream_name(stream_name)?;
        if options.chunk_size == 0 || options.chunk_size > MAX_CHUNK_SIZE {
            return Err(FormatError::BadChunkSize(options.chunk_size));
        }
        let path = dir.join(format!("{stream_name}.enc"));
        let file_no = key
            .take_file_number()
            .ok_or_else(|| FormatError::KeyCannotWrite { path: path.clone() })?;
        let header = Header {
            chunk_size: options.chunk_size,
            file_no,
            recording: key.recording(),
            stream: stream_name.to_owned(),
        };
        let cipher = key.cipher();
        let aad = ChunkAad::new(header.fields());
        let header_tag = cipher
            .encrypt_inout_detached(
                &nonce(file_no, HEADER_NONCE_INDEX),
                aad.header(),
                (&mut [][..]).into(),
            )
            .expect("AES-GCM seals an empty message with a short AAD");
        let io = |source| FormatError::Io {
            path: path.clone(),
            source,
        };
        let mut file = fsutil::create_new_private(&path).map_err(io)?;
        let mut head = aad.header().to_vec();
        head.extend_from_slice(&header_tag);
        file.write_all(&head).map_err(io)?;
        file.sync_data().map_err(io)?;
        fsutil::sync_dir(dir).map_err(io)?;
        let chunk_size = usize::try_from(options.chunk_size).expect("chunk size <= 16 MiB");
        Ok(EncryptedWriter {
            file,
            path,
            name: stream_name.to_owned(),
            cipher,
            file_no,
            aad,
            chunk_size,
            buf: Zeroizing::new(Vec::with_capacity(chunk_size + TAG_LEN)),
            next_index: 0,
            sha: Sha256::new(),
            bytes: 0,
            sync_every: options.sync_every,
            unsynced: 0,
            failed: false,
            registry: None,
        })
    }

    pub(crate) fn register_in(&mut self, registry: Registry) {
        self.registry = Some(registry);
    }

    pub fn stream_name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Plaintext bytes accepted so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    /// Appends plaintext. Every time the open chunk fills up it is sealed, written and (per
    /// [`WriterOptions::sync_every`]) synced.
    pub fn write_all(&mut self, mut data: &[u8]) -> Result<(), FormatError> {
        self.check_usable()?;
        self.sha.update(data);
        self.bytes += data.len() as u64;
        while !data.is_empty() {
            let room = self.chunk_size - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == self.chunk_size {
                self.seal(false)?;
            }
        }
        Ok(())
    }

    /// Seals the open chunk (possibly empty) as the final chunk, syncs the file, and returns
    /// the stream's length and SHA-256.
    pub fn finish(mut self) -> Result<StreamSummary, FormatError> {
        self.check_usable()?;
        // Sealing the final chunk also syncs the file.
        self.seal(true)?;
        let summary = StreamSummary {
            name: self.name.clone(),
            bytes: self.bytes,
            chunks: self.next_index,
            sha256: hex(&std::mem::take(&mut self.sha).finalize()),
        };
        if let Some(registry) = &self.registry {
            let mut streams = registry.lock().unwrap_or_else(|p| p.into_inner());
            streams.insert(self.name.clone(), Some(summary.clone()));
        }
        Ok(summary)
    }

    fn check_usable(&self) -> Result<(), FormatError> {
        if self.failed {
            return Err(FormatError::WriterFailed {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    fn seal(&mut self, last: bool) -> Result<(), FormatError> {
        let index = self.next_index;
        if index >= HEADER_NONCE_INDEX - 1 {
            self.failed = true;
            return Err(FormatError::TooManyChunks {
                path: self.path.clone(),
            });
        }
        let aad = self.aad.for_chunk(index, last);
        let tag = self
            .cipher
            .encrypt_inout_detached(&nonce(self.file_no, index), aad, (&mut self.buf[..]).into())
            .expect("AES-GCM seals a chunk of at most 16 MiB");
        self.buf.extend_from_slice(&tag);
        self.next_index = index + 1;
        let written = self.file.write_all(&self.buf);
        self.buf.clear();
        self.unsynced += 1;
        let synced = match written {
            Ok(()) if last || (self.sync_every != 0 && self.unsynced >= self.sync_every) => {
                self.unsynced = 0;
                self.file.sync_data()
            }
            other => other,
        };
        synced.map_err(|source| {
            self.failed = true;
            FormatError::Io {
                path: self.path.clone(),
                source,
            }
        })
    }
}
