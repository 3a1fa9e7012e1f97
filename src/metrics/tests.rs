use super::*;
use crate::config;
use crate::error::{Reason, SourceError};
use crate::stats::{SessionGroup, SessionRows, NONE_LABEL};
use std::path::Path;
use std::time::{Duration, SystemTime};

fn target(yaml_extra: &str) -> crate::config::Target {
    let text = format!(
        "targets:\n  - name: ob\n    kind: oceanbase\n    address: 10.0.0.1:2881\n    user: monitor@sys\n{yaml_extra}"
    );
    config::parse(Path::new("t.yaml"), &text, &|_| None)
        .unwrap()
        .targets
        .remove(0)
}

fn group(tenant: &str, user: &str, active: bool, sessions: u64, max_time: f64) -> SessionGroup {
    SessionGroup {
        tenant: tenant.into(),
        server: "10.0.0.1".into(),
        db: NONE_LABEL.into(),
        user: user.into(),
        client: "10.0.0.100".into(),
        active: if active { sessions } else { 0 },
        sessions,
        max_active_time: if active { max_time } else { 0.0 },
        ..SessionGroup::default()
    }
}

/// Every family of `targets`, headers and samples, as one text.
fn encode(targets: &[Arc<TargetStatus>]) -> Result<String, fmt::Error> {
    Ok(
        String::from_utf8_lossy(encode_families(targets, &crate::source::OWN_FAMILIES)?.text())
            .into_owned(),
    )
}

/// The sample lines (no comments) of `name`.
fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .collect()
}

#[test]
fn exact_series_for_a_collected_cluster() {
    let mut status = TargetStatus::new(
        &target("    tenants: [t1, gone]\n    labels: {cluster: prod}\n"),
        1,
        &Reason::DATABASE,
    );
    status.record_success(
        SessionRows {
            tenants: vec!["t1".into()],
            groups: vec![
                group("t1", "root", true, 2, 4.5),
                group("t1", "app", false, 3, 100.0),
            ],
            top: vec![],
        },
        Duration::from_millis(1500),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    );
    let text = encode(&[Arc::new(status)]).unwrap();
    assert_eq!(
        samples(&text, UP),
        [
            r#"dbsession_up{target="ob",tenant="gone",cluster="prod"} 0"#,
            r#"dbsession_up{target="ob",tenant="t1",cluster="prod"} 1"#,
        ]
    );
    assert_eq!(
        samples(&text, SESSIONS),
        [r#"dbsession_sessions{target="ob",tenant="t1",cluster="prod"} 5"#]
    );
    assert_eq!(
        samples(&text, ACTIVE_SESSIONS),
        [r#"dbsession_active_sessions{target="ob",tenant="t1",cluster="prod"} 2"#]
    );
    assert_eq!(
        samples(&text, MAX_ACTIVE_TIME),
        [r#"dbsession_max_active_time_seconds{target="ob",tenant="t1",cluster="prod"} 4.5"#]
    );
    assert_eq!(
        samples(&text, "dbsession_user_sessions"),
        [
            r#"dbsession_user_sessions{target="ob",tenant="t1",user="app",cluster="prod"} 3"#,
            r#"dbsession_user_sessions{target="ob",tenant="t1",user="root",cluster="prod"} 2"#,
        ]
    );
    assert_eq!(
        samples(&text, "dbsession_db_active_sessions"),
        [r#"dbsession_db_active_sessions{target="ob",tenant="t1",db="__none__",cluster="prod"} 2"#]
    );
    assert_eq!(
        samples(&text, "dbsession_client_sessions"),
        [
            r#"dbsession_client_sessions{target="ob",tenant="t1",client_ip="10.0.0.100",cluster="prod"} 5"#
        ]
    );
    assert_eq!(
        samples(&text, "dbsession_server_active_sessions"),
        [
            r#"dbsession_server_active_sessions{target="ob",tenant="t1",svr_ip="10.0.0.1",cluster="prod"} 2"#
        ]
    );
    assert_eq!(
        samples(&text, LAST_SUCCESS),
        [
            r#"dbsession_last_collect_success_timestamp_seconds{target="ob",cluster="prod"} 1700000000.0"#
        ]
    );
    assert_eq!(
        samples(&text, COLLECT_DURATION),
        [r#"dbsession_collect_duration_seconds{target="ob",cluster="prod"} 1.5"#]
    );
    assert_eq!(samples(&text, "dbsession_collect_errors_total").len(), 4);
    // That values are served from the last collection is said once, in the README,
    // not in every HELP line of every scrape.
    assert!(text.contains("# HELP dbsession_sessions Sessions of the tenant.\n"));
    assert!(!text.contains("Served from the last collection"));
}

#[test]
fn a_failed_target_keeps_up_and_errors_but_drops_session_series() {
    let mut status = TargetStatus::new(&target(""), 1, &Reason::DATABASE);
    status.record_success(
        SessionRows {
            tenants: vec!["t1".into(), "t2".into()],
            groups: vec![group("t1", "root", true, 1, 1.0)],
            top: vec![],
        },
        Duration::from_millis(5),
        SystemTime::now(),
    );
    status.record_failure(
        SourceError::new(crate::error::Reason::Timeout, "slow"),
        Duration::from_secs(5),
    );
    let text = encode(&[Arc::new(status)]).unwrap();
    assert_eq!(
        samples(&text, UP),
        [
            r#"dbsession_up{target="ob",tenant="t1"} 0"#,
            r#"dbsession_up{target="ob",tenant="t2"} 0"#,
        ]
    );
    assert!(samples(&text, SESSIONS).is_empty());
    assert!(samples(&text, "dbsession_user_sessions").is_empty());
    assert_eq!(
        samples(&text, "dbsession_collect_errors_total"),
        [
            r#"dbsession_collect_errors_total{target="ob",reason="connect"} 0"#,
            r#"dbsession_collect_errors_total{target="ob",reason="auth"} 0"#,
            r#"dbsession_collect_errors_total{target="ob",reason="timeout"} 1"#,
            r#"dbsession_collect_errors_total{target="ob",reason="query"} 0"#,
        ]
    );
}

#[test]
fn a_target_never_reached_reports_up_zero_once_tried() {
    let mut status = TargetStatus::new(&target(""), 1, &Reason::DATABASE);
    let text = encode(&[Arc::new(status.clone())]).unwrap();
    assert!(
        samples(&text, UP).is_empty(),
        "nothing before the first cycle"
    );
    status.record_failure(
        SourceError::new(crate::error::Reason::Connect, "refused"),
        Duration::ZERO,
    );
    let text = encode(&[Arc::new(status)]).unwrap();
    assert_eq!(
        samples(&text, UP),
        [r#"dbsession_up{target="ob",tenant=""} 0"#]
    );
}

#[test]
fn hostile_label_values_are_escaped() {
    let mut status = TargetStatus::new(&target(""), 1, &Reason::DATABASE);
    status.record_success(
        SessionRows {
            tenants: vec!["t".into()],
            groups: vec![group("t", "a\"b\\c\nd", false, 1, 0.0)],
            top: vec![],
        },
        Duration::ZERO,
        SystemTime::now(),
    );
    let text = encode(&[Arc::new(status)]).unwrap();
    assert_eq!(
        samples(&text, "dbsession_user_sessions"),
        [r#"dbsession_user_sessions{target="ob",tenant="t",user="a\"b\\c\nd"} 1"#]
    );
}

/// Checks one sample line of the text format: `name{k="v",...} value`, with label
/// values escaped (`\\`, `\"`, `\n` only). Returns the label values, unescaped.
fn parse_sample(line: &str) -> Result<Vec<String>, String> {
    let (name_end, rest) = match line.find(['{', ' ']) {
        Some(i) => (i, &line[i..]),
        None => return Err(format!("no value: {line}")),
    };
    if name_end == 0
        || !line[..name_end]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(format!("bad name: {line}"));
    }
    let mut values = Vec::new();
    let mut chars = rest.chars().peekable();
    if chars.peek() == Some(&'{') {
        chars.next();
        loop {
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("bad label name `{key}`: {line}"));
            }
            if chars.next() != Some('"') {
                return Err(format!("unquoted value: {line}"));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => return Err(format!("bad escape {other:?}: {line}")),
                    },
                    Some('"') => break,
                    Some('\n') | None => return Err(format!("unterminated value: {line}")),
                    Some(c) => value.push(c),
                }
            }
            values.push(value);
            match chars.next() {
                Some(',') => continue,
                Some('}') => break,
                other => return Err(format!("expected , or }} got {other:?}: {line}")),
            }
        }
    }
    let value: String = chars.collect();
    value
        .trim()
        .parse::<f64>()
        .map(|_| values)
        .map_err(|_| format!("bad value `{value}`: {line}"))
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Whatever the database sends as names (quotes, backslashes, newlines, any
    /// Unicode), every sample line of both formats parses, and the values come back.
    #[test]
    fn any_names_encode_to_valid_expositions(
        tenant in "\\PC{0,20}",
        user in proptest::string::string_regex("[\\s\\S]{0,40}").unwrap(),
        db in "(\\\\|\"|\n|.){0,12}",
    ) {
        let mut status = TargetStatus::new(&target(""), 1, &Reason::DATABASE);
        let mut g = group(&tenant, &user, true, 2, 1.5);
        g.db = db.clone();
        status.record_success(
            SessionRows { tenants: vec![], groups: vec![g], top: vec![] },
            Duration::from_millis(5),
            SystemTime::UNIX_EPOCH,
        );
        let text = encode(&[Arc::new(status)]).unwrap();
        let classic = crate::exposition::openmetrics_to_classic(&[&text, "# EOF\n"]);
        for body in [&text, &classic] {
            let mut seen = Vec::new();
            for line in body.lines().filter(|l| !l.starts_with('#')) {
                seen.extend(parse_sample(line).map_err(proptest::test_runner::TestCaseError::fail)?);
            }
            proptest::prop_assert!(seen.contains(&tenant), "tenant {tenant:?} missing");
            proptest::prop_assert!(seen.contains(&user), "user {user:?} missing");
        }
    }
}

/// Transactions, locks and states: exact series from rows, idle-in-transaction
/// series only for users and clients that have some, top blockers ranked, and a part
/// a target does not collect has no series at all (not zeros that read as "none").
#[test]
fn transactions_locks_and_states_have_exact_series() {
    use crate::stats::{Aggregator, CollectParts, OneSession};
    let rows = |parts: CollectParts| {
        let mut aggregator = Aggregator::new(5, parts);
        let base = |user: &str, command: &str, state: &str| SessionGroup {
            command: command.into(),
            state: state.into(),
            ..group("t1", user, false, 1, 0.0)
        };
        aggregator.add_group(SessionGroup {
            sessions: 3,
            transactions: 2,
            idle_in_transaction: 2,
            max_transaction_age: 61.5,
            max_idle_in_transaction: 60.25,
            idle_in_transaction_holding_horizon: Some(0),
            ..base("app", "Sleep", "SLEEP")
        });
        aggregator.add_group(SessionGroup {
            transactions: 1,
            idle_in_transaction: 1,
            max_transaction_age: 90.0,
            max_idle_in_transaction: 89.0,
            session: Some(OneSession {
                id: 42,
                waiters: 1,
                ..OneSession::default()
            }),
            horizon_age: Some(5000),
            idle_in_transaction_holding_horizon: Some(1),
            max_idle_holding_horizon: Some(89.0),
            ..base("batch", "Sleep", "SLEEP")
        });
        aggregator.add_group(SessionGroup {
            active: 1,
            max_active_time: 12.0,
            transactions: 1,
            max_transaction_age: 12.0,
            lock_waiting: 1,
            max_lock_wait: 11.5,
            ..base("app", "Query", "ACTIVE")
        });
        aggregator.finish()
    };
    let mut status = TargetStatus::new(&target(""), 1, &Reason::DATABASE);
    let now = SystemTime::UNIX_EPOCH;
    status.record_success(rows(CollectParts::default()), Duration::from_millis(1), now);
    let text = encode(&[Arc::new(status)]).unwrap();
    let tenant = r#"target="ob",tenant="t1""#;
    for (name, value) in [
        (TRANSACTION_SESSIONS, "4"),
        (IDLE_IN_TRANSACTION, "3"),
        (MAX_TRANSACTION_AGE, "90.0"),
        (MAX_IDLE_IN_TRANSACTION, "89.0"),
        (LOCK_WAITING, "1"),
        (MAX_LOCK_WAIT, "11.5"),
    ] {
        assert_eq!(
            samples(&text, name),
            [format!("{name}{{{tenant}}} {value}")]
        );
    }
    assert_eq!(
        samples(&text, USER_IDLE_IN_TRANSACTION),
        [
            format!(r#"{USER_IDLE_IN_TRANSACTION}{{{tenant},user="app"}} 2"#),
            format!(r#"{USER_IDLE_IN_TRANSACTION}{{{tenant},user="batch"}} 1"#),
        ]
    );
    assert_eq!(
        samples(&text, CLIENT_IDLE_IN_TRANSACTION),
        [format!(
            r#"{CLIENT_IDLE_IN_TRANSACTION}{{{tenant},client_ip="10.0.0.100"}} 3"#
        )]
    );
    assert_eq!(
        samples(&text, TOP_BLOCKER),
        [format!(
            r#"{TOP_BLOCKER}{{{tenant},rank="1",session_id="42",user="batch",db="__none__",client_ip="10.0.0.100",lock="row"}} 1"#
        )]
    );
    assert_eq!(
        samples(&text, STATE_SESSIONS),
        [
            format!(r#"{STATE_SESSIONS}{{{tenant},command="Query",state="ACTIVE"}} 1"#),
            format!(r#"{STATE_SESSIONS}{{{tenant},command="Sleep",state="SLEEP"}} 4"#),
        ]
    );

    // The horizon: its age, its holder named, the idle one holding it; a target
    // whose rows do not say has none of them (below, the same rows: they say).
    assert_eq!(
        samples(&text, horizon::HORIZON_AGE),
        [format!("{}{{{tenant}}} 5000", horizon::HORIZON_AGE)]
    );
    assert_eq!(
        samples(&text, horizon::HORIZON_HOLDER_AGE),
        [format!(
            r#"{}{{{tenant},session_id="42",user="batch",db="__none__",client_ip="10.0.0.100",application=""}} 5000"#,
            horizon::HORIZON_HOLDER_AGE
        )]
    );
    assert_eq!(
        samples(&text, horizon::IDLE_HOLDING_HORIZON),
        [format!("{}{{{tenant}}} 1", horizon::IDLE_HOLDING_HORIZON)]
    );
    assert_eq!(
        samples(&text, horizon::MAX_IDLE_HOLDING_HORIZON),
        [format!(
            "{}{{{tenant}}} 89.0",
            horizon::MAX_IDLE_HOLDING_HORIZON
        )]
    );
    let mut status = TargetStatus::new(&target(""), 1, &Reason::DATABASE);
    let mut quiet = Aggregator::new(5, CollectParts::default());
    quiet.add_group(group("t1", "app", false, 2, 0.0));
    status.record_success(quiet.finish(), Duration::from_millis(1), now);
    let text = encode(&[Arc::new(status)]).unwrap();
    for name in [
        horizon::HORIZON_AGE,
        horizon::HORIZON_HOLDER_AGE,
        horizon::IDLE_HOLDING_HORIZON,
        horizon::MAX_IDLE_HOLDING_HORIZON,
    ] {
        assert_eq!(samples(&text, name), Vec::<&str>::new(), "{name}");
    }

    let off = CollectParts::NONE;
    let mut status = TargetStatus::new(&target(""), 1, &Reason::DATABASE);
    status.record_success(rows(off), Duration::from_millis(1), now);
    let text = encode(&[Arc::new(status)]).unwrap();
    for name in [
        TRANSACTION_SESSIONS,
        IDLE_IN_TRANSACTION,
        MAX_TRANSACTION_AGE,
        LOCK_WAITING,
        MAX_LOCK_WAIT,
        STATE_SESSIONS,
        USER_IDLE_IN_TRANSACTION,
        TOP_BLOCKER,
    ] {
        assert_eq!(samples(&text, name), Vec::<&str>::new(), "{name}");
    }
    assert_eq!(samples(&text, SESSIONS).len(), 1);
}

#[test]
fn waits_applications_and_statements_have_exact_series() {
    use crate::stats::{Aggregator, CollectParts, CPU};
    let rows = |parts: CollectParts| {
        // Keeps 2 statements per tenant: the third most frequent is summed away.
        let mut aggregator = Aggregator::new(2, parts);
        let active =
            |application: &str, wait: (&str, &str), statement: &str, n: u64| SessionGroup {
                application: application.into(),
                wait_class: wait.0.into(),
                wait_event: wait.1.into(),
                statement: statement.into(),
                ..group("t1", "app", true, n, 3.0)
            };
        aggregator.add_group(SessionGroup {
            application: "web".into(),
            ..group("t1", "app", false, 5, 0.0)
        });
        aggregator.add_group(active("web", ("Lock", "transactionid"), "q1", 3));
        aggregator.add_group(active("web", (CPU, CPU), "q2", 2));
        aggregator.add_group(active(NONE_LABEL, (CPU, CPU), "q3", 1));
        aggregator.add_group(active(NONE_LABEL, ("IO", "DataFileRead"), "", 1));
        aggregator.finish()
    };
    let mut status = TargetStatus::new(&target(""), 1, &Reason::DATABASE);
    let now = SystemTime::UNIX_EPOCH;
    status.record_success(rows(CollectParts::default()), Duration::from_millis(1), now);
    let text = encode(&[Arc::new(status)]).unwrap();
    let tenant = r#"target="ob",tenant="t1""#;
    assert_eq!(
        samples(&text, "dbsession_application_sessions"),
        [
            format!(r#"dbsession_application_sessions{{{tenant},application="__none__"}} 2"#),
            format!(r#"dbsession_application_sessions{{{tenant},application="web"}} 10"#),
        ]
    );
    assert_eq!(
        samples(&text, "dbsession_application_active_sessions"),
        [
            format!(
                r#"dbsession_application_active_sessions{{{tenant},application="__none__"}} 2"#
            ),
            format!(r#"dbsession_application_active_sessions{{{tenant},application="web"}} 5"#),
        ]
    );
    // The waits add up to the 7 active sessions.
    assert_eq!(
        samples(&text, WAIT_EVENT_SESSIONS),
        [
            format!(r#"{WAIT_EVENT_SESSIONS}{{{tenant},wait_class="CPU",wait_event="CPU"}} 3"#),
            format!(
                r#"{WAIT_EVENT_SESSIONS}{{{tenant},wait_class="IO",wait_event="DataFileRead"}} 1"#
            ),
            format!(
                r#"{WAIT_EVENT_SESSIONS}{{{tenant},wait_class="Lock",wait_event="transactionid"}} 3"#
            ),
        ]
    );
    // The two most frequent statements, the rest summed; no series without an id.
    assert_eq!(
        samples(&text, SQL_ACTIVE_SESSIONS),
        [
            format!(r#"{SQL_ACTIVE_SESSIONS}{{{tenant},sql_id="__other__"}} 1"#),
            format!(r#"{SQL_ACTIVE_SESSIONS}{{{tenant},sql_id="q1"}} 3"#),
            format!(r#"{SQL_ACTIVE_SESSIONS}{{{tenant},sql_id="q2"}} 2"#),
        ]
    );

    // No application or wait was summed away: those dimensions have no series.
    let dropped = samples(&text, SERIES_DROPPED);
    assert!(
        dropped
            .iter()
            .all(|l| !l.contains("application") && !l.contains("wait_event")),
        "{dropped:?}"
    );
    let mut capped = TargetStatus::new(
        &target("    max_series_per_dimension: 2\n"),
        1,
        &Reason::DATABASE,
    );
    let mut three = Aggregator::new(2, CollectParts::default());
    for application in ["a", "b", "c"] {
        three.add_group(SessionGroup {
            application: application.into(),
            ..group("t1", "app", false, 1, 0.0)
        });
    }
    capped.record_success(three.finish(), Duration::from_millis(1), now);
    let text = encode(&[Arc::new(capped)]).unwrap();
    assert!(samples(&text, SERIES_DROPPED)
        .contains(&format!(r#"{SERIES_DROPPED}{{{tenant},dimension="application"}} 2"#).as_str()));

    let mut status = TargetStatus::new(&target(""), 1, &Reason::DATABASE);
    status.record_success(rows(CollectParts::NONE), Duration::from_millis(1), now);
    let text = encode(&[Arc::new(status)]).unwrap();
    for name in [
        "dbsession_application_sessions",
        "dbsession_application_active_sessions",
        WAIT_EVENT_SESSIONS,
        SQL_ACTIVE_SESSIONS,
    ] {
        assert_eq!(samples(&text, name), Vec::<&str>::new(), "{name}");
    }
}

/// A kind's own statistics (DBSS's report by audited database) are encoded among the
/// target's series exactly as their family says: its header with or without a
/// target of the kind, the labels in the family's order after `target` and before
/// the constant labels, whole numbers, and the guard's count under its dimension.
#[test]
fn a_kinds_own_statistics_are_its_own_family() {
    use crate::source::dbss::{ClientDistribution, ClientEntry};
    use crate::stats::{Collected, Statistics};
    let headers = encode(&[]).unwrap();
    assert!(
        headers.contains("# TYPE dbsession_dbss_client_sessions gauge"),
        "{headers}"
    );
    let mut status = TargetStatus::new(
        &target("    labels: {cluster: prod}\n"),
        1,
        &Reason::DATABASE,
    );
    let entry = |db_id: Option<&str>, sessions| ClientEntry {
        db_id: db_id.map(str::to_string),
        db_ip: Some("10.0.0.37".into()),
        db_name: None,
        session_num: sessions,
    };
    let report = ClientDistribution::new("inst", vec![entry(Some("d1"), 16), entry(None, 3)]);
    status.record_success(
        Collected {
            statistics: Statistics::Own(Box::new(report)),
            rows: 2,
            beside: None,
        },
        Duration::from_millis(5),
        SystemTime::now(),
    );
    let text = encode(&[Arc::new(status)]).unwrap();
    assert_eq!(
        samples(&text, "dbsession_dbss_client_sessions"),
        [
            "dbsession_dbss_client_sessions{target=\"ob\",instance_id=\"inst\",db_id=\"__none__\",db_ip=\"10.0.0.37\",db_name=\"__none__\",cluster=\"prod\"} 3",
            "dbsession_dbss_client_sessions{target=\"ob\",instance_id=\"inst\",db_id=\"d1\",db_ip=\"10.0.0.37\",db_name=\"__none__\",cluster=\"prod\"} 16",
        ]
    );
    assert_eq!(
        samples(&text, "dbsession_series_dropped"),
        ["dbsession_series_dropped{target=\"ob\",dimension=\"dbss_database\",cluster=\"prod\"} 0"]
    );
}
