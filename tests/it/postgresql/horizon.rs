//! The vacuum horizon on a real PostgreSQL: an idle `REPEATABLE READ` transaction
//! that ran a statement keeps its snapshot (`backend_xmin`) and holds the horizon,
//! named with its age; an idle `READ COMMITTED` one holds none.

use super::{Clients, EndSessions, PASSWORD};
use crate::common::{Exporter, Servers};
use std::time::Duration;

#[test]
fn the_idle_repeatable_read_session_holds_the_horizon_and_is_named() {
    let Some(servers) = Servers::get() else {
        return;
    };
    servers.postgres_role("it_pg_hz", PASSWORD, "");
    let _sessions = EndSessions::of(&servers, &["it_pg_hz"]);
    let clients = Clients::new(&servers.postgres_addr);
    let holder = clients.open_as("it_pg_hz", "postgres", "127.0.0.93", Some("it-report"));
    clients.run(&holder, "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1");
    let harmless = clients.open_as("it_pg_hz", "postgres", "127.0.0.94", Some("it-web"));
    clients.run(&harmless, "BEGIN; SELECT 1");
    // Transactions after the snapshot age it.
    for _ in 0..5 {
        servers.postgres_admin("SELECT txid_current()");
    }
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\ntargets:\n  - name: hz\n    kind: postgresql\n    address: {}\n    user: monitor\n    password_file: {}\n    sslmode: disable\n    filter: {{users: {{allow: [it_pg_hz]}}}}\n",
        servers.postgres_addr,
        servers.monitor_password_file.display()
    ));
    let tenant = [("target", "hz"), ("tenant", "hz")];
    let m = exporter.wait_for_metrics("the holder is named", Duration::from_secs(30), |m| {
        m.get("dbsession_idle_in_transaction_sessions", &tenant) == Some(2.0)
            && !m
                .matching("dbsession_horizon_holder_age", &tenant)
                .is_empty()
    });
    let server_age = |application: &str| -> f64 {
        servers
            .postgres_admin(&format!(
                "SELECT COALESCE(age(backend_xmin)::text, 'none') FROM pg_stat_activity \
                 WHERE application_name = '{application}'"
            ))
            .trim()
            .parse()
            .unwrap_or(-1.0)
    };
    let (age_after, harmless_age) = (server_age("it-report"), server_age("it-web"));
    assert_eq!(
        harmless_age, -1.0,
        "READ COMMITTED between statements holds no snapshot"
    );

    let holders = m.matching("dbsession_horizon_holder_age", &tenant);
    assert_eq!(holders.len(), 1, "{holders:?}");
    let (series, age) = &holders[0];
    for label in [
        "user=\"it_pg_hz\"",
        "db=\"postgres\"",
        "client_ip=\"127.0.0.93\"",
        "application=\"it-report\"",
    ] {
        assert!(series.contains(label), "{label}: {series}");
    }
    assert!(
        (5.0..=age_after).contains(age),
        "the snapshot's age, {age}, is at least the 5 transactions since and at most the server's {age_after} read later"
    );
    assert_eq!(m.get("dbsession_xmin_horizon_age", &tenant), Some(*age));
    assert_eq!(
        m.get(
            "dbsession_idle_in_transaction_holding_horizon_sessions",
            &tenant
        ),
        Some(1.0),
        "of the two idle in a transaction, only the one with a snapshot"
    );

    // Its transaction ends: nothing holds the horizon.
    clients.run(&holder, "COMMIT");
    exporter.wait_for_metrics("the horizon is free", Duration::from_secs(30), |m| {
        m.get(
            "dbsession_idle_in_transaction_holding_horizon_sessions",
            &tenant,
        ) == Some(0.0)
            && m.get("dbsession_xmin_horizon_age", &tenant).is_none()
            && m.matching("dbsession_horizon_holder_age", &tenant)
                .is_empty()
    });
    drop(harmless);
}
