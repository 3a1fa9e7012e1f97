//! SQL text shared by the sources, and tolerant decoding of their answers.
//!
//! Two shapes of cycle: [`Statements`] (OceanBase, MySQL/MariaDB), one read of the
//! processlist (MySQL's a flat [`Grouping`] of the raw columns, OceanBase's every
//! session in a row of its own, see [`SESSION_COLUMNS`]) and small statements of
//! details whose cost follows what there is to detail; and [`Scan`] (PostgreSQL), one
//! statement that joins and ranks in the same read.
//!
//! Every query is sent over the text protocol (no prepared statements: nothing is
//! bound, and the binary protocol's strict integer/double typing broke on `SUM`'s
//! DECIMAL). Values are decoded here by one tolerant set of helpers, from any
//! driver's cells ([`Cell`]); sending the statements over a MySQL-protocol
//! connection is [`super::query`]'s.

use super::error::{Reason, SourceError};
use crate::config::Filter;
use crate::stats::{
    client_label, Aggregator, Blocker, Collected, Counts, Detail, OneSession, Parts, Seen,
    SessionGroup, TopSession, CPU, NONE_LABEL,
};
pub mod connections;
mod per_session;
mod periodic;
mod pileup;
mod scan;

pub use connections::Connections;
use per_session::{decode_particular, decode_session, group_key};
pub use per_session::{Particulars, Shape, PARTICULAR_COLUMNS, SESSION_COLUMNS};
pub use periodic::{
    mysql_limits, PeriodicReads, PeriodicRows, EVENT_MARGIN_MICROS, MAX_EVENTS, PERIODIC_COLUMNS,
};
pub use pileup::add_pileup_row;
pub use scan::Scan;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

/// Leading comment on every statement, so a DBA reading the processlist or a slow log
/// sees who sent it.
pub const TAG: &str = concat!("/* session_exporter ", env!("CARGO_PKG_VERSION"), " */");

/// Stands, in a statement's text, for the list of the exporter's own session ids on
/// the server (`ID NOT IN (…)`): [`with_own_sessions`](super::query::with_own_sessions) writes them in just before the
/// statement is sent, so no statement counts or lists the exporter's connections.
pub const OWN_SESSIONS: &str = "CONNECTION_ID() /* own sessions */";

/// SQL for "HOST without its `:port`", mirroring [`crate::stats::host_without_port`]
/// so the database can group by client address instead of by connection.
pub fn host_without_port(column: &str) -> String {
    format!(
        "IF({column} REGEXP ':[0-9]+$', \
         LEFT({column}, CHAR_LENGTH({column}) - CHAR_LENGTH(SUBSTRING_INDEX({column}, ':', -1)) - 1), \
         {column})"
    )
}

/// The columns every query returns, in this order: tenant, server, db, user, client,
/// command, state; active (how many of the group are active), sessions, time (the
/// longest active one's; NULL when none is active); transactions, idle in
/// transaction, oldest transaction's age, longest idle-in-transaction TIME; lock
/// waiters, longest wait; then for a session kept in a row of its own its id (NULL
/// for a group), SQL id and how many sessions wait on it (its TIME is the time
/// column when it is active); last the group's application, and its active
/// sessions' wait class, wait event and statement id (NULL: none, a NULL class
/// [`CPU`]). A source that has one
/// tenant or one server selects NULL for those and passes the value to
/// [`decode_row`] as a default. See [`Scan::statement`], which writes such a
/// statement: one per cycle, reading the processlist once.
///
/// Most rows are groups of idle sessions without a transaction: their zero counts and
/// the session columns come back as NULL, which the driver decodes without an
/// allocation (a cycle of a large cluster is tens of thousands of rows); NULL counts
/// are 0.
pub const COLUMNS: usize = 23;

/// Defaults and quirks for decoding one source's rows.
pub struct RowContext<'a> {
    pub tenant: &'a str,
    pub server: &'a str,
    /// OceanBase writes the *string* `NULL` in DB for sessions without a database.
    pub null_string_is_no_db: bool,
    /// How many top sessions and top blockers a tenant keeps.
    pub keep: usize,
    /// Which optional parts the statement reads.
    pub parts: Parts,
    /// What a group's key means ([`Grouping`]'s rows).
    pub rules: Rules,
    /// Whether only the tenants the rows list are kept (see
    /// [`Aggregator::listed_only`]): a cluster's statements read the processlist
    /// without a join to the tenants view.
    pub listed_only: bool,
}

/// What the key of a [`Grouping`] row means on one kind: which groups are active,
/// in a transaction, waiting for a lock. The database groups by the raw columns and
/// these decide per group, so no expression is evaluated per session.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Whether sessions of this COMMAND and STATE are active.
    pub active: fn(command: &str, state: &str) -> bool,
    /// Whether this value of the transaction column means an open transaction.
    pub in_transaction: fn(transaction: &str) -> bool,
    /// Whether sessions of this transaction and STATE wait for a lock, and for how
    /// long: [`LockWait::Statement`] waits as long as the statement has run.
    pub lock_wait: fn(transaction: &str, state: &str) -> LockWait,
    /// Whether groups without a client address are held back for
    /// [`Statements::fallback`], which reads their client another way.
    pub empty_client_read_again: bool,
}

/// How a group waits for a lock (see [`Rules::lock_wait`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    No,
    /// A row lock: the wait is the row's lock-wait column.
    Row,
    /// A lock the statement's TIME measures (MySQL's metadata and table locks).
    Statement,
}

impl Rules {
    /// For the kinds that read nothing through [`Grouping`] (PostgreSQL): no group
    /// is active, in a transaction or waiting.
    pub const NONE: Rules = Rules {
        active: |_, _| false,
        in_transaction: |_| false,
        lock_wait: |_, _| LockWait::No,
        empty_client_read_again: false,
    };
}

/// Decodes one row (see [`COLUMNS`]).
pub fn decode_row<C: Cell>(
    values: Vec<C>,
    ctx: &RowContext<'_>,
) -> Result<SessionGroup, SourceError> {
    let got = values.len();
    let [tenant, server, db, user, client, command, state, active, sessions, time, transactions, idle_in_transaction, transaction_age, idle_time, lock_waiting, lock_wait, id, sql_id, waiters, application, wait_class, wait_event, statement]: [C;
        COLUMNS] = values
        .try_into()
        .map_err(|_| bad_answer(format!("expected {COLUMNS} columns, got {got}")))?;
    let db = db_label(db, ctx);
    let label = |value: C| match value.into_text() {
        Some(text) if !text.is_empty() => text,
        _ => NONE_LABEL.to_string(),
    };
    let (command, state) = if ctx.parts.states {
        (label(command), label(state))
    } else {
        (String::new(), String::new())
    };
    let sessions = count(sessions, "sessions")?;
    let part = |value: C, column: &str| -> Result<u64, SourceError> {
        let n = count(value, column)?;
        if n > sessions {
            return Err(bad_answer(format!(
                "a group of {sessions} sessions has {n} {column}"
            )));
        }
        Ok(n)
    };
    let active = part(active, "active")?;
    let transactions = part(transactions, "in transaction")?;
    let idle_in_transaction = part(idle_in_transaction, "idle in transaction")?;
    let lock_waiting = part(lock_waiting, "waiting for a lock")?;
    let session = match id.is_null() {
        true => None,
        false => Some(OneSession {
            id: count(id, "id")?,
            sql_id: sql_id.into_text().unwrap_or_default(),
            waiters: count(waiters, "waiters")?,
        }),
    };
    let parts = ctx.parts;
    let application = match parts.applications {
        true => label(application),
        false => String::new(),
    };
    let (wait_class, wait_event) = match parts.waits && active > 0 {
        true => wait_labels(wait_class.into_text(), wait_event.into_text()),
        false => (String::new(), String::new()),
    };
    let statement = match parts.statements && active > 0 {
        true => statement.into_text().unwrap_or_default(),
        false => String::new(),
    };
    Ok(SessionGroup {
        tenant: tenant.into_text().unwrap_or_else(|| ctx.tenant.to_string()),
        server: server.into_text().unwrap_or_else(|| ctx.server.to_string()),
        db,
        user: user.into_text().unwrap_or_else(|| NONE_LABEL.to_string()),
        client: client_label(client.into_text().unwrap_or_default()),
        command,
        state,
        active,
        sessions,
        max_active_time: seconds(time, "time")?,
        transactions,
        idle_in_transaction,
        max_transaction_age: seconds(transaction_age, "transaction age")?,
        max_idle_in_transaction: seconds(idle_time, "idle time")?,
        lock_waiting,
        max_lock_wait: seconds(lock_wait, "lock wait")?,
        application,
        wait_class,
        wait_event,
        statement,
        session,
    })
}

/// The labels of an active session's wait: [`CPU`] for both when it waits for
/// nothing, [`NONE_LABEL`] for an event not named.
fn wait_labels(class: Option<String>, event: Option<String>) -> (String, String) {
    match class.filter(|class| !class.is_empty()) {
        None => (CPU.to_string(), CPU.to_string()),
        Some(class) => (
            class,
            event
                .filter(|event| !event.is_empty())
                .unwrap_or_else(|| NONE_LABEL.to_string()),
        ),
    }
}

/// A database name as a label: `__none__` for NULL, empty, and OceanBase's string
/// `NULL`.
fn db_label<C: Cell>(db: C, ctx: &RowContext<'_>) -> String {
    match db.into_text() {
        None => NONE_LABEL.to_string(),
        Some(db) if db.is_empty() || (ctx.null_string_is_no_db && db == "NULL") => {
            NONE_LABEL.to_string()
        }
        Some(db) => db,
    }
}

/// A client address (the port already cut by the statement) as a label.
fn client_of<C: Cell>(client: C) -> String {
    client_label(client.into_text().unwrap_or_default())
}

/// Decodes one row of [`Grouping::statement`] (see [`GROUP_COLUMNS`]).
/// The group's connection ids come back as they were sent (see [`Grouping::ids`]).
pub fn decode_group<C: Cell>(
    values: Vec<C>,
    ctx: &RowContext<'_>,
) -> Result<(SessionGroup, Option<String>), SourceError> {
    let got = values.len();
    let [tenant, server, db, user, client, command, state, transaction, sessions, time, transaction_age, lock_wait, session, application, ids]: [C;
        GROUP_COLUMNS] = values
        .try_into()
        .map_err(|_| bad_answer(format!("expected {GROUP_COLUMNS} columns, got {got}")))?;
    let label = |value: C| match value.into_text() {
        Some(text) if !text.is_empty() => text,
        _ => NONE_LABEL.to_string(),
    };
    let (command, state) = (label(command), label(state));
    let transaction = transaction.into_text();
    let rules = ctx.rules;
    let active = (rules.active)(&command, &state);
    let in_transaction = transaction
        .as_deref()
        .is_some_and(|t| (rules.in_transaction)(t));
    let waits = (rules.lock_wait)(transaction.as_deref().unwrap_or_default(), &state);
    let sessions = count(sessions, "sessions")?;
    let time = seconds(time, "time")?;
    let part = |yes: bool| if yes { sessions } else { 0 };
    let (command, state) = if ctx.parts.states {
        (command, state)
    } else {
        (String::new(), String::new())
    };
    let idle_in_transaction = in_transaction && !active;
    let lock_wait = seconds(lock_wait, "lock wait")?;
    let ids = ids.into_text();
    let group = SessionGroup {
        tenant: tenant.into_text().unwrap_or_else(|| ctx.tenant.to_string()),
        server: server.into_text().unwrap_or_else(|| ctx.server.to_string()),
        db: db_label(db, ctx),
        user: user.into_text().unwrap_or_else(|| NONE_LABEL.to_string()),
        client: client_of(client),
        command,
        state,
        active: part(active),
        sessions,
        max_active_time: if active { time } else { 0.0 },
        transactions: part(in_transaction),
        idle_in_transaction: part(idle_in_transaction),
        max_transaction_age: seconds(transaction_age, "transaction age")?,
        max_idle_in_transaction: if idle_in_transaction { time } else { 0.0 },
        lock_waiting: part(waits != LockWait::No),
        max_lock_wait: match waits {
            LockWait::Statement => lock_wait.max(time),
            _ => lock_wait,
        },
        // With connection ids, the sessions' programs are counted from them.
        application: match ctx.parts.applications && ids.is_none() {
            true => label(application),
            false => String::new(),
        },
        wait_class: String::new(),
        wait_event: String::new(),
        statement: String::new(),
        session: match session.is_null() {
            true => None,
            false => Some(OneSession {
                id: count(session, "session id")?,
                ..OneSession::default()
            }),
        },
    };
    Ok((group, ids))
}

/// Decodes one row of a statement of details (see [`DETAIL_COLUMNS`]): a tenant's
/// longest times, transactions and lock waits, and the session the row names when
/// it is one of the longest active ones or others wait on it.
fn decode_detail<C: Cell>(values: Vec<C>, ctx: &RowContext<'_>) -> Result<DetailRow, SourceError> {
    let got = values.len();
    let [tenant, id, user, db, client, sql_id, active_time, idle_time, transaction_age, waiting, lock_wait, waiters, active]: [C;
        DETAIL_COLUMNS] = values
        .try_into()
        .map_err(|_| bad_answer(format!("expected {DETAIL_COLUMNS} columns, got {got}")))?;
    let tenant = tenant.into_text().unwrap_or_else(|| ctx.tenant.to_string());
    let detail = Detail {
        max_active_time: seconds(active_time, "active time")?,
        max_idle_in_transaction: seconds(idle_time, "idle time")?,
        max_transaction_age: seconds(transaction_age, "transaction age")?,
        lock_waiting: count(waiting, "waiting for a lock")?,
        max_lock_wait: seconds(lock_wait, "lock wait")?,
    };
    let waiters = count(waiters, "waiters")?;
    let active = count(active, "active")? > 0;
    let mut row = DetailRow {
        tenant,
        detail,
        top: None,
        blocker: None,
    };
    if id.is_null() || !(active || waiters > 0) {
        return Ok(row);
    }
    let session_id = count(id, "id")?;
    let user = user.into_text().unwrap_or_else(|| NONE_LABEL.to_string());
    let db = db_label(db, ctx);
    let client = client_of(client);
    if active {
        row.top = Some(TopSession {
            tenant: row.tenant.clone(),
            session_id,
            user: user.clone(),
            db: db.clone(),
            client: client.clone(),
            sql_id: sql_id.into_text().unwrap_or_default(),
            time: row.detail.max_active_time,
        });
    }
    if waiters > 0 {
        row.blocker = Some(Blocker {
            session_id,
            user,
            db,
            client,
            waiters,
        });
    }
    Ok(row)
}

/// Adds `n` sessions of one session's `counts` to `to`.
fn add_counts(to: &mut Counts, one: Counts, n: u64) {
    to.sessions += one.sessions * n;
    to.active += one.active * n;
    to.idle_in_transaction += one.idle_in_transaction * n;
}

/// Decodes one row of a statement of activity (see [`ACTIVITY_COLUMNS`]) into
/// `found`.
fn decode_activity<C: Cell>(values: Vec<C>, found: &mut Activity) -> Result<(), SourceError> {
    let got = values.len();
    let [kind, a, b, text]: [C; ACTIVITY_COLUMNS] = values
        .try_into()
        .map_err(|_| bad_answer(format!("expected {ACTIVITY_COLUMNS} columns, got {got}")))?;
    match count(kind, "kind")? {
        0 => {
            let session = count(a, "PROCESSLIST_ID")?;
            found.threads.insert(session, count(b, "THREAD_ID")?);
        }
        1 => {
            let (thread, event) = (count(a, "THREAD_ID")?, count(b, "EVENT_ID")?);
            let name = text.into_text().unwrap_or_default();
            match found.waits.get_mut(&thread) {
                // The innermost of a thread's current waits is the latest.
                Some((known, _)) if *known >= event => {}
                _ => {
                    found.waits.insert(thread, (event, name));
                }
            }
        }
        2 => {
            let thread = count(a, "THREAD_ID")?;
            if let Some(digest) = text.into_text().filter(|d| !d.is_empty()) {
                found.digests.insert(thread, digest);
            }
        }
        other => return Err(bad_answer(format!("an activity row of kind {other}"))),
    }
    Ok(())
}

/// What a statement of activity read: the active threads' thread ids, and every
/// thread's innermost current wait and current statement's digest.
#[derive(Debug, Default)]
struct Activity {
    threads: HashMap<u64, u64, foldhash::fast::RandomState>,
    waits: HashMap<u64, (u64, String), foldhash::fast::RandomState>,
    digests: HashMap<u64, String, foldhash::fast::RandomState>,
}

/// A row of a statement of details, decoded.
struct DetailRow {
    tenant: String,
    detail: Detail,
    top: Option<TopSession>,
    blocker: Option<Blocker>,
}

/// The statement of every cycle on MySQL/MariaDB, and of OceanBase's session API
/// stats and its sessions without a client address: one flat GROUP BY over the
/// processlist read once, by the raw columns that decide what a session is (its
/// tenant, server, database, user, client, command, state and transaction state),
/// with nothing but `COUNT(*)` and `MAX(TIME)` per group. What a group is (active, in
/// a transaction, waiting) is decided per group by the kind's [`Rules`], not per
/// session by the database. Where a kind keeps sessions apart (MySQL's active
/// threads, see [`Grouping::session`]) the longest sessions come from these rows
/// too; MySQL's blockers are read by a small statement of their own, only when these
/// rows show a thread waiting.
#[derive(Debug, Clone)]
pub struct Grouping {
    /// What comes before the statement's SELECT (the tag, MariaDB's bound).
    pub prefix: String,
    /// Optimizer hints written right after SELECT (MySQL's bound).
    pub hint: String,
    /// The processlist `p`.
    pub relation: String,
    /// Joins the grouping needs beside `p` (MySQL's `INNODB_TRX`); not read by the
    /// statement of top sessions.
    pub joins: String,
    /// Conditions on `p` every counted session meets.
    pub filter: String,
    /// Expressions of a row's tenant and server; `NULL` where the target has one.
    pub tenant: String,
    pub server: String,
    /// The client address without its port.
    pub client: String,
    /// `p.COMMAND` and `p.STATE`, or `NULL` where neither the rules nor the states
    /// need them.
    pub command: String,
    pub state: String,
    /// The column telling a session's transaction; `NULL` when not read.
    pub transaction: String,
    /// Per session, its TIME, its transaction's age and its row-lock wait in seconds
    /// (aggregated with MAX); `NULL` where the rows do not carry them (a kind's
    /// statement of details reads them for the few sessions concerned).
    pub time: String,
    pub transaction_age: String,
    pub lock_wait: String,
    /// The key that keeps a session in a group of its own, NULL for the others:
    /// MySQL's active threads, whose group is then a top session with its TIME (see
    /// [`SessionGroup::session`]); `NULL` where no session is kept apart.
    pub session: String,
    /// The program that opened the session; `NULL` when not collected.
    pub application: String,
    /// The group's connection ids (`GROUP_CONCAT(p.ID)`), whose programs the
    /// exporter knows (see [`connections`]); `NULL` when not read.
    pub ids: String,
    /// Rows added after the grouped ones (the cluster's zero row per tenant).
    pub union: String,
}

/// The columns of [`Grouping::statement`]: tenant, server, db, user, client,
/// command, state, transaction; sessions, longest TIME (NULL when not read), oldest
/// transaction's age, longest row-lock wait; the session kept apart (NULL for none);
/// the application (NULL for none); the group's connection ids (NULL when not read).
pub const GROUP_COLUMNS: usize = 15;

/// The columns of a statement of details: tenant, session id (NULL for what is not
/// one session), user, db, client, SQL id; longest active TIME, longest TIME idle in
/// a transaction, oldest transaction's age, sessions waiting for a lock, longest
/// wait, sessions waiting on this one, and whether the session is active (one of the
/// longest active ones).
pub const DETAIL_COLUMNS: usize = 13;

impl Grouping {
    /// The statement of every cycle (see [`GROUP_COLUMNS`]).
    pub fn statement(&self) -> String {
        let Grouping {
            prefix,
            hint,
            relation,
            joins,
            filter,
            tenant,
            server,
            client,
            command,
            state,
            transaction,
            time,
            transaction_age,
            lock_wait,
            session,
            application,
            ids,
            union,
        } = self;
        let keys: Vec<&str> = [
            tenant.as_str(),
            server,
            "p.DB",
            "p.USER",
            client,
            command,
            state,
            transaction,
            session,
            application,
        ]
        .into_iter()
        .filter(|key| *key != "NULL")
        .collect();
        format!(
            "{prefix}SELECT {hint}{tenant}, {server}, p.DB, p.USER, {client}, {command}, {state}, \
             {transaction}, COUNT(*), MAX({time}), MAX({transaction_age}), MAX({lock_wait}), \
             {session}, {application}, {ids} FROM {relation}{joins} WHERE {filter} GROUP BY {}{union}",
            keys.join(", ")
        )
    }
}

/// The statements of one cycle: the grouping (or OceanBase's read of the sessions),
/// and the small ones that read details only when there are some.
#[derive(Debug, Clone)]
pub struct Statements {
    /// [`Grouping::statement`], or OceanBase's read of the sessions, grouped
    /// ([`SESSION_COLUMNS`]) when `ungrouped` is set.
    pub groups: String,
    /// Whether `groups` (and `ungrouped`) read OceanBase's sessions
    /// ([`SESSION_COLUMNS`]) rather than a [`Grouping`].
    pub session_read: bool,
    /// The same read one row per session, sent instead of `groups` while the sessions
    /// make nearly as many groups as there are sessions (see [`Shape`]).
    pub ungrouped: Option<String>,
    /// Read before `groups`: rows that OceanBase's sessions are matched with
    /// ([`PARTICULAR_COLUMNS`]); their cost is in proportion to what there is to
    /// detail (open transactions, lock waits), nothing when there is none.
    pub particulars: Option<String>,
    /// The grouping of the sessions without a client address, which reads it
    /// another way (their rows are held back from the grouping's, see
    /// [`Rules::empty_client_read_again`]); read only when there are such sessions.
    pub fallback: Option<String>,
    /// The kind's statement of blockers ([`DETAIL_COLUMNS`]), read only when a
    /// grouped row shows a session waiting for a lock.
    pub details: Option<String>,
    /// What the active sessions wait on and run ([`ACTIVITY_COLUMNS`]), read only when
    /// the grouped rows show an active session (each kept apart, so its id is known).
    pub activity: Option<String>,
    /// The same without the active threads' ids, sent instead when every active
    /// session's thread is known already ([`Connections::thread`]).
    pub activity_known: Option<String>,
    /// What comes before a statement of programs ([`Connections::statement`]), for a
    /// kind whose grouping sends connection ids ([`Grouping::ids`]); read only for
    /// connections not seen before.
    pub programs: Option<String>,
}

/// The columns of a statement of activity: kind (0 an active thread, 1 a current
/// wait, 2 a current statement), then by kind a session's `PROCESSLIST_ID` and
/// `THREAD_ID`; a thread's id, the wait's `EVENT_ID` and `EVENT_NAME`; a thread's id,
/// NULL and its statement's digest. Three flat reads of performance_schema, joined
/// here: MariaDB's performance_schema tables have no index, and a join of them costs
/// the server several times the three scans.
///
/// Only the sessions the grouping saw active are counted: one the statement does not
/// find (it ended between the two reads), or finds waiting for nothing, is on
/// [`CPU`], so the waits add up to the active sessions exactly.
pub const ACTIVITY_COLUMNS: usize = 4;

/// The wait class of a MySQL instrument name: its first three parts
/// (`wait/io/table` of `wait/io/table/sql/handler`, `wait/synch/mutex`, `idle`).
pub fn instrument_class(event: &str) -> &str {
    match event.match_indices('/').nth(2) {
        Some((at, _)) => &event[..at],
        None => event,
    }
}

impl Statements {
    /// Says at debug level what a cycle may send, for a DBA reading the log.
    pub fn log(&self, target: &str) {
        if let Some(particulars) = &self.particulars {
            tracing::debug!(target = %target, sql = %particulars, "statement of particulars");
        }
        tracing::debug!(target = %target, sql = %self.groups, "statement of every cycle");
        if let Some(ungrouped) = &self.ungrouped {
            tracing::debug!(target = %target, sql = %ungrouped, "statement of every cycle, one row per session");
        }
        if let Some(fallback) = &self.fallback {
            tracing::debug!(target = %target, sql = %fallback, "statement of clients without an address");
        }
        if let Some(details) = &self.details {
            tracing::debug!(target = %target, sql = %details, "statement of details");
        }
        if let Some(activity) = &self.activity {
            tracing::debug!(target = %target, sql = %activity, "statement of activity");
        }
    }
}

/// Which statement of a cycle a row comes from, and so how it is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// [`Scan::statement`]'s rows ([`COLUMNS`]), PostgreSQL's one statement.
    Sessions,
    /// [`Grouping::statement`]'s rows ([`GROUP_COLUMNS`]).
    Groups,
    /// [`Statements::fallback`]'s rows, the same columns.
    Fallback,
    /// A kind's statement of details ([`DETAIL_COLUMNS`]).
    Details,
    /// OceanBase's read of every session ([`SESSION_COLUMNS`]).
    PerSession,
    /// What a per-session read's sessions are matched with ([`PARTICULAR_COLUMNS`]).
    Particulars,
    /// [`Statements::activity`]'s rows ([`ACTIVITY_COLUMNS`]).
    Activity,
    /// A statement of programs' rows ([`connections::PROGRAM_COLUMNS`]).
    Programs,
}

/// Decodes rows and adds them up, one at a time; the first bad row stops the
/// decoding, and is the answer's error. Fed by [`read`](super::query::read) as rows arrive, and by the
/// sources' unit tests with fixed rows.
pub struct Rows<'a> {
    ctx: &'a RowContext<'a>,
    aggregator: Aggregator,
    failure: Option<SourceError>,
    /// Whether a group was held back for [`Statements::fallback`].
    held: bool,
    particulars: Particulars,
    /// Sessions the read of the sessions added, and how many groups they make: the
    /// distinct keys of those without particulars (each with particulars is a group
    /// of its own), or the rows of a grouped read (see [`Shape`]).
    sessions: u64,
    keys: HashSet<u64, foldhash::fast::RandomState>,
    apart: u64,
    /// The active sessions a grouping kept apart, whose activity is to be counted
    /// (see [`ACTIVITY_COLUMNS`]); filled only when a part needs them.
    active: Vec<u64>,
    activity: Activity,
    /// The programs known of the server's connections, and the groups whose
    /// sessions are to be counted by them: tenant, connection ids, counts of one
    /// session of the group (see [`connections`]).
    connections: Option<&'a mut Connections>,
    by_connection: Vec<(String, Vec<u64>, u64, Counts)>,
}

impl<'a> Rows<'a> {
    /// `tenants` are present even without rows.
    pub fn new(ctx: &'a RowContext<'a>, tenants: &[&str]) -> Self {
        let mut aggregator = Aggregator::new(ctx.keep, ctx.parts);
        if ctx.listed_only {
            aggregator = aggregator.listed_only();
        }
        for tenant in tenants {
            aggregator.add_tenant(tenant);
        }
        Self {
            ctx,
            aggregator,
            failure: None,
            held: false,
            particulars: Particulars::default(),
            sessions: 0,
            keys: HashSet::default(),
            apart: 0,
            active: Vec::new(),
            activity: Activity::default(),
            connections: None,
            by_connection: Vec::new(),
        }
    }

    /// Counts the applications of groups that send their connection ids by the
    /// programs in `connections`, which learns the connections it did not know.
    pub fn with_connections(mut self, connections: &'a mut Connections) -> Self {
        self.connections = Some(connections);
        self
    }

    /// The connections of the groups so far whose program is not known yet.
    pub fn unknown_programs(&self) -> Vec<u64> {
        match (&self.connections, self.failed()) {
            (Some(programs), false) => {
                programs.unknown(self.by_connection.iter().flat_map(|(_, ids, _, _)| ids))
            }
            _ => Vec::new(),
        }
    }

    /// After a statement of programs for `asked`: those it did not name named none.
    pub fn settle_programs(&mut self, asked: &[u64]) {
        if let Some(programs) = self.connections.as_deref_mut() {
            programs.settle(asked);
        }
    }

    /// Adds a row of [`Scan::statement`].
    pub fn add<C: Cell>(&mut self, values: Vec<C>) {
        self.add_as(values, Pass::Sessions);
    }

    /// Adds a row of the statement `pass` names.
    pub fn add_as<C: Cell>(&mut self, values: Vec<C>, pass: Pass) {
        if self.failure.is_some() {
            return;
        }
        let ctx = self.ctx;
        let added = match pass {
            Pass::Sessions => decode_row(values, ctx).map(|g| self.aggregator.add_group(g)),
            Pass::Groups => decode_group(values, ctx).and_then(|(g, ids)| {
                if ctx.rules.empty_client_read_again && g.sessions > 0 && g.client == NONE_LABEL {
                    self.held = true;
                } else {
                    if let Some(ids) = ids.filter(|_| ctx.parts.applications && g.sessions > 0) {
                        let one = Counts {
                            sessions: 1,
                            active: u64::from(g.active > 0),
                            idle_in_transaction: u64::from(g.idle_in_transaction > 0),
                        };
                        let ids = connections::ids_of(&ids)?;
                        self.by_connection
                            .push((g.tenant.clone(), ids, g.sessions, one));
                    }
                    if let Some(session) = g.session.as_ref().filter(|_| g.active > 0) {
                        if ctx.parts.waits || ctx.parts.statements {
                            self.active.push(session.id);
                        }
                    }
                    self.aggregator.add_group(g);
                }
                Ok(())
            }),
            Pass::Activity => decode_activity(values, &mut self.activity),
            Pass::Programs => match self.connections.as_deref_mut() {
                Some(programs) => programs.learn(values),
                None => Ok(()),
            },
            Pass::Fallback => decode_group(values, ctx).map(|(g, _)| self.aggregator.add_group(g)),
            Pass::Details => decode_detail(values, ctx).map(|row| {
                if let Some(top) = row.top {
                    self.aggregator.add_top_apart(top);
                }
                if let Some(blocker) = row.blocker {
                    self.aggregator.add_blocker(row.tenant.clone(), blocker);
                }
                self.aggregator.add_detail(row.tenant, row.detail);
            }),
            Pass::PerSession => {
                let (aggregator, held) = (&mut self.aggregator, &mut self.held);
                let (sessions, keys, detailed) =
                    (&mut self.sessions, &mut self.keys, &mut self.apart);
                decode_session(values, ctx, &self.particulars, |g, apart| {
                    // A session with particulars has its client already (see
                    // [`decode_session`]); the fallback reads only the others again.
                    if ctx.rules.empty_client_read_again && !apart && g.client == NONE_LABEL {
                        *held = true;
                        return;
                    }
                    if g.sessions > 0 {
                        *sessions += g.sessions;
                        match apart {
                            true => *detailed += 1,
                            false => {
                                keys.insert(keys.hasher().hash_one(group_key(&g)));
                            }
                        }
                    }
                    aggregator.add_group(g);
                })
            }
            Pass::Particulars => {
                decode_particular(values, &mut self.particulars, &mut self.aggregator)
            }
        };
        if let Err(err) = added {
            self.failure = Some(err);
        }
    }

    /// Whether a group was held back for [`Statements::fallback`] (clients without
    /// an address, to be read again).
    pub fn held(&self) -> bool {
        self.held
    }

    /// Counts one active session's wait (an instrument name; None: it waits for
    /// nothing) and statement.
    fn add_activity(&mut self, event: Option<&str>, statement: Option<String>) {
        let (class, event) = match event.filter(|e| !e.is_empty()) {
            Some(event) => (instrument_class(event), event),
            None => (CPU, CPU),
        };
        let statement = statement.as_deref().unwrap_or_default();
        self.aggregator
            .add_activity(self.ctx.tenant, (class, event), statement);
    }

    /// Counts the sessions of the groups that sent their connection ids by each
    /// connection's program ([`NONE_LABEL`] for none, and for connections a
    /// truncated id list left out), and forgets the connections that have ended.
    fn count_programs(&mut self) {
        let failed = self.failed();
        let Some(programs) = self.connections.as_deref_mut() else {
            return;
        };
        // The active ones too: without ids (applications off) they are all it knows.
        let mut current: HashSet<u64> = self.active.iter().copied().collect();
        let mut counted: HashMap<(String, String), Counts> = HashMap::new();
        for (tenant, ids, sessions, one) in std::mem::take(&mut self.by_connection) {
            let listed = ids.len() as u64;
            for id in ids {
                current.insert(id);
                let program = programs.of(id).unwrap_or(NONE_LABEL);
                let entry = counted
                    .entry((tenant.clone(), program.to_string()))
                    .or_default();
                add_counts(entry, one, 1);
            }
            if sessions > listed {
                let entry = counted.entry((tenant, NONE_LABEL.to_string())).or_default();
                add_counts(entry, one, sessions - listed);
            }
        }
        if !failed {
            programs.keep_only(&current);
        }
        for ((tenant, program), counts) in counted {
            self.aggregator.add_application(&tenant, &program, counts);
        }
    }

    /// Whether the grouping saw an active session whose activity is to be read.
    pub fn wants_activity(&self) -> bool {
        !self.active.is_empty() && !self.failed()
    }

    /// Whether an active session's performance_schema thread is not known yet.
    pub fn needs_threads(&self) -> bool {
        match self.connections.as_deref() {
            Some(connections) => self
                .active
                .iter()
                .any(|id| connections.thread(*id).is_none()),
            None => true,
        }
    }

    /// The read of the sessions to send next cycle, from what this one added (see
    /// [`Shape`]).
    pub fn next_shape(&self, shape: Shape) -> Shape {
        shape.next(self.sessions, self.groups())
    }

    /// Whether a row was bad: the cycle's answer is then that error.
    pub fn failed(&self) -> bool {
        self.failure.is_some()
    }

    /// How many groups the sessions added so far make (see [`Rows::sessions`]).
    fn groups(&self) -> u64 {
        self.keys.len() as u64 + self.apart
    }

    /// What the rows so far showed (see [`Aggregator::seen`]).
    pub fn seen(&self) -> Seen {
        self.aggregator.seen()
    }

    pub fn finish(mut self) -> Result<Collected, SourceError> {
        // Each active session's wait and statement, through its thread (read now, or
        // known from an earlier cycle); one the statement of activity did not find
        // has ended its statement since the grouping: it was running it, on CPU.
        let activity = std::mem::take(&mut self.activity);
        let active = std::mem::take(&mut self.active);
        for id in &active {
            let known = self.connections.as_deref().and_then(|c| c.thread(*id));
            let thread = activity.threads.get(id).copied().or(known);
            let wait = thread
                .and_then(|t| activity.waits.get(&t))
                .map(|(_, name)| name.as_str());
            let digest = thread.and_then(|t| activity.digests.get(&t)).cloned();
            self.add_activity(wait, digest);
        }
        if let Some(connections) = self.connections.as_deref_mut() {
            for (id, thread) in &activity.threads {
                connections.learn_thread(*id, *thread);
            }
        }
        self.active = active;
        self.count_programs();
        match self.failure {
            Some(err) => Err(err),
            None => Ok(self.aggregator.finish()),
        }
    }
}

/// ` AND …` conditions that apply `filter` to processlist columns named with
/// `prefix` (`"p."` or `""`). Names are quoted as string literals; config validation
/// refused backslashes and control characters, so doubling quotes is enough in every
/// SQL mode.
pub fn filter_conditions(filter: &Filter, prefix: &str) -> String {
    let mut sql = String::new();
    if let Some(min) = filter.min_time {
        sql.push_str(&format!(" AND {prefix}TIME >= {}", min.as_secs_f64()));
    }
    for (column, list) in [("USER", &filter.users), ("DB", &filter.databases)] {
        if let Some(allow) = &list.allow {
            sql.push_str(&format!(" AND {prefix}{column} IN ({})", quote_list(allow)));
        }
        if !list.deny.is_empty() {
            // NULL (no database) is not a denied name: keep it explicitly.
            sql.push_str(&format!(
                " AND ({prefix}{column} IS NULL OR {prefix}{column} NOT IN ({}))",
                quote_list(&list.deny)
            ));
        }
    }
    sql
}

/// A LIKE pattern for "contains `text`", with `!` as the escape character (the same
/// in every SQL mode, unlike a backslash): `%`, `_` and `!` match themselves.
pub fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '!') {
            pattern.push('!');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

fn quote_list(names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("'{}'", name.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn bad_answer(detail: String) -> SourceError {
    SourceError::new(
        Reason::Query,
        format!("unexpected answer from the server: {detail}"),
    )
}

/// One value of a row as a driver hands it over: MySQL's [`Value`](mysql_async::Value), or the text of
/// PostgreSQL's simple query protocol (`None` for NULL). Both are decoded by the same
/// rules, so every kind's answer means the same.
pub trait Cell {
    fn is_null(&self) -> bool;
    /// The value as text; NULL is None. Bytes that are not UTF-8 are replaced, not
    /// rejected: a user name with a stray byte must not make the whole target go dark.
    fn into_text(self) -> Option<String>;
    /// A number from any representation the servers use: integer, double, or a
    /// decimal string (`SUM` is DECIMAL on seekdb and MariaDB). NULL is None.
    fn into_number(self, column: &str) -> Result<Option<f64>, SourceError>;
}

impl Cell for Option<&str> {
    fn is_null(&self) -> bool {
        self.is_none()
    }

    fn into_text(self) -> Option<String> {
        self.map(str::to_string)
    }

    fn into_number(self, column: &str) -> Result<Option<f64>, SourceError> {
        self.map(|text| parse_number(text.as_bytes(), column))
            .transpose()
    }
}

/// A number written as text.
pub(super) fn parse_number(bytes: &[u8], column: &str) -> Result<f64, SourceError> {
    // Counts, most of a large answer, are plain digits: summed without the float
    // parser (exact below 2^53, hence at most 15 digits).
    if (1..=15).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_digit) {
        return Ok(bytes.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')) as f64);
    }
    let text = String::from_utf8_lossy(bytes);
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .ok_or_else(|| bad_answer(format!("column {column} is `{text}`, not a number")))
}

/// A session count: a non-negative whole number; NULL counts as 0.
fn count(value: impl Cell, column: &str) -> Result<u64, SourceError> {
    match value.into_number(column)? {
        None => Ok(0),
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= u64::MAX as f64 => Ok(n as u64),
        Some(n) => Err(bad_answer(format!("column {column} is {n}, not a count"))),
    }
}

/// A duration in seconds; NULL (no sessions) and negative values (clock skew) are 0.
fn seconds(value: impl Cell, column: &str) -> Result<f64, SourceError> {
    Ok(value.into_number(column)?.unwrap_or(0.0).max(0.0))
}

/// Rows as a test writes them, for the sources' "fixed rows in, exact statistics
/// out" tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::stats::Counts;
    use mysql_async::Value;
    use std::collections::BTreeMap;

    /// A text-protocol row written as its values between `|`, in the order of the
    /// statement's columns the test feeds it, `∅` for NULL: for the short rows of
    /// four or five columns (OceanBase's particulars). Wider rows are written by
    /// name, with [`scan`], [`group`] and [`detail`].
    pub fn row(text: &str) -> Vec<Value> {
        text.split('|')
            .map(|v| match v {
                "∅" => Value::NULL,
                v => Value::Bytes(v.as_bytes().to_vec()),
            })
            .collect()
    }

    /// The columns of [`super::decode_row`] (PostgreSQL's `Scan`), in order.
    const SCAN: [&str; super::COLUMNS] = [
        "tenant",
        "server",
        "db",
        "user",
        "client",
        "command",
        "state",
        "active",
        "sessions",
        "time",
        "transactions",
        "idle_in_transaction",
        "transaction_age",
        "idle_time",
        "lock_waiting",
        "lock_wait",
        "id",
        "sql_id",
        "waiters",
        "application",
        "wait_class",
        "wait_event",
        "statement",
    ];

    /// The columns of [`super::decode_group`] (MySQL's grouped read), in order.
    const GROUP: [&str; super::GROUP_COLUMNS] = [
        "tenant",
        "server",
        "db",
        "user",
        "client",
        "command",
        "state",
        "transaction",
        "sessions",
        "time",
        "transaction_age",
        "lock_wait",
        "session",
        "application",
        "ids",
    ];

    /// The columns of MySQL's statement of details, in order.
    const DETAIL: [&str; super::DETAIL_COLUMNS] = [
        "tenant",
        "id",
        "user",
        "db",
        "client",
        "sql_id",
        "active_time",
        "idle_time",
        "transaction_age",
        "waiting",
        "lock_wait",
        "waiters",
        "active",
    ];

    /// A row of [`super::decode_row`] from its named values; every column not named
    /// is NULL, and a later value of a column replaces an earlier one.
    pub fn scan(values: &[(&str, &str)]) -> Vec<Value> {
        named(&SCAN, values)
    }

    /// A row of [`super::decode_group`] from its named values, as [`scan`].
    pub fn group(values: &[(&str, &str)]) -> Vec<Value> {
        named(&GROUP, values)
    }

    /// A row of the statement of details from its named values, as [`scan`].
    pub fn detail(values: &[(&str, &str)]) -> Vec<Value> {
        named(&DETAIL, values)
    }

    fn named(columns: &[&str], values: &[(&str, &str)]) -> Vec<Value> {
        let mut row = vec![Value::NULL; columns.len()];
        for (name, value) in values {
            let at = columns
                .iter()
                .position(|column| column == name)
                .unwrap_or_else(|| panic!("no column `{name}` among {columns:?}"));
            row[at] = Value::Bytes(value.as_bytes().to_vec());
        }
        row
    }

    /// A dimension as (value, (sessions, active)) pairs, in label order.
    pub fn pairs(values: &BTreeMap<String, Counts>) -> Vec<(&str, (u64, u64))> {
        values
            .iter()
            .map(|(k, v)| (k.as_str(), (v.sessions, v.active)))
            .collect()
    }

    /// A dimension's values with sessions idle in a transaction, and how many.
    pub fn idle(values: &BTreeMap<String, Counts>) -> Vec<(&str, u64)> {
        values
            .iter()
            .filter(|(_, v)| v.idle_in_transaction > 0)
            .map(|(k, v)| (k.as_str(), v.idle_in_transaction))
            .collect()
    }

    pub fn counts(sessions: u64, active: u64) -> (u64, u64) {
        (sessions, active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NameList;
    use mysql_async::Value;
    use per_session::datetime_micros;
    use std::time::Duration;

    fn bytes(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    /// A group row: the eight given values (tenant … client, then active, sessions,
    /// time), no command or state, no transaction, lock or session columns.
    fn group_row(values: [Value; 8]) -> Vec<Value> {
        let [tenant, server, db, user, client, active, sessions, time] = values;
        let mut row = vec![tenant, server, db, user, client, Value::NULL, Value::NULL];
        row.extend([active, sessions, time]);
        row.extend([bytes("0"), bytes("0"), Value::NULL, Value::NULL, bytes("0")]);
        row.extend([Value::NULL, Value::NULL, Value::NULL, bytes("0")]);
        row.extend([Value::NULL, Value::NULL, Value::NULL, Value::NULL]);
        row
    }

    fn group(values: [Value; 8], ctx: &RowContext<'_>) -> Result<SessionGroup, SourceError> {
        decode_row(group_row(values), ctx)
    }

    const OB: RowContext<'static> = RowContext {
        tenant: "fallback-tenant",
        server: "10.0.0.9",
        null_string_is_no_db: true,
        keep: 5,
        parts: Parts::ALL,
        rules: Rules::NONE,
        listed_only: false,
    };

    #[test]
    fn decodes_text_protocol_rows() {
        let decoded = decode_row(
            fixtures::scan(&[
                ("tenant", "t1"),
                ("server", "10.0.0.1"),
                ("db", "app"),
                ("user", "root"),
                ("client", "10.0.0.100"),
                ("command", "Sleep"),
                ("state", "SLEEP"),
                ("active", "1"),
                ("sessions", "3"),
                ("time", "12.005242"),
                ("transactions", "2"),
                ("idle_in_transaction", "1"),
                ("transaction_age", "40.5"),
                ("idle_time", "33.25"),
                ("lock_waiting", "1"),
                ("lock_wait", "7.5"),
                ("waiters", "0"),
            ]),
            &OB,
        )
        .unwrap();
        assert_eq!(
            decoded,
            SessionGroup {
                tenant: "t1".into(),
                server: "10.0.0.1".into(),
                db: "app".into(),
                user: "root".into(),
                client: "10.0.0.100".into(),
                command: "Sleep".into(),
                state: "SLEEP".into(),
                active: 1,
                sessions: 3,
                max_active_time: 12.005242,
                transactions: 2,
                idle_in_transaction: 1,
                max_transaction_age: 40.5,
                max_idle_in_transaction: 33.25,
                lock_waiting: 1,
                max_lock_wait: 7.5,
                application: NONE_LABEL.into(),
                wait_class: CPU.into(),
                wait_event: CPU.into(),
                statement: String::new(),
                session: None,
            }
        );
    }

    /// A session kept apart: its id, SQL id, TIME and waiters; an empty state is
    /// `__none__`; with states off, command and state are empty whatever was sent.
    #[test]
    fn decodes_rows_of_one_session() {
        let one = || {
            fixtures::scan(&[
                ("db", "NULL"),
                ("user", "app"),
                ("client", "10.0.0.7"),
                ("command", "Query"),
                ("state", ""),
                ("active", "1"),
                ("sessions", "1"),
                ("time", "33.5"),
                ("transactions", "0"),
                ("idle_in_transaction", "0"),
                ("lock_waiting", "0"),
                ("id", "3221588508"),
                ("sql_id", "C82D74"),
                ("waiters", "4"),
            ])
        };
        let decoded = decode_row(one(), &OB).unwrap();
        assert_eq!(
            (
                decoded.tenant.as_str(),
                decoded.db.as_str(),
                decoded.state.as_str()
            ),
            ("fallback-tenant", NONE_LABEL, NONE_LABEL)
        );
        assert_eq!(
            decoded.session,
            Some(OneSession {
                id: 3_221_588_508,
                sql_id: "C82D74".into(),
                waiters: 4,
            })
        );
        let ctx = RowContext {
            parts: Parts {
                states: false,
                ..OB.parts
            },
            ..OB
        };
        let decoded = decode_row(one(), &ctx).unwrap();
        assert_eq!((decoded.command.as_str(), decoded.state.as_str()), ("", ""));
    }

    #[test]
    fn nulls_quirks_and_binary_types_are_tolerated() {
        let g = group(
            [
                Value::NULL,
                Value::NULL,
                bytes("NULL"),
                Value::NULL,
                bytes("[::1]"),
                Value::NULL,
                Value::Int(0),
                Value::Double(-2.0),
            ],
            &OB,
        )
        .unwrap();
        assert_eq!(g.tenant, "fallback-tenant");
        assert_eq!(g.server, "10.0.0.9");
        assert_eq!(g.db, NONE_LABEL);
        assert_eq!(g.user, NONE_LABEL);
        assert_eq!(g.client, "::1");
        assert_eq!(
            (g.command.as_str(), g.state.as_str()),
            (NONE_LABEL, NONE_LABEL)
        );
        assert_eq!(g.active, 0);
        assert_eq!(g.sessions, 0);
        assert_eq!(g.max_active_time, 0.0);

        // A DECIMAL count, a UInt flag and a float time decode too.
        let g = group(
            [
                bytes("t"),
                bytes("s"),
                bytes(""),
                Value::Bytes(vec![b'u', 0xff, b'"', b'\n']),
                bytes(""),
                Value::UInt(1),
                bytes("7.000"),
                Value::Float(1.5),
            ],
            &OB,
        )
        .unwrap();
        assert_eq!(g.db, NONE_LABEL);
        assert_eq!(g.user, "u\u{fffd}\"\n");
        assert_eq!(g.client, NONE_LABEL);
        assert_eq!((g.active, g.sessions, g.max_active_time), (1, 7, 1.5));
    }

    #[test]
    fn the_string_null_is_a_database_on_mysql() {
        let ctx = RowContext {
            null_string_is_no_db: false,
            ..OB
        };
        let values = [
            Value::NULL,
            Value::NULL,
            bytes("NULL"),
            bytes("u"),
            bytes(""),
            bytes("0"),
            bytes("1"),
            bytes("0"),
        ];
        assert_eq!(group(values, &ctx).unwrap().db, "NULL");
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        let values = |sessions: Value| {
            [
                Value::NULL,
                Value::NULL,
                Value::NULL,
                Value::NULL,
                Value::NULL,
                bytes("0"),
                sessions,
                Value::NULL,
            ]
        };
        for bad in [
            bytes("many"),
            bytes("1.5"),
            Value::Int(-1),
            bytes("NaN"),
            bytes("inf"),
        ] {
            let err = group(values(bad.clone()), &OB).unwrap_err();
            assert_eq!(err.reason, Reason::Query, "{bad:?}");
        }
        let err = decode_row(vec![Value::NULL; 3], &OB).unwrap_err();
        assert!(
            err.message.contains("expected 23 columns, got 3"),
            "{}",
            err.message
        );
        // More active, transactions or waiters than sessions is a broken answer,
        // not a number to show; so is a session id that is not a number.
        let row_with = |changes: &[(&'static str, &'static str)]| {
            let mut values = vec![
                ("tenant", "t"),
                ("server", "s"),
                ("db", "d"),
                ("user", "u"),
                ("client", "c"),
                ("command", "Q"),
                ("state", "A"),
                ("active", "0"),
                ("sessions", "2"),
                ("transactions", "0"),
                ("idle_in_transaction", "0"),
                ("lock_waiting", "0"),
                ("waiters", "0"),
            ];
            values.extend_from_slice(changes);
            fixtures::scan(&values)
        };
        for (changes, why) in [
            (&[("active", "3")][..], "has 3 active"),
            (&[("transactions", "3")], "3 in transaction"),
            (&[("lock_waiting", "5")], "5 waiting"),
            (&[("sessions", "1"), ("id", "x")], "column id"),
        ] {
            let err = decode_row(row_with(changes), &OB).unwrap_err();
            assert!(err.message.contains(why), "{changes:?}: {}", err.message);
        }
    }

    /// The statement reads the processlist once: one FROM names it, the window and
    /// the grouping work on the derived table.
    #[test]
    fn one_statement_reads_the_processlist_once() {
        let scan = Scan {
            from: "PL p LEFT JOIN TRX s ON s.ID = p.ID".into(),
            filter: "p.ID <> 0".into(),
            tenant: "p.TENANT".into(),
            server: "NULL".into(),
            client: "p.HOST".into(),
            active: "p.STATE = 'ACTIVE'".into(),
            sql_id: "NULL".into(),
            in_transaction: "0".into(),
            transaction_age: "NULL".into(),
            lock_wait: "NULL".into(),
            waiters: "0".into(),
            states: true,
            top_sessions: 3,
            ..Scan::default()
        };
        let sql = scan.statement();
        assert_eq!(sql.matches(" PL p ").count(), 1, "{sql}");
        assert!(sql.contains("ROW_NUMBER() OVER (PARTITION BY p.TENANT ORDER BY"));
        assert!(sql.contains("y.A = 1 AND y.R <= 3"));
        assert!(sql.contains("p.COMMAND AS CMD, p.STATE AS ST"));
        assert!(sql.ends_with("GROUP BY x.TN, x.SV, x.D, x.U, x.C, x.CMD, x.ST, x.K"));
        assert!(
            !sql.contains("x.AP"),
            "a part not read is neither selected nor grouped by"
        );
        let with_application = Scan {
            application: "p.APP".into(),
            ..scan.clone()
        }
        .statement();
        assert!(with_application.contains("NULLIF(MAX(x.W), 0), x.AP, NULL, NULL, NULL FROM"));
        assert!(with_application.ends_with("x.ST, x.K, x.AP"));
        let sql = Scan {
            top_sessions: 0,
            states: false,
            tenant: "NULL".into(),
            ..scan
        }
        .statement();
        assert!(!sql.contains("ROW_NUMBER"), "{sql}");
        assert!(sql.contains("NULL AS CMD, NULL AS ST"));
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("ro"), "%ro%");
        assert_eq!(contains_pattern("50%_!x"), "%50!%!_!!x%");
        assert_eq!(contains_pattern("'\\\0"), "%'\\\0%");
    }

    #[test]
    fn filters_become_quoted_conditions() {
        assert_eq!(filter_conditions(&Filter::default(), "p."), "");
        let filter = Filter {
            min_time: Some(Duration::from_millis(1500)),
            users: NameList {
                allow: None,
                deny: vec!["repl".into(), "o'brien".into()],
            },
            databases: NameList {
                allow: Some(vec!["app".into()]),
                deny: vec![],
            },
        };
        assert_eq!(
            filter_conditions(&filter, "p."),
            " AND p.TIME >= 1.5 AND (p.USER IS NULL OR p.USER NOT IN ('repl', 'o''brien')) AND p.DB IN ('app')"
        );
    }

    /// The grouping is flat: one read, one GROUP BY of the raw key columns (NULL
    /// ones left out), no window and no derived table; a session kept apart is one
    /// more key.
    #[test]
    fn datetimes_are_read_to_the_microsecond() {
        let at = |text| datetime_micros(text);
        assert_eq!(at("1970-01-01 00:00:00"), Some(0));
        assert_eq!(at("1970-01-02 00:00:01.5"), Some(86_401_500_000));
        assert_eq!(at("2000-03-01 00:00:00"), Some(951_868_800_000_000));
        assert_eq!(
            at("2026-12-03 17:00:00.000001").zip(at("2026-12-03 16:58:20")),
            Some((1_796_317_200_000_001, 1_796_317_100_000_000))
        );
        for bad in [
            "",
            "2026-12-03",
            "2026-13-01 00:00:00",
            "x-1-1 0:0:0",
            "2026-01-01 00:00:00.1234567",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }

    /// The read of the sessions goes one row per session once they make more groups
    /// than a fifth of their number, and back to grouped below a tenth; in between it
    /// stays as it is.
    #[test]
    fn the_shape_follows_how_many_groups_the_sessions_make() {
        let grouped = Shape::default();
        let ungrouped = Shape { ungrouped: true };
        for (shape, sessions, groups, next) in [
            (grouped, 100_000, 60_000, ungrouped),
            (grouped, 100_000, 20_001, ungrouped),
            (grouped, 100_000, 20_000, grouped),
            (grouped, 2_000, 40, grouped),
            (grouped, 0, 0, grouped),
            (ungrouped, 100_000, 15_000, ungrouped),
            (ungrouped, 100_000, 10_000, ungrouped),
            (ungrouped, 100_000, 9_999, grouped),
            // Nothing to tell: as it was.
            (ungrouped, 0, 0, ungrouped),
        ] {
            assert_eq!(
                shape.next(sessions, groups),
                next,
                "{shape:?} {sessions} {groups}"
            );
        }
    }

    #[test]
    fn the_grouping_is_one_flat_group_by() {
        let grouping = Grouping {
            prefix: String::new(),
            hint: String::new(),
            relation: "PL p".into(),
            joins: " LEFT JOIN TRX t ON t.ID = p.ID".into(),
            filter: "p.ID <> 0".into(),
            tenant: "p.TENANT".into(),
            server: "NULL".into(),
            client: "p.HOST".into(),
            command: "p.COMMAND".into(),
            state: "p.STATE".into(),
            transaction: "t.S".into(),
            time: "p.TIME".into(),
            transaction_age: "NULL".into(),
            lock_wait: "NULL".into(),
            session: "NULL".into(),
            application: "NULL".into(),
            ids: "NULL".into(),
            union: String::new(),
        };
        let sql = grouping.statement();
        assert_eq!(sql.matches(" PL p").count(), 1, "{sql}");
        assert!(!sql.contains("OVER"), "{sql}");
        assert!(sql.ends_with("GROUP BY p.TENANT, p.DB, p.USER, p.HOST, p.COMMAND, p.STATE, t.S"));
        let apart = Grouping {
            session: "CASE WHEN p.COMMAND <> 'Sleep' THEN p.ID END".into(),
            ..grouping
        }
        .statement();
        assert!(
            apart.contains(", CASE WHEN p.COMMAND <> 'Sleep' THEN p.ID END, NULL, NULL FROM PL p ")
        );
        assert!(apart.ends_with("t.S, CASE WHEN p.COMMAND <> 'Sleep' THEN p.ID END"));
    }

    /// A group's key decides what it is, by the kind's rules: active and in a
    /// transaction, idle in one, waiting for a lock for as long as its statement.
    #[test]
    fn group_rows_are_decoded_by_the_rules() {
        const RULES: Rules = Rules {
            active: |command, _| command != "Sleep",
            in_transaction: |t| !t.is_empty(),
            lock_wait: |t, state| match (t, state) {
                ("LOCK WAIT", _) => LockWait::Row,
                (_, "Waiting for table metadata lock") => LockWait::Statement,
                _ => LockWait::No,
            },
            empty_client_read_again: false,
        };
        let ctx = RowContext { rules: RULES, ..OB };
        let group = |values: &[(&str, &str)]| {
            let mut all = vec![("tenant", "t"), ("server", "s"), ("db", "d")];
            all.extend([("user", "u"), ("client", "c")]);
            all.extend_from_slice(values);
            fixtures::group(&all)
        };
        let (g, _) = decode_group(
            group(&[
                ("db", "NULL"),
                ("command", "Sleep"),
                ("state", "x"),
                ("transaction", "RUNNING"),
                ("sessions", "3"),
                ("time", "40"),
                ("transaction_age", "90"),
            ]),
            &ctx,
        )
        .unwrap();
        assert_eq!(g.db, NONE_LABEL);
        assert_eq!(
            (g.sessions, g.active, g.transactions, g.idle_in_transaction),
            (3, 0, 3, 3)
        );
        assert_eq!(
            (
                g.max_active_time,
                g.max_idle_in_transaction,
                g.max_transaction_age
            ),
            (0.0, 40.0, 90.0)
        );
        let waiting = group(&[
            ("command", "Query"),
            ("state", "y"),
            ("transaction", "LOCK WAIT"),
            ("sessions", "2"),
            ("time", "9"),
            ("transaction_age", "5"),
            ("lock_wait", "7"),
        ]);
        let mut too_wide = waiting.clone();
        too_wide.push(Value::Bytes(Vec::new()));
        let g = decode_group(too_wide, &ctx).unwrap_err();
        assert!(
            g.message.contains("expected 15 columns, got 16"),
            "{}",
            g.message
        );
        let (g, _) = decode_group(waiting, &ctx).unwrap();
        assert_eq!(
            (g.active, g.lock_waiting, g.max_lock_wait, g.max_active_time),
            (2, 2, 7.0, 9.0)
        );
        let (g, _) = decode_group(
            group(&[
                ("command", "Query"),
                ("state", "Waiting for table metadata lock"),
                ("sessions", "1"),
                ("time", "30"),
            ]),
            &ctx,
        )
        .unwrap();
        assert_eq!(
            (g.transactions, g.lock_waiting, g.max_lock_wait),
            (0, 1, 30.0)
        );
        let ctx = RowContext {
            parts: Parts {
                states: false,
                ..OB.parts
            },
            ..ctx
        };
        let (g, _) = decode_group(
            group(&[
                ("command", "Query"),
                ("state", "y"),
                ("sessions", "1"),
                ("time", "1"),
            ]),
            &ctx,
        )
        .unwrap();
        assert_eq!(
            (g.command.as_str(), g.state.as_str(), g.active),
            ("", "", 1)
        );
    }
}
