//! Connection pools and error classification shared by every MySQL-protocol source.

use super::error::{Reason, SourceError};
use crate::config::Database;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};
use std::time::Duration;

/// Owns one target's pool. The pool is small (a cycle uses one connection) and kept
/// across cycles, so a healthy target costs one query per interval and no handshakes.
pub struct Connector {
    opts: Opts,
    pool: Option<Pool>,
}

impl Connector {
    /// `init` statements run once on every new connection (e.g. a session timeout).
    pub fn new(database: &Database, interval: Duration, init: Vec<String>) -> Self {
        Self {
            opts: opts(database, interval, init, 2),
            pool: None,
        }
    }

    /// A connection from the pool, creating the pool on first use or after a reset.
    pub async fn conn(&mut self) -> Result<Conn, mysql_async::Error> {
        let pool = self
            .pool
            .get_or_insert_with(|| Pool::new(self.opts.clone()));
        pool.get_conn().await
    }

    /// Drops the pool; its connections are closed in the background, bounded in time
    /// because a server that hangs would otherwise hold the close forever.
    pub fn reset(&mut self) {
        if let Some(pool) = self.pool.take() {
            close_in_background(pool);
        }
    }
}

/// A pool of at most `max` connections to `database`, separate from its collection's
/// (the passthrough's own, so requests cannot take the scheduler's connections).
/// Nothing connects until a connection is asked for.
pub fn pool(database: &Database, interval: Duration, init: Vec<String>, max: usize) -> Pool {
    Pool::new(opts(database, interval, init, max))
}

/// Closes `pool`'s connections in the background, bounded in time.
pub fn close_in_background(pool: Pool) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), pool.disconnect()).await;
        });
    }
}

fn opts(database: &Database, interval: Duration, init: Vec<String>, max: usize) -> Opts {
    // Idle connections live a few intervals, so a long interval does not keep
    // a connection open that the server's wait_timeout would kill anyway.
    let idle_ttl = (interval * 3).max(Duration::from_secs(60));
    let pool_opts = PoolOpts::default()
        .with_constraints(PoolConstraints::new(0, max.max(1)).expect("0 <= max"))
        // Nothing we do changes session state that a reset would undo, and
        // OceanBase does not support COM_RESET_CONNECTION.
        .with_reset_connection(false)
        .with_inactive_connection_ttl(idle_ttl)
        .with_ttl_check_interval(Duration::from_secs(30));
    let password = database.password.expose();
    let opts = OptsBuilder::default()
        .ip_or_hostname(database.address.host.clone())
        .tcp_port(database.address.port)
        .user(Some(database.user.clone()))
        .pass((!password.is_empty()).then(|| password.to_string()))
        // Given 127.0.0.1, mysql_async would otherwise switch to the unix socket
        // and the server would see another client.
        .prefer_socket(false)
        .stmt_cache_size(0)
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .init(init)
        .connect_attribute("program_name", "session_exporter")
        .pool_opts(pool_opts);
    opts.into()
}

impl Drop for Connector {
    fn drop(&mut self) {
        self.reset();
    }
}

/// Server error codes, by meaning.
mod code {
    /// Wrong user or password; unix-socket-only account.
    pub const ACCESS_DENIED: [u16; 2] = [1045, 1698];
    /// Missing privilege on a database, table, or the PROCESS privilege.
    pub const NO_PRIVILEGE: [u16; 4] = [1044, 1142, 1143, 1227];
    /// max_connections / max_user_connections reached.
    pub const TOO_MANY_CONNECTIONS: [u16; 2] = [1040, 1203];
    /// The server stopped the statement at its own time limit: OceanBase
    /// ob_query_timeout, MariaDB max_statement_time, MySQL max_execution_time.
    pub const STATEMENT_TIMEOUT: [u16; 3] = [4012, 1969, 3024];
    /// Table (view) does not exist.
    pub const NO_SUCH_TABLE: u16 = 1146;
}

/// True when `err` says the relation is missing or not readable by this account.
pub fn is_missing_or_denied_relation(err: &mysql_async::Error) -> bool {
    matches!(err, mysql_async::Error::Server(e)
        if e.code == code::NO_SUCH_TABLE || code::NO_PRIVILEGE.contains(&e.code))
}

/// Turns a driver error into a reason and a message that says what to check.
/// `database` and `what` (e.g. "reading information_schema.PROCESSLIST") give
/// context; `grant` is the privilege to suggest when one is missing.
pub fn classify(
    err: &mysql_async::Error,
    database: &Database,
    what: &str,
    grant: &str,
) -> SourceError {
    use mysql_async::Error as E;
    let addr = &database.address;
    match err {
        E::Io(io) => SourceError::new(
            Reason::Connect,
            format!("cannot reach {addr}: {io}: check the address and that the server is running"),
        ),
        E::Driver(driver) => SourceError::new(
            Reason::Connect,
            format!("connection to {addr} failed: {driver}"),
        ),
        E::Server(e) if code::ACCESS_DENIED.contains(&e.code) => SourceError::new(
            Reason::Auth,
            format!(
                "{addr} refused user `{}` (error {}: {}): check user and password",
                database.user, e.code, e.message
            ),
        ),
        E::Server(e) if code::NO_PRIVILEGE.contains(&e.code) => SourceError::new(
            Reason::Auth,
            format!(
                "user `{}` may not do this while {what} (error {}: {}): {grant}",
                database.user, e.code, e.message
            ),
        ),
        E::Server(e) if code::TOO_MANY_CONNECTIONS.contains(&e.code) => SourceError::new(
            Reason::Connect,
            format!(
                "{addr} has no free connection (error {}: {}): raise max_connections or close idle sessions",
                e.code, e.message
            ),
        ),
        E::Server(e) if code::STATEMENT_TIMEOUT.contains(&e.code) => SourceError::new(
            Reason::Timeout,
            format!(
                "the server stopped the query at collect_timeout while {what} (error {}: {})",
                e.code, e.message
            ),
        ),
        E::Server(e) => SourceError::new(
            Reason::Query,
            format!("error {} while {what}: {}", e.code, e.message),
        ),
        other => SourceError::new(Reason::Query, format!("{what} failed: {other}")),
    }
}
