//! `bedside-store`: the state Bedside keeps across restarts, in one file in the state
//! directory (`[state] dir`, file [`STORE_FILE`]).
//!
//! Today it holds the webhook outbox ([`Outbox`]): events waiting to be delivered to the
//! hospital's systems, one ordered queue per (endpoint, visit), with their retry state and dead
//! letters. Visit state that must survive a restart comes next (see "Extending" below).
//!
//! ## Why redb
//! [`EmbeddedStore`] is built on `redb`: pure Rust (no C toolchain, unlike SQLite through
//! `rusqlite`'s bundled build), ACID transactions with copy-on-write pages and checksummed commit
//! slots, so a `kill -9` or power loss leaves the last committed transaction and nothing half
//! written. It takes an exclusive file lock: one process writes the store. `bedside webhooks`
//! opens the file itself only while the server is stopped and goes through the server's admin
//! listener otherwise. SQLite would let a second process read the file, at the price of a C
//! build and a SQL schema for what are a handful of ordered key ranges.
//!
//! ## Time and bounds
//! Nothing here reads the clock: every operation that needs "now" takes unix milliseconds, so
//! ordering, retries and caps are unit-tested on simulated time. Every input is bounded
//! ([`Limits`]): a queue's depth, the total, a body's size, the lengths of names. A full queue
//! never blocks the caller: the message is dropped and the caller counts it ([`Dropped`]).
//!
//! ## Extending: visit state
//! Every table lives in one `redb` database. A new kind of state (admissions, the waiting queue
//! with arrival times, consent decisions with their text version, visits ended within 24 h,
//! resume credentials) gets its own small trait beside [`Outbox`] (so a Redis implementation can
//! stand in when clustered), its own tables named `<area>_<table>` in a new module, and an
//! implementation on [`EmbeddedStore`] that opens them in the same write transactions. The
//! `meta` table's `schema` entry ([`SCHEMA_VERSION`]) is raised when a table's encoding changes;
//! [`EmbeddedStore::open`] refuses a file written by a newer schema instead of misreading it.

#![deny(unsafe_code)]

mod codec;
mod embedded;
mod error;
mod outbox;

pub use embedded::{EmbeddedStore, SCHEMA_VERSION, STORE_FILE};
pub use error::StoreError;
pub use outbox::{
    Appended, Dropped, EntryInfo, EntryKey, EntryState, Filter, Limits, NewMessage, Outbox,
    Pending, Stats, MAX_DESTINATION, MAX_ERROR, MAX_KIND, MAX_VISIT,
};
