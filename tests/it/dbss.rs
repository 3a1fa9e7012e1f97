//! `kind: dbss` against the local contract server (tests/common/dbss.rs): the series
//! and the request they come from, every documented error status and its reason, a
//! slow upstream, untrusted certificates, redirects, a token rotation without reload,
//! the SQL-detail passthrough, and the token never showing in logs, pages or metrics.

use crate::common::dbss::{ContractServer, INSTANCE_ID, PROJECT_ID, SQL_ID};
use crate::common::openapi::Spec;
use crate::common::{http_get, promtool_check_metrics, Exporter, Metrics};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// Tokens are sentinels: the tests look for them in every output.
const TOKEN: &str = "MIIDbssSentinelToken-5501";
const OTHER_TOKEN: &str = "MIIDbssSentinelToken-7702";
const API_TOKEN: &str = "passthrough-bearer-token-0123456789";

fn write_token(dir: &Path, name: &str, token: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    // As a token renewer would: a new file renamed over the old one.
    let next = dir.join(format!("{name}.next"));
    std::fs::write(&next, format!("{token}\n")).unwrap();
    std::fs::rename(&next, &path).unwrap();
    path
}

/// The one series of `name` whose labels include `labels` (constant labels aside).
fn value(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    match m.matching(name, labels).as_slice() {
        [(_, v)] => Some(*v),
        [] => None,
        more => panic!("{name} {labels:?} matches {more:?}"),
    }
}

fn up(m: &Metrics, target: &str) -> Option<f64> {
    value(m, "dbsession_up", &[("target", target), ("tenant", "")])
}

fn errors(m: &Metrics, target: &str, reason: &str) -> f64 {
    value(
        m,
        "dbsession_collect_errors_total",
        &[("target", target), ("reason", reason)],
    )
    .unwrap_or(-1.0)
}

/// No output of the exporter holds a token.
fn assert_no_token(exporter: &Exporter, extra: &[&str]) {
    let mut outputs = vec![("log".to_string(), exporter.log())];
    for path in ["/", "/metrics", "/probe?target=dbss-prod"] {
        if let Some((_, head, body)) = exporter.try_get(path) {
            outputs.push((
                path.to_string(),
                format!("{head}\n{}", String::from_utf8_lossy(&body)),
            ));
        }
    }
    for text in extra {
        outputs.push(("answer".to_string(), text.to_string()));
    }
    for (what, text) in outputs {
        for token in [TOKEN, OTHER_TOKEN] {
            assert!(!text.contains(token), "the token shows in {what}:\n{text}");
        }
    }
}

#[test]
fn client_sessions_become_series_from_the_documented_request() {
    let server = ContractServer::start(TOKEN);
    // The documented example plus two entries with ids, one of them sent twice.
    server.set(|s| {
        if let Value::Array(entries) = &mut s.sessions {
            entries.push(json!({"db_id": "db-1", "db_ip": "10.0.0.37", "session_num": 5, "db_name": "orders"}));
            entries.push(json!({"db_id": "db-1", "db_ip": "10.0.0.37", "session_num": 2, "db_name": "orders"}));
            entries.push(json!({"db_id": "db-2", "db_ip": "10.0.0.38", "session_num": null, "db_name": "x"}));
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let token = write_token(dir.path(), "dbss.token", TOKEN);
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\ntargets:\n{}",
        server.target_yaml("dbss-prod", &token, "    labels: {region: r1}\n")
    ));
    let m = exporter.wait_for_metrics("the first collection", Duration::from_secs(20), |m| {
        up(m, "dbss-prod") == Some(1.0)
    });
    let series = |db_id: &str, db_ip: &str, db_name: &str| {
        value(
            &m,
            "dbsession_dbss_client_sessions",
            &[
                ("target", "dbss-prod"),
                ("instance_id", INSTANCE_ID),
                ("db_id", db_id),
                ("db_ip", db_ip),
                ("db_name", db_name),
                ("region", "r1"),
            ],
        )
    };
    assert_eq!(
        series("__none__", "100.79.0.248", "__none__"),
        Some(16.0),
        "{}",
        m.text
    );
    assert_eq!(series("__none__", "100.79.0.247", "__none__"), Some(13.0));
    assert_eq!(series("db-1", "10.0.0.37", "orders"), Some(7.0));
    // An entry without session_num carries no count: no series.
    assert_eq!(
        m.matching("dbsession_dbss_client_sessions", &[("db_id", "db-2")]),
        vec![]
    );
    assert_eq!(m.matching("dbsession_dbss_client_sessions", &[]).len(), 3);
    // The same self-metrics as every target; DBSS's reasons counted from zero.
    assert_eq!(up(&m, "dbss-prod"), Some(1.0));
    for reason in [
        "connect",
        "auth",
        "timeout",
        "query",
        "bad_request",
        "forbidden",
        "server",
    ] {
        assert_eq!(errors(&m, "dbss-prod", reason), 0.0, "{reason}");
    }
    assert!(
        value(
            &m,
            "dbsession_last_collect_success_timestamp_seconds",
            &[("target", "dbss-prod")]
        )
        .unwrap()
            > 0.0
    );
    assert!(value(
        &m,
        "dbsession_collect_duration_seconds",
        &[("target", "dbss-prod")]
    )
    .is_some());
    assert_eq!(
        value(
            &m,
            "dbsession_series_dropped",
            &[("target", "dbss-prod"), ("dimension", "dbss_database")]
        ),
        Some(0.0)
    );
    let (_, _, body) = exporter.try_get("/metrics").unwrap();
    promtool_check_metrics(&body);

    // The request, as the reference documents it.
    let request = server.requests().into_iter().next().expect("a request");
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.path,
        format!("/v1/{PROJECT_ID}/audit/{INSTANCE_ID}/statistics/session/db-client")
    );
    assert_eq!(request.token.as_deref(), Some(TOKEN));
    assert!(request
        .content_type
        .unwrap()
        .starts_with("application/json"));
    let body: Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(body, json!({"time": {"time_range": "HALF_HOUR"}}));
    assert_no_token(&exporter, &[]);
}

#[test]
fn db_ids_and_time_range_are_sent_and_filter() {
    let server = ContractServer::start(TOKEN);
    server.set(|s| {
        s.sessions = json!([
            {"db_id": "db-1", "db_ip": "10.0.0.37", "session_num": 5, "db_name": "orders"},
            {"db_id": "db-2", "db_ip": "10.0.0.38", "session_num": 3, "db_name": "users"},
        ])
    });
    let dir = tempfile::tempdir().unwrap();
    let token = write_token(dir.path(), "dbss.token", TOKEN);
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\ntargets:\n{}",
        server.target_yaml(
            "dbss-prod",
            &token,
            "    db_ids: [db-2]\n    time_range: WEEK\n"
        )
    ));
    let m = exporter.wait_for_metrics("the first collection", Duration::from_secs(20), |m| {
        up(m, "dbss-prod") == Some(1.0)
    });
    let series = m.matching("dbsession_dbss_client_sessions", &[]);
    assert_eq!(series.len(), 1, "{series:?}");
    assert!(series[0].0.contains("db_id=\"db-2\""), "{series:?}");
    let body: Value = serde_json::from_str(&server.requests()[0].body).unwrap();
    assert_eq!(
        body,
        json!({"db_id": ["db-2"], "time": {"time_range": "WEEK"}})
    );
}

#[test]
fn every_error_status_has_its_reason_and_the_healthy_target_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_token(dir.path(), "good.token", TOKEN);
    let unknown = write_token(dir.path(), "unknown.token", OTHER_TOKEN);
    let healthy = ContractServer::start(TOKEN);
    let bad_request = ContractServer::start(TOKEN);
    bad_request.set(|s| s.fail = Some((400, "DBSS.400099", "the parameter is invalid".into())));
    let unauthorized = ContractServer::start(TOKEN);
    let forbidden = ContractServer::start(TOKEN);
    forbidden.set(|s| s.forbidden_tokens = vec![TOKEN.to_string()]);
    let broken = ContractServer::start(TOKEN);
    // A server that echoes the token must not get it into the log.
    broken.set(|s| s.fail = Some((500, "DBSS.500001", format!("internal error for {TOKEN}"))));
    let off_contract = ContractServer::start(TOKEN);
    off_contract.set(|s| s.sessions = json!({"items": []}));
    let slow = ContractServer::start(TOKEN);
    slow.set(|s| s.delay = Duration::from_secs(3));
    let untrusted = ContractServer::start(TOKEN);

    let mut targets = String::new();
    for (name, server, token) in [
        ("healthy", &healthy, &good),
        ("bad-request", &bad_request, &good),
        ("unauthorized", &unauthorized, &unknown),
        ("forbidden", &forbidden, &good),
        ("broken", &broken, &good),
        ("off-contract", &off_contract, &good),
        ("slow", &slow, &good),
    ] {
        targets.push_str(&server.target_yaml(name, token, ""));
    }
    // No ca_file: the system's CAs do not know the test CA.
    targets.push_str(&format!(
        "  - name: untrusted\n    kind: dbss\n    endpoint: {}\n    project_id: {PROJECT_ID}\n    instance_id: {INSTANCE_ID}\n    token_file: {}\n",
        untrusted.endpoint(),
        good.display()
    ));
    // The same server with verification turned off explicitly: collected, and warned.
    targets.push_str(&format!(
        "  - name: unverified\n    kind: dbss\n    endpoint: {}\n    project_id: {PROJECT_ID}\n    instance_id: {INSTANCE_ID}\n    token_file: {}\n    insecure_skip_verify: true\n",
        untrusted.endpoint(),
        good.display()
    ));
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 1s\n  collect_timeout: 800ms\ntargets:\n{targets}"
    ));
    let expected = [
        ("bad-request", "bad_request"),
        ("unauthorized", "auth"),
        ("forbidden", "forbidden"),
        ("broken", "server"),
        ("off-contract", "query"),
        ("slow", "timeout"),
        ("untrusted", "connect"),
    ];
    let first_success = exporter
        .wait_for_metrics(
            "the healthy target's first success",
            Duration::from_secs(20),
            |m| up(m, "healthy") == Some(1.0),
        )
        .get(
            "dbsession_last_collect_success_timestamp_seconds",
            &[("target", "healthy")],
        )
        .unwrap();
    let m = exporter.wait_for_metrics(
        "every failing target failed twice",
        Duration::from_secs(30),
        |m| {
            expected
                .iter()
                .all(|(target, reason)| errors(m, target, reason) >= 2.0)
        },
    );
    for (target, reason) in expected {
        assert_eq!(up(&m, target), Some(0.0), "{target}");
        assert!(
            m.matching("dbsession_dbss_client_sessions", &[("target", target)])
                .is_empty(),
            "{target}"
        );
        // Only its own reason.
        let total: f64 = m
            .matching("dbsession_collect_errors_total", &[("target", target)])
            .iter()
            .map(|(_, v)| v)
            .sum();
        assert_eq!(total, errors(&m, target, reason), "{target}: {}", m.text);
    }
    assert_eq!(up(&m, "healthy"), Some(1.0));
    assert_eq!(up(&m, "unverified"), Some(1.0));
    assert!(
        value(
            &m,
            "dbsession_last_collect_success_timestamp_seconds",
            &[("target", "healthy")]
        )
        .unwrap()
            > first_success,
        "the healthy target was held up"
    );

    // The log line carries DBSS's error_code and error_msg, and what to do.
    let log = exporter.log();
    for needle in [
        "error_code=DBSS.400099",
        "the parameter is invalid",
        "error_code=DBSS.401002",
        "renew it",
        "error_code=DBSS.403001",
        "error_code=DBSS.500001",
        "internal error for <redacted>",
        "ReportClientSessionNew",
        "collect_timeout",
        "certificate",
        "insecure_skip_verify: the DBSS certificate is not verified",
    ] {
        assert!(log.contains(needle), "`{needle}` not in the log:\n{log}");
    }
    let (_, _, body) = exporter.try_get("/metrics").unwrap();
    promtool_check_metrics(&body);
    assert_no_token(&exporter, &[]);
}

#[test]
fn a_rotated_token_is_used_without_a_reload() {
    let server = ContractServer::start(TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let token = write_token(dir.path(), "dbss.token", TOKEN);
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 300ms\ntargets:\n{}",
        server.target_yaml("dbss-prod", &token, "")
    ));
    exporter.wait_for_metrics("the first collection", Duration::from_secs(20), |m| {
        up(m, "dbss-prod") == Some(1.0)
    });
    // The old token expires: auth failures.
    server.set(|s| s.tokens = vec![OTHER_TOKEN.to_string()]);
    exporter.wait_for_metrics("the expired token fails", Duration::from_secs(20), |m| {
        errors(m, "dbss-prod", "auth") >= 1.0 && up(m, "dbss-prod") == Some(0.0)
    });
    // The renewer writes the new one: the next cycle uses it.
    write_token(dir.path(), "dbss.token", OTHER_TOKEN);
    exporter.wait_for_metrics("the new token works", Duration::from_secs(20), |m| {
        up(m, "dbss-prod") == Some(1.0)
    });
    let last = server.requests().pop().unwrap();
    assert_eq!(last.token.as_deref(), Some(OTHER_TOKEN));
    assert!(
        exporter.log().contains("token_file changed"),
        "{}",
        exporter.log()
    );
    // A removed token file stops the use of the token: auth failures, no request.
    let before = exporter.metrics();
    std::fs::remove_file(&token).unwrap();
    let requests = server.requests().len();
    exporter.wait_for_metrics(
        "the missing token file fails",
        Duration::from_secs(20),
        |m| {
            errors(m, "dbss-prod", "auth") > errors(&before, "dbss-prod", "auth")
                && up(m, "dbss-prod") == Some(0.0)
        },
    );
    assert!(
        server.requests().len() <= requests + 1,
        "requests went on without a token"
    );
    assert!(
        exporter.log().contains("cannot read token_file"),
        "{}",
        exporter.log()
    );
    assert!(!exporter.log().contains("reload"), "no reload was needed");
    assert_no_token(&exporter, &[]);
}

#[test]
fn redirects_are_followed_on_the_same_host_only() {
    let dir = tempfile::tempdir().unwrap();
    let token = write_token(dir.path(), "dbss.token", TOKEN);
    let moved = ContractServer::start(TOKEN);
    let path = format!("/moved/v1/{PROJECT_ID}/audit/{INSTANCE_ID}/statistics/session/db-client");
    moved.set(|s| s.redirect = Some(path.clone()));
    let elsewhere = ContractServer::start(TOKEN);
    let away = ContractServer::start(TOKEN);
    away.set(|s| {
        s.redirect = Some(format!(
            "https://{}/v1/{PROJECT_ID}/audit/{INSTANCE_ID}/statistics/session/db-client",
            elsewhere.addr
        ))
    });
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\ntargets:\n{}{}",
        moved.target_yaml("moved", &token, ""),
        away.target_yaml("away", &token, "")
    ));
    let m = exporter.wait_for_metrics("both collected once", Duration::from_secs(20), |m| {
        up(m, "moved") == Some(1.0) && errors(m, "away", "query") >= 1.0
    });
    assert_eq!(
        m.matching("dbsession_dbss_client_sessions", &[("target", "moved")])
            .len(),
        2
    );
    let followed = moved.requests();
    assert!(followed
        .iter()
        .any(|r| r.path == path && r.token.as_deref() == Some(TOKEN)));
    assert!(
        elsewhere.requests().is_empty(),
        "the token went to another host"
    );
    assert!(
        exporter.log().contains("not the endpoint's host"),
        "{}",
        exporter.log()
    );
}

fn api_get(exporter: &Exporter, path: &str, bearer: Option<&str>) -> (u16, String, String) {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let (status, head, body) = http_get(&exporter.addr, path, &headers).expect(path);
    let body = String::from_utf8(body).unwrap();
    // Every answer is what docs/openapi.yaml documents.
    let json: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    Spec::load().check("/api/v1/dbss/{target}/sqls/{id}", status, &json);
    (status, head, body)
}

#[test]
fn sql_detail_is_forwarded_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let token = write_token(dir.path(), "dbss.token", TOKEN);
    let api_token = dir.path().join("api.token");
    std::fs::write(&api_token, API_TOKEN).unwrap();
    let server = ContractServer::start(TOKEN);
    let slow = ContractServer::start(TOKEN);
    slow.set(|s| s.delay = Duration::from_secs(4));
    let forbidden = ContractServer::start(TOKEN);
    forbidden.set(|s| s.forbidden_tokens = vec![TOKEN.to_string()]);
    let exporter = Exporter::start(&format!(
        "passthrough:\n  enabled: true\n  bearer_token_file: {}\n  request_timeout: 1s\ntargets:\n{}{}{}",
        api_token.display(),
        server.target_yaml("dbss-prod", &token, ""),
        slow.target_yaml("dbss-slow", &token, ""),
        forbidden.target_yaml("dbss-forbidden", &token, ""),
    ));
    let url = |target: &str, id: &str| format!("/api/v1/dbss/{target}/sqls/{id}");
    let mut answers = Vec::new();

    // The round trip: DBSS's body, byte for byte, and its status.
    let (status, head, body) = api_get(&exporter, &url("dbss-prod", SQL_ID), Some(API_TOKEN));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, crate::common::dbss::EXAMPLE_SQL);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    // The collection's own requests (a POST each interval) may come in between.
    let forwarded = || {
        let mut sqls = server.requests();
        sqls.retain(|r| r.path.contains("/sqls/"));
        sqls
    };
    let sent = forwarded().pop().unwrap();
    assert_eq!(
        (
            sent.method.as_str(),
            sent.path.as_str(),
            sent.token.as_deref()
        ),
        (
            "GET",
            format!("/v2/{PROJECT_ID}/audit/{INSTANCE_ID}/sqls/{SQL_ID}").as_str(),
            Some(TOKEN)
        )
    );

    // DBSS's own errors come back unchanged: an unknown id (400), no permission (403).
    let (status, _, body) = api_get(
        &exporter,
        &url("dbss-prod", "Unknown_id-1"),
        Some(API_TOKEN),
    );
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error_code"],
        "DBSS.400007"
    );
    let (status, _, body) = api_get(&exporter, &url("dbss-forbidden", SQL_ID), Some(API_TOKEN));
    assert_eq!(status, 403);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error_code"],
        "DBSS.403001"
    );
    answers.push(body);

    // The exporter's own answers, in DBSS's error shape.
    let requests_before = forwarded().len();
    for (path, bearer, status, code) in [
        (url("dbss-prod", SQL_ID), None, 401, "EXPORTER.Unauthorized"),
        (
            url("dbss-prod", SQL_ID),
            Some("wrong-token-0123456789"),
            401,
            "EXPORTER.Unauthorized",
        ),
        (
            url("no-such-target", SQL_ID),
            Some(API_TOKEN),
            404,
            "EXPORTER.NotFound",
        ),
        (
            url("dbss-prod", "a.b"),
            Some(API_TOKEN),
            400,
            "EXPORTER.IllegalArgument",
        ),
        (
            url("dbss-prod", &"x".repeat(129)),
            Some(API_TOKEN),
            400,
            "EXPORTER.IllegalArgument",
        ),
        (
            url("dbss-prod", "a%2F..%2Fb"),
            Some(API_TOKEN),
            400,
            "EXPORTER.IllegalArgument",
        ),
        (
            url("dbss-slow", SQL_ID),
            Some(API_TOKEN),
            504,
            "EXPORTER.GatewayTimeout",
        ),
    ] {
        let (got, _, body) = api_get(&exporter, &path, bearer);
        assert_eq!(got, status, "{path}: {body}");
        let json: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error_code"], code, "{path}: {body}");
        assert!(json["error_msg"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(json["details"], json!([]));
        answers.push(body);
    }
    assert_eq!(
        forwarded().len(),
        requests_before,
        "refused requests reached DBSS"
    );
    // Without a readable token file nothing is sent: 502.
    std::fs::remove_file(&token).unwrap();
    let (status, _, body) = api_get(&exporter, &url("dbss-prod", SQL_ID), Some(API_TOKEN));
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("EXPORTER.BadGateway") && body.contains("token_file"),
        "{body}"
    );
    assert_eq!(forwarded().len(), requests_before);
    answers.push(body);
    let texts: Vec<&str> = answers.iter().map(String::as_str).collect();
    assert_no_token(&exporter, &texts);
}

#[test]
fn the_sql_detail_route_is_closed_while_the_passthrough_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let token = write_token(dir.path(), "dbss.token", TOKEN);
    let server = ContractServer::start(TOKEN);
    let exporter = Exporter::start(&format!(
        "targets:\n{}",
        server.target_yaml("dbss-prod", &token, "")
    ));
    let (status, _, body) = api_get(
        &exporter,
        &format!("/api/v1/dbss/dbss-prod/sqls/{SQL_ID}"),
        None,
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("passthrough.enabled"), "{body}");
    assert!(server.requests().iter().all(|r| r.method == "POST"));
}
