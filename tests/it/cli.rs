//! The real binary: flags, config errors, HTTP endpoints, formats, shutdown, secrets.

use crate::common::{Exporter, Servers};
use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn exporter_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_session_exporter"))
}

#[test]
fn a_bad_config_exits_2_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.yaml");
    std::fs::write(
        &config,
        "global:\n  collect_interval: 5x\ntargets:\n  - name: a\n    kind: mysql\n    address: nowhere\n    user: m\n    password: sentinel-SECRET-1\n",
    )
    .unwrap();
    let out = exporter_cmd()
        .arg(format!("--config.file={}", config.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let path = config.display();
    assert!(
        stderr.contains(&format!(
            "{path}:2: global.collect_interval: `5x` has no unit"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{path}:6: targets[0].address: `nowhere` has no port"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("sentinel-SECRET-1"), "{stderr}");

    let out = exporter_cmd()
        .arg("--config.file=/nonexistent/config.yaml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("cannot read the config file /nonexistent/config.yaml"));
}

/// Flags that would open a way around a limit are refused at start, each naming what
/// to change: a telemetry path under /api/ (whose requests skip basic auth, the
/// session API checking its own), timeouts out of range, a share of no connection,
/// and an `access` entry naming a credential that does not exist.
#[test]
fn flags_and_grants_that_open_a_hole_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "obshell-pw").unwrap();
    // Exit 2, and what stderr says.
    let refused = |config_text: &str, arg: &str| -> String {
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, config_text).unwrap();
        let out = exporter_cmd()
            .arg(format!("--config.file={}", config.display()))
            .arg(arg)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{arg}: {stderr}");
        stderr
    };
    let targets = "targets:\n  - name: a\n    kind: mysql\n    address: 127.0.0.1:1\n    user: m\n";
    for (flag, said) in [
        (
            "--web.telemetry-path=/api/metrics",
            "/api/ belongs to the session API",
        ),
        (
            "--web.telemetry-path=/api",
            "/api/ belongs to the session API",
        ),
        ("--web.write-timeout=0s", "use a duration from 100ms to 10m"),
        (
            "--web.header-timeout=1h",
            "use a duration from 100ms to 10m",
        ),
        ("--web.body-timeout=soon", "--web.body-timeout"),
        (
            "--web.max-connections-per-client=0",
            "--web.max-connections-per-client",
        ),
    ] {
        let stderr = refused(targets, flag);
        assert!(stderr.contains(said), "{flag}: {stderr}");
    }
    let stderr = refused(
        &format!("passthrough:\n  enabled: true\n  insecure_no_auth: true\n  access:\n    - users: [bob]\n      tenants: [\"[\"]\n{targets}"),
        "--config.check",
    );
    for said in [
        "passthrough.access[0].tenants[0]: `[` is not a glob",
        "insecure_no_auth serves requests without any",
    ] {
        assert!(stderr.contains(said), "{said}: {stderr}");
    }
    let stderr = refused(
        &format!("passthrough:\n  enabled: true\n  obshell_auth:\n    password_file: pw\n  access:\n    - users: [bob]\n{targets}"),
        "--config.check",
    );
    assert!(
        stderr.contains("passthrough.access[0].users: `bob` is not a basic_auth_users entry"),
        "{stderr}"
    );
}

#[test]
fn version_help_and_config_check() {
    let out = exporter_cmd().arg("--version").output().unwrap();
    assert!(out.status.success());
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.starts_with(&format!("session_exporter {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    assert!(version.contains("rustc"), "{version}");

    let out = exporter_cmd().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config.file",
        "--web.listen-address",
        "--web.telemetry-path",
        "--log.level",
        "--log.format",
        "SESSION_EXPORTER_CONFIG_FILE",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }

    let out = exporter_cmd()
        .args([
            "--config.check",
            "--config.file",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yaml"),
        ])
        .env("SEEKDB_PASSWORD", "x")
        .output()
        .unwrap();
    // The example names password and token files that do not exist here: exactly
    // those fail.
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("password_file: cannot read").count(),
        4,
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("token_file: cannot read").count(),
        1,
        "{stderr}"
    );
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("config.example.yaml:"))
            .count(),
        5,
        "{stderr}"
    );
}

#[test]
fn generates_the_man_page_and_completions_and_survives_a_closed_pipe() {
    for (what, starts) in [
        ("man", ".ie \\n(.g .ds Aq \\(aq"),
        ("bash", "_session_exporter() {"),
        ("zsh", "#compdef session_exporter"),
        ("fish", "complete -c session_exporter"),
    ] {
        let out = exporter_cmd()
            .arg(format!("--generate={what}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{what}: {out:?}");
        // roff writes a hyphen as \-.
        let text = String::from_utf8_lossy(&out.stdout).replace("\\-", "-");
        assert!(text.starts_with(starts), "{what}:\n{text}");
        // Generated from the flags themselves: every flag is in each of them.
        for flag in [
            "config.file",
            "web.listen-address",
            "log.format",
            "total-shards",
        ] {
            assert!(text.contains(flag), "{what} lacks {flag}");
        }
    }
    let out = exporter_cmd().arg("--generate=pdf").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    // A reader that goes away: a message and exit 1, not a panic.
    let mut child = exporter_cmd()
        .arg("--generate=man")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    if !out.status.success() {
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("cannot write to standard output"),
            "{stderr}"
        );
    }
}

/// A database that accepts TCP and never says a word.
struct SilentServer {
    addr: String,
    _listener: std::thread::JoinHandle<()>,
}

impl SilentServer {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handle = std::thread::spawn(move || {
            // Holds every connection open; bounded, so the thread ends on its own.
            let mut held = Vec::new();
            for stream in listener.incoming().take(64) {
                match stream {
                    Ok(s) => held.push(s),
                    Err(_) => break,
                }
            }
        });
        Self {
            addr,
            _listener: handle,
        }
    }
}

#[test]
fn readiness_waits_for_a_first_try_and_a_silent_database_times_out() {
    let silent = SilentServer::start();
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 3s\n  collect_timeout: 1500ms\ntargets:\n  - name: mute\n    kind: mysql\n    address: {}\n    user: monitor\n",
        silent.addr
    ));
    // Not ready while the first cycle hangs; the answer names the pending target.
    exporter.wait_until(
        "/-/ready names the pending target",
        Duration::from_secs(1),
        || {
            let (status, _, body) = exporter.try_get("/-/ready").unwrap();
            assert_eq!(status, 503, "not ready before the first cycle ends");
            String::from_utf8_lossy(&body).contains("pending for mute")
        },
    );
    assert_eq!(exporter.try_get("/-/healthy").unwrap().0, 200);

    exporter.wait_until(
        "ready after the first cycle",
        Duration::from_secs(5),
        || exporter.try_get("/-/ready").is_some_and(|r| r.0 == 200),
    );
    let m = exporter.metrics();
    assert_eq!(
        m.get("dbsession_up", &[("target", "mute"), ("tenant", "mute")]),
        Some(0.0)
    );
    assert_eq!(
        m.get(
            "dbsession_collect_errors_total",
            &[("target", "mute"), ("reason", "timeout")]
        ),
        Some(1.0)
    );
    let took = m
        .get("dbsession_collect_duration_seconds", &[("target", "mute")])
        .unwrap();
    assert!(
        (1.4..3.0).contains(&took),
        "the cycle ended at collect_timeout, took {took}"
    );
}

#[test]
fn sigterm_stops_within_a_second() {
    let silent = SilentServer::start();
    let mut exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 10s\n  collect_timeout: 5s\ntargets:\n  - name: mute\n    kind: mysql\n    address: {}\n    user: monitor\n",
        silent.addr
    ));
    // A cycle is hanging on the silent server while the signal arrives.
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &exporter.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let child = exporter.child();
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
}

/// A second signal does not wait for the graceful shutdown: it exits at once, with 1.
#[test]
fn a_second_signal_exits_at_once() {
    let silent = SilentServer::start();
    let mut exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 10s\n  collect_timeout: 5s\npassthrough:\n  enabled: true\n  insecure_no_auth: true\n  request_timeout: 5s\ntargets:\n  - name: mute\n    kind: mysql\n    address: {}\n    user: monitor\n",
        silent.addr
    ));
    // A request held by the silent database keeps the graceful shutdown draining.
    exporter.wait_until("the target is published", Duration::from_secs(10), || {
        exporter
            .try_get("/probe?target=mute")
            .is_some_and(|(status, _, _)| status == 200)
    });
    let addr = exporter.addr.clone();
    let held = std::thread::spawn(move || {
        let _ = crate::common::http_get(&addr, "/api/v1/tenant/mute/sessions/stats", &[]);
    });
    std::thread::sleep(Duration::from_millis(500));
    let signal = |pid: u32| {
        assert!(Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success());
    };
    let pid = exporter.pid();
    signal(pid);
    std::thread::sleep(Duration::from_millis(50));
    signal(pid);
    let child = exporter.child();
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "still running after two signals"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(
        exit.code(),
        Some(1),
        "the second signal did not cut the drain short after {:?}\n{}",
        started.elapsed(),
        exporter.log()
    );
    assert!(
        exporter.log().contains("second signal"),
        "{}",
        exporter.log()
    );
    let _ = held.join();
}

#[test]
fn exposition_formats_pass_promtool_and_never_show_a_secret() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let sentinel = "sentinel-PW-4711";
    let exporter = Exporter::start(&format!(
        r#"global:
  collect_interval: 500ms
  collect_timeout: 400ms
targets:
  - name: maria
    kind: mysql
    address: {maria}
    user: monitor
    password_file: {pw}
    labels: {{env: "quote\"d"}}
  - name: seek
    kind: oceanbase
    address: {seek}
    user: monitor
    password_file: {pw}
  - name: wrongpw
    kind: mysql
    address: {maria}
    user: monitor
    password: {sentinel}
"#,
        maria = servers.mariadb_addr,
        seek = servers.seekdb_addr,
        pw = servers.monitor_password_file.display(),
    ));
    let m = exporter.wait_for_metrics("all three targets tried", Duration::from_secs(30), |m| {
        m.get("dbsession_up", &[("target", "seek"), ("tenant", "seek")]) == Some(1.0)
            && m.get(
                "dbsession_collect_errors_total",
                &[("target", "wrongpw"), ("reason", "auth")],
            )
            .is_some_and(|v| v >= 2.0)
    });
    assert_eq!(
        m.get(
            "dbsession_up",
            &[
                ("target", "maria"),
                ("tenant", "maria"),
                ("env", "quote\\\"d")
            ]
        ),
        Some(1.0)
    );

    // Classic text for clients that do not ask for OpenMetrics, checked by promtool.
    let (status, head, classic) = exporter.try_get("/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    crate::common::promtool_check_metrics(&classic);

    // OpenMetrics for Prometheus, which asks for it.
    let (_, head, om) = exporter
        .try_get_with(
            "/metrics",
            &[(
                "Accept",
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            )],
        )
        .unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    let om = String::from_utf8(om).unwrap();
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# TYPE dbsession_collect_errors counter\n"));

    // gzip when asked: the same text, compressed.
    let (_, head, gz) = exporter
        .try_get_with("/metrics", &[("Accept-Encoding", "gzip")])
        .unwrap();
    assert!(
        head.to_ascii_lowercase().contains("content-encoding: gzip"),
        "{head}"
    );
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut unzipped)
        .unwrap();
    assert!(unzipped.starts_with("# HELP dbsession_up "), "{unzipped}");

    // The landing page names every target and its state.
    let (status, _, page) = exporter.try_get("/").unwrap();
    let page = String::from_utf8_lossy(&page).into_owned();
    assert_eq!(status, 200);
    for fragment in [
        "maria",
        "seek",
        "wrongpw",
        "down (auth)",
        "check user and password",
    ] {
        assert!(
            page.contains(fragment),
            "landing page lacks {fragment}:\n{page}"
        );
    }

    // The password is nowhere: not in logs (debug level), metrics, or the page.
    let log = exporter.log();
    assert!(log.contains("reason=auth"), "{log}");
    for (place, text) in [
        ("log", &log),
        ("metrics", &m.text),
        ("openmetrics", &om),
        ("landing page", &page),
    ] {
        assert!(
            !text.contains(sentinel),
            "the password appears in the {place}"
        );
    }
}

#[test]
fn json_logs_and_a_custom_telemetry_path() {
    let silent = SilentServer::start();
    let exporter = Exporter::start_with(
        &format!(
            "global:\n  collect_interval: 2s\n  collect_timeout: 200ms\ntargets:\n  - name: mute\n    kind: mysql\n    address: {}\n    user: monitor\n",
            silent.addr
        ),
        &["--log.format=json", "--web.telemetry-path=/custom"],
    );
    exporter.wait_until("the first cycle is logged", Duration::from_secs(5), || {
        exporter.log().contains("collection failed")
    });
    assert_eq!(exporter.try_get("/custom").unwrap().0, 200);
    assert_eq!(exporter.try_get("/metrics").unwrap().0, 404);
    for line in exporter.log().lines() {
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "not JSON: {line}"
        );
    }
}

/// Prometheus negotiates OpenMetrics; a real Prometheus scraping us proves that output
/// parses (promtool only reads the classic format).
#[test]
fn a_real_prometheus_scrapes_the_openmetrics_output() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\ntargets:\n  - name: maria\n    kind: mysql\n    address: {}\n    user: monitor\n    password_file: {}\n",
        servers.mariadb_addr,
        servers.monitor_password_file.display()
    ));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 500ms\nscrape_configs:\n  - job_name: se\n    static_configs:\n      - targets: ['{}']\n",
            exporter.addr
        ),
    )
    .unwrap();
    let prom_addr = format!("127.0.0.1:{}", crate::common::free_port());
    let mut prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={prom_addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (scripts/install-deps.sh installs Debian's prometheus)");
    let query = |q: &str| {
        crate::common::http_get(&prom_addr, &format!("/api/v1/query?query={q}"), &[])
            .map(|(_, _, body)| String::from_utf8_lossy(&body).into_owned())
            .unwrap_or_default()
    };
    let started = Instant::now();
    let mut last;
    let ok = loop {
        // `up` 1 means Prometheus parsed the scrape; the series prove what it read.
        let up = query("up");
        last = format!(
            "{up}\n{}\n{}",
            query("dbsession_sessions"),
            query("dbsession_collect_errors_total")
        );
        if up.contains(r#""job":"se""#)
            && up.contains(r#","1"]"#)
            && last.contains(r#""__name__":"dbsession_sessions""#)
            && last.contains(r#""__name__":"dbsession_collect_errors_total""#)
        {
            break true;
        }
        if started.elapsed() > Duration::from_secs(20) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    assert!(ok, "Prometheus did not ingest the exposition:\n{last}");
}
