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
//! DECIMAL). Values are decoded here by one tolerant set of helpers.

use super::conn::{classify, is_missing_or_denied_relation};
use super::error::{Reason, SourceError};
use crate::config::{Database, Filter};
use crate::stats::{
    client_label, client_label_of, host_without_port as bare_host, Aggregator, Blocker, Collected,
    Detail, OneSession, Parts, Seen, SessionGroup, TopSession, NONE_LABEL,
};
use mysql_async::Value;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

/// Leading comment on every statement, so a DBA reading the processlist or a slow log
/// sees who sent it.
pub const TAG: &str = concat!("/* session_exporter ", env!("CARGO_PKG_VERSION"), " */");

/// Stands, in a statement's text, for the list of the exporter's own session ids on
/// the server (`ID NOT IN (…)`): [`with_own_sessions`] writes them in just before the
/// statement is sent, so no statement counts or lists the exporter's connections.
pub const OWN_SESSIONS: &str = "CONNECTION_ID() /* own sessions */";

/// `sql` with [`OWN_SESSIONS`] replaced by `CONNECTION_ID()` and the ids of every
/// other connection this process holds to `conn`'s server (the collection's pool,
/// the session API's); `conn` is noted among them.
pub fn with_own_sessions(conn: &mysql_async::Conn, sql: &str) -> String {
    let own = super::conn::OwnSessions::of(conn);
    let mut list = String::from("CONNECTION_ID()");
    for id in own.ids() {
        list.push_str(&format!(", {id}"));
    }
    sql.replace(OWN_SESSIONS, &list)
}

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
/// column when it is active). A source that has one
/// tenant or one server selects NULL for those and passes the value to
/// [`decode_row`] as a default. See [`Scan::statement`], which writes such a
/// statement: one per cycle, reading the processlist once.
///
/// Most rows are groups of idle sessions without a transaction: their zero counts and
/// the session columns come back as NULL, which the driver decodes without an
/// allocation (a cycle of a large cluster is tens of thousands of rows); NULL counts
/// are 0.
pub const COLUMNS: usize = 19;

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
    let [tenant, server, db, user, client, command, state, active, sessions, time, transactions, idle_in_transaction, transaction_age, idle_time, lock_waiting, lock_wait, id, sql_id, waiters]: [C;
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
        session,
    })
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
pub fn decode_group<C: Cell>(
    values: Vec<C>,
    ctx: &RowContext<'_>,
) -> Result<SessionGroup, SourceError> {
    let got = values.len();
    let [tenant, server, db, user, client, command, state, transaction, sessions, time, transaction_age, lock_wait, session]: [C;
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
    Ok(SessionGroup {
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
        session: match session.is_null() {
            true => None,
            false => Some(OneSession {
                id: count(session, "session id")?,
                ..OneSession::default()
            }),
        },
    })
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

/// A row of a statement of details, decoded.
struct DetailRow {
    tenant: String,
    detail: Detail,
    top: Option<TopSession>,
    blocker: Option<Blocker>,
}

/// The columns of OceanBase's read of the sessions (its statement of every cycle):
/// a key, user and db, and the particulars of a session that is active or in a
/// transaction (NULL for the others); grouped by all four, a fifth column counts the
/// sessions of the group (see [`Shape`] for when each is sent). A session with
/// particulars is a group of its own, since they hold its id.
///
/// OceanBase prices every column and expression of every row it sends, so the key is
/// the session's tenant, server, command, state, transaction state and client address
/// in one column, NUL between them (none of them can hold a NUL: tenant names are
/// `[A-Za-z0-9_]`, the rest are addresses and the engine's words), and user and db,
/// free text, are columns of their own. The particulars are the session's server
/// port, id, TIME, transaction id, SQL id (empty unless it is active) and HOST (empty
/// unless it has no `USER_CLIENT_IP`), commas between them (HOST, last, may hold one).
pub const SESSION_COLUMNS: usize = 4;

/// The fields of a per-session row's key and of its particulars.
const KEY_FIELDS: usize = 6;
const PARTICULAR_FIELDS: usize = 6;

/// The columns of a statement of particulars: kind (0 a tenant, 1 an open
/// transaction, 2 a lock wait, 3 a session others wait on, 4 the server's clock),
/// then by kind the tenant's name; the transaction's server, port, session id and
/// start (`ACTIVE_TIME`), commas between them, in the second column (one column, as
/// OceanBase prices each); the transaction id, session id and longest wait of a
/// waiting session; the transaction id, session id and number of waiters of a
/// blocker (the last three columns; the second is NULL); `NOW(6)` in the last.
pub const PARTICULAR_COLUMNS: usize = 5;

/// What a statement of particulars read, for the sessions of the per-session read
/// that follows: open transactions by server, port and session id; waits and
/// waiters by transaction id and session id (lock rows are matched by transaction
/// and session, not by server: a lock row is reported by the server holding the row).
#[derive(Debug, Default)]
pub struct Particulars {
    /// When each open transaction began (microseconds on the server's clock), and
    /// the server's clock when they were read: an age is their difference.
    started: HashMap<String, HashMap<(u64, u64), i64>>,
    now: Option<i64>,
    waits: HashMap<(u64, u64), f64>,
    waiters: HashMap<(u64, u64), u64>,
}

impl Particulars {
    /// The age in seconds of the open transaction of session `id` on `server:port`.
    fn age(&self, server: &str, port: u64, id: u64) -> Option<f64> {
        let start = self.started.get(server)?.get(&(port, id))?;
        Some((self.now? - start).max(0) as f64 / 1e6)
    }
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]`, as the text protocol writes a DATETIME or a
/// TIMESTAMP, in microseconds since 1970-01-01 00:00:00 of the same time zone; None
/// for anything else. Only differences of two are used, both read in one session.
fn datetime_micros(text: &str) -> Option<i64> {
    let (date, time) = text.trim().split_once(' ')?;
    let mut date = date.splitn(3, '-').map(|n| n.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut clock = clock.splitn(3, ':').map(|n| n.parse::<i64>().ok());
    let (hour, minute, second) = (clock.next()??, clock.next()??, clock.next()??);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || fraction.len() > 6 {
        return None;
    }
    let micros = match fraction {
        "" => 0,
        digits => digits.parse::<i64>().ok()? * 10_i64.pow(6 - digits.len() as u32),
    };
    // Days from the civil date (H. Hinnant's algorithm), March-based years.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000_000 + second * 1_000_000 + micros)
}

/// Decodes one row of a statement of particulars (see [`PARTICULAR_COLUMNS`]); a
/// tenant's row makes it present, like a grouping's zero row.
fn decode_particular<C: Cell>(
    values: Vec<C>,
    found: &mut Particulars,
    aggregator: &mut Aggregator,
) -> Result<(), SourceError> {
    let got = values.len();
    let [kind, server, a, b, value]: [C; PARTICULAR_COLUMNS] = values
        .try_into()
        .map_err(|_| bad_answer(format!("expected {PARTICULAR_COLUMNS} columns, got {got}")))?;
    match count(kind, "kind")? {
        0 => aggregator.add_group(SessionGroup {
            tenant: server.into_text().unwrap_or_default(),
            ..SessionGroup::default()
        }),
        1 => {
            // server,port,session,start: a row missing one (NULL) matches no session.
            let text = server.into_text().unwrap_or_default();
            let Some([server, port, id, start]) = fields(&text, ',') else {
                return Ok(());
            };
            let key = (
                count(Some(port), "SVR_PORT")?,
                count(Some(id), "SESSION_ID")?,
            );
            let start = datetime_micros(start).ok_or_else(|| {
                bad_answer(format!("ACTIVE_TIME `{start}` is not a date and time"))
            })?;
            let ages = found.started.entry(server.to_string()).or_default();
            let known = ages.entry(key).or_insert(start);
            *known = (*known).min(start);
        }
        2 => {
            let key = (count(a, "TRANS_ID")?, count(b, "SESSION_ID")?);
            found.waits.insert(key, seconds(value, "lock wait")?);
        }
        3 => {
            let key = (count(a, "ID1")?, count(b, "ID2")?);
            found.waiters.insert(key, count(value, "waiters")?);
        }
        4 => {
            let now = value.into_text().unwrap_or_default();
            found.now = Some(
                datetime_micros(&now)
                    .ok_or_else(|| bad_answer(format!("NOW(6) `{now}` is not a date and time")))?,
            );
        }
        other => return Err(bad_answer(format!("a particular of kind {other}"))),
    }
    Ok(())
}

/// The first `N - 1` fields of `text` split at `separator`, and the rest; None when
/// there are fewer than `N`.
fn fields<const N: usize>(text: &str, separator: char) -> Option<[&str; N]> {
    let mut fields = text.splitn(N, separator);
    let fields: [Option<&str>; N] = std::array::from_fn(|_| fields.next());
    fields
        .iter()
        .all(Option::is_some)
        .then(|| fields.map(Option::unwrap_or_default))
}

/// What makes two sessions one group: every label they are counted under.
fn group_key<'a>(g: &SessionGroup<&'a str>) -> [&'a str; 9] {
    let flag = |n: u64| if n > 0 { "1" } else { "0" };
    [
        g.tenant,
        g.server,
        g.db,
        g.user,
        g.client,
        g.command,
        g.state,
        flag(g.active),
        flag(g.transactions),
    ]
}

/// `value`, or [`NONE_LABEL`] when empty.
fn or_none(value: &str) -> &str {
    if value.is_empty() {
        NONE_LABEL
    } else {
        value
    }
}

/// Decodes one row of a per-session read (see [`SESSION_COLUMNS`]) into a group of
/// one session, matched with `found`, and hands it to `add` with whether the row had
/// particulars. The group borrows the row's text: only the aggregator copies a value
/// it has not seen yet. A session others wait on, or an active one, is kept apart
/// ([`SessionGroup::session`]).
fn decode_session<C: Cell>(
    values: Vec<C>,
    ctx: &RowContext<'_>,
    found: &Particulars,
    add: impl FnOnce(SessionGroup<&str>, bool),
) -> Result<(), SourceError> {
    let got = values.len();
    let mut values = values.into_iter();
    let (Some(key), Some(user), Some(db), Some(particulars), sessions, None) = (
        values.next(),
        values.next(),
        values.next(),
        values.next(),
        values.next(),
        values.next(),
    ) else {
        return Err(bad_answer(format!(
            "expected {SESSION_COLUMNS} columns, or {} grouped, got {got}",
            SESSION_COLUMNS + 1
        )));
    };
    let sessions = match sessions {
        Some(count_column) => count(count_column, "sessions")?,
        None => 1,
    };
    let key = key.into_text().unwrap_or_default();
    let Some([tenant, server, command, state, transaction, client]) =
        fields::<KEY_FIELDS>(&key, '\0').filter(|[.., client]| !client.contains('\0'))
    else {
        return Err(bad_answer(format!(
            "a session's key has {} fields, not {KEY_FIELDS} (is one of them NULL?)",
            key.split('\0').count()
        )));
    };
    let (command, state) = (or_none(command), or_none(state));
    let rules = ctx.rules;
    let active = (rules.active)(command, state);
    let in_transaction = (rules.in_transaction)(transaction);
    let idle_in_transaction = in_transaction && !active;
    let (command, state) = if ctx.parts.states {
        (command, state)
    } else {
        ("", "")
    };
    let part = |yes: bool| if yes { sessions } else { 0 };
    let (db, user) = (db_label(db, ctx), user.into_text());
    // Read before the client, which may borrow its HOST.
    let particulars = particulars.into_text();
    let mut client = client_label_of(client);
    let mut group = SessionGroup {
        tenant: if tenant.is_empty() {
            ctx.tenant
        } else {
            tenant
        },
        server: if server.is_empty() {
            ctx.server
        } else {
            server
        },
        db: db.as_str(),
        user: user.as_deref().unwrap_or(NONE_LABEL),
        client: "",
        command,
        state,
        active: part(active),
        sessions,
        transactions: part(in_transaction),
        idle_in_transaction: part(idle_in_transaction),
        ..SessionGroup::default()
    };
    let Some(particulars) = &particulars else {
        group.client = &client;
        add(group, false);
        return Ok(());
    };
    let Some([port, id, time, transaction_id, sql_id, host]) =
        fields::<PARTICULAR_FIELDS>(particulars, ',')
    else {
        return Err(bad_answer(format!(
            "a session's particulars `{particulars}` have fewer than {PARTICULAR_FIELDS} fields"
        )));
    };
    if client == NONE_LABEL {
        client = client_label_of(bare_host(host));
    }
    group.client = &client;
    // The statement's condition is a superset of what the rules call active or in
    // a transaction: only those are detailed.
    if active || in_transaction {
        let (port, id) = (count(Some(port), "SVR_PORT")?, count(Some(id), "ID")?);
        let time = seconds(Some(time), "TIME")?;
        let lock = (count(Some(transaction_id), "TRANS_ID")?, id);
        if active {
            group.max_active_time = time;
        }
        if idle_in_transaction {
            group.max_idle_in_transaction = time;
        }
        if let Some(age) = found.age(server, port, id) {
            group.max_transaction_age = age;
        }
        if let Some(wait) = found.waits.get(&lock) {
            group.lock_waiting = sessions;
            group.max_lock_wait = *wait;
        }
        let waiters = found.waiters.get(&lock).copied().unwrap_or(0);
        if active || waiters > 0 {
            group.session = Some(OneSession {
                id,
                sql_id: sql_id.to_string(),
                waiters,
            });
        }
    }
    add(group, true);
    Ok(())
}

/// How one kind reads its processlist, for [`Scan::statement`]: expressions over the
/// processlist `p` and whatever [`Scan::from`] joins to it. The default reads no
/// optional part and has one tenant and one server (see [`Scan::default`]).
#[derive(Debug, Clone)]
pub struct Scan {
    /// What comes before the statement's first SELECT (the tag, MariaDB's bound).
    pub prefix: String,
    /// Optimizer hints written right after the first SELECT (MySQL's bound).
    pub hint: String,
    /// `p` and its joins.
    pub from: String,
    /// Conditions on `p` every counted session meets (the exporter's own excluded,
    /// the filters).
    pub filter: String,
    /// The tenant and server of a row; `NULL` where the target has one.
    pub tenant: String,
    pub server: String,
    pub client: String,
    /// The condition for an active session.
    pub active: String,
    pub sql_id: String,
    /// 1 for a session with an open transaction, else 0; `0` when not collected.
    pub in_transaction: String,
    /// The age of its open transaction in seconds; `NULL` when none.
    pub transaction_age: String,
    /// How long it has waited for a lock in seconds; `NULL` when it does not wait.
    pub lock_wait: String,
    /// How many sessions wait for a lock it holds; `0` when none.
    pub waiters: String,
    /// Whether command and state are grouped by.
    pub states: bool,
    /// How many of each tenant's longest active sessions to keep apart.
    pub top_sessions: usize,
    /// Rows added after the grouped ones (the cluster's zero row per tenant).
    pub union: String,
}

impl Default for Scan {
    /// A kind that reads no transaction, lock or state, with one tenant and one server
    /// (NULL: the row context names them) and no SQL id; it still sets where the
    /// sessions are (`from`, `filter`), `client` and `active`.
    fn default() -> Self {
        let null = || "NULL".to_string();
        Self {
            prefix: String::new(),
            hint: String::new(),
            from: String::new(),
            filter: String::new(),
            tenant: null(),
            server: null(),
            client: String::new(),
            active: String::new(),
            sql_id: null(),
            in_transaction: "0".to_string(),
            transaction_age: null(),
            lock_wait: null(),
            waiters: "0".to_string(),
            states: false,
            top_sessions: 0,
            union: String::new(),
        }
    }
}

impl Scan {
    /// The one statement of a cycle. The processlist is read once, in a derived table
    /// that joins what each session needs (its transaction, its lock wait, how many
    /// wait on it) and ranks the active ones; the outer query groups those rows by
    /// (tenant, server, db, user, client, command, state). The longest active
    /// sessions (a window function ranks them per tenant) and every session others
    /// wait on are grouped by their own id too, so each is a row of its own (see
    /// [`COLUMNS`]).
    pub fn statement(&self) -> String {
        let Scan {
            prefix,
            hint,
            from,
            filter,
            tenant,
            server,
            client,
            active,
            sql_id,
            in_transaction,
            transaction_age,
            lock_wait,
            waiters,
            states,
            top_sessions,
            union,
        } = self;
        let (command, state) = if *states {
            ("p.COMMAND", "p.STATE")
        } else {
            ("NULL", "NULL")
        };
        // The rank is a column of its own, compared a level up: MariaDB 10.11 answers
        // NULL for `a OR <window function> <= n` in one expression.
        let (rank, apart) = if *top_sessions > 0 {
            let partition = if tenant == "NULL" {
                String::new()
            } else {
                format!("PARTITION BY {tenant} ")
            };
            (
                format!(
                    "ROW_NUMBER() OVER ({partition}ORDER BY CASE WHEN {active} THEN 0 ELSE 1 END, p.TIME DESC, p.ID)"
                ),
                format!("y.W > 0 OR (y.A = 1 AND y.R <= {top_sessions})"),
            )
        } else {
            ("NULL".to_string(), "y.W > 0".to_string())
        };
        format!(
            "{prefix}SELECT {hint}x.TN, x.SV, x.D, x.U, x.C, x.CMD, x.ST, NULLIF(SUM(x.A), 0), COUNT(*), \
             MAX(CASE WHEN x.A = 1 THEN x.T END), NULLIF(SUM(x.IT), 0), NULLIF(SUM(x.IT * (1 - x.A)), 0), \
             MAX(x.TA), MAX(CASE WHEN x.IT = 1 AND x.A = 0 THEN x.T END), \
             NULLIF(SUM(CASE WHEN x.LW IS NULL THEN 0 ELSE 1 END), 0), MAX(x.LW), x.K, \
             CASE WHEN x.K IS NOT NULL THEN MAX(x.Q) END, NULLIF(MAX(x.W), 0) \
             FROM (SELECT y.*, CASE WHEN {apart} THEN y.I END AS K \
             FROM (SELECT {tenant} AS TN, {server} AS SV, p.DB AS D, p.USER AS U, {client} AS C, \
             {command} AS CMD, {state} AS ST, CASE WHEN {active} THEN 1 ELSE 0 END AS A, p.TIME AS T, \
             {sql_id} AS Q, {in_transaction} AS IT, {transaction_age} AS TA, {lock_wait} AS LW, \
             {waiters} AS W, p.ID AS I, {rank} AS R \
             FROM {from} WHERE {filter}) y) x \
             GROUP BY x.TN, x.SV, x.D, x.U, x.C, x.CMD, x.ST, x.K{union}"
        )
    }
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
    /// Rows added after the grouped ones (the cluster's zero row per tenant).
    pub union: String,
}

/// The columns of [`Grouping::statement`]: tenant, server, db, user, client,
/// command, state, transaction; sessions, longest TIME (NULL when not read), oldest
/// transaction's age, longest row-lock wait; the session kept apart (NULL for none).
pub const GROUP_COLUMNS: usize = 13;

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
        ]
        .into_iter()
        .filter(|key| *key != "NULL")
        .collect();
        format!(
            "{prefix}SELECT {hint}{tenant}, {server}, p.DB, p.USER, {client}, {command}, {state}, \
             {transaction}, COUNT(*), MAX({time}), MAX({transaction_age}), MAX({lock_wait}), \
             {session} FROM {relation}{joins} WHERE {filter} GROUP BY {}{union}",
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
}

/// Whether a kind that can read its sessions grouped or one row each
/// ([`Statements::ungrouped`]) sends the grouped read next cycle.
///
/// A `GROUP BY` costs OceanBase in proportion to the groups it makes, and every
/// session with particulars is a group of its own. Measured on seekdb with 100,000
/// sessions (BENCHMARKS.md, issue 24): in 3,000 groups the grouped read costs 0.75x
/// sending every session; in 22,000, 2x; in 60,000, 2.5x. The exporter's own work
/// follows the rows it is sent. Each cycle counts both, and the next one sends the
/// cheaper read: sessions one by one once the groups are more than a fifth of the
/// sessions, grouped again once they are fewer than a tenth (apart enough not to
/// flap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    pub ungrouped: bool,
}

impl Shape {
    /// The shape for the next cycle, given this one's sessions and how many groups
    /// they make.
    pub fn next(self, sessions: u64, groups: u64) -> Shape {
        let ungrouped = match self.ungrouped {
            false => groups.saturating_mul(5) > sessions,
            true => groups.saturating_mul(10) >= sessions,
        };
        Shape { ungrouped }
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
    }

    /// Runs the cycle's statements on `conn` and adds their rows up. `tenants` are
    /// present even without rows; `shape` says which read of the sessions to send, and
    /// is updated for the next cycle.
    pub async fn run(
        &self,
        conn: &mut mysql_async::Conn,
        ctx: &RowContext<'_>,
        tenants: &[&str],
        shape: &mut Shape,
    ) -> Result<Collected, SqlError> {
        let mut rows = Rows::new(ctx, tenants);
        if let Some(particulars) = &self.particulars {
            read(conn, particulars, &mut rows, Pass::Particulars).await?;
        }
        let pass = match self.session_read {
            true => Pass::PerSession,
            false => Pass::Groups,
        };
        let sql = match &self.ungrouped {
            Some(ungrouped) if shape.ungrouped => ungrouped,
            _ => &self.groups,
        };
        if !rows.failed() {
            read(conn, sql, &mut rows, pass).await?;
        }
        if let Some(fallback) = self
            .fallback
            .as_ref()
            .filter(|_| rows.held && !rows.failed())
        {
            read(conn, fallback, &mut rows, Pass::Fallback).await?;
        }
        if let Some(details) = &self.details {
            if rows.seen().lock_waits && !rows.failed() {
                read(conn, details, &mut rows, Pass::Details).await?;
            }
        }
        if self.ungrouped.is_some() && !rows.failed() {
            *shape = shape.next(rows.sessions, rows.groups());
        }
        rows.finish().map_err(SqlError::Answer)
    }
}

/// Whether this account can read `relation`: `Ok(None)` when it can, `Ok(Some(err))`
/// when the relation is missing or denied (the caller turns off what needs it and
/// says why), `Err` for anything else (the cycle fails like any other).
pub async fn probe_relation(
    conn: &mut mysql_async::Conn,
    relation: &str,
) -> Result<Option<mysql_async::Error>, mysql_async::Error> {
    use mysql_async::prelude::Queryable;
    // LIMIT 1, not WHERE 1 = 0: for an impossible WHERE MariaDB does not fill an
    // information_schema table, and so never checks the privilege it needs.
    match conn
        .query_drop(format!("{TAG} SELECT 1 FROM {relation} LIMIT 1"))
        .await
    {
        Ok(()) => Ok(None),
        Err(err) if is_missing_or_denied_relation(&err) => Ok(Some(err)),
        Err(err) => Err(err),
    }
}

/// Whether `relation` has `column`; a missing relation is an error like any other
/// (the caller probed it first).
pub async fn has_column(
    conn: &mut mysql_async::Conn,
    relation: &str,
    column: &str,
) -> Result<bool, mysql_async::Error> {
    use mysql_async::prelude::Queryable;
    match conn
        .query_drop(format!("{TAG} SELECT {column} FROM {relation} LIMIT 1"))
        .await
    {
        Ok(()) => Ok(true),
        // ER_BAD_FIELD_ERROR: unknown column.
        Err(mysql_async::Error::Server(err)) if err.code == 1054 => Ok(false),
        Err(err) => Err(err),
    }
}

/// Why a statement gave no statistics: the driver failed (classified by the caller,
/// who knows what it was doing), or the server's answer is not what we asked for.
#[derive(Debug)]
pub enum SqlError {
    Driver(mysql_async::Error),
    Answer(SourceError),
}

impl From<mysql_async::Error> for SqlError {
    fn from(err: mysql_async::Error) -> Self {
        SqlError::Driver(err)
    }
}

impl SqlError {
    /// The collection error: a driver error classified with `what` the source was
    /// doing and the `grant` to suggest; a bad answer as it is.
    pub fn classify(self, database: &Database, what: &str, grant: &str) -> SourceError {
        match self {
            SqlError::Driver(err) => classify(&err, database, what, grant),
            SqlError::Answer(err) => err,
        }
    }
}

/// Sends `sql` and adds its rows, decoded as `pass` says, to `rows` as they arrive:
/// one statement of a cycle that may send several.
pub async fn read(
    conn: &mut mysql_async::Conn,
    sql: &str,
    rows: &mut Rows<'_>,
    pass: Pass,
) -> Result<(), SqlError> {
    use mysql_async::prelude::Queryable;
    let sql = with_own_sessions(conn, sql);
    let mut result = conn.query_iter(sql).await?;
    result
        .for_each(|row| rows.add_as(row.unwrap(), pass))
        .await?;
    Ok(())
}

/// [`read`] for a statement with parameters (a passthrough request's tenant), which
/// are bound by the server, never written into the SQL text. The prepared statement
/// is closed after use: with no statement cache, the driver would otherwise leave it
/// open on the connection (and OceanBase soon refuses with "maximum open cursors").
pub async fn read_bound(
    conn: &mut mysql_async::Conn,
    sql: &str,
    params: mysql_async::Params,
    rows: &mut Rows<'_>,
    pass: Pass,
) -> Result<(), SqlError> {
    use mysql_async::prelude::Queryable;
    let sql = with_own_sessions(conn, sql);
    let statement = conn.prep(sql).await?;
    let read = match conn.exec_iter(&statement, params).await {
        Ok(mut result) => result
            .for_each(|row| rows.add_as(row.unwrap(), pass))
            .await
            .map_err(SqlError::from),
        Err(err) => Err(err.into()),
    };
    let closed = conn.close(statement).await;
    read?;
    closed?;
    Ok(())
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
}

/// Decodes rows and adds them up, one at a time; the first bad row stops the
/// decoding, and is the answer's error. Fed by [`read`] as rows arrive, and by the
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
            Pass::Groups => decode_group(values, ctx).map(|g| {
                if ctx.rules.empty_client_read_again && g.sessions > 0 && g.client == NONE_LABEL {
                    self.held = true;
                } else {
                    self.aggregator.add_group(g);
                }
            }),
            Pass::Fallback => decode_group(values, ctx).map(|g| self.aggregator.add_group(g)),
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

    pub fn finish(self) -> Result<Collected, SourceError> {
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

fn bad_answer(detail: String) -> SourceError {
    SourceError::new(
        Reason::Query,
        format!("unexpected answer from the server: {detail}"),
    )
}

/// One value of a row as a driver hands it over: MySQL's [`Value`], or the text of
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

impl Cell for Value {
    fn is_null(&self) -> bool {
        matches!(self, Value::NULL)
    }

    fn into_text(self) -> Option<String> {
        text(self)
    }

    fn into_number(self, column: &str) -> Result<Option<f64>, SourceError> {
        match self {
            Value::NULL => Ok(None),
            Value::Int(n) => Ok(Some(n as f64)),
            Value::UInt(n) => Ok(Some(n as f64)),
            Value::Float(n) => Ok(Some(f64::from(n))),
            Value::Double(n) => Ok(Some(n)),
            Value::Bytes(bytes) => parse_number(&bytes, column).map(Some),
            other => Err(bad_answer(format!(
                "column {column} is {}, not a number",
                other.as_sql(true)
            ))),
        }
    }
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

/// A MySQL value as text; NULL is None (see [`Cell::into_text`]).
pub fn text(value: Value) -> Option<String> {
    match value {
        Value::NULL => None,
        Value::Bytes(bytes) => Some(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
        }),
        Value::Int(n) => Some(n.to_string()),
        Value::UInt(n) => Some(n.to_string()),
        Value::Float(n) => Some(n.to_string()),
        Value::Double(n) => Some(n.to_string()),
        other => Some(other.as_sql(true)),
    }
}

/// A number written as text.
fn parse_number(bytes: &[u8], column: &str) -> Result<f64, SourceError> {
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
    /// statement's columns the test feeds it (see that statement's `*_COLUMNS`), `∅`
    /// for NULL.
    pub fn row(text: &str) -> Vec<Value> {
        text.split('|')
            .map(|v| match v {
                "∅" => Value::NULL,
                v => Value::Bytes(v.as_bytes().to_vec()),
            })
            .collect()
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
    use fixtures::row;
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
        parts: Parts {
            transactions: true,
            locks: true,
            states: true,
        },
        rules: Rules::NONE,
        listed_only: false,
    };

    #[test]
    fn decodes_text_protocol_rows() {
        let decoded = decode_row(
            row("t1|10.0.0.1|app|root|10.0.0.100|Sleep|SLEEP|1|3|12.005242|2|1|40.5|33.25|1|7.5|∅|∅|0"),
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
                session: None,
            }
        );
    }

    /// A session kept apart: its id, SQL id, TIME and waiters; an empty state is
    /// `__none__`; with states off, command and state are empty whatever was sent.
    #[test]
    fn decodes_rows_of_one_session() {
        let text = "∅|∅|NULL|app|10.0.0.7|Query||1|1|33.5|0|0|∅|∅|0|∅|3221588508|C82D74|4";
        let decoded = decode_row(row(text), &OB).unwrap();
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
        let decoded = decode_row(row(text), &ctx).unwrap();
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
            err.message.contains("expected 19 columns, got 3"),
            "{}",
            err.message
        );
        // More active, transactions or waiters than sessions is a broken answer,
        // not a number to show; so is a session id that is not a number.
        for (text, why) in [
            ("t|s|d|u|c|Q|A|3|2|∅|0|0|∅|∅|0|∅|∅|∅|0", "has 3 active"),
            ("t|s|d|u|c|Q|A|0|2|∅|3|0|∅|∅|0|∅|∅|∅|0", "3 in transaction"),
            ("t|s|d|u|c|Q|A|0|2|∅|0|0|∅|∅|5|∅|∅|∅|0", "5 waiting"),
            ("t|s|d|u|c|Q|A|0|1|∅|0|0|∅|∅|0|∅|x|∅|0", "column id"),
        ] {
            let err = decode_row(row(text), &OB).unwrap_err();
            assert!(err.message.contains(why), "{text}: {}", err.message);
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
        assert!(apart.contains(", CASE WHEN p.COMMAND <> 'Sleep' THEN p.ID END FROM PL p "));
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
        let g = decode_group(row("t|s|NULL|u|c|Sleep|x|RUNNING|3|40|90|∅|∅"), &ctx).unwrap();
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
        let g = decode_group(row("t|s|d|u|c|Query|y|LOCK WAIT|2|9|5|7|∅|"), &ctx).unwrap_err();
        assert!(
            g.message.contains("expected 13 columns, got 14"),
            "{}",
            g.message
        );
        let g = decode_group(row("t|s|d|u|c|Query|y|LOCK WAIT|2|9|5|7|∅"), &ctx).unwrap();
        assert_eq!(
            (g.active, g.lock_waiting, g.max_lock_wait, g.max_active_time),
            (2, 2, 7.0, 9.0)
        );
        let g = decode_group(
            row("t|s|d|u|c|Query|Waiting for table metadata lock|∅|1|30|∅|∅|∅"),
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
        let g = decode_group(row("t|s|d|u|c|Query|y|∅|1|1|∅|∅|∅"), &ctx).unwrap();
        assert_eq!(
            (g.command.as_str(), g.state.as_str(), g.active),
            ("", "", 1)
        );
    }
}
