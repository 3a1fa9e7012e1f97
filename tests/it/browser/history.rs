//! The session history on the page: a row-lock pile-up on MariaDB is recorded, then
//! resolved. The timeline is drawn; a click on the pile-up's moment shows the waiter
//! under its blocker and the recorded SQL (probes among it) as text, says that it
//! is history and offers no kill; "Live" goes back to now, where the pile-up is
//! gone; a link with `&at=` (Grafana's) opens the moment too. The landing page
//! shows the target's sessions now and its last hour.

use super::*;
use session_exporter::history::store::Store;

/// The latest cycle recorded of `tenant` in which `waiter` waits on `blocker`: its
/// time (Unix ms), or None.
fn recorded_wait(store: &std::path::Path, tenant: &str, waiter: u64, blocker: u64) -> Option<i64> {
    let moment = Store::open_read(store)
        .ok()?
        .moment(tenant, tenant, i64::MAX)
        .ok()??;
    moment
        .kept
        .iter()
        .any(|k| k.id == waiter && k.blocked_by == Some(blocker))
        .then_some(moment.at_ms)
}

#[test]
fn a_moment_of_the_past_through_the_page() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let Some(tools) = tools() else {
        return;
    };
    let addr = servers.mariadb_addr.clone();
    let (lock, xss) = ("page_h_lock", "page_h_x<img src=x onerror=window.__xss=6>");
    mariadb_users_and_table(&servers, "page_h_db", &[lock, xss]);
    let target = format!(
        "{}    filter: {{users: {{allow: ['{lock}', '{xss}']}}}}\nhistory:\n  path: history.db\n",
        mysql_target(
            "page_hist",
            &addr,
            "monitor",
            &servers.monitor_password_file
        )
    );
    let (exporter, _dir) = start("", &target);
    wait_up(&exporter, "page_hist");

    // The pile-up: a blocker idle in its transaction, a waiter on its row, and a
    // statement that would run script if its text were parsed as HTML.
    let RowLockPileup {
        blocker,
        blocker_id,
        waiter,
    } = row_lock_pileup(&servers, "page_h_db", lock, ("127.0.0.151", "127.0.0.152"));
    let blocker_id = u64::from(blocker_id);
    let kill = servers.mariadb_killer();
    let probe_sql = "SELECT '<img src=x onerror=alert(1)>', SLEEP(300)";
    let probe = Blocked::start(
        connect_as(&addr, xss, PASSWORD, "127.0.0.153"),
        &[],
        probe_sql,
        Box::new(kill.clone()),
    );
    let waiter_id = u64::from(waiter.id);
    let store = exporter.dir.path().join("history.db");
    let mut first = None;
    exporter.wait_until(
        "the history records the waiter on its blocker",
        Duration::from_secs(30),
        || {
            first = recorded_wait(&store, "page_hist", waiter_id, blocker_id);
            first.is_some()
        },
    );
    let first = first.unwrap();
    // Held for several cycles, so a click's pixel lands inside it.
    exporter.wait_until("the pile-up lasts", Duration::from_secs(30), || {
        recorded_wait(&store, "page_hist", waiter_id, blocker_id)
            .is_some_and(|at| at >= first + 8000)
    });
    let last = recorded_wait(&store, "page_hist", waiter_id, blocker_id).unwrap();
    let moment = (first + last) / 2;
    // The landing page: the target's sessions now (the blocker, the waiter and the
    // probe; two active, one waiting) and its last hour from the history.
    let landing = String::from_utf8(exporter.try_get("/").expect("landing page").2).unwrap();
    let row = landing
        .split("<tr>")
        .find(|r| r.contains("<td>page_hist</td>"))
        .unwrap_or_else(|| panic!("{landing}"));
    assert!(
        row.contains(r#"<td class="num">3</td><td class="num">2</td><td class="num">1</td>"#),
        "{row}"
    );
    assert!(row.contains(r#"<svg class="spark""#), "{row}");
    assert!(
        row.contains("<polyline") || row.contains("<circle"),
        "{row}"
    );
    drop(probe);
    drop(waiter);
    drop(blocker);
    exporter.wait_for_metrics("the pile-up is over", Duration::from_secs(30), |m| {
        let labels = [("target", "page_hist"), ("tenant", "page_hist")];
        m.get("dbsession_lock_waiting_sessions", &labels) == Some(0.0)
            && m.get("dbsession_sessions", &labels) == Some(0.0)
    });

    let page = "/sessions?tenant=page_hist";
    let a = drive(
        &tools,
        &exporter,
        json!([
            {"do": "open", "path": page},
            {"do": "signin", "token": TOKEN},
            {"do": "window", "seconds": 900},
            {"do": "pick", "at": moment},
            {"do": "probe"},
            {"do": "axe"},
            {"do": "screenshot", "name": "history-1280x800"},
            {"do": "story", "id": waiter_id},
            {"do": "live"},
            {"do": "open", "path": format!("{page}&at={moment}")},
            {"do": "timeline"},
            {"do": "state"},
            {"do": "console"},
            // The answers of 404 below are errors in the console, as they should be.
            {"do": "open", "path": format!("{page}&at=2000-01-01T00:00:00Z")},
            {"do": "timeline"},
            {"do": "state"},
            {"do": "open", "path": format!("{page}&at=not-a-moment")},
            {"do": "state", "wait": true},
        ]),
    );
    // The timeline: 15 minutes up to now, its series named.
    let t = &a[2];
    assert!(t["canvas"].as_u64().unwrap() >= 1, "{t}");
    let span = t["to"].as_f64().unwrap() - t["from"].as_f64().unwrap();
    assert!((span - 900_000.0).abs() < 2.0, "{t}");
    assert!(t["steps"].as_u64().unwrap() >= 200, "{t}");
    assert!(!t["classes"].as_array().unwrap().is_empty(), "{t}");
    let legend = t["legend"].to_string();
    assert!(legend.contains("lock waiters") && legend.contains("idle in a transaction"));
    assert_eq!(t["note"], "", "{t}");

    // The moment picked on the chart: said to be history, the waiter under its
    // blocker, the probe's text shown as text, and nothing to kill.
    let picked = &a[3];
    assert!(
        picked["moment"].as_str().unwrap().starts_with("History:"),
        "{picked}"
    );
    assert!(picked["url"].as_str().unwrap().contains("at="), "{picked}");
    assert_eq!(picked["actions_shown"], false, "{picked}");
    let tree = picked["tree"].as_array().unwrap();
    let root_node = tree
        .iter()
        .find(|n| n["id"] == blocker_id)
        .unwrap_or_else(|| panic!("the blocker is a root: {picked}"));
    assert_eq!(root_node["waiters"][0]["id"], waiter_id, "{picked}");
    let rows = picked["rows"].as_array().unwrap();
    let probed = rows
        .iter()
        .find(|r| r["user"] == xss)
        .unwrap_or_else(|| panic!("the probe's session: {picked}"));
    assert_eq!(probed["sql"], probe_sql, "{probed}");
    assert!(rows.iter().all(|r| r["checkbox"] == false), "{picked}");
    assert_inert(&a[4]);
    assert_accessible(&a[5]);
    // The waiter's story: waiting on the blocker, with its statement.
    let story = &a[7];
    assert_eq!(story["kill_shown"], false, "{story}");
    let waiting = story["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r[5].as_str()
                .unwrap()
                .ends_with(&format!("on {blocker_id}"))
        })
        .unwrap_or_else(|| panic!("a run waiting on the blocker: {story}"));
    assert!(
        waiting[6].as_str().unwrap().contains("UPDATE page_h_db.t"),
        "{story}"
    );

    // Live: now, where nobody waits.
    let live = &a[8];
    assert_eq!(live["moment"], Value::Null, "{live}");
    assert!(!live["url"].as_str().unwrap().contains("at="), "{live}");
    assert!(
        live["tree"].as_array().unwrap().is_empty(),
        "the pile-up is over: {live}"
    );
    // Grafana's link to the moment opens it as well.
    let linked = &a[11];
    assert!(linked["moment"].is_string(), "{linked}");
    let tree = linked["tree"].as_array().unwrap();
    assert!(
        tree.iter()
            .any(|n| n["id"] == blocker_id && n["waiters"][0]["id"] == waiter_id),
        "{linked}"
    );
    assert_console_clean(&a[12]);
    // Before anything was recorded: said, and nothing of now shown under the banner.
    let before = &a[15];
    assert!(
        before["notice"]
            .as_str()
            .unwrap()
            .starts_with("Nothing was recorded at or before"),
        "{before}"
    );
    assert!(before["rows"].as_array().unwrap().is_empty(), "{before}");
    assert!(before["moment"].is_string(), "{before}");
    // Not a moment: said, and the page shows now.
    let bad = &a[17];
    assert!(
        bad["notice"].as_str().unwrap().contains("is not a moment"),
        "{bad}"
    );
    assert_eq!(bad["moment"], Value::Null, "{bad}");
}
