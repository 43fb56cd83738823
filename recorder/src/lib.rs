//! `bedside-recorder` commands that work on stored recordings: `export` (decrypt for an
//! authorised operator, audited), `verify` (integrity, no plaintext written) and `sweep`
//! (retention). The storage format is `bedside-recording`'s (docs/recording-format.md). The
//! `run` command, which joins visits over WebRTC, is not built yet.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use bedside_audit::{AuditError, AuditEvent, AuditLog};
use bedside_recording::{
    read_key_file, FormatError, InvalidName, Kek, KeyError, Keyring, MetadataState, Recording,
    RecordingError, RecordingId, VerifyReport,
};
use rand::RngCore;

/// Default retention: 7 years.
pub const DEFAULT_RETENTION_DAYS: u32 = 7 * 365 + 2;

/// The recorder's config file (TOML). See `deploy/config/recorder.example.toml`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory holding one sub-directory per recording.
    pub storage_dir: PathBuf,
    /// File holding the current key-encryption key (32 bytes as hex or base64). Exactly one of
    /// `kek_file` and `kek_env` is set.
    #[serde(default)]
    pub kek_file: Option<PathBuf>,
    /// Environment variable holding the current key-encryption key.
    #[serde(default)]
    pub kek_env: Option<String>,
    /// Id of the current key-encryption key, recorded in each new recording's key.json.
    pub kek_id: String,
    /// Earlier key-encryption keys, kept so recordings made before a rotation stay readable.
    #[serde(default)]
    pub old_keks: Vec<OldKek>,
    /// Days a recording is kept after it was created; `sweep` deletes older ones.
    #[serde(default = "default_retention")]
    pub retention_days: u32,
    /// The audit log (hash-chained JSON lines) that records exports and deletions.
    pub audit_log: PathBuf,
}

/// One earlier key-encryption key.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OldKek {
    pub id: String,
    #[serde(default)]
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub env: Option<String>,
}

fn default_retention() -> u32 {
    DEFAULT_RETENTION_DAYS
}

/// Why a command failed. Messages name files and ids, never key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("cannot read {}: {source}", path.display())]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config: {0}")]
    Config(String),
    #[error(transparent)]
    InvalidId(#[from] InvalidName),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("verification failed, nothing written: {0}")]
    Verification(RecordingError),
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error("{} already exists; refusing to overwrite", path.display())]
    OutputExists { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, RecorderError> {
        let text = std::fs::read_to_string(path).map_err(|source| RecorderError::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        let config: Config =
            toml::from_str(&text).map_err(|e| RecorderError::Config(e.message().to_owned()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), RecorderError> {
        let one_source = |file: &Option<PathBuf>, env: &Option<String>, what: &str| {
            if file.is_some() == env.is_some() {
                Err(RecorderError::Config(format!(
                    "{what}: set exactly one of a file and an environment variable"
                )))
            } else {
                Ok(())
            }
        };
        one_source(&self.kek_file, &self.kek_env, "kek_file / kek_env")?;
        for old in &self.old_keks {
            one_source(&old.file, &old.env, "old_keks")?;
        }
        if self.retention_days == 0 {
            return Err(RecorderError::Config(
                "retention_days must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Loads the current and older KEKs.
    pub fn keyring(&self) -> Result<Keyring, RecorderError> {
        let load = |id: &str, file: &Option<PathBuf>, env: &Option<String>| match (file, env) {
            (Some(file), _) => Kek::from_file(id, file),
            (None, Some(var)) => Kek::from_env(id, var),
            (None, None) => unreachable!("validate() requires a KEK source"),
        };
        let mut ring = Keyring::new(load(&self.kek_id, &self.kek_file, &self.kek_env)?);
        for old in &self.old_keks {
            ring = ring.with_older(load(&old.id, &old.file, &old.env)?)?;
        }
        Ok(ring)
    }
}

/// The result of `verify`.
#[derive(Debug)]
pub struct VerifyOutcome(pub VerifyReport);

impl fmt::Display for VerifyOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.0;
        writeln!(f, "recording {} (key {})", r.recording, r.kek_id)?;
        let meta = match &r.metadata {
            MetadataState::Finished(_) => "finished",
            MetadataState::Missing => "MISSING (the recorder stopped before finishing)",
            MetadataState::Truncated => "TRUNCATED (the recorder stopped while finishing)",
        };
        writeln!(f, "  metadata: {meta}")?;
        for s in &r.streams {
            match s.truncated {
                None => writeln!(
                    f,
                    "  {}: ok, {} bytes, sha256 {}",
                    s.name, s.bytes, s.sha256
                )?,
                Some(trailing) => writeln!(
                    f,
                    "  {}: TRUNCATED after {} complete chunks ({} bytes intact, {} bytes of an \
                     incomplete chunk lost)",
                    s.name, s.chunks, s.bytes, trailing
                )?,
            }
        }
        if r.is_complete() {
            writeln!(f, "ok: every stream is intact and matches its digest")
        } else {
            writeln!(
                f,
                "incomplete: everything present is authentic, but the recording is truncated"
            )
        }
    }
}

impl VerifyOutcome {
    pub fn is_complete(&self) -> bool {
        self.0.is_complete()
    }
}

/// Checks a recording: every chunk authenticates, every finished stream matches its digest.
/// Writes nothing. Truncation is reported in the result; anything else is an error.
pub fn verify(config: &Config, recording: &str) -> Result<VerifyOutcome, RecorderError> {
    let id = RecordingId::parse(recording)?;
    let keyring = config.keyring()?;
    let rec = Recording::open(&config.storage_dir, &id, &keyring)?;
    rec.verify()
        .map(VerifyOutcome)
        .map_err(RecorderError::Verification)
}

/// What `export` wrote.
#[derive(Debug)]
pub struct ExportReport {
    pub recording: RecordingId,
    pub files: Vec<PathBuf>,
    /// Streams exported only up to their last complete chunk.
    pub truncated: Vec<String>,
    pub audit_seq: u64,
}

impl fmt::Display for ExportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "exported recording {}:", self.recording)?;
        for file in &self.files {
            writeln!(f, "  {}", file.display())?;
        }
        for name in &self.truncated {
            writeln!(
                f,
                "warning: {name} is truncated (the recorder stopped); its complete chunks were \
                 exported"
            )?;
        }
        writeln!(f, "audit entry {}", self.audit_seq)
    }
}

/// Verifies the recording, then decrypts every stream (and the metadata, as `meta.json`) into
/// `out` via temporary files renamed into place, then appends an `export` audit entry. If
/// verification fails nothing is written; existing files are never overwritten. Streams of a
/// recording that stopped without finishing are exported up to their last complete chunk.
pub fn export(config: &Config, recording: &str, out: &Path) -> Result<ExportReport, RecorderError> {
    let id = RecordingId::parse(recording)?;
    let keyring = config.keyring()?;
    let rec = Recording::open(&config.storage_dir, &id, &keyring)?;
    let report = rec.verify().map_err(RecorderError::Verification)?;
    let audit = AuditLog::open(&config.audit_log)?;

    let mut names: Vec<String> = report.streams.iter().map(|s| s.name.clone()).collect();
    let visit = match &report.metadata {
        MetadataState::Finished(meta) => {
            names.push(bedside_recording::META_STREAM.to_owned());
            Some(meta.visit_id.clone())
        }
        _ => None,
    };
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RecorderError::Io { path, source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    for name in &names {
        let target = out.join(name);
        if target.symlink_metadata().is_ok() {
            return Err(RecorderError::OutputExists { path: target });
        }
    }

    let mut written: Vec<PathBuf> = Vec::new();
    let result = (|| {
        for name in &names {
            let target = out.join(name);
            export_stream(&rec, name, &target)?;
            written.push(target);
        }
        let truncated = report
            .streams
            .iter()
            .filter(|s| s.truncated.is_some())
            .map(|s| s.name.clone())
            .collect::<Vec<_>>();
        let code = if truncated.is_empty() && report.is_complete() {
            format!("recording:{id}")
        } else {
            format!("recording:{id}:truncated")
        };
        let seq = audit.append(AuditEvent {
            kind: "export".into(),
            visit: visit.clone(),
            code: Some(code),
            ..AuditEvent::default()
        })?;
        Ok((truncated, seq))
    })();
    match result {
        Ok((truncated, audit_seq)) => Ok(ExportReport {
            recording: id,
            files: written,
            truncated,
            audit_seq,
        }),
        Err(e) => {
            // Unaudited or partly failed: take back what was written.
            for path in &written {
                let _ = std::fs::remove_file(path);
            }
            Err(e)
        }
    }
}

/// Decrypts one stream into a temporary file beside `target`, then links it into place
/// (failing if `target` appeared meanwhile) and removes the temporary name.
fn export_stream(rec: &Recording, name: &str, target: &Path) -> Result<(), RecorderError> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let mut suffix = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut suffix);
    let tmp = dir.join(format!(
        ".{name}.tmp-{}",
        suffix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RecorderError::Io { path, source }
    };
    let mut file = create_private(&tmp).map_err(io(&tmp))?;
    let copied = (|| {
        let mut reader = rec.open_stream(name)?;
        loop {
            match reader.next_chunk() {
                Ok(Some(chunk)) => file.write_all(&chunk).map_err(io(&tmp))?,
                Ok(None) => break,
                // verify() accepted the truncation; anything else means the file changed.
                Err(FormatError::Truncated { .. }) => break,
                Err(e) => return Err(RecorderError::Verification(e.into())),
            }
        }
        file.sync_all().map_err(io(&tmp))?;
        std::fs::hard_link(&tmp, target).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                RecorderError::OutputExists {
                    path: target.to_path_buf(),
                }
            } else {
                io(target)(e)
            }
        })
    })();
    let _ = std::fs::remove_file(&tmp);
    copied
}

fn create_private(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// What `sweep` did.
#[derive(Debug, Default)]
pub struct SweepReport {
    pub deleted: Vec<RecordingId>,
    pub kept: usize,
    /// Directories left alone with the reason (unreadable or unauthentic key.json, …).
    pub skipped: Vec<(String, String)>,
}

impl fmt::Display for SweepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for id in &self.deleted {
            writeln!(f, "deleted {id} (retention expired)")?;
        }
        for (name, why) in &self.skipped {
            writeln!(f, "skipped {name}: {why}")?;
        }
        writeln!(
            f,
            "{} deleted, {} kept, {} skipped",
            self.deleted.len(),
            self.kept,
            self.skipped.len()
        )
    }
}

/// Deletes every recording created more than `retention_days` before `now_unix_ms`, auditing
/// each deletion. Age comes from key.json's creation time, which is authenticated by the wrap
/// (so the key must unwrap with a configured KEK). Directories whose names are not recording
/// ids, symlinks, and recordings whose key.json does not authenticate are left alone.
pub fn sweep(config: &Config, now_unix_ms: u64) -> Result<SweepReport, RecorderError> {
    let keyring = config.keyring()?;
    let audit = AuditLog::open(&config.audit_log)?;
    let root = &config.storage_dir;
    let retention_ms = u64::from(config.retention_days) * 86_400_000;
    let mut report = SweepReport::default();
    let entries = std::fs::read_dir(root).map_err(|source| RecorderError::Io {
        path: root.clone(),
        source,
    })?;
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| RecorderError::Io {
            path: root.clone(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        match RecordingId::parse(&name) {
            Ok(id) if entry.file_type().is_ok_and(|t| t.is_dir()) => ids.push(id),
            _ => {}
        }
    }
    ids.sort();
    for id in ids {
        let key_file = match read_key_file(root, &id) {
            Ok(k) => k,
            Err(e) => {
                report.skipped.push((id.to_string(), e.to_string()));
                continue;
            }
        };
        if let Err(e) = keyring.unwrap(&key_file, id) {
            report.skipped.push((id.to_string(), e.to_string()));
            continue;
        }
        if now_unix_ms.saturating_sub(key_file.created_unix_ms) <= retention_ms {
            report.kept += 1;
            continue;
        }
        delete_recording(root, &id, &audit)?;
        report.deleted.push(id);
    }
    Ok(report)
}

/// Renames the recording out of the way (atomic), audits the deletion, then removes it. If the
/// audit entry cannot be written the recording is put back.
fn delete_recording(root: &Path, id: &RecordingId, audit: &AuditLog) -> Result<(), RecorderError> {
    let dir = root.join(id.to_string());
    let doomed = root.join(format!(".deleting-{id}"));
    std::fs::rename(&dir, &doomed).map_err(|source| RecorderError::Io {
        path: dir.clone(),
        source,
    })?;
    let event = AuditEvent {
        kind: "delete".into(),
        code: Some(format!("recording:{id}:retention")),
        ..AuditEvent::default()
    };
    if let Err(e) = audit.append(event) {
        let _ = std::fs::rename(&doomed, &dir);
        return Err(e.into());
    }
    std::fs::remove_dir_all(&doomed).map_err(|source| RecorderError::Io {
        path: doomed,
        source,
    })
}
