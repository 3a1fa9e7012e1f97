//! PgBouncer: the pool between the clients and PostgreSQL, read through its admin
//! console (`SHOW` commands on the virtual `pgbouncer` database, [`console`]), on
//! one connection of its own per target.
//!
//! Each cycle sends `SHOW POOLS` and `SHOW CLIENTS`, and every `limits_interval`
//! `SHOW CONFIG` and `SHOW DATABASES` before them. Each client is a session: its
//! database, user, address and `application_name`; its command is its state
//! (`active`, `waiting`, `idle`, …) and it is active while it holds a server
//! connection (a `link`). Waiting clients count as sessions. The pools
//! ([`pools`]) are families of their own beside the session statistics. Limits:
//! `max_client_conn` is the sessions' limit.
//!
//! The exporter's own console connection is never counted: a client of the admin
//! database under the target's user named `application_name = session_exporter`.

mod console;
mod front;
mod pools;
mod sessions;
mod show;

pub use pools::FAMILIES;

use super::collect::{BoxFuture, Source};
use crate::config::pgbouncer::Pgbouncer;
use crate::config::{Database, Target};
use crate::error::{Reason, SourceError};
use crate::sql::{PeriodicReads, RowContext, Rules};
use crate::stats::{client_label_of, Collected, Keeping, OneSession, SessionGroup, NONE_LABEL};
use console::Console;
use pools::PoolStatistics;
use show::{ClientRows, Limits, PoolRows, ADMIN_DB};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// The `application_name` of every console connection the exporter makes.
const APPLICATION_NAME: &str = "session_exporter";

/// What to do when the account may not read the console.
const STATS_USERS: &str = "add the account to `stats_users` (or `admin_users`) in pgbouncer.ini \
     and reload PgBouncer";

pub struct PgbouncerSource {
    name: String,
    settings: Pgbouncer,
    timeout: Duration,
    client: Option<Client>,
    periodic: PeriodicReads,
    /// The limits of the last read (kept between reads, and when one fails).
    limits: Limits,
    history: Option<Keeping>,
    /// Its front for the PostgreSQL targets behind it, registered while this
    /// source lives.
    _front: std::sync::Arc<dyn super::front::Front>,
}

/// Builds the source of a `kind: pgbouncer` target (see [`crate::source::build`]),
/// and registers it as a front for the PostgreSQL targets behind it.
pub fn build(target: &Target, settings: &Pgbouncer) -> Box<dyn Source> {
    let in_front: std::sync::Arc<dyn super::front::Front> =
        std::sync::Arc::new(front::BouncerFront {
            settings: settings.clone(),
            timeout: target.collect_timeout,
            conn: tokio::sync::Mutex::new(None),
            last: std::sync::Mutex::new(None),
        });
    super::front::register(&target.name, &in_front);
    Box::new(PgbouncerSource {
        _front: in_front,
        name: target.name.clone(),
        settings: settings.clone(),
        timeout: target.collect_timeout,
        client: None,
        periodic: PeriodicReads::new(
            settings.database.collect,
            settings.database.limits_interval,
            target.collect_interval,
        ),
        limits: Limits::default(),
        history: target.history_sessions.map(Keeping::new),
    })
}

impl PgbouncerSource {
    async fn run(&mut self) -> Result<Collected, SourceError> {
        let client = match self.client.take() {
            Some(client) if !client.is_closed() => client,
            _ => connect(&self.settings, self.timeout).await?,
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
        let failed = |what: &str| {
            let settings = &self.settings;
            let what = what.to_string();
            move |err: ReadError<tokio_postgres::Error>| match err {
                ReadError::Driver(err) => classify(&err, settings, &what),
                ReadError::Answer(err) => err,
            }
        };
        if self.periodic.due() && self.periodic.parts().limits {
            match read_limits(client).await {
                Ok(limits) => {
                    let mut answer = self.periodic.rows(&self.name);
                    match limit_rows(&limits, &mut answer) {
                        Ok(()) => self.periodic.finish(answer),
                        Err(err) => {
                            tracing::warn!(target = %self.name, "reading the limits: {err}");
                            self.periodic.failed();
                        }
                    }
                    self.limits = limits;
                }
                Err(err) => {
                    let err = failed("reading the limits (SHOW CONFIG, SHOW DATABASES)")(err);
                    tracing::warn!(target = %self.name, "{err}");
                    self.periodic.failed();
                }
            }
        }
        let mut collected = cycle(client, &ctx, database, &self.limits, now_micros())
            .await
            .map_err(failed("reading SHOW POOLS and SHOW CLIENTS"))?;
        self.periodic.attach(&mut collected);
        Ok(collected)
    }
}

impl Source for PgbouncerSource {
    fn collect(&mut self) -> BoxFuture<'_, Result<Collected, SourceError>> {
        Box::pin(self.run())
    }

    fn reset(&mut self) {
        self.client = None;
    }
}

/// The session API of a PgBouncer target (see [`crate::source::api_backend`]): its
/// clients, read on console connections of its own.
pub fn api_backend(
    target: &Target,
    settings: &Pgbouncer,
    (max_concurrent, timeout): (usize, Duration),
) -> crate::api::http::Backend {
    let clients = sessions::PgbouncerSessions::new(&target.name, settings, max_concurrent, timeout);
    let served = crate::api::serve::BackendApi::new(clients, max_concurrent, timeout);
    crate::api::http::Backend::Sessions(std::sync::Arc::new(served))
}

/// Why a read gave nothing: the driver failed, or the answer is not what was asked.
#[derive(Debug)]
enum ReadError<E> {
    Driver(E),
    Answer(SourceError),
}

/// Sends `command`, decoding each row with `each`; the first row refused is the
/// answer's error (the rest are read and dropped, so the connection stays usable).
async fn show<C, F>(conn: &mut C, command: &str, mut each: F) -> Result<(), ReadError<C::Error>>
where
    C: Console,
    F: FnMut(&[String], &[Option<&str>]) -> Result<(), SourceError> + Send,
{
    let mut refused = None;
    conn.show(command, |names, row| {
        if refused.is_none() {
            refused = each(names, row).err();
        }
    })
    .await
    .map_err(ReadError::Driver)?;
    refused.map_or(Ok(()), |err| Err(ReadError::Answer(err)))
}

/// The settings and each database's limits.
async fn read_limits<C: Console>(conn: &mut C) -> Result<Limits, ReadError<C::Error>> {
    let mut limits = Limits::default();
    show(conn, "SHOW CONFIG", |names, row| {
        limits.add_setting(names, row)
    })
    .await?;
    show(conn, "SHOW DATABASES", |names, row| {
        limits.add_database(names, row)
    })
    .await?;
    Ok(limits)
}

/// The limits as the periodic reads' rows (`sql::periodic`): `max_client_conn`, the
/// clients PgBouncer accepts. A database's `max_db_connections` limits its server
/// connections, not its clients: beside the clients counted per database it would
/// read as a limit they are near (`DbSessionNearLimit`) when pooling does its job,
/// so it is not a session limit here.
fn limit_rows(
    limits: &Limits,
    answer: &mut crate::sql::PeriodicRows<'_>,
) -> Result<(), SourceError> {
    let sessions = limits.max_client_conn.map(|n| n.to_string());
    answer.add(vec![
        Some(""),
        Some("sessions"),
        Some(""),
        sessions.as_deref(),
    ])
}

/// One cycle: the pools, then the clients of `database`'s filter, added up; `now`
/// (µs since 1970) dates the clients' times.
async fn cycle<C: Console>(
    conn: &mut C,
    ctx: &RowContext<'_>,
    database: &Database,
    limits: &Limits,
    now: i64,
) -> Result<Collected, ReadError<C::Error>> {
    let mut pools = Vec::new();
    let mut decoder = PoolRows::default();
    show(conn, "SHOW POOLS", |names, row| {
        pools.push(decoder.decode(names, row)?);
        Ok(())
    })
    .await?;
    let modes: std::collections::HashMap<(&str, &str), &str> = pools
        .iter()
        .map(|p| ((p.db.as_str(), p.user.as_str()), p.mode.as_str()))
        .collect();
    let mut aggregator = ctx.aggregator(&[ctx.tenant]);
    let mut decoder = ClientRows::default();
    show(conn, "SHOW CLIENTS", |names, row| {
        let client = decoder.decode(names, row);
        let own = client.db == ADMIN_DB
            && client.application == APPLICATION_NAME
            && client.user == database.user;
        let time = client.time(now);
        if own || !database.filter.admits(&client.user, &client.db, time) {
            return Ok(());
        }
        let active = u64::from(client.is_active());
        fn label(text: &str) -> &str {
            match text {
                "" => NONE_LABEL,
                text => text,
            }
        }
        let address = match client.addr.as_str() {
            "unix" => NONE_LABEL.into(),
            addr => client_label_of(addr),
        };
        let (command, state) = match ctx.parts.states {
            true => (label(client.command()), NONE_LABEL),
            false => ("", ""),
        };
        // In session pooling a client keeps its server connection between queries:
        // linked, it is active, but its time since its last request is no
        // statement's running time (the longest active sessions, LongRunning).
        let session_pool = modes
            .get(&(client.db.as_str(), client.user.as_str()))
            .is_some_and(|mode| *mode == "session");
        let running = client.is_active() && !session_pool;
        let kept = running || client.state == "waiting";
        aggregator.add_group(SessionGroup {
            tenant: ctx.tenant,
            server: ctx.server,
            db: label(&client.db),
            user: label(&client.user),
            client: &address,
            command,
            state,
            active,
            sessions: 1,
            max_active_time: if running { time } else { 0.0 },
            application: match ctx.parts.applications {
                true => label(&client.application),
                false => "",
            },
            session: kept.then(|| OneSession {
                id: client.id(),
                ..OneSession::default()
            }),
            ..SessionGroup::default()
        });
        Ok(())
    })
    .await?;
    let mut collected = aggregator.finish();
    // The target's filter applies to the pools too: a pool of a user or database
    // left out has no series.
    let filter = &database.filter;
    pools.retain(|p| filter.users.admits(&p.user) && filter.databases.admits(&p.db));
    collected.beside = Some(Box::new(PoolStatistics::new(pools, limits)));
    Ok(collected)
}

/// Now, in µs since 1970.
fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros().min(i64::MAX as u128) as i64)
}

/// Connects to the admin console as `settings` say. PgBouncer refuses startup
/// parameters it does not know (`options` among them), so none is sent but the
/// application's name; the console answers at once or not at all, and every read
/// is bounded by the cycle's timeout.
pub async fn connect(settings: &Pgbouncer, timeout: Duration) -> Result<Client, SourceError> {
    let database = &settings.database;
    let mut config = tokio_postgres::Config::new();
    config
        .host(&database.address.host)
        .port(database.address.port)
        .user(&database.user)
        .password(database.password.expose())
        .dbname(ADMIN_DB)
        .application_name(APPLICATION_NAME)
        .connect_timeout(timeout)
        .ssl_mode(tokio_postgres::config::SslMode::Disable);
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| classify(&e, settings, "connecting to the admin console"))?;
    // The connection task ends when the client is dropped (or PgBouncer goes).
    tokio::spawn(connection);
    Ok(client)
}

/// Turns a driver error into a reason and a message that says what to check.
pub fn classify(err: &tokio_postgres::Error, settings: &Pgbouncer, what: &str) -> SourceError {
    let database = &settings.database;
    let addr = &database.address;
    let Some(db) = err.as_db_error() else {
        let detail =
            std::error::Error::source(err).map_or(err.to_string(), |s| format!("{err}: {s}"));
        return SourceError::new(
            Reason::Connect,
            format!("cannot reach PgBouncer at {addr} while {what}: {detail}: check the address and that PgBouncer is running"),
        );
    };
    let code = db.code();
    let message = db.message();
    let (reason, hint) = if *code == SqlState::INVALID_PASSWORD
        || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    {
        (
            Reason::Auth,
            format!(
                "PgBouncer refused user `{}`: check the user and password (its auth_file) and the hba of PgBouncer",
                database.user
            ),
        )
    } else if *code == SqlState::INSUFFICIENT_PRIVILEGE
        || message.contains("not allowed")
        || message.contains("admin console")
    {
        (
            Reason::Auth,
            format!(
                "user `{}` may not read the admin console: {STATS_USERS}",
                database.user
            ),
        )
    } else if *code == SqlState::TOO_MANY_CONNECTIONS || message.contains("no more connections") {
        (
            Reason::Connect,
            "no free client connection: raise max_client_conn".to_string(),
        )
    } else {
        (Reason::Query, "unexpected error".to_string())
    };
    SourceError::new(
        reason,
        format!("error {} while {what}: {message}: {hint}", code.code()),
    )
}

#[cfg(test)]
mod tests {
    use super::console::fixtures::ScriptedConsole;
    use super::*;
    use crate::config::testing;
    use crate::sql::fixtures::{block_on, counts as c, pairs};
    use crate::stats::own::Value;
    use crate::stats::CollectParts;

    const CLIENTS: &str = "type|user|database|state|addr|port|local_addr|local_port|connect_time|request_time|wait|wait_us|close_needed|ptr|link|remote_pid|tls|application_name";
    const POOLS: &str = "database|user|cl_active|cl_waiting|cl_active_cancel_req|cl_waiting_cancel_req|sv_active|sv_active_cancel|sv_being_canceled|sv_idle|sv_used|sv_tested|sv_login|maxwait|maxwait_us|pool_mode";

    fn context() -> RowContext<'static> {
        RowContext {
            tenant: "bouncer",
            server: "10.0.0.1",
            null_string_is_no_db: false,
            keep: 5,
            parts: CollectParts::default(),
            rules: Rules::NONE,
            listed_only: false,
            history: None,
        }
    }

    /// Two pools' worth of clients: two active and two waiting in a transaction pool,
    /// one idle on a Unix socket and one linked in a session pool (active, but not
    /// among the longest running); the exporter's own console client is not
    /// counted.
    #[test]
    fn clients_and_pools_give_exact_statistics() {
        let at = "2026-12-07 10:00:00 UTC";
        let client = |user: &str,
                      db: &str,
                      state: &str,
                      addr: &str,
                      wait_us: &str,
                      ptr: &str,
                      link: &str,
                      app: &str| {
            format!("C|{user}|{db}|{state}|{addr}|5000|127.0.0.1|6432|{at}|{at}|0|{wait_us}|0|{ptr}|{link}|0||{app}")
        };
        let rows = [
            client(
                "app",
                "shop",
                "active",
                "10.0.0.7",
                "0",
                "0x10",
                "0x90",
                "web - 10.0.0.7:5000",
            ),
            client(
                "app", "shop", "active", "10.0.0.8", "0", "0x11", "0x91", "web",
            ),
            client(
                "app", "shop", "waiting", "10.0.0.9", "1500000", "0x12", "", "web",
            ),
            client(
                "app", "shop", "waiting", "10.0.0.9", "500000", "0x13", "", "web",
            ),
            client("report", "blog", "active", "unix", "0", "0x14", "", ""),
            // Linked in a session pool: active, but no statement's running time.
            client(
                "report", "blog", "active", "10.0.0.3", "0", "0x16", "0x92", "",
            ),
            client(
                "monitor",
                "pgbouncer",
                "active",
                "10.0.0.2",
                "0",
                "0x15",
                "",
                "session_exporter",
            ),
        ];
        let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
        let mut console = ScriptedConsole::default()
            .answer(
                "SHOW POOLS",
                POOLS,
                &[
                    "pgbouncer|pgbouncer|1|0|0|0|0|0|0|0|0|0|0|0|0|statement",
                    "shop|app|2|2|0|0|2|0|0|0|0|0|0|1|500000|transaction",
                    "blog|report|0|0|0|0|0|0|0|1|0|0|0|0|0|session",
                ],
            )
            .answer("SHOW CLIENTS", CLIENTS, &rows);
        let database = testing::database("monitor", 6432);
        let mut limits = Limits::default();
        limits.dbs.insert("shop".into(), Some(2));
        let now = show::utc_micros(at).unwrap() + 3_000_000;
        let collected = block_on(cycle(&mut console, &context(), &database, &limits, now)).unwrap();
        assert_eq!(
            console.sent,
            ["SHOW POOLS", "SHOW CLIENTS"],
            "two commands a cycle"
        );
        let pools = collected.beside.as_ref().unwrap().series();
        let waiting: Vec<_> = pools
            .iter()
            .filter(|s| s.family.name == "dbsession_pool_waiting_clients")
            .map(|s| (s.labels[0].1.as_str(), s.value))
            .collect();
        assert_eq!(
            waiting,
            [("blog", Value::Count(0)), ("shop", Value::Count(2))]
        );
        let size: Vec<_> = pools
            .iter()
            .filter(|s| s.family.name == "dbsession_pool_size")
            .map(|s| (s.labels[0].1.as_str(), s.value))
            .collect();
        assert_eq!(size, [("shop", Value::Count(2))], "no size known for blog");
        let tenants = collected.into_tenants();
        let t = &tenants["bouncer"];
        assert_eq!(
            (t.sessions, t.active_sessions, t.max_active_time),
            (6, 3, 3.0)
        );
        assert_eq!(pairs(&t.by_db), [("blog", c(2, 1)), ("shop", c(4, 2))]);
        assert_eq!(
            pairs(&t.by_client),
            [
                ("10.0.0.3", c(1, 1)),
                ("10.0.0.7", c(1, 1)),
                ("10.0.0.8", c(1, 1)),
                ("10.0.0.9", c(2, 0)),
                (NONE_LABEL, c(1, 0))
            ]
        );
        assert_eq!(
            pairs(&t.by_application),
            [(NONE_LABEL, c(2, 1)), ("web", c(4, 2))]
        );
        let states: Vec<_> = t
            .by_state
            .iter()
            .map(|((command, _), n)| (command.as_str(), *n))
            .collect();
        assert_eq!(states, [("active", 3), ("idle", 1), ("waiting", 2)]);
        let top: Vec<u64> = t.top.iter().map(|s| s.session_id).collect();
        let id = |ptr| {
            show::Client {
                ptr,
                ..show::Client::default()
            }
            .id()
        };
        let mut expected = [id(0x10), id(0x11)];
        expected.sort();
        let mut top = top;
        top.sort();
        assert_eq!(top, expected, "the two running in the transaction pool");
    }

    /// The limits, every limits_interval: max_client_conn is the sessions' limit,
    /// and each database's pool_size (else default_pool_size) its pools' size.
    #[test]
    fn limits_are_read_from_config_and_databases() {
        let mut console = ScriptedConsole::default()
            .answer(
                "SHOW CONFIG",
                "key|value|default|changeable",
                &["max_client_conn|200|100|yes", "max_db_connections|0|0|yes", "default_pool_size|20|20|yes"],
            )
            .answer(
                "SHOW DATABASES",
                "name|host|port|database|force_user|pool_size|min_pool_size|reserve_pool|pool_mode|max_connections|current_connections|paused|disabled",
                &["shop|127.0.0.1|5432|shop||2|0|0||10|0|0|0"],
            );
        let limits = block_on(read_limits(&mut console)).unwrap();
        assert_eq!(console.sent, ["SHOW CONFIG", "SHOW DATABASES"]);
        assert_eq!(
            (
                limits.max_client_conn,
                limits.pool_size("shop"),
                limits.pool_size("x")
            ),
            (Some(200), Some(2), Some(20))
        );
        let failing = ScriptedConsole::default().fail("SHOW CONFIG");
        let mut failing = failing;
        assert!(matches!(
            block_on(read_limits(&mut failing)),
            Err(ReadError::Driver(_))
        ));
    }

    /// A count that is not one fails the cycle with the column named.
    #[test]
    fn a_bad_pool_row_fails_the_cycle_naming_the_column() {
        let mut console = ScriptedConsole::default().answer(
            "SHOW POOLS",
            POOLS,
            &["shop|app|two|0|0|0|0|0|0|0|0|0|0|0|0|session"],
        );
        let database = testing::database("monitor", 6432);
        let err = block_on(cycle(
            &mut console,
            &context(),
            &database,
            &Limits::default(),
            0,
        ))
        .unwrap_err();
        let ReadError::Answer(err) = err else {
            panic!("{err:?}")
        };
        assert!(err.to_string().contains("`cl_active` is `two`"), "{err}");
    }
}
