//! The OceanBase kind's unit tests: its statements, and its cycle on fixed answers.

use super::*;
use crate::config::testing;
use crate::sql::fixtures::{block_on, counts as c, pairs, row, DriverFailed, Scripted};
use crate::sql::SqlError;
use crate::stats::{Collected, TopSession, NONE_LABEL};

#[test]
fn single_tenant_name_sources_in_order() {
    let name = |user: &str| single_tenant_name("ob", &testing::oceanbase(user));
    assert_eq!(name("monitor@t1"), "t1");
    assert_eq!(name("monitor@t1#prod"), "t1");
    assert_eq!(name("prod:t2:monitor"), "t2");
    assert_eq!(name("monitor"), "ob");
    assert_eq!(name("monitor@"), "ob");
    let mut settings = testing::oceanbase("monitor@t1");
    settings.tenant = Some("configured".into());
    assert_eq!(single_tenant_name("ob", &settings), "configured");
}

/// The history is read after each server's newest sample counted, behind one
/// cheap comparison; a value that is not an address and a time is left out.
#[test]
fn ash_reads_follow_each_server_and_quote_nothing_foreign() {
    assert_eq!(ash_condition(&Default::default()), "1 = 1");
    let since = [
        ("10.0.0.1:2882", "2026-12-04 10:00:01.5"),
        ("10.0.0.2:2882", "2026-12-04 10:00:00"),
        ("x'; DROP TABLE t; --:1", "2026-12-04 10:00:00"),
        ("10.0.0.3:2882", "now'"),
    ]
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .into_iter()
    .collect();
    assert_eq!(
        ash_condition(&since),
        "h.SAMPLE_TIME > '2026-12-04 10:00:00' AND (CONCAT(h.SVR_IP, ':', h.SVR_PORT) \
         NOT IN ('10.0.0.1:2882', '10.0.0.2:2882') \
         OR (h.SVR_IP = '10.0.0.1' AND h.SVR_PORT = 2882 AND h.SAMPLE_TIME > '2026-12-04 10:00:01.5') \
         OR (h.SVR_IP = '10.0.0.2' AND h.SVR_PORT = 2882 AND h.SAMPLE_TIME > '2026-12-04 10:00:00'))"
    );
}

#[test]
fn cluster_statements_filter_tenants_and_read_configured_views() {
    let mut settings = testing::oceanbase("monitor@sys");
    let st = cycle(&settings, Mode::Cluster, true);
    let sql = &st.ungrouped;
    let detailed = "p.STATE = 'ACTIVE' OR p.TRANS_STATE <> ''";
    assert_eq!(
        st.detailed,
        format!("{sql} AND ({detailed})"),
        "the same read, of the sessions with particulars"
    );
    // The others, grouped by raw columns, the key made once a group: no transaction.
    assert!(
        st.idle_groups.ends_with(&format!(
            " AND CASE WHEN {detailed} THEN 0 ELSE 1 END = 1 GROUP BY p.TENANT, p.SVR_IP, \
             p.COMMAND, p.STATE, p.USER_CLIENT_IP, p.MODULE, p.CLIENT_INFO, p.USER, p.DB"
        )),
        "{}",
        st.idle_groups
    );
    assert!(
        st.idle_groups.contains(
            "IFNULL(p.STATE, ''), '', IFNULL(p.USER_CLIENT_IP, ''), \
             IFNULL(IF(p.MODULE <> '', p.MODULE, p.CLIENT_INFO), '')), p.USER, p.DB, NULL, COUNT(*) FROM"
        ),
        "{}",
        st.idle_groups
    );
    assert!(sql.starts_with("/* session_exporter "));
    assert_eq!(
        sql.matches("GV$OB_PROCESSLIST").count(),
        1,
        "read once: {sql}"
    );
    assert!(
        sql.contains("FROM `oceanbase`.`GV$OB_PROCESSLIST` p WHERE"),
        "no join: {sql}"
    );
    assert!(
        sql.contains(
            "CONCAT_WS(CHAR(0), IFNULL(p.TENANT, ''), IFNULL(p.SVR_IP, ''), \
             IFNULL(p.COMMAND, ''), IFNULL(p.STATE, ''), \
             IFNULL(p.TRANS_STATE, ''), IFNULL(p.USER_CLIENT_IP, ''), \
             IFNULL(IF(p.MODULE <> '', p.MODULE, p.CLIENT_INFO), '')), p.USER, p.DB, \
             CASE WHEN p.STATE = 'ACTIVE' OR p.TRANS_STATE <> '' THEN"
        ),
        "{sql}"
    );
    for absent in ["GROUP BY", "OVER", "UNION", "JOIN", "p.INFO"] {
        assert!(!sql.contains(absent), "no {absent}: {sql}");
    }
    assert!(sql.contains("IF(p.STATE = 'ACTIVE', IFNULL(p.SQL_ID, ''), '')"));
    assert!(sql.contains(&format!(
        "NOT (p.ID IN ({OWN_SESSIONS}) AND p.SVR_IP = HOST_IP())"
    )));
    let particulars = st.particulars.as_deref().unwrap();
    assert!(
        particulars.contains(
            "SELECT 0, t.TENANT_NAME, NULL, NULL, NULL FROM `oceanbase`.`DBA_OB_TENANTS` t \
             WHERE t.TENANT_TYPE <> 'META'"
        ),
        "a zero row per tenant: {particulars}"
    );
    assert!(particulars.contains(
        "SELECT 1, CONCAT_WS(',', s.SVR_IP, s.SVR_PORT, s.SESSION_ID, s.ACTIVE_TIME), NULL, \
         NULL, NULL FROM `oceanbase`.`GV$OB_TRANSACTION_SCHEDULERS` s UNION ALL SELECT 4, \
         NULL, NULL, NULL, NOW(6)"
    ));
    assert_eq!(
        particulars
            .matches("FROM `oceanbase`.`GV$OB_LOCKS` l WHERE l.BLOCK = 1")
            .count(),
        2
    );
    assert!(
        !particulars.contains("PROCESSLIST"),
        "particulars never join the processlist: {particulars}"
    );
    let fallback = &st.fallback;
    assert!(fallback.contains("AND (p.USER_CLIENT_IP = '' OR p.USER_CLIENT_IP IS NULL)"));
    assert!(
        fallback.contains(
            "AND CASE WHEN p.STATE = 'ACTIVE' OR p.TRANS_STATE <> '' THEN 0 ELSE 1 END = 1"
        ),
        "only the sessions without particulars: {fallback}"
    );
    assert!(fallback.contains("p.HOST REGEXP"), "{fallback}");
    assert!(!fallback.contains("UNION"), "{fallback}");

    // Without TRANS_STATE the read joins the transactions view instead.
    let st = cycle(&settings, Mode::Cluster, false);
    for read in [&st.ungrouped, &st.idle_groups, &st.detailed] {
        assert!(read.contains("LEFT JOIN `oceanbase`.`GV$OB_TRANSACTION_SCHEDULERS` s"));
        assert!(read.contains("OR s.SESSION_ID IS NOT NULL"), "{read}");
    }

    settings.tenants = Some(vec!["t1".into(), "t2".into()]);
    settings.processlist_view = Some(Relation::parse("test.PL").unwrap());
    settings.transactions_view = Some(Relation::parse("test.TX").unwrap());
    settings.locks_view = Some(Relation::parse("test.LK").unwrap());
    let st = cycle(&settings, Mode::Cluster, true);
    for read in [&st.ungrouped, &st.idle_groups, &st.detailed] {
        assert!(read.contains("AND p.TENANT IN ('t1', 't2')"), "{read}");
        assert!(read.contains("FROM `test`.`PL` p WHERE"), "{read}");
    }
    let particulars = st.particulars.unwrap();
    assert!(particulars.contains("AND t.TENANT_NAME IN ('t1', 't2')"));
    assert!(particulars.contains("FROM `test`.`TX` s"));
    assert_eq!(
        particulars
            .matches("FROM `test`.`LK` l WHERE l.BLOCK = 1")
            .count(),
        2
    );

    settings.database.collect = crate::stats::CollectParts {
        states: true,
        ..crate::stats::CollectParts::NONE
    };
    let st = cycle(&settings, Mode::Cluster, true);
    assert!(!st.ungrouped.contains("TRANS_STATE"), "{st:?}");
    assert!(
        st.ungrouped.contains("CASE WHEN p.STATE = 'ACTIVE' THEN"),
        "{}",
        st.ungrouped
    );
    assert!(
        st.idle_groups.ends_with(
            "GROUP BY p.TENANT, p.SVR_IP, p.COMMAND, p.STATE, p.USER_CLIENT_IP, p.USER, p.DB"
        ),
        "{}",
        st.idle_groups
    );
    let particulars = st.particulars.unwrap();
    assert!(
        !particulars.contains("`test`.`TX`") && !particulars.contains("`test`.`LK`"),
        "{particulars}"
    );
    let st = cycle(&settings, Mode::SingleTenant, true);
    assert!(st.particulars.is_none(), "{st:?}");
    assert!(st
        .ungrouped
        .contains("CONCAT_WS(CHAR(0), '', '', IFNULL(p.COMMAND, '')"));
    assert!(st
        .idle_groups
        .ends_with("GROUP BY p.COMMAND, p.STATE, p.USER_CLIENT_IP, p.USER, p.DB"));
}

fn rows(texts: &[&str]) -> Vec<Vec<mysql_async::Value>> {
    texts.iter().map(|text| row(text)).collect()
}

/// Runs `cycle` on `conn` in `shape`: what it collected, and the statements it
/// sent in order.
fn run(
    cycle: &Cycle,
    conn: &mut Scripted,
    ctx: &RowContext<'_>,
    tenants: &[&str],
    shape: &mut Shape,
) -> (Result<Collected, SqlError<DriverFailed>>, Vec<String>) {
    let collected = block_on(cycle.run(conn, ctx, tenants, shape));
    (collected, conn.take_sent())
}

/// A per-session row as a test writes it: [`row`], with the key's fields
/// separated by `/` instead of NUL.
fn session(text: &str) -> Vec<mysql_async::Value> {
    let (key, rest) = text.split_once('|').unwrap();
    row(&format!("{}|{rest}", key.replace('/', "\0")))
}

/// Fixed rows of a cluster in, exact statistics out: two servers, a tenant
/// without sessions (its zero row), OceanBase's string `NULL` for no database, an
/// idle session's TIME not counted, the particulars matched by server, port and
/// id (transactions) or by transaction and id (locks), a session without a
/// client address named by its HOST when it has particulars and held back for
/// the fallback when not, and the longest active sessions and blockers named.
#[test]
fn cluster_rows_give_exact_statistics() {
    let settings = testing::oceanbase("monitor@sys");
    let ctx = row_context(&settings, "", Mode::Cluster);
    let cycle = cycle(&settings, Mode::Cluster, true);
    let particulars = rows(&[
        "0|t1|∅|∅|∅",
        "0|idle|∅|∅|∅",
        "4|∅|∅|∅|2026-12-03 12:00:50",
        "1|10.0.0.1,2882,3221487,2026-12-03 12:00:45|∅|∅|∅",
        "1|10.0.0.2,2882,200,2026-12-03 12:00:00|∅|∅|∅",
        "1|10.0.0.2,2882,3221490,2026-12-03 12:00:44|∅|∅|∅",
        // Session 200 of another server: not the one below.
        "1|10.0.0.1,2882,200,2026-12-03 11:59:33|∅|∅|∅",
        // A NULL in the row: no session is matched.
        "1|10.0.0.2,2882,201|∅|∅|∅",
        "2|∅|6|3221490|4.5",
        "2|∅|99|1|60",
        "3|∅|7|3221487|2",
    ]);
    let sessions: Vec<_> = [
        "t1/10.0.0.1/Query/ACTIVE//10.0.0.100/web|root|app|2882,100,11,0,,10.0.0.100:1",
        "t1/10.0.0.1/Sleep/SLEEP//10.0.0.100/web|root|app|∅",
        "t1/10.0.0.1/Query/ACTIVE/ACTIVE/10.0.0.100/|root|app|2882,3221487,12.5,7,SQL1,h:2",
        "t1/10.0.0.2/Sleep/SLEEP//10.0.0.100/|root|NULL|∅",
        "t1/10.0.0.2/Sleep/SLEEP//10.0.0.100/|root|NULL|∅",
        "t1/10.0.0.2/Sleep/SLEEP/IMPLICIT_ACTIVE/10.0.0.100/|root|NULL|2882,200,40,8,,h:3",
        "t1/10.0.0.2/Sleep/SLEEP/IMPLICIT_ACTIVE//|root|NULL|2882,201,3,9,,10.0.0.100:4",
        "t1/10.0.0.2/Query/ACTIVE/ACTIVE/::ffff:10.0.0.7/|etl|app|2882,3221490,30,6,,h:9",
        // Held back for the fallback: no address, no particulars.
        "t1/10.0.0.2/Sleep/SLEEP///|root|NULL|∅",
        // Not a listed tenant: dropped.
        "META$1/10.0.0.2/Query/ACTIVE//10.0.0.7/|etl|app|2882,5,99,0,,h:1",
    ]
    .into_iter()
    .map(session)
    .collect();
    let particulars_sql = cycle.particulars.clone().unwrap();
    let mut conn = Scripted::default()
        .answer(&particulars_sql, particulars)
        .answer(&cycle.ungrouped, sessions);
    let mut shape = Shape { ungrouped: true };
    let (collected, sent) = run(&cycle, &mut conn, &ctx, &[], &mut shape);
    // A session was held back: its clients are read by the fallback, after the
    // particulars and the sessions.
    assert_eq!(
        sent,
        [
            particulars_sql,
            cycle.ungrouped.clone(),
            cycle.fallback.clone()
        ]
    );
    let collected = collected.unwrap();
    // Nine sessions added and two zero rows.
    assert_eq!(collected.rows, 11);
    let tenants = collected.into_tenants();
    assert_eq!(tenants.keys().collect::<Vec<_>>(), ["idle", "t1"]);
    assert_eq!(tenants["idle"], Default::default());
    let t1 = &tenants["t1"];
    assert_eq!(
        (t1.sessions, t1.active_sessions, t1.max_active_time),
        (8, 3, 30.0)
    );
    assert_eq!(pairs(&t1.by_db), [(NONE_LABEL, c(4, 0)), ("app", c(4, 3))]);
    assert_eq!(pairs(&t1.by_user), [("etl", c(1, 1)), ("root", c(7, 2))]);
    assert_eq!(
        pairs(&t1.by_client),
        [("10.0.0.100", c(7, 2)), ("10.0.0.7", c(1, 1))]
    );
    // MODULE (else CLIENT_INFO) in the key's last field; the SQL id of the active
    // sessions that run one. OceanBase's waits are its active session history.
    assert_eq!(
        pairs(&t1.by_application),
        [(NONE_LABEL, c(6, 2)), ("web", c(2, 1))]
    );
    assert_eq!(
        t1.by_statement.iter().collect::<Vec<_>>(),
        [(&"SQL1".to_string(), &1)]
    );
    assert!(t1.by_wait.is_empty());
    assert_eq!(
        pairs(&t1.by_server),
        [("10.0.0.1", c(3, 2)), ("10.0.0.2", c(5, 1))]
    );
    let top: Vec<(u64, &str, f64)> = t1
        .top
        .iter()
        .map(|s: &TopSession| (s.session_id, s.sql_id.as_str(), s.time))
        .collect();
    assert_eq!(
        top,
        [
            (3221490, "", 30.0),
            (3221487, "SQL1", 12.5),
            (100, "", 11.0)
        ]
    );
    assert_eq!(
        (t1.transaction_sessions, t1.idle_in_transaction_sessions),
        (4, 2)
    );
    assert_eq!(
        (t1.max_transaction_age, t1.max_idle_in_transaction),
        (50.0, 40.0)
    );
    assert_eq!((t1.lock_waiting_sessions, t1.max_lock_wait), (1, 4.5));
    let blockers: Vec<(u64, &str, &str, u64)> = t1
        .blockers
        .iter()
        .map(|b| (b.session_id, b.user.as_str(), b.client.as_str(), b.waiters))
        .collect();
    assert_eq!(blockers, [(3221487, "root", "10.0.0.100", 2)]);
    let by_state: Vec<(&str, &str, u64)> = t1
        .by_state
        .iter()
        .map(|((command, state), n)| (command.as_str(), state.as_str(), *n))
        .collect();
    assert_eq!(by_state, [("Query", "ACTIVE", 3), ("Sleep", "SLEEP", 5)]);
}

/// A row that does not have the shape of the statement is the cycle's error,
/// never a panic or a silently wrong count.
#[test]
fn malformed_session_rows_are_errors() {
    let settings = testing::oceanbase("monitor@sys");
    let ctx = row_context(&settings, "", Mode::Cluster);
    let cycle = cycle(&settings, Mode::Cluster, true);
    let particulars = cycle.particulars.clone().unwrap();
    for (text, of_session, says) in [
        (
            "t1/10.0.0.1/Query/ACTIVE|root|app|∅",
            true,
            "4 fields, not 7",
        ),
        ("t1/a/Query/ACTIVE//x/|root|app", true, "expected 4 columns"),
        (
            "t1/a/Query/ACTIVE//x/|root|app|2882,1,2",
            true,
            "fewer than 6",
        ),
        (
            "t1/a/Query/ACTIVE//x/|root|app|2882,x,1,1,,h",
            true,
            "column ID",
        ),
        ("7|∅|∅|∅|∅", false, "kind 7"),
        ("1|a,-1,2,2026-01-01 00:00:00|∅|∅|∅", false, "SVR_PORT"),
        ("1|a,1,2,yesterday|∅|∅|∅", false, "not a date and time"),
        ("4|∅|∅|∅|soon", false, "NOW(6)"),
    ] {
        let mut conn = match of_session {
            true => Scripted::default().answer(&cycle.idle_groups, vec![session(text)]),
            false => Scripted::default().answer(&particulars, vec![row(text)]),
        };
        let (collected, sent) = run(&cycle, &mut conn, &ctx, &[], &mut Shape::default());
        let Err(SqlError::Answer(err)) = collected else {
            panic!("{text}: {collected:?}");
        };
        let err = err.to_string();
        assert!(err.contains(says), "{text}: {err}");
        // Nothing is sent after the statement that answered wrong.
        assert_eq!(sent.len(), if of_session { 2 } else { 1 }, "{text}");
    }
}

/// Read in two statements: the sessions without particulars grouped, their rows
/// counting their sessions in a fifth column, then each session with particulars in
/// a row of its own (its id is in them).
#[test]
fn grouped_rows_count_their_sessions() {
    let settings = testing::oceanbase("monitor@sys");
    let ctx = row_context(&settings, "", Mode::Cluster);
    let cycle = cycle(&settings, Mode::Cluster, true);
    let particulars = cycle.particulars.clone().unwrap();
    let detailed: Vec<_> = [
        "t1/10.0.0.1/Sleep/SLEEP/ACTIVE/10.0.0.100/|app|shop|2882,7,12,0,,",
        "t1/10.0.0.2/Query/ACTIVE//10.0.0.101/|app|shop|2882,8,3,0,S8,",
    ]
    .into_iter()
    .map(session)
    .collect();
    let mut conn = Scripted::default()
        .answer(&particulars, rows(&["0|t1|∅|∅|∅"]))
        .answer(
            &cycle.idle_groups,
            vec![session(
                "t1/10.0.0.1/Sleep/SLEEP//10.0.0.100/|app|shop|∅|40",
            )],
        )
        .answer(&cycle.detailed, detailed);
    let mut shape = Shape::default();
    let (collected, sent) = run(&cycle, &mut conn, &ctx, &[], &mut shape);
    assert_eq!(
        sent,
        [
            particulars,
            cycle.idle_groups.clone(),
            cycle.detailed.clone()
        ]
    );
    // 42 sessions in 3 groups: the grouped read stays the cheaper one.
    assert_eq!(shape, Shape::default());
    let tenants = collected.unwrap().into_tenants();
    let t1 = &tenants["t1"];
    assert_eq!((t1.sessions, t1.active_sessions), (42, 1));
    assert_eq!(
        (t1.idle_in_transaction_sessions, t1.max_idle_in_transaction),
        (1, 12.0)
    );
    assert_eq!(
        pairs(&t1.by_server),
        [("10.0.0.1", c(41, 0)), ("10.0.0.2", c(1, 1))]
    );
    assert_eq!(t1.top.len(), 1);
}

/// With the session history on, every session read with particulars (active, or in
/// a transaction) is kept with what its row and the particulars say, blockers and
/// the longest first, up to the cap; the grouped idle ones are not; the statistics
/// are those of the cycle without it.
#[test]
fn the_history_keeps_the_sessions_read_one_by_one() {
    let settings = testing::oceanbase("monitor@sys");
    let cycle = cycle_reading(&settings, Mode::Cluster, true, Some(0));
    // Only the history asks who holds a row lock; without it the statement is as before.
    let holder = "MAX(CASE WHEN l.TYPE = 'TR' THEN l.ID2 END)";
    assert!(cycle.particulars.as_ref().unwrap().contains(holder));
    let plain_cycle = super::cycle::cycle(&settings, Mode::Cluster, true);
    assert!(!plain_cycle.particulars.as_ref().unwrap().contains(holder));
    assert_eq!(
        plain_cycle.detailed, cycle.detailed,
        "no text is read with 0"
    );
    let particulars = cycle.particulars.clone().unwrap();
    let answers = || {
        Scripted::default()
            .answer(
                &particulars,
                rows(&[
                    "0|t1|∅|∅|∅",
                    "1|10.0.0.1,2882,7,2026-01-01 00:00:00|∅|∅|∅",
                    "4|∅|∅|∅|2026-01-01 00:00:30",
                    "2|7|41|8|2.5",
                    "3|∅|40|7|1",
                ]),
            )
            .answer(
                &cycle.idle_groups,
                vec![session(
                    "t1/10.0.0.1/Sleep/SLEEP//10.0.0.100/|app|shop|∅|40",
                )],
            )
            .answer(
                &cycle.detailed,
                [
                    "t1/10.0.0.1/Sleep/SLEEP/ACTIVE/10.0.0.100/|app|shop|2882,7,12,40,,",
                    "t1/10.0.0.2/Query/ACTIVE/ACTIVE/10.0.0.101/|app|shop|2882,8,3,41,S8,",
                ]
                .into_iter()
                .map(session)
                .collect(),
            )
    };
    let plain = row_context(&settings, "", Mode::Cluster);
    let (without, _) = run(&cycle, &mut answers(), &plain, &[], &mut Shape::default());
    let without = without.unwrap().into_tenants();
    assert!(
        without["t1"].kept.is_empty(),
        "nothing kept without history"
    );
    let ctx = RowContext {
        history: Some(Keeping::new(10)),
        ..plain
    };
    let (with, _) = run(&cycle, &mut answers(), &ctx, &[], &mut Shape::default());
    let mut t1 = with.unwrap().into_tenants().remove("t1").unwrap();
    let kept = std::mem::take(&mut t1.kept);
    let mut expected_stats = without["t1"].clone();
    expected_stats.kept.clear();
    assert_eq!(t1, expected_stats, "the statistics do not change");
    let ids: Vec<u64> = kept.iter().map(|k| k.id).collect();
    assert_eq!(ids, [7, 8], "the blocker first");
    let (blocker, waiter) = (&kept[0], &kept[1]);
    assert_eq!(
        (
            blocker.active,
            blocker.time,
            blocker.transaction_age,
            blocker.waiters
        ),
        (false, 12.0, Some(30.0), 1)
    );
    assert_eq!(
        (
            blocker.server.as_str(),
            blocker.user.as_str(),
            blocker.client.as_str()
        ),
        ("10.0.0.1", "app", "10.0.0.100")
    );
    assert_eq!(
        (
            waiter.active,
            waiter.time,
            waiter.lock_wait,
            waiter.sql_id.as_str()
        ),
        (true, 3.0, Some(2.5), "S8")
    );
    assert_eq!(
        (waiter.command.as_str(), waiter.state.as_str()),
        ("Query", "ACTIVE")
    );
    assert_eq!(waiter.blocked_by, Some(7), "the row lock's holder");

    // A cap of one keeps the blocker and counts the other.
    let ctx = RowContext {
        history: Some(Keeping::new(1)),
        ..plain
    };
    let (capped, _) = run(&cycle, &mut answers(), &ctx, &[], &mut Shape::default());
    let t1 = capped.unwrap().into_tenants().remove("t1").unwrap();
    assert_eq!(t1.kept.iter().map(|k| k.id).collect::<Vec<_>>(), [7]);
    assert_eq!(t1.kept_truncated, 1);
}

/// With the session history keeping SQL text, the one-row reads select the INFO of
/// the sessions with particulars, cut at the limit, as a sixth column after a NULL
/// count; it is kept with the session, and the statistics do not change.
#[test]
fn the_history_reads_the_text_of_the_sessions_it_keeps() {
    let settings = testing::oceanbase("monitor@sys");
    let cycle = cycle_reading(&settings, Mode::Cluster, true, Some(100));
    assert!(
        cycle
            .detailed
            .contains(", NULL, CASE WHEN p.STATE = 'ACTIVE' OR p.TRANS_STATE <> '' THEN SUBSTR(p.INFO, 1, 100) END FROM"),
        "{}",
        cycle.detailed
    );
    assert!(cycle.ungrouped.contains("SUBSTR(p.INFO, 1, 100)"));
    assert!(
        !cycle.idle_groups.contains("SUBSTR(p.INFO"),
        "idle sessions run nothing"
    );
    let particulars = cycle.particulars.clone().unwrap();
    let mut conn = Scripted::default()
        .answer(&particulars, rows(&["0|t1|∅|∅|∅"]))
        .answer(&cycle.idle_groups, Vec::new())
        .answer(
            &cycle.detailed,
            vec![session(
                "t1/10.0.0.2/Query/ACTIVE//10.0.0.101/|app|shop|2882,8,3,0,S8,|∅|SELECT 1",
            )],
        );
    let ctx = RowContext {
        history: Some(Keeping::new(10)),
        ..row_context(&settings, "", Mode::Cluster)
    };
    let (collected, _) = run(&cycle, &mut conn, &ctx, &[], &mut Shape::default());
    let t1 = collected.unwrap().into_tenants().remove("t1").unwrap();
    assert_eq!((t1.sessions, t1.active_sessions), (1, 1));
    assert_eq!(t1.kept[0].sql_text, "SELECT 1");
    assert_eq!(t1.kept[0].sql_id, "S8");
}

/// A single-tenant server names neither tenant nor server: both come from the
/// configuration, and the tenant is there even without sessions.
#[test]
fn single_tenant_rows_take_tenant_and_server_from_the_target() {
    let settings = testing::oceanbase("monitor@t1");
    let ctx = row_context(&settings, "t1", Mode::SingleTenant);
    let cycle = cycle(&settings, Mode::SingleTenant, true);
    let particulars = cycle.particulars.clone().unwrap();
    let (empty, sent) = run(
        &cycle,
        &mut Scripted::default(),
        &ctx,
        &["t1"],
        &mut Shape::default(),
    );
    assert_eq!(empty.unwrap().into_tenants()["t1"], Default::default());
    assert_eq!(
        sent,
        [
            particulars.clone(),
            cycle.idle_groups.clone(),
            cycle.detailed.clone()
        ]
    );
    // Sent one row per session while the sessions make nearly as many groups.
    let mut shape = Shape { ungrouped: true };
    let mut conn = Scripted::default().answer(
        &cycle.ungrouped,
        vec![
            session("//Query/ACTIVE//10.0.0.100/|app|∅|0,1,4,0,,10.0.0.100:1"),
            session("//Sleep/SLEEP//10.0.0.100/|app|∅|∅"),
        ],
    );
    let (collected, sent) = run(&cycle, &mut conn, &ctx, &["t1"], &mut shape);
    assert_eq!(sent, [particulars, cycle.ungrouped.clone()]);
    assert_eq!(shape, Shape { ungrouped: true }, "2 sessions in 2 groups");
    let tenants = collected.unwrap().into_tenants();
    let t1 = &tenants["t1"];
    assert_eq!(
        (t1.sessions, t1.active_sessions, t1.max_active_time),
        (2, 1, 4.0)
    );
    assert_eq!(t1.by_server.keys().collect::<Vec<_>>(), ["10.0.0.1"]);
    assert_eq!(t1.by_db.keys().collect::<Vec<_>>(), [NONE_LABEL]);
}

/// A statement the driver fails ends the cycle there: nothing after it is sent, and
/// the read's shape stays as it was.
#[test]
fn a_driver_failure_ends_the_cycle_where_it_happens() {
    let settings = testing::oceanbase("monitor@sys");
    let ctx = row_context(&settings, "", Mode::Cluster);
    let cycle = cycle(&settings, Mode::Cluster, true);
    let particulars = cycle.particulars.clone().unwrap();
    for (fails, sent_before) in [
        (&particulars, vec![]),
        (&cycle.idle_groups, vec![particulars.clone()]),
        (
            &cycle.detailed,
            vec![particulars.clone(), cycle.idle_groups.clone()],
        ),
    ] {
        let mut conn = Scripted::default().fail(fails);
        let mut shape = Shape::default();
        let (collected, sent) = run(&cycle, &mut conn, &ctx, &[], &mut shape);
        assert!(
            matches!(collected, Err(SqlError::Driver(_))),
            "{collected:?}"
        );
        let mut expected = sent_before;
        expected.push(fails.clone());
        assert_eq!(sent, expected);
        assert_eq!(shape, Shape::default());
    }
}
