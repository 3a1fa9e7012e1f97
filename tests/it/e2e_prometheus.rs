//! End to end with a real Prometheus: it scrapes the exporter every second and loads
//! the shipped alerting rules; every PromQL expression of the Grafana dashboard and of
//! the rules is evaluated through Prometheus' HTTP API, and the long-running-session
//! and idle-in-transaction alerts must actually fire when a session sleeps (or idles
//! inside a transaction) past a lowered threshold, and the refusals alert when a
//! MariaDB of the test's own refuses connections at `max_connections`.

use crate::common::dbss::ContractServer;
use crate::common::{
    connect_as, free_port, http_get, Blocked, Exporter, PsqlSession, Servers, Session, SessionSpec,
};
use serde_json::Value as Json;
use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

struct Prometheus {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(exporter_addr: &str, rules: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("alerts.yml"), rules).unwrap();
        std::fs::write(
            dir.path().join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\nrule_files: [alerts.yml]\nscrape_configs:\n  - job_name: session-exporter\n    static_configs:\n      - targets: ['{exporter_addr}']\n"
            ),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (scripts/install-deps.sh installs Debian's prometheus)");
        Self {
            child,
            addr,
            _dir: dir,
        }
    }

    /// Polls the alerts named `name` that fire until `found` gets from them what it
    /// waits for; 30 s at most.
    fn wait_for_firing<T>(&self, name: &str, mut found: impl FnMut(&[Json]) -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            let alerts = self.api("/api/v1/alerts");
            let firing: Vec<Json> = alerts["data"]["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["labels"]["alertname"] == name && a["state"] == "firing")
                .cloned()
                .collect();
            if let Some(value) = found(&firing) {
                return value;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{name} did not fire: {alerts}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn api(&self, path_and_query: &str) -> Json {
        let (status, _, body) =
            http_get(&self.addr, path_and_query, &[]).unwrap_or((0, String::new(), Vec::new()));
        let json: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
        assert!(
            status == 200 || json.is_null() || status == 400 || status == 422,
            "{path_and_query}: {status}"
        );
        json
    }

    /// Evaluates `expr`; (status, number of result series).
    fn query(&self, expr: &str) -> (String, usize, Json) {
        let json = self.api(&format!("/api/v1/query?query={}", percent_encode(expr)));
        let status = json["status"].as_str().unwrap_or("no answer").to_string();
        let n = json["data"]["result"].as_array().map_or(0, Vec::len);
        (status, n, json)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every `expr` of the dashboard's panels, with Grafana's variables substituted.
fn dashboard_queries() -> Vec<(String, String)> {
    let dashboard: Json = serde_json::from_str(
        &std::fs::read_to_string(format!("{ROOT}/grafana/session-exporter.json")).unwrap(),
    )
    .unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let expr = expr
                .replace("$target", ".+")
                .replace("$tenant", ".*")
                .replace("$__rate_interval", "1m");
            queries.push((panel["title"].as_str().unwrap().to_string(), expr));
        }
    }
    // The template variables' label_values() queries select these series.
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(definition) = variable["definition"].as_str() {
            let selector = definition
                .trim_start_matches("label_values(")
                .rsplit_once(',')
                .unwrap()
                .0
                .replace("$target", ".+");
            queries.push((format!("variable {}", variable["name"]), selector));
        }
    }
    queries
}

/// Metric names an expression reads (ours and Prometheus' `up`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut word = String::new();
    for c in expr.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            if word.starts_with("dbsession") || word == "up" {
                names.insert(word.clone());
            }
            word.clear();
        }
    }
    names
}

#[test]
fn every_dashboard_and_rule_expression_works_and_the_idle_long_running_and_near_limit_alerts_fire()
{
    let Some(servers) = Servers::get() else {
        return;
    };
    let pw = servers.monitor_password_file.display();
    // A DBSS target too, on the local contract server: its panel needs series.
    let dbss = ContractServer::start("e2e-dbss-token");
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("dbss.token");
    std::fs::write(&token, "e2e-dbss-token").unwrap();
    // A MariaDB of its own lets few sessions in: DbSessionConnectionsRefused fires
    // when it refuses some.
    let full = crate::connections::limited_mariadb("E2e-full-mon-1");
    // PgBouncer's pool of two, with three clients asleep: DbSessionPoolClientsWaiting
    // fires for the one that waits.
    let Some(bouncer) = servers.pgbouncer() else {
        return;
    };
    let _pool = crate::postgresql::pgbouncer::take_the_pool(&servers);
    let exporter = Exporter::start(&format!(
        r#"global:
  collect_interval: 1s
  collect_timeout: 800ms
targets:
  - name: maria
    kind: mysql
    address: {m}
    user: monitor
    password_file: {pw}
  - name: full
    kind: mysql
    address: {f}
    user: monitor
    password: E2e-full-mon-1
    limits_interval: 1s
  - name: seek
    kind: oceanbase
    address: {s}
    user: monitor
    password_file: {pw}
  - name: pg
    kind: postgresql
    address: {p}
    user: monitor
    password_file: {pw}
    sslmode: disable
    limits_interval: 1s
  - name: bouncer
    kind: pgbouncer
    address: {b}
    user: monitor
    password_file: {pw}
    limits_interval: 1s
  - name: cluster
    kind: oceanbase
    address: {s}
    user: monitor@sys
    password_file: {pw}
    limits_interval: 1s
    processlist_view: it_e2e_ash.PL
    tenants_view: it_e2e_ash.TENANTS
    ash_view: it_e2e_ash.ASH
{d}history:
  path: history.db
"#,
        m = servers.mariadb_addr,
        f = full.addr(),
        s = servers.seekdb_addr,
        p = servers.postgres_addr,
        b = bouncer.addr,
        d = dbss.target_yaml("dbss", &token, ""),
    ));
    // A cluster's active session history (seekdb has none of its own): the load panel
    // needs its counters.
    servers.seekdb_root(&crate::common::ash_cluster_tables("it_e2e_ash"));
    servers.seekdb_root(
        "INSERT INTO it_e2e_ash.TENANTS VALUES (1002, 't1', 'USER'); \
         INSERT INTO it_e2e_ash.PL VALUES (1, 't1', '10.0.0.1', 2882, 'app', '', 'shop', \
         'Query', 2, 'ACTIVE', 'x', '10.1.1.1', 'Q1', 'web', ''); \
         INSERT INTO it_e2e_ash.ASH VALUES ('10.0.0.1', 2882, 1, '2026-12-04 10:00:00', 1002, 1, \
         'ON CPU', 'Q1', '', '')",
    );
    // Known sessions: a busy one on each server, an idle one on MariaDB.
    servers.mariadb_root("CREATE USER IF NOT EXISTS 'it_e2e'@'%' IDENTIFIED BY 'E2e-pw-1'");
    servers.seekdb_root("CREATE USER IF NOT EXISTS 'it_e2e'@'%' IDENTIFIED BY 'E2e-pw-1'");
    let session = |addr: &str, sleep: Option<u32>, from: &str| {
        Session::open(&SessionSpec {
            addr,
            user: "it_e2e",
            password: "E2e-pw-1",
            db: None,
            from,
            sleep,
        })
    };
    let _sessions = [
        session(&servers.mariadb_addr, Some(300), "127.0.0.41"),
        session(&servers.mariadb_addr, None, "127.0.0.42"),
        session(&servers.seekdb_addr, Some(300), "127.0.0.43"),
    ];
    // A session idle in a transaction holding a row lock, and one blocked on it: the
    // transaction and lock panels need them.
    servers.mariadb_root(
        "CREATE DATABASE IF NOT EXISTS it_e2e; \
         CREATE OR REPLACE TABLE it_e2e.r (id INT PRIMARY KEY, v INT) ENGINE=InnoDB; \
         INSERT INTO it_e2e.r VALUES (1, 1); GRANT ALL ON it_e2e.* TO 'it_e2e'@'%'",
    );
    let mut holder = connect_as(&servers.mariadb_addr, "it_e2e", "E2e-pw-1", "127.0.0.44");
    {
        use mysql::prelude::Queryable;
        holder.query_drop("BEGIN").unwrap();
        holder
            .query_drop("UPDATE it_e2e.r SET v = v + 1 WHERE id = 1")
            .unwrap();
    }
    let _waiter = Blocked::start(
        connect_as(&servers.mariadb_addr, "it_e2e", "E2e-pw-1", "127.0.0.45"),
        &["SET SESSION innodb_lock_wait_timeout = 300", "BEGIN"],
        "UPDATE it_e2e.r SET v = v + 1 WHERE id = 1",
        Box::new(servers.mariadb_killer()),
    );

    // A PostgreSQL role and database that allow one session each, and that session:
    // the headroom panels and DbSessionNearLimit need a user and a database at their
    // limit.
    servers.postgres_role("it_e2e_lim", "E2e-pw-1", "");
    servers.postgres_database("it_e2e_limdb");
    servers.postgres_admin("ALTER ROLE it_e2e_lim CONNECTION LIMIT 1");
    servers.postgres_admin("ALTER DATABASE it_e2e_limdb CONNECTION LIMIT 1");
    // A killed psql leaves its backend asleep: that of a run before is ended first.
    let end_sessions = || {
        servers.postgres_admin(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE usename = 'it_e2e_lim'",
        )
    };
    end_sessions();
    let at_limit = PsqlSession::start(
        &servers.postgres_addr,
        "it_e2e_lim",
        "E2e-pw-1",
        "it_e2e_limdb",
        None,
    );
    let _pooled: Vec<PsqlSession> = (0..3)
        .map(|_| {
            PsqlSession::start(
                &bouncer.addr,
                "it_pgb",
                &bouncer.app_password,
                "postgres",
                None,
            )
        })
        .collect();

    // The shipped rules, with the long-running threshold lowered to 2 s and no wait.
    let mut rules: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(format!("{ROOT}/deploy/prometheus/alerts.yml")).unwrap(),
    )
    .unwrap();
    let mut rule_exprs = Vec::new();
    for group in rules["groups"].as_sequence_mut().unwrap() {
        for rule in group["rules"].as_sequence_mut().unwrap() {
            rule_exprs.push(rule["expr"].as_str().unwrap().to_string());
            if rule["alert"].as_str() == Some("DbSessionLongRunning") {
                rule["expr"] = "dbsession_max_active_time_seconds > 2".into();
                rule["for"] = "0s".into();
            }
            if rule["alert"].as_str() == Some("DbSessionNearLimit") {
                rule["for"] = "0s".into();
            }
            if rule["alert"].as_str() == Some("DbSessionPoolClientsWaiting") {
                rule["expr"] = "dbsession_pool_max_wait_seconds > 1".into();
                rule["for"] = "0s".into();
            }
            if rule["alert"].as_str() == Some("DbSessionIdleInTransaction") {
                rule["expr"] = "dbsession_max_idle_in_transaction_seconds > 2".into();
                rule["for"] = "0s".into();
            }
        }
    }
    let prometheus = Prometheus::start(&exporter.addr, &serde_yaml::to_string(&rules).unwrap());

    // Wait until Prometheus holds a few scrapes and the rules have run.
    let started = Instant::now();
    loop {
        let (_, n, _) = prometheus.query("rate(dbsession_collect_errors_total[1m])");
        let (_, limits, _) = prometheus.query("dbsession:active_sessions_limit");
        let (_, top, _) =
            prometheus.query(r#"dbsession_top_active_session_seconds{target="seek"}"#);
        let (_, blockers, _) = prometheus.query("dbsession_top_blocker_sessions");
        let (_, pg, _) = prometheus.query(r#"dbsession_up{target="pg"} == 1"#);
        let (_, headroom, _) = prometheus.query("dbsession_db_sessions_limit");
        let (_, load, _) = prometheus.query("rate(dbsession_ash_samples_total[1m])");
        let (_, usual, _) = prometheus.query("dbsession:connections:rate5m:avg1d");
        let (_, pools, _) = prometheus.query("dbsession_pool_size");
        if n > 0
            && limits > 0
            && top > 0
            && blockers > 0
            && pg > 0
            && headroom > 0
            && load > 0
            && usual > 0
            && pools > 0
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "Prometheus has no data yet:\n{}",
            exporter.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let mut failures = Vec::new();
    for (panel, expr) in dashboard_queries() {
        let (status, n, json) = prometheus.query(&expr);
        if status != "success" || n == 0 {
            failures.push(format!(
                "dashboard panel {panel:?}: {expr}\n  -> {status}, {n} series: {json}"
            ));
        }
    }
    for expr in &rule_exprs {
        let (status, _, json) = prometheus.query(expr);
        if status != "success" {
            failures.push(format!("rule: {expr}\n  -> {json}"));
        }
    }
    // Every metric any expression names exists in Prometheus: no panel or rule reads
    // a name the exporter does not produce.
    let names: BTreeSet<String> = dashboard_queries()
        .iter()
        .map(|(_, e)| e.clone())
        .chain(rule_exprs.iter().cloned())
        .flat_map(|e| metric_names(&e))
        .collect();
    assert!(names.len() > 15, "{names:?}");
    for name in &names {
        let (_, n, _) = prometheus.query(&format!("count({name})"));
        if n == 0 {
            failures.push(format!("no series named {name}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The private MariaDB refuses connections at max_connections: the alert fires
    // for it alone.
    crate::connections::refuse_at_the_limit(&full, 2);
    let firing = prometheus.wait_for_firing("DbSessionConnectionsRefused", |firing| {
        firing
            .iter()
            .any(|a| a["labels"]["target"] == "full")
            .then_some(firing.len())
    });
    assert_eq!(firing, 1, "only the target that refused");

    // The pool of two is full and the third client waits.
    let pool = prometheus.wait_for_firing("DbSessionPoolClientsWaiting", |firing| {
        let alert = firing.iter().find(|a| a["labels"]["target"] == "bouncer")?;
        Some(format!(
            "{}/{}",
            alert["labels"]["db"], alert["labels"]["user"]
        ))
    });
    assert_eq!(pool, "\"postgres\"/\"it_pgb\"");

    // The lowered idle-in-transaction alert fires for MariaDB, naming the holder's
    // user and client.
    let description = prometheus.wait_for_firing("DbSessionIdleInTransaction", |firing| {
        let alert = firing.iter().find(|a| a["labels"]["target"] == "maria")?;
        Some(alert["annotations"]["description"].as_str()?.to_string())
    });
    assert!(
        description.contains("by user: it_e2e (1)")
            && description.contains("by client: 127.0.0.44 (1)"),
        "{description}"
    );
    drop(holder);

    // DbSessionNearLimit fires for the PostgreSQL role and database at their limit,
    // saying which.
    let (user, db) = prometheus.wait_for_firing("DbSessionNearLimit", |firing| {
        let summary = |key: &str, value: &str| {
            let alert = firing
                .iter()
                .find(|a| a["labels"]["target"] == "pg" && a["labels"][key] == value)?;
            Some(alert["annotations"]["summary"].as_str()?.to_string())
        };
        Some((
            summary("user", "it_e2e_lim")?,
            summary("db", "it_e2e_limdb")?,
        ))
    });
    assert_eq!(user, "pg/pg user it_e2e_lim uses 100% of its session limit");
    assert_eq!(
        db,
        "pg/pg database it_e2e_limdb uses 100% of its session limit"
    );
    drop(at_limit);
    end_sessions();

    // The lowered long-running alert fires for both busy sessions' tenants.
    let summary = prometheus.wait_for_firing("DbSessionLongRunning", |firing| {
        let targets: BTreeSet<&str> = firing
            .iter()
            .filter_map(|a| a["labels"]["target"].as_str())
            .collect();
        (targets.contains("maria") && targets.contains("seek"))
            .then(|| {
                firing[0]["annotations"]["summary"]
                    .as_str()
                    .map(str::to_string)
            })
            .flatten()
    });
    assert!(summary.contains("has been active for"), "{summary}");
}
