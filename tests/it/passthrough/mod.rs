//! The obshell-compatible session API against real servers: a MariaDB and a seekdb
//! with known sessions (ground truth: the ids the server gave them), and an OceanBase
//! cluster shaped table on seekdb with exact rows. Auth, the envelope, every filter,
//! sort, paging, detail, stats equal to /metrics, and bad input.

use crate::common::{Exporter, Servers, Session, SessionSpec};
use serde_json::Value;
use std::time::Duration;

mod guards;

pub(crate) const TOKEN: &str = "pt-test-token-0123456789abcdef";

thread_local! {
    static SPEC: crate::common::openapi::Spec = crate::common::openapi::Spec::load();
}

/// The spec's path template for a request path.
fn template_of(path: &str) -> &'static str {
    let path = path.split('?').next().unwrap_or(path);
    if path.ends_with("/sessions/stats") {
        "/api/v1/tenant/{name}/sessions/stats"
    } else if path.ends_with("/sessions/pileup") {
        "/api/v1/tenant/{name}/sessions/pileup"
    } else if path == "/api/v1/tenants" {
        "/api/v1/tenants"
    } else if path.ends_with("/sessions") {
        "/api/v1/tenant/{name}/sessions"
    } else {
        "/api/v1/tenant/{name}/sessions/{sessionId}"
    }
}

/// GET `path` with the bearer token (or `auth` as the Authorization header).
fn api_with(exporter: &Exporter, path: &str, auth: Option<&str>) -> (u16, Value) {
    let header;
    let headers: Vec<(&str, &str)> = match auth {
        Some(value) => {
            header = value.to_string();
            vec![("Authorization", header.as_str())]
        }
        None => vec![],
    };
    let (status, head, body) = exporter
        .try_get_with(path, &headers)
        .unwrap_or_else(|| panic!("GET {path}: no answer\n{}", exporter.log()));
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "GET {path}: not JSON: {head}"
    );
    let json: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("GET {path}: {e}: {}", String::from_utf8_lossy(&body)));
    // The envelope, on every answer.
    assert_eq!(json["status"], status, "{json}");
    assert_eq!(json["successful"], status == 200, "{json}");
    let trace = json["traceId"].as_str().expect("traceId");
    assert!(
        trace.len() == 16 && trace.bytes().all(|b| b.is_ascii_hexdigit()),
        "{trace}"
    );
    assert!(
        json["timestamp"].as_str().is_some_and(|t| t.contains('T')),
        "{json}"
    );
    assert!(json["duration"].is_u64(), "{json}");
    if status != 200 {
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{json}"
        );
        assert!(json["error"]["errCode"].is_string(), "{json}");
    }
    // Every answer is one the OpenAPI spec documents, field by field.
    SPEC.with(|spec| spec.check(template_of(path), status, &json));
    (status, json)
}

pub(crate) fn api(exporter: &Exporter, path: &str) -> (u16, Value) {
    api_with(exporter, path, Some(&format!("Bearer {TOKEN}")))
}

pub(crate) fn ok(exporter: &Exporter, path: &str) -> Value {
    let (status, json) = api(exporter, path);
    assert_eq!(status, 200, "GET {path}: {json}\n{}", exporter.log());
    json["data"].clone()
}

fn ids(data: &Value) -> Vec<u64> {
    data["contents"]
        .as_array()
        .expect("contents")
        .iter()
        .map(|s| s["id"].as_u64().expect("id"))
        .collect()
}

pub(crate) fn start(target_yaml: &str) -> Exporter {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("api.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token file");
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\npassthrough:\n  enabled: true\n  bearer_token_file: {}\n  request_timeout: 5s\ntargets:\n{target_yaml}",
        token_file.display()
    ));
    // The token file may go once loaded.
    drop(dir);
    exporter
}

/// Users, databases and sessions of a scenario: 3 idle `app` sessions on db1 from
/// ip1, 2 busy `app` on db1 from ip2, 1 busy `rpt` on db2 from ip2.
/// Sessions a test opened: 3 idle and 2 busy as `app` (idle from `ip1`, busy from
/// `ip2`, in `db1`), and 1 busy as `rpt`.
pub(crate) struct Opened {
    pub idle: Vec<Session>,
    pub busy: Vec<Session>,
    pub app: String,
    pub rpt: String,
    pub db1: String,
    pub ip1: String,
    pub ip2: String,
}

pub(crate) fn open_sessions(
    addr: &str,
    admin: &dyn Fn(&str) -> String,
    prefix: &str,
    ip_base: u8,
) -> Opened {
    let (app, rpt, db1, db2) = (
        format!("{prefix}_app"),
        format!("{prefix}_rpt"),
        format!("{prefix}_db1"),
        format!("{prefix}_db2"),
    );
    let password = "Passthrough-pw-1";
    for user in [&app, &rpt] {
        admin(&format!(
            "CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}'"
        ));
        for db in [&db1, &db2] {
            admin(&format!("CREATE DATABASE IF NOT EXISTS {db}"));
            admin(&format!("GRANT ALL ON {db}.* TO '{user}'@'%'"));
        }
    }
    let (ip1, ip2) = (
        format!("127.0.0.{}", ip_base + 1),
        format!("127.0.0.{}", ip_base + 2),
    );
    let open = |user: &str, db: &str, from: &str, sleep: Option<u32>| {
        Session::open(&SessionSpec {
            addr,
            user,
            password,
            db: Some(db),
            from,
            sleep,
        })
    };
    let idle = (0..3).map(|_| open(&app, &db1, &ip1, None)).collect();
    let mut busy: Vec<Session> = (0..2).map(|_| open(&app, &db1, &ip2, Some(300))).collect();
    busy.push(open(&rpt, &db2, &ip2, Some(300)));
    Opened {
        idle,
        busy,
        app,
        rpt,
        db1,
        ip1,
        ip2,
    }
}

/// Every check that holds on any server, for tenant `tenant` of `exporter`.
fn check_sessions_api(exporter: &Exporter, tenant: &str, o: &Opened, server_ip: &str) {
    let base = format!("/api/v1/tenant/{tenant}/sessions");
    let mut idle_ids: Vec<u64> = o.idle.iter().map(|s| u64::from(s.id)).collect();
    let mut busy_ids: Vec<u64> = o.busy.iter().map(|s| u64::from(s.id)).collect();
    idle_ids.sort_unstable();
    busy_ids.sort_unstable();

    // Authentication: none, wrong, then right.
    let (status, json) = api_with(exporter, &base, None);
    assert_eq!(status, 401, "{json}");
    assert_eq!(
        api_with(exporter, &base, Some("Bearer wrong-token-wrong-token")).0,
        401
    );
    assert_eq!(
        api_with(exporter, &base, Some(&format!("Basic {TOKEN}"))).0,
        401
    );

    // The busy ones must be running before the checks below.
    exporter.wait_until(
        "the busy sessions run their SLEEP",
        Duration::from_secs(30),
        || {
            let data = ok(exporter, &format!("{base}?user={}&active_only=true", o.app));
            data["page"]["total_elements"] == 2
        },
    );

    // Filters: user substring, with `_` literal; `%` literal matches nothing.
    let app = ok(exporter, &format!("{base}?user={}", o.app));
    let mut got = ids(&app);
    got.sort_unstable();
    let mut want: Vec<u64> = idle_ids.iter().chain(&busy_ids[..0]).copied().collect();
    want.extend(
        o.busy
            .iter()
            .filter(|s| s.is_busy())
            .take(2)
            .map(|s| u64::from(s.id)),
    );
    want.sort_unstable();
    assert_eq!(app["page"]["total_elements"], 5, "{app}");
    assert_eq!(got.len(), 5);
    for id in &idle_ids {
        assert!(got.contains(id), "idle session {id} listed: {got:?}");
    }
    let prefix = o.app.strip_suffix("_app").unwrap();
    assert_eq!(
        ok(exporter, &format!("{base}?user={prefix}%25"))["page"]["total_elements"],
        0
    );
    assert_eq!(
        ok(exporter, &format!("{base}?user={prefix}%5Fapp"))["page"]["total_elements"],
        5
    );
    assert_eq!(
        ok(exporter, &format!("{base}?user={prefix}Xapp"))["page"]["total_elements"],
        0
    );

    // db, host and active_only, combined.
    let active_db1 = ok(
        exporter,
        &format!("{base}?db={}&host={}&active_only=true", o.db1, o.ip2),
    );
    assert_eq!(active_db1["page"]["total_elements"], 2, "{active_db1}");
    for s in active_db1["contents"].as_array().unwrap() {
        assert_eq!(s["state"], "ACTIVE");
        assert_eq!(s["db"], o.db1.as_str());
        assert!(s["host"].as_str().unwrap().starts_with(&o.ip2), "{s}");
        assert_eq!(s["tenant"], tenant);
        assert_eq!(s["svr_ip"], server_ip);
        assert!(s["info"].as_str().unwrap().contains("SLEEP(300)"), "{s}");
    }
    let idle_ip1 = ok(exporter, &format!("{base}?host={}", o.ip1));
    assert_eq!(idle_ip1["page"]["total_elements"], 3);
    // The same, as obshell's Python SDK spells it: client_ip for host, svr_ip for
    // observer_list, and size=sys.maxsize.
    let sdk = ok(
        exporter,
        &format!(
            "{base}?page=1&size=9223372036854775807&client_ip={}&svr_ip={server_ip}&db={}&active_only=true",
            o.ip2, o.db1
        ),
    );
    assert_eq!(
        sdk["page"],
        active_db1["page"]
            .as_object()
            .map(|p| {
                let mut p = serde_json::Value::Object(p.clone());
                p["size"] = serde_json::json!(9223372036854775807_u64);
                p
            })
            .unwrap(),
        "{sdk}"
    );
    assert_eq!(ids(&sdk), ids(&active_db1));

    // Sort and paging, against the ids the server gave the sessions.
    let mine = format!("{base}?user={}", o.app);
    let desc = ok(exporter, &format!("{mine}&sort=id,desc&size=2&page=1"));
    assert_eq!(
        desc["page"],
        serde_json::json!({"total_elements": 5, "total_pages": 3, "size": 2, "number": 1})
    );
    let page3 = ok(exporter, &format!("{mine}&sort=id,desc&size=2&page=3"));
    let page4 = ok(exporter, &format!("{mine}&sort=id,desc&size=2&page=4"));
    let all_desc = ok(exporter, &format!("{mine}&sort=id,desc"));
    let mut sorted = ids(&all_desc);
    assert!(
        sorted.windows(2).all(|w| w[0] > w[1]),
        "descending: {sorted:?}"
    );
    assert_eq!(ids(&desc), sorted[..2].to_vec());
    assert_eq!(ids(&page3), sorted[4..].to_vec());
    assert!(ids(&page4).is_empty());
    assert_eq!(page4["page"]["total_elements"], 5);
    sorted.sort_unstable();
    assert_eq!(ids(&ok(exporter, &format!("{mine}&sort=id,asc"))), sorted);
    let by_time = ok(exporter, &format!("{base}?user={}&sort=time,desc", o.app));
    let times: Vec<f64> = by_time["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["time"].as_f64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    // observer_list: this server's address, or another.
    assert_eq!(
        ok(exporter, &format!("{mine}&observer_list={server_ip}"))["page"]["total_elements"],
        5
    );
    assert_eq!(
        ok(exporter, &format!("{mine}&observer_list=10.9.9.9,10.9.9.8"))["page"]["total_elements"],
        0
    );

    // id filter and the detail of a busy session, with its SQL.
    let busy = busy_ids[0];
    assert_eq!(ids(&ok(exporter, &format!("{base}?id={busy}"))), vec![busy]);
    let detail = ok(exporter, &format!("{base}/{busy}"));
    assert_eq!(detail["id"], busy);
    assert!(
        detail["info"]
            .as_str()
            .unwrap()
            .contains("SELECT SLEEP(300)"),
        "{detail}"
    );
    assert_eq!(detail["state"], "ACTIVE");
    for field in [
        "id",
        "svr_ip",
        "svr_port",
        "sql_port",
        "user",
        "db",
        "tenant",
        "host",
        "command",
        "time",
        "state",
        "info",
        "proxy_sess_id",
        "proxy_ip",
        "action",
        "module",
        "client_info",
        "level",
        "sample_percentage",
        "record_policy",
        "sql_id",
        "total_cpu_time",
        "memory_usage",
    ] {
        assert!(
            detail.get(field).is_some(),
            "detail lacks {field}: {detail}"
        );
    }
    let (status, json) = api(exporter, &format!("{base}/4000000000"));
    assert_eq!(status, 404, "{json}");
    assert_eq!(
        json["error"]["errCode"], "OB.Tenant.Session.NotExist",
        "{json}"
    );
    let (status, json) = api(exporter, &format!("{base}/abc"));
    assert_eq!(
        (status, json["error"]["subErrors"][0]["field"].as_str()),
        (400, Some("sessionId"))
    );

    // Bad parameters: a 400 naming the parameter.
    for (query, field) in [
        ("page=0", "page"),
        ("size=x", "size"),
        ("size=18446744073709551616", "size"),
        ("host=a&client_ip=b", "client_ip"),
        ("id=-1", "id"),
        ("active_only=maybe", "active_only"),
        ("sort=password,desc", "sort"),
        ("sort=time,up", "sort"),
        ("observer_list=not-an-ip", "observer_list"),
        ("user=%FF%FE", "query"),
        ("colour=red", "query"),
    ] {
        let (status, json) = api(exporter, &format!("{base}?{query}"));
        assert_eq!(status, 400, "{query}: {json}");
        assert_eq!(
            json["error"]["subErrors"][0]["field"], field,
            "{query}: {json}"
        );
    }

    // Hostile text is a bound value: it matches nothing and breaks nothing.
    let long = "x".repeat(10_240);
    for value in [
        "%27%20OR%201%3D1%20--%20",
        "%5C",
        "%00",
        "%22%3B%20DROP%20TABLE%20t%3B",
        "_",
        &long,
    ] {
        let data = ok(
            exporter,
            &format!("{base}?user={value}&db={value}&host={value}"),
        );
        assert_eq!(data["page"]["total_elements"], 0, "{value}: {data}");
    }

    // Unknown tenant.
    let (status, json) = api(exporter, "/api/v1/tenant/no_such_tenant/sessions");
    assert_eq!(status, 404, "{json}");
    assert_eq!(json["error"]["errCode"], "OB.Tenant.NotExist");
}

/// The stats endpoint agrees with /metrics for the scenario's users, databases and
/// clients, and on the totals once both have seen the same sessions.
fn check_stats_equal_metrics(exporter: &Exporter, target: &str, tenant: &str, o: &Opened) {
    let path = format!("/api/v1/tenant/{tenant}/sessions/stats");
    exporter.wait_until("stats and /metrics agree", Duration::from_secs(30), || {
        let stats = ok(exporter, &path);
        let m = exporter.metrics();
        let find = |list: &str, key: &str, name: &str| {
            stats[list]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e[key] == name)
                .map(|e| {
                    (
                        e["total_count"].as_f64().unwrap(),
                        e["active_count"].as_f64().unwrap(),
                    )
                })
        };
        let metric = |name: &str, label: (&str, &str)| {
            let labels = [("target", target), ("tenant", tenant), label];
            (
                m.get(&format!("dbsession_{name}_sessions"), &labels),
                m.get(&format!("dbsession_{name}_active_sessions"), &labels),
            )
        };
        let pair =
            |x: Option<(f64, f64)>| x.map(|(a, b)| (Some(a), Some(b))).unwrap_or((None, None));
        let total = m.get(
            "dbsession_sessions",
            &[("target", target), ("tenant", tenant)],
        );
        let active = m.get(
            "dbsession_active_sessions",
            &[("target", target), ("tenant", tenant)],
        );
        pair(find("user_stats", "user_name", &o.app)) == metric("user", ("user", &o.app))
            && pair(find("user_stats", "user_name", &o.rpt)) == metric("user", ("user", &o.rpt))
            && pair(find("db_stats", "db_name", &o.db1)) == metric("db", ("db", &o.db1))
            && pair(find("client_stats", "client_ip", &o.ip2))
                == metric("client", ("client_ip", &o.ip2))
            && find("user_stats", "user_name", &o.app) == Some((5.0, 2.0))
            && total == stats["total_count"].as_f64()
            && active == stats["active_count"].as_f64()
            && stats["max_active_time"].as_f64().is_some_and(|t| t >= 1.0)
    });
}

#[test]
fn mariadb_sessions_api() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let admin = |sql: &str| servers.mariadb_root(sql);
    let opened = open_sessions(&servers.mariadb_addr, &admin, "pt_m", 60);
    let exporter = start(&format!(
        "  - name: maria\n    kind: mysql\n    address: {}\n    user: monitor\n    password_file: {}\n",
        servers.mariadb_addr,
        servers.monitor_password_file.display()
    ));
    exporter.wait_for_metrics("MariaDB is collected", Duration::from_secs(30), |m| {
        m.get("dbsession_up", &[("target", "maria"), ("tenant", "maria")]) == Some(1.0)
    });
    let (host, port) = crate::common::split_addr(&servers.mariadb_addr);
    check_sessions_api(&exporter, "maria", &opened, host);
    let detail = ok(
        &exporter,
        &format!("/api/v1/tenant/maria/sessions/{}", opened.idle[0].id),
    );
    assert_eq!(detail["sql_port"], port.parse::<u64>().unwrap());
    assert_eq!(detail["state"], "SLEEP");
    assert_eq!(detail["sql_id"], "", "MySQL has no SQL_ID: the zero value");
    // The program that opened it, as the server's connection attributes say.
    let program = admin(&format!(
        "SELECT ATTR_VALUE FROM performance_schema.session_connect_attrs \
         WHERE PROCESSLIST_ID = {} AND ATTR_NAME = 'program_name'",
        opened.idle[0].id
    ));
    assert!(!program.trim().is_empty());
    assert_eq!(detail["application"], program.trim(), "{detail}");
    check_stats_equal_metrics(&exporter, "maria", "maria", &opened);
}

#[test]
fn seekdb_sessions_api() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let admin = |sql: &str| servers.seekdb_root(sql);
    let opened = open_sessions(&servers.seekdb_addr, &admin, "pt_s", 70);
    let exporter = start(&format!(
        "  - name: seek\n    kind: oceanbase\n    address: {}\n    user: monitor\n    password_file: {}\n    tenant: seek\n",
        servers.seekdb_addr,
        servers.monitor_password_file.display()
    ));
    exporter.wait_for_metrics("seekdb is collected", Duration::from_secs(30), |m| {
        m.get("dbsession_up", &[("target", "seek"), ("tenant", "seek")]) == Some(1.0)
    });
    let (host, _) = crate::common::split_addr(&servers.seekdb_addr);
    check_sessions_api(&exporter, "seek", &opened, host);
    // Prepared statements are closed after each request: OceanBase refuses new ones
    // ("maximum open cursors exceeded") once a connection holds too many.
    for _ in 0..300 {
        ok(&exporter, "/api/v1/tenant/seek/sessions?size=1&user=pt_s");
    }
    let busy = ok(
        &exporter,
        &format!("/api/v1/tenant/seek/sessions/{}", opened.busy[0].id),
    );
    assert_eq!(
        busy["sql_id"].as_str().map(str::len),
        Some(32),
        "seekdb has SQL_ID: {busy}"
    );
    assert_eq!(
        busy["application"], "",
        "a plain client names no MODULE: {busy}"
    );
    check_stats_equal_metrics(&exporter, "seek", "seek", &opened);
}

/// A PostgreSQL session's program, in the list and the detail: its
/// `application_name`, as `dbsession_application_sessions` counts it.
#[test]
fn postgresql_sessions_carry_their_application() {
    let Some(servers) = Servers::get() else {
        return;
    };
    servers.postgres_role("it_pt_pg", "It-pt-pg-1", "");
    let end = || {
        servers.postgres_admin(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'it_pt_pg'",
        )
    };
    end();
    let exporter = start(&format!(
        "  - name: pg\n    kind: postgresql\n    address: {}\n    user: monitor\n    password_file: {}\n    sslmode: disable\n    filter: {{users: {{allow: [it_pt_pg]}}}}\n",
        servers.postgres_addr,
        servers.monitor_password_file.display()
    ));
    let session = crate::common::PsqlSession::start(
        &servers.postgres_addr,
        "it_pt_pg",
        "It-pt-pg-1",
        "postgres",
        Some("it-pt-report"),
    );
    let labels = [
        ("target", "pg"),
        ("tenant", "pg"),
        ("application", "it-pt-report"),
    ];
    exporter.wait_for_metrics("the session is counted", Duration::from_secs(30), |m| {
        m.get("dbsession_application_active_sessions", &labels) == Some(1.0)
    });
    let list = ok(&exporter, "/api/v1/tenant/pg/sessions?user=it_pt_pg");
    assert_eq!(list["contents"][0]["application"], "it-pt-report", "{list}");
    let id = list["contents"][0]["id"].as_u64().unwrap();
    let detail = ok(&exporter, &format!("/api/v1/tenant/pg/sessions/{id}"));
    assert_eq!(detail["application"], "it-pt-report", "{detail}");
    let sorted = ok(
        &exporter,
        "/api/v1/tenant/pg/sessions?user=it_pt_pg&sort=application,asc",
    );
    assert_eq!(ids(&sorted), vec![id]);
    drop(session);
    end();
}

const CLUSTER: &str = r#"
CREATE DATABASE IF NOT EXISTS it_pt_cluster;
DROP TABLE IF EXISTS it_pt_cluster.`GV$OB_PROCESSLIST`;
DROP TABLE IF EXISTS it_pt_cluster.`DBA_OB_TENANTS`;
CREATE TABLE it_pt_cluster.`DBA_OB_TENANTS` (TENANT_ID BIGINT, TENANT_NAME VARCHAR(128), TENANT_TYPE VARCHAR(16));
CREATE TABLE it_pt_cluster.`GV$OB_PROCESSLIST` (
  ID BIGINT, TENANT VARCHAR(128), SVR_IP VARCHAR(46), SVR_PORT BIGINT, SQL_PORT BIGINT, USER VARCHAR(128),
  HOST VARCHAR(128), DB VARCHAR(128), COMMAND VARCHAR(32), TIME DOUBLE, STATE VARCHAR(32), INFO TEXT,
  PROXY_SESSID BIGINT, USER_CLIENT_IP VARCHAR(46), SQL_ID VARCHAR(64), MEMORY_USAGE BIGINT);
INSERT INTO it_pt_cluster.`DBA_OB_TENANTS` VALUES (1, 'sys', 'SYS'), (1002, 't1', 'USER'), (1004, 't2', 'USER');
INSERT INTO it_pt_cluster.`GV$OB_PROCESSLIST` VALUES
  (101, 't1', '10.0.0.1', 2882, 2881, 'app', '10.1.1.1:5000', 'shop', 'Query', 12.5, 'ACTIVE', 'SELECT 1', NULL, '10.1.1.1', 'SQL101', 1024),
  (102, 't1', '10.0.0.2', 2882, 2881, 'app', '172.16.0.9:2883', 'shop', 'Sleep', 900, 'SLEEP', NULL, 77, '10.1.1.2', '', 2048),
  (103, 't1', '10.0.0.2', 2882, 2881, 'a_b', '172.16.0.9:2883', 'shop', 'Query', 3, 'ACTIVE', 'x', 78, '10.1.1.2', 'SQL103', 0),
  (101, 't1', '10.0.0.3', 3882, 3881, 'axb', '10.1.1.3:1', 'b%c', 'Query', 7, 'ACTIVE', 'y', NULL, '10.1.1.3', 'SQL1013', 0),
  (104, 't2', '10.0.0.1', 2882, 2881, 'u2', '10.1.1.4:1', 'db2', 'Sleep', 5, 'SLEEP', NULL, NULL, '10.1.1.4', '', 0);
"#;

#[test]
fn cluster_sessions_api() {
    let Some(servers) = Servers::get() else {
        return;
    };
    servers.seekdb_root(CLUSTER);
    servers.seekdb_root("GRANT SELECT ON it_pt_cluster.* TO monitor");
    let exporter = start(&format!(
        "  - name: ob\n    kind: oceanbase\n    address: {}\n    user: monitor@sys\n    password_file: {}\n    processlist_view: it_pt_cluster.GV$OB_PROCESSLIST\n    tenants_view: it_pt_cluster.DBA_OB_TENANTS\n",
        servers.seekdb_addr,
        servers.monitor_password_file.display()
    ));
    exporter.wait_for_metrics("the cluster is collected", Duration::from_secs(30), |m| {
        m.get("dbsession_up", &[("target", "ob"), ("tenant", "t1")]) == Some(1.0)
    });
    let t1 = "/api/v1/tenant/t1/sessions";
    // Only t1's sessions, in (id, server) order.
    let all = ok(&exporter, t1);
    assert_eq!(all["page"]["total_elements"], 4, "{all}");
    let servers_of: Vec<(u64, String)> = all["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_u64().unwrap(),
                s["svr_ip"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        servers_of,
        [
            (101, "10.0.0.1"),
            (101, "10.0.0.3"),
            (102, "10.0.0.2"),
            (103, "10.0.0.2")
        ]
        .map(|(i, s)| (i, s.to_string()))
    );
    // Sorted by time, longest first.
    let by_time = ok(&exporter, &format!("{t1}?sort=time,desc"));
    let times: Vec<f64> = by_time["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["time"].as_f64().unwrap())
        .collect();
    assert_eq!(times, [900.0, 12.5, 7.0, 3.0]);
    // observer_list with and without ports.
    assert_eq!(
        ok(&exporter, &format!("{t1}?observer_list=10.0.0.2"))["page"]["total_elements"],
        2
    );
    assert_eq!(
        ok(
            &exporter,
            &format!("{t1}?observer_list=10.0.0.1:2882,10.0.0.3:3882")
        )["page"]["total_elements"],
        2
    );
    assert_eq!(
        ok(&exporter, &format!("{t1}?observer_list=10.0.0.3:2882"))["page"]["total_elements"],
        0
    );
    // `_` and `%` in a filter are literal.
    assert_eq!(ids(&ok(&exporter, &format!("{t1}?user=a_b"))), vec![103]);
    assert_eq!(
        ok(&exporter, &format!("{t1}?db=b%25c"))["page"]["total_elements"],
        1
    );
    assert_eq!(
        ok(&exporter, &format!("{t1}?db=b%25"))["page"]["total_elements"],
        1
    );
    assert_eq!(
        ok(&exporter, &format!("{t1}?db=p%25"))["page"]["total_elements"],
        0
    );
    // Through OBProxy: proxy_ip is HOST's address.
    let proxied = ok(&exporter, &format!("{t1}/102"));
    assert_eq!(proxied["proxy_sess_id"], 77);
    assert_eq!(proxied["proxy_ip"], "172.16.0.9");
    assert_eq!(proxied["sql_port"], 2881);
    assert_eq!(proxied["svr_port"], 2882);
    assert_eq!(proxied["memory_usage"], 2048);
    let direct = ok(&exporter, &format!("{t1}/101"));
    assert_eq!(direct["proxy_ip"], "");
    assert_eq!(direct["sql_id"], "SQL101");
    // Another tenant's session is not found through t1.
    assert_eq!(api(&exporter, &format!("{t1}/104")).0, 404);
    assert_eq!(ids(&ok(&exporter, "/api/v1/tenant/t2/sessions")), vec![104]);
    // Stats, live, for one tenant.
    let stats = ok(&exporter, "/api/v1/tenant/t1/sessions/stats");
    assert_eq!(stats["total_count"], 4);
    assert_eq!(stats["active_count"], 3);
    assert_eq!(
        stats["max_active_time"], 12.5,
        "active sessions only: the idle 900 s one is not"
    );
    assert_eq!(
        stats["db_stats"][0],
        serde_json::json!({"db_name": "shop", "total_count": 3, "active_count": 2})
    );
    assert_eq!(stats["client_stats"].as_array().unwrap().len(), 3);
    let m = exporter.metrics();
    assert_eq!(
        m.get("dbsession_sessions", &[("target", "ob"), ("tenant", "t1")]),
        Some(4.0)
    );
}
