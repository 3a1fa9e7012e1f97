//! Load while faults are injected: 64 keep-alive clients scrape /metrics for 60 s
//! while a database is killed and restarted, another never answers, a third refuses
//! the password, and a reload removes a target. Every answer must be a 200 with a
//! whole body, and no connection may be dropped. (Latency under this load is a
//! timing goal: bench/, not here.)

use crate::common::{Exporter, PrivateMariadb, Servers};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 64;
const SECONDS: u64 = 60;

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    not_ok: AtomicU64,
    broken: AtomicU64,
}

/// One keep-alive client: GET /metrics until `stop`, reading each whole answer.
fn client(addr: String, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let Ok(stream) = TcpStream::connect(&addr) else {
        tally.broken.fetch_add(1, Ordering::Relaxed);
        return;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    // Bounded by `stop` and by a request cap, whichever comes first.
    for _ in 0..10_000_000u64 {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if writer
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: load\r\n\r\n")
            .is_err()
        {
            tally.broken.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut status_line = String::new();
        if reader.read_line(&mut status_line).unwrap_or(0) == 0 {
            tally.broken.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut length = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                tally.broken.fetch_add(1, Ordering::Relaxed);
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse::<usize>().ok();
            }
        }
        let Some(length) = length else {
            tally.broken.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            tally.broken.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if status_line.starts_with("HTTP/1.1 200") && body.ends_with(b"\n") {
            tally.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            tally.not_ok.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[test]
fn sixty_four_clients_see_no_error_while_databases_fail() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let password = servers.monitor_password();
    let mut victim = PrivateMariadb::start(&password);
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    silent.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        let end = Instant::now() + Duration::from_secs(SECONDS + 30);
        while Instant::now() < end {
            if let Ok((stream, _)) = silent.accept() {
                held.push(stream);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let pw = servers.monitor_password_file.display();
    let victim_addr = victim.addr();
    let config = |with_silent: bool| {
        let mut text = format!(
            "global:\n  collect_interval: 1s\n  collect_timeout: 800ms\ntargets:\n  - name: seek\n    kind: oceanbase\n    address: {}\n    user: monitor\n    password_file: {pw}\n  - name: victim\n    kind: mysql\n    address: {}\n    user: monitor\n    password_file: {pw}\n  - name: wrongpw\n    kind: mysql\n    address: {}\n    user: monitor\n    password: wrong\n",
            servers.seekdb_addr,
            victim_addr,
            servers.mariadb_addr,
        );
        if with_silent {
            text.push_str(&format!(
                "  - name: mute\n    kind: mysql\n    address: {silent_addr}\n    user: monitor\n"
            ));
        }
        text
    };
    let exporter = Exporter::start_with(&config(true), &["--web.enable-lifecycle"]);
    exporter.wait_for_metrics("the victim is up", Duration::from_secs(30), |m| {
        m.get(
            "dbsession_up",
            &[("target", "victim"), ("tenant", "victim")],
        ) == Some(1.0)
    });

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (addr, stop, tally) = (exporter.addr.clone(), stop.clone(), tally.clone());
            std::thread::spawn(move || client(addr, stop, tally))
        })
        .collect();
    let started = Instant::now();
    let at = |seconds: u64| {
        let wait = Duration::from_secs(seconds).saturating_sub(started.elapsed());
        std::thread::sleep(wait);
    };
    at(10);
    victim.kill();
    at(25);
    victim.restart();
    at(35);
    std::fs::write(exporter.dir.path().join("config.yaml"), config(false)).unwrap();
    assert_eq!(
        crate::common::http_post(&exporter.addr, "/-/reload").map(|(s, _)| s),
        Some(200)
    );
    at(SECONDS);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let (ok, not_ok, broken) = (
        tally.ok.load(Ordering::Relaxed),
        tally.not_ok.load(Ordering::Relaxed),
        tally.broken.load(Ordering::Relaxed),
    );
    assert_eq!(
        (not_ok, broken),
        (0, 0),
        "{ok} good answers, {not_ok} bad, {broken} dropped"
    );
    assert!(ok > 10_000, "only {ok} answers in {SECONDS} s");
    // The victim recovered, and the faults were seen.
    let m = exporter.wait_for_metrics("the victim is back", Duration::from_secs(30), |m| {
        m.get(
            "dbsession_up",
            &[("target", "victim"), ("tenant", "victim")],
        ) == Some(1.0)
    });
    assert!(
        m.get(
            "dbsession_collect_errors_total",
            &[("target", "victim"), ("reason", "connect")]
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    assert!(!m.text.contains("target=\"mute\""));
}
