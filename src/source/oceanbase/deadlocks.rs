//! OceanBase's deadlock history as obshell's deadlocks endpoint answers it: one
//! event per `EVENT_ID` of `CDB_OB_DEADLOCK_EVENT_HISTORY` (a single tenant's
//! `DBA_OB_DEADLOCK_EVENT_HISTORY`) whose rows are its whole cycle (one per
//! transaction, `CYCLE_SIZE` of them), newest first, each row a node. The page is
//! chosen by the database (a grouping of the events, `LIMIT`), and only its events'
//! rows are read: a request holds one page, whatever the history's size.

use super::{deadlocks_relation, tenants_relation, Mode, SINGLE_DEADLOCKS};
use crate::api::deadlocks::rfc3339_micros;
use crate::api::processlist::backend::exec;
use crate::api::{DeadLock, DeadLockNode, PageParams};
use crate::config::oceanbase::Oceanbase;
use crate::sql::query::SqlError;
use crate::sql::{bad_answer, TAG};
use mysql_async::{Row, Value};
use std::collections::BTreeMap;

/// How many events `tenant` has in all, and those of the page `params` asks for.
/// `address` is the single server's, whose view names no server.
pub async fn page(
    conn: &mut mysql_async::Conn,
    settings: &Oceanbase,
    mode: Mode,
    tenant: &str,
    address: (&str, u16),
    params: &PageParams,
) -> Result<(u64, Vec<DeadLock>), SqlError> {
    let (history, condition, values, server) = match mode {
        Mode::Cluster => (
            deadlocks_relation(settings),
            format!(
                "h.TENANT_ID = (SELECT t.TENANT_ID FROM {} t WHERE t.TENANT_NAME = ?)",
                tenants_relation(settings)
            ),
            vec![Value::from(tenant)],
            "h.SVR_IP, h.SVR_PORT",
        ),
        Mode::SingleTenant => (
            SINGLE_DEADLOCKS.to_string(),
            "1 = 1".to_string(),
            Vec::new(),
            "NULL, NULL",
        ),
    };
    // An event whose rows are not its whole cycle yet (its servers report one by
    // one) is left out, as obshell leaves it.
    let events = format!(
        "SELECT h.EVENT_ID AS EVENT_ID, MAX(h.REPORT_TIME) AS REPORTED FROM {history} h \
         WHERE {condition} GROUP BY h.EVENT_ID HAVING COUNT(*) = MAX(h.CYCLE_SIZE)"
    );
    let counted = exec(
        conn,
        &format!("{TAG} SELECT COUNT(*) FROM ({events}) e"),
        values.clone(),
    )
    .await?;
    let total = counted
        .into_iter()
        .next()
        .and_then(|row| row.get::<Option<u64>, _>(0).flatten())
        .unwrap_or(0);
    let offset = params.offset().unwrap_or(u64::MAX);
    if offset >= total {
        return Ok((total, Vec::new()));
    }
    let sql = format!(
        "{TAG} SELECT h.EVENT_ID, h.REPORT_TIME, {server}, h.CYCLE_IDX, h.CYCLE_SIZE, h.ROLE, \
         h.VISITOR, h.OBJECT, h.EXTRA_NAME1, h.EXTRA_VALUE1 FROM {history} h \
         JOIN ({events} ORDER BY REPORTED DESC, EVENT_ID LIMIT {} OFFSET {offset}) e \
         ON e.EVENT_ID = h.EVENT_ID WHERE {condition}",
        params.size()
    );
    let mut both = values.clone();
    both.extend(values);
    let rows = exec(conn, &sql, both).await?;
    let rows = rows
        .into_iter()
        .map(|row| history_row(row, address))
        .collect::<Result<Vec<_>, _>>()
        .map_err(SqlError::Answer)?;
    Ok((total, events_of(rows)))
}

/// One row of the history: one transaction of an event's cycle.
#[derive(Debug, Clone, Default, PartialEq)]
struct HistoryRow {
    event_id: i64,
    /// Microseconds since 1970.
    report_time: i64,
    svr_ip: String,
    svr_port: i64,
    cycle_idx: i64,
    cycle_size: i64,
    role: String,
    visitor: String,
    object: String,
    extra_name: String,
    extra_value: String,
}

fn history_row(row: Row, address: (&str, u16)) -> Result<HistoryRow, crate::error::SourceError> {
    let values = row.unwrap();
    let got = values.len();
    let [event_id, report_time, svr_ip, svr_port, cycle_idx, cycle_size, role, visitor, object, extra_name, extra_value]: [Value; 11] =
        values
            .try_into()
            .map_err(|_| bad_answer(format!("expected 11 columns of the deadlock history, got {got}")))?;
    let number = |value: Value, column: &str| -> Result<i64, crate::error::SourceError> {
        match value {
            Value::Int(n) => Ok(n),
            Value::UInt(n) => i64::try_from(n).map_err(|_| bad_answer(format!("{column} is {n}"))),
            Value::Bytes(bytes) => String::from_utf8_lossy(&bytes)
                .trim()
                .parse()
                .map_err(|_| bad_answer(format!("{column} is not a whole number"))),
            Value::NULL => Ok(0),
            other => Err(bad_answer(format!("{column} is {other:?}"))),
        }
    };
    let text = |value: Value| match value {
        Value::Bytes(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Value::NULL => String::new(),
        other => other.as_sql(true).trim_matches('\'').to_string(),
    };
    let (svr_ip, svr_port) = match svr_ip {
        Value::NULL => (address.0.to_string(), i64::from(address.1)),
        ip => (text(ip), number(svr_port, "SVR_PORT")?),
    };
    Ok(HistoryRow {
        event_id: number(event_id, "EVENT_ID")?,
        report_time: number(report_time, "REPORT_TIME")?,
        svr_ip,
        svr_port,
        cycle_idx: number(cycle_idx, "CYCLE_IDX")?,
        cycle_size: number(cycle_size, "CYCLE_SIZE")?,
        role: text(role),
        visitor: text(visitor),
        object: text(object),
        extra_name: text(extra_name),
        extra_value: text(extra_value),
    })
}

/// The events of `rows` (each a node), newest first, their nodes in cycle order.
fn events_of(rows: Vec<HistoryRow>) -> Vec<DeadLock> {
    let mut events: BTreeMap<i64, Vec<HistoryRow>> = BTreeMap::new();
    for row in rows {
        events.entry(row.event_id).or_default().push(row);
    }
    let mut events: Vec<DeadLock> = events
        .into_iter()
        .map(|(event_id, mut rows)| {
            rows.sort_by_key(|row| row.cycle_idx);
            let reported = rows.iter().map(|row| row.report_time).max().unwrap_or(0);
            DeadLock {
                event_id: event_id.to_string(),
                report_time: rfc3339_micros(reported),
                size: rows.first().map_or(0, |row| row.cycle_size),
                nodes: rows.into_iter().map(node_of).collect(),
            }
        })
        .collect();
    // RFC 3339 in UTC of one width sorts as the time does.
    events.sort_by(|a, b| {
        b.report_time
            .cmp(&a.report_time)
            .then_with(|| a.event_id.cmp(&b.event_id))
    });
    events
}

fn node_of(row: HistoryRow) -> DeadLockNode {
    DeadLockNode {
        transaction_hash: transaction_of(&row.visitor),
        roll_backed: row.role.eq_ignore_ascii_case("victim"),
        sql: statement_of(&row.extra_name, &row.extra_value),
        svr_ip: row.svr_ip,
        svr_port: row.svr_port,
        idx: row.cycle_idx,
        resource: row.object,
    }
}

/// The transaction a `VISITOR` names: `{txid:3000736}`, or a `hash:` field of it.
fn transaction_of(visitor: &str) -> String {
    let lower = visitor.to_ascii_lowercase();
    for (key, end) in [("hash:", ','), ("txid:", '}')] {
        if let Some(at) = lower.find(key) {
            let rest = &visitor[at + key.len()..];
            return rest[..rest.find(end).unwrap_or(rest.len())]
                .trim()
                .to_string();
        }
    }
    String::new()
}

/// The statement a row kept (`EXTRA_NAME1` `current sql` or `wait_sql`), else empty.
fn statement_of(name: &str, value: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    if name.contains("current sql") || name.contains("wait_sql") {
        value.trim().to_string()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(event_id: i64, idx: i64, role: &str, visitor: &str, sql: &str) -> HistoryRow {
        HistoryRow {
            event_id,
            report_time: 1_796_413_350_003_187 - event_id,
            svr_ip: "10.0.0.1".into(),
            svr_port: 2882,
            cycle_idx: idx,
            cycle_size: 2,
            role: role.into(),
            visitor: visitor.into(),
            object: format!("{{\"INT\":{idx}}}"),
            extra_name: "current sql".into(),
            extra_value: sql.into(),
        }
    }

    /// Rows as seekdb's history holds them (see the real test in tests/it/seekdb.rs):
    /// an event per id, newest first, nodes in cycle order, the victim rolled back.
    #[test]
    fn rows_become_obshell_s_events() {
        let events = events_of(vec![
            row(
                -8,
                2,
                "witness",
                "{txid:3000736}",
                "UPDATE d SET v = 0 WHERE id = 1",
            ),
            row(5, 1, "victim", "{hash:77, txid:9}", ""),
            row(
                -8,
                1,
                "victim",
                "{txid:3000735}",
                "UPDATE d SET v = 0 WHERE id = 2",
            ),
        ]);
        assert_eq!(
            events
                .iter()
                .map(|e| e.event_id.as_str())
                .collect::<Vec<_>>(),
            ["-8", "5"],
            "newest first"
        );
        let first = &events[0];
        assert_eq!((first.size, first.nodes.len()), (2, 2));
        assert_eq!(first.report_time, "2026-12-04T19:42:30.003195Z");
        assert_eq!(
            first.nodes[0],
            DeadLockNode {
                svr_ip: "10.0.0.1".into(),
                svr_port: 2882,
                idx: 1,
                transaction_hash: "3000735".into(),
                roll_backed: true,
                resource: "{\"INT\":1}".into(),
                sql: "UPDATE d SET v = 0 WHERE id = 2".into(),
            }
        );
        assert!(!first.nodes[1].roll_backed);
        assert_eq!(events[1].nodes[0].transaction_hash, "77");
    }

    #[test]
    fn only_a_statement_the_row_names_is_its_sql() {
        assert_eq!(statement_of(" Current SQL ", " SELECT 1 "), "SELECT 1");
        assert_eq!(statement_of("wait_sql", "x"), "x");
        assert_eq!(statement_of("", "x"), "");
        assert_eq!(transaction_of("no id here"), "");
        assert_eq!(transaction_of("{TXID:12"), "12");
    }
}
