use super::*;
use crate::history::TenantSample;
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
        wait_class: String::new(),
        wait_event: String::new(),
        ..KeptSession::default()
    };
    vec![
        KeptSession {
            id: 7,
            command: "Sleep".into(),
            state: String::new(),
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
    let mut expected = pileup();
    expected.sort_by(KeptSession::rank);
    assert_eq!(moment.kept, expected);
    assert_eq!(moment.kept[0].id, 7, "the blocker comes first");
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
    sessions[1].sql_text = "UPDATE é".repeat(3);
    for cycle in 0..10 {
        store
            .record(&sample(cycle * 15, sessions.clone()), 8)
            .unwrap();
    }
    let moment = store.moment("db1", "t1", ms(150)).unwrap().unwrap();
    let waiter = moment.kept.iter().find(|s| s.id == 9).unwrap();
    assert_eq!(waiter.sql_text, "UPDATE é");
    let count = |table: &str| -> i64 {
        store
            .conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count("statements"), 2);
    assert_eq!(count("sessions"), 3, "a session's identity is stored once");
    assert_eq!(count("samples"), 30);
    store.record(&sample(200, sessions), 0).unwrap();
    let moment = store.moment("db1", "t1", ms(200)).unwrap().unwrap();
    let waiter = moment.kept.iter().find(|s| s.id == 9).unwrap();
    assert_eq!(
        (waiter.sql_id.as_str(), waiter.sql_text.as_str()),
        ("A1", "")
    );
}

/// Retention: cycles older than the cut go, and what only they referred to; the
/// rest stays readable.
#[test]
fn pruning_by_age_takes_the_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("history.db")).unwrap();
    let mut old = pileup();
    old[2].sql_text = "SELECT 'only then'".into();
    store.record(&sample(0, old), 1024).unwrap();
    store.record(&sample(60, pileup()), 1024).unwrap();
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
    let statements: i64 = store
        .conn
        .query_row("SELECT COUNT(*) FROM statements", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        statements, 2,
        "the statement only the old cycle ran went with it"
    );
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
            client: format!("10.2.0.{}", id % 250),
            sql_text: format!("SELECT {id}"),
            sql_id: format!("S{id}"),
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
