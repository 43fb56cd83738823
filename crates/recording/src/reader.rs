//! Reader of one encrypted file: authenticated plaintext chunks, in order.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use aes_gcm::aead::AeadInOut;
use aes_gcm::Aes256Gcm;

use crate::format::{
    nonce, ChunkAad, FormatError, Header, FIXED_HEADER_LEN, HEADER_NONCE_INDEX, MAGIC, TAG_LEN,
};
use crate::id::check_stream_name;
use crate::keys::DataKey;

/// Reads `<dir>/<stream>.enc`. Iterating yields each chunk's plaintext once it has been
/// authenticated, then ends after the final chunk. A problem ends the iteration with one
/// error: [`FormatError::Truncated`] when the file stops before its final chunk (every complete
/// chunk before that was returned), [`FormatError::Tampered`] when a complete chunk does not
/// authenticate. Never panics on any file contents.
pub struct EncryptedReader {
    file: File,
    path: PathBuf,
    cipher: Aes256Gcm,
    file_no: u32,
    aad: ChunkAad,
    chunk_size: usize,
    index: u64,
    bytes: u64,
    /// Bytes of the file consumed so far.
    position: u64,
    done: bool,
}

impl fmt::Debug for EncryptedReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedReader")
            .field("path", &self.path)
            .field("chunks", &self.index)
            .finish_non_exhaustive()
    }
}

impl EncryptedReader {
    /// Opens `<dir>/<stream_name>.enc` and authenticates its header: the file must be the
    /// stream `stream_name` of the key's recording, sealed under this key.
    pub fn open(
        dir: &Path,
        stream_name: &str,
        key: &DataKey,
    ) -> Result<EncryptedReader, FormatError> {
        check_stream_name(stream_name)?;
        let path = dir.join(format!("{stream_name}.enc"));
        let file = File::open(&path).map_err(|source| FormatError::Io {
            path: path.clone(),
            source,
        })?;
        EncryptedReader::from_file(file, path, stream_name, key)
    }

    /// Like [`EncryptedReader::open`] for an already open file; `path` is used in errors.
    pub fn from_file(
        mut file: File,
        path: PathBuf,
        stream_name: &str,
        key: &DataKey,
    ) -> Result<EncryptedReader, FormatError> {
        let io = |source| FormatError::Io {
            path: path.clone(),
            source,
        };
        let mut fixed = [0u8; FIXED_HEADER_LEN];
        let got = read_full(&mut file, &mut fixed).map_err(io)?;
        if got < FIXED_HEADER_LEN {
            let magic_len = got.min(MAGIC.len());
            if fixed[..magic_len] != MAGIC[..magic_len] {
                return Err(FormatError::NotEncryptedFile { path });
            }
            return Err(truncated(path, 0, 0, got as u64));
        }
        let (chunk_size, file_no, recording, name_len) = Header::parse_fixed(&fixed, &path)?;
        let mut rest = vec![0u8; name_len + TAG_LEN];
        let got_rest = read_full(&mut file, &mut rest).map_err(io)?;
        if got_rest < rest.len() {
            return Err(truncated(path, 0, 0, (FIXED_HEADER_LEN + got_rest) as u64));
        }
        if recording != key.recording() {
            return Err(FormatError::WrongRecording {
                path,
                expected: key.recording(),
                found: recording,
            });
        }
        let mut fields = fixed.to_vec();
        fields.extend_from_slice(&rest[..name_len]);
        let cipher = key.cipher();
        let tag: [u8; TAG_LEN] = rest[name_len..].try_into().expect("TAG_LEN bytes");
        if cipher
            .decrypt_inout_detached(
                &nonce(file_no, HEADER_NONCE_INDEX),
                &fields,
                (&mut [][..]).into(),
                &tag.into(),
            )
            .is_err()
        {
            return Err(FormatError::HeaderNotAuthentic { path });
        }
        let found = Header::parse_name(&rest[..name_len], &path)?;
        if found != stream_name {
            return Err(FormatError::WrongStream {
                path,
                expected: stream_name.to_owned(),
                found,
            });
        }
        Ok(EncryptedReader {
            file,
            path,
            cipher,
            file_no,
            aad: ChunkAad::new(fields),
            chunk_size: usize::try_from(chunk_size).expect("chunk size <= 16 MiB"),
            index: 0,
            bytes: 0,
            position: (FIXED_HEADER_LEN + name_len + TAG_LEN) as u64,
            done: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Plaintext bytes per non-final chunk.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Authentic chunks returned so far.
    pub fn chunks_read(&self) -> u64 {
        self.index
    }

    /// Authentic plaintext bytes returned so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// The next authentic chunk; `Ok(None)` after the final chunk.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, FormatError> {
        if self.done {
            return Ok(None);
        }
        let result = self.read_chunk();
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
        }
        result
    }

    /// Reads the whole stream into memory (tests, metadata).
    pub fn read_to_end(mut self) -> Result<Vec<u8>, FormatError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.next_chunk()? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    fn read_chunk(&mut self) -> Result<Option<Vec<u8>>, FormatError> {
        let full = self.chunk_size + TAG_LEN;
        let mut buf = vec![0u8; full];
        let got = read_full(&mut self.file, &mut buf).map_err(|source| FormatError::Io {
            path: self.path.clone(),
            source,
        })?;
        buf.truncate(got);
        // Every non-final chunk is exactly full-sized; the final one is shorter (its plaintext
        // is 0..chunk_size-1 bytes), so the size alone says which AAD flag to expect.
        let last = got < full;
        if got < TAG_LEN || (last && !self.open_chunk(&mut buf, true)) {
            return Err(truncated(
                self.path.clone(),
                self.index,
                self.bytes,
                got as u64,
            ));
        }
        if !last && !self.open_chunk(&mut buf, false) {
            return Err(FormatError::Tampered {
                path: self.path.clone(),
                chunk: self.index,
            });
        }
        self.index += 1;
        self.bytes += buf.len() as u64;
        self.position += got as u64;
        if last {
            self.done = true;
            let len = self
                .file
                .metadata()
                .map_err(|source| FormatError::Io {
                    path: self.path.clone(),
                    source,
                })?
                .len();
            if len > self.position {
                return Err(FormatError::TrailingData {
                    path: self.path.clone(),
                    extra: len - self.position,
                });
            }
        }
        Ok(Some(buf))
    }

    /// Decrypts `buf` (ciphertext then tag) in place, leaving the plaintext; false if it does
    /// not authenticate as chunk `self.index` with this final flag.
    fn open_chunk(&mut self, buf: &mut Vec<u8>, last: bool) -> bool {
        let Some(split) = buf.len().checked_sub(TAG_LEN) else {
            return false;
        };
        if self.index >= HEADER_NONCE_INDEX - 1 {
            return false;
        }
        let tag: [u8; TAG_LEN] = buf[split..].try_into().expect("TAG_LEN bytes");
        let aad = self.aad.for_chunk(self.index, last);
        let ok = self
            .cipher
            .decrypt_inout_detached(
                &nonce(self.file_no, self.index),
                aad,
                (&mut buf[..split]).into(),
                &tag.into(),
            )
            .is_ok();
        if ok {
            buf.truncate(split);
        }
        ok
    }
}

impl Iterator for EncryptedReader {
    type Item = Result<Vec<u8>, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk().transpose()
    }
}

fn truncated(path: PathBuf, chunks: u64, bytes: u64, trailing: u64) -> FormatError {
    FormatError::Truncated {
        path,
        complete_chunks: chunks,
        complete_bytes: bytes,
        trailing_bytes: trailing,
    }
}

/// Reads until `buf` is full or end of file; returns the bytes read.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
