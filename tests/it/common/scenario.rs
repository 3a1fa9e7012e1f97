//! The exact-count scenario run against each real server: known users on known
//! databases from known client addresses, some busy in `SELECT SLEEP`, then every
//! gauge of the tenant asserted exactly.

use super::{Exporter, Session, SessionSpec};
use std::time::{Duration, Instant};

/// A server under test, seen by the scenario.
pub struct Server<'a> {
    pub addr: &'a str,
    /// Runs SQL as an administrator.
    pub admin: &'a dyn Fn(&str) -> String,
    /// `kind: …` and any other target keys, as YAML lines (4-space indented).
    pub target_yaml: String,
    pub target: &'a str,
    pub tenant: &'a str,
    /// Prefix of unique names for this server's users and databases.
    pub prefix: &'a str,
    /// First three octets of the loopback client addresses, e.g. "127.0.0." plus a base.
    pub ip_base: u8,
}

pub fn assert_exact_sessions(server: &Server<'_>) {
    let p = server.prefix;
    let (app, rpt, db1, db2) = (
        format!("{p}_app"),
        format!("{p}_rpt"),
        format!("{p}_db1"),
        format!("{p}_db2"),
    );
    let password = "Scenario-pw-1";
    for user in [&app, &rpt] {
        (server.admin)(&format!(
            "CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}'"
        ));
    }
    for db in [&db1, &db2] {
        (server.admin)(&format!("CREATE DATABASE IF NOT EXISTS {db}"));
        for user in [&app, &rpt] {
            (server.admin)(&format!("GRANT ALL ON {db}.* TO '{user}'@'%'"));
        }
    }
    let ip = |n: u8| format!("127.0.0.{}", server.ip_base + n);
    let (ip1, ip2, ip3) = (ip(1), ip(2), ip(3));

    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\ntargets:\n  - name: {}\n    address: {}\n{}",
        server.target, server.addr, server.target_yaml
    ));
    let t = server.target;
    let tenant = server.tenant;
    let base = [("target", t), ("tenant", tenant)];
    let baseline =
        exporter.wait_for_metrics("the first collection", Duration::from_secs(30), |m| {
            m.get("dbsession_up", &base) == Some(1.0)
        });
    let before = baseline
        .get("dbsession_sessions", &base)
        .expect("sessions gauge");

    let spec = |user: &'_ str, db: Option<&'_ str>, from: &'_ str, sleep: Option<u32>| {
        Session::open(&SessionSpec {
            addr: server.addr,
            user,
            password,
            db,
            from,
            sleep,
        })
    };
    let opened_at = Instant::now();
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(spec(&app, Some(&db1), &ip1, None));
    }
    for _ in 0..2 {
        sessions.push(spec(&app, Some(&db1), &ip2, Some(120)));
    }
    sessions.push(spec(&rpt, Some(&db2), &ip2, Some(120)));
    for _ in 0..2 {
        sessions.push(spec(&rpt, None, &ip3, None));
    }

    let m = exporter.wait_for_metrics(
        "all 8 test sessions are counted and the busy ones have run 1 s",
        Duration::from_secs(30),
        |m| {
            m.get(
                "dbsession_user_sessions",
                &[("target", t), ("tenant", tenant), ("user", &app)],
            ) == Some(5.0)
                && m.get(
                    "dbsession_user_sessions",
                    &[("target", t), ("tenant", tenant), ("user", &rpt)],
                ) == Some(3.0)
                && m.get(
                    "dbsession_user_active_sessions",
                    &[("target", t), ("tenant", tenant), ("user", &rpt)],
                ) == Some(1.0)
                && m.get("dbsession_max_active_time_seconds", &base)
                    .is_some_and(|v| v >= 1.0)
        },
    );

    let get = |name: &str, extra: Option<(&str, &str)>| {
        let mut labels = base.to_vec();
        labels.extend(extra);
        m.get(name, &labels)
            .unwrap_or_else(|| panic!("{name} {labels:?} missing in\n{}", m.text))
    };
    // Sessions of this scenario are the only ones besides the baseline (the
    // exporter's own connection is never counted).
    assert_eq!(get("dbsession_sessions", None), before + 8.0);
    assert_eq!(
        get("dbsession_active_sessions", None),
        3.0,
        "only the three SLEEPs are active"
    );
    let max_active = get("dbsession_max_active_time_seconds", None);
    assert!(
        max_active >= 1.0 && max_active <= opened_at.elapsed().as_secs_f64() + 1.0,
        "max active time {max_active}"
    );
    for (name, label, value, expected) in [
        ("user", "user", app.as_str(), (5.0, 2.0)),
        ("user", "user", rpt.as_str(), (3.0, 1.0)),
        ("db", "db", db1.as_str(), (5.0, 2.0)),
        ("db", "db", db2.as_str(), (1.0, 1.0)),
        ("client", "client_ip", ip1.as_str(), (3.0, 0.0)),
        ("client", "client_ip", ip2.as_str(), (3.0, 3.0)),
        ("client", "client_ip", ip3.as_str(), (2.0, 0.0)),
    ] {
        let total = get(&format!("dbsession_{name}_sessions"), Some((label, value)));
        let active = get(
            &format!("dbsession_{name}_active_sessions"),
            Some((label, value)),
        );
        assert_eq!((total, active), expected, "{name} {value}");
    }
    // Sessions without a database: the two idle rpt sessions plus any baseline ones.
    let none_before = baseline
        .get(
            "dbsession_db_sessions",
            &[("target", t), ("tenant", tenant), ("db", "__none__")],
        )
        .unwrap_or(0.0);
    assert_eq!(
        get("dbsession_db_sessions", Some(("db", "__none__"))),
        none_before + 2.0
    );
    // One server: every session is on the target's address.
    let host = server.addr.rsplit_once(':').expect("host:port").0;
    assert_eq!(
        get("dbsession_server_sessions", Some(("svr_ip", host))),
        before + 8.0
    );
    assert_eq!(
        get("dbsession_server_active_sessions", Some(("svr_ip", host))),
        3.0
    );

    // The longest active sessions are exactly the three busy ones, ranked 1 to 3.
    let top = m.matching("dbsession_top_active_session_seconds", &base);
    let mut top_ids: Vec<String> = top
        .iter()
        .map(|(series, _)| {
            series
                .split("session_id=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("")
                .to_string()
        })
        .collect();
    top_ids.sort();
    let mut busy_ids: Vec<String> = sessions
        .iter()
        .filter(|s| s.is_busy())
        .map(|s| s.id.to_string())
        .collect();
    busy_ids.sort();
    assert_eq!(top_ids, busy_ids, "{top:?}");
    for rank in ["1", "2", "3"] {
        assert_eq!(
            m.matching(
                "dbsession_top_active_session_seconds",
                &[("target", t), ("rank", rank)]
            )
            .len(),
            1
        );
    }

    drop(sessions);
    exporter.wait_for_metrics("closed sessions disappear", Duration::from_secs(30), |m| {
        m.get("dbsession_sessions", &base) == Some(before)
            && m.get(
                "dbsession_user_sessions",
                &[("target", t), ("tenant", tenant), ("user", &app)],
            )
            .is_none()
    });
}
