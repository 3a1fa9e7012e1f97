//! An OceanBase cycle: the statements it sends, in which order and when, and how
//! their rows add up.
//!
//! 1. The particulars ([`PARTICULAR_COLUMNS`]), when any part needs them: a
//!    cluster's tenants, the open transactions and the lock waits, a few rows (none
//!    when there is nothing to detail).
//! 2. The sessions ([`SESSION_COLUMNS`]), matched with the particulars, read as
//!    [`Shape`] decides: one row each, or in two statements, those without particulars
//!    grouped by their raw columns and those with them one row each. On seekdb the
//!    pair costs a third of one grouping of every session by a computed key (what this
//!    read was before issue 39), and half of sending every session, when the sessions
//!    make few groups (BENCHMARKS.md, Issue 39).
//! 3. The sessions without a client address, grouped by `HOST` ([`Grouping`]), only
//!    when the read of the sessions held some back.
//!
//! [`Grouping`]: crate::sql::Grouping

use super::per_session::{decode_particular, decode_session, group_key, Particulars, Shape};
#[cfg(doc)]
use super::per_session::{PARTICULAR_COLUMNS, SESSION_COLUMNS};
use super::{
    grouping, host_without_port, particulars_sql, sessions_read, tenant_filters, transactions,
    transactions_join, Mode, APPLICATION, TAG,
};
use crate::config::oceanbase::Oceanbase;
use crate::sql::{add_group_row, read, Connection, RowContext, SqlError};
use crate::stats::{Collected, NONE_LABEL};
use std::collections::HashSet;
use std::hash::BuildHasher;

/// The statements of a cycle, written once per pool and mode for what the account
/// can read.
#[derive(Debug, Clone)]
pub(super) struct Cycle {
    /// The particulars; None when no part needs them (a single tenant without
    /// transactions and locks).
    pub particulars: Option<String>,
    /// The sessions without particulars, grouped by their raw columns and counted.
    pub idle_groups: String,
    /// The sessions with particulars (active, or in a transaction), one row each.
    pub detailed: String,
    /// The same read, one row per session.
    pub ungrouped: String,
    /// The sessions without a client address, by `HOST` without its port.
    pub fallback: String,
}

impl Cycle {
    /// Says at debug level what a cycle may send, for a DBA reading the log.
    pub fn log(&self, target: &str) {
        if let Some(particulars) = &self.particulars {
            tracing::debug!(target = %target, sql = %particulars, "statement of particulars");
        }
        tracing::debug!(target = %target, sql = %self.idle_groups, "statement of every cycle");
        tracing::debug!(target = %target, sql = %self.detailed, "statement of every cycle, the detailed sessions");
        tracing::debug!(target = %target, sql = %self.ungrouped, "statement of every cycle, one row per session");
        tracing::debug!(target = %target, sql = %self.fallback, "statement of clients without an address");
    }

    /// Sends the cycle's statements on `conn` and adds their rows up. `tenants` are
    /// present even without rows; `shape` says which read of the sessions to send,
    /// and is updated for the next cycle.
    pub async fn run<C: Connection>(
        &self,
        conn: &mut C,
        ctx: &RowContext<'_>,
        tenants: &[&str],
        shape: &mut Shape,
    ) -> Result<Collected, SqlError<C::Error>> {
        let mut aggregator = ctx.aggregator(tenants);
        let mut particulars = Particulars::default();
        if let Some(sql) = &self.particulars {
            read(conn, sql, |row| {
                decode_particular(row, &mut particulars, &mut aggregator)
            })
            .await?;
        }
        let reads = match shape.ungrouped {
            true => vec![&self.ungrouped],
            false => vec![&self.idle_groups, &self.detailed],
        };
        // The sessions the read added, and how many groups they make: the distinct
        // keys of those without particulars (each with particulars is a group of
        // its own), whatever the read's shape (see [`Shape`]).
        let (mut sessions, mut apart, mut held) = (0u64, 0u64, false);
        let mut keys = HashSet::<u64, foldhash::fast::RandomState>::default();
        for sql in reads {
            read(conn, sql, |row| {
                decode_session(row, ctx, &particulars, |g, detailed| {
                    // A session with particulars has its client already (see
                    // [`decode_session`]); the fallback reads only the others again.
                    if !detailed && g.client == NONE_LABEL {
                        held = true;
                        return;
                    }
                    if g.sessions > 0 {
                        sessions += g.sessions;
                        match detailed {
                            true => apart += 1,
                            false => {
                                keys.insert(keys.hasher().hash_one(group_key(&g)));
                            }
                        }
                    }
                    aggregator.add_group(g);
                })
            })
            .await?;
        }
        if held {
            read(conn, &self.fallback, |row| {
                add_group_row(&mut aggregator, row, ctx)
            })
            .await?;
        }
        *shape = shape.next(sessions, keys.len() as u64 + apart);
        Ok(aggregator.finish())
    }
}

/// The statements of a cycle in `mode` (see [`Cycle`]): first the particulars (a
/// cluster's tenants, the open transactions, the lock waits and who holds them: a few
/// rows, none when there is nothing to detail), then the sessions (see
/// [`SESSION_COLUMNS`] and [`Shape`]): one row each, or the sessions
/// without particulars grouped and those with them one row each; and the sessions
/// without a client address grouped by HOST only when there are such. `trans_state`
/// says whether the processlist has `TRANS_STATE`, which tells each session's
/// transaction without a join.
#[cfg(test)]
pub(super) fn cycle(settings: &Oceanbase, mode: Mode, trans_state: bool) -> Cycle {
    cycle_reading(settings, mode, trans_state, None)
}

/// [`cycle`], and with the session history on (`history` is its `sql_text_max`) the
/// statement of particulars names the holder of each waited-for row lock, and the
/// per-session reads select the `INFO` of the sessions with particulars, cut at that
/// many characters (0: none; the one-row reads then have six columns, see
/// [`SESSION_COLUMNS`]). Without it the statements are those of [`cycle`].
pub(super) fn cycle_reading(
    settings: &Oceanbase,
    mode: Mode,
    trans_state: bool,
    history: Option<usize>,
) -> Cycle {
    let (sessions, tenants) = match mode {
        Mode::Cluster => tenant_filters(settings),
        Mode::SingleTenant => (String::new(), String::new()),
    };
    let cluster = mode == Mode::Cluster;
    let parts = settings.database.collect;
    let (relation, filter) = sessions_read(settings, mode, &sessions);
    // Which sessions have particulars: a cheap superset of "active or in a
    // transaction", which the rules decide from the key.
    let (joins, transaction, detailed) = match (parts.transactions || parts.locks, trans_state) {
        (false, _) => (String::new(), "''", "p.STATE = 'ACTIVE'"),
        (true, true) => (
            String::new(),
            "IFNULL(p.TRANS_STATE, '')",
            "p.STATE = 'ACTIVE' OR p.TRANS_STATE <> ''",
        ),
        (true, false) => (
            transactions_join(&transactions(settings, mode), cluster),
            "CASE WHEN s.SESSION_ID IS NOT NULL THEN 'ACTIVE' ELSE '' END",
            "p.STATE = 'ACTIVE' OR s.SESSION_ID IS NOT NULL",
        ),
    };
    let (tenant, server) = match cluster {
        true => ("IFNULL(p.TENANT, '')", "IFNULL(p.SVR_IP, '')"),
        false => ("''", "''"),
    };
    // The port tells a transaction's session (ids are unique per server); without
    // transactions it is not read, and a configured view may lack it.
    let port = match cluster && parts.transactions {
        true => "p.SVR_PORT",
        false => "0",
    };
    // Lock rows name a session by its transaction id: read only with locks.
    let transaction_id = if parts.locks {
        "IFNULL(p.TRANS_ID, 0)"
    } else {
        "0"
    };
    let command = if parts.states {
        "IFNULL(p.COMMAND, '')"
    } else {
        "''"
    };
    let application = match parts.applications {
        true => format!("IFNULL({APPLICATION}, '')"),
        false => "''".to_string(),
    };
    // Of the particulars, the SQL id names a top session (an active one) and HOST the
    // client of a session without USER_CLIENT_IP: each is sent only then.
    let columns = format!(
        "CONCAT_WS(CHAR(0), {tenant}, {server}, {command}, IFNULL(p.STATE, ''), {transaction}, \
         IFNULL(p.USER_CLIENT_IP, ''), {application}), p.USER, p.DB, CASE WHEN {detailed} THEN CONCAT_WS(',', \
         {port}, IFNULL(p.ID, 0), IFNULL(p.TIME, 0), {transaction_id}, \
         IF(p.STATE = 'ACTIVE', IFNULL(p.SQL_ID, ''), ''), \
         IF(p.USER_CLIENT_IP <> '', '', IFNULL(p.HOST, ''))) END"
    );
    let from = format!("FROM {relation}{joins} WHERE {filter}");
    let text = match history.unwrap_or(0) {
        0 => String::new(),
        n => format!(", NULL, CASE WHEN {detailed} THEN SUBSTR(p.INFO, 1, {n}) END"),
    };
    // The sessions without particulars, grouped by their raw columns and keyed after
    // the grouping (the key's expressions run once a group, not once a session): their
    // transaction is none, by the condition that leaves them out of the detailed read.
    let idle_key = format!(
        "CONCAT_WS(CHAR(0), {tenant}, {server}, {command}, IFNULL(p.STATE, ''), '', \
         IFNULL(p.USER_CLIENT_IP, ''), {application}), p.USER, p.DB, NULL"
    );
    let mut idle_keys: Vec<&str> = Vec::new();
    if cluster {
        idle_keys.extend(["p.TENANT", "p.SVR_IP"]);
    }
    if parts.states {
        idle_keys.push("p.COMMAND");
    }
    idle_keys.extend(["p.STATE", "p.USER_CLIENT_IP"]);
    if parts.applications {
        idle_keys.extend(["p.MODULE", "p.CLIENT_INFO"]);
    }
    idle_keys.extend(["p.USER", "p.DB"]);
    let mut fallback = grouping(settings, mode, &sessions, &tenants, trans_state, false);
    fallback.client = host_without_port("p.HOST");
    fallback.filter.push_str(&format!(
        " AND (p.USER_CLIENT_IP = '' OR p.USER_CLIENT_IP IS NULL) \
         AND CASE WHEN {detailed} THEN 0 ELSE 1 END = 1"
    ));
    fallback.union = String::new();
    Cycle {
        particulars: particulars_sql(settings, mode, &tenants, history.is_some()),
        idle_groups: format!(
            "{TAG} SELECT {idle_key}, COUNT(*) {from} AND CASE WHEN {detailed} THEN 0 ELSE 1 END = 1 \
             GROUP BY {}",
            idle_keys.join(", ")
        ),
        detailed: format!("{TAG} SELECT {columns}{text} {from} AND ({detailed})"),
        ungrouped: format!("{TAG} SELECT {columns}{text} {from}"),
        fallback: fallback.statement(),
    }
}
