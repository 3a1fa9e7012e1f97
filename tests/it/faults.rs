//! Faults injected for real, on loopback: wrong credentials, a name that does not
//! resolve, a server that answers too slowly, a server out of connections, a target
//! removed by reload while its query hangs. For each, the reason label and log say
//! what happened, and the healthy target beside it stays fresh every interval.

use crate::common::{Exporter, Metrics, PrivateMariadb, Servers};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Configuration of the healthy seekdb target every test keeps beside its faulty ones.
fn healthy(servers: &Servers) -> String {
    format!(
        "  - name: healthy\n    kind: oceanbase\n    address: {}\n    user: monitor\n    password_file: {}\n",
        servers.seekdb_addr,
        servers.monitor_password_file.display()
    )
}

fn last_success(m: &Metrics) -> Option<f64> {
    m.get(
        "dbsession_last_collect_success_timestamp_seconds",
        &[("target", "healthy")],
    )
}

fn errors(m: &Metrics, target: &str, reason: &str) -> f64 {
    m.get(
        "dbsession_collect_errors_total",
        &[("target", target), ("reason", reason)],
    )
    .unwrap_or(0.0)
}

/// Waits until each faulty target has failed `times` times with its expected reason,
/// then checks the healthy target kept collecting every interval meanwhile.
fn expect_failures(exporter: &Exporter, expected: &[(&str, &str)], times: f64) -> Metrics {
    let first =
        exporter.wait_for_metrics("the healthy target is up", Duration::from_secs(30), |m| {
            last_success(m).is_some()
        });
    let start = last_success(&first).unwrap();
    let m = exporter.wait_for_metrics(
        &format!("every faulty target failed {times} times with its reason: {expected:?}"),
        Duration::from_secs(60),
        |m| {
            expected
                .iter()
                .all(|(target, reason)| errors(m, target, reason) >= times)
        },
    );
    for (target, _) in expected {
        // `tenant` is the target's name, or empty for OceanBase before any tenant is known.
        let up = m.matching("dbsession_up", &[("target", target)]);
        assert!(
            !up.is_empty() && up.iter().all(|(_, v)| *v == 0.0),
            "{target} is down: {up:?}"
        );
    }
    // The healthy target advanced while the others failed (interval 500 ms).
    let fresh = exporter.wait_for_metrics(
        "the healthy target keeps collecting",
        Duration::from_secs(5),
        |m| last_success(m).is_some_and(|t| t > start),
    );
    assert_eq!(
        fresh.get(
            "dbsession_up",
            &[("target", "healthy"), ("tenant", "healthy")]
        ),
        Some(1.0)
    );
    fresh
}

/// How many log lines name `target` (the exporter rate-limits repeated failures).
fn log_lines(exporter: &Exporter, target: &str) -> usize {
    exporter
        .log()
        .lines()
        .filter(|l| l.contains(&format!("target={target}")) && !l.contains("level=debug"))
        .count()
}

#[test]
fn credentials_names_and_exhausted_servers_have_their_reason() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let password = servers.monitor_password();
    let full = PrivateMariadb::start(&password);
    // Out of connections: sessions that stay open take every slot (10 is MariaDB's
    // smallest max_connections; open until it refuses).
    full.root("SET GLOBAL max_connections = 10");
    let mut hold: Vec<mysql::Conn> = Vec::new();
    for _ in 0..20 {
        let opts = mysql::OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(full.port)
            .user(Some("monitor"))
            .pass(Some(password.as_str()))
            .prefer_socket(false);
        match mysql::Conn::new(opts) {
            Ok(conn) => hold.push(conn),
            Err(_) => break,
        }
    }
    assert!(hold.len() < 20, "the server never ran out of connections");
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\ntargets:\n{}  - name: wrongpw\n    kind: mysql\n    address: {}\n    user: monitor\n    password: not-the-password\n  - name: nowhere\n    kind: mysql\n    address: no-such-host.invalid:3306\n    user: monitor\n  - name: full\n    kind: mysql\n    address: {}\n    user: monitor\n    password_file: {}\n",
        healthy(&servers),
        servers.mariadb_addr,
        full.addr(),
        servers.monitor_password_file.display(),
    ));
    expect_failures(
        &exporter,
        &[
            ("wrongpw", "auth"),
            ("nowhere", "connect"),
            ("full", "connect"),
        ],
        6.0,
    );
    let log = exporter.log();
    for (target, says) in [
        ("wrongpw", "password"),
        ("nowhere", "no-such-host.invalid"),
        ("full", "connections"),
    ] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("target={target}")) && l.contains("level=warn"))
            .unwrap_or_else(|| panic!("no log line for {target}\n{log}"));
        assert!(line.to_lowercase().contains(says), "{target}: {line}");
        // Six failures or more, logged a couple of times, not every cycle.
        assert!(
            log_lines(&exporter, target) <= 3,
            "{target} floods the log:\n{log}"
        );
    }
    drop(hold);
}

/// A proxy in front of a real server that holds every byte the server sends for
/// `delay`: the server answers, too slowly.
struct SlowProxy {
    addr: String,
}

impl SlowProxy {
    fn start(upstream: String, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            // Bounded: a test opens a handful of connections.
            for client in listener.incoming().take(64).flatten() {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || relay(c2, s2, Duration::ZERO));
                std::thread::spawn(move || relay(server, client, delay));
            }
        });
        Self { addr }
    }
}

fn relay(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let mut buf = [0u8; 16 * 1024];
    // Ends at EOF or error: the exporter drops timed-out connections.
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        std::thread::sleep(delay);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

#[test]
fn a_server_answering_too_slowly_times_out() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let slow = SlowProxy::start(servers.mariadb_addr.clone(), Duration::from_millis(700));
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\ntargets:\n{}  - name: slow\n    kind: mysql\n    address: {}\n    user: monitor\n    password_file: {}\n",
        healthy(&servers),
        slow.addr,
        servers.monitor_password_file.display(),
    ));
    expect_failures(&exporter, &[("slow", "timeout")], 3.0);
    assert!(
        exporter.log().contains("collect_timeout"),
        "{}",
        exporter.log()
    );
}

#[test]
fn a_target_removed_while_its_query_hangs_goes_at_once() {
    let Some(servers) = Servers::get() else {
        return;
    };
    // Accepts and never answers; the cycle would hang for collect_timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    silent.set_nonblocking(true).unwrap();
    // Holds what connects, for 15 s at most, then ends on its own.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        let end = Instant::now() + Duration::from_secs(15);
        while Instant::now() < end {
            if let Ok((stream, _)) = silent.accept() {
                held.push(stream);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let config = |with_silent: bool| {
        let mut text = format!(
            "global:\n  collect_interval: 10s\n  collect_timeout: 8s\ntargets:\n{}",
            healthy(&servers)
        );
        if with_silent {
            text.push_str(&format!(
                "  - name: hang\n    kind: mysql\n    address: {silent_addr}\n    user: monitor\n"
            ));
        }
        text
    };
    let exporter = Exporter::start_with(&config(true), &["--web.enable-lifecycle"]);
    exporter.wait_for_metrics("the healthy target is up", Duration::from_secs(30), |m| {
        last_success(m).is_some()
    });
    // The hanging target's first cycle is in flight (8 s timeout); remove it.
    std::fs::write(exporter.dir.path().join("config.yaml"), config(false)).unwrap();
    let started = Instant::now();
    let answer = crate::common::http_post(&exporter.addr, "/-/reload");
    assert_eq!(answer.map(|(status, _)| status), Some(200));
    let m = exporter.wait_for_metrics(
        "the removed target's series are gone",
        Duration::from_secs(3),
        |m| !m.text.contains("target=\"hang\""),
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(last_success(&m).is_some());
}

const HOSTILE: &str = r#"
CREATE DATABASE IF NOT EXISTS it_hostile;
DROP TABLE IF EXISTS it_hostile.`GV$OB_PROCESSLIST`;
DROP TABLE IF EXISTS it_hostile.`DBA_OB_TENANTS`;
CREATE TABLE it_hostile.`DBA_OB_TENANTS` (TENANT_ID BIGINT, TENANT_NAME VARCHAR(128), TENANT_TYPE VARCHAR(16));
CREATE TABLE it_hostile.`GV$OB_PROCESSLIST` (
  ID BIGINT, TENANT VARCHAR(128), SVR_IP VARCHAR(46), USER MEDIUMTEXT, HOST TEXT, DB VARBINARY(255),
  COMMAND VARCHAR(32), TIME DOUBLE, STATE VARCHAR(32), INFO TEXT, USER_CLIENT_IP VARCHAR(255), SQL_ID VARCHAR(64));
INSERT INTO it_hostile.`DBA_OB_TENANTS` VALUES (1002, 't1', 'USER'), (1004, 'empty', 'USER');
INSERT INTO it_hostile.`GV$OB_PROCESSLIST` VALUES
  (1, 't1', '10.0.0.1', REPEAT('u', 65536), '10.1.1.1:1', X'FF00FE', 'Query', 1, 'ACTIVE', NULL, '', 'S1'),
  (2, 't1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (3, 't1', '', '', '', '', '', 0, '', '', '', ''),
  (4, 't1', '10.0.0.1', 'quote"back\\slash', 'new\nline:2', 'db\n"x"', 'Query', -5, 'ACTIVE', 'x', 'not an ip', ''),
  (5, 't1', '10.0.0.1', 'émoji 🦀', '[::ffff:10.1.1.5]:3', 'ünï', 'Sleep', 1e300, 'SLEEP', NULL, NULL, NULL);
"#;

/// Whatever the database puts in names (NULL everywhere, empty strings, a 64 KiB user
/// name, bytes that are not UTF-8, quotes, backslashes, newlines, absurd times), the
/// exposition stays valid for promtool and the counts stay right.
#[test]
fn hostile_database_answers_give_a_valid_exposition() {
    let Some(servers) = Servers::get() else {
        return;
    };
    servers.seekdb_root(HOSTILE);
    servers.seekdb_root("GRANT SELECT ON it_hostile.* TO monitor");
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\n  max_series_per_dimension: 0\ntargets:\n  - name: hostile\n    kind: oceanbase\n    address: {}\n    user: monitor@sys\n    password_file: {}\n    processlist_view: it_hostile.GV$OB_PROCESSLIST\n    tenants_view: it_hostile.DBA_OB_TENANTS\n",
        servers.seekdb_addr,
        servers.monitor_password_file.display(),
    ));
    let m = exporter.wait_for_metrics(
        "the hostile tenant is collected",
        Duration::from_secs(30),
        |m| m.get("dbsession_up", &[("target", "hostile"), ("tenant", "t1")]) == Some(1.0),
    );
    assert_eq!(
        m.get(
            "dbsession_sessions",
            &[("target", "hostile"), ("tenant", "t1")]
        ),
        Some(5.0)
    );
    assert_eq!(
        m.get(
            "dbsession_sessions",
            &[("target", "hostile"), ("tenant", "empty")]
        ),
        Some(0.0)
    );
    let (_, _, classic) = exporter.try_get("/metrics").expect("classic exposition");
    assert!(classic.len() > 65_536, "the 64 KiB user name is exported");
    crate::common::promtool_check_metrics(&classic);
    // Still alive and collecting after many cycles of it.
    exporter.wait_for_metrics("more cycles", Duration::from_secs(10), |m| {
        m.get(
            "dbsession_collect_errors_total",
            &[("target", "hostile"), ("reason", "query")],
        )
        .unwrap_or(0.0)
            == 0.0
            && m.get("dbsession_up", &[("target", "hostile"), ("tenant", "t1")]) == Some(1.0)
    });
}

/// An account without access to the processlist view: reason `auth`, and the log
/// line gives the GRANT to run.
#[test]
fn a_missing_privilege_names_the_grant() {
    let Some(servers) = Servers::get() else {
        return;
    };
    servers.seekdb_root("CREATE USER IF NOT EXISTS it_noview IDENTIFIED BY 'Noview-pw-1'");
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\ntargets:\n{}  - name: noview\n    kind: oceanbase\n    address: {}\n    user: it_noview\n    password: Noview-pw-1\n",
        healthy(&servers),
        servers.seekdb_addr,
    ));
    expect_failures(&exporter, &[("noview", "auth")], 3.0);
    let log = exporter.log();
    let line = log
        .lines()
        .find(|l| l.contains("target=noview") && l.contains("level=warn"))
        .unwrap_or_else(|| panic!("no warning for noview\n{log}"));
    assert!(line.contains("GRANT SELECT ON oceanbase"), "{line}");
}

/// A MySQL/MariaDB account without PROCESS gets no error from the server, only its own
/// sessions: the exporter says so, with the GRANT to run.
#[test]
fn an_account_without_process_is_warned_about() {
    let Some(servers) = Servers::get() else {
        return;
    };
    servers.mariadb_root(
        "CREATE USER IF NOT EXISTS 'it_noproc'@'%' IDENTIFIED BY 'Noproc-pw-1'; \
         REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'it_noproc'@'%'",
    );
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\ntargets:\n  - name: noproc\n    kind: mysql\n    address: {}\n    user: it_noproc\n    password: Noproc-pw-1\n  - name: granted\n    kind: mysql\n    address: {}\n    user: monitor\n    password_file: {}\n",
        servers.mariadb_addr,
        servers.mariadb_addr,
        servers.monitor_password_file.display(),
    ));
    exporter.wait_until("the warning is logged", Duration::from_secs(30), || {
        exporter
            .log()
            .lines()
            .any(|l| l.contains("target=noproc") && l.contains("lacks the PROCESS privilege"))
    });
    exporter.wait_for_metrics("both targets are up", Duration::from_secs(30), |m| {
        m.get(
            "dbsession_up",
            &[("target", "noproc"), ("tenant", "noproc")],
        ) == Some(1.0)
            && m.get(
                "dbsession_up",
                &[("target", "granted"), ("tenant", "granted")],
            ) == Some(1.0)
    });
    std::thread::sleep(Duration::from_secs(2));
    let log = exporter.log();
    assert!(
        !log.lines()
            .any(|l| l.contains("target=granted") && l.contains("lacks the PROCESS")),
        "{log}"
    );
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("lacks the PROCESS"))
            .count(),
        1,
        "warned once per pool, not every cycle:\n{log}"
    );
}
