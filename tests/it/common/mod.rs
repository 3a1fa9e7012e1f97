//! Fixtures for integration tests against real servers: the shared seekdb and MariaDB
//! started by `scripts/test-servers.sh`, private MariaDB instances a test may kill,
//! the real exporter binary, and client sessions opened with the `mariadb` CLI
//! (which can bind a chosen loopback source address, so client IPs are known).
//!
//! Every process a fixture starts is ended by PID when the fixture is dropped.

pub mod dbss;
pub mod openapi;
mod pgbouncer;
pub use pgbouncer::Pgbouncer;
pub mod scenario;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shared servers, from the environment `scripts/test-servers.sh env` prints.
///
/// The tests run in one process, two at a time: a test that counts every session of
/// a shared server exactly takes it for itself ([`Servers::exclusive`]), and waits
/// until no other test holds it; the others share it ([`Servers::get`]) for as long
/// as they hold the value.
pub struct Servers {
    pub mariadb_addr: String,
    pub mariadb_root_socket: String,
    pub seekdb_addr: String,
    pub monitor_password_file: PathBuf,
    pub postgres_addr: String,
    postgres_admin_password_file: PathBuf,
    pgbouncer: Option<Pgbouncer>,
    _access: Access,
}

static ACCESS: std::sync::RwLock<()> = std::sync::RwLock::new(());

enum Access {
    Shared(#[allow(dead_code)] std::sync::RwLockReadGuard<'static, ()>),
    Exclusive(#[allow(dead_code)] std::sync::RwLockWriteGuard<'static, ()>),
}

impl Servers {
    /// The servers, shared with the other tests running meanwhile.
    pub fn get() -> Option<Self> {
        Self::configured(|| Access::Shared(ACCESS.read().unwrap_or_else(|e| e.into_inner())))
    }

    /// The servers, with no other test using them meanwhile: for exact counts of
    /// every session on a server.
    pub fn exclusive() -> Option<Self> {
        Self::configured(|| Access::Exclusive(ACCESS.write().unwrap_or_else(|e| e.into_inner())))
    }

    /// The servers, or None (with the reason printed) when they are not configured.
    /// In CI a missing server fails the test: it must never pass by skipping.
    fn configured(access: impl FnOnce() -> Access) -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        match (
            var("SE_TEST_MARIADB_ADDR"),
            var("SE_TEST_MARIADB_ROOT_SOCKET"),
            var("SE_TEST_SEEKDB_ADDR"),
            var("SE_TEST_MONITOR_PASSWORD_FILE"),
            var("SE_TEST_POSTGRES_ADDR"),
            var("SE_TEST_POSTGRES_ADMIN_PASSWORD_FILE"),
        ) {
            (Some(m), Some(s), Some(o), Some(p), Some(pg), Some(pg_pw)) => Some(Self {
                mariadb_addr: m,
                mariadb_root_socket: s,
                seekdb_addr: o,
                monitor_password_file: p.into(),
                postgres_addr: pg,
                postgres_admin_password_file: pg_pw.into(),
                pgbouncer: Pgbouncer::from_env(),
                _access: access(),
            }),
            _ => {
                let why = "SE_TEST_* variables are not set: run the tests with ./scripts/test.sh, \
                           which starts MariaDB, seekdb and PostgreSQL";
                if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
                    panic!("{why}");
                }
                eprintln!("SKIPPED: {why}");
                None
            }
        }
    }

    pub fn monitor_password(&self) -> String {
        std::fs::read_to_string(&self.monitor_password_file)
            .expect("monitor password file")
            .trim()
            .to_string()
    }

    /// Runs SQL as root on the shared MariaDB.
    pub fn mariadb_root(&self, sql: &str) -> String {
        run_sql(&["-S", &self.mariadb_root_socket, "-uroot"], sql)
    }

    /// Runs SQL as the superuser `admin` on the shared PostgreSQL; its output, one
    /// row per line.
    pub fn postgres_admin(&self, sql: &str) -> String {
        let password = std::fs::read_to_string(&self.postgres_admin_password_file)
            .expect("PostgreSQL admin password file");
        let (host, port) = split_addr(&self.postgres_addr);
        let out = Command::new("psql")
            .args([
                "-h", host, "-p", port, "-U", "admin", "-d", "postgres", "-At",
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGPASSWORD", password.trim())
            .output()
            .expect("psql is installed (scripts/install-deps.sh)");
        assert!(
            out.status.success(),
            "SQL failed: {sql}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates login role `name` on the shared PostgreSQL unless a run before made it.
    pub fn postgres_role(&self, name: &str, password: &str, options: &str) {
        self.postgres_admin(&format!(
            "DO $$ BEGIN CREATE ROLE {name} LOGIN PASSWORD '{password}' {options}; \
             EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        ));
    }

    /// Creates database `name` on the shared PostgreSQL unless a run before made it.
    pub fn postgres_database(&self, name: &str) {
        let found = self.postgres_admin(&format!(
            "SELECT 1 FROM pg_database WHERE datname = '{name}'"
        ));
        if found.trim() != "1" {
            self.postgres_admin(&format!("CREATE DATABASE {name}"));
        }
    }

    /// Runs SQL as root on seekdb (root has no password there).
    pub fn seekdb_root(&self, sql: &str) -> String {
        let (host, port) = split_addr(&self.seekdb_addr);
        run_sql(&["-h", host, "-P", port, "-uroot"], sql)
    }
}

impl Servers {
    /// Ends a session of the shared MariaDB by its id (`KILL`, as root): what ends a
    /// [`Blocked`] statement there.
    pub fn mariadb_killer(&self) -> impl Fn(u32) + Clone + 'static {
        killer(vec![
            "-S".into(),
            self.mariadb_root_socket.clone(),
            "-uroot".into(),
        ])
    }

    /// The same on the shared seekdb.
    pub fn seekdb_killer(&self) -> impl Fn(u32) + Clone + 'static {
        let (host, port) = split_addr(&self.seekdb_addr);
        killer(
            ["-h", host, "-P", port, "-uroot", "--skip-ssl"]
                .map(String::from)
                .to_vec(),
        )
    }
}

/// `KILL <id>` through the mariadb client with `args` (where and as whom).
fn killer(args: Vec<String>) -> impl Fn(u32) + Clone + 'static {
    move |id| {
        let _ = Command::new("mariadb")
            .arg("--no-defaults")
            .args(&args)
            .arg("-e")
            .arg(format!("KILL {id}"))
            .output();
    }
}

pub fn split_addr(addr: &str) -> (&str, &str) {
    addr.rsplit_once(':').expect("host:port")
}

fn run_sql(conn_args: &[&str], sql: &str) -> String {
    let out = Command::new("mariadb")
        .arg("--no-defaults")
        .args(conn_args)
        .args(["--skip-ssl", "-N", "-B", "-e", sql])
        .output()
        .expect("the mariadb client is installed (scripts/install-deps.sh)");
    assert!(
        out.status.success(),
        "SQL failed: {sql}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A client session: a real connection from a chosen loopback source address,
/// idle, or busy in `SELECT SLEEP(n)` on its own thread.
pub struct Session {
    /// The session id the server gave the connection.
    pub id: u32,
    /// The idle connection, or the thread running the busy one.
    _conn: Option<mysql::Conn>,
    busy: Option<std::thread::JoinHandle<()>>,
    kill: Option<(mysql::Opts, u32)>,
}

/// What a test session connects as, and what it does.
pub struct SessionSpec<'a> {
    pub addr: &'a str,
    pub user: &'a str,
    pub password: &'a str,
    pub db: Option<&'a str>,
    /// Loopback source address, e.g. 127.0.0.21: the session's client IP.
    pub from: &'a str,
    /// Some(n): run `SELECT SLEEP(n)` (active); None: stay idle.
    pub sleep: Option<u32>,
}

impl Session {
    pub fn open(spec: &SessionSpec<'_>) -> Self {
        let (host, port) = split_addr(spec.addr);
        let opts: mysql::Opts = mysql::OptsBuilder::new()
            .ip_or_hostname(Some(host))
            .tcp_port(port.parse().expect("port"))
            .user(Some(spec.user))
            .pass(Some(spec.password))
            .db_name(spec.db)
            .prefer_socket(false)
            .tcp_connect_timeout(Some(Duration::from_secs(10)))
            .bind_address(Some(std::net::SocketAddr::new(
                spec.from.parse().expect("source IP"),
                0,
            )))
            .into();
        let mut conn = mysql::Conn::new(opts.clone())
            .unwrap_or_else(|e| panic!("connect as {} from {}: {e}", spec.user, spec.from));
        let id = conn.connection_id();
        match spec.sleep {
            None => Self {
                id,
                _conn: Some(conn),
                busy: None,
                kill: None,
            },
            Some(seconds) => {
                let busy = std::thread::spawn(move || {
                    use mysql::prelude::Queryable;
                    // Ends when the sleep is killed at drop; the error is expected then.
                    let _ = conn.query_drop(format!("SELECT SLEEP({seconds})"));
                });
                Self {
                    id,
                    _conn: None,
                    busy: Some(busy),
                    kill: Some((opts, id)),
                }
            }
        }
    }
}

impl Session {
    /// True for a session busy in `SELECT SLEEP`.
    pub fn is_busy(&self) -> bool {
        self.busy.is_some()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // A busy session is ended from a second connection, as a DBA would kill it.
        if let Some((opts, id)) = self.kill.take() {
            use mysql::prelude::Queryable;
            let opts =
                mysql::OptsBuilder::from_opts(opts).bind_address(None::<std::net::SocketAddr>);
            if let Ok(mut conn) = mysql::Conn::new(opts) {
                let _ = conn.query_drop(format!("KILL {id}"));
            }
        }
        if let Some(busy) = self.busy.take() {
            let _ = busy.join();
        }
    }
}

/// A connection as `user` from loopback address `from` (its client IP).
pub fn connect_as(addr: &str, user: &str, password: &str, from: &str) -> mysql::Conn {
    connect_as_program(addr, user, password, from, None)
}

/// A session as [`connect_as`] opens it, its `program_name` connection attribute set
/// to `program` (the client library's default otherwise: the test binary's path).
pub fn connect_as_program(
    addr: &str,
    user: &str,
    password: &str,
    from: &str,
    program: Option<&str>,
) -> mysql::Conn {
    let (host, port) = split_addr(addr);
    let attrs = program.map(|name| std::collections::HashMap::from([("program_name", name)]));
    let opts = mysql::OptsBuilder::new()
        .connect_attrs(attrs)
        .ip_or_hostname(Some(host))
        .tcp_port(port.parse().expect("port"))
        .user(Some(user))
        .pass(Some(password))
        .prefer_socket(false)
        .tcp_connect_timeout(Some(Duration::from_secs(10)))
        .bind_address(Some(std::net::SocketAddr::new(
            from.parse().expect("source IP"),
            0,
        )));
    mysql::Conn::new(opts).unwrap_or_else(|e| panic!("connect as {user} from {from}: {e}"))
}

/// A statement that blocks (on a lock), run on its own thread after `setup`; ended
/// by `kill` (a `KILL <id>` from another connection) when dropped.
pub struct Blocked {
    pub id: u32,
    thread: Option<std::thread::JoinHandle<()>>,
    kill: Box<dyn Fn(u32)>,
}

impl Blocked {
    pub fn start(mut conn: mysql::Conn, setup: &[&str], sql: &str, kill: Box<dyn Fn(u32)>) -> Self {
        use mysql::prelude::Queryable;
        for statement in setup {
            conn.query_drop(*statement).expect(statement);
        }
        let id = conn.connection_id();
        let sql = sql.to_string();
        // Ends with an error when the session is killed at drop: expected.
        let thread = std::thread::spawn(move || {
            let _ = conn.query_drop(sql);
        });
        Self {
            id,
            thread: Some(thread),
            kill,
        }
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        (self.kill)(self.id);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Makes sessions `a` and `b` deadlock on rows 1 and 2 of `table` (`id`, `v`): each
/// updates one row in a transaction, then the other's row. Returns both outcomes, in
/// that order (the victim's is an error, unless a timeout ended the wait first); both
/// transactions are rolled back.
pub fn deadlock(
    mut a: mysql::Conn,
    mut b: mysql::Conn,
    table: &str,
) -> (mysql::Result<()>, mysql::Result<()>) {
    use mysql::prelude::Queryable;
    let update = |id: u32| format!("UPDATE {table} SET v = 0 WHERE id = {id}");
    a.query_drop("BEGIN").unwrap();
    a.query_drop(update(1)).unwrap();
    b.query_drop("BEGIN").unwrap();
    b.query_drop(update(2)).unwrap();
    let second_row = update(2);
    let first = std::thread::spawn(move || {
        let outcome = a.query_drop(second_row);
        let _ = a.query_drop("ROLLBACK");
        outcome
    });
    // `a` waits for row 2 before `b` asks for row 1: the cycle closes on `b`.
    std::thread::sleep(Duration::from_millis(300));
    let second = b.query_drop(update(1));
    let _ = b.query_drop("ROLLBACK");
    (first.join().unwrap(), second)
}

/// A web configuration file (`web.yaml` in `dir`) with basic auth `users` (name,
/// password), their bcrypt hashes at `cost`.
pub fn basic_auth_users(dir: &Path, users: &[(&str, &str)], cost: u32) -> PathBuf {
    let web = dir.join("web.yaml");
    let mut text = String::from("basic_auth_users:\n");
    for (user, password) in users {
        let hash = bcrypt::hash(password, cost).expect("a bcrypt hash");
        text.push_str(&format!("  {user}: '{hash}'\n"));
    }
    std::fs::write(&web, text).expect("write the web config");
    web
}

/// The password of [`killer_account`].
pub const KILLER_PASSWORD: &str = "Page-killer-pw-1";

/// The MariaDB account the pages end sessions with (it may end other users' and read
/// performance_schema), and its password file.
pub fn killer_account(servers: &Servers) -> tempfile::NamedTempFile {
    let password = tempfile::NamedTempFile::new().expect("password file");
    std::fs::write(password.path(), KILLER_PASSWORD).unwrap();
    servers.mariadb_root(&format!(
        "CREATE USER IF NOT EXISTS 'page_killer'@'%' IDENTIFIED BY '{KILLER_PASSWORD}'; \
         GRANT PROCESS, CONNECTION ADMIN ON *.* TO 'page_killer'@'%'; \
         GRANT SELECT ON performance_schema.* TO 'page_killer'@'%'"
    ));
    password
}

/// Waits until target `name`, its own one tenant, is collected.
pub fn wait_up(exporter: &Exporter, name: &str) {
    exporter.wait_for_metrics("collected", Duration::from_secs(30), |m| {
        m.get("dbsession_up", &[("target", name), ("tenant", name)]) == Some(1.0)
    });
}

/// A connection to `addr` from the loopback address `source` (std cannot bind
/// before connecting; tokio's socket can, and hands the stream over).
pub fn connect_from(source: &str, addr: &str) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .bind(format!("{source}:0").parse().expect("an address"))
            .expect("bind the source address");
        socket
            .connect(addr.parse().expect("the exporter's address"))
            .await
            .expect("connect")
    });
    let stream = stream.into_std().expect("a std stream");
    stream.set_nonblocking(false).expect("blocking");
    stream
}

/// A free loopback port (bound and released: a small race, acceptable in tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The exporter binary, running with a config written to a temporary directory.
pub struct Exporter {
    child: Child,
    pub addr: String,
    pub dir: tempfile::TempDir,
}

impl Exporter {
    pub fn start(config_yaml: &str) -> Self {
        Self::start_with(config_yaml, &[])
    }

    pub fn start_with(config_yaml: &str, extra_args: &[&str]) -> Self {
        Self::spawn(config_yaml, &[], extra_args)
    }

    /// The exporter started by `wrapper` (a command that ends by running the
    /// binary and its arguments, appended to it), as `unshare` does.
    pub fn start_wrapped(config_yaml: &str, wrapper: &[&str]) -> Self {
        Self::spawn(config_yaml, wrapper, &[])
    }

    fn spawn(config_yaml: &str, wrapper: &[&str], extra_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, config_yaml).expect("write config");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("exporter.log")).expect("log file");
        let binary = env!("CARGO_BIN_EXE_session_exporter");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let child = command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address={addr}"))
            .args(["--log.level=debug"])
            .args(extra_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn session_exporter");
        let mut exporter = Self { child, addr, dir };
        // Listening is enough (plain or TLS): requests wait in the accept queue.
        let start = Instant::now();
        while TcpStream::connect(&exporter.addr).is_err() {
            if let Ok(Some(status)) = exporter.child.try_wait() {
                panic!("the exporter exited with {status}:\n{}", exporter.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the exporter did not listen:\n{}",
                exporter.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        exporter
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("exporter.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// GET `path`: (status, headers, body), or None when the server does not answer.
    pub fn try_get_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Option<(u16, String, Vec<u8>)> {
        http_get(&self.addr, path, headers)
    }

    pub fn try_get(&self, path: &str) -> Option<(u16, String, Vec<u8>)> {
        self.try_get_with(path, &[])
    }

    /// The classic-format metrics text.
    pub fn metrics(&self) -> Metrics {
        let (status, _, body) = self.try_get("/metrics").expect("scrape /metrics");
        assert_eq!(status, 200);
        Metrics::parse(&String::from_utf8(body).expect("utf-8 exposition"))
    }

    /// Polls `check` every 100 ms until it holds, failing the test (with the
    /// exporter's log) after `limit`.
    pub fn wait_until(&self, what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if check() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "timed out after {limit:?} waiting until {what}\n--- exporter log ---\n{}",
            self.log()
        );
    }

    /// Waits until the metrics satisfy `check`, returning them.
    pub fn wait_for_metrics(
        &self,
        what: &str,
        limit: Duration,
        check: impl Fn(&Metrics) -> bool,
    ) -> Metrics {
        let mut last = None;
        self.wait_until(what, limit, || {
            let m = self.metrics();
            let ok = check(&m);
            last = Some(m);
            ok
        });
        last.expect("checked at least once")
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `promtool check metrics` on a classic-format exposition, failing the test
/// with promtool's words when it refuses it.
pub fn promtool_check_metrics(exposition: &[u8]) {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (scripts/install-deps.sh installs Debian's prometheus)");
    promtool
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(exposition)
        .expect("write to promtool");
    let out = promtool.wait_with_output().expect("promtool ran");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A minimal HTTP/1.1 POST without a body: (status, body), or None without an answer.
pub fn http_post(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    let status = raw.split_whitespace().nth(1)?.parse().ok()?;
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// A minimal HTTP/1.1 DELETE with a JSON `body` and `headers`: the status and the
/// answer's JSON (the session API's envelope).
pub fn http_delete(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write!(
        stream,
        "DELETE {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("request");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("answer");
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let json = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(json).expect("JSON envelope"))
}

/// A minimal HTTP/1.1 GET over loopback (no client crate needed for tests).
pub fn http_get(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, String, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Some((status, head, body))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
    out
}

/// Parsed sample lines: series (name plus sorted labels) -> value.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub text: String,
    samples: BTreeMap<String, f64>,
}

impl Metrics {
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_string(), value.parse().ok()?))
            })
            .collect();
        Self {
            text: text.to_string(),
            samples,
        }
    }

    /// The value of `name` with exactly `labels` (in exposition order).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let rendered: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let series = if labels.is_empty() {
            name.to_string()
        } else {
            format!("{name}{{{}}}", rendered.join(","))
        };
        self.samples.get(&series).copied()
    }

    /// Every series of `name` whose labels include all of `labels`.
    pub fn matching(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(String, f64)> {
        self.samples
            .iter()
            .filter(|(series, _)| {
                series.starts_with(&format!("{name}{{"))
                    && labels
                        .iter()
                        .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
            })
            .map(|(s, v)| (s.clone(), *v))
            .collect()
    }
}

/// A private MariaDB instance a test may stop and restart (the shared one must stay up).
pub struct PrivateMariadb {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl PrivateMariadb {
    /// Initializes a data directory and starts the server; `monitor` gets PROCESS.
    pub fn start(monitor_password: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let status = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--user=root",
                "--auth-root-authentication-method=socket",
            ])
            .arg(format!("--datadir={}", data.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("mariadb-install-db (scripts/install-deps.sh installs it)");
        assert!(status.success(), "mariadb-install-db failed");
        let mut server = Self {
            port: free_port(),
            dir,
            child: None,
        };
        server.restart();
        server.root(&format!(
            "CREATE USER 'monitor'@'%' IDENTIFIED BY '{monitor_password}'; GRANT PROCESS ON *.* TO 'monitor'@'%';"
        ));
        server
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("mysqld.sock")
    }

    pub fn root(&self, sql: &str) -> String {
        run_sql(&["-S", &self.socket().display().to_string(), "-uroot"], sql)
    }

    /// Starts the server (again) on the same port and data, waiting until it answers.
    pub fn restart(&mut self) {
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        let child = Command::new("mariadbd")
            .args([
                "--no-defaults",
                "--user=root",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
            ])
            .arg(format!("--datadir={}", path("data")))
            .arg(format!("--port={}", self.port))
            .arg(format!("--socket={}", path("mysqld.sock")))
            .arg(format!("--pid-file={}", path("mysqld.pid")))
            .arg(format!("--log-error={}", path("error.log")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd (scripts/install-deps.sh installs it)");
        self.child = Some(child);
        wait_for_sql(&self.socket(), Duration::from_secs(30));
    }

    /// The server's process, for signals (SIGSTOP: a server that stops answering).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("the server runs")
    }

    /// Kills the server abruptly, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateMariadb {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for_sql(socket: &Path, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        let ok = Command::new("mariadb")
            .args(["--no-defaults", "-uroot", "-e", "SELECT 1"])
            .arg(format!("--socket={}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "MariaDB at {} did not answer within {limit:?}",
        socket.display()
    );
}

/// SQL for empty tables shaped like a cluster's `DBA_OB_TENANTS` (`TENANTS`),
/// `GV$OB_PROCESSLIST` with `MODULE` and `CLIENT_INFO` (`PL`) and
/// `GV$OB_ACTIVE_SESSION_HISTORY` (`ASH`) in `database` on seekdb, readable by the
/// monitoring account: seekdb has no active session history of its own.
pub fn ash_cluster_tables(database: &str) -> String {
    format!(
        r#"CREATE DATABASE IF NOT EXISTS {database};
DROP TABLE IF EXISTS {database}.TENANTS; DROP TABLE IF EXISTS {database}.PL;
DROP TABLE IF EXISTS {database}.ASH;
CREATE TABLE {database}.TENANTS (TENANT_ID BIGINT, TENANT_NAME VARCHAR(128), TENANT_TYPE VARCHAR(16));
CREATE TABLE {database}.PL (
  ID BIGINT, TENANT VARCHAR(128), SVR_IP VARCHAR(46), SVR_PORT BIGINT, USER VARCHAR(128),
  HOST VARCHAR(128), DB VARCHAR(128), COMMAND VARCHAR(32), TIME DOUBLE, STATE VARCHAR(32),
  INFO TEXT, USER_CLIENT_IP VARCHAR(46), SQL_ID VARCHAR(64), MODULE VARCHAR(64),
  CLIENT_INFO VARCHAR(64));
CREATE TABLE {database}.ASH (
  SVR_IP VARCHAR(46), SVR_PORT BIGINT, SAMPLE_ID BIGINT, SAMPLE_TIME TIMESTAMP(6), CON_ID BIGINT,
  SESSION_ID BIGINT, SESSION_STATE VARCHAR(7), SQL_ID VARCHAR(32), EVENT VARCHAR(64),
  WAIT_CLASS VARCHAR(64));
GRANT SELECT ON {database}.* TO monitor;"#
    )
}

/// A `psql` session that sleeps (`pg_sleep(600)`) until dropped, as `user` with
/// `password` in `db`, its `application_name` `application` (psql's own, `psql`,
/// otherwise); the client is ended by its PID when dropped (its backend sleeps on:
/// end it on the server).
pub struct PsqlSession(std::process::Child);

impl PsqlSession {
    pub fn start(
        addr: &str,
        user: &str,
        password: &str,
        db: &str,
        application: Option<&str>,
    ) -> Self {
        Self::run(
            addr,
            user,
            password,
            db,
            application,
            "SELECT pg_sleep(600)",
        )
    }

    /// A session running `sql` (one simple query: statements separated by `;` run
    /// in one transaction) until it ends or the session is dropped.
    pub fn run(
        addr: &str,
        user: &str,
        password: &str,
        db: &str,
        application: Option<&str>,
        sql: &str,
    ) -> Self {
        let (host, port) = split_addr(addr);
        let mut command = Command::new("psql");
        command
            .args(["-X", "-q", "-h", host, "-p", port, "-U", user, "-d", db])
            .args(["-c", sql])
            .env("PGPASSWORD", password)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(application) = application {
            command.env("PGAPPNAME", application);
        }
        Self(
            command
                .spawn()
                .expect("psql is installed (scripts/install-deps.sh)"),
        )
    }
}

impl Drop for PsqlSession {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
