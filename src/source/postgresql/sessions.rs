//! The session API of a PostgreSQL target, on `pg_stat_activity`: list, detail
//! (with the query text), stats, and kill through `pg_terminate_backend` /
//! `pg_cancel_backend`. Its own few connections (never the collection's), a cap on
//! concurrent requests, every request value a bound parameter.
//!
//! obshell's fields from PostgreSQL's columns: `id` the pid, `user` `usename`, `db`
//! `datname`, `host` `client_addr:client_port` (empty for Unix-socket sessions),
//! `command` the session's `state` (`active`, `idle`, `idle in transaction`, …),
//! `state` `ACTIVE` or `SLEEP` by the rule the metrics count with, `time` how long
//! it has been in its state, `info` the query, `wait_class` and `wait_event` an active
//! session's `wait_event_type` and `wait_event` (`CPU` for none); `svr_ip` and `sql_port` are the
//! target's address, `tenant` its name. PostgreSQL has no proxy, SQL id (as text),
//! level, sampling, CPU time or memory per session: those are zero.

use super::behind::RealClients;
use super::{classify, connect, cycle, grouped_sql, server_version};
use crate::api::params::Observer;
use crate::api::pileup::{add_pileup_row, MAX_PILEUP_ROWS, MAX_PILEUP_SQL};
use crate::api::serve::{PageRows, PageSink, Refusal, SessionBackend};
use crate::api::Capabilities;
use crate::api::{
    DeadLock, Failure, Field, FieldValue, ListParams, PageParams, PileupRows, TenantSession,
};
use crate::config::postgresql::Postgresql;
use crate::config::CollectParts;
use crate::source::front::{backends_of, Backends, API_MAX_AGE};
use crate::sql::{contains_pattern, filter_conditions, RowContext, SqlError, TAG};
use crate::stats::TenantStats;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, SimpleQueryMessage};

/// When a backend started, as the session API shows it: RFC 3339 in UTC, to the
/// microsecond `backend_start` holds, so that equal text is the same start.
const STARTED: &str =
    "to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";

/// The sessions a request may see (`started` is [`STARTED`]): the collection's (client backends, never the
/// exporter's own), as a relation with obshell's column names, all text; the
/// client's address and application are the real client's behind a pooler
/// ([`Shared::sessions`]).
const SESSIONS: &str = "SELECT a.pid::bigint AS id, a.usename::text AS user, \
     a.datname::text AS db, {host} AS host, a.state AS command, \
     EXTRACT(EPOCH FROM clock_timestamp() - CASE WHEN a.state = 'active' THEN a.query_start \
     ELSE a.state_change END)::float8 AS time, \
     CASE WHEN a.state = 'active' THEN 'ACTIVE' ELSE 'SLEEP' END AS state, a.query AS info, \
     {client} AS client, {app} AS application, \
     CASE WHEN a.state = 'active' THEN COALESCE(a.wait_event_type, 'CPU') ELSE '' END AS wait_class, \
     CASE WHEN a.state = 'active' THEN COALESCE(a.wait_event, 'CPU') ELSE '' END AS wait_event, \
     to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS started \
     FROM pg_stat_activity a {real}WHERE a.backend_type = 'client backend' \
     AND a.pid <> pg_backend_pid() \
     AND NOT (a.application_name = 'session_exporter' AND a.usename = current_user)";

/// The fields the list selects, and the column of `SESSIONS` each is.
const COLUMNS: [(Field, &str); 12] = [
    (Field::Id, "id"),
    (Field::User, "user"),
    (Field::Db, "db"),
    (Field::Host, "host"),
    (Field::Command, "command"),
    (Field::Time, "time"),
    (Field::State, "state"),
    (Field::Info, "info"),
    (Field::Application, "application"),
    (Field::WaitClass, "wait_class"),
    (Field::WaitEvent, "wait_event"),
    (Field::Started, "started"),
];

/// One PostgreSQL target's session API.
pub struct PostgresqlSessions {
    target: Arc<Shared>,
}

/// What the requests and a list's streaming task share: the target, and its idle
/// connections (at most `max_concurrent`, handed out one per request).
struct Shared {
    name: String,
    settings: Postgresql,
    timeout: Duration,
    idle: Mutex<Vec<Client>>,
    max_idle: usize,
    /// Whether the server's encoding is UTF-8, learnt on the first connection of a
    /// target behind a pooler (see [`RealClients::of`]).
    utf8: std::sync::OnceLock<bool>,
}

impl PostgresqlSessions {
    /// Keeps at most `max_concurrent` idle connections; `timeout` bounds connecting
    /// and a client that stops reading a page.
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
                utf8: std::sync::OnceLock::new(),
            }),
        }
    }
}

impl Shared {
    /// An idle connection, or a new one.
    async fn client(&self) -> Result<Client, Failure> {
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            std::iter::from_fn(|| idle.pop()).find(|c| !c.is_closed())
        };
        let client = match reused {
            Some(client) => client,
            None => connect(&self.settings, self.timeout)
                .await
                .map_err(|e| Failure::unavailable(format!("target `{}`: {e}", self.name)))?,
        };
        if !self.settings.behind.is_empty() && self.utf8.get().is_none() {
            let (_, utf8) = server_version(&client)
                .await
                .map_err(|e| self.failure(&e))?;
            let _ = self.utf8.set(utf8);
        }
        Ok(client)
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

    /// The backends the poolers in front serve now (none when there is none).
    async fn backends(&self) -> Backends {
        match self.settings.behind.is_empty() {
            true => Backends::new(),
            false => backends_of(&self.settings.behind, self.timeout / 2, API_MAX_AGE).await,
        }
    }

    /// [`SESSIONS`] of this moment: behind a pooler, each session it serves with the
    /// real client's address (as `host`, without a port) and application.
    async fn sessions(&self) -> String {
        let utf8 = self.utf8.get().copied().unwrap_or(false);
        let real = RealClients::of(&self.settings, &self.backends().await, utf8);
        let port = "CASE WHEN a.client_addr IS NULL THEN '' \
                    ELSE host(a.client_addr) || ':' || a.client_port END";
        let host = match real.join.is_empty() {
            true => port.to_string(),
            false => format!("CASE WHEN r.pid IS NULL THEN {port} ELSE COALESCE(r.addr, '') END"),
        };
        SESSIONS
            .replace("{host}", &host)
            .replace("{client}", &real.client)
            .replace("{app}", &real.app)
            .replace("{real}", &real.join)
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
        if let Some(wanted) = params.state.as_deref().filter(|w| !w.is_empty()) {
            values.push(Param::Text(contains_pattern(wanted)));
            let n = values.len();
            sql.push_str(&format!(
                " AND (s.command LIKE ${n} ESCAPE '!' OR s.state LIKE ${n} ESCAPE '!')"
            ));
        }
        if let Some(min) = params.min_time {
            values.push(Param::Float(min));
            sql.push_str(&format!(" AND s.time >= ${}", values.len()));
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

/// The columns the list and detail select, as text.
fn select_list() -> String {
    let columns: Vec<String> = COLUMNS
        .iter()
        .map(|(_, column)| format!("s.{column}::text"))
        .collect();
    columns.join(", ")
}

impl SessionBackend for PostgresqlSessions {
    type Conn = Client;
    type Page = Page;

    fn target(&self) -> &str {
        &self.target.name
    }

    /// PostgreSQL keeps no history of its deadlocks: it logs and counts them.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            deadlock_history: false,
            kill: crate::api::Kill::Supported,
        }
    }

    async fn connect(&self) -> Result<Client, Failure> {
        self.target.client().await
    }

    fn release(&self, client: Client) {
        self.target.give_back(client);
    }

    async fn page(
        &self,
        client: &mut Client,
        tenant: &str,
        params: &ListParams,
    ) -> Result<(u64, Page), Failure> {
        self.target.check_tenant(tenant)?;
        let sessions = self.target.sessions().await;
        let offset = params.offset()?;
        let (conditions, mut values) = self.target.conditions(params);
        let count_sql = format!("{TAG} SELECT count(*) FROM ({sessions}) s WHERE {conditions}");
        let total: i64 = client
            .query_one(&count_sql, &refs(&values))
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| self.target.failure(&e))?;
        let mut order = String::new();
        if let Some((field, direction)) = params.sort {
            if let Some((_, column)) = COLUMNS.iter().find(|(f, _)| *f == field) {
                order = format!("s.{column} {}, ", direction.sql());
            }
        }
        values.push(Param::Int(params.size.min(i64::MAX as u64) as i64));
        let limit = values.len();
        values.push(Param::Int(offset.min(i64::MAX as u64) as i64));
        let sql = format!(
            "{TAG} SELECT {} FROM ({sessions}) s WHERE {conditions} ORDER BY {order}s.id \
             LIMIT ${limit} OFFSET ${}",
            select_list(),
            limit + 1
        );
        let page = Page {
            target: self.target.clone(),
            sql,
            values,
        };
        Ok((total.max(0) as u64, page))
    }

    async fn detail(
        &self,
        client: &mut Client,
        tenant: &str,
        id: u64,
    ) -> Result<Option<TenantSession>, Failure> {
        self.target.check_tenant(tenant)?;
        let sessions = self.target.sessions().await;
        let params = ListParams {
            id: Some(id),
            ..ListParams::default()
        };
        let (conditions, values) = self.target.conditions(&params);
        let sql = format!(
            "{TAG} SELECT {} FROM ({sessions}) s WHERE {conditions}",
            select_list()
        );
        let rows = client
            .query(&sql, &refs(&values))
            .await
            .map_err(|e| self.target.failure(&e))?;
        rows.first().map(|row| self.target.session(row)).transpose()
    }

    async fn stats(
        &self,
        client: &mut Client,
        tenant: &str,
    ) -> Result<Option<TenantStats>, Failure> {
        self.target.check_tenant(tenant)?;
        // The collection's statement, counts only (no top sessions, no parts).
        let mut settings = self.target.settings.clone();
        settings.database.top_sessions = 0;
        settings.database.collect = CollectParts::NONE;
        let ctx = RowContext::counts_only(&self.target.name, &settings.database.address.host);
        let collected = cycle(
            client,
            &grouped_sql(
                &settings,
                0,
                false,
                &self.target.backends().await,
                self.target.utf8.get().copied().unwrap_or(false),
            ),
            &ctx,
        )
        .await
        .map_err(|err| match err {
            SqlError::Driver(err) => self.target.failure(&err),
            SqlError::Answer(err) => {
                Failure::unavailable(format!("target `{}`: {err}", self.target.name))
            }
        })?;
        Ok(Some(collected.into_one_tenant()))
    }

    /// PostgreSQL keeps no history of its deadlocks: it logs each one, and counts
    /// them in `pg_stat_database.deadlocks` (`dbsession_deadlocks_total`).
    async fn deadlocks(
        &self,
        _client: &mut Client,
        tenant: &str,
        _params: &PageParams,
    ) -> Result<(u64, Vec<DeadLock>), Failure> {
        self.target.check_tenant(tenant)?;
        Err(Failure::not_supported(format!(
            "target `{}`: PostgreSQL keeps no history of the deadlocks it detects (it logs \
             each one, with log_lock_waits for the waits before it); their number is \
             dbsession_deadlocks_total, from pg_stat_database.deadlocks",
            self.target.name
        )))
    }

    /// Each waiter with every session `pg_blocking_pids` names (called only for the
    /// sessions waiting for a lock: it takes the lock manager's locks), waited since
    /// the lock's `waitstart`; each open transaction by its `xact_start`.
    async fn pileup(&self, client: &mut Client, tenant: &str) -> Result<PileupRows, Failure> {
        self.target.check_tenant(tenant)?;
        let limit = MAX_PILEUP_ROWS + 1;
        let sql = format!(
            "{TAG} (SELECT 0, w.pid::text, bp::text, EXTRACT(EPOCH FROM clock_timestamp() \
             - COALESCE(l.waitstart, w.query_start))::float8::text AS s \
             FROM pg_stat_activity w CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS bp \
             LEFT JOIN (SELECT pid, min(waitstart) AS waitstart FROM pg_locks WHERE NOT granted \
             GROUP BY pid) l ON l.pid = w.pid WHERE w.wait_event_type = 'Lock' \
             ORDER BY 4 DESC LIMIT {limit}) UNION ALL (SELECT 1, a.pid::text, NULL, \
             EXTRACT(EPOCH FROM clock_timestamp() - a.xact_start)::float8::text \
             FROM pg_stat_activity a WHERE a.xact_start IS NOT NULL \
             AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid() ORDER BY a.xact_start LIMIT {limit})"
        );
        let stream = client
            .simple_query_raw(&sql)
            .await
            .map_err(|e| self.target.failure(&e))?;
        let mut stream = std::pin::pin!(stream);
        let mut rows = PileupRows::default();
        while let Some(message) = stream.next().await {
            if let SimpleQueryMessage::Row(row) = message.map_err(|e| self.target.failure(&e))? {
                add_pileup_row(
                    &mut rows,
                    (0..row.len()).map(|i| crate::sql::simple_text(&row, i)),
                )
                .map_err(|e| Failure::unavailable(format!("target `{}`: {e}", self.target.name)))?;
            }
        }
        Ok(rows)
    }

    async fn sessions(
        &self,
        client: &mut Client,
        tenant: &str,
        ids: &[u64],
    ) -> Result<Vec<TenantSession>, Failure> {
        self.target.check_tenant(tenant)?;
        let sessions = self.target.sessions().await;
        let (conditions, mut values) = self.target.conditions(&ListParams::default());
        values.push(Param::Ints(
            ids.iter()
                .map(|id| (*id).min(i64::MAX as u64) as i64)
                .collect(),
        ));
        // The SQL text only as far as the pile-up keeps it.
        let select = select_list().replace(
            "s.info::text",
            &format!("left(s.info, {})", MAX_PILEUP_SQL + 1),
        );
        let sql = format!(
            "{TAG} SELECT {select} FROM ({sessions}) s WHERE {conditions} AND s.id = ANY(${})",
            values.len()
        );
        let rows = client
            .query(&sql, &refs(&values))
            .await
            .map_err(|e| self.target.failure(&e))?;
        rows.iter().map(|row| self.target.session(row)).collect()
    }

    async fn present(
        &self,
        client: &mut Client,
        tenant: &str,
        ids: &[u64],
    ) -> Result<Vec<u64>, Failure> {
        self.target.check_tenant(tenant)?;
        let sessions = self.target.sessions().await;
        let (conditions, mut values) = self.target.conditions(&ListParams::default());
        let wanted: Vec<i64> = ids
            .iter()
            .map(|id| (*id).min(i64::MAX as u64) as i64)
            .collect();
        values.push(Param::Ints(wanted));
        let sql = format!(
            "{TAG} SELECT s.id FROM ({sessions}) s WHERE {conditions} AND s.id = ANY(${})",
            values.len()
        );
        let rows = client
            .query(&sql, &refs(&values))
            .await
            .map_err(|e| self.target.failure(&e))?;
        Ok(rows
            .iter()
            .filter_map(|row| row.try_get::<_, i64>(0).ok())
            .map(|id| id.max(0) as u64)
            .collect())
    }

    async fn started(
        &self,
        client: &mut Client,
        tenant: &str,
        ids: &[u64],
    ) -> Result<Option<HashMap<u64, String>>, Failure> {
        self.target.check_tenant(tenant)?;
        let wanted: Vec<i64> = ids
            .iter()
            .map(|id| (*id).min(i64::MAX as u64) as i64)
            .collect();
        let sql = format!(
            "{TAG} SELECT a.pid::bigint, {STARTED} FROM pg_stat_activity a WHERE a.pid::bigint = ANY($1)"
        );
        let rows = client
            .query(&sql, &[&wanted])
            .await
            .map_err(|e| self.target.failure(&e))?;
        Ok(Some(
            rows.iter()
                .filter_map(|row| {
                    let pid = row.try_get::<_, i64>(0).ok()?;
                    let started = row.try_get::<_, Option<String>>(1).ok()??;
                    Some((pid.max(0) as u64, started))
                })
                .collect(),
        ))
    }

    async fn end(
        &self,
        client: &mut Client,
        id: u64,
        started: Option<&str>,
        query_only: bool,
    ) -> Result<(), Refusal> {
        let function = if query_only {
            "pg_cancel_backend"
        } else {
            "pg_terminate_backend"
        };
        let pid = i32::try_from(id).unwrap_or(i32::MAX);
        // With the start shown, the backend is ended only if it is still that one, in
        // the same statement: no other session can take the pid in between.
        let sql = format!(
            "{TAG} SELECT {function}(a.pid) FROM pg_stat_activity a WHERE a.pid = $1 \
             AND ($2::text IS NULL OR {STARTED} = $2::text)"
        );
        let outcome = client.query(&sql, &[&pid, &started]).await;
        let err = match outcome {
            Ok(rows) if rows.is_empty() && started.is_some() => {
                return Err(Refusal::Replaced { id })
            }
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        let what = format!("{function}({id})");
        let why = classify(&err, &self.target.settings, "ending a session").to_string();
        Err(
            if err.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) {
                Refusal::Denied {
                    what,
                    why,
                    grant: "ending other users' sessions needs the pg_signal_backend role \
                            (GRANT pg_signal_backend TO the account; superusers' sessions \
                            only a superuser may end)"
                        .to_string(),
                }
            } else {
                Refusal::Failed { what, why }
            },
        )
    }
}

/// A page's statement, with the target that turns its rows into sessions.
pub struct Page {
    target: Arc<Shared>,
    sql: String,
    values: Vec<Param>,
}

impl PageRows for Page {
    type Conn = Client;

    async fn send(self, client: Client, sink: PageSink) {
        let rows = match client.query_raw(&self.sql, refs(&self.values)).await {
            Ok(rows) => rows,
            Err(err) => {
                sink.send(Err(self.target.failure(&err))).await;
                return;
            }
        };
        let mut rows = std::pin::pin!(rows);
        while let Some(row) = rows.next().await {
            let session = match row {
                Ok(row) => self.target.session(&row),
                Err(err) => Err(self.target.failure(&err)),
            };
            if !sink.send(session).await {
                // Rows may be left unread: the connection is dropped, not reused.
                return;
            }
        }
        self.target.give_back(client);
    }
}

/// A bound value of a request.
#[derive(Debug)]
enum Param {
    Text(String),
    Int(i64),
    Float(f64),
    Ints(Vec<i64>),
}

fn refs(values: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    values
        .iter()
        .map(|value| match value {
            Param::Text(text) => text as &(dyn ToSql + Sync),
            Param::Int(n) => n as &(dyn ToSql + Sync),
            Param::Float(n) => n as &(dyn ToSql + Sync),
            Param::Ints(ns) => ns as &(dyn ToSql + Sync),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_list_shows_the_start_a_kill_checks() {
        assert!(super::SESSIONS.contains(&format!("{} AS started", super::STARTED)));
    }
}
