use super::dbss::{Dbss, TimeRange};
use super::oceanbase::Oceanbase;
use super::*;

fn parse_str(text: &str) -> Result<Config, ConfigError> {
    parse(Path::new("test.yaml"), text, &|name| {
        (name == "OB_PASSWORD").then(|| "s3cret-from-env".to_string())
    })
}

/// The database settings of a SQL target.
fn database(t: &Target) -> &Database {
    match &t.kind {
        TargetKind::Oceanbase(settings) => &settings.database,
        TargetKind::Mysql(settings) => &settings.database,
        TargetKind::Postgresql(settings) => &settings.database,
        other => panic!("not a SQL target: {other:?}"),
    }
}

fn oceanbase(t: &Target) -> &Oceanbase {
    match &t.kind {
        TargetKind::Oceanbase(settings) => settings,
        other => panic!("not oceanbase: {other:?}"),
    }
}

fn dbss(t: &Target) -> &Dbss {
    match &t.kind {
        TargetKind::Dbss(settings) => settings,
        other => panic!("not dbss: {other:?}"),
    }
}

fn problems(text: &str) -> Vec<Problem> {
    match parse_str(text) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("expected problems, got {other:?}"),
    }
}

const MINIMAL: &str = "\
targets:
  - name: maria
    kind: mysql
    address: 127.0.0.1:3306
    user: monitor
";

#[test]
fn minimal_config_gets_defaults() {
    let config = parse_str(MINIMAL).unwrap();
    let t = &config.targets[0];
    assert_eq!(t.name, "maria");
    assert_eq!(t.kind.name(), "mysql");
    assert_eq!(
        database(t).address,
        Address {
            host: "127.0.0.1".into(),
            port: 3306
        }
    );
    assert_eq!(t.collect_interval, DEFAULT_COLLECT_INTERVAL);
    assert_eq!(t.collect_timeout, DEFAULT_COLLECT_TIMEOUT);
    assert_eq!(database(t).password.expose(), "");
    assert_eq!(database(t).top_sessions, DEFAULT_TOP_SESSIONS);
}

#[test]
fn full_target_is_read() {
    let config = parse_str(
        "\
global:
  collect_interval: 10s
  collect_timeout: 2500ms
targets:
  - name: ob-prod
    kind: oceanbase
    address: '[::1]:2881'
    user: monitor@sys
    password: pre-${OB_PASSWORD}
    tenants: [t1, t2]
    labels: {cluster: prod, az: a}
    collect_interval: 30s
    processlist_view: test.GV$OB_PROCESSLIST
",
    )
    .unwrap();
    let t = &config.targets[0];
    assert_eq!(database(t).address.to_string(), "[::1]:2881");
    assert_eq!(database(t).password.expose(), "pre-s3cret-from-env");
    assert_eq!(
        oceanbase(t).tenants.as_deref(),
        Some(&["t1".to_string(), "t2".to_string()][..])
    );
    assert_eq!(
        t.labels,
        vec![("az".into(), "a".into()), ("cluster".into(), "prod".into())]
    );
    assert_eq!(t.collect_interval, Duration::from_secs(30));
    assert_eq!(t.collect_timeout, Duration::from_millis(2500));
    assert_eq!(
        oceanbase(t).processlist_view.as_ref().unwrap().to_sql(),
        "`test`.`GV$OB_PROCESSLIST`"
    );
}

#[test]
fn unknown_key_is_rejected_with_its_line() {
    let err = parse_str("targets:\n  - name: a\n    kind: mysql\n    adress: x\n").unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("test.yaml:4:5: "), "{text}");
    assert!(text.contains("unknown field `adress`"), "{text}");
}

#[test]
fn unknown_kind_lists_the_valid_ones() {
    let err = parse_str(&MINIMAL.replace("kind: mysql", "kind: postgres")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("test.yaml:3:"), "{text}");
    assert!(
        text.contains("oceanbase") && text.contains("mysql"),
        "{text}"
    );
}

#[test]
fn every_problem_is_reported_at_once_with_lines() {
    let found = problems(
        "\
global:
  collect_interval: 5s
  collect_timeout: 10s
targets:
  - name: a
    kind: mysql
    address: localhost
    user: monitor
    tenants: [t1]
  - name: a
    kind: oceanbase
    address: 127.0.0.1:99999
    user: ''
    labels: {target: x, 0bad: y}
",
    );
    let got: Vec<(Option<usize>, &str)> = found.iter().map(|p| (p.line, p.key.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (Some(3), "global.collect_timeout"),
            (Some(7), "targets[0].address"),
            (Some(9), "targets[0].tenants"),
            (Some(10), "targets[1].name"),
            (Some(12), "targets[1].address"),
            (Some(13), "targets[1].user"),
            (Some(14), "targets[1].labels.0bad"),
            (Some(14), "targets[1].labels.target"),
        ]
    );
    let text = ConfigError::Invalid {
        path: "test.yaml".into(),
        problems: found,
    }
    .to_string();
    assert!(
        text.contains("test.yaml:7: targets[0].address: `localhost` has no port"),
        "{text}"
    );
    assert!(
        text.contains("must be shorter than collect_interval (5s)"),
        "{text}"
    );
}

#[test]
fn empty_file_asks_for_targets() {
    let found = problems("");
    assert_eq!(found.len(), 1);
    assert!(found[0].message.contains("no targets"));
}

#[test]
fn missing_env_variable_is_named_but_no_secret_is_printed() {
    let found = problems(&format!("{MINIMAL}    password: ${{NOT_SET}}\n"));
    assert_eq!(found[0].key, "targets[0].password");
    assert!(found[0].message.contains("NOT_SET"));
}

#[test]
fn secrets_never_show_in_debug_or_errors() {
    let config = parse_str(&format!("{MINIMAL}    password: hunter2-sentinel\n")).unwrap();
    assert!(!format!("{config:?}").contains("hunter2-sentinel"));
    // A problem elsewhere in a file with a password does not echo it either.
    let err = parse_str(&format!(
        "{MINIMAL}    password: hunter2-sentinel\n    tenants: [x]\n"
    ))
    .unwrap_err();
    assert!(!err.to_string().contains("hunter2-sentinel"));
}

#[test]
fn password_file_is_read_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "from-file\n").unwrap();
    let config = parse(
        &dir.path().join("config.yaml"),
        &format!("{MINIMAL}    password_file: pw\n"),
        &|_| None,
    )
    .unwrap();
    assert_eq!(database(&config.targets[0]).password.expose(), "from-file");

    let found = problems(&format!("{MINIMAL}    password_file: /nonexistent/pw\n"));
    assert_eq!(found[0].key, "targets[0].password_file");
    assert!(found[0].message.contains("cannot read /nonexistent/pw"));
}

#[test]
fn both_password_and_file_is_an_error() {
    let found = problems(&format!("{MINIMAL}    password: a\n    password_file: b\n"));
    assert!(found[0]
        .message
        .contains("either password or password_file"));
}

#[test]
fn target_timeout_must_fit_its_interval() {
    let found = problems(&format!(
        "{MINIMAL}    collect_interval: 2s\n    collect_timeout: 3s\n"
    ));
    assert_eq!(found[0].key, "targets[0].collect_timeout");
    // A target interval shorter than the global timeout shrinks the default timeout.
    let config = parse_str(&format!("{MINIMAL}    collect_interval: 2s\n")).unwrap();
    assert_eq!(
        config.targets[0].collect_timeout,
        Duration::from_millis(1600)
    );
}

#[test]
fn bad_tenant_and_relation_names_are_refused() {
    let found = problems(
        "\
targets:
  - name: ob
    kind: oceanbase
    address: 127.0.0.1:2881
    user: root
    tenants: [t1, 'x;drop', t1]
    processlist_view: a.b.c
    tenants_view: 'x`y'
",
    );
    let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "targets[0].tenants[1]",
            "targets[0].tenants[2]",
            "targets[0].processlist_view",
            "targets[0].tenants_view"
        ]
    );
}

#[test]
fn durations_format_back() {
    assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
    assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    assert_eq!(format_duration(Duration::ZERO), "0s");
}

#[test]
fn the_cardinality_guard_is_configurable_per_target() {
    let config = parse_str(&format!(
        "global:\n  max_series_per_dimension: 20\n{}    max_series_per_dimension: 0\n{}",
        MINIMAL,
        MINIMAL.replace("targets:\n", "").replace("maria", "other")
    ))
    .unwrap();
    assert_eq!(config.targets[0].max_series_per_dimension, 0);
    assert_eq!(config.targets[1].max_series_per_dimension, 20);
    assert_eq!(
        parse_str(MINIMAL).unwrap().targets[0].max_series_per_dimension,
        DEFAULT_MAX_SERIES_PER_DIMENSION
    );
    let found = problems(&format!("{MINIMAL}    max_series_per_dimension: 1\n"));
    assert_eq!(found[0].key, "targets[0].max_series_per_dimension");
    assert!(found[0].message.contains("use 2 or more, or 0"));
}

#[test]
fn targets_files_add_targets_and_report_problems_in_their_own_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    let one = |name: &str, address: &str| {
        format!("  - name: {name}\n    kind: mysql\n    address: {address}\n    user: m\n")
    };
    std::fs::write(
        dir.path().join("conf.d/a.yaml"),
        format!("targets:\n{}", one("a", "127.0.0.1:1")),
    )
    .unwrap();
    std::fs::write(dir.path().join("conf.d/ignored.txt"), "not yaml: [").unwrap();
    let main = dir.path().join("config.yaml");
    let text = format!(
        "targets:\n{}targets_files: ['conf.d/*.yaml']\n",
        one("main", "127.0.0.1:2")
    );
    let config = parse(&main, &text, &|_| None).unwrap();
    let names: Vec<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["main", "a"]);

    // A second file with a duplicate name and a bad address: both named with that file.
    std::fs::write(
        dir.path().join("conf.d/b.yaml"),
        format!(
            "targets:\n{}{}",
            one("a", "127.0.0.1:3"),
            one("b", "nowhere")
        ),
    )
    .unwrap();
    let err = parse(&main, &text, &|_| None).unwrap_err().to_string();
    let b = dir.path().join("conf.d/b.yaml");
    assert!(
        err.contains(&format!(
            "{}:2: targets[0].name: `a` is used by an earlier target",
            b.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{}:8: targets[1].address: `nowhere` has no port",
            b.display()
        )),
        "{err}"
    );

    // A file that is not valid YAML for targets is refused with its line.
    std::fs::write(dir.path().join("conf.d/b.yaml"), "targets:\n  - nme: x\n").unwrap();
    let err = parse(&main, &text, &|_| None).unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "{}:2: targets: targets[0]: unknown field `nme`",
            b.display()
        )),
        "{err}"
    );

    let err = parse(&main, "targets_files: ['[']\n", &|_| None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("targets_files[0]: `[` is not a valid pattern"),
        "{err}"
    );
}

/// A directory with a token file, and the config path beside it.
fn dbss_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dbss.token"), "MIItoken-secret\n").unwrap();
    let path = dir.path().join("config.yaml");
    (dir, path)
}

const PROJECT: &str = "0123456789abcdef0123456789abcdef";
const INSTANCE: &str = "fedcba9876543210fedcba9876543210ab";

#[test]
fn dbss_target_is_read_with_defaults() {
    let (_dir, path) = dbss_dir();
    let text = format!(
        "targets:\n  - name: dbss-prod\n    kind: dbss\n    endpoint: https://dbss.example-region.example.com\n    project_id: {PROJECT}\n    instance_id: {INSTANCE}\n    token_file: dbss.token\n    db_ids: [a1, b2]\n    time_range: THREE_HOUR\n    labels: {{region: r1}}\n"
    );
    let config = parse(&path, &text, &|_| None).unwrap();
    let t = &config.targets[0];
    assert_eq!(t.kind.name(), "dbss");
    let d = dbss(t);
    assert_eq!(
        (d.endpoint.host.as_str(), d.endpoint.port),
        ("dbss.example-region.example.com", 443)
    );
    assert_eq!(
        (d.project_id.as_str(), d.instance_id.as_str()),
        (PROJECT, INSTANCE)
    );
    assert_eq!(d.db_ids, vec!["a1".to_string(), "b2".to_string()]);
    assert_eq!(d.time_range, TimeRange::ThreeHour);
    assert_eq!(d.token_file, path.parent().unwrap().join("dbss.token"));
    assert_eq!(d.connect_timeout, dbss::DEFAULT_CONNECT_TIMEOUT);
    assert!(!d.insecure_skip_verify && d.ca_file.is_none());
    // The token is not part of the configuration (nor of its Debug print).
    assert!(!format!("{config:?}").contains("MIItoken"));
    // HALF_HOUR when unset.
    let text = text.replace("    time_range: THREE_HOUR\n", "");
    let config = parse(&path, &text, &|_| None).unwrap();
    assert_eq!(dbss(&config.targets[0]).time_range, TimeRange::HalfHour);
}

#[test]
fn dbss_problems_name_their_keys() {
    let (dir, path) = dbss_dir();
    std::fs::write(dir.path().join("empty.token"), "\n").unwrap();
    let text = format!(
        "targets:\n  - name: d1\n    kind: dbss\n    endpoint: http://dbss.example.com\n    project_id: short\n    instance_id: {INSTANCE}/x\n    token_file: empty.token\n    address: 127.0.0.1:1\n    user: u\n    tenants: [t1]\n    db_ids: [a, a]\n    connect_timeout: 1h\n  - name: d2\n    kind: dbss\n  - name: m\n    kind: mysql\n    address: 127.0.0.1:3306\n    user: u\n    endpoint: https://x.example.com\n    token_file: dbss.token\n"
    );
    let problems = match parse(&path, &text, &|_| None) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("{other:?}"),
    };
    let found: Vec<(String, Option<usize>)> =
        problems.iter().map(|p| (p.key.clone(), p.line)).collect();
    for (key, line) in [
        ("targets[0].endpoint", 4),
        ("targets[0].project_id", 5),
        ("targets[0].instance_id", 6),
        ("targets[0].token_file", 7),
        ("targets[0].address", 8),
        ("targets[0].user", 9),
        ("targets[0].tenants", 10),
        ("targets[0].db_ids[1]", 11),
        ("targets[0].connect_timeout", 12),
        ("targets[1].endpoint", 13),
        ("targets[1].project_id", 13),
        ("targets[1].instance_id", 13),
        ("targets[1].token_file", 13),
        ("targets[2].endpoint", 19),
        ("targets[2].token_file", 20),
    ] {
        assert!(
            found.contains(&(key.to_string(), Some(line))),
            "{key} at {line} missing from {problems:#?}"
        );
    }
    let text = problems
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("clear text"), "{text}");
    assert!(text.contains("32 to 64"), "{text}");
    assert!(text.contains("is empty"), "{text}");
    assert!(!text.contains("MIItoken"), "{text}");
    // A wrong time_range is serde's: it lists the accepted values.
    let err = parse(
        &path,
        &format!("targets:\n  - name: d\n    kind: dbss\n    endpoint: https://x.example.com\n    project_id: {PROJECT}\n    instance_id: {PROJECT}\n    token_file: dbss.token\n    time_range: YEAR\n"),
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("HALF_HOUR") && err.contains(":8:"), "{err}");
}

#[test]
fn another_kind_s_key_is_refused_by_key_with_the_kinds_that_take_it() {
    let (_dir, path) = dbss_dir();
    let text = format!(
        "targets:\n  - name: m\n    kind: mysql\n    address: 127.0.0.1:3306\n    user: u\n    tenant: t1\n  - name: d\n    kind: dbss\n    endpoint: https://x.example.com\n    project_id: {PROJECT}\n    instance_id: {PROJECT}\n    token_file: dbss.token\n    address: 127.0.0.1:1\n"
    );
    let problems = match parse(&path, &text, &|_| None) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("{other:?}"),
    };
    let got: Vec<(&str, Option<usize>, &str)> = problems
        .iter()
        .map(|p| (p.key.as_str(), p.line, p.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "targets[0].tenant",
                Some(6),
                "applies to kind oceanbase only, not to a mysql target; a mysql target has one tenant named after the target: remove it"
            ),
            (
                "targets[1].address",
                Some(13),
                "applies to kinds oceanbase, mysql, postgresql and pgbouncer only, not to a dbss target; a dbss target reads DBSS's report over HTTPS (the endpoint and token_file say where and how): remove it"
            ),
        ]
    );
}

#[test]
fn a_kind_key_of_the_wrong_type_is_one_problem_among_the_others() {
    let found = problems(
        "targets:\n  - name: ob\n    kind: oceanbase\n    address: nowhere\n    user: u\n    tenants: 5\n    top_sessions: many\n",
    );
    let got: Vec<(&str, Option<usize>)> = found.iter().map(|p| (p.key.as_str(), p.line)).collect();
    assert_eq!(
        got,
        [
            ("targets[0].address", Some(4)),
            ("targets[0].tenants", Some(6)),
            ("targets[0].top_sessions", Some(7)),
        ]
    );
    assert!(found[1].message.contains("invalid type"), "{found:?}");
}

#[test]
fn the_keys_of_each_kind_come_from_its_settings_types() {
    let keys = |name: &str| (KINDS.iter().find(|k| k.name == name).unwrap().keys)();
    assert_eq!(
        keys("mysql"),
        [
            "address",
            "user",
            "password",
            "password_file",
            "top_sessions",
            "filter",
            "collect",
            "limits_interval"
        ]
    );
    assert!(keys("oceanbase").contains(&"processlist_view"));
    assert!(keys("oceanbase").contains(&"locks_view"));
    assert!(keys("dbss").contains(&"token_file") && !keys("dbss").contains(&"user"));
}

#[test]
fn obshell_auth_is_read_and_its_problems_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ob.pw"), "root-pw\n").unwrap();
    std::fs::write(dir.path().join("bad.pem"), "not a key\n").unwrap();
    let path = dir.path().join("config.yaml");
    let text = format!(
        "{MINIMAL}passthrough:\n  enabled: true\n  obshell_auth:\n    password_file: ob.pw\n    max_header_lifetime: 2m\n"
    );
    let config = parse(&path, &text, &|_| None).unwrap();
    let auth = config.passthrough.obshell_auth.as_ref().unwrap();
    assert_eq!(auth.password.expose(), "root-pw");
    assert_eq!(auth.max_header_lifetime, Duration::from_secs(120));
    assert!(auth.private_key.is_none());
    assert!(
        config.passthrough.check_auth(None).is_ok(),
        "obshell_auth authenticates"
    );
    assert!(!format!("{config:?}").contains("root-pw"));

    let text = format!(
        "{MINIMAL}passthrough:\n  enabled: true\n  obshell_auth:\n    private_key_file: bad.pem\n    max_header_lifetime: 0s\n"
    );
    let problems = match parse(&path, &text, &|_| None) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("{other:?}"),
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "passthrough.obshell_auth.password_file",
            "passthrough.obshell_auth.private_key_file",
            "passthrough.obshell_auth.max_header_lifetime",
        ],
        "{problems:#?}"
    );
    assert!(problems[0].message.contains("is required"), "{problems:#?}");
    assert!(
        problems[1].message.contains("openssl genpkey"),
        "{problems:#?}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

    /// Any text as a config file: loaded or refused with a message, never a panic.
    #[test]
    fn any_text_is_loaded_or_refused(text in "\\PC{0,200}|(targets:\n  - (name|kind|address|user|password|tenants|labels|filter): [^\n]{0,30}\n){0,5}") {
        let _ = parse(Path::new("fuzz.yaml"), &text, &|_| None).map_err(|e| e.to_string());
    }

    /// Structured YAML with hostile values: every problem names a key.
    #[test]
    fn hostile_values_are_refused_by_key(
        name in "\\PC{0,20}",
        address in "\\PC{0,30}",
        interval in "\\PC{0,8}",
    ) {
        let text = format!(
            "global:\n  collect_interval: {interval:?}\ntargets:\n  - name: {name:?}\n    kind: mysql\n    address: {address:?}\n    user: u\n"
        );
        if let Err(ConfigError::Invalid { problems, .. }) = parse(Path::new("fuzz.yaml"), &text, &|_| None) {
            for problem in problems {
                proptest::prop_assert!(!problem.key.is_empty() && !problem.message.is_empty());
            }
        }
    }
}

#[test]
fn every_kind_is_found_in_kinds_with_its_name_and_expected_tenants() {
    let (_dir, path) = dbss_dir();
    let text = format!(
        "targets:
  - {{name: ob, kind: oceanbase, address: 127.0.0.1:2881, user: m@sys, tenants: [t1, t2]}}
  - {{name: ob-all, kind: oceanbase, address: 127.0.0.1:2881, user: m@sys}}
  - {{name: maria, kind: mysql, address: 127.0.0.1:3306, user: m}}
  - {{name: pg, kind: postgresql, address: 127.0.0.1:5432, user: m}}
  - {{name: audit, kind: dbss, endpoint: https://dbss.example.com, project_id: {PROJECT}, instance_id: {INSTANCE}, token_file: dbss.token, db_ids: [a1]}}
  - {{name: bouncer, kind: pgbouncer, address: 127.0.0.1:6432, user: m}}
"
    );
    let config = parse(&path, &text, &|_| None).unwrap();
    let seen: Vec<(&str, &str, Vec<String>)> = config
        .targets
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.kind.name(),
                t.kind.expected_tenants(&t.name),
            )
        })
        .collect();
    let s = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(
        seen,
        [
            ("ob", "oceanbase", s(&["t1", "t2"])),
            ("ob-all", "oceanbase", s(&[])),
            ("maria", "mysql", s(&["maria"])),
            ("pg", "postgresql", s(&["pg"])),
            ("audit", "dbss", s(&[])),
            ("bouncer", "pgbouncer", s(&["bouncer"])),
        ]
    );
    // Every registered kind was among them: a new kind extends this test.
    let mut kinds: Vec<&str> = seen.iter().map(|(_, kind, _)| *kind).collect();
    kinds.dedup();
    let registered: Vec<&str> = KINDS.iter().map(|entry| entry.name).collect();
    assert_eq!(kinds, registered);
}

/// `access`: what each credential may do, tenant by tenant; without it, every
/// credential reads every tenant and only the token and obshell's password kill.
#[test]
fn access_grants_reads_and_kills_per_credential_and_tenant() {
    use crate::web::auth::Principal;
    let user = |name: &str| Principal::User(name.to_string());
    let open = parse_str(&format!("{MINIMAL}passthrough:\n  allow_kill: true\n")).unwrap();
    let grant = |config: &Config, who: &Principal, tenant: &str| {
        let g = config.passthrough.grant(who, tenant);
        (g.read, g.kill)
    };
    assert_eq!(grant(&open, &Principal::Token, "t1"), (true, true));
    assert_eq!(grant(&open, &Principal::Obshell, "t1"), (true, true));
    assert_eq!(
        grant(&open, &user("prometheus"), "t1"),
        (true, false),
        "basic auth users never kill"
    );
    assert!(open.passthrough.admits(&user("prometheus")));

    let scoped = parse_str(&format!(
        "{MINIMAL}passthrough:\n  allow_kill: true\n  access:\n    - users: [oncall, token]\n      tenants: [\"shop_*\", ob1]\n      kill: true\n    - users: [prometheus]\n      tenants: [\"shop_?\"]\n"
    ))
    .unwrap();
    assert_eq!(grant(&scoped, &user("oncall"), "shop_eu"), (true, true));
    assert_eq!(grant(&scoped, &Principal::Token, "ob1"), (true, true));
    assert_eq!(
        grant(&scoped, &user("oncall"), "ob10"),
        (false, false),
        "globs match whole names"
    );
    assert_eq!(
        grant(&scoped, &user("oncall"), "SHOP_EU"),
        (false, false),
        "case matters"
    );
    assert_eq!(grant(&scoped, &user("prometheus"), "shop_1"), (true, false));
    assert_eq!(
        grant(&scoped, &user("prometheus"), "shop_eu"),
        (false, false)
    );
    assert!(
        !scoped.passthrough.admits(&Principal::Obshell),
        "in no entry"
    );
    assert_eq!(grant(&scoped, &Principal::Obshell, "ob1"), (false, false));

    // Without allow_kill, no entry kills.
    let off = parse_str(&format!(
        "{MINIMAL}passthrough:\n  access:\n    - users: [oncall]\n      kill: true\n"
    ))
    .unwrap();
    assert_eq!(grant(&off, &user("oncall"), "any"), (true, false));
}

/// The names `access` gives must exist: a user of the web config, a configured
/// token or obshell password; a web config user cannot be called `token`.
#[test]
fn access_names_only_credentials_that_exist() {
    let dir = tempfile::tempdir().unwrap();
    let web = |users: &str| {
        let path = dir.path().join("web.yml");
        let hash = bcrypt::hash("pw", 4).unwrap();
        let text: String = users
            .split(',')
            .map(|u| format!("  {u}: '{hash}'\n"))
            .collect();
        std::fs::write(&path, format!("basic_auth_users:\n{text}")).unwrap();
        crate::web::config::load(&path).unwrap()
    };
    let config = |users: &str| {
        parse_str(&format!(
            "{MINIMAL}passthrough:\n  enabled: true\n  access:\n    - users: [{users}]\n"
        ))
        .unwrap()
    };
    let (oncall, named_token) = (web("oncall"), web("oncall,token"));
    assert!(config("oncall")
        .passthrough
        .check_auth(oncall.auth.as_deref())
        .is_ok());
    let missing = config("bob")
        .passthrough
        .check_auth(oncall.auth.as_deref())
        .unwrap_err();
    assert!(
        missing.contains("passthrough.access[0].users: `bob` is not a basic_auth_users entry"),
        "{missing}"
    );
    let no_token = config("token")
        .passthrough
        .check_auth(oncall.auth.as_deref())
        .unwrap_err();
    assert!(
        no_token.contains("bearer_token_file is not set"),
        "{no_token}"
    );
    let no_obshell = config("obshell")
        .passthrough
        .check_auth(oncall.auth.as_deref())
        .unwrap_err();
    assert!(
        no_obshell.contains("obshell_auth is not set"),
        "{no_obshell}"
    );
    let clash = config("oncall")
        .passthrough
        .check_auth(named_token.auth.as_deref())
        .unwrap_err();
    assert!(clash.contains("rename the user"), "{clash}");

    let wrong = problems(&format!(
        "{MINIMAL}passthrough:\n  access: []\n  allowed_hosts: [\"http://x.example\", \"\"]\n"
    ));
    let keys: Vec<&str> = wrong.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "passthrough.access",
            "passthrough.allowed_hosts[0]",
            "passthrough.allowed_hosts[1]",
        ]
    );
}

/// The Host names the session API serves: IP literals, localhost, `allowed_hosts`,
/// each with or without a port, and nothing else.
#[test]
fn the_api_serves_ip_literals_localhost_and_allowed_hosts() {
    let config = parse_str(&format!(
        "{MINIMAL}passthrough:\n  allowed_hosts: [Exporter.Example]\n"
    ))
    .unwrap();
    let serves = |host: &str| config.passthrough.serves_host(host);
    for host in [
        "127.0.0.1",
        "127.0.0.1:9767",
        "10.1.2.3:80",
        "[::1]",
        "[::1]:9767",
        "[2001:db8::1]:9767",
        "localhost",
        "LOCALHOST:9767",
        "localhost.",
        "exporter.example",
        "EXPORTER.example:9767",
        "exporter.example.:9767",
    ] {
        assert!(serves(host), "{host} is served");
    }
    for host in [
        "",
        "attacker.example",
        "attacker.example:9767",
        "127.0.0.1.attacker.example",
        "exporter.example.attacker.example",
        "localhost.attacker.example",
        "[::1]anything",
        "[::1]:",
        "[::1]:port",
        "[not-an-ip]:9767",
        "127.0.0.1:",
        "127.0.0.1:x",
        "exporter.example:99:99",
        "::1",
    ] {
        assert!(!serves(host), "{host} is refused");
    }
}

/// Filter names go into SQL as string literals, quoted by doubling `'`: what that
/// cannot quote alike in every engine and SQL mode (a backslash, which MySQL reads
/// as an escape unless NO_BACKSLASH_ESCAPES, a control character) is refused at
/// load with its key, so no literal can be broken open.
#[test]
fn filter_names_that_quoting_cannot_keep_whole_are_refused() {
    let refused = problems(&format!(
        "{MINIMAL}    filter:\n      users:\n        deny: [\"o'brien\", 'a\\b', \"tab\\there\", \"\"]\n"
    ));
    let keys: Vec<&str> = refused.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "targets[0].filter.users.deny[1]",
            "targets[0].filter.users.deny[2]",
            "targets[0].filter.users.deny[3]",
        ],
        "{refused:?}"
    );
    assert!(refused[0].message.contains("without backslashes"));
}

/// `behind:` names targets of a kind that stands in front (PgBouncer), in any
/// file: another kind, or no such target, is a problem naming both.
#[test]
fn behind_names_a_target_in_front() {
    let text = "targets:
  - {name: pg, kind: postgresql, address: 127.0.0.1:5432, user: m, behind: [pgb, maria, ghost]}
  - {name: pgb, kind: pgbouncer, address: 127.0.0.1:6432, user: m}
  - {name: maria, kind: mysql, address: 127.0.0.1:3306, user: m}
";
    let messages: Vec<String> = problems(text).into_iter().map(|p| p.message).collect();
    assert_eq!(
        messages,
        [
            "target `pg`: behind: `maria` is a mysql target: name pgbouncer targets in front of it",
            "target `pg`: behind: there is no target `ghost`: name pgbouncer targets in front of it",
        ]
    );
    assert!(parse_str(&text.replace(", maria, ghost", "")).is_ok());
}
