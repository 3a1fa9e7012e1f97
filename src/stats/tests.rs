//! The aggregation's unit and property tests.

use super::*;

fn group(
    tenant: &str,
    db: &str,
    user: &str,
    client: &str,
    active: bool,
    n: u64,
    t: f64,
) -> SessionGroup {
    SessionGroup {
        tenant: tenant.into(),
        server: "10.0.0.1".into(),
        db: db.into(),
        user: user.into(),
        client: client.into(),
        active: if active { n } else { 0 },
        sessions: n,
        max_active_time: if active { t } else { 0.0 },
        ..SessionGroup::default()
    }
}

#[test]
fn aggregates_rows_into_every_dimension() {
    let stats = aggregate(SessionRows {
        tenants: vec!["t1".into(), "empty".into()],
        groups: vec![
            group("t1", "app", "root", "10.0.0.100", true, 3, 12.5),
            group("t1", "app", "root", "10.0.0.100", false, 4, 999.0),
            group("t1", "sys", "admin", "10.0.0.101", true, 1, 3600.5),
            group("t1", NONE_LABEL, "admin", "10.0.0.101", false, 2, 7.0),
        ],
        top: vec![],
    });
    assert_eq!(stats.len(), 2);
    assert_eq!(stats["empty"], TenantStats::default());
    let t1 = &stats["t1"];
    assert_eq!((t1.sessions, t1.active_sessions), (10, 4));
    // The sleeping group's 999 s does not count: only active sessions do.
    assert_eq!(t1.max_active_time, 3600.5);
    let c = |sessions, active| Counts {
        sessions,
        active,
        ..Counts::default()
    };
    assert_eq!(
        t1.by_db,
        BTreeMap::from([
            (NONE_LABEL.into(), c(2, 0)),
            ("app".into(), c(7, 3)),
            ("sys".into(), c(1, 1)),
        ])
    );
    assert_eq!(
        t1.by_user,
        BTreeMap::from([("admin".into(), c(3, 1)), ("root".into(), c(7, 3))])
    );
    assert_eq!(
        t1.by_client,
        BTreeMap::from([
            ("10.0.0.100".into(), c(7, 3)),
            ("10.0.0.101".into(), c(3, 1))
        ])
    );
    assert_eq!(
        t1.by_server,
        BTreeMap::from([("10.0.0.1".into(), c(10, 4))])
    );
}

#[test]
fn top_sessions_are_ranked_per_tenant() {
    let top = |tenant: &str, id: u64, time: f64| TopSession {
        tenant: tenant.into(),
        session_id: id,
        user: "u".into(),
        db: "d".into(),
        client: "c".into(),
        sql_id: String::new(),
        time,
    };
    let stats = aggregate(SessionRows {
        tenants: vec!["a".into(), "b".into()],
        groups: vec![],
        top: vec![
            top("a", 7, 1.0),
            top("b", 1, 5.0),
            top("a", 3, 9.5),
            top("a", 2, 1.0),
        ],
    });
    let ids = |t: &str| {
        stats[t]
            .top
            .iter()
            .map(|s| s.session_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids("a"), [3, 2, 7]);
    assert_eq!(ids("b"), [1]);
    assert_eq!(
        stats["a"].sessions, 0,
        "top rows are not counted as sessions"
    );
}

/// Active sessions kept in groups of their own are the top sessions: however
/// many arrive, in whatever order, the `keep` longest are kept, and each still
/// counts once.
#[test]
fn sessions_kept_apart_are_the_top_sessions() {
    let mut aggregator = Aggregator::new(3, CollectParts::default());
    // 1,000 active threads, times in a scrambled order, and one idle kept apart.
    for i in 0..1000u64 {
        let time = ((i * 7919) % 1000) as f64;
        aggregator.add_group(SessionGroup {
            session: Some(OneSession {
                id: 5000 + i,
                ..OneSession::default()
            }),
            ..group("t", "d", "u", "c", true, 1, time)
        });
    }
    aggregator.add_group(SessionGroup {
        session: Some(OneSession {
            id: 1,
            ..OneSession::default()
        }),
        ..group("t", "d", "u", "c", false, 1, 5000.0)
    });
    let stats = aggregator.finish().into_tenants();
    let t = &stats["t"];
    assert_eq!(
        (t.sessions, t.active_sessions, t.max_active_time),
        (1001, 1000, 999.0)
    );
    let top: Vec<(u64, f64)> = t.top.iter().map(|s| (s.session_id, s.time)).collect();
    // i * 7919 % 1000 is 999, 998, 997 for i = 321, 642, 963.
    assert_eq!(top, [(5321, 999.0), (5642, 998.0), (5963, 997.0)]);
}

#[test]
fn interleaved_tenants_stay_apart() {
    let stats = aggregate(SessionRows {
        tenants: vec!["t3".into()],
        groups: vec![
            group("t1", "d", "u", "10.0.0.1", true, 2, 5.0),
            group("t2", "d", "u", "10.0.0.1", false, 3, 0.0),
            group("t1", "e", "u", "10.0.0.2", false, 4, 0.0),
            group("t2", "d", "v", "10.0.0.1", true, 1, 9.0),
        ],
        top: vec![],
    });
    let (t1, t2) = (&stats["t1"], &stats["t2"]);
    assert_eq!(
        (t1.sessions, t1.active_sessions, t1.max_active_time),
        (6, 2, 5.0)
    );
    assert_eq!(
        (t2.sessions, t2.active_sessions, t2.max_active_time),
        (4, 1, 9.0)
    );
    assert_eq!(t1.by_db.len(), 2);
    assert_eq!(t2.by_user.len(), 2);
    assert_eq!(stats["t3"].sessions, 0);
    assert_eq!(stats.len(), 3);
}

#[test]
fn rows_that_normalize_alike_are_added_up() {
    let stats = aggregate(SessionRows {
        tenants: vec![],
        groups: vec![
            group("t", "d", "u", &client_label("[::1]".into()), false, 1, 0.0),
            group("t", "d", "u", &client_label("::1".into()), false, 2, 0.0),
        ],
        top: vec![],
    });
    assert_eq!(
        stats["t"].by_client["::1"],
        Counts {
            sessions: 3,
            active: 0,
            ..Counts::default()
        }
    );
}

#[test]
fn a_zero_row_names_a_tenant_without_sessions() {
    // The cluster query LEFT JOINs tenants to sessions: an idle tenant comes back
    // as one row with a count of 0 and must not create `__none__` dimension values.
    let stats = aggregate(SessionRows {
        tenants: vec!["idle".into()],
        groups: vec![group("idle", NONE_LABEL, "", NONE_LABEL, false, 0, 0.0)],
        top: vec![],
    });
    assert_eq!(stats["idle"], TenantStats::default());
}

#[test]
fn the_guard_keeps_the_largest_and_sums_the_rest() {
    let mut stats = aggregate(SessionRows {
        tenants: vec![],
        groups: (1..=10)
            .map(|i| group("t", "d", &format!("u{i:02}"), "c", i % 2 == 0, i, 0.0))
            .collect(),
        top: vec![],
    })
    .remove("t")
    .unwrap();
    let before = stats.clone();
    stats.cap(4);
    let c = |sessions, active| Counts {
        sessions,
        active,
        ..Counts::default()
    };
    assert_eq!(
        stats.by_user,
        BTreeMap::from([
            ("u10".into(), c(10, 10)),
            ("u09".into(), c(9, 0)),
            ("u08".into(), c(8, 8)),
            (OTHER_LABEL.into(), c(28, 12)),
        ])
    );
    assert_eq!(
        stats.dropped,
        Dropped {
            db: 0,
            user: 7,
            client: 0,
            state: 0,
            application: 0,
            wait: 0,
        }
    );
    assert_eq!(
        (stats.sessions, stats.active_sessions),
        (before.sessions, before.active_sessions)
    );
    assert_eq!(stats.by_db, before.by_db, "under the limit: untouched");

    let mut off = before.clone();
    off.cap(0);
    assert_eq!(off, before);
    let mut exact = before.clone();
    exact.cap(10);
    assert_eq!(
        exact.by_user, before.by_user,
        "exactly at the limit: untouched"
    );
}

/// One rule for a real value spelled like the marker, for every key type: it is
/// summed with the rest and counted, never kept beside the marker.
#[test]
fn a_real_other_value_is_summed_and_counted() {
    let c = |sessions| Counts {
        sessions,
        ..Counts::default()
    };
    let mut by_db: BTreeMap<String, Counts> = [
        ("a".to_string(), c(9)),
        (OTHER_LABEL.to_string(), c(8)),
        ("b".to_string(), c(1)),
    ]
    .into();
    assert_eq!(cap(&mut by_db, 2, OTHER_LABEL.to_string()), 2);
    assert_eq!(
        by_db,
        BTreeMap::from([("a".to_string(), c(9)), (OTHER_LABEL.to_string(), c(9))])
    );
}

#[test]
fn host_port_is_cut() {
    for (host, expected) in [
        ("10.0.0.5:51234", "10.0.0.5"),
        ("[fe80::1]:2881", "[fe80::1]"),
        ("::1:51234", "::1"),
        ("db.example:3306", "db.example"),
        ("localhost", "localhost"),
        ("", ""),
        ("  10.0.0.5:1 ", "10.0.0.5"),
        ("host:", "host:"),
        ("host:abc", "host:abc"),
    ] {
        assert_eq!(host_without_port(host), expected, "{host:?}");
    }
}

#[test]
fn client_labels_are_canonical() {
    for (host, expected) in [
        ("10.0.0.5", "10.0.0.5"),
        ("[fe80::1]", "fe80::1"),
        ("::ffff:127.0.0.9", "127.0.0.9"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("app-7.example", "app-7.example"),
        ("", NONE_LABEL),
        ("[]", NONE_LABEL),
        (" 10.0.0.5 ", "10.0.0.5"),
        (" app-7.example\t", "app-7.example"),
        ("[app]", "app"),
        ("[[]]", NONE_LABEL),
        ("[[::1]]", "::1"),
    ] {
        assert_eq!(client_label(host.to_string()), expected, "{host:?}");
    }
}

mod properties {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any HOST text: no panic, the cut is a prefix, and labels are stable.
        #[test]
        fn host_and_client_parsing_never_fail(host in "\\PC{0,60}|[0-9a-f:.\\[\\]]{0,40}") {
            let cut = host_without_port(&host);
            proptest::prop_assert!(host.trim().starts_with(cut));
            let label = client_label(cut.to_string());
            proptest::prop_assert!(!label.is_empty());
            proptest::prop_assert_eq!(client_label(label.clone()), label);
        }
    }
}
