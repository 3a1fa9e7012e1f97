//! Connection pools, the exporter's own sessions, and error classification, shared
//! by every MySQL-protocol source and the session API.

use crate::config::Database;
use crate::error::{Reason, SourceError};
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Own sessions remembered per server at most; past it the oldest are forgotten
/// (both pools of a target hold at most 66 connections).
const MAX_OWN_SESSIONS: usize = 256;
/// How long after a pool's idle timeout a connection may still be open: the pool
/// checks its idle connections every 30 s.
const IDLE_CHECK_SLACK: Duration = Duration::from_secs(45);

/// The sessions this process holds on one server, by connection id, with when each
/// is known to be closed at the latest: the collection's pool and the session API's
/// both connect as the monitoring account, and neither may count the other's idle
/// connections (nor its own second one) as sessions of the tenant.
#[derive(Debug, Default)]
pub struct OwnSessions {
    open_until: Mutex<HashMap<u32, Instant>>,
}

impl OwnSessions {
    /// The own sessions of the server `conn` is connected to, with `conn` noted among
    /// them (as open until its pool would have closed it idle).
    pub fn of(conn: &Conn) -> Arc<OwnSessions> {
        /// By server: host (as configured) and port.
        type Servers = Mutex<HashMap<(String, u16), Arc<OwnSessions>>>;
        static SERVERS: OnceLock<Servers> = OnceLock::new();
        let opts = conn.opts();
        let key = (opts.ip_or_hostname().to_string(), opts.tcp_port());
        let own = SERVERS
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .clone();
        let idle = opts.pool_opts().inactive_connection_ttl();
        own.note(conn.id(), Instant::now() + idle + IDLE_CHECK_SLACK);
        own
    }

    fn note(&self, id: u32, open_until: Instant) {
        let mut map = self.open_until.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, until| *until > now);
        if map.len() >= MAX_OWN_SESSIONS && !map.contains_key(&id) {
            if let Some(oldest) = map.iter().min_by_key(|(_, until)| **until).map(|(k, _)| *k) {
                map.remove(&oldest);
            }
        }
        map.insert(id, open_until);
    }

    /// The ids of the sessions that may still be open, in order.
    pub fn ids(&self) -> Vec<u32> {
        let now = Instant::now();
        let map = self.open_until.lock().unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<u32> = map
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

/// Owns one target's pool. The pool is small (a cycle uses one connection) and kept
/// across cycles, so a healthy target costs one query per interval and no handshakes.
pub struct Connector {
    opts: Opts,
    pool: Option<Pool>,
    /// The close of the pool a reset dropped, while it lasts: no new pool connects
    /// before it is over, so a server that hangs never holds more of our
    /// connections than one pool's, however many cycles fail.
    closing: Option<tokio::task::JoinHandle<()>>,
}

impl Connector {
    /// `init` statements run once on every new connection (e.g. a session timeout).
    pub fn new(database: &Database, interval: Duration, init: Vec<String>) -> Self {
        Self {
            opts: opts(database, interval, init, 2),
            pool: None,
            closing: None,
        }
    }

    /// A connection from the pool, creating the pool on first use or after a reset;
    /// one of the process's own sessions from then on (see [`OwnSessions`]).
    pub async fn conn(&mut self) -> Result<Conn, mysql_async::Error> {
        if let Some(closing) = &mut self.closing {
            // Bounded by close_in_background's own limit, and by the cycle's timeout
            // (which drops this wait, and leaves the close to the next cycle).
            let _ = closing.await;
            self.closing = None;
        }
        let pool = self
            .pool
            .get_or_insert_with(|| Pool::new(self.opts.clone()));
        let conn = pool.get_conn().await?;
        OwnSessions::of(&conn);
        Ok(conn)
    }

    /// Drops the pool; its connections are closed in the background, bounded in time
    /// because a server that hangs would otherwise hold the close forever.
    pub fn reset(&mut self) {
        if let Some(pool) = self.pool.take() {
            self.closing = close_in_background(pool);
        }
    }
}

/// A pool of at most `max` connections to `database`, separate from its collection's
/// (the session API's own, so requests cannot take the scheduler's connections).
/// Nothing connects until a connection is asked for.
pub fn pool(database: &Database, interval: Duration, init: Vec<String>, max: usize) -> Pool {
    Pool::new(opts(database, interval, init, max))
}

/// Closes `pool`'s connections in the background, bounded in time; the task doing
/// it, when there is a runtime to run it.
pub fn close_in_background(pool: Pool) -> Option<tokio::task::JoinHandle<()>> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    Some(runtime.spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(5), pool.disconnect()).await;
    }))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_sessions_expire_and_stay_bounded() {
        let own = OwnSessions::default();
        let later = Instant::now() + Duration::from_secs(60);
        own.note(7, later);
        own.note(3, later);
        own.note(9, Instant::now());
        assert_eq!(own.ids(), [3, 7], "a session past its idle timeout is gone");
        for id in 100..(100 + MAX_OWN_SESSIONS as u32 + 10) {
            own.note(id, later + Duration::from_millis(u64::from(id)));
        }
        let ids = own.ids();
        assert_eq!(ids.len(), MAX_OWN_SESSIONS);
        assert!(!ids.contains(&3) && ids.contains(&(100 + MAX_OWN_SESSIONS as u32 + 9)));
    }
}
