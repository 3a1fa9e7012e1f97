//! PostgreSQL's sessions through the session API: obshell's SDK lists, reads and ends
//! them, and a kill names the session it means.

use super::*;

/// obshell's own SDK, unchanged, against a PostgreSQL target's session API: list,
/// pages, filters, sort, detail with the query text, stats, and both kills.
#[test]
fn the_obshell_sdk_lists_reads_and_ends_postgresql_sessions() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let admin = |sql: &str| servers.postgres_admin(sql);
    for user in ["it_sdk_app", "it_sdk_rpt"] {
        servers.postgres_role(user, PASSWORD, "");
    }
    // The passthrough's account may end other users' sessions.
    servers.postgres_role(
        "it_sdk_killer",
        PASSWORD,
        "IN ROLE pg_monitor, pg_signal_backend",
    );
    // This one may see them, not end them.
    servers.postgres_role("it_sdk_weak", PASSWORD, "IN ROLE pg_monitor");
    for db in ["it_sdk_db1", "it_sdk_db2"] {
        servers.postgres_database(db);
    }
    let sessions = EndSessions::of(&servers, &["it_sdk_app", "it_sdk_rpt"]);
    let clients = Clients::new(&servers.postgres_addr);
    let _idle: Vec<Client> = (0..3)
        .map(|_| clients.open("it_sdk_app", "it_sdk_db1", "127.0.0.101"))
        .collect();
    let busy: Vec<Client> = (0..2)
        .map(|_| clients.open("it_sdk_app", "it_sdk_db1", "127.0.0.102"))
        .chain([clients.open("it_sdk_rpt", "it_sdk_db2", "127.0.0.102")])
        .collect();
    for client in &busy {
        clients.start(client, "SELECT pg_sleep(300)");
    }
    let dir = tempfile::tempdir().unwrap();
    let obshell_password = "obshell-Root-pw-1";
    std::fs::write(dir.path().join("obshell.password"), obshell_password).unwrap();
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 1s\n  collect_timeout: 800ms\npassthrough:\n  enabled: true\n  request_timeout: 5s\n  allow_kill: true\n  obshell_auth:\n    password_file: {}\ntargets:\n  - name: pg\n    kind: postgresql\n    address: {}\n    user: it_sdk_killer\n    password: {PASSWORD}\n    sslmode: disable\n    filter: {{users: {{allow: [it_sdk_app, it_sdk_rpt]}}}}\n  - name: weak\n    kind: postgresql\n    address: {}\n    user: it_sdk_weak\n    password: {PASSWORD}\n    sslmode: disable\n    filter: {{users: {{allow: [it_sdk_app]}}}}\n",
        dir.path().join("obshell.password").display(),
        servers.postgres_addr,
        servers.postgres_addr,
    ));
    exporter.wait_for_metrics("six sessions", Duration::from_secs(30), |m| {
        m.get("dbsession_sessions", &[("target", "pg"), ("tenant", "pg")]) == Some(6.0)
    });
    let (host, port) = crate::common::split_addr(&exporter.addr);
    let (server_ip, _) = crate::common::split_addr(&servers.postgres_addr);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/obshell_sdk.py");
    let run = |args: &[&str]| -> serde_json::Value {
        let output = std::process::Command::new("python3")
            .arg(script)
            .args(args)
            .output()
            .expect("python3 with the obshell SDK");
        assert!(
            output.status.success(),
            "the SDK failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            exporter.log()
        );
        serde_json::from_slice(&output.stdout).expect("JSON")
    };
    let got = run(&[
        host,
        port,
        obshell_password,
        "pg",
        "it_sdk_app",
        "it_sdk_db1",
        "127.0.0.102",
        server_ip,
    ]);
    let pids = |user: &str, state: &str| -> Vec<u64> {
        let mut pids: Vec<u64> = admin(&format!(
            "SELECT pid FROM pg_stat_activity WHERE usename = '{user}' AND state = '{state}'"
        ))
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
        pids.sort_unstable();
        pids
    };
    let idle = pids("it_sdk_app", "idle");
    let sleeping = pids("it_sdk_app", "active");
    let mut app: Vec<u64> = idle.iter().chain(&sleeping).copied().collect();
    app.sort_unstable();
    crate::obshell_sdk::assert_answers(
        &got,
        "it_sdk_app",
        "it_sdk_rpt",
        &app,
        &sleeping,
        "SELECT pg_sleep(300)",
    );

    // PostgreSQL keeps no deadlock history: the SDK is told so, in obshell's shape.
    let deadlocks = crate::obshell_sdk::sdk_deadlocks(&exporter, obshell_password, "pg", None);
    assert_eq!(deadlocks["error"][0], 501, "{deadlocks}");
    assert_eq!(deadlocks["error"][1], "Common.NotSupported");
    assert!(
        deadlocks["error"][2]
            .as_str()
            .unwrap()
            .contains("dbsession_deadlocks_total"),
        "{deadlocks}"
    );

    // KILL QUERY cancels the statement, the session stays; KILL ends the session.
    let kill_on = |target: &str, what: &str, id: u64| {
        run(&[
            "kill",
            host,
            port,
            obshell_password,
            target,
            what,
            &id.to_string(),
        ])
    };
    let kill = |what: &str, id: u64| kill_on("pg", what, id);
    // An account without pg_signal_backend is told that it lacks the grant (403,
    // not "unavailable"), and the session stays.
    let refused = kill_on("weak", "session", idle[0]);
    assert_eq!(refused["error"][0], 403, "{refused}");
    assert_eq!(
        refused["error"][1], "Exporter.Account.GrantMissing",
        "{refused}"
    );
    assert!(
        refused["error"][2]
            .as_str()
            .unwrap()
            .contains("lacks the grant"),
        "{refused}"
    );
    assert!(pids("it_sdk_app", "idle").contains(&idle[0]));
    assert_eq!(kill("query", sleeping[0]), serde_json::json!({"ok": true}));
    assert_eq!(
        kill("session", sleeping[1]),
        serde_json::json!({"ok": true})
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now_idle = pids("it_sdk_app", "idle");
        let gone = !pids("it_sdk_app", "active").contains(&sleeping[1])
            && !now_idle.contains(&sleeping[1]);
        if now_idle.contains(&sleeping[0]) && gone {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the kills took no effect"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A pid that is not one of the target's sessions is refused, and nothing ends.
    let error = kill("session", 1);
    assert_eq!(error["error"][1], "OB.Tenant.Session.NotExist", "{error}");
    sessions.end();
    drop(busy);
}

/// A kill names the session's start as the list showed it (`started`, from
/// `backend_start`). A session whose pid now belongs to another (PostgreSQL reuses
/// pids) ends nothing, and the answer says why; with the start shown, it ends.
#[test]
fn a_kill_of_a_replaced_session_ends_nothing_and_says_why() {
    let Some(servers) = Servers::get() else {
        return;
    };
    servers.postgres_role("it_rk_app", PASSWORD, "");
    servers.postgres_role(
        "it_rk_killer",
        PASSWORD,
        "IN ROLE pg_monitor, pg_signal_backend",
    );
    servers.postgres_database("it_rk_db");
    let clients = Clients::new(&servers.postgres_addr);
    let _victim = clients.open("it_rk_app", "it_rk_db", "127.0.0.103");
    let dir = tempfile::tempdir().unwrap();
    let token = "replaced-kill-token-0123456789";
    std::fs::write(dir.path().join("token"), token).unwrap();
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 1s\n  collect_timeout: 800ms\npassthrough:\n  enabled: true\n  allow_kill: true\n  bearer_token_file: {}\ntargets:\n  - name: pg_rk\n    kind: postgresql\n    address: {}\n    user: it_rk_killer\n    password: {PASSWORD}\n    sslmode: disable\n    filter: {{users: {{allow: [it_rk_app]}}}}\n",
        dir.path().join("token").display(),
        servers.postgres_addr,
    ));
    let bearer = format!("Bearer {token}");
    let mut shown = serde_json::Value::Null;
    exporter.wait_until("the session is listed", Duration::from_secs(30), || {
        let Some((200, _, body)) = exporter.try_get_with(
            "/api/v1/tenant/pg_rk/sessions",
            &[("Authorization", &bearer)],
        ) else {
            return false;
        };
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        shown = json["data"]["contents"][0].clone();
        shown.is_object()
    });
    let pid = shown["id"].as_u64().expect("an id");
    let started = shown["started"].as_str().expect("started").to_string();
    assert!(
        started.len() == 27 && started.ends_with('Z') && started.as_bytes()[10] == b'T',
        "RFC 3339 in UTC to the microsecond: {started}"
    );
    let alive = || {
        servers
            .postgres_admin(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"
            ))
            .trim()
            == "1"
    };
    // The session shown ended and its pid went to a new one: the start differs.
    let earlier = format!("2001{}", &started[4..]);
    let (status, json) = crate::common::http_delete(
        &exporter.addr,
        "/api/v1/tenant/pg_rk/sessions",
        &[("Authorization", &bearer)],
        &format!("{{\"session_ids\": [{pid}], \"started\": {{\"{pid}\": \"{earlier}\"}}}}"),
    );
    assert_eq!(status, 409, "{json}");
    let message = json["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("not the session that was shown")
            && message.contains(&started)
            && message.contains("nothing was ended"),
        "{json}"
    );
    assert_eq!(
        json["error"]["errCode"], "Exporter.Session.Replaced",
        "{json}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(), "a refused kill ended the session");
    // A start for an id not asked for is refused as such.
    let (status, json) = crate::common::http_delete(
        &exporter.addr,
        "/api/v1/tenant/pg_rk/sessions",
        &[("Authorization", &bearer)],
        &format!("{{\"session_ids\": [{pid}], \"started\": {{\"1\": \"{started}\"}}}}"),
    );
    assert_eq!(status, 400, "{json}");
    // The session shown, as shown: ended.
    let (status, json) = crate::common::http_delete(
        &exporter.addr,
        "/api/v1/tenant/pg_rk/sessions",
        &[("Authorization", &bearer)],
        &format!("{{\"session_ids\": [{pid}], \"started\": {{\"{pid}\": \"{started}\"}}}}"),
    );
    assert_eq!(status, 200, "{json}");
    exporter.wait_until("the session ended", Duration::from_secs(10), || !alive());
}
