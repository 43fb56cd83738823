//! Bedside recording storage (docs/design.md "Recording"): each recording is a directory
//! `<root>/<recording-id>/` holding `key.json` (the recording's random 256-bit data key,
//! wrapped by a key-encryption key) and one encrypted file per stream: `meta.json.enc` and the
//! media (`<participant>-audio.wav.enc`, `<participant>-video.ivf.enc`, …).
//!
//! Each file is a sequence of AES-256-GCM chunks (64 KiB of plaintext by default) whose nonce
//! comes from (file number, chunk index) and whose associated data binds the recording, the
//! stream, the chunk index and a final-chunk flag: reordering, truncation, splicing between
//! files or recordings and dropping the last chunk are all detected, and a crash loses at most
//! the open chunk. `docs/recording-format.md` describes the bytes.
//!
//! Writing a recording (the WebRTC recorder):
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use bedside_recording::{Kek, Keyring, RecordingId, RecordingInfo, RecordingWriter};
//! let keyring = Keyring::new(Kek::from_env("kek-2025", "BEDSIDE_RECORDING_KEK")?);
//! let id = RecordingId::generate();
//! let recording = RecordingWriter::create("/var/lib/bedside/recordings".as_ref(), &id, "visit-81", &keyring)?;
//! let mut audio = recording.add_stream("p7-audio.wav")?;
//! audio.write_all(b"RIFF....")?;
//! audio.finish()?;
//! recording.finish(RecordingInfo::default())?;
//! # Ok(()) }
//! ```

mod format;
mod fsutil;
mod id;
mod keys;
mod meta;
mod reader;
mod recording;
mod writer;

pub use format::{FormatError, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE};
pub use id::{check_key_id, check_stream_name, InvalidName, RecordingId, META_STREAM};
pub use keys::{DataKey, Kek, KeyError, KeyFile, Keyring, KEY_WRAP_ALG};
pub use meta::{
    ConsentDecision, ConsentRecord, Metadata, RecordingInfo, StreamDigest, StreamEntry,
    TimelineEvent, TimelineKind, Track, TrackKind,
};
pub use reader::EncryptedReader;
pub use recording::{
    now_unix_ms, read_key_file, MetadataState, Recording, RecordingError, RecordingWriter,
    StreamCheck, VerifyReport, KEY_FILE,
};
pub use writer::{EncryptedWriter, StreamSummary, WriterOptions};
