//! PgBouncer, for real, in front of the shared PostgreSQL: six clients from known
//! loopback addresses in `pg_sleep` on a pool of two are two active and four waiting,
//! in the session metrics, the pools' and the session API; the longest wait grows;
//! an account that is not a stats user gets one error naming the setting; a
//! PgBouncer restarted is collected again within two intervals.

use super::Clients;
use crate::common::{Exporter, Metrics, Pgbouncer, Servers};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The shared PgBouncer's pool of `it_pgb` is one: its tests take turns.
static POOL: Mutex<()> = Mutex::new(());

/// The pool of `it_pgb` for the caller alone, emptied now and when dropped.
pub struct PoolTaken<'a> {
    _turn: std::sync::MutexGuard<'static, ()>,
    _end: EndPool<'a>,
}

pub fn take_the_pool(servers: &Servers) -> PoolTaken<'_> {
    let turn = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let end = EndPool(servers);
    end.end();
    PoolTaken {
        _turn: turn,
        _end: end,
    }
}

/// Ends every PostgreSQL session of the pool's role, so PgBouncer's server
/// connections (and a `pg_sleep` of an earlier run) are gone, now and when dropped.
struct EndPool<'a>(&'a Servers);

impl EndPool<'_> {
    fn end(&self) {
        self.0.postgres_admin(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'it_pgb'",
        );
    }
}

impl Drop for EndPool<'_> {
    fn drop(&mut self) {
        self.end();
    }
}

fn target_yaml(name: &str, addr: &str, servers: &Servers) -> String {
    format!(
        "  - name: {name}\n    kind: pgbouncer\n    address: {addr}\n    user: monitor\n    password_file: {}\n    filter: {{users: {{allow: [it_pgb]}}}}\n    limits_interval: 1s\n",
        servers.monitor_password_file.display()
    )
}

fn pool<'a>(m: &Metrics, name: &str, extra: &[(&'a str, &'a str)]) -> Option<f64> {
    let mut labels = vec![("target", "pgb"), ("db", "postgres"), ("user", "it_pgb")];
    labels.extend_from_slice(extra);
    m.get(name, &labels)
}

#[test]
fn six_clients_on_a_pool_of_two_are_two_active_and_four_waiting() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let Some(bouncer) = servers.pgbouncer() else {
        return;
    };
    let _pool = take_the_pool(&servers);
    let clients = Clients::new(&bouncer.addr);
    let sources: Vec<String> = (111..117).map(|n| format!("127.0.0.{n}")).collect();
    let sessions: Vec<_> = sources
        .iter()
        .map(|from| {
            clients.open_with(
                "it_pgb",
                &bouncer.app_password,
                "postgres",
                from,
                Some("it-pool - 10.9.9.9:5555"),
            )
        })
        .collect();
    for session in &sessions {
        clients.start(session, "SELECT pg_sleep(30)");
    }
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\npassthrough:\n  enabled: true\n  insecure_no_auth: true\n  allow_kill: true\ntargets:\n{}",
        target_yaml("pgb", &bouncer.addr, &servers)
    ));
    let tenant = [("target", "pgb"), ("tenant", "pgb")];
    let m = exporter.wait_for_metrics("2 active, 4 waiting", Duration::from_secs(30), |m| {
        m.get("dbsession_sessions", &tenant) == Some(6.0)
            && m.get("dbsession_active_sessions", &tenant) == Some(2.0)
            && pool(m, "dbsession_pool_waiting_clients", &[]) == Some(4.0)
    });
    let state = |command: &str| {
        m.get(
            "dbsession_state_sessions",
            &[
                ("target", "pgb"),
                ("tenant", "pgb"),
                ("command", command),
                ("state", "__none__"),
            ],
        )
    };
    assert_eq!((state("active"), state("waiting")), (Some(2.0), Some(4.0)));
    let by = |name: &str, label: (&str, &str)| {
        m.get(name, &[("target", "pgb"), ("tenant", "pgb"), label])
    };
    assert_eq!(by("dbsession_db_sessions", ("db", "postgres")), Some(6.0));
    assert_eq!(by("dbsession_user_sessions", ("user", "it_pgb")), Some(6.0));
    for from in &sources {
        assert_eq!(
            by("dbsession_client_sessions", ("client_ip", from)),
            Some(1.0),
            "{from}"
        );
    }
    assert_eq!(
        by("dbsession_application_sessions", ("application", "it-pool")),
        Some(6.0),
        "the address application_name_add_host adds is cut off"
    );
    assert_eq!(
        pool(
            &m,
            "dbsession_pool_server_connections",
            &[("state", "active")]
        ),
        Some(2.0)
    );
    assert_eq!(pool(&m, "dbsession_pool_size", &[]), Some(2.0));
    assert_eq!(
        m.get("dbsession_sessions_limit", &tenant),
        Some(200.0),
        "max_client_conn"
    );

    // The longest wait grows while the pool stays full.
    let first = pool(&m, "dbsession_pool_max_wait_seconds", &[]).unwrap_or(0.0);
    exporter.wait_for_metrics("the wait grows", Duration::from_secs(20), |m| {
        pool(m, "dbsession_pool_max_wait_seconds", &[]).is_some_and(|w| w >= first + 2.0)
    });

    // The session API: the clients, who waits, and no kill.
    let (status, _, body) =
        crate::common::http_get(&exporter.addr, "/api/v1/tenant/pgb/sessions?size=50", &[])
            .expect("the list");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let list: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let contents = list["data"]["contents"].as_array().expect("contents");
    assert_eq!(contents.len(), 6, "{list}");
    let waiting: Vec<_> = contents
        .iter()
        .filter(|s| s["command"] == "waiting")
        .collect();
    assert_eq!(waiting.len(), 4, "{list}");
    assert!(contents
        .iter()
        .all(|s| s["application"] == "it-pool" && s["user"] == "it_pgb"));
    let id = contents[0]["id"].as_u64().expect("an id");
    let (status, _, body) = crate::common::http_get(
        &exporter.addr,
        &format!("/api/v1/tenant/pgb/sessions/{id}"),
        &[],
    )
    .expect("the detail");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, answer) = crate::common::http_delete(
        &exporter.addr,
        "/api/v1/tenant/pgb/sessions",
        &[],
        &format!("{{\"session_ids\": [{id}]}}"),
    );
    assert_eq!(status, 501, "{answer}");
    assert!(
        answer
            .to_string()
            .contains("no command that ends one client"),
        "{answer}"
    );
    let (status, _, body) =
        crate::common::http_get(&exporter.addr, "/api/v1/tenants", &[]).expect("tenants");
    assert_eq!(status, 200);
    let tenants: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let served = tenants["data"]["tenants"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["target"] == "pgb"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(served["kill"], false, "the page offers no kill: {tenants}");
    drop(sessions);
}

/// An account PgBouncer does not list in `stats_users` may not read the console:
/// one error, naming the setting.
#[test]
fn an_account_that_is_no_stats_user_is_told_which_setting() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let Some(bouncer) = servers.pgbouncer() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("app.password");
    std::fs::write(&password, &bouncer.app_password).unwrap();
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\ntargets:\n  - name: weak\n    kind: pgbouncer\n    address: {}\n    user: it_pgb\n    password_file: {}\n",
        bouncer.addr,
        password.display()
    ));
    exporter.wait_for_metrics("down", Duration::from_secs(20), |m| {
        m.get("dbsession_up", &[("target", "weak"), ("tenant", "weak")]) == Some(0.0)
    });
    exporter.wait_until(
        "the error names stats_users",
        Duration::from_secs(10),
        || exporter.log().contains("stats_users"),
    );
}

/// A private PgBouncer, made from the shared one's configuration on another port,
/// ended by its PID.
struct PrivateBouncer {
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivateBouncer {
    fn start(shared: &Pgbouncer) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::common::free_port();
        let ini = std::fs::read_to_string(&shared.ini).expect("the shared pgbouncer.ini");
        let private: String = ini
            .lines()
            .map(|line| match line.split_once('=').map(|(k, _)| k.trim()) {
                Some("listen_port") => format!("listen_port = {port}"),
                Some("unix_socket_dir") => "unix_socket_dir =".to_string(),
                Some("logfile") => format!("logfile = {}/pgbouncer.log", dir.path().display()),
                Some("pidfile") => format!("pidfile = {}/pgbouncer.pid", dir.path().display()),
                _ => line.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(dir.path().join("pgbouncer.ini"), private).unwrap();
        let bouncer = Self { dir, port };
        bouncer.run();
        bouncer
    }

    /// Starts it (as the postgres user when root: PgBouncer refuses root), detached.
    fn run(&self) {
        let ini = self.dir.path().join("pgbouncer.ini");
        let binary = ["/usr/sbin/pgbouncer", "pgbouncer"]
            .into_iter()
            .find(|b| !b.starts_with('/') || std::path::Path::new(b).exists())
            .unwrap();
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let status = if root {
            std::os::unix::fs::chown(self.dir.path(), Some(postgres_uid()), None).unwrap();
            std::process::Command::new("runuser")
                .args(["-u", "postgres", "--", binary, "-d"])
                .arg(&ini)
                .status()
        } else {
            std::process::Command::new(binary)
                .arg("-d")
                .arg(&ini)
                .status()
        }
        .expect("pgbouncer runs");
        assert!(status.success(), "pgbouncer -d failed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "the private PgBouncer listens");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ends it by the PID it wrote, and waits until it is gone.
    fn stop(&self) {
        let Ok(pid) = std::fs::read_to_string(self.dir.path().join("pgbouncer.pid")) else {
            return;
        };
        let pid = pid.trim().to_string();
        let _ = std::process::Command::new("kill").arg(&pid).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PrivateBouncer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn postgres_uid() -> u32 {
    let out = std::process::Command::new("id")
        .args(["-u", "postgres"])
        .output()
        .expect("id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("the postgres user")
}

/// A PgBouncer restarted is collected again within two intervals.
#[test]
fn a_restarted_pgbouncer_is_back_within_two_intervals() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let Some(bouncer) = servers.pgbouncer() else {
        return;
    };
    let private = PrivateBouncer::start(&bouncer);
    let addr = format!("127.0.0.1:{}", private.port);
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 1s\n  collect_timeout: 800ms\ntargets:\n{}",
        target_yaml("restarted", &addr, &servers)
    ));
    let up = |m: &Metrics| {
        m.get(
            "dbsession_up",
            &[("target", "restarted"), ("tenant", "restarted")],
        )
    };
    exporter.wait_for_metrics("up", Duration::from_secs(20), |m| up(m) == Some(1.0));
    private.stop();
    exporter.wait_for_metrics("down", Duration::from_secs(20), |m| up(m) == Some(0.0));
    private.run();
    let back = Instant::now();
    exporter.wait_for_metrics("back", Duration::from_secs(20), |m| up(m) == Some(1.0));
    assert!(
        // Two intervals, and the slack of a loaded machine's scrape.
        back.elapsed() <= Duration::from_secs(2) + Duration::from_millis(1500),
        "back after {:?}",
        back.elapsed()
    );
}

/// A PostgreSQL target behind the PgBouncer names each session it serves by the
/// real client (its address and application), in the metrics and the session API;
/// without `behind:`, the same sessions all come from PgBouncer's address.
#[test]
fn the_postgresql_behind_pgbouncer_names_the_real_clients() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let Some(bouncer) = servers.pgbouncer() else {
        return;
    };
    let _pool = take_the_pool(&servers);
    let clients = Clients::new(&bouncer.addr);
    let sources = ["127.0.0.121", "127.0.0.122"];
    let sessions: Vec<_> = sources
        .iter()
        .map(|from| {
            let session = clients.open_with(
                "it_pgb",
                &bouncer.app_password,
                "postgres",
                from,
                Some("it-real"),
            );
            clients.start(&session, "SELECT pg_sleep(30)");
            session
        })
        .collect();
    let pg = |name: &str, behind: &str| {
        format!(
            "  - name: {name}\n    kind: postgresql\n    address: {}\n    user: monitor\n    password_file: {}\n    sslmode: disable\n    filter: {{users: {{allow: [it_pgb]}}}}\n{behind}",
            servers.postgres_addr,
            servers.monitor_password_file.display()
        )
    };
    // A PgBouncer that does not answer: the target behind it goes on with the
    // pooler's addresses.
    let nobody = format!("127.0.0.1:{}", crate::common::free_port());
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\npassthrough:\n  enabled: true\n  insecure_no_auth: true\ntargets:\n{}{}{}{}{}",
        target_yaml("pgb", &bouncer.addr, &servers),
        target_yaml("gone", &nobody, &servers),
        pg("real", "    behind: [pgb]\n"),
        pg("plain", ""),
        pg("orphan", "    behind: [gone]\n"),
    ));
    let client = |m: &Metrics, target: &str, ip: &str| {
        m.get(
            "dbsession_client_sessions",
            &[("target", target), ("tenant", target), ("client_ip", ip)],
        )
    };
    let m = exporter.wait_for_metrics("the real clients", Duration::from_secs(30), |m| {
        sources.iter().all(|ip| client(m, "real", ip) == Some(1.0))
            && client(m, "orphan", "127.0.0.1").is_some()
            && client(m, "plain", "127.0.0.1").is_some()
    });
    assert_eq!(
        client(&m, "real", "127.0.0.1"),
        None,
        "no session left at PgBouncer's address"
    );
    assert_eq!(
        m.get(
            "dbsession_application_sessions",
            &[
                ("target", "real"),
                ("tenant", "real"),
                ("application", "it-real")
            ]
        ),
        Some(2.0)
    );
    assert_eq!(
        client(&m, "plain", "127.0.0.1"),
        Some(2.0),
        "without behind: every session from PgBouncer's address"
    );
    assert_eq!(
        client(&m, "orphan", "127.0.0.1"),
        Some(2.0),
        "behind a PgBouncer that does not answer: PgBouncer's address"
    );
    assert_eq!(
        m.get(
            "dbsession_up",
            &[("target", "orphan"), ("tenant", "orphan")]
        ),
        Some(1.0)
    );
    let (status, _, body) =
        crate::common::http_get(&exporter.addr, "/api/v1/tenant/real/sessions?size=10", &[])
            .expect("the list");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let list: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let mut hosts: Vec<String> = list["data"]["contents"]
        .as_array()
        .expect("contents")
        .iter()
        .map(|s| s["host"].as_str().unwrap_or_default().to_string())
        .collect();
    hosts.sort();
    assert_eq!(hosts, sources, "{list}");
    drop(sessions);
}
