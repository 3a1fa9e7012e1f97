//! Why sessions pile up, for real: a session that updates a row and then idles (idle
//! in transaction, its user and client named, its age growing), a second one blocked
//! on that row (waiting, its wait time, the first named as the top blocker with one
//! waiter), and on MariaDB an `ALTER TABLE` waiting behind the open transaction
//! (state `Waiting for table metadata lock`). Every value is exact: the target counts
//! only the tests' own two users, so other tests' sessions on the shared servers do
//! not change them.

use crate::common::{connect_as, Blocked, Exporter, Metrics, Servers};
use mysql::prelude::Queryable;
use session_exporter::history::store::Store;
use session_exporter::history::Moment;
use std::time::Duration;

const PASSWORD: &str = "it-pileup-pw";

fn connect(addr: &str, user: &str, from: &str) -> mysql::Conn {
    connect_as(addr, user, PASSWORD, from)
}

fn exporter_for(target_yaml: &str) -> Exporter {
    exporter_recording_into(target_yaml, "history.db")
}

/// An exporter of the target, recording its history into `store`.
fn exporter_recording_into(target_yaml: &str, store: &str) -> Exporter {
    Exporter::start(&format!(
        "global:\n  collect_interval: 1s\n  collect_timeout: 900ms\ntargets:\n  - name: t\n{target_yaml}    filter: {{users: {{allow: [it_holder, it_waiter]}}}}\nhistory:\n  path: {store}\npassthrough:\n  enabled: true\n  insecure_no_auth: true\n"
    ))
}

/// After the pile-up resolved: the exporter is killed, another starts on the same
/// store, and the pile-up's moment still answers with the waiter under the holder.
fn assert_a_restart_keeps_it(
    mut exporter: Exporter,
    target_yaml: &str,
    tenant: &str,
    moment: &Moment,
) {
    exporter.child().kill().expect("SIGKILL");
    exporter.child().wait().unwrap();
    let store = exporter.dir.path().join("history.db");
    let restarted = exporter_recording_into(target_yaml, &store.display().to_string());
    let path = format!(
        "/api/v1/tenant/{tenant}/sessions/pileup?at={}",
        moment.at_ms
    );
    // The tenant is known once the restarted exporter's first cycle collected it.
    let mut answer = None;
    restarted.wait_until(
        "the restarted exporter answers",
        Duration::from_secs(20),
        || {
            answer = crate::common::http_get(&restarted.addr, &path, &[]);
            answer.as_ref().is_some_and(|(status, _, _)| *status == 200)
        },
    );
    let body: serde_json::Value = serde_json::from_slice(&answer.unwrap().2).expect("JSON");
    let waiter = moment.kept.iter().find(|k| k.lock_wait.is_some()).unwrap();
    assert_eq!(body["data"]["lock_waits"][0]["waiter"], waiter.id, "{body}");
    assert_eq!(
        body["data"]["lock_waits"][0]["blocker"], moment.kept[0].id,
        "{body}"
    );
}

/// The last cycle of `tenant` the exporter recorded in its session history.
fn recorded(exporter: &Exporter, tenant: &str) -> Option<Moment> {
    let store = Store::open_read(&exporter.dir.path().join("history.db")).ok()?;
    store.moment("t", tenant, i64::MAX).ok()?
}

/// Waits until the session history has recorded the pile-up: the holder, idle in
/// its transaction with one waiter, kept first, and the waiter waiting for a lock
/// on the holder. Returns that cycle.
fn assert_recorded_pileup(exporter: &Exporter, tenant: &str, holder_id: &str) -> Moment {
    let holder_id: u64 = holder_id.parse().unwrap();
    let mut last = None;
    exporter.wait_until(
        "the history records the holder and its waiter",
        Duration::from_secs(20),
        || {
            last = recorded(exporter, tenant);
            last.as_ref().is_some_and(|m| {
                m.kept.iter().any(|k| k.id == holder_id && k.waiters == 1)
                    && m.kept.iter().any(|k| k.blocked_by == Some(holder_id))
            })
        },
    );
    let moment = last.unwrap();
    let holder = &moment.kept[0];
    assert_eq!(holder.id, holder_id, "the blocker first: {:?}", moment.kept);
    assert_eq!((holder.user.as_str(), holder.active), ("it_holder", false));
    assert!(holder.transaction_age.is_some(), "{holder:?}");
    let waiter = moment.kept.iter().find(|k| k.lock_wait.is_some()).unwrap();
    assert_eq!((waiter.user.as_str(), waiter.active), ("it_waiter", true));
    assert_eq!(waiter.blocked_by, Some(holder_id), "{waiter:?}");
    assert_eq!(moment.lock_waiting, 1);
    moment
}

/// A session as `it_waiter` from `from` that ran `setup`, then a plain SELECT with
/// autocommit off, and idles.
fn read_with_autocommit_off(addr: &str, from: &str, setup: &[&str]) -> mysql::Conn {
    let mut reader = connect(addr, "it_waiter", from);
    for statement in setup.iter().chain(&["SET autocommit = 0"]) {
        reader.query_drop(*statement).expect(statement);
    }
    let _: Vec<(i32, i32)> = reader.query("SELECT id, v FROM it_pileup.r").unwrap();
    reader
}

/// A session as `it_holder` from `from` that ran `setup`, then updated row 1 inside
/// a transaction it leaves open; with its id.
fn hold_a_row_lock(addr: &str, from: &str, setup: &[&str]) -> (mysql::Conn, String) {
    let mut holder = connect(addr, "it_holder", from);
    for statement in setup.iter().chain(&["BEGIN"]) {
        holder.query_drop(*statement).expect(statement);
    }
    holder
        .query_drop("UPDATE it_pileup.r SET v = v + 1 WHERE id = 1")
        .unwrap();
    let id = holder.connection_id().to_string();
    (holder, id)
}

/// Waits until one session has waited for a lock for a second or more, and checks
/// what it and the holder add up to: two transactions, one of them idle (the
/// holder's), and the holder named as the only blocker, with one waiter.
fn assert_one_waits_on_the_holder(
    exporter: &Exporter,
    tenant: &str,
    holder_id: &str,
    holder_ip: &str,
) -> Metrics {
    let labels = [("target", "t"), ("tenant", tenant)];
    let blocked = exporter.wait_for_metrics(
        "one session waits, for a second or more",
        Duration::from_secs(30),
        |m| {
            value(m, "dbsession_lock_waiting_sessions", &labels) == Some(1.0)
                && value(m, "dbsession_max_lock_wait_seconds", &labels).is_some_and(|w| w >= 1.0)
        },
    );
    assert_eq!(
        value(&blocked, "dbsession_transaction_sessions", &labels),
        Some(2.0)
    );
    assert_eq!(
        value(&blocked, "dbsession_idle_in_transaction_sessions", &labels),
        Some(1.0)
    );
    assert_eq!(
        blocked.matching("dbsession_top_blocker_sessions", &[]),
        [(
            format!(
                "dbsession_top_blocker_sessions{{target=\"t\",tenant=\"{tenant}\",rank=\"1\",session_id=\"{holder_id}\",user=\"it_holder\",db=\"__none__\",client_ip=\"{holder_ip}\",lock=\"row\"}}"
            ),
            1.0
        )]
    );
    blocked
}

/// The session API answers from the history: the list at the recorded moment (its
/// cycle named, the holder and the waiter in it, filters applied), the pile-up (the
/// waiter under the holder), the timeline
/// with the waiter in its last steps, and the holder's own story.
fn assert_history_answers(exporter: &Exporter, tenant: &str, holder_id: &str, moment: &Moment) {
    let get = |path: &str| -> serde_json::Value {
        let (status, _, body) = crate::common::http_get(&exporter.addr, path, &[]).expect(path);
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(status, 200, "{path}: {body}");
        body["data"].clone()
    };
    let at = moment.at_ms;
    let list = get(&format!(
        "/api/v1/tenant/{tenant}/sessions?at={at}&sort=time,desc"
    ));
    assert!(list["page"]["recorded_at"].is_string(), "{list}");
    let ids: Vec<String> = list["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].to_string())
        .collect();
    assert!(ids.contains(&holder_id.to_string()), "{list}");
    assert_eq!(ids.len(), moment.kept.len(), "{list}");
    let waiting = get(&format!(
        "/api/v1/tenant/{tenant}/sessions?at={at}&user=it_waiter&active_only=true"
    ));
    assert!(waiting["contents"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["user"] == "it_waiter"));
    // The pile-up at that moment: the waiter under the holder.
    let pileup = get(&format!("/api/v1/tenant/{tenant}/sessions/pileup?at={at}"));
    let waiter = moment.kept.iter().find(|k| k.lock_wait.is_some()).unwrap();
    assert_eq!(pileup["lock_waits"][0]["waiter"], waiter.id, "{pileup}");
    assert_eq!(
        pileup["lock_waits"][0]["blocker"],
        holder_id.parse::<u64>().unwrap(),
        "{pileup}"
    );
    assert!(pileup["recorded_at"].is_string(), "{pileup}");
    let (from, to) = (at - 120_000, at + 1);
    let timeline = get(&format!(
        "/api/v1/tenant/{tenant}/history?from={from}&to={to}&step=10s"
    ));
    let steps = timeline["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 13, "{timeline}");
    assert!(
        steps.iter().any(|s| s["lock_waiting"]["peak"] == 1),
        "{timeline}"
    );
    let story = get(&format!(
        "/api/v1/tenant/{tenant}/sessions/{holder_id}/history?from={from}&to={to}"
    ));
    let samples = story["samples"].as_array().unwrap();
    assert!(!samples.is_empty(), "{story}");
    assert!(samples.iter().all(|s| s["user"] == "it_holder"), "{story}");
    // A moment before anything was recorded is a 404 that says so.
    let (status, _, body) = crate::common::http_get(
        &exporter.addr,
        &format!("/api/v1/tenant/{tenant}/sessions?at=2000-01-01T00:00:00Z"),
        &[],
    )
    .unwrap();
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
}

fn state_labels<'a>(tenant: &'a str, command: &'a str, state: &'a str) -> [(&'a str, &'a str); 4] {
    [
        ("target", "t"),
        ("tenant", tenant),
        ("command", command),
        ("state", state),
    ]
}

fn value(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    m.get(name, labels)
}

#[test]
fn mariadb_idle_in_transaction_lock_waits_and_blockers_are_exact() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let root = |sql: &str| servers.mariadb_root(sql);
    root(&format!(
        "CREATE DATABASE IF NOT EXISTS it_pileup; \
         CREATE OR REPLACE TABLE it_pileup.r (id INT PRIMARY KEY, v INT) ENGINE=InnoDB; \
         INSERT INTO it_pileup.r VALUES (1, 1), (2, 2); \
         CREATE USER IF NOT EXISTS 'it_holder'@'%' IDENTIFIED BY '{PASSWORD}'; \
         CREATE USER IF NOT EXISTS 'it_waiter'@'%' IDENTIFIED BY '{PASSWORD}'; \
         GRANT ALL ON it_pileup.* TO 'it_holder'@'%'; GRANT ALL ON it_pileup.* TO 'it_waiter'@'%';"
    ));
    let addr = servers.mariadb_addr.clone();
    let target = format!(
        "    kind: mysql\n    address: {addr}\n    user: monitor\n    password_file: {}\n",
        servers.monitor_password_file.display()
    );
    let exporter = exporter_for(&target);
    let tenant = [("target", "t"), ("tenant", "t")];

    // A read-only transaction: a plain SELECT with autocommit off opens one in InnoDB.
    let reader = read_with_autocommit_off(&addr, "127.0.0.74", &[]);
    // The holder updates a row and idles inside its transaction.
    let (holder, holder_id) = hold_a_row_lock(&addr, "127.0.0.71", &[]);

    let first = exporter.wait_for_metrics(
        "two sessions idle in a transaction",
        Duration::from_secs(20),
        |m| {
            value(m, "dbsession_idle_in_transaction_sessions", &tenant) == Some(2.0)
                && value(m, "dbsession_max_transaction_age_seconds", &tenant)
                    .is_some_and(|age| age >= 1.0)
        },
    );
    assert_eq!(
        value(&first, "dbsession_transaction_sessions", &tenant),
        Some(2.0)
    );
    let user = |u: &'static str| [("target", "t"), ("tenant", "t"), ("user", u)];
    let client = |c: &'static str| [("target", "t"), ("tenant", "t"), ("client_ip", c)];
    let idle_user = "dbsession_user_idle_in_transaction_sessions";
    let idle_client = "dbsession_client_idle_in_transaction_sessions";
    assert_eq!(value(&first, idle_user, &user("it_holder")), Some(1.0));
    assert_eq!(value(&first, idle_user, &user("it_waiter")), Some(1.0));
    assert_eq!(value(&first, idle_client, &client("127.0.0.71")), Some(1.0));
    assert_eq!(value(&first, idle_client, &client("127.0.0.74")), Some(1.0));
    assert_eq!(
        value(&first, "dbsession_lock_waiting_sessions", &tenant),
        Some(0.0)
    );
    assert_eq!(
        value(&first, "dbsession_max_lock_wait_seconds", &tenant),
        Some(0.0)
    );
    assert!(first
        .matching("dbsession_top_blocker_sessions", &[])
        .is_empty());
    let age = value(&first, "dbsession_max_transaction_age_seconds", &tenant).unwrap();
    let idle = value(&first, "dbsession_max_idle_in_transaction_seconds", &tenant).unwrap();
    exporter.wait_for_metrics("the age grows", Duration::from_secs(20), |m| {
        value(m, "dbsession_max_transaction_age_seconds", &tenant).is_some_and(|a| a >= age + 1.0)
            && value(m, "dbsession_max_idle_in_transaction_seconds", &tenant)
                .is_some_and(|i| i >= idle + 1.0)
    });
    drop(reader);

    // A second session blocks on the holder's row.
    let kill = servers.mariadb_killer();
    let waiter = Blocked::start(
        connect(&addr, "it_waiter", "127.0.0.72"),
        &["SET SESSION innodb_lock_wait_timeout = 120", "BEGIN"],
        "UPDATE it_pileup.r SET v = v + 1 WHERE id = 1",
        Box::new(kill.clone()),
    );
    let blocked = assert_one_waits_on_the_holder(&exporter, "t", &holder_id, "127.0.0.71");
    let moment = assert_recorded_pileup(&exporter, "t", &holder_id);
    assert_eq!(moment.kept[0].client, "127.0.0.71");
    // MariaDB's statement of activity gives the waiter's text.
    let recorded = moment.kept.iter().find(|k| k.lock_wait.is_some()).unwrap();
    assert_eq!(
        recorded.sql_text,
        "UPDATE it_pileup.r SET v = v + 1 WHERE id = 1"
    );
    assert_history_answers(&exporter, "t", &holder_id, &moment);
    let state = |command, state_| state_labels("t", command, state_);
    assert_eq!(
        value(
            &blocked,
            "dbsession_state_sessions",
            &state("Sleep", "__none__")
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &blocked,
            "dbsession_state_sessions",
            &state("Query", "Updating")
        ),
        Some(1.0)
    );

    // DDL waits behind the open transaction for the table's metadata lock.
    let alter = Blocked::start(
        connect(&addr, "it_waiter", "127.0.0.73"),
        &["SET SESSION lock_wait_timeout = 120"],
        "ALTER TABLE it_pileup.r ADD COLUMN w INT",
        Box::new(kill),
    );
    let ddl = exporter.wait_for_metrics(
        "the ALTER waits for the metadata lock",
        Duration::from_secs(20),
        |m| {
            value(
                m,
                "dbsession_state_sessions",
                &state("Query", "Waiting for table metadata lock"),
            ) == Some(1.0)
        },
    );
    assert_eq!(
        value(&ddl, "dbsession_lock_waiting_sessions", &tenant),
        Some(2.0)
    );
    drop(alter);
    drop(waiter);
    drop(holder);
    exporter.wait_for_metrics("all is quiet again", Duration::from_secs(20), |m| {
        value(m, "dbsession_transaction_sessions", &tenant) == Some(0.0)
            && value(m, "dbsession_lock_waiting_sessions", &tenant) == Some(0.0)
            && value(m, "dbsession_max_transaction_age_seconds", &tenant) == Some(0.0)
    });
    assert_a_restart_keeps_it(exporter, &target, "t", &moment);
}

#[test]
fn seekdb_idle_in_transaction_lock_waits_and_blockers_are_exact() {
    let Some(servers) = Servers::get() else {
        return;
    };
    let root = |sql: &str| servers.seekdb_root(sql);
    root("CREATE DATABASE IF NOT EXISTS it_pileup");
    root("DROP TABLE IF EXISTS it_pileup.r");
    root("CREATE TABLE it_pileup.r (id INT PRIMARY KEY, v INT)");
    root("INSERT INTO it_pileup.r VALUES (1, 1), (2, 2)");
    for user in ["it_holder", "it_waiter"] {
        root(&format!(
            "CREATE USER IF NOT EXISTS {user} IDENTIFIED BY '{PASSWORD}'"
        ));
        root(&format!("GRANT ALL ON it_pileup.* TO {user}"));
    }
    let addr = servers.seekdb_addr.clone();
    let target = format!(
        "    kind: oceanbase\n    address: {addr}\n    user: monitor\n    password_file: {}\n    tenant: sys\n",
        servers.monitor_password_file.display()
    );
    let exporter = exporter_for(&target);
    let tenant = [("target", "t"), ("tenant", "sys")];
    // seekdb ends idle and long transactions itself unless told not to.
    let long = "SET SESSION ob_query_timeout = 120000000, ob_trx_timeout = 120000000, \
                ob_trx_idle_timeout = 120000000";

    // A plain SELECT with autocommit off opens no transaction on OceanBase.
    let reader = read_with_autocommit_off(&addr, "127.0.0.84", &[long]);
    let (holder, holder_id) = hold_a_row_lock(&addr, "127.0.0.81", &[long]);

    let first = exporter.wait_for_metrics(
        "the holder idles in its transaction",
        Duration::from_secs(30),
        |m| {
            value(m, "dbsession_idle_in_transaction_sessions", &tenant) == Some(1.0)
                && value(m, "dbsession_max_transaction_age_seconds", &tenant)
                    .is_some_and(|age| age >= 1.0)
        },
    );
    assert_eq!(
        value(&first, "dbsession_transaction_sessions", &tenant),
        Some(1.0),
        "the read-only session holds no transaction"
    );
    let labels =
        |key: &'static str, v: &'static str| [("target", "t"), ("tenant", "sys"), (key, v)];
    assert_eq!(
        value(
            &first,
            "dbsession_user_idle_in_transaction_sessions",
            &labels("user", "it_holder")
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &first,
            "dbsession_client_idle_in_transaction_sessions",
            &labels("client_ip", "127.0.0.81")
        ),
        Some(1.0)
    );
    assert!(first
        .matching(
            "dbsession_user_idle_in_transaction_sessions",
            &[("user", "it_waiter")]
        )
        .is_empty());
    let age = value(&first, "dbsession_max_transaction_age_seconds", &tenant).unwrap();
    exporter.wait_for_metrics("the age grows", Duration::from_secs(20), |m| {
        value(m, "dbsession_max_transaction_age_seconds", &tenant).is_some_and(|a| a >= age + 1.0)
            && value(m, "dbsession_max_idle_in_transaction_seconds", &tenant)
                .is_some_and(|i| i >= age)
    });
    drop(reader);

    let waiter = Blocked::start(
        connect(&addr, "it_waiter", "127.0.0.82"),
        &[long, "BEGIN"],
        "UPDATE it_pileup.r SET v = v + 1 WHERE id = 1",
        Box::new(servers.seekdb_killer()),
    );
    let blocked = assert_one_waits_on_the_holder(&exporter, "sys", &holder_id, "127.0.0.81");
    let moment = assert_recorded_pileup(&exporter, "sys", &holder_id);
    assert_eq!(moment.kept[0].client, "127.0.0.81");
    let recorded = moment.kept.iter().find(|k| k.lock_wait.is_some()).unwrap();
    assert_eq!(
        recorded.sql_text,
        "UPDATE it_pileup.r SET v = v + 1 WHERE id = 1"
    );
    assert_history_answers(&exporter, "sys", &holder_id, &moment);
    let state = |command, state_| state_labels("sys", command, state_);
    assert_eq!(
        value(
            &blocked,
            "dbsession_state_sessions",
            &state("Sleep", "SLEEP")
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &blocked,
            "dbsession_state_sessions",
            &state("Query", "ACTIVE")
        ),
        Some(1.0)
    );
    drop(waiter);
    drop(holder);
    exporter.wait_for_metrics("all is quiet again", Duration::from_secs(30), |m| {
        value(m, "dbsession_transaction_sessions", &tenant) == Some(0.0)
            && value(m, "dbsession_lock_waiting_sessions", &tenant) == Some(0.0)
    });
    assert_a_restart_keeps_it(exporter, &target, "sys", &moment);
}

/// The pile-up's graph as a tree draws it ([`session_exporter::api::Waiter`]), once
/// every one of `waiters` waits: none of them on a cycle, each reaching `holder` by
/// the blockers it is drawn under, the holder itself waiting for none. Returns the
/// waiters' `also_waits_on` lists.
pub fn assert_no_cycle_under_the_holder(
    exporter: &Exporter,
    tenant: &str,
    holder: u64,
    waiters: &[u64],
) -> Vec<Vec<u64>> {
    let path = format!("/api/v1/tenant/{tenant}/sessions/pileup");
    let mut body = serde_json::Value::Null;
    exporter.wait_until("every waiter waits", Duration::from_secs(30), || {
        let Some((200, _, bytes)) = crate::common::http_get(&exporter.addr, &path, &[]) else {
            return false;
        };
        body = serde_json::from_slice(&bytes).expect("JSON");
        let placed = body["data"]["waiters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        waiters
            .iter()
            .all(|id| placed.iter().any(|w| w["id"] == *id))
    });
    let placed = body["data"]["waiters"].as_array().unwrap();
    let under = |id: u64| -> Option<u64> {
        placed
            .iter()
            .find(|w| w["id"] == id)
            .and_then(|w| w["under"].as_u64())
    };
    assert!(placed.iter().all(|w| w["id"] != holder), "{body}");
    let mut also = Vec::new();
    for &waiter in waiters {
        let w = placed.iter().find(|w| w["id"] == waiter).unwrap();
        assert_eq!(w["in_cycle"], false, "no deadlock here: {body}");
        let (mut at, mut steps) = (waiter, 0);
        while let Some(next) = under(at) {
            at = next;
            steps += 1;
            assert!(steps <= waiters.len(), "{body}");
        }
        assert_eq!(at, holder, "{waiter} reaches the holder: {body}");
        also.push(
            w["also_waits_on"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_u64().unwrap())
                .collect(),
        );
    }
    also
}

/// Three sessions update the row an idle transaction holds. InnoDB names, for each
/// later one, the earlier waiters as blockers too: that is no cycle. Each is drawn
/// under the holder, the earlier waiters named beside it.
#[test]
fn mariadb_three_waiters_on_one_row_are_no_cycle() {
    let Some(servers) = Servers::get() else {
        return;
    };
    servers.mariadb_root(&format!(
        "CREATE DATABASE IF NOT EXISTS it_pileup; \
         CREATE OR REPLACE TABLE it_pileup.g (id INT PRIMARY KEY, v INT) ENGINE=InnoDB; \
         INSERT INTO it_pileup.g VALUES (1, 1); \
         CREATE USER IF NOT EXISTS 'it_g_user'@'%' IDENTIFIED BY '{PASSWORD}'; \
         GRANT ALL ON it_pileup.* TO 'it_g_user'@'%';"
    ));
    let addr = servers.mariadb_addr.clone();
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 1s\n  collect_timeout: 900ms\ntargets:\n  - name: g\n    kind: mysql\n    address: {addr}\n    user: monitor\n    password_file: {}\n    filter: {{users: {{allow: [it_g_user]}}}}\npassthrough:\n  enabled: true\n  insecure_no_auth: true\n",
        servers.monitor_password_file.display()
    ));
    let mut holder = connect(&addr, "it_g_user", "127.0.0.75");
    holder.query_drop("BEGIN").unwrap();
    holder
        .query_drop("UPDATE it_pileup.g SET v = v + 1 WHERE id = 1")
        .unwrap();
    let mut blocked = Vec::new();
    let mut ids = Vec::new();
    for from in ["127.0.0.76", "127.0.0.77", "127.0.0.78"] {
        let conn = connect(&addr, "it_g_user", from);
        ids.push(u64::from(conn.connection_id()));
        blocked.push(Blocked::start(
            conn,
            &["SET SESSION innodb_lock_wait_timeout = 120", "BEGIN"],
            "UPDATE it_pileup.g SET v = v + 1 WHERE id = 1",
            Box::new(servers.mariadb_killer()),
        ));
        // In this order: each queues behind the one before.
        std::thread::sleep(Duration::from_millis(300));
    }
    let holder_id = u64::from(holder.connection_id());
    let also = assert_no_cycle_under_the_holder(&exporter, "g", holder_id, &ids);
    assert!(
        also.iter().any(|others| !others.is_empty()),
        "InnoDB names an earlier waiter as a blocker too: {also:?}"
    );
    drop(blocked);
    drop(holder);
}

/// An `ALTER TABLE` queued behind a transaction that read the table, and a reader
/// queued behind the `ALTER`: the processlist shows only "Waiting for table metadata
/// lock". The transaction is named as the holder of both, with `lock="metadata"`,
/// in the metrics and in the pile-up with the table's schema and name.
#[test]
fn mariadb_names_the_metadata_lock_holder() {
    let Some(servers) = Servers::get() else {
        return;
    };
    servers.mariadb_root(&format!(
        "CREATE DATABASE IF NOT EXISTS it_pileup; \
         CREATE OR REPLACE TABLE it_pileup.m (id INT PRIMARY KEY) ENGINE=InnoDB; \
         INSERT INTO it_pileup.m VALUES (1); \
         CREATE USER IF NOT EXISTS 'it_md_user'@'%' IDENTIFIED BY '{PASSWORD}'; \
         GRANT ALL ON it_pileup.* TO 'it_md_user'@'%';"
    ));
    let addr = servers.mariadb_addr.clone();
    let exporter = Exporter::start(&format!(
        "global:\n  collect_interval: 1s\n  collect_timeout: 900ms\ntargets:\n  - name: md\n    kind: mysql\n    address: {addr}\n    user: monitor\n    password_file: {}\n    filter: {{users: {{allow: [it_md_user]}}}}\npassthrough:\n  enabled: true\n  insecure_no_auth: true\n",
        servers.monitor_password_file.display()
    ));
    let mut holder = connect(&addr, "it_md_user", "127.0.0.79");
    holder.query_drop("BEGIN").unwrap();
    let _: Vec<i32> = holder.query("SELECT id FROM it_pileup.m").unwrap();
    let holder_id = holder.connection_id().to_string();
    let wait = ["SET SESSION lock_wait_timeout = 120"];
    let alter_conn = connect(&addr, "it_md_user", "127.0.0.80");
    let alter_id = u64::from(alter_conn.connection_id());
    let _alter = Blocked::start(
        alter_conn,
        &wait,
        "ALTER TABLE it_pileup.m ADD COLUMN c INT",
        Box::new(servers.mariadb_killer()),
    );
    std::thread::sleep(Duration::from_millis(300));
    let reader_conn = connect(&addr, "it_md_user", "127.0.0.81");
    let reader_id = u64::from(reader_conn.connection_id());
    let _reader = Blocked::start(
        reader_conn,
        &wait,
        "SELECT id FROM it_pileup.m",
        Box::new(servers.mariadb_killer()),
    );
    let m = exporter.wait_for_metrics(
        "the holder is named for both",
        Duration::from_secs(30),
        |m| {
            let holder_labels = [
                ("target", "md"),
                ("lock", "metadata"),
                ("session_id", holder_id.as_str()),
            ];
            m.matching("dbsession_top_blocker_sessions", &holder_labels)
                .iter()
                .any(|(_, v)| *v == 2.0)
        },
    );
    let named = m.matching("dbsession_top_blocker_sessions", &[("target", "md")]);
    assert!(
        named.iter().all(
            |(series, _)| series.contains(&format!("session_id=\"{holder_id}\""))
                && series.contains("user=\"it_md_user\"")
                && series.contains("client_ip=\"127.0.0.79\"")
        ),
        "only the holder, never the ALTER: {named:?}"
    );

    let body: serde_json::Value = serde_json::from_slice(
        &crate::common::http_get(&exporter.addr, "/api/v1/tenant/md/sessions/pileup", &[])
            .expect("the pile-up answers")
            .2,
    )
    .expect("JSON");
    let holder_id: u64 = holder_id.parse().unwrap();
    for waiter in [alter_id, reader_id] {
        let wait = body["data"]["lock_waits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["waiter"] == waiter && w["blocker"] == holder_id)
            .unwrap_or_else(|| panic!("{waiter} waits on {holder_id}: {body}"));
        assert_eq!(wait["lock"], "metadata", "{wait}");
        assert_eq!(wait["object"]["schema"], "it_pileup", "{wait}");
        assert_eq!(wait["object"]["name"], "m", "{wait}");
    }
    assert_no_cycle_under_the_holder(&exporter, "md", holder_id, &[alter_id, reader_id]);
    drop(holder);
}
