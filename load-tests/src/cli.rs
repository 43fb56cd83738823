//! The command line: `bedside-load --server URL [--visits N] [--participants M]
//! [--duration SECONDS] [--out FILE]`, or `--sweep 1x2,2x3,…` for several loads in one run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;

use crate::report::{markdown, write_json, Machine, Report};
use crate::run::{run_step, StepConfig, StepResult, TokenSource};
use crate::MediaShape;

#[derive(Parser, Debug)]
#[command(
    name = "bedside-load",
    version,
    about = "Synthetic WebRTC participants that load a running bedside and measure forwarding cost"
)]
struct Cli {
    /// The server's web address (`http://127.0.0.1:8080`) or signaling URL (`ws://…/v1/signal`).
    #[arg(long)]
    server: String,
    /// Visits at once.
    #[arg(long, default_value_t = 1)]
    visits: usize,
    /// Participants per visit (each publishes audio and video and receives all the others).
    #[arg(long, default_value_t = 3)]
    participants: usize,
    /// Length of the measured window, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of media before the window opens.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Several loads in one run, `VISITSxPARTICIPANTS` separated by commas (e.g. `1x2,2x3,4x4`);
    /// replaces --visits/--participants. Stops after the first step whose loss passes
    /// --stop-loss.
    #[arg(long)]
    sweep: Option<String>,
    /// Loss (fraction) that ends a sweep.
    #[arg(long, default_value_t = 0.005)]
    stop_loss: f64,
    /// Pause between sweep steps, in seconds (visits end, sockets close).
    #[arg(long, default_value_t = 3.0)]
    pause: f64,
    /// Video bitrate per publisher, kbit/s.
    #[arg(long, default_value_t = 300)]
    video_kbps: u32,
    /// Video frames per second.
    #[arg(long, default_value_t = 30)]
    video_fps: u32,
    /// Bytes per 20 ms audio frame.
    #[arg(long, default_value_t = 100)]
    audio_bytes: usize,
    /// `bedside dev`'s state directory: tokens are signed with its `dev-token-key`.
    #[arg(long, conflicts_with = "token_secret_file")]
    state_dir: Option<PathBuf>,
    /// A file holding the HS256 token secret (instead of --state-dir).
    #[arg(long)]
    token_secret_file: Option<PathBuf>,
    /// The tokens' issuer.
    #[arg(long, default_value = "bedside-dev")]
    issuer: String,
    /// The server's process id, for its CPU time and memory from /proc.
    #[arg(long)]
    pid: Option<u32>,
    /// Seconds to wait for every participant to receive every track.
    #[arg(long, default_value_t = 20.0)]
    setup_timeout: f64,
    /// Milliseconds between joins (`bedside dev` allows 10 joins/s from one address, burst 60).
    #[arg(long, default_value_t = 40)]
    join_interval_ms: u64,
    /// Write the JSON report here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the markdown table here too (it always goes to stdout).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Write the PNG plot here (sweeps: cost and delay against load).
    #[arg(long)]
    plot: Option<PathBuf>,
}

fn parse_sweep(text: &str) -> Result<Vec<(usize, usize)>> {
    text.split(',')
        .map(|s| {
            let (v, p) = s
                .trim()
                .split_once(['x', '×'])
                .with_context(|| format!("sweep step {s:?} is not VISITSxPARTICIPANTS"))?;
            let v: usize = v.parse().with_context(|| format!("sweep step {s:?}"))?;
            let p: usize = p.parse().with_context(|| format!("sweep step {s:?}"))?;
            if v == 0 || p < 2 {
                bail!("sweep step {s:?}: at least 1 visit of 2 participants");
            }
            Ok((v, p))
        })
        .collect()
}

fn signal_url(server: &str) -> String {
    let s = server.trim_end_matches('/');
    let s = if let Some(rest) = s.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = s.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if s.starts_with("ws://") || s.starts_with("wss://") {
        s.to_owned()
    } else {
        format!("ws://{s}")
    };
    if s.ends_with("/v1/signal") {
        s
    } else {
        format!("{s}/v1/signal")
    }
}

pub fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bedside-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let secret_path = match (&cli.state_dir, &cli.token_secret_file) {
        (Some(dir), _) => dir.join("dev-token-key"),
        (None, Some(f)) => f.clone(),
        (None, None) => bail!("give --state-dir (bedside dev's) or --token-secret-file"),
    };
    let secret = std::fs::read_to_string(&secret_path)
        .with_context(|| format!("reading the token secret {}", secret_path.display()))?
        .trim()
        .as_bytes()
        .to_vec();
    let steps = match &cli.sweep {
        Some(s) => parse_sweep(s)?,
        None => vec![(cli.visits, cli.participants)],
    };
    let fps = cli.video_fps.clamp(1, 120);
    let frame_bytes =
        (cli.video_kbps as usize * 1000 / 8 / fps as usize).max(crate::stats::Probe::LEN);
    let nonce: u32 = rand::random();
    let mut results: Vec<StepResult> = Vec::new();
    for (i, (visits, participants)) in steps.iter().copied().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_secs_f64(cli.pause));
        }
        eprintln!("bedside-load: {visits} visits × {participants} participants …");
        let cfg = StepConfig {
            signal_url: signal_url(&cli.server),
            visits,
            participants,
            warmup: Duration::from_secs_f64(cli.warmup),
            duration: Duration::from_secs_f64(cli.duration),
            shape: MediaShape {
                audio_bytes: cli.audio_bytes.max(crate::stats::Probe::LEN),
                video_fps: fps,
                video_frame_bytes: frame_bytes,
            },
            video_kbps: cli.video_kbps,
            tokens: TokenSource::Hs256 {
                secret: secret.clone(),
                issuer: cli.issuer.clone(),
            },
            server_pid: cli.pid,
            setup_timeout: Duration::from_secs_f64(cli.setup_timeout),
            join_interval: Duration::from_millis(cli.join_interval_ms),
            visit_prefix: format!("load-{nonce:08x}-{i}"),
        };
        let r = run_step(&cfg)?;
        let failed = r
            .per_participant
            .iter()
            .filter(|p| p.error.is_some())
            .count();
        eprintln!(
            "  {:.0} forwarded pkt/s, loss {:.3}%, ready {}/{}, {} stopped early",
            r.forwarded_packets_per_s,
            r.loss * 100.0,
            r.ready,
            r.participants,
            failed
        );
        let over = r.loss > cli.stop_loss;
        results.push(r);
        if over && cli.sweep.is_some() {
            eprintln!("  loss passed {:.2}%: sweep ends", cli.stop_loss * 100.0);
            break;
        }
    }
    let table = markdown(&results);
    print!("{table}");
    if let Some(p) = &cli.markdown {
        std::fs::write(p, &table).with_context(|| format!("writing {}", p.display()))?;
    }
    let report = Report {
        tool: "bedside-load",
        machine: Machine::here(),
        steps: results,
    };
    if let Some(p) = &cli.out {
        write_json(p, &report).with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &cli.plot {
        crate::plot::draw(p, &report.steps)
            .map_err(|e| anyhow::anyhow!("drawing {}: {e}", p.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_and_urls_parse() {
        assert_eq!(
            parse_sweep("1x2, 2x3,4×4").unwrap(),
            vec![(1, 2), (2, 3), (4, 4)]
        );
        assert!(parse_sweep("1x1").is_err());
        assert!(parse_sweep("3").is_err());
        assert_eq!(
            signal_url("http://127.0.0.1:8080/"),
            "ws://127.0.0.1:8080/v1/signal"
        );
        assert_eq!(
            signal_url("127.0.0.1:8080"),
            "ws://127.0.0.1:8080/v1/signal"
        );
        assert_eq!(signal_url("ws://h:1/v1/signal"), "ws://h:1/v1/signal");
    }
}
