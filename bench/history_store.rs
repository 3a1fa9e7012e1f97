//! The session history's store at scale, on a fast clock (bench/bench.py, scenario
//! 11d-11f): cycles shaped like scenario 3's (1,000 tenants of 100 sessions, a tenth
//! of them active, some in a transaction, a few waiting on a lock), written as the
//! recorder writes them, one every `interval` seconds of a clock that runs as fast
//! as the disk lets it. Then it reads as the session API does: one moment of a
//! tenant, and its timeline over the whole span.
//!
//! Sessions persist across cycles (each tenant's active ones rotate through its
//! hundred), and statements repeat from a pool, as an application's do: what the
//! store keeps once is not paid for again.
//!
//! Usage: history_store DIR HOURS [INTERVAL_S]. Prints one JSON object: cycles,
//! samples, bytes, bytes per sample, bytes written per cycle, write time per cycle,
//! and the reads' times in milliseconds (the median of several).

use session_exporter::history::store::Store;
use session_exporter::history::{CycleSample, TenantSample};
use session_exporter::stats::{KeptSession, Words};
use std::time::{Duration, Instant, SystemTime};

const TENANTS: usize = 1000;
const SESSIONS: u64 = 100;
const ACTIVE: u64 = 10;
const IN_TRANSACTION: u64 = 5;
const STATEMENTS: u64 = 200;
const SQL_TEXT_MAX: usize = 1024;

/// One cycle of one tenant: `ACTIVE` active sessions (rotating through the tenant's
/// hundred), `IN_TRANSACTION` idle ones in a transaction, the first of them holding
/// a lock two active ones wait for.
fn tenant(t: usize, cycle: u64, words: &Words) -> TenantSample {
    let base = t as u64 * SESSIONS;
    let mut kept = Vec::new();
    let holder = base + 90;
    for k in 0..IN_TRANSACTION {
        kept.push(KeptSession {
            id: base + 90 + k,
            server: words.word(&format!("10.0.0.{}", t % 10 + 1)),
            user: words.word(&format!("app{}", t % 4)),
            db: words.word(&format!("db{}", t % 3)),
            client: words.word(&format!("10.1.{}.{}", t % 200, k)),
            application: words.word("checkout"),
            command: words.word("Sleep"),
            state: words.word("SLEEP"),
            time: (cycle % 40) as f64,
            transaction_age: Some((cycle % 40) as f64 + 1.0),
            waiters: if k == 0 { 2 } else { 0 },
            ..KeptSession::default()
        });
    }
    for k in 0..ACTIVE {
        let id = base + (cycle * ACTIVE + k) % 90;
        let statement = (id * 7 + cycle / 4) % STATEMENTS;
        let waits = k < 2;
        kept.push(KeptSession {
            id,
            server: words.word(&format!("10.0.0.{}", t % 10 + 1)),
            user: words.word(&format!("app{}", t % 4)),
            db: words.word(&format!("db{}", t % 3)),
            client: words.word(&format!("10.1.{}.{}", t % 200, id % 50)),
            application: words.word("checkout"),
            command: words.word("Query"),
            state: words.word("ACTIVE"),
            active: true,
            time: (k % 5) as f64 * 0.5,
            transaction_age: waits.then_some(3.0),
            lock_wait: waits.then_some(2.5),
            blocked_by: waits.then_some(holder),
            wait_class: words.word(if waits { "Lock" } else { "CPU" }),
            wait_event: words.word(if waits { "row lock" } else { "CPU" }),
            sql_id: words.word(&format!("{statement:032X}")),
            sql_text: words.word(&format!(
                "SELECT o.id, o.total, o.status FROM orders o JOIN customers c ON c.id = o.customer_id \
                 WHERE o.customer_id = ? AND o.created_at > ? /* statement {statement} */"
            )),
            ..KeptSession::default()
        });
    }
    kept.sort_by(KeptSession::rank);
    TenantSample {
        tenant: format!("t{t:04}"),
        sessions: SESSIONS,
        active: ACTIVE,
        lock_waiting: 2,
        idle_in_transaction: IN_TRANSACTION,
        longest_active: 2.0,
        by_wait_class: vec![("CPU".into(), ACTIVE - 2), ("Lock".into(), 2)],
        kept,
        truncated: 0,
    }
}

fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| {
                    l.strip_prefix("write_bytes: ")
                        .map(|v| v.trim().parse().ok())
                })
                .flatten()
        })
        .unwrap_or(0)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(hours)) = (args.next(), args.next()) else {
        eprintln!("usage: history_store DIR HOURS [INTERVAL_S]");
        std::process::exit(2);
    };
    let hours: f64 = hours.parse().expect("HOURS: a number");
    let interval: u64 = args.next().map_or(15, |i| i.parse().expect("INTERVAL_S"));
    let path = std::path::Path::new(&dir).join("history.db");
    let mut store = Store::open(&path).expect("the store");
    let cycles = (hours * 3600.0 / interval as f64) as u64;
    let start = SystemTime::now() - Duration::from_secs(cycles * interval);
    let (written_before, began) = (written_bytes(), Instant::now());
    let mut samples = 0u64;
    // The target's words, from cycle to cycle, as its aggregator keeps them.
    let words = Words::default();
    for cycle in 0..cycles {
        words.sweep();
        let tenants: Vec<TenantSample> = (0..TENANTS).map(|t| tenant(t, cycle, &words)).collect();
        samples += tenants.iter().map(|t| t.kept.len() as u64).sum::<u64>();
        let sample = CycleSample {
            target: "scale".into(),
            at: start + Duration::from_secs(cycle * interval),
            tenants,
        };
        store
            .record(&sample, SQL_TEXT_MAX)
            .expect("a cycle recorded");
    }
    let write_ms = began.elapsed().as_secs_f64() * 1000.0 / cycles.max(1) as f64;
    let written = written_bytes().saturating_sub(written_before) as f64 / cycles.max(1) as f64;
    drop(store);
    let bytes: u64 = ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", path.display())).ok())
        .map(|m| m.len())
        .sum();
    // The reads, as the session API makes them, each on a store opened read-only.
    let reader = Store::open_read(&path).expect("read-only");
    let end = session_exporter::history::unix_millis(SystemTime::now());
    let from = session_exporter::history::unix_millis(start);
    let time = |read: &dyn Fn()| {
        median(
            (0..5)
                .map(|_| {
                    let t = Instant::now();
                    read();
                    t.elapsed().as_secs_f64() * 1000.0
                })
                .collect(),
        )
    };
    let moment_ms = time(&|| {
        let m = reader
            .moment("scale", "t0500", end)
            .expect("a moment")
            .expect("recorded");
        assert_eq!(m.kept.len() as u64, ACTIVE + IN_TRANSACTION);
    });
    let step = ((end - from) / 240).max(1000);
    let timeline_ms = time(&|| {
        let steps = reader
            .timeline("scale", "t0500", (from, end, step))
            .expect("a timeline");
        assert!(steps.iter().any(|s| s.cycles > 0));
    });
    drop(reader);
    // The recorder's pruning once a minute at retention: the oldest minute goes,
    // and what no cycle refers to any more.
    let mut store = Store::open(&path).expect("the store");
    let pruning = Instant::now();
    let gone = store.prune(from + 60_000, u64::MAX).expect("pruned");
    let prune_ms = pruning.elapsed().as_secs_f64() * 1000.0;
    assert!(gone > 0, "the oldest minute pruned");
    println!(
        "{{\"cycles\": {cycles}, \"samples\": {samples}, \"bytes\": {bytes}, \"bytes_per_sample\": {:.2}, \
         \"written_per_cycle\": {written:.0}, \"write_ms_per_cycle\": {write_ms:.2}, \
         \"moment_ms\": {moment_ms:.2}, \"timeline_ms\": {timeline_ms:.2}, \"prune_ms\": {prune_ms:.1}}}",
        bytes as f64 / samples.max(1) as f64
    );
}
