//! `bedside-recorder`: consented, encrypted visit recorder. The logic is in `lib.rs`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use bedside_recorder::{export, sweep, verify, Config};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bedside-recorder", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Join visits as the recorder participant (not implemented yet).
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

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).with_context(|| format!("config {}", path.display()))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config } => {
            load(&config)?;
            // The WebRTC recorder that joins visits is built separately (issue 5).
            eprintln!("bedside-recorder run: not implemented yet");
            Ok(ExitCode::from(2))
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
