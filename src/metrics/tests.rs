use super::*;
use crate::config;
use crate::source::{Reason, SourceError};
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
    }
}

/// Every family of `targets`, headers and samples, as one text.
fn encode(targets: &[Arc<TargetStatus>]) -> Result<String, fmt::Error> {
    Ok(encode_families(targets)?.as_str().to_string())
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
    assert!(text.contains(
        "# HELP dbsession_sessions Sessions of the tenant. Served from the last collection"
    ));
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
        SourceError::new(crate::source::Reason::Timeout, "slow"),
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
        SourceError::new(crate::source::Reason::Connect, "refused"),
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
        let classic = crate::exposition::openmetrics_to_classic(&format!("{text}# EOF\n"));
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
