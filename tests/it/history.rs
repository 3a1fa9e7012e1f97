//! The session history's store under faults, with the real binary on a real server:
//! a `kill -9` while it records loses no cycle written before it, a store that is no
//! store is moved aside, kept, and replaced, and a full disk pauses recording until
//! there is room again, while collection goes on.

use crate::common::{Exporter, Servers};
use session_exporter::history::store::Store;
use std::path::Path;
use std::time::Duration;

/// A MariaDB target collected twice a second, recording into `store`.
fn config(servers: &Servers, store: &Path) -> String {
    format!(
        "global:\n  collect_interval: 500ms\n  collect_timeout: 400ms\ntargets:\n  - name: m\n    kind: mysql\n    address: {}\n    user: monitor\n    password_file: {}\nhistory:\n  path: {}\n",
        servers.mariadb_addr,
        servers.monitor_password_file.display(),
        store.display()
    )
}

/// The times of every cycle of tenant `m` recorded in `store`, oldest first.
fn cycles(store: &Path) -> Vec<i64> {
    let Ok(store) = Store::open_read(store) else {
        return Vec::new();
    };
    let Ok(steps) = store.timeline("m", "m", (0, i64::MAX / 2, i64::MAX / 4)) else {
        return Vec::new();
    };
    let cycles: u64 = steps.iter().map(|s| s.cycles).sum();
    let mut times = Vec::new();
    let mut at = i64::MAX / 2;
    // Walk back moment by moment: each cycle reads back whole.
    for _ in 0..cycles {
        match store.moment("m", "m", at) {
            Ok(Some(moment)) => {
                times.push(moment.at_ms);
                at = moment.at_ms - 1;
            }
            _ => break,
        }
    }
    times.reverse();
    times
}

#[test]
fn a_kill_9_loses_no_recorded_cycle() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("history.db");
    let config = config(&servers, &store);
    let mut exporter = Exporter::start(&config);
    exporter.wait_until("a few cycles are recorded", Duration::from_secs(30), || {
        cycles(&store).len() >= 4
    });
    exporter.child().kill().expect("SIGKILL");
    exporter.child().wait().unwrap();
    let before = cycles(&store);
    assert!(before.len() >= 4, "{before:?}");

    let restarted = Exporter::start(&config);
    restarted.wait_until(
        "the restarted exporter records on",
        Duration::from_secs(30),
        || cycles(&store).len() >= before.len() + 2,
    );
    let after = cycles(&store);
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "every earlier cycle reads back"
    );
    let m = restarted.metrics();
    assert_eq!(m.get("dbsession_history_recording", &[]), Some(1.0));
    assert_eq!(
        m.get(
            "dbsession_history_errors_total",
            &[("reason", "unreadable")]
        ),
        Some(0.0),
        "the store was not taken for a corrupt one:\n{}",
        restarted.log()
    );
}

#[test]
fn a_store_that_is_no_store_is_moved_aside_and_collection_goes_on() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("history.db");
    let junk = b"not a database, whatever it once was".repeat(200);
    std::fs::write(&store, &junk).unwrap();
    let exporter = Exporter::start(&config(&servers, &store));
    let m = exporter.wait_for_metrics("collected and recording", Duration::from_secs(30), |m| {
        m.get("dbsession_up", &[("target", "m"), ("tenant", "m")]) == Some(1.0)
            && m.get("dbsession_history_recording", &[]) == Some(1.0)
    });
    assert_eq!(
        m.get(
            "dbsession_history_errors_total",
            &[("reason", "unreadable")]
        ),
        Some(1.0)
    );
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("history.db.unreadable-") && !n.ends_with("-wal"))
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), junk, "kept as it was");
    let log = exporter.log();
    assert!(
        log.contains(&aside[0].display().to_string()) && log.contains("cannot be read"),
        "the error names both paths:\n{log}"
    );
    exporter.wait_until("the new store records", Duration::from_secs(30), || {
        !cycles(&store).is_empty()
    });
}

/// A full disk, for real: the exporter in a user and mount namespace of its own
/// (`unshare`, no privilege needed) records into a 2 MiB tmpfs, which is then
/// filled up from inside the namespace (`nsenter`). Recording pauses and says so,
/// collection and `/metrics` go on; once the filler is gone, recording resumes by
/// itself and the session API reads a cycle recorded after it.
#[test]
fn a_full_disk_pauses_recording_and_it_resumes_by_itself() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let mount = tempfile::tempdir().unwrap();
    let dir = mount.path().display().to_string();
    let probe = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg("mount -t tmpfs -o size=2m none \"$0\"")
        .arg(&dir)
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        let why = format!("unshare cannot mount a tmpfs here: {probe:?}");
        assert!(std::env::var("CI").ok().as_deref() != Some("true"), "{why}");
        eprintln!("skipped: {why}");
        return;
    }
    let config = config(&servers, &mount.path().join("history.db"))
        + "passthrough:\n  enabled: true\n  insecure_no_auth: true\n";
    let exporter = Exporter::start_wrapped(
        &config,
        &[
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            "mount -t tmpfs -o size=2m none \"$0\" && exec \"$@\"",
            &dir,
        ],
    );
    // Run in the exporter's namespaces: what the tmpfs is to it.
    let inside = |script: &str| {
        let status = std::process::Command::new("nsenter")
            .args(["--target", &exporter.pid().to_string()])
            .args(["--user", "--mount", "--preserve-credentials", "sh", "-c"])
            .arg(script)
            .arg(&dir)
            .status()
            .expect("nsenter");
        assert!(status.success(), "{script}: {status}");
    };
    let up = [("target", "m"), ("tenant", "m")];
    exporter.wait_for_metrics("recording", Duration::from_secs(30), |m| {
        m.get("dbsession_up", &up) == Some(1.0)
            && m.get("dbsession_history_recording", &[]) == Some(1.0)
    });
    inside("cat /dev/zero > \"$0/filler\" 2>/dev/null; test -s \"$0/filler\"");
    let full = exporter.wait_for_metrics("recording paused", Duration::from_secs(30), |m| {
        m.get("dbsession_history_recording", &[]) == Some(0.0)
    });
    assert!(
        full.get("dbsession_history_errors_total", &[("reason", "disk_full")])
            .is_some_and(|n| n >= 1.0),
        "{}",
        exporter.log()
    );
    assert!(
        exporter.log().contains("the disk is full"),
        "{}",
        exporter.log()
    );
    // Collection goes on meanwhile.
    let success = |m: &crate::common::Metrics| {
        m.get(
            "dbsession_last_collect_success_timestamp_seconds",
            &[("target", "m")],
        )
        .unwrap_or(0.0)
    };
    let before = success(&full);
    exporter.wait_for_metrics("collection goes on", Duration::from_secs(10), |m| {
        m.get("dbsession_up", &up) == Some(1.0) && success(m) > before
    });
    inside("rm \"$0/filler\"");
    let freed = now_ms();
    exporter.wait_for_metrics(
        "recording resumes",
        Duration::from_secs(session_exporter::history::recorder::RETRY.as_secs() + 20),
        |m| m.get("dbsession_history_recording", &[]) == Some(1.0),
    );
    let (status, _, body) = crate::common::http_get(
        &exporter.addr,
        &format!("/api/v1/tenant/m/sessions?at={}", now_ms()),
        &[],
    )
    .expect("the session API");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{body}");
    let recorded = body["data"]["page"]["recorded_at"].as_str().unwrap();
    let recorded_ms = session_exporter::timefmt::parse_rfc3339_millis(recorded).unwrap();
    assert!(
        recorded_ms >= freed,
        "{recorded} is a cycle after the room was made"
    );
}

/// A flood of the landing page (whose sparklines read the store) holds nothing the
/// session API's history reads need: during 40 clients' back-to-back `GET /`, the
/// timeline answers, and so does every landing page, with its sparkline from the
/// cache.
#[test]
fn a_flood_of_landing_pages_does_not_hold_the_history_reads() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = config(&servers, &dir.path().join("history.db"))
        + "passthrough:\n  enabled: true\n  insecure_no_auth: true\n";
    let exporter = Exporter::start(&config);
    exporter.wait_for_metrics("recording", Duration::from_secs(30), |m| {
        m.get("dbsession_history_recording", &[]) == Some(1.0)
            && m.get("dbsession_history_bytes", &[])
                .is_some_and(|b| b > 0.0)
    });
    let addr = exporter.addr.clone();
    // The first landing page waits for the first read; later ones are answered from
    // what it read (a page asked for while a first read runs says "not read yet").
    let (status, _, first) = crate::common::http_get(&addr, "/", &[]).expect("the landing page");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&first).contains("<svg class=\"spark\""));
    let flood: Vec<_> = (0..40)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                (0..10)
                    .map(|_| {
                        crate::common::http_get(&addr, "/", &[])
                            .map(|(status, _, body)| {
                                status == 200
                                    && String::from_utf8_lossy(&body)
                                        .contains("<svg class=\"spark\"")
                            })
                            .unwrap_or(false)
                    })
                    .filter(|ok| !ok)
                    .count()
            })
        })
        .collect();
    let path = format!(
        "/api/v1/tenant/m/history?from={}&to={}",
        now_ms() - 600_000,
        now_ms()
    );
    for _ in 0..5 {
        let (status, _, body) = crate::common::http_get(&addr, &path, &[]).expect("the timeline");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
    let failed: usize = flood.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(
        failed, 0,
        "landing pages without their sparkline or refused"
    );
}

fn now_ms() -> i64 {
    session_exporter::history::unix_millis(std::time::SystemTime::now())
}
