//! What the exporter exposes, and to whom: a sentinel password and token never appear
//! in any output (logs at debug level, pages, metrics, API errors, config errors);
//! authentication cannot be bypassed by path or method tricks; a client that trickles
//! its headers is cut off.

use crate::common::{http_get, Exporter, Servers};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

const SENTINEL: &str = "Sentinel-Secret-7391";

#[test]
fn a_sentinel_secret_never_appears_anywhere() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{SENTINEL}-token")).unwrap();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let exporter = Exporter::start_with(
        &format!(
            "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\npassthrough:\n  enabled: true\n  request_timeout: 2s\n  bearer_token_file: {}\ntargets:\n  - name: wrongpw\n    kind: mysql\n    address: {}\n    user: monitor\n    password: {SENTINEL}\n  - name: hang\n    kind: mysql\n    address: {silent_addr}\n    user: monitor\n    password: {SENTINEL}\n  - name: nowhere\n    kind: oceanbase\n    address: no-such-host.invalid:2881\n    user: monitor\n    password: {SENTINEL}\n",
            token.display(),
            servers.mariadb_addr,
        ),
        &[],
    );
    exporter.wait_for_metrics(
        "every target failed a few times",
        Duration::from_secs(30),
        |m| {
            ["wrongpw", "hang", "nowhere"].iter().all(|t| {
                m.matching("dbsession_collect_errors_total", &[("target", t)])
                    .iter()
                    .map(|(_, v)| v)
                    .sum::<f64>()
                    >= 3.0
            })
        },
    );
    let bearer = format!("Bearer {SENTINEL}-token");
    // The hanging target's detail answers 503 at request_timeout (2 s), well within
    // the client's 5 s: equal, a loaded machine lost the answer to the client's timeout.
    let mut outputs = vec![("log", exporter.log())];
    for path in [
        "/",
        "/metrics",
        "/probe?target=wrongpw",
        "/api/v1/tenant/wrongpw/sessions",
        "/api/v1/tenant/wrongpw/sessions/stats",
        "/api/v1/tenant/hang/sessions/1",
    ] {
        let (_, head, body) =
            http_get(&exporter.addr, path, &[("Authorization", &bearer)]).expect(path);
        outputs.push((path, format!("{head}\n{}", String::from_utf8_lossy(&body))));
    }
    // A bad configuration holding the secret: the error names the key, not the value.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        format!("targets:\n  - name: x\n    kind: mysql\n    address: nohost\n    user: u\n    password: {SENTINEL}\n    password_file: /nonexistent\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_session_exporter"))
        .arg(format!("--config.file={}", bad.display()))
        .arg("--config.check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    outputs.push((
        "config error",
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ));
    for (what, text) in &outputs {
        assert!(!text.is_empty(), "{what} is empty");
        assert!(!text.contains(SENTINEL), "{what} shows the secret:\n{text}");
    }
    // The API's failures did reach the database and say why, without the secret.
    assert!(outputs
        .iter()
        .any(|(what, text)| what.contains("stats") && text.contains("503")));
}

/// Sends raw bytes as a request; returns the status line's code (0: no answer).
fn raw(addr: &str, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[test]
fn authentication_cannot_be_bypassed() {
    let dir = tempfile::tempdir().unwrap();
    let web = crate::common::basic_auth_users(dir.path(), &[("alice", "right-pass")], 4);
    let port = crate::common::free_port();
    let exporter = Exporter::start_with(
        &format!("passthrough:\n  enabled: true\ntargets:\n  - name: m\n    kind: mysql\n    address: 127.0.0.1:{port}\n    user: u\n"),
        &[&format!("--web.config.file={}", web.display())],
    );
    let addr = exporter.addr.clone();
    exporter.wait_until("the exporter answers", Duration::from_secs(10), || {
        http_get(&addr, "/-/healthy", &[]).is_some()
    });
    let huge = "x".repeat(64 * 1024);
    let attempts: Vec<(String, Vec<u8>)> = [
        "GET /metrics HTTP/1.1",
        "GET //metrics HTTP/1.1",
        "GET /metrics/ HTTP/1.1",
        "GET /%6Detrics HTTP/1.1",
        "GET /./metrics HTTP/1.1",
        "GET /api/../metrics HTTP/1.1",
        "GET /METRICS HTTP/1.1",
        "HEAD /metrics HTTP/1.1",
        "OPTIONS /metrics HTTP/1.1",
        "GET http://127.0.0.1/metrics HTTP/1.1",
        "GET /metrics?x=/../ HTTP/1.1",
        "GET /probe?target=m HTTP/1.1",
        "GET / HTTP/1.1",
        "GET /api/v1/tenant/m/sessions HTTP/1.1",
        "GET /api//v1/tenant/m/sessions HTTP/1.1",
        "GET /api/v1/tenant/m/sessions%2Fstats HTTP/1.1",
        "POST /-/reload HTTP/1.1",
    ]
    .iter()
    .map(|line| (line.to_string(), format!("{line}\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()))
    .chain([
        (
            "huge header".to_string(),
            format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {huge}\r\nConnection: close\r\n\r\n").into_bytes(),
        ),
        (
            "bearer on /metrics".to_string(),
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "basic with a wrong password".to_string(),
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWxpY2U6d3Jvbmc=\r\nConnection: close\r\n\r\n".to_vec(),
        ),
    ])
    .collect();
    for (what, request) in &attempts {
        let (status, text) = raw(&addr, request);
        assert!(
            !(200..300).contains(&status),
            "{what}: answered {status} without credentials:\n{}",
            text.chars().take(400).collect::<String>()
        );
        assert!(!text.contains("dbsession_"), "{what}: leaked metrics");
    }
    // The right credentials work, so the refusals above are not a broken server.
    let (status, _) = raw(
        &addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWxpY2U6cmlnaHQtcGFzcw==\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
}

#[test]
fn a_client_trickling_its_headers_is_cut_off() {
    let port = crate::common::free_port();
    let exporter = Exporter::start(&format!(
        "targets:\n  - name: m\n    kind: mysql\n    address: 127.0.0.1:{port}\n    user: u\n"
    ));
    let addr = exporter.addr.clone();
    exporter.wait_until("the exporter answers", Duration::from_secs(10), || {
        http_get(&addr, "/-/healthy", &[]).is_some()
    });
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    // One header byte a second, for at most 20 s: the server must hang up first.
    let mut cut = false;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_secs(1));
        if slow.write_all(b"X").is_err() {
            cut = true;
            break;
        }
        // A closed connection shows on read once the peer has reset it.
        slow.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 256];
        let closed =
            matches!(slow.read(&mut buf), Ok(0)) || matches!(slow.read(&mut buf), Ok(n) if n > 0);
        slow.set_nonblocking(false).unwrap();
        if closed {
            cut = true;
            break;
        }
    }
    assert!(
        cut,
        "a client trickling headers kept its connection for 20 s"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "cut before the header timeout"
    );
    // Meanwhile and after, scrapes are served.
    assert_eq!(
        http_get(&addr, "/-/healthy", &[]).map(|(s, _, _)| s),
        Some(200)
    );
}

/// With every connection slot taken by clients trickling their headers (two clients,
/// each holding its share of half), a scrape waits (the cap holds) and is served once
/// the header timeout frees a slot (the slow clients cannot keep the server).
#[test]
fn slow_clients_cannot_hold_the_connection_cap() {
    let port = crate::common::free_port();
    let exporter = Exporter::start_with(
        &format!(
            "targets:\n  - name: m\n    kind: mysql\n    address: 127.0.0.1:{port}\n    user: u\n"
        ),
        &["--web.max-connections=4"],
    );
    let addr = exporter.addr.clone();
    exporter.wait_until("the exporter answers", Duration::from_secs(10), || {
        http_get(&addr, "/-/healthy", &[]).is_some()
    });
    let slow: Vec<TcpStream> = ["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"]
        .into_iter()
        .map(|source| {
            let mut s = crate::common::connect_from(source, &addr);
            s.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut scrape = TcpStream::connect(&addr).unwrap();
    scrape
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    scrape
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut first = [0u8; 12];
    assert!(
        scrape.read(&mut first).is_err(),
        "served while every slot was taken: the cap does not hold"
    );
    scrape
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = scrape.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "not served after the slow clients timed out: {text:?}"
    );
    drop(slow);
}
