//! One load step: N visits × M participants joined, a warm-up, a measured window, then every
//! participant leaves. All participants are tasks of one current-thread runtime on the calling
//! thread.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bedside_token::{sign_hs256, Claims};
use rand::Rng;
use serde::Serialize;
use tokio::sync::watch;

use crate::participant::{self, track_is_video, MediaShape, Shared, Spec};
use crate::procfs::{rss_kib, CpuSnapshot};
use crate::stats::{loss_fraction, DelaySummary};

/// How participants get join tokens.
#[derive(Clone)]
pub enum TokenSource {
    /// Sign HS256 tokens with a shared secret (the `bedside dev` key, `DIR/dev-token-key`).
    Hs256 { secret: Vec<u8>, issuer: String },
}

impl TokenSource {
    fn token(&self, visit: &str, role: &str, sub: &str) -> Result<String, LoadError> {
        match self {
            TokenSource::Hs256 { secret, issuer } => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_err(|_| LoadError::Setup("the clock is before 1970".into()))?
                    .as_secs();
                let claims = Claims {
                    iss: issuer.clone(),
                    sub: sub.to_owned(),
                    visit: visit.to_owned(),
                    visit_type: Some("consult".into()),
                    role: role.to_owned(),
                    exp: now + 3600,
                    nbf: Some(now.saturating_sub(5)),
                    jti: format!("{:032x}", rand::thread_rng().gen::<u128>()),
                    name: None,
                    reason: None,
                    locale: None,
                    fhir: None,
                };
                sign_hs256(secret, &claims)
                    .map_err(|e| LoadError::Setup(format!("signing a token: {e}")))
            }
        }
    }
}

/// One load step's settings.
#[derive(Clone)]
pub struct StepConfig {
    /// `ws://HOST:PORT/v1/signal`.
    pub signal_url: String,
    pub visits: usize,
    pub participants: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub shape: MediaShape,
    pub video_kbps: u32,
    pub tokens: TokenSource,
    /// The server process, for CPU time and memory.
    pub server_pid: Option<u32>,
    /// How long to wait for every participant to receive every track.
    pub setup_timeout: Duration,
    /// Time between joins (the server rate-limits joins per client address).
    pub join_interval: Duration,
    /// Visit ids start with this (unique per step, so steps never share a visit).
    pub visit_prefix: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("setup: {0}")]
    Setup(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// What one receiver got of one remote track in the window.
#[derive(Debug, Clone, Serialize)]
pub struct TrackResult {
    pub track: u32,
    pub video: bool,
    pub expected: u64,
    pub received: u64,
    pub loss: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParticipantResult {
    pub index: u32,
    pub visit: usize,
    /// `None` when it ran to the end; else why it stopped.
    pub error: Option<String>,
    pub tracks: Vec<TrackResult>,
}

/// The figures of one step.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub visits: usize,
    pub participants_per_visit: usize,
    pub participants: usize,
    pub subscribers_per_publisher: usize,
    pub video_kbps: u32,
    pub video_fps: u32,
    pub window_s: f64,
    /// Participants that received every expected track before the window.
    pub ready: usize,
    pub setup_ms_p50: u32,
    pub setup_ms_max: u32,
    /// Frames the participants published in the window, per second.
    pub published_frames_per_s: f64,
    /// Frames the receivers should have got (published × subscribers).
    pub expected_frames: u64,
    pub received_frames: u64,
    pub loss: f64,
    pub audio_loss: f64,
    pub video_loss: f64,
    /// RTP packets the server sent that the receivers got, in the window.
    pub forwarded_packets: u64,
    pub forwarded_packets_per_s: f64,
    pub audio_delay: DelaySummary,
    pub video_delay: DelaySummary,
    /// Server CPU seconds in the window (all threads) and as cores busy.
    pub server_cpu_s: Option<f64>,
    pub server_cores: Option<f64>,
    /// The media thread's share (`bedside-media`).
    pub media_thread_cpu_s: Option<f64>,
    pub cpu_us_per_packet: Option<f64>,
    pub media_thread_us_per_packet: Option<f64>,
    /// Forwarded packets per second per core of server CPU actually used.
    pub packets_per_core_s: Option<f64>,
    pub server_rss_kib: Option<u64>,
    pub server_threads_cpu_s: BTreeMap<String, f64>,
    /// The load generator's own CPU (cores busy) and the datagrams it failed to send.
    pub loadgen_cores: f64,
    pub loadgen_send_drops: u64,
    pub per_participant: Vec<ParticipantResult>,
}

/// Runs one step on the calling thread and reports its figures.
pub fn run_step(cfg: &StepConfig) -> Result<StepResult, LoadError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, step(cfg))
}

async fn step(cfg: &StepConfig) -> Result<StepResult, LoadError> {
    let shared = Rc::new(Shared::new(Instant::now()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let total = cfg.visits * cfg.participants;
    let mut handles = Vec::with_capacity(total);
    for v in 0..cfg.visits {
        let visit = format!("{}-{v}", cfg.visit_prefix);
        for p in 0..cfg.participants {
            let index = (v * cfg.participants + p) as u32;
            // The first of each visit is its provider; the rest are chaperones: neither waits.
            let role = if p == 0 { "provider" } else { "chaperone" };
            let sub = format!("{}-{index}", cfg.visit_prefix);
            let spec = Spec {
                index,
                token: cfg.tokens.token(&visit, role, &sub)?,
                expected_tracks: 2 * (cfg.participants - 1),
            };
            let h = tokio::task::spawn_local(participant::run(
                spec,
                cfg.signal_url.clone(),
                cfg.shape,
                shared.clone(),
                stop_rx.clone(),
            ));
            handles.push((index, v, h));
            tokio::time::sleep(cfg.join_interval).await;
        }
    }
    let deadline = Instant::now() + cfg.setup_timeout;
    while shared.ready.get() < total
        && Instant::now() < deadline
        && handles.iter().any(|(_, _, h)| !h.is_finished())
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(cfg.warmup).await;

    let me = std::process::id();
    let start = Instant::now();
    let cpu0 = cfg.server_pid.and_then(CpuSnapshot::read);
    let own0 = CpuSnapshot::read(me);
    shared.window.set(Some((
        shared.micros(start),
        shared.micros(start + cfg.duration),
    )));
    tokio::time::sleep_until((start + cfg.duration).into()).await;
    let cpu1 = cfg.server_pid.and_then(CpuSnapshot::read);
    let own1 = CpuSnapshot::read(me);
    let window_s = start.elapsed().as_secs_f64();
    let rss = cfg.server_pid.and_then(rss_kib);
    // Frames sent just before the window's end are still on their way.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop_tx.send(true);
    let mut outcomes = BTreeMap::new();
    for (index, v, h) in handles {
        let outcome = match tokio::time::timeout(Duration::from_secs(3), h).await {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(e))) => Some(e.to_string()),
            Ok(Err(e)) => Some(format!("the participant task failed: {e}")),
            Err(_) => Some("did not stop within 3 s".to_owned()),
        };
        outcomes.insert(index, (v, outcome));
    }

    let server = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some(b.since(&a)),
        _ => None,
    };
    let own = match (own0, own1) {
        (Some(a), Some(b)) => b.since(&a).total_s / window_s,
        _ => 0.0,
    };
    Ok(summarize(
        cfg, &shared, outcomes, window_s, server, rss, own,
    ))
}

fn summarize(
    cfg: &StepConfig,
    shared: &Shared,
    outcomes: BTreeMap<u32, (usize, Option<String>)>,
    window_s: f64,
    server: Option<CpuSnapshot>,
    rss: Option<u64>,
    loadgen_cores: f64,
) -> StepResult {
    let sent = shared.sent.borrow();
    let received = shared.received.borrow();
    let m = cfg.participants as u32;
    let mut per_participant = Vec::new();
    // [audio, video] expected and received.
    let mut expected = [0u64; 2];
    let mut got = [0u64; 2];
    let mut packets = 0u64;
    for (&index, (visit, error)) in &outcomes {
        let first = index - index % m;
        let mut tracks = Vec::new();
        for other in (first..first + m).filter(|o| *o != index) {
            for track in [other * 2, other * 2 + 1] {
                let exp = sent.get(&track).copied().unwrap_or(0);
                let r = received.get(&(index, track));
                let rec = r.map_or(0, |r| r.seqs.unique()).min(exp);
                packets += r.map_or(0, |r| r.packets);
                let k = usize::from(track_is_video(track));
                expected[k] += exp;
                got[k] += rec;
                tracks.push(TrackResult {
                    track,
                    video: track_is_video(track),
                    expected: exp,
                    received: rec,
                    loss: loss_fraction(exp, rec),
                });
            }
        }
        per_participant.push(ParticipantResult {
            index,
            visit: *visit,
            error: error.clone(),
            tracks,
        });
    }
    let published: u64 = sent.values().sum();
    let mut delays = shared.delays.borrow_mut();
    let mut setup = shared.setup_ms.borrow().clone();
    let setup_p50 = crate::stats::percentile(&mut setup, 50.0).unwrap_or(0);
    let setup_max = setup.iter().copied().max().unwrap_or(0);
    let media_thread = server
        .as_ref()
        .and_then(|s| s.by_thread.get("bedside-media").copied());
    let per_packet = |cpu: f64| (packets > 0).then(|| cpu * 1e6 / packets as f64);
    let pps = packets as f64 / window_s;
    StepResult {
        visits: cfg.visits,
        participants_per_visit: cfg.participants,
        participants: cfg.visits * cfg.participants,
        subscribers_per_publisher: cfg.participants.saturating_sub(1),
        video_kbps: cfg.video_kbps,
        video_fps: cfg.shape.video_fps,
        window_s,
        ready: shared.ready.get(),
        setup_ms_p50: setup_p50,
        setup_ms_max: setup_max,
        published_frames_per_s: published as f64 / window_s,
        expected_frames: expected[0] + expected[1],
        received_frames: got[0] + got[1],
        loss: loss_fraction(expected[0] + expected[1], got[0] + got[1]),
        audio_loss: loss_fraction(expected[0], got[0]),
        video_loss: loss_fraction(expected[1], got[1]),
        forwarded_packets: packets,
        forwarded_packets_per_s: pps,
        audio_delay: DelaySummary::of(&mut delays[0]),
        video_delay: DelaySummary::of(&mut delays[1]),
        server_cpu_s: server.as_ref().map(|s| s.total_s),
        server_cores: server.as_ref().map(|s| s.total_s / window_s),
        media_thread_cpu_s: media_thread,
        cpu_us_per_packet: server.as_ref().and_then(|s| per_packet(s.total_s)),
        media_thread_us_per_packet: media_thread.and_then(per_packet),
        packets_per_core_s: server
            .as_ref()
            .filter(|s| s.total_s > 0.0)
            .map(|s| pps / (s.total_s / window_s)),
        server_rss_kib: rss,
        server_threads_cpu_s: server.map(|s| s.by_thread).unwrap_or_default(),
        loadgen_cores,
        loadgen_send_drops: shared.send_drops.get(),
        per_participant,
    }
}
