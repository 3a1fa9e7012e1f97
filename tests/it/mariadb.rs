//! MariaDB, for real: exact gauges, and outage isolation and recovery.

use crate::common::scenario::{assert_exact_sessions, Server};
use crate::common::{Exporter, PrivateMariadb, Servers};
use std::time::Duration;

#[test]
fn counts_every_session_exactly() {
    let Some(servers) = Servers::exclusive() else {
        return;
    };
    let admin = |sql: &str| servers.mariadb_root(sql);
    assert_exact_sessions(&Server {
        addr: &servers.mariadb_addr,
        admin: &admin,
        target_yaml: format!(
            "    kind: mysql\n    user: monitor\n    password_file: {}\n",
            servers.monitor_password_file.display()
        ),
        target: "maria",
        tenant: "maria",
        prefix: "it_m",
        ip_base: 10,
    });
}

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
