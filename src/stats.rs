//! Grouped session rows -> per-tenant statistics, and the cardinality guard.
//!
//! Two words, two meanings: rows are *aggregated* (added up), and the guard *caps* a
//! dimension by summing its long tail into one `__other__` series.
//!
//! Sources send one grouped query per cycle; each row says how many sessions share a
//! (tenant, server, db, user, client) combination, and how many of them are active.
//! [`Aggregator`] adds those rows up per tenant and per dimension as they arrive. It
//! is the one aggregation in the exporter: `/metrics` and the obshell-compatible stats
//! API both read its result, so they cannot disagree. [`cap`] is the one cardinality
//! guard, for every dimension of every kind. This module imports nothing of the
//! crate: every layer above may use its types.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// Maps that only live while a cycle's rows are aggregated.
type CycleMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// The `db` label of sessions without a current database, and the `client_ip` label of
/// sessions without a client address (background threads).
pub const NONE_LABEL: &str = "__none__";

/// The value that stands for every value the cardinality guard summed away.
pub const OTHER_LABEL: &str = "__other__";

/// One row of a grouped session query: `sessions` sessions share these attributes,
/// `active` of them are running a statement. (Active and idle sessions of one client
/// share a row: grouping by activity too would double the rows of a busy cluster.)
///
/// The same statement keeps a few sessions apart, each in a row of its own with
/// [`SessionGroup::session`] set: the longest active ones and every session others
/// wait on, so the exporter can name them without a second read of the processlist.
///
/// Its text is owned (`String`) or borrowed (`&str`): a source that decodes a row in
/// place lends the row's own text, and only a value seen for the first time in a
/// cycle is copied (a large cycle is 100,000 rows of mostly repeated names).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionGroup<S = String> {
    pub tenant: S,
    /// The server the sessions are on (`svr_ip` label).
    pub server: S,
    /// Label-ready database name ([`NONE_LABEL`] when none).
    pub db: S,
    pub user: S,
    /// Label-ready client address (see [`client_label`]).
    pub client: S,
    /// The processlist's COMMAND and STATE, label-ready; empty when the target does
    /// not collect states.
    pub command: S,
    pub state: S,
    pub active: u64,
    pub sessions: u64,
    /// Longest TIME among the group's active sessions, in seconds; 0 when none.
    pub max_active_time: f64,
    /// Sessions of the group with an open transaction, and those of them idle.
    pub transactions: u64,
    pub idle_in_transaction: u64,
    /// Age of the group's oldest open transaction, in seconds; 0 when none.
    pub max_transaction_age: f64,
    /// Longest TIME among the group's sessions idle inside a transaction; 0 when none.
    pub max_idle_in_transaction: f64,
    /// Sessions of the group waiting for a lock, and the longest current wait.
    pub lock_waiting: u64,
    pub max_lock_wait: f64,
    /// The program that opened the sessions, label-ready ([`NONE_LABEL`] when it
    /// gave none); empty when the target does not collect applications.
    pub application: S,
    /// What the group's active sessions wait on (class and event, label-ready;
    /// [`CPU`] for both when they wait for nothing); empty when not collected or no
    /// session of the group is active.
    pub wait_class: S,
    pub wait_event: S,
    /// The statement the group's active sessions run (OceanBase's SQL_ID,
    /// PostgreSQL's query_id, MySQL's digest); empty when unknown or not collected.
    pub statement: S,
    /// Set when the row is one session kept apart (see above).
    pub session: Option<OneSession>,
}

/// The wait class and wait event of an active session that waits for nothing: it
/// is running on a CPU (or queued for one), as RDS Performance Insights and Oracle's
/// ASH name it.
pub const CPU: &str = "CPU";

/// A session the statement kept in a row of its own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OneSession {
    pub id: u64,
    /// OceanBase's SQL_ID; empty on MySQL/MariaDB, which have none.
    pub sql_id: String,
    /// How many sessions wait for a lock this session holds.
    pub waiters: u64,
}

/// A session others wait on: enough to find and kill it, never its SQL text.
#[derive(Debug, Clone, PartialEq)]
pub struct Blocker {
    pub session_id: u64,
    pub user: String,
    pub db: String,
    pub client: String,
    /// Sessions waiting for a lock this one holds.
    pub waiters: u64,
}

/// A tenant's transactions and lock waits as a statement of details reads them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Detail {
    /// Longest TIME of an active session, and of a session idle in a transaction
    /// (for the kinds whose grouped rows do not carry TIME).
    pub max_active_time: f64,
    pub max_idle_in_transaction: f64,
    /// Age of the oldest open transaction, in seconds.
    pub max_transaction_age: f64,
    /// Sessions waiting for a lock, and the longest wait in seconds.
    pub lock_waiting: u64,
    pub max_lock_wait: f64,
}

/// What the grouped rows of a cycle showed (see [`Aggregator::seen`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    pub active: bool,
    pub transactions: bool,
    pub lock_waits: bool,
}

/// Which of the optional parts a target collects (`collect:` in its config); a part
/// not collected has no series, rather than zeros that would read as "none".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    pub transactions: bool,
    pub locks: bool,
    pub states: bool,
    /// Session limits (server, user, database), read every `limits_interval`.
    pub limits: bool,
    /// The deadlock counter, read with the limits.
    pub deadlocks: bool,
    /// What active sessions wait on (`dbsession_wait_event_sessions`; OceanBase's
    /// active session history).
    pub waits: bool,
    /// Sessions per application (`dbsession_application_*`).
    pub applications: bool,
    /// Active sessions per statement id, a tenant's top `top_sessions`.
    pub statements: bool,
}

impl Parts {
    /// No optional part: what the session API's stats read (counts only).
    pub const NONE: Parts = Parts {
        transactions: false,
        locks: false,
        states: false,
        limits: false,
        deadlocks: false,
        waits: false,
        applications: false,
        statements: false,
    };

    /// Every optional part: the default.
    pub const ALL: Parts = Parts {
        transactions: true,
        locks: true,
        states: true,
        limits: true,
        deadlocks: true,
        waits: true,
        applications: true,
        statements: true,
    };

    /// Whether any part of the periodic reads is on.
    pub fn periodic(&self) -> bool {
        self.limits || self.deadlocks
    }
}

impl Default for Parts {
    fn default() -> Self {
        Self::ALL
    }
}

/// One of a tenant's longest active sessions: enough to find and kill it, never its
/// SQL text.
#[derive(Debug, Clone, PartialEq)]
pub struct TopSession {
    pub tenant: String,
    pub session_id: u64,
    pub user: String,
    pub db: String,
    pub client: String,
    /// OceanBase's SQL_ID; empty on MySQL/MariaDB, which have none.
    pub sql_id: String,
    pub time: f64,
}

/// Rows as a list: what unit tests feed to [`aggregate`]. (Sources add rows up as
/// they arrive with an [`Aggregator`] instead.) A tenant with no sessions is in
/// `tenants` and in no group, and reports zeros. Test code only.
#[cfg(test)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionRows {
    pub tenants: Vec<String>,
    pub groups: Vec<SessionGroup>,
    pub top: Vec<TopSession>,
}

/// Session counts of one value of one dimension.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub sessions: u64,
    pub active: u64,
    /// Sessions idle inside an open transaction (the user and client dimensions
    /// export them; counted in the same entry, so a row costs no extra lookup).
    pub idle_in_transaction: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.sessions += other.sessions;
        self.active += other.active;
        self.idle_in_transaction += other.idle_in_transaction;
    }
}

/// A value the guard can rank and sum: larger first, by [`Tally::rank`].
pub trait Tally: Copy + Default {
    /// Compared in order, largest first.
    fn rank(&self) -> (u64, u64);
    fn absorb(&mut self, other: Self);
}

impl Tally for Counts {
    /// The most sessions first; then the most active.
    fn rank(&self) -> (u64, u64) {
        (self.sessions, self.active)
    }

    fn absorb(&mut self, other: Self) {
        self.sessions = self.sessions.saturating_add(other.sessions);
        self.active = self.active.saturating_add(other.active);
        self.idle_in_transaction = self
            .idle_in_transaction
            .saturating_add(other.idle_in_transaction);
    }
}

impl Tally for u64 {
    fn rank(&self) -> (u64, u64) {
        (*self, 0)
    }

    fn absorb(&mut self, other: Self) {
        *self = self.saturating_add(other);
    }
}

/// The cardinality guard: when `values` has more than `max` entries, keeps the
/// `max - 1` largest (ties by key, so the choice is stable) and sums the rest into
/// one entry at `other`. Returns how many distinct values were summed away; totals do
/// not change. `max` 0 turns the guard off.
///
/// A real value equal to `other` (a database named `__other__`) is summed with the
/// rest and counted, never kept beside the marker or merged with it silently.
pub fn cap<K: Ord, V: Tally>(values: &mut BTreeMap<K, V>, max: usize, other: K) -> usize {
    if max == 0 || values.len() <= max {
        return 0;
    }
    keep_largest(values, max.saturating_sub(1).max(1), other)
}

/// Keeps the `keep` largest of `values` (ties by key) and sums the rest, if any,
/// into one entry at `other`; returns how many were summed (see [`cap`]).
pub fn keep_largest<K: Ord, V: Tally>(values: &mut BTreeMap<K, V>, keep: usize, other: K) -> usize {
    if values.len() <= keep {
        return 0;
    }
    let mut ranked: Vec<(K, V)> = std::mem::take(values).into_iter().collect();
    ranked.sort_by(|(a_key, a), (b_key, b)| b.rank().cmp(&a.rank()).then_with(|| a_key.cmp(b_key)));
    let mut rest = V::default();
    let mut dropped = 0;
    for (i, (key, value)) in ranked.into_iter().enumerate() {
        if i < keep && key != other {
            values.insert(key, value);
        } else {
            rest.absorb(value);
            dropped += 1;
        }
    }
    values.insert(other, rest);
    dropped
}

/// The statistics of one tenant, shaped like obshell's `TenantSessionStats`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantStats {
    pub sessions: u64,
    pub active_sessions: u64,
    /// Longest TIME among *active* sessions, 0 when none is active. obshell takes the
    /// max over all sessions, so an idle connection pool would look like a stuck query.
    pub max_active_time: f64,
    pub by_db: BTreeMap<String, Counts>,
    pub by_user: BTreeMap<String, Counts>,
    pub by_client: BTreeMap<String, Counts>,
    pub by_server: BTreeMap<String, Counts>,
    /// How many distinct values [`TenantStats::cap`] summed into [`OTHER_LABEL`].
    pub dropped: Dropped,
    /// The longest active sessions, longest first: rank = index + 1.
    pub top: Vec<TopSession>,
    /// Which optional parts were collected; the fields below are zero when not.
    pub parts: Parts,
    /// Sessions with an open transaction, and those of them not running a statement.
    pub transaction_sessions: u64,
    pub idle_in_transaction_sessions: u64,
    /// Age of the oldest open transaction, in seconds; 0 when none.
    pub max_transaction_age: f64,
    /// Longest time a session has sat idle inside an open transaction; 0 when none.
    pub max_idle_in_transaction: f64,
    /// Sessions waiting for a lock, and the longest current wait in seconds.
    pub lock_waiting_sessions: u64,
    pub max_lock_wait: f64,
    /// The sessions others wait on most, most waiters first: rank = index + 1.
    pub blockers: Vec<Blocker>,
    /// Sessions per (command, state).
    pub by_state: BTreeMap<(String, String), u64>,
    /// Sessions per application (the program that opened them).
    pub by_application: BTreeMap<String, Counts>,
    /// Active sessions per (wait class, wait event); [`CPU`] when they wait for
    /// nothing. The values add up to the active sessions.
    pub by_wait: BTreeMap<(String, String), u64>,
    /// Active sessions per statement id, the `top_sessions` most frequent ones and
    /// the rest summed into [`OTHER_LABEL`]; active sessions without an id are not in
    /// it.
    pub by_statement: BTreeMap<String, u64>,
    /// What the target's periodic reads last found for this tenant (limits, the
    /// deadlock counter); None where they are off or have not answered yet.
    pub periodic: Option<std::sync::Arc<Periodic>>,
}

/// A tenant's session limits and the deadlocks its database detected, read less
/// often than the sessions (every `limits_interval`): they are settings and a
/// counter, not the state of the sessions. A limit that does not exist (unlimited)
/// is absent, never a large number.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Periodic {
    /// How many sessions the tenant (the server) accepts.
    pub sessions: Option<u64>,
    /// Whether per-user limits were read: without the grant they need, none is
    /// exported, since a user's own limit could not be told from the default.
    pub users_read: bool,
    /// The users with a limit of their own, and the one every other user has.
    pub users: BTreeMap<String, u64>,
    pub users_default: Option<u64>,
    /// The databases with a limit of their own (PostgreSQL's `datconnlimit`).
    pub dbs: BTreeMap<String, u64>,
    /// Deadlocks detected, a counter; None where the engine does not count them or
    /// the part is off.
    pub deadlocks: Option<u64>,
    /// OceanBase's active session history: samples per (wait class, wait event)
    /// since the exporter's first read, counters; None where it is not read.
    pub ash: Option<BTreeMap<(String, String), u64>>,
}

impl Periodic {
    /// The limit of `user`'s sessions, if any.
    pub fn user_limit(&self, user: &str) -> Option<u64> {
        if !self.users_read {
            return None;
        }
        self.users.get(user).copied().or(self.users_default)
    }
}

/// Distinct values summed into [`OTHER_LABEL`], per guarded dimension.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    pub db: usize,
    pub user: usize,
    pub client: usize,
    pub state: usize,
    pub application: usize,
    pub wait: usize,
}

impl TenantStats {
    /// Applies the cardinality guard ([`cap`]) to the db, user and client
    /// dimensions and to the command/state pairs (idle in transaction per user and
    /// client is capped with its dimension), the applications and the waits; the
    /// server dimension is bounded by the cluster's size and never capped, and the
    /// statements are capped when a cycle ends (see [`Aggregator::finish`]).
    pub fn cap(&mut self, max: usize) {
        let other = || OTHER_LABEL.to_string();
        self.dropped = Dropped {
            db: cap(&mut self.by_db, max, other()),
            user: cap(&mut self.by_user, max, other()),
            client: cap(&mut self.by_client, max, other()),
            state: cap(&mut self.by_state, max, (other(), other())),
            application: cap(&mut self.by_application, max, other()),
            wait: cap(&mut self.by_wait, max, (other(), other())),
        };
    }
}

/// What one collection cycle produced, and how many rows (or entries) it read.
#[derive(Debug, Clone, PartialEq)]
pub struct Collected {
    pub statistics: Statistics,
    pub rows: usize,
}

/// The statistics of one cycle: per tenant for the databases, per audited database
/// for DBSS, whose report has no tenants.
#[derive(Debug, Clone, PartialEq)]
pub enum Statistics {
    Tenants(BTreeMap<String, TenantStats>),
    Clients(ClientDistribution),
}

impl Collected {
    /// The per-tenant statistics; empty for a kind without tenants.
    pub fn into_tenants(self) -> BTreeMap<String, TenantStats> {
        match self.statistics {
            Statistics::Tenants(tenants) => tenants,
            Statistics::Clients(_) => BTreeMap::new(),
        }
    }
}

/// A DBSS instance's client session distribution: sessions per audited database,
/// ready to be labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientDistribution {
    pub instance_id: String,
    /// Keyed by (db_id, db_ip, db_name), each [`NONE_LABEL`] where DBSS sent null or
    /// nothing; entries DBSS sent twice with the same labels are added up.
    pub sessions: BTreeMap<(String, String, String), u64>,
    /// Databases summed into the `__other__` one by the cardinality guard.
    pub dropped: usize,
}

/// One entry of DBSS's answer, as sent (any field may be null).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientEntry {
    pub db_id: Option<String>,
    pub db_ip: Option<String>,
    pub db_name: Option<String>,
    pub session_num: u64,
}

impl ClientDistribution {
    /// Adds up `entries` by their labels.
    pub fn new(instance_id: &str, entries: Vec<ClientEntry>) -> Self {
        let label = |value: Option<String>| match value {
            Some(text) if !text.is_empty() => text,
            _ => NONE_LABEL.to_string(),
        };
        let mut sessions: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        for entry in entries {
            let key = (label(entry.db_id), label(entry.db_ip), label(entry.db_name));
            sessions.entry(key).or_default().absorb(entry.session_num);
        }
        Self {
            instance_id: instance_id.to_string(),
            sessions,
            dropped: 0,
        }
    }

    /// Applies the cardinality guard ([`cap`]): the databases with the most sessions
    /// keep their series, the rest are summed into one whose three labels are
    /// [`OTHER_LABEL`].
    pub fn cap(&mut self, max: usize) {
        let other = (
            OTHER_LABEL.to_string(),
            OTHER_LABEL.to_string(),
            OTHER_LABEL.to_string(),
        );
        self.dropped = cap(&mut self.sessions, max, other);
    }
}

/// Adds rows up into per-tenant statistics as they arrive, so a cycle holds the
/// statistics, never the list of rows.
///
/// It uses hash maps while adding (a row costs up to five lookups, and a cluster sends
/// tens of thousands of rows); [`Aggregator::finish`] turns them into the ordered maps
/// that encoding and the stats API walk. The databases send a tenant's rows together,
/// so the tenant of the previous row is checked before any lookup.
#[derive(Debug)]
pub struct Aggregator {
    tenants: Vec<(String, TenantTally)>,
    index: CycleMap<usize>,
    last: Option<usize>,
    rows: usize,
    /// How many top sessions and top blockers a tenant keeps.
    keep: usize,
    parts: Parts,
    /// Whether only listed tenants are kept (see [`Aggregator::listed_only`]).
    listed_only: bool,
}

impl Default for Aggregator {
    /// Keeps every session a row names, and expects every part.
    fn default() -> Self {
        Self::new(usize::MAX, Parts::default())
    }
}

/// One tenant while adding up: totals and top sessions in `stats`, dimensions here.
#[derive(Debug, Default)]
struct TenantTally {
    stats: TenantStats,
    by_db: CycleMap<Counts>,
    by_user: CycleMap<Counts>,
    by_client: CycleMap<Counts>,
    by_server: CycleMap<Counts>,
    /// A handful of (command, state) pairs: searched in order, most recent first
    /// being no better, since rows alternate between them.
    by_state: Vec<((String, String), u64)>,
    by_application: CycleMap<Counts>,
    /// A handful of (class, event) pairs, searched in order like `by_state`.
    by_wait: Vec<((String, String), u64)>,
    by_statement: CycleMap<u64>,
    /// Named by [`Aggregator::add_tenant`] or by a zero row (see
    /// [`Aggregator::listed_only`]).
    listed: bool,
}

impl TenantTally {
    /// Counts `n` active sessions waiting on (`class`, `event`) and running
    /// `statement`; an empty value is not counted.
    fn add_activity<S: AsRef<str> + Into<String>>(
        &mut self,
        parts: Parts,
        class: &S,
        event: &S,
        statement: S,
        n: u64,
    ) {
        if parts.waits && !class.as_ref().is_empty() {
            add_pair(&mut self.by_wait, class, event, n);
        }
        if parts.statements && !statement.as_ref().is_empty() {
            match self.by_statement.get_mut(statement.as_ref()) {
                Some(known) => *known += n,
                None => {
                    self.by_statement.insert(statement.into(), n);
                }
            }
        }
    }
}

impl Aggregator {
    /// Keeps `keep` top sessions and top blockers per tenant (the statement may name
    /// more: an active blocker is kept apart for both reasons); `parts` says which
    /// optional statistics the rows carry.
    pub fn new(keep: usize, parts: Parts) -> Self {
        Self {
            tenants: Vec::new(),
            index: CycleMap::default(),
            last: None,
            rows: 0,
            keep,
            parts,
            listed_only: false,
        }
    }

    /// Keeps only the tenants a zero row (a group of 0 sessions) or
    /// [`Aggregator::add_tenant`] names: a cluster's statement lists its tenants in
    /// zero rows, so the processlist is read without a join to the tenants view, and
    /// sessions of a tenant it does not list (a META tenant) are dropped here.
    pub fn listed_only(mut self) -> Self {
        self.listed_only = true;
        self
    }

    /// Makes `tenant` present even if no row names it (it then reports zeros).
    pub fn add_tenant(&mut self, tenant: &str) {
        self.tenant(tenant).listed = true;
    }

    /// The tally of tenant `name`, created on first sight.
    fn tenant<S: AsRef<str> + Into<String>>(&mut self, name: S) -> &mut TenantTally {
        let i = match self.last {
            Some(i) if self.tenants[i].0 == name.as_ref() => i,
            _ => match self.index.get(name.as_ref()) {
                Some(&i) => i,
                None => {
                    let name: String = name.into();
                    self.index.insert(name.clone(), self.tenants.len());
                    self.tenants.push((name, TenantTally::default()));
                    self.tenants.len() - 1
                }
            },
        };
        self.last = Some(i);
        &mut self.tenants[i].1
    }

    /// Adds one group of sessions. A group of 0 sessions (the cluster query's row for
    /// a tenant without sessions) only makes its tenant present.
    pub fn add_group<S: AsRef<str> + Into<String>>(&mut self, group: SessionGroup<S>) {
        self.rows += 1;
        let (parts, keep) = (self.parts, self.keep);
        let states = parts.states;
        let tenant = self.tenant(group.tenant);
        if group.sessions == 0 {
            tenant.listed = true;
            return;
        }
        let (n, active) = (group.sessions, group.active);
        let stats = &mut tenant.stats;
        stats.sessions += n;
        stats.active_sessions += active;
        if active > 0 {
            stats.max_active_time = stats.max_active_time.max(group.max_active_time);
        }
        stats.transaction_sessions += group.transactions;
        stats.idle_in_transaction_sessions += group.idle_in_transaction;
        stats.max_transaction_age = stats.max_transaction_age.max(group.max_transaction_age);
        stats.max_idle_in_transaction = stats
            .max_idle_in_transaction
            .max(group.max_idle_in_transaction);
        stats.lock_waiting_sessions += group.lock_waiting;
        stats.max_lock_wait = stats.max_lock_wait.max(group.max_lock_wait);
        if let Some(session) = group.session {
            let (user, db, client) = (
                group.user.as_ref(),
                group.db.as_ref(),
                group.client.as_ref(),
            );
            if active > 0 {
                stats.top.push(TopSession {
                    tenant: String::new(),
                    session_id: session.id,
                    user: user.to_string(),
                    db: db.to_string(),
                    client: client.to_string(),
                    sql_id: session.sql_id,
                    time: group.max_active_time,
                });
                // A server with thousands of active threads sends each in a row of
                // its own: keep at most twice what is exported, not all of them.
                if stats.top.len() >= 2 * keep.max(1) {
                    keep_longest(&mut stats.top, keep);
                }
            }
            if session.waiters > 0 {
                stats.blockers.push(Blocker {
                    session_id: session.id,
                    user: user.to_string(),
                    db: db.to_string(),
                    client: client.to_string(),
                    waiters: session.waiters,
                });
            }
        }
        if states {
            add_pair(&mut tenant.by_state, &group.command, &group.state, n);
        }
        if active > 0 {
            tenant.add_activity(
                parts,
                &group.wait_class,
                &group.wait_event,
                group.statement,
                active,
            );
        }
        let counts = Counts {
            sessions: n,
            active,
            idle_in_transaction: group.idle_in_transaction,
        };
        // A source that counts applications apart leaves them empty here.
        if parts.applications && !group.application.as_ref().is_empty() {
            add_to(&mut tenant.by_application, group.application, counts);
        }
        add_to(&mut tenant.by_db, group.db, counts);
        add_to(&mut tenant.by_user, group.user, counts);
        add_to(&mut tenant.by_client, group.client, counts);
        add_to(&mut tenant.by_server, group.server, counts);
    }

    /// Adds one of a tenant's longest active sessions, as unit tests write them
    /// (sources send sessions as rows of their own, see [`SessionGroup::session`]).
    #[cfg(test)]
    pub fn add_top(&mut self, session: TopSession) {
        self.rows += 1;
        self.add_top_apart(session);
    }

    /// Adds one of a tenant's longest active sessions, read by a cycle's statement of
    /// details (its row is counted by [`Aggregator::add_detail`]).
    pub fn add_top_apart(&mut self, session: TopSession) {
        let tally = self.tenant(session.tenant.as_str());
        tally.stats.top.push(session);
    }

    /// Adds what one active session the grouping already counted waits on (class,
    /// event) and runs (a statement of activity's; an empty statement is none).
    pub fn add_activity(&mut self, tenant: &str, (class, event): (&str, &str), statement: &str) {
        let parts = self.parts;
        self.tenant(tenant)
            .add_activity(parts, &class, &event, statement, 1);
    }

    /// Adds `counts` sessions of `tenant` to application `name`, counted apart from
    /// the groups that counted them otherwise (MySQL's, by connection).
    pub fn add_application(&mut self, tenant: &str, name: &str, counts: Counts) {
        if self.parts.applications {
            add_to(&mut self.tenant(tenant).by_application, name, counts);
        }
    }

    /// Adds a session others wait on, read by a cycle's statement of details (its
    /// row is counted by [`Aggregator::add_detail`]).
    pub fn add_blocker(&mut self, tenant: String, blocker: Blocker) {
        self.tenant(tenant).stats.blockers.push(blocker);
    }

    /// Adds what a cycle's statement of details read of `tenant`'s transactions and
    /// lock waits (the kinds whose grouped rows cannot carry them).
    pub fn add_detail(&mut self, tenant: String, detail: Detail) {
        self.rows += 1;
        let stats = &mut self.tenant(tenant).stats;
        stats.max_active_time = stats.max_active_time.max(detail.max_active_time);
        stats.max_idle_in_transaction = stats
            .max_idle_in_transaction
            .max(detail.max_idle_in_transaction);
        stats.max_transaction_age = stats.max_transaction_age.max(detail.max_transaction_age);
        stats.lock_waiting_sessions += detail.lock_waiting;
        stats.max_lock_wait = stats.max_lock_wait.max(detail.max_lock_wait);
    }

    /// Whether a group added so far has active sessions, sessions in a transaction,
    /// or sessions waiting for a lock: what decides whether a cycle reads details.
    pub fn seen(&self) -> Seen {
        let mut seen = Seen::default();
        for (_, tally) in &self.tenants {
            let stats = &tally.stats;
            seen.active |= stats.active_sessions > 0;
            seen.transactions |= stats.transaction_sessions > 0;
            seen.lock_waits |= stats.lock_waiting_sessions > 0;
        }
        seen
    }

    pub fn finish(self) -> Collected {
        let (keep, parts, listed_only) = (self.keep, self.parts, self.listed_only);
        let tenants = self
            .tenants
            .into_iter()
            .filter(|(_, tally)| tally.listed || !listed_only)
            .map(|(name, tally)| {
                let mut stats = tally.stats;
                stats.parts = parts;
                stats.by_db = tally.by_db.into_iter().collect();
                stats.by_user = tally.by_user.into_iter().collect();
                stats.by_client = tally.by_client.into_iter().collect();
                stats.by_server = tally.by_server.into_iter().collect();
                stats.by_state = tally.by_state.into_iter().collect();
                stats.by_application = tally.by_application.into_iter().collect();
                stats.by_wait = tally.by_wait.into_iter().collect();
                stats.by_statement = tally.by_statement.into_iter().collect();
                // A tenant's most frequent statements, the rest summed (keep 0: none).
                if keep == 0 {
                    stats.by_statement.clear();
                } else {
                    keep_largest(&mut stats.by_statement, keep, OTHER_LABEL.to_string());
                }
                keep_longest(&mut stats.top, keep);
                for top in &mut stats.top {
                    top.tenant.clone_from(&name);
                }
                stats.blockers.sort_by(|a, b| {
                    b.waiters
                        .cmp(&a.waiters)
                        .then(a.session_id.cmp(&b.session_id))
                });
                stats.blockers.truncate(keep);
                (name, stats)
            })
            .collect();
        Collected {
            statistics: Statistics::Tenants(tenants),
            rows: self.rows,
        }
    }
}

/// Adds `n` to the entry of (`a`, `b`) in a short list of pairs, copied only when
/// new.
fn add_pair<S: AsRef<str>>(pairs: &mut Vec<((String, String), u64)>, a: &S, b: &S, n: u64) {
    let (a, b) = (a.as_ref(), b.as_ref());
    match pairs.iter_mut().find(|((x, y), _)| x == a && y == b) {
        Some((_, count)) => *count += n,
        None => pairs.push(((a.to_string(), b.to_string()), n)),
    }
}

/// Adds `counts` to `key`'s entry, which is copied only when new.
fn add_to<S: AsRef<str> + Into<String>>(map: &mut CycleMap<Counts>, key: S, counts: Counts) {
    match map.get_mut(key.as_ref()) {
        Some(known) => known.add(counts),
        None => map.entry(key.into()).or_default().add(counts),
    }
}

/// Keeps the `keep` longest sessions of `top`, longest first; equal times in
/// session id order, so ranks do not flap.
fn keep_longest(top: &mut Vec<TopSession>, keep: usize) {
    top.sort_by(|a, b| {
        b.time
            .total_cmp(&a.time)
            .then(a.session_id.cmp(&b.session_id))
    });
    top.truncate(keep);
}

/// Adds up `rows` per tenant. Every tenant of `rows.tenants` is present in the
/// result, with zeros when it has no sessions. Test code only.
#[cfg(test)]
pub fn aggregate(rows: SessionRows) -> BTreeMap<String, TenantStats> {
    Collected::from(rows).into_tenants()
}

#[cfg(test)]
impl From<SessionRows> for Collected {
    fn from(rows: SessionRows) -> Self {
        let mut aggregator = Aggregator::default();
        for tenant in &rows.tenants {
            aggregator.add_tenant(tenant);
        }
        for group in rows.groups {
            aggregator.add_group(group);
        }
        for top in rows.top {
            aggregator.add_top(top);
        }
        aggregator.finish()
    }
}

/// The host part of a processlist `HOST` value: `ip:port`, `[v6]:port`, `host:port`,
/// a bare host, or empty. A trailing `:digits` is the port; MySQL writes IPv6 clients
/// without brackets (`::1:51234`), so the last colon group is the port there too.
///
/// The sources do the same cut in SQL (`source::sql::host_without_port`) so the
/// database can group by client; this is the reference the SQL is tested against.
pub fn host_without_port(host: &str) -> &str {
    let host = host.trim();
    match host.rsplit_once(':') {
        Some((rest, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => host,
    }
}

/// The `client_ip` label for a client host with the port already removed: an IP
/// address in canonical form (IPv4-mapped IPv6 becomes IPv4), a host name as it is,
/// or [`NONE_LABEL`] when empty. Takes the host by value: the common case, a
/// dotted-quad IPv4 address, is already canonical (Rust's parser refuses leading
/// zeros and other spellings) and is returned without a new allocation.
pub fn client_label(host: String) -> String {
    match client_label_of(&host) {
        Cow::Borrowed(label) if label.len() == host.len() => host,
        label => label.into_owned(),
    }
}

/// [`client_label`] of borrowed text: borrowed too, unless an IPv6 address had to be
/// written in its canonical form.
pub fn client_label_of(host: &str) -> Cow<'_, str> {
    let mut bare = host.trim();
    // `[v6]`; nested brackets are stripped too, so a label is its own label.
    while let Some(inner) = bare.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        bare = inner.trim();
    }
    if bare.is_empty() {
        return Cow::Borrowed(NONE_LABEL);
    }
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => Cow::Owned(ip.to_canonical().to_string()),
        _ => Cow::Borrowed(bare),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(
        tenant: &str,
        db: &str,
        user: &str,
        client: &str,
        active: bool,
        n: u64,
        t: f64,
    ) -> SessionGroup {
        SessionGroup {
            tenant: tenant.into(),
            server: "10.0.0.1".into(),
            db: db.into(),
            user: user.into(),
            client: client.into(),
            active: if active { n } else { 0 },
            sessions: n,
            max_active_time: if active { t } else { 0.0 },
            ..SessionGroup::default()
        }
    }

    #[test]
    fn aggregates_rows_into_every_dimension() {
        let stats = aggregate(SessionRows {
            tenants: vec!["t1".into(), "empty".into()],
            groups: vec![
                group("t1", "app", "root", "10.0.0.100", true, 3, 12.5),
                group("t1", "app", "root", "10.0.0.100", false, 4, 999.0),
                group("t1", "sys", "admin", "10.0.0.101", true, 1, 3600.5),
                group("t1", NONE_LABEL, "admin", "10.0.0.101", false, 2, 7.0),
            ],
            top: vec![],
        });
        assert_eq!(stats.len(), 2);
        assert_eq!(stats["empty"], TenantStats::default());
        let t1 = &stats["t1"];
        assert_eq!((t1.sessions, t1.active_sessions), (10, 4));
        // The sleeping group's 999 s does not count: only active sessions do.
        assert_eq!(t1.max_active_time, 3600.5);
        let c = |sessions, active| Counts {
            sessions,
            active,
            ..Counts::default()
        };
        assert_eq!(
            t1.by_db,
            BTreeMap::from([
                (NONE_LABEL.into(), c(2, 0)),
                ("app".into(), c(7, 3)),
                ("sys".into(), c(1, 1)),
            ])
        );
        assert_eq!(
            t1.by_user,
            BTreeMap::from([("admin".into(), c(3, 1)), ("root".into(), c(7, 3))])
        );
        assert_eq!(
            t1.by_client,
            BTreeMap::from([
                ("10.0.0.100".into(), c(7, 3)),
                ("10.0.0.101".into(), c(3, 1))
            ])
        );
        assert_eq!(
            t1.by_server,
            BTreeMap::from([("10.0.0.1".into(), c(10, 4))])
        );
    }

    #[test]
    fn top_sessions_are_ranked_per_tenant() {
        let top = |tenant: &str, id: u64, time: f64| TopSession {
            tenant: tenant.into(),
            session_id: id,
            user: "u".into(),
            db: "d".into(),
            client: "c".into(),
            sql_id: String::new(),
            time,
        };
        let stats = aggregate(SessionRows {
            tenants: vec!["a".into(), "b".into()],
            groups: vec![],
            top: vec![
                top("a", 7, 1.0),
                top("b", 1, 5.0),
                top("a", 3, 9.5),
                top("a", 2, 1.0),
            ],
        });
        let ids = |t: &str| {
            stats[t]
                .top
                .iter()
                .map(|s| s.session_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("a"), [3, 2, 7]);
        assert_eq!(ids("b"), [1]);
        assert_eq!(
            stats["a"].sessions, 0,
            "top rows are not counted as sessions"
        );
    }

    /// Active sessions kept in groups of their own are the top sessions: however
    /// many arrive, in whatever order, the `keep` longest are kept, and each still
    /// counts once.
    #[test]
    fn sessions_kept_apart_are_the_top_sessions() {
        let mut aggregator = Aggregator::new(3, Parts::default());
        // 1,000 active threads, times in a scrambled order, and one idle kept apart.
        for i in 0..1000u64 {
            let time = ((i * 7919) % 1000) as f64;
            aggregator.add_group(SessionGroup {
                session: Some(OneSession {
                    id: 5000 + i,
                    ..OneSession::default()
                }),
                ..group("t", "d", "u", "c", true, 1, time)
            });
        }
        aggregator.add_group(SessionGroup {
            session: Some(OneSession {
                id: 1,
                ..OneSession::default()
            }),
            ..group("t", "d", "u", "c", false, 1, 5000.0)
        });
        let stats = aggregator.finish().into_tenants();
        let t = &stats["t"];
        assert_eq!(
            (t.sessions, t.active_sessions, t.max_active_time),
            (1001, 1000, 999.0)
        );
        let top: Vec<(u64, f64)> = t.top.iter().map(|s| (s.session_id, s.time)).collect();
        // i * 7919 % 1000 is 999, 998, 997 for i = 321, 642, 963.
        assert_eq!(top, [(5321, 999.0), (5642, 998.0), (5963, 997.0)]);
    }

    #[test]
    fn interleaved_tenants_stay_apart() {
        let stats = aggregate(SessionRows {
            tenants: vec!["t3".into()],
            groups: vec![
                group("t1", "d", "u", "10.0.0.1", true, 2, 5.0),
                group("t2", "d", "u", "10.0.0.1", false, 3, 0.0),
                group("t1", "e", "u", "10.0.0.2", false, 4, 0.0),
                group("t2", "d", "v", "10.0.0.1", true, 1, 9.0),
            ],
            top: vec![],
        });
        let (t1, t2) = (&stats["t1"], &stats["t2"]);
        assert_eq!(
            (t1.sessions, t1.active_sessions, t1.max_active_time),
            (6, 2, 5.0)
        );
        assert_eq!(
            (t2.sessions, t2.active_sessions, t2.max_active_time),
            (4, 1, 9.0)
        );
        assert_eq!(t1.by_db.len(), 2);
        assert_eq!(t2.by_user.len(), 2);
        assert_eq!(stats["t3"].sessions, 0);
        assert_eq!(stats.len(), 3);
    }

    #[test]
    fn rows_that_normalize_alike_are_added_up() {
        let stats = aggregate(SessionRows {
            tenants: vec![],
            groups: vec![
                group("t", "d", "u", &client_label("[::1]".into()), false, 1, 0.0),
                group("t", "d", "u", &client_label("::1".into()), false, 2, 0.0),
            ],
            top: vec![],
        });
        assert_eq!(
            stats["t"].by_client["::1"],
            Counts {
                sessions: 3,
                active: 0,
                ..Counts::default()
            }
        );
    }

    #[test]
    fn a_zero_row_names_a_tenant_without_sessions() {
        // The cluster query LEFT JOINs tenants to sessions: an idle tenant comes back
        // as one row with a count of 0 and must not create `__none__` dimension values.
        let stats = aggregate(SessionRows {
            tenants: vec!["idle".into()],
            groups: vec![group("idle", NONE_LABEL, "", NONE_LABEL, false, 0, 0.0)],
            top: vec![],
        });
        assert_eq!(stats["idle"], TenantStats::default());
    }

    #[test]
    fn the_guard_keeps_the_largest_and_sums_the_rest() {
        let mut stats = aggregate(SessionRows {
            tenants: vec![],
            groups: (1..=10)
                .map(|i| group("t", "d", &format!("u{i:02}"), "c", i % 2 == 0, i, 0.0))
                .collect(),
            top: vec![],
        })
        .remove("t")
        .unwrap();
        let before = stats.clone();
        stats.cap(4);
        let c = |sessions, active| Counts {
            sessions,
            active,
            ..Counts::default()
        };
        assert_eq!(
            stats.by_user,
            BTreeMap::from([
                ("u10".into(), c(10, 10)),
                ("u09".into(), c(9, 0)),
                ("u08".into(), c(8, 8)),
                (OTHER_LABEL.into(), c(28, 12)),
            ])
        );
        assert_eq!(
            stats.dropped,
            Dropped {
                db: 0,
                user: 7,
                client: 0,
                state: 0,
                application: 0,
                wait: 0,
            }
        );
        assert_eq!(
            (stats.sessions, stats.active_sessions),
            (before.sessions, before.active_sessions)
        );
        assert_eq!(stats.by_db, before.by_db, "under the limit: untouched");

        let mut off = before.clone();
        off.cap(0);
        assert_eq!(off, before);
        let mut exact = before.clone();
        exact.cap(10);
        assert_eq!(
            exact.by_user, before.by_user,
            "exactly at the limit: untouched"
        );
    }

    /// One rule for a real value spelled like the marker, for every key type: it is
    /// summed with the rest and counted, never kept beside the marker.
    #[test]
    fn a_real_other_value_is_summed_and_counted() {
        let c = |sessions| Counts {
            sessions,
            ..Counts::default()
        };
        let mut by_db: BTreeMap<String, Counts> = [
            ("a".to_string(), c(9)),
            (OTHER_LABEL.to_string(), c(8)),
            ("b".to_string(), c(1)),
        ]
        .into();
        assert_eq!(cap(&mut by_db, 2, OTHER_LABEL.to_string()), 2);
        assert_eq!(
            by_db,
            BTreeMap::from([("a".to_string(), c(9)), (OTHER_LABEL.to_string(), c(9))])
        );
        let other = || {
            (
                OTHER_LABEL.to_string(),
                OTHER_LABEL.to_string(),
                OTHER_LABEL.to_string(),
            )
        };
        let mut clients = ClientDistribution::new(
            "inst",
            vec![
                entry(Some(OTHER_LABEL), Some(OTHER_LABEL), Some(OTHER_LABEL), 7),
                entry(Some("d1"), Some("10.0.0.1"), None, 9),
                entry(Some("d2"), Some("10.0.0.2"), None, 1),
            ],
        );
        clients.cap(2);
        assert_eq!(clients.dropped, 2);
        assert_eq!(clients.sessions[&other()], 8);
        assert_eq!(clients.sessions.len(), 2);
    }

    #[test]
    fn host_port_is_cut() {
        for (host, expected) in [
            ("10.0.0.5:51234", "10.0.0.5"),
            ("[fe80::1]:2881", "[fe80::1]"),
            ("::1:51234", "::1"),
            ("db.example:3306", "db.example"),
            ("localhost", "localhost"),
            ("", ""),
            ("  10.0.0.5:1 ", "10.0.0.5"),
            ("host:", "host:"),
            ("host:abc", "host:abc"),
        ] {
            assert_eq!(host_without_port(host), expected, "{host:?}");
        }
    }

    #[test]
    fn client_labels_are_canonical() {
        for (host, expected) in [
            ("10.0.0.5", "10.0.0.5"),
            ("[fe80::1]", "fe80::1"),
            ("::ffff:127.0.0.9", "127.0.0.9"),
            ("0:0:0:0:0:0:0:1", "::1"),
            ("app-7.example", "app-7.example"),
            ("", NONE_LABEL),
            ("[]", NONE_LABEL),
            (" 10.0.0.5 ", "10.0.0.5"),
            (" app-7.example\t", "app-7.example"),
            ("[app]", "app"),
            ("[[]]", NONE_LABEL),
            ("[[::1]]", "::1"),
        ] {
            assert_eq!(client_label(host.to_string()), expected, "{host:?}");
        }
    }

    fn entry(id: Option<&str>, ip: Option<&str>, name: Option<&str>, n: u64) -> ClientEntry {
        ClientEntry {
            db_id: id.map(str::to_string),
            db_ip: ip.map(str::to_string),
            db_name: name.map(str::to_string),
            session_num: n,
        }
    }

    fn key(id: &str, ip: &str, name: &str) -> (String, String, String) {
        (id.to_string(), ip.to_string(), name.to_string())
    }

    #[test]
    fn dbss_entries_with_nulls_become_labels_and_duplicates_add_up() {
        // The documented example: null db_id and db_name.
        let clients = ClientDistribution::new(
            "inst",
            vec![
                entry(None, Some("100.79.0.248"), None, 16),
                entry(None, Some("100.79.0.247"), None, 13),
                entry(Some(""), Some("100.79.0.247"), None, 2),
                entry(Some("db1"), Some("10.0.0.37"), Some("orders"), 0),
            ],
        );
        let expected: BTreeMap<_, _> = [
            (key(NONE_LABEL, "100.79.0.247", NONE_LABEL), 15),
            (key(NONE_LABEL, "100.79.0.248", NONE_LABEL), 16),
            (key("db1", "10.0.0.37", "orders"), 0),
        ]
        .into();
        assert_eq!(clients.sessions, expected);
        assert_eq!((clients.instance_id.as_str(), clients.dropped), ("inst", 0));
    }

    #[test]
    fn dbss_guard_keeps_the_largest_and_sums_the_rest() {
        let entries = (1..=5)
            .map(|i| entry(Some(&format!("db{i}")), Some("10.0.0.1"), None, i))
            .collect();
        let mut clients = ClientDistribution::new("inst", entries);
        clients.cap(3);
        let expected: BTreeMap<_, _> = [
            (key("db5", "10.0.0.1", NONE_LABEL), 5),
            (key("db4", "10.0.0.1", NONE_LABEL), 4),
            (key(OTHER_LABEL, OTHER_LABEL, OTHER_LABEL), 1 + 2 + 3),
        ]
        .into();
        assert_eq!(clients.sessions, expected);
        assert_eq!(clients.dropped, 3);
        assert_eq!(clients.sessions.values().sum::<u64>(), 15);
    }
}

#[cfg(test)]
mod properties {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any HOST text: no panic, the cut is a prefix, and labels are stable.
        #[test]
        fn host_and_client_parsing_never_fail(host in "\\PC{0,60}|[0-9a-f:.\\[\\]]{0,40}") {
            let cut = host_without_port(&host);
            proptest::prop_assert!(host.trim().starts_with(cut));
            let label = client_label(cut.to_string());
            proptest::prop_assert!(!label.is_empty());
            proptest::prop_assert_eq!(client_label(label.clone()), label);
        }
    }
}
