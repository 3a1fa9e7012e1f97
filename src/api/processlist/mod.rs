//! The session API over a MySQL-protocol processlist, shared by the SQL kinds
//! (OceanBase and MySQL/MariaDB): [`backend`] answers list, detail and stats with its
//! own pool, and each kind supplies what differs through [`Processlist`] (its
//! relation, found the way its collection finds it; its columns; what "active"
//! means; its statistics statement).

pub mod backend;

use crate::api::{Capabilities, DeadLock, Field, PageParams, PileupRows, TenantSession};
use crate::config::Database;
use crate::sql::query::SqlError;
use crate::stats::Collected;
use mysql_async::Conn;
use std::collections::HashSet;
use std::time::Duration;

pub use crate::future::BoxFuture;
pub use backend::ProcesslistBackend;

/// Which relation a target's sessions are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The relation, quoted for SQL.
    pub relation: String,
    /// Every tenant of a cluster, told apart by a `TENANT` column (and servers by
    /// `SVR_IP`); otherwise one server's one tenant, which the configuration names.
    pub cluster: bool,
    /// Whether MySQL's connection attributes (`performance_schema.session_connect_attrs`)
    /// can be read, for each session's program.
    pub connect_attributes: bool,
}

/// What one SQL kind tells the shared backend.
pub trait Processlist: Send + Sync + 'static {
    /// The target's name.
    fn target(&self) -> &str;

    /// What this kind can give beyond what every kind serves.
    fn capabilities(&self) -> Capabilities;

    /// Where the server is and how to log in.
    fn database(&self) -> &Database;

    /// Statements a new connection runs first, bounding its queries at `timeout`
    /// where the server can.
    fn init_statements(&self, timeout: Duration) -> Vec<String>;

    /// Finds the view, as collection does.
    fn detect<'a>(&'a self, conn: &'a mut Conn) -> BoxFuture<'a, Result<View, mysql_async::Error>>;

    /// The SQL expression that reads `field`, given the relation's columns (upper
    /// case); None when there is no such column (the field then comes from the
    /// target, or is the zero value). Only names of ours are ever written here.
    fn column(&self, view: &View, field: Field, columns: &HashSet<String>) -> Option<String>;

    /// `expression` as the left side of a `LIKE` with a bound pattern.
    fn like_operand(&self, expression: &str) -> String {
        expression.to_string()
    }

    /// The SQL condition "the session in this row is active", on the view's columns:
    /// the rule its collection counts with.
    fn active_condition(&self) -> String;

    /// One tenant's statistics, read now with the collection's own statement (without
    /// top sessions). `tenant` is one this target serves.
    fn tenant_stats<'a>(
        &'a self,
        conn: &'a mut Conn,
        view: &'a View,
        tenant: &'a str,
    ) -> BoxFuture<'a, Result<Collected, SqlError>>;

    /// How many deadlocks the database detected for `tenant` (one this target
    /// serves) in all, and the page `params` asks for, newest first.
    fn deadlocks<'a>(
        &'a self,
        conn: &'a mut Conn,
        view: &'a View,
        tenant: &'a str,
        params: &'a PageParams,
    ) -> BoxFuture<'a, Result<(u64, Vec<DeadLock>), SqlError>>;

    /// `tenant`'s lock waits (the longest first) and open transactions (the oldest
    /// first), at most `limit` of each; for a cluster, only those of sessions of
    /// `tenant`.
    fn pileup<'a>(
        &'a self,
        conn: &'a mut Conn,
        view: &'a View,
        tenant: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<PileupRows, SqlError>>;

    /// What active `session` waits on now, (class, event) as the metrics name it, for
    /// the detail; None where the engine does not tell (the default).
    fn session_wait<'a>(
        &'a self,
        _conn: &'a mut Conn,
        _view: &'a View,
        _session: &'a TenantSession,
    ) -> BoxFuture<'a, Result<Option<(String, String)>, SqlError>> {
        Box::pin(async { Ok(None) })
    }

    /// The privilege to suggest when one is missing.
    fn grant(&self) -> &'static str;

    /// The privilege to suggest when the account may not end other users' sessions.
    fn kill_grant(&self) -> &'static str;
}

/// The processlist's conventional column for `field`, as OceanBase names them (MySQL
/// shares the first few names); None for a field no processlist has.
pub fn column_name(field: Field) -> Option<&'static str> {
    Some(match field {
        Field::Id => "ID",
        Field::SvrIp => "SVR_IP",
        Field::SvrPort => "SVR_PORT",
        Field::SqlPort => "SQL_PORT",
        Field::User => "USER",
        Field::Db => "DB",
        Field::Tenant => "TENANT",
        Field::Host => "HOST",
        Field::Command => "COMMAND",
        Field::Time => "TIME",
        Field::State => "STATE",
        Field::Info => "INFO",
        Field::ProxySessId => "PROXY_SESSID",
        Field::ProxyIp => return None,
        Field::Action => "ACTION",
        Field::Module => "MODULE",
        Field::ClientInfo => "CLIENT_INFO",
        Field::Level => "LEVEL",
        Field::SamplePercentage => "SAMPLE_PERCENTAGE",
        Field::RecordPolicy => "RECORD_POLICY",
        Field::SqlId => "SQL_ID",
        Field::TotalCpuTime => "TOTAL_CPU_TIME",
        Field::MemoryUsage => "MEMORY_USAGE",
        // Each kind's own expression, or its own read (the detail's wait).
        Field::Application | Field::WaitClass | Field::WaitEvent | Field::Started => return None,
    })
}

/// `` `COLUMN` `` when the relation has the conventional column for `field`.
pub fn plain_column(field: Field, columns: &HashSet<String>) -> Option<String> {
    let column = column_name(field)?;
    columns.contains(column).then(|| format!("`{column}`"))
}
/// The session API of a MySQL-protocol kind's `processlist`: one pool of at most
/// `max_concurrent` connections of its own, its queries bounded at `timeout`.
pub fn backend(
    processlist: Box<dyn Processlist>,
    collect_interval: Duration,
    (max_concurrent, timeout): (usize, Duration),
) -> crate::api::http::Backend {
    let backend = ProcesslistBackend::new(processlist, collect_interval, max_concurrent, timeout);
    let served = crate::api::serve::BackendApi::new(backend, max_concurrent, timeout);
    crate::api::http::Backend::Sessions(std::sync::Arc::new(served))
}

/// Sends a kind's statement of the pile-up (see [`crate::api::pileup::add_pileup_row`]),
/// its parameters bound, and reads its rows.
pub async fn read_pileup(
    conn: &mut mysql_async::Conn,
    sql: &str,
    params: Vec<mysql_async::Value>,
) -> Result<crate::api::PileupRows, SqlError> {
    use mysql_async::prelude::Queryable;
    let sql = crate::sql::query::with_own_sessions(conn, sql);
    let statement = conn.prep(sql).await?;
    let found: Result<Vec<mysql_async::Row>, _> = conn.exec(&statement, params).await;
    let closed = conn.close(statement).await;
    let (found, ()) = (found?, closed?);
    let mut rows = crate::api::PileupRows::default();
    for row in found {
        crate::api::pileup::add_pileup_row(&mut rows, row.unwrap()).map_err(SqlError::Answer)?;
    }
    Ok(rows)
}
