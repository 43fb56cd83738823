//! The byte layout of stored records. Decoding checks every length, so a damaged file gives
//! [`StoreError::Corrupt`], never a panic.

use crate::outbox::EntryState;
use crate::StoreError;

/// One outbox entry as stored (the key holds destination, visit and sequence number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) state: EntryState,
    pub(crate) attempts: u32,
    pub(crate) next_attempt_ms: u64,
    pub(crate) created_ms: u64,
    pub(crate) window_start_ms: u64,
    pub(crate) id: [u8; 16],
    pub(crate) kind: String,
    pub(crate) last_error: String,
    pub(crate) body: Vec<u8>,
}

/// Layout version 1: state u8, attempts u32, next, created, window (u64 each, little-endian),
/// id 16 bytes, kind (u8 length), last error (u16 length), then the body to the end.
const V1: u8 = 1;

impl Entry {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let kind = truncate(&self.kind, u8::MAX as usize);
        let err = truncate(&self.last_error, crate::outbox::MAX_ERROR);
        let mut out = Vec::with_capacity(64 + kind.len() + err.len() + self.body.len());
        out.push(V1);
        out.push(match self.state {
            EntryState::Pending => 0,
            EntryState::Dead => 1,
        });
        out.extend_from_slice(&self.attempts.to_le_bytes());
        out.extend_from_slice(&self.next_attempt_ms.to_le_bytes());
        out.extend_from_slice(&self.created_ms.to_le_bytes());
        out.extend_from_slice(&self.window_start_ms.to_le_bytes());
        out.extend_from_slice(&self.id);
        out.push(kind.len() as u8);
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(&(err.len() as u16).to_le_bytes());
        out.extend_from_slice(err.as_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Entry, StoreError> {
        let corrupt = StoreError::Corrupt {
            table: "outbox_entries",
        };
        let mut r = Reader(bytes);
        if r.take(1).ok_or_else(corrupt_of)?[0] != V1 {
            return Err(corrupt);
        }
        let state = match r.take(1).ok_or_else(corrupt_of)?[0] {
            0 => EntryState::Pending,
            1 => EntryState::Dead,
            _ => return Err(corrupt),
        };
        let attempts = r.u32().ok_or_else(corrupt_of)?;
        let next_attempt_ms = r.u64().ok_or_else(corrupt_of)?;
        let created_ms = r.u64().ok_or_else(corrupt_of)?;
        let window_start_ms = r.u64().ok_or_else(corrupt_of)?;
        let id: [u8; 16] = r
            .take(16)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt_of)?;
        let kind_len = r.take(1).ok_or_else(corrupt_of)?[0] as usize;
        let kind = r.string(kind_len).ok_or_else(corrupt_of)?;
        let err_len = u16::from_le_bytes(
            r.take(2)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(corrupt_of)?,
        ) as usize;
        let last_error = r.string(err_len).ok_or_else(corrupt_of)?;
        Ok(Entry {
            state,
            attempts,
            next_attempt_ms,
            created_ms,
            window_start_ms,
            id,
            kind,
            last_error,
            body: r.0.to_vec(),
        })
    }
}

fn corrupt_of() -> StoreError {
    StoreError::Corrupt {
        table: "outbox_entries",
    }
}

/// A queue's bookkeeping: entry counts and where its head is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct QueueMeta {
    pub(crate) pending: u64,
    pub(crate) dead: u64,
    /// The head's sequence number and due time, when a pending entry exists.
    pub(crate) head: Option<(u64, u64)>,
}

impl QueueMeta {
    pub(crate) fn encode(&self) -> [u8; 33] {
        let mut out = [0u8; 33];
        out[0..8].copy_from_slice(&self.pending.to_le_bytes());
        out[8..16].copy_from_slice(&self.dead.to_le_bytes());
        if let Some((seq, due)) = self.head {
            out[16] = 1;
            out[17..25].copy_from_slice(&seq.to_le_bytes());
            out[25..33].copy_from_slice(&due.to_le_bytes());
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<QueueMeta, StoreError> {
        let mut r = Reader(bytes);
        let corrupt = || StoreError::Corrupt {
            table: "outbox_queues",
        };
        let pending = r.u64().ok_or_else(corrupt)?;
        let dead = r.u64().ok_or_else(corrupt)?;
        let has_head = r.take(1).ok_or_else(corrupt)?[0];
        let seq = r.u64().ok_or_else(corrupt)?;
        let due = r.u64().ok_or_else(corrupt)?;
        Ok(QueueMeta {
            pending,
            dead,
            head: (has_head == 1).then_some((seq, due)),
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }
    fn string(&mut self, n: usize) -> Option<String> {
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            state: EntryState::Dead,
            attempts: 7,
            next_attempt_ms: 1,
            created_ms: 2,
            window_start_ms: 3,
            id: [9; 16],
            kind: "participant.left".into(),
            last_error: "http_503".into(),
            body: b"{\"x\":1}".to_vec(),
        }
    }

    #[test]
    fn entries_round_trip_and_damage_is_an_error_not_a_panic() {
        let e = entry();
        let bytes = e.encode();
        assert_eq!(Entry::decode(&bytes).unwrap(), e);
        for cut in 0..bytes.len() - e.body.len() {
            assert!(Entry::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = bytes.clone();
        bad[1] = 9;
        assert!(Entry::decode(&bad).is_err());
        let m = QueueMeta {
            pending: 3,
            dead: 1,
            head: Some((5, 99)),
        };
        assert_eq!(QueueMeta::decode(&m.encode()).unwrap(), m);
        assert!(QueueMeta::decode(&m.encode()[..20]).is_err());
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
