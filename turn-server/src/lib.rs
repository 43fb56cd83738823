//! `bedside-turn`: a TURN/STUN relay with a sans-IO core ([`core::Shard`]) and a thin tokio shell.
pub mod allocation;
pub mod auth;
pub mod budget;
pub mod core;
pub mod frame;
pub mod metrics;
pub mod policy;
pub mod stun;
