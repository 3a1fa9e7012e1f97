//! MariaDB, for real: outage isolation and recovery, limits and deadlocks, waits and
//! applications (its exact gauges are in `exclusive.rs`).

use crate::common::{connect_as, deadlock, Blocked, Exporter, PrivateMariadb, Servers};
use std::time::Duration;

/// One server dies: its `up` drops to 0 with a reason, its session series go, the
/// other target stays fresh; the server comes back and so does its data, without
/// restarting the exporter.
#[test]
fn an_outage_is_isolated_and_recovers() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let password = servers.monitor_password();
    let mut private = PrivateMariadb::start(&password);
    let pw = servers.monitor_password_file.display();
    let exporter = Exporter::start(&format!(
        r#"global:
  collect_interval: 500ms
  collect_timeout: 400ms
targets:
  - name: doomed
    kind: mysql
    address: {}
    user: monitor
    password_file: {pw}
  - name: seek
    kind: oceanbase
    address: {}
    user: monitor
    password_file: {pw}
"#,
        private.addr(),
        servers.seekdb_addr,
    ));
    let doomed = [("target", "doomed"), ("tenant", "doomed")];
    let seek = [("target", "seek"), ("tenant", "seek")];
    exporter.wait_for_metrics("both targets are up", Duration::from_secs(30), |m| {
        m.get("dbsession_up", &doomed) == Some(1.0) && m.get("dbsession_up", &seek) == Some(1.0)
    });

    private.kill();
    let down = exporter.wait_for_metrics(
        "the killed server reports up 0",
        Duration::from_secs(10),
        |m| m.get("dbsession_up", &doomed) == Some(0.0),
    );
    assert_eq!(
        down.get("dbsession_sessions", &doomed),
        None,
        "stale session series are dropped"
    );
    assert_eq!(down.get("dbsession_up", &seek), Some(1.0));

    // The other target keeps collecting every interval while this one is down.
    let last_success = |m: &crate::common::Metrics| {
        m.get(
            "dbsession_last_collect_success_timestamp_seconds",
            &[("target", "seek")],
        )
        .expect("seek last success")
    };
    let first = last_success(&down);
    let later = exporter.wait_for_metrics("seekdb stays fresh", Duration::from_secs(10), |m| {
        last_success(m) >= first + 1.5
    });
    assert_eq!(later.get("dbsession_up", &seek), Some(1.0));
    let errors = later.get(
        "dbsession_collect_errors_total",
        &[("target", "doomed"), ("reason", "connect")],
    );
    assert!(
        errors.is_some_and(|e| e >= 1.0),
        "connect errors counted: {errors:?}"
    );
    assert!(later
        .get(
            "dbsession_last_collect_success_timestamp_seconds",
            &[("target", "doomed")]
        )
        .is_some_and(|t| t < first + 1.5));

    private.restart();
    exporter.wait_for_metrics(
        "the restarted server is collected again",
        Duration::from_secs(20),
        |m| {
            m.get("dbsession_up", &doomed) == Some(1.0)
                && m.get("dbsession_sessions", &doomed).is_some()
        },
    );

    // However long the outage, its error was logged a few times, not once per cycle.
    let log = exporter.log();
    let warnings = log
        .lines()
        .filter(|l| l.contains("level=warn") && l.contains("target=doomed"))
        .count();
    let failures = later
        .get(
            "dbsession_collect_errors_total",
            &[("target", "doomed"), ("reason", "connect")],
        )
        .unwrap_or(0.0)
        + later
            .get(
                "dbsession_collect_errors_total",
                &[("target", "doomed"), ("reason", "timeout")],
            )
            .unwrap_or(0.0);
    assert!(
        (1..=3).contains(&warnings),
        "{warnings} warnings for {failures} failures:\n{log}"
    );
    assert!(
        log.contains("collection recovered") && log.contains("target=doomed"),
        "{log}"
    );
}

/// Limits and a real deadlock against what the server says: `max_connections` for
/// both accounts; an account's `MAX_USER_CONNECTIONS 2` only for the one that may read
/// `mysql.user` (the other is warned, once, naming the grant); `Innodb_deadlocks` one
/// more after two sessions deadlock.
#[test]
fn limits_with_and_without_the_grant_and_a_real_deadlock() {
    use mysql::prelude::Queryable;
    let Some(servers) = Servers::get() else {
        return;
    };
    let root = |sql: &str| servers.mariadb_root(sql).trim().to_string();
    root(
        "CREATE DATABASE IF NOT EXISTS it_m_limdb; \
         CREATE USER IF NOT EXISTS 'it_m_lim'@'%' IDENTIFIED BY 'It-lim-1'; \
         ALTER USER 'it_m_lim'@'%' WITH MAX_USER_CONNECTIONS 2; \
         GRANT ALL ON it_m_limdb.* TO 'it_m_lim'@'%'; \
         CREATE USER IF NOT EXISTS 'it_m_mon'@'%' IDENTIFIED BY 'It-mon-1'; \
         GRANT PROCESS ON *.* TO 'it_m_mon'@'%'; GRANT SELECT ON mysql.user TO 'it_m_mon'@'%'",
    );
    // The session API too, for obshell's SDK to list the deadlock; `blind`'s account
    // may not read InnoDB's status.
    root(
        "CREATE USER IF NOT EXISTS 'it_m_blind'@'%' IDENTIFIED BY 'It-blind-1'; \
         REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'it_m_blind'@'%'",
    );
    let dir = tempfile::tempdir().unwrap();
    let obshell = dir.path().join("obshell.password");
    std::fs::write(&obshell, "M-obshell-1\n").unwrap();
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\npassthrough:\n  enabled: true\n  obshell_auth:\n    password_file: {ob}\ntargets:\n  - name: plain\n    kind: mysql\n    address: {addr}\n    user: monitor\n    password_file: {pw}\n    limits_interval: 1s\n    filter: {{users: {{allow: [it_m_lim]}}}}\n  - name: granted\n    kind: mysql\n    address: {addr}\n    user: it_m_mon\n    password: It-mon-1\n    limits_interval: 1s\n    filter: {{users: {{allow: [it_m_lim]}}}}\n  - name: blind\n    kind: mysql\n    address: {addr}\n    user: it_m_blind\n    password: It-blind-1\n",
        ob = obshell.display(),
        addr = servers.mariadb_addr,
        pw = servers.monitor_password_file.display()
    ));
    let mut a = connect_as(&servers.mariadb_addr, "it_m_lim", "It-lim-1", "127.0.0.60");
    let b = connect_as(&servers.mariadb_addr, "it_m_lim", "It-lim-1", "127.0.0.60");
    a.query_drop(
        "CREATE TABLE IF NOT EXISTS it_m_limdb.d (id INT PRIMARY KEY, v INT) ENGINE = InnoDB",
    )
    .unwrap();
    a.query_drop("REPLACE INTO it_m_limdb.d VALUES (1, 1), (2, 2)")
        .unwrap();
    let max: f64 = root("SELECT @@GLOBAL.max_connections").parse().unwrap();
    let plain = [("target", "plain"), ("tenant", "plain")];
    let granted = [("target", "granted"), ("tenant", "granted")];
    let user = |t: &[(&'static str, &'static str); 2]| [t[0], t[1], ("user", "it_m_lim")];
    let m = exporter.wait_for_metrics("both read the limits", Duration::from_secs(30), |m| {
        m.get("dbsession_user_sessions", &user(&plain)) == Some(2.0)
            && m.get("dbsession_user_sessions_limit", &user(&granted))
                .is_some()
            && m.get("dbsession_sessions_limit", &plain).is_some()
    });
    for t in [&plain, &granted] {
        assert_eq!(m.get("dbsession_sessions_limit", t), Some(max));
    }
    assert_eq!(
        m.get("dbsession_user_sessions_limit", &user(&granted)),
        Some(2.0)
    );
    assert_eq!(m.get("dbsession_user_sessions_limit", &user(&plain)), None);
    let warned: Vec<String> = exporter
        .log()
        .lines()
        .filter(|l| l.contains("mysql.user is not readable") && !l.contains("target=blind"))
        .map(str::to_string)
        .collect();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(
        warned[0].contains("target=plain") && warned[0].contains("GRANT SELECT ON mysql.user"),
        "{warned:?}"
    );

    let deadlocks = || -> f64 {
        root(
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
              WHERE VARIABLE_NAME = 'INNODB_DEADLOCKS'",
        )
        .parse()
        .unwrap()
    };
    let before = deadlocks();
    exporter.wait_for_metrics("the counter matches", Duration::from_secs(30), |m| {
        m.get("dbsession_deadlocks_total", &granted) == Some(before)
    });
    let (first, second) = deadlock(a, b, "it_m_limdb.d");
    assert!(
        first.is_err() || second.is_err(),
        "one of the two is chosen as the deadlock's victim"
    );
    exporter.wait_for_metrics("the deadlock is counted", Duration::from_secs(30), |m| {
        let after = deadlocks();
        after > before
            && m.get("dbsession_deadlocks_total", &granted) == Some(after)
            && m.get("dbsession_deadlocks_total", &plain) == Some(after)
    });

    // InnoDB keeps the latest deadlock: obshell's SDK lists it, one event of the two
    // transactions, the victim rolled back, their statements, at the server's time.
    let listed = crate::obshell_sdk::sdk_deadlocks(&exporter, "M-obshell-1", "granted", None);
    assert_eq!(
        listed["page"],
        serde_json::json!([1, 1, 100, 1]),
        "{listed}"
    );
    let event = &listed["contents"][0];
    assert_eq!(event["size"], 2, "{event}");
    let nodes = event["nodes"].as_array().unwrap();
    assert_eq!(
        nodes.iter().filter(|n| n["roll_backed"] == true).count(),
        1,
        "{event}"
    );
    let mut statements: Vec<&str> = nodes.iter().map(|n| n["sql"].as_str().unwrap()).collect();
    statements.sort_unstable();
    assert_eq!(
        statements,
        [
            "UPDATE it_m_limdb.d SET v = 0 WHERE id = 1",
            "UPDATE it_m_limdb.d SET v = 0 WHERE id = 2"
        ]
    );
    for node in nodes {
        assert_eq!(node["resource"], "index PRIMARY of table `it_m_limdb`.`d`");
        assert_eq!(node["svr_ip"], "127.0.0.1");
    }
    let status = root("SHOW ENGINE INNODB STATUS");
    let reported = status
        .split("LATEST DETECTED DEADLOCK")
        .nth(1)
        .and_then(|rest| rest.split("\\n").find(|l| l.starts_with("20")))
        .map(|line| line[..19].to_string())
        .unwrap_or_else(|| panic!("no deadlock in the status: {status}"));
    let unix: i64 = root(&format!("SELECT UNIX_TIMESTAMP('{reported}')"))
        .parse()
        .unwrap();
    let at = event["report_time"].as_str().unwrap();
    assert!(at.ends_with('Z') && at.len() == 27, "{at}");
    let expected = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{unix}"),
            "+%Y-%m-%dT%H:%M:%S.000000Z",
        ])
        .output()
        .unwrap();
    assert_eq!(
        at,
        String::from_utf8_lossy(&expected.stdout).trim(),
        "{reported}"
    );
    let later =
        crate::obshell_sdk::sdk_deadlocks(&exporter, "M-obshell-1", "granted", Some((2, 5)));
    assert_eq!(later["page"], serde_json::json!([1, 1, 5, 2]));
    assert_eq!(later["contents"], serde_json::json!([]));
    // Without PROCESS, InnoDB's status is refused: obshell's shape, naming the grant.
    let refused = crate::obshell_sdk::sdk_deadlocks(&exporter, "M-obshell-1", "blind", None);
    assert_eq!(refused["error"][0], 403, "{refused}");
    assert_eq!(refused["error"][1], "Exporter.Account.GrantMissing");
    assert!(
        refused["error"][2]
            .as_str()
            .unwrap()
            .contains("GRANT PROCESS"),
        "{refused}"
    );
}

/// What active sessions wait on and which program opened each session, through
/// performance_schema, against what the server itself shows: a `SLEEP` waits on its
/// condition, a row-lock waiter on the table's handler; the programs are the
/// `program_name` connection attributes. An account without SELECT on
/// performance_schema is warned once, naming the grant, and has neither series.
#[test]
fn waits_and_applications_through_performance_schema() {
    use crate::common::connect_as_program;
    use mysql::prelude::Queryable;
    let Some(servers) = Servers::get() else {
        return;
    };
    let root = |sql: &str| servers.mariadb_root(sql).trim().to_string();
    root(
        "CREATE DATABASE IF NOT EXISTS it_m_pfsdb; \
         CREATE USER IF NOT EXISTS 'it_m_pfs'@'%' IDENTIFIED BY 'It-pfs-1'; \
         GRANT ALL ON it_m_pfsdb.* TO 'it_m_pfs'@'%'; \
         CREATE USER IF NOT EXISTS 'it_m_nopfs'@'%' IDENTIFIED BY 'It-nopfs-1'; \
         GRANT PROCESS ON *.* TO 'it_m_nopfs'@'%'",
    );
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\ntargets:\n  - name: pfs\n    kind: mysql\n    address: {addr}\n    user: monitor\n    password_file: {pw}\n    filter: {{users: {{allow: [it_m_pfs]}}}}\n  - name: nopfs\n    kind: mysql\n    address: {addr}\n    user: it_m_nopfs\n    password: It-nopfs-1\n    filter: {{users: {{allow: [it_m_pfs]}}}}\n",
        addr = servers.mariadb_addr,
        pw = servers.monitor_password_file.display()
    ));
    let addr = servers.mariadb_addr.clone();
    let open = |program: &str| {
        connect_as_program(&addr, "it_m_pfs", "It-pfs-1", "127.0.0.62", Some(program))
    };
    let mut holder = open("it-web");
    holder
        .query_drop(
            "CREATE TABLE IF NOT EXISTS it_m_pfsdb.r (id INT PRIMARY KEY, v INT) ENGINE = InnoDB",
        )
        .unwrap();
    holder
        .query_drop("REPLACE INTO it_m_pfsdb.r VALUES (1, 1)")
        .unwrap();
    holder
        .query_drop("BEGIN; UPDATE it_m_pfsdb.r SET v = v + 1 WHERE id = 1")
        .unwrap();
    let _idle = [open("it-web"), open("it-web")];
    let kill = servers.mariadb_killer();
    let _sleeping = Blocked::start(
        open("it-batch"),
        &[],
        "SELECT SLEEP(60)",
        Box::new(kill.clone()),
    );
    let _waiting = Blocked::start(
        open("it-batch"),
        &["SET SESSION innodb_lock_wait_timeout = 120"],
        "UPDATE it_m_pfsdb.r SET v = v + 1 WHERE id = 1",
        Box::new(kill),
    );
    let pfs = [("target", "pfs"), ("tenant", "pfs")];
    let nopfs = [("target", "nopfs"), ("tenant", "nopfs")];
    let m = exporter.wait_for_metrics(
        "five sessions, two of them active, on both targets",
        Duration::from_secs(30),
        |m| {
            m.get("dbsession_sessions", &pfs) == Some(5.0)
                && m.get("dbsession_active_sessions", &nopfs) == Some(2.0)
                && m.get("dbsession_lock_waiting_sessions", &pfs) == Some(1.0)
                && m.matching("dbsession_wait_event_sessions", &pfs).len() == 2
        },
    );
    let get = |name: &str, extra: &[(&str, &str)]| {
        let labels: Vec<(&str, &str)> = pfs.iter().chain(extra).copied().collect();
        m.get(name, &labels)
    };
    for (program, sessions, active) in [("it-web", 3.0, 0.0), ("it-batch", 2.0, 2.0)] {
        let label = [("application", program)];
        assert_eq!(
            (
                get("dbsession_application_sessions", &label),
                get("dbsession_application_active_sessions", &label)
            ),
            (Some(sessions), Some(active)),
            "{program}"
        );
    }
    // The waits as the server shows them: each active thread's innermost current wait.
    let shown = root(
        "SELECT GROUP_CONCAT(w.EVENT_NAME ORDER BY w.EVENT_NAME) FROM performance_schema.threads t \
         JOIN performance_schema.events_waits_current w ON w.THREAD_ID = t.THREAD_ID \
         WHERE t.PROCESSLIST_USER = 'it_m_pfs' AND t.PROCESSLIST_COMMAND = 'Query' \
         AND w.END_EVENT_ID IS NULL AND w.EVENT_ID = (SELECT MAX(i.EVENT_ID) \
         FROM performance_schema.events_waits_current i WHERE i.THREAD_ID = t.THREAD_ID \
         AND i.END_EVENT_ID IS NULL)",
    );
    let events: Vec<&str> = shown.split(',').collect();
    assert_eq!(events.len(), 2, "two active threads wait: {shown}");
    assert!(
        events.contains(&"wait/synch/cond/sql/Item_func_sleep::cond"),
        "SLEEP waits on its condition: {shown}"
    );
    for event in &events {
        let class = event.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
        let expected = events.iter().filter(|e| *e == event).count() as f64;
        assert_eq!(
            get(
                "dbsession_wait_event_sessions",
                &[("wait_class", &class), ("wait_event", event)]
            ),
            Some(expected),
            "{event} in\n{:?}",
            m.matching("dbsession_wait_event_sessions", &pfs)
        );
    }
    // MariaDB shows no digest of a running statement: no series, said once.
    assert!(m.matching("dbsession_sql_active_sessions", &pfs).is_empty());

    assert_eq!(m.get("dbsession_sessions", &nopfs), Some(5.0));
    for name in [
        "dbsession_application_sessions",
        "dbsession_wait_event_sessions",
    ] {
        assert!(m.matching(name, &nopfs).is_empty(), "{name}");
    }
    let log = exporter.log();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("target=nopfs") && l.contains("performance_schema"))
        .collect();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(
        warned[0].contains("GRANT SELECT ON performance_schema.*"),
        "{warned:?}"
    );
    holder.query_drop("ROLLBACK").unwrap();
}
