//! MySQL 8 and MariaDB 10.6+: `information_schema.PROCESSLIST`, which needs only the
//! PROCESS privilege. The tenant label is the target's name.
//!
//! Active means the thread is working for a client: `COMMAND` is none of
//! [`IDLE_COMMANDS`] (idle connections, server daemons, replication threads). The
//! server bounds the query at `collect_timeout`: MariaDB through `SET STATEMENT
//! max_statement_time` inside a `/*M! */` comment that only MariaDB executes, MySQL
//! through the `MAX_EXECUTION_TIME` hint that only MySQL reads, so one statement
//! serves both without asking the server which it is.

use super::conn::{classify, Connector};
use super::sql::{filter_conditions, host_without_port, query, RowContext, TAG};
use super::{BoxFuture, Source, SourceError};
use crate::config::Target;
use crate::stats::Collected;

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

const GRANT: &str = "grant it with GRANT PROCESS ON *.* TO the account";

pub struct MysqlSource {
    target: Target,
    connector: Connector,
    sql: String,
    /// Whether the account's grants were checked since the pool was (re)made.
    grants_checked: bool,
}

impl MysqlSource {
    pub fn new(target: &Target) -> Self {
        Self {
            connector: Connector::new(target, Vec::new()),
            sql: grouped_sql(target),
            target: target.clone(),
            grants_checked: false,
        }
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
                target = %self.target.name,
                "user `{}` lacks the PROCESS privilege: the server shows it only its own \
                 sessions, so every count is too low; {GRANT}",
                self.target.user
            );
        }
    }

    async fn run(&mut self) -> Result<Collected, SourceError> {
        const WHAT: &str = "reading information_schema.PROCESSLIST";
        let mut conn = self
            .connector
            .conn()
            .await
            .map_err(|e| classify(&e, &self.target, "connecting", GRANT))?;
        if !self.grants_checked {
            self.grants_checked = true;
            self.check_grants(&mut conn).await;
        }
        let ctx = RowContext {
            tenant: &self.target.name,
            server: &self.target.address.host,
            null_string_is_no_db: false,
        };
        query(&mut conn, &self.sql, &ctx, &[&self.target.name])
            .await
            .map_err(|e| classify(&e, &self.target, WHAT, GRANT))?
    }
}

impl Source for MysqlSource {
    fn collect(&mut self) -> BoxFuture<'_, Result<Collected, SourceError>> {
        Box::pin(self.run())
    }

    fn reset(&mut self) {
        self.connector.reset();
        self.grants_checked = false;
    }
}

/// The statement of every cycle: the grouped sessions, and with `top_sessions` the
/// longest active ones, in one UNION ALL (see `sql::COLUMNS`).
/// The statement without top sessions: the passthrough's live stats.
pub(super) fn stats_sql(target: &Target) -> String {
    grouped_sql(&Target {
        top_sessions: 0,
        ..target.clone()
    })
}

fn grouped_sql(target: &Target) -> String {
    let timeout = target.collect_timeout;
    let idle: Vec<String> = IDLE_COMMANDS.iter().map(|c| format!("'{c}'")).collect();
    let active = format!("COMMAND NOT IN ({})", idle.join(", "));
    let client = host_without_port("HOST");
    let filters = filter_conditions(&target.filter, "");
    let mut sql = format!(
        "{TAG} /*M!100108 SET STATEMENT max_statement_time = {:.3} FOR */ \
         SELECT /*+ MAX_EXECUTION_TIME({}) */ 'g', NULL, NULL, DB, USER, {client}, SUM({active}), \
         COUNT(*), MAX(CASE WHEN {active} THEN TIME END), NULL, NULL \
         FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID(){filters} \
         GROUP BY 4, 5, 6",
        timeout.as_secs_f64(),
        timeout.as_millis().max(1),
    );
    if target.top_sessions > 0 {
        sql.push_str(&format!(
            " UNION ALL (SELECT 't', NULL, NULL, DB, USER, {client}, 1, 1, TIME, ID, NULL \
             FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND {active}{filters} \
             ORDER BY TIME DESC, ID LIMIT {})",
            target.top_sessions
        ));
    }
    sql
}
