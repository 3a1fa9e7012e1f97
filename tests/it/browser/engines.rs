//! Each engine's sessions through the page: MariaDB, PostgreSQL and seekdb, with
//! exact counts, the pile-up, kills and the page's own checks (console, injected
//! strings, accessibility).

use super::*;

#[test]
fn mariadb_sessions_through_the_page() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let Some(tools) = tools() else {
        return;
    };
    let addr = servers.mariadb_addr.clone();
    let root = |sql: &str| servers.mariadb_root(sql);
    let o = open_sessions(&addr, &root, "page_m", 140);
    // A blocker idle in its transaction, and a session waiting for its row lock.
    let (lock, xss) = ("page_m_lock", "page_m_x<img src=x onerror=window.__xss=5>");
    mariadb_users_and_table(&servers, "page_m_db1", &[lock, xss]);
    let RowLockPileup {
        blocker,
        blocker_id,
        waiter,
    } = row_lock_pileup(&servers, "page_m_db1", lock, ("127.0.0.145", "127.0.0.146"));
    let kill = servers.mariadb_killer();
    // Statements and a user name that would run script if parsed as HTML.
    let probes = [
        "SELECT '<img src=x onerror=alert(1)>', SLEEP(300)",
        "SELECT '</script><script>window.__xss=2</script>', SLEEP(300)",
    ];
    let _xss: Vec<Blocked> = probes
        .iter()
        .map(|sql| {
            Blocked::start(
                connect_as(&addr, xss, PASSWORD, "127.0.0.147"),
                &[],
                sql,
                Box::new(kill.clone()),
            )
        })
        .collect();

    let killer_pw = killer_account(&servers);
    let (exporter, _dir) = start(
        "  allow_kill: true\n",
        &(mysql_target("page_maria", &addr, "page_killer", killer_pw.path())
            + &mysql_target(
                "page_weak",
                &addr,
                "monitor",
                &servers.monitor_password_file,
            )),
    );
    wait_up(&exporter, "page_maria");
    // The landing page links each tenant's sessions page.
    let landing = String::from_utf8(exporter.try_get("/").expect("landing page").2).unwrap();
    for tenant in ["page_maria", "page_weak"] {
        assert!(
            landing.contains(&format!(
                r#"<a href="/sessions?tenant={tenant}">{tenant}</a>"#
            )),
            "{landing}"
        );
    }
    wait_for_lock_wait(&exporter, "page_maria", waiter.id.into(), blocker_id.into());

    let app = |extra: Value| {
        let mut fields = json!({"user": "page_m_app", "db": "", "host": "", "state": "",
                                "min_time": "", "active_only": false, "sort": "time,desc", "size": "50"});
        for (k, v) in extra.as_object().unwrap() {
            fields[k] = v.clone();
        }
        json!({"do": "filter", "fields": fields})
    };
    let (idle, busy): (Vec<u32>, Vec<u32>) = (
        o.idle.iter().map(|s| s.id).collect(),
        o.busy[..2].iter().map(|s| s.id).collect(),
    );
    let a = drive(
        &tools,
        &exporter,
        json!([
            {"do": "open", "path": "/sessions?tenant=page_maria"},
            {"do": "signin", "token": "wrong-token-wrong-token"},
            {"do": "signin", "token": TOKEN},
            app(json!({})),
            app(json!({"active_only": true})),
            app(json!({"state": "Sleep"})),
            app(json!({"min_time": "100000"})),
            app(json!({"sort": "time,asc"})),
            {"do": "filter", "fields": {"user": "page_m_x", "active_only": false, "state": "", "min_time": "", "sort": "time,desc"}},
            {"do": "detail", "id": _xss[0].id},
            {"do": "probe"},
            {"do": "filter", "fields": {"user": lock, "sort": "id,asc"}},
            {"do": "axe"},
            {"do": "screenshot", "name": "mariadb-1280x800"},
            {"do": "open", "path": "/sessions?tenant=page_maria", "width": 390, "height": 844},
            {"do": "screenshot", "name": "mariadb-390x844"},
            {"do": "open", "path": "/sessions?tenant=page_maria", "width": 1280, "height": 800},
            app(json!({})),
            {"do": "kill", "ids": [idle[0]], "query": false},
            {"do": "kill", "ids": [busy[0]], "query": true},
            {"do": "pause", "seconds": 6},
            {"do": "console"},
        ]),
    );
    // Nothing but the sign-in form before credentials; a wrong token is said.
    assert_eq!(a[0]["signin_shown"], true, "{}", a[0]);
    assert_eq!(
        (a[0]["content_shown"].clone(), a[0]["rows"].clone()),
        (json!(false), json!(0))
    );
    assert_eq!(a[1]["signin_shown"], true, "{}", a[1]);
    assert!(
        a[1]["error"].as_str().unwrap().contains("refused"),
        "{}",
        a[1]
    );
    assert_eq!(a[2]["content_shown"], true, "{}", a[2]);
    assert_eq!(
        a[2]["stored"], 1,
        "the token in sessionStorage only: {}",
        a[2]
    );
    assert!(!a[2]["url"].as_str().unwrap().contains(TOKEN));

    // Exact counts, and the filters the server applied.
    assert_eq!(a[3]["total"], "(5 matching)", "{}", a[3]);
    assert_eq!(id_set(&a[3]), set(idle.iter().chain(&busy).copied()));
    assert_eq!(id_set(&a[4]), set(busy.clone()), "active only: {}", a[4]);
    assert_eq!(id_set(&a[5]), set(idle.clone()), "state Sleep: {}", a[5]);
    assert_eq!(a[6]["total"], "(0 matching)", "{}", a[6]);
    // Sorted by the server, both ways.
    let times = |state: &Value| -> Vec<f64> {
        state["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| shown_seconds(r["time"].as_str().unwrap()))
            .collect()
    };
    assert!(
        times(&a[3]).windows(2).all(|w| w[0] >= w[1]),
        "{:?}",
        times(&a[3])
    );
    assert!(
        times(&a[7]).windows(2).all(|w| w[0] <= w[1]),
        "{:?}",
        times(&a[7])
    );
    assert_eq!(id_set(&a[7]), id_set(&a[3]));

    // The probes are shown as text, and stay inert.
    let xss_rows = a[8]["rows"].as_array().unwrap();
    assert_eq!(xss_rows.len(), 2, "{}", a[8]);
    assert!(xss_rows.iter().all(|r| r["user"] == xss), "{}", a[8]);
    let shown: BTreeSet<&str> = xss_rows
        .iter()
        .map(|r| r["sql"].as_str().unwrap())
        .collect();
    assert_eq!(shown, probes.iter().copied().collect());
    assert_eq!(a[9]["sql"], probes[0], "the detail's SQL: {}", a[9]);
    assert_eq!(a[9]["fields"]["user"], xss, "{}", a[9]);
    // Its wait, from performance_schema: SLEEP waits on its condition.
    assert_eq!(a[9]["fields"]["wait_class"], "wait/synch/cond", "{}", a[9]);
    assert!(
        a[9]["fields"]["wait_event"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("sleep"),
        "{}",
        a[9]
    );
    assert_eq!(a[9]["kill_shown"], true);
    assert_inert(&a[10]);

    // The waiter under its blocker; the blocker idle in its transaction.
    let tree = a[11]["tree"].as_array().unwrap();
    let root_node = tree
        .iter()
        .find(|n| n["id"] == blocker_id)
        .unwrap_or_else(|| panic!("the blocker is a root: {}", a[11]));
    assert_eq!(root_node["waiters"][0]["id"], waiter.id, "{}", a[11]);
    assert!(root_node["waiters"][0]["text"]
        .as_str()
        .unwrap()
        .contains("waits"));
    assert!(
        a[11]["idle"]
            .as_array()
            .unwrap()
            .contains(&json!(blocker_id)),
        "{}",
        a[11]
    );
    let lock_rows = a[11]["rows"].as_array().unwrap();
    let waiting_row = lock_rows
        .iter()
        .find(|r| r["id"] == waiter.id)
        .expect("the waiter's row");
    assert!(
        waiting_row["lock"]
            .as_str()
            .unwrap()
            .ends_with(&format!("on {blocker_id}")),
        "{waiting_row}"
    );
    assert!(
        !waiting_row["trx"].as_str().unwrap().is_empty(),
        "{waiting_row}"
    );
    assert_accessible(&a[12]);

    // Kill session and kill query, through the page's confirmation.
    assert!(
        a[18]["listed"][0]
            .as_str()
            .unwrap()
            .contains(&idle[0].to_string()),
        "{}",
        a[18]
    );
    assert_eq!(a[18]["class"], "ok", "{}", a[18]);
    exporter.wait_until("the session is gone", Duration::from_secs(10), || {
        processlist_has(&servers, idle[0]).is_none()
    });
    assert_eq!(a[19]["class"], "ok", "{}", a[19]);
    exporter.wait_until("the query is ended", Duration::from_secs(10), || {
        processlist_has(&servers, busy[0]).as_deref() != Some("Query")
    });
    assert!(
        processlist_has(&servers, idle[1]).is_some(),
        "only the named session"
    );
    // Paused, nothing moves.
    assert_eq!(a[20]["pressed"], "true");
    assert_eq!(a[20]["refreshed_while_paused"], 0, "{}", a[20]);
    assert_console_clean(&a[21]);

    // An account the database refuses: the reason is shown, nothing ends.
    let weak = drive(
        &tools,
        &exporter,
        json!([
            {"do": "open", "path": "/sessions?tenant=page_weak"},
            {"do": "signin", "token": TOKEN},
            app(json!({})),
            {"do": "kill", "ids": [idle[1]], "query": false},
        ]),
    );
    assert_eq!(weak[3]["class"], "error", "{}", weak[3]);
    assert!(
        weak[3]["result"]
            .as_str()
            .unwrap()
            .contains("CONNECTION ADMIN"),
        "{}",
        weak[3]
    );
    assert!(processlist_has(&servers, idle[1]).is_some());

    // Without allow_kill, the page offers no way to end a session.
    let (closed, _dir2) = start(
        "",
        &mysql_target("page_maria", &addr, "page_killer", killer_pw.path()),
    );
    wait_up(&closed, "page_maria");
    let c = drive(
        &tools,
        &closed,
        json!([
            {"do": "open", "path": "/sessions?tenant=page_maria"},
            {"do": "signin", "token": TOKEN},
            app(json!({})),
            {"do": "detail", "id": idle[1]},
            {"do": "console"},
        ]),
    );
    assert_eq!(c[2]["actions_shown"], false, "{}", c[2]);
    assert!(c[2]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["checkbox"] == false));
    assert_eq!(c[3]["kill_shown"], false, "{}", c[3]);
    assert_console_clean(&c[4]);
    // No secret in a log line.
    for log in [exporter.log(), closed.log()] {
        assert!(!log.contains(TOKEN), "the token in the log");
        assert!(!log.contains(KILLER_PASSWORD), "a password in the log");
    }
    drop(waiter);
    drop(blocker);
}

#[test]
fn postgresql_sessions_through_the_page() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let Some(tools) = tools() else {
        return;
    };
    servers.postgres_role("it_page_pg", PASSWORD, "");
    servers.postgres_database("it_page_db");
    servers.postgres_admin(
        "GRANT ALL ON DATABASE it_page_db TO it_page_pg; \
         CREATE TABLE IF NOT EXISTS page_pg_t (id int PRIMARY KEY, v int); \
         INSERT INTO page_pg_t VALUES (1, 0) ON CONFLICT DO NOTHING; \
         GRANT ALL ON page_pg_t TO it_page_pg",
    );
    let sleepers: Vec<PsqlSession> = (0..3)
        .map(|_| {
            PsqlSession::start(
                &servers.postgres_addr,
                "it_page_pg",
                PASSWORD,
                "it_page_db",
                Some("page-app"),
            )
        })
        .collect();
    // A blocker running in its transaction, and a session waiting for its row lock.
    let blocker = PsqlSession::run(
        &servers.postgres_addr,
        "it_page_pg",
        PASSWORD,
        "postgres",
        Some("page-blocker"),
        "BEGIN; UPDATE page_pg_t SET v = v + 1 WHERE id = 1; SELECT pg_sleep(600)",
    );
    let pid_of = |application: &str| -> u64 {
        let out = servers.postgres_admin(&format!(
            "SELECT pid FROM pg_stat_activity WHERE application_name = '{application}' \
             AND state = 'active'"
        ));
        out.trim().parse().unwrap_or(0)
    };
    let waiter_until = std::time::Instant::now() + Duration::from_secs(20);
    while pid_of("page-blocker") == 0 && std::time::Instant::now() < waiter_until {
        std::thread::sleep(Duration::from_millis(100));
    }
    let waiter = PsqlSession::run(
        &servers.postgres_addr,
        "it_page_pg",
        PASSWORD,
        "postgres",
        Some("page-waiter"),
        "UPDATE page_pg_t SET v = v + 1 WHERE id = 1",
    );
    let (exporter, _dir) = start(
        "",
        &format!(
            "  - name: page_pg\n    kind: postgresql\n    address: {}\n    user: monitor\n    password_file: {}\n    sslmode: disable\n",
            servers.postgres_addr,
            servers.monitor_password_file.display()
        ),
    );
    exporter.wait_for_metrics("the sessions are counted", Duration::from_secs(30), |m| {
        let tenant = [("target", "page_pg"), ("tenant", "page_pg")];
        m.get(
            "dbsession_db_active_sessions",
            &[tenant[0], tenant[1], ("db", "it_page_db")],
        ) == Some(3.0)
            && m.get("dbsession_lock_waiting_sessions", &tenant)
                .is_some_and(|n| n >= 1.0)
    });
    let (blocker_pid, waiter_pid) = (pid_of("page-blocker"), pid_of("page-waiter"));
    wait_for_lock_wait(&exporter, "page_pg", waiter_pid, blocker_pid);
    let answers = drive(
        &tools,
        &exporter,
        json!([
            {"do": "open", "path": "/sessions?tenant=page_pg"},
            {"do": "signin", "token": TOKEN},
            {"do": "filter", "fields": {"user": "it_page_pg", "db": "it_page_db", "state": "active"}},
            {"do": "filter", "fields": {"user": "it_page_pg", "db": "postgres", "state": ""}},
            {"do": "detail", "id": waiter_pid},
            {"do": "axe"},
            {"do": "screenshot", "name": "postgresql-1280x800"},
            {"do": "console"},
        ]),
    );
    assert_eq!(answers[2]["total"], "(3 matching)", "{}", answers[2]);
    let rows = answers[2]["rows"].as_array().unwrap();
    assert!(
        rows.iter()
            .all(|r| r["sql"] == "SELECT pg_sleep(600)" && r["db"] == "it_page_db"),
        "{rows:?}"
    );
    assert!(
        answers[2]["deadlocks_note"]
            .as_str()
            .unwrap()
            .contains("keeps no history"),
        "{}",
        answers[2]
    );
    let root_node = answers[3]["tree"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == blocker_pid)
        .cloned()
        .unwrap_or_else(|| panic!("the blocker {blocker_pid} is a root: {}", answers[3]));
    assert_eq!(root_node["waiters"][0]["id"], waiter_pid, "{root_node}");
    assert_eq!(
        id_set(&answers[3]),
        [blocker_pid, waiter_pid].into_iter().collect()
    );
    assert!(answers[3]["oldest"]
        .as_array()
        .unwrap()
        .contains(&json!(blocker_pid)));
    assert_eq!(
        answers[4]["sql"], "UPDATE page_pg_t SET v = v + 1 WHERE id = 1",
        "{}",
        answers[4]
    );
    assert_eq!(
        (
            answers[4]["fields"]["wait_class"].clone(),
            answers[4]["fields"]["wait_event"].clone()
        ),
        (json!("Lock"), json!("transactionid")),
        "{}",
        answers[4]
    );
    assert!(
        answers[4]["fields"]["lock wait"]
            .as_str()
            .unwrap()
            .contains(&blocker_pid.to_string()),
        "{}",
        answers[4]
    );
    assert_accessible(&answers[5]);
    assert_console_clean(&answers[7]);
    for pid in ids(&answers[2])
        .into_iter()
        .chain([blocker_pid, waiter_pid])
    {
        servers.postgres_admin(&format!("SELECT pg_terminate_backend({pid})"));
    }
    drop((sleepers, blocker, waiter));
}

#[test]
fn seekdb_sessions_through_the_page() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let Some(tools) = tools() else {
        return;
    };
    let addr = servers.seekdb_addr.clone();
    let root = |sql: &str| servers.seekdb_root(sql);
    let o = open_sessions(&addr, &root, "page_s", 150);
    root(&format!(
        "CREATE USER IF NOT EXISTS page_s_lock IDENTIFIED BY '{PASSWORD}'; \
         GRANT ALL ON page_s_db1.* TO page_s_lock; \
         CREATE TABLE IF NOT EXISTS page_s_db1.t (id INT PRIMARY KEY, v INT); \
         REPLACE INTO page_s_db1.t VALUES (1, 0)"
    ));
    // No timeout may end the blocker's transaction or the waiter's wait first.
    let timeouts = "SET SESSION ob_query_timeout = 600000000, ob_trx_timeout = 600000000, \
                    ob_trx_idle_timeout = 600000000";
    let mut blocker = connect_as(&addr, "page_s_lock", PASSWORD, "127.0.0.155");
    {
        use mysql::prelude::Queryable;
        blocker.query_drop(timeouts).unwrap();
        blocker.query_drop("BEGIN").unwrap();
        blocker
            .query_drop("UPDATE page_s_db1.t SET v = v + 1 WHERE id = 1")
            .unwrap();
    }
    let blocker_id = blocker.connection_id();
    let waiter = Blocked::start(
        connect_as(&addr, "page_s_lock", PASSWORD, "127.0.0.156"),
        &[timeouts],
        "UPDATE page_s_db1.t SET v = v + 1 WHERE id = 1",
        Box::new(servers.seekdb_killer()),
    );
    let (exporter, _dir) = start(
        "  allow_kill: true\n",
        &format!("  - name: page_seek\n    kind: oceanbase\n    address: {addr}\n    user: root\n"),
    );
    exporter.wait_for_metrics("the waiter is counted", Duration::from_secs(30), |m| {
        let tenant = [("target", "page_seek"), ("tenant", "page_seek")];
        m.get("dbsession_up", &tenant) == Some(1.0)
            && m.get("dbsession_lock_waiting_sessions", &tenant)
                .is_some_and(|n| n >= 1.0)
    });
    wait_for_lock_wait(&exporter, "page_seek", waiter.id.into(), blocker_id.into());
    let (idle, busy): (Vec<u32>, Vec<u32>) = (
        o.idle.iter().map(|s| s.id).collect(),
        o.busy[..2].iter().map(|s| s.id).collect(),
    );
    let a = drive(
        &tools,
        &exporter,
        json!([
            {"do": "open", "path": "/sessions?tenant=page_seek"},
            {"do": "signin", "token": TOKEN},
            {"do": "filter", "fields": {"user": "page_s_app"}},
            {"do": "filter", "fields": {"user": "page_s_app", "active_only": true}},
            {"do": "detail", "id": busy[0]},
            {"do": "filter", "fields": {"user": "page_s_lock", "active_only": false, "sort": "id,asc"}},
            {"do": "filter", "fields": {"user": "page_s_app", "sort": "time,desc"}},
            {"do": "kill", "ids": [idle[0]], "query": false},
            {"do": "axe"},
            {"do": "screenshot", "name": "seekdb-1280x800"},
            {"do": "console"},
        ]),
    );
    assert_eq!(a[2]["total"], "(5 matching)", "{}", a[2]);
    assert_eq!(id_set(&a[2]), set(idle.iter().chain(&busy).copied()));
    assert_eq!(id_set(&a[3]), set(busy.clone()), "{}", a[3]);
    assert_eq!(a[4]["sql"], "SELECT SLEEP(300)", "{}", a[4]);
    let tree = a[5]["tree"].as_array().unwrap();
    let root_node = tree
        .iter()
        .find(|n| n["id"] == blocker_id)
        .unwrap_or_else(|| panic!("the blocker {blocker_id} is a root: {}", a[5]));
    assert_eq!(root_node["waiters"][0]["id"], waiter.id, "{}", a[5]);
    assert!(
        a[5]["idle"]
            .as_array()
            .unwrap()
            .contains(&json!(blocker_id)),
        "{}",
        a[5]
    );
    assert_eq!(a[7]["class"], "ok", "{}", a[7]);
    exporter.wait_until("the session is gone", Duration::from_secs(10), || {
        root(&format!(
            "SELECT COUNT(*) FROM oceanbase.V$OB_PROCESSLIST WHERE ID = {}",
            idle[0]
        ))
        .trim()
            == "0"
    });
    assert_accessible(&a[8]);
    assert_console_clean(&a[10]);
    drop(waiter);
    drop(blocker);
}

/// A PgBouncer target's clients through the page: each client a row, who waits for
/// a server connection, and no way to end one (PgBouncer 1.18 has no kill of one
/// client), with `allow_kill` on.
#[test]
fn pgbouncer_clients_through_the_page() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let Some(bouncer) = servers.pgbouncer() else {
        return;
    };
    let Some(tools) = tools() else {
        return;
    };
    let _pool = crate::postgresql::pgbouncer::take_the_pool(&servers);
    // Three clients in pg_sleep on the pool of two: two active, one waiting.
    let clients: Vec<PsqlSession> = (0..3)
        .map(|_| {
            PsqlSession::start(
                &bouncer.addr,
                "it_pgb",
                &bouncer.app_password,
                "postgres",
                Some("page-pool"),
            )
        })
        .collect();
    let (exporter, _dir) = start(
        "  allow_kill: true\n",
        &format!(
            "  - name: page_pgb\n    kind: pgbouncer\n    address: {}\n    user: monitor\n    password_file: {}\n    filter: {{users: {{allow: [it_pgb]}}}}\n",
            bouncer.addr,
            servers.monitor_password_file.display()
        ),
    );
    exporter.wait_for_metrics("the clients are counted", Duration::from_secs(30), |m| {
        let tenant = [("target", "page_pgb"), ("tenant", "page_pgb")];
        m.get("dbsession_sessions", &tenant) == Some(3.0)
            && m.get("dbsession_active_sessions", &tenant) == Some(2.0)
    });
    let list = |fields: Value| json!({"do": "filter", "fields": fields});
    let answers = drive(
        &tools,
        &exporter,
        json!([
            {"do": "open", "path": "/sessions?tenant=page_pgb"},
            {"do": "signin", "token": TOKEN},
            list(json!({"user": "it_pgb", "db": "", "host": "", "state": ""})),
            list(json!({"user": "it_pgb", "db": "", "host": "", "state": "waiting"})),
            {"do": "axe"},
            {"do": "console"},
        ]),
    );
    assert_eq!(answers[2]["total"], "(3 matching)", "{}", answers[2]);
    assert_eq!(answers[3]["total"], "(1 matching)", "{}", answers[3]);
    assert_eq!(answers[2]["actions_shown"], false, "{}", answers[2]);
    assert!(
        answers[2]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["checkbox"] == false),
        "{}",
        answers[2]
    );
    assert_accessible(&answers[4]);
    assert_console_clean(&answers[5]);
    let first = ids(&answers[2])[0];
    let detail = drive(
        &tools,
        &exporter,
        json!([
            {"do": "open", "path": "/sessions?tenant=page_pgb"},
            {"do": "signin", "token": TOKEN},
            {"do": "detail", "id": first},
            {"do": "console"},
        ]),
    );
    assert_eq!(detail[2]["kill_shown"], false, "{}", detail[2]);
    assert_console_clean(&detail[3]);
    drop(clients);
}
