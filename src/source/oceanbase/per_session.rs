//! OceanBase's read of its sessions, one row each or grouped ([`Shape`]), and the
//! statement of particulars it is matched with: transactions by server, port and
//! session, locks by transaction and session (see [`SESSION_COLUMNS`] and
//! [`PARTICULAR_COLUMNS`]).

use crate::error::SourceError;
use crate::sql::{bad_answer, count, datetime_micros, db_label, fields, seconds, Cell, RowContext};
use crate::stats::{
    client_label_of, host_without_port as bare_host, Aggregator, OneSession, SessionGroup,
    NONE_LABEL,
};
use std::collections::HashMap;

/// The columns of OceanBase's read of the sessions (its statement of every cycle):
/// a key, user and db, and the particulars of a session that is active or in a
/// transaction (NULL for the others); grouped by all four, a fifth column counts the
/// sessions of the group (see [`Shape`] for when each is sent). A session with
/// particulars is a group of its own, since they hold its id.
///
/// OceanBase prices every column and expression of every row it sends, so the key is
/// the session's tenant, server, command, state, transaction state and client address
/// in one column, NUL between them (none of them can hold a NUL: tenant names are
/// `[A-Za-z0-9_]`, the rest are addresses and the engine's words) and last its
/// application (`MODULE` else `CLIENT_INFO`, empty when not collected: free text, but
/// the last field may hold anything), and user and db, free text, are columns of their
/// own. The particulars are the session's server
/// port, id, TIME, transaction id, SQL id (empty unless it is active) and HOST (empty
/// unless it has no `USER_CLIENT_IP`), commas between them (HOST, last, may hold one).
/// For the session history the one-row reads add a sixth column, the `INFO` of a
/// session with particulars (the fifth, the count, then NULL: one session).
pub const SESSION_COLUMNS: usize = 4;

/// The fields of a per-session row's key and of its particulars.
const KEY_FIELDS: usize = 7;
const PARTICULAR_FIELDS: usize = 6;

/// The columns of a statement of particulars: kind (0 a tenant, 1 an open
/// transaction, 2 a lock wait, 3 a session others wait on, 4 the server's clock),
/// then by kind the tenant's name; the transaction's server, port, session id and
/// start (`ACTIVE_TIME`), commas between them, in the second column (one column, as
/// OceanBase prices each); the session holding the row lock (NULL when none is
/// named), transaction id, session id and longest wait of a waiting session; the transaction id, session id and number of waiters of a
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
    /// A waiting session's longest wait, and the session holding the row lock it
    /// waits for (a `TYPE = 'TR'` row's `ID2`), when the locks view names one.
    waits: HashMap<(u64, u64), (f64, Option<u64>)>,
    waiters: HashMap<(u64, u64), u64>,
}

impl Particulars {
    /// The age in seconds of the open transaction of session `id` on `server:port`.
    fn age(&self, server: &str, port: u64, id: u64) -> Option<f64> {
        let start = self.started.get(server)?.get(&(port, id))?;
        Some((self.now? - start).max(0) as f64 / 1e6)
    }
}

/// Decodes one row of a statement of particulars (see [`PARTICULAR_COLUMNS`]); a
/// tenant's row makes it present, like a grouping's zero row.
pub(super) fn decode_particular<C: Cell>(
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
            let holder = match server.is_null() {
                true => None,
                false => Some(count(server, "ID2")?),
            };
            found
                .waits
                .insert(key, (seconds(value, "lock wait")?, holder));
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

/// What makes two sessions one group: every label they are counted under.
pub(super) fn group_key<'a>(g: &SessionGroup<&'a str>) -> [&'a str; 10] {
    let flag = |n: u64| if n > 0 { "1" } else { "0" };
    [
        g.tenant,
        g.server,
        g.db,
        g.user,
        g.client,
        g.command,
        g.state,
        g.application,
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
pub(super) fn decode_session<C: Cell>(
    values: Vec<C>,
    ctx: &RowContext<'_>,
    found: &Particulars,
    add: impl FnOnce(SessionGroup<&str>, bool),
) -> Result<(), SourceError> {
    let got = values.len();
    let mut values = values.into_iter();
    let (Some(key), Some(user), Some(db), Some(particulars), sessions, text, None) = (
        values.next(),
        values.next(),
        values.next(),
        values.next(),
        values.next(),
        values.next(),
        values.next(),
    ) else {
        return Err(bad_answer(format!(
            "expected {SESSION_COLUMNS} columns, {} grouped, or {} with the SQL text, got {got}",
            SESSION_COLUMNS + 1,
            SESSION_COLUMNS + 2
        )));
    };
    let sessions = match sessions {
        Some(count_column) if !count_column.is_null() => count(count_column, "sessions")?,
        _ => 1,
    };
    let sql_text = text.and_then(Cell::into_text).unwrap_or_default();
    let key = key.into_text().unwrap_or_default();
    let Some([tenant, server, command, state, transaction, client, application]) =
        fields::<KEY_FIELDS>(&key, '\0')
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
        application: match ctx.parts.applications {
            true => or_none(application),
            false => "",
        },
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
        let mut blocked_by = None;
        if let Some((wait, holder)) = found.waits.get(&lock) {
            group.lock_waiting = sessions;
            group.max_lock_wait = *wait;
            blocked_by = *holder;
        }
        if active && ctx.parts.statements {
            group.statement = sql_id;
        }
        let waiters = found.waiters.get(&lock).copied().unwrap_or(0);
        // The history keeps every session detailed here: active, in a transaction,
        // waiting or blocking.
        if active || waiters > 0 || ctx.history.is_some() {
            group.session = Some(OneSession {
                id,
                sql_id: sql_id.to_string(),
                waiters,
                blocked_by,
                sql_text,
            });
        }
    }
    add(group, true);
    Ok(())
}

/// Whether the read of the sessions is sent grouped or one row each next cycle.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
