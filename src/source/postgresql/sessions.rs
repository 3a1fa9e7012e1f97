//! The session API of a PostgreSQL target, on `pg_stat_activity`: list, detail
//! (with the query text), stats, and kill through `pg_terminate_backend` /
//! `pg_cancel_backend`. Its own few connections (never the collection's), a cap on
//! concurrent requests, every request value a bound parameter.
//!
//! obshell's fields from PostgreSQL's columns: `id` the pid, `user` `usename`, `db`
//! `datname`, `host` `client_addr:client_port` (empty for Unix-socket sessions),
//! `command` the session's `state` (`active`, `idle`, `idle in transaction`, …),
//! `state` `ACTIVE` or `SLEEP` by the rule the metrics count with, `time` how long
//! it has been in its state, `info` the query; `svr_ip` and `sql_port` are the
//! target's address, `tenant` its name. PostgreSQL has no proxy, SQL id (as text),
//! level, sampling, CPU time or memory per session: those are zero.

use super::{classify, connect, grouped_sql};
use crate::config::{Parts, Postgresql};
use crate::sessions::params::Observer;
use crate::sessions::{
    BoxFuture, Failure, Field, FieldValue, ListParams, PageInfo, PageStream, SessionApi,
    SessionStats, TenantSession,
};
use crate::source::sql::{contains_pattern, filter_conditions, RowContext, Rows, Rules, TAG};
use futures_util::StreamExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, SimpleQueryMessage};

/// Sessions converted ahead of the client: what a list holds in memory at most.
const STREAM_AHEAD: usize = 64;

/// The sessions a request may see: the collection's (client backends, never the
/// exporter's own), as a relation with obshell's column names, all text.
const SESSIONS: &str = "SELECT a.pid::bigint AS id, a.usename::text AS user, \
     a.datname::text AS db, CASE WHEN a.client_addr IS NULL THEN '' \
     ELSE host(a.client_addr) || ':' || a.client_port END AS host, a.state AS command, \
     EXTRACT(EPOCH FROM clock_timestamp() - CASE WHEN a.state = 'active' THEN a.query_start \
     ELSE a.state_change END)::float8 AS time, \
     CASE WHEN a.state = 'active' THEN 'ACTIVE' ELSE 'SLEEP' END AS state, a.query AS info, \
     host(a.client_addr) AS client \
     FROM pg_stat_activity a WHERE a.backend_type = 'client backend' \
     AND a.pid <> pg_backend_pid() \
     AND NOT (a.application_name = 'session_exporter' AND a.usename = current_user)";

/// The fields the list selects, and the column of `SESSIONS` each is.
const COLUMNS: [(Field, &str); 8] = [
    (Field::Id, "id"),
    (Field::User, "user"),
    (Field::Db, "db"),
    (Field::Host, "host"),
    (Field::Command, "command"),
    (Field::Time, "time"),
    (Field::State, "state"),
    (Field::Info, "info"),
];

/// One PostgreSQL target's session API.
pub struct PostgresqlSessions {
    target: Arc<Shared>,
    permits: Arc<Semaphore>,
}

/// What the requests and a list's streaming task share: the target, and its idle
/// connections (at most `max_concurrent`, handed out one per request).
struct Shared {
    name: String,
    settings: Postgresql,
    timeout: Duration,
    idle: Mutex<Vec<Client>>,
    max_idle: usize,
}

impl PostgresqlSessions {
    pub fn new(
        name: &str,
        settings: &Postgresql,
        max_concurrent: usize,
        timeout: Duration,
    ) -> Self {
        Self {
            target: Arc::new(Shared {
                name: name.to_string(),
                settings: settings.clone(),
                timeout,
                idle: Mutex::new(Vec::new()),
                max_idle: max_concurrent,
            }),
            permits: Arc::new(Semaphore::new(max_concurrent)),
        }
    }

    async fn permit(&self) -> Result<OwnedSemaphorePermit, Failure> {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Failure::unavailable("the passthrough is shutting down"))
    }
}

impl Shared {
    /// An idle connection, or a new one.
    async fn client(&self) -> Result<Client, Failure> {
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            std::iter::from_fn(|| idle.pop()).find(|c| !c.is_closed())
        };
        match reused {
            Some(client) => Ok(client),
            None => connect(&self.settings, self.timeout)
                .await
                .map_err(|e| Failure::unavailable(format!("target `{}`: {e}", self.name))),
        }
    }

    /// Keeps `client` for the next request, if it is still up and there is room.
    fn give_back(&self, client: Client) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if !client.is_closed() && idle.len() < self.max_idle {
            idle.push(client);
        }
    }

    fn failure(&self, err: &tokio_postgres::Error) -> Failure {
        let error = classify(err, &self.settings, "reading sessions for the passthrough");
        Failure::unavailable(format!("target `{}`: {error}", self.name))
    }

    fn check_tenant(&self, tenant: &str) -> Result<(), Failure> {
        if tenant == self.name {
            Ok(())
        } else {
            Err(Failure::not_found(
                "OB.Tenant.NotExist",
                format!("target `{}` has no tenant `{tenant}`", self.name),
            ))
        }
    }

    /// The WHERE clause over `SESSIONS` for `params`, and its bound values.
    fn conditions(&self, params: &ListParams) -> (String, Vec<Param>) {
        let mut values = Vec::new();
        // The target's own filters apply, so the list agrees with the stats.
        let mut sql = format!(
            "TRUE{}",
            filter_conditions(&self.settings.database.filter, "s.")
        );
        for (column, wanted) in [
            ("s.user", &params.user),
            ("s.db", &params.db),
            ("s.host", &params.host),
        ] {
            if let Some(wanted) = wanted.as_deref().filter(|w| !w.is_empty()) {
                values.push(Param::Text(contains_pattern(wanted)));
                sql.push_str(&format!(" AND {column} LIKE ${} ESCAPE '!'", values.len()));
            }
        }
        if let Some(id) = params.id {
            values.push(Param::Int(id.min(i64::MAX as u64) as i64));
            sql.push_str(&format!(" AND s.id = ${}", values.len()));
        }
        if let Some(observers) = &params.observers {
            let address = &self.settings.database.address;
            if !Observer::any_is(observers, &address.host, address.port) {
                sql.push_str(" AND FALSE");
            }
        }
        if params.active_only {
            sql.push_str(" AND s.state = 'ACTIVE'");
        }
        (sql, values)
    }

    /// Sends the page's sessions into `tx` as the server sends them; the connection
    /// goes back to the idle ones only when every row was read.
    async fn stream(
        &self,
        client: Client,
        sql: String,
        values: Vec<Param>,
        tx: mpsc::Sender<Result<TenantSession, Failure>>,
    ) {
        let rows = match client.query_raw(&sql, refs(&values)).await {
            Ok(rows) => rows,
            Err(err) => {
                let _ = tx.send(Err(self.failure(&err))).await;
                return;
            }
        };
        let mut rows = std::pin::pin!(rows);
        while let Some(row) = rows.next().await {
            let session = match row {
                Ok(row) => self.session(&row),
                Err(err) => Err(self.failure(&err)),
            };
            let failed = session.is_err();
            let sent = tokio::time::timeout(self.timeout, tx.send(session)).await;
            if failed || !matches!(sent, Ok(Ok(()))) {
                // Rows may be left unread: the connection is dropped, not reused.
                return;
            }
        }
        self.give_back(client);
    }

    fn session(&self, row: &tokio_postgres::Row) -> Result<TenantSession, Failure> {
        let mut session = TenantSession::default();
        for (i, (field, _)) in COLUMNS.iter().enumerate() {
            let value: Option<String> = row
                .try_get(i)
                .map_err(|e| Failure::unavailable(format!("target `{}`: {e}", self.name)))?;
            let value = value.map_or(FieldValue::Null, FieldValue::Text);
            session.set(*field, value).map_err(|message| {
                Failure::unavailable(format!("target `{}`: {message}", self.name))
            })?;
        }
        session.tenant = self.name.clone();
        session.svr_ip = self.settings.database.address.host.clone();
        session.sql_port = i64::from(self.settings.database.address.port);
        session.finish();
        Ok(session)
    }
}

impl PostgresqlSessions {
    async fn list(&self, tenant: &str, params: &ListParams) -> Result<PageStream, Failure> {
        self.target.check_tenant(tenant)?;
        let offset = params.offset()?;
        let permit = self.permit().await?;
        let client = self.target.client().await?;
        let (conditions, mut values) = self.target.conditions(params);
        let count_sql = format!("{TAG} SELECT count(*) FROM ({SESSIONS}) s WHERE {conditions}");
        let total: i64 = client
            .query_one(&count_sql, &refs(&values))
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| self.target.failure(&e))?;
        let total = total.max(0) as u64;
        let page = PageInfo {
            total_elements: total,
            total_pages: total.div_ceil(params.size),
            size: params.size,
            number: params.page,
        };
        let mut order = String::new();
        if let Some((field, direction)) = params.sort {
            if let Some((_, column)) = COLUMNS.iter().find(|(f, _)| *f == field) {
                order = format!("s.{column} {}, ", direction.sql());
            }
        }
        let select: Vec<String> = COLUMNS
            .iter()
            .map(|(_, column)| format!("s.{column}::text"))
            .collect();
        values.push(Param::Int(params.size.min(i64::MAX as u64) as i64));
        let limit = values.len();
        values.push(Param::Int(offset.min(i64::MAX as u64) as i64));
        let sql = format!(
            "{TAG} SELECT {} FROM ({SESSIONS}) s WHERE {conditions} ORDER BY {order}s.id \
             LIMIT ${limit} OFFSET ${}",
            select.join(", "),
            limit + 1
        );
        let (tx, rx) = mpsc::channel(STREAM_AHEAD);
        let target = self.target.clone();
        tokio::spawn(async move {
            target.stream(client, sql, values, tx).await;
            drop(permit);
        });
        Ok(PageStream { page, sessions: rx })
    }

    async fn detail(&self, tenant: &str, id: u64) -> Result<TenantSession, Failure> {
        self.target.check_tenant(tenant)?;
        let _permit = self.permit().await?;
        let client = self.target.client().await?;
        let params = ListParams {
            id: Some(id),
            ..ListParams::default()
        };
        let (conditions, values) = self.target.conditions(&params);
        let select: Vec<String> = COLUMNS
            .iter()
            .map(|(_, column)| format!("s.{column}::text"))
            .collect();
        let sql = format!(
            "{TAG} SELECT {} FROM ({SESSIONS}) s WHERE {conditions}",
            select.join(", ")
        );
        let rows = client
            .query(&sql, &refs(&values))
            .await
            .map_err(|e| self.target.failure(&e))?;
        self.target.give_back(client);
        match rows.first() {
            Some(row) => self.target.session(row),
            None => Err(Failure::not_found(
                "OB.Tenant.Session.NotExist",
                format!("tenant `{tenant}` has no session {id} (it may have ended)"),
            )),
        }
    }

    async fn stats(&self, tenant: &str) -> Result<SessionStats, Failure> {
        self.target.check_tenant(tenant)?;
        let _permit = self.permit().await?;
        let client = self.target.client().await?;
        // The collection's statement, counts only (no top sessions, no parts).
        let mut settings = self.target.settings.clone();
        settings.database.top_sessions = 0;
        settings.database.collect = Parts::NONE;
        let ctx = RowContext {
            tenant: &self.target.name,
            server: &settings.database.address.host,
            null_string_is_no_db: false,
            keep: 0,
            parts: Parts::NONE,
            rules: Rules::NONE,
            listed_only: false,
        };
        let stream = client
            .simple_query_raw(&grouped_sql(&settings))
            .await
            .map_err(|e| self.target.failure(&e))?;
        let mut stream = std::pin::pin!(stream);
        let mut rows = Rows::new(&ctx, &[&self.target.name]);
        while let Some(message) = stream.next().await {
            if let SimpleQueryMessage::Row(row) = message.map_err(|e| self.target.failure(&e))? {
                rows.add((0..row.len()).map(|i| row.get(i)).collect());
            }
        }
        self.target.give_back(client);
        let collected = rows
            .finish()
            .map_err(|e| Failure::unavailable(format!("target `{}`: {e}", self.target.name)))?;
        let stats = collected
            .into_tenants()
            .into_values()
            .next()
            .unwrap_or_default();
        Ok(SessionStats::from(stats))
    }

    /// Checks that every id is one of the target's sessions now, then ends them one
    /// by one (stopping at the first the server refuses, as obshell does).
    async fn kill(&self, tenant: &str, ids: &[u64], query_only: bool) -> Result<(), Failure> {
        self.target.check_tenant(tenant)?;
        let _permit = self.permit().await?;
        let client = self.target.client().await?;
        let (conditions, mut values) = self.target.conditions(&ListParams::default());
        let wanted: Vec<i64> = ids
            .iter()
            .map(|id| (*id).min(i64::MAX as u64) as i64)
            .collect();
        values.push(Param::Ints(wanted));
        let sql = format!(
            "{TAG} SELECT s.id FROM ({SESSIONS}) s WHERE {conditions} AND s.id = ANY(${})",
            values.len()
        );
        let rows = client
            .query(&sql, &refs(&values))
            .await
            .map_err(|e| self.target.failure(&e))?;
        let found: Vec<u64> = rows
            .iter()
            .filter_map(|row| row.try_get::<_, i64>(0).ok())
            .map(|id| id.max(0) as u64)
            .collect();
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
        let function = if query_only {
            "pg_cancel_backend"
        } else {
            "pg_terminate_backend"
        };
        for (done, id) in ids.iter().enumerate() {
            let pid = i32::try_from(*id).unwrap_or(i32::MAX);
            let sql = format!("{TAG} SELECT {function}($1)");
            if let Err(err) = client.query_one(&sql, &[&pid]).await {
                let denied =
                    err.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE);
                let why = classify(&err, &self.target.settings, "ending a session");
                return Err(if denied {
                    Failure::grant_missing(format!(
                        "target `{}`: the exporter's account lacks the grant for {function}({id}) ({why}): ending other users' sessions needs the pg_signal_backend role (GRANT pg_signal_backend TO the account; superusers' sessions only a superuser may end); {done} of the sessions before it were ended",
                        self.target.name,
                    ))
                } else {
                    Failure::unavailable(format!(
                        "target `{}`: {function}({id}) failed ({why}); {done} of the sessions before it were ended",
                        self.target.name,
                    ))
                });
            }
        }
        self.target.give_back(client);
        Ok(())
    }
}

impl SessionApi for PostgresqlSessions {
    fn target(&self) -> &str {
        &self.target.name
    }

    fn serves(&self, _: &mut dyn Iterator<Item = &String>, name: &str) -> bool {
        self.target.name == name
    }

    fn tenants(&self, _: &mut dyn Iterator<Item = &String>) -> Vec<String> {
        vec![self.target.name.clone()]
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

/// A bound value of a request.
#[derive(Debug)]
enum Param {
    Text(String),
    Int(i64),
    Ints(Vec<i64>),
}

fn refs(values: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    values
        .iter()
        .map(|value| match value {
            Param::Text(text) => text as &(dyn ToSql + Sync),
            Param::Int(n) => n as &(dyn ToSql + Sync),
            Param::Ints(ns) => ns as &(dyn ToSql + Sync),
        })
        .collect()
}
