//! Reading the store back: one moment of a tenant, its timeline, and one session's
//! story. Each read is bounded by what it may return (a tenant's cap per cycle, a
//! number of steps, a number of samples), never by what a caller asks for.

use super::store::{Store, StoreError, SCHEMA_VERSION};
use crate::stats::{KeptSession, Word};
use rusqlite::{params, OpenFlags, OptionalExtension, Row};
use std::path::Path;

/// One cycle of a tenant, as read back: when, its counts and its sessions.
#[derive(Debug, Clone, PartialEq)]
pub struct Moment {
    pub at_ms: i64,
    pub sessions: u64,
    pub active: u64,
    pub lock_waiting: u64,
    pub idle_in_transaction: u64,
    pub longest_active: f64,
    /// Sessions the cap left out of this cycle.
    pub truncated: u64,
    /// In [`KeptSession::rank`] order: blockers, then the longest.
    pub kept: Vec<KeptSession>,
}

/// A value over the cycles of a step: their average and their peak.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Spread {
    pub avg: f64,
    pub peak: u64,
}

/// One step of a tenant's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The step's start, Unix milliseconds.
    pub at_ms: i64,
    /// Cycles recorded in it (0: none; its values are then zeros).
    pub cycles: u64,
    pub sessions: Spread,
    pub active: Spread,
    /// Active sessions by wait class, most first.
    pub by_wait_class: Vec<(String, Spread)>,
    pub lock_waiting: Spread,
    pub idle_in_transaction: Spread,
    /// The statements with the most active samples in the step, most first.
    pub top_statements: Vec<(String, u64)>,
}

/// Steps a timeline has at most (a day in minutes); a longer range is cut.
pub const MAX_STEPS: i64 = 1440;

/// Statements listed per step of a timeline.
pub const TOP_STATEMENTS: usize = 5;

/// The columns of a recorded session, in [`session_of`]'s order, over `samples x`
/// joined to its session `s`.
const SESSION_COLUMNS: &str = "s.session_id, sv.text, u.text, d.text, cl.text, ap.text, cm.text, \
     st.text, x.active, x.time_ms, x.transaction_age_ms, x.lock_wait_ms, x.blocked_by, x.waiters, \
     wc.text, we.text, q.sql_id, q.text";
const SESSION_JOINS: &str = "JOIN sessions s ON s.id = x.session \
     JOIN words sv ON sv.id = s.server JOIN words u ON u.id = s.user \
     JOIN words d ON d.id = s.db JOIN words cl ON cl.id = s.client \
     JOIN words ap ON ap.id = s.application JOIN words cm ON cm.id = x.command \
     JOIN words st ON st.id = x.state JOIN words wc ON wc.id = x.wait_class \
     JOIN words we ON we.id = x.wait_event LEFT JOIN statements q ON q.id = x.statement";

/// A recorded session from the columns of [`SESSION_COLUMNS`] starting at `first`.
fn session_of(r: &Row<'_>, first: usize) -> rusqlite::Result<KeptSession> {
    let seconds = |ms: Option<i64>| ms.map(|ms| ms as f64 / 1000.0);
    let at = |i: usize| first + i;
    // Text, or NULL (a session without a statement) as empty.
    let text = |i: usize| -> rusqlite::Result<Word> {
        Ok(Word::from(
            r.get_ref(i)?.as_str_or_null()?.unwrap_or_default(),
        ))
    };
    Ok(KeptSession {
        id: r.get::<_, i64>(at(0))? as u64,
        server: text(at(1))?,
        user: text(at(2))?,
        db: text(at(3))?,
        client: text(at(4))?,
        application: text(at(5))?,
        command: text(at(6))?,
        state: text(at(7))?,
        active: r.get::<_, i64>(at(8))? != 0,
        time: r.get::<_, i64>(at(9))? as f64 / 1000.0,
        transaction_age: seconds(r.get(at(10))?),
        lock_wait: seconds(r.get(at(11))?),
        blocked_by: r.get::<_, Option<i64>>(at(12))?.map(|id| id as u64),
        waiters: r.get::<_, i64>(at(13))? as u64,
        wait_class: text(at(14))?,
        wait_event: text(at(15))?,
        sql_id: text(at(16))?,
        sql_text: text(at(17))?,
    })
}

impl Store {
    /// Opens the store at `path` for reading only: nothing is created or changed,
    /// and a store of another version is refused. Version 1 differs only by the
    /// `last_at` no read uses, so it is read as it is (a recorder that could not
    /// bring it up to date, on a full disk, leaves it readable).
    pub fn open_read(path: &Path) -> Result<Store, StoreError> {
        let wrap = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = rusqlite::Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(wrap)?;
        let found: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(wrap)?;
        if !matches!(found.as_deref(), Some(v) if v == SCHEMA_VERSION || v == "1") {
            return Err(StoreError::Version {
                path: path.to_path_buf(),
                found: found.unwrap_or_else(|| "none".to_string()),
            });
        }
        Ok(Store::reading(conn, path))
    }

    /// What interrupts this store's running read from another thread.
    pub fn interrupt_handle(&self) -> rusqlite::InterruptHandle {
        self.conn.get_interrupt_handle()
    }

    fn tenant_id(&self, target: &str, tenant: &str) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT id FROM tenants WHERE target = ?1 AND name = ?2",
                params![target, tenant],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.wrap(e))
    }

    /// The last cycle of `tenant` of `target` at or before `at_ms`, with its
    /// sessions in the order they were kept.
    pub fn moment(
        &self,
        target: &str,
        tenant: &str,
        at_ms: i64,
    ) -> Result<Option<Moment>, StoreError> {
        let Some(tenant) = self.tenant_id(target, tenant)? else {
            return Ok(None);
        };
        let cycle = self
            .conn
            .query_row(
                "SELECT id, at, sessions, active, lock_waiting, idle_in_transaction, \
                 longest_active_ms, truncated FROM cycles WHERE tenant = ?1 AND at <= ?2 \
                 ORDER BY at DESC LIMIT 1",
                params![tenant, at_ms],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        Moment {
                            at_ms: r.get(1)?,
                            sessions: r.get::<_, i64>(2)? as u64,
                            active: r.get::<_, i64>(3)? as u64,
                            lock_waiting: r.get::<_, i64>(4)? as u64,
                            idle_in_transaction: r.get::<_, i64>(5)? as u64,
                            longest_active: r.get::<_, i64>(6)? as f64 / 1000.0,
                            truncated: r.get::<_, i64>(7)? as u64,
                            kept: Vec::new(),
                        },
                    ))
                },
            )
            .optional()
            .map_err(|e| self.wrap(e))?;
        let Some((cycle, mut moment)) = cycle else {
            return Ok(None);
        };
        let mut statement = self
            .conn
            .prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM samples x {SESSION_JOINS} WHERE x.cycle = ?1"
            ))
            .map_err(|e| self.wrap(e))?;
        let rows = statement
            .query_map([cycle], |r| session_of(r, 0))
            .map_err(|e| self.wrap(e))?;
        for row in rows {
            moment.kept.push(row.map_err(|e| self.wrap(e))?);
        }
        moment.kept.sort_by(KeptSession::rank);
        Ok(Some(moment))
    }

    /// `tenant`'s timeline from `from_ms` to `to_ms` in steps of `step_ms` (at least
    /// 1): one [`Step`] per step, those without a cycle included.
    pub fn timeline(
        &self,
        target: &str,
        tenant: &str,
        range: (i64, i64, i64),
    ) -> Result<Vec<Step>, StoreError> {
        self.steps(target, tenant, range, true)
    }

    /// The counts of a tenant's timeline only, without its wait classes and
    /// statements: one statement over `cycles`, what the landing page's sparkline
    /// draws.
    pub fn activity(
        &self,
        target: &str,
        tenant: &str,
        range: (i64, i64, i64),
    ) -> Result<Vec<Step>, StoreError> {
        self.steps(target, tenant, range, false)
    }

    fn steps(
        &self,
        target: &str,
        tenant: &str,
        (from_ms, to_ms, step_ms): (i64, i64, i64),
        detailed: bool,
    ) -> Result<Vec<Step>, StoreError> {
        let step_ms = step_ms.max(1);
        let span = to_ms.saturating_sub(from_ms).max(0);
        // Bounded here too, whatever the caller checked: a step a slot in memory.
        let count = (span / step_ms + i64::from(span % step_ms > 0)).min(MAX_STEPS);
        let mut steps: Vec<Step> = (0..count)
            .map(|i| Step {
                at_ms: from_ms + i * step_ms,
                cycles: 0,
                sessions: Spread::default(),
                active: Spread::default(),
                by_wait_class: Vec::new(),
                lock_waiting: Spread::default(),
                idle_in_transaction: Spread::default(),
                top_statements: Vec::new(),
            })
            .collect();
        let Some(tenant) = self.tenant_id(target, tenant)? else {
            return Ok(steps);
        };
        let wrap = |e| self.wrap(e);
        let range = params![tenant, from_ms, to_ms, step_ms];
        let len = steps.len();
        let index = |bucket: i64| usize::try_from(bucket).ok().filter(|&i| i < len);
        let mut sums = self
            .conn
            .prepare_cached(
                "SELECT (at - ?2) / ?4, COUNT(*), SUM(sessions), MAX(sessions), SUM(active), \
                 MAX(active), SUM(lock_waiting), MAX(lock_waiting), SUM(idle_in_transaction), \
                 MAX(idle_in_transaction) FROM cycles WHERE tenant = ?1 AND at >= ?2 AND at < ?3 \
                 GROUP BY 1",
            )
            .map_err(wrap)?;
        let rows = sums
            .query_map(range, |r| {
                let mut values = [0i64; 10];
                for (i, value) in values.iter_mut().enumerate() {
                    *value = r.get(i)?;
                }
                Ok(values)
            })
            .map_err(wrap)?;
        for row in rows {
            let [bucket, cycles, sessions, sessions_peak, active, active_peak, waiting, waiting_peak, idle, idle_peak] =
                row.map_err(wrap)?;
            let Some(i) = index(bucket) else { continue };
            let spread = |sum: i64, peak: i64| Spread {
                avg: sum as f64 / cycles.max(1) as f64,
                peak: peak.max(0) as u64,
            };
            let step = &mut steps[i];
            step.cycles = cycles as u64;
            step.sessions = spread(sessions, sessions_peak);
            step.active = spread(active, active_peak);
            step.lock_waiting = spread(waiting, waiting_peak);
            step.idle_in_transaction = spread(idle, idle_peak);
        }
        if !detailed {
            return Ok(steps);
        }
        let mut waits = self
            .conn
            .prepare_cached(
                "SELECT (c.at - ?2) / ?4, w.text, SUM(cw.sessions), MAX(cw.sessions) FROM cycles c \
                 JOIN cycle_waits cw ON cw.cycle = c.id JOIN words w ON w.id = cw.class \
                 WHERE c.tenant = ?1 AND c.at >= ?2 AND c.at < ?3 GROUP BY 1, 2",
            )
            .map_err(wrap)?;
        let rows = waits
            .query_map(range, |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(wrap)?;
        for row in rows {
            let (bucket, class, sum, peak) = row.map_err(wrap)?;
            let Some(i) = index(bucket) else { continue };
            let cycles = steps[i].cycles.max(1) as f64;
            steps[i].by_wait_class.push((
                class,
                Spread {
                    avg: sum as f64 / cycles,
                    peak: peak.max(0) as u64,
                },
            ));
        }
        let mut statements = self
            .conn
            .prepare_cached(
                "SELECT (c.at - ?2) / ?4, q.sql_id, SUM(cs.sessions) FROM cycles c \
                 JOIN cycle_statements cs ON cs.cycle = c.id JOIN statements q ON q.id = cs.statement \
                 WHERE c.tenant = ?1 AND c.at >= ?2 AND c.at < ?3 GROUP BY 1, 2",
            )
            .map_err(wrap)?;
        let rows = statements
            .query_map(range, |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(wrap)?;
        for row in rows {
            let (bucket, sql_id, samples) = row.map_err(wrap)?;
            let Some(i) = index(bucket) else { continue };
            let top = &mut steps[i].top_statements;
            top.push((sql_id, samples.max(0) as u64));
            // Kept short as it fills: the most samples first, ties by id.
            if top.len() > 4 * TOP_STATEMENTS {
                cut_top(top);
            }
        }
        for step in &mut steps {
            cut_top(&mut step.top_statements);
            step.by_wait_class
                .sort_by(|a, b| b.1.avg.total_cmp(&a.1.avg).then(a.0.cmp(&b.0)));
        }
        Ok(steps)
    }

    /// The cycles from `from_ms` to `to_ms` in which session `id` of `tenant` was
    /// recorded, oldest first, at most `limit` of them; and whether there were more.
    pub fn session_story(
        &self,
        target: &str,
        tenant: &str,
        id: u64,
        (from_ms, to_ms): (i64, i64),
        limit: usize,
    ) -> Result<(Vec<(i64, KeptSession)>, bool), StoreError> {
        let Some(tenant) = self.tenant_id(target, tenant)? else {
            return Ok((Vec::new(), false));
        };
        let wrap = |e| self.wrap(e);
        // The session's identities first (one, unless its id was reused), then each of
        // the tenant's cycles in range by the samples' key.
        let mut statement = self
            .conn
            .prepare_cached(&format!(
                "SELECT c.at, {SESSION_COLUMNS} FROM cycles c JOIN samples x ON x.cycle = c.id \
                 AND x.session IN (SELECT id FROM sessions WHERE tenant = ?1 AND session_id = ?2) \
                 {SESSION_JOINS} WHERE c.tenant = ?1 AND c.at >= ?3 AND c.at <= ?4 \
                 ORDER BY c.at LIMIT ?5"
            ))
            .map_err(wrap)?;
        let rows = statement
            .query_map(
                params![tenant, id as i64, from_ms, to_ms, limit as i64 + 1],
                |r| Ok((r.get::<_, i64>(0)?, session_of(r, 1)?)),
            )
            .map_err(wrap)?;
        let mut story = Vec::new();
        for row in rows {
            story.push(row.map_err(wrap)?);
        }
        let more = story.len() > limit;
        story.truncate(limit);
        Ok((story, more))
    }
}

/// Keeps the [`TOP_STATEMENTS`] with the most samples, ties by id.
fn cut_top(top: &mut Vec<(String, u64)>) {
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(TOP_STATEMENTS);
}
