//! The sessions page in a real browser: Debian's headless Chromium, driven by Selenium
//! through `browser.py` (which reports what the page shows; the assertions are here),
//! against real MariaDB, seekdb and PostgreSQL sessions this test opens, with exact
//! counts. Screenshots at 1280x800 and 390x844 are kept in
//! `target/test-artifacts/sessions-page/`.

use crate::common::{
    connect_as, killer_account, wait_up, Blocked, Exporter, PsqlSession, Servers, KILLER_PASSWORD,
};
use crate::passthrough::open_sessions;

mod engines;
mod history;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const TOKEN: &str = "page-test-token-0123456789abcdef";
const PASSWORD: &str = "Passthrough-pw-1";

/// The venv's Python with Selenium, and axe-core's script, as install-deps.sh puts
/// them; None outside CI when they are missing (said), a failure in CI.
fn tools() -> Option<(PathBuf, PathBuf)> {
    let root = std::env::var_os("SE_BROWSER_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/session-exporter/browser")
        });
    let (python, axe) = (
        root.join("venv/bin/python"),
        root.join("axe-core/axe.min.js"),
    );
    let present = python.exists()
        && axe.exists()
        && std::path::Path::new("/usr/bin/chromium").exists()
        && std::path::Path::new("/usr/bin/chromedriver").exists();
    if present {
        return Some((python, axe));
    }
    let why = format!(
        "the browser tools are missing ({} or {} or /usr/bin/chromium, /usr/bin/chromedriver): \
         run scripts/install-deps.sh",
        python.display(),
        axe.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}");
    }
    eprintln!("skipped: {why}");
    None
}

/// Where the screenshots are kept.
fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts/sessions-page");
    std::fs::create_dir_all(&dir).expect("artifacts directory");
    dir
}

/// Runs `steps` in one browser against `exporter`; one answer per step, none an
/// error.
fn drive(tools: &(PathBuf, PathBuf), exporter: &Exporter, steps: Value) -> Vec<Value> {
    let plan = json!({
        "base": format!("http://{}", exporter.addr),
        "artifacts": artifacts(),
        "axe": tools.1,
        "steps": steps,
    });
    let mut child = Command::new(&tools.0)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/it/browser/browser.py"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the browser venv's python");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(plan.to_string().as_bytes())
            .expect("the plan");
    }
    let out = child.wait_with_output().expect("browser.py");
    assert!(
        out.status.success(),
        "browser.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("browser.py: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    let steps = plan["steps"].as_array().expect("steps");
    assert_eq!(answers.len(), steps.len(), "{answers:?}");
    for (step, answer) in steps.iter().zip(&answers) {
        assert!(
            answer.get("failed").is_none(),
            "step {step} failed: {answer}\n{}",
            exporter.log()
        );
    }
    answers
}

/// An exporter whose session API takes the bearer token, with `passthrough` lines
/// added, serving `targets`.
fn start(passthrough: &str, targets: &str) -> (Exporter, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("api.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token file");
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 1s\n  collect_timeout: 800ms\npassthrough:\n  enabled: true\n  \
         bearer_token_file: {}\n  request_timeout: 5s\n{passthrough}targets:\n{targets}",
        token_file.display()
    ));
    (exporter, dir)
}

fn mysql_target(name: &str, addr: &str, user: &str, password_file: &std::path::Path) -> String {
    format!(
        "  - name: {name}\n    kind: mysql\n    address: {addr}\n    user: {user}\n    password_file: {}\n",
        password_file.display()
    )
}

fn ids(state: &Value) -> Vec<u64> {
    state["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["id"].as_u64().expect("id"))
        .collect()
}

fn id_set(state: &Value) -> BTreeSet<u64> {
    ids(state).into_iter().collect()
}

fn set(ids: impl IntoIterator<Item = u32>) -> BTreeSet<u64> {
    ids.into_iter().map(u64::from).collect()
}

/// A row's time as the page shows it (`12 s`, `4 m 05 s`), in seconds.
fn shown_seconds(text: &str) -> f64 {
    let mut total = 0.0;
    let mut parts = text.split_whitespace();
    while let (Some(n), Some(unit)) = (parts.next(), parts.next()) {
        let n: f64 = n.parse().unwrap_or_else(|_| panic!("a time: {text}"));
        total += n * match unit {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            other => panic!("unit {other} in {text}"),
        };
    }
    total
}

/// No error in the browser's console (a missing asset, a script error, a CSP
/// violation, a refused request).
fn assert_console_clean(answer: &Value) {
    let severe: Vec<&Value> = answer["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    assert!(severe.is_empty(), "console errors: {severe:?}");
}

/// The injected strings stayed text: no dialog, no element of theirs, no script ran.
fn assert_inert(probe: &Value) {
    assert_eq!(probe["alert"], Value::Null, "{probe}");
    assert_eq!(probe["injected"], 0, "{probe}");
    assert_eq!(probe["marker"], Value::Null, "{probe}");
    assert_eq!(
        probe["scripts"],
        json!(["/-/ui/uPlot.js", "/-/ui/sessions.js"]),
        "{probe}"
    );
}

fn assert_accessible(axe: &Value) {
    let bad: Vec<&Value> = axe["violations"]
        .as_array()
        .unwrap_or_else(|| panic!("axe: {axe}"))
        .iter()
        .filter(|v| v["impact"] == "serious" || v["impact"] == "critical")
        .collect();
    assert!(bad.is_empty(), "axe-core: {bad:?}");
}

/// Waits until the session API's pile-up of `tenant` shows `waiter` waiting on
/// `blocker` (the lock waits of the database, as the page reads them).
fn wait_for_lock_wait(exporter: &Exporter, tenant: &str, waiter: u64, blocker: u64) {
    let bearer = format!("Bearer {TOKEN}");
    let path = format!("/api/v1/tenant/{tenant}/sessions/pileup");
    exporter.wait_until(
        "the waiter waits on its blocker",
        Duration::from_secs(30),
        || {
            exporter
                .try_get_with(&path, &[("Authorization", &bearer)])
                .and_then(|(_, _, body)| serde_json::from_slice::<Value>(&body).ok())
                .and_then(|json| json["data"]["lock_waits"].as_array().cloned())
                .is_some_and(|waits| {
                    waits
                        .iter()
                        .any(|w| w["waiter"] == waiter && w["blocker"] == blocker)
                })
        },
    );
}

/// MariaDB users `users` with every right on `db`, and its table `t` with row 1.
fn mariadb_users_and_table(servers: &Servers, db: &str, users: &[&str]) {
    let root = |sql: &str| servers.mariadb_root(sql);
    for user in users {
        root(&format!(
            "CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{PASSWORD}'; \
             GRANT ALL ON {db}.* TO '{user}'@'%'"
        ));
    }
    root(&format!(
        "CREATE DATABASE IF NOT EXISTS {db}; \
         CREATE TABLE IF NOT EXISTS {db}.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB; \
         INSERT IGNORE INTO {db}.t VALUES (1, 0)"
    ));
}

/// A row-lock pile-up on MariaDB as `user`: a blocker (from `from.0`) that updated
/// row 1 of `db.t` and idles in its transaction, and a waiter (from `from.1`) on
/// that row.
struct RowLockPileup {
    blocker: mysql::Conn,
    blocker_id: u32,
    waiter: Blocked,
}

fn row_lock_pileup(servers: &Servers, db: &str, user: &str, from: (&str, &str)) -> RowLockPileup {
    use mysql::prelude::Queryable;
    let addr = &servers.mariadb_addr;
    let update = format!("UPDATE {db}.t SET v = v + 1 WHERE id = 1");
    let mut blocker = connect_as(addr, user, PASSWORD, from.0);
    blocker.query_drop("BEGIN").unwrap();
    blocker.query_drop(&update).unwrap();
    let blocker_id = blocker.connection_id();
    let waiter = Blocked::start(
        connect_as(addr, user, PASSWORD, from.1),
        &["SET SESSION innodb_lock_wait_timeout = 600"],
        &update,
        Box::new(servers.mariadb_killer()),
    );
    RowLockPileup {
        blocker,
        blocker_id,
        waiter,
    }
}

fn processlist_has(servers: &Servers, id: u32) -> Option<String> {
    let out = servers.mariadb_root(&format!(
        "SELECT COMMAND FROM information_schema.PROCESSLIST WHERE ID = {id}"
    ));
    let command = out.trim();
    (!command.is_empty()).then(|| command.to_string())
}

/// 10,000 sessions of one tenant in a relation shaped like the sys tenant's views,
/// on seekdb: every one is reached by paging, each once.
#[test]
fn paging_through_ten_thousand_sessions() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let Some(tools) = tools() else {
        return;
    };
    let rows: Vec<String> = (1..=10_000)
        .map(|id| {
            format!(
                "({id}, 'big', '10.0.{}.{}', 2882, 'u{}', '10.9.0.1:{}', 'db', 'Sleep', {}, 'SLEEP', NULL, '10.9.0.1')",
                id % 4,
                1 + id % 3,
                id % 7,
                1000 + id % 50_000,
                id % 900
            )
        })
        .collect();
    servers.seekdb_root(
        "CREATE DATABASE IF NOT EXISTS it_page10k; \
         DROP TABLE IF EXISTS it_page10k.PL; DROP TABLE IF EXISTS it_page10k.TENANTS; \
         DROP TABLE IF EXISTS it_page10k.TX; DROP TABLE IF EXISTS it_page10k.LK; \
         CREATE TABLE it_page10k.TENANTS (TENANT_ID BIGINT, TENANT_NAME VARCHAR(128), TENANT_TYPE VARCHAR(16)); \
         INSERT INTO it_page10k.TENANTS VALUES (1002, 'big', 'USER'); \
         CREATE TABLE it_page10k.PL (ID BIGINT, TENANT VARCHAR(128), SVR_IP VARCHAR(46), SVR_PORT BIGINT, \
           USER VARCHAR(128), HOST VARCHAR(128), DB VARCHAR(128), COMMAND VARCHAR(32), TIME DOUBLE, \
           STATE VARCHAR(32), INFO TEXT, USER_CLIENT_IP VARCHAR(46), SQL_ID VARCHAR(64) DEFAULT '', \
           TRANS_ID BIGINT DEFAULT 0); \
         CREATE TABLE it_page10k.TX (TENANT_ID BIGINT, SVR_IP VARCHAR(46), SVR_PORT BIGINT, SESSION_ID BIGINT, \
           TX_ID BIGINT, STATE VARCHAR(32), ACTIVE_TIME DATETIME(6)); \
         CREATE TABLE it_page10k.LK (TENANT_ID BIGINT, SVR_IP VARCHAR(46), SVR_PORT BIGINT, TRANS_ID BIGINT, \
           SESSION_ID BIGINT, TYPE VARCHAR(9), ID1 BIGINT, ID2 BIGINT, CTIME BIGINT, BLOCK BIGINT); \
         GRANT SELECT ON it_page10k.* TO monitor",
    );
    // In statements a command line can carry.
    for chunk in rows.chunks(500) {
        servers.seekdb_root(&format!(
            "INSERT INTO it_page10k.PL (ID, TENANT, SVR_IP, SVR_PORT, USER, HOST, DB, COMMAND, \
             TIME, STATE, INFO, USER_CLIENT_IP) VALUES {}",
            chunk.join(", ")
        ));
    }
    let (exporter, _dir) = start(
        "",
        &format!(
            "  - name: page10k\n    kind: oceanbase\n    address: {}\n    user: monitor@sys\n    password_file: {}\n    \
             processlist_view: it_page10k.PL\n    tenants_view: it_page10k.TENANTS\n    \
             transactions_view: it_page10k.TX\n    locks_view: it_page10k.LK\n",
            servers.seekdb_addr,
            servers.monitor_password_file.display()
        ),
    );
    exporter.wait_for_metrics("the tenant is collected", Duration::from_secs(60), |m| {
        m.get(
            "dbsession_sessions",
            &[("target", "page10k"), ("tenant", "big")],
        ) == Some(10_000.0)
    });
    let mut steps = vec![
        json!({"do": "open", "path": "/sessions?tenant=big"}),
        json!({"do": "signin", "token": TOKEN}),
        json!({"do": "filter", "fields": {"sort": "id,asc", "size": "500"}}),
    ];
    steps.extend((1..20).map(|_| json!({"do": "next"})));
    let answers = drive(&tools, &exporter, Value::Array(steps));
    let pages = &answers[2..];
    assert_eq!(pages[0]["total"], "(10000 matching)", "{}", pages[0]);
    let mut seen = Vec::new();
    for (n, page) in pages.iter().enumerate() {
        assert_eq!(page["pageinfo"], format!("page {} of 20", n + 1), "{page}");
        let ids = ids(page);
        assert_eq!(ids.len(), 500, "page {}", n + 1);
        seen.extend(ids);
    }
    assert_eq!(
        seen,
        (1..=10_000).collect::<Vec<u64>>(),
        "every session once, in order"
    );
    assert_eq!(pages[19]["next_enabled"], false);
}

/// A `DELETE` with the bearer token and `headers`: the status and the envelope.
fn delete_with(addr: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let bearer = format!("Bearer {TOKEN}");
    let mut all = vec![("Authorization", bearer.as_str())];
    all.extend_from_slice(headers);
    crate::common::http_delete(addr, path, &all, body)
}

/// What a browser sends with a request another site makes it send ends nothing,
/// credentials or not; the page's own request (same origin, its header) does.
#[test]
fn kills_a_browser_sends_for_another_site_are_refused() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let addr = servers.mariadb_addr.clone();
    let o = open_sessions(&addr, &|sql| servers.mariadb_root(sql), "page_o", 160);
    let killer_pw = killer_account(&servers);
    let (exporter, _dir) = start(
        "  allow_kill: true\n",
        &mysql_target("page_o", &addr, "page_killer", killer_pw.path()),
    );
    wait_up(&exporter, "page_o");
    let id = o.idle[0].id;
    let body = format!(r#"{{"session_ids": [{id}]}}"#);
    let path = "/api/v1/tenant/page_o/sessions";
    let own = format!("http://{}", exporter.addr);
    for headers in [
        vec![
            ("Origin", "http://evil.example"),
            ("X-Requested-With", "session_exporter"),
        ],
        vec![
            ("Sec-Fetch-Site", "cross-site"),
            ("X-Requested-With", "session_exporter"),
        ],
        vec![("Origin", own.as_str()), ("Sec-Fetch-Site", "same-origin")],
    ] {
        let (status, answer) = delete_with(&exporter.addr, path, &body, &headers);
        assert_eq!(status, 403, "{headers:?}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("nothing was ended"),
            "{answer}"
        );
        assert!(
            processlist_has(&servers, id).is_some(),
            "{headers:?} ended it"
        );
    }
    let (status, answer) = delete_with(
        &exporter.addr,
        path,
        &body,
        &[
            ("Origin", own.as_str()),
            ("Sec-Fetch-Site", "same-origin"),
            ("X-Requested-With", "session_exporter"),
        ],
    );
    assert_eq!(status, 200, "{answer}");
    exporter.wait_until("the session is gone", Duration::from_secs(10), || {
        processlist_has(&servers, id).is_none()
    });
}

/// Basic auth users of --web.config.file sign the page in as they sign in the API:
/// without them the page is not served at all.
#[test]
fn basic_auth_users_sign_the_page_in() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let Some(tools) = tools() else {
        return;
    };
    let addr = servers.mariadb_addr.clone();
    let o = open_sessions(&addr, &|sql| servers.mariadb_root(sql), "page_b", 170);
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yaml");
    let hash = bcrypt::hash("page-basic-pass", 4).unwrap();
    std::fs::write(&web, format!("basic_auth_users:\n  pat: '{hash}'\n")).unwrap();
    let exporter = Exporter::start_with(
        &format!(
            "global:\n  collect_interval: 1s\n  collect_timeout: 800ms\npassthrough:\n  enabled: true\n\
             targets:\n{}",
            mysql_target("page_b", &addr, "monitor", &servers.monitor_password_file)
        ),
        &[&format!("--web.config.file={}", web.display())],
    );
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("pat:page-basic-pass");
    let authorization = format!("Basic {basic}");
    exporter.wait_until(
        "the API lists the sessions",
        Duration::from_secs(30),
        || {
            exporter
                .try_get_with(
                    "/api/v1/tenant/page_b/sessions?user=page_b_app",
                    &[("Authorization", &authorization)],
                )
                .is_some_and(|(status, _, body)| {
                    status == 200
                        && String::from_utf8_lossy(&body).contains(r#""total_elements":5"#)
                })
        },
    );
    assert_eq!(
        exporter.try_get("/sessions").unwrap().0,
        401,
        "no page without them"
    );
    let a = drive(
        &tools,
        &exporter,
        json!([
            {"do": "headers", "headers": {"Authorization": format!("Basic {basic}")}},
            {"do": "open", "path": "/sessions?tenant=page_b"},
            {"do": "filter", "fields": {"user": "page_b_app"}},
            {"do": "console"},
        ]),
    );
    assert_eq!(a[1]["signin_shown"], false, "{}", a[1]);
    assert_eq!(a[1]["content_shown"], true, "{}", a[1]);
    assert_eq!(a[2]["total"], "(5 matching)", "{}", a[2]);
    let expected = set(o.idle.iter().chain(&o.busy[..2]).map(|s| s.id));
    assert_eq!(id_set(&a[2]), expected);
    assert_console_clean(&a[3]);
}

/// The latest deadlock InnoDB detected, drawn as its cycle, on a MariaDB of this test
/// alone (the server keeps only its latest deadlock: another test's would replace it).
#[test]
fn the_page_shows_the_latest_deadlock() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let Some(tools) = tools() else {
        return;
    };
    let private = crate::common::PrivateMariadb::start(&servers.monitor_password());
    let addr = private.addr();
    private.root(&format!(
        "CREATE DATABASE page_d; CREATE TABLE page_d.d (id INT PRIMARY KEY, v INT) ENGINE=InnoDB; \
         INSERT INTO page_d.d VALUES (1, 0), (2, 0); \
         CREATE USER 'page_d'@'%' IDENTIFIED BY '{PASSWORD}'; GRANT ALL ON page_d.* TO 'page_d'@'%'"
    ));
    let (exporter, _dir) = start(
        "",
        &mysql_target("page_d", &addr, "monitor", &servers.monitor_password_file),
    );
    wait_up(&exporter, "page_d");
    let before = drive(
        &tools,
        &exporter,
        json!([
            {"do": "open", "path": "/sessions?tenant=page_d"},
            {"do": "signin", "token": TOKEN},
            {"do": "state", "wait": true},
        ]),
    );
    assert_eq!(
        before[2]["deadlocks_note"], "No deadlock detected.",
        "{}",
        before[2]
    );
    let (first, second) = crate::common::deadlock(
        connect_as(&addr, "page_d", PASSWORD, "127.0.0.180"),
        connect_as(&addr, "page_d", PASSWORD, "127.0.0.180"),
        "page_d.d",
    );
    assert!(
        first.is_err() || second.is_err(),
        "one of the two is the victim"
    );
    let after = drive(
        &tools,
        &exporter,
        json!([
            {"do": "open", "path": "/sessions?tenant=page_d"},
            {"do": "signin", "token": TOKEN},
            {"do": "state", "wait": true},
            {"do": "console"},
        ]),
    );
    assert!(
        after[2]["deadlocks_note"]
            .as_str()
            .unwrap()
            .starts_with("1 detected"),
        "{}",
        after[2]
    );
    let shown = after[2]["deadlocks"][0].as_str().unwrap();
    assert!(shown.contains("2 transactions in a cycle"), "{shown}");
    assert!(shown.contains("waits for: T1 → T2 → T1"), "{shown}");
    assert!(shown.contains("(rolled back)"), "{shown}");
    assert!(
        shown.contains("UPDATE page_d.d SET v = 0 WHERE id = 1"),
        "{shown}"
    );
    assert_console_clean(&after[3]);
}
