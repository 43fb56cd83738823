//! `bedside-recorder`: consented, encrypted visit recorder. The logic is in `lib.rs`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use bedside_recorder::{export, run_agent_until, sweep, verify, AgentSettings, Config};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bedside-recorder", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the recorder agent: take recording jobs from bedside and record the visits.
    Run {
        #[arg(
            long,
            env = "BEDSIDE_RECORDER_CONFIG",
            default_value = "/etc/bedside/recorder.toml"
        )]
        config: PathBuf,
    },
    /// Decrypt every stream of a verified recording into DIR and audit the export.
    Export {
        #[arg(long)]
        recording: String,
        #[arg(long)]
        out: PathBuf,
        #[arg(
            long,
            env = "BEDSIDE_RECORDER_CONFIG",
            default_value = "/etc/bedside/recorder.toml"
        )]
        config: PathBuf,
    },
    /// Check every stream's integrity and digest; writes no plaintext.
    Verify {
        #[arg(long)]
        recording: String,
        #[arg(
            long,
            env = "BEDSIDE_RECORDER_CONFIG",
            default_value = "/etc/bedside/recorder.toml"
        )]
        config: PathBuf,
    },
    /// Delete recordings older than the retention period, auditing each deletion.
    Sweep {
        #[arg(
            long,
            env = "BEDSIDE_RECORDER_CONFIG",
            default_value = "/etc/bedside/recorder.toml"
        )]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bedside-recorder: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C or SIGTERM: running recordings are finished before the agent exits.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).with_context(|| format!("config {}", path.display()))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config } => {
            let config = load(&config)?;
            config.validate_run()?;
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("BEDSIDE_LOG")
                        .unwrap_or_else(|_| "info".into()),
                )
                .with_writer(std::io::stderr)
                .init();
            let settings = AgentSettings::from_config(&config)?;
            let runtime = tokio::runtime::Runtime::new().context("tokio runtime")?;
            runtime.block_on(run_agent_until(settings, shutdown_signal()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Export {
            recording,
            out,
            config,
        } => {
            let report = export(&load(&config)?, &recording, &out)?;
            print!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { recording, config } => {
            let report = verify(&load(&config)?, &recording)?;
            print!("{report}");
            // 3: authentic but truncated (the recorder stopped before finishing).
            Ok(if report.is_complete() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            })
        }
        Command::Sweep { config } => {
            let report = sweep(&load(&config)?, bedside_recording::now_unix_ms())?;
            print!("{report}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
