//! MySQL 8 and MariaDB 10.6+: `information_schema.PROCESSLIST`, which needs only the
//! PROCESS privilege. The tenant label is the target's name.
//!
//! Active means the thread is working for a client: `COMMAND` is none of
//! [`IDLE_COMMANDS`] (idle connections, server daemons, replication threads). The
//! server bounds the query at `collect_timeout`: MariaDB through `SET STATEMENT
//! max_statement_time` inside a `/*M! */` comment that only MariaDB executes, MySQL
//! through the `MAX_EXECUTION_TIME` hint that only MySQL reads, so one statement
//! serves both without asking the server which it is.

mod connections;
mod cycle;
mod deadlock;
mod metadata;
mod sessions;

use sessions::MysqlProcesslist;

use super::collect::{BoxFuture, Source};
use crate::config::mysql::Mysql;
use crate::config::{Database, Target};
use crate::error::SourceError;
use crate::sql::conn::{classify, Connector};
use crate::sql::query::{probe_relation, read_periodic};
use crate::sql::{
    filter_conditions, host_without_port, mysql_limits, Grouping, LockWait, PeriodicReads,
    RowContext, Rules, OWN_SESSIONS, TAG,
};
use crate::stats::{Collected, Keeping};
use connections::Connections;
use cycle::Cycle;
use std::time::Duration;

/// `COMMAND` values that do not count as active: an idle client (`Sleep`), server
/// background threads (`Daemon`), and replication threads on a source (`Binlog Dump*`)
/// or a replica (MariaDB `Slave_*`, MySQL `Connect`).
pub const IDLE_COMMANDS: [&str; 8] = [
    "Sleep",
    "Daemon",
    "Binlog Dump",
    "Binlog Dump GTID",
    "Slave_IO",
    "Slave_SQL",
    "Slave_worker",
    "Connect",
];

/// The privilege to suggest when one is missing.
const GRANT: &str = "grant it with GRANT PROCESS ON *.* TO the account";

/// A MySQL/MariaDB target's collection: its [`Cycle`] (one grouping every cycle, the
/// rest only when there is something to read), and the periodic reads.
pub struct MysqlSource {
    name: String,
    database: Database,
    connector: Connector,
    collect_timeout: Duration,
    /// The statements of a cycle and the settings they were written for (the parts
    /// this account can read), once the server was probed after the pool was (re)made.
    prepared: Option<Probed>,
    periodic: PeriodicReads,
    /// What was said of the parts left out, so a pool made again says it only when
    /// it changed.
    said: Vec<String>,
    /// The programs of the server's connections, learnt once each.
    programs: Connections,
    /// How sessions are kept for the session history; None: none.
    history: Option<Keeping>,
}

/// What [`MysqlSource::prepare`] wrote for this account and server.
struct Probed {
    cycle: Cycle,
    database: Database,
    /// The statement of periodic reads ([`periodic_sql`]), when a part of it is on.
    periodic: Option<String>,
    /// What this account or server cannot give, to be said once: a pool made again
    /// (after an outage) says it again only when it changed.
    unread: Vec<String>,
}

impl MysqlSource {
    pub fn new(target: &Target, settings: &Mysql) -> Self {
        Self {
            // A group's connection ids are one GROUP_CONCAT: MySQL 8 cuts it at 1 KiB
            // by default (MariaDB at 1 MiB).
            connector: Connector::new(
                &settings.database,
                target.collect_interval,
                vec!["SET SESSION group_concat_max_len = 16777216".to_string()],
            ),
            collect_timeout: target.collect_timeout,
            prepared: None,
            periodic: PeriodicReads::new(
                settings.database.collect,
                settings.database.limits_interval,
                target.collect_interval,
            ),
            name: target.name.clone(),
            database: settings.database.clone(),
            said: Vec::new(),
            programs: Connections::default(),
            history: target.history_sessions.map(Keeping::new),
        }
    }

    /// Writes the statement for what this account can read, once per pool: without
    /// `INNODB_TRX` (PROCESS is missing) no transaction or lock is collected, without
    /// the lock-waits relation no blocker is named; each is said once.
    async fn prepare(&self, conn: &mut mysql_async::Conn) -> Result<Probed, mysql_async::Error> {
        use mysql_async::prelude::Queryable;
        let mut database = self.database.clone();
        let parts = &mut database.collect;
        let mut unread = Vec::new();
        if parts.transactions || parts.locks {
            if let Some(err) = probe_relation(conn, "information_schema.INNODB_TRX").await? {
                unread.push(format!(
                    "information_schema.INNODB_TRX is not readable ({err}): transactions and \
                     lock waits are not collected; {GRANT}"
                ));
                parts.transactions = false;
                parts.locks = false;
            }
        }
        let mut lock_waits = None;
        let flavour = if parts.locks || parts.deadlocks || parts.statements || parts.connections {
            let version: Option<String> = conn.query_first("SELECT VERSION()").await?;
            Some(LockWaits::of(version.as_deref().unwrap_or_default()))
        } else {
            None
        };
        if let Some(found) = flavour.filter(|_| parts.locks) {
            match probe_relation(conn, found.relation()).await? {
                None => lock_waits = Some(found),
                Some(err) => unread.push(format!(
                    "{} is not readable ({err}): lock waits are counted, but their \
                     blockers are not named; grant SELECT on it to `{}`",
                    found.relation(),
                    self.database.user
                )),
            }
        }
        let users = parts.limits && {
            let denied = probe_relation(conn, "mysql.user").await?;
            if let Some(err) = &denied {
                unread.push(format!(
                    "mysql.user is not readable ({err}): the users' session limits \
                     (MAX_USER_CONNECTIONS) are not exported; grant it with GRANT SELECT ON \
                     mysql.user TO the account"
                ));
            }
            denied.is_none()
        };
        if parts.waits || parts.statements || parts.applications {
            unread.extend(self.check_performance_schema(conn, parts, flavour).await?);
        }
        let periodic = periodic_sql(database.collect, users, flavour);
        let mut cycle = cycle(
            &database,
            self.collect_timeout,
            lock_waits,
            self.history.is_some(),
        );
        // The metadata locks' holders, where the server shows them.
        if database.collect.locks && flavour.is_some() {
            match metadata::unreadable(conn).await? {
                None => {
                    let Grouping { prefix, hint, .. } =
                        grouping(&database, self.collect_timeout, self.history.is_some());
                    cycle.metadata = Some(metadata::statement(&prefix, &hint, &database));
                }
                // One cause, said once: performance_schema off or unreadable was
                // said already for the waits, applications and statements.
                Some(said) => match unread
                    .iter_mut()
                    .find(|earlier| earlier.starts_with("performance_schema"))
                {
                    Some(earlier) => {
                        earlier.push_str("; metadata lock holders are not named either")
                    }
                    None => unread.push(said),
                },
            }
        }
        cycle.log(&self.name);
        if let Some(periodic) = &periodic {
            tracing::debug!(target = %self.name, sql = %periodic, "statement of limits and deadlocks");
        }
        Ok(Probed {
            cycle,
            database,
            periodic,
            unread,
        })
    }

    /// Turns off the parts read from `performance_schema` that this server cannot
    /// give, and returns what to say about each (the setting or grant it needs): applications need the
    /// connection attributes, waits the `events_waits_current` consumer, statements
    /// the `events_statements_current` and `statements_digest` consumers (and all of
    /// them `performance_schema = ON` and the global and thread instrumentation).
    async fn check_performance_schema(
        &self,
        conn: &mut mysql_async::Conn,
        parts: &mut crate::stats::CollectParts,
        flavour: Option<LockWaits>,
    ) -> Result<Vec<String>, mysql_async::Error> {
        use mysql_async::prelude::Queryable;
        let mut said = Vec::new();
        let off = |parts: &mut crate::stats::CollectParts| {
            parts.waits = false;
            parts.statements = false;
            parts.applications = false;
        };
        let enabled: Option<i64> = conn.query_first("SELECT @@performance_schema").await?;
        if enabled != Some(1) {
            said.push(
                "performance_schema is off: waits, applications and statements are not \
                 collected; start the server with performance_schema = ON"
                    .to_string(),
            );
            off(parts);
            return Ok(said);
        }
        for relation in [
            "performance_schema.setup_consumers",
            "performance_schema.threads",
            "performance_schema.session_connect_attrs",
        ] {
            if let Some(err) = probe_relation(conn, relation).await? {
                said.push(format!(
                    "{relation} is not readable ({err}): waits, applications and statements \
                     are not collected; grant it with GRANT SELECT ON performance_schema.* \
                     TO the account"
                ));
                off(parts);
                return Ok(said);
            }
        }
        let consumers: Vec<(String, String)> = conn
            .query(
                "SELECT NAME, ENABLED FROM performance_schema.setup_consumers WHERE NAME IN \
                 ('global_instrumentation', 'thread_instrumentation', 'events_waits_current', \
                 'events_statements_current', 'statements_digest')",
            )
            .await?;
        let on = |name: &str| consumers.iter().any(|(n, e)| n == name && e == "YES");
        let needs = |consumers: &[&str]| {
            let missing: Vec<&str> = ["global_instrumentation", "thread_instrumentation"]
                .iter()
                .chain(consumers)
                .copied()
                .filter(|name| !on(name))
                .collect();
            (!missing.is_empty()).then(|| {
                let settings: Vec<String> = missing
                    .iter()
                    .map(|name| format!("performance-schema-consumer-{}", name.replace('_', "-")))
                    .collect();
                settings.join(", ")
            })
        };
        if parts.waits {
            if let Some(settings) = needs(&["events_waits_current"]) {
                said.push(format!(
                    "wait events are not collected: turn on {settings} (and the wait/% \
                     instruments, performance-schema-instrument='wait/%=ON')"
                ));
                parts.waits = false;
            }
        }
        if parts.statements && flavour == Some(LockWaits::InformationSchema) {
            said.push(
                "MariaDB shows no digest for a running statement (events_statements_current \
                 has it only once the statement ends): active sessions are not counted by \
                 statement"
                    .to_string(),
            );
            parts.statements = false;
        }
        if parts.statements {
            if let Some(settings) = needs(&["events_statements_current", "statements_digest"]) {
                said.push(format!(
                    "statement digests are not collected: turn on {settings}"
                ));
                parts.statements = false;
            }
        }
        Ok(said)
    }

    /// Warns when the account lacks PROCESS: the server then shows it only its own
    /// sessions without any error, and every count would be silently too low. Once
    /// per pool, so a healthy target still costs one query per interval. Grants
    /// through roles cannot be read this way: then nothing is said.
    async fn check_grants(&self, conn: &mut mysql_async::Conn) {
        use mysql_async::prelude::Queryable;
        let Ok(grants) = conn.query::<String, _>("SHOW GRANTS").await else {
            return;
        };
        let grants: Vec<String> = grants.iter().map(|g| g.to_uppercase()).collect();
        let global = |g: &String| g.contains(" ON *.* ");
        let enough = grants
            .iter()
            .any(|g| global(g) && (g.contains("PROCESS") || g.contains("ALL PRIVILEGES")));
        let through_roles = grants.iter().any(|g| !g.contains(" ON "));
        if !enough && !through_roles {
            tracing::warn!(
                target = %self.name,
                "user `{}` lacks the PROCESS privilege: the server shows it only its own \
                 sessions, so every count is too low; {GRANT}",
                self.database.user
            );
        }
    }

    async fn run(&mut self) -> Result<Collected, SourceError> {
        const WHAT: &str = "reading information_schema.PROCESSLIST";
        let mut conn = self
            .connector
            .conn()
            .await
            .map_err(|e| classify(&e, &self.database, "connecting", GRANT))?;
        let prepared = match self.prepared.take() {
            Some(prepared) => prepared,
            None => {
                self.check_grants(&mut conn).await;
                let prepared = self
                    .prepare(&mut conn)
                    .await
                    .map_err(|e| classify(&e, &self.database, "probing the server", GRANT))?;
                if prepared.unread != self.said {
                    for message in &prepared.unread {
                        tracing::warn!(target = %self.name, "{message}");
                    }
                    self.said.clone_from(&prepared.unread);
                }
                prepared
            }
        };
        let ctx = RowContext {
            history: self.history.clone(),
            ..row_context(&prepared.database, &self.name)
        };
        let collected = prepared
            .cycle
            .run(&mut conn, &ctx, &mut self.programs)
            .await
            .map_err(|e| e.classify(&self.database, WHAT, GRANT));
        let collected = match (collected, &prepared.periodic) {
            (Ok(mut collected), Some(sql)) => {
                if self.periodic.due() {
                    let how = (&self.database, self.name.as_str(), GRANT);
                    read_periodic(&mut conn, sql, &mut self.periodic, &self.name, how).await;
                }
                self.periodic.attach(&mut collected);
                Ok(collected)
            }
            (collected, _) => collected,
        };
        self.prepared = Some(prepared);
        collected
    }
}

impl Source for MysqlSource {
    fn collect(&mut self) -> BoxFuture<'_, Result<Collected, SourceError>> {
        Box::pin(self.run())
    }

    fn reset(&mut self) {
        self.connector.reset();
        self.prepared = None;
    }
}

/// The session API of a target of this kind (see [`crate::source::api_backend`]).
pub fn api_backend(
    target: &Target,
    settings: &Mysql,
    limits: (usize, Duration),
) -> crate::api::http::Backend {
    let processlist = Box::new(MysqlProcesslist::new(target, settings));
    crate::api::processlist::backend(processlist, target.collect_interval, limits)
}

/// How rows of this kind are decoded: the one tenant is the target's name, the
/// server its host.
fn row_context<'a>(database: &'a Database, tenant: &'a str) -> RowContext<'a> {
    RowContext {
        tenant,
        server: &database.address.host,
        null_string_is_no_db: false,
        keep: database.top_sessions,
        parts: database.collect,
        rules: RULES,
        listed_only: false,
        history: None,
    }
}

/// What a group's key means here: active is a COMMAND not in [`IDLE_COMMANDS`]; a
/// thread with an `INNODB_TRX` row (its `trx_state` is the key) has an open
/// transaction, and waits for a row lock in `LOCK WAIT`; a STATE `Waiting for … lock`
/// is a metadata or table lock, waited for as long as the statement has run.
const RULES: Rules = Rules {
    active: |command, _| !IDLE_COMMANDS.contains(&command),
    in_transaction: |_| true,
    lock_wait: |transaction, state| {
        if transaction == "LOCK WAIT" {
            LockWait::Row
        } else if state.starts_with("Waiting for ") && state.ends_with("lock") {
            LockWait::Statement
        } else {
            LockWait::No
        }
    },
};

/// `column` (with its prefix) is none of [`IDLE_COMMANDS`]: the session is active.
fn active_condition(column: &str) -> String {
    let idle: Vec<String> = IDLE_COMMANDS.iter().map(|c| format!("'{c}'")).collect();
    format!("{column} NOT IN ({})", idle.join(", "))
}

/// Where a server tells which transaction waits for which: MariaDB keeps
/// `information_schema.INNODB_LOCK_WAITS` (readable with PROCESS); MySQL 8 moved it
/// to `performance_schema.data_lock_waits` (which needs SELECT on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LockWaits {
    InformationSchema,
    PerformanceSchema,
}

impl LockWaits {
    /// The server's flavour, from its version string.
    fn of(version: &str) -> Self {
        if version.to_ascii_lowercase().contains("mariadb") {
            LockWaits::InformationSchema
        } else {
            LockWaits::PerformanceSchema
        }
    }

    fn relation(self) -> &'static str {
        match self {
            LockWaits::InformationSchema => "information_schema.INNODB_LOCK_WAITS",
            LockWaits::PerformanceSchema => "performance_schema.data_lock_waits",
        }
    }

    /// The session API's pile-up (see [`crate::api::pileup::add_pileup_row`]): each
    /// waiting thread with the thread it waits on, the longest waits first, and each
    /// open transaction's thread, the oldest first, at most `limit` of each.
    fn pileup(self, limit: usize) -> String {
        let (waiting, blocking) = self.columns();
        format!(
            "{TAG} (SELECT 0, r.trx_mysql_thread_id, b.trx_mysql_thread_id, \
             TIMESTAMPDIFF(MICROSECOND, r.trx_wait_started, NOW(6)) / 1000000 AS s \
             FROM {} lw JOIN information_schema.INNODB_TRX r ON r.trx_id = lw.{waiting} \
             JOIN information_schema.INNODB_TRX b ON b.trx_id = lw.{blocking} \
             ORDER BY s DESC LIMIT {limit}) UNION ALL (SELECT 1, t.trx_mysql_thread_id, NULL, \
             TIMESTAMPDIFF(MICROSECOND, t.trx_started, NOW(6)) / 1000000 AS s \
             FROM information_schema.INNODB_TRX t ORDER BY t.trx_started LIMIT {limit})",
            self.relation()
        )
    }

    /// The waiting and the blocking transaction's columns of [`Self::relation`].
    fn columns(self) -> (&'static str, &'static str) {
        match self {
            LockWaits::InformationSchema => ("requesting_trx_id", "blocking_trx_id"),
            LockWaits::PerformanceSchema => (
                "REQUESTING_ENGINE_TRANSACTION_ID",
                "BLOCKING_ENGINE_TRANSACTION_ID",
            ),
        }
    }

    /// Per waiting thread, the thread it waits on (the lowest id when it waits on
    /// several), in the shape of the statement of blockers with a last column, the
    /// blocker's id: what the session history keeps of who blocks whom.
    fn waits_on(self) -> String {
        let (waiting, blocking) = self.columns();
        format!(
            "SELECT NULL, rt.trx_mysql_thread_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
             NULL, NULL, 0, 0, MIN(bt.trx_mysql_thread_id) \
             FROM {} lw JOIN information_schema.INNODB_TRX rt ON rt.trx_id = lw.{waiting} \
             JOIN information_schema.INNODB_TRX bt ON bt.trx_id = lw.{blocking} \
             GROUP BY rt.trx_mysql_thread_id",
            self.relation()
        )
    }

    /// Per blocking thread, how many transactions wait on it.
    fn blockers(self) -> String {
        let (waiting, blocking) = self.columns();
        format!(
            "SELECT bt.trx_mysql_thread_id AS THREAD, COUNT(DISTINCT lw.{waiting}) AS WAITERS \
             FROM {} lw JOIN information_schema.INNODB_TRX bt ON bt.trx_id = lw.{blocking} \
             GROUP BY bt.trx_mysql_thread_id",
            self.relation()
        )
    }
}

/// The statement of limits and deadlocks ([`PeriodicReads`]), None when both parts
/// are off: the limits ([`mysql_limits`]; the users' own only when `users`), and
/// InnoDB's deadlock counter, which MariaDB keeps as the status `Innodb_deadlocks`
/// and MySQL 8 as the `lock_deadlocks` metric (enabled by default; while it is
/// disabled there is no series). `flavour` is the server's, from its version.
fn periodic_sql(
    parts: crate::stats::CollectParts,
    users: bool,
    flavour: Option<LockWaits>,
) -> Option<String> {
    let mut reads = Vec::new();
    if parts.limits {
        reads.extend(mysql_limits(users, None));
    }
    match flavour.filter(|_| parts.deadlocks) {
        Some(LockWaits::InformationSchema) => reads.push(
            "SELECT '', 'deadlocks', '', s.VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS s \
             WHERE s.VARIABLE_NAME = 'INNODB_DEADLOCKS'"
                .to_string(),
        ),
        Some(LockWaits::PerformanceSchema) => reads.push(
            "SELECT '', 'deadlocks', '', m.`COUNT` FROM information_schema.INNODB_METRICS m \
             WHERE m.NAME = 'lock_deadlocks' AND m.STATUS = 'enabled'"
                .to_string(),
        ),
        None => {}
    }
    if let Some(flavour) = flavour.filter(|_| parts.connections) {
        reads.push(connection_counters(flavour));
    }
    (!reads.is_empty()).then(|| format!("{TAG} {}", reads.join(" UNION ALL ")))
}

/// The server's connection counters, from its global status (MariaDB's
/// `information_schema`, MySQL 8's `performance_schema`): `Connections` (every
/// attempt), `Max_used_connections` (the peak), `Aborted_clients` (sessions ended
/// without a proper goodbye), and the refusals: `Connection_errors_max_connections`,
/// `Aborted_connects` (every failed attempt) and MariaDB's `Access_denied_errors`.
/// A variable the server does not have sends no row, and has no series.
fn connection_counters(flavour: LockWaits) -> String {
    let status = match flavour {
        LockWaits::InformationSchema => "information_schema.GLOBAL_STATUS",
        LockWaits::PerformanceSchema => "performance_schema.global_status",
    };
    format!(
        "SELECT '', CASE UPPER(s.VARIABLE_NAME) WHEN 'CONNECTIONS' THEN 'connections' \
         WHEN 'MAX_USED_CONNECTIONS' THEN 'peak' WHEN 'ABORTED_CLIENTS' THEN 'ended' \
         ELSE 'refused' END, CASE UPPER(s.VARIABLE_NAME) \
         WHEN 'CONNECTION_ERRORS_MAX_CONNECTIONS' THEN 'max_connections' \
         WHEN 'ACCESS_DENIED_ERRORS' THEN 'access_denied' \
         WHEN 'ABORTED_CONNECTS' THEN 'aborted' WHEN 'ABORTED_CLIENTS' THEN 'aborted' \
         ELSE '' END, s.VARIABLE_VALUE FROM {status} s WHERE UPPER(s.VARIABLE_NAME) IN \
         ('CONNECTIONS', 'MAX_USED_CONNECTIONS', 'ABORTED_CLIENTS', 'ABORTED_CONNECTS', \
         'CONNECTION_ERRORS_MAX_CONNECTIONS', 'ACCESS_DENIED_ERRORS')"
    )
}

/// The statements of every cycle (see [`Cycle`]): the grouping, the top sessions,
/// and who blocks whom when a thread waits (blockers come from `lock_waits` when the
/// server lets the account read it).
fn cycle(
    database: &Database,
    timeout: Duration,
    lock_waits: Option<LockWaits>,
    history: bool,
) -> Cycle {
    let grouping = grouping(database, timeout, history);
    let blockers = lock_waits
        .filter(|_| database.collect.locks)
        .map(|lock_waits| {
            let Grouping {
                prefix,
                hint,
                filter,
                client,
                ..
            } = &grouping;
            // With the session history on, each waiter's blocker comes too (a last
            // column, NULL in the rows of blockers).
            let (blocked_by, waits_on) = match history {
                true => (", NULL", format!(" UNION ALL {}", lock_waits.waits_on())),
                false => ("", String::new()),
            };
            format!(
                "{prefix}SELECT {hint}NULL, p.ID, p.USER, p.DB, {client}, NULL, NULL, NULL, NULL, NULL, \
                 NULL, b.WAITERS, 0{blocked_by} FROM information_schema.PROCESSLIST p JOIN ({}) b ON b.THREAD = p.ID WHERE {filter}{waits_on}",
                lock_waits.blockers()
            )
        });
    let parts = database.collect;
    let Grouping { prefix, hint, .. } = &grouping;
    // The active threads' ids (kind 0) are read while one is not known yet.
    let threads = format!(
        "SELECT 0, t.PROCESSLIST_ID, t.THREAD_ID, NULL FROM performance_schema.threads t \
         WHERE t.TYPE = 'FOREGROUND' AND {}",
        active_condition("t.PROCESSLIST_COMMAND")
    );
    let activity = |with_threads: bool| {
        let mut reads = Vec::new();
        if with_threads {
            reads.push(threads.clone());
        }
        if parts.waits {
            reads.push(
                "SELECT 1, w.THREAD_ID, w.EVENT_ID, w.EVENT_NAME \
                 FROM performance_schema.events_waits_current w \
                 WHERE w.END_EVENT_ID IS NULL AND w.EVENT_NAME <> 'idle'"
                    .to_string(),
            );
        }
        if parts.statements {
            reads.push(
                "SELECT 2, s.THREAD_ID, NULL, s.DIGEST \
                 FROM performance_schema.events_statements_current s \
                 WHERE s.END_EVENT_ID IS NULL AND s.DIGEST IS NOT NULL"
                    .to_string(),
            );
        }
        // The session history keeps the active threads' statements' text (as the
        // server keeps it: performance_schema_max_sql_text_length, 1024 by default).
        if history {
            reads.push(
                "SELECT 3, s.THREAD_ID, NULL, s.SQL_TEXT \
                 FROM performance_schema.events_statements_current s \
                 WHERE s.END_EVENT_ID IS NULL AND s.SQL_TEXT IS NOT NULL"
                    .to_string(),
            );
        }
        let sql = reads.join(" UNION ALL ");
        // The bound on MySQL is a hint right after the first SELECT.
        format!(
            "{prefix}{}",
            sql.replacen("SELECT ", &format!("SELECT {hint}"), 1)
        )
    };
    let on = parts.waits || parts.statements || history;
    Cycle {
        grouping: grouping.statement(),
        blockers,
        activity: on.then(|| (activity(true), activity(false))),
        programs: parts.applications.then(|| grouping.prefix.clone()),
        metadata: None,
    }
}

/// The grouping of every cycle (see [`Grouping`]). An open transaction is an
/// `INNODB_TRX` row of the thread, whose `trx_state` is a key of the grouping; its
/// age and a row-lock wait (since `trx_wait_started`) are aggregated per group.
/// With the session history on, a thread in a transaction is kept apart too.
fn grouping(database: &Database, timeout: Duration, history: bool) -> Grouping {
    let parts = database.collect;
    let mut grouping = Grouping {
        prefix: format!(
            "{TAG} /*M!100108 SET STATEMENT max_statement_time = {:.3} FOR */ ",
            timeout.as_secs_f64()
        ),
        hint: format!("/*+ MAX_EXECUTION_TIME({}) */ ", timeout.as_millis().max(1)),
        relation: "information_schema.PROCESSLIST p".to_string(),
        joins: String::new(),
        filter: format!(
            "p.ID NOT IN ({OWN_SESSIONS}){}",
            filter_conditions(&database.filter, "p.")
        ),
        tenant: "NULL".to_string(),
        server: "NULL".to_string(),
        client: host_without_port("p.HOST"),
        // The rules need COMMAND (active) always, and STATE for metadata lock waits.
        command: "p.COMMAND".to_string(),
        state: if parts.states || parts.locks {
            "p.STATE"
        } else {
            "NULL"
        }
        .to_string(),
        transaction: "NULL".to_string(),
        time: "p.TIME".to_string(),
        transaction_age: "NULL".to_string(),
        lock_wait: "NULL".to_string(),
        // Active threads are kept apart for the top sessions, and so that the
        // statement of activity can tell what each waits on and runs.
        session: if database.top_sessions > 0 || parts.waits || parts.statements || history {
            format!("CASE WHEN {} THEN p.ID END", active_condition("p.COMMAND"))
        } else {
            "NULL".to_string()
        },
        application: "NULL".to_string(),
        // Each connection's program is known by its id (see `connections`).
        ids: match parts.applications {
            true => "GROUP_CONCAT(p.ID)".to_string(),
            false => "NULL".to_string(),
        },
        union: String::new(),
    };
    if parts.transactions || parts.locks {
        grouping
            .joins
            .push_str(" LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID");
        grouping.transaction = "t.trx_state".to_string();
        if history {
            grouping.session = format!(
                "CASE WHEN {} OR t.trx_id IS NOT NULL THEN p.ID END",
                active_condition("p.COMMAND")
            );
        }
    }
    if parts.transactions {
        // InnoDB keeps whole seconds.
        grouping.transaction_age = "TIMESTAMPDIFF(SECOND, t.trx_started, NOW())".to_string();
    }
    if parts.locks {
        grouping.lock_wait = "CASE WHEN t.trx_state = 'LOCK WAIT' \
             THEN TIMESTAMPDIFF(SECOND, t.trx_wait_started, NOW()) END"
            .to_string();
    }
    grouping
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing;
    use crate::stats::CollectParts;

    #[test]
    fn every_statement_bounds_itself_on_both_servers() {
        let mut database = testing::database("monitor", 3306);
        let st = cycle(
            &database,
            Duration::from_millis(2500),
            Some(LockWaits::InformationSchema),
            false,
        );
        for sql in [&st.grouping, st.blockers.as_ref().unwrap()] {
            assert!(sql.contains("/*M!100108 SET STATEMENT max_statement_time = 2.500 FOR */ SELECT /*+ MAX_EXECUTION_TIME(2500) */ "), "{sql}");
            assert!(
                sql.contains(&format!("WHERE p.ID NOT IN ({OWN_SESSIONS})")),
                "{sql}"
            );
            assert!(!sql.contains("INFO"), "statistics never read the SQL text");
        }
        let sql = &st.grouping;
        assert_eq!(
            sql.matches("information_schema.PROCESSLIST").count(),
            1,
            "{sql}"
        );
        assert!(!sql.contains("OVER"), "no window in the grouping: {sql}");
        assert!(sql
            .contains("LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID"));
        assert!(
            sql.contains(&format!(
                "CASE WHEN {} THEN p.ID END",
                active_condition("p.COMMAND")
            )),
            "active threads are kept apart, the top sessions, by default: {sql}"
        );
        assert!(st
            .blockers
            .as_ref()
            .unwrap()
            .contains("FROM information_schema.INNODB_LOCK_WAITS lw"));
        let (with_threads, without) = st.activity.as_ref().unwrap();
        assert!(
            with_threads.contains("FROM performance_schema.events_waits_current w WHERE"),
            "{st:?}"
        );
        assert!(!without.contains("performance_schema.threads"));
        // Without top sessions, active threads are kept apart only for their activity.
        database.top_sessions = 0;
        let st = cycle(
            &database,
            Duration::from_secs(1),
            Some(LockWaits::PerformanceSchema),
            false,
        );
        assert!(st.grouping.contains("THEN p.ID END"), "{}", st.grouping);
        database.collect.waits = false;
        database.collect.statements = false;
        let st = cycle(
            &database,
            Duration::from_secs(1),
            Some(LockWaits::PerformanceSchema),
            false,
        );
        assert!(!st.grouping.contains("THEN p.ID END"), "{}", st.grouping);
        assert!(st.activity.is_none());
        assert!(st.blockers.unwrap().contains("FROM performance_schema.data_lock_waits lw JOIN information_schema.INNODB_TRX bt ON bt.trx_id = lw.BLOCKING_ENGINE_TRANSACTION_ID"));
    }

    /// Each part can be turned off, and then reads nothing: no INNODB_TRX, no lock
    /// waits, STATE not grouped by.
    #[test]
    fn parts_turned_off_read_nothing() {
        let mut database = testing::database("monitor", 3306);
        database.collect = CollectParts::NONE;
        let st = cycle(
            &database,
            Duration::from_secs(1),
            Some(LockWaits::InformationSchema),
            false,
        );
        assert!(
            !st.grouping.contains("INNODB") && st.blockers.is_none(),
            "{st:?}"
        );
        assert!(
            st.grouping.contains("p.COMMAND, NULL, NULL, COUNT(*)"),
            "{}",
            st.grouping
        );
        database.collect.locks = true;
        let st = cycle(&database, Duration::from_secs(1), None, false);
        assert!(
            st.grouping.contains("INNODB_TRX t"),
            "row lock waits are in INNODB_TRX"
        );
        assert!(st.blockers.is_none(), "{st:?}");
        assert!(
            st.grouping.contains("p.STATE"),
            "metadata lock waits are a STATE"
        );
    }

    /// The connection counters come from the flavour's global status, in the
    /// statement of limits, and not at all with the part off.
    #[test]
    fn connection_counters_are_read_from_the_flavours_status() {
        let parts = CollectParts {
            connections: true,
            ..CollectParts::NONE
        };
        let maria = periodic_sql(parts, false, Some(LockWaits::InformationSchema)).unwrap();
        assert!(
            maria.contains("FROM information_schema.GLOBAL_STATUS s WHERE"),
            "{maria}"
        );
        let mysql = periodic_sql(parts, false, Some(LockWaits::PerformanceSchema)).unwrap();
        assert!(
            mysql.contains("FROM performance_schema.global_status s WHERE"),
            "{mysql}"
        );
        for name in [
            "'CONNECTION_ERRORS_MAX_CONNECTIONS' THEN 'max_connections'",
            "'MAX_USED_CONNECTIONS' THEN 'peak'",
        ] {
            assert!(mysql.contains(name), "{name}: {mysql}");
        }
        let all =
            periodic_sql(CollectParts::ALL, true, Some(LockWaits::InformationSchema)).unwrap();
        assert!(all.contains("max_connections") && all.contains("GLOBAL_STATUS s WHERE UPPER"));
        assert_eq!(
            periodic_sql(
                CollectParts::NONE,
                false,
                Some(LockWaits::InformationSchema)
            ),
            None
        );
    }

    #[test]
    fn the_flavour_decides_where_lock_waits_are() {
        assert_eq!(
            LockWaits::of("10.11.6-MariaDB-0+deb12u1"),
            LockWaits::InformationSchema
        );
        assert_eq!(LockWaits::of("8.0.36"), LockWaits::PerformanceSchema);
    }
}
