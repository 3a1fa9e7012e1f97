//! PostgreSQL: `pg_stat_activity`, on one connection of its own per target.
//!
//! One statement per cycle ([`Scan`]; pg_stat_activity is no virtual table priced per
//! row, so the server's grouping costs it less than sending every session): one read of
//! `pg_stat_activity` per cycle, joined to the lock waits of `pg_locks` and to the
//! blockers `pg_blocking_pids()` names, grouped by (db, user, client, state,
//! wait_event_type) in the server, each of the longest active sessions and every
//! blocker kept in a row of its own. It is sent over the simple query protocol, so
//! every value comes back as text and is decoded by the same rules as MySQL's.
//!
//! What counts: client backends (`backend_type = 'client backend'`); background
//! workers, autovacuum, WAL senders and the server's own processes are not sessions
//! of a client and are left out. Active means `state = 'active'`. The tenant label
//! is the target's name. The exporter's own connection is never counted: its pid
//! is `pg_backend_pid()`, and every connection it makes (the session API's too) is
//! named `application_name = 'session_exporter'` under its own user.

mod behind;
mod scan;
mod sessions;
mod tls;

use super::collect::{BoxFuture, Source};
use super::front::{backends_of, Backends};
use crate::config::postgresql::{Postgresql, SslMode};
use crate::config::Target;
use crate::error::{Reason, SourceError};
use crate::sql::{
    filter_conditions, read, simple_text, Connection, PeriodicReads, RowContext, Rules, SqlError,
    TAG,
};
use crate::stats::{Collected, Keeping};
use behind::RealClients;
use futures_util::StreamExt;
use scan::Scan;
use sessions::PostgresqlSessions;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, SimpleQueryMessage};

/// The `application_name` of every connection the exporter makes.
pub const APPLICATION_NAME: &str = "session_exporter";

/// The role to suggest when one is missing.
const GRANT: &str = "grant it with GRANT pg_monitor TO the account";

pub struct PostgresqlSource {
    name: String,
    settings: Postgresql,
    timeout: Duration,
    /// The statement of every cycle, written for the server's version when a
    /// connection is made.
    sql: String,
    /// The server's `server_version_num`, known once connected.
    version: u32,
    /// Whether the server's encoding is UTF-8 (see [`RealClients::of`]).
    utf8: bool,
    client: Option<Client>,
    periodic: PeriodicReads,
    /// How sessions are kept for the session history; None: none.
    history: Option<Keeping>,
}

impl PostgresqlSource {
    pub fn new(target: &Target, settings: &Postgresql) -> Self {
        Self {
            name: target.name.clone(),
            sql: String::new(),
            version: 0,
            utf8: false,
            periodic: PeriodicReads::new(
                settings.database.collect,
                settings.database.limits_interval,
                target.collect_interval,
            ),
            timeout: target.collect_timeout,
            settings: settings.clone(),
            client: None,
            history: target.history_sessions.map(Keeping::new),
        }
    }

    /// Warns when the account cannot see other users' sessions: PostgreSQL then shows
    /// their state, query and wait as NULL without any error, so every one of them
    /// would count as idle. Once per connection.
    async fn check_role(&self, client: &Client) {
        let sql = format!(
            "{TAG} SELECT CASE WHEN pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') \
             THEN 1 ELSE 0 END"
        );
        let Ok(rows) = client.simple_query(&sql).await else {
            return;
        };
        let granted = rows.iter().any(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0) == Some("1"),
            _ => false,
        });
        if !granted {
            tracing::warn!(
                target = %self.name,
                "user `{}` is not a member of pg_monitor (or pg_read_all_stats): PostgreSQL \
                 hides the state and query of other users' sessions, so they all count as \
                 idle; {GRANT}",
                self.settings.database.user
            );
        }
    }

    async fn run(&mut self) -> Result<Collected, SourceError> {
        let client = match self.client.take() {
            Some(client) if !client.is_closed() => client,
            _ => {
                let client = connect(&self.settings, self.timeout).await?;
                self.check_role(&client).await;
                let (version, utf8) = server_version(&client)
                    .await
                    .map_err(|e| classify(&e, &self.settings, "reading server_version_num"))?;
                self.utf8 = utf8;
                self.sql = grouped_sql(
                    &self.settings,
                    version,
                    self.history.is_some(),
                    &Backends::new(),
                    utf8,
                );
                self.version = version;
                tracing::debug!(target = %self.name, sql = %self.sql, "statement of every cycle");
                client
            }
        };
        let client = self.client.insert(client);
        let database = &self.settings.database;
        let ctx = RowContext {
            tenant: &self.name,
            server: &database.address.host,
            null_string_is_no_db: false,
            keep: database.top_sessions,
            parts: database.collect,
            rules: Rules::NONE,
            listed_only: false,
            history: self.history.clone(),
        };
        // Behind a pooler, its real clients of the moment are in this cycle's text.
        let behind = &self.settings.behind;
        let sql = match behind.is_empty() {
            true => None,
            false => {
                let real = backends_of(behind, self.timeout / 2, Duration::ZERO).await;
                let history = self.history.is_some();
                Some(grouped_sql(
                    &self.settings,
                    self.version,
                    history,
                    &real,
                    self.utf8,
                ))
            }
        };
        let sql = sql.as_deref().unwrap_or(&self.sql);
        let mut collected = cycle(client, sql, &ctx).await.map_err(|err| match err {
            SqlError::Driver(err) => classify(&err, &self.settings, "reading pg_stat_activity"),
            SqlError::Answer(err) => err,
        })?;
        if self.periodic.due() {
            self.read_periodic().await;
        }
        self.periodic.attach(&mut collected);
        Ok(collected)
    }

    /// The limits and the deadlock counter ([`periodic_sql`]); a failure is said
    /// and the last values kept, without failing the cycle.
    async fn read_periodic(&mut self) {
        let Some(client) = &self.client else {
            return;
        };
        let mut answer = self.periodic.rows(&self.name);
        // Only the connection counters are on, and the server keeps none.
        let Some(sql) = periodic_sql(self.periodic.parts(), self.version) else {
            self.periodic.finish(answer);
            return;
        };
        tracing::debug!(target = %self.name, sql = %sql, "statement of limits and deadlocks");
        let read = async {
            for message in client.simple_query(&sql).await? {
                if let SimpleQueryMessage::Row(row) = message {
                    let values: Vec<Option<&str>> =
                        (0..row.len()).map(|i| simple_text(&row, i)).collect();
                    if let Err(err) = answer.add(values) {
                        return Ok(Err(err));
                    }
                }
            }
            Ok::<_, tokio_postgres::Error>(Ok(()))
        };
        match read.await {
            Ok(Ok(())) => self.periodic.finish(answer),
            Ok(Err(err)) => {
                tracing::warn!(target = %self.name, "reading limits and deadlocks: {err}");
                self.periodic.failed();
            }
            Err(err) => {
                let err = classify(&err, &self.settings, "reading limits and deadlocks");
                tracing::warn!(target = %self.name, "{err}");
                self.periodic.failed();
            }
        }
    }
}

/// The session API of a PostgreSQL target (see [`crate::source::api_backend`]): its
/// own connections, at most `max_concurrent`, each request bounded at `timeout`.
pub fn api_backend(
    target: &Target,
    settings: &Postgresql,
    (max_concurrent, timeout): (usize, Duration),
) -> crate::api::http::Backend {
    let sessions = PostgresqlSessions::new(&target.name, settings, max_concurrent, timeout);
    let served = crate::api::serve::BackendApi::new(sessions, max_concurrent, timeout);
    crate::api::http::Backend::Sessions(std::sync::Arc::new(served))
}

/// A cycle's one statement ([`grouped_sql`]) on `conn`, its rows added up.
async fn cycle<C: Connection>(
    conn: &mut C,
    sql: &str,
    ctx: &RowContext<'_>,
) -> Result<Collected, SqlError<C::Error>> {
    let mut aggregator = ctx.aggregator(&[ctx.tenant]);
    read(conn, sql, |row| scan::add_row(&mut aggregator, row, ctx)).await?;
    Ok(aggregator.finish())
}

impl Connection for Client {
    type Cell<'r> = Option<&'r str>;
    type Error = tokio_postgres::Error;

    /// The simple query protocol: every value as text, the rows streamed.
    async fn rows<F>(&mut self, sql: &str, mut each: F) -> Result<(), tokio_postgres::Error>
    where
        F: for<'r> FnMut(Vec<Option<&'r str>>) + Send,
    {
        let stream = self.simple_query_raw(sql).await?;
        let mut stream = std::pin::pin!(stream);
        while let Some(message) = stream.next().await {
            if let SimpleQueryMessage::Row(row) = message? {
                each((0..row.len()).map(|i| simple_text(&row, i)).collect());
            }
        }
        Ok(())
    }
}

/// The server's `server_version_num` (150004 for 15.4; 0 when it is not a number,
/// which writes the statement every version understands), and whether its encoding
/// is UTF-8.
pub(super) async fn server_version(client: &Client) -> Result<(u32, bool), tokio_postgres::Error> {
    let rows = client
        .simple_query(&format!(
            "{TAG} SELECT current_setting('server_version_num'), current_setting('server_encoding')"
        ))
        .await?;
    Ok(rows
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some((
                simple_text(row, 0)
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0),
                simple_text(row, 1) == Some("UTF8"),
            )),
            _ => None,
        })
        .unwrap_or((0, false)))
}

/// The statement of periodic reads ([`PeriodicReads`]): `max_connections` less the
/// connections reserved for superusers (and, from PostgreSQL 16, for
/// `pg_use_reserved_connections`); each login role's `rolconnlimit` and each
/// database's `datconnlimit` that is set (-1 is none; superusers are not held to a
/// role's limit); the deadlocks of every database, summed; from PostgreSQL 14
/// (`version`, `server_version_num`), the sessions every database had and how many
/// of them ended abandoned, fatal or killed, per database (summed from read to read
/// so that a dropped database takes nothing away). All of it is readable by any
/// role. PostgreSQL counts no refused connection, and keeps no peak.
fn periodic_sql(parts: crate::stats::CollectParts, version: u32) -> Option<String> {
    let mut reads = Vec::new();
    if parts.limits {
        reads.push(
            "SELECT '', 'sessions', '', (current_setting('max_connections')::int \
             - current_setting('superuser_reserved_connections')::int \
             - COALESCE(current_setting('reserved_connections', true), '0')::int)::text \
             UNION ALL SELECT '', 'users_default', '', NULL \
             UNION ALL SELECT '', 'user', rolname, rolconnlimit::text FROM pg_roles \
             WHERE rolconnlimit >= 0 AND rolcanlogin AND NOT rolsuper \
             UNION ALL SELECT '', 'db', datname, datconnlimit::text FROM pg_database \
             WHERE datconnlimit >= 0 AND datallowconn",
        );
    }
    if parts.deadlocks {
        reads.push(
            "SELECT '', 'deadlocks', '', COALESCE(sum(deadlocks), 0)::text FROM pg_stat_database",
        );
    }
    if parts.connections && version >= SESSION_COUNTERS_VERSION {
        reads.push(
            "SELECT '', c.what, c.reason || '/' || d.datid::text, c.n::text \
             FROM pg_stat_database d CROSS JOIN LATERAL (VALUES \
             ('connections', '', d.sessions), ('ended', 'abandoned', d.sessions_abandoned), \
             ('ended', 'fatal', d.sessions_fatal), ('ended', 'killed', d.sessions_killed)) \
             AS c (what, reason, n) WHERE d.datid <> 0",
        );
    }
    (!reads.is_empty()).then(|| format!("{TAG} {}", reads.join(" UNION ALL ")))
}

impl Source for PostgresqlSource {
    fn collect(&mut self) -> BoxFuture<'_, Result<Collected, SourceError>> {
        Box::pin(self.run())
    }

    fn reset(&mut self) {
        self.client = None;
    }
}

/// Connects as `settings` say; the server itself stops our statements at
/// `timeout` (`statement_timeout`), so an abandoned cycle leaves no work behind.
pub async fn connect(settings: &Postgresql, timeout: Duration) -> Result<Client, SourceError> {
    let database = &settings.database;
    let mut config = tokio_postgres::Config::new();
    config
        .host(&database.address.host)
        .port(database.address.port)
        .user(&database.user)
        .password(database.password.expose())
        .dbname(&settings.dbname)
        .application_name(APPLICATION_NAME)
        .connect_timeout(timeout)
        .options(format!(
            "-c statement_timeout={}",
            timeout.as_millis().max(1)
        ))
        .ssl_mode(match settings.sslmode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
    let tls = tls::client_config(settings.sslmode, &settings.root_certs)
        .map_err(|message| SourceError::new(Reason::Connect, message))?;
    let failed = |e: tokio_postgres::Error| classify(&e, settings, "connecting");
    // The connection task ends when the client is dropped (or the server goes).
    match tls {
        None => {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(failed)?;
            tokio::spawn(connection);
            Ok(client)
        }
        Some(tls) => {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
            let (client, connection) = config.connect(tls).await.map_err(failed)?;
            tokio::spawn(connection);
            Ok(client)
        }
    }
}

/// Turns a driver error into a reason and a message that says what to check.
pub fn classify(err: &tokio_postgres::Error, settings: &Postgresql, what: &str) -> SourceError {
    let database = &settings.database;
    let addr = &database.address;
    let Some(db) = err.as_db_error() else {
        // No answer from the server: it could not be reached, or the connection broke.
        let detail =
            std::error::Error::source(err).map_or(err.to_string(), |s| format!("{err}: {s}"));
        return SourceError::new(
            Reason::Connect,
            format!("cannot reach {addr} while {what}: {detail}: check the address, sslmode and that the server is running"),
        );
    };
    let code = db.code();
    let (reason, hint) = if *code == SqlState::INVALID_PASSWORD
        || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    {
        (
            Reason::Auth,
            format!(
                "{addr} refused user `{}`: check user, password and pg_hba.conf",
                database.user
            ),
        )
    } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        (Reason::Auth, GRANT.to_string())
    } else if *code == SqlState::QUERY_CANCELED {
        (
            Reason::Timeout,
            "the server stopped the query at collect_timeout (statement_timeout)".to_string(),
        )
    } else if *code == SqlState::TOO_MANY_CONNECTIONS {
        (
            Reason::Connect,
            "no free connection: raise max_connections or close idle sessions".to_string(),
        )
    } else if *code == SqlState::INVALID_CATALOG_NAME {
        (
            Reason::Connect,
            format!(
                "there is no database `{}`: set `database:` to one that exists",
                settings.dbname
            ),
        )
    } else {
        (Reason::Query, "unexpected error".to_string())
    };
    SourceError::new(
        reason,
        format!(
            "error {} while {what}: {}: {hint}",
            code.code(),
            db.message()
        ),
    )
}

/// The session columns [`Scan`] reads, named as it names them (PostgreSQL folds the
/// unquoted names to lower case): `id, db, user, client, command, state, time`, plus
/// what the transaction and lock parts need. `command` is the session's `state`
/// (`active`, `idle`, `idle in transaction`, …), `state` its `wait_event_type`
/// (`Lock`, `LWLock`, `IO`, `Client`, …; NULL when it waits for nothing); `time` is
/// how long the session has been in its state: since `query_start` when active,
/// `state_change` otherwise.
///
/// `client` is the session's address and `app` its `application_name`, or, for a
/// session a pooler in front serves ([`RealClients`]), the real client's;
/// `wait_event` its wait event (with
/// `state` its class), `query_id` its statement's id (`{query_id}`: the column from
/// PostgreSQL 14, NULL before).
const SESSIONS: &str = "SELECT a.pid AS id, a.datname AS db, a.usename AS user, \
     {client} AS client, a.state AS command, a.wait_event_type AS state, \
     EXTRACT(EPOCH FROM clock_timestamp() - CASE WHEN a.state = 'active' THEN a.query_start \
     ELSE a.state_change END) AS time, a.xact_start, a.query_start, l.waitstart, \
     {app} AS app, a.wait_event, {query_id} AS query_id, {query} AS query, \
     GREATEST(age(a.backend_xid), age(a.backend_xmin)) AS xmin_age \
     FROM pg_stat_activity a {real}LEFT JOIN (SELECT pid, min(waitstart) AS waitstart FROM pg_locks \
     WHERE NOT granted GROUP BY pid) l ON l.pid = a.pid \
     WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid() \
     AND NOT (a.application_name = 'session_exporter' AND a.usename = current_user)";

/// The first PostgreSQL version (`server_version_num`) whose `pg_stat_database`
/// counts sessions (`sessions`, `sessions_abandoned`, ...).
const SESSION_COUNTERS_VERSION: u32 = 140_000;

/// The first PostgreSQL version (`server_version_num`) with `pg_stat_activity.query_id`.
const QUERY_ID_SINCE: u32 = 140_000;

/// The statement of every cycle (see [`Scan::statement`]). An open transaction is a
/// session with `xact_start`; a lock wait is `wait_event_type = 'Lock'`, waited since
/// the lock's `waitstart`; the sessions a waiter waits on are
/// `pg_blocking_pids(pid)`, counted per blocker. An active session's wait is its
/// `wait_event_type` and `wait_event`, its statement its `query_id` (on `version`
/// 14 and later, when `compute_query_id` computes one).
fn grouped_sql(
    settings: &Postgresql,
    version: u32,
    history: bool,
    real: &Backends,
    utf8: bool,
) -> String {
    let database = &settings.database;
    let parts = database.collect;
    let real = RealClients::of(settings, real, utf8);
    let query_id = match version >= QUERY_ID_SINCE {
        true => "a.query_id::text",
        false => "NULL::text",
    };
    // The statement's text only for the session history, which keeps it.
    let query = match history {
        true => "a.query",
        false => "NULL::text",
    };
    let mut from = format!(
        "({}) p",
        SESSIONS
            .replace("{query_id}", query_id)
            .replace("{query}", query)
            .replace("{client}", &real.client)
            .replace("{app}", &real.app)
            .replace("{real}", &real.join)
    );
    let mut scan = Scan {
        prefix: format!("{TAG} "),
        filter: format!("TRUE{}", filter_conditions(&database.filter, "p.")),
        client: "p.client".to_string(),
        active: "p.command = 'active'".to_string(),
        states: parts.states,
        top_sessions: database.top_sessions,
        history,
        ..Scan::default()
    };
    if parts.applications {
        scan.application = "p.app".to_string();
    }
    if parts.waits {
        scan.wait_class = "p.state".to_string();
        scan.wait_event = "p.wait_event".to_string();
    }
    if parts.statements && version >= QUERY_ID_SINCE {
        scan.statement = "p.query_id".to_string();
    }
    // The session history keeps a kept session's statement text (PostgreSQL cuts it
    // at track_activity_query_size, 1024 bytes by default).
    if history {
        scan.sql_text = "p.query".to_string();
    }
    // And on whom a waiter waits: the first session pg_blocking_pids names, asked of
    // the waiters only.
    if history && parts.locks {
        scan.blocked_by =
            "CASE WHEN p.state = 'Lock' THEN (pg_blocking_pids(p.id))[1] END".to_string();
    }
    if parts.transactions {
        scan.in_transaction = "CASE WHEN p.xact_start IS NULL THEN 0 ELSE 1 END".to_string();
        scan.transaction_age = "EXTRACT(EPOCH FROM clock_timestamp() - p.xact_start)".to_string();
        scan.horizon_age = "p.xmin_age".to_string();
    }
    if parts.locks {
        scan.lock_wait = "CASE WHEN p.state = 'Lock' THEN EXTRACT(EPOCH FROM clock_timestamp() \
             - COALESCE(p.waitstart, p.query_start)) END"
            .to_string();
        from.push_str(
            " LEFT JOIN (SELECT bp AS pid, count(*) AS waiters FROM pg_stat_activity w \
             CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS bp \
             WHERE w.wait_event_type = 'Lock' GROUP BY bp) b ON b.pid = p.id",
        );
        scan.waiters = "COALESCE(b.waiters, 0)".to_string();
    }
    scan.from = from;
    scan.statement()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing;
    use crate::sql::fixtures::{block_on, counts as c, pairs, row, Scripted};
    use crate::stats::{CollectParts, NONE_LABEL};

    fn settings() -> Postgresql {
        Postgresql {
            database: testing::database("monitor", 5432),
            dbname: "postgres".into(),
            sslmode: SslMode::Prefer,
            root_certs: Vec::new(),
            behind: Vec::new(),
        }
    }

    /// The session counters exist from PostgreSQL 14: before, the part reads
    /// nothing, and with nothing else on no statement is sent.
    #[test]
    fn session_counters_are_read_from_postgresql_14() {
        let parts = CollectParts {
            connections: true,
            ..CollectParts::NONE
        };
        let sql = periodic_sql(parts, 150_004).unwrap();
        for column in [
            "('connections', '', d.sessions)",
            "('ended', 'killed', d.sessions_killed)",
            "c.reason || '/' || d.datid::text",
        ] {
            assert!(sql.contains(column), "{column}: {sql}");
        }
        assert_eq!(periodic_sql(parts, 130_012), None);
        let older = periodic_sql(CollectParts::ALL, 130_012).unwrap();
        assert!(
            older.contains("deadlocks") && !older.contains("sessions_killed"),
            "{older}"
        );
    }

    #[test]
    fn one_statement_reads_pg_stat_activity_for_sessions_once() {
        let sql = grouped_sql(&settings(), 150_004, false, &Backends::new(), true);
        assert!(sql.starts_with("/* session_exporter "));
        assert_eq!(sql.matches("FROM pg_stat_activity a").count(), 1, "{sql}");
        assert!(sql.contains("a.backend_type = 'client backend'"));
        assert!(sql.contains("a.pid <> pg_backend_pid()"));
        assert!(sql.contains("pg_blocking_pids(w.pid)"));
        assert!(sql.contains("ROW_NUMBER() OVER (ORDER BY"));
        assert!(
            !sql.contains("a.query "),
            "statistics never read the SQL text"
        );
        // The oldest snapshots' holders are ranked apart; idle holders counted.
        assert!(
            sql.contains("ROW_NUMBER() OVER (ORDER BY p.xmin_age DESC NULLS LAST, p.ID)"),
            "{sql}"
        );
        assert!(
            sql.contains(&format!(
                "OR y.XR <= {}",
                crate::config::DEFAULT_TOP_SESSIONS
            )),
            "{sql}"
        );
        assert!(sql.contains("x.XA IS NOT NULL THEN 1 ELSE 0 END)"), "{sql}");
        let mut quiet = settings();
        quiet.database.collect = CollectParts::NONE;
        quiet.database.top_sessions = 0;
        let sql = grouped_sql(&quiet, 150_004, false, &Backends::new(), true);
        assert!(!sql.contains("pg_blocking_pids") && !sql.contains("xact_start IS NULL"));
        assert!(
            sql.contains("NULL AS XA, NULL AS XR"),
            "no horizon without transactions"
        );
    }

    /// Text rows in, exact statistics out: a socket session has no client address,
    /// and a session without a database (a replication connection) no db.
    /// How a target named `pg` on 10.0.0.1 decodes its rows, every part on.
    fn context(history: Option<usize>) -> RowContext<'static> {
        RowContext {
            tenant: "pg",
            server: "10.0.0.1",
            null_string_is_no_db: false,
            keep: 5,
            parts: CollectParts::default(),
            rules: Rules::NONE,
            listed_only: false,
            history: history.map(Keeping::new),
        }
    }

    #[test]
    fn text_rows_give_exact_statistics() {
        let settings = settings();
        let ctx = context(None);
        let sql = grouped_sql(&settings, 150_004, false, &Backends::new(), true);
        let rows = [
            "∅|∅|shop|app|10.0.0.7|idle|Client|∅|3|∅|∅|∅|∅|∅|∅|∅|∅|∅|∅|web|∅|∅|∅|∅|∅|∅|0|∅",
            "∅|∅|shop|app|10.0.0.7|idle in transaction|Client|∅|1|∅|1|1|30.5|29.25|∅|∅|41|∅|1|psql|∅|∅|∅|∅|∅|1500|1|29.25",
            "∅|∅|shop|app|∅|active|Lock|1|1|4.5|1|∅|4.5|∅|1|4.25|42|∅|∅|web|Lock|transactionid|-7301|∅|∅|20|0|∅",
            "∅|∅|shop|app|∅|active|∅|2|2|1.5|∅|∅|∅|∅|∅|∅|∅|∅|∅||∅|∅|-7301|∅|∅|∅|0|∅",
        ];
        let mut conn = Scripted::default().answer(&sql, rows.map(row).to_vec());
        let tenants = block_on(cycle(&mut conn, &sql, &ctx))
            .unwrap()
            .into_tenants();
        assert_eq!(conn.take_sent(), [sql], "one statement a cycle");
        let t = &tenants["pg"];
        assert_eq!(
            (t.sessions, t.active_sessions, t.max_active_time),
            (7, 3, 4.5)
        );
        assert_eq!(
            pairs(&t.by_client),
            [("10.0.0.7", c(4, 0)), (NONE_LABEL, c(3, 3))]
        );
        // An empty application_name is none; a session waiting for nothing is on CPU.
        assert_eq!(
            pairs(&t.by_application),
            [(NONE_LABEL, c(2, 2)), ("psql", c(1, 0)), ("web", c(4, 1))]
        );
        let waits: Vec<(&str, &str, u64)> = t
            .by_wait
            .iter()
            .map(|((class, event), n)| (class.as_str(), event.as_str(), *n))
            .collect();
        assert_eq!(waits, [("CPU", "CPU", 2), ("Lock", "transactionid", 1)]);
        assert_eq!(t.by_statement.get("-7301"), Some(&3));
        assert_eq!(
            (t.transaction_sessions, t.idle_in_transaction_sessions),
            (2, 1)
        );
        assert_eq!((t.lock_waiting_sessions, t.max_lock_wait), (1, 4.25));
        assert_eq!(t.blockers.len(), 1);
        assert_eq!((t.blockers[0].session_id, t.blockers[0].waiters), (41, 1));
        assert_eq!(t.top.iter().map(|s| s.session_id).collect::<Vec<_>>(), [42]);
        // The horizon: the oldest snapshot, its holders oldest first, and the one
        // idle in a transaction that holds one.
        assert_eq!(
            (
                t.horizon_age,
                t.idle_in_transaction_holding_horizon,
                t.max_idle_holding_horizon
            ),
            (Some(1500), Some(1), Some(29.25))
        );
        let holders: Vec<_> = t
            .horizon_holders
            .iter()
            .map(|h| (h.session_id, h.age, h.application.as_str()))
            .collect();
        assert_eq!(holders, [(41, 1500, "psql"), (42, 20, "web")]);
    }

    /// With the session history on, the statement keeps every active session, every
    /// one in a transaction and every waiter apart, each a row of its own, and the
    /// cycle keeps them with their wait, statement and transaction, blockers and the
    /// longest first.
    #[test]
    fn the_history_keeps_the_sessions_kept_apart() {
        let sql = grouped_sql(&settings(), 150_004, true, &Backends::new(), true);
        assert!(
            sql.contains("OR y.A = 1 OR y.IT = 1 OR y.LW IS NOT NULL"),
            "{sql}"
        );
        assert!(sql.contains("p.query AS QT"), "{sql}");
        assert!(
            sql.contains("(pg_blocking_pids(p.id))[1] END AS BB"),
            "{sql}"
        );
        assert!(
            grouped_sql(&settings(), 150_004, false, &Backends::new(), true).contains("NULL AS QT")
        );
        assert!(
            !grouped_sql(&settings(), 150_004, false, &Backends::new(), true)
                .contains("y.A = 1 OR y.IT")
        );
        let ctx = context(Some(10));
        let rows = [
            "∅|∅|shop|app|10.0.0.7|idle|Client|∅|3|∅|∅|∅|∅|∅|∅|∅|∅|∅|∅|web|∅|∅|∅|∅|∅|∅|∅|∅",
            "∅|∅|shop|app|10.0.0.7|idle in transaction|Client|∅|1|∅|1|1|30.5|29.25|∅|∅|41|∅|1|psql|∅|∅|∅|∅|∅|∅|∅|∅",
            "∅|∅|shop|app|∅|active|Lock|1|1|4.5|1|∅|4.5|∅|1|4.25|42|∅|∅|web|Lock|transactionid|-7301|UPDATE t SET v = 1|41|∅|∅|∅",
            "∅|∅|shop|app|∅|active|∅|1|1|1.5|∅|∅|∅|∅|∅|∅|43|∅|∅||∅|∅|-7301|∅|∅|∅|∅|∅",
        ];
        let mut conn = Scripted::default().answer(&sql, rows.map(row).to_vec());
        let tenants = block_on(cycle(&mut conn, &sql, &ctx))
            .unwrap()
            .into_tenants();
        let kept: Vec<_> = tenants["pg"]
            .kept
            .iter()
            .map(|k| {
                (
                    k.id,
                    k.active,
                    k.time,
                    k.transaction_age,
                    k.lock_wait,
                    k.waiters,
                    k.wait_event.as_str(),
                    k.sql_id.as_str(),
                    k.sql_text.as_str(),
                )
            })
            .collect();
        assert_eq!(
            kept,
            [
                (41, false, 29.25, Some(30.5), None, 1, "", "", ""),
                (
                    42,
                    true,
                    4.5,
                    Some(4.5),
                    Some(4.25),
                    0,
                    "transactionid",
                    "-7301",
                    "UPDATE t SET v = 1"
                ),
                (43, true, 1.5, None, None, 0, "CPU", "-7301", ""),
            ]
        );
        let waiter = tenants["pg"].kept.iter().find(|k| k.id == 42).unwrap();
        assert_eq!(waiter.blocked_by, Some(41));
    }
}
