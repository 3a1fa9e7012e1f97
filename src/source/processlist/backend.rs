//! One SQL target's session API: its own small pool (never the scheduler's
//! connections), a cap on concurrent requests, and the SQL of the list, detail and
//! stats endpoints, on the relation and columns its kind ([`Processlist`]) names.
//! Which columns exist is read from the server once per target, so a custom
//! `processlist_view` with fewer columns still works.
//!
//! Every value from a request is a bound parameter of a prepared statement; the SQL
//! text holds only names of ours (columns from an allowlist, the configured views).

use super::{Processlist, View};
use crate::config::Address;
use crate::sessions::params::Observer;
use crate::sessions::{
    BoxFuture, Failure, Field, FieldValue, ListParams, PageInfo, PageStream, SessionApi,
    SessionStats, TenantSession,
};
use crate::source::conn::{close_in_background, pool};
use crate::source::query::{with_own_sessions, SqlError};
use crate::source::sql::{contains_pattern, filter_conditions, OWN_SESSIONS, TAG};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Pool, Value};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, OnceCell, OwnedSemaphorePermit, Semaphore};

/// Sessions converted ahead of the client: what the list holds in memory at most,
/// whatever its size.
const STREAM_AHEAD: usize = 64;

/// The relation and columns a target's sessions are read from, found once.
#[derive(Debug)]
struct Shape {
    view: View,
    columns: HashSet<String>,
}

/// One target's passthrough connections and what it knows about its relation.
pub struct Backend {
    target: Box<dyn Processlist>,
    pool: Pool,
    permits: Arc<Semaphore>,
    /// The request timeout: also how long a list waits for a client that stopped
    /// reading before it gives the connection back.
    timeout: Duration,
    shape: OnceCell<Shape>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        close_in_background(self.pool.clone());
    }
}

impl SessionApi for Backend {
    fn target(&self) -> &str {
        self.target.target()
    }

    fn serves(&self, found: &mut dyn Iterator<Item = &String>, name: &str) -> bool {
        self.target.serves(found, name)
    }

    fn tenants(&self, found: &mut dyn Iterator<Item = &String>) -> Vec<String> {
        self.target.tenants(found)
    }

    fn list<'a>(
        &'a self,
        tenant: &'a str,
        params: &'a ListParams,
    ) -> BoxFuture<'a, Result<PageStream, Failure>> {
        Box::pin(self.list(tenant, params))
    }

    fn detail<'a>(
        &'a self,
        tenant: &'a str,
        id: u64,
    ) -> BoxFuture<'a, Result<TenantSession, Failure>> {
        Box::pin(self.detail(tenant, id))
    }

    fn stats<'a>(&'a self, tenant: &'a str) -> BoxFuture<'a, Result<SessionStats, Failure>> {
        Box::pin(self.stats(tenant))
    }

    fn kill<'a>(
        &'a self,
        tenant: &'a str,
        ids: &'a [u64],
        query_only: bool,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(self.kill(tenant, ids, query_only))
    }
}

impl Backend {
    /// `interval` is the target's collect interval, which sets how long idle
    /// connections are kept; `timeout` is the request timeout.
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
            permits: Arc::new(Semaphore::new(max_concurrent)),
            timeout,
            shape: OnceCell::new(),
        }
    }

    /// Counts, then streams the page's rows from the database into the answer on a
    /// task of its own, which holds the connection and the permit until the last row
    /// is handed over (or the client stops reading for `timeout`).
    async fn list(&self, tenant: &str, params: &ListParams) -> Result<PageStream, Failure> {
        let query = self.query(tenant, params, true).await?;
        let total = query.total.unwrap_or_default();
        let page = PageInfo {
            total_elements: total,
            total_pages: total.div_ceil(params.size),
            size: params.size,
            number: params.page,
        };
        let (tx, rx) = mpsc::channel(STREAM_AHEAD);
        let timeout = self.timeout;
        tokio::spawn(async move {
            let Query {
                mut conn,
                permit,
                sql,
                values,
                rows,
                ..
            } = query;
            let completed = stream_rows(&mut conn, &sql, values, &rows, &tx, timeout).await;
            if !completed {
                // Rows may be left unread on it: never back into the pool.
                let _ = tokio::time::timeout(timeout, conn.disconnect()).await;
            }
            drop(permit);
        });
        Ok(PageStream { page, sessions: rx })
    }

    /// The statement `params` asks for, on a connection with its permit, and with
    /// `count` how many sessions match in all pages (one more query: the detail
    /// endpoint does without it).
    async fn query(
        &self,
        tenant: &str,
        params: &ListParams,
        count: bool,
    ) -> Result<Query, Failure> {
        let offset = params.offset()?;
        let permit = self.permit().await?;
        let mut conn = self.conn().await?;
        let shape = self.shape(&mut conn).await?;
        let (conditions, mut values) = self.conditions(shape, tenant, params)?;
        let total = if count {
            let count_sql = format!(
                "{TAG} SELECT COUNT(*) FROM {} WHERE {conditions}",
                shape.view.relation
            );
            let total = exec(&mut conn, &count_sql, values.clone())
                .await
                .map_err(|e| self.failure(&e))?
                .into_iter()
                .next()
                .and_then(|row| row.unwrap().into_iter().next())
                .and_then(crate::source::query::text)
                .and_then(|t| t.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    Failure::unavailable("the database did not return a session count")
                })?;
            Some(total)
        } else {
            None
        };
        let (fields, select) = self.select_list(shape);
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
        Ok(Query {
            conn,
            permit,
            total,
            sql,
            values,
            rows,
        })
    }

    async fn detail(&self, tenant: &str, id: u64) -> Result<TenantSession, Failure> {
        let params = ListParams {
            id: Some(id),
            size: 1,
            ..ListParams::default()
        };
        let mut query = self.query(tenant, &params, false).await?;
        let rows = exec(&mut query.conn, &query.sql, query.values)
            .await
            .map_err(|e| self.failure(&e))?;
        let session = rows
            .into_iter()
            .next()
            .map(|row| query.rows.make(row))
            .transpose()?;
        session.ok_or_else(|| {
            Failure::not_found(
                "OB.Tenant.Session.NotExist",
                format!("tenant `{tenant}` has no session {id} (it may have ended)"),
            )
        })
    }

    async fn stats(&self, tenant: &str) -> Result<SessionStats, Failure> {
        let _permit = self.permit().await?;
        let mut conn = self.conn().await?;
        let shape = self.shape(&mut conn).await?;
        let collected = self
            .target
            .tenant_stats(&mut conn, &shape.view, tenant)
            .await
            .map_err(|err| match err {
                SqlError::Driver(err) => self.failure(&err),
                SqlError::Answer(err) => {
                    Failure::unavailable(format!("target `{}`: {err}", self.target.target()))
                }
            })?;
        let stats = collected
            .into_tenants()
            .into_iter()
            .find(|(name, _)| name == tenant)
            .map(|(_, s)| s);
        stats.map(SessionStats::from).ok_or_else(|| {
            Failure::not_found(
                "OB.Tenant.NotExist",
                format!(
                    "tenant `{tenant}` no longer exists in target `{}`",
                    self.target.target()
                ),
            )
        })
    }

    /// Checks that every id is a session of `tenant` now, then ends them one by one
    /// (stopping at the first the server refuses, as obshell does).
    async fn kill(&self, tenant: &str, ids: &[u64], query_only: bool) -> Result<(), Failure> {
        let _permit = self.permit().await?;
        let mut conn = self.conn().await?;
        let shape = self.shape(&mut conn).await?;
        let (conditions, mut values) = self.conditions(shape, tenant, &ListParams::default())?;
        let marks = vec!["?"; ids.len()].join(", ");
        values.extend(ids.iter().map(|id| Value::from(*id)));
        let sql = format!(
            "{TAG} SELECT `ID` FROM {} WHERE {conditions} AND `ID` IN ({marks})",
            shape.view.relation
        );
        let rows = exec(&mut conn, &sql, values)
            .await
            .map_err(|e| self.failure(&e))?;
        let mut found: Vec<u64> = Vec::with_capacity(rows.len());
        for row in rows {
            let id = row
                .unwrap()
                .into_iter()
                .next()
                .and_then(crate::source::query::text)
                .and_then(|t| t.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    Failure::unavailable("the database sent a session id that is not a number")
                })?;
            if found.contains(&id) {
                return Err(Failure::bad_parameter(
                    "session_ids",
                    format!("session {id} of tenant `{tenant}` is on more than one server: end it on its server itself; nothing was ended"),
                ));
            }
            found.push(id);
        }
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| !found.contains(id))
            .map(u64::to_string)
            .collect();
        if !missing.is_empty() {
            return Err(Failure::not_found(
                "OB.Tenant.Session.NotExist",
                format!(
                    "tenant `{tenant}` has no session {}: nothing was ended",
                    missing.join(", ")
                ),
            ));
        }
        let what = if query_only { "KILL QUERY" } else { "KILL" };
        for id in ids {
            // A number checked above, never text from the request.
            if let Err(err) = conn.query_drop(format!("{TAG} {what} {id}")).await {
                let denied =
                    matches!(&err, mysql_async::Error::Server(e) if [1095, 1227].contains(&e.code));
                let done = ids.iter().take_while(|done| *done != id).count();
                return Err(if denied {
                    Failure::grant_missing(format!(
                        "target `{}`: the exporter's account lacks the grant for {what} {id} ({err}): {}; {done} of the sessions before it were ended",
                        self.target.target(),
                        self.target.kill_grant()
                    ))
                } else {
                    Failure::unavailable(format!(
                        "target `{}`: {what} {id} failed: {err}; {done} of the sessions before it were ended",
                        self.target.target()
                    ))
                });
            }
        }
        Ok(())
    }

    /// A slot of `max_concurrent_per_target`, owned, so a list's streaming task can
    /// hold it until its last row.
    async fn permit(&self) -> Result<OwnedSemaphorePermit, Failure> {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Failure::unavailable("the passthrough is shutting down"))
    }

    async fn conn(&self) -> Result<Conn, Failure> {
        self.pool.get_conn().await.map_err(|e| self.failure(&e))
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
        // The passthrough's own session is not one of the tenant's.
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

    fn failure(&self, err: &mysql_async::Error) -> Failure {
        let error = crate::source::conn::classify(
            err,
            self.target.database(),
            "reading sessions for the passthrough",
            self.target.grant(),
        );
        Failure::unavailable(format!("target `{}`: {error}", self.target.target()))
    }

    /// The SELECT list: every field the view can read, and which field each column is.
    fn select_list(&self, shape: &Shape) -> (Vec<Field>, String) {
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for field in Field::ALL {
            if let Some(expr) = self.target.column(&shape.view, field, &shape.columns) {
                fields.push(field);
                columns.push(expr);
            }
        }
        (fields, columns.join(", "))
    }
}

/// Runs a prepared statement, with the exporter's own sessions written in (see
/// `sql::OWN_SESSIONS`), and closes it: with no statement cache, the driver would
/// leave every statement open on the pooled connection (MySQL counts them against
/// max_prepared_stmt_count; OceanBase soon refuses with "maximum open cursors").
async fn exec(
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

/// A list statement ready to send, with what it holds.
struct Query {
    conn: Conn,
    permit: OwnedSemaphorePermit,
    total: Option<u64>,
    sql: String,
    values: Vec<Value>,
    rows: RowMaker,
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
        let error = crate::source::conn::classify(
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

/// Sends `sql`'s rows, as sessions, into `tx` as they arrive; false when it stopped
/// early (an error, sent into `tx`; or a client that went away or stopped reading
/// for `idle`), leaving `conn` in an unknown state.
async fn stream_rows(
    conn: &mut Conn,
    sql: &str,
    values: Vec<Value>,
    rows: &RowMaker,
    tx: &mpsc::Sender<Result<TenantSession, Failure>>,
    idle: Duration,
) -> bool {
    let sql = with_own_sessions(conn, sql);
    let statement = match conn.prep(sql).await {
        Ok(statement) => statement,
        Err(err) => {
            let _ = tx.send(Err(rows.failure.failure(&err))).await;
            return false;
        }
    };
    let mut result = match conn.exec_iter(&statement, values).await {
        Ok(result) => result,
        Err(err) => {
            let _ = tx.send(Err(rows.failure.failure(&err))).await;
            return false;
        }
    };
    loop {
        match result.next().await {
            Ok(Some(row)) => {
                let session = rows.make(row);
                let failed = session.is_err();
                let sent = tokio::time::timeout(idle, tx.send(session)).await;
                if failed || !matches!(sent, Ok(Ok(()))) {
                    return false;
                }
            }
            Ok(None) => break,
            Err(err) => {
                let _ = tx.send(Err(rows.failure.failure(&err))).await;
                return false;
            }
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
        other => FieldValue::Text(crate::source::query::text(other).unwrap_or_default()),
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
