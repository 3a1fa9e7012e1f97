//! Where session rows come from: one [`Source`] per target kind, each sending one
//! grouped query per cycle.
//!
//! A source never reads SQL text (`INFO`) and never pulls one row per session: the
//! database groups by (tenant, server, db, user, client), counting the active sessions
//! of each group, so the answer is as
//! small as the number of distinct combinations. Adding a kind means one new file and
//! one arm in [`build`].

mod conn;
mod dbss;
mod mysql;
mod oceanbase;
pub mod sql;

use crate::config::{Kind, Target};
use crate::stats::Collected;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use conn::{classify, close_in_background, is_missing_or_denied_relation, pool};

/// A boxed future, so [`Source`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One kind of target: how to read its sessions.
pub trait Source: Send {
    /// Runs one collection: connect if needed, send the grouped query, decode it.
    /// The caller bounds it with the target's `collect_timeout`.
    fn collect(&mut self) -> BoxFuture<'_, Result<Collected, SourceError>>;

    /// Forgets every pooled connection. Called after a failed or abandoned cycle, so a
    /// connection left in an unknown state (mid-query, server restarted) is never reused.
    fn reset(&mut self);
}

/// Builds the source for `target`.
pub fn build(target: &Target) -> Box<dyn Source> {
    match target.kind {
        Kind::Oceanbase => Box::new(oceanbase::OceanbaseSource::new(target)),
        Kind::Mysql => Box::new(mysql::MysqlSource::new(target)),
        Kind::Dbss => Box::new(dbss::DbssSource::new(target)),
    }
}

/// Which relation a target's sessions are read from: what the passthrough needs to
/// know to read them itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// An OceanBase cluster's sys tenant: `GV$OB_PROCESSLIST` (or the configured
    /// `processlist_view`), every tenant, with `TENANT` and server columns.
    Cluster,
    /// A single-tenant OceanBase server (seekdb): `V$OB_PROCESSLIST`.
    SingleTenant,
    /// MySQL or MariaDB: `information_schema.PROCESSLIST`.
    Mysql,
}

impl View {
    /// The relation the sessions of `target` are read from in this view.
    pub fn relation(self, target: &Target) -> String {
        match self {
            View::Cluster => oceanbase::processlist_relation(target),
            View::SingleTenant => "`oceanbase`.`V$OB_PROCESSLIST`".to_string(),
            View::Mysql => "`information_schema`.`PROCESSLIST`".to_string(),
        }
    }
}

/// `COMMAND` values that do not make a MySQL/MariaDB session active.
pub fn mysql_idle_commands() -> &'static [&'static str] {
    &mysql::IDLE_COMMANDS
}

/// Finds the view of `target` the way its collection does: configured views or a
/// visible `DBA_OB_TENANTS` mean a cluster; a missing or denied one, a single tenant.
pub async fn detect_view(
    conn: &mut mysql_async::Conn,
    target: &Target,
) -> Result<View, mysql_async::Error> {
    use mysql_async::prelude::Queryable;
    if target.kind == Kind::Mysql {
        return Ok(View::Mysql);
    }
    if target.processlist_view.is_some() || target.tenants_view.is_some() {
        return Ok(View::Cluster);
    }
    let probe = format!(
        "{} SELECT 1 FROM {} WHERE 1 = 0",
        sql::TAG,
        oceanbase::tenants_relation(target)
    );
    match conn.query_drop(probe).await {
        Ok(()) => Ok(View::Cluster),
        Err(err) if is_missing_or_denied_relation(&err) => Ok(View::SingleTenant),
        Err(err) => Err(err),
    }
}

/// One tenant's statistics, read now: the statement and the fold of a collection
/// cycle, restricted to `tenant` (a bound parameter in a cluster) and without top
/// sessions, so the passthrough's stats and `/metrics` cannot disagree on method.
/// `tenant` must be the tenant this view serves (checked by the caller).
pub async fn tenant_stats(
    conn: &mut mysql_async::Conn,
    target: &Target,
    view: View,
    tenant: &str,
) -> Result<Result<Collected, SourceError>, mysql_async::Error> {
    let ctx = sql::RowContext {
        tenant,
        server: &target.address.host,
        null_string_is_no_db: target.kind == Kind::Oceanbase,
    };
    match view {
        View::Cluster => {
            let statement = oceanbase::tenant_stats_sql(target);
            // No tenant is added up front: one the cluster no longer has is absent.
            sql::query_bound(
                conn,
                &statement,
                mysql_async::Params::Positional(vec![tenant.into()]),
                &ctx,
                &[],
            )
            .await
        }
        View::SingleTenant => {
            sql::query(conn, &oceanbase::single_stats_sql(target), &ctx, &[tenant]).await
        }
        View::Mysql => sql::query(conn, &mysql::stats_sql(target), &ctx, &[tenant]).await,
    }
}

/// Why a collection failed, in the user's terms; the `reason` label of
/// `dbsession_collect_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// The server could not be reached, or refused the connection (e.g. too many).
    Connect,
    /// Wrong credentials or a missing privilege.
    Auth,
    /// The cycle did not finish within `collect_timeout`.
    Timeout,
    /// The query failed or its answer could not be read (DBSS: an answer that is not
    /// the documented one, e.g. an unexpected status or body).
    Query,
    /// DBSS answered 400 (or another 4xx): the request does not fit the API.
    BadRequest,
    /// DBSS answered 403: the token's user may not read this instance's reports.
    Forbidden,
    /// DBSS answered 500 or another 5xx.
    Server,
}

impl Reason {
    /// The reasons a database target can fail with.
    pub const DATABASE: [Reason; 4] = [
        Reason::Connect,
        Reason::Auth,
        Reason::Timeout,
        Reason::Query,
    ];

    /// The reasons a DBSS target can fail with (401 is `auth`).
    pub const DBSS: [Reason; 7] = [
        Reason::Connect,
        Reason::Auth,
        Reason::Timeout,
        Reason::Query,
        Reason::BadRequest,
        Reason::Forbidden,
        Reason::Server,
    ];

    /// The reasons targets of `kind` can fail with: each gets an error counter from
    /// the start, so `rate()` and `increase()` see the first failure.
    pub fn of(kind: Kind) -> &'static [Reason] {
        match kind {
            Kind::Oceanbase | Kind::Mysql => &Self::DATABASE,
            Kind::Dbss => &Self::DBSS,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Connect => "connect",
            Reason::Auth => "auth",
            Reason::Timeout => "timeout",
            Reason::Query => "query",
            Reason::BadRequest => "bad_request",
            Reason::Forbidden => "forbidden",
            Reason::Server => "server",
        }
    }
}

/// A failed collection: the reason label plus a message that says what to check.
/// Messages never contain a password or token.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    pub reason: Reason,
    pub message: String,
    /// The error an HTTP API returned (DBSS's `error_code`, `error_msg`), logged as
    /// fields of their own.
    pub api_error: Option<ApiError>,
}

/// An API's own error code and message, as it sent them (cleaned for logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

impl SourceError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            api_error: None,
        }
    }

    pub fn timeout(limit: Duration) -> Self {
        Self::new(
            Reason::Timeout,
            format!(
                "no answer within collect_timeout ({}): check the server's load and network, or raise collect_timeout",
                crate::config::format_duration(limit)
            ),
        )
    }
}
