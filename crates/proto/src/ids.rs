use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The opaque visit id from the hospital's scheduling system (the token's `visit` claim).
/// Cheap to clone; safe to log (it carries no PHI by contract with the scheduler).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VisitId(Arc<str>);

impl VisitId {
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        VisitId(id.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for VisitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VisitId({})", self.0)
    }
}

impl fmt::Display for VisitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A participant's session id, minted by the signaling server for each join (never the token's
/// `sub`, so ids on the wire cannot be linked to the scheduling system's records).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ParticipantId(u64);

impl ParticipantId {
    /// Only the signaling server mints participant ids.
    pub fn from_raw(raw: u64) -> Self {
        ParticipantId(raw)
    }
    pub fn raw(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}
