//! The exporter never makes an outage worse (postgres_exporter#1228 piled up 53
//! connections during a lock; nbari/pg_exporter#23 used up every connection behind an
//! `ALTER TABLE`). A MariaDB held in a metadata-lock queue, a PostgreSQL held in a
//! lock queue, and a server stopped with SIGSTOP for three intervals, each while the
//! session API is called for it over and over: the exporter holds at most its
//! collection pool's connections plus `max_concurrent_per_target` (the server's
//! sessions of its account, in the queues; its own sockets, for the stopped
//! server, which holds nothing of its own), `up` is 0 for the
//! stalled target only, the others are collected on time, and everything is back
//! within two intervals of the stall's end.

use crate::common::{http_get, Exporter, Metrics, PrivateMariadb, Servers};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Connections a target's collection may hold (the pool's maximum).
const COLLECTION_POOL: usize = 2;
/// The session API's `max_concurrent_per_target` in these tests.
const API_CONCURRENCY: usize = 2;
const INTERVAL: Duration = Duration::from_secs(1);

/// The exporter's configuration: `targets` (YAML entries) collected every second,
/// the session API open on loopback with [`API_CONCURRENCY`] per target.
fn exporter(targets: &str) -> Exporter {
    Exporter::start(&format!(
        "global:\n  collect_interval: 1s\n  collect_timeout: 800ms\npassthrough:\n  enabled: true\n  insecure_no_auth: true\n  max_concurrent_per_target: {API_CONCURRENCY}\ntargets:\n{targets}"
    ))
}

/// The exporter's TCP connections to `port` on loopback, from its own sockets,
/// connecting or established.
fn connections_to(pid: u32, port: u16) -> usize {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter_map(|link| {
                    let link = link.to_string_lossy().into_owned();
                    Some(
                        link.strip_prefix("socket:[")?
                            .strip_suffix(']')?
                            .to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let remote_port = fields
                .get(2)
                .and_then(|remote| remote.rsplit(':').next())
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            // Connecting or established: a socket being closed holds no session.
            remote_port == Some(port)
                && matches!(fields.get(3), Some(&"01") | Some(&"02"))
                && fields.get(9).is_some_and(|inode| inodes.contains(*inode))
        })
        .count()
}

/// Calls the session API for `tenant` (list, stats, pile-up) from four threads
/// until `stop`, at most 2,000 requests each.
fn hammer(addr: &str, tenant: &str, stop: &AtomicBool) {
    std::thread::scope(|scope| {
        for i in 0..4 {
            scope.spawn(move || {
                let paths = [
                    format!("/api/v1/tenant/{tenant}/sessions?page=1&size=10"),
                    format!("/api/v1/tenant/{tenant}/sessions/stats"),
                    format!("/api/v1/tenant/{tenant}/sessions/pileup"),
                ];
                for n in 0..2000 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let _ = http_get(addr, &paths[(n + i) % paths.len()], &[]);
                }
            });
        }
    });
}

/// While `stall` lasts (it returns when the stall is over), the API is hammered for
/// `tenant` and the exporter's connections to `port` are counted; returns the most
/// seen, and the metrics read last during the stall.
fn during<T>(
    exporter: &Exporter,
    tenant: &str,
    port: u16,
    stall: impl FnOnce() -> T,
) -> (usize, T) {
    let stop = AtomicBool::new(false);
    let most = std::sync::atomic::AtomicUsize::new(0);
    let pid = exporter.pid();
    /// Stops the helpers however the stall ends: a failed assertion in it must not
    /// leave them running (the scope waits for them).
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let result = std::thread::scope(|scope| {
        scope.spawn(|| hammer(&exporter.addr, tenant, &stop));
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                most.fetch_max(connections_to(pid, port), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let _stop = Stop(&stop);
        stall()
    });
    (most.load(Ordering::Relaxed), result)
}

fn up(m: &Metrics, target: &str) -> Option<f64> {
    m.get("dbsession_up", &[("target", target), ("tenant", target)])
}

fn last_success(m: &Metrics, target: &str) -> f64 {
    m.get(
        "dbsession_last_collect_success_timestamp_seconds",
        &[("target", target)],
    )
    .unwrap_or(0.0)
}

/// A server stopped with SIGSTOP accepts connections (the kernel does) and never
/// answers: its target times out each cycle, the API's requests wait and fail; no
/// connection piles up, the healthy target goes on, and both recover.
#[test]
fn a_stopped_server_costs_no_more_connections_and_blinds_nothing_else() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let stopped = PrivateMariadb::start("It-amp-mon-1");
    let exporter = exporter(&format!(
        "  - name: stopped\n    kind: mysql\n    address: {}\n    user: monitor\n    password: It-amp-mon-1\n  - name: healthy\n    kind: postgresql\n    address: {}\n    user: monitor\n    password_file: {}\n    sslmode: disable\n",
        stopped.addr(),
        servers.postgres_addr,
        servers.monitor_password_file.display()
    ));
    exporter.wait_for_metrics("both are up", Duration::from_secs(30), |m| {
        up(m, "stopped") == Some(1.0) && up(m, "healthy") == Some(1.0)
    });
    let signal = |name: &str| {
        let status = std::process::Command::new("kill")
            .args([name, &stopped.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {name}");
    };
    let (most, seen) = during(&exporter, "stopped", stopped.port, || {
        signal("-STOP");
        let started = Instant::now();
        let seen = exporter.wait_for_metrics(
            "the stopped target is down, the healthy one up",
            Duration::from_secs(20),
            |m| up(m, "stopped") == Some(0.0) && up(m, "healthy") == Some(1.0),
        );
        // Three intervals of stall, the healthy target collected all along.
        let before = last_success(&seen, "healthy");
        std::thread::sleep((3 * INTERVAL).saturating_sub(started.elapsed()) + INTERVAL);
        let after = exporter.metrics();
        let read_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is past 1970")
            .as_secs_f64();
        signal("-CONT");
        (before, after, read_at)
    });
    let (before, after, read_at) = seen;
    assert_eq!(up(&after, "stopped"), Some(0.0));
    assert_eq!(
        up(&after, "healthy"),
        Some(1.0),
        "only the stopped one is down"
    );
    // Collected on time: its last success at most two intervals (and a loaded
    // machine's second) before the read, late in the stall.
    let fresh = last_success(&after, "healthy");
    assert!(
        fresh > before && read_at - fresh <= 2.0 * INTERVAL.as_secs_f64() + 1.0,
        "the healthy target is collected on time during the stall: last success {fresh}, read at {read_at}"
    );
    assert!(
        most <= COLLECTION_POOL + API_CONCURRENCY,
        "{most} connections to the stopped server, more than the pool's {COLLECTION_POOL} and the API's {API_CONCURRENCY}"
    );
    assert!(most >= 1, "the exporter was seen connected");
    let resumed = Instant::now();
    exporter.wait_for_metrics("the stopped target is back", Duration::from_secs(20), |m| {
        up(m, "stopped") == Some(1.0)
    });
    assert!(
        // Two intervals, and the slack of a loaded machine's scrape and startup.
        resumed.elapsed() <= 2 * INTERVAL + Duration::from_secs(3),
        "back within two intervals: {:?}",
        resumed.elapsed()
    );
}

/// MariaDB held in a metadata-lock queue (an idle transaction that read a table, an
/// `ALTER TABLE` behind it, statements behind the `ALTER`): the exporter's reads do
/// not queue behind it, and hold no more connections than their pools.
#[test]
fn a_metadata_lock_queue_piles_up_no_connection_of_ours() {
    use mysql::prelude::Queryable;
    let Some(servers) = Servers::get() else {
        return;
    };
    servers.mariadb_root(
        "CREATE DATABASE IF NOT EXISTS it_amp; \
         CREATE OR REPLACE TABLE it_amp.t (id INT PRIMARY KEY) ENGINE=InnoDB; \
         INSERT INTO it_amp.t VALUES (1); \
         CREATE USER IF NOT EXISTS 'it_amp_app'@'%' IDENTIFIED BY 'It-amp-1'; \
         GRANT ALL ON it_amp.* TO 'it_amp_app'@'%'; \
         CREATE USER IF NOT EXISTS 'it_amp_mon'@'%' IDENTIFIED BY 'It-amp-mon-1'; \
         GRANT PROCESS ON *.* TO 'it_amp_mon'@'%'; \
         GRANT SELECT ON performance_schema.* TO 'it_amp_mon'@'%'",
    );
    let exporter = exporter(&format!(
        "  - name: queued\n    kind: mysql\n    address: {}\n    user: it_amp_mon\n    password: It-amp-mon-1\n    filter: {{users: {{allow: [it_amp_app]}}}}\n  - name: healthy\n    kind: oceanbase\n    address: {}\n    user: monitor\n    password_file: {}\n",
        servers.mariadb_addr,
        servers.seekdb_addr,
        servers.monitor_password_file.display()
    ));
    exporter.wait_for_metrics("both are up", Duration::from_secs(30), |m| {
        up(m, "queued") == Some(1.0) && up(m, "healthy") == Some(1.0)
    });
    let ours = || -> usize {
        servers
            .mariadb_root(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'it_amp_mon'",
            )
            .trim()
            .parse()
            .unwrap()
    };
    let connect = |from: &str| {
        crate::common::connect_as(&servers.mariadb_addr, "it_amp_app", "It-amp-1", from)
    };
    let mut holder = connect("127.0.0.82");
    holder.query_drop("BEGIN").unwrap();
    let _: Vec<i32> = holder.query("SELECT id FROM it_amp.t").unwrap();
    let wait = ["SET SESSION lock_wait_timeout = 60"];
    let queue: Vec<crate::common::Blocked> = [
        ("127.0.0.83", "ALTER TABLE it_amp.t ADD COLUMN c INT"),
        ("127.0.0.84", "SELECT id FROM it_amp.t"),
        ("127.0.0.85", "SELECT id FROM it_amp.t"),
    ]
    .into_iter()
    .map(|(from, sql)| {
        let blocked = crate::common::Blocked::start(
            connect(from),
            &wait,
            sql,
            Box::new(servers.mariadb_killer()),
        );
        // In this order: the readers queue behind the ALTER, not before it.
        std::thread::sleep(Duration::from_millis(300));
        blocked
    })
    .collect();
    let port: u16 = servers
        .mariadb_addr
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (most, most_sessions) = during(&exporter, "queued", port, || {
        let mut most_sessions = 0;
        let started = Instant::now();
        while started.elapsed() < 3 * INTERVAL {
            most_sessions = most_sessions.max(ours());
            std::thread::sleep(Duration::from_millis(100));
        }
        let m = exporter.wait_for_metrics("the queue is seen", Duration::from_secs(10), |m| {
            m.get(
                "dbsession_lock_waiting_sessions",
                &[("target", "queued"), ("tenant", "queued")],
            ) == Some(3.0)
        });
        assert_eq!(up(&m, "queued"), Some(1.0), "collected through the queue");
        assert_eq!(up(&m, "healthy"), Some(1.0));
        most_sessions
    });
    // What the server holds for us, its sessions of the exporter's account, is the
    // bound. Our side may for a moment still hold a socket the server has let go
    // (an API connection being closed while the next request connects): seen, not
    // bounded here (see `most`).
    let bound = COLLECTION_POOL + API_CONCURRENCY;
    assert!(
        most_sessions <= bound,
        "{most_sessions} sessions, more than {bound} ({most} sockets of ours)"
    );
    assert!(most >= 1, "the exporter was seen connected");
    drop(queue);
    drop(holder);
}

/// PostgreSQL held in a lock queue: a transaction that read a table, an `ALTER
/// TABLE` waiting for it, statements waiting behind the `ALTER`. The exporter's
/// reads of `pg_stat_activity` take no lock on the table and do not queue.
#[test]
fn a_postgresql_lock_queue_piles_up_no_connection_of_ours() {
    use crate::common::PsqlSession;
    let Some(servers) = Servers::get() else {
        return;
    };
    let admin = |sql: &str| servers.postgres_admin(sql);
    servers.postgres_role("it_amp_pg", "It-amp-pg-1", "");
    servers.postgres_role("it_amp_pgmon", "It-amp-pgmon-1", "");
    admin("GRANT pg_monitor TO it_amp_pgmon");
    servers.postgres_database("it_amp_pgdb");
    admin("ALTER DATABASE it_amp_pgdb OWNER TO it_amp_pg");
    let end = || {
        admin(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE usename = 'it_amp_pg'",
        )
    };
    end();
    let session = |application: &str, sql: &str| {
        PsqlSession::run(
            &servers.postgres_addr,
            "it_amp_pg",
            "It-amp-pg-1",
            "it_amp_pgdb",
            Some(application),
            sql,
        )
    };
    let (host, port) = crate::common::split_addr(&servers.postgres_addr);
    let created = std::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-h",
            host,
            "-p",
            port,
            "-U",
            "it_amp_pg",
            "-d",
            "it_amp_pgdb",
        ])
        .args(["-c", "DROP TABLE IF EXISTS t; CREATE TABLE t (id int)"])
        .env("PGPASSWORD", "It-amp-pg-1")
        .status()
        .expect("psql");
    assert!(created.success());
    let exporter = exporter(&format!(
        "  - name: queued\n    kind: postgresql\n    address: {}\n    user: it_amp_pgmon\n    password: It-amp-pgmon-1\n    sslmode: disable\n    filter: {{users: {{allow: [it_amp_pg]}}}}\n  - name: healthy\n    kind: oceanbase\n    address: {}\n    user: monitor\n    password_file: {pw}\n",
        servers.postgres_addr,
        servers.seekdb_addr,
        pw = servers.monitor_password_file.display()
    ));
    let _holder = session(
        "amp-holder",
        "BEGIN; SELECT count(*) FROM t; SELECT pg_sleep(600)",
    );
    std::thread::sleep(Duration::from_millis(500));
    let _alter = session("amp-alter", "ALTER TABLE t ADD COLUMN c int");
    std::thread::sleep(Duration::from_millis(300));
    let _readers = [
        session("amp-r1", "SELECT * FROM t"),
        session("amp-r2", "SELECT * FROM t"),
    ];
    let port: u16 = servers
        .postgres_addr
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let ours = || -> usize {
        admin("SELECT count(*) FROM pg_stat_activity WHERE usename = 'it_amp_pgmon'")
            .trim()
            .parse()
            .unwrap()
    };
    let (most, most_sessions) = during(&exporter, "queued", port, || {
        let m = exporter.wait_for_metrics("the queue is seen", Duration::from_secs(20), |m| {
            m.get(
                "dbsession_lock_waiting_sessions",
                &[("target", "queued"), ("tenant", "queued")],
            ) == Some(3.0)
        });
        assert_eq!(up(&m, "healthy"), Some(1.0));
        let (started, mut most_sessions) = (Instant::now(), 0);
        while started.elapsed() < 3 * INTERVAL {
            most_sessions = most_sessions.max(ours());
            std::thread::sleep(Duration::from_millis(100));
        }
        let m = exporter.metrics();
        assert_eq!(up(&m, "queued"), Some(1.0), "collected through the queue");
        assert_eq!(up(&m, "healthy"), Some(1.0));
        most_sessions
    });
    end();
    // The server's sessions of the exporter's account: PostgreSQL's collection holds
    // one client, the API's pool its own.
    let bound = COLLECTION_POOL + API_CONCURRENCY;
    assert!(
        most_sessions <= bound,
        "{most_sessions} sessions, more than {bound} ({most} sockets of ours)"
    );
    assert!(most >= 1, "the exporter was seen connected");
}
