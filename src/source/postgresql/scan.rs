//! PostgreSQL's one statement ([`Scan`]): the grouping, the top sessions' window and
//! the lock joins in one read of `pg_stat_activity`, decoded by [`decode_row`].

use crate::error::SourceError;
use crate::sql::{bad_answer, client_of, count, db_label, seconds, Cell, RowContext};
use crate::stats::{Aggregator, OneSession, SessionGroup, CPU, NONE_LABEL};

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
    /// The session's application, and for an active session its wait class, wait
    /// event and statement id (NULL for none; a NULL class is [`CPU`]);
    /// `NULL` where not collected.
    pub application: String,
    pub wait_class: String,
    pub wait_event: String,
    pub statement: String,
    /// The session's statement text, selected for a session kept apart only (the
    /// session history keeps it); `NULL` when not read.
    pub sql_text: String,
    /// The session holding the lock it waits for, likewise; `NULL` when not read.
    pub blocked_by: String,
    /// The age of the snapshot the session holds (the horizon vacuum cannot pass),
    /// `NULL` when it holds none; `NULL` when not read. The `top_sessions` oldest
    /// are kept apart, named.
    pub horizon_age: String,
    /// Whether command and state are grouped by.
    pub states: bool,
    /// How many of each tenant's longest active sessions to keep apart.
    pub top_sessions: usize,
    /// Whether every session worth keeping in the session history (active, in a
    /// transaction, waiting for a lock, or blocking one) is kept apart.
    pub history: bool,
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
            application: null(),
            wait_class: null(),
            wait_event: null(),
            statement: null(),
            sql_text: null(),
            blocked_by: null(),
            horizon_age: null(),
            states: false,
            top_sessions: 0,
            history: false,
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
            application,
            wait_class,
            wait_event,
            statement,
            sql_text,
            blocked_by,
            horizon_age,
            states,
            top_sessions,
            history,
            union,
        } = self;
        let when_active = |expression: &str| match expression {
            "NULL" => "NULL".to_string(),
            _ => format!("CASE WHEN {active} THEN {expression} END"),
        };
        let (wait_class, wait_event, statement) = (
            when_active(wait_class),
            when_active(wait_event),
            when_active(statement),
        );
        // The optional keys a part reads, selected and grouped by; the others are a
        // constant NULL, which splits no group.
        let keys = [
            ("AP", application.as_str()),
            ("WC", &wait_class),
            ("WE", &wait_event),
            ("SQ", &statement),
        ];
        let read = |(column, expression): &(&str, &str)| match *expression {
            "NULL" => None,
            _ => Some(format!("x.{column}")),
        };
        let selected: Vec<String> = keys
            .iter()
            .map(|key| read(key).unwrap_or_else(|| "NULL".to_string()))
            .collect();
        let selected = selected.join(", ");
        let optional: String = keys
            .iter()
            .filter_map(read)
            .map(|key| format!(", {key}"))
            .collect();
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
        let apart = match history {
            true => format!("{apart} OR y.A = 1 OR y.IT = 1 OR y.LW IS NOT NULL"),
            false => apart,
        };
        // The sessions holding the oldest snapshots, ranked apart; and, when read, how
        // many idle in a transaction hold one, and the longest idle of those.
        const HOLDING: &str =
            "SUM(CASE WHEN x.IT = 1 AND x.A = 0 AND x.XA IS NOT NULL THEN 1 ELSE 0 END), \
             MAX(CASE WHEN x.IT = 1 AND x.A = 0 AND x.XA IS NOT NULL THEN x.T END)";
        let (horizon_rank, apart, holding) = match (horizon_age.as_str(), *top_sessions) {
            ("NULL", _) => ("NULL".to_string(), apart, "NULL, NULL"),
            (_, 0) => ("NULL".to_string(), apart, HOLDING),
            (age, keep) => (
                format!(
                    "CASE WHEN {age} IS NOT NULL THEN ROW_NUMBER() OVER (ORDER BY {age} DESC NULLS LAST, p.ID) END"
                ),
                format!("{apart} OR y.XR <= {keep}"),
                HOLDING,
            ),
        };
        format!(
            "{prefix}SELECT {hint}x.TN, x.SV, x.D, x.U, x.C, x.CMD, x.ST, NULLIF(SUM(x.A), 0), COUNT(*), \
             MAX(CASE WHEN x.A = 1 THEN x.T END), NULLIF(SUM(x.IT), 0), NULLIF(SUM(x.IT * (1 - x.A)), 0), \
             MAX(x.TA), MAX(CASE WHEN x.IT = 1 AND x.A = 0 THEN x.T END), \
             NULLIF(SUM(CASE WHEN x.LW IS NULL THEN 0 ELSE 1 END), 0), MAX(x.LW), x.K, \
             CASE WHEN x.K IS NOT NULL THEN MAX(x.Q) END, NULLIF(MAX(x.W), 0), {selected}, \
             CASE WHEN x.K IS NOT NULL THEN MAX(x.QT) END, CASE WHEN x.K IS NOT NULL THEN MAX(x.BB) END, \
             MAX(x.XA), {holding} \
             FROM (SELECT y.*, CASE WHEN {apart} THEN y.I END AS K \
             FROM (SELECT {tenant} AS TN, {server} AS SV, p.DB AS D, p.USER AS U, {client} AS C, \
             {command} AS CMD, {state} AS ST, CASE WHEN {active} THEN 1 ELSE 0 END AS A, p.TIME AS T, \
             {sql_id} AS Q, {in_transaction} AS IT, {transaction_age} AS TA, {lock_wait} AS LW, \
             {waiters} AS W, p.ID AS I, {rank} AS R, {application} AS AP, {wait_class} AS WC, \
             {wait_event} AS WE, {statement} AS SQ, {sql_text} AS QT, {blocked_by} AS BB, \
             {horizon_age} AS XA, {horizon_rank} AS XR \
             FROM {from} WHERE {filter}) y) x \
             GROUP BY x.TN, x.SV, x.D, x.U, x.C, x.CMD, x.ST, x.K{optional}{union}"
        )
    }
}

/// The columns every query returns, in this order: tenant, server, db, user, client,
/// command, state; active (how many of the group are active), sessions, time (the
/// longest active one's; NULL when none is active); transactions, idle in
/// transaction, oldest transaction's age, longest idle-in-transaction TIME; lock
/// waiters, longest wait; then for a session kept in a row of its own its id (NULL
/// for a group), SQL id and how many sessions wait on it (its TIME is the time
/// column when it is active); then the group's application, and its active
/// sessions' wait class, wait event and statement id (NULL: none, a NULL class
/// [`CPU`]); last a kept session's statement text and the session holding the lock
/// it waits for (NULL unless the session history reads them); then the age of the
/// oldest snapshot the group holds (NULL: none), how many of its sessions idle in
/// a transaction hold one, and the longest TIME of those (NULL: not read). A source that has one
/// tenant or one server selects NULL for those and passes the value to
/// [`decode_row`] as a default. See [`Scan::statement`], which writes such a
/// statement: one per cycle, reading the processlist once.
///
/// Most rows are groups of idle sessions without a transaction: their zero counts and
/// the session columns come back as NULL, which the driver decodes without an
/// allocation (a cycle of a large cluster is tens of thousands of rows); NULL counts
/// are 0.
pub const COLUMNS: usize = 28;

/// Decodes one row (see [`COLUMNS`]).
pub fn decode_row<C: Cell>(
    values: Vec<C>,
    ctx: &RowContext<'_>,
) -> Result<SessionGroup, SourceError> {
    let got = values.len();
    let [tenant, server, db, user, client, command, state, active, sessions, time, transactions, idle_in_transaction, transaction_age, idle_time, lock_waiting, lock_wait, id, sql_id, waiters, application, wait_class, wait_event, statement, sql_text, blocked_by, horizon_age, holding_horizon, holding_idle]: [C;
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
    let idle_in_transaction_holding_horizon = match holding_horizon.is_null() {
        true => None,
        false => Some(part(
            holding_horizon,
            "idle in transaction holding the horizon",
        )?),
    };
    let horizon_age = match horizon_age.is_null() {
        true => None,
        false => Some(count(horizon_age, "horizon age")?),
    };
    let session = match id.is_null() {
        true => None,
        false => Some(OneSession {
            id: count(id, "id")?,
            sql_id: sql_id.into_text().unwrap_or_default(),
            waiters: count(waiters, "waiters")?,
            sql_text: sql_text.into_text().unwrap_or_default(),
            blocked_by: match blocked_by.is_null() {
                true => None,
                false => Some(count(blocked_by, "blocked by")?),
            },
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
        client: client_of(client),
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
        horizon_age,
        idle_in_transaction_holding_horizon,
        max_idle_holding_horizon: match holding_idle.is_null() {
            true => None,
            false => Some(seconds(holding_idle, "idle time holding the horizon")?),
        },
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

/// Adds one row of [`Scan::statement`] to `aggregator`.
pub fn add_row<C: Cell>(
    aggregator: &mut Aggregator,
    row: Vec<C>,
    ctx: &RowContext<'_>,
) -> Result<(), SourceError> {
    aggregator.add_group(decode_row(row, ctx)?);
    Ok(())
}

/// Rows of [`Scan::statement`] as a test writes them.
#[cfg(test)]
pub(super) mod fixtures {
    use super::COLUMNS;
    use mysql_async::Value;

    /// The columns of [`decode_row`], in order.
    const SCAN: [&str; COLUMNS] = [
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
        "sql_text",
        "blocked_by",
        "horizon_age",
        "holding_horizon",
        "holding_idle",
    ];

    /// A row of [`decode_row`] from its named values; every column not named is
    /// NULL, and a later value of a column replaces an earlier one.
    pub fn scan(values: &[(&str, &str)]) -> Vec<Value> {
        crate::sql::fixtures::named(&SCAN, values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Reason;
    use crate::stats::CollectParts;
    use mysql_async::Value;

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
        row.extend([
            Value::NULL,
            Value::NULL,
            Value::NULL,
            Value::NULL,
            Value::NULL,
            Value::NULL,
            Value::NULL,
            Value::NULL,
            Value::NULL,
        ]);
        row
    }

    fn group(values: [Value; 8], ctx: &RowContext<'_>) -> Result<SessionGroup, SourceError> {
        decode_row(group_row(values), ctx)
    }

    const OB: RowContext<'static> = crate::sql::fixtures::CONTEXT;

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
                ("horizon_age", "1200"),
                ("holding_horizon", "1"),
                ("holding_idle", "33.25"),
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
                horizon_age: Some(1200),
                idle_in_transaction_holding_horizon: Some(1),
                max_idle_holding_horizon: Some(33.25),
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
                ..OneSession::default()
            })
        );
        let ctx = RowContext {
            parts: CollectParts {
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
            err.message.contains("expected 28 columns, got 3"),
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
        assert!(with_application.contains(
            "NULLIF(MAX(x.W), 0), x.AP, NULL, NULL, NULL, CASE WHEN x.K IS NOT NULL THEN MAX(x.QT) END, CASE WHEN x.K IS NOT NULL THEN MAX(x.BB) END, MAX(x.XA), NULL, NULL FROM"
        ));
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
}
