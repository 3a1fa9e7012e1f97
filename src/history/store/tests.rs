use super::*;
use crate::history::read::Spread;
use crate::history::TenantSample;
use crate::stats::{KeptSession, Word};
use std::time::{Duration, SystemTime};

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
}

fn ms(seconds: u64) -> i64 {
    unix_millis(at(seconds))
}

/// A waiter blocked by an idle session in a transaction, and an active session.
fn pileup() -> Vec<KeptSession> {
    let base = KeptSession {
        server: "10.0.0.1".into(),
        user: "app".into(),
        db: "shop".into(),
        client: "10.1.1.1".into(),
        application: "checkout".into(),
        wait_class: Word::default(),
        wait_event: Word::default(),
        ..KeptSession::default()
    };
    vec![
        KeptSession {
            id: 7,
            command: "Sleep".into(),
            state: Word::default(),
            time: 40.0,
            transaction_age: Some(41.5),
            waiters: 1,
            ..base.clone()
        },
        KeptSession {
            id: 9,
            command: "Query".into(),
            state: "updating".into(),
            active: true,
            time: 12.25,
            transaction_age: Some(12.5),
            lock_wait: Some(12.25),
            blocked_by: Some(7),
            wait_class: "Lock".into(),
            wait_event: "row lock".into(),
            sql_id: "A1".into(),
            sql_text: "UPDATE stock SET n = n - 1 WHERE id = 3".into(),
            ..base.clone()
        },
        KeptSession {
            id: 11,
            command: "Query".into(),
            state: "executing".into(),
            active: true,
            time: 0.5,
            wait_class: "CPU".into(),
            wait_event: "CPU".into(),
            sql_id: "B2".into(),
            sql_text: "SELECT * FROM stock".into(),
            ..base
        },
    ]
}

fn sample(seconds: u64, kept: Vec<KeptSession>) -> CycleSample {
    CycleSample {
        target: "db1".into(),
        at: at(seconds),
        tenants: vec![TenantSample {
            tenant: "t1".into(),
            sessions: 120,
            active: 2,
            lock_waiting: 1,
            idle_in_transaction: 1,
            longest_active: 12.25,
            by_wait_class: vec![("CPU".into(), 1), ("Lock".into(), 1)],
            kept,
            truncated: 0,
        }],
    }
}

/// A cycle reads back as it was written: its counts, and each session with its
/// identity, state, transaction, wait, blocker and statement, blockers first.
#[test]
fn a_cycle_reads_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("history.db")).unwrap();
    store.record(&sample(0, pileup()), 1024).unwrap();
    let moment = store.moment("db1", "t1", ms(0)).unwrap().unwrap();
    assert_eq!(moment.at_ms, ms(0));
    assert_eq!(
        (moment.sessions, moment.active, moment.lock_waiting),
        (120, 2, 1)
    );
    assert_eq!(moment.idle_in_transaction, 1);
    assert_eq!(moment.longest_active, 12.25);
    assert_eq!(moment.kept, pileup_as_read());
    assert_eq!(moment.kept[0].id, 7, "the blocker comes first");
}

/// [`pileup`] as a moment reads it back: in rank order.
fn pileup_as_read() -> Vec<KeptSession> {
    let mut expected = pileup();
    expected.sort_by(KeptSession::rank);
    expected
}

/// Rows are written in batches: a cycle of two full batches and a part of one, of
/// two tenants, reads back whole, each tenant's own.
#[test]
fn a_cycle_larger_than_a_batch_reads_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("history.db")).unwrap();
    let many = |first: u64| -> Vec<KeptSession> {
        (first..first + 70)
            .map(|id| KeptSession {
                id,
                command: "Query".into(),
                active: true,
                time: id as f64,
                sql_id: format!("S{}", id % 7).into(),
                ..KeptSession::default()
            })
            .collect()
    };
    let mut cycle = sample(0, many(1000));
    let mut second = cycle.tenants[0].clone();
    second.tenant = "t2".into();
    second.kept = many(2000);
    cycle.tenants.push(second);
    store.record(&cycle, 1024).unwrap();
    for (tenant, first) in [("t1", 1000), ("t2", 2000)] {
        let moment = store.moment("db1", tenant, ms(0)).unwrap().unwrap();
        let mut ids: Vec<u64> = moment.kept.iter().map(|k| k.id).collect();
        ids.sort_unstable();
        assert_eq!(ids, (first..first + 70).collect::<Vec<_>>(), "{tenant}");
    }
    let steps = store.timeline("db1", "t2", (ms(0), ms(1), 1000)).unwrap();
    // Seven statements of ten sessions each; the top five are given.
    let top: Vec<u64> = steps[0].top_statements.iter().map(|(_, n)| *n).collect();
    assert_eq!(top, [10; 5], "{:?}", steps[0]);
}

/// `at` finds the last cycle at or before it; nothing before the first; another
/// tenant or target has none.
#[test]
fn a_moment_is_the_last_cycle_at_or_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("history.db")).unwrap();
    store.record(&sample(0, pileup()), 1024).unwrap();
    store
        .record(&sample(15, pileup()[2..].to_vec()), 1024)
        .unwrap();
    let kept = |s| {
        store
            .moment("db1", "t1", ms(s))
            .unwrap()
            .map(|m| m.kept.len())
    };
    assert_eq!(kept(0), Some(3));
    assert_eq!(kept(14), Some(3));
    assert_eq!(kept(15), Some(1));
    assert_eq!(kept(3600), Some(1));
    assert_eq!(store.moment("db1", "t1", ms(0) - 1).unwrap(), None);
    assert_eq!(store.moment("db1", "t2", ms(15)).unwrap(), None);
    assert_eq!(store.moment("db2", "t1", ms(15)).unwrap(), None);
}

/// The SQL text is cut at the limit (in characters, not bytes), and a limit of 0
/// keeps the id alone; one statement is stored once however often it is sampled.
#[test]
fn statements_are_stored_once_and_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("history.db")).unwrap();
    let mut sessions = pileup();
    sessions[1].sql_text = "UPDATE é".repeat(3).into();
    for cycle in 0..10 {
        store
            .record(&sample(cycle * 15, sessions.clone()), 8)
            .unwrap();
    }
    let moment = store.moment("db1", "t1", ms(150)).unwrap().unwrap();
    let waiter = moment.kept.iter().find(|s| s.id == 9).unwrap();
    assert_eq!(waiter.sql_text, "UPDATE é");
    fn count(store: &Store, table: &str) -> i64 {
        store
            .conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }
    assert_eq!(count(&store, "statements"), 2);
    assert_eq!(
        count(&store, "sessions"),
        3,
        "a session's identity is stored once"
    );
    assert_eq!(count(&store, "samples"), 30);
    // The same text in words of its own (another target's, or after its words
    // forgot it) is the same statement and the same words.
    let words = count(&store, "words");
    let mut copied = sessions.clone();
    for s in &mut copied {
        s.sql_text = Word::from(s.sql_text.to_string());
        s.user = Word::from(s.user.to_string());
    }
    assert_ne!(
        copied[1].sql_text.identity(),
        sessions[1].sql_text.identity()
    );
    store.record(&sample(160, copied), 8).unwrap();
    assert_eq!(
        (count(&store, "statements"), count(&store, "words")),
        (2, words)
    );
    store.record(&sample(200, sessions), 0).unwrap();
    let moment = store.moment("db1", "t1", ms(200)).unwrap().unwrap();
    let waiter = moment.kept.iter().find(|s| s.id == 9).unwrap();
    assert_eq!(
        (waiter.sql_id.as_str(), waiter.sql_text.as_str()),
        ("A1", "")
    );
}

/// Retention: cycles older than the cut go, and, once they are older than the
/// oldest cycle left by the slack of `last_at`, the words, statements and sessions
/// only they referred to; the rest stays readable.
#[test]
fn pruning_by_age_takes_the_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("history.db")).unwrap();
    let mut old = pileup();
    old[2].sql_text = "SELECT 'only then'".into();
    old[2].id = 12;
    let later = 60 + LAST_USE_SLACK_MS as u64 / 1000 + 60;
    store.record(&sample(0, old), 1024).unwrap();
    store.record(&sample(60, pileup()), 1024).unwrap();
    store.record(&sample(later, pileup()), 1024).unwrap();
    let count = |store: &Store, table: &str| -> i64 {
        store
            .conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(store.prune(ms(30), u64::MAX).unwrap(), 1);
    assert_eq!(store.oldest().unwrap(), Some(ms(60)));
    assert_eq!(store.moment("db1", "t1", ms(59)).unwrap(), None);
    assert_eq!(
        store
            .moment("db1", "t1", ms(60))
            .unwrap()
            .unwrap()
            .kept
            .len(),
        3
    );
    assert_eq!(
        (count(&store, "statements"), count(&store, "sessions")),
        (3, 4),
        "within the slack, what the old cycle used stays"
    );
    assert_eq!(store.prune(ms(61), u64::MAX).unwrap(), 1);
    assert_eq!(
        (count(&store, "statements"), count(&store, "sessions")),
        (2, 3),
        "the statement and the session only the old cycle had went with it"
    );
    let moment = store.moment("db1", "t1", ms(later)).unwrap().unwrap();
    assert_eq!(moment.kept, pileup_as_read());
}

/// A word, statement or session used all along has its `last_at` written again
/// as the cycles go, so pruning never takes what a cycle left still refers to,
/// however long ago it was first stored.
#[test]
fn pruning_keeps_what_the_cycles_left_use() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("history.db")).unwrap();
    let sessions = pileup();
    for cycle in 0..=15 {
        store
            .record(&sample(cycle * 100, sessions.clone()), 1024)
            .unwrap();
    }
    assert_eq!(store.prune(ms(1400), u64::MAX).unwrap(), 14);
    let moment = store.moment("db1", "t1", ms(1500)).unwrap().unwrap();
    assert_eq!(moment.kept, pileup_as_read());
    // And a store opened again (its caches empty) writes them anew.
    drop(store);
    let mut store = Store::open(&dir.path().join("history.db")).unwrap();
    store.record(&sample(1600, sessions), 1024).unwrap();
    let moment = store.moment("db1", "t1", ms(1600)).unwrap().unwrap();
    assert_eq!(moment.kept, pileup_as_read());
}

/// Size: past the limit the oldest cycles go until the pages in use fit, and the
/// newest cycle is always kept.
#[test]
fn pruning_by_size_takes_the_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("history.db")).unwrap();
    let many: Vec<KeptSession> = (0..200)
        .map(|id| KeptSession {
            id,
            client: format!("10.2.0.{}", id % 250).into(),
            sql_text: format!("SELECT {id}").into(),
            sql_id: format!("S{id}").into(),
            ..pileup()[2].clone()
        })
        .collect();
    for cycle in 0..40 {
        store.record(&sample(cycle, many.clone()), 1024).unwrap();
    }
    let before = store.used_bytes().unwrap();
    let limit = before / 2;
    let gone = store.prune(0, limit).unwrap();
    assert!(gone > 0 && gone < 40, "{gone} cycles went");
    assert!(store.used_bytes().unwrap() <= limit);
    let oldest = store.oldest().unwrap().unwrap();
    assert!(oldest > ms(0));
    assert!(store.moment("db1", "t1", ms(39)).unwrap().is_some());
    assert_eq!(store.moment("db1", "t1", oldest - 1).unwrap(), None);
}

/// A store of schema version 1 (before `last_at`) is brought to this version when
/// opened: its cycles read back, and it records and prunes as a new one does.
#[test]
fn a_version_1_store_is_brought_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    {
        let mut store = Store::open(&path).unwrap();
        store.record(&sample(0, pileup()), 1024).unwrap();
        store.record(&sample(15, pileup()), 1024).unwrap();
        store
            .conn
            .execute_batch(
                "DROP INDEX words_by_last_use; DROP INDEX statements_by_last_use;
                 DROP INDEX sessions_by_last_use;
                 ALTER TABLE words DROP COLUMN last_at; ALTER TABLE statements DROP COLUMN last_at;
                 ALTER TABLE sessions DROP COLUMN last_at;
                 UPDATE meta SET value = '1' WHERE key = 'schema_version';",
            )
            .unwrap();
    }
    // A reader reads it as it is (no read uses `last_at`), and changes nothing.
    let reader = Store::open_read(&path).unwrap();
    assert_eq!(
        reader.moment("db1", "t1", ms(0)).unwrap().unwrap().kept,
        pileup_as_read()
    );
    drop(reader);
    let mut store = Store::open(&path).unwrap();
    let oldest_use: i64 = store
        .conn
        .query_row(
            "SELECT MIN(last_at) FROM (SELECT last_at FROM words UNION ALL \
             SELECT last_at FROM statements UNION ALL SELECT last_at FROM sessions)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        oldest_use >= ms(15),
        "every row counts as used by the newest cycle"
    );
    // Pruned before anything new is recorded: the cycle left still reads whole.
    assert_eq!(store.prune(ms(10), u64::MAX).unwrap(), 1);
    assert_eq!(
        store.moment("db1", "t1", ms(15)).unwrap().unwrap().kept,
        pileup_as_read()
    );
    store.record(&sample(30, pileup()), 1024).unwrap();
    assert_eq!(
        store.moment("db1", "t1", ms(30)).unwrap().unwrap().kept,
        pileup_as_read()
    );
}

/// A row's `last_at` only moves forward: a cycle that comes with an earlier time
/// (another target's, or after the clock stepped back), through another word of
/// the same text, does not move it back, so pruning never takes a row a cached id
/// still names. A cached row that is gone anyway is stored anew.
#[test]
fn last_use_only_moves_forward_and_a_lost_row_is_stored_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("history.db")).unwrap();
    let later = pileup();
    store.record(&sample(700, later.clone()), 1024).unwrap();
    // The same texts in words of their own, at an earlier time.
    let earlier: Vec<KeptSession> = pileup()
        .into_iter()
        .map(|s| KeptSession {
            command: Word::from(s.command.to_string()),
            sql_text: Word::from(s.sql_text.to_string()),
            ..s
        })
        .collect();
    store.record(&sample(0, earlier), 1024).unwrap();
    let last_use =
        |store: &Store, sql: &str| -> i64 { store.conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        last_use(&store, "SELECT last_at FROM words WHERE text = 'Query'"),
        ms(700)
    );
    assert_eq!(
        last_use(&store, "SELECT MIN(last_at) FROM statements"),
        ms(700)
    );
    // A row the cache names, gone (as if pruned by another store handle): the
    // next cycle that needs it past the slack stores it again, and reads back whole.
    store
        .conn
        .execute("DELETE FROM words WHERE text = 'Query'", [])
        .unwrap();
    let at = 700 + LAST_USE_SLACK_MS as u64 / 1000 + 1;
    store.record(&sample(at, later), 1024).unwrap();
    assert_eq!(
        store.moment("db1", "t1", ms(at)).unwrap().unwrap().kept,
        pileup_as_read()
    );
}

/// A file that is no store, or a store of another schema version, is refused as
/// unreadable (the recorder moves it aside); an empty file becomes a store.
#[test]
fn a_foreign_or_corrupt_file_is_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![0x5a; 8192]).unwrap();
    let err = Store::open(&junk).unwrap_err();
    assert!(err.unreadable(), "{err}");
    assert!(err.to_string().contains("junk.db"), "{err}");

    let other = dir.path().join("other.db");
    {
        let mut store = Store::open(&other).unwrap();
        store.record(&sample(0, pileup()), 1024).unwrap();
        store
            .conn
            .execute(
                "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
                [],
            )
            .unwrap();
    }
    let err = Store::open(&other).unwrap_err();
    assert!(err.unreadable());
    assert!(err.to_string().contains("schema version 99"), "{err}");

    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    assert!(Store::open(&empty).is_ok());
}

/// A store reopened reads every cycle written before it was closed.
#[test]
fn a_reopened_store_keeps_its_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    {
        let mut store = Store::open(&path).unwrap();
        store.record(&sample(0, pileup()), 1024).unwrap();
    }
    let mut store = Store::open(&path).unwrap();
    store.record(&sample(15, pileup()), 1024).unwrap();
    assert_eq!(
        store
            .moment("db1", "t1", ms(0))
            .unwrap()
            .unwrap()
            .kept
            .len(),
        3
    );
    assert_eq!(
        store
            .moment("db1", "t1", ms(15))
            .unwrap()
            .unwrap()
            .kept
            .len(),
        3
    );
    assert!(store.bytes() > 0);
}

/// The timeline: per step its cycles' averages and peaks, the active sessions by
/// wait class, and the statements with the most active samples; a step without a
/// cycle is there with zeros; the end of the range is not included.
#[test]
fn the_timeline_averages_and_peaks_per_step() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("history.db")).unwrap();
    // Two cycles in the first minute (the second with one more active session, the
    // waiter gone), none in the second, one in the third.
    store.record(&sample(0, pileup()), 1024).unwrap();
    let mut busier = sample(30, pileup());
    busier.tenants[0].active = 4;
    busier.tenants[0].lock_waiting = 0;
    busier.tenants[0].by_wait_class = vec![("CPU".into(), 4)];
    store.record(&busier, 1024).unwrap();
    store.record(&sample(120, pileup()), 1024).unwrap();
    store.record(&sample(180, pileup()), 1024).unwrap();
    let steps = store
        .timeline("db1", "t1", (ms(0), ms(180), 60_000))
        .unwrap();
    assert_eq!(steps.len(), 3);
    let first = &steps[0];
    assert_eq!((first.at_ms, first.cycles), (ms(0), 2));
    assert_eq!(first.active, Spread { avg: 3.0, peak: 4 });
    assert_eq!(first.lock_waiting, Spread { avg: 0.5, peak: 1 });
    assert_eq!(
        first.by_wait_class,
        [
            ("CPU".to_string(), Spread { avg: 2.5, peak: 4 }),
            ("Lock".to_string(), Spread { avg: 0.5, peak: 1 })
        ]
    );
    // Each cycle has two active sessions, running A1 and B2.
    assert_eq!(
        first.top_statements,
        [("A1".to_string(), 2), ("B2".to_string(), 2)]
    );
    assert_eq!((steps[1].cycles, steps[1].active), (0, Spread::default()));
    assert_eq!(steps[2].cycles, 1, "the cycle at the end is not in range");
    assert!(store
        .timeline("db1", "nobody", (ms(0), ms(60), 60_000))
        .unwrap()
        .iter()
        .all(|s| s.cycles == 0));
}

/// A session's story: the cycles it was seen in, oldest first, with its state in
/// each, up to a limit that says there were more.
#[test]
fn a_sessions_story_is_the_cycles_it_was_seen_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("history.db")).unwrap();
    for cycle in 0..5 {
        let mut sessions = pileup();
        sessions[1].time = cycle as f64;
        if cycle == 2 {
            sessions.remove(1);
        }
        store.record(&sample(cycle * 15, sessions), 1024).unwrap();
    }
    let (story, more) = store
        .session_story("db1", "t1", 9, (ms(0), ms(60)), 10)
        .unwrap();
    assert!(!more);
    let seen: Vec<(i64, f64)> = story.iter().map(|(at, s)| (*at, s.time)).collect();
    assert_eq!(
        seen,
        [(ms(0), 0.0), (ms(15), 1.0), (ms(45), 3.0), (ms(60), 4.0)]
    );
    assert_eq!(story[0].1.blocked_by, Some(7));
    let (two, more) = store
        .session_story("db1", "t1", 9, (ms(0), ms(60)), 2)
        .unwrap();
    assert_eq!((two.len(), more), (2, true));
}

/// A store opened for reading changes nothing, and refuses a file that is none.
#[test]
fn reading_opens_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    assert!(Store::open_read(&path).is_err(), "no store is made");
    assert!(!path.exists());
    let mut store = Store::open(&path).unwrap();
    store.record(&sample(0, pileup()), 1024).unwrap();
    let reader = Store::open_read(&path).unwrap();
    assert_eq!(
        reader
            .moment("db1", "t1", ms(0))
            .unwrap()
            .unwrap()
            .kept
            .len(),
        3
    );
    assert!(reader.conn.execute("DELETE FROM cycles", []).is_err());
}

/// Whatever the bound, the newest cycle stays; the file's pages are given back
/// (auto_vacuum is incremental from the start); a timeline is at most MAX_STEPS
/// steps whatever the range asked.
#[test]
fn bounds_keep_the_newest_cycle_and_timelines_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("history.db")).unwrap();
    let vacuum: i64 = store
        .conn
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!(vacuum, 2, "incremental");
    for cycle in 0..5 {
        store.record(&sample(cycle * 15, pileup()), 1024).unwrap();
    }
    store.prune(0, 0).unwrap();
    assert_eq!(store.oldest().unwrap(), Some(ms(60)));
    assert_eq!(
        store
            .moment("db1", "t1", ms(60))
            .unwrap()
            .unwrap()
            .kept
            .len(),
        3
    );
    let steps = store.timeline("db1", "t1", (0, i64::MAX, 1)).unwrap();
    assert_eq!(steps.len() as i64, crate::history::read::MAX_STEPS);
}
