//! What guards the session API: off by default, never open without credentials
//! unless asked, answers only as its specification says, and never counting the
//! exporter's own connections.

use super::*;

#[test]
fn enabling_without_authentication_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        "passthrough:\n  enabled: true\ntargets:\n  - name: m\n    kind: mysql\n    address: 127.0.0.1:1\n    user: u\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_session_exporter"))
        .arg(format!("--config.file={}", config.display()))
        .arg("--config.check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bearer_token_file"), "{stderr}");
}

#[test]
fn disabled_by_default_and_insecure_only_when_asked() {
    let port = crate::common::free_port();
    let exporter = Exporter::start(&format!(
        "targets:\n  - name: m\n    kind: mysql\n    address: 127.0.0.1:{port}\n    user: u\n"
    ));
    let (status, json) = api_with(&exporter, "/api/v1/tenant/m/sessions", None);
    assert_eq!(status, 404, "{json}");
    assert!(json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("passthrough.enabled"));
    drop(exporter);

    let exporter = Exporter::start(&format!(
        "passthrough:\n  enabled: true\n  insecure_no_auth: true\n  request_timeout: 1s\ntargets:\n  - name: m\n    kind: mysql\n    address: 127.0.0.1:{port}\n    user: u\n"
    ));
    exporter.wait_until("the warning is logged", Duration::from_secs(10), || {
        exporter.log().contains("insecure_no_auth")
    });
    // No database behind the port: 503 in the envelope, quickly.
    let (status, json) = api_with(&exporter, "/api/v1/tenant/m/sessions/stats", None);
    assert_eq!(status, 503, "{json}");
    let trace = json["traceId"].as_str().unwrap().to_string();
    exporter.wait_until("the trace id is logged", Duration::from_secs(5), || {
        exporter.log().contains(&trace)
    });
}

/// The spec check above can fail: answers it does not describe are refused.
#[test]
fn the_spec_check_refuses_undocumented_answers() {
    let spec = crate::common::openapi::Spec::load();
    let list = "/api/v1/tenant/{name}/sessions";
    let good = serde_json::json!({
        "successful": true, "timestamp": "2026-11-24T10:37:00.123456789Z", "duration": 3,
        "status": 200, "traceId": "0123456789abcdef",
        "data": {"page": {"total_elements": 0, "total_pages": 0, "size": 10, "number": 1}, "contents": []}
    });
    spec.check(list, 200, &good);
    let mut extra = good.clone();
    extra["data"]["page"]["bogus"] = 1.into();
    let mut missing = good.clone();
    missing["data"].as_object_mut().unwrap().remove("contents");
    let mut wrong_type = good.clone();
    wrong_type["duration"] = "3".into();
    for (what, body, status) in [
        ("extra", &extra, 200),
        ("missing", &missing, 200),
        ("type", &wrong_type, 200),
        ("status", &good, 418),
    ] {
        let refused = std::panic::catch_unwind(|| spec.check(list, status, body)).is_err();
        assert!(refused, "{what} was accepted");
    }
}

/// Basic auth users of --web.config.file are enough to enable the API, and are
/// checked by it (answering 401 in the envelope); /metrics keeps its own check.
#[test]
fn basic_auth_users_guard_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yaml");
    let hash = bcrypt::hash("s3cret-pass", 4).unwrap();
    std::fs::write(&web, format!("basic_auth_users:\n  alice: '{hash}'\n")).unwrap();
    let port = crate::common::free_port();
    let exporter = Exporter::start_with(
        &format!("passthrough:\n  enabled: true\ntargets:\n  - name: m\n    kind: mysql\n    address: 127.0.0.1:{port}\n    user: u\n"),
        &[&format!("--web.config.file={}", web.display())],
    );
    let path = "/api/v1/tenant/nobody/sessions";
    let (status, _) = api_with(&exporter, path, None);
    assert_eq!(status, 401);
    let wrong = format!("Basic {}", base64("alice:wrong"));
    assert_eq!(api_with(&exporter, path, Some(&wrong)).0, 401);
    let right = format!("Basic {}", base64("alice:s3cret-pass"));
    exporter.wait_until("past authentication", Duration::from_secs(10), || {
        // Authenticated: the tenant is unknown (404), or not known yet (503).
        matches!(api_with(&exporter, path, Some(&right)).0, 404 | 503)
    });
    assert_eq!(exporter.try_get("/metrics").unwrap().0, 401);
}

fn base64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// With the session API in use, neither `/metrics` nor the API counts or lists any
/// of the exporter's own connections: the collection's, or the API pool's idle ones.
/// The exporter logs in with an account of this test alone, on seekdb (single
/// tenant) and a private MariaDB, so any session of that account is the exporter's.
#[test]
fn the_exporter_never_counts_its_own_connections() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let password = "own-sessions-Pw1";
    let password_file = dir.path().join("own.password");
    std::fs::write(&password_file, password).expect("password file");
    servers.seekdb_root(&format!(
        "CREATE USER IF NOT EXISTS own_mon IDENTIFIED BY '{password}'; \
         ALTER USER own_mon IDENTIFIED BY '{password}'; GRANT SELECT ON oceanbase.* TO own_mon;"
    ));
    let maria = crate::common::PrivateMariadb::start(password);
    maria.root(&format!(
        "CREATE USER 'own_mon'@'%' IDENTIFIED BY '{password}'; GRANT PROCESS ON *.* TO 'own_mon'@'%';"
    ));
    let exporter = start(&format!(
        "  - name: seek\n    kind: oceanbase\n    address: {}\n    user: own_mon\n    password_file: {pw}\n    tenant: seek\n  - name: maria\n    kind: mysql\n    address: {}\n    user: own_mon\n    password_file: {pw}\n",
        servers.seekdb_addr,
        maria.addr(),
        pw = password_file.display()
    ));
    for tenant in ["seek", "maria"] {
        exporter.wait_for_metrics("both are collected", Duration::from_secs(30), |m| {
            m.get("dbsession_up", &[("target", tenant), ("tenant", tenant)]) == Some(1.0)
        });
        // Several requests at once, so the API's pool holds more than one connection.
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| {
                    ok(
                        &exporter,
                        &format!("/api/v1/tenant/{tenant}/sessions/stats"),
                    )
                });
            }
        });
        let base = format!("/api/v1/tenant/{tenant}/sessions");
        assert_eq!(
            ok(&exporter, &format!("{base}?user=own_mon"))["page"]["total_elements"],
            0
        );
        let stats = ok(&exporter, &format!("{base}/stats"));
        let users: Vec<&str> = stats["user_stats"]
            .as_array()
            .expect("user_stats")
            .iter()
            .filter_map(|u| u["user_name"].as_str())
            .collect();
        assert!(!users.contains(&"own_mon"), "{tenant}: {stats}");
        // Two collections later, with the API's connections idle in its pool.
        let collected = exporter.metrics();
        let seen = |m: &crate::common::Metrics| {
            m.get(
                "dbsession_last_collect_success_timestamp_seconds",
                &[("target", tenant)],
            )
        };
        let before = seen(&collected);
        exporter.wait_for_metrics("two more collections", Duration::from_secs(10), |m| {
            seen(m)
                .zip(before)
                .is_some_and(|(now, then)| now >= then + 0.9)
        });
        let m = exporter.metrics();
        assert_eq!(
            m.get(
                "dbsession_user_sessions",
                &[("target", tenant), ("tenant", tenant), ("user", "own_mon")]
            ),
            None,
            "{tenant}: the exporter's own connections are counted"
        );
    }
}
