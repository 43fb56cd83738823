//! [`EmbeddedStore`]: the outbox (and later visit state) in one redb file.
//!
//! Tables:
//! - `outbox_entries` (destination, visit, seq) → entry ([`Entry`]): every queued message.
//! - `outbox_queues` (destination, visit) → [`QueueMeta`]: counts and the head's seq and due
//!   time, so finding a queue's head never scans it.
//! - `outbox_due` (due ms, destination, visit) → (): one row per queue that has a pending head,
//!   so [`Outbox::due`] reads only what is due.
//! - `outbox_seqs` visit → (last seq, last append ms): each visit's sequence counter.
//! - `outbox_counts` `pending` / `dead` → totals, for the total cap and the metrics.
//! - `meta` `schema` → [`SCHEMA_VERSION`].

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::codec::{truncate, Entry, QueueMeta};
use crate::outbox::{
    Appended, Dropped, EntryInfo, EntryKey, EntryState, Filter, Limits, NewMessage, Outbox,
    Pending, Stats, MAX_DESTINATION, MAX_ERROR, MAX_KIND, MAX_VISIT,
};
use crate::StoreError;

/// The store's file name inside the state directory.
pub const STORE_FILE: &str = "bedside.redb";
/// The layout this code writes and reads (see the crate docs, "Extending").
pub const SCHEMA_VERSION: u64 = 1;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
type EntryKeyT = (&'static str, &'static str, u64);
const ENTRIES: TableDefinition<EntryKeyT, &[u8]> = TableDefinition::new("outbox_entries");
const QUEUES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("outbox_queues");
const DUE: TableDefinition<(u64, &str, &str), ()> = TableDefinition::new("outbox_due");
const SEQS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("outbox_seqs");
const COUNTS: TableDefinition<&str, u64> = TableDefinition::new("outbox_counts");

/// The embedded store: one redb database file, opened by one process at a time.
pub struct EmbeddedStore {
    db: Database,
    limits: Limits,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store at `path`. A crash before the last commit finished
    /// is repaired here: the file reopens at its last committed transaction.
    pub fn open(path: &Path, limits: Limits) -> Result<EmbeddedStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Open {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        }
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse(path.to_owned()),
            other => StoreError::Open {
                path: path.to_owned(),
                message: other.to_string(),
            },
        })?;
        let store = EmbeddedStore { db, limits };
        store.init(path.to_owned())?;
        Ok(store)
    }

    /// Opens the store file in `dir`.
    pub fn open_in(dir: &Path, limits: Limits) -> Result<EmbeddedStore, StoreError> {
        Self::open(&dir.join(STORE_FILE), limits)
    }

    fn init(&self, path: PathBuf) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get("schema")?.map(|v| v.value());
            match found {
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(StoreError::Schema {
                        path,
                        found: v,
                        supported: SCHEMA_VERSION,
                    })
                }
                Some(_) => {}
                None => {
                    meta.insert("schema", SCHEMA_VERSION)?;
                }
            }
            // Every table exists from the start, so read transactions can open them.
            txn.open_table(ENTRIES)?;
            txn.open_table(QUEUES)?;
            txn.open_table(DUE)?;
            txn.open_table(SEQS)?;
            txn.open_table(COUNTS)?;
        }
        txn.commit()?;
        Ok(())
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }
}

/// The write transaction's open outbox tables.
struct Tables<'t> {
    entries: redb::Table<'t, EntryKeyT, &'static [u8]>,
    queues: redb::Table<'t, (&'static str, &'static str), &'static [u8]>,
    due: redb::Table<'t, (u64, &'static str, &'static str), ()>,
    counts: redb::Table<'t, &'static str, u64>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t redb::WriteTransaction) -> Result<Tables<'t>, StoreError> {
        Ok(Tables {
            entries: txn.open_table(ENTRIES)?,
            queues: txn.open_table(QUEUES)?,
            due: txn.open_table(DUE)?,
            counts: txn.open_table(COUNTS)?,
        })
    }

    fn count(&self, name: &str) -> Result<u64, StoreError> {
        Ok(self.counts.get(name)?.map_or(0, |v| v.value()))
    }

    fn add_count(&mut self, name: &str, delta: i64) -> Result<(), StoreError> {
        let v = self.count(name)?.saturating_add_signed(delta);
        self.counts.insert(name, v)?;
        Ok(())
    }

    fn meta(&self, dest: &str, visit: &str) -> Result<QueueMeta, StoreError> {
        match self.queues.get((dest, visit))? {
            Some(v) => QueueMeta::decode(v.value()),
            None => Ok(QueueMeta::default()),
        }
    }

    fn entry(&self, key: &EntryKey) -> Result<Entry, StoreError> {
        let v = self
            .entries
            .get((key.destination.as_str(), key.visit.as_str(), key.seq))?
            .ok_or(StoreError::NotFound)?;
        Entry::decode(v.value())
    }

    fn put_entry(&mut self, key: &EntryKey, e: &Entry) -> Result<(), StoreError> {
        self.entries.insert(
            (key.destination.as_str(), key.visit.as_str(), key.seq),
            e.encode().as_slice(),
        )?;
        Ok(())
    }

    /// Finds the queue's lowest pending entry and points the queue's head and the due index
    /// at it; a queue without entries disappears.
    fn store_meta(
        &mut self,
        dest: &str,
        visit: &str,
        mut meta: QueueMeta,
    ) -> Result<(), StoreError> {
        let old = self.meta(dest, visit)?;
        if let Some((_, due)) = old.head {
            self.due.remove((due, dest, visit))?;
        }
        meta.head = None;
        if meta.pending > 0 {
            for row in self
                .entries
                .range((dest, visit, 0)..=(dest, visit, u64::MAX))?
            {
                let (k, v) = row?;
                let e = Entry::decode(v.value())?;
                if e.state == EntryState::Pending {
                    meta.head = Some((k.value().2, e.next_attempt_ms));
                    break;
                }
            }
        }
        if let Some((_, due)) = meta.head {
            self.due.insert((due, dest, visit), ())?;
        }
        if meta.pending == 0 && meta.dead == 0 {
            self.queues.remove((dest, visit))?;
        } else {
            self.queues
                .insert((dest, visit), meta.encode().as_slice())?;
        }
        Ok(())
    }
}

fn check_names(visit: &str, destinations: &[String], kind: &str) -> Result<(), StoreError> {
    if visit.is_empty() || visit.len() > MAX_VISIT {
        return Err(StoreError::Invalid("a visit id must be 1 to 256 bytes"));
    }
    if destinations
        .iter()
        .any(|d| d.is_empty() || d.len() > MAX_DESTINATION)
    {
        return Err(StoreError::Invalid(
            "a destination name must be 1 to 64 bytes",
        ));
    }
    if kind.len() > MAX_KIND {
        return Err(StoreError::Invalid("a message kind is at most 64 bytes"));
    }
    Ok(())
}

impl Outbox for EmbeddedStore {
    fn append(&self, now_ms: u64, batch: Vec<NewMessage>) -> Result<Vec<Appended>, StoreError> {
        for m in &batch {
            check_names(&m.visit, &m.destinations, &m.kind)?;
        }
        let txn = self.db.begin_write()?;
        let mut results = Vec::with_capacity(batch.len());
        {
            let mut t = Tables::open(&txn)?;
            let mut seqs = txn.open_table(SEQS)?;
            for m in batch {
                let seq = seqs.get(m.visit.as_str())?.map_or(0, |v| v.value().0) + 1;
                seqs.insert(m.visit.as_str(), (seq, now_ms))?;
                let body = (m.render)(seq);
                let mut result = Appended {
                    seq,
                    queued: 0,
                    dropped: Vec::new(),
                };
                for dest in &m.destinations {
                    let total = t.count("pending")? + t.count("dead")?;
                    let meta = t.meta(dest, &m.visit)?;
                    let why = if body.len() > self.limits.max_body {
                        Some(Dropped::TooLarge)
                    } else if total >= self.limits.max_total {
                        Some(Dropped::StoreFull)
                    } else if meta.pending + meta.dead >= self.limits.max_per_queue {
                        Some(Dropped::QueueFull)
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        result.dropped.push(why);
                        continue;
                    }
                    let key = EntryKey {
                        destination: dest.clone(),
                        visit: m.visit.clone(),
                        seq,
                    };
                    t.put_entry(
                        &key,
                        &Entry {
                            state: EntryState::Pending,
                            attempts: 0,
                            next_attempt_ms: now_ms,
                            created_ms: m.created_ms,
                            window_start_ms: now_ms,
                            id: m.id,
                            kind: m.kind.clone(),
                            last_error: String::new(),
                            body: body.clone(),
                        },
                    )?;
                    t.add_count("pending", 1)?;
                    // A new tail changes the head only of an empty queue: skip the scan.
                    if meta.head.is_none() {
                        t.store_meta(
                            dest,
                            &m.visit,
                            QueueMeta {
                                pending: meta.pending + 1,
                                ..meta
                            },
                        )?;
                    } else {
                        t.queues.insert(
                            (dest.as_str(), m.visit.as_str()),
                            QueueMeta {
                                pending: meta.pending + 1,
                                ..meta
                            }
                            .encode()
                            .as_slice(),
                        )?;
                    }
                    result.queued += 1;
                }
                results.push(result);
            }
        }
        txn.commit()?;
        Ok(results)
    }

    fn due(
        &self,
        now_ms: u64,
        max: usize,
        skip: &dyn Fn(&str, &str) -> bool,
    ) -> Result<Vec<Pending>, StoreError> {
        let txn = self.db.begin_read()?;
        let due = txn.open_table(DUE)?;
        let queues = txn.open_table(QUEUES)?;
        let entries = txn.open_table(ENTRIES)?;
        let mut out = Vec::new();
        for row in due.iter()? {
            if out.len() >= max {
                break;
            }
            let (k, _) = row?;
            let (at, dest, visit) = k.value();
            if at > now_ms {
                break;
            }
            if skip(dest, visit) {
                continue;
            }
            let meta = match queues.get((dest, visit))? {
                Some(v) => QueueMeta::decode(v.value())?,
                None => continue,
            };
            let Some((seq, _)) = meta.head else { continue };
            let Some(v) = entries.get((dest, visit, seq))? else {
                return Err(StoreError::Corrupt {
                    table: "outbox_queues",
                });
            };
            let e = Entry::decode(v.value())?;
            out.push(Pending {
                key: EntryKey {
                    destination: dest.to_owned(),
                    visit: visit.to_owned(),
                    seq,
                },
                id: e.id,
                kind: e.kind,
                created_ms: e.created_ms,
                attempts: e.attempts,
                window_start_ms: e.window_start_ms,
                body: e.body,
            });
        }
        Ok(out)
    }

    fn next_due_ms(&self) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read()?;
        let due = txn.open_table(DUE)?;
        let first = due.first()?;
        Ok(first.map(|(k, _)| k.value().0))
    }

    fn delivered(&self, key: &EntryKey) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut t = Tables::open(&txn)?;
            let e = t.entry(key)?;
            t.entries
                .remove((key.destination.as_str(), key.visit.as_str(), key.seq))?;
            let mut meta = t.meta(&key.destination, &key.visit)?;
            match e.state {
                EntryState::Pending => {
                    meta.pending = meta.pending.saturating_sub(1);
                    t.add_count("pending", -1)?;
                }
                EntryState::Dead => {
                    meta.dead = meta.dead.saturating_sub(1);
                    t.add_count("dead", -1)?;
                }
            }
            t.store_meta(&key.destination, &key.visit, meta)?;
        }
        txn.commit()?;
        Ok(())
    }

    fn retry_later(
        &self,
        key: &EntryKey,
        attempts: u32,
        next_ms: u64,
        error: &str,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut t = Tables::open(&txn)?;
            let mut e = t.entry(key)?;
            if e.state != EntryState::Pending {
                return Err(StoreError::NotFound);
            }
            e.attempts = attempts;
            e.next_attempt_ms = next_ms;
            e.last_error = truncate(error, MAX_ERROR).to_owned();
            t.put_entry(key, &e)?;
            let meta = t.meta(&key.destination, &key.visit)?;
            t.store_meta(&key.destination, &key.visit, meta)?;
        }
        txn.commit()?;
        Ok(())
    }

    fn dead_letter(&self, key: &EntryKey, attempts: u32, error: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut t = Tables::open(&txn)?;
            let mut e = t.entry(key)?;
            if e.state != EntryState::Pending {
                return Err(StoreError::NotFound);
            }
            e.state = EntryState::Dead;
            e.attempts = attempts;
            e.last_error = truncate(error, MAX_ERROR).to_owned();
            t.put_entry(key, &e)?;
            t.add_count("pending", -1)?;
            t.add_count("dead", 1)?;
            let mut meta = t.meta(&key.destination, &key.visit)?;
            meta.pending = meta.pending.saturating_sub(1);
            meta.dead += 1;
            t.store_meta(&key.destination, &key.visit, meta)?;
        }
        txn.commit()?;
        Ok(())
    }

    fn list(&self, filter: &Filter, max: usize) -> Result<Vec<EntryInfo>, StoreError> {
        let txn = self.db.begin_read()?;
        let entries = txn.open_table(ENTRIES)?;
        let mut out = Vec::new();
        for row in entries.iter()? {
            if out.len() >= max {
                break;
            }
            let (k, v) = row?;
            let (dest, visit, seq) = k.value();
            let e = Entry::decode(v.value())?;
            let key = EntryKey {
                destination: dest.to_owned(),
                visit: visit.to_owned(),
                seq,
            };
            if !filter.matches(&key, e.state) {
                continue;
            }
            out.push(EntryInfo {
                key,
                id: e.id,
                kind: e.kind,
                state: e.state,
                attempts: e.attempts,
                created_ms: e.created_ms,
                next_attempt_ms: e.next_attempt_ms,
                last_error: e.last_error,
                body_len: e.body.len(),
            });
        }
        Ok(out)
    }

    fn retry_dead(&self, now_ms: u64, filter: &Filter) -> Result<u64, StoreError> {
        let filter = Filter {
            state: Some(EntryState::Dead),
            ..filter.clone()
        };
        let dead = self.list(&filter, usize::MAX)?;
        let txn = self.db.begin_write()?;
        let mut n = 0;
        {
            let mut t = Tables::open(&txn)?;
            let mut touched = std::collections::BTreeSet::new();
            for info in &dead {
                let mut e = t.entry(&info.key)?;
                if e.state != EntryState::Dead {
                    continue;
                }
                e.state = EntryState::Pending;
                e.attempts = 0;
                e.next_attempt_ms = now_ms;
                e.window_start_ms = now_ms;
                t.put_entry(&info.key, &e)?;
                let mut meta = t.meta(&info.key.destination, &info.key.visit)?;
                meta.dead = meta.dead.saturating_sub(1);
                meta.pending += 1;
                t.queues.insert(
                    (info.key.destination.as_str(), info.key.visit.as_str()),
                    meta.encode().as_slice(),
                )?;
                touched.insert((info.key.destination.clone(), info.key.visit.clone()));
                n += 1;
            }
            t.add_count("dead", -(n as i64))?;
            t.add_count("pending", n as i64)?;
            for (dest, visit) in touched {
                let meta = t.meta(&dest, &visit)?;
                // store_meta removes the due row of the head it finds in the stored meta.
                t.store_meta(&dest, &visit, meta)?;
            }
        }
        txn.commit()?;
        Ok(n)
    }

    fn prune_sequences(&self, before_ms: u64) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let mut removed = 0;
        {
            let mut seqs = txn.open_table(SEQS)?;
            let queues = txn.open_table(QUEUES)?;
            let mut busy = std::collections::HashSet::new();
            for row in queues.iter()? {
                let (k, _) = row?;
                busy.insert(k.value().1.to_owned());
            }
            let mut stale = Vec::new();
            for row in seqs.iter()? {
                let (k, v) = row?;
                let (_, last) = v.value();
                if last < before_ms && !busy.contains(k.value()) {
                    stale.push(k.value().to_owned());
                }
            }
            for visit in stale {
                seqs.remove(visit.as_str())?;
                removed += 1;
            }
        }
        txn.commit()?;
        Ok(removed)
    }

    fn stats(&self) -> Result<Stats, StoreError> {
        let txn = self.db.begin_read()?;
        let counts = txn.open_table(COUNTS)?;
        let queues = txn.open_table(QUEUES)?;
        let get = |name: &str| -> Result<u64, StoreError> {
            Ok(counts.get(name)?.map_or(0, |v| v.value()))
        };
        Ok(Stats {
            pending: get("pending")?,
            dead: get("dead")?,
            queues: queues.len()?,
        })
    }
}

#[cfg(test)]
mod tests;
