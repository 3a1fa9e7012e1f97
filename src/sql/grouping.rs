//! One flat `GROUP BY` over a processlist read once ([`Grouping`]), and the
//! decoding of its rows by a kind's [`Rules`].

use super::{bad_answer, client_of, count, db_label, seconds, Cell, LockWait, RowContext};
use crate::error::SourceError;
use crate::stats::{Aggregator, OneSession, SessionGroup, NONE_LABEL};

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

/// Decodes one row of [`Grouping::statement`] (see [`GROUP_COLUMNS`]).
/// The group's connection ids come back as they were sent (see [`Grouping::ids`]),
/// with what its sessions wait for by the rules (whatever the states part says).
pub fn decode_group<C: Cell>(
    values: Vec<C>,
    ctx: &RowContext<'_>,
) -> Result<(SessionGroup, Option<String>, LockWait), SourceError> {
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
        // The grouping reads no snapshot horizon.
        horizon_age: None,
        idle_in_transaction_holding_horizon: None,
        max_idle_holding_horizon: None,
    };
    Ok((group, ids, waits))
}

/// Adds one row of a [`Grouping::statement`] to `aggregator` as it is: a group's
/// connection ids, read by kinds that count programs by connection, are left out.
pub fn add_group_row<C: Cell>(
    aggregator: &mut Aggregator,
    row: Vec<C>,
    ctx: &RowContext<'_>,
) -> Result<(), SourceError> {
    let (group, ..) = decode_group(row, ctx)?;
    aggregator.add_group(group);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{fixtures, Rules};
    use crate::stats::CollectParts;
    use mysql_async::Value;

    const CTX: RowContext<'static> = crate::sql::fixtures::CONTEXT;

    /// The grouping is flat: one read, one GROUP BY of the raw key columns (NULL
    /// ones left out), no window and no derived table; a session kept apart is one
    /// more key.
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
        };
        let ctx = RowContext {
            rules: RULES,
            ..CTX
        };
        let group = |values: &[(&str, &str)]| {
            let mut all = vec![("tenant", "t"), ("server", "s"), ("db", "d")];
            all.extend([("user", "u"), ("client", "c")]);
            all.extend_from_slice(values);
            fixtures::group(&all)
        };
        let (g, ..) = decode_group(
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
        let (g, ..) = decode_group(waiting, &ctx).unwrap();
        assert_eq!(
            (g.active, g.lock_waiting, g.max_lock_wait, g.max_active_time),
            (2, 2, 7.0, 9.0)
        );
        let (g, ..) = decode_group(
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
            parts: CollectParts {
                states: false,
                ..CTX.parts
            },
            ..ctx
        };
        let (g, ..) = decode_group(
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
