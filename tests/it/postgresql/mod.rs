//! PostgreSQL, for real: exact counts per database, user and client from sessions the
//! test opens as known users from known loopback addresses, some busy in
//! `pg_sleep`; a session idle in a transaction holding a row lock and one blocked on
//! it (waiting, its wait time, the holder named as the top blocker); a role without
//! `pg_monitor` warned about. The target counts only the test's own users, so the
//! other tests' sessions on the shared server do not change the values.

use crate::common::{Exporter, Metrics, Servers};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

const PASSWORD: &str = "It-pg-pw-1";

mod api;
mod graph;
mod horizon;
pub mod pgbouncer;

/// Sessions opened from chosen loopback addresses: libpq cannot pick a source
/// address, so the socket is bound here and handed to tokio-postgres.
struct Clients {
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
}

impl Clients {
    fn new(addr: &str) -> Self {
        Self {
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap(),
            addr: addr.parse().expect("host:port"),
        }
    }

    /// A session as `user` on `db` from `from`.
    fn open(&self, user: &str, db: &str, from: &str) -> Client {
        self.open_as(user, db, from, None)
    }

    /// A session as [`Clients::open`] makes it, naming its `application_name`.
    fn open_as(&self, user: &str, db: &str, from: &str, application: Option<&str>) -> Client {
        self.open_with(user, PASSWORD, db, from, application)
    }

    /// A session as [`Clients::open_as`] makes it, with `password`.
    fn open_with(
        &self,
        user: &str,
        password: &str,
        db: &str,
        from: &str,
        application: Option<&str>,
    ) -> Client {
        let mut config = tokio_postgres::Config::new();
        config.user(user).password(password).dbname(db);
        if let Some(application) = application {
            config.application_name(application);
        }
        let (addr, from) = (self.addr, from.parse().expect("source IP"));
        self.runtime.block_on(async move {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::new(from, 0)).unwrap();
            let stream = socket.connect(addr).await.unwrap();
            let (client, connection) = config.connect_raw(stream, NoTls).await.unwrap();
            tokio::spawn(connection);
            client
        })
    }

    fn run(&self, client: &Client, sql: &str) {
        self.runtime
            .block_on(client.batch_execute(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    /// Starts `sql` without waiting for it (it blocks, or sleeps).
    fn start(&self, client: &Client, sql: &str) {
        let client_sql = sql.to_string();
        // The query is sent at once; its answer is never awaited (the session is
        // ended with pg_terminate_backend at the end of the test).
        let future = client.simple_query(&client_sql);
        let _ = self
            .runtime
            .block_on(async { tokio::time::timeout(Duration::from_millis(300), future).await });
    }
}

/// Ends every session of `users`: when made (those of an earlier, failed run would
/// change the counts; a pg_sleep outlives its client), on `end`, and when dropped,
/// so a failing test leaves none behind.
struct EndSessions<'a> {
    servers: &'a Servers,
    users: &'a [&'a str],
}

impl<'a> EndSessions<'a> {
    fn of(servers: &'a Servers, users: &'a [&'a str]) -> Self {
        let guard = Self { servers, users };
        guard.end();
        guard
    }

    fn end(&self) {
        let users: Vec<String> = self.users.iter().map(|u| format!("'{u}'")).collect();
        self.servers.postgres_admin(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE usename IN ({})",
            users.join(", ")
        ));
    }
}

impl Drop for EndSessions<'_> {
    fn drop(&mut self) {
        self.end();
    }
}

fn pid(m: &Metrics, series: &str) -> String {
    series
        .split("session_id=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no session_id in {series}: {}", m.text.len()))
        .to_string()
}

#[test]
fn every_gauge_is_exact_and_the_blocker_is_named() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let admin = |sql: &str| servers.postgres_admin(sql);
    for user in ["it_pg_app", "it_pg_rpt"] {
        servers.postgres_role(user, PASSWORD, "");
    }
    for db in ["it_pg_db1", "it_pg_db2"] {
        servers.postgres_database(db);
        // The owner may create tables in its public schema (PostgreSQL 15+).
        admin(&format!("ALTER DATABASE {db} OWNER TO it_pg_app"));
        admin(&format!("GRANT ALL ON DATABASE {db} TO it_pg_rpt"));
    }
    // Sessions of an earlier, failed run (a pg_sleep outlives its client) would
    // change the counts: end them first, and this run's at the end, even on failure.
    let sessions = EndSessions::of(&servers, &["it_pg_app", "it_pg_rpt"]);
    let clients = Clients::new(&servers.postgres_addr);
    let setup = clients.open("it_pg_app", "it_pg_db1", "127.0.0.90");
    clients.run(
        &setup,
        "DROP TABLE IF EXISTS r; CREATE TABLE r (id int PRIMARY KEY, v int); \
         INSERT INTO r VALUES (1, 1), (2, 2)",
    );
    drop(setup);

    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 1s\n  collect_timeout: 900ms\ntargets:\n  - name: pg\n    kind: postgresql\n    address: {}\n    user: monitor\n    password_file: {}\n    sslmode: disable\n    filter: {{users: {{allow: [it_pg_app, it_pg_rpt]}}}}\nhistory:\n  path: history.db\n",
        servers.postgres_addr,
        servers.monitor_password_file.display()
    ));
    let tenant = [("target", "pg"), ("tenant", "pg")];

    let _idle = [
        clients.open_as("it_pg_app", "it_pg_db1", "127.0.0.91", Some("it-web")),
        clients.open_as("it_pg_app", "it_pg_db1", "127.0.0.91", Some("it-web")),
    ];
    let busy = clients.open_as("it_pg_rpt", "it_pg_db2", "127.0.0.92", Some("it-report"));
    clients.start(&busy, "SELECT pg_sleep(60)");
    let holder = clients.open("it_pg_app", "it_pg_db1", "127.0.0.93");
    clients.run(&holder, "BEGIN; UPDATE r SET v = v + 1 WHERE id = 1");
    let waiter = clients.open("it_pg_app", "it_pg_db1", "127.0.0.94");
    clients.start(&waiter, "UPDATE r SET v = v + 1 WHERE id = 1");

    let m = exporter.wait_for_metrics(
        "five sessions, one waiting for a second",
        Duration::from_secs(30),
        |m| {
            m.get("dbsession_sessions", &tenant) == Some(5.0)
                && m.get("dbsession_max_lock_wait_seconds", &tenant)
                    .is_some_and(|w| w >= 1.0)
        },
    );
    let get = |name: &str, extra: &[(&str, &str)]| {
        let labels: Vec<(&str, &str)> = tenant.iter().chain(extra).copied().collect();
        m.get(name, &labels)
    };
    assert_eq!(get("dbsession_active_sessions", &[]), Some(2.0));
    assert_eq!(
        get("dbsession_db_sessions", &[("db", "it_pg_db1")]),
        Some(4.0)
    );
    assert_eq!(
        get("dbsession_db_sessions", &[("db", "it_pg_db2")]),
        Some(1.0)
    );
    assert_eq!(
        get("dbsession_user_sessions", &[("user", "it_pg_app")]),
        Some(4.0)
    );
    assert_eq!(
        get("dbsession_user_active_sessions", &[("user", "it_pg_rpt")]),
        Some(1.0)
    );
    for (ip, n) in [
        ("127.0.0.91", 2.0),
        ("127.0.0.92", 1.0),
        ("127.0.0.93", 1.0),
        ("127.0.0.94", 1.0),
    ] {
        assert_eq!(
            get("dbsession_client_sessions", &[("client_ip", ip)]),
            Some(n),
            "{ip}"
        );
    }
    // Every running statement is in a transaction on PostgreSQL: the sleeping and the
    // waiting session's implicit ones, and the holder's open one.
    assert_eq!(get("dbsession_transaction_sessions", &[]), Some(3.0));
    assert_eq!(
        get("dbsession_idle_in_transaction_sessions", &[]),
        Some(1.0)
    );
    assert_eq!(
        get(
            "dbsession_client_idle_in_transaction_sessions",
            &[("client_ip", "127.0.0.93")]
        ),
        Some(1.0)
    );
    assert_eq!(get("dbsession_lock_waiting_sessions", &[]), Some(1.0));
    for (command, state, n) in [
        ("idle", "Client", 2.0),
        ("active", "Timeout", 1.0),
        ("idle in transaction", "Client", 1.0),
        ("active", "Lock", 1.0),
    ] {
        assert_eq!(
            get(
                "dbsession_state_sessions",
                &[("command", command), ("state", state)]
            ),
            Some(n),
            "{command}/{state}"
        );
    }
    // What the two active sessions wait on, which program opened each session, and
    // the statements they run (ids as pg_stat_activity shows them).
    for (class, event) in [("Timeout", "PgSleep"), ("Lock", "transactionid")] {
        assert_eq!(
            get(
                "dbsession_wait_event_sessions",
                &[("wait_class", class), ("wait_event", event)]
            ),
            Some(1.0),
            "{class}/{event}"
        );
    }
    assert_eq!(
        m.matching("dbsession_wait_event_sessions", &[("target", "pg")])
            .len(),
        2,
        "no session waits for nothing"
    );
    for (application, sessions, active) in [
        ("it-web", 2.0, 0.0),
        ("it-report", 1.0, 1.0),
        ("__none__", 2.0, 1.0),
    ] {
        let labels = [("application", application)];
        assert_eq!(
            get("dbsession_application_sessions", &labels),
            Some(sessions),
            "{application}"
        );
        assert_eq!(
            get("dbsession_application_active_sessions", &labels),
            Some(active),
            "{application}"
        );
    }
    let running = admin(
        "SELECT string_agg(query_id::text, ',' ORDER BY query_id) FROM pg_stat_activity \
         WHERE usename IN ('it_pg_app', 'it_pg_rpt') AND state = 'active'",
    );
    let ids: Vec<&str> = running.trim().split(',').collect();
    assert_eq!(ids.len(), 2, "compute_query_id gives ids: {running}");
    for id in ids {
        assert_eq!(
            get("dbsession_sql_active_sessions", &[("sql_id", id)]),
            Some(1.0),
            "{id}"
        );
    }
    let blockers = m.matching("dbsession_top_blocker_sessions", &[("target", "pg")]);
    assert_eq!(blockers.len(), 1, "{blockers:?}");
    assert!(
        blockers[0]
            .0
            .contains(r#"user="it_pg_app",db="it_pg_db1",client_ip="127.0.0.93""#),
        "{blockers:?}"
    );
    assert_eq!(blockers[0].1, 1.0);
    let top = m.matching("dbsession_top_active_session_seconds", &[("target", "pg")]);
    assert_eq!(top.len(), 2, "{top:?}");
    assert!(top.iter().any(|(s, _)| s.contains(r#"user="it_pg_rpt""#)));
    assert_ne!(pid(&m, &blockers[0].0), pid(&m, &top[0].0));
    // The session history recorded the same moment: the blocker first, its waiter on
    // a lock, the active report waiting on its sleep, with its statement id.
    let blocker: u64 = pid(&m, &blockers[0].0).parse().unwrap();
    let store = exporter.dir.path().join("history.db");
    let mut moment = None;
    exporter.wait_until(
        "the history records the pile-up",
        Duration::from_secs(20),
        || {
            moment = session_exporter::history::store::Store::open_read(&store)
                .ok()
                .and_then(|s| s.moment("pg", "pg", i64::MAX).ok().flatten());
            moment.as_ref().is_some_and(|m| {
                m.kept
                    .first()
                    .is_some_and(|k| k.id == blocker && k.waiters == 1)
            })
        },
    );
    let moment = moment.unwrap();
    let waiter = moment
        .kept
        .iter()
        .find(|k| k.lock_wait.is_some())
        .expect("a waiter");
    assert_eq!(
        (waiter.wait_class.as_str(), waiter.wait_event.as_str()),
        ("Lock", "transactionid")
    );
    assert_eq!(
        waiter.blocked_by,
        Some(blocker),
        "pg_blocking_pids names its blocker"
    );
    let report = moment
        .kept
        .iter()
        .find(|k| k.user == "it_pg_rpt")
        .expect("the report");
    assert_eq!(
        (report.active, report.wait_event.as_str()),
        (true, "PgSleep")
    );
    assert!(!report.sql_id.is_empty(), "{report:?}");
    assert!(report.sql_text.contains("pg_sleep"), "{report:?}");
    assert_eq!(moment.kept[0].client, "127.0.0.93");
    // The whole exposition, PostgreSQL's series among them, is valid for promtool.
    let (_, _, body) = exporter.try_get("/metrics").expect("/metrics");
    crate::common::promtool_check_metrics(&body);

    // Every test session ends; the counts go back to zero.
    sessions.end();
    exporter.wait_for_metrics("the sessions are gone", Duration::from_secs(20), |m| {
        m.get("dbsession_sessions", &tenant) == Some(0.0)
    });
    drop((busy, holder, waiter));
    // After a kill -9, the pile-up's moment reads back as it was recorded.
    let mut exporter = exporter;
    exporter.child().kill().expect("SIGKILL");
    exporter.child().wait().unwrap();
    let again = session_exporter::history::store::Store::open_read(&store)
        .unwrap()
        .moment("pg", "pg", moment.at_ms)
        .unwrap()
        .expect("the moment");
    assert_eq!(again.at_ms, moment.at_ms);
    assert_eq!(again.kept, moment.kept, "the moment reads back whole");
}

/// Also the default sslmode, `prefer`, against a server without TLS: plain text.
#[test]
fn a_role_without_pg_monitor_is_warned_about() {
    let Some(servers) = Servers::get() else {
        return;
    };
    servers.postgres_role("it_pg_nomon", PASSWORD, "");
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\ntargets:\n  - name: nomon\n    kind: postgresql\n    address: {}\n    user: it_pg_nomon\n    password: {PASSWORD}\n",
        servers.postgres_addr,
    ));
    exporter.wait_until("the warning is logged", Duration::from_secs(30), || {
        exporter
            .log()
            .lines()
            .any(|l| l.contains("target=nomon") && l.contains("not a member of pg_monitor"))
    });
    exporter.wait_for_metrics("the target is up", Duration::from_secs(30), |m| {
        m.get("dbsession_up", &[("target", "nomon"), ("tenant", "nomon")]) == Some(1.0)
    });
}

/// A private PostgreSQL a test may stop and start again (the shared one stays up):
/// initdb into a temporary directory, the server as a child process (as Debian's
/// `postgres` user when the tests run as root: PostgreSQL refuses root).
struct PrivatePostgres {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<std::process::Child>,
    /// `-c name=value` settings of the server.
    settings: Vec<String>,
}

impl PrivatePostgres {
    fn start(monitor_password: &str) -> Self {
        Self::start_with(monitor_password, |_| Vec::new())
    }

    /// `settings` gets the data directory's parent (for files such as keys) and
    /// returns `name=value` server settings.
    fn start_with(
        monitor_password: &str,
        settings: impl FnOnce(&std::path::Path) -> Vec<String>,
    ) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, "admin-pw\n").unwrap();
        std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o644)).unwrap();
        let status = Self::command("initdb")
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-A", "scram-sha-256", "-U", "admin"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("initdb (scripts/install-deps.sh installs PostgreSQL)");
        assert!(status.success(), "initdb failed");
        let settings = settings(dir.path());
        let mut server = Self {
            port: crate::common::free_port(),
            dir,
            child: None,
            settings,
        };
        server.restart();
        server.admin(&format!(
            "CREATE ROLE monitor LOGIN PASSWORD '{monitor_password}' IN ROLE pg_monitor"
        ));
        server
    }

    /// A PostgreSQL program, run as `postgres` when this process is root.
    fn command(program: &str) -> std::process::Command {
        use std::os::unix::process::CommandExt;
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .max()
            .expect("a PostgreSQL version");
        let mut command = std::process::Command::new(bin.join(program));
        if let Some((uid, gid)) = Self::server_user() {
            command.uid(uid).gid(gid);
        }
        command
    }

    /// Debian's `postgres` user when this process is root (PostgreSQL refuses root).
    fn server_user() -> Option<(u32, u32)> {
        // Root or not, read from /proc (the tests do not link libc).
        let root = std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
        let id = |flag: &str| {
            let out = std::process::Command::new("id")
                .args([flag, "postgres"])
                .output()
                .expect("id");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<u32>()
                .expect("postgres user")
        };
        root.then(|| (id("-u"), id("-g")))
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn admin(&self, sql: &str) -> String {
        let out = std::process::Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "admin",
            ])
            .args(["-d", "postgres", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGPASSWORD", "admin-pw")
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts the server (again) on the same port and data, waiting until it answers.
    fn restart(&mut self) {
        let child = Self::command("postgres")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
            ])
            .args(self.settings.iter().flat_map(|s| ["-c", s.as_str()]))
            .arg("-k")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("postgres");
        self.child = Some(child);
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(self.addr()).is_err()
            || std::process::Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "admin",
                ])
                .args(["-d", "postgres", "-c", "SELECT 1"])
                .env("PGPASSWORD", "admin-pw")
                .output()
                .map_or(true, |o| !o.status.success())
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "PostgreSQL did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (fast shutdown: connections are cut, as in a failover).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGINT is PostgreSQL's fast shutdown; std can only SIGKILL, so ask kill(1).
            let _ = std::process::Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The server goes: `up` drops to 0 and its session series go; it comes back on the
/// same address and so does its data, without restarting the exporter.
#[test]
fn an_outage_is_seen_and_recovered_from() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let mut private = PrivatePostgres::start(&servers.monitor_password());
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\ntargets:\n  - name: doomed\n    kind: postgresql\n    address: {}\n    user: monitor\n    password_file: {}\n    sslmode: disable\n",
        private.addr(),
        servers.monitor_password_file.display()
    ));
    let doomed = [("target", "doomed"), ("tenant", "doomed")];
    exporter.wait_for_metrics("the target is up", Duration::from_secs(30), |m| {
        m.get("dbsession_up", &doomed) == Some(1.0)
    });
    private.stop();
    let down = exporter.wait_for_metrics("up drops to 0", Duration::from_secs(20), |m| {
        m.get("dbsession_up", &doomed) == Some(0.0)
    });
    assert_eq!(down.get("dbsession_sessions", &doomed), None);
    assert!(
        down.matching(
            "dbsession_collect_errors_total",
            &[("target", "doomed"), ("reason", "connect")]
        )
        .iter()
        .any(|(_, n)| *n >= 1.0),
        "{}",
        down.text
    );
    private.restart();
    exporter.wait_for_metrics("the target recovers", Duration::from_secs(30), |m| {
        m.get("dbsession_up", &doomed) == Some(1.0)
            && m.get("dbsession_sessions", &doomed).is_some()
    });
}

/// sslmode as libpq means it, against a server whose certificate names `db.example`
/// (not the 127.0.0.1 the exporter connects to): `require` encrypts without checking,
/// `verify-ca` checks the chain, `verify-full` also the name, so it refuses; a CA
/// that did not sign the certificate is refused by `verify-ca` too.
#[test]
fn sslmodes_check_what_libpq_checks() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let Some(servers) = Servers::get() else {
        return;
    };
    let ca = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    };
    let (ours, other) = (ca("it pg CA"), ca("another CA"));
    let pki = tempfile::tempdir().unwrap();
    std::fs::write(pki.path().join("ca.pem"), ours.pem()).unwrap();
    std::fs::write(pki.path().join("other.pem"), other.pem()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["db.example".to_string()])
        .unwrap()
        .signed_by(&server_key, &ours)
        .unwrap();
    let mut private = PrivatePostgres::start_with(&servers.monitor_password(), |dir| {
        use std::os::unix::fs::PermissionsExt;
        let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
        std::fs::write(&cert, server.pem()).unwrap();
        std::fs::write(&key, server_key.serialize_pem()).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        if let Some((uid, gid)) = PrivatePostgres::server_user() {
            for file in [&cert, &key] {
                std::os::unix::fs::chown(file, Some(uid), Some(gid)).unwrap();
            }
        }
        vec![
            "ssl=on".to_string(),
            format!("ssl_cert_file={}", cert.display()),
            format!("ssl_key_file={}", key.display()),
        ]
    });
    let target = |name: &str, mode: &str, ca: Option<&str>| {
        let ca = ca.map_or(String::new(), |file| {
            format!("    sslrootcert: {}\n", pki.path().join(file).display())
        });
        format!(
            "  - name: {name}\n    kind: postgresql\n    address: {}\n    user: monitor\n    password_file: {}\n    sslmode: {mode}\n{ca}",
            private.addr(),
            servers.monitor_password_file.display()
        )
    };
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\ntargets:\n{}{}{}{}",
        target("require", "require", None),
        target("chain", "verify-ca", Some("ca.pem")),
        target("name", "verify-full", Some("ca.pem")),
        target("stranger", "verify-ca", Some("other.pem")),
    ));
    let up = |m: &Metrics, t: &str| m.get("dbsession_up", &[("target", t), ("tenant", t)]);
    let m = exporter.wait_for_metrics("every target tried", Duration::from_secs(30), |m| {
        up(m, "require") == Some(1.0)
            && up(m, "chain") == Some(1.0)
            && ["name", "stranger"].iter().all(|t| up(m, t).is_some())
    });
    assert_eq!(up(&m, "name"), Some(0.0));
    assert_eq!(up(&m, "stranger"), Some(0.0));
    assert!(
        exporter
            .log()
            .lines()
            .any(|l| l.contains("target=name") && l.contains("not valid for name")),
        "{}",
        exporter.log()
    );
    // The connections that work are encrypted.
    let encrypted = private.admin(
        "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid \
         WHERE a.application_name = 'session_exporter' AND s.ssl",
    );
    assert!(encrypted.trim().parse::<u32>().unwrap() >= 2, "{encrypted}");
    private.stop();
}

/// The limits beside the counts and a real deadlock, against what the server itself
/// says: `max_connections` less the reserved connections, a role's and a database's
/// `CONNECTION LIMIT`, and `pg_stat_database.deadlocks` summed, one more after two
/// sessions deadlock.
#[test]
fn limits_and_a_real_deadlock_are_exported() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let admin = |sql: &str| servers.postgres_admin(sql).trim().to_string();
    servers.postgres_role("it_pg_lim", PASSWORD, "");
    admin("ALTER ROLE it_pg_lim CONNECTION LIMIT 3");
    servers.postgres_database("it_pg_limdb");
    admin("ALTER DATABASE it_pg_limdb OWNER TO it_pg_lim");
    admin("ALTER DATABASE it_pg_limdb CONNECTION LIMIT 7");
    let sessions = EndSessions::of(&servers, &["it_pg_lim"]);
    let clients = Clients::new(&servers.postgres_addr);
    let a = clients.open("it_pg_lim", "it_pg_limdb", "127.0.0.95");
    let b = clients.open("it_pg_lim", "it_pg_limdb", "127.0.0.95");
    clients.run(
        &a,
        "DROP TABLE IF EXISTS d; CREATE TABLE d (id int PRIMARY KEY, v int); \
         INSERT INTO d VALUES (1, 1), (2, 2)",
    );
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\ntargets:\n  - name: pglim\n    kind: postgresql\n    address: {}\n    user: monitor\n    password_file: {}\n    sslmode: disable\n    limits_interval: 1s\n    filter: {{users: {{allow: [it_pg_lim]}}}}\n",
        servers.postgres_addr,
        servers.monitor_password_file.display()
    ));
    let tenant = [("target", "pglim"), ("tenant", "pglim")];
    let limit: f64 = admin(
        "SELECT current_setting('max_connections')::int \
         - current_setting('superuser_reserved_connections')::int \
         - COALESCE(current_setting('reserved_connections', true), '0')::int",
    )
    .parse()
    .unwrap();
    let m = exporter.wait_for_metrics("the limits are read", Duration::from_secs(30), |m| {
        m.get("dbsession_sessions_limit", &tenant).is_some()
    });
    assert_eq!(m.get("dbsession_sessions_limit", &tenant), Some(limit));
    let user = [tenant[0], tenant[1], ("user", "it_pg_lim")];
    assert_eq!(m.get("dbsession_user_sessions_limit", &user), Some(3.0));
    let db = [tenant[0], tenant[1], ("db", "it_pg_limdb")];
    assert_eq!(m.get("dbsession_db_sessions_limit", &db), Some(7.0));
    assert_eq!(m.get("dbsession_user_sessions", &user), Some(2.0));
    // A role without a limit (the monitor's own) has no series, nor has `postgres`.
    assert!(
        m.matching("dbsession_db_sessions_limit", &[]).len() == 1,
        "{}",
        m.text
    );

    let deadlocks = || -> f64 {
        admin("SELECT COALESCE(sum(deadlocks), 0) FROM pg_stat_database")
            .parse()
            .unwrap()
    };
    let before = deadlocks();
    exporter.wait_for_metrics("the counter matches", Duration::from_secs(30), |m| {
        m.get("dbsession_deadlocks_total", &tenant) == Some(before)
    });
    clients.run(&a, "BEGIN; UPDATE d SET v = 0 WHERE id = 1");
    clients.run(&b, "BEGIN; UPDATE d SET v = 0 WHERE id = 2");
    clients.start(&a, "UPDATE d SET v = 0 WHERE id = 2");
    // One of the two is ended by the deadlock detector after deadlock_timeout (1 s).
    let _ = clients.runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(10),
            b.simple_query("UPDATE d SET v = 0 WHERE id = 1"),
        )
        .await
    });
    // The victim's backend reports its statistics only once it is out of the
    // aborted transaction, so both end theirs.
    clients.run(&a, "ROLLBACK");
    clients.run(&b, "ROLLBACK");
    exporter.wait_for_metrics("the deadlock is counted", Duration::from_secs(30), |m| {
        let after = deadlocks();
        after > before && m.get("dbsession_deadlocks_total", &tenant) == Some(after)
    });
    drop(sessions);
}
