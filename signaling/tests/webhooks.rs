//! Webhooks end to end: the `bedside serve` binary, a real visit over WebSocket, and a receiver
//! in this test that refuses the first attempts, is down while bedside is killed with SIGKILL,
//! then accepts. Every event of the visit arrives (exactly once after de-duplication by id), in
//! per-visit order, with a valid signature, and no body carries a name, a reason, a token or an
//! address.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use bedside_token::{sign_hs256, Claims};
use common::{recv, recv_type, send, Ws};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_bedside");
const TOKEN_KEY: &[u8] = b"webhook-test-token-key-0123456789abcdef";
const HOOK_SECRET: &[u8] = b"webhook-test-signing-secret-Zq8Lr2Wm5Tx1";
const ISSUER: &str = "test-scheduler";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    attempts: usize,
    /// Accepted requests: the event id header and the raw body.
    accepted: Vec<(String, Vec<u8>)>,
    bad_signatures: usize,
}

#[derive(Clone)]
struct Receiver {
    seen: Arc<Mutex<Seen>>,
    /// Attempts still to refuse with 503.
    refuse: Arc<AtomicU32>,
}

impl Receiver {
    /// Serves on `port` until the returned task is aborted.
    async fn serve(&self, port: u16) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let me = me.clone();
                async move { me.handle(&headers, &body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        })
    }

    fn handle(&self, headers: &HeaderMap, body: &[u8]) -> StatusCode {
        let mut seen = self.seen.lock().unwrap();
        seen.attempts += 1;
        let sig = headers
            .get(bedside_webhook::SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // The documented check: signature over the raw body, timestamp within 5 minutes.
        if bedside_webhook::verify(&[HOOK_SECRET], sig, body, now_s(), 300).is_err() {
            seen.bad_signatures += 1;
            return StatusCode::BAD_REQUEST;
        }
        if self
            .refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        let id = headers
            .get(bedside_webhook::EVENT_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        seen.accepted.push((id, body.to_vec()));
        StatusCode::NO_CONTENT
    }

    /// The accepted events, parsed, in arrival order.
    fn events(&self) -> Vec<Value> {
        let seen = self.seen.lock().unwrap();
        seen.accepted
            .iter()
            .map(|(_, b)| serde_json::from_slice(b).unwrap())
            .collect()
    }
}

struct Site {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    http: u16,
    admin: u16,
}

fn site(hook_port: u16) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("token-key");
    std::fs::write(&key, TOKEN_KEY).unwrap();
    let secret = dir.path().join("hook-secret");
    std::fs::write(&secret, HOOK_SECRET).unwrap();
    let (http, admin) = (free_port(), free_port());
    let config = dir.path().join("bedside.toml");
    let q = |p: &Path| format!("{:?}", p.display().to_string());
    std::fs::write(
        &config,
        format!(
            "[http]\nlisten = \"127.0.0.1:{http}\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
             [media]\nbind = \"127.0.0.1:0\"\n\
             [tokens]\nissuer = \"{ISSUER}\"\nhs256_secret_file = {}\n\
             [audit]\npath = {}\n[state]\ndir = {}\n\
             [webhooks]\ninitial_backoff_ms = 50\nmax_backoff_seconds = 1\n\
             connect_timeout_seconds = 1\ntimeout_seconds = 2\n\
             [[webhooks.endpoints]]\nname = \"ehr\"\nurl = \"http://127.0.0.1:{hook_port}/hook\"\n\
             secret_file = {}\n",
            q(&key),
            q(&dir.path().join("audit.jsonl")),
            q(&dir.path().join("state")),
            q(&secret),
        ),
    )
    .unwrap();
    Site {
        dir,
        config,
        http,
        admin,
    }
}

fn http_get(port: u16, path: &str) -> Option<String> {
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

fn serve(site: &Site) -> Child {
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&site.config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if http_get(site.http, "/healthz").is_some_and(|h| h.contains("ok")) {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("bedside serve did not come up");
}

fn claims(visit: &str, role: &str, n: u32) -> Claims {
    Claims {
        iss: ISSUER.into(),
        sub: format!("sched-{role}-{n}"),
        visit: visit.into(),
        visit_type: None,
        role: role.into(),
        exp: now_s() + 600,
        nbf: None,
        jti: format!("jti-{visit}-{role}-{n}"),
        name: Some(format!("SENTINEL-NAME-{n}")),
        reason: Some(format!("SENTINEL-REASON-{n}")),
        locale: None,
        fhir: None,
    }
}

async fn join(http: u16, c: &Claims) -> (Ws, Value, String) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{http}/v1/signal"))
        .await
        .unwrap();
    let token = sign_hs256(TOKEN_KEY, c).unwrap();
    send(&mut ws, json!({"type": "join", "v": 1, "token": token})).await;
    let msg = recv(&mut ws).await.unwrap();
    assert_eq!(msg["type"], "joined", "{msg}");
    (ws, msg, token)
}

/// Waits up to `secs` for `done`, checking every 50 ms.
async fn until(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The events of `visit` after de-duplication by id, by sequence number; panics on two
/// different bodies under one id or two ids under one sequence number.
fn by_seq(events: &[Value], visit: &str) -> BTreeMap<u64, Value> {
    let mut by_id: HashMap<String, Value> = HashMap::new();
    let mut out = BTreeMap::new();
    for e in events.iter().filter(|e| e["visit"] == visit) {
        let id = e["id"].as_str().unwrap().to_owned();
        if let Some(before) = by_id.insert(id.clone(), e.clone()) {
            assert_eq!(&before, e, "a redelivery carries the same body");
            continue;
        }
        let seq = e["seq"].as_u64().unwrap();
        assert!(
            out.insert(seq, e.clone()).is_none(),
            "seq {seq} under two ids"
        );
    }
    out
}

fn complete(events: &[Value], visit: &str) -> bool {
    let m = by_seq(events, visit);
    let n = m.len() as u64;
    n > 0
        && m.keys().copied().eq(1..=n)
        && m.values()
            .last()
            .is_some_and(|e| e["type"] == "visit.encounter")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_of_a_visit_arrives_once_in_order_across_failures_and_a_kill_9() {
    let hook_port = free_port();
    let receiver = Receiver {
        seen: Arc::default(),
        refuse: Arc::new(AtomicU32::new(3)),
    };
    let up = receiver.serve(hook_port).await;
    let site = site(hook_port);
    let mut bedside = serve(&site);
    let visit = "visit-webhooks-1";

    // The receiver refuses three attempts, then takes the start of the visit. The scheduler
    // gives FHIR references for the Encounter.
    let mut doctor = claims(visit, "provider", 1);
    doctor.fhir = Some(bedside_token::FhirRefs {
        participant: Some("Practitioner/dr-1".into()),
        ..Default::default()
    });
    let mut patient = claims(visit, "patient", 2);
    patient.fhir = Some(bedside_token::FhirRefs {
        patient: Some("Patient/pt-2".into()),
        appointment: Some("Appointment/ap-1".into()),
        participant: None,
    });
    let (mut doc, _, t1) = join(site.http, &doctor).await;
    let (mut pat, jp, t2) = join(site.http, &patient).await;
    send(
        &mut doc,
        json!({"type": "admit", "participant": jp["participant"]}),
    )
    .await;
    recv_type(&mut pat, "admitted").await;
    until(20, "the first events", || receiver.events().len() >= 4).await;
    assert!(
        receiver.seen.lock().unwrap().attempts >= 7,
        "3 refusals and 4 deliveries"
    );

    // The receiver goes away; the visit goes on.
    up.abort();
    let _ = up.await;
    let (mut pat2, jp2, t3) = join(site.http, &claims(visit, "patient", 3)).await;
    recv_type(&mut doc, "queue").await;
    send(
        &mut doc,
        json!({"type": "deny", "participant": jp2["participant"], "reason": "SENTINEL-DENY"}),
    )
    .await;
    assert!(
        common::close_code(&mut pat2).await.is_some(),
        "the denied patient's session is closed"
    );
    send(&mut pat, json!({"type": "leave"})).await;
    recv_type(&mut doc, "participant_left").await;
    send(&mut doc, json!({"type": "end_visit"})).await;
    let _ = common::close_code(&mut doc).await;
    // The end of the visit is in the outbox (the admin listing reads the store), then bedside
    // dies without a chance to do anything more.
    until(10, "visit.ended in the outbox", || {
        http_get(site.admin, "/webhooks").is_some_and(|l| l.contains("visit.ended"))
    })
    .await;
    // What the admin listener and `bedside visits show` tell of the ended visit.
    let shown = http_get(site.admin, &format!("/visits/{visit}")).unwrap();
    assert!(shown.contains("\"status\":\"ended\""), "{shown}");
    let encounter = http_get(site.admin, &format!("/visits/{visit}/encounter")).unwrap();
    assert!(encounter.contains("application/fhir+json"), "{encounter}");
    assert!(encounter.contains("\"status\":\"finished\""), "{encounter}");
    let (ok, table) = run_cli(&["visits", "show", visit], &site.config);
    assert!(ok, "{table}");
    assert!(
        table.contains("ended (ended_by_provider, by p1)"),
        "{table}"
    );
    assert!(table.contains("sched-patient-2"), "{table}");
    for text in [&shown, &encounter, &table] {
        assert!(!text.contains("SENTINEL"), "{text}");
    }
    bedside.kill().unwrap(); // SIGKILL
    bedside.wait().unwrap();

    // bedside and the receiver come back; a second visit runs after the restart.
    let up = receiver.serve(hook_port).await;
    let mut bedside = serve(&site);
    let visit2 = "visit-webhooks-2";
    let (mut doc2, _, t4) = join(site.http, &claims(visit2, "provider", 4)).await;
    send(&mut doc2, json!({"type": "leave"})).await;
    until(30, "both visits complete at the receiver", || {
        let ev = receiver.events();
        complete(&ev, visit) && complete(&ev, visit2)
    })
    .await;
    bedside.kill().unwrap();
    let _ = bedside.wait();
    up.abort();

    let events = receiver.events();
    let v1 = by_seq(&events, visit);
    let kinds: Vec<&str> = v1.values().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "visit.started",
            "participant.joined",
            "participant.waiting",
            "participant.admitted",
            "participant.joined",
            "participant.waiting",
            "participant.denied",
            "participant.left",
            "participant.left",
            "participant.left",
            "visit.ended",
            "visit.encounter",
        ]
    );
    let reasons: Vec<&str> = v1
        .values()
        .filter(|e| e["type"] == "participant.left")
        .map(|e| e["data"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["denied", "left", "visit_ended"]);
    assert_eq!(
        v1[&3]["data"]["sub"], "sched-patient-2",
        "sub ties events to the EHR"
    );
    let ended = &v1[&11];
    assert_eq!(ended["data"]["reason"], "ended_by_provider");
    assert!(ended["data"]["duration_ms"].as_u64().is_some());
    let enc = &v1[&12]["data"];
    assert_eq!(enc["resourceType"], "Encounter");
    assert_eq!(enc["status"], "finished");
    assert_eq!(enc["subject"]["reference"], "Patient/pt-2");
    assert_eq!(enc["appointment"][0]["reference"], "Appointment/ap-1");
    assert_eq!(
        enc["participant"][0]["type"][0]["coding"][0]["code"],
        "PPRF"
    );
    assert_eq!(
        enc["participant"][0]["individual"]["reference"],
        "Practitioner/dr-1"
    );
    // Per-visit order: the first arrival of each event comes in sequence order.
    for v in [visit, visit2] {
        let mut first = Vec::new();
        for e in events.iter().filter(|e| e["visit"] == v) {
            let seq = e["seq"].as_u64().unwrap();
            if !first.contains(&seq) {
                first.push(seq);
            }
        }
        assert!(
            first.windows(2).all(|w| w[0] < w[1]),
            "{v}: arrival order {first:?}"
        );
    }
    let seen = receiver.seen.lock().unwrap();
    assert_eq!(seen.bad_signatures, 0);
    assert!(seen
        .accepted
        .iter()
        .all(|(id, b)| { serde_json::from_slice::<Value>(b).unwrap()["id"] == id.as_str() }));
    // Nothing that identifies a person beyond the scheduler's opaque ids, and no credential or
    // address, in any body.
    let t_all = [&t1, &t2, &t3, &t4];
    for (_, body) in &seen.accepted {
        let text = String::from_utf8_lossy(body);
        for sentinel in ["SENTINEL", "jti-", "127.0.0.1", "localhost"] {
            assert!(!text.contains(sentinel), "{sentinel} in {text}");
        }
        for t in t_all {
            let signature = t.rsplit('.').next().unwrap();
            assert!(!text.contains(signature), "a token in {text}");
        }
    }
    drop(site.dir);
}

fn run_cli(args: &[&str], config: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_show_in_the_cli_and_metrics_and_retry_delivers_them() {
    let hook_port = free_port();
    let site = site(hook_port);
    // A dead letter, as a day of failures leaves it.
    {
        use bedside_store::{EmbeddedStore, EntryKey, Limits, NewMessage, Outbox};
        let store =
            EmbeddedStore::open_in(&site.dir.path().join("state"), Limits::default()).unwrap();
        store
            .append(
                1_000,
                vec![NewMessage {
                    visit: "visit-dead".into(),
                    destinations: vec!["ehr".into()],
                    id: [7; 16],
                    kind: "visit.started".into(),
                    created_ms: 1_000,
                    render: Box::new(|seq| {
                        serde_json::to_vec(&bedside_webhook::Event {
                            id: format!("evt_{}", "07".repeat(16)),
                            kind: "visit.started".into(),
                            created_at: bedside_webhook::rfc3339_ms(1_000),
                            visit: "visit-dead".into(),
                            seq,
                            data: json!({"visit_type": "consult"}),
                        })
                        .unwrap()
                    }),
                }],
            )
            .unwrap();
        let key = EntryKey {
            destination: "ehr".into(),
            visit: "visit-dead".into(),
            seq: 1,
        };
        store.dead_letter(&key, 31, "http_503").unwrap();
    }
    // Stopped server: the CLI reads the store file.
    let (ok, text) = run_cli(&["webhooks", "list", "--dead"], &site.config);
    assert!(ok, "{text}");
    assert!(
        text.contains("visit-dead") && text.contains("http_503"),
        "{text}"
    );
    assert!(text.contains("1 entry (1 dead)"), "{text}");

    let receiver = Receiver {
        seen: Arc::default(),
        refuse: Arc::new(AtomicU32::new(0)),
    };
    let up = receiver.serve(hook_port).await;
    let mut child = serve(&site);
    until(10, "the dead-letter gauge", || {
        http_get(site.admin, "/metrics")
            .is_some_and(|m| m.contains("bedside_webhook_dead_letters 1"))
    })
    .await;
    assert!(
        receiver.events().is_empty(),
        "a dead letter waits for an operator"
    );
    // Running server: the store is locked, so the CLI goes through the admin listener.
    let (ok, text) = run_cli(&["webhooks", "retry"], &site.config);
    assert!(ok, "{text}");
    assert!(text.contains("1 dead letter(s) back"), "{text}");
    until(10, "the retried event", || receiver.events().len() == 1).await;
    assert_eq!(receiver.events()[0]["visit"], "visit-dead");
    assert_eq!(receiver.seen.lock().unwrap().bad_signatures, 0);
    until(10, "an empty outbox", || {
        run_cli(&["webhooks", "list"], &site.config)
            .1
            .contains("0 entries (0 dead)")
    })
    .await;
    child.kill().unwrap();
    let _ = child.wait();
    up.abort();
}
