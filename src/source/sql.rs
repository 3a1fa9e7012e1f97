//! SQL text shared by the sources, and tolerant decoding of their answers.
//!
//! Every query is sent over the text protocol (no prepared statements: nothing is
//! bound, and the binary protocol's strict integer/double typing broke on `SUM`'s
//! DECIMAL). Values are decoded here by one tolerant set of helpers.

use super::conn::classify;
use super::error::{Reason, SourceError};
use crate::config::{Database, Filter};
use crate::stats::{client_label, Aggregator, Collected, SessionGroup, TopSession, NONE_LABEL};
use mysql_async::Value;

/// Leading comment on every statement, so a DBA reading the processlist or a slow log
/// sees who sent it.
pub const TAG: &str = concat!("/* session_exporter ", env!("CARGO_PKG_VERSION"), " */");

/// Stands, in a statement's text, for the list of the exporter's own session ids on
/// the server (`ID NOT IN (…)`): [`with_own_sessions`] writes them in just before the
/// statement is sent, so no statement counts or lists the exporter's connections.
pub const OWN_SESSIONS: &str = "CONNECTION_ID() /* own sessions */";

/// `sql` with [`OWN_SESSIONS`] replaced by `CONNECTION_ID()` and the ids of every
/// other connection this process holds to `conn`'s server (the collection's pool,
/// the session API's); `conn` is noted among them.
pub fn with_own_sessions(conn: &mysql_async::Conn, sql: &str) -> String {
    let own = super::conn::OwnSessions::of(conn);
    let mut list = String::from("CONNECTION_ID()");
    for id in own.ids() {
        list.push_str(&format!(", {id}"));
    }
    sql.replace(OWN_SESSIONS, &list)
}

/// SQL for "HOST without its `:port`", mirroring [`crate::stats::host_without_port`]
/// so the database can group by client address instead of by connection.
pub fn host_without_port(column: &str) -> String {
    format!(
        "IF({column} REGEXP ':[0-9]+$', \
         LEFT({column}, CHAR_LENGTH({column}) - CHAR_LENGTH(SUBSTRING_INDEX({column}, ':', -1)) - 1), \
         {column})"
    )
}

/// The columns every query returns, in this order: kind (`'g'` a group of sessions,
/// `'t'` one of the longest active sessions), tenant, server, db, user, client,
/// active (how many of the group are active; 1 on top rows), sessions, time (the
/// longest active one's; NULL when none is active), session id and SQL id (top rows).
/// A source that has one tenant or one server selects NULL for those and passes the
/// value to [`decode_row`] as a default. One statement carries both kinds of rows
/// (UNION ALL), so a cycle costs the database exactly one query.
pub const COLUMNS: usize = 11;

/// Defaults and quirks for decoding one source's rows.
pub struct RowContext<'a> {
    pub tenant: &'a str,
    pub server: &'a str,
    /// OceanBase writes the *string* `NULL` in DB for sessions without a database.
    pub null_string_is_no_db: bool,
}

/// One decoded row.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Group(SessionGroup),
    Top(TopSession),
}

/// Decodes one row (see [`COLUMNS`]).
pub fn decode_row(values: Vec<Value>, ctx: &RowContext<'_>) -> Result<Decoded, SourceError> {
    let got = values.len();
    let [kind, tenant, server, db, user, client, active, sessions, time, id, sql_id]: [Value;
        COLUMNS] = values
        .try_into()
        .map_err(|_| bad_answer(format!("expected {COLUMNS} columns, got {got}")))?;
    let db = match text(db) {
        None => NONE_LABEL.to_string(),
        Some(db) if db.is_empty() || (ctx.null_string_is_no_db && db == "NULL") => {
            NONE_LABEL.to_string()
        }
        Some(db) => db,
    };
    let tenant = text(tenant).unwrap_or_else(|| ctx.tenant.to_string());
    let user = text(user).unwrap_or_else(|| NONE_LABEL.to_string());
    let client = client_label(text(client).unwrap_or_default());
    let kind: &[u8] = match &kind {
        Value::Bytes(kind) => kind,
        _ => b"",
    };
    match kind {
        b"g" => {
            let sessions = count(sessions, "sessions")?;
            let active = count(active, "active")?;
            if active > sessions {
                return Err(bad_answer(format!(
                    "a group of {sessions} sessions has {active} active ones"
                )));
            }
            Ok(Decoded::Group(SessionGroup {
                tenant,
                server: text(server).unwrap_or_else(|| ctx.server.to_string()),
                db,
                user,
                client,
                active,
                sessions,
                max_active_time: seconds(time, "time")?,
            }))
        }
        b"t" => Ok(Decoded::Top(TopSession {
            tenant,
            session_id: count(id, "id")?,
            user,
            db,
            client,
            sql_id: text(sql_id).unwrap_or_default(),
            time: seconds(time, "time")?,
        })),
        other => Err(bad_answer(format!(
            "unknown row kind `{}`",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// Why a statement gave no statistics: the driver failed (classified by the caller,
/// who knows what it was doing), or the server's answer is not what we asked for.
#[derive(Debug)]
pub enum SqlError {
    Driver(mysql_async::Error),
    Answer(SourceError),
}

impl From<mysql_async::Error> for SqlError {
    fn from(err: mysql_async::Error) -> Self {
        SqlError::Driver(err)
    }
}

impl SqlError {
    /// The collection error: a driver error classified with `what` the source was
    /// doing and the `grant` to suggest; a bad answer as it is.
    pub fn classify(self, database: &Database, what: &str, grant: &str) -> SourceError {
        match self {
            SqlError::Driver(err) => classify(&err, database, what, grant),
            SqlError::Answer(err) => err,
        }
    }
}

/// Sends `sql` and adds up its rows as they arrive (no row list is kept). `tenants`
/// are present even without rows (a single-tenant source's one tenant).
pub async fn query(
    conn: &mut mysql_async::Conn,
    sql: &str,
    ctx: &RowContext<'_>,
    tenants: &[&str],
) -> Result<Collected, SqlError> {
    use mysql_async::prelude::Queryable;
    let sql = with_own_sessions(conn, sql);
    let result = conn.query_iter(sql).await?;
    aggregate_rows(result, ctx, tenants).await
}

/// [`query`] for a statement with parameters (a passthrough request's tenant), which
/// are bound by the server, never written into the SQL text. The prepared statement
/// is closed after use: with no statement cache, the driver would otherwise leave it
/// open on the connection (and OceanBase soon refuses with "maximum open cursors").
pub async fn query_bound(
    conn: &mut mysql_async::Conn,
    sql: &str,
    params: mysql_async::Params,
    ctx: &RowContext<'_>,
    tenants: &[&str],
) -> Result<Collected, SqlError> {
    use mysql_async::prelude::Queryable;
    let sql = with_own_sessions(conn, sql);
    let statement = conn.prep(sql).await?;
    let aggregated = match conn.exec_iter(&statement, params).await {
        Ok(result) => aggregate_rows(result, ctx, tenants).await,
        Err(err) => Err(err.into()),
    };
    let closed = conn.close(statement).await;
    let aggregated = aggregated?;
    closed?;
    Ok(aggregated)
}

async fn aggregate_rows<P: mysql_async::prelude::Protocol>(
    mut result: mysql_async::QueryResult<'_, 'static, P>,
    ctx: &RowContext<'_>,
    tenants: &[&str],
) -> Result<Collected, SqlError> {
    let mut rows = Rows::new(ctx, tenants);
    result.for_each(|row| rows.add(row.unwrap())).await?;
    rows.finish().map_err(SqlError::Answer)
}

/// Decodes rows and adds them up, one at a time; the first bad row stops the
/// decoding, and is the answer's error. Fed by [`query`] as rows arrive, and by the
/// sources' unit tests with fixed rows.
pub struct Rows<'a> {
    ctx: &'a RowContext<'a>,
    aggregator: Aggregator,
    failure: Option<SourceError>,
}

impl<'a> Rows<'a> {
    /// `tenants` are present even without rows.
    pub fn new(ctx: &'a RowContext<'a>, tenants: &[&str]) -> Self {
        let mut aggregator = Aggregator::default();
        for tenant in tenants {
            aggregator.add_tenant(tenant);
        }
        Self {
            ctx,
            aggregator,
            failure: None,
        }
    }

    pub fn add(&mut self, values: Vec<Value>) {
        if self.failure.is_some() {
            return;
        }
        match decode_row(values, self.ctx) {
            Ok(Decoded::Group(group)) => self.aggregator.add_group(group),
            Ok(Decoded::Top(top)) => self.aggregator.add_top(top),
            Err(err) => self.failure = Some(err),
        }
    }

    pub fn finish(self) -> Result<Collected, SourceError> {
        match self.failure {
            Some(err) => Err(err),
            None => Ok(self.aggregator.finish()),
        }
    }
}

/// ` AND …` conditions that apply `filter` to processlist columns named with
/// `prefix` (`"p."` or `""`). Names are quoted as string literals; config validation
/// refused backslashes and control characters, so doubling quotes is enough in every
/// SQL mode.
pub fn filter_conditions(filter: &Filter, prefix: &str) -> String {
    let mut sql = String::new();
    if let Some(min) = filter.min_time {
        sql.push_str(&format!(" AND {prefix}TIME >= {}", min.as_secs_f64()));
    }
    for (column, list) in [("USER", &filter.users), ("DB", &filter.databases)] {
        if let Some(allow) = &list.allow {
            sql.push_str(&format!(" AND {prefix}{column} IN ({})", quote_list(allow)));
        }
        if !list.deny.is_empty() {
            // NULL (no database) is not a denied name: keep it explicitly.
            sql.push_str(&format!(
                " AND ({prefix}{column} IS NULL OR {prefix}{column} NOT IN ({}))",
                quote_list(&list.deny)
            ));
        }
    }
    sql
}

fn quote_list(names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("'{}'", name.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn bad_answer(detail: String) -> SourceError {
    SourceError::new(
        Reason::Query,
        format!("unexpected answer from the server: {detail}"),
    )
}

/// A text value; NULL is None. Bytes that are not UTF-8 are replaced, not rejected:
/// a user name with a stray byte must not make the whole target go dark.
pub fn text(value: Value) -> Option<String> {
    match value {
        Value::NULL => None,
        Value::Bytes(bytes) => Some(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
        }),
        Value::Int(n) => Some(n.to_string()),
        Value::UInt(n) => Some(n.to_string()),
        Value::Float(n) => Some(n.to_string()),
        Value::Double(n) => Some(n.to_string()),
        other => Some(other.as_sql(true)),
    }
}

/// A number from any representation the servers use: integer, double, or a decimal
/// string (`SUM` is DECIMAL on seekdb and MariaDB). NULL is None.
fn number(value: Value, column: &str) -> Result<Option<f64>, SourceError> {
    match value {
        Value::NULL => Ok(None),
        Value::Int(n) => Ok(Some(n as f64)),
        Value::UInt(n) => Ok(Some(n as f64)),
        Value::Float(n) => Ok(Some(f64::from(n))),
        Value::Double(n) => Ok(Some(n)),
        // Counts, most of a large answer, are plain digits: summed without the float
        // parser (exact below 2^53, hence at most 15 digits).
        Value::Bytes(bytes)
            if (1..=15).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_digit) =>
        {
            Ok(Some(
                bytes.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')) as f64,
            ))
        }
        Value::Bytes(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            text.trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map(Some)
                .ok_or_else(|| bad_answer(format!("column {column} is `{text}`, not a number")))
        }
        other => Err(bad_answer(format!(
            "column {column} is {}, not a number",
            other.as_sql(true)
        ))),
    }
}

/// A session count: a non-negative whole number; NULL counts as 0.
fn count(value: Value, column: &str) -> Result<u64, SourceError> {
    match number(value, column)? {
        None => Ok(0),
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= u64::MAX as f64 => Ok(n as u64),
        Some(n) => Err(bad_answer(format!("column {column} is {n}, not a count"))),
    }
}

/// A duration in seconds; NULL (no sessions) and negative values (clock skew) are 0.
fn seconds(value: Value, column: &str) -> Result<f64, SourceError> {
    Ok(number(value, column)?.unwrap_or(0.0).max(0.0))
}

/// Rows as a test writes them, for the sources' "fixed rows in, exact statistics
/// out" tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::stats::Counts;
    use mysql_async::Value;
    use std::collections::BTreeMap;

    /// A text-protocol row written as
    /// `kind|tenant|server|db|user|client|active|sessions|time|id|sql_id`, `∅` for NULL.
    pub fn row(text: &str) -> Vec<Value> {
        text.split('|')
            .map(|v| match v {
                "∅" => Value::NULL,
                v => Value::Bytes(v.as_bytes().to_vec()),
            })
            .collect()
    }

    /// A dimension as (value, counts) pairs, in label order.
    pub fn pairs(values: &BTreeMap<String, Counts>) -> Vec<(&str, Counts)> {
        values.iter().map(|(k, v)| (k.as_str(), *v)).collect()
    }

    pub fn counts(sessions: u64, active: u64) -> Counts {
        Counts { sessions, active }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NameList;
    use std::time::Duration;

    fn bytes(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    /// A group row: the kind column, the eight given values, no id or SQL id.
    fn group_row(values: [Value; 8]) -> Vec<Value> {
        let mut row = vec![bytes("g")];
        row.extend(values);
        row.extend([Value::NULL, Value::NULL]);
        row
    }

    fn group(values: [Value; 8], ctx: &RowContext<'_>) -> Result<SessionGroup, SourceError> {
        match decode_row(group_row(values), ctx)? {
            Decoded::Group(group) => Ok(group),
            other => panic!("not a group: {other:?}"),
        }
    }

    const OB: RowContext<'static> = RowContext {
        tenant: "fallback-tenant",
        server: "10.0.0.9",
        null_string_is_no_db: true,
    };

    #[test]
    fn decodes_text_protocol_rows() {
        let decoded = group(
            [
                bytes("t1"),
                bytes("10.0.0.1"),
                bytes("app"),
                bytes("root"),
                bytes("10.0.0.100"),
                bytes("1"),
                bytes("3"),
                bytes("12.005242"),
            ],
            &OB,
        )
        .unwrap();
        assert_eq!(
            decoded,
            SessionGroup {
                tenant: "t1".into(),
                server: "10.0.0.1".into(),
                db: "app".into(),
                user: "root".into(),
                client: "10.0.0.100".into(),
                active: 1,
                sessions: 3,
                max_active_time: 12.005242,
            }
        );
    }

    #[test]
    fn decodes_top_session_rows() {
        let row = vec![
            bytes("t"),
            Value::NULL,
            Value::NULL,
            bytes("NULL"),
            bytes("app"),
            bytes("10.0.0.7"),
            bytes("1"),
            bytes("1"),
            bytes("33.5"),
            bytes("3221588508"),
            bytes("C82D7414C2E9706348979FC0CE2199E9"),
        ];
        assert_eq!(
            decode_row(row, &OB).unwrap(),
            Decoded::Top(TopSession {
                tenant: "fallback-tenant".into(),
                session_id: 3_221_588_508,
                user: "app".into(),
                db: NONE_LABEL.into(),
                client: "10.0.0.7".into(),
                sql_id: "C82D7414C2E9706348979FC0CE2199E9".into(),
                time: 33.5,
            })
        );
        let mut bad = vec![bytes("x")];
        bad.extend(vec![Value::NULL; 10]);
        assert!(decode_row(bad, &OB)
            .unwrap_err()
            .message
            .contains("unknown row kind"));
    }

    #[test]
    fn nulls_quirks_and_binary_types_are_tolerated() {
        let g = group(
            [
                Value::NULL,
                Value::NULL,
                bytes("NULL"),
                Value::NULL,
                bytes("[::1]"),
                Value::NULL,
                Value::Int(0),
                Value::Double(-2.0),
            ],
            &OB,
        )
        .unwrap();
        assert_eq!(g.tenant, "fallback-tenant");
        assert_eq!(g.server, "10.0.0.9");
        assert_eq!(g.db, NONE_LABEL);
        assert_eq!(g.user, NONE_LABEL);
        assert_eq!(g.client, "::1");
        assert_eq!(g.active, 0);
        assert_eq!(g.sessions, 0);
        assert_eq!(g.max_active_time, 0.0);

        // A DECIMAL count, a UInt flag and a float time decode too.
        let g = group(
            [
                bytes("t"),
                bytes("s"),
                bytes(""),
                Value::Bytes(vec![b'u', 0xff, b'"', b'\n']),
                bytes(""),
                Value::UInt(1),
                bytes("7.000"),
                Value::Float(1.5),
            ],
            &OB,
        )
        .unwrap();
        assert_eq!(g.db, NONE_LABEL);
        assert_eq!(g.user, "u\u{fffd}\"\n");
        assert_eq!(g.client, NONE_LABEL);
        assert_eq!((g.active, g.sessions, g.max_active_time), (1, 7, 1.5));

        // More active sessions than sessions is a broken answer, not a number to show.
        let err = group(
            [
                bytes("t"),
                bytes("s"),
                bytes("d"),
                bytes("u"),
                bytes("10.0.0.1"),
                bytes("3"),
                bytes("2"),
                Value::NULL,
            ],
            &OB,
        )
        .unwrap_err();
        assert!(err.message.contains("has 3 active"), "{}", err.message);
    }

    #[test]
    fn the_string_null_is_a_database_on_mysql() {
        let ctx = RowContext {
            null_string_is_no_db: false,
            ..OB
        };
        let values = [
            Value::NULL,
            Value::NULL,
            bytes("NULL"),
            bytes("u"),
            bytes(""),
            bytes("0"),
            bytes("1"),
            bytes("0"),
        ];
        assert_eq!(group(values, &ctx).unwrap().db, "NULL");
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        let values = |sessions: Value| {
            [
                Value::NULL,
                Value::NULL,
                Value::NULL,
                Value::NULL,
                Value::NULL,
                bytes("0"),
                sessions,
                Value::NULL,
            ]
        };
        for bad in [
            bytes("many"),
            bytes("1.5"),
            Value::Int(-1),
            bytes("NaN"),
            bytes("inf"),
        ] {
            let err = group(values(bad.clone()), &OB).unwrap_err();
            assert_eq!(err.reason, Reason::Query, "{bad:?}");
        }
        let err = decode_row(vec![Value::NULL; 3], &OB).unwrap_err();
        assert!(
            err.message.contains("expected 11 columns, got 3"),
            "{}",
            err.message
        );
    }

    #[test]
    fn filters_become_quoted_conditions() {
        assert_eq!(filter_conditions(&Filter::default(), "p."), "");
        let filter = Filter {
            min_time: Some(Duration::from_millis(1500)),
            users: NameList {
                allow: None,
                deny: vec!["repl".into(), "o'brien".into()],
            },
            databases: NameList {
                allow: Some(vec!["app".into()]),
                deny: vec![],
            },
        };
        assert_eq!(
            filter_conditions(&filter, "p."),
            " AND p.TIME >= 1.5 AND (p.USER IS NULL OR p.USER NOT IN ('repl', 'o''brien')) AND p.DB IN ('app')"
        );
    }
}
