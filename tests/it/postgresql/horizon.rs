//! The vacuum horizon on a real PostgreSQL: an idle `REPEATABLE READ` transaction
//! that ran a statement keeps its snapshot (`backend_xmin`) and holds the horizon,
//! named with its age; so does an idle `READ COMMITTED` one that took a transaction
//! id (`backend_xid`); an idle `READ COMMITTED` one that only read holds none.

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
    // A READ COMMITTED transaction that wrote (here: took a transaction id) holds
    // no snapshot between statements, but its id holds the horizon all the same.
    let writer = clients.open_as("it_pg_hz", "postgres", "127.0.0.99", Some("it-writer"));
    clients.run(&writer, "BEGIN; SELECT txid_current()");
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
        m.get("dbsession_idle_in_transaction_sessions", &tenant) == Some(3.0)
            && m.matching("dbsession_horizon_holder_age", &tenant).len() == 2
    });
    let server_age = |application: &str| -> f64 {
        servers
            .postgres_admin(&format!(
                "SELECT COALESCE(GREATEST(age(backend_xid), age(backend_xmin))::text, 'none') \
                 FROM pg_stat_activity \
                 WHERE application_name = '{application}' AND usename = 'it_pg_hz'"
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
    let ages: Vec<f64> = holders.iter().map(|(_, age)| *age).collect();
    for (client, application) in [("127.0.0.93", "it-report"), ("127.0.0.99", "it-writer")] {
        let (series, age) = holders
            .iter()
            .find(|(series, _)| series.contains(&format!("client_ip=\"{client}\"")))
            .unwrap_or_else(|| panic!("{client} holds the horizon: {holders:?}"));
        for label in [
            "user=\"it_pg_hz\"".to_string(),
            "db=\"postgres\"".to_string(),
            format!("application=\"{application}\""),
        ] {
            assert!(series.contains(&label), "{label}: {series}");
        }
        assert!(
            (5.0..=age_after).contains(age),
            "{client}'s age, {age}, is at least the 5 transactions since and at most the oldest's {age_after} read later"
        );
    }
    assert_eq!(
        m.get("dbsession_xmin_horizon_age", &tenant),
        ages.iter().copied().reduce(f64::max)
    );
    assert_eq!(
        m.get(
            "dbsession_idle_in_transaction_holding_horizon_sessions",
            &tenant
        ),
        Some(2.0),
        "of the three idle in a transaction, the snapshot and the writer"
    );
    // How long the longest of those two has been idle: no longer than the longest
    // idle in a transaction of all three.
    let holding_idle = m
        .get(
            "dbsession_max_idle_in_transaction_holding_horizon_seconds",
            &tenant,
        )
        .expect("the longest idle holder's time");
    let any_idle = m
        .get("dbsession_max_idle_in_transaction_seconds", &tenant)
        .expect("the longest idle in a transaction");
    assert!(
        holding_idle > 0.0 && holding_idle <= any_idle,
        "{holding_idle} s of {any_idle} s"
    );

    // Their transactions end: nothing holds the horizon.
    clients.run(&writer, "COMMIT");
    clients.run(&holder, "COMMIT");
    exporter.wait_for_metrics("the horizon is free", Duration::from_secs(30), |m| {
        m.get(
            "dbsession_idle_in_transaction_holding_horizon_sessions",
            &tenant,
        ) == Some(0.0)
            && m.get(
                "dbsession_max_idle_in_transaction_holding_horizon_seconds",
                &tenant,
            ) == Some(0.0)
            && m.get("dbsession_xmin_horizon_age", &tenant).is_none()
            && m.matching("dbsession_horizon_holder_age", &tenant)
                .is_empty()
    });
    drop(harmless);
}
