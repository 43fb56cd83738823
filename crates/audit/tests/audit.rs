//! The audit log as its users see it: entries written, read back, continued, and every kind of
//! damage found.

use std::path::{Path, PathBuf};

use bedside_audit::{verify, AuditError, AuditEvent, AuditLog};

fn event(kind: &str, participant: &str) -> AuditEvent {
    AuditEvent {
        kind: kind.into(),
        visit: Some("visit-42".into()),
        participant: Some(participant.into()),
        subject: Some("sched-0007".into()),
        role: Some("patient".into()),
        ..AuditEvent::default()
    }
}

fn new_log(n: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit").join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    for i in 1..=n {
        assert_eq!(log.append(event("join", &format!("p{i}"))).unwrap(), i);
    }
    (dir, path)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

fn broken_line(err: AuditError) -> u64 {
    match err {
        AuditError::Broken { line, .. } => line,
        other => panic!("expected Broken, got {other}"),
    }
}

#[test]
fn round_trip_writes_the_documented_lines() {
    let (_dir, path) = new_log(3);
    let report = verify(&path).unwrap();
    assert_eq!(report.entries, 3);

    let lines = lines(&path);
    assert_eq!(lines.len(), 3);
    let mut prev = "0".repeat(64);
    for (i, line) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["seq"], i as u64 + 1);
        assert_eq!(v["kind"], "join");
        assert_eq!(v["participant"], format!("p{}", i + 1));
        assert_eq!(v["subject"], "sched-0007");
        assert!(v.get("actor").is_none(), "absent fields are omitted");
        assert_eq!(v["prev"], prev.as_str());
        let ts = v["ts"].as_str().unwrap();
        assert_eq!(ts.len(), 24, "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
        prev = v["hash"].as_str().unwrap().to_owned();
        assert_eq!(prev.len(), 64);
    }
    assert_eq!(report.last_hash, prev);
    // Fixed field order, hash last.
    assert!(lines[0].starts_with(r#"{"seq":1,"ts":""#));
    assert!(lines[0].contains(r#","kind":"join","visit":"visit-42","participant":"p1","subject":"sched-0007","role":"patient","prev":""#));
}

#[cfg(unix)]
#[test]
fn creates_a_private_file_in_private_directories() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, path) = new_log(1);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join("audit")), 0o700);
}

#[test]
fn continues_an_existing_log_after_reopen() {
    let (_dir, path) = new_log(2);
    let before = verify(&path).unwrap();
    let log = AuditLog::open(&path).unwrap();
    assert_eq!(log.append(event("admit", "p1")).unwrap(), 3);
    drop(log);
    let log = AuditLog::open(&path).unwrap();
    assert_eq!(log.append(event("depart", "p1")).unwrap(), 4);
    drop(log);
    let after = verify(&path).unwrap();
    assert_eq!(after.entries, 4);
    let third: serde_json::Value = serde_json::from_str(&lines(&path)[2]).unwrap();
    assert_eq!(third["prev"], before.last_hash.as_str());
}

#[test]
fn two_writers_share_one_intact_chain() {
    // The recorder agent keeps its log open while an operator's export appends to it.
    let (_dir, path) = new_log(1);
    let a = AuditLog::open(&path).unwrap();
    let b = AuditLog::open(&path).unwrap();
    let event = |kind: &str| AuditEvent {
        kind: kind.into(),
        ..AuditEvent::default()
    };
    assert_eq!(a.append(event("a1")).unwrap(), 2);
    assert_eq!(
        b.append(event("b1")).unwrap(),
        3,
        "b continues after a's entry"
    );
    assert_eq!(
        a.append(event("a2")).unwrap(),
        4,
        "a continues after b's entry"
    );
    assert_eq!(b.append(event("b2")).unwrap(), 5);
    let report = bedside_audit::verify(&path).unwrap();
    assert_eq!(report.entries, 5);
    let kinds: Vec<String> = lines(&path)
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(kinds[1..], ["a1", "b1", "a2", "b2"]);
}

#[test]
fn detects_an_edited_field() {
    let (_dir, path) = new_log(3);
    let mut l = lines(&path);
    l[1] = l[1].replace("\"p2\"", "\"p9\"");
    write_lines(&path, &l);
    let err = verify(&path).unwrap_err();
    assert!(err.to_string().contains("edited"), "{err}");
    assert_eq!(broken_line(err), 2);
}

#[test]
fn detects_an_edited_entry_whose_hash_was_recomputed() {
    // Rewriting one entry and its hash breaks the next entry's `prev`.
    let (dir, path) = new_log(3);
    let other = dir.path().join("other.jsonl");
    let log = AuditLog::open(&other).unwrap();
    log.append(event("join", "p1")).unwrap();
    log.append(event("deny", "p2")).unwrap();
    drop(log);
    let mut l = lines(&path);
    let forged = lines(&other);
    // Lines 1 and 2 replaced by a self-consistent forgery; line 3 still points at the old line 2.
    l[0] = forged[0].clone();
    l[1] = forged[1].clone();
    write_lines(&path, &l);
    assert_eq!(broken_line(verify(&path).unwrap_err()), 3);
}

#[test]
fn detects_a_deleted_middle_line() {
    let (_dir, path) = new_log(4);
    let mut l = lines(&path);
    l.remove(1);
    write_lines(&path, &l);
    let err = verify(&path).unwrap_err();
    assert!(err.to_string().contains("sequence"), "{err}");
    assert_eq!(broken_line(err), 2);
}

#[test]
fn detects_swapped_lines() {
    let (_dir, path) = new_log(4);
    let mut l = lines(&path);
    l.swap(1, 2);
    write_lines(&path, &l);
    assert_eq!(broken_line(verify(&path).unwrap_err()), 2);
}

#[test]
fn detects_a_partial_last_line_and_open_names_file_and_line() {
    let (_dir, path) = new_log(3);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    assert_eq!(broken_line(verify(&path).unwrap_err()), 3);

    let err = AuditLog::open(&path).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");
    assert!(msg.contains("no trailing newline"), "{msg}");
    // Nothing was written by the refused open.
    assert_eq!(std::fs::read(&path).unwrap(), &bytes[..bytes.len() - 10]);

    // Even a complete line whose newline is missing counts as partial.
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    assert_eq!(broken_line(verify(&path).unwrap_err()), 3);
}

#[test]
fn detects_a_non_json_line() {
    let (_dir, path) = new_log(3);
    let mut l = lines(&path);
    l.insert(2, "this is not json".into());
    write_lines(&path, &l);
    let err = verify(&path).unwrap_err();
    assert!(err.to_string().contains("not a valid audit entry"), "{err}");
    assert_eq!(broken_line(err), 3);
}

#[test]
fn detects_an_empty_line_and_an_unknown_field() {
    let (_dir, path) = new_log(2);
    let good = lines(&path);
    let mut l = good.clone();
    l.insert(1, String::new());
    write_lines(&path, &l);
    assert_eq!(broken_line(verify(&path).unwrap_err()), 2);

    let mut l = good;
    l[0] = l[0].replacen("{", r#"{"name":"Ada","#, 1);
    write_lines(&path, &l);
    assert_eq!(broken_line(verify(&path).unwrap_err()), 1);
}

#[test]
fn open_refuses_a_damaged_log_and_leaves_it_alone() {
    let (_dir, path) = new_log(3);
    let mut l = lines(&path);
    l.remove(0);
    write_lines(&path, &l);
    let damaged = std::fs::read(&path).unwrap();
    let err = AuditLog::open(&path).unwrap_err();
    assert!(matches!(err, AuditError::Broken { line: 1, .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), damaged);
}

#[test]
fn an_empty_file_is_an_empty_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    std::fs::write(&path, b"").unwrap();
    let report = verify(&path).unwrap();
    assert_eq!(report.entries, 0);
    assert_eq!(report.last_hash, "0".repeat(64));
    let log = AuditLog::open(&path).unwrap();
    assert_eq!(log.append(event("join", "p1")).unwrap(), 1);
}

#[test]
fn verify_of_a_missing_file_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.jsonl");
    let err = verify(&path).unwrap_err();
    assert!(matches!(err, AuditError::Io { .. }));
    assert!(err.to_string().contains("nope.jsonl"));
}

#[test]
fn concurrent_appends_keep_the_chain_valid() {
    const THREADS: u64 = 8;
    const EACH: u64 = 25;
    let (_dir, path) = new_log(0);
    let log = AuditLog::open(&path).unwrap();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                (0..EACH)
                    .map(|i| log.append(event("join", &format!("p{t}-{i}"))).unwrap())
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=THREADS * EACH).collect::<Vec<_>>());
    assert_eq!(verify(&path).unwrap().entries, THREADS * EACH);
    // Each participant's event is there exactly once.
    let text = std::fs::read_to_string(&path).unwrap();
    for t in 0..THREADS {
        for i in 0..EACH {
            assert_eq!(text.matches(&format!("\"p{t}-{i}\"")).count(), 1);
        }
    }
}

#[test]
fn escapes_keep_one_entry_per_line() {
    let (_dir, path) = new_log(0);
    let log = AuditLog::open(&path).unwrap();
    log.append(AuditEvent {
        kind: "refuse".into(),
        code: Some("odd\ncode\"\u{2028}é".into()),
        ..AuditEvent::default()
    })
    .unwrap();
    drop(log);
    assert_eq!(lines(&path).len(), 1);
    assert_eq!(verify(&path).unwrap().entries, 1);
}

#[test]
fn the_log_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<AuditLog>();
}
