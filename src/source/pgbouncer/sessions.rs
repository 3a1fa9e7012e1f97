//! The session API of a PgBouncer target: its clients, read with `SHOW CLIENTS` on
//! console connections of its own (never the collection's), filtered, sorted and
//! paged here, since the console takes no conditions. Their number is PgBouncer's
//! `max_client_conn` at most, a setting of the server, not of the request.
//!
//! obshell's fields from PgBouncer's columns: `id` the client's `ptr` hashed with
//! a key of this process (see `show::Client::id`), `user`,
//! `db` its database, `host` `addr:port`, `command` its state (`active`, `waiting`,
//! `idle`, …), `state` `ACTIVE` while it holds a server connection (`SLEEP`
//! otherwise), `time` how long it has waited for one, else since its last request,
//! `application` its `application_name`, `started` its `connect_time`. PgBouncer
//! does not know the statement a client runs: `info` is empty.
//!
//! PgBouncer 1.18 has no command that ends one client (`KILL` ends every connection
//! of a database): a kill answers 501, and the page offers none.

use super::console::Console;
use super::show::{Client, ClientRows, Limits, ADMIN_DB};
use super::{classify, connect, cycle, now_micros, ReadError, APPLICATION_NAME};
use crate::api::params::Observer;
use crate::api::serve::{PageRows, PageSink, Refusal, SessionBackend};
use crate::api::{
    Capabilities, DeadLock, Failure, Field, Kill, ListParams, PageParams, PileupRows, TenantSession,
};
use crate::config::pgbouncer::Pgbouncer;
use crate::sql::RowContext;
use crate::stats::TenantStats;
use std::cmp::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::Client as Connection;

/// What a kill is told.
const NO_KILL: &str = "PgBouncer 1.18 has no command that ends one client (KILL ends every \
     connection of a database): end the session on PostgreSQL, or the client itself";

/// One PgBouncer target's session API.
pub struct PgbouncerSessions {
    target: Arc<Shared>,
}

struct Shared {
    name: String,
    settings: Pgbouncer,
    timeout: Duration,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl PgbouncerSessions {
    /// Keeps at most `max_concurrent` idle console connections.
    pub fn new(name: &str, settings: &Pgbouncer, max_concurrent: usize, timeout: Duration) -> Self {
        Self {
            target: Arc::new(Shared {
                name: name.to_string(),
                settings: settings.clone(),
                timeout,
                idle: Mutex::new(Vec::new()),
                max_idle: max_concurrent,
            }),
        }
    }
}

impl Shared {
    fn failure(&self, err: &tokio_postgres::Error) -> Failure {
        let error = classify(err, &self.settings, "reading clients for the session API");
        Failure::unavailable(format!("target `{}`: {error}", self.name))
    }

    fn check_tenant(&self, tenant: &str) -> Result<(), Failure> {
        match tenant == self.name {
            true => Ok(()),
            false => Err(Failure::not_found(
                "OB.Tenant.NotExist",
                format!("target `{}` has no tenant `{tenant}`", self.name),
            )),
        }
    }

    /// Every client the collection counts, as the API answers it.
    async fn clients(&self, conn: &mut Connection) -> Result<Vec<TenantSession>, Failure> {
        let database = &self.settings.database;
        let now = now_micros();
        let mut decoder = ClientRows::default();
        let mut sessions = Vec::new();
        conn.show("SHOW CLIENTS", |names, row| {
            let client = decoder.decode(names, row);
            let own = client.db == ADMIN_DB
                && client.application == APPLICATION_NAME
                && client.user == database.user;
            let time = client.time(now);
            if !own && database.filter.admits(&client.user, &client.db, time) {
                sessions.push(self.session(client, time));
            }
        })
        .await
        .map_err(|e| self.failure(&e))?;
        Ok(sessions)
    }

    fn session(&self, client: Client, time: f64) -> TenantSession {
        let address = &self.settings.database.address;
        let host = match (client.addr.as_str(), client.port.as_str()) {
            ("unix" | "", _) => String::new(),
            (addr, port) if addr.contains(':') => format!("[{addr}]:{port}"),
            (addr, port) => format!("{addr}:{port}"),
        };
        let command = client.command().to_string();
        TenantSession {
            id: i64::try_from(client.id()).unwrap_or(i64::MAX),
            svr_ip: address.host.clone(),
            sql_port: i64::from(address.port),
            user: client.user,
            db: client.db,
            tenant: self.name.clone(),
            host,
            state: match client.link.is_some() {
                true => "ACTIVE",
                false => "SLEEP",
            }
            .to_string(),
            command,
            time,
            application: client.application,
            started: client
                .connect_time
                .map(|micros| {
                    let at = std::time::UNIX_EPOCH
                        + Duration::from_micros(u64::try_from(micros).unwrap_or(0));
                    crate::timefmt::rfc3339(at, 0)
                })
                .unwrap_or_default(),
            ..TenantSession::default()
        }
    }
}

/// Whether `session` is one `params` asks for (the same rules as the SQL kinds'
/// conditions: a substring of user, db, host; of command or state).
fn matches(session: &TenantSession, params: &ListParams, address: (&str, u16)) -> bool {
    let contains = |value: &str, wanted: &Option<String>| {
        wanted
            .as_deref()
            .is_none_or(|w| w.is_empty() || value.contains(w))
    };
    contains(&session.user, &params.user)
        && contains(&session.db, &params.db)
        && contains(&session.host, &params.host)
        && params.state.as_deref().is_none_or(|w| {
            w.is_empty() || session.command.contains(w) || session.state.contains(w)
        })
        && params.min_time.is_none_or(|min| session.time >= min)
        && params
            .id
            .is_none_or(|id| u64::try_from(session.id).is_ok_and(|own| own == id))
        && params
            .observers
            .as_deref()
            .is_none_or(|o| Observer::any_is(o, address.0, address.1))
        && (!params.active_only || session.state == "ACTIVE")
}

/// `a` against `b` on `field`: numbers as numbers, the rest as text.
fn compare(a: &TenantSession, b: &TenantSession, field: Field) -> Ordering {
    fn text(s: &TenantSession, field: Field) -> &str {
        match field {
            Field::User => &s.user,
            Field::Db => &s.db,
            Field::Host => &s.host,
            Field::Command => &s.command,
            Field::State => &s.state,
            Field::Application => &s.application,
            _ => "",
        }
    }
    match field {
        Field::Id => a.id.cmp(&b.id),
        Field::Time => a.time.total_cmp(&b.time),
        _ => text(a, field).cmp(text(b, field)),
    }
}

/// A page of clients, already read.
pub struct Page {
    sessions: Vec<TenantSession>,
}

impl PageRows for Page {
    type Conn = Connection;

    async fn send(self, _conn: Connection, sink: PageSink) {
        for session in self.sessions {
            if !sink.send(Ok(session)).await {
                return;
            }
        }
    }
}

impl SessionBackend for PgbouncerSessions {
    type Conn = Connection;
    type Page = Page;

    fn target(&self) -> &str {
        &self.target.name
    }

    /// No deadlocks (PgBouncer takes no locks), and no kill of one client.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            deadlock_history: false,
            kill: Kill::Unsupported(NO_KILL),
        }
    }

    async fn connect(&self) -> Result<Connection, Failure> {
        let reused = {
            let mut idle = self.target.idle.lock().unwrap_or_else(|e| e.into_inner());
            std::iter::from_fn(|| idle.pop()).find(|c| !c.is_closed())
        };
        match reused {
            Some(conn) => Ok(conn),
            None => connect(&self.target.settings, self.target.timeout)
                .await
                .map_err(|e| Failure::unavailable(format!("target `{}`: {e}", self.target.name))),
        }
    }

    fn release(&self, conn: Connection) {
        let mut idle = self.target.idle.lock().unwrap_or_else(|e| e.into_inner());
        if !conn.is_closed() && idle.len() < self.target.max_idle {
            idle.push(conn);
        }
    }

    async fn page(
        &self,
        conn: &mut Connection,
        tenant: &str,
        params: &ListParams,
    ) -> Result<(u64, Page), Failure> {
        self.target.check_tenant(tenant)?;
        let offset = params.offset()?;
        let address = &self.target.settings.database.address;
        let mut sessions = self.target.clients(conn).await?;
        sessions.retain(|s| matches(s, params, (&address.host, address.port)));
        sessions.sort_by(|a, b| {
            let by_field = params.sort.map_or(Ordering::Equal, |(field, direction)| {
                let order = compare(a, b, field);
                match direction {
                    crate::api::params::Direction::Asc => order,
                    crate::api::params::Direction::Desc => order.reverse(),
                }
            });
            by_field.then(a.id.cmp(&b.id))
        });
        let total = sessions.len() as u64;
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        let take = usize::try_from(params.size).unwrap_or(usize::MAX);
        let sessions = sessions.into_iter().skip(skip).take(take).collect();
        Ok((total, Page { sessions }))
    }

    async fn detail(
        &self,
        conn: &mut Connection,
        tenant: &str,
        id: u64,
    ) -> Result<Option<TenantSession>, Failure> {
        self.target.check_tenant(tenant)?;
        let sessions = self.target.clients(conn).await?;
        Ok(sessions
            .into_iter()
            .find(|s| u64::try_from(s.id).is_ok_and(|own| own == id)))
    }

    async fn stats(
        &self,
        conn: &mut Connection,
        tenant: &str,
    ) -> Result<Option<TenantStats>, Failure> {
        self.target.check_tenant(tenant)?;
        let database = &self.target.settings.database;
        let ctx = RowContext::counts_only(&self.target.name, &database.address.host);
        let collected = cycle(conn, &ctx, database, &Limits::default(), now_micros())
            .await
            .map_err(|err| match err {
                ReadError::Driver(err) => self.target.failure(&err),
                ReadError::Answer(err) => {
                    Failure::unavailable(format!("target `{}`: {err}", self.target.name))
                }
            })?;
        Ok(Some(collected.into_one_tenant()))
    }

    async fn present(
        &self,
        conn: &mut Connection,
        tenant: &str,
        ids: &[u64],
    ) -> Result<Vec<u64>, Failure> {
        self.target.check_tenant(tenant)?;
        let sessions = self.target.clients(conn).await?;
        Ok(sessions
            .iter()
            .filter_map(|s| u64::try_from(s.id).ok())
            .filter(|id| ids.contains(id))
            .collect())
    }

    /// PgBouncer takes no locks, and keeps no transactions of its own: nothing
    /// piles up here that the PostgreSQL behind it would not show.
    async fn pileup(&self, _conn: &mut Connection, tenant: &str) -> Result<PileupRows, Failure> {
        self.target.check_tenant(tenant)?;
        Ok(PileupRows::default())
    }

    async fn sessions(
        &self,
        conn: &mut Connection,
        tenant: &str,
        ids: &[u64],
    ) -> Result<Vec<TenantSession>, Failure> {
        self.target.check_tenant(tenant)?;
        let mut sessions = self.target.clients(conn).await?;
        sessions.retain(|s| u64::try_from(s.id).is_ok_and(|id| ids.contains(&id)));
        Ok(sessions)
    }

    async fn end(
        &self,
        _conn: &mut Connection,
        _id: u64,
        _started: Option<&str>,
        _query_only: bool,
    ) -> Result<(), Refusal> {
        Err(Refusal::Failed {
            what: "ending a client".to_string(),
            why: NO_KILL.to_string(),
        })
    }

    async fn deadlocks(
        &self,
        _conn: &mut Connection,
        tenant: &str,
        _params: &PageParams,
    ) -> Result<(u64, Vec<DeadLock>), Failure> {
        self.target.check_tenant(tenant)?;
        Err(Failure::not_supported(format!(
            "target `{}`: PgBouncer takes no locks and detects no deadlocks; the \
             PostgreSQL behind it does",
            self.target.name
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: i64, user: &str, command: &str, time: f64) -> TenantSession {
        TenantSession {
            id,
            user: user.into(),
            command: command.into(),
            state: if command == "active" {
                "ACTIVE"
            } else {
                "SLEEP"
            }
            .into(),
            time,
            ..TenantSession::default()
        }
    }

    #[test]
    fn the_lists_filters_are_the_sql_kinds_filters() {
        let waiting = session(2, "app", "waiting", 3.0);
        let params = |query: &str| ListParams::parse(Some(query)).unwrap();
        let at = ("127.0.0.1", 6432);
        assert!(matches(&waiting, &params("state=wait&user=ap"), at));
        assert!(!matches(&waiting, &params("active_only=true"), at));
        assert!(!matches(&waiting, &params("min_time=4"), at));
        assert!(matches(&waiting, &params("id=2&svr_ip=127.0.0.1"), at));
        assert!(!matches(&waiting, &params("svr_ip=127.0.0.2"), at));
        let longer = session(1, "app", "active", 9.0);
        assert_eq!(compare(&longer, &waiting, Field::Time), Ordering::Greater);
        assert_eq!(compare(&longer, &waiting, Field::Command), Ordering::Less);
    }
}
