//! `bedside-webhook`: what Bedside sends to the hospital's systems and how a receiver checks it.
//!
//! - [`event`]: the envelope every webhook body is (`id`, `type`, `created_at`, `visit`, `seq`,
//!   `data`) and the event types ([`EventType`]); docs/integration.md has each type's `data`.
//! - [`signature`]: the `Bedside-Signature` header, HMAC-SHA256 over `"<t>.<raw body>"`;
//!   [`sign`] for the sender, [`verify`] for receivers written in Rust and for the tests.

pub mod event;
pub mod signature;

pub use event::{rfc3339_ms, Event, EventType};
pub use signature::{
    sign, verify, VerifyError, DEFAULT_TOLERANCE_SECONDS, EVENT_ID_HEADER, EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
};
