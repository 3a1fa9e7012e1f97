//! Who may do what with the session API, on a real MariaDB: credentials scoped by
//! `passthrough.access` (tenants and kills), the scrape account that never ends a
//! session, Host names served (no DNS rebinding), and `/-/reload` from another site.

use crate::common::{
    http_delete, http_get, killer_account, Exporter, Metrics, Servers, Session, SessionSpec,
};
use serde_json::Value;
use std::time::Duration;

const TOKEN: &str = "access-test-token-0123456789";
const SCRAPE: &str = "Basic c2NyYXBlOnNjcmFwZS1wYXNz"; // scrape:scrape-pass
const ONCALL: &str = "Basic b25jYWxsOm9uY2FsbC1wYXNz"; // oncall:oncall-pass

/// An exporter with two MariaDB targets (tenants `shop_db` and `other_db`), the web
/// config's users `scrape` and `oncall`, the bearer token, kills allowed, and
/// `extra` under `passthrough:`.
/// The files it reads (again on reload) live as long as the last two values.
fn start(servers: &Servers, extra: &str) -> (Exporter, tempfile::TempDir, tempfile::NamedTempFile) {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let web = crate::common::basic_auth_users(
        dir.path(),
        &[("scrape", "scrape-pass"), ("oncall", "oncall-pass")],
        4,
    );
    let killer_pw = killer_account(servers);
    let target = |name: &str| {
        format!(
            "  - name: {name}\n    kind: mysql\n    address: {}\n    user: page_killer\n    password_file: {}\n",
            servers.mariadb_addr,
            killer_pw.path().display()
        )
    };
    let exporter = Exporter::start_with(
        &format!(
            "global:\n  collect_interval: 1s\n  collect_timeout: 900ms\npassthrough:\n  enabled: true\n  allow_kill: true\n  bearer_token_file: {}\n{extra}targets:\n{}{}",
            token.display(),
            target("shop_db"),
            target("other_db"),
        ),
        &[
            &format!("--web.config.file={}", web.display()),
            "--web.enable-lifecycle",
        ],
    );
    (exporter, dir, killer_pw)
}

/// Waits until target `name` is collected (scraped as `scrape`).
fn wait_up(exporter: &Exporter, name: &str) {
    exporter.wait_until("collected", Duration::from_secs(30), || {
        http_get(&exporter.addr, "/metrics", &[("Authorization", SCRAPE)]).is_some_and(
            |(_, _, body)| {
                Metrics::parse(&String::from_utf8_lossy(&body))
                    .get("dbsession_up", &[("target", name), ("tenant", name)])
                    == Some(1.0)
            },
        )
    });
}

/// GET `path` with `authorization`, and with `host` as the one Host header (the
/// exporter's address when None): status, headers, JSON.
fn get_full(
    exporter: &Exporter,
    path: &str,
    authorization: &str,
    host: Option<&str>,
) -> (u16, String, Value) {
    ask(exporter, "GET", path, authorization, host)
}

/// [`get_full`] with another method (and no body).
fn ask(
    exporter: &Exporter,
    method: &str,
    path: &str,
    authorization: &str,
    host: Option<&str>,
) -> (u16, String, Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(&exporter.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {authorization}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        host.unwrap_or(&exporter.addr)
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (
        status,
        head.to_string(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn get(exporter: &Exporter, path: &str, authorization: &str, host: Option<&str>) -> (u16, Value) {
    let (status, _, json) = get_full(exporter, path, authorization, host);
    (status, json)
}

fn kill(exporter: &Exporter, tenant: &str, authorization: &str, id: u32) -> (u16, Value) {
    http_delete(
        &exporter.addr,
        &format!("/api/v1/tenant/{tenant}/sessions"),
        &[("Authorization", authorization)],
        &format!("{{\"session_ids\": [{id}]}}"),
    )
}

/// Whether MariaDB still has session `id`.
fn alive(servers: &Servers, id: u32) -> bool {
    servers
        .mariadb_root(&format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {id}"
        ))
        .trim()
        == "1"
}

fn idle_session(servers: &Servers, from: &str) -> Session {
    Session::open(&SessionSpec {
        addr: &servers.mariadb_addr,
        user: "page_killer",
        password: crate::common::KILLER_PASSWORD,
        db: None,
        from,
        sleep: None,
    })
}

/// Without `access`: every credential reads every tenant; the bearer token may kill,
/// the web config's users (the scrape account among them) may not, and the session
/// is still there afterwards.
#[test]
fn without_access_the_scrape_account_reads_but_never_kills() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let (exporter, _dir, _pw) = start(&servers, "");
    wait_up(&exporter, "shop_db");
    let session = idle_session(&servers, "127.0.0.61");
    for who in [SCRAPE, ONCALL] {
        let (status, json) = get(&exporter, "/api/v1/tenant/other_db/sessions", who, None);
        assert_eq!(status, 200, "{json}");
        let (status, json) = kill(&exporter, "shop_db", who, session.id);
        assert_eq!(status, 403, "{json}");
        assert!(
            json["error"]["message"].as_str().is_some_and(
                |m| m.contains("may not end sessions") && m.contains("nothing was ended")
            ),
            "{json}"
        );
        assert!(alive(&servers, session.id), "the session survived {who}");
    }
    let (status, tenants) = get(&exporter, "/api/v1/tenants", SCRAPE, None);
    assert_eq!(status, 200);
    assert_eq!(tenants["data"]["allow_kill"], false, "{tenants}");
    let token = format!("Bearer {TOKEN}");
    ends_and_names_who(
        &exporter,
        &servers,
        &token,
        session.id,
        "by=\"bearer token\"",
    );
}

/// A kill in `shop_db` with `authorization` ends session `id`, and the audit line
/// says `who` asked.
fn ends_and_names_who(
    exporter: &Exporter,
    servers: &Servers,
    authorization: &str,
    id: u32,
    who: &str,
) {
    let (status, json) = kill(exporter, "shop_db", authorization, id);
    assert_eq!(status, 200, "{json}");
    exporter.wait_until("the session ended", Duration::from_secs(10), || {
        !alive(servers, id)
    });
    let log = exporter.log();
    assert!(
        log.lines().any(|l| l.contains("sessions killed on request")
            && l.contains(who)
            && l.contains("tenant=shop_db")
            && l.contains("outcome=ended")),
        "the audit line names who asked:\n{log}"
    );
}

/// With `access`: `oncall` reads and ends sessions in the `shop_*` tenants only,
/// `scrape` reads them only, and the token, in no entry, cannot use the API.
#[test]
fn access_scopes_each_credential() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let (exporter, _dir, _pw) = start(
        &servers,
        "  access:\n    - users: [oncall]\n      tenants: [\"shop_*\"]\n      kill: true\n    - users: [scrape]\n      tenants: [\"shop_*\"]\n",
    );
    wait_up(&exporter, "shop_db");
    wait_up(&exporter, "other_db");
    let session = idle_session(&servers, "127.0.0.62");

    // Outside the grant: 403, without telling whether the tenant exists.
    for tenant in ["other_db", "no_such_tenant"] {
        let (status, json) = get(
            &exporter,
            &format!("/api/v1/tenant/{tenant}/sessions"),
            ONCALL,
            None,
        );
        assert_eq!(status, 403, "{tenant}: {json}");
    }
    // The session history's reads are scoped alike, before any store is opened:
    // outside the grant 403, without a good credential 401.
    for path in [
        "sessions?at=0",
        "sessions/pileup?at=0",
        "history",
        "sessions/1/history",
    ] {
        let (status, json) = get(
            &exporter,
            &format!("/api/v1/tenant/other_db/{path}"),
            ONCALL,
            None,
        );
        assert_eq!(status, 403, "{path}: {json}");
        let (status, json) = get(
            &exporter,
            &format!("/api/v1/tenant/shop_db/{path}"),
            "Bearer not-the-token",
            None,
        );
        assert_eq!(status, 401, "{path}: {json}");
    }
    let (status, json) = get(
        &exporter,
        "/api/v1/tenant/shop_db/sessions/stats",
        SCRAPE,
        None,
    );
    assert_eq!(status, 200, "{json}");
    let (status, json) = get(
        &exporter,
        "/api/v1/tenant/shop_db/sessions",
        &format!("Bearer {TOKEN}"),
        None,
    );
    assert_eq!(status, 403, "a credential in no entry: {json}");

    // What the page is told: only the granted tenants, and whether it may kill.
    let (_, tenants) = get(&exporter, "/api/v1/tenants", SCRAPE, None);
    let names: Vec<&str> = tenants["data"]["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shop_db"], "{tenants}");
    assert_eq!(tenants["data"]["allow_kill"], false);
    let (_, tenants) = get(&exporter, "/api/v1/tenants", ONCALL, None);
    assert_eq!(tenants["data"]["allow_kill"], true, "{tenants}");
    assert_eq!(tenants["data"]["tenants"][0]["kill"], true, "{tenants}");

    // The scrape account cannot end the session; oncall can, in its tenant only.
    let (status, _) = kill(&exporter, "shop_db", SCRAPE, session.id);
    assert_eq!(status, 403);
    let (status, _) = kill(&exporter, "other_db", ONCALL, session.id);
    assert_eq!(status, 403);
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(&servers, session.id), "refused kills end nothing");
    ends_and_names_who(
        &exporter,
        &servers,
        ONCALL,
        session.id,
        "by=\"user oncall\"",
    );
}

/// The API answers only Hosts it serves: a rebinding page's name is refused, a
/// name of `allowed_hosts`, `localhost` and IP literals are served. And a reload a
/// page of another site sends is refused, while curl's is served.
#[test]
fn rebinding_hosts_and_cross_site_reloads_are_refused() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let (exporter, _dir, _pw) = start(&servers, "  allowed_hosts: [exporter.example]\n");
    wait_up(&exporter, "shop_db");
    let port = exporter.addr.rsplit(':').next().unwrap().to_string();
    let bearer = format!("Bearer {TOKEN}");
    for host in [
        "attacker.example",
        "attacker.example:80",
        "127.0.0.1.attacker.example",
    ] {
        let (status, json) = get(
            &exporter,
            "/api/v1/tenant/shop_db/sessions",
            &bearer,
            Some(host),
        );
        assert_eq!(status, 403, "Host {host}: {json}");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("allowed_hosts")),
            "{json}"
        );
    }
    for host in [
        "exporter.example".to_string(),
        format!("EXPORTER.example:{port}"),
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        let (status, json) = get(
            &exporter,
            "/api/v1/tenant/shop_db/sessions",
            &bearer,
            Some(&host),
        );
        assert_eq!(status, 200, "Host {host}: {json}");
    }
    // Two Hosts: one could be checked and the other obeyed.
    let two = format!("127.0.0.1:{port}\r\nHost: attacker.example");
    let (status, json) = get(
        &exporter,
        "/api/v1/tenant/shop_db/sessions",
        &bearer,
        Some(&two),
    );
    assert_eq!(status, 403, "two Hosts: {json}");
    // An absolute URI names the host it asks for, whatever the Host header says.
    let (status, _, _) = get_full(
        &exporter,
        &format!("http://attacker.example:{port}/api/v1/tenant/shop_db/sessions"),
        &bearer,
        None,
    );
    assert_eq!(status, 403, "an absolute URI for another host");
    // Every API answer is JSON that no browser sniffs as anything else.
    let (_, head, _) = get_full(
        &exporter,
        "/api/v1/tenant/shop_db/sessions",
        &bearer,
        Some("attacker.example"),
    );
    let head = head.to_ascii_lowercase();
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    // So are the router's own refusals, a method a path does not serve among them.
    let (status, head, json) = ask(
        &exporter,
        "POST",
        "/api/v1/tenant/shop_db/sessions",
        &bearer,
        None,
    );
    assert_eq!(status, 405, "{head}");
    assert_eq!(
        json["error"]["errCode"], "Common.MethodNotAllowed",
        "{json}"
    );
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("content-type: application/json") && head.contains("allow: "),
        "{head}"
    );

    let reload = |origin: Option<&str>| -> u16 {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&exporter.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let origin = origin
            .map(|o| format!("Origin: {o}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "POST /-/reload HTTP/1.1\r\nHost: {}\r\nAuthorization: {SCRAPE}\r\n{origin}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            exporter.addr
        )
        .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(reload(Some("http://attacker.example")), 403);
    assert_eq!(reload(None), 200, "{}", exporter.log());
}
