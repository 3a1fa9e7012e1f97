//! Operating the exporter: hot reload (SIGHUP and POST /-/reload), `/probe`, shards.

use crate::common::{http_get, Exporter, Metrics, Servers};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn post(addr: &str, path: &str) -> (u16, String) {
    crate::common::http_post(addr, path).expect("the exporter answers POST")
}

fn mysql_target(name: &str, servers: &Servers, extra: &str) -> String {
    format!(
        "  - name: {name}\n    kind: mysql\n    address: {}\n    user: monitor\n    password_file: {}\n{extra}",
        servers.mariadb_addr,
        servers.monitor_password_file.display()
    )
}

const HEAD: &str = "global:\n  collect_interval: 300ms\n  collect_timeout: 250ms\ntargets:\n";

#[test]
fn reload_applies_changes_refuses_bad_files_and_loses_no_scrape() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let seek = format!(
        "  - name: seek\n    kind: oceanbase\n    address: {}\n    user: monitor\n    password_file: {}\n",
        servers.seekdb_addr,
        servers.monitor_password_file.display()
    );
    let exporter = Exporter::start_with(
        &format!("{HEAD}{}{seek}", mysql_target("maria", &servers, "")),
        &["--web.enable-lifecycle"],
    );
    let config = exporter.dir.path().join("config.yaml");
    let maria = [("target", "maria"), ("tenant", "maria")];
    exporter.wait_for_metrics("both targets are up", Duration::from_secs(30), |m| {
        m.get("dbsession_up", &maria) == Some(1.0)
            && m.get("dbsession_up", &[("target", "seek"), ("tenant", "seek")]) == Some(1.0)
    });

    // A scrape loop runs through every reload below.
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = {
        let (stop, addr) = (stop.clone(), exporter.addr.clone());
        std::thread::spawn(move || {
            let (mut scrapes, mut failures, mut gaps) = (0, Vec::new(), 0);
            while !stop.load(Ordering::Relaxed) && scrapes < 5_000 {
                scrapes += 1;
                match http_get(&addr, "/metrics", &[]) {
                    Some((200, _, body)) => {
                        let m = Metrics::parse(&String::from_utf8_lossy(&body));
                        if m.get(
                            "dbsession_sessions",
                            &[("target", "maria"), ("tenant", "maria")],
                        )
                        .is_none()
                        {
                            gaps += 1;
                        }
                    }
                    other => failures.push(format!("{:?}", other.map(|o| o.0))),
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (scrapes, failures, gaps)
        })
    };

    // Remove seek, add maria2; maria is unchanged.
    std::fs::write(
        &config,
        format!(
            "{HEAD}{}{}",
            mysql_target("maria", &servers, ""),
            mysql_target("maria2", &servers, "    labels: {copy: a}\n")
        ),
    )
    .unwrap();
    let (status, body) = post(&exporter.addr, "/-/reload");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("1 started, 0 restarted, 1 stopped, 1 unchanged"),
        "{body}"
    );
    exporter.wait_for_metrics(
        "maria2 collected, seek gone",
        Duration::from_secs(10),
        |m| {
            m.get(
                "dbsession_up",
                &[("target", "maria2"), ("tenant", "maria2"), ("copy", "a")],
            ) == Some(1.0)
                && m.matching("dbsession_up", &[("target", "seek")]).is_empty()
                && m.matching("dbsession_collect_errors_total", &[("target", "seek")])
                    .is_empty()
        },
    );

    // A bad file is refused whole; the running configuration stays.
    std::fs::write(
        &config,
        format!("{HEAD}  - name: broken\n    kind: mysql\n    address: nowhere\n    user: m\n"),
    )
    .unwrap();
    let (status, body) = post(&exporter.addr, "/-/reload");
    assert_eq!(status, 500);
    assert!(
        body.contains("targets[0].address: `nowhere` has no port"),
        "{body}"
    );
    let m = exporter.wait_for_metrics(
        "the failed reload is exported",
        Duration::from_secs(5),
        |m| {
            m.get("dbsession_config_last_reload_successful", &[])
                .is_some_and(|v| v == 0.0)
        },
    );
    assert_eq!(m.get("dbsession_up", &maria), Some(1.0));
    assert_eq!(
        m.get(
            "dbsession_up",
            &[("target", "maria2"), ("tenant", "maria2"), ("copy", "a")]
        ),
        Some(1.0)
    );
    let failed_at = m
        .get(
            "dbsession_config_last_reload_success_timestamp_seconds",
            &[],
        )
        .unwrap();

    // SIGHUP reloads too; a changed target restarts with its new settings.
    std::fs::write(
        &config,
        format!(
            "{HEAD}{}{}",
            mysql_target("maria", &servers, ""),
            mysql_target("maria2", &servers, "    labels: {copy: b}\n")
        ),
    )
    .unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &exporter.pid().to_string()])
        .status()
        .unwrap()
        .success());
    let m = exporter.wait_for_metrics("the SIGHUP reload applied", Duration::from_secs(10), |m| {
        m.get("dbsession_config_last_reload_successful", &[]) == Some(1.0)
            && m.get(
                "dbsession_up",
                &[("target", "maria2"), ("tenant", "maria2"), ("copy", "b")],
            ) == Some(1.0)
    });
    assert!(
        m.get(
            "dbsession_config_last_reload_success_timestamp_seconds",
            &[]
        )
        .unwrap()
            > failed_at
    );
    assert!(m.matching("dbsession_up", &[("copy", "a")]).is_empty());

    stop.store(true, Ordering::Relaxed);
    let (scrapes, failures, gaps) = scraper.join().unwrap();
    assert!(scrapes > 20, "the scrape loop ran ({scrapes})");
    assert!(
        failures.is_empty(),
        "failed scrapes during reloads: {failures:?}"
    );
    assert_eq!(
        gaps, 0,
        "the unchanged target's series were missing in {gaps} of {scrapes} scrapes"
    );
    let log = exporter.log();
    assert!(log.contains("configuration reload refused"), "{log}");
}

#[test]
fn probe_serves_one_target_and_lifecycle_is_off_by_default() {
    let exporter = Exporter::start(&format!(
        "{HEAD}  - name: a\n    kind: mysql\n    address: 127.0.0.1:1\n    user: m\n  - name: b\n    kind: mysql\n    address: 127.0.0.1:1\n    user: m\n"
    ));
    exporter.wait_until("both tried", Duration::from_secs(5), || {
        exporter.try_get("/-/ready").is_some_and(|r| r.0 == 200)
    });
    let (status, _, body) = exporter.try_get("/probe?target=b").unwrap();
    assert_eq!(status, 200);
    let m = Metrics::parse(&String::from_utf8(body).unwrap());
    assert_eq!(
        m.get("dbsession_up", &[("target", "b"), ("tenant", "b")]),
        Some(0.0)
    );
    assert!(m.matching("dbsession_up", &[("target", "a")]).is_empty());

    let (status, _, body) = exporter.try_get("/probe?target=zzz").unwrap();
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body)
        .contains("unknown target `zzz`: this exporter collects a, b"));
    assert_eq!(exporter.try_get("/probe").unwrap().0, 400);

    let (status, body) = post(&exporter.addr, "/-/reload");
    assert_eq!(status, 403);
    assert!(body.contains("--web.enable-lifecycle"));
}

#[test]
fn shards_cover_every_target_exactly_once() {
    let names: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
    let targets: String = names
        .iter()
        .map(|n| format!("  - name: {n}\n    kind: mysql\n    address: 127.0.0.1:1\n    user: m\n"))
        .collect();
    let config = format!("{HEAD}{targets}");
    let shards: Vec<Exporter> = (0..3)
        .map(|i| Exporter::start_with(&config, &[&format!("--shard={i}"), "--total-shards=3"]))
        .collect();
    let mut owners = vec![0; names.len()];
    for exporter in &shards {
        exporter.wait_until("the shard is ready", Duration::from_secs(5), || {
            exporter.try_get("/-/ready").is_some_and(|r| r.0 == 200)
        });
        let m = exporter.metrics();
        let mine: Vec<usize> = (0..names.len())
            .filter(|&i| {
                !m.matching("dbsession_up", &[("target", &names[i])])
                    .is_empty()
            })
            .collect();
        assert!(
            !mine.is_empty() && mine.len() < names.len(),
            "each shard takes a part"
        );
        for i in mine {
            owners[i] += 1;
        }
    }
    assert_eq!(
        owners,
        vec![1; names.len()],
        "every target in exactly one shard"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_session_exporter"))
        .args(["--shard=3", "--total-shards=3", "--config.file=/dev/null"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("the shard must be from 0 to total-shards - 1"));
}
