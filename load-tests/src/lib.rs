//! `bedside-load`: synthetic participants that speak the real signaling and WebRTC (ICE, DTLS,
//! SRTP) to a running `bedside`, to measure what one forwarded packet costs.
//!
//! Each participant joins over `/v1/signal`, publishes audio (50 frames/s) and video (VP8 at a
//! chosen bitrate) with a probe header in every frame ([`stats::Probe`]), and receives everyone
//! else in its visit. Receivers count frames, loss and forwarding delay; the server's CPU time
//! comes from `/proc`. All participants run as tasks of one current-thread runtime.

pub mod cli;
pub mod participant;
pub mod plot;
pub mod procfs;
pub mod report;
pub mod run;
pub mod stats;

pub use participant::MediaShape;
pub use run::{run_step, LoadError, StepConfig, StepResult, TokenSource};
