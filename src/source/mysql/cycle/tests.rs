use super::super::{cycle, row_context, LockWaits};
use super::*;
use crate::config::testing;
use crate::sql::fixtures::{block_on, counts as c, group, idle, named, pairs, row, Scripted};
use crate::stats::Keeping;
use mysql_async::Value;
use std::time::Duration;

/// The columns of the statement of blockers, in order.
const DETAIL: [&str; DETAIL_COLUMNS] = [
    "tenant",
    "id",
    "user",
    "db",
    "client",
    "sql_id",
    "active_time",
    "idle_time",
    "transaction_age",
    "waiting",
    "lock_wait",
    "waiters",
    "active",
];

/// A row of the statement of blockers from its named values.
fn detail(values: &[(&str, &str)]) -> Vec<Value> {
    named(&DETAIL, values)
}

/// The grouping's row of one active thread, connection 7, kept apart.
fn busy_thread_7() -> Vec<Value> {
    group(&[
        ("command", "Query"),
        ("sessions", "1"),
        ("session", "7"),
        ("ids", "7"),
    ])
}

fn rows(texts: &[&str]) -> Vec<Vec<Value>> {
    texts.iter().map(|text| row(text)).collect()
}

/// Every part on, blockers from MariaDB's relation.
fn every_part() -> (crate::config::Database, Cycle) {
    let database = testing::database("monitor", 3306);
    let cycle = cycle(
        &database,
        Duration::from_secs(1),
        Some(LockWaits::InformationSchema),
        false,
    );
    (database, cycle)
}

/// The activity of the active threads the grouping kept apart, joined through
/// their thread ids: a thread's innermost wait is its latest; a session the
/// statement does not find, or finds waiting for nothing, is on CPU; a thread the
/// grouping did not see active is not counted. The waits add up to the active
/// sessions. No thread waits for a lock, so no blocker is read; no group sends
/// connection ids, so no program is.
#[test]
fn activity_rows_count_each_active_thread_once() {
    let (database, cycle) = every_part();
    let ctx = row_context(&database, "maria");
    let active = |id: &'static str| {
        group(&[
            ("db", "shop"),
            ("user", "app"),
            ("command", "Query"),
            ("state", "User sleep"),
            ("sessions", "1"),
            ("time", "3"),
            ("session", id),
            ("application", "it-batch"),
        ])
    };
    let mut groups: Vec<_> = ["7", "8", "10"].into_iter().map(active).collect();
    groups.push(group(&[("command", "Sleep"), ("sessions", "4")]));
    let (with_threads, _) = cycle.activity.clone().unwrap();
    let mut conn = Scripted::default().answer(&cycle.grouping, groups).answer(
        &with_threads,
        rows(&[
            "0|7|107|∅",
            "0|8|108|∅",
            "0|9|109|∅",
            "0|10|110|∅",
            "1|107|5|wait/synch/mutex/innodb/lock_mutex",
            "1|107|9|wait/io/table/sql/handler",
            "1|109|4|wait/io/file/innodb/innodb_data_file",
            "2|107|∅|d1",
            "2|110|∅|d1",
            "2|109|∅|d2",
        ]),
    );
    let mut known = Connections::default();
    let collected = block_on(cycle.run(&mut conn, &ctx, &mut known)).unwrap();
    assert_eq!(
        conn.take_sent(),
        [cycle.grouping.clone(), with_threads.clone()]
    );
    let tenants = collected.into_tenants();
    let t = &tenants["maria"];
    let waits: Vec<(&str, &str, u64)> = t
        .by_wait
        .iter()
        .map(|((class, event), n)| (class.as_str(), event.as_str(), *n))
        .collect();
    assert_eq!(
        waits,
        [
            ("CPU", "CPU", 2),
            ("wait/io/table", "wait/io/table/sql/handler", 1)
        ]
    );
    assert_eq!(t.active_sessions, 3);
    assert_eq!(
        t.by_statement.iter().collect::<Vec<_>>(),
        [(&"d1".to_string(), &2)]
    );
    assert_eq!(
        pairs(&t.by_application),
        [(NONE_LABEL, c(4, 0)), ("it-batch", c(3, 3))]
    );
    let mut bad = Scripted::default()
        .answer(&cycle.grouping, vec![active("7")])
        .answer(&with_threads, rows(&["1|x|1|wait/io"]));
    let err = block_on(cycle.run(&mut bad, &ctx, &mut Connections::default()));
    assert!(
        matches!(err, Err(SqlError::Answer(_))),
        "a session id that is not a number"
    );
}

/// With the session history on, a thread in a transaction is kept apart as an
/// active one is, and both are kept with what the later reads found: the active
/// one's wait and statement, each one's program (none known here). The
/// statistics are those of the cycle without it.
#[test]
fn the_history_keeps_active_threads_and_those_in_a_transaction() {
    let database = testing::database("monitor", 3306);
    let cycle = cycle(
        &database,
        Duration::from_secs(1),
        Some(LockWaits::InformationSchema),
        true,
    );
    assert!(
        cycle
            .grouping
            .contains("OR t.trx_id IS NOT NULL THEN p.ID END"),
        "{}",
        cycle.grouping
    );
    let (with_threads, _) = cycle.activity.clone().unwrap();
    assert!(with_threads.contains("SELECT 3, s.THREAD_ID, NULL, s.SQL_TEXT"));
    let groups = vec![
        group(&[
            ("db", "shop"),
            ("user", "app"),
            ("command", "Query"),
            ("state", "updating"),
            ("transaction", "RUNNING"),
            ("sessions", "1"),
            ("time", "3"),
            ("transaction_age", "5"),
            ("session", "7"),
        ]),
        group(&[
            ("db", "shop"),
            ("user", "app"),
            ("command", "Sleep"),
            ("transaction", "RUNNING"),
            ("sessions", "1"),
            ("time", "40"),
            ("transaction_age", "41"),
            ("session", "12"),
        ]),
        group(&[("command", "Sleep"), ("sessions", "4")]),
    ];
    let answers = || {
        Scripted::default()
            .answer(&cycle.grouping, groups.clone())
            .answer(
                &with_threads,
                rows(&[
                    "0|7|107|∅",
                    "1|107|5|wait/io/table/sql/handler",
                    "2|107|∅|d1",
                    "3|107|∅|UPDATE stock SET n = n - 1",
                ]),
            )
    };
    let plain = row_context(&database, "maria");
    let without = block_on(cycle.run(&mut answers(), &plain, &mut Connections::default()))
        .unwrap()
        .into_tenants();
    let ctx = RowContext {
        history: Some(Keeping::new(10)),
        ..plain
    };
    let mut with = block_on(cycle.run(&mut answers(), &ctx, &mut Connections::default()))
        .unwrap()
        .into_tenants();
    let t = with.get_mut("maria").unwrap();
    let kept = std::mem::take(&mut t.kept);
    assert_eq!(*t, without["maria"], "the statistics do not change");
    let seen: Vec<_> = kept
        .iter()
        .map(|k| {
            (
                k.id,
                k.active,
                k.time,
                k.transaction_age,
                k.wait_event.as_str(),
                k.sql_id.as_str(),
                k.sql_text.as_str(),
                k.application.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (12, false, 40.0, Some(41.0), "", "", "", NONE_LABEL),
            (
                7,
                true,
                3.0,
                Some(5.0),
                "wait/io/table/sql/handler",
                "d1",
                "UPDATE stock SET n = n - 1",
                NONE_LABEL
            ),
        ],
        "the longest first"
    );
}

/// With the session history on, the statement of blockers also names each waiting
/// thread's blocker (a last column), and the history keeps it beside the waiter;
/// without it the statement is the one before the history, and so are the
/// statistics either way.
#[test]
fn the_history_keeps_whom_a_waiter_waits_on() {
    let database = testing::database("monitor", 3306);
    let plain_cycle = cycle(
        &database,
        Duration::from_secs(1),
        Some(LockWaits::InformationSchema),
        false,
    );
    let cycle = cycle(
        &database,
        Duration::from_secs(1),
        Some(LockWaits::InformationSchema),
        true,
    );
    let blockers = cycle.blockers.clone().unwrap();
    assert!(blockers
        .contains("MIN(bt.trx_mysql_thread_id) FROM information_schema.INNODB_LOCK_WAITS lw"));
    assert!(!plain_cycle.blockers.unwrap().contains("MIN("));
    let groups = vec![
        group(&[
            ("user", "app"),
            ("command", "Sleep"),
            ("transaction", "RUNNING"),
            ("sessions", "1"),
            ("time", "30"),
            ("transaction_age", "31"),
            ("session", "17"),
        ]),
        group(&[
            ("user", "app"),
            ("command", "Query"),
            ("state", "Updating"),
            ("transaction", "LOCK WAIT"),
            ("sessions", "1"),
            ("time", "4"),
            ("transaction_age", "4"),
            ("lock_wait", "4"),
            ("session", "42"),
        ]),
    ];
    let mut holder = detail(&[
        ("id", "17"),
        ("user", "app"),
        ("waiters", "1"),
        ("active", "0"),
    ]);
    holder.push(Value::NULL);
    let mut waits_on = detail(&[("id", "42"), ("waiters", "0"), ("active", "0")]);
    waits_on.push(Value::Bytes(b"17".to_vec()));
    let (with_threads, _) = cycle.activity.clone().unwrap();
    let mut conn = Scripted::default()
        .answer(&cycle.grouping, groups)
        .answer(&with_threads, rows(&["0|42|142|∅"]))
        .answer(&blockers, vec![holder, waits_on]);
    let ctx = RowContext {
        history: Some(Keeping::new(10)),
        ..row_context(&database, "maria")
    };
    let tenants = block_on(cycle.run(&mut conn, &ctx, &mut Connections::default()))
        .unwrap()
        .into_tenants();
    assert_eq!(
        conn.take_sent(),
        [cycle.grouping.clone(), with_threads, blockers]
    );
    let t = &tenants["maria"];
    let kept: Vec<_> = t
        .kept
        .iter()
        .map(|k| (k.id, k.waiters, k.blocked_by))
        .collect();
    assert_eq!(
        kept,
        [(17, 1, None), (42, 0, Some(17))],
        "the blocker first"
    );
    assert_eq!((t.lock_waiting_sessions, t.blockers.len()), (1, 1));
}

/// A thread id read once serves the next cycles: the statement of activity then
/// leaves out the threads' read, and the waits are still found.
#[test]
fn known_threads_need_no_second_read() {
    let (database, cycle) = every_part();
    let ctx = row_context(&database, "maria");
    let (with_threads, without) = cycle.activity.clone().unwrap();
    let mut known = Connections::default();
    for (n, activity, rows_of_activity) in [
        (
            1,
            &with_threads,
            &["0|7|107|∅", "1|107|3|wait/io/table/sql/handler"][..],
        ),
        (2, &without, &["1|107|4|wait/io/table/sql/handler"][..]),
    ] {
        let mut conn = Scripted::default()
            .answer(&cycle.grouping, vec![busy_thread_7()])
            .answer(activity, rows(rows_of_activity));
        let tenants = block_on(cycle.run(&mut conn, &ctx, &mut known))
            .unwrap()
            .into_tenants();
        let sent = conn.take_sent();
        let programs = Connections::statement(cycle.programs.as_ref().unwrap(), &[7]);
        let expected = match n {
            1 => vec![cycle.grouping.clone(), programs, with_threads.clone()],
            _ => vec![cycle.grouping.clone(), without.clone()],
        };
        assert_eq!(sent, expected, "cycle {n}");
        let waits: Vec<_> = tenants["maria"].by_wait.keys().cloned().collect();
        assert_eq!(
            waits,
            [(
                "wait/io/table".to_string(),
                "wait/io/table/sql/handler".to_string()
            )],
            "cycle {n}"
        );
    }
}

/// Applications by connection: each group sends its connection ids, the
/// programs of those not seen before are read once, and the sessions are counted
/// by them; the next cycle reads only the new connections, and forgets the ended.
#[test]
fn applications_are_counted_by_connection_each_read_once() {
    let mut database = testing::database("monitor", 3306);
    // Without waits and statements, the active thread's activity is not read.
    database.collect.waits = false;
    database.collect.statements = false;
    let cycle = cycle(&database, Duration::from_secs(1), None, false);
    let ctx = row_context(&database, "maria");
    let prefix = cycle.programs.clone().unwrap();
    let mut known = Connections::default();
    let idle = |ids: &'static str, n: &'static str| {
        group(&[("command", "Sleep"), ("sessions", n), ("ids", ids)])
    };
    let busy = group(&[
        ("command", "Query"),
        ("sessions", "1"),
        ("session", "4"),
        ("ids", "4"),
    ]);
    let programs = Connections::statement(&prefix, &[1, 2, 3, 4]);
    let mut conn = Scripted::default()
        .answer(&cycle.grouping, vec![idle("1,2,3", "3"), busy])
        .answer(&programs, rows(&["1|web", "4|batch"]));
    let tenants = block_on(cycle.run(&mut conn, &ctx, &mut known))
        .unwrap()
        .into_tenants();
    assert_eq!(conn.take_sent(), [cycle.grouping.clone(), programs]);
    assert_eq!(
        pairs(&tenants["maria"].by_application),
        [(NONE_LABEL, c(2, 0)), ("batch", c(1, 1)), ("web", c(1, 0))]
    );
    // Connection 1 has ended, 5 is new; an id list cut short counts the rest as none.
    let programs = Connections::statement(&prefix, &[5]);
    let mut conn = Scripted::default().answer(&cycle.grouping, vec![idle("2,3,5", "4")]);
    let tenants = block_on(cycle.run(&mut conn, &ctx, &mut known))
        .unwrap()
        .into_tenants();
    assert_eq!(conn.take_sent(), [cycle.grouping.clone(), programs]);
    assert_eq!(
        pairs(&tenants["maria"].by_application),
        [(NONE_LABEL, c(4, 0))]
    );
    // Known connections are not read again; ended ones are forgotten.
    let mut conn = Scripted::default().answer(&cycle.grouping, vec![idle("2", "1")]);
    block_on(cycle.run(&mut conn, &ctx, &mut known)).unwrap();
    assert_eq!(conn.take_sent(), std::slice::from_ref(&cycle.grouping));
    let mut conn = Scripted::default().answer(&cycle.grouping, vec![idle("1", "1")]);
    block_on(cycle.run(&mut conn, &ctx, &mut known)).unwrap();
    assert_eq!(
        conn.take_sent(),
        [
            cycle.grouping.clone(),
            Connections::statement(&prefix, &[1])
        ],
        "ended connections are forgotten"
    );
}

/// Fixed rows in, exact statistics out: the one tenant is the target's name and
/// the server its host; a NULL DB is `__none__`, while the string `NULL` is a
/// database of that name here (only OceanBase writes it for none); background
/// threads without a host are `__none__` clients. Sessions kept in rows of their
/// own count like any other, and are the top sessions and the blockers, which are
/// read because a thread waits for a lock: the grouping, the activity of the
/// active threads, then the blockers, in this order.
#[test]
fn processlist_rows_give_exact_statistics() {
    let (database, cycle) = every_part();
    let ctx = row_context(&database, "maria");
    let shop = [("db", "shop"), ("user", "app"), ("client", "10.0.0.100")];
    let sleeping = [("command", "Sleep"), ("state", "")];
    let with = |parts: &[&[(&'static str, &'static str)]]| parts.concat();
    let groups = vec![
        group(&with(&[
            &shop,
            &sleeping,
            &[("transaction", "RUNNING"), ("sessions", "3")],
            &[("time", "60"), ("transaction_age", "120")],
        ])),
        group(&with(&[
            &shop,
            &sleeping,
            &[("sessions", "1"), ("time", "5")],
        ])),
        group(&with(&[
            &shop,
            &[("command", "Query"), ("state", "Updating")],
            &[("transaction", "LOCK WAIT"), ("sessions", "1")],
            &[("time", "7"), ("transaction_age", "9")],
            &[("lock_wait", "7"), ("session", "42")],
        ])),
        group(&with(&[
            &[("user", "app"), ("client", "10.0.0.101")],
            &sleeping,
            &[("transaction", "RUNNING"), ("sessions", "1")],
            &[("time", "250"), ("transaction_age", "300")],
        ])),
        group(&with(&[
            &[("db", "NULL"), ("user", "odd"), ("client", "10.0.0.101")],
            &sleeping,
            &[("sessions", "1"), ("time", "0")],
        ])),
        group(&with(&[
            &[("user", "system user"), ("client", "")],
            &[("command", "Query"), ("state", "")],
            &[("sessions", "1"), ("time", "86400"), ("session", "5")],
        ])),
    ];
    let blockers = cycle.blockers.clone().unwrap();
    let mut conn = Scripted::default().answer(&cycle.grouping, groups).answer(
        &blockers,
        vec![detail(&[
            ("id", "17"),
            ("user", "app"),
            ("client", "10.0.0.101"),
            ("waiters", "1"),
            ("active", "0"),
        ])],
    );
    let tenants = block_on(cycle.run(&mut conn, &ctx, &mut Connections::default()))
        .unwrap()
        .into_tenants();
    let (with_threads, _) = cycle.activity.clone().unwrap();
    assert_eq!(
        conn.take_sent(),
        [cycle.grouping.clone(), with_threads, blockers]
    );
    assert_eq!(tenants.keys().collect::<Vec<_>>(), ["maria"]);
    let t = &tenants["maria"];
    assert_eq!(
        (t.sessions, t.active_sessions, t.max_active_time),
        (8, 2, 86400.0)
    );
    assert_eq!(
        (t.transaction_sessions, t.idle_in_transaction_sessions),
        (5, 4)
    );
    assert_eq!(
        (t.max_transaction_age, t.max_idle_in_transaction),
        (300.0, 250.0)
    );
    assert_eq!((t.lock_waiting_sessions, t.max_lock_wait), (1, 7.0));
    assert_eq!(
        pairs(&t.by_db),
        [("NULL", c(1, 0)), (NONE_LABEL, c(2, 1)), ("shop", c(5, 1))]
    );
    assert_eq!(
        pairs(&t.by_client),
        [
            ("10.0.0.100", c(5, 1)),
            ("10.0.0.101", c(2, 0)),
            (NONE_LABEL, c(1, 1))
        ]
    );
    assert_eq!(t.by_server.keys().collect::<Vec<_>>(), ["10.0.0.1"]);
    let state = |command: &str, state: &str| (command.to_string(), state.to_string());
    assert_eq!(
        t.by_state,
        [
            (state("Query", NONE_LABEL), 1),
            (state("Query", "Updating"), 1),
            (state("Sleep", NONE_LABEL), 6),
        ]
        .into()
    );
    assert_eq!(idle(&t.by_user), [("app", 4)]);
    assert_eq!(idle(&t.by_client), [("10.0.0.100", 3), ("10.0.0.101", 1)]);
    let top: Vec<(u64, &str, &str)> = t
        .top
        .iter()
        .map(|s| (s.session_id, s.user.as_str(), s.sql_id.as_str()))
        .collect();
    assert_eq!(top, [(5, "system user", ""), (42, "app", "")]);
    let blockers: Vec<(u64, &str, &str, u64)> = t
        .blockers
        .iter()
        .map(|b| (b.session_id, b.user.as_str(), b.client.as_str(), b.waiters))
        .collect();
    assert_eq!(blockers, [(17, "app", "10.0.0.101", 1)]);
}

/// A bad row stops the cycle at its statement: nothing after it is sent.
#[test]
fn a_bad_answer_sends_nothing_more() {
    let (database, cycle) = every_part();
    let ctx = row_context(&database, "maria");
    let mut conn = Scripted::default().answer(
        &cycle.grouping,
        vec![group(&[
            ("command", "Query"),
            ("transaction", "LOCK WAIT"),
            ("sessions", "x"),
            ("session", "3"),
        ])],
    );
    let err = block_on(cycle.run(&mut conn, &ctx, &mut Connections::default()));
    match err {
        Err(SqlError::Answer(err)) => assert!(err.message.contains("sessions"), "{err}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(conn.take_sent(), std::slice::from_ref(&cycle.grouping));
}

/// An answer that cannot be read fails its cycle, but what was learnt of the
/// server's connections stays: the programs asked for are not asked again, and
/// the threads read before the bad row are known next cycle.
#[test]
fn a_bad_answer_keeps_what_was_learnt() {
    let (database, cycle) = every_part();
    let ctx = row_context(&database, "maria");
    let (with_threads, without) = cycle.activity.clone().unwrap();
    let prefix = cycle.programs.clone().unwrap();
    let mut known = Connections::default();
    let programs = Connections::statement(&prefix, &[7]);
    let mut conn = Scripted::default()
        .answer(&cycle.grouping, vec![busy_thread_7()])
        .answer(&programs, rows(&["x|web"]));
    let failed = block_on(cycle.run(&mut conn, &ctx, &mut known));
    assert!(matches!(failed, Err(SqlError::Answer(_))), "{failed:?}");
    assert_eq!(conn.take_sent(), [cycle.grouping.clone(), programs]);
    let mut conn = Scripted::default()
        .answer(&cycle.grouping, vec![busy_thread_7()])
        .answer(&with_threads, rows(&["0|7|107|∅", "1|x|1|wait/io"]));
    let failed = block_on(cycle.run(&mut conn, &ctx, &mut known));
    assert!(matches!(failed, Err(SqlError::Answer(_))), "{failed:?}");
    assert_eq!(
        conn.take_sent(),
        [cycle.grouping.clone(), with_threads.clone()],
        "connection 7 was asked for its program once"
    );
    let mut conn = Scripted::default().answer(&cycle.grouping, vec![busy_thread_7()]);
    block_on(cycle.run(&mut conn, &ctx, &mut known)).unwrap();
    assert_eq!(
        conn.take_sent(),
        [cycle.grouping.clone(), without],
        "thread 107 was learnt before the bad row"
    );
}

/// A statement the driver fails ends the cycle there, and what it did not read is
/// not taken as read: the programs asked for are asked again, the threads are read
/// again.
#[test]
fn a_driver_failure_learns_nothing_it_did_not_read() {
    let (database, cycle) = every_part();
    let ctx = row_context(&database, "maria");
    let (with_threads, _) = cycle.activity.clone().unwrap();
    let prefix = cycle.programs.clone().unwrap();
    let programs = Connections::statement(&prefix, &[7]);
    let mut known = Connections::default();
    let mut conn = Scripted::default()
        .answer(&cycle.grouping, vec![busy_thread_7()])
        .fail(&programs);
    let failed = block_on(cycle.run(&mut conn, &ctx, &mut known));
    assert!(matches!(failed, Err(SqlError::Driver(_))), "{failed:?}");
    assert_eq!(conn.take_sent(), [cycle.grouping.clone(), programs.clone()]);
    // The program is asked for again; then the activity fails.
    let mut conn = Scripted::default()
        .answer(&cycle.grouping, vec![busy_thread_7()])
        .answer(&programs, rows(&["7|web"]))
        .fail(&with_threads);
    let failed = block_on(cycle.run(&mut conn, &ctx, &mut known));
    assert!(matches!(failed, Err(SqlError::Driver(_))), "{failed:?}");
    assert_eq!(
        conn.take_sent(),
        [cycle.grouping.clone(), programs, with_threads.clone()]
    );
    // The program is known now; the thread is read again.
    let mut conn = Scripted::default().answer(&cycle.grouping, vec![busy_thread_7()]);
    block_on(cycle.run(&mut conn, &ctx, &mut known)).unwrap();
    assert_eq!(conn.take_sent(), [cycle.grouping.clone(), with_threads]);
}

/// The metadata locks are read only while a session waits for a metadata (or
/// table) lock: a row lock waiter of an InnoDB pile-up sends the statement of
/// blockers, never the heavier one of metadata locks.
#[test]
fn only_a_metadata_lock_wait_reads_the_metadata_locks() {
    let (database, mut cycle) = every_part();
    cycle.activity = None;
    let metadata = super::super::metadata::statement("", "", &database);
    cycle.metadata = Some(metadata.clone());
    let blockers = cycle.blockers.clone().unwrap();
    let ctx = row_context(&database, "maria");
    let waiter = |state: &str, transaction: &str| {
        vec![group(&[
            ("user", "app"),
            ("command", "Query"),
            ("state", state),
            ("transaction", transaction),
            ("sessions", "1"),
            ("time", "4"),
            ("lock_wait", "4"),
            ("session", "42"),
        ])]
    };
    let mut row_wait = Scripted::default()
        .answer(&cycle.grouping, waiter("Updating", "LOCK WAIT"))
        .answer(&blockers, Vec::new());
    block_on(cycle.run(&mut row_wait, &ctx, &mut Connections::default())).unwrap();
    assert_eq!(
        row_wait.take_sent(),
        [cycle.grouping.clone(), blockers.clone()]
    );
    let mut metadata_wait = Scripted::default()
        .answer(
            &cycle.grouping,
            waiter("Waiting for table metadata lock", "RUNNING"),
        )
        .answer(&blockers, Vec::new())
        .answer(&metadata, Vec::new());
    block_on(cycle.run(&mut metadata_wait, &ctx, &mut Connections::default())).unwrap();
    assert_eq!(
        metadata_wait.take_sent(),
        [cycle.grouping.clone(), blockers, metadata]
    );
}
