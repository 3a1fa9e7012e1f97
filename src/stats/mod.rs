//! Grouped session rows -> per-tenant statistics, and the cardinality guard.
//!
//! Two words, two meanings: rows are *aggregated* (added up), and the guard *caps* a
//! dimension by summing its long tail into one `__other__` series.
//!
//! A kind's cycle hands over groups of sessions ([`SessionGroup`]): a row the database
//! grouped, or one session; each says how many sessions share a (tenant, server, db,
//! user, client, ...) combination, and how many of them are active. [`Aggregator`]
//! adds them up per tenant and per dimension as they arrive. It
//! is the one aggregation in the exporter: `/metrics` and the obshell-compatible stats
//! API both read its result, so they cannot disagree. [`cap`] is the one cardinality
//! guard, for every dimension of every kind. This module imports nothing of the
//! crate: every layer above may use its types.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

mod aggregator;
pub mod own;
mod words;

#[cfg(test)]
pub use aggregator::aggregate;
pub use aggregator::Aggregator;
pub use own::KindStatistics;
pub use words::{Word, Words};

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
    /// The age (in transactions) of the oldest snapshot the group's sessions hold,
    /// which keeps the rows every later transaction deleted from being vacuumed
    /// (PostgreSQL's `backend_xmin`); None when none holds one, or the engine does
    /// not say. For a session kept apart, its own.
    pub horizon_age: Option<u64>,
    /// The group's sessions idle in a transaction that hold such a snapshot; None
    /// where the engine does not say.
    pub idle_in_transaction_holding_horizon: Option<u64>,
    /// The longest TIME among those, in seconds; None when none, or not read.
    pub max_idle_holding_horizon: Option<f64>,
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
    /// The session holding the lock it waits for, where the read says (the history
    /// keeps it).
    pub blocked_by: Option<u64>,
    /// Its statement's text, where the read has it (the history keeps it).
    pub sql_text: String,
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
    /// Which lock they wait for.
    pub lock: HeldLock,
}

/// The kind of lock a blocker holds: a row (or any lock the engine's lock waits
/// show), or a metadata lock (a table's definition: DDL waits behind a transaction
/// that read it, and every later statement on the table behind the DDL).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HeldLock {
    #[default]
    Row,
    Metadata,
}

impl HeldLock {
    /// The `lock` label's value.
    pub fn label(self) -> &'static str {
        match self {
            HeldLock::Row => "row",
            HeldLock::Metadata => "metadata",
        }
    }
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
pub struct Present {
    pub active: bool,
    pub transactions: bool,
    pub lock_waits: bool,
}

/// Which of the optional parts a target collects (`collect:` in its config); a part
/// not collected has no series, rather than zeros that would read as "none".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectParts {
    pub transactions: bool,
    pub locks: bool,
    pub states: bool,
    /// Session limits (server, user, database), read every `limits_interval`.
    pub limits: bool,
    /// The deadlock counter, read with the limits.
    pub deadlocks: bool,
    /// The server's own counters of connections made, refused and ended, and its
    /// peak of sessions, read with the limits.
    pub connections: bool,
    /// What active sessions wait on (`dbsession_wait_event_sessions`; OceanBase's
    /// active session history).
    pub waits: bool,
    /// Sessions per application (`dbsession_application_*`).
    pub applications: bool,
    /// Active sessions per statement id, a tenant's top `top_sessions`.
    pub statements: bool,
}

impl CollectParts {
    /// No optional part: what the session API's stats read (counts only).
    pub const NONE: CollectParts = CollectParts {
        transactions: false,
        locks: false,
        states: false,
        limits: false,
        deadlocks: false,
        connections: false,
        waits: false,
        applications: false,
        statements: false,
    };

    /// Every optional part: the default.
    pub const ALL: CollectParts = CollectParts {
        transactions: true,
        locks: true,
        states: true,
        limits: true,
        deadlocks: true,
        connections: true,
        waits: true,
        applications: true,
        statements: true,
    };

    /// Whether any part of the periodic reads is on.
    pub fn periodic(&self) -> bool {
        self.limits || self.deadlocks || self.connections
    }
}

impl Default for CollectParts {
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

/// A session worth keeping in the session history: active, in an open transaction,
/// waiting for a lock, or blocking one. Kept only when the target records history
/// (see [`Aggregator::keep_sessions`]), at most a cap per tenant and cycle, blockers
/// and the longest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeptSession {
    pub id: u64,
    pub server: Word,
    pub user: Word,
    pub db: Word,
    pub client: Word,
    /// Label-ready, as the metrics' application (empty when not collected).
    pub application: Word,
    pub command: Word,
    pub state: Word,
    pub active: bool,
    /// Seconds in its current state (the processlist's TIME).
    pub time: f64,
    /// Age of its open transaction in seconds; None when it has none (or it is
    /// not known).
    pub transaction_age: Option<f64>,
    /// Seconds it has waited for a lock; None when it waits for none.
    pub lock_wait: Option<f64>,
    /// The session holding the lock it waits for, when the engine says.
    pub blocked_by: Option<u64>,
    /// Sessions waiting for a lock this one holds.
    pub waiters: u64,
    /// What it waits on (class and event), empty when not known.
    pub wait_class: Word,
    pub wait_event: Word,
    /// The statement's id (SQL_ID, query_id, digest) and text; empty when unknown.
    pub sql_id: Word,
    pub sql_text: Word,
}

/// How a target keeps sessions for its history: at most `max` per tenant and
/// cycle, their text shared through `words` from cycle to cycle.
#[derive(Debug, Clone)]
pub struct Keeping {
    pub max: usize,
    pub words: Words,
}

impl Keeping {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            words: Words::default(),
        }
    }
}

impl KeptSession {
    /// Blockers first (most waiters first), then the longest in their state; equal
    /// ones by id, so a cap keeps the same sessions from cycle to cycle.
    pub fn rank(a: &KeptSession, b: &KeptSession) -> std::cmp::Ordering {
        b.waiters
            .cmp(&a.waiters)
            .then(b.time.total_cmp(&a.time))
            .then(a.id.cmp(&b.id))
    }
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
    pub parts: CollectParts,
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
    /// The sessions worth keeping in the history, in [`KeptSession::rank`] order;
    /// empty unless the target records history.
    pub kept: Vec<KeptSession>,
    /// How many more the cap per tenant and cycle left out.
    pub kept_truncated: u64,
    /// The age (in transactions) of the oldest snapshot a session holds, the
    /// horizon vacuum cannot pass; None where none holds one or the engine does not
    /// say.
    pub horizon_age: Option<u64>,
    /// The sessions holding the oldest snapshots, oldest first (`top_sessions`).
    pub horizon_holders: Vec<HorizonHolder>,
    /// Sessions idle in a transaction that hold a snapshot; None where the engine
    /// does not say.
    pub idle_in_transaction_holding_horizon: Option<u64>,
    /// The longest any of them has been idle, in seconds (0 when none); None where
    /// the engine does not say.
    pub max_idle_holding_horizon: Option<f64>,
}

/// A session holding back the horizon: enough to find and end it.
#[derive(Debug, Clone, PartialEq)]
pub struct HorizonHolder {
    pub session_id: u64,
    pub user: String,
    pub db: String,
    pub client: String,
    pub application: String,
    /// The age of the snapshot it holds, in transactions.
    pub age: u64,
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
    /// The server's connection counters (since its start), where it keeps them:
    /// attempts or logons; refusals and ended sessions by reason; the peak of
    /// sessions at once.
    pub connections: Option<u64>,
    pub refused: BTreeMap<String, u64>,
    pub ended: BTreeMap<String, u64>,
    pub peak: Option<u64>,
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
#[derive(Debug)]
pub struct Collected {
    pub statistics: Statistics,
    /// Series of the kind's own families beside its tenants' statistics (see
    /// [`own`]): what a kind reports of itself beyond its sessions, such as a
    /// pooler's pools.
    pub beside: Option<Box<dyn KindStatistics>>,
    pub rows: usize,
}

/// The statistics of one cycle: per tenant, or shaped by the kind itself (a report
/// without tenants, see [`own`]).
#[derive(Debug)]
pub enum Statistics {
    Tenants(BTreeMap<String, TenantStats>),
    Own(Box<dyn KindStatistics>),
}

impl Collected {
    /// The statistics of a target that is its one tenant: zeros when it has no
    /// session (a count of none is still a count).
    pub fn into_one_tenant(self) -> TenantStats {
        self.into_tenants().into_values().next().unwrap_or_default()
    }

    /// The per-tenant statistics; empty for a kind without tenants.
    pub fn into_tenants(self) -> BTreeMap<String, TenantStats> {
        match self.statistics {
            Statistics::Tenants(tenants) => tenants,
            Statistics::Own(_) => BTreeMap::new(),
        }
    }
}

/// The host part of a processlist `HOST` value: `ip:port`, `[v6]:port`, `host:port`,
/// a bare host, or empty. A trailing `:digits` is the port; MySQL writes IPv6 clients
/// without brackets (`::1:51234`), so the last colon group is the port there too.
///
/// The sources do the same cut in SQL (`sql::host_without_port`) so the
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
mod tests;
