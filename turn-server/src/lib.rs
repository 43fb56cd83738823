//! `bedside-turn`: a TURN/STUN relay with a sans-IO core ([`core::Shard`]) and a thin tokio shell.
pub mod allocation;
pub mod auth;
pub mod budget;
pub mod config;
pub mod core;
pub mod frame;
pub mod metrics;
pub mod policy;
pub mod shared;
pub mod shell;
pub mod stun;

pub use config::{Args, Config, ConfigError};
pub use shell::{run, Listeners, StartError};
