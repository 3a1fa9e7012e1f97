//! The periodic reads: a target's session limits and its deadlock counter, read every
//! `limits_interval` rather than every cycle (they are settings and a counter, and
//! a statement that reads them each cycle would cost the database for nothing), and
//! attached to each cycle's statistics in between.
//!
//! Every kind sends one statement of [`PERIODIC_COLUMNS`] and the rows are decoded
//! here, whatever the driver: `tenant, what, name, value`, `what` one of
//! - `sessions`: the tenant's (server's) session limit;
//! - `user`: a user's own limit (`name`); `users_default`: the limit of every user
//!   without one, sent (NULL when there is none) only when the users' own limits
//!   could be read, which makes them known;
//! - `db`: a database's limit (`name`);
//! - `deadlocks`: the engine's own deadlock counter;
//! - `connections`: the server's count of connection attempts (logons) since its
//!   start; `refused` and `ended` its counts of connections refused and of sessions
//!   ended, by reason (`name`: `max_connections`, `aborted`, `killed`, ...; a part
//!   of them, a server or a database, after a `/`: summed part by part, see
//!   [`SummedCounters`]);
//!   `peak` the most sessions it has had at once. Each is sent only where the
//!   engine keeps it, and rows of one reason (a cluster's servers) are summed;
//! - `deadlock_history`: OceanBase keeps a history of deadlock events instead of a
//!   counter (see [`DeadlockEvents`]): this row says that the events follow,
//!   `deadlock_events` how many the history held at the first read, and each
//!   `deadlock_event` row one event (`name` its id, `value` its `REPORT_TIME` in µs).
//!
//! - `ash_history`: OceanBase's active session history is read (see [`AshSamples`]):
//!   each `ash` row is the samples of a tenant's (`tenant`) server in one wait since the
//!   last read, `name` the server, port, wait class, wait event and newest
//!   `SAMPLE_TIME`, NUL between them, `value` how many.
//!
//! A limit that is NULL or negative is no limit, and has no series; each kind's
//! statement writes its engine's "unlimited" (MySQL's 0, PostgreSQL's -1) as NULL.
//! A limit of 0 is one: PostgreSQL's `CONNECTION LIMIT 0` lets no session in.

use super::counters::{CounterParts, SummedCounters};
use super::{bad_answer, datetime_micros, fields, Cell};
use crate::error::SourceError;
use crate::stats::{CollectParts, Collected, Periodic, Statistics, OTHER_LABEL};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The columns of a statement of periodic reads (see the module's doc).
pub const PERIODIC_COLUMNS: usize = 4;

/// How far back of the newest event seen a read of OceanBase's deadlock history
/// starts: an event is reported by each of its sessions' servers, not all at once.
pub const EVENT_MARGIN_MICROS: i64 = 300_000_000;

/// The most events one read of the history sends: the rest of a storm larger than
/// this within [`EVENT_MARGIN_MICROS`] is not counted, and memory stays bounded.
pub const MAX_EVENTS: usize = 10_000;

/// The limits of a MySQL-protocol server (MySQL, MariaDB, a single OceanBase
/// tenant): `max_connections` (`unlimited` is the value that means none, as
/// OceanBase's default 2147483647 does), the default per user
/// (`max_user_connections`, 0 is none) and, when `users` (the account can read
/// `mysql.user`), each account's own `MAX_USER_CONNECTIONS`. Pieces of a
/// `UNION ALL` (see [`PERIODIC_COLUMNS`]).
pub fn mysql_limits(users: bool, unlimited: Option<u64>) -> Vec<String> {
    let sessions = match unlimited {
        Some(none) => format!("NULLIF(@@GLOBAL.max_connections, {none})"),
        None => "@@GLOBAL.max_connections".to_string(),
    };
    let mut reads = vec![format!("SELECT '', 'sessions', '', {sessions}")];
    if users {
        reads.push(
            "SELECT '', 'users_default', '', IF(@@GLOBAL.max_user_connections > 0, \
             @@GLOBAL.max_user_connections, NULL)"
                .to_string(),
        );
        reads.push(
            "SELECT '', 'user', u.User, u.max_user_connections FROM mysql.user u \
             WHERE u.max_user_connections > 0"
                .to_string(),
        );
    }
    reads
}

/// One target's periodic reads: when they are due, what they found, and the deadlock
/// events already counted.
#[derive(Debug)]
pub struct PeriodicReads {
    parts: CollectParts,
    every: Duration,
    /// Half a collection interval: a read due at 60 s is not put off to 75 s because
    /// a cycle of 15 s came a few milliseconds early.
    slack: Duration,
    last: Option<Instant>,
    found: BTreeMap<String, Arc<Periodic>>,
    events: DeadlockEvents,
    ash: AshSamples,
    counters: SummedCounters,
}

impl PeriodicReads {
    /// The reads of `parts` (limits, deadlocks) every `every`, for a target collected
    /// every `interval`.
    pub fn new(parts: CollectParts, every: Duration, interval: Duration) -> Self {
        Self {
            parts,
            every,
            slack: interval / 2,
            last: None,
            found: BTreeMap::new(),
            events: DeadlockEvents::default(),
            ash: AshSamples::default(),
            counters: SummedCounters::default(),
        }
    }

    /// Also reads OceanBase's active session history (with the waits part), keeping
    /// at most `max_series` (wait class, wait event) counters per tenant (0: no cap).
    pub fn with_ash(mut self, max_series: usize) -> Self {
        self.ash.read = self.parts.waits;
        self.ash.max_series = max_series;
        self
    }

    /// Whether the active session history is read.
    pub fn reads_ash(&self) -> bool {
        self.ash.read
    }

    /// The newest `SAMPLE_TIME` counted of each server (`ip:port`) of the active
    /// session history: a read counts only later samples (and every sample of a
    /// server not in the list).
    pub fn ash_since(&self) -> &BTreeMap<String, String> {
        &self.ash.newest
    }

    /// Which parts are read.
    pub fn parts(&self) -> CollectParts {
        self.parts
    }

    /// Whether this cycle should send the statement of periodic reads.
    pub fn due(&self) -> bool {
        (self.parts.periodic() || self.ash.read)
            && self
                .last
                .is_none_or(|last| last.elapsed() + self.slack >= self.every)
    }

    /// From which `REPORT_TIME` (µs) OceanBase's deadlock history is read: None at
    /// the first read, which counts the whole history and reads the events of the
    /// last [`EVENT_MARGIN_MICROS`] before the newest.
    pub fn events_since(&self) -> Option<i64> {
        self.events
            .newest
            .map(|newest| newest.saturating_sub(EVENT_MARGIN_MICROS))
    }

    /// Starts decoding one answer; `tenant` stands for an empty tenant column.
    pub fn rows<'a>(&self, tenant: &'a str) -> PeriodicRows<'a> {
        PeriodicRows {
            tenant,
            found: BTreeMap::new(),
            history: false,
            events: Vec::new(),
            base: HashMap::new(),
            ash: None,
            counters: CounterParts::new(),
        }
    }

    /// Keeps what an answer found, until the next read.
    pub fn finish(&mut self, rows: PeriodicRows<'_>) {
        self.last = Some(Instant::now());
        let mut found = rows.found;
        if rows.history {
            let totals = self.events.count(rows.base, rows.events);
            for (tenant, total) in totals {
                found.entry(tenant.clone()).or_default().deadlocks = Some(*total);
            }
            // A tenant whose limits were read but which has had no event yet.
            for periodic in found.values_mut() {
                periodic.deadlocks.get_or_insert(0);
            }
            self.events.history = true;
        }
        for ((tenant, what, reason), total) in self.counters.count(rows.counters) {
            let periodic = found.entry(tenant).or_default();
            match what.as_str() {
                "connections" => periodic.connections = Some(total),
                "refused" => _ = periodic.refused.insert(reason, total),
                _ => _ = periodic.ended.insert(reason, total),
            }
        }
        if let Some(samples) = rows.ash {
            let totals = self.ash.count(samples);
            for (tenant, counters) in totals {
                found.entry(tenant.clone()).or_default().ash = Some(counters.clone());
            }
        }
        self.found = found
            .into_iter()
            .map(|(tenant, periodic)| (tenant, Arc::new(periodic)))
            .collect();
    }

    /// A read failed: what the last one found is kept, and the next is tried after
    /// another `limits_interval`, not every cycle.
    pub fn failed(&mut self) {
        self.last = Some(Instant::now());
    }

    /// Gives each tenant of `collected` what the last read found for it. With
    /// OceanBase's history, a tenant without any event has a counter of 0.
    pub fn attach(&self, collected: &mut Collected) {
        let Statistics::Tenants(tenants) = &mut collected.statistics else {
            return;
        };
        for (name, stats) in tenants.iter_mut() {
            stats.periodic = match self.found.get(name) {
                Some(found) => Some(Arc::clone(found)),
                None if self.events.history || self.ash.counted => Some(Arc::new(Periodic {
                    deadlocks: self.events.history.then_some(0),
                    ash: self.ash.counted.then(BTreeMap::new),
                    ..Periodic::default()
                })),
                None => None,
            };
        }
    }
}

/// One answer of periodic reads while it is decoded.
#[derive(Debug)]
pub struct PeriodicRows<'a> {
    tenant: &'a str,
    found: BTreeMap<String, Periodic>,
    history: bool,
    events: Vec<(String, String, i64)>,
    base: HashMap<String, u64>,
    /// The samples of the active session history, when it was read.
    ash: Option<Vec<Samples>>,
    /// The connection counters, per part.
    counters: CounterParts,
}

/// One `ash` row: a tenant's samples on one server in one wait.
#[derive(Debug)]
struct Samples {
    tenant: String,
    server: String,
    wait: (String, String),
    newest: String,
    count: u64,
}

impl PeriodicRows<'_> {
    /// Decodes one row (see the module's doc).
    pub fn add<C: Cell>(&mut self, values: Vec<C>) -> Result<(), SourceError> {
        let got = values.len();
        let [tenant, what, name, value]: [C; PERIODIC_COLUMNS] =
            values.try_into().map_err(|_| {
                bad_answer(format!(
                    "expected {PERIODIC_COLUMNS} columns of periodic reads, got {got}"
                ))
            })?;
        let tenant = match tenant.into_text() {
            Some(tenant) if !tenant.is_empty() => tenant,
            _ => self.tenant.to_string(),
        };
        let what = what.into_text().unwrap_or_default();
        let name = name.into_text().unwrap_or_default();
        if what == "deadlock_history" {
            self.history = true;
            return Ok(());
        }
        if what == "ash_history" {
            self.ash.get_or_insert_with(Vec::new);
            return Ok(());
        }
        if what == "ash" {
            let Some([server, port, class, event, newest]) = fields::<5>(&name, '\0') else {
                return Err(bad_answer(format!(
                    "an active session history row `{name}`"
                )));
            };
            if datetime_micros(newest).is_none() {
                return Err(bad_answer(format!(
                    "SAMPLE_TIME `{newest}` is not a date and time"
                )));
            }
            let count = whole(value, "samples")?.unwrap_or(0).max(0) as u64;
            let label = |text: &str| match text.is_empty() {
                true => crate::stats::NONE_LABEL.to_string(),
                false => text.to_string(),
            };
            self.ash.get_or_insert_with(Vec::new).push(Samples {
                tenant,
                server: format!("{server}:{port}"),
                wait: (label(class), label(event)),
                newest: newest.to_string(),
                count,
            });
            return Ok(());
        }
        if what == "deadlock_event" {
            if self.events.len() < MAX_EVENTS {
                let at = whole(value, "REPORT_TIME")?.unwrap_or(0);
                self.events.push((tenant, name, at));
            }
            return Ok(());
        }
        let number = whole(value, &what)?;
        if what == "deadlock_events" {
            self.base.insert(tenant, number.unwrap_or(0).max(0) as u64);
            return Ok(());
        }
        let limit = number.filter(|n| *n >= 0).map(|n| n as u64);
        let counter = number.map(|n| n.max(0) as u64);
        let periodic_tenant = tenant.clone();
        let periodic = self.found.entry(tenant).or_default();
        match what.as_str() {
            "sessions" => periodic.sessions = limit,
            "users_default" => {
                periodic.users_read = true;
                periodic.users_default = limit;
            }
            "user" => {
                if let Some(limit) = limit {
                    // Accounts of one name on several hosts: the largest, as the
                    // series counts the user's sessions from every host.
                    let known = periodic.users.entry(name).or_insert(limit);
                    *known = (*known).max(limit);
                }
            }
            "db" => {
                if let Some(limit) = limit {
                    periodic.dbs.insert(name, limit);
                }
            }
            "deadlocks" => periodic.deadlocks = Some(number.unwrap_or(0).max(0) as u64),
            // The server's counters: NULL is one it does not keep (no series).
            "peak" => periodic.peak = counter,
            "connections" | "refused" | "ended" => {
                // Each part (a server, a database) counts its own: summed from read
                // to read so that the total only grows (see [`SummedCounters`]).
                if let Some(n) = counter {
                    let (reason, part) = name.split_once('/').unwrap_or((&name, ""));
                    let key = (periodic_tenant, what.clone(), reason.to_string());
                    let value = self
                        .counters
                        .entry(key)
                        .or_default()
                        .entry(part.to_string())
                        .or_insert(0);
                    *value = value.saturating_add(n);
                }
            }
            other => return Err(bad_answer(format!("a periodic read of `{other}`"))),
        }
        Ok(())
    }
}

/// A whole number, or NULL.
fn whole(value: impl Cell, column: &str) -> Result<Option<i64>, SourceError> {
    match value.into_number(column)? {
        None => Ok(None),
        Some(n) if n.fract() == 0.0 && n.abs() < 9.0e18 => Ok(Some(n as i64)),
        Some(n) => Err(bad_answer(format!("{column} is {n}, not a whole number"))),
    }
}

/// Counters of OceanBase's active session history: per tenant and (wait class,
/// wait event), the samples taken since the exporter's first read (each sample is one
/// active session for one second, so `rate()` is the average active sessions). The
/// first read only finds where each server's history ends; the next ones count the
/// samples after it. A server's samples are kept apart by its own clock
/// (`SAMPLE_TIME`), which survives its restart (its `SAMPLE_ID`s start again).
#[derive(Debug, Default)]
struct AshSamples {
    /// Whether the target reads the history at all.
    read: bool,
    /// Whether a read has answered: tenants without samples then have counters.
    counted: bool,
    max_series: usize,
    /// The newest sample counted of each server, as the server writes its time.
    newest: BTreeMap<String, String>,
    totals: BTreeMap<String, BTreeMap<(String, String), u64>>,
}

impl AshSamples {
    /// Adds a read's samples, and says which were the newest of each server.
    fn count(
        &mut self,
        samples: Vec<Samples>,
    ) -> &BTreeMap<String, BTreeMap<(String, String), u64>> {
        let first = !self.counted;
        for sample in samples {
            let newest = self.newest.entry(sample.server).or_default();
            let later = datetime_micros(&sample.newest) > datetime_micros(newest);
            if later {
                newest.clone_from(&sample.newest);
            }
            let counters = self.totals.entry(sample.tenant).or_default();
            // The cardinality guard, for a counter: a wait once counted keeps its
            // series; a new one beyond the cap (`max_series` series with the
            // `__other__` one, as `stats::cap` keeps) is counted in `__other__`.
            let other = (OTHER_LABEL.to_string(), OTHER_LABEL.to_string());
            let named = counters.len() - usize::from(counters.contains_key(&other));
            let key = match self.max_series > 0
                && named >= self.max_series.saturating_sub(1).max(1)
                && !counters.contains_key(&sample.wait)
            {
                true => other,
                false => sample.wait,
            };
            let counter = counters.entry(key).or_default();
            if !first {
                *counter = counter.saturating_add(sample.count);
            }
        }
        self.counted = true;
        &self.totals
    }
}

/// A counter of the events of OceanBase's deadlock history. The history is a window
/// (old events are purged), so its size is no counter: each event is counted once,
/// by its id, when first seen, and the ids are remembered only as long as a read can
/// return them again ([`EVENT_MARGIN_MICROS`] before the newest).
#[derive(Debug, Default)]
struct DeadlockEvents {
    /// Whether the target reads the history at all.
    history: bool,
    seen: HashMap<(String, String), i64>,
    totals: BTreeMap<String, u64>,
    newest: Option<i64>,
}

impl DeadlockEvents {
    /// Counts the events not seen before; `base` (the first read only) is how many
    /// the history held then, which includes the events read with it.
    fn count(
        &mut self,
        base: HashMap<String, u64>,
        events: Vec<(String, String, i64)>,
    ) -> &BTreeMap<String, u64> {
        let first = self.newest.is_none();
        for (tenant, total) in base {
            self.totals.insert(tenant, total);
        }
        for (tenant, id, at) in events {
            self.newest = Some(self.newest.map_or(at, |newest| newest.max(at)));
            let new = self.seen.insert((tenant.clone(), id), at).is_none();
            if new && !first {
                *self.totals.entry(tenant).or_default() += 1;
            }
        }
        if let Some(newest) = self.newest {
            let horizon = newest.saturating_sub(2 * EVENT_MARGIN_MICROS);
            self.seen.retain(|_, at| *at >= horizon);
        }
        if first && self.newest.is_none() {
            // An empty history: the next read starts from the beginning again, and
            // counts what it finds as new.
            self.newest = Some(0);
        }
        &self.totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Collected, Statistics, TenantStats};

    fn row(tenant: &str, what: &str, name: &str, value: Option<&str>) -> Vec<Option<String>> {
        vec![
            Some(tenant.to_string()),
            Some(what.to_string()),
            Some(name.to_string()),
            value.map(str::to_string),
        ]
    }

    fn read(reads: &mut PeriodicReads, rows: Vec<Vec<Option<String>>>) {
        let mut answer = reads.rows("pg");
        for values in rows {
            let cells: Vec<Option<&str>> = values.iter().map(Option::as_deref).collect();
            answer.add(cells).unwrap();
        }
        reads.finish(answer);
    }

    fn attached(reads: &PeriodicReads, tenants: &[&str]) -> BTreeMap<String, TenantStats> {
        let mut collected = Collected {
            statistics: Statistics::Tenants(
                tenants
                    .iter()
                    .map(|t| (t.to_string(), TenantStats::default()))
                    .collect(),
            ),
            beside: None,
            rows: 0,
        };
        reads.attach(&mut collected);
        collected.into_tenants()
    }

    fn reads() -> PeriodicReads {
        PeriodicReads::new(
            CollectParts::default(),
            Duration::from_secs(60),
            Duration::from_secs(15),
        )
    }

    #[test]
    fn limits_and_counter_reach_every_tenant_and_unlimited_is_absent() {
        let mut reads = reads();
        assert!(reads.due());
        read(
            &mut reads,
            vec![
                row("", "sessions", "", Some("97")),
                row("", "users_default", "", None),
                row("", "user", "app", Some("3")),
                row("", "user", "app", Some("5")),
                row("", "user", "batch", None),
                row("", "user", "nobody", Some("0")),
                row("", "db", "shop", Some("10")),
                row("", "db", "free", Some("-1")),
                row("", "deadlocks", "", Some("4")),
            ],
        );
        assert!(!reads.due(), "read again only after limits_interval");
        let t = attached(&reads, &["pg"]);
        let p = t["pg"].periodic.as_ref().unwrap();
        assert_eq!(p.sessions, Some(97));
        assert_eq!(
            (p.user_limit("app"), p.user_limit("batch")),
            (Some(5), None)
        );
        assert_eq!(p.user_limit("nobody"), Some(0));
        assert_eq!(p.dbs, BTreeMap::from([("shop".to_string(), 10)]));
        assert_eq!(p.deadlocks, Some(4));
    }

    /// The connection counters: a reason's rows (a cluster's servers) are summed per
    /// tenant, a NULL is a counter the server does not keep, and a reset server's
    /// negative reading is 0.
    #[test]
    fn connection_counters_are_summed_per_tenant_and_reason() {
        let mut reads = reads();
        read(
            &mut reads,
            vec![
                row("t1", "connections", "", Some("120")),
                row("t1", "refused", "failed", Some("3")),
                row("t1", "refused", "failed", Some("4")),
                row("t1", "ended", "logout", Some("90")),
                row("t2", "connections", "", None),
                row("t2", "refused", "max_connections", Some("-1")),
                row("t2", "peak", "", Some("17")),
            ],
        );
        let t = attached(&reads, &["t1", "t2"]);
        let (p1, p2) = (
            t["t1"].periodic.as_ref().unwrap(),
            t["t2"].periodic.as_ref().unwrap(),
        );
        assert_eq!(p1.connections, Some(120));
        assert_eq!(p1.refused, BTreeMap::from([("failed".to_string(), 7)]));
        assert_eq!(p1.ended, BTreeMap::from([("logout".to_string(), 90)]));
        assert_eq!((p1.peak, p2.connections, p2.peak), (None, None, Some(17)));
        assert_eq!(
            p2.refused,
            BTreeMap::from([("max_connections".to_string(), 0)])
        );
    }

    /// Counters in parts (a cluster's servers) are summed part by part across
    /// reads: a part that restarts adds what it counted since, never lowers the total.
    #[test]
    fn counters_in_parts_only_grow() {
        let mut reads = reads();
        let rows = |a: &str, b: &str| {
            vec![
                row("t1", "connections", "/s1", Some(a)),
                row("t1", "connections", "/s2", Some(b)),
                row("t1", "refused", "failed/s1", Some("1")),
            ]
        };
        read(&mut reads, rows("100", "50"));
        let total = |reads: &PeriodicReads| {
            let t = attached(reads, &["t1"]);
            let p = t["t1"].periodic.clone().unwrap();
            (p.connections, p.refused.get("failed").copied())
        };
        assert_eq!(total(&reads), (Some(150), Some(1)));
        // s2 restarted: 3 since; s1 counted 10 more.
        read(&mut reads, rows("110", "3"));
        assert_eq!(total(&reads), (Some(163), Some(1)));
    }

    #[test]
    fn user_limits_unread_are_none_even_with_a_default() {
        let mut reads = reads();
        read(&mut reads, vec![row("", "sessions", "", None)]);
        let t = attached(&reads, &["pg"]);
        let p = t["pg"].periodic.as_ref().unwrap();
        assert_eq!((p.sessions, p.user_limit("app")), (None, None));
        let mut reads = self::reads();
        read(&mut reads, vec![row("", "users_default", "", Some("2"))]);
        let t = attached(&reads, &["pg"]);
        assert_eq!(
            t["pg"].periodic.as_ref().unwrap().user_limit("any"),
            Some(2)
        );
    }

    /// The history's events are counted once each, across reads that return them
    /// again, and tenants without events count 0.
    #[test]
    fn deadlock_history_counts_each_event_once() {
        let mut reads = reads();
        assert_eq!(reads.events_since(), None);
        let history = || row("", "deadlock_history", "", None);
        read(
            &mut reads,
            vec![
                history(),
                row("t1", "deadlock_events", "", Some("7")),
                row(
                    "t1",
                    "deadlock_event",
                    "18446744073709551615",
                    Some("1000000000"),
                ),
            ],
        );
        let t = attached(&reads, &["t1", "t2"]);
        assert_eq!(t["t1"].periodic.as_ref().unwrap().deadlocks, Some(7));
        assert_eq!(t["t2"].periodic.as_ref().unwrap().deadlocks, Some(0));
        assert_eq!(
            reads.events_since(),
            Some(1_000_000_000 - EVENT_MARGIN_MICROS)
        );
        read(
            &mut reads,
            vec![
                history(),
                row(
                    "t1",
                    "deadlock_event",
                    "18446744073709551615",
                    Some("1000000000"),
                ),
                row("t1", "deadlock_event", "5", Some("1000000001")),
                row("t2", "deadlock_event", "6", Some("1000000002")),
                row("t2", "deadlock_event", "6", Some("1000000002")),
            ],
        );
        let t = attached(&reads, &["t1", "t2"]);
        assert_eq!(t["t1"].periodic.as_ref().unwrap().deadlocks, Some(8));
        assert_eq!(t["t2"].periodic.as_ref().unwrap().deadlocks, Some(1));
    }

    /// The first read of the active session history finds where each server's
    /// samples end and counts nothing; later reads add their samples per tenant and
    /// wait, and remember each server's newest sample; a tenant without samples has
    /// counters (none yet); a new wait beyond the cap is counted in `__other__`.
    #[test]
    fn ash_samples_are_counted_after_the_first_read() {
        let mut reads = reads().with_ash(3);
        assert!(reads.reads_ash() && reads.due());
        let sample = |tenant: &str, server: &str, wait: &str, newest: &str, n: &str| {
            row(
                tenant,
                "ash",
                &format!("{server}\0{wait}\0{newest}"),
                Some(n),
            )
        };
        let history = || row("", "ash_history", "", None);
        read(
            &mut reads,
            vec![
                history(),
                sample(
                    "t1",
                    "10.0.0.1\x002882",
                    "CPU\0CPU",
                    "2026-12-04 10:00:00.5",
                    "50",
                ),
            ],
        );
        let ash = |reads: &PeriodicReads, tenant: &str| {
            attached(reads, &["t1", "t2"])[tenant]
                .periodic
                .as_ref()
                .unwrap()
                .ash
                .clone()
                .unwrap()
        };
        let counters = |pairs: &[(&str, &str, u64)]| -> BTreeMap<(String, String), u64> {
            pairs
                .iter()
                .map(|(c, e, n)| ((c.to_string(), e.to_string()), *n))
                .collect()
        };
        assert_eq!(ash(&reads, "t1"), counters(&[("CPU", "CPU", 0)]));
        assert!(ash(&reads, "t2").is_empty());
        assert_eq!(
            reads.ash_since().get("10.0.0.1:2882").map(String::as_str),
            Some("2026-12-04 10:00:00.5")
        );
        read(
            &mut reads,
            vec![
                history(),
                sample(
                    "t1",
                    "10.0.0.1\x002882",
                    "CPU\0CPU",
                    "2026-12-04 10:01:00",
                    "6",
                ),
                sample(
                    "t1",
                    "10.0.0.1\x002882",
                    "CONCURRENCY\0row lock wait",
                    "2026-12-04 10:00:59",
                    "4",
                ),
                sample(
                    "t1",
                    "10.0.0.2\x002882",
                    "CPU\0CPU",
                    "2026-12-04 09:59:00",
                    "1",
                ),
                sample(
                    "t1",
                    "10.0.0.2\x002882",
                    "USER_IO\0db file read",
                    "2026-12-04 09:59:01",
                    "2",
                ),
                sample("t2", "10.0.0.2\x002882", "\0", "2026-12-04 09:59:00", "3"),
            ],
        );
        assert_eq!(
            ash(&reads, "t1"),
            counters(&[
                ("CPU", "CPU", 7),
                ("CONCURRENCY", "row lock wait", 4),
                (OTHER_LABEL, OTHER_LABEL, 2)
            ])
        );
        assert_eq!(
            ash(&reads, "t2"),
            counters(&[(crate::stats::NONE_LABEL, crate::stats::NONE_LABEL, 3)])
        );
        let since: Vec<(&str, &str)> = reads
            .ash_since()
            .iter()
            .map(|(server, at)| (server.as_str(), at.as_str()))
            .collect();
        assert_eq!(
            since,
            [
                ("10.0.0.1:2882", "2026-12-04 10:01:00"),
                ("10.0.0.2:2882", "2026-12-04 09:59:01")
            ]
        );
        let mut answer = reads.rows("");
        for bad in [
            row("t1", "ash", "10.0.0.1\x002882\0CPU", Some("1")),
            sample("t1", "a\x001", "CPU\0CPU", "yesterday", "1"),
        ] {
            let cells: Vec<Option<&str>> = bad.iter().map(Option::as_deref).collect();
            assert!(answer.add(cells).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_empty_history_counts_what_comes_later() {
        let mut reads = reads();
        let history = || row("", "deadlock_history", "", None);
        read(&mut reads, vec![history()]);
        assert_eq!(reads.events_since(), Some(-EVENT_MARGIN_MICROS));
        read(
            &mut reads,
            vec![history(), row("", "deadlock_event", "9", Some("42"))],
        );
        let t = attached(&reads, &["pg"]);
        assert_eq!(t["pg"].periodic.as_ref().unwrap().deadlocks, Some(1));
    }

    #[test]
    fn limits_beside_an_empty_history_have_a_counter_of_zero() {
        let mut reads = reads();
        read(
            &mut reads,
            vec![
                row("", "sessions", "", Some("100")),
                row("", "deadlock_history", "", None),
            ],
        );
        let t = attached(&reads, &["pg"]);
        let periodic = t["pg"].periodic.as_ref().unwrap();
        assert_eq!(
            (periodic.sessions, periodic.deadlocks),
            (Some(100), Some(0))
        );
    }

    #[test]
    fn bad_rows_are_refused_with_what_was_wrong() {
        let reads = reads();
        let mut answer = reads.rows("pg");
        let err = answer
            .add(vec![Some("t"), Some("sessions"), Some(""), Some("many")])
            .unwrap_err();
        assert!(err.to_string().contains("not a number"), "{err}");
        let err = answer.add(vec![Some("t"), Some("colour")]).unwrap_err();
        assert!(err.to_string().contains("expected 4 columns"), "{err}");
        let err = answer
            .add(vec![Some("t"), Some("colour"), Some(""), Some("1")])
            .unwrap_err();
        assert!(err.to_string().contains("`colour`"), "{err}");
    }
}
