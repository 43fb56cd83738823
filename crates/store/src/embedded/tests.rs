//! The outbox on simulated time: order per queue, retries, dead letters, caps, reopening.

use super::*;

fn msg(visit: &str, dests: &[&str], n: u8) -> NewMessage {
    let visit_owned = visit.to_owned();
    NewMessage {
        visit: visit.into(),
        destinations: dests.iter().map(|d| d.to_string()).collect(),
        id: [n; 16],
        kind: "test.event".into(),
        created_ms: 1_000,
        render: Box::new(move |seq| format!("{visit_owned}#{seq}").into_bytes()),
    }
}

fn open(dir: &tempfile::TempDir, limits: Limits) -> EmbeddedStore {
    EmbeddedStore::open_in(dir.path(), limits).unwrap()
}

fn heads(s: &EmbeddedStore, now: u64) -> Vec<String> {
    s.due(now, 100, &|_, _| false)
        .unwrap()
        .into_iter()
        .map(|p| String::from_utf8(p.body).unwrap())
        .collect()
}

fn key(dest: &str, visit: &str, seq: u64) -> EntryKey {
    EntryKey {
        destination: dest.into(),
        visit: visit.into(),
        seq,
    }
}

#[test]
fn only_each_queues_head_is_due_and_delivery_moves_it_on_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, Limits::default());
    let r = s
        .append(
            10,
            vec![
                msg("a", &["d"], 1),
                msg("b", &["d"], 2),
                msg("a", &["d"], 3),
                msg("a", &["d"], 4),
            ],
        )
        .unwrap();
    assert_eq!(
        r.iter().map(|a| a.seq).collect::<Vec<_>>(),
        [1, 1, 2, 3],
        "sequence numbers count per visit"
    );
    let mut h = heads(&s, 10);
    h.sort();
    assert_eq!(h, ["a#1", "b#1"]);
    s.delivered(&key("d", "a", 1)).unwrap();
    let mut h = heads(&s, 10);
    h.sort();
    assert_eq!(h, ["a#2", "b#1"]);
    s.delivered(&key("d", "a", 2)).unwrap();
    s.delivered(&key("d", "b", 1)).unwrap();
    assert_eq!(heads(&s, 10), ["a#3"]);
    s.delivered(&key("d", "a", 3)).unwrap();
    assert!(heads(&s, u64::MAX).is_empty());
    assert_eq!(s.stats().unwrap(), Stats::default());
    assert_eq!(s.next_due_ms().unwrap(), None);
}

#[test]
fn a_retry_waits_for_its_time_and_holds_back_the_rest_of_its_queue_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, Limits::default());
    s.append(
        100,
        vec![
            msg("a", &["d"], 1),
            msg("a", &["d"], 2),
            msg("b", &["d"], 3),
        ],
    )
    .unwrap();
    s.retry_later(&key("d", "a", 1), 1, 1_100, "http_503")
        .unwrap();
    assert_eq!(heads(&s, 100), ["b#1"], "a#2 never overtakes a#1");
    assert_eq!(heads(&s, 1_099), ["b#1"]);
    s.delivered(&key("d", "b", 1)).unwrap();
    assert_eq!(s.next_due_ms().unwrap(), Some(1_100));
    let due = s.due(1_100, 10, &|_, _| false).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].body, b"a#1");
    assert_eq!(due[0].attempts, 1);
    assert_eq!(due[0].window_start_ms, 100);
    let listed = s.list(&Filter::default(), 10).unwrap();
    assert_eq!(listed[0].last_error, "http_503");
    assert_eq!(listed[0].next_attempt_ms, 1_100);
    // A queue in flight is skipped.
    assert!(s.due(1_100, 10, &|_, v| v == "a").unwrap().is_empty());
}

#[test]
fn a_dead_letter_lets_its_queue_move_on_and_comes_back_first_when_retried() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, Limits::default());
    s.append(0, vec![msg("a", &["d"], 1), msg("a", &["d"], 2)])
        .unwrap();
    s.dead_letter(&key("d", "a", 1), 30, "timeout").unwrap();
    assert_eq!(heads(&s, 0), ["a#2"]);
    assert_eq!(
        s.stats().unwrap(),
        Stats {
            pending: 1,
            dead: 1,
            queues: 1
        }
    );
    let dead = s
        .list(
            &Filter {
                state: Some(EntryState::Dead),
                ..Filter::default()
            },
            10,
        )
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].key.seq, 1);
    assert_eq!(dead[0].attempts, 30);
    assert_eq!(s.retry_dead(500, &Filter::default()).unwrap(), 1);
    let due = s.due(500, 10, &|_, _| false).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].body, b"a#1", "the retried letter is the head again");
    assert_eq!((due[0].attempts, due[0].window_start_ms), (0, 500));
    assert_eq!(s.stats().unwrap().dead, 0);
    assert_eq!(s.retry_dead(500, &Filter::default()).unwrap(), 0);
}

#[test]
fn every_destination_has_its_own_queue_with_the_visits_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, Limits::default());
    s.append(0, vec![msg("a", &["x", "y"], 1), msg("a", &["x", "y"], 2)])
        .unwrap();
    s.retry_later(&key("x", "a", 1), 1, 10_000, "down").unwrap();
    let due = s.due(0, 10, &|_, _| false).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].key, key("y", "a", 1), "y is not held back by x");
    s.delivered(&key("y", "a", 1)).unwrap();
    assert_eq!(
        s.due(0, 10, &|_, _| false).unwrap()[0].key,
        key("y", "a", 2)
    );
}

#[test]
fn caps_drop_instead_of_growing_and_the_sequence_shows_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_per_queue: 2,
        max_total: 3,
        max_body: 8,
    };
    let s = open(&dir, limits);
    let r = s
        .append(
            0,
            vec![
                msg("a", &["d"], 1),
                msg("a", &["d"], 2),
                msg("a", &["d"], 3),
            ],
        )
        .unwrap();
    assert_eq!(r[2].dropped, [Dropped::QueueFull]);
    assert_eq!(r[2].seq, 3);
    let r = s.append(0, vec![msg("b", &["d", "e"], 4)]).unwrap();
    assert_eq!(
        (r[0].queued, r[0].dropped.as_slice()),
        (1, &[Dropped::StoreFull][..])
    );
    let r = s.append(0, vec![msg("long-visit", &["z"], 5)]).unwrap();
    assert_eq!(
        r[0].dropped,
        [Dropped::TooLarge],
        "the body is over 8 bytes"
    );
    assert_eq!(s.stats().unwrap().pending, 3);
    // Delivering makes room again; the next message has the next number.
    s.delivered(&key("d", "a", 1)).unwrap();
    let r = s.append(0, vec![msg("a", &["d"], 6)]).unwrap();
    assert_eq!((r[0].seq, r[0].queued), (4, 1));
}

#[test]
fn names_out_of_bounds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, Limits::default());
    let long = "v".repeat(300);
    assert!(matches!(
        s.append(0, vec![msg(&long, &["d"], 1)]),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.append(0, vec![msg("a", &[""], 1)]),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        s.stats().unwrap().pending,
        0,
        "nothing of a refused batch is kept"
    );
}

#[test]
fn the_outbox_survives_reopening_and_numbering_continues() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(&dir, Limits::default());
        s.append(0, vec![msg("a", &["d"], 1), msg("a", &["d"], 2)])
            .unwrap();
        s.retry_later(&key("d", "a", 1), 3, 50, "http_500").unwrap();
    }
    let s = open(&dir, Limits::default());
    let due = s.due(50, 10, &|_, _| false).unwrap();
    assert_eq!((due[0].key.seq, due[0].attempts), (1, 3));
    assert_eq!(s.append(0, vec![msg("a", &["d"], 3)]).unwrap()[0].seq, 3);
    assert_eq!(s.stats().unwrap().pending, 3);
}

#[test]
fn a_second_opener_is_told_the_store_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let _s = open(&dir, Limits::default());
    match EmbeddedStore::open_in(dir.path(), Limits::default()) {
        Err(StoreError::InUse(p)) => assert!(p.ends_with(STORE_FILE)),
        other => panic!("expected InUse, got {other:?}"),
    }
}

#[test]
fn a_store_from_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(&dir, Limits::default());
        let txn = s.db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("schema", SCHEMA_VERSION + 1)
            .unwrap();
        txn.commit().unwrap();
    }
    let e = EmbeddedStore::open_in(dir.path(), Limits::default()).unwrap_err();
    assert!(matches!(e, StoreError::Schema { .. }), "{e}");
}

#[test]
fn idle_sequence_counters_are_pruned_busy_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, Limits::default());
    s.append(10, vec![msg("idle", &["d"], 1), msg("busy", &["d"], 2)])
        .unwrap();
    s.delivered(&key("d", "idle", 1)).unwrap();
    assert_eq!(s.prune_sequences(5).unwrap(), 0, "not old enough");
    assert_eq!(s.prune_sequences(11).unwrap(), 1, "busy still has an entry");
    assert_eq!(
        s.append(20, vec![msg("idle", &["d"], 3)]).unwrap()[0].seq,
        1
    );
    assert_eq!(
        s.append(20, vec![msg("busy", &["d"], 4)]).unwrap()[0].seq,
        2
    );
}

/// How long a durable append takes on this machine (run with `--ignored --nocapture`).
#[test]
#[ignore]
fn append_latency() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, Limits::default());
    for batch in [1usize, 16, 128] {
        let rounds = 50;
        let t = std::time::Instant::now();
        for r in 0..rounds {
            let b = (0..batch)
                .map(|i| msg(&format!("v{}", (r * batch + i) % 64), &["d"], 0))
                .collect();
            s.append(0, b).unwrap();
        }
        let each = t.elapsed() / rounds as u32;
        println!("batch of {batch}: {each:?} per durable append");
    }
}
