//! MySQL 8 and MariaDB 10.6+: `information_schema.PROCESSLIST`, which needs only the
//! PROCESS privilege. The tenant label is the target's name.
//!
//! Active means the thread is working for a client: `COMMAND` is none of
//! [`IDLE_COMMANDS`] (idle connections, server daemons, replication threads). The
//! server bounds the query at `collect_timeout`: MariaDB through `SET STATEMENT
//! max_statement_time` inside a `/*M! */` comment that only MariaDB executes, MySQL
//! through the `MAX_EXECUTION_TIME` hint that only MySQL reads, so one statement
//! serves both without asking the server which it is.

use super::collect::{BoxFuture, Source};
use super::conn::{classify, Connector};
use super::error::SourceError;
use super::processlist::{self, plain_column, Processlist, View};
use super::sql::{
    filter_conditions, host_without_port, query, RowContext, SqlError, OWN_SESSIONS, TAG,
};
use crate::config::{Database, Mysql, Target};
use crate::sessions::Field;
use crate::stats::Collected;
use std::collections::HashSet;
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

/// A MySQL/MariaDB target as the session API reads it: `ID, USER, HOST, DB,
/// COMMAND, TIME, STATE, INFO` (MariaDB adds `TIME_MS` and `MEMORY_USED`); its one
/// tenant is the target's name.
pub struct Sessions {
    name: String,
    database: Database,
    collect_timeout: Duration,
}

impl Sessions {
    pub fn new(target: &Target, settings: &Mysql) -> Self {
        Self {
            name: target.name.clone(),
            database: settings.database.clone(),
            collect_timeout: target.collect_timeout,
        }
    }
}

impl Processlist for Sessions {
    fn target(&self) -> &str {
        &self.name
    }

    fn database(&self) -> &Database {
        &self.database
    }

    fn serves(&self, _: &mut dyn Iterator<Item = &String>, name: &str) -> bool {
        self.name == name
    }

    fn tenants(&self, _: &mut dyn Iterator<Item = &String>) -> Vec<String> {
        vec![self.name.clone()]
    }

    /// Processlist queries are short, and the request is abandoned anyway.
    fn init_statements(&self, _: Duration) -> Vec<String> {
        Vec::new()
    }

    fn detect<'a>(
        &'a self,
        _: &'a mut mysql_async::Conn,
    ) -> processlist::BoxFuture<'a, Result<View, mysql_async::Error>> {
        Box::pin(async {
            Ok(View {
                relation: "`information_schema`.`PROCESSLIST`".to_string(),
                cluster: false,
            })
        })
    }

    fn column(&self, _: &View, field: Field, columns: &HashSet<String>) -> Option<String> {
        let has = |c: &str| columns.contains(c);
        match field {
            Field::Id | Field::User | Field::Host | Field::Db | Field::Command | Field::Info => {
                plain_column(field, columns)
            }
            // MariaDB has milliseconds; MySQL whole seconds.
            Field::Time if has("TIME_MS") => Some("`TIME_MS` / 1000".to_string()),
            Field::Time => has("TIME").then(|| "`TIME`".to_string()),
            // The contract's state is OceanBase's ACTIVE/SLEEP; MySQL's STATE column is
            // a thread stage. The same rule as the metrics' "active" decides it.
            Field::State => has("COMMAND")
                .then(|| format!("IF({}, 'ACTIVE', 'SLEEP')", self.active_condition())),
            Field::MemoryUsage => has("MEMORY_USED").then(|| "`MEMORY_USED`".to_string()),
            _ => None,
        }
    }

    /// information_schema is utf8mb3 on MySQL and MariaDB: compared as is, a 4-byte
    /// character in the filter is a collation error, not a miss.
    fn like_operand(&self, expression: &str) -> String {
        format!("CONVERT({expression} USING utf8mb4)")
    }

    fn active_condition(&self) -> String {
        active_condition("`COMMAND`")
    }

    fn tenant_stats<'a>(
        &'a self,
        conn: &'a mut mysql_async::Conn,
        _: &'a View,
        tenant: &'a str,
    ) -> processlist::BoxFuture<'a, Result<Collected, SqlError>> {
        Box::pin(tenant_stats(
            conn,
            &self.database,
            self.collect_timeout,
            tenant,
        ))
    }

    fn grant(&self) -> &'static str {
        GRANT
    }

    fn kill_grant(&self) -> &'static str {
        "ending other users' sessions needs CONNECTION ADMIN (MariaDB 10.5+: GRANT CONNECTION ADMIN ON *.*; MySQL 8: GRANT CONNECTION_ADMIN ON *.*) or SUPER"
    }
}

pub struct MysqlSource {
    name: String,
    database: Database,
    connector: Connector,
    sql: String,
    /// Whether the account's grants were checked since the pool was (re)made.
    grants_checked: bool,
}

impl MysqlSource {
    pub fn new(target: &Target, settings: &Mysql) -> Self {
        Self {
            connector: Connector::new(&settings.database, target.collect_interval, Vec::new()),
            sql: grouped_sql(&settings.database, target.collect_timeout),
            name: target.name.clone(),
            database: settings.database.clone(),
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
        if !self.grants_checked {
            self.grants_checked = true;
            self.check_grants(&mut conn).await;
        }
        let ctx = row_context(&self.database, &self.name);
        query(&mut conn, &self.sql, &ctx, &[&self.name])
            .await
            .map_err(|e| e.classify(&self.database, WHAT, GRANT))
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

/// How rows of this kind are decoded: the one tenant is the target's name, the
/// server its host.
fn row_context<'a>(database: &'a Database, tenant: &'a str) -> RowContext<'a> {
    RowContext {
        tenant,
        server: &database.address.host,
        null_string_is_no_db: false,
    }
}

/// The target's statistics, read now for the session API: the statement of a cycle
/// without top sessions, bounded at the request's `timeout`, so the API's stats and
/// `/metrics` cannot disagree on method.
async fn tenant_stats(
    conn: &mut mysql_async::Conn,
    database: &Database,
    timeout: Duration,
    tenant: &str,
) -> Result<Collected, SqlError> {
    let database = Database {
        top_sessions: 0,
        ..database.clone()
    };
    let ctx = row_context(&database, tenant);
    query(conn, &grouped_sql(&database, timeout), &ctx, &[tenant]).await
}

/// `column` (with its prefix) is none of [`IDLE_COMMANDS`]: the session is active.
fn active_condition(column: &str) -> String {
    let idle: Vec<String> = IDLE_COMMANDS.iter().map(|c| format!("'{c}'")).collect();
    format!("{column} NOT IN ({})", idle.join(", "))
}

/// The statement of every cycle: the grouped sessions, and with `top_sessions` the
/// longest active ones, in one UNION ALL (see `sql::COLUMNS`).
fn grouped_sql(database: &Database, timeout: Duration) -> String {
    let active = active_condition("COMMAND");
    let client = host_without_port("HOST");
    let filters = filter_conditions(&database.filter, "");
    let mut sql = format!(
        "{TAG} /*M!100108 SET STATEMENT max_statement_time = {:.3} FOR */ \
         SELECT /*+ MAX_EXECUTION_TIME({}) */ 'g', NULL, NULL, DB, USER, {client}, SUM({active}), \
         COUNT(*), MAX(CASE WHEN {active} THEN TIME END), NULL, NULL \
         FROM information_schema.PROCESSLIST WHERE ID NOT IN ({OWN_SESSIONS}){filters} \
         GROUP BY 4, 5, 6",
        timeout.as_secs_f64(),
        timeout.as_millis().max(1),
    );
    if database.top_sessions > 0 {
        sql.push_str(&format!(
            " UNION ALL (SELECT 't', NULL, NULL, DB, USER, {client}, 1, 1, TIME, ID, NULL \
             FROM information_schema.PROCESSLIST WHERE ID NOT IN ({OWN_SESSIONS}) AND {active}{filters} \
             ORDER BY TIME DESC, ID LIMIT {})",
            database.top_sessions
        ));
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing;
    use crate::source::sql::fixtures::{counts as c, pairs, row};
    use crate::source::sql::Rows;
    use crate::stats::NONE_LABEL;

    /// Fixed rows in, exact statistics out: the one tenant is the target's name and
    /// the server its host; a NULL DB is `__none__`, while the string `NULL` is a
    /// database of that name here (only OceanBase writes it for none); background
    /// threads without a host are `__none__` clients.
    #[test]
    fn processlist_rows_give_exact_statistics() {
        let database = testing::database("monitor", 3306);
        let ctx = row_context(&database, "maria");
        let mut rows = Rows::new(&ctx, &["maria"]);
        for text in [
            "g|∅|∅|shop|app|10.0.0.100|2|5|7|∅|∅",
            "g|∅|∅|∅|app|10.0.0.101|0|1|∅|∅|∅",
            "g|∅|∅|NULL|odd|10.0.0.101|0|1|∅|∅|∅",
            "g|∅|∅|∅|system user||1|1|86400|∅|∅",
            "t|∅|∅|∅|system user||1|1|86400|5|∅",
            "t|∅|∅|shop|app|10.0.0.100|1|1|7|42|∅",
        ] {
            rows.add(row(text));
        }
        let tenants = rows.finish().unwrap().into_tenants();
        assert_eq!(tenants.keys().collect::<Vec<_>>(), ["maria"]);
        let t = &tenants["maria"];
        assert_eq!(
            (t.sessions, t.active_sessions, t.max_active_time),
            (8, 3, 86400.0)
        );
        assert_eq!(
            pairs(&t.by_db),
            [("NULL", c(1, 0)), (NONE_LABEL, c(2, 1)), ("shop", c(5, 2))]
        );
        assert_eq!(
            pairs(&t.by_client),
            [
                ("10.0.0.100", c(5, 2)),
                ("10.0.0.101", c(2, 0)),
                (NONE_LABEL, c(1, 1))
            ]
        );
        assert_eq!(t.by_server.keys().collect::<Vec<_>>(), ["10.0.0.1"]);
        let top: Vec<(u64, &str, &str)> = t
            .top
            .iter()
            .map(|s| (s.session_id, s.user.as_str(), s.sql_id.as_str()))
            .collect();
        assert_eq!(top, [(5, "system user", ""), (42, "app", "")]);
    }

    #[test]
    fn each_field_comes_from_the_column_this_server_has() {
        let settings = Mysql {
            database: testing::database("monitor", 3306),
        };
        let sessions = Sessions::new(&testing::mysql("maria"), &settings);
        let view = View {
            relation: "`information_schema`.`PROCESSLIST`".into(),
            cluster: false,
        };
        let columns =
            |names: &[&str]| -> HashSet<String> { names.iter().map(|n| n.to_string()).collect() };
        let maria = columns(&[
            "ID",
            "USER",
            "HOST",
            "DB",
            "COMMAND",
            "TIME",
            "STATE",
            "INFO",
            "TIME_MS",
            "MEMORY_USED",
        ]);
        let column = |field, columns: &HashSet<String>| sessions.column(&view, field, columns);
        assert_eq!(
            column(Field::Time, &maria).as_deref(),
            Some("`TIME_MS` / 1000")
        );
        assert_eq!(
            column(Field::MemoryUsage, &maria).as_deref(),
            Some("`MEMORY_USED`")
        );
        assert!(column(Field::State, &maria).unwrap().contains("'Sleep'"));
        assert_eq!(column(Field::SvrPort, &maria), None);
        let mysql = columns(&[
            "ID", "USER", "HOST", "DB", "COMMAND", "TIME", "STATE", "INFO",
        ]);
        assert_eq!(column(Field::Time, &mysql).as_deref(), Some("`TIME`"));
    }

    #[test]
    fn one_statement_bounds_itself_on_both_servers() {
        let mut database = testing::database("monitor", 3306);
        let sql = grouped_sql(&database, Duration::from_millis(2500));
        assert!(sql.contains("/*M!100108 SET STATEMENT max_statement_time = 2.500 FOR */"));
        assert!(sql.contains("/*+ MAX_EXECUTION_TIME(2500) */"));
        assert!(sql.contains(&format!("WHERE ID NOT IN ({OWN_SESSIONS})")));
        assert!(sql.contains("UNION ALL"), "top sessions by default");
        assert!(!sql.contains("INFO"), "statistics never read the SQL text");
        database.top_sessions = 0;
        assert!(!grouped_sql(&database, Duration::from_secs(1)).contains("UNION ALL"));
    }
}
