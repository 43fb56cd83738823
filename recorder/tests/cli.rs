//! The `bedside-recorder` binary against recordings written with `bedside-recording`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bedside_recording::{Kek, Keyring, RecordingId, RecordingInfo, RecordingWriter, WriterOptions};

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn setup(kek_fill: u8) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let kek = dir.path().join("kek");
    std::fs::write(&kek, format!("{}\n", format!("{kek_fill:02x}").repeat(32))).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let config = dir.path().join("recorder.toml");
    std::fs::write(
        &config,
        format!(
            "storage_dir = {:?}\nkek_file = {:?}\nkek_id = \"k1\"\naudit_log = {:?}\n",
            dir.path().join("rec"),
            kek,
            dir.path().join("audit.jsonl")
        ),
    )
    .unwrap();
    Setup { dir, config }
}

fn ring(fill: u8) -> Keyring {
    Keyring::new(Kek::new("k1", [fill; 32]).unwrap())
}

fn media(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(seed) >> 3) as u8)
        .collect()
}

/// A finished recording with two streams; returns its id.
fn record(s: &Setup, fill: u8) -> RecordingId {
    let id = RecordingId::generate();
    let rec =
        RecordingWriter::create(&s.dir.path().join("rec"), &id, "visit-9", &ring(fill)).unwrap();
    for (name, data) in [
        ("p1-audio.wav", media(200_000, 7)),
        ("p1-video.ivf", media(70_001, 13)),
    ] {
        let mut w = rec.add_stream(name).unwrap();
        w.write_all(&data).unwrap();
        w.finish().unwrap();
    }
    rec.finish(RecordingInfo::default()).unwrap();
    id
}

fn cli(s: &Setup, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bedside-recorder"))
        .args(args)
        .arg("--config")
        .arg(&s.config)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn is_empty_or_absent(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

#[test]
fn export_decrypts_every_stream_and_audits() {
    let s = setup(1);
    let id = record(&s, 1).to_string();
    let out = s.dir.path().join("out");
    let o = cli(&s, &["verify", "--recording", &id]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("ok: every stream is intact"),
        "{}",
        text(&o)
    );

    let o = cli(
        &s,
        &["export", "--recording", &id, "--out", out.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(out.join("p1-audio.wav")).unwrap(),
        media(200_000, 7)
    );
    assert_eq!(
        std::fs::read(out.join("p1-video.ivf")).unwrap(),
        media(70_001, 13)
    );
    let meta = std::fs::read_to_string(out.join("meta.json")).unwrap();
    assert!(meta.contains("\"visit_id\": \"visit-9\""), "{meta}");
    // No temporary files left behind.
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 3);
    let audit = std::fs::read_to_string(s.dir.path().join("audit.jsonl")).unwrap();
    assert!(
        audit.contains("\"kind\":\"export\"") && audit.contains(&id),
        "{audit}"
    );
    bedside_audit::verify(&s.dir.path().join("audit.jsonl")).unwrap();

    // A second export into the same directory refuses to overwrite.
    let o = cli(
        &s,
        &["export", "--recording", &id, "--out", out.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("refusing to overwrite"), "{}", text(&o));
}

#[test]
fn tampered_recording_fails_verify_and_export_writes_nothing() {
    let s = setup(1);
    let id = record(&s, 1);
    let path = s
        .dir
        .path()
        .join("rec")
        .join(id.to_string())
        .join("p1-audio.wav.enc");
    let mut raw = std::fs::read(&path).unwrap();
    raw[5000] ^= 0x10;
    std::fs::write(&path, &raw).unwrap();
    let id = id.to_string();
    let o = cli(&s, &["verify", "--recording", &id]);
    assert!(!o.status.success());
    let msg = text(&o);
    assert!(
        msg.contains("verification failed") && msg.contains("chunk 0 does not authenticate"),
        "{msg}"
    );
    let out = s.dir.path().join("out");
    let o = cli(
        &s,
        &["export", "--recording", &id, "--out", out.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(is_empty_or_absent(&out));
    assert!(
        !s.dir.path().join("audit.jsonl").exists()
            || std::fs::read_to_string(s.dir.path().join("audit.jsonl"))
                .unwrap()
                .is_empty()
    );
}

#[test]
fn wrong_kek_fails_and_writes_nothing() {
    let s = setup(2);
    let id = record(&s, 1).to_string();
    let out = s.dir.path().join("out");
    let o = cli(
        &s,
        &["export", "--recording", &id, "--out", out.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("cannot unwrap"), "{}", text(&o));
    assert!(is_empty_or_absent(&out));
}

#[test]
fn path_like_ids_are_refused() {
    let s = setup(1);
    let out = s.dir.path().join("out");
    for bad in ["../../etc", "../0123456789abcdef0123456789abcd", "", "a/b"] {
        let o = cli(
            &s,
            &["export", "--recording", bad, "--out", out.to_str().unwrap()],
        );
        assert!(!o.status.success());
        assert!(text(&o).contains("32 lowercase hex"), "{}", text(&o));
    }
    assert!(is_empty_or_absent(&out));
}

#[test]
fn crash_is_reported_as_truncation_and_complete_chunks_export() {
    let s = setup(1);
    let id = RecordingId::generate();
    let rec = RecordingWriter::create(&s.dir.path().join("rec"), &id, "visit-9", &ring(1)).unwrap();
    let mut w = rec
        .add_stream_with(
            "p1-audio.wav",
            WriterOptions {
                chunk_size: 4096,
                sync_every: 1,
            },
        )
        .unwrap();
    let data = media(4096 * 10 + 123, 5);
    w.write_all(&data).unwrap();
    // kill -9: nothing is finished.
    std::mem::forget(w);
    std::mem::forget(rec);
    let id = id.to_string();
    let o = cli(&s, &["verify", "--recording", &id]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("TRUNCATED after 10 complete chunks"),
        "{}",
        text(&o)
    );
    let out = s.dir.path().join("out");
    let o = cli(
        &s,
        &["export", "--recording", &id, "--out", out.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("truncated"), "{}", text(&o));
    assert_eq!(
        std::fs::read(out.join("p1-audio.wav")).unwrap(),
        &data[..4096 * 10]
    );
}

#[test]
fn sweep_deletes_expired_recordings_and_audits() {
    let s = setup(1);
    let root = s.dir.path().join("rec");
    let old = RecordingId::generate();
    RecordingWriter::create_at(&root, &old, "visit-1", &ring(1), 1_000)
        .unwrap()
        .finish(RecordingInfo::default())
        .unwrap();
    let fresh = record(&s, 1);
    std::fs::create_dir(root.join("not-a-recording")).unwrap();
    let config = bedside_recorder::Config::load(&s.config).unwrap();
    assert_eq!(
        config.retention_days,
        bedside_recorder::DEFAULT_RETENTION_DAYS
    );
    let report = bedside_recorder::sweep(&config, bedside_recording::now_unix_ms()).unwrap();
    assert_eq!(report.deleted, vec![old]);
    assert_eq!(report.kept, 1);
    assert!(!root.join(old.to_string()).exists());
    assert!(root.join(fresh.to_string()).exists());
    assert!(root.join("not-a-recording").exists());
    let audit = std::fs::read_to_string(s.dir.path().join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"kind\":\"delete\"") && audit.contains(&old.to_string()));
}

#[test]
fn sweep_before_the_first_recording_finds_nothing_and_warns_of_nothing() {
    // A first start: the storage directory does not exist until something is recorded.
    let s = setup(1);
    assert!(!s.dir.path().join("rec").exists());
    let config = bedside_recorder::Config::load(&s.config).unwrap();
    let report = bedside_recorder::sweep(&config, bedside_recording::now_unix_ms()).unwrap();
    assert!(report.deleted.is_empty() && report.skipped.is_empty());
    assert_eq!(report.kept, 0);
    let o = Command::new(env!("CARGO_BIN_EXE_bedside-recorder"))
        .args(["sweep", "--config"])
        .arg(&s.config)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).to_lowercase().contains("warn"), "{}", text(&o));
}

#[test]
fn run_sweeps_expired_recordings_at_start_even_before_bedside_answers() {
    let s = setup(1);
    let root = s.dir.path().join("rec");
    let old = RecordingId::generate();
    RecordingWriter::create_at(&root, &old, "visit-1", &ring(1), 1_000)
        .unwrap()
        .finish(RecordingInfo::default())
        .unwrap();
    let fresh = record(&s, 1);
    let secret = s.dir.path().join("secret");
    std::fs::write(&secret, "Hc8Vn2Qx5Tm9Lw3Pz7Rk1Yb4Fd6Gs0Ja2Ue8Io5X\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // Nothing listens on this port: the agent keeps retrying while the sweep runs.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = std::fs::read_to_string(&s.config).unwrap();
    cfg.push_str(&format!(
        "control_url = \"ws://127.0.0.1:{port}/v1/recorder\"\nsecret_file = {secret:?}\n"
    ));
    std::fs::write(&s.config, cfg).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bedside-recorder"))
        .args(["run", "--config"])
        .arg(&s.config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while root.join(old.to_string()).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let still_running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        still_running,
        "run keeps going while bedside is unreachable"
    );
    assert!(
        !root.join(old.to_string()).exists(),
        "the expired recording was swept"
    );
    assert!(root.join(fresh.to_string()).exists());
    let audit = std::fs::read_to_string(s.dir.path().join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"kind\":\"delete\""), "{audit}");
}

#[test]
fn config_refuses_unknown_keys_and_run_needs_control_settings() {
    let s = setup(1);
    let mut text_cfg = std::fs::read_to_string(&s.config).unwrap();
    text_cfg.push_str("kek_secret = \"x\"\n");
    let bad = s.dir.path().join("bad.toml");
    std::fs::write(&bad, text_cfg).unwrap();
    assert!(bedside_recorder::Config::load(&bad).is_err());
    let o = cli(&s, &["run"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("needs control_url"), "{}", text(&o));
    let mut wildcard = std::fs::read_to_string(&s.config).unwrap();
    wildcard.push_str("media_ip = \"0.0.0.0\"\n");
    let bad = s.dir.path().join("wildcard.toml");
    std::fs::write(&bad, wildcard).unwrap();
    let err = bedside_recorder::Config::load(&bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("media_ip 0.0.0.0 is a wildcard"), "{err}");
}

#[test]
fn example_config_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/recorder.example.toml");
    let config = bedside_recorder::Config::load(&path).unwrap();
    assert_eq!(config.kek_id, "kek-2025");
    assert_eq!(config.retention_days, 2557);
}
