//! What the session API reads of a MySQL or MariaDB target: its processlist's
//! columns, each server's own, and its statistics as a cycle computes them.

use super::cycle::instrument_class;
use super::{active_condition, grouping, row_context, GRANT};
use crate::api::deadlocks::rfc3339_micros;
use crate::api::processlist::read_pileup;
use crate::api::processlist::{self, plain_column, Processlist, View};
use crate::api::Capabilities;
use crate::api::{DeadLock, Field, PageParams, PileupRows, TenantSession};
use crate::config::mysql::Mysql;
use crate::config::{CollectParts, Database, Target};
use crate::sql::query::SqlError;
use crate::sql::{add_group_row, read, TAG};
use crate::stats::Collected;
use crate::stats::CPU;
use std::collections::HashSet;
use std::time::Duration;

/// Where MySQL keeps each connection's attributes (its `program_name` among them).
const CONNECT_ATTRIBUTES: &str = "`performance_schema`.`session_connect_attrs`";

/// A MySQL/MariaDB target as the session API reads it: `ID, USER, HOST, DB,
/// COMMAND, TIME, STATE, INFO` (MariaDB adds `TIME_MS` and `MEMORY_USED`); its one
/// tenant is the target's name.
pub struct MysqlProcesslist {
    name: String,
    database: Database,
    collect_timeout: Duration,
}

impl MysqlProcesslist {
    pub fn new(target: &Target, settings: &Mysql) -> Self {
        Self {
            name: target.name.clone(),
            database: settings.database.clone(),
            collect_timeout: target.collect_timeout,
        }
    }
}

impl Processlist for MysqlProcesslist {
    fn target(&self) -> &str {
        &self.name
    }

    /// InnoDB keeps its latest deadlock (see `deadlock.rs`).
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            deadlock_history: true,
            kill: crate::api::Kill::Supported,
        }
    }

    fn database(&self) -> &Database {
        &self.database
    }

    /// Processlist queries are short, and the request is abandoned anyway.
    fn init_statements(&self, _: Duration) -> Vec<String> {
        Vec::new()
    }

    fn detect<'a>(
        &'a self,
        conn: &'a mut mysql_async::Conn,
    ) -> processlist::BoxFuture<'a, Result<View, mysql_async::Error>> {
        Box::pin(async {
            let attributes = crate::sql::query::probe_relation(conn, CONNECT_ATTRIBUTES).await?;
            Ok(View {
                relation: "`information_schema`.`PROCESSLIST`".to_string(),
                cluster: false,
                connect_attributes: attributes.is_none(),
            })
        })
    }

    fn column(&self, view: &View, field: Field, columns: &HashSet<String>) -> Option<String> {
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
            // For the rows of a page only (a sort by it reads it for every session).
            Field::Application if view.connect_attributes => Some(format!(
                "(SELECT a.`ATTR_VALUE` FROM {CONNECT_ATTRIBUTES} a WHERE a.`PROCESSLIST_ID` = `ID` \
                 AND a.`ATTR_NAME` = 'program_name' LIMIT 1)"
            )),
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

    /// InnoDB's lock waits (MariaDB's information_schema, MySQL 8's
    /// performance_schema, by the server's version) and its open transactions.
    fn pileup<'a>(
        &'a self,
        conn: &'a mut mysql_async::Conn,
        _view: &'a View,
        _tenant: &'a str,
        limit: usize,
    ) -> processlist::BoxFuture<'a, Result<PileupRows, SqlError>> {
        Box::pin(async move {
            use mysql_async::prelude::Queryable;
            let version: Option<String> =
                conn.query_first(format!("{TAG} SELECT VERSION()")).await?;
            let flavour = super::LockWaits::of(version.as_deref().unwrap_or_default());
            let mut rows = read_pileup(conn, &flavour.pileup(limit), Vec::new()).await?;
            // Metadata lock waits, where the server shows them: without the grant or
            // performance_schema the read fails, and only row locks are answered.
            let metadata = super::metadata::pileup(&self.database, limit);
            match read_pileup(conn, &metadata, Vec::new()).await {
                Ok(more) => rows.lock_waits.extend(more.lock_waits),
                Err(err) => {
                    tracing::debug!(target = %self.name, "reading the metadata locks: {err:?}")
                }
            }
            Ok(rows)
        })
    }

    /// The thread's innermost current wait, as the collection reads it (none while
    /// the consumers are off: then the server does not tell).
    fn session_wait<'a>(
        &'a self,
        conn: &'a mut mysql_async::Conn,
        view: &'a View,
        session: &'a TenantSession,
    ) -> processlist::BoxFuture<'a, Result<Option<(String, String)>, SqlError>> {
        Box::pin(async move {
            if !view.connect_attributes {
                return Ok(None);
            }
            let sql = format!(
                "{TAG} SELECT (SELECT COUNT(*) FROM performance_schema.setup_consumers c \
                 WHERE c.NAME IN ('global_instrumentation', 'thread_instrumentation', \
                 'events_waits_current') AND c.ENABLED = 'YES'), (SELECT w.EVENT_NAME \
                 FROM performance_schema.threads t JOIN performance_schema.events_waits_current w \
                 ON w.THREAD_ID = t.THREAD_ID WHERE t.PROCESSLIST_ID = ? AND w.END_EVENT_ID IS NULL \
                 AND w.EVENT_NAME <> 'idle' ORDER BY w.EVENT_ID DESC LIMIT 1)"
            );
            let id = u64::try_from(session.id).unwrap_or_default();
            let rows = crate::api::processlist::backend::exec(conn, &sql, vec![id.into()]).await?;
            let Some(row) = rows.into_iter().next() else {
                return Ok(None);
            };
            let mut cells = row.unwrap().into_iter();
            let enabled = cells.next().and_then(crate::sql::query::text);
            if enabled.as_deref() != Some("3") {
                return Ok(None);
            }
            Ok(Some(match cells.next().and_then(crate::sql::query::text) {
                Some(event) => (instrument_class(&event).to_string(), event),
                None => (CPU.to_string(), CPU.to_string()),
            }))
        })
    }

    /// InnoDB's latest detected deadlock, the only one it keeps: one event or none.
    fn deadlocks<'a>(
        &'a self,
        conn: &'a mut mysql_async::Conn,
        _view: &'a View,
        _tenant: &'a str,
        params: &'a PageParams,
    ) -> processlist::BoxFuture<'a, Result<(u64, Vec<DeadLock>), SqlError>> {
        Box::pin(async move {
            use mysql_async::prelude::Queryable;
            let status: Option<(String, String, String)> =
                conn.query_first("SHOW ENGINE INNODB STATUS").await?;
            let Some((reported, mut event)) =
                status.and_then(|(_, _, text)| super::deadlock::latest(&text))
            else {
                return Ok((0, Vec::new()));
            };
            // The server wrote its local time; it says which instant that was.
            let unix: Option<i64> = match reported
                .bytes()
                .all(|b| b.is_ascii_digit() || b" -:".contains(&b))
            {
                true => {
                    conn.query_first(format!("SELECT UNIX_TIMESTAMP('{reported}')"))
                        .await?
                }
                false => None,
            };
            event.report_time = rfc3339_micros(unix.unwrap_or(0).saturating_mul(1_000_000));
            let address = &self.database.address;
            for node in &mut event.nodes {
                node.svr_ip.clone_from(&address.host);
                node.svr_port = i64::from(address.port);
            }
            let page = match params.page {
                1 => vec![event],
                _ => Vec::new(),
            };
            Ok((1, page))
        })
    }

    fn grant(&self) -> &'static str {
        GRANT
    }

    fn kill_grant(&self) -> &'static str {
        "ending other users' sessions needs CONNECTION ADMIN (MariaDB 10.5+: GRANT CONNECTION ADMIN ON *.*; MySQL 8: GRANT CONNECTION_ADMIN ON *.*) or SUPER"
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
    // The API's stats are counts: no top sessions, transactions, locks or states.
    let database = Database {
        top_sessions: 0,
        collect: CollectParts::NONE,
        ..database.clone()
    };
    let ctx = row_context(&database, tenant);
    let mut aggregator = ctx.aggregator(&[tenant]);
    let sql = grouping(&database, timeout, false).statement();
    read(conn, &sql, |row| add_group_row(&mut aggregator, row, &ctx)).await?;
    Ok(aggregator.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing;

    #[test]
    fn each_field_comes_from_the_column_this_server_has() {
        let settings = Mysql {
            database: testing::database("monitor", 3306),
        };
        let sessions = MysqlProcesslist::new(&testing::mysql("maria"), &settings);
        let view = View {
            relation: "`information_schema`.`PROCESSLIST`".into(),
            cluster: false,
            connect_attributes: true,
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
        // The program from the connection attributes, where the account reads them.
        assert!(column(Field::Application, &mysql)
            .unwrap()
            .contains("`ATTR_NAME` = 'program_name'"));
        let blind = View {
            connect_attributes: false,
            ..view.clone()
        };
        assert_eq!(sessions.column(&blind, Field::Application, &mysql), None);
    }
}
