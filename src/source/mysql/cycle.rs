//! A MySQL/MariaDB cycle: the statements it sends, in which order and when, and how
//! their rows add up.
//!
//! 1. The grouping ([`Grouping`]), every cycle: sessions by user, client, command,
//!    state and transaction, the active threads kept apart.
//! 2. The programs of connections not seen before ([`Connections`]), when
//!    applications are collected and the grouping named a new connection.
//! 3. What the active threads wait on and run ([`ACTIVITY_COLUMNS`]), when waits or
//!    statements are collected and a thread is active; the threads' read is left out
//!    once every active thread's id is known.
//! 4. Who blocks whom ([`DETAIL_COLUMNS`]), only when the grouping shows a thread
//!    waiting for a lock.

use super::connections::{ids_of, Connections};
use crate::error::SourceError;
use crate::sql::{
    bad_answer, client_of, count, db_label, decode_group, read, seconds, Cell, Connection,
    RowContext, SqlError,
};
use crate::stats::{Aggregator, Blocker, Collected, Counts, Detail, TopSession, CPU, NONE_LABEL};
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
}

impl Found {
    /// Adds a row of the grouping.
    fn add_group<C: Cell>(&mut self, row: Vec<C>, ctx: &RowContext<'_>) -> Result<(), SourceError> {
        let (g, ids) = decode_group(row, ctx)?;
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
            if ctx.parts.waits || ctx.parts.statements {
                self.active.push(session.id);
            }
        }
        self.aggregator.add_group(g);
        Ok(())
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
            if let Some(kept) = self
                .aggregator
                .kept_mut(ctx.tenant)
                .iter_mut()
                .find(|kept| kept.id == *id)
            {
                kept.wait_class = class.to_string();
                kept.wait_event = event.to_string();
                kept.sql_id = statement.to_string();
            }
        }
        if let Some(known) = known {
            for (id, thread) in &activity.threads {
                known.learn_thread(*id, *thread);
            }
            for kept in self.aggregator.kept_mut(ctx.tenant) {
                kept.application = known.of(kept.id).unwrap_or(NONE_LABEL).to_string();
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
/// it is one of the longest active ones or others wait on it.
fn decode_blocker_row<C: Cell>(
    values: Vec<C>,
    ctx: &RowContext<'_>,
) -> Result<DetailRow, SourceError> {
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

/// A row of the statement of blockers, decoded.
struct DetailRow {
    tenant: String,
    detail: Detail,
    top: Option<TopSession>,
    blocker: Option<Blocker>,
}

/// The columns of the statement of blockers (written in the shape of a statement of
/// details, which other kinds read too): tenant, session id (NULL for what is not
/// one session), user, db, client, SQL id; longest active TIME, longest TIME idle in
/// a transaction, oldest transaction's age, sessions waiting for a lock, longest
/// wait, sessions waiting on this one, and whether the session is active (one of the
/// longest active ones).
pub(super) const DETAIL_COLUMNS: usize = 13;

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
mod tests {
    use super::super::{cycle, row_context, LockWaits};
    use super::*;
    use crate::config::testing;
    use crate::sql::fixtures::{block_on, counts as c, group, idle, named, pairs, row, Scripted};
    use mysql_async::Value;
    use std::time::Duration;

    /// The columns of the statement of blockers, in order.
    const DETAIL: [&str; DETAIL_COLUMNS] = [
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

    /// A row of the statement of blockers from its named values.
    fn detail(values: &[(&str, &str)]) -> Vec<Value> {
        named(&DETAIL, values)
    }

    /// The grouping's row of one active thread, connection 7, kept apart.
    fn busy_thread_7() -> Vec<Value> {
        group(&[
            ("command", "Query"),
            ("sessions", "1"),
            ("session", "7"),
            ("ids", "7"),
        ])
    }

    fn rows(texts: &[&str]) -> Vec<Vec<Value>> {
        texts.iter().map(|text| row(text)).collect()
    }

    /// Every part on, blockers from MariaDB's relation.
    fn every_part() -> (crate::config::Database, Cycle) {
        let database = testing::database("monitor", 3306);
        let cycle = cycle(
            &database,
            Duration::from_secs(1),
            Some(LockWaits::InformationSchema),
            false,
        );
        (database, cycle)
    }

    /// The activity of the active threads the grouping kept apart, joined through
    /// their thread ids: a thread's innermost wait is its latest; a session the
    /// statement does not find, or finds waiting for nothing, is on CPU; a thread the
    /// grouping did not see active is not counted. The waits add up to the active
    /// sessions. No thread waits for a lock, so no blocker is read; no group sends
    /// connection ids, so no program is.
    #[test]
    fn activity_rows_count_each_active_thread_once() {
        let (database, cycle) = every_part();
        let ctx = row_context(&database, "maria");
        let active = |id: &'static str| {
            group(&[
                ("db", "shop"),
                ("user", "app"),
                ("command", "Query"),
                ("state", "User sleep"),
                ("sessions", "1"),
                ("time", "3"),
                ("session", id),
                ("application", "it-batch"),
            ])
        };
        let mut groups: Vec<_> = ["7", "8", "10"].into_iter().map(active).collect();
        groups.push(group(&[("command", "Sleep"), ("sessions", "4")]));
        let (with_threads, _) = cycle.activity.clone().unwrap();
        let mut conn = Scripted::default().answer(&cycle.grouping, groups).answer(
            &with_threads,
            rows(&[
                "0|7|107|∅",
                "0|8|108|∅",
                "0|9|109|∅",
                "0|10|110|∅",
                "1|107|5|wait/synch/mutex/innodb/lock_mutex",
                "1|107|9|wait/io/table/sql/handler",
                "1|109|4|wait/io/file/innodb/innodb_data_file",
                "2|107|∅|d1",
                "2|110|∅|d1",
                "2|109|∅|d2",
            ]),
        );
        let mut known = Connections::default();
        let collected = block_on(cycle.run(&mut conn, &ctx, &mut known)).unwrap();
        assert_eq!(
            conn.take_sent(),
            [cycle.grouping.clone(), with_threads.clone()]
        );
        let tenants = collected.into_tenants();
        let t = &tenants["maria"];
        let waits: Vec<(&str, &str, u64)> = t
            .by_wait
            .iter()
            .map(|((class, event), n)| (class.as_str(), event.as_str(), *n))
            .collect();
        assert_eq!(
            waits,
            [
                ("CPU", "CPU", 2),
                ("wait/io/table", "wait/io/table/sql/handler", 1)
            ]
        );
        assert_eq!(t.active_sessions, 3);
        assert_eq!(
            t.by_statement.iter().collect::<Vec<_>>(),
            [(&"d1".to_string(), &2)]
        );
        assert_eq!(
            pairs(&t.by_application),
            [(NONE_LABEL, c(4, 0)), ("it-batch", c(3, 3))]
        );
        let mut bad = Scripted::default()
            .answer(&cycle.grouping, vec![active("7")])
            .answer(&with_threads, rows(&["1|x|1|wait/io"]));
        let err = block_on(cycle.run(&mut bad, &ctx, &mut Connections::default()));
        assert!(
            matches!(err, Err(SqlError::Answer(_))),
            "a session id that is not a number"
        );
    }

    /// With the session history on, a thread in a transaction is kept apart as an
    /// active one is, and both are kept with what the later reads found: the active
    /// one's wait and statement, each one's program (none known here). The
    /// statistics are those of the cycle without it.
    #[test]
    fn the_history_keeps_active_threads_and_those_in_a_transaction() {
        let database = testing::database("monitor", 3306);
        let cycle = cycle(
            &database,
            Duration::from_secs(1),
            Some(LockWaits::InformationSchema),
            true,
        );
        assert!(
            cycle
                .grouping
                .contains("OR t.trx_id IS NOT NULL THEN p.ID END"),
            "{}",
            cycle.grouping
        );
        let groups = vec![
            group(&[
                ("db", "shop"),
                ("user", "app"),
                ("command", "Query"),
                ("state", "updating"),
                ("transaction", "RUNNING"),
                ("sessions", "1"),
                ("time", "3"),
                ("transaction_age", "5"),
                ("session", "7"),
            ]),
            group(&[
                ("db", "shop"),
                ("user", "app"),
                ("command", "Sleep"),
                ("transaction", "RUNNING"),
                ("sessions", "1"),
                ("time", "40"),
                ("transaction_age", "41"),
                ("session", "12"),
            ]),
            group(&[("command", "Sleep"), ("sessions", "4")]),
        ];
        let (with_threads, _) = cycle.activity.clone().unwrap();
        let answers = || {
            Scripted::default()
                .answer(&cycle.grouping, groups.clone())
                .answer(
                    &with_threads,
                    rows(&[
                        "0|7|107|∅",
                        "1|107|5|wait/io/table/sql/handler",
                        "2|107|∅|d1",
                    ]),
                )
        };
        let plain = row_context(&database, "maria");
        let without = block_on(cycle.run(&mut answers(), &plain, &mut Connections::default()))
            .unwrap()
            .into_tenants();
        let ctx = RowContext {
            history: Some(10),
            ..plain
        };
        let mut with = block_on(cycle.run(&mut answers(), &ctx, &mut Connections::default()))
            .unwrap()
            .into_tenants();
        let t = with.get_mut("maria").unwrap();
        let kept = std::mem::take(&mut t.kept);
        assert_eq!(*t, without["maria"], "the statistics do not change");
        let seen: Vec<_> = kept
            .iter()
            .map(|k| {
                (
                    k.id,
                    k.active,
                    k.time,
                    k.transaction_age,
                    k.wait_event.as_str(),
                    k.sql_id.as_str(),
                    k.application.as_str(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (12, false, 40.0, Some(41.0), "", "", NONE_LABEL),
                (
                    7,
                    true,
                    3.0,
                    Some(5.0),
                    "wait/io/table/sql/handler",
                    "d1",
                    NONE_LABEL
                ),
            ],
            "the longest first"
        );
    }

    /// A thread id read once serves the next cycles: the statement of activity then
    /// leaves out the threads' read, and the waits are still found.
    #[test]
    fn known_threads_need_no_second_read() {
        let (database, cycle) = every_part();
        let ctx = row_context(&database, "maria");
        let (with_threads, without) = cycle.activity.clone().unwrap();
        let mut known = Connections::default();
        for (n, activity, rows_of_activity) in [
            (
                1,
                &with_threads,
                &["0|7|107|∅", "1|107|3|wait/io/table/sql/handler"][..],
            ),
            (2, &without, &["1|107|4|wait/io/table/sql/handler"][..]),
        ] {
            let mut conn = Scripted::default()
                .answer(&cycle.grouping, vec![busy_thread_7()])
                .answer(activity, rows(rows_of_activity));
            let tenants = block_on(cycle.run(&mut conn, &ctx, &mut known))
                .unwrap()
                .into_tenants();
            let sent = conn.take_sent();
            let programs = Connections::statement(cycle.programs.as_ref().unwrap(), &[7]);
            let expected = match n {
                1 => vec![cycle.grouping.clone(), programs, with_threads.clone()],
                _ => vec![cycle.grouping.clone(), without.clone()],
            };
            assert_eq!(sent, expected, "cycle {n}");
            let waits: Vec<_> = tenants["maria"].by_wait.keys().cloned().collect();
            assert_eq!(
                waits,
                [(
                    "wait/io/table".to_string(),
                    "wait/io/table/sql/handler".to_string()
                )],
                "cycle {n}"
            );
        }
    }

    /// Applications by connection: each group sends its connection ids, the
    /// programs of those not seen before are read once, and the sessions are counted
    /// by them; the next cycle reads only the new connections, and forgets the ended.
    #[test]
    fn applications_are_counted_by_connection_each_read_once() {
        let mut database = testing::database("monitor", 3306);
        // Without waits and statements, the active thread's activity is not read.
        database.collect.waits = false;
        database.collect.statements = false;
        let cycle = cycle(&database, Duration::from_secs(1), None, false);
        let ctx = row_context(&database, "maria");
        let prefix = cycle.programs.clone().unwrap();
        let mut known = Connections::default();
        let idle = |ids: &'static str, n: &'static str| {
            group(&[("command", "Sleep"), ("sessions", n), ("ids", ids)])
        };
        let busy = group(&[
            ("command", "Query"),
            ("sessions", "1"),
            ("session", "4"),
            ("ids", "4"),
        ]);
        let programs = Connections::statement(&prefix, &[1, 2, 3, 4]);
        let mut conn = Scripted::default()
            .answer(&cycle.grouping, vec![idle("1,2,3", "3"), busy])
            .answer(&programs, rows(&["1|web", "4|batch"]));
        let tenants = block_on(cycle.run(&mut conn, &ctx, &mut known))
            .unwrap()
            .into_tenants();
        assert_eq!(conn.take_sent(), [cycle.grouping.clone(), programs]);
        assert_eq!(
            pairs(&tenants["maria"].by_application),
            [(NONE_LABEL, c(2, 0)), ("batch", c(1, 1)), ("web", c(1, 0))]
        );
        // Connection 1 has ended, 5 is new; an id list cut short counts the rest as none.
        let programs = Connections::statement(&prefix, &[5]);
        let mut conn = Scripted::default().answer(&cycle.grouping, vec![idle("2,3,5", "4")]);
        let tenants = block_on(cycle.run(&mut conn, &ctx, &mut known))
            .unwrap()
            .into_tenants();
        assert_eq!(conn.take_sent(), [cycle.grouping.clone(), programs]);
        assert_eq!(
            pairs(&tenants["maria"].by_application),
            [(NONE_LABEL, c(4, 0))]
        );
        // Known connections are not read again; ended ones are forgotten.
        let mut conn = Scripted::default().answer(&cycle.grouping, vec![idle("2", "1")]);
        block_on(cycle.run(&mut conn, &ctx, &mut known)).unwrap();
        assert_eq!(conn.take_sent(), std::slice::from_ref(&cycle.grouping));
        let mut conn = Scripted::default().answer(&cycle.grouping, vec![idle("1", "1")]);
        block_on(cycle.run(&mut conn, &ctx, &mut known)).unwrap();
        assert_eq!(
            conn.take_sent(),
            [
                cycle.grouping.clone(),
                Connections::statement(&prefix, &[1])
            ],
            "ended connections are forgotten"
        );
    }

    /// Fixed rows in, exact statistics out: the one tenant is the target's name and
    /// the server its host; a NULL DB is `__none__`, while the string `NULL` is a
    /// database of that name here (only OceanBase writes it for none); background
    /// threads without a host are `__none__` clients. Sessions kept in rows of their
    /// own count like any other, and are the top sessions and the blockers, which are
    /// read because a thread waits for a lock: the grouping, the activity of the
    /// active threads, then the blockers, in this order.
    #[test]
    fn processlist_rows_give_exact_statistics() {
        let (database, cycle) = every_part();
        let ctx = row_context(&database, "maria");
        let shop = [("db", "shop"), ("user", "app"), ("client", "10.0.0.100")];
        let sleeping = [("command", "Sleep"), ("state", "")];
        let with = |parts: &[&[(&'static str, &'static str)]]| parts.concat();
        let groups = vec![
            group(&with(&[
                &shop,
                &sleeping,
                &[("transaction", "RUNNING"), ("sessions", "3")],
                &[("time", "60"), ("transaction_age", "120")],
            ])),
            group(&with(&[
                &shop,
                &sleeping,
                &[("sessions", "1"), ("time", "5")],
            ])),
            group(&with(&[
                &shop,
                &[("command", "Query"), ("state", "Updating")],
                &[("transaction", "LOCK WAIT"), ("sessions", "1")],
                &[("time", "7"), ("transaction_age", "9")],
                &[("lock_wait", "7"), ("session", "42")],
            ])),
            group(&with(&[
                &[("user", "app"), ("client", "10.0.0.101")],
                &sleeping,
                &[("transaction", "RUNNING"), ("sessions", "1")],
                &[("time", "250"), ("transaction_age", "300")],
            ])),
            group(&with(&[
                &[("db", "NULL"), ("user", "odd"), ("client", "10.0.0.101")],
                &sleeping,
                &[("sessions", "1"), ("time", "0")],
            ])),
            group(&with(&[
                &[("user", "system user"), ("client", "")],
                &[("command", "Query"), ("state", "")],
                &[("sessions", "1"), ("time", "86400"), ("session", "5")],
            ])),
        ];
        let blockers = cycle.blockers.clone().unwrap();
        let mut conn = Scripted::default().answer(&cycle.grouping, groups).answer(
            &blockers,
            vec![detail(&[
                ("id", "17"),
                ("user", "app"),
                ("client", "10.0.0.101"),
                ("waiters", "1"),
                ("active", "0"),
            ])],
        );
        let tenants = block_on(cycle.run(&mut conn, &ctx, &mut Connections::default()))
            .unwrap()
            .into_tenants();
        let (with_threads, _) = cycle.activity.clone().unwrap();
        assert_eq!(
            conn.take_sent(),
            [cycle.grouping.clone(), with_threads, blockers]
        );
        assert_eq!(tenants.keys().collect::<Vec<_>>(), ["maria"]);
        let t = &tenants["maria"];
        assert_eq!(
            (t.sessions, t.active_sessions, t.max_active_time),
            (8, 2, 86400.0)
        );
        assert_eq!(
            (t.transaction_sessions, t.idle_in_transaction_sessions),
            (5, 4)
        );
        assert_eq!(
            (t.max_transaction_age, t.max_idle_in_transaction),
            (300.0, 250.0)
        );
        assert_eq!((t.lock_waiting_sessions, t.max_lock_wait), (1, 7.0));
        assert_eq!(
            pairs(&t.by_db),
            [("NULL", c(1, 0)), (NONE_LABEL, c(2, 1)), ("shop", c(5, 1))]
        );
        assert_eq!(
            pairs(&t.by_client),
            [
                ("10.0.0.100", c(5, 1)),
                ("10.0.0.101", c(2, 0)),
                (NONE_LABEL, c(1, 1))
            ]
        );
        assert_eq!(t.by_server.keys().collect::<Vec<_>>(), ["10.0.0.1"]);
        let state = |command: &str, state: &str| (command.to_string(), state.to_string());
        assert_eq!(
            t.by_state,
            [
                (state("Query", NONE_LABEL), 1),
                (state("Query", "Updating"), 1),
                (state("Sleep", NONE_LABEL), 6),
            ]
            .into()
        );
        assert_eq!(idle(&t.by_user), [("app", 4)]);
        assert_eq!(idle(&t.by_client), [("10.0.0.100", 3), ("10.0.0.101", 1)]);
        let top: Vec<(u64, &str, &str)> = t
            .top
            .iter()
            .map(|s| (s.session_id, s.user.as_str(), s.sql_id.as_str()))
            .collect();
        assert_eq!(top, [(5, "system user", ""), (42, "app", "")]);
        let blockers: Vec<(u64, &str, &str, u64)> = t
            .blockers
            .iter()
            .map(|b| (b.session_id, b.user.as_str(), b.client.as_str(), b.waiters))
            .collect();
        assert_eq!(blockers, [(17, "app", "10.0.0.101", 1)]);
    }

    /// A bad row stops the cycle at its statement: nothing after it is sent.
    #[test]
    fn a_bad_answer_sends_nothing_more() {
        let (database, cycle) = every_part();
        let ctx = row_context(&database, "maria");
        let mut conn = Scripted::default().answer(
            &cycle.grouping,
            vec![group(&[
                ("command", "Query"),
                ("transaction", "LOCK WAIT"),
                ("sessions", "x"),
                ("session", "3"),
            ])],
        );
        let err = block_on(cycle.run(&mut conn, &ctx, &mut Connections::default()));
        match err {
            Err(SqlError::Answer(err)) => assert!(err.message.contains("sessions"), "{err}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(conn.take_sent(), std::slice::from_ref(&cycle.grouping));
    }

    /// An answer that cannot be read fails its cycle, but what was learnt of the
    /// server's connections stays: the programs asked for are not asked again, and
    /// the threads read before the bad row are known next cycle.
    #[test]
    fn a_bad_answer_keeps_what_was_learnt() {
        let (database, cycle) = every_part();
        let ctx = row_context(&database, "maria");
        let (with_threads, without) = cycle.activity.clone().unwrap();
        let prefix = cycle.programs.clone().unwrap();
        let mut known = Connections::default();
        let programs = Connections::statement(&prefix, &[7]);
        let mut conn = Scripted::default()
            .answer(&cycle.grouping, vec![busy_thread_7()])
            .answer(&programs, rows(&["x|web"]));
        let failed = block_on(cycle.run(&mut conn, &ctx, &mut known));
        assert!(matches!(failed, Err(SqlError::Answer(_))), "{failed:?}");
        assert_eq!(conn.take_sent(), [cycle.grouping.clone(), programs]);
        let mut conn = Scripted::default()
            .answer(&cycle.grouping, vec![busy_thread_7()])
            .answer(&with_threads, rows(&["0|7|107|∅", "1|x|1|wait/io"]));
        let failed = block_on(cycle.run(&mut conn, &ctx, &mut known));
        assert!(matches!(failed, Err(SqlError::Answer(_))), "{failed:?}");
        assert_eq!(
            conn.take_sent(),
            [cycle.grouping.clone(), with_threads.clone()],
            "connection 7 was asked for its program once"
        );
        let mut conn = Scripted::default().answer(&cycle.grouping, vec![busy_thread_7()]);
        block_on(cycle.run(&mut conn, &ctx, &mut known)).unwrap();
        assert_eq!(
            conn.take_sent(),
            [cycle.grouping.clone(), without],
            "thread 107 was learnt before the bad row"
        );
    }

    /// A statement the driver fails ends the cycle there, and what it did not read is
    /// not taken as read: the programs asked for are asked again, the threads are read
    /// again.
    #[test]
    fn a_driver_failure_learns_nothing_it_did_not_read() {
        let (database, cycle) = every_part();
        let ctx = row_context(&database, "maria");
        let (with_threads, _) = cycle.activity.clone().unwrap();
        let prefix = cycle.programs.clone().unwrap();
        let programs = Connections::statement(&prefix, &[7]);
        let mut known = Connections::default();
        let mut conn = Scripted::default()
            .answer(&cycle.grouping, vec![busy_thread_7()])
            .fail(&programs);
        let failed = block_on(cycle.run(&mut conn, &ctx, &mut known));
        assert!(matches!(failed, Err(SqlError::Driver(_))), "{failed:?}");
        assert_eq!(conn.take_sent(), [cycle.grouping.clone(), programs.clone()]);
        // The program is asked for again; then the activity fails.
        let mut conn = Scripted::default()
            .answer(&cycle.grouping, vec![busy_thread_7()])
            .answer(&programs, rows(&["7|web"]))
            .fail(&with_threads);
        let failed = block_on(cycle.run(&mut conn, &ctx, &mut known));
        assert!(matches!(failed, Err(SqlError::Driver(_))), "{failed:?}");
        assert_eq!(
            conn.take_sent(),
            [cycle.grouping.clone(), programs, with_threads.clone()]
        );
        // The program is known now; the thread is read again.
        let mut conn = Scripted::default().answer(&cycle.grouping, vec![busy_thread_7()]);
        block_on(cycle.run(&mut conn, &ctx, &mut known)).unwrap();
        assert_eq!(conn.take_sent(), [cycle.grouping.clone(), with_threads]);
    }
}
