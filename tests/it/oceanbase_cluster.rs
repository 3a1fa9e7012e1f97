//! OceanBase cluster mode on a real OceanBase kernel: seekdb holds tables shaped like
//! the sys tenant's `GV$OB_PROCESSLIST` and `DBA_OB_TENANTS`, read through the
//! `processlist_view` / `tenants_view` options, so the cluster query (LEFT JOIN,
//! META exclusion, tenant filter, USER_CLIENT_IP vs HOST) runs for real.

use crate::common::{Exporter, Servers};
use std::time::Duration;

/// Empty tables shaped like `GV$OB_PROCESSLIST` and `DBA_OB_TENANTS` in `database`,
/// readable by the monitoring account.
fn cluster_tables(database: &str) -> String {
    format!(
        r#"CREATE DATABASE IF NOT EXISTS {database};
DROP TABLE IF EXISTS {database}.`GV$OB_PROCESSLIST`;
DROP TABLE IF EXISTS {database}.`DBA_OB_TENANTS`;
CREATE TABLE {database}.`DBA_OB_TENANTS` (TENANT_ID BIGINT, TENANT_NAME VARCHAR(128), TENANT_TYPE VARCHAR(16));
CREATE TABLE {database}.`GV$OB_PROCESSLIST` (
  ID BIGINT, TENANT VARCHAR(128), SVR_IP VARCHAR(46), SVR_PORT BIGINT, USER VARCHAR(128),
  HOST VARCHAR(128), DB VARCHAR(128), COMMAND VARCHAR(32), TIME DOUBLE, STATE VARCHAR(32),
  INFO TEXT, USER_CLIENT_IP VARCHAR(46), SQL_ID VARCHAR(64) DEFAULT '');
GRANT SELECT ON {database}.* TO monitor;"#
    )
}

const SETUP: &str = r#"
INSERT INTO it_cluster.`DBA_OB_TENANTS` VALUES
  (1, 'sys', 'SYS'), (1001, 'META$1002', 'META'), (1002, 't1', 'USER'),
  (1004, 't2', 'USER'), (1006, 'idle', 'USER');
INSERT INTO it_cluster.`GV$OB_PROCESSLIST`
  (ID, TENANT, SVR_IP, SVR_PORT, USER, HOST, DB, COMMAND, TIME, STATE, INFO, USER_CLIENT_IP) VALUES
  (101, 't1', '10.0.0.1', 2882, 'app', '10.1.1.1:5000', 'shop', 'Query', 12.5, 'ACTIVE', 'SELECT 1', ''),
  (102, 't1', '10.0.0.2', 2882, 'app', '172.16.0.9:2883', 'shop', 'Sleep', 900, 'SLEEP', NULL, '10.1.1.2'),
  (103, 't1', '10.0.0.2', 2882, 'admin', '172.16.0.9:2883', 'NULL', 'Query', 3, 'ACTIVE', 'x', '10.1.1.2'),
  (104, 't2', '10.0.0.1', 2882, 'u2', '[fe80::1]:40000', 'db2', 'Sleep', 5, 'SLEEP', NULL, NULL),
  (105, 'sys', '10.0.0.3', 2882, 'root', '10.1.1.9:1', NULL, 'Query', 1, 'ACTIVE', NULL, '10.1.1.9'),
  (106, 'META$1002', '10.0.0.1', 2882, 'x', '10.1.1.1:2', NULL, 'Query', 50, 'ACTIVE', NULL, '');
UPDATE it_cluster.`GV$OB_PROCESSLIST` SET SQL_ID = CONCAT('SQL', ID) WHERE STATE = 'ACTIVE';
"#;

/// A session id is unique per server only: two active sessions with the same id on two
/// servers of one tenant are two top sessions, each with its own user, time and SQL id.
#[test]
fn sessions_with_one_id_on_two_servers_stay_two() {
    let Some(servers) = Servers::get() else {
        return;
    };
    servers.seekdb_root(&cluster_tables("it_same_id"));
    servers.seekdb_root(
        r#"INSERT INTO it_same_id.`DBA_OB_TENANTS` VALUES (1002, 't1', 'USER');
INSERT INTO it_same_id.`GV$OB_PROCESSLIST`
  (ID, TENANT, SVR_IP, SVR_PORT, USER, HOST, DB, COMMAND, TIME, STATE, INFO, USER_CLIENT_IP, SQL_ID) VALUES
  (7, 't1', '10.0.0.1', 2882, 'app', '10.1.1.1:5000', 'shop', 'Query', 30, 'ACTIVE', 'x', '10.1.1.1', 'SQLA'),
  (7, 't1', '10.0.0.2', 2882, 'etl', '10.1.1.2:5000', 'dw', 'Query', 20, 'ACTIVE', 'y', '10.1.1.2', 'SQLB');"#,
    );
    let pw = servers.monitor_password_file.display();
    let exporter = Exporter::start(&format!(
        r#"global:
  collect_interval: 500ms
  collect_timeout: 400ms
targets:
  - name: same
    kind: oceanbase
    address: {addr}
    user: monitor@sys
    password_file: {pw}
    processlist_view: it_same_id.GV$OB_PROCESSLIST
    tenants_view: it_same_id.DBA_OB_TENANTS
"#,
        addr = servers.seekdb_addr,
    ));
    let m = exporter.wait_for_metrics("the target is collected", Duration::from_secs(30), |m| {
        m.get("dbsession_up", &[("target", "same"), ("tenant", "t1")]) == Some(1.0)
    });
    assert_eq!(
        m.matching(
            "dbsession_top_active_session_seconds",
            &[("target", "same"), ("tenant", "t1")]
        ),
        vec![
            (r#"dbsession_top_active_session_seconds{target="same",tenant="t1",rank="1",session_id="7",user="app",db="shop",client_ip="10.1.1.1",sql_id="SQLA"}"#.to_string(), 30.0),
            (r#"dbsession_top_active_session_seconds{target="same",tenant="t1",rank="2",session_id="7",user="etl",db="dw",client_ip="10.1.1.2",sql_id="SQLB"}"#.to_string(), 20.0),
        ]
    );
}

#[test]
fn cluster_query_reports_every_tenant_exactly() {
    let Some(servers) = Servers::get() else {
        return;
    };
    servers.seekdb_root(&cluster_tables("it_cluster"));
    servers.seekdb_root(SETUP);
    let pw = servers.monitor_password_file.display();
    let exporter = Exporter::start(&format!(
        r#"global:
  collect_interval: 500ms
  collect_timeout: 400ms
targets:
  - name: all
    kind: oceanbase
    address: {addr}
    user: monitor@sys
    password_file: {pw}
    processlist_view: it_cluster.GV$OB_PROCESSLIST
    tenants_view: it_cluster.DBA_OB_TENANTS
  - name: some
    kind: oceanbase
    address: {addr}
    user: monitor@sys
    password_file: {pw}
    tenants: [t1, nosuch]
    processlist_view: it_cluster.GV$OB_PROCESSLIST
    tenants_view: it_cluster.DBA_OB_TENANTS
  - name: filtered
    kind: oceanbase
    address: {addr}
    user: monitor@sys
    password_file: {pw}
    top_sessions: 1
    filter:
      min_time: 4s
      users: {{deny: [admin]}}
      databases: {{allow: [shop, db2]}}
    processlist_view: it_cluster.GV$OB_PROCESSLIST
    tenants_view: it_cluster.DBA_OB_TENANTS
"#,
        addr = servers.seekdb_addr,
    ));
    let m = exporter.wait_for_metrics(
        "the three cluster targets are collected",
        Duration::from_secs(30),
        |m| {
            m.get("dbsession_up", &[("target", "all"), ("tenant", "t1")]) == Some(1.0)
                && m.get("dbsession_up", &[("target", "some"), ("tenant", "t1")]) == Some(1.0)
                && m.get("dbsession_up", &[("target", "filtered"), ("tenant", "t1")]) == Some(1.0)
        },
    );
    let get = |target: &str, name: &str, tenant: &str, extra: Option<(&str, &str)>| {
        let mut labels = vec![("target", target), ("tenant", tenant)];
        labels.extend(extra);
        m.get(name, &labels)
    };

    // Every non-META tenant, including the one without sessions.
    for (tenant, sessions, active) in [
        ("sys", 1.0, 1.0),
        ("t1", 3.0, 2.0),
        ("t2", 1.0, 0.0),
        ("idle", 0.0, 0.0),
    ] {
        assert_eq!(
            get("all", "dbsession_up", tenant, None),
            Some(1.0),
            "{tenant}"
        );
        assert_eq!(
            get("all", "dbsession_sessions", tenant, None),
            Some(sessions),
            "{tenant}"
        );
        assert_eq!(
            get("all", "dbsession_active_sessions", tenant, None),
            Some(active),
            "{tenant}"
        );
    }
    assert!(
        m.matching("dbsession_up", &[("tenant", "META$1002")])
            .is_empty(),
        "META tenants are excluded"
    );
    // The sleeping session's 900 s does not count; the active 12.5 s does.
    assert_eq!(
        get("all", "dbsession_max_active_time_seconds", "t1", None),
        Some(12.5)
    );
    assert_eq!(
        get("all", "dbsession_max_active_time_seconds", "t2", None),
        Some(0.0)
    );
    let c = |name: &str, tenant: &str, label: &str, value: &str| {
        (
            get(
                "all",
                &format!("dbsession_{name}_sessions"),
                tenant,
                Some((label, value)),
            ),
            get(
                "all",
                &format!("dbsession_{name}_active_sessions"),
                tenant,
                Some((label, value)),
            ),
        )
    };
    assert_eq!(
        c("server", "t1", "svr_ip", "10.0.0.1"),
        (Some(1.0), Some(1.0))
    );
    assert_eq!(
        c("server", "t1", "svr_ip", "10.0.0.2"),
        (Some(2.0), Some(1.0))
    );
    // USER_CLIENT_IP is the real client; HOST (the proxy here) only when it is empty.
    assert_eq!(
        c("client", "t1", "client_ip", "10.1.1.1"),
        (Some(1.0), Some(1.0))
    );
    assert_eq!(
        c("client", "t1", "client_ip", "10.1.1.2"),
        (Some(2.0), Some(1.0))
    );
    assert!(m
        .matching("dbsession_client_sessions", &[("client_ip", "172.16.0.9")])
        .is_empty());
    assert_eq!(
        c("client", "t2", "client_ip", "fe80::1"),
        (Some(1.0), Some(0.0))
    );
    // OceanBase's 'NULL' string database is "no database".
    assert_eq!(c("db", "t1", "db", "__none__"), (Some(1.0), Some(1.0)));
    assert_eq!(c("db", "t1", "db", "shop"), (Some(2.0), Some(1.0)));
    assert_eq!(c("user", "t1", "user", "app"), (Some(2.0), Some(1.0)));
    assert!(m
        .matching("dbsession_db_sessions", &[("tenant", "idle")])
        .is_empty());

    // A tenant filter reports only the listed tenants; one that does not exist is down.
    assert_eq!(get("some", "dbsession_sessions", "t1", None), Some(3.0));
    assert_eq!(get("some", "dbsession_up", "nosuch", None), Some(0.0));
    assert!(m
        .matching("dbsession_up", &[("target", "some"), ("tenant", "t2")])
        .is_empty());

    // The longest active sessions per tenant, ranked, with what locates them.
    let top = |target: &str, tenant: &str| {
        m.matching(
            "dbsession_top_active_session_seconds",
            &[("target", target), ("tenant", tenant)],
        )
    };
    assert_eq!(
        top("all", "t1"),
        vec![
            (r#"dbsession_top_active_session_seconds{target="all",tenant="t1",rank="1",session_id="101",user="app",db="shop",client_ip="10.1.1.1",sql_id="SQL101"}"#.to_string(), 12.5),
            (r#"dbsession_top_active_session_seconds{target="all",tenant="t1",rank="2",session_id="103",user="admin",db="__none__",client_ip="10.1.1.2",sql_id="SQL103"}"#.to_string(), 3.0),
        ]
    );
    assert_eq!(top("all", "sys").len(), 1);
    assert!(
        top("all", "t2").is_empty(),
        "no active session, no top series"
    );
    assert!(m
        .matching(
            "dbsession_top_active_session_seconds",
            &[("tenant", "META$1002")]
        )
        .is_empty());

    // Filters: admin denied, only shop and db2, at least 4 s; top_sessions 1.
    assert_eq!(get("filtered", "dbsession_sessions", "t1", None), Some(2.0));
    assert_eq!(
        get("filtered", "dbsession_active_sessions", "t1", None),
        Some(1.0)
    );
    assert_eq!(get("filtered", "dbsession_sessions", "t2", None), Some(1.0));
    assert_eq!(
        get("filtered", "dbsession_sessions", "sys", None),
        Some(0.0),
        "a filtered-out tenant still reports 0"
    );
    assert_eq!(top("filtered", "t1").len(), 1);
    assert!(m
        .matching(
            "dbsession_user_sessions",
            &[("target", "filtered"), ("user", "admin")]
        )
        .is_empty());

    // A tenant that is dropped disappears with its series at the next cycle.
    servers.seekdb_root("DELETE FROM it_cluster.`DBA_OB_TENANTS` WHERE TENANT_NAME = 't2'");
    exporter.wait_for_metrics(
        "the dropped tenant disappears",
        Duration::from_secs(10),
        |m| {
            m.matching("dbsession_up", &[("target", "all"), ("tenant", "t2")])
                .is_empty()
                && m.matching("dbsession_client_sessions", &[("tenant", "t2")])
                    .is_empty()
        },
    );
}

/// The host cut done in SQL agrees with the Rust reference on every shape of HOST.
#[test]
fn sql_host_cut_matches_the_rust_reference() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let inputs = [
        "10.0.0.5:51234",
        "[fe80::1]:2881",
        "::1:51234",
        "db.example:3306",
        "localhost",
        "",
        "host:",
        "host:abc",
    ];
    let expr = session_exporter::sql::host_without_port("h");
    let rows: Vec<String> = inputs
        .iter()
        .map(|h| format!("SELECT '{h}' AS h"))
        .collect();
    let sql = format!(
        "SELECT CONCAT('[', {expr}, ']') FROM ({}) x",
        rows.join(" UNION ALL ")
    );
    for (name, answer) in [
        ("seekdb", servers.seekdb_root(&sql)),
        ("mariadb", servers.mariadb_root(&sql)),
    ] {
        let got: Vec<&str> = answer.lines().collect();
        let expected: Vec<String> = inputs
            .iter()
            .map(|h| format!("[{}]", session_exporter::stats::host_without_port(h)))
            .collect();
        assert_eq!(got, expected, "{name}");
    }
}

/// The cardinality guard on a tenant with 5,000 distinct client IPs: 100 series at
/// most (the 99 largest and `__other__`), exact totals, and the fold counted.
#[test]
fn the_cardinality_guard_bounds_client_series_and_keeps_totals_exact() {
    use mysql::prelude::Queryable;
    let Some(servers) = Servers::get() else {
        return;
    };
    servers.seekdb_root(
        "CREATE DATABASE IF NOT EXISTS it_guard;
         DROP TABLE IF EXISTS it_guard.PL; DROP TABLE IF EXISTS it_guard.TENANTS;
         CREATE TABLE it_guard.TENANTS (TENANT_NAME VARCHAR(128), TENANT_TYPE VARCHAR(16));
         INSERT INTO it_guard.TENANTS VALUES ('big', 'USER');
         CREATE TABLE it_guard.PL (ID BIGINT, TENANT VARCHAR(128), SVR_IP VARCHAR(46), USER VARCHAR(128),
           HOST VARCHAR(128), DB VARCHAR(128), COMMAND VARCHAR(32), TIME DOUBLE, STATE VARCHAR(32),
           USER_CLIENT_IP VARCHAR(46), SQL_ID VARCHAR(64));
         GRANT SELECT ON it_guard.* TO monitor;",
    );
    // IP k (k < 5000) has one session; the first ten have ten more each.
    let mut rows = Vec::new();
    for k in 0..5000_u32 {
        let copies = if k < 10 { 11 } else { 1 };
        for _ in 0..copies {
            let ip = format!("10.{}.{}.{}", k / 65536, (k / 256) % 256, k % 256);
            rows.push(format!(
                "({}, 'big', '10.0.0.1', 'app', '{ip}:1', 'd', 'Sleep', 1, 'SLEEP', '{ip}', '')",
                rows.len()
            ));
        }
    }
    let (host, port) = crate::common::split_addr(&servers.seekdb_addr);
    let mut root = mysql::Conn::new(
        mysql::OptsBuilder::new()
            .ip_or_hostname(Some(host))
            .tcp_port(port.parse().unwrap())
            .user(Some("root"))
            .prefer_socket(false),
    )
    .unwrap();
    for chunk in rows.chunks(1000) {
        root.query_drop(format!(
            "INSERT INTO it_guard.PL VALUES {}",
            chunk.join(", ")
        ))
        .unwrap();
    }
    let pw = servers.monitor_password_file.display();
    let target = |name: &str, extra: &str| {
        format!(
            "  - name: {name}\n    kind: oceanbase\n    address: {}\n    user: monitor@sys\n    password_file: {pw}\n    processlist_view: it_guard.PL\n    tenants_view: it_guard.TENANTS\n{extra}",
            servers.seekdb_addr
        )
    };
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 1s\n  collect_timeout: 900ms\ntargets:\n{}{}",
        target("guarded", ""),
        target("unguarded", "    max_series_per_dimension: 0\n"),
    ));
    let m = exporter.wait_for_metrics("both targets collected", Duration::from_secs(30), |m| {
        m.get(
            "dbsession_sessions",
            &[("target", "guarded"), ("tenant", "big")],
        )
        .is_some()
            && m.get(
                "dbsession_sessions",
                &[("target", "unguarded"), ("tenant", "big")],
            )
            .is_some()
    });
    let clients = |target: &str| {
        m.matching(
            "dbsession_client_sessions",
            &[("target", target), ("tenant", "big")],
        )
    };

    let guarded = clients("guarded");
    assert_eq!(guarded.len(), 100, "99 largest plus __other__");
    assert_eq!(
        guarded.iter().map(|(_, v)| v).sum::<f64>(),
        5100.0,
        "the sum stays exact"
    );
    let get = |name: &str, extra: (&str, &str)| {
        m.get(name, &[("target", "guarded"), ("tenant", "big"), extra])
    };
    assert_eq!(
        get("dbsession_client_sessions", ("client_ip", "10.0.0.9")),
        Some(11.0),
        "a large one keeps its series"
    );
    assert_eq!(
        get("dbsession_client_sessions", ("client_ip", "__other__")),
        Some(5100.0 - 110.0 - 89.0)
    );
    assert_eq!(
        get("dbsession_series_dropped", ("dimension", "client_ip")),
        Some(4901.0)
    );
    assert_eq!(
        get("dbsession_series_dropped", ("dimension", "user")),
        Some(0.0)
    );
    assert_eq!(
        m.get(
            "dbsession_sessions",
            &[("target", "guarded"), ("tenant", "big")]
        ),
        Some(5100.0)
    );

    assert_eq!(
        clients("unguarded").len(),
        5000,
        "max_series_per_dimension: 0 turns the guard off"
    );
}

const TRANSACTIONS: &str = r#"
CREATE DATABASE IF NOT EXISTS it_ctx;
DROP TABLE IF EXISTS it_ctx.PL; DROP TABLE IF EXISTS it_ctx.TENANTS;
DROP TABLE IF EXISTS it_ctx.TX; DROP TABLE IF EXISTS it_ctx.LK;
CREATE TABLE it_ctx.TENANTS (TENANT_ID BIGINT, TENANT_NAME VARCHAR(128), TENANT_TYPE VARCHAR(16));
INSERT INTO it_ctx.TENANTS VALUES (1002, 't1', 'USER'), (1004, 't2', 'USER');
CREATE TABLE it_ctx.PL (
  ID BIGINT, TENANT VARCHAR(128), SVR_IP VARCHAR(46), SVR_PORT BIGINT, USER VARCHAR(128),
  HOST VARCHAR(128), DB VARCHAR(128), COMMAND VARCHAR(32), TIME DOUBLE, STATE VARCHAR(32),
  USER_CLIENT_IP VARCHAR(46), SQL_ID VARCHAR(64), TRANS_ID BIGINT);
INSERT INTO it_ctx.PL VALUES
  (201, 't1', '10.0.0.1', 2882, 'holder', '10.1.1.1:1', 'shop', 'Sleep', 95, 'SLEEP', '10.1.1.1', '', 9001),
  (201, 't1', '10.0.0.2', 2882, 'other', '10.1.1.3:1', 'shop', 'Sleep', 7, 'SLEEP', '10.1.1.3', '', 0),
  (202, 't1', '10.0.0.2', 2882, 'waiter', '10.1.1.2:1', 'shop', 'Query', 2, 'ACTIVE', '10.1.1.2', 'S2', 9002),
  (301, 't2', '10.0.0.1', 2882, 'idle', '10.1.1.4:1', 'db2', 'Sleep', 40, 'SLEEP', '10.1.1.4', '', 9001);
CREATE TABLE it_ctx.TX (TENANT_ID BIGINT, SVR_IP VARCHAR(46), SVR_PORT BIGINT, SESSION_ID BIGINT,
  TX_ID BIGINT, STATE VARCHAR(32), ACTIVE_TIME DATETIME(6));
INSERT INTO it_ctx.TX VALUES
  (1002, '10.0.0.1', 2882, 201, 9001, 'ACTIVE', NOW(6) - INTERVAL 100 SECOND),
  (1002, '10.0.0.2', 2882, 202, 9002, 'ACTIVE', NOW(6) - INTERVAL 10 SECOND),
  (1004, '10.0.0.1', 2882, 301, 9001, 'ACTIVE', NOW(6) - INTERVAL 50 SECOND);
CREATE TABLE it_ctx.LK (TENANT_ID BIGINT, SVR_IP VARCHAR(46), SVR_PORT BIGINT, TRANS_ID BIGINT,
  SESSION_ID BIGINT, TYPE VARCHAR(9), ID1 BIGINT, ID2 BIGINT, CTIME BIGINT, BLOCK BIGINT);
INSERT INTO it_ctx.LK VALUES
  (1002, '10.0.0.3', 2882, 9001, 201, 'TR', 9001, 201, 99000000, 0),
  (1002, '10.0.0.3', 2882, 9002, 202, 'TR', 9001, 201, 8000000, 1),
  (1002, '10.0.0.3', 2882, 9002, 202, 'TX', 9002, 202, 9000000, 0);
"#;

/// Cluster mode's transaction and lock joins, on tables shaped like the sys tenant's
/// `GV$` views: a transaction is matched by tenant, server and session (the same
/// session id on another server has none), a lock row by tenant and transaction id
/// (it is reported by a third server, the one holding the row), and the same
/// transaction id in another tenant stays apart.
#[test]
fn cluster_transactions_and_lock_waits_are_joined_by_tenant_server_and_transaction() {
    let Some(servers) = Servers::get() else {
        return;
    };
    servers.seekdb_root(TRANSACTIONS);
    servers.seekdb_root("GRANT SELECT ON it_ctx.* TO monitor");
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\ntargets:\n  - name: c\n    kind: oceanbase\n    address: {}\n    user: monitor@sys\n    password_file: {}\n    processlist_view: it_ctx.PL\n    tenants_view: it_ctx.TENANTS\n    transactions_view: it_ctx.TX\n    locks_view: it_ctx.LK\n",
        servers.seekdb_addr,
        servers.monitor_password_file.display(),
    ));
    let t1 = [("target", "c"), ("tenant", "t1")];
    let t2 = [("target", "c"), ("tenant", "t2")];
    let m = exporter.wait_for_metrics("both tenants collected", Duration::from_secs(30), |m| {
        m.get("dbsession_up", &t1) == Some(1.0) && m.get("dbsession_up", &t2) == Some(1.0)
    });
    let get = |name: &str, tenant: &[(&str, &str)]| m.get(name, tenant);
    assert_eq!(get("dbsession_transaction_sessions", &t1), Some(2.0));
    assert_eq!(
        get("dbsession_idle_in_transaction_sessions", &t1),
        Some(1.0)
    );
    assert_eq!(
        get("dbsession_max_idle_in_transaction_seconds", &t1),
        Some(95.0)
    );
    let age = get("dbsession_max_transaction_age_seconds", &t1).unwrap();
    assert!((100.0..130.0).contains(&age), "{age}");
    assert_eq!(get("dbsession_lock_waiting_sessions", &t1), Some(1.0));
    assert_eq!(get("dbsession_max_lock_wait_seconds", &t1), Some(8.0));
    assert_eq!(
        m.matching("dbsession_top_blocker_sessions", &[("target", "c")]),
        [(
            r#"dbsession_top_blocker_sessions{target="c",tenant="t1",rank="1",session_id="201",user="holder",db="shop",client_ip="10.1.1.1",lock="row"}"#.to_string(),
            1.0
        )]
    );
    assert_eq!(
        m.get(
            "dbsession_user_idle_in_transaction_sessions",
            &[("target", "c"), ("tenant", "t1"), ("user", "holder")]
        ),
        Some(1.0)
    );
    assert!(m
        .matching(
            "dbsession_user_idle_in_transaction_sessions",
            &[("user", "other")]
        )
        .is_empty());
    assert_eq!(get("dbsession_transaction_sessions", &t2), Some(1.0));
    assert_eq!(
        get("dbsession_idle_in_transaction_sessions", &t2),
        Some(1.0)
    );
    assert_eq!(get("dbsession_lock_waiting_sessions", &t2), Some(0.0));
    let age = get("dbsession_max_transaction_age_seconds", &t2).unwrap();
    assert!((50.0..80.0).contains(&age), "{age}");
    assert_eq!(
        m.get(
            "dbsession_state_sessions",
            &[
                ("target", "c"),
                ("tenant", "t1"),
                ("command", "Sleep"),
                ("state", "SLEEP")
            ]
        ),
        Some(2.0)
    );
}

/// A cluster's applications, statements and active session history on relations
/// shaped like `GV$OB_PROCESSLIST` (with `MODULE` and `CLIENT_INFO`) and
/// `GV$OB_ACTIVE_SESSION_HISTORY`: the program is `MODULE`, else `CLIENT_INFO`; active
/// sessions are counted by `SQL_ID`; the history's samples are counted per tenant and
/// wait from the first read on (`CPU` for a sample on CPU), each server after its own
/// newest sample, META tenants left out.
#[test]
fn applications_statements_and_active_session_history_of_a_cluster() {
    let Some(servers) = Servers::get() else {
        return;
    };
    servers.seekdb_root(&crate::common::ash_cluster_tables("it_ash"));
    servers.seekdb_root(
        r#"INSERT INTO it_ash.TENANTS VALUES (1, 'sys', 'SYS'), (1001, 'META$1002', 'META'), (1002, 't1', 'USER');
INSERT INTO it_ash.PL VALUES
  (1, 't1', '10.0.0.1', 2882, 'app', '', 'shop', 'Query', 2, 'ACTIVE', 'x', '10.1.1.1', 'Q1', 'web', 'ignored'),
  (2, 't1', '10.0.0.1', 2882, 'app', '', 'shop', 'Query', 3, 'ACTIVE', 'x', '10.1.1.1', 'Q1', '', 'batch'),
  (3, 't1', '10.0.0.2', 2882, 'app', '', 'shop', 'Query', 4, 'ACTIVE', 'x', '10.1.1.1', 'Q2', NULL, NULL),
  (4, 't1', '10.0.0.2', 2882, 'app', '', 'shop', 'Sleep', 9, 'SLEEP', NULL, '10.1.1.1', '', 'web', '');
INSERT INTO it_ash.ASH VALUES
  ('10.0.0.1', 2882, 1, '2026-12-04 10:00:00.000001', 1002, 1, 'ON CPU', 'Q1', '', ''),
  ('10.0.0.2', 2882, 7, '2026-12-04 09:00:00', 1002, 3, 'WAITING', 'Q2', 'row lock wait', 'CONCURRENCY');"#,
    );
    let pw = servers.monitor_password_file.display();
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\ntargets:\n  - name: ash\n    kind: oceanbase\n    address: {}\n    user: monitor@sys\n    password_file: {pw}\n    limits_interval: 1s\n    processlist_view: it_ash.PL\n    tenants_view: it_ash.TENANTS\n    ash_view: it_ash.ASH\n",
        servers.seekdb_addr,
    ));
    let t1 = [("target", "ash"), ("tenant", "t1")];
    let samples = |m: &crate::common::Metrics, class: &str, event: &str| {
        m.get(
            "dbsession_ash_samples_total",
            &[t1[0], t1[1], ("wait_class", class), ("wait_event", event)],
        )
    };
    // The first read only finds where each server's samples end.
    let m = exporter.wait_for_metrics("the history is read", Duration::from_secs(30), |m| {
        samples(m, "CPU", "CPU").is_some()
    });
    assert_eq!(samples(&m, "CPU", "CPU"), Some(0.0));
    assert_eq!(samples(&m, "CONCURRENCY", "row lock wait"), Some(0.0));
    for (application, sessions, active) in [
        ("web", 2.0, 1.0),
        ("batch", 1.0, 1.0),
        ("__none__", 1.0, 1.0),
    ] {
        let label = [t1[0], t1[1], ("application", application)];
        assert_eq!(
            (
                m.get("dbsession_application_sessions", &label),
                m.get("dbsession_application_active_sessions", &label)
            ),
            (Some(sessions), Some(active)),
            "{application}"
        );
    }
    for (sql_id, n) in [("Q1", 2.0), ("Q2", 1.0)] {
        assert_eq!(
            m.get(
                "dbsession_sql_active_sessions",
                &[t1[0], t1[1], ("sql_id", sql_id)]
            ),
            Some(n),
            "{sql_id}"
        );
    }

    // New samples: server 1 after its newest, server 2 after its own older newest, one
    // of server 1 before its newest (already counted), one of a META tenant.
    servers.seekdb_root(
        r#"INSERT INTO it_ash.ASH VALUES
  ('10.0.0.1', 2882, 2, '2026-12-04 10:00:01', 1002, 1, 'ON CPU', 'Q1', '', ''),
  ('10.0.0.1', 2882, 3, '2026-12-04 10:00:01', 1002, 2, 'ON CPU', 'Q1', '', ''),
  ('10.0.0.1', 2882, 4, '2026-12-04 10:00:02', 1002, 2, 'WAITING', 'Q1', 'row lock wait', 'CONCURRENCY'),
  ('10.0.0.1', 2882, 0, '2026-12-04 09:59:59', 1002, 2, 'ON CPU', 'Q1', '', ''),
  ('10.0.0.2', 2882, 8, '2026-12-04 09:00:01', 1002, 3, 'WAITING', 'Q2', 'row lock wait', 'CONCURRENCY'),
  ('10.0.0.2', 2882, 9, '2026-12-04 09:00:02', 1001, 9, 'ON CPU', '', '', '');"#,
    );
    let m = exporter.wait_for_metrics(
        "the new samples are counted",
        Duration::from_secs(30),
        |m| samples(m, "CONCURRENCY", "row lock wait") == Some(2.0),
    );
    assert_eq!(samples(&m, "CPU", "CPU"), Some(2.0));
    assert!(m
        .matching("dbsession_ash_samples_total", &[("tenant", "META$1002")])
        .is_empty());
    // No view of the current wait on OceanBase: the history stands for it.
    assert!(m.matching("dbsession_wait_event_sessions", &t1).is_empty());
    // Counted once: later reads find nothing new.
    std::thread::sleep(Duration::from_millis(2500));
    let later = exporter.metrics();
    assert_eq!(samples(&later, "CPU", "CPU"), Some(2.0));
    assert_eq!(samples(&later, "CONCURRENCY", "row lock wait"), Some(2.0));
}

/// The session API's pile-up of a cluster tenant, on the relations of the test above:
/// the waiter with the session holding its row (`ID2`), the tenant's transactions
/// oldest first (another tenant's left out), and each named session once.
#[test]
fn a_cluster_tenant_s_pileup_is_its_own() {
    let Some(servers) = Servers::get() else {
        return;
    };
    servers.seekdb_root(&TRANSACTIONS.replace("it_ctx", "it_pileup"));
    servers.seekdb_root("GRANT SELECT ON it_pileup.* TO monitor");
    let exporter = crate::passthrough::start(&format!(
        "  - name: c\n    kind: oceanbase\n    address: {}\n    user: monitor@sys\n    password_file: {}\n    processlist_view: it_pileup.PL\n    tenants_view: it_pileup.TENANTS\n    transactions_view: it_pileup.TX\n    locks_view: it_pileup.LK\n",
        servers.seekdb_addr,
        servers.monitor_password_file.display(),
    ));
    exporter.wait_for_metrics("both tenants collected", Duration::from_secs(30), |m| {
        m.get("dbsession_up", &[("target", "c"), ("tenant", "t2")]) == Some(1.0)
    });
    let t1 = crate::passthrough::ok(&exporter, "/api/v1/tenant/t1/sessions/pileup");
    assert_eq!(
        t1["lock_waits"],
        serde_json::json!([{"waiter": 202, "blocker": 201, "wait_seconds": 8.0, "lock": "row"}]),
        "{t1}"
    );
    let transactions = t1["transactions"].as_array().unwrap();
    let summary: Vec<(u64, bool)> = transactions
        .iter()
        .map(|t| (t["id"].as_u64().unwrap(), t["idle"].as_bool().unwrap()))
        .collect();
    assert_eq!(summary, vec![(201, true), (202, false)], "{t1}");
    let age = transactions[0]["age_seconds"].as_f64().unwrap();
    assert!((100.0..130.0).contains(&age), "{age}");
    let named: Vec<u64> = t1["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .collect();
    assert_eq!(named, vec![201, 202], "{t1}");
    assert_eq!(t1["truncated"], false);
    let t2 = crate::passthrough::ok(&exporter, "/api/v1/tenant/t2/sessions/pileup");
    assert_eq!(t2["lock_waits"], serde_json::json!([]), "{t2}");
    assert_eq!(t2["transactions"][0]["id"], 301, "{t2}");
    assert_eq!(t2["transactions"].as_array().unwrap().len(), 1, "{t2}");
}

/// A cluster session's detail carries its wait from the active session history: the
/// session's own latest sample on its own server, if it is of the last seconds.
#[test]
fn a_session_s_detail_carries_its_wait_from_the_history() {
    let Some(servers) = Servers::get() else {
        return;
    };
    servers.seekdb_root(&crate::common::ash_cluster_tables("it_ashd"));
    servers.seekdb_root(
        r#"INSERT INTO it_ashd.TENANTS VALUES (1002, 't1', 'USER');
INSERT INTO it_ashd.PL VALUES
  (1, 't1', '10.0.0.1', 2882, 'app', '', 'shop', 'Query', 2, 'ACTIVE', 'UPDATE t', '10.1.1.1', 'Q1', '', ''),
  (2, 't1', '10.0.0.1', 2882, 'app', '', 'shop', 'Query', 3, 'ACTIVE', 'SELECT 1', '10.1.1.1', 'Q2', '', ''),
  (3, 't1', '10.0.0.2', 2882, 'app', '', 'shop', 'Query', 4, 'ACTIVE', 'SELECT 2', '10.1.1.1', 'Q3', '', ''),
  (4, 't1', '10.0.0.1', 2882, 'app', '', 'shop', 'Sleep', 9, 'SLEEP', NULL, '10.1.1.1', '', '', '');
INSERT INTO it_ashd.ASH VALUES
  ('10.0.0.1', 2882, 1, NOW(6) - INTERVAL 30 SECOND, 1002, 1, 'ON CPU', 'Q1', '', ''),
  ('10.0.0.1', 2882, 2, NOW(6), 1002, 1, 'WAITING', 'Q1', 'row lock wait', 'CONCURRENCY'),
  ('10.0.0.1', 2882, 3, NOW(6), 1002, 2, 'ON CPU', 'Q2', '', ''),
  ('10.0.0.2', 2882, 4, NOW(6) - INTERVAL 60 SECOND, 1002, 3, 'WAITING', 'Q3', 'io', 'USER_IO'),
  ('10.0.0.2', 2882, 5, NOW(6), 1002, 1, 'WAITING', 'Q9', 'other server', 'OTHER');"#,
    );
    let exporter = crate::passthrough::start(&format!(
        "  - name: ashd\n    kind: oceanbase\n    address: {}\n    user: monitor@sys\n    password_file: {}\n    processlist_view: it_ashd.PL\n    tenants_view: it_ashd.TENANTS\n    ash_view: it_ashd.ASH\n",
        servers.seekdb_addr,
        servers.monitor_password_file.display(),
    ));
    exporter.wait_for_metrics("collected", Duration::from_secs(30), |m| {
        m.get("dbsession_up", &[("target", "ashd"), ("tenant", "t1")]) == Some(1.0)
    });
    let wait = |id: u32| {
        let s = crate::passthrough::ok(&exporter, &format!("/api/v1/tenant/t1/sessions/{id}"));
        (
            s["wait_class"].as_str().unwrap().to_string(),
            s["wait_event"].as_str().unwrap().to_string(),
        )
    };
    let pair = |c: &str, e: &str| (c.to_string(), e.to_string());
    assert_eq!(
        wait(1),
        pair("CONCURRENCY", "row lock wait"),
        "its newest sample, on its server"
    );
    assert_eq!(wait(2), pair("CPU", "CPU"));
    assert_eq!(
        wait(3),
        pair("", ""),
        "a sample a minute old tells nothing now"
    );
    assert_eq!(wait(4), pair("", ""), "idle");
}
