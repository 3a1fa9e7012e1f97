//! A MySQL/MariaDB cycle: the statements it sends, in which order and when, and how
//! their rows add up.
//!
//! 1. The grouping ([`Grouping`]), every cycle: sessions by user, client, command,
//!    state and transaction, the active threads kept apart.
//! 2. The programs of connections not seen before ([`Connections`]), when
//!    applications are collected and the grouping named a new connection.
//! 3. What the active threads wait on and run ([`ACTIVITY_COLUMNS`]), when waits or
//!    statements are collected, or the session history keeps their text, and a thread
//!    is active; the threads' read is left out
//!    once every active thread's id is known.
//! 4. Who blocks whom ([`DETAIL_COLUMNS`]), only when the grouping shows a thread
//!    waiting for a lock.
//! 5. Who holds the metadata locks waited for ([`super::metadata`]), likewise.

use super::connections::{ids_of, Connections};
use crate::error::SourceError;
use crate::sql::{
    bad_answer, client_of, count, db_label, decode_group, read, seconds, Cell, Connection,
    LockWait, RowContext, SqlError,
};
use crate::stats::{
    Aggregator, Blocker, Collected, Counts, Detail, HeldLock, TopSession, CPU, NONE_LABEL,
};
use std::collections::{HashMap, HashSet};

/// The statements of a cycle, written once per pool for what the account can read.
#[derive(Debug, Clone)]
pub(super) struct Cycle {
    /// [`Grouping::statement`](crate::sql::Grouping::statement).
    pub grouping: String,
    /// Who blocks whom; None when lock waits are off or their relation is not
    /// readable.
    pub blockers: Option<String>,
    /// What the active threads wait on and run, with their thread ids, and without
    /// (sent when every active thread is known); None when neither waits nor
    /// statements are collected.
    pub activity: Option<(String, String)>,
    /// What comes before a statement of programs ([`Connections::statement`]); None
    /// when applications are not collected.
    pub programs: Option<String>,
    /// Who holds the metadata locks waited for ([`super::metadata::statement`]);
    /// None when lock waits are off or the server does not show metadata locks.
    pub metadata: Option<String>,
}

impl Cycle {
    /// Says at debug level what a cycle may send, for a DBA reading the log.
    pub fn log(&self, target: &str) {
        tracing::debug!(target = %target, sql = %self.grouping, "statement of every cycle");
        if let Some(blockers) = &self.blockers {
            tracing::debug!(target = %target, sql = %blockers, "statement of details");
        }
        if let Some((activity, _)) = &self.activity {
            tracing::debug!(target = %target, sql = %activity, "statement of activity");
        }
        if let Some(metadata) = &self.metadata {
            tracing::debug!(target = %target, sql = %metadata, "statement of metadata locks");
        }
    }

    /// Sends the cycle's statements on `conn` and adds their rows up. `known` holds
    /// what earlier cycles learnt of the server's connections (their programs and
    /// threads), and learns this cycle's.
    pub async fn run<C: Connection>(
        &self,
        conn: &mut C,
        ctx: &RowContext<'_>,
        known: &mut Connections,
    ) -> Result<Collected, SqlError<C::Error>> {
        let mut found = Found {
            aggregator: ctx.aggregator(&[ctx.tenant]),
            active: Vec::new(),
            by_connection: Vec::new(),
            statement_lock_waits: false,
        };
        // Without applications nothing is known of the connections across cycles.
        let mut known = self.programs.as_ref().map(|_| known);
        read(conn, &self.grouping, |row| found.add_group(row, ctx)).await?;
        if let (Some(prefix), Some(known)) = (&self.programs, known.as_deref_mut()) {
            let unknown = known.unknown(found.by_connection.iter().flat_map(|(_, ids, ..)| ids));
            if !unknown.is_empty() {
                let sql = Connections::statement(prefix, &unknown);
                let learnt = read(conn, &sql, |row| known.learn(row)).await;
                // Asked once, answered (if strangely): those without a row named none.
                if !matches!(learnt, Err(SqlError::Driver(_))) {
                    known.settle(&unknown);
                }
                learnt?;
            }
        }
        let mut activity = Activity::default();
        if let Some((with_threads, without)) = self.activity.as_ref() {
            if !found.active.is_empty() {
                let threads_known = known
                    .as_deref()
                    .is_some_and(|known| found.active.iter().all(|id| known.thread(*id).is_some()));
                let sql = if threads_known { without } else { with_threads };
                let answer = read(conn, sql, |row| decode_activity(row, &mut activity)).await;
                keep_threads(&answer, &activity, known.as_deref_mut());
                answer?;
            }
        }
        if let Some(blockers) = &self.blockers {
            if found.aggregator.present().lock_waits {
                let answer = read(conn, blockers, |row| {
                    let row = decode_blocker_row(row, ctx)?;
                    if let Some((waiter, blocker)) = row.waits_on {
                        if let Some(kept) = found
                            .aggregator
                            .kept_mut(&row.tenant)
                            .iter_mut()
                            .find(|kept| kept.id == waiter)
                        {
                            kept.blocked_by = Some(blocker);
                        }
                        return Ok(());
                    }
                    if let Some(top) = row.top {
                        found.aggregator.add_top_apart(top);
                    }
                    if let Some(blocker) = row.blocker {
                        if let Some(kept) = found
                            .aggregator
                            .kept_mut(&row.tenant)
                            .iter_mut()
                            .find(|kept| kept.id == blocker.session_id)
                        {
                            kept.waiters = blocker.waiters;
                        }
                        found.aggregator.add_blocker(row.tenant.clone(), blocker);
                    }
                    found.aggregator.add_detail(row.tenant, row.detail);
                    Ok(())
                })
                .await;
                keep_threads(&answer, &activity, known.as_deref_mut());
                answer?;
            }
        }
        if let Some(metadata) = &self.metadata {
            if found.statement_lock_waits {
                let mut waits = Vec::new();
                let answer = read(conn, metadata, |row| {
                    waits.push(super::metadata::decode(row, ctx)?);
                    Ok(())
                })
                .await;
                keep_threads(&answer, &activity, known.as_deref_mut());
                // Naming the holder is an extra: a failed read (a timeout on a huge
                // metadata_locks, a grant revoked) loses the holders, not the cycle,
                // and never while a pile-up is on.
                match answer {
                    Ok(()) => found.add_metadata_waits(&waits, ctx),
                    Err(SqlError::Answer(err)) => {
                        tracing::debug!(target = %ctx.tenant, "reading the metadata locks: {err}");
                    }
                    Err(SqlError::Driver(_)) => {
                        tracing::debug!(target = %ctx.tenant, "reading the metadata locks failed");
                    }
                }
            }
        }
        Ok(found.finish(ctx, activity, known))
    }
}

/// After an answer that could not be read (a bad row), the threads the statement of
/// activity found are learnt all the same: they are the server's, whatever came after
/// them, and the next cycle need not read them again.
fn keep_threads<E>(
    answer: &Result<(), SqlError<E>>,
    activity: &Activity,
    known: Option<&mut Connections>,
) {
    if let (Err(SqlError::Answer(_)), Some(known)) = (answer, known) {
        for (id, thread) in &activity.threads {
            known.learn_thread(*id, *thread);
        }
    }
}

/// What a cycle's rows showed, beside the aggregator: the active sessions the
/// grouping kept apart, whose activity is to be counted (see [`ACTIVITY_COLUMNS`]),
/// and the groups whose sessions are to be counted by their connections' programs
/// (tenant, connection ids, sessions, counts of one session of the group).
struct Found {
    aggregator: Aggregator,
    active: Vec<u64>,
    by_connection: Vec<(String, Vec<u64>, u64, Counts)>,
    /// Whether a session waits for a metadata or table lock (a STATE `Waiting for
    /// … lock`): only then are the metadata locks' holders read, never for the row
    /// lock waits of an InnoDB pile-up.
    statement_lock_waits: bool,
}

impl Found {
    /// Adds a row of the grouping.
    fn add_group<C: Cell>(&mut self, row: Vec<C>, ctx: &RowContext<'_>) -> Result<(), SourceError> {
        let (g, ids, waits) = decode_group(row, ctx)?;
        self.statement_lock_waits |= waits == LockWait::Statement && g.sessions > 0;
        if let Some(ids) = ids.filter(|_| ctx.parts.applications && g.sessions > 0) {
            let one = Counts {
                sessions: 1,
                active: u64::from(g.active > 0),
                idle_in_transaction: u64::from(g.idle_in_transaction > 0),
            };
            self.by_connection
                .push((g.tenant.clone(), ids_of(&ids)?, g.sessions, one));
        }
        if let Some(session) = g.session.as_ref().filter(|_| g.active > 0) {
            if ctx.parts.waits || ctx.parts.statements || ctx.history.is_some() {
                self.active.push(session.id);
            }
        }
        self.aggregator.add_group(g);
        Ok(())
    }

    /// The holders of the metadata locks waited for, as blockers; with the session
    /// history, each kept waiter waits on its holder (when the row locks named none).
    fn add_metadata_waits(
        &mut self,
        waits: &[super::metadata::MetadataWait],
        ctx: &RowContext<'_>,
    ) {
        let kept = self.aggregator.kept_mut(ctx.tenant);
        for wait in waits {
            if let Some(kept) = kept.iter_mut().find(|k| k.id == wait.waiter) {
                kept.blocked_by.get_or_insert(wait.holder.session_id);
            }
        }
        for holder in super::metadata::holders(waits) {
            if let Some(kept) = self
                .aggregator
                .kept_mut(ctx.tenant)
                .iter_mut()
                .find(|k| k.id == holder.session_id)
            {
                kept.waiters += holder.waiters;
            }
            self.aggregator.add_blocker(ctx.tenant.to_string(), holder);
        }
    }

    /// Each active session's wait and statement, through its thread (read now, or
    /// known from an earlier cycle): one the statement of activity did not find has
    /// ended its statement since the grouping, and was running it, on CPU. Then the
    /// sessions by program, and the connections that have ended are forgotten.
    fn finish(
        mut self,
        ctx: &RowContext<'_>,
        activity: Activity,
        known: Option<&mut Connections>,
    ) -> Collected {
        let words = self.aggregator.words();
        for id in &self.active {
            let thread = activity
                .threads
                .get(id)
                .copied()
                .or_else(|| known.as_deref().and_then(|known| known.thread(*id)));
            let wait = thread
                .and_then(|t| activity.waits.get(&t))
                .map(|(_, name)| name.as_str())
                .filter(|name| !name.is_empty());
            let (class, event) = match wait {
                Some(event) => (instrument_class(event), event),
                None => (CPU, CPU),
            };
            let digest = thread.and_then(|t| activity.digests.get(&t));
            let statement = digest.map(String::as_str).unwrap_or_default();
            self.aggregator
                .add_activity(ctx.tenant, (class, event), statement);
            let text = thread.and_then(|t| activity.texts.get(&t));
            if let Some(kept) = self
                .aggregator
                .kept_mut(ctx.tenant)
                .iter_mut()
                .find(|kept| kept.id == *id)
            {
                // Words only for a kept session: an active one the history does not
                // keep (or none, without the history) copies nothing.
                let [class, event, statement, text] =
                    words.words([class, event, statement, text.map_or("", String::as_str)]);
                if ctx.parts.waits {
                    kept.wait_class = class;
                    kept.wait_event = event;
                }
                if ctx.parts.statements {
                    kept.sql_id = statement;
                }
                if !text.is_empty() {
                    kept.sql_text = text;
                }
            }
        }
        if let Some(known) = known {
            for (id, thread) in &activity.threads {
                known.learn_thread(*id, *thread);
            }
            for kept in self.aggregator.kept_mut(ctx.tenant) {
                kept.application = words.word(known.of(kept.id).unwrap_or(NONE_LABEL));
            }
            self.count_programs(known);
        }
        self.aggregator.finish()
    }

    /// Counts the sessions of the groups that sent their connection ids by each
    /// connection's program ([`NONE_LABEL`] for none, and for connections a
    /// truncated id list left out), and forgets the connections that have ended.
    fn count_programs(&mut self, known: &mut Connections) {
        // The active ones too: without ids (applications off) they are all it knows.
        let mut current: HashSet<u64> = self.active.iter().copied().collect();
        let mut counted: HashMap<(String, String), Counts> = HashMap::new();
        for (tenant, ids, sessions, one) in std::mem::take(&mut self.by_connection) {
            let listed = ids.len() as u64;
            for id in ids {
                current.insert(id);
                let program = known.of(id).unwrap_or(NONE_LABEL);
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
        known.keep_only(&current);
        for ((tenant, program), counts) in counted {
            self.aggregator.add_application(&tenant, &program, counts);
        }
    }
}

/// Decodes one row of the statement of blockers (see [`DETAIL_COLUMNS`]): a tenant's
/// longest times, transactions and lock waits, and the session the row names when
/// it is one of the longest active ones or others wait on it. With the session
/// history on, a last column names the thread a waiting one waits on.
fn decode_blocker_row<C: Cell>(
    mut values: Vec<C>,
    ctx: &RowContext<'_>,
) -> Result<DetailRow, SourceError> {
    let got = values.len();
    let blocked_by = match got == DETAIL_COLUMNS + 1 {
        true => values.pop(),
        false => None,
    };
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
        waits_on: None,
    };
    if let Some(blocker) = blocked_by.filter(|b| !b.is_null()) {
        row.waits_on = Some((count(id, "id")?, count(blocker, "blocked by")?));
        return Ok(row);
    }
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
            lock: HeldLock::Row,
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
        3 => {
            let thread = count(a, "THREAD_ID")?;
            if let Some(sql) = text.into_text().filter(|t| !t.is_empty()) {
                found.texts.insert(thread, sql);
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
    /// The statements' text, read for the session history only.
    texts: HashMap<u64, String, foldhash::fast::RandomState>,
}

/// A row of the statement of blockers, decoded.
struct DetailRow {
    tenant: String,
    detail: Detail,
    top: Option<TopSession>,
    blocker: Option<Blocker>,
    /// A waiting thread and the thread it waits on (for the session history).
    waits_on: Option<(u64, u64)>,
}

/// The columns of the statement of blockers (written in the shape of a statement of
/// details, which other kinds read too): tenant, session id (NULL for what is not
/// one session), user, db, client, SQL id; longest active TIME, longest TIME idle in
/// a transaction, oldest transaction's age, sessions waiting for a lock, longest
/// wait, sessions waiting on this one, and whether the session is active (one of the
/// longest active ones).
pub(super) const DETAIL_COLUMNS: usize = 13;

/// The columns of a statement of activity: kind (0 an active thread, 1 a current
/// wait, 2 a current statement, 3 its text, for the session history), then by kind a
/// session's `PROCESSLIST_ID` and `THREAD_ID`; a thread's id, the wait's `EVENT_ID`
/// and `EVENT_NAME`; a thread's id, NULL and its statement's digest, or its text.
/// Flat reads of performance_schema, joined
/// here: MariaDB's performance_schema tables have no index, and a join of them costs
/// the server several times the three scans.
///
/// Only the sessions the grouping saw active are counted: one the statement does not
/// find (it ended between the two reads), or finds waiting for nothing, is on
/// [`CPU`], so the waits add up to the active sessions exactly.
pub(super) const ACTIVITY_COLUMNS: usize = 4;

/// The wait class of a MySQL instrument name: its first three parts
/// (`wait/io/table` of `wait/io/table/sql/handler`, `wait/synch/mutex`, `idle`).
pub(super) fn instrument_class(event: &str) -> &str {
    match event.match_indices('/').nth(2) {
        Some((at, _)) => &event[..at],
        None => event,
    }
}

#[cfg(test)]
mod tests;
