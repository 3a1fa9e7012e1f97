//! The servers' own connection counters, against what the servers say: a private
//! MariaDB whose `max_connections` real clients exceed, short connections and a
//! killed session on PostgreSQL, and an OceanBase cluster's `GV$SYSSTAT` (a relation
//! of that shape on seekdb, which has none and so exports none of its own).

use crate::common::{
    ash_cluster_tables, split_addr, Exporter, PrivateMariadb, PsqlSession, Servers,
};
use std::time::Duration;

/// A connection as `user`, or the server's refusal.
fn try_connect(addr: &str, user: &str, password: &str) -> Result<mysql::Conn, mysql::Error> {
    let (host, port) = split_addr(addr);
    let opts = mysql::OptsBuilder::new()
        .ip_or_hostname(Some(host))
        .tcp_port(port.parse().expect("port"))
        .user(Some(user))
        .pass(Some(password))
        .prefer_socket(false)
        .tcp_connect_timeout(Some(Duration::from_secs(10)));
    mysql::Conn::new(opts)
}

/// A private MariaDB (its `max_connections` is its own) that lets 5 sessions in,
/// with an ordinary account `it_c_app` and one with SUPER, `it_c_super`.
pub fn limited_mariadb(monitor_password: &str) -> PrivateMariadb {
    let server = PrivateMariadb::start(monitor_password);
    server.root(
        "SET GLOBAL max_connections = 5; \
         CREATE USER 'it_c_app'@'%' IDENTIFIED BY 'It-app-1'; \
         CREATE USER 'it_c_super'@'%' IDENTIFIED BY 'It-super-1'; \
         GRANT ALL PRIVILEGES ON *.* TO 'it_c_super'@'%'",
    );
    server
}

/// Makes `server` ([`limited_mariadb`]) refuse `n` connections that it counts in
/// `Connection_errors_max_connections`: the ordinary slots are filled (the first
/// refusal counts only as an aborted connect), then the SUPER one, then `n` more
/// are tried; every connection is closed again.
pub fn refuse_at_the_limit(server: &PrivateMariadb, n: usize) {
    let mut held = Vec::new();
    let first_refusal = loop {
        assert!(held.len() < 10, "max_connections 5 let 10 sessions in");
        match try_connect(&server.addr(), "it_c_app", "It-app-1") {
            Ok(conn) => held.push(conn),
            Err(err) => break err.to_string(),
        }
    };
    assert!(first_refusal.contains("1040"), "{first_refusal}");
    let _super_slot = try_connect(&server.addr(), "it_c_super", "It-super-1")
        .expect("MariaDB keeps one more connection for SUPER");
    for _ in 0..n {
        let err = try_connect(&server.addr(), "it_c_app", "It-app-1").map(drop);
        assert!(err.is_err(), "refused while every slot is taken");
    }
}

/// Refusals at `max_connections`, as MariaDB counts them: an ordinary account refused
/// while the connection MariaDB keeps for SUPER is free raises `Aborted_connects`
/// only; once that one is taken too, each refusal also raises
/// `Connection_errors_max_connections`. The exporter's counters end equal to the
/// server's, and short connections raise `dbsession_connections_total` by at least
/// their number.
#[test]
fn mariadb_refusals_and_connections_are_the_servers_own_counts() {
    // The servers' binaries, and CI's demand that they exist.
    let Some(_servers) = Servers::get() else {
        return;
    };
    let server = limited_mariadb("It-conn-mon-1");
    let status = |name: &str| -> f64 {
        server
            .root(&format!(
                "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
                 WHERE VARIABLE_NAME = '{name}'"
            ))
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\ntargets:\n  - name: full\n    kind: mysql\n    address: {}\n    user: monitor\n    password: It-conn-mon-1\n    limits_interval: 1s\n",
        server.addr()
    ));
    let tenant = [("target", "full"), ("tenant", "full")];
    fn refused(reason: &str) -> [(&str, &str); 3] {
        [("target", "full"), ("tenant", "full"), ("reason", reason)]
    }
    let m = exporter.wait_for_metrics("the counters are read", Duration::from_secs(30), |m| {
        m.get("dbsession_connections_total", &tenant).is_some()
    });
    let before = m.get("dbsession_connections_total", &tenant).unwrap();
    for _ in 0..20 {
        drop(try_connect(&server.addr(), "it_c_app", "It-app-1").expect("a short connection"));
    }
    exporter.wait_for_metrics(
        "20 short connections are counted",
        Duration::from_secs(30),
        |m| m.get("dbsession_connections_total", &tenant) >= Some(before + 20.0),
    );

    refuse_at_the_limit(&server, 3);

    let at_limit = status("CONNECTION_ERRORS_MAX_CONNECTIONS");
    assert!(
        at_limit >= 3.0,
        "counted once the SUPER slot was taken: {at_limit}"
    );
    assert!(
        status("ABORTED_CONNECTS") >= 4.0,
        "every refusal is an aborted connect"
    );
    // The server's counters as they are now (an exporter reconnecting while the
    // slots were full would have moved them too): the exporter's end equal.
    let m = exporter.wait_for_metrics(
        "the exporter reads what the server counted",
        Duration::from_secs(30),
        |m| {
            m.get(
                "dbsession_connections_refused_total",
                &refused("max_connections"),
            ) == Some(status("CONNECTION_ERRORS_MAX_CONNECTIONS"))
                && m.get("dbsession_connections_refused_total", &refused("aborted"))
                    == Some(status("ABORTED_CONNECTS"))
                && m.get("dbsession_sessions_peak", &tenant) == Some(status("MAX_USED_CONNECTIONS"))
        },
    );
    let peak = status("MAX_USED_CONNECTIONS");
    // Five ordinary sessions and the SUPER one at least (a closed session's thread
    // may still count while it ends).
    assert!(peak >= 6.0, "{peak}");
    let access_denied = m.get(
        "dbsession_connections_refused_total",
        &refused("access_denied"),
    );
    let ended = m.get("dbsession_sessions_ended_total", &refused("aborted"));
    assert!(
        access_denied.is_some() && ended.is_some(),
        "MariaDB's other counters are there: {:?}",
        m.matching("dbsession_connections_refused_total", &tenant)
    );
    // This server runs without performance_schema: the metadata locks' holders
    // cannot be named, which is said once.
    let said = exporter
        .log()
        .matches("metadata lock holders are not named")
        .count();
    assert_eq!(said, 1, "{}", exporter.log());
}

/// PostgreSQL 14+ counts sessions and how they ended, per database: a terminated
/// session raises `killed`, short connections raise the sessions. It counts no
/// refusal and keeps no peak: neither has a series.
#[test]
fn postgresql_counts_its_sessions_and_the_killed_ones() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\ntargets:\n  - name: pgc\n    kind: postgresql\n    address: {}\n    user: monitor\n    password_file: {}\n    sslmode: disable\n    limits_interval: 1s\n",
        servers.postgres_addr,
        servers.monitor_password_file.display()
    ));
    let tenant = [("target", "pgc"), ("tenant", "pgc")];
    let killed = [("target", "pgc"), ("tenant", "pgc"), ("reason", "killed")];
    let m = exporter.wait_for_metrics("the counters are read", Duration::from_secs(30), |m| {
        m.get("dbsession_connections_total", &tenant).is_some()
    });
    let (sessions, killed_before) = (
        m.get("dbsession_connections_total", &tenant).unwrap(),
        m.get("dbsession_sessions_ended_total", &killed).unwrap(),
    );
    for reason in ["abandoned", "fatal"] {
        let labels = [("target", "pgc"), ("tenant", "pgc"), ("reason", reason)];
        assert!(
            m.get("dbsession_sessions_ended_total", &labels).is_some(),
            "{reason}"
        );
    }
    assert!(m
        .matching("dbsession_connections_refused_total", &tenant)
        .is_empty());
    assert!(m.get("dbsession_sessions_peak", &tenant).is_none());

    for _ in 0..5 {
        servers.postgres_admin("SELECT 1");
    }
    let _victim = PsqlSession::start(
        &servers.postgres_addr,
        "monitor",
        &servers.monitor_password(),
        "postgres",
        Some("it_conn_victim"),
    );
    let terminate = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE application_name = 'it_conn_victim'";
    exporter.wait_until("the victim is terminated", Duration::from_secs(30), || {
        servers.postgres_admin(terminate).trim() == "1"
    });
    exporter.wait_for_metrics(
        "the killed session and the short ones are counted",
        Duration::from_secs(30),
        |m| {
            m.get("dbsession_sessions_ended_total", &killed) >= Some(killed_before + 1.0)
                && m.get("dbsession_connections_total", &tenant) >= Some(sessions + 6.0)
        },
    );
}

/// An OceanBase cluster counts logons per server and tenant in `GV$SYSSTAT`: the
/// exporter sums a tenant's servers and leaves the META tenant out. seekdb has no
/// `V$SYSSTAT`: a single tenant of it has no series, and the log says so once.
#[test]
fn a_cluster_s_logons_are_summed_per_tenant_and_seekdb_has_none() {
    let Some(servers) = Servers::get() else {
        return;
    };
    servers.seekdb_root(&ash_cluster_tables("it_conn_cl"));
    servers.seekdb_root(
        "DROP TABLE IF EXISTS it_conn_cl.SYSSTAT; \
         CREATE TABLE it_conn_cl.SYSSTAT (CON_ID BIGINT, SVR_IP VARCHAR(46), SVR_PORT BIGINT, \
           `STATISTIC#` BIGINT, NAME VARCHAR(64), CLASS BIGINT, VALUE BIGINT, STAT_ID BIGINT); \
         INSERT INTO it_conn_cl.TENANTS VALUES (1, 'sys', 'SYS'), (1001, 'META$1002', 'META'), \
           (1002, 't1', 'USER'), (1004, 't2', 'USER'); \
         INSERT INTO it_conn_cl.SYSSTAT (CON_ID, SVR_IP, SVR_PORT, NAME, VALUE) VALUES \
           (1002, '10.0.0.1', 2882, 'user logons cumulative', 100), \
           (1002, '10.0.0.2', 2882, 'user logons cumulative', 23), \
           (1002, '10.0.0.1', 2882, 'user logons failed cumulative', 4), \
           (1002, '10.0.0.2', 2882, 'user logons failed cumulative', 1), \
           (1002, '10.0.0.1', 2882, 'user logouts cumulative', 90), \
           (1002, '10.0.0.1', 2882, 'user logons time cumulative', 7777), \
           (1004, '10.0.0.1', 2882, 'user logons cumulative', 5), \
           (1001, '10.0.0.1', 2882, 'user logons cumulative', 999);",
    );
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\ntargets:\n  - name: cl\n    kind: oceanbase\n    address: {addr}\n    user: monitor@sys\n    password_file: {pw}\n    limits_interval: 1s\n    processlist_view: it_conn_cl.PL\n    tenants_view: it_conn_cl.TENANTS\n    ash_view: it_conn_cl.ASH\n    sysstat_view: it_conn_cl.SYSSTAT\n  - name: single\n    kind: oceanbase\n    address: {addr}\n    user: monitor\n    password_file: {pw}\n    limits_interval: 1s\n",
        addr = servers.seekdb_addr,
        pw = servers.monitor_password_file.display()
    ));
    let labels = |tenant: &'static str, reason: Option<&'static str>| {
        let mut labels = vec![("target", "cl"), ("tenant", tenant)];
        labels.extend(reason.map(|r| ("reason", r)));
        labels
    };
    let single = [("target", "single"), ("tenant", "single")];
    let m = exporter.wait_for_metrics("both targets collected", Duration::from_secs(30), |m| {
        m.get("dbsession_connections_total", &labels("t2", None))
            .is_some()
            && m.get("dbsession_up", &single) == Some(1.0)
    });
    assert_eq!(
        m.get("dbsession_connections_total", &labels("t1", None)),
        Some(123.0)
    );
    assert_eq!(
        m.get(
            "dbsession_connections_refused_total",
            &labels("t1", Some("failed"))
        ),
        Some(5.0)
    );
    assert_eq!(
        m.get(
            "dbsession_sessions_ended_total",
            &labels("t1", Some("logout"))
        ),
        Some(90.0)
    );
    assert_eq!(
        m.get("dbsession_connections_total", &labels("t2", None)),
        Some(5.0)
    );
    assert!(
        m.matching("dbsession_connections_total", &[("tenant", "META$1002")])
            .is_empty()
            && m.get("dbsession_sessions_peak", &labels("t1", None))
                .is_none(),
        "no META tenant, no peak"
    );
    assert!(m
        .matching("dbsession_connections_total", &single)
        .is_empty());
    let said = exporter
        .log()
        .matches("`oceanbase`.`V$SYSSTAT` is not readable")
        .count();
    assert_eq!(said, 1, "said once: {}", exporter.log());
}
