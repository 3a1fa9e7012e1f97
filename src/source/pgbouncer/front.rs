//! A PgBouncer in front of PostgreSQL ([`crate::source::front`]): which real client
//! each PostgreSQL backend serves. `SHOW SERVERS` ties each server connection to
//! its backend (`remote_pid`, and `local_port`, the port PostgreSQL sees as the
//! backend's `client_port`) and to the client it serves (`link`, that client's
//! `ptr`); `SHOW CLIENTS` gives that client's address and application. Read on a
//! console connection of its own, when a PostgreSQL target behind it asks, in that
//! target's cycle, just before its `pg_stat_activity` is read. In session pooling a
//! link lasts the client's session; in transaction pooling it lasts a transaction,
//! and a backend relinked in between is credited to the client it served a moment
//! earlier.

use super::console::{cell, Columns, Console};
use super::show::{pointer, ClientRows};
use super::{classify, connect, show, ReadError};
use crate::config::pgbouncer::Pgbouncer;
use crate::error::SourceError;
use crate::future::BoxFuture;
use crate::source::front::{Backends, Front, RealClient};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// One server connection (`SHOW SERVERS`) linked to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Linked {
    /// The client it serves (its `ptr`).
    client: u64,
    /// The backend's pid on PostgreSQL, and the port of PgBouncer's side of the
    /// connection (the backend's `client_port`).
    backend: (u32, u16),
}

/// Decodes `SHOW SERVERS` rows: those linked to a client and to a backend.
#[derive(Debug, Default)]
struct ServerRows(Columns<3>);

impl ServerRows {
    fn decode(&mut self, names: &[String], row: &[Option<&str>]) -> Option<Linked> {
        let [link, pid, port] = self.0.resolve(names, ["link", "remote_pid", "local_port"]);
        let pid: u32 = cell(row, pid).and_then(|v| v.trim().parse().ok())?;
        let port: u16 = cell(row, port).and_then(|v| v.trim().parse().ok())?;
        Some(Linked {
            client: cell(row, link).and_then(pointer)?,
            backend: (pid, port),
        })
        .filter(|_| pid != 0)
    }
}

/// The backends PgBouncer's server connections hold, with the client each serves.
pub(super) async fn backends<C: Console>(conn: &mut C) -> Result<Backends, ReadError<C::Error>> {
    let mut linked = Vec::new();
    let mut servers = ServerRows::default();
    show(conn, "SHOW SERVERS", |names, row| {
        linked.extend(servers.decode(names, row));
        Ok(())
    })
    .await?;
    if linked.is_empty() {
        return Ok(Backends::new());
    }
    let mut clients = HashMap::new();
    let mut decoder = ClientRows::default();
    show(conn, "SHOW CLIENTS", |names, row| {
        let client = decoder.decode(names, row);
        let real = RealClient {
            addr: client.addr,
            application: client.application,
        };
        clients.insert(client.ptr, real);
        Ok(())
    })
    .await?;
    Ok(linked
        .into_iter()
        .filter_map(|l| Some((l.backend, clients.get(&l.client)?.clone())))
        .collect())
}

/// A PgBouncer target as a front, with its console connection of its own and its
/// last answer.
pub(super) struct BouncerFront {
    pub settings: Pgbouncer,
    pub timeout: Duration,
    pub conn: tokio::sync::Mutex<Option<Client>>,
    pub last: std::sync::Mutex<Option<(Instant, Backends)>>,
}

impl BouncerFront {
    /// The last answer, if read at most `max_age` ago.
    fn recent(&self, max_age: Duration) -> Option<Backends> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.as_ref()
            .filter(|(at, _)| !max_age.is_zero() && at.elapsed() <= max_age)
            .map(|(_, backends)| backends.clone())
    }
}

impl Front for BouncerFront {
    fn backends(&self, max_age: Duration) -> BoxFuture<'_, Result<Backends, SourceError>> {
        Box::pin(async move {
            if let Some(backends) = self.recent(max_age) {
                return Ok(backends);
            }
            let mut held = self.conn.lock().await;
            // Another request may have read it while this one waited.
            if let Some(backends) = self.recent(max_age) {
                return Ok(backends);
            }
            let client = match held.take() {
                Some(client) if !client.is_closed() => client,
                _ => connect(&self.settings, self.timeout).await?,
            };
            let client = held.insert(client);
            let read = backends(client).await;
            match &read {
                Ok(found) => {
                    let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
                    *last = Some((Instant::now(), found.clone()));
                }
                Err(_) => *held = None,
            }
            read.map_err(|err| match err {
                ReadError::Driver(err) => classify(
                    &err,
                    &self.settings,
                    "reading SHOW SERVERS and SHOW CLIENTS",
                ),
                ReadError::Answer(err) => err,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::console::fixtures::ScriptedConsole;
    use super::*;
    use crate::sql::fixtures::block_on;

    const SERVERS: &str = "type|user|database|state|addr|port|local_addr|local_port|connect_time|request_time|wait|wait_us|close_needed|ptr|link|remote_pid|tls|application_name";

    /// Each linked server connection's backend gets its client's address and
    /// application; an idle server connection (no link) and a client without one
    /// are not matched.
    #[test]
    fn each_backend_gets_the_client_its_server_connection_serves() {
        let t = "2026-12-07 10:00:00 UTC";
        let mut console = ScriptedConsole::default()
            .answer(
                "SHOW SERVERS",
                SERVERS,
                &[
                    &format!("S|app|shop|active|127.0.0.1|5432|127.0.0.1|45002|{t}|{t}|0|0|0|0x90|0x10|30839||app"),
                    &format!("S|app|shop|idle|127.0.0.1|5432|127.0.0.1|45016|{t}|{t}|0|0|0|0x91||30840||"),
                ],
            )
            .answer(
                "SHOW CLIENTS",
                SERVERS,
                &[
                    &format!("C|app|shop|active|10.0.0.7|5000|127.0.0.1|6432|{t}|{t}|0|0|0|0x10|0x90|0||web - 10.0.0.7:5000"),
                    &format!("C|app|shop|idle|10.0.0.8|5001|127.0.0.1|6432|{t}|{t}|0|0|0|0x11||0||batch"),
                ],
            );
        let found = block_on(backends(&mut console)).unwrap();
        assert_eq!(console.sent, ["SHOW SERVERS", "SHOW CLIENTS"]);
        assert_eq!(
            found,
            Backends::from([(
                (30839, 45002),
                RealClient {
                    addr: "10.0.0.7".into(),
                    application: "web".into()
                }
            )])
        );
        // The last answer is shared for at most the age asked for; a cycle (age 0)
        // always reads anew.
        let front = BouncerFront {
            settings: Pgbouncer {
                database: crate::config::testing::database("monitor", 6432),
            },
            timeout: Duration::from_secs(1),
            conn: tokio::sync::Mutex::new(None),
            last: std::sync::Mutex::new(Some((Instant::now(), found.clone()))),
        };
        assert_eq!(front.recent(Duration::from_secs(60)), Some(found));
        assert_eq!(front.recent(Duration::ZERO), None);
        // No server connection linked: the clients are not read.
        let mut quiet = ScriptedConsole::default().answer("SHOW SERVERS", SERVERS, &[]);
        assert!(block_on(backends(&mut quiet)).unwrap().is_empty());
        assert_eq!(quiet.sent, ["SHOW SERVERS"]);
    }
}
