//! One SQL target's session API: its own small pool (never the scheduler's
//! connections), a cap on concurrent requests, and the SQL of the list, detail and
//! stats endpoints, on the relation and columns its kind ([`Processlist`]) names.
//! Which columns exist is read from the server once per target, so a custom
//! `processlist_view` with fewer columns still works.
//!
//! Every value from a request is a bound parameter of a prepared statement; the SQL
//! text holds only names of ours (columns from an allowlist, the configured views).

use super::{Processlist, View};
use crate::api::params::Observer;
use crate::api::pileup::{MAX_PILEUP_ROWS, MAX_PILEUP_SQL};
use crate::api::serve::{PageRows, PageSink, Refusal, SessionBackend};
use crate::api::Capabilities;
use crate::api::{
    DeadLock, Failure, Field, FieldValue, ListParams, PageParams, PileupRows, TenantSession,
};
use crate::config::Address;
use crate::sql::conn::{close_in_background, pool};
use crate::sql::query::{with_own_sessions, SqlError};
use crate::sql::{contains_pattern, filter_conditions, OWN_SESSIONS, TAG};
use crate::stats::TenantStats;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Pool, Value};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::OnceCell;

/// The relation and columns a target's sessions are read from, found once.
#[derive(Debug)]
struct Shape {
    view: View,
    columns: HashSet<String>,
}

/// One target's session API connections and what it knows about its relation.
pub struct ProcesslistBackend {
    target: Box<dyn Processlist>,
    pool: Pool,
    /// The request timeout: how long a page that stopped early waits to close its
    /// connection.
    timeout: Duration,
    shape: OnceCell<Shape>,
}

impl Drop for ProcesslistBackend {
    fn drop(&mut self) {
        close_in_background(self.pool.clone());
    }
}

impl SessionBackend for ProcesslistBackend {
    type Conn = Conn;
    type Page = Page;

    fn target(&self) -> &str {
        self.target.target()
    }

    fn capabilities(&self) -> Capabilities {
        self.target.capabilities()
    }

    /// Known as one of the exporter's own sessions from the moment it is handed out,
    /// not only once it has sent a statement: the page's parallel requests must not
    /// list each other's connections.
    async fn connect(&self) -> Result<Conn, Failure> {
        let conn = self.pool.get_conn().await.map_err(|e| self.failure(&e))?;
        crate::sql::conn::OwnSessions::of(&conn);
        Ok(conn)
    }

    /// Dropped, a pooled connection goes back to the pool.
    fn release(&self, conn: Conn) {
        drop(conn);
    }

    async fn page(
        &self,
        conn: &mut Conn,
        tenant: &str,
        params: &ListParams,
    ) -> Result<(u64, Page), Failure> {
        let shape = self.shape(conn).await?;
        let (conditions, values) = self.conditions(shape, tenant, params)?;
        let count_sql = format!(
            "{TAG} SELECT COUNT(*) FROM {} WHERE {conditions}",
            shape.view.relation
        );
        let total = exec(conn, &count_sql, values)
            .await
            .map_err(|e| self.failure(&e))?
            .into_iter()
            .next()
            .and_then(|row| row.unwrap().into_iter().next())
            .and_then(crate::sql::query::text)
            .and_then(|t| t.trim().parse::<u64>().ok())
            .ok_or_else(|| Failure::unavailable("the database did not return a session count"))?;
        Ok((total, self.query(shape, tenant, params)?))
    }

    async fn detail(
        &self,
        conn: &mut Conn,
        tenant: &str,
        id: u64,
    ) -> Result<Option<TenantSession>, Failure> {
        let params = ListParams {
            id: Some(id),
            size: 1,
            ..ListParams::default()
        };
        let shape = self.shape(conn).await?;
        let query = self.query(shape, tenant, &params)?;
        let rows = exec(conn, &query.sql, query.values)
            .await
            .map_err(|e| self.failure(&e))?;
        let Some(mut session) = rows
            .into_iter()
            .next()
            .map(|row| query.rows.make(row))
            .transpose()?
        else {
            return Ok(None);
        };
        // What it waits on, where the engine tells: never a reason to fail the detail.
        if session.state == "ACTIVE" {
            match self.target.session_wait(conn, &shape.view, &session).await {
                Ok(Some((class, event))) => {
                    (session.wait_class, session.wait_event) = (class, event)
                }
                Ok(None) => {}
                Err(err) => tracing::debug!(
                    target = %self.target.target(),
                    error = ?err,
                    "the session's wait could not be read"
                ),
            }
        }
        Ok(Some(session))
    }

    async fn stats(&self, conn: &mut Conn, tenant: &str) -> Result<Option<TenantStats>, Failure> {
        let shape = self.shape(conn).await?;
        let collected = self
            .target
            .tenant_stats(conn, &shape.view, tenant)
            .await
            .map_err(|err| match err {
                SqlError::Driver(err) => self.failure(&err),
                SqlError::Answer(err) => {
                    Failure::unavailable(format!("target `{}`: {err}", self.target.target()))
                }
            })?;
        Ok(collected
            .into_tenants()
            .into_iter()
            .find(|(name, _)| name == tenant)
            .map(|(_, stats)| stats))
    }

    async fn deadlocks(
        &self,
        conn: &mut Conn,
        tenant: &str,
        params: &PageParams,
    ) -> Result<(u64, Vec<DeadLock>), Failure> {
        let shape = self.shape(conn).await?;
        self.target
            .deadlocks(conn, &shape.view, tenant, params)
            .await
            .map_err(|err| self.read_failure(err, "the deadlocks"))
    }

    async fn pileup(&self, conn: &mut Conn, tenant: &str) -> Result<PileupRows, Failure> {
        let shape = self.shape(conn).await?;
        self.target
            .pileup(conn, &shape.view, tenant, MAX_PILEUP_ROWS + 1)
            .await
            .map_err(|err| self.read_failure(err, "the lock waits and transactions"))
    }

    async fn sessions(
        &self,
        conn: &mut Conn,
        tenant: &str,
        ids: &[u64],
    ) -> Result<Vec<TenantSession>, Failure> {
        let shape = self.shape(conn).await?;
        let query = self.query_of(shape, tenant, &ListParams::default(), ids)?;
        let rows = exec(conn, &query.sql, query.values)
            .await
            .map_err(|e| self.failure(&e))?;
        rows.into_iter().map(|row| query.rows.make(row)).collect()
    }

    async fn present(
        &self,
        conn: &mut Conn,
        tenant: &str,
        ids: &[u64],
    ) -> Result<Vec<u64>, Failure> {
        let shape = self.shape(conn).await?;
        let (conditions, mut values) = self.conditions(shape, tenant, &ListParams::default())?;
        let marks = vec!["?"; ids.len()].join(", ");
        values.extend(ids.iter().map(|id| Value::from(*id)));
        let sql = format!(
            "{TAG} SELECT `ID` FROM {} WHERE {conditions} AND `ID` IN ({marks})",
            shape.view.relation
        );
        let rows = exec(conn, &sql, values)
            .await
            .map_err(|e| self.failure(&e))?;
        rows.into_iter()
            .map(|row| {
                row.unwrap()
                    .into_iter()
                    .next()
                    .and_then(crate::sql::query::text)
                    .and_then(|t| t.trim().parse::<u64>().ok())
                    .ok_or_else(|| {
                        Failure::unavailable("the database sent a session id that is not a number")
                    })
            })
            .collect()
    }

    /// `started` is never given here: these engines record no start, and the kill's
    /// check refuses an identity before any session is ended.
    async fn end(
        &self,
        conn: &mut Conn,
        id: u64,
        _started: Option<&str>,
        query_only: bool,
    ) -> Result<(), Refusal> {
        let what = if query_only { "KILL QUERY" } else { "KILL" };
        // A number checked to be a session's, never text from the request.
        let Err(err) = conn.query_drop(format!("{TAG} {what} {id}")).await else {
            return Ok(());
        };
        let what = format!("{what} {id}");
        let why = err.to_string();
        Err(
            if matches!(&err, mysql_async::Error::Server(e) if [1095, 1227].contains(&e.code)) {
                Refusal::Denied {
                    what,
                    why,
                    grant: self.target.kill_grant().to_string(),
                }
            } else {
                Refusal::Failed { what, why }
            },
        )
    }
}

impl ProcesslistBackend {
    /// `interval` is the target's collect interval, which sets how long idle
    /// connections are kept; at most `max_concurrent` connections; `timeout` is the
    /// request timeout.
    pub fn new(
        target: Box<dyn Processlist>,
        interval: Duration,
        max_concurrent: usize,
        timeout: Duration,
    ) -> Self {
        let init = target.init_statements(timeout);
        Self {
            pool: pool(target.database(), interval, init, max_concurrent),
            target,
            timeout,
            shape: OnceCell::new(),
        }
    }

    /// The statement of the page `params` asks for.
    fn query(&self, shape: &Shape, tenant: &str, params: &ListParams) -> Result<Page, Failure> {
        self.query_of(shape, tenant, params, &[])
    }

    /// [`Self::query`], of sessions `ids` only when there are some, their SQL text
    /// cut to what the pile-up keeps (a named session's text is read whole only by
    /// the detail).
    fn query_of(
        &self,
        shape: &Shape,
        tenant: &str,
        params: &ListParams,
        ids: &[u64],
    ) -> Result<Page, Failure> {
        let offset = params.offset()?;
        let (mut conditions, mut values) = self.conditions(shape, tenant, params)?;
        if !ids.is_empty() {
            conditions.push_str(&format!(
                " AND `ID` IN ({})",
                vec!["?"; ids.len()].join(", ")
            ));
            values.extend(ids.iter().map(|id| Value::from(*id)));
        }
        let (fields, select) = self.select_list(shape, !ids.is_empty());
        let mut order = String::new();
        if let Some((field, direction)) = params.sort {
            if let Some(expr) = self.target.column(&shape.view, field, &shape.columns) {
                order = format!("{expr} {}, ", direction.sql());
            }
        }
        order.push_str(&tiebreak(shape));
        let sql = format!(
            "{TAG} SELECT {select} FROM {} WHERE {conditions} ORDER BY {order} LIMIT ? OFFSET ?",
            shape.view.relation
        );
        // A size past any result (the SDK sends sys.maxsize) is the same LIMIT as
        // i64::MAX, the largest every server takes.
        values.push(params.size.min(i64::MAX as u64).into());
        values.push(offset.into());
        let rows = RowMaker {
            fields,
            tenant: tenant.to_string(),
            fill_tenant: !shape.view.cluster || !shape.columns.contains("TENANT"),
            fill_server: !shape.view.cluster,
            address: self.target.database().address.clone(),
            target: self.target.target().to_string(),
            failure: FailureContext {
                target: self.target.target().to_string(),
                database: self.target.database().clone(),
                grant: self.target.grant(),
            },
        };
        Ok(Page {
            sql,
            values,
            rows,
            timeout: self.timeout,
        })
    }

    async fn shape(&self, conn: &mut Conn) -> Result<&Shape, Failure> {
        self.shape
            .get_or_try_init(|| async {
                let view = self
                    .target
                    .detect(conn)
                    .await
                    .map_err(|e| self.failure(&e))?;
                let probe = format!("{TAG} SELECT * FROM {} WHERE 1 = 0", view.relation);
                let result = conn.query_iter(probe).await.map_err(|e| self.failure(&e))?;
                let columns: HashSet<String> = result
                    .columns_ref()
                    .iter()
                    .map(|c| c.name_str().to_ascii_uppercase())
                    .collect();
                result.drop_result().await.map_err(|e| self.failure(&e))?;
                if view.cluster && !columns.contains("TENANT") {
                    return Err(Failure::unavailable(format!(
                        "{} has no TENANT column: the passthrough needs it to tell tenants apart",
                        view.relation
                    )));
                }
                Ok(Shape { view, columns })
            })
            .await
    }

    /// The WHERE clause of the list and its count, with its bound values.
    fn conditions(
        &self,
        shape: &Shape,
        tenant: &str,
        params: &ListParams,
    ) -> Result<(String, Vec<Value>), Failure> {
        let has = |c: &str| shape.columns.contains(c);
        let mut values: Vec<Value> = Vec::new();
        // The session API's own session is not one of the tenant's.
        let mut sql = if shape.view.cluster {
            values.push(tenant.into());
            if has("SVR_IP") {
                format!("`TENANT` = ? AND NOT (`ID` IN ({OWN_SESSIONS}) AND `SVR_IP` = HOST_IP())")
            } else {
                format!("`TENANT` = ? AND `ID` NOT IN ({OWN_SESSIONS})")
            }
        } else {
            format!("`ID` NOT IN ({OWN_SESSIONS})")
        };
        // The target's own filters apply, so the list agrees with the stats.
        sql.push_str(&filter_conditions(&self.target.database().filter, ""));
        for (field, wanted) in [
            (Field::User, &params.user),
            (Field::Db, &params.db),
            (Field::Host, &params.host),
        ] {
            let Some(wanted) = wanted.as_deref().filter(|w| !w.is_empty()) else {
                continue;
            };
            match self.target.column(&shape.view, field, &shape.columns) {
                Some(expr) => {
                    let operand = self.target.like_operand(&expr);
                    sql.push_str(&format!(" AND {operand} LIKE ? ESCAPE '!'"));
                    values.push(contains_pattern(wanted).into());
                }
                None => sql.push_str(" AND 1 = 0"),
            }
        }
        if let Some(wanted) = params.state.as_deref().filter(|w| !w.is_empty()) {
            let either: Vec<String> = [Field::Command, Field::State]
                .into_iter()
                .filter_map(|field| self.target.column(&shape.view, field, &shape.columns))
                .map(|expr| {
                    values.push(contains_pattern(wanted).into());
                    format!("{} LIKE ? ESCAPE '!'", self.target.like_operand(&expr))
                })
                .collect();
            match either.is_empty() {
                true => sql.push_str(" AND 1 = 0"),
                false => sql.push_str(&format!(" AND ({})", either.join(" OR "))),
            }
        }
        if let Some(min) = params.min_time {
            match self.target.column(&shape.view, Field::Time, &shape.columns) {
                Some(expr) => {
                    sql.push_str(&format!(" AND {expr} >= ?"));
                    values.push(min.into());
                }
                None => sql.push_str(" AND 1 = 0"),
            }
        }
        if let Some(id) = params.id {
            sql.push_str(" AND `ID` = ?");
            values.push(id.into());
        }
        if let Some(observers) = &params.observers {
            sql.push_str(&self.observer_condition(shape, observers, &mut values));
        }
        if params.active_only {
            sql.push_str(&format!(" AND {}", self.target.active_condition()));
        }
        Ok((sql, values))
    }

    fn observer_condition(
        &self,
        shape: &Shape,
        observers: &[Observer],
        values: &mut Vec<Value>,
    ) -> String {
        if shape.view.cluster && shape.columns.contains("SVR_IP") {
            let mut items = Vec::new();
            for observer in observers {
                values.push(observer.ip.to_string().into());
                match observer.port {
                    Some(port) if shape.columns.contains("SVR_PORT") => {
                        values.push(port.into());
                        items.push("(`SVR_IP` = ? AND `SVR_PORT` = ?)");
                    }
                    Some(_) => items.push("(`SVR_IP` = ? AND 1 = 0)"),
                    None => items.push("`SVR_IP` = ?"),
                }
            }
            return format!(" AND ({})", items.join(" OR "));
        }
        // One server: the target itself.
        let address = &self.target.database().address;
        if Observer::any_is(observers, &address.host, address.port) {
            String::new()
        } else {
            " AND 1 = 0".to_string()
        }
    }

    /// A failed read of `what` (a kind's own statement): a missing grant says which.
    fn read_failure(&self, err: SqlError, what: &str) -> Failure {
        let target = self.target.target();
        match err {
            SqlError::Driver(mysql_async::Error::Server(e))
                if [1044, 1142, 1227].contains(&e.code) =>
            {
                Failure::grant_missing(format!(
                    "target `{target}`: the exporter's account may not read {what} ({}): {}",
                    e.message,
                    self.target.grant()
                ))
            }
            SqlError::Driver(err) => self.failure(&err),
            SqlError::Answer(err) => Failure::unavailable(format!("target `{target}`: {err}")),
        }
    }

    fn failure(&self, err: &mysql_async::Error) -> Failure {
        let error = crate::sql::conn::classify(
            err,
            self.target.database(),
            "reading sessions for the passthrough",
            self.target.grant(),
        );
        Failure::unavailable(format!("target `{}`: {error}", self.target.target()))
    }

    /// The SELECT list: every field the view can read, and which field each column is.
    /// `cut`: the SQL text only as far as the pile-up keeps it.
    fn select_list(&self, shape: &Shape, cut: bool) -> (Vec<Field>, String) {
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for field in Field::ALL {
            if let Some(expr) = self.target.column(&shape.view, field, &shape.columns) {
                fields.push(field);
                columns.push(match (field, cut) {
                    (Field::Info, true) => format!("SUBSTRING({expr}, 1, {})", MAX_PILEUP_SQL + 1),
                    _ => expr,
                });
            }
        }
        (fields, columns.join(", "))
    }
}

/// Runs a prepared statement, with the exporter's own sessions written in (see
/// `sql::OWN_SESSIONS`), and closes it: with no statement cache, the driver would
/// leave every statement open on the pooled connection (MySQL counts them against
/// max_prepared_stmt_count; OceanBase soon refuses with "maximum open cursors").
pub(crate) async fn exec(
    conn: &mut Conn,
    sql: &str,
    values: Vec<Value>,
) -> Result<Vec<mysql_async::Row>, mysql_async::Error> {
    let sql = with_own_sessions(conn, sql);
    let statement = conn.prep(sql).await?;
    let rows = conn.exec(&statement, values).await;
    let closed = conn.close(statement).await;
    let rows = rows?;
    closed?;
    Ok(rows)
}

/// A page's statement, ready to send, with what turning its rows into sessions
/// needs.
pub struct Page {
    sql: String,
    values: Vec<Value>,
    rows: RowMaker,
    timeout: Duration,
}

impl PageRows for Page {
    type Conn = Conn;

    async fn send(self, mut conn: Conn, sink: PageSink) {
        let completed = stream_rows(&mut conn, &self.sql, self.values, &self.rows, &sink).await;
        if !completed {
            // Rows may be left unread on it: never back into the pool.
            let _ = tokio::time::timeout(self.timeout, conn.disconnect()).await;
        }
    }
}

/// What turning a row into a `TenantSession` needs, owned, so a list's streaming
/// task can do it.
struct RowMaker {
    fields: Vec<Field>,
    tenant: String,
    /// What a single server does not say comes from the configuration.
    fill_tenant: bool,
    fill_server: bool,
    address: Address,
    target: String,
    failure: FailureContext,
}

/// What a driver error is reported with.
struct FailureContext {
    target: String,
    database: crate::config::Database,
    grant: &'static str,
}

impl FailureContext {
    fn failure(&self, err: &mysql_async::Error) -> Failure {
        let error = crate::sql::conn::classify(
            err,
            &self.database,
            "reading sessions for the passthrough",
            self.grant,
        );
        Failure::unavailable(format!("target `{}`: {error}", self.target))
    }
}

impl RowMaker {
    fn make(&self, row: mysql_async::Row) -> Result<TenantSession, Failure> {
        let mut session = TenantSession::default();
        for (field, value) in self.fields.iter().zip(row.unwrap()) {
            session.set(*field, field_value(value)).map_err(|message| {
                Failure::unavailable(format!("target `{}`: {message}", self.target))
            })?;
        }
        if self.fill_tenant {
            session.tenant = self.tenant.clone();
        }
        if self.fill_server {
            if session.svr_ip.is_empty() {
                session.svr_ip = self.address.host.clone();
            }
            if session.sql_port == 0 {
                session.sql_port = i64::from(self.address.port);
            }
        }
        session.finish();
        Ok(session)
    }
}

/// Sends `sql`'s rows, as sessions, into `sink` as they arrive; false when it
/// stopped early (an error, sent into `sink`; or a client that went away or stopped
/// reading), leaving `conn` in an unknown state.
async fn stream_rows(
    conn: &mut Conn,
    sql: &str,
    values: Vec<Value>,
    rows: &RowMaker,
    sink: &PageSink,
) -> bool {
    let sql = with_own_sessions(conn, sql);
    let statement = match conn.prep(sql).await {
        Ok(statement) => statement,
        Err(err) => return sink.send(Err(rows.failure.failure(&err))).await,
    };
    let mut result = match conn.exec_iter(&statement, values).await {
        Ok(result) => result,
        Err(err) => return sink.send(Err(rows.failure.failure(&err))).await,
    };
    loop {
        match result.next().await {
            Ok(Some(row)) => {
                if !sink.send(rows.make(row)).await {
                    return false;
                }
            }
            Ok(None) => break,
            Err(err) => return sink.send(Err(rows.failure.failure(&err))).await,
        }
    }
    drop(result);
    conn.close(statement).await.is_ok()
}

/// A driver value as the session model takes it. Bytes that are not UTF-8 are
/// replaced, not refused, as in collection.
fn field_value(value: Value) -> FieldValue {
    match value {
        Value::NULL => FieldValue::Null,
        Value::Int(n) => FieldValue::Int(n),
        Value::UInt(n) => FieldValue::UInt(n),
        // As its text, so an f32 is not widened into digits it never had.
        Value::Float(n) => FieldValue::Text(n.to_string()),
        Value::Double(n) => FieldValue::Float(n),
        other => FieldValue::Text(crate::sql::query::text(other).unwrap_or_default()),
    }
}

/// Stable order under paging: a session is (server, id) in a cluster, id elsewhere.
fn tiebreak(shape: &Shape) -> String {
    if shape.view.cluster && shape.columns.contains("SVR_IP") {
        "`ID` ASC, `SVR_IP` ASC".to_string()
    } else {
        "`ID` ASC".to_string()
    }
}
