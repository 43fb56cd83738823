//! `bedside-recorder`: `run` is the recorder agent ([`agent`]: a control connection to
//! `bedside` that receives jobs, one [`session`] per job joining the visit over WebRTC and
//! writing a [`capture`]); the other commands work on stored recordings: `export` (decrypt for
//! an authorised operator, audited, with the WAV/IVF header [`fixup`]s), `verify` (integrity,
//! no plaintext written) and `sweep` (retention). The storage format is `bedside-recording`'s
//! (docs/recording-format.md).

pub mod agent;
pub mod audio;
pub mod capture;
pub mod fixup;
pub mod ivf;
pub mod session;
pub mod tls;
pub mod wav;

pub use agent::{run_agent, run_agent_until, AgentSettings};

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
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
    /// The audit log (hash-chained JSON lines) that records recordings started and finished,
    /// exports and deletions.
    pub audit_log: PathBuf,
    /// `run`: the control endpoint of `bedside`, `wss://HOST:PORT/v1/recorder` (TLS; the
    /// server's certificate must chain to a system CA or to `ca_file`) or
    /// `ws://HOST:PORT/v1/recorder` (plain, for loopback or a trusted network). Signaling is the
    /// same URL, same scheme, with the path's `/v1/recorder` replaced by `/v1/signal`.
    #[serde(default)]
    pub control_url: Option<String>,
    /// `run`, `wss://` only: a PEM file of CA certificates to trust in addition to the
    /// system's (e.g. the hospital's internal CA that issued bedside's certificate). The
    /// server's certificate must be issued by one of them and name the URL's host.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// `run`: file whose first line is the recorder secret (at least 32 characters), the
    /// bearer token on the control connection. Not shared with any other secret.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// `run`: the IP address the media (WebRTC UDP) sockets bind to and announce.
    #[serde(default = "default_media_ip")]
    pub media_ip: IpAddr,
}

/// Shortest recorder secret accepted.
pub const MIN_SECRET_LEN: usize = 32;

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

fn default_media_ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

/// Reads the recorder secret: the first line of `path`, trimmed. Refused if shorter than
/// [`MIN_SECRET_LEN`] or (on Unix) readable by everyone. Errors never contain the secret.
pub fn read_secret(path: &Path) -> Result<String, RecorderError> {
    let text = std::fs::read_to_string(path).map_err(|source| RecorderError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|source| RecorderError::Io {
                path: path.to_path_buf(),
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o004 != 0 {
            return Err(RecorderError::Config(format!(
                "secret_file {} is readable by everyone; chmod 600 it",
                path.display()
            )));
        }
    }
    let secret = text.lines().next().unwrap_or("").trim().to_owned();
    if secret.chars().count() < MIN_SECRET_LEN {
        return Err(RecorderError::Config(format!(
            "secret_file {}: the recorder secret must be at least {MIN_SECRET_LEN} characters",
            path.display()
        )));
    }
    Ok(secret)
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
    #[error("ca_file {}: {why}", path.display())]
    CaFile { path: PathBuf, why: String },
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
        if self.media_ip.is_unspecified() {
            return Err(RecorderError::Config(format!(
                "media_ip {} is a wildcard: name the address bedside's media port can reach \
                 (it is announced as the recorder's ICE candidate)",
                self.media_ip
            )));
        }
        if let Some(url) = &self.control_url {
            agent::check_control_url(url)?;
        }
        if self.ca_file.is_some() && !self.control_url.as_deref().is_some_and(agent::uses_tls) {
            return Err(RecorderError::Config(
                "ca_file is only used with a wss:// control_url".into(),
            ));
        }
        Ok(())
    }

    /// What `run` needs beyond the storage settings: `control_url` and `secret_file`.
    pub fn validate_run(&self) -> Result<(), RecorderError> {
        if self.control_url.is_none() || self.secret_file.is_none() {
            return Err(RecorderError::Config(
                "`run` needs control_url (wss:// or ws://HOST:PORT/v1/recorder) and secret_file \
                 (the recorder secret)"
                    .into(),
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
        // WAV and IVF headers were written with placeholder sizes (docs/recording-format.md).
        fixup::fix_exported(name, &mut file).map_err(io(&tmp))?;
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
    options.read(true).write(true).create_new(true);
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
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        // Nothing has been recorded yet (a first start): nothing to delete. The directory is
        // created with the first recording.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
        Err(source) => {
            return Err(RecorderError::Io {
                path: root.clone(),
                source,
            })
        }
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str =
        "storage_dir = \"/r\"\nkek_env = \"K\"\nkek_id = \"k1\"\naudit_log = \"/a\"\n";

    fn parse(extra: &str) -> Result<Config, RecorderError> {
        let config: Config = toml::from_str(&format!("{BASE}{extra}"))
            .map_err(|e| RecorderError::Config(e.message().to_owned()))?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn run_keys_default_and_validate() {
        let c = parse("").unwrap();
        assert_eq!(c.media_ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(c.control_url.is_none() && c.secret_file.is_none());
        assert!(c
            .validate_run()
            .unwrap_err()
            .to_string()
            .contains("needs control_url"));
        let c = parse(
            "control_url = \"ws://127.0.0.1:8080/v1/recorder\"\nsecret_file = \"/s\"\n\
             media_ip = \"10.0.0.5\"\n",
        )
        .unwrap();
        c.validate_run().unwrap();
        assert_eq!(c.media_ip.to_string(), "10.0.0.5");
        assert!(parse("control_url = \"wss://h/v1/recorder\"\n")
            .unwrap()
            .ca_file
            .is_none());
        assert!(parse("control_url = \"ws://h/v1/signal\"\n").is_err());
        assert!(parse("control_url = \"wss://h/v1/signal\"\n").is_err());
        assert!(parse("control_url = \"https://h/v1/recorder\"\n").is_err());
        assert!(parse("media_ip = \"localhost\"\n").is_err());
        assert!(
            parse("secret = \"x\"\n").is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn ca_file_goes_with_wss_only() {
        let c = parse(
            "control_url = \"wss://bedside.hospital:443/v1/recorder\"\nca_file = \"/ca.pem\"\n",
        )
        .unwrap();
        assert_eq!(c.ca_file.as_deref(), Some(Path::new("/ca.pem")));
        for refused in [
            "control_url = \"ws://127.0.0.1:8080/v1/recorder\"\nca_file = \"/ca.pem\"\n",
            "ca_file = \"/ca.pem\"\n",
        ] {
            let err = parse(refused).unwrap_err().to_string();
            assert!(err.contains("ca_file is only used with a wss://"), "{err}");
        }
    }

    #[test]
    fn run_settings_read_the_ca_file_and_name_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let secret = secret_file(dir.path(), &"s".repeat(40), 0o600);
        let kek = secret_file(dir.path(), &"11".repeat(32), 0o600);
        let ca = dir.path().join("bad-ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
        let q = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
        let config_for = |url: &str, ca_file: Option<&Path>| {
            let text = format!(
                "storage_dir = {}\nkek_file = {}\nkek_id = \"k1\"\naudit_log = {}\n\
                 control_url = \"{url}\"\nsecret_file = {}\n{}",
                q(&dir.path().join("rec")),
                q(&kek),
                q(&dir.path().join("audit.jsonl")),
                q(&secret),
                ca_file.map_or(String::new(), |p| format!("ca_file = {}\n", q(p))),
            );
            let config: Config = toml::from_str(&text).unwrap();
            config.validate().unwrap();
            config
        };
        let plain =
            AgentSettings::from_config(&config_for("ws://127.0.0.1:1/v1/recorder", None)).unwrap();
        assert!(plain.tls.is_none(), "ws:// needs no TLS config");
        let system =
            AgentSettings::from_config(&config_for("wss://localhost:1/v1/recorder", None)).unwrap();
        assert!(system.tls.is_some(), "wss:// trusts the system's CAs");
        let err =
            AgentSettings::from_config(&config_for("wss://localhost:1/v1/recorder", Some(&ca)))
                .unwrap_err()
                .to_string();
        assert!(err.contains(&ca.display().to_string()), "{err}");
        assert!(err.contains("not a valid PEM"), "{err}");
    }

    fn secret_file(dir: &Path, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(format!("secret-{mode:o}-{}", text.len()));
        std::fs::write(&path, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        path
    }

    #[test]
    fn secret_is_the_first_line_and_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let good = "s".repeat(40);
        let path = secret_file(dir.path(), &format!("{good}\nsecond line\n"), 0o600);
        assert_eq!(read_secret(&path).unwrap(), good);
        let short = secret_file(dir.path(), &format!("{}\n{good}\n", "s".repeat(31)), 0o600);
        let err = read_secret(&short).unwrap_err().to_string();
        assert!(err.contains("at least 32"), "{err}");
        assert!(
            !err.contains(&"s".repeat(31)),
            "the error does not echo the secret"
        );
        #[cfg(unix)]
        {
            let open = secret_file(dir.path(), &good, 0o644);
            assert!(read_secret(&open)
                .unwrap_err()
                .to_string()
                .contains("readable by everyone"));
        }
        assert!(read_secret(&dir.path().join("absent")).is_err());
    }
}
