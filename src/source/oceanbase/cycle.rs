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
