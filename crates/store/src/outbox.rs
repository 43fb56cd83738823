//! The webhook outbox: what a store must do so that every event reaches every endpoint at least
//! once, in per-visit order, across restarts.
//!
//! Each (destination, visit) pair is one queue ordered by the visit's sequence number. Only a
//! queue's head (its lowest pending entry) is ever handed out, so a receiver sees a visit's
//! events in order; queues are independent, so one visit's failing delivery never holds up
//! another's. A head that stays undeliverable becomes a dead letter and the queue moves on; a
//! dead letter put back with [`Outbox::retry_dead`] is the head again (its sequence number is
//! the lowest), so order holds for what is retried too.

use crate::StoreError;

/// Bounds of the outbox. The defaults are generous: a day's outage of one endpoint at a busy
/// clinic fits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Entries (pending and dead) one queue may hold.
    pub max_per_queue: u64,
    /// Entries all queues together may hold.
    pub max_total: u64,
    /// The largest message body.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_per_queue: 10_000,
            max_total: 100_000,
            max_body: 64 * 1024,
        }
    }
}

/// The longest destination name, visit id and message kind the store accepts.
pub const MAX_DESTINATION: usize = 64;
pub const MAX_VISIT: usize = 256;
pub const MAX_KIND: usize = 64;
/// A delivery error is kept to this many bytes (it is a short code, not a response body).
pub const MAX_ERROR: usize = 200;

/// A message to append: one entry per destination, all with the visit's next sequence number.
pub struct NewMessage {
    pub visit: String,
    pub destinations: Vec<String>,
    /// The message's unique id (the same in every destination's entry).
    pub id: [u8; 16],
    /// What kind of message it is (e.g. `participant.admitted`), for listings.
    pub kind: String,
    pub created_ms: u64,
    /// Renders the body once the sequence number is known; called once, inside the transaction.
    pub render: Box<dyn FnOnce(u64) -> Vec<u8> + Send>,
}

impl std::fmt::Debug for NewMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewMessage")
            .field("visit", &self.visit)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Why a message was not queued for a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// That destination's queue for the visit is at [`Limits::max_per_queue`].
    QueueFull,
    /// The outbox is at [`Limits::max_total`].
    StoreFull,
    /// The rendered body is over [`Limits::max_body`].
    TooLarge,
}

impl Dropped {
    pub fn as_str(self) -> &'static str {
        match self {
            Dropped::QueueFull => "queue_full",
            Dropped::StoreFull => "store_full",
            Dropped::TooLarge => "too_large",
        }
    }
}

/// What an append did with one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The visit's sequence number given to the message (taken even when every destination
    /// dropped it, so a receiver sees a gap where something was lost).
    pub seq: u64,
    /// Destinations it was queued for.
    pub queued: usize,
    /// Destinations that dropped it, and why.
    pub dropped: Vec<Dropped>,
}

/// One entry: a queue and a position in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryKey {
    pub destination: String,
    pub visit: String,
    pub seq: u64,
}

/// A queue's head, due for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub key: EntryKey,
    pub id: [u8; 16],
    pub kind: String,
    pub created_ms: u64,
    /// Attempts so far.
    pub attempts: u32,
    /// When the current retry window began (creation, or the last [`Outbox::retry_dead`]):
    /// the deliverer gives up at a fixed age from here.
    pub window_start_ms: u64,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    Pending,
    Dead,
}

impl EntryState {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryState::Pending => "pending",
            EntryState::Dead => "dead",
        }
    }
}

/// An entry as listings show it (no body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    pub key: EntryKey,
    pub id: [u8; 16],
    pub kind: String,
    pub state: EntryState,
    pub attempts: u32,
    pub created_ms: u64,
    pub next_attempt_ms: u64,
    pub last_error: String,
    pub body_len: usize,
}

/// Which entries a listing or a retry covers.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub state: Option<EntryState>,
    pub destination: Option<String>,
    pub visit: Option<String>,
}

impl Filter {
    pub(crate) fn matches(&self, key: &EntryKey, state: EntryState) -> bool {
        self.state.is_none_or(|s| s == state)
            && self
                .destination
                .as_ref()
                .is_none_or(|d| *d == key.destination)
            && self.visit.as_ref().is_none_or(|v| *v == key.visit)
    }
}

/// Totals, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub pending: u64,
    pub dead: u64,
    /// Queues with at least one entry.
    pub queues: u64,
}

/// The outbox operations. Implementations are durable: once [`Outbox::append`] returns, the
/// messages survive a crash. Updates after a delivery may be lost in a crash (the entry is then
/// delivered again: at-least-once).
pub trait Outbox: Send + Sync {
    /// Appends messages in one transaction, in order: each gets its visit's next sequence number
    /// and an entry at the tail of each destination's queue, due at once.
    fn append(&self, now_ms: u64, batch: Vec<NewMessage>) -> Result<Vec<Appended>, StoreError>;

    /// Heads of queues due by `now_ms`, earliest due first, at most `max`, skipping the queues
    /// `skip(destination, visit)` names (those with a delivery in flight).
    fn due(
        &self,
        now_ms: u64,
        max: usize,
        skip: &dyn Fn(&str, &str) -> bool,
    ) -> Result<Vec<Pending>, StoreError>;

    /// When the earliest queue head is due, if any queue has one.
    fn next_due_ms(&self) -> Result<Option<u64>, StoreError>;

    /// The entry reached its destination: it leaves the queue, the next one is due at once.
    fn delivered(&self, key: &EntryKey) -> Result<(), StoreError>;

    /// The attempt failed: try again at `next_ms`.
    fn retry_later(
        &self,
        key: &EntryKey,
        attempts: u32,
        next_ms: u64,
        error: &str,
    ) -> Result<(), StoreError>;

    /// The entry is given up on: it becomes a dead letter and the queue moves on.
    fn dead_letter(&self, key: &EntryKey, attempts: u32, error: &str) -> Result<(), StoreError>;

    /// Entries matching `filter`, in queue order, at most `max`.
    fn list(&self, filter: &Filter, max: usize) -> Result<Vec<EntryInfo>, StoreError>;

    /// Puts dead letters matching `filter` back in their queues, due at `now_ms` with a fresh
    /// retry window. Returns how many.
    fn retry_dead(&self, now_ms: u64, filter: &Filter) -> Result<u64, StoreError>;

    fn stats(&self) -> Result<Stats, StoreError>;

    /// Forgets the sequence counters of visits with nothing queued and no append since
    /// `before_ms` (the counters would otherwise grow with every visit ever held). A visit id
    /// used again after that starts again at 1. Returns how many were forgotten.
    fn prune_sequences(&self, before_ms: u64) -> Result<u64, StoreError>;
}
