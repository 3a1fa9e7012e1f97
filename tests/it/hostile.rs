//! One client cannot blind the exporter: a hostile client on 127.0.0.2 tries each way
//! of holding the server (bodies announced and withheld, pipelined requests whose
//! answers it never reads, idle and half-sent connections, more connections than its
//! share, a flood of wrong passwords) while a scraper on 127.0.0.1 times its scrapes.
//! Each test also checks that the server closes the hostile connections by itself.

use crate::common::{connect_from, http_get, Exporter};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const HOSTILE: &str = "127.0.0.2";
/// What the scraper must get its answer within, whatever the hostile client does.
const SCRAPE_BOUND: Duration = Duration::from_secs(2);

/// An exporter whose one target never answers (no database is needed to be
/// scraped), with the given session API settings and flags.
fn exporter(passthrough: &str, flags: &[&str]) -> Exporter {
    exporter_as(passthrough, flags, &[])
}

/// A configuration of one target that never answers, with `passthrough`.
fn config(passthrough: &str) -> String {
    let silent = crate::common::free_port();
    format!(
        "global:\n  collect_interval: 1s\n  collect_timeout: 500ms\n{passthrough}targets:\n  - name: m\n    kind: mysql\n    address: 127.0.0.1:{silent}\n    user: u\n"
    )
}

/// [`exporter`], waited for with `credentials`.
fn exporter_as(passthrough: &str, flags: &[&str], credentials: &[(&str, &str)]) -> Exporter {
    let exporter = Exporter::start_with(&config(passthrough), flags);
    let addr = exporter.addr.clone();
    exporter.wait_until(
        "the first collection ended",
        Duration::from_secs(10),
        || http_get(&addr, "/-/ready", credentials).is_some_and(|(status, _, _)| status == 200),
    );
    exporter
}

/// Times `count` scrapes from 127.0.0.1, one every 200 ms; each must be answered
/// 200 within [`SCRAPE_BOUND`]. Returns the slowest.
fn scrapes_stay_answered(exporter: &Exporter, count: usize, headers: &[(&str, &str)]) -> Duration {
    let mut slowest = Duration::ZERO;
    for i in 0..count {
        let started = Instant::now();
        let answer = http_get(&exporter.addr, "/metrics", headers);
        let took = started.elapsed();
        assert_eq!(
            answer.as_ref().map(|(status, _, _)| *status),
            Some(200),
            "scrape {i} was not answered (after {took:?})\n{}",
            exporter.log()
        );
        assert!(
            took < SCRAPE_BOUND,
            "scrape {i} took {took:?} while a hostile client held connections"
        );
        slowest = slowest.max(took);
        std::thread::sleep(Duration::from_millis(200));
    }
    slowest
}

/// Reads what the server sends until it closes the connection (end of file or a
/// reset), for at most `limit`; true when it closed. The bytes read are bounded too.
fn closed_by_server(stream: &mut TcpStream, limit: Duration) -> bool {
    let started = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0usize;
    while started.elapsed() < limit && total < 512 * 1024 * 1024 {
        stream
            .set_read_timeout(Some(Duration::from_millis(250)))
            .expect("read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => total += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

/// The status of what the server answered first on `stream`, within `limit`
/// (0: nothing).
fn first_status(stream: &mut TcpStream, limit: Duration) -> u16 {
    stream.set_read_timeout(Some(limit)).expect("read timeout");
    let mut head = [0u8; 12];
    let mut got = 0;
    while got < head.len() {
        match stream.read(&mut head[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    String::from_utf8_lossy(&head[..got])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

const DELETE_WITHHELD: &str = "DELETE /api/v1/tenant/m/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 65536\r\n";

/// The issue's own attack: `--web.max-connections 16`, every connection a DELETE
/// that announces 64 KiB and sends none of it. With the API off, and with it on
/// without credentials, the answer comes at once (the route and the credentials are
/// checked before any body is read); with credentials, at --web.body-timeout.
/// Scrapes from another address are answered throughout, and the connections past
/// the client's share (8 of 16) are refused at once.
#[test]
fn withheld_bodies_do_not_blind_scrapes() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "hostile-test-token-0123456789").unwrap();
    // request_timeout shorter than the body's: the withheld body must get its own
    // deadline (408), not the database's (503).
    let api_on = format!(
        "passthrough:\n  enabled: true\n  allow_kill: true\n  request_timeout: 1s\n  bearer_token_file: {}\n",
        token.display()
    );
    for (what, passthrough, credentials, answered) in [
        ("the API off", "", "", 404),
        ("no credentials", api_on.as_str(), "", 401),
        (
            "credentials",
            api_on.as_str(),
            "Authorization: Bearer hostile-test-token-0123456789\r\n",
            408,
        ),
    ] {
        let exporter = exporter(
            passthrough,
            &["--web.max-connections=16", "--web.body-timeout=1500ms"],
        );
        let mut held: Vec<TcpStream> = (0..16)
            .map(|_| {
                let mut stream = connect_from(HOSTILE, &exporter.addr);
                let _ = write!(stream, "{DELETE_WITHHELD}{credentials}\r\n");
                stream
            })
            .collect();
        let slowest = scrapes_stay_answered(&exporter, 10, &[]);
        let statuses: Vec<u16> = held
            .iter_mut()
            .map(|stream| first_status(stream, Duration::from_secs(5)))
            .collect();
        let refused = statuses.iter().filter(|s| **s == 503).count();
        let in_share = statuses.iter().filter(|s| **s == answered).count();
        assert_eq!(
            refused + in_share,
            16,
            "{what}: each connection answered {answered}, or 503 past the share: {statuses:?}"
        );
        if answered == 408 {
            // Held until the body timeout: exactly the share got in.
            assert_eq!(refused, 8, "{what}: past the share of 8: {statuses:?}");
        } else {
            // Answered at once, so each freed its place before the next came.
            assert!(in_share >= 8, "{what}: {statuses:?}");
        }
        for (i, stream) in held.iter_mut().enumerate() {
            assert!(
                closed_by_server(stream, Duration::from_secs(5)),
                "{what}: connection {i} is still open"
            );
        }
        eprintln!("{what}: slowest scrape {slowest:?}, hostile answered {statuses:?}");
    }
}

/// A client that pipelines requests and never reads the answers: its writes stop
/// being taken, the server's write deadline closes its connections, and scrapes from
/// another address are answered throughout.
#[test]
fn unread_pipelined_answers_do_not_blind_scrapes() {
    let exporter = exporter("", &["--web.max-connections=16", "--web.write-timeout=1s"]);
    let request = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(200);
    let writers: Vec<std::thread::JoinHandle<TcpStream>> = (0..8)
        .map(|_| {
            let mut stream = connect_from(HOSTILE, &exporter.addr);
            let request = request.clone();
            std::thread::spawn(move || {
                stream
                    .set_write_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                // At most 200,000 requests, until the server stops taking them.
                for _ in 0..1000 {
                    if stream.write_all(request.as_bytes()).is_err() {
                        break;
                    }
                }
                stream
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    scrapes_stay_answered(&exporter, 10, &[]);
    for (i, writer) in writers.into_iter().enumerate() {
        let mut stream = writer.join().expect("the writer");
        assert!(
            closed_by_server(&mut stream, Duration::from_secs(20)),
            "pipelining connection {i} is still open"
        );
    }
    scrapes_stay_answered(&exporter, 2, &[]);
}

/// Idle keep-alive connections and half-sent headers, from one address, up to its
/// share and past it: scrapes from another address are answered (well before the
/// header timeout would free a slot, so only the share can explain it), and the
/// server closes each held connection at --web.header-timeout.
#[test]
fn idle_and_half_sent_connections_do_not_blind_scrapes() {
    let exporter = exporter("", &["--web.max-connections=16", "--web.header-timeout=5s"]);
    let mut held = Vec::new();
    for i in 0..16 {
        let mut stream = connect_from(HOSTILE, &exporter.addr);
        match i % 3 {
            // Idle from the start.
            0 => {}
            // Half a request.
            1 => stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: 1")
                .unwrap(),
            // One answered request, then idle on keep-alive.
            _ => {
                stream
                    .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    .unwrap();
            }
        }
        held.push(stream);
    }
    scrapes_stay_answered(&exporter, 5, &[]);
    // Past the share of 8: answered 503 at once (the answered keep-alive requests
    // got their 200 first).
    let refused = held
        .iter_mut()
        .map(|stream| first_status(stream, Duration::from_millis(500)))
        .filter(|status| *status == 503)
        .count();
    assert_eq!(refused, 8, "past the share");
    let started = Instant::now();
    for (i, stream) in held.iter_mut().enumerate() {
        assert!(
            closed_by_server(stream, Duration::from_secs(10)),
            "held connection {i} is still open after {:?}",
            started.elapsed()
        );
    }
    // Its share is free again.
    let mut again = connect_from(HOSTILE, &exporter.addr);
    again
        .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(first_status(&mut again, Duration::from_secs(5)), 200);
}

/// TLS handshakes go one at a time per client: a client on 127.0.0.2 that starts
/// handshakes and stalls them (a record header, then nothing) holds only its own
/// line and share, a scraper on 127.0.0.1 completes its handshake and its scrape,
/// and the stalled connections are closed at --web.header-timeout.
#[test]
fn stalled_tls_handshakes_do_not_blind_scrapes() {
    use crate::web::{curl, web_yml, Pki};
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let web = web_yml(&pki, dir.path(), "", "tls-pass");
    let exporter = Exporter::start_with(
        &config(""),
        &[
            &format!("--web.config.file={}", web.display()),
            "--web.max-connections=16",
            "--web.header-timeout=3s",
        ],
    );
    let mut held: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut stream = connect_from(HOSTILE, &exporter.addr);
            let _ = stream.write_all(&[0x16, 0x03, 0x01]);
            stream
        })
        .collect();
    let url = format!("https://{}/metrics", exporter.addr);
    let ca = pki.path("ca.pem").display().to_string();
    for i in 0..3 {
        let asked = Instant::now();
        let answer = curl(&url, &["--cacert", &ca, "-u", "alice:tls-pass"]);
        let took = asked.elapsed();
        assert_eq!(answer.map(|(status, _)| status), Ok(200), "scrape {i}");
        assert!(took < SCRAPE_BOUND, "scrape {i} took {took:?}");
    }
    for (i, stream) in held.iter_mut().enumerate() {
        assert!(
            closed_by_server(stream, Duration::from_secs(8)),
            "stalled handshake {i} is still open"
        );
    }
}

/// CPU seconds (user and system) the process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // The fields after the command name (which may hold spaces) start after ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // USER_HZ is 100 on every Linux this runs on (getconf CLK_TCK).
    ticks / 100.0
}

/// A flood of wrong basic-auth passwords (bcrypt at cost 10, a new password each
/// time, 16 at once from 127.0.0.2; then from 8 addresses, each hanging up while its
/// check runs) costs the exporter about one core, and scrapes
/// with credentials accepted before are answered within 1 s during it. Credentials
/// never seen before wait for one of the flood's checks at most (a client has one
/// check in the common line at a time). The same wrong password again costs no
/// bcrypt (failures are remembered).
#[test]
fn a_password_flood_costs_one_core_and_never_delays_a_good_scrape() {
    let dir = tempfile::tempdir().unwrap();
    let web = crate::common::basic_auth_users(
        dir.path(),
        &[("alice", "right-pass"), ("bob", "bobs-pass")],
        10,
    );
    let good = ("Authorization", "Basic YWxpY2U6cmlnaHQtcGFzcw==");
    let exporter = exporter_as(
        "",
        &[&format!("--web.config.file={}", web.display())],
        &[good],
    );
    // Accepted once, then answered without bcrypt.
    assert_eq!(
        http_get(&exporter.addr, "/metrics", &[good]).map(|(s, _, _)| s),
        Some(200)
    );
    let flood = Flood::start(&exporter.addr, &[HOSTILE; 16], None);
    std::thread::sleep(Duration::from_secs(1));
    let (cpu_before, started) = (cpu_seconds(exporter.pid()), Instant::now());
    let mut slowest = Duration::ZERO;
    for i in 0..25 {
        let asked = Instant::now();
        let status = http_get(&exporter.addr, "/metrics", &[good]).map(|(s, _, _)| s);
        let took = asked.elapsed();
        assert_eq!(status, Some(200), "good scrape {i} during the flood");
        assert!(
            took < Duration::from_secs(1),
            "good scrape {i} took {took:?}"
        );
        slowest = slowest.max(took);
        std::thread::sleep(Duration::from_millis(200));
    }
    let cores = (cpu_seconds(exporter.pid()) - cpu_before) / started.elapsed().as_secs_f64();
    // bob's first scrape: one bcrypt of the flood's at most before its own.
    let asked = Instant::now();
    let first = http_get(
        &exporter.addr,
        "/metrics",
        &[(
            "Authorization",
            &format!("Basic {}", base64_of("bob:bobs-pass")),
        )],
    )
    .map(|(s, _, _)| s);
    let first_took = asked.elapsed();
    assert_eq!(first, Some(200), "bob's first scrape during the flood");
    assert!(
        first_took < Duration::from_secs(2),
        "new credentials waited {first_took:?} behind the flood"
    );
    let tried = flood.stop();
    eprintln!(
        "flood: {tried} wrong passwords, {cores:.2} cores, slowest good scrape {slowest:?}, \
         new credentials answered in {first_took:?}"
    );
    assert!(tried >= 10, "the flood did run ({tried} attempts)");
    assert!(
        cores < 1.3,
        "the flood cost {cores:.2} cores: bcrypt must run one at a time"
    );

    // Clients that hang up while their check runs (each from an address of its own,
    // so that its check comes at once): bcrypt runs on after a hang-up, and the
    // next may start only when it ends, or each hang-up would start another.
    let sources: Vec<String> = (3..11).map(|last| format!("127.0.0.{last}")).collect();
    let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
    let flood = Flood::start(&exporter.addr, &sources, Some(Duration::from_millis(30)));
    std::thread::sleep(Duration::from_secs(1));
    let (cpu_before, started) = (cpu_seconds(exporter.pid()), Instant::now());
    std::thread::sleep(Duration::from_secs(4));
    let cores = (cpu_seconds(exporter.pid()) - cpu_before) / started.elapsed().as_secs_f64();
    let tried = flood.stop();
    eprintln!("flood of hang-ups: {tried} wrong passwords, {cores:.2} cores");
    assert!(tried >= 40, "the hang-ups did run ({tried})");
    assert!(
        cores < 1.3,
        "hang-ups cost {cores:.2} cores: a check must keep its turn until bcrypt ends"
    );

    // The same wrong password, again and again: one bcrypt, then remembered.
    let wrong = format!("Basic {}", base64_of("alice:the-same-guess"));
    let cpu_before = cpu_seconds(exporter.pid());
    for _ in 0..40 {
        let status =
            http_get(&exporter.addr, "/metrics", &[("Authorization", &wrong)]).map(|(s, _, _)| s);
        assert_eq!(status, Some(401));
    }
    let spent = cpu_seconds(exporter.pid()) - cpu_before;
    // One bcrypt at cost 10 is about 0.05 s here; 40 would be 2 s.
    assert!(
        spent < 0.6,
        "40 repeats of one wrong password cost {spent:.2} CPU seconds: failures are not remembered"
    );
}

/// Threads sending wrong basic-auth passwords to /metrics, a new one each time, one
/// thread per source address given; each waits for its answer, or hangs up after
/// `hang_up`.
struct Flood {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    attempts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Flood {
    fn start(addr: &str, sources: &[&str], hang_up: Option<Duration>) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let attempts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads = sources
            .iter()
            .enumerate()
            .map(|(thread, source)| {
                let (addr, source) = (addr.to_string(), source.to_string());
                let (stop, attempts) = (stop.clone(), attempts.clone());
                std::thread::spawn(move || {
                    for n in 0..10_000 {
                        if stop.load(Relaxed) {
                            break;
                        }
                        let credentials = base64_of(&format!("alice:guess-{thread}-{n}"));
                        let mut stream = connect_from(&source, &addr);
                        let _ = write!(
                            stream,
                            "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {credentials}\r\nConnection: close\r\n\r\n"
                        );
                        match hang_up {
                            None => {
                                let _ = first_status(&mut stream, Duration::from_secs(30));
                            }
                            Some(after) => std::thread::sleep(after),
                        }
                        attempts.fetch_add(1, Relaxed);
                    }
                })
            })
            .collect();
        Self {
            stop,
            attempts,
            threads,
        }
    }

    /// Stops the threads; the attempts they made.
    fn stop(self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
        self.attempts.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Standard base64, for basic auth headers.
fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
