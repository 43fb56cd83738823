//! The Bedside audit log (docs/design.md "Audit and logs"): an append-only file of JSON lines, one
//! entry per auditable event (joins, admissions, denials, departures, consent, recording, export,
//! deletion), each entry chained to the one before it by SHA-256 so that editing, deleting,
//! reordering or inserting an entry anywhere but at the very end is detectable.
//!
//! # Format
//!
//! Each line is one JSON object, in this fixed field order, absent optional fields omitted:
//!
//! ```text
//! {"seq":1,"ts":"2024-05-01T09:30:00.123Z","kind":"join","visit":"v-81","participant":"p7","subject":"s-1","role":"patient","prev":"000…000","hash":"9f2c…"}
//! ```
//!
//! `seq` runs 1, 2, 3… without gaps; `ts` is RFC 3339 UTC with milliseconds; `kind` and the
//! optional `visit`, `participant`, `subject`, `role`, `actor`, `code` come from [`AuditEvent`];
//! `prev` is the previous entry's `hash` (64 zeros for the first entry).
//!
//! # Hash chain
//!
//! ```text
//! hash = hex(SHA-256(prev_hash_hex || "\n" || canonical_json))
//! ```
//!
//! where `canonical_json` is the serde_json serialization of the entry object *without* the
//! `hash` field, fields in the order seq, ts, kind, visit, participant, subject, role, actor,
//! code, prev, absent optional fields omitted (compact: no spaces). The line in the file is that
//! same serialization with `,"hash":"…"` as the last field. [`verify`] requires every line to be
//! byte for byte that canonical form, so even edits that keep the JSON's meaning are caught.
//!
//! # What it does not protect against
//!
//! Someone who can write the file can rewrite the whole chain from any point on, or cut entries
//! off its end: the chain proves the file is internally consistent, not that it is the file that
//! was written. Ship entries (or at least [`VerifyReport::last_hash`] at intervals) off the
//! machine to anchor it. See `docs/audit.md`.
//!
//! # Privacy
//!
//! An entry holds opaque ids and stable codes only: never names, free-text reasons, IP
//! addresses or tokens. Field values are capped at 256 bytes.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

mod entry;
mod verify;

use entry::{check_event, now_rfc3339_millis, Entry};

/// One auditable event. Never holds PHI: no names, no free-text reasons, no IPs, no tokens.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct AuditEvent {
    /// What happened, e.g. "join", "waiting", "admit", "deny", "depart", "refuse", "remove",
    /// "end_visit", "consent", "recording_start", "export", "delete".
    pub kind: String,
    /// Opaque visit id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visit: Option<String>,
    /// Opaque session participant id, e.g. "p7".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<String>,
    /// The token's `sub` (an opaque id from the scheduling system).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Who did it (a participant id), for admit/deny/remove/end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// A stable code, e.g. "invalid_token", "visit_full".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// Why the audit log could not be opened, appended to or verified.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file is not an intact chain. `line` counts from 1.
    #[error("audit log {} is damaged at line {line}: {reason}", path.display())]
    Broken {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    /// Kept for API stability; writers now share a log (each append takes the file lock), so
    /// this is no longer returned.
    #[error("audit log {} is already open for writing elsewhere", path.display())]
    Locked { path: PathBuf },
    /// An earlier write or sync failed, so the file's end is uncertain; reopen the log (which
    /// verifies it) before writing again.
    #[error(
        "audit log {} stopped accepting entries after a failed write; reopen it to check it",
        path.display()
    )]
    Failed { path: PathBuf },
    /// The event cannot be recorded (empty `kind`, or a field over 256 bytes).
    #[error("audit event field `{field}` is empty or too long")]
    InvalidEvent { field: &'static str },
}

/// What [`verify`] found in an intact log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Number of entries (the last `seq`; 0 for an empty file).
    pub entries: u64,
    /// The last entry's hash (64 zeros for an empty file). Keep it elsewhere to detect a
    /// later truncation or rewrite.
    pub last_hash: String,
}

/// The append side of the log. Cheap to clone; all clones write to the same file in order.
#[derive(Clone)]
pub struct AuditLog {
    inner: Option<Arc<Mutex<Writer>>>,
}

struct Writer {
    file: File,
    path: PathBuf,
    next_seq: u64,
    last_hash: String,
    /// Length of the file up to the end of the last complete entry.
    len: u64,
    failed: bool,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            None => f.write_str("AuditLog(disabled)"),
            Some(w) => {
                let w = lock(w);
                f.debug_struct("AuditLog")
                    .field("path", &w.path)
                    .field("next_seq", &w.next_seq)
                    .finish_non_exhaustive()
            }
        }
    }
}

fn lock(w: &Mutex<Writer>) -> MutexGuard<'_, Writer> {
    // The writer's fields change only after a write succeeded, and a failed write sets `failed`,
    // so the state behind a poisoned lock is still consistent.
    w.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl AuditLog {
    /// Opens (creating with mode 0600, parent dirs 0700) or continues a log: reads the existing
    /// file, verifies the whole chain, and continues from its last entry. A damaged existing log
    /// is an error (never silently restarted). A final line without a trailing newline (a crash
    /// mid-write) is reported as an error too, naming the file and line.
    ///
    /// Several writers may share one log (the recorder agent runs while an operator exports):
    /// each append holds an advisory exclusive lock on the file and, if another writer appended
    /// since, re-verifies the chain and continues from its new end, so chains never interleave.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let io_err = |source: io::Error| AuditError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_private_dirs(parent).map_err(io_err)?;
        }
        let (file, created) = match open_file(path, true) {
            Ok(f) => (f, true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                (open_file(path, false).map_err(io_err)?, false)
            }
            Err(e) => return Err(io_err(e)),
        };
        file.lock().map_err(io_err)?;
        // Opened for append, the handle still reads from the start.
        let verified = verify::verify_reader(BufReader::new(&file), path)
            .and_then(|report| Ok((report, file.metadata().map_err(io_err)?.len())));
        let _ = file.unlock();
        let (report, len) = verified?;
        if created {
            sync_parent(path).map_err(io_err)?;
        }
        Ok(AuditLog {
            inner: Some(Arc::new(Mutex::new(Writer {
                file,
                path: path.to_path_buf(),
                next_seq: report.entries + 1,
                last_hash: report.last_hash,
                len,
                failed: false,
            }))),
        })
    }

    /// A log that writes nothing (tests, or audit disabled explicitly). Its `append` still
    /// checks the event, and returns seq 0.
    pub fn disabled() -> AuditLog {
        AuditLog { inner: None }
    }

    /// Appends one entry (seq, RFC 3339 UTC timestamp with millis, the event's fields, prev
    /// hash, hash) as one line with a single write call, then `sync_data`. Returns the entry's
    /// seq.
    ///
    /// If the write or the sync fails, the partial line is cut off again when possible; if not,
    /// every later append fails with [`AuditError::Failed`] until the log is reopened.
    pub fn append(&self, event: AuditEvent) -> Result<u64, AuditError> {
        check_event(&event).map_err(|field| AuditError::InvalidEvent { field })?;
        let Some(inner) = &self.inner else {
            return Ok(0);
        };
        let mut w = lock(inner);
        if w.failed {
            return Err(AuditError::Failed {
                path: w.path.clone(),
            });
        }
        let path = w.path.clone();
        let io_err = |source: io::Error| AuditError::Io {
            path: path.clone(),
            source,
        };
        w.file.lock().map_err(io_err)?;
        let result = append_locked(&mut w, event);
        let _ = w.file.unlock();
        result
    }
}

/// [`AuditLog::append`] with the file lock held.
fn append_locked(w: &mut Writer, event: AuditEvent) -> Result<u64, AuditError> {
    {
        let io_err = |source: io::Error| AuditError::Io {
            path: w.path.clone(),
            source,
        };
        let len = w.file.metadata().map_err(io_err)?.len();
        if len != w.len {
            // Another writer appended since: continue from the end of the chain it left.
            (&w.file).seek(SeekFrom::Start(0)).map_err(io_err)?;
            let report = verify::verify_reader(BufReader::new(&w.file), &w.path)?;
            w.next_seq = report.entries + 1;
            w.last_hash = report.last_hash;
            w.len = len;
        }
    }
    {
        let seq = w.next_seq;
        let mut entry = Entry::new(seq, now_rfc3339_millis(), event, w.last_hash.clone());
        let hash = entry.compute_hash();
        entry.hash = Some(hash.clone());
        let mut line = entry.line();
        line.push(b'\n');

        let written = match w.file.write(&line) {
            Ok(n) if n == line.len() => Ok(()),
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short write (disk full?)",
            )),
            Err(e) => Err(e),
        };
        if let Err(source) = written {
            // Cut off whatever part of the line reached the file, so the chain stays intact.
            let len = w.len;
            if w.file.set_len(len).is_err() {
                w.failed = true;
            }
            return Err(AuditError::Io {
                path: w.path.clone(),
                source,
            });
        }
        if let Err(source) = w.file.sync_data() {
            // After a failed fsync the kernel may have dropped the data; what is on disk is
            // unknown, so stop here rather than chain onto it.
            w.failed = true;
            return Err(AuditError::Io {
                path: w.path.clone(),
                source,
            });
        }
        w.len += u64::try_from(line.len()).expect("a line length fits in u64");
        w.next_seq = seq + 1;
        w.last_hash = hash;
        Ok(seq)
    }
}

/// Checks a log file: every line parses, seq runs 1,2,3… without gaps, each `prev` equals the
/// previous line's `hash`, and each `hash` is right. Writes nothing.
///
/// A log cut off cleanly after a complete line still verifies: compare
/// [`VerifyReport::last_hash`] with a copy kept elsewhere to detect that.
pub fn verify(path: &Path) -> Result<VerifyReport, AuditError> {
    let file = File::open(path).map_err(|source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    verify::verify_reader(BufReader::new(file), path)
}

#[cfg(unix)]
fn open_file(path: &Path, create_new: bool) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(create_new)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_file(path: &Path, create_new: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(create_new)
        .open(path)
}

#[cfg(unix)]
fn create_private_dirs(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dirs(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Makes a newly created file's directory entry durable.
#[cfg(unix)]
fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

#[cfg(not(unix))]
fn sync_parent(_path: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_log(n: u64) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        for i in 0..n {
            log.append(AuditEvent {
                kind: "admit".into(),
                visit: Some("v-1".into()),
                participant: Some(format!("p{i}")),
                actor: (i % 2 == 0).then(|| "p0".into()),
                code: (i == 2).then(|| "visit_full".into()),
                ..AuditEvent::default()
            })
            .unwrap();
        }
        drop(log);
        let bytes = std::fs::read(&path).unwrap();
        (dir, path, bytes)
    }

    /// Every single-byte change anywhere in a valid file is detected. Lines must be in canonical
    /// form, so there is no exception for changes that keep the JSON's meaning (whitespace,
    /// escapes): a changed byte always changes the canonical bytes of the line or breaks it.
    #[test]
    fn every_single_byte_change_is_detected() {
        let (_dir, path, good) = sample_log(4);
        assert_eq!(verify::verify_reader(&good[..], &path).unwrap().entries, 4);
        // Replacement values: the JSON-significant ones, whitespace, and a spread of the rest.
        let mut values: Vec<u8> = b" \t\r\n\"\\{}[],:0159aefzAZ-.".to_vec();
        values.extend([0u8, 0x7f, 0x80, 0xc3, 0xff]);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut checked = 0u64;
        for pos in 0..good.len() {
            // Plus three pseudo-random byte values per position.
            let mut these = values.clone();
            for _ in 0..3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                these.push(seed.to_le_bytes()[0]);
            }
            for &v in &these {
                if v == good[pos] {
                    continue;
                }
                let mut bad = good.clone();
                bad[pos] = v;
                assert!(
                    verify::verify_reader(&bad[..], &path).is_err(),
                    "changing byte {pos} from {:?} to {:?} went unnoticed",
                    char::from(good[pos]),
                    char::from(v)
                );
                checked += 1;
            }
        }
        assert!(checked > 20 * good.len() as u64);
    }

    #[test]
    fn whitespace_or_reordered_keys_are_refused_even_with_a_right_hash() {
        let (_dir, path, good) = sample_log(2);
        let text = String::from_utf8(good).unwrap();
        let first = text.lines().next().unwrap();
        let spaced = first.replacen(":", ": ", 1);
        let err = verify::verify_reader(format!("{spaced}\n").as_bytes(), &path).unwrap_err();
        assert!(err.to_string().contains("canonical"), "{err}");
    }

    #[test]
    fn refuses_empty_kind_and_long_fields() {
        let log = AuditLog::disabled();
        assert!(matches!(
            log.append(AuditEvent::default()),
            Err(AuditError::InvalidEvent { field: "kind" })
        ));
        let long = AuditEvent {
            kind: "join".into(),
            code: Some("x".repeat(257)),
            ..AuditEvent::default()
        };
        assert!(matches!(
            log.append(long),
            Err(AuditError::InvalidEvent { field: "code" })
        ));
        assert_eq!(
            log.append(AuditEvent {
                kind: "join".into(),
                ..AuditEvent::default()
            })
            .unwrap(),
            0
        );
        assert_eq!(format!("{log:?}"), "AuditLog(disabled)");
    }
}
