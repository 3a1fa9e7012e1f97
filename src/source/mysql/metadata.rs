//! Who holds the metadata lock: an `ALTER TABLE` queued behind one idle transaction
//! stalls every later statement on the table, and the processlist shows only the
//! waiters (`Waiting for table metadata lock`). `performance_schema.metadata_locks`
//! (MySQL 8, MariaDB 10.5+, with the `wait/lock/metadata/sql/mdl` instrument) shows
//! each lock granted and pending; its holder is named the way InnoDB's row-lock
//! blockers are.

use crate::config::Database;
use crate::error::SourceError;
use crate::sql::{bad_answer, client_of, count, db_label, filter_conditions, host_without_port};
use crate::sql::{Cell, RowContext, OWN_SESSIONS, TAG};
use crate::stats::{Blocker, HeldLock, NONE_LABEL};

/// The instrument that fills `metadata_locks`.
const INSTRUMENT: &str = "wait/lock/metadata/sql/mdl";

/// Rows the statement sends at most: waits on a busy server's hot table stay bounded.
pub(super) const MAX_WAITS: usize = 1000;

/// Whether the metadata locks can be read: None when they can, else what to say
/// once (the setting or grant they need).
pub(super) async fn unreadable(
    conn: &mut mysql_async::Conn,
) -> Result<Option<String>, mysql_async::Error> {
    use mysql_async::prelude::Queryable;
    let fix = "metadata lock holders are not named";
    let enabled: Option<i64> = conn.query_first("SELECT @@performance_schema").await?;
    if enabled != Some(1) {
        return Ok(Some(format!(
            "performance_schema is off: {fix}; start the server with performance_schema = ON"
        )));
    }
    for relation in [
        "performance_schema.metadata_locks",
        "performance_schema.threads",
        "performance_schema.setup_instruments",
    ] {
        if let Some(err) = crate::sql::query::probe_relation(conn, relation).await? {
            return Ok(Some(format!(
                "{relation} is not readable ({err}): {fix}; grant it with GRANT SELECT ON \
                 performance_schema.* TO the account"
            )));
        }
    }
    let on: Option<String> = conn
        .query_first(format!(
            "SELECT ENABLED FROM performance_schema.setup_instruments WHERE NAME = '{INSTRUMENT}'"
        ))
        .await?;
    Ok((on.as_deref() != Some("YES")).then(|| {
        format!(
            "the {INSTRUMENT} instrument is off: {fix}; start the server with \
             performance-schema-instrument='{INSTRUMENT}=ON' (or UPDATE \
             performance_schema.setup_instruments SET ENABLED = 'YES' WHERE NAME = \
             '{INSTRUMENT}')"
        )
    }))
}

/// The statement of metadata lock waits, sent only while a session waits for a lock:
/// each pending lock with the sessions holding a granted lock on the same object
/// that wait for none on it themselves (a DDL's own granted upgradable lock is not
/// what the statements queued behind it wait for: the transaction the DDL waits for
/// is; a holder queued on another table is still named for this one). A granted
/// lock compatible with the pending one is named too (readers behind an `ALTER
/// TABLE ... LOCK=SHARED`): the queue is the object's, not the lock mode's;
/// as `waiter, holder, holder's user, db, client, object schema, object name, how
/// long the waiter's statement has waited`, the longest waits first (past
/// [`MAX_WAITS`] pairs, the shorter ones are left out). The holders are the sessions
/// the target counts (its filters apply, its own excluded).
pub(super) fn statement(prefix: &str, hint: &str, database: &Database) -> String {
    format!(
        "{prefix}SELECT {hint}w.PROCESSLIST_ID AS waiter, h.PROCESSLIST_ID AS holder, hp.USER, \
         hp.DB, {client}, pending.OBJECT_SCHEMA AS object_schema, \
         pending.OBJECT_NAME AS object_name, wp.TIME AS waited \
         FROM performance_schema.metadata_locks pending \
         JOIN performance_schema.threads w ON w.THREAD_ID = pending.OWNER_THREAD_ID \
         JOIN information_schema.PROCESSLIST wp ON wp.ID = w.PROCESSLIST_ID \
         JOIN performance_schema.metadata_locks granted \
         ON granted.OBJECT_TYPE = pending.OBJECT_TYPE \
         AND granted.OBJECT_SCHEMA <=> pending.OBJECT_SCHEMA \
         AND granted.OBJECT_NAME <=> pending.OBJECT_NAME \
         AND granted.LOCK_STATUS = 'GRANTED' AND granted.OWNER_THREAD_ID <> pending.OWNER_THREAD_ID \
         JOIN performance_schema.threads h ON h.THREAD_ID = granted.OWNER_THREAD_ID \
         JOIN information_schema.PROCESSLIST hp ON hp.ID = h.PROCESSLIST_ID \
         WHERE pending.LOCK_STATUS = 'PENDING' AND w.PROCESSLIST_ID IS NOT NULL \
         AND hp.ID NOT IN ({OWN_SESSIONS}){filter} \
         AND NOT EXISTS (SELECT 1 FROM performance_schema.metadata_locks other \
         WHERE other.OWNER_THREAD_ID = granted.OWNER_THREAD_ID AND other.LOCK_STATUS = 'PENDING' \
         AND other.OBJECT_TYPE = pending.OBJECT_TYPE AND other.OBJECT_SCHEMA <=> pending.OBJECT_SCHEMA \
         AND other.OBJECT_NAME <=> pending.OBJECT_NAME) \
         ORDER BY wp.TIME DESC LIMIT {MAX_WAITS}",
        client = host_without_port("hp.HOST"),
        filter = filter_conditions(&database.filter, "hp."),
    )
}

/// The session API's pile-up rows of metadata lock waits (kind 2, see
/// [`crate::api::pileup::add_pileup_row`]): waiter, holder, seconds waited, and the
/// object's schema and name; the longest waits first.
pub(super) fn pileup(database: &Database, limit: usize) -> String {
    format!(
        "{TAG} SELECT 2, x.waiter, x.holder, x.waited, x.object_schema, x.object_name \
         FROM ({}) x ORDER BY x.waited DESC LIMIT {limit}",
        statement("", "", database)
    )
}

/// One pending metadata lock and a session holding it up.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct MetadataWait {
    pub waiter: u64,
    pub holder: Blocker,
    /// The locked object's schema and name.
    pub object: (String, String),
}

/// Decodes one row of [`statement`]; the holder's `waiters` is 1 (the caller adds
/// up a holder's distinct waiters).
pub(super) fn decode<C: Cell>(
    values: Vec<C>,
    ctx: &RowContext<'_>,
) -> Result<MetadataWait, SourceError> {
    let got = values.len();
    let [waiter, holder, user, db, client, schema, name, _waited]: [C; 8] = values
        .try_into()
        .map_err(|_| bad_answer(format!("expected 8 columns of metadata locks, got {got}")))?;
    Ok(MetadataWait {
        waiter: count(waiter, "waiting PROCESSLIST_ID")?,
        holder: Blocker {
            session_id: count(holder, "holding PROCESSLIST_ID")?,
            user: user.into_text().unwrap_or_else(|| NONE_LABEL.to_string()),
            db: db_label(db, ctx),
            client: client_of(client),
            waiters: 1,
            lock: HeldLock::Metadata,
        },
        object: (
            schema.into_text().unwrap_or_default(),
            name.into_text().unwrap_or_default(),
        ),
    })
}

/// Each holder once, with how many distinct sessions wait on it.
pub(super) fn holders(waits: &[MetadataWait]) -> Vec<Blocker> {
    let mut by_holder: std::collections::BTreeMap<u64, (Blocker, Vec<u64>)> =
        std::collections::BTreeMap::new();
    for wait in waits {
        let (_, waiters) = by_holder
            .entry(wait.holder.session_id)
            .or_insert_with(|| (wait.holder.clone(), Vec::new()));
        if !waiters.contains(&wait.waiter) {
            waiters.push(wait.waiter);
        }
    }
    by_holder
        .into_values()
        .map(|(holder, waiters)| Blocker {
            waiters: waiters.len() as u64,
            ..holder
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing;

    /// The statement pairs pending locks with granted ones on the same object, of
    /// holders that wait for none, the target's filters on the holder, bounded.
    #[test]
    fn the_statement_names_holders_that_wait_for_none() {
        let mut database = testing::database("monitor", 3306);
        database.filter.users.deny = vec!["batch".into()];
        let sql = statement("/* t */ ", "", &database);
        assert!(sql
            .starts_with("/* t */ SELECT w.PROCESSLIST_ID AS waiter, h.PROCESSLIST_ID AS holder"));
        assert!(sql.contains("granted.OBJECT_NAME <=> pending.OBJECT_NAME"));
        assert!(sql.contains(
            "other.OWNER_THREAD_ID = granted.OWNER_THREAD_ID AND other.LOCK_STATUS = 'PENDING' \
             AND other.OBJECT_TYPE = pending.OBJECT_TYPE"
        ), "a holder waiting on another object is still named: {sql}");
        assert!(sql.contains("hp.USER NOT IN ('batch')"), "{sql}");
        assert!(sql.ends_with(&format!("LIMIT {MAX_WAITS}")));
    }

    /// A holder is counted once per distinct waiter, whatever the objects; a row of
    /// another shape is an error.
    #[test]
    fn holders_count_their_distinct_waiters() {
        let ctx = crate::sql::fixtures::CONTEXT;
        let row = |waiter: &str, holder: &str, table: &str| {
            let cells = [
                waiter, holder, "app", "shop", "10.0.0.9", "shop", table, "3",
            ];
            decode(cells.map(Some).to_vec(), &ctx).unwrap()
        };
        let waits = [
            row("12", "10", "orders"),
            row("13", "10", "orders"),
            row("13", "10", "items"),
            row("14", "11", "items"),
        ];
        assert_eq!(waits[0].object, ("shop".to_string(), "orders".to_string()));
        let holders: Vec<(u64, u64, HeldLock)> = holders(&waits)
            .into_iter()
            .map(|b| (b.session_id, b.waiters, b.lock))
            .collect();
        assert_eq!(
            holders,
            [(10, 2, HeldLock::Metadata), (11, 1, HeldLock::Metadata)]
        );
        assert!(decode(vec![Some("1")], &ctx).is_err());
        assert!(decode(
            ["x", "1", "u", "d", "c", "s", "t", "3"].map(Some).to_vec(),
            &ctx
        )
        .is_err());
    }
}
