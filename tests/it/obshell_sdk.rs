//! obshell's own Python SDK, unchanged, against the session API (`obshell_sdk.py`):
//! it discovers the agent (`/api/v1/info`), fetches the key (`/api/v1/secret`),
//! authenticates every call with `X-OCS-Header`, and lists, pages, filters, sorts,
//! reads one session and the stats, on seekdb and MariaDB, with exact answers
//! against sessions the test opens. Hand-made headers (expired, too far ahead, for
//! another URI, undecryptable) are refused, and none reaches a database.

use crate::common::{split_addr, Exporter, Servers};
use crate::passthrough::{open_sessions, Opened};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const PASSWORD: &str = "obshell-Root-pw-1";

fn start(targets: &str) -> (Exporter, tempfile::TempDir) {
    start_with("", targets)
}

/// An exporter with obshell_auth and `passthrough` (lines of that section) added.
fn start_with(passthrough: &str, targets: &str) -> (Exporter, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let password = dir.path().join("obshell.password");
    std::fs::write(&password, format!("{PASSWORD}\n")).expect("password file");
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 1s\n  collect_timeout: 800ms\npassthrough:\n  enabled: true\n  request_timeout: 5s\n{passthrough}  obshell_auth:\n    password_file: {}\ntargets:\n{targets}",
        password.display()
    ));
    (exporter, dir)
}

/// Runs the SDK script; its JSON answer.
fn sdk(exporter: &Exporter, tenant: &str, o: &Opened, server_ip: &str) -> Value {
    let (host, port) = split_addr(&exporter.addr);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/obshell_sdk.py");
    let output = Command::new("python3")
        .args([
            script, host, port, PASSWORD, tenant, &o.app, &o.db1, &o.ip2, server_ip,
        ])
        .output()
        .expect("python3 (scripts/install-deps.sh installs the obshell SDK)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK failed: {stderr}\n{}",
        exporter.log()
    );
    serde_json::from_slice(&output.stdout).expect("the script prints JSON")
}

fn check(exporter: &Exporter, tenant: &str, o: &Opened, server_ip: &str) {
    let got = sdk(exporter, tenant, o, server_ip);
    let mut app_ids: Vec<u64> = o
        .idle
        .iter()
        .chain(&o.busy[..2])
        .map(|s| u64::from(s.id))
        .collect();
    app_ids.sort_unstable();
    let mut busy: Vec<u64> = o.busy[..2].iter().map(|s| u64::from(s.id)).collect();
    busy.sort_unstable();
    assert_answers(&got, &o.app, &o.rpt, &app_ids, &busy, "SLEEP(300)");
}

/// What `obshell_sdk.py` must have answered for a target where `app` has five
/// sessions (`app_ids`, sorted), two of them busy (`busy`, sorted) running
/// `statement`, and `rpt` has a session too.
pub(crate) fn assert_answers(
    got: &Value,
    app: &str,
    rpt: &str,
    app_ids: &[u64],
    busy: &[u64],
    statement: &str,
) {
    assert_eq!(got["app"]["ids"], serde_json::json!(app_ids), "{got}");
    assert_eq!(got["app"]["page"][0], 5, "{got}");
    assert_eq!(
        got["app"]["page"][2], 9223372036854775807_u64,
        "the SDK's default size: {got}"
    );
    assert_eq!(
        got["app_page2"]["page"],
        serde_json::json!([5, 3, 2, 2]),
        "{got}"
    );
    assert_eq!(
        got["app_page2"]["ids"],
        serde_json::json!(app_ids[2..4]),
        "{got}"
    );
    assert_eq!(got["busy"]["ids"], serde_json::json!(busy), "{got}");
    assert_eq!(
        got["busy"]["states"],
        serde_json::json!(["ACTIVE"]),
        "{got}"
    );
    assert_eq!(got["on_server"], serde_json::json!(app_ids), "{got}");
    assert_eq!(got["detail"]["user"], app, "{got}");
    assert!(
        got["detail"]["info"]
            .as_str()
            .unwrap_or_default()
            .contains(statement),
        "{got}"
    );
    assert_eq!(got["stats"][app], serde_json::json!([5, 2]), "{got}");
    assert!(
        got["default"]["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u == rpt),
        "the default call lists every session: {got}"
    );
    assert_eq!(
        got["wrong_password"]["error"],
        // A wrong password answers as an undecryptable header (no online check of
        // guesses); the SDK fetches the key again on code 1, and then gives up.
        serde_json::json!([1, "Security.Authentication.Header.DecryptFailed"]),
        "{got}"
    );
}

#[test]
fn the_official_sdk_works_unchanged() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let seek = open_sessions(
        &servers.seekdb_addr,
        &|sql| servers.seekdb_root(sql),
        "sdk_s",
        80,
    );
    let maria = open_sessions(
        &servers.mariadb_addr,
        &|sql| servers.mariadb_root(sql),
        "sdk_m",
        90,
    );
    let (exporter, _dir) = start(&format!(
        "  - name: seek\n    kind: oceanbase\n    address: {}\n    user: monitor\n    password_file: {pw}\n    tenant: seek\n  - name: maria\n    kind: mysql\n    address: {}\n    user: monitor\n    password_file: {pw}\n",
        servers.seekdb_addr,
        servers.mariadb_addr,
        pw = servers.monitor_password_file.display()
    ));
    for tenant in ["seek", "maria"] {
        exporter.wait_for_metrics("collected", Duration::from_secs(30), |m| {
            m.get("dbsession_up", &[("target", tenant), ("tenant", tenant)]) == Some(1.0)
        });
    }
    check(&exporter, "seek", &seek, split_addr(&servers.seekdb_addr).0);
    check(
        &exporter,
        "maria",
        &maria,
        split_addr(&servers.mariadb_addr).0,
    );
}

/// An X-OCS-Header made the SDK's way (its own encryption code) for `ts` and `uri`.
fn header(public_key: &str, password: &str, ts: i64, uri: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/obshell_sdk.py");
    let output = Command::new("python3")
        .args([script, "header", public_key, password, &ts.to_string(), uri])
        .output()
        .expect("python3 with the obshell SDK");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("ASCII")
        .trim()
        .to_string()
}

#[test]
fn hand_made_headers_are_refused_before_any_database() {
    // The target's database does not exist: a request that got past authentication
    // would try to reach it and answer 503, so a 401 shows it never did.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let (exporter, _dir) = start(&format!(
        "  - name: gone\n    kind: mysql\n    address: 127.0.0.1:{port}\n    user: monitor\n"
    ));
    exporter.wait_until(
        "the first collection ended",
        Duration::from_secs(30),
        || {
            exporter
                .try_get_with("/-/ready", &[])
                .is_some_and(|(status, _, _)| status == 200)
        },
    );
    let spec = crate::common::openapi::Spec::load();
    let (status, _, body) = exporter.try_get_with("/api/v1/info", &[]).expect("info");
    let info: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(status, 200, "{info}");
    assert_eq!(
        info["data"]["supportedAuth"],
        serde_json::json!(["v2"]),
        "{info}"
    );
    spec.check("/api/v1/info", status, &info);
    let (status, _, body) = exporter
        .try_get_with("/api/v1/secret", &[])
        .expect("secret");
    let secret: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(status, 200, "{secret}");
    spec.check("/api/v1/secret", status, &secret);
    let key = secret["data"]["public_key"]
        .as_str()
        .expect("public_key")
        .to_string();

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let list = "/api/v1/tenant/gone/sessions";
    let stats = "/api/v1/tenant/gone/sessions/stats";
    let ask = |path: &str, header: &str| -> (u16, Value) {
        let (status, _, body) = exporter
            .try_get_with(path, &[("X-OCS-Header", header)])
            .expect("an answer");
        (
            status,
            serde_json::from_slice(&body).expect("JSON envelope"),
        )
    };
    for (what, path, header, err_code) in [
        (
            "expired",
            list,
            header(&key, PASSWORD, now - 5, list),
            "Security.Authentication.Expired",
        ),
        (
            "valid too far ahead",
            list,
            header(&key, PASSWORD, now + 3600, list),
            "Security.Authentication.Timestamp.Invalid",
        ),
        (
            "made for another URI",
            list,
            header(&key, PASSWORD, now + 60, "/api/v1/tenant/other/sessions"),
            "Security.Authentication.Header.UriMismatch",
        ),
        (
            "replayed against another path",
            stats,
            header(&key, PASSWORD, now + 60, list),
            "Security.Authentication.Header.UriMismatch",
        ),
        (
            "undecryptable",
            list,
            "QUJDRA==".to_string(),
            "Security.Authentication.Header.DecryptFailed",
        ),
        (
            "a wrong password",
            list,
            header(&key, "guess", now + 60, list),
            "Security.Authentication.Header.DecryptFailed",
        ),
    ] {
        let (status, json) = ask(path, &header);
        assert_eq!(status, 401, "{what}: {json}");
        assert_eq!(json["error"]["errCode"], err_code, "{what}: {json}");
        let template = if path == stats {
            "/api/v1/tenant/{name}/sessions/stats"
        } else {
            "/api/v1/tenant/{name}/sessions"
        };
        spec.check(template, status, &json);
    }
    // A good header gets past authentication, to the database that is not there.
    let (status, json) = ask(list, &header(&key, PASSWORD, now + 60, list));
    assert_eq!(status, 503, "a valid header reaches the backend: {json}");
    assert!(
        !exporter.log().contains(PASSWORD),
        "the password never reaches the log"
    );
}

const TOKEN: &str = "kill-test-token-0123456789";

/// `DELETE path` with the bearer token and a JSON `body`: the status and the envelope.
fn delete(addr: &str, path: &str, body: &str) -> (u16, Value) {
    let bearer = format!("Bearer {TOKEN}");
    crate::common::http_delete(addr, path, &[("Authorization", &bearer)], body)
}

/// `kill_tenant_session_query` or `kill_tenant_sessions` through the SDK.
fn sdk_kill(exporter: &Exporter, tenant: &str, query_only: bool, ids: &[u64]) -> Value {
    let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
    let what = if query_only { "query" } else { "session" };
    run_sdk(exporter, "kill", PASSWORD, tenant, &[what, &ids.join(",")])
}

/// Runs one of the SDK script's calls (`kill`, `deadlocks`) against `exporter` as
/// `password`, then `rest`; its JSON answer.
fn run_sdk(exporter: &Exporter, call: &str, password: &str, tenant: &str, rest: &[&str]) -> Value {
    let (host, port) = split_addr(&exporter.addr);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/obshell_sdk.py");
    let output = Command::new("python3")
        .args([script, call, host, port, password, tenant])
        .args(rest)
        .output()
        .expect("python3 with the obshell SDK");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        exporter.log()
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

/// `get_tenant_deadlocks` through the SDK, against an exporter whose obshell_auth
/// password is `password`: its page and events, or its error. `page` None: the SDK's
/// defaults (page 1, size `sys.maxsize`).
pub(crate) fn sdk_deadlocks(
    exporter: &Exporter,
    password: &str,
    tenant: &str,
    page: Option<(u64, u64)>,
) -> Value {
    let page = page.map(|(page, size)| [page.to_string(), size.to_string()]);
    let rest: Vec<&str> = page.iter().flatten().map(String::as_str).collect();
    run_sdk(exporter, "deadlocks", password, tenant, &rest)
}

/// Whether session `id` is in the server's processlist, and busy.
fn state_of(servers: &Servers, id: u32) -> Option<String> {
    let out = servers.mariadb_root(&format!(
        "SELECT COMMAND FROM information_schema.PROCESSLIST WHERE ID = {id}"
    ));
    let command = out.trim();
    (!command.is_empty()).then(|| command.to_string())
}

#[test]
fn sessions_are_killed_through_the_sdk_only_when_allowed_and_only_their_own() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let password = "Killer-pw-1";
    servers.mariadb_root(&format!(
        "CREATE USER IF NOT EXISTS 'killer'@'%' IDENTIFIED BY '{password}'; \
         ALTER USER 'killer'@'%' IDENTIFIED BY '{password}'; \
         GRANT PROCESS, CONNECTION ADMIN ON *.* TO 'killer'@'%';"
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let killer_pw = dir.path().join("killer.password");
    std::fs::write(&killer_pw, password).expect("password file");
    let o = open_sessions(
        &servers.mariadb_addr,
        &|sql| servers.mariadb_root(sql),
        "kill_m",
        100,
    );
    let target = |name: &str, user: &str, pw: &std::path::Path| {
        format!(
            "  - name: {name}\n    kind: mysql\n    address: {}\n    user: {user}\n    password_file: {}\n",
            servers.mariadb_addr,
            pw.display()
        )
    };
    let token_file = dir.path().join("api.token");
    std::fs::write(&token_file, TOKEN).expect("token file");
    let (exporter, _d1) = start_with(
        &format!(
            "  allow_kill: true\n  bearer_token_file: {}\n",
            token_file.display()
        ),
        &(target("maria", "killer", &killer_pw)
            + &target("weak", "monitor", &servers.monitor_password_file)),
    );
    let (closed, _d2) = start_with("", &target("maria", "killer", &killer_pw));
    for (e, tenant) in [
        (&exporter, "maria"),
        (&exporter, "weak"),
        (&closed, "maria"),
    ] {
        e.wait_for_metrics("collected", Duration::from_secs(30), |m| {
            m.get("dbsession_up", &[("target", tenant), ("tenant", tenant)]) == Some(1.0)
        });
    }
    let (idle0, idle1) = (o.idle[0].id, o.idle[1].id);
    let busy0 = o.busy[0].id;
    assert_eq!(state_of(&servers, busy0).as_deref(), Some("Query"));

    // Off unless allowed: 403, and nothing reaches the database.
    let refused = sdk_kill(&closed, "maria", false, &[u64::from(idle0)]);
    assert_eq!(refused["error"][1], "Common.Forbidden", "{refused}");
    assert_eq!(refused["error"][0], 403, "{refused}");
    assert!(state_of(&servers, idle0).is_some());

    // An id that is not a session of the tenant refuses the whole request.
    let mixed = sdk_kill(
        &exporter,
        "maria",
        false,
        &[u64::from(idle0), 4_000_000_000],
    );
    assert_eq!(mixed["error"][1], "OB.Tenant.Session.NotExist", "{mixed}");
    assert!(
        mixed["error"][2].as_str().unwrap().contains("4000000000"),
        "{mixed}"
    );
    assert!(state_of(&servers, idle0).is_some(), "nothing was killed");

    // An account without CONNECTION ADMIN is told which grant it needs.
    let weak = sdk_kill(&exporter, "weak", false, &[u64::from(idle1)]);
    assert_eq!(weak["error"][0], 403, "{weak}");
    assert_eq!(weak["error"][1], "Exporter.Account.GrantMissing", "{weak}");
    assert!(
        weak["error"][2]
            .as_str()
            .unwrap()
            .contains("CONNECTION ADMIN"),
        "{weak}"
    );
    assert!(state_of(&servers, idle1).is_some());

    // KILL QUERY ends the statement; KILL ends the session.
    assert_eq!(
        sdk_kill(&exporter, "maria", true, &[u64::from(busy0)])["ok"],
        true
    );
    exporter.wait_until("the query is ended", Duration::from_secs(10), || {
        state_of(&servers, busy0).as_deref() != Some("Query")
    });
    assert_eq!(
        sdk_kill(&exporter, "maria", false, &[u64::from(idle0)])["ok"],
        true
    );
    exporter.wait_until("the session is gone", Duration::from_secs(10), || {
        state_of(&servers, idle0).is_none()
    });
    assert!(
        state_of(&servers, idle1).is_some(),
        "only the named session"
    );

    // With a bearer token the body is plain JSON.
    let (status, answer) = delete(
        &exporter.addr,
        "/api/v1/tenant/maria/sessions",
        &format!("{{\"session_ids\": [{idle1}]}}"),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["data"]["session_ids"],
        serde_json::json!([idle1]),
        "{answer}"
    );
    exporter.wait_until("the session is gone", Duration::from_secs(10), || {
        state_of(&servers, idle1).is_none()
    });
    let log = exporter.log();
    assert!(
        log.contains("sessions killed on request") && log.contains(&idle0.to_string()),
        "{log}"
    );
    // The audit line names the caller's address as an address.
    let audit = log
        .lines()
        .find(|line| line.contains("sessions killed on request"))
        .unwrap();
    assert!(
        audit.contains("peer=127.0.0.1") && !audit.contains("Some("),
        "{audit}"
    );
}

#[test]
fn seekdb_sessions_are_killed_through_the_sdk() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let password = "Killer-pw-2";
    servers.seekdb_root(&format!(
        "CREATE USER IF NOT EXISTS ob_killer IDENTIFIED BY '{password}'; \
         ALTER USER ob_killer IDENTIFIED BY '{password}'; \
         GRANT SELECT ON oceanbase.* TO ob_killer; GRANT SUPER ON *.* TO ob_killer;"
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = dir.path().join("ob_killer.password");
    std::fs::write(&pw, password).expect("password file");
    let o = open_sessions(
        &servers.seekdb_addr,
        &|sql| servers.seekdb_root(sql),
        "kill_s",
        110,
    );
    let (exporter, _d) = start_with(
        "  allow_kill: true\n",
        &format!(
            "  - name: seek\n    kind: oceanbase\n    address: {}\n    user: ob_killer\n    password_file: {}\n    tenant: seek\n",
            servers.seekdb_addr,
            pw.display()
        ),
    );
    exporter.wait_for_metrics("collected", Duration::from_secs(30), |m| {
        m.get("dbsession_up", &[("target", "seek"), ("tenant", "seek")]) == Some(1.0)
    });
    let seen = |id: u32| {
        !servers
            .seekdb_root(&format!(
                "SELECT ID FROM oceanbase.V$OB_PROCESSLIST WHERE ID = {id}"
            ))
            .trim()
            .is_empty()
    };
    let (idle0, idle1, busy0) = (o.idle[0].id, o.idle[1].id, o.busy[0].id);
    assert!(seen(idle0) && seen(busy0));
    let query = sdk_kill(&exporter, "seek", true, &[u64::from(busy0)]);
    assert_eq!(query["ok"], true, "{query}\n{}", exporter.log());
    let killed = sdk_kill(&exporter, "seek", false, &[u64::from(idle0)]);
    assert_eq!(killed["ok"], true, "{killed}\n{}", exporter.log());
    exporter.wait_until("the session is gone", Duration::from_secs(10), || {
        !seen(idle0)
    });
    assert!(seen(idle1), "only the named session");
}
