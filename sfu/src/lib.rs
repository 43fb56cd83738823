//! The Bedside media plane.
//!
//! - [`core`] decides who receives which track, routes keyframe requests and throttles them.
//!   It does no I/O and takes time as an argument, so every rule is a unit test.
//! - [`engine`] is the thin shell around it: one UDP socket for every peer, one `str0m::Rtc`
//!   per peer, a single thread that owns all of them, and a command channel from signaling.

pub mod core;
pub mod engine;
mod metrics;
pub mod policy;
pub mod sdp;

pub use engine::{NewPeer, PeerEvent, Sfu, SfuConfig, SfuError};
pub use metrics::SfuMetrics;
pub use policy::RoutingTable;
