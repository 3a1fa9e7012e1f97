//! seekdb (a real OceanBase kernel, single tenant through V$OB_PROCESSLIST): limits and
//! deadlocks (its exact gauges are in `exclusive.rs`).

use crate::common::{connect_as, deadlock, Blocked, Exporter, Servers};
use std::time::Duration;

/// seekdb's limits and a real deadlock: `max_connections` at its default (its
/// maximum) has no series, an account's `MAX_USER_CONNECTIONS 2` has one; two
/// sessions that deadlock make one more event of `DBA_OB_DEADLOCK_EVENT_HISTORY`,
/// and the counter follows the history's count of events.
#[test]
fn limits_and_a_real_deadlock_from_the_history() {
    use mysql::prelude::Queryable;
    let Some(servers) = Servers::get() else {
        return;
    };
    let root = |sql: &str| servers.seekdb_root(sql).trim().to_string();
    root(
        "CREATE DATABASE IF NOT EXISTS it_sk_limdb; \
         CREATE USER IF NOT EXISTS it_sk_lim IDENTIFIED BY 'It-lim-1'; \
         ALTER USER it_sk_lim WITH MAX_USER_CONNECTIONS 2; \
         GRANT ALL ON it_sk_limdb.* TO it_sk_lim; \
         CREATE USER IF NOT EXISTS it_sk_mon IDENTIFIED BY 'It-mon-1'; \
         GRANT SELECT ON oceanbase.* TO it_sk_mon; GRANT SELECT ON mysql.user TO it_sk_mon",
    );
    // The session API too, for obshell's SDK to list the deadlocks.
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("obshell.password");
    std::fs::write(&password, "Sk-obshell-1\n").unwrap();
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\npassthrough:\n  enabled: true\n  obshell_auth:\n    password_file: {}\ntargets:\n  - name: sklim\n    kind: oceanbase\n    address: {}\n    user: it_sk_mon\n    password: It-mon-1\n    limits_interval: 1s\n    filter: {{users: {{allow: [it_sk_lim]}}}}\n",
        password.display(),
        servers.seekdb_addr,
    ));
    let open = || {
        let mut conn = connect_as(&servers.seekdb_addr, "it_sk_lim", "It-lim-1", "127.0.0.70");
        // The deadlock detector takes up to ~40 s here: no timeout may end either
        // first.
        conn.query_drop(
            "SET SESSION ob_query_timeout = 60000000, ob_trx_timeout = 240000000, \
             ob_trx_idle_timeout = 240000000",
        )
        .unwrap();
        conn
    };
    let (mut a, b) = (open(), open());
    a.query_drop("CREATE TABLE IF NOT EXISTS it_sk_limdb.d (id INT PRIMARY KEY, v INT)")
        .unwrap();
    a.query_drop("REPLACE INTO it_sk_limdb.d VALUES (1, 1), (2, 2)")
        .unwrap();
    let tenant = [("target", "sklim"), ("tenant", "sklim")];
    let user = [tenant[0], tenant[1], ("user", "it_sk_lim")];
    let events = || -> f64 {
        root("SELECT COUNT(DISTINCT EVENT_ID) FROM oceanbase.DBA_OB_DEADLOCK_EVENT_HISTORY")
            .parse()
            .unwrap()
    };
    let before = events();
    let m = exporter.wait_for_metrics("the limits are read", Duration::from_secs(30), |m| {
        m.get("dbsession_user_sessions", &user) == Some(2.0)
            && m.get("dbsession_user_sessions_limit", &user).is_some()
            && m.get("dbsession_deadlocks_total", &tenant).is_some()
    });
    assert_eq!(m.get("dbsession_user_sessions_limit", &user), Some(2.0));
    assert_eq!(
        m.get("dbsession_sessions_limit", &tenant),
        None,
        "unlimited"
    );
    assert_eq!(m.get("dbsession_deadlocks_total", &tenant), Some(before));

    // seekdb's detector now and then misses a cycle (the statements then end at
    // their timeout; one full run in about five here missed three in a row): the two
    // sessions try again, a bounded number of times.
    const ATTEMPTS: u32 = 5;
    let mut pair = Some((a, b));
    for attempt in 1..=ATTEMPTS {
        // Both of the last attempt's sessions are gone: the account may open two.
        let (a, b) = pair.take().unwrap_or_else(|| (open(), open()));
        let (first, second) = deadlock(a, b, "it_sk_limdb.d");
        assert!(
            first.is_err() || second.is_err(),
            "one of the two is chosen as the deadlock's victim: {first:?} {second:?}"
        );
        if events() > before {
            break;
        }
        assert!(
            attempt < ATTEMPTS,
            "no deadlock event in {ATTEMPTS} attempts: {first:?} {second:?}"
        );
    }
    exporter.wait_for_metrics("the deadlock is counted", Duration::from_secs(60), |m| {
        let after = events();
        after > before && m.get("dbsession_deadlocks_total", &tenant) == Some(after)
    });

    // obshell's SDK lists the history's events, newest first, as the server holds them.
    let complete =
        "SELECT EVENT_ID FROM oceanbase.DBA_OB_DEADLOCK_EVENT_HISTORY GROUP BY EVENT_ID \
                    HAVING COUNT(*) = MAX(CYCLE_SIZE)";
    let total: u64 = root(&format!("SELECT COUNT(*) FROM ({complete}) e"))
        .parse()
        .unwrap();
    let newest = root(&format!(
        "{complete} ORDER BY MAX(REPORT_TIME) DESC, EVENT_ID LIMIT 2"
    ));
    let newest: Vec<&str> = newest.lines().collect();
    let all = crate::obshell_sdk::sdk_deadlocks(&exporter, "Sk-obshell-1", "sklim", None);
    assert_eq!(all["page"][0], total, "{all}");
    assert_eq!(all["page"][3], 1);
    let first = &all["contents"][0];
    assert_eq!(first["event_id"], newest[0], "{all}");
    let nodes = first["nodes"].as_array().unwrap();
    assert_eq!(first["size"], nodes.len() as u64);
    assert_eq!(
        nodes.iter().filter(|n| n["roll_backed"] == true).count(),
        1,
        "one victim: {first}"
    );
    for node in nodes {
        assert!(
            node["sql"]
                .as_str()
                .unwrap()
                .starts_with("UPDATE it_sk_limdb.d SET v = 0"),
            "{first}"
        );
        assert_eq!(node["svr_ip"], "127.0.0.1");
        assert!(!node["transaction_hash"].as_str().unwrap().is_empty());
    }
    assert!(first["report_time"].as_str().unwrap().ends_with('Z'));
    // Page 2 of size 1 is the next newest.
    if total > 1 {
        let second =
            crate::obshell_sdk::sdk_deadlocks(&exporter, "Sk-obshell-1", "sklim", Some((2, 1)));
        assert_eq!(second["page"], serde_json::json!([total, total, 1, 2]));
        assert_eq!(second["contents"][0]["event_id"], newest[1], "{second}");
    }
}

/// seekdb's applications and statements: two sessions that name their module
/// (`DBMS_APPLICATION_INFO.SET_MODULE`) and one that names only its client info run
/// the same `SLEEP`, a plain session runs another; each application is counted with
/// its active sessions, and each statement by the SQL_ID V$OB_PROCESSLIST shows.
#[test]
fn applications_and_statements_of_active_sessions() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let root = |sql: &str| servers.seekdb_root(sql).trim().to_string();
    root(
        "CREATE USER IF NOT EXISTS it_sk_app IDENTIFIED BY 'It-app-1'; \
         CREATE USER IF NOT EXISTS it_sk_mon IDENTIFIED BY 'It-mon-1'; \
         GRANT SELECT ON oceanbase.* TO it_sk_mon",
    );
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\ntargets:\n  - name: skapp\n    kind: oceanbase\n    address: {}\n    user: it_sk_mon\n    password: It-mon-1\n    filter: {{users: {{allow: [it_sk_app]}}}}\n",
        servers.seekdb_addr,
    ));
    let addr = servers.seekdb_addr.clone();
    let start = |setup: &[&str], sql: &str| {
        let conn = connect_as(&addr, "it_sk_app", "It-app-1", "127.0.0.71");
        Blocked::start(conn, setup, sql, Box::new(servers.seekdb_killer()))
    };
    let module = "CALL DBMS_APPLICATION_INFO.SET_MODULE('it-batch', 'load')";
    let client_info = "CALL DBMS_APPLICATION_INFO.SET_CLIENT_INFO('it-report')";
    let _running = [
        start(&[module], "SELECT SLEEP(60)"),
        start(&[module], "SELECT SLEEP(60)"),
        start(&[client_info], "SELECT SLEEP(60)"),
        start(&[], "SELECT SLEEP(61)"),
    ];
    let _idle = connect_as(&addr, "it_sk_app", "It-app-1", "127.0.0.71");
    let tenant = [("target", "skapp"), ("tenant", "skapp")];
    let m = exporter.wait_for_metrics(
        "five sessions, four running",
        Duration::from_secs(30),
        |m| {
            m.get("dbsession_sessions", &tenant) == Some(5.0)
                && m.get("dbsession_active_sessions", &tenant) == Some(4.0)
        },
    );
    let get = |name: &str, extra: (&str, &str)| m.get(name, &[tenant[0], tenant[1], extra]);
    for (application, sessions, active) in [
        ("it-batch", 2.0, 2.0),
        ("it-report", 1.0, 1.0),
        ("__none__", 2.0, 1.0),
    ] {
        let label = ("application", application);
        assert_eq!(
            (
                get("dbsession_application_sessions", label),
                get("dbsession_application_active_sessions", label)
            ),
            (Some(sessions), Some(active)),
            "{application}"
        );
    }
    let ids = root(
        "SELECT GROUP_CONCAT(CONCAT(SQL_ID, '=', n) ORDER BY SQL_ID) FROM (SELECT SQL_ID, \
         COUNT(*) AS n FROM oceanbase.V$OB_PROCESSLIST WHERE USER = 'it_sk_app' \
         AND STATE = 'ACTIVE' GROUP BY SQL_ID) s",
    );
    let expected: Vec<(String, f64)> = ids
        .split(',')
        .map(|pair| {
            let (id, n) = pair.split_once('=').expect("SQL_ID=count");
            (id.to_string(), n.parse().expect("a count"))
        })
        .collect();
    assert_eq!(
        expected.iter().map(|(_, n)| *n).sum::<f64>(),
        4.0,
        "two statements, four sessions: {ids}"
    );
    for (sql_id, n) in &expected {
        assert_eq!(
            get("dbsession_sql_active_sessions", ("sql_id", sql_id)),
            Some(*n),
            "{sql_id}"
        );
    }
    assert_eq!(
        m.matching("dbsession_sql_active_sessions", &tenant).len(),
        expected.len()
    );
    // seekdb has no view of the current wait: no series of waits.
    assert!(m
        .matching("dbsession_wait_event_sessions", &tenant)
        .is_empty());
}
