//! The `bedside` binary itself: `serve --config` starts from a file and refuses a bad one with
//! a message naming the key; `token` and `audit verify` work from the command line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bedside");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn serve_runs_from_a_config_file_and_writes_its_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "x".repeat(48)).unwrap();
    let (http, admin) = (free_port(), free_port());
    let audit = dir.path().join("audit.jsonl");
    let config = dir.path().join("bedside.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\nlisten = \"127.0.0.1:{http}\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
             [media]\nbind = \"127.0.0.1:0\"\n[tokens]\nissuer = \"s\"\nhs256_secret_file = {:?}\n\
             [audit]\npath = {:?}\n",
            secret.display().to_string(),
            audit.display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut health = None;
    while Instant::now() < deadline {
        health = get(http, "/healthz");
        if health.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = get(admin, "/metrics");
    child.kill().unwrap();
    let _ = child.wait();
    assert!(health.unwrap().contains("ok"));
    assert!(metrics.unwrap().contains("bedside_signaling_sessions"));
    assert!(audit.exists(), "the audit log is created at start-up");
    // JSON logs by default.
    let mut stderr = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .for_each(|l| stderr.push_str(&l));
    assert!(stderr.contains("\"bedside serving\"") || stderr.contains("bedside serving"));
}

#[test]
fn serve_refuses_a_bad_config_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bedside.toml");
    std::fs::write(&config, "[http]\nlisten = \"127.0.0.1:1\"\nlistn = 3\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listn"), "{err}");
    let out = Command::new(BIN)
        .args(["serve", "--config", "/nonexistent/bedside.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/bedside.toml"));
}

#[test]
fn token_mints_every_role_and_refuses_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    for role in [
        "provider",
        "chaperone",
        "supervisor",
        "patient",
        "caregiver",
        "interpreter",
    ] {
        let out = Command::new(BIN)
            .args([
                "token",
                "--visit",
                "v",
                "--visit-type",
                "group",
                "--role",
                role,
                "--state-dir",
            ])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{role}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).matches('.').count(), 2);
    }
    // The recorder joins only with a ticket from a recording job, never with a token.
    let out = Command::new(BIN)
        .args(["token", "--visit", "v", "--role", "recorder", "--state-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ticket"));
    let out = Command::new(BIN)
        .args(["token", "--visit", "v", "--role", "surgeon", "--state-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role"));
}

#[test]
fn token_refuses_to_mint_what_the_server_would_refuse_as_too_long() {
    let dir = tempfile::tempdir().unwrap();
    let mint = |reason_len: usize| {
        Command::new(BIN)
            .args(["token", "--visit", "v", "--role", "patient", "--reason"])
            .arg("r".repeat(reason_len))
            .arg("--state-dir")
            .arg(dir.path())
            .output()
            .unwrap()
    };
    // Base64 makes the claims a third longer: 5,000 bytes of reason fit, 7,000 do not.
    let fits = mint(5_000);
    assert!(fits.status.success());
    assert!(fits.stdout.len() <= bedside_token::MAX_TOKEN_BYTES + 1);
    let long = mint(7_000);
    assert!(!long.status.success());
    assert!(long.stdout.is_empty(), "no token is printed");
    let err = String::from_utf8_lossy(&long.stderr);
    assert!(err.contains("8192 bytes"), "{err}");
    assert!(!err.contains("rrrr"), "the reason (PHI) is not echoed");
}

#[test]
fn audit_verify_reports_a_good_log_and_a_tampered_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = bedside_audit::AuditLog::open(&path).unwrap();
    for kind in ["join", "admit", "depart"] {
        log.append(bedside_audit::AuditEvent {
            kind: kind.into(),
            visit: Some("v".into()),
            ..Default::default()
        })
        .unwrap();
    }
    drop(log);
    let ok = Command::new(BIN)
        .args(["audit", "verify"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("3 entries"));
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"admit\"", "\"deny\"")).unwrap();
    let bad = Command::new(BIN)
        .args(["audit", "verify"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("line 2"));
}

#[test]
fn check_prints_the_plan_and_refuses_weak_or_shared_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let token = write("token", "k7Q2vX9pL4mN8rT1wZ6yB3cF5hJ0dG2sA8eU4iO7");
    let turn_secret = write("turn", "Zr4Yq1Wm8Nx5Lk2Jv7Hc0Bg3Ft6Dp9Sa4Qe1Wr5T");
    let config = |token: &std::path::Path, turn: &std::path::Path| {
        write(
            "bedside.toml",
            &format!(
                "[http]\nlisten = \"127.0.0.1:8443\"\n[media]\nbind = \"0.0.0.0:50000\"\n\
                 advertise = [\"192.0.2.10:0\"]\n[tokens]\nissuer = \"s\"\n\
                 hs256_secret_file = {:?}\n[turn]\nurls = [\"turns:turn.example.org:443?transport=tcp\"]\n\
                 secret_file = {:?}\n",
                token.display().to_string(),
                turn.display().to_string()
            ),
        )
    };
    let run = |args: &[&std::path::Path]| {
        let mut c = Command::new(BIN);
        c.arg("check").arg("--config").arg(args[0]);
        if let Some(t) = args.get(1) {
            c.arg("--turn-config").arg(t);
        }
        let out = c.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let good = config(&token, &turn_secret);
    let (ok, text) = run(&[&good]);
    assert!(ok, "{text}");
    assert!(text.contains("192.0.2.10:50000"), "{text}");
    assert!(text.contains("turns:turn.example.org:443"), "{text}");
    assert!(!text.contains("k7Q2vX9p"), "check never prints secrets");
    assert!(
        text.contains("50 connections per client address, 10000 in all"),
        "{text}"
    );
    // Plain HTTP means a proxy in front, which the per-address cap would count as one client.
    assert!(text.contains("max_connections_per_address is 50"), "{text}");

    // The same secret for tokens and TURN is refused.
    let shared = config(&token, &token);
    let (ok, text) = run(&[&shared]);
    assert!(!ok);
    assert!(text.contains("same secret"), "{text}");

    // A placeholder secret is refused.
    let weak = write("weak", "changeme-changeme-changeme-0123456789");
    let (ok, text) = run(&[&config(&weak, &turn_secret)]);
    assert!(!ok);
    assert!(text.contains("placeholder"), "{text}");

    // TURN relaying to every address is refused.
    let good = config(&token, &turn_secret);
    let turn_cfg = write(
        "turn.toml",
        &format!(
            "listen_udp = [\"127.0.0.1:3478\"]\nsecret_file = {:?}\nallow_peer = [\"0.0.0.0/0\"]\nrelay_ipv4 = \"127.0.0.1\"\n",
            turn_secret.display().to_string()
        ),
    );
    let (ok, text) = run(&[&good, &turn_cfg]);
    assert!(!ok, "{text}");
    assert!(text.contains("allow_peer 0.0.0.0/0"), "{text}");
    assert!(
        !text.contains("same secret"),
        "bedside and bedside-turn share the TURN secret: {text}"
    );
    // With only the SFU's address allowed, the same pair of configs passes.
    let narrow = write(
        "turn2.toml",
        &format!(
            "listen_udp = [\"127.0.0.1:3478\"]\nsecret_file = {:?}\nallow_peer = [\"10.1.2.3/32\"]\nrelay_ipv4 = \"127.0.0.1\"\n",
            turn_secret.display().to_string()
        ),
    );
    let (ok, text) = run(&[&good, &narrow]);
    assert!(ok, "{text}");

    // Recording: the recorder secret is shared with bedside-recorder by design, but must not
    // be any other secret.
    let rec_secret = write("rec", "Hc8Vn2Qx5Tm9Lw3Pz7Rk1Yb4Fd6Gs0Ja2Ue8Io5X");
    let with_recording = |secret: &std::path::Path| {
        let base = std::fs::read_to_string(&good).unwrap();
        write(
            "bedside-rec.toml",
            &format!(
                "{base}[recording]\nenabled = true\nrecorder_secret_file = {:?}\n",
                secret.display().to_string()
            ),
        )
    };
    let kek = write(
        "kek",
        "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0",
    );
    std::fs::set_permissions(&kek, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let recorder_cfg = write(
        "recorder.toml",
        &format!(
            "storage_dir = \"/tmp/r\"\nkek_file = {:?}\nkek_id = \"k1\"\naudit_log = \"/tmp/a\"\n\
             control_url = \"ws://127.0.0.1:8443/v1/recorder\"\nsecret_file = {:?}\n",
            kek.display().to_string(),
            rec_secret.display().to_string()
        ),
    );
    let mut c = Command::new(BIN);
    c.arg("check")
        .arg("--config")
        .arg(with_recording(&rec_secret))
        .arg("--recorder-config")
        .arg(&recorder_cfg);
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("recording:       enabled"), "{text}");
    assert!(text.contains("recorder joins:  ws://"), "{text}");
    assert!(
        !text.contains("same secret"),
        "bedside and the recorder share the recorder secret: {text}"
    );
    let (ok, text) = run(&[&with_recording(&token)]);
    assert!(
        !ok,
        "the token secret reused as the recorder secret: {text}"
    );
    assert!(text.contains("same secret"), "{text}");
}

#[test]
fn token_carries_a_locale_and_refuses_one_that_is_not_a_language_tag() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let mint = |locale: &str| {
        Command::new(BIN)
            .args([
                "token", "--visit", "v", "--role", "patient", "--locale", locale,
            ])
            .arg("--state-dir")
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let ok = mint("es");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let token = String::from_utf8(ok.stdout).unwrap();
    let body = token.trim().split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["locale"], "es");
    let bad = mint("es_ES");
    assert!(!bad.status.success());
    assert!(bad.stdout.is_empty(), "no token is printed");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--locale"));
}
