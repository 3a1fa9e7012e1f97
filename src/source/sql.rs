//! SQL text shared by the sources, and tolerant decoding of their answers.
//!
//! Every query is sent over the text protocol (no prepared statements: nothing is
//! bound, and the binary protocol's strict integer/double typing broke on `SUM`'s
//! DECIMAL). Values are decoded here by one tolerant set of helpers.

use super::{Reason, SourceError};
use crate::stats::{client_label, Collection, SessionGroup, NONE_LABEL};
use mysql_async::Value;

/// Leading comment on every statement, so a DBA reading the processlist or a slow log
/// sees who sent it.
pub const TAG: &str = concat!("/* session_exporter ", env!("CARGO_PKG_VERSION"), " */");

/// SQL for "HOST without its `:port`", mirroring [`crate::stats::host_without_port`]
/// so the database can group by client address instead of by connection.
pub fn host_without_port(column: &str) -> String {
    format!(
        "IF({column} REGEXP ':[0-9]+$', \
         LEFT({column}, CHAR_LENGTH({column}) - CHAR_LENGTH(SUBSTRING_INDEX({column}, ':', -1)) - 1), \
         {column})"
    )
}

/// The columns every grouped query returns, in this order:
/// tenant, server, db, user, client, active, sessions, max_time.
/// A source that has one tenant or one server selects NULL for those and passes the
/// value to [`decode_group`] as a default.
pub const GROUP_COLUMNS: usize = 8;

/// Defaults and quirks for decoding one source's rows.
pub struct RowContext<'a> {
    pub tenant: &'a str,
    pub server: &'a str,
    /// OceanBase writes the *string* `NULL` in DB for sessions without a database.
    pub null_string_is_no_db: bool,
}

/// Decodes every row of a grouped query's answer.
pub fn decode_rows(
    rows: Vec<mysql_async::Row>,
    ctx: &RowContext<'_>,
) -> Result<Vec<SessionGroup>, SourceError> {
    rows.into_iter()
        .map(|row| decode_group(row.unwrap(), ctx))
        .collect()
}

/// The collection of a source with exactly one tenant, `ctx.tenant`.
pub fn single_tenant(
    rows: Vec<mysql_async::Row>,
    ctx: &RowContext<'_>,
) -> Result<Collection, SourceError> {
    Ok(Collection {
        tenants: vec![ctx.tenant.to_string()],
        groups: decode_rows(rows, ctx)?,
    })
}

/// Decodes one grouped row (see [`GROUP_COLUMNS`]).
pub fn decode_group(values: Vec<Value>, ctx: &RowContext<'_>) -> Result<SessionGroup, SourceError> {
    let got = values.len();
    let [tenant, server, db, user, client, active, sessions, max_time]: [Value; GROUP_COLUMNS] =
        values
            .try_into()
            .map_err(|_| bad_answer(format!("expected {GROUP_COLUMNS} columns, got {got}")))?;
    let db = match text(db) {
        None => NONE_LABEL.to_string(),
        Some(db) if db.is_empty() || (ctx.null_string_is_no_db && db == "NULL") => {
            NONE_LABEL.to_string()
        }
        Some(db) => db,
    };
    Ok(SessionGroup {
        tenant: text(tenant).unwrap_or_else(|| ctx.tenant.to_string()),
        server: text(server).unwrap_or_else(|| ctx.server.to_string()),
        db,
        user: text(user).unwrap_or_else(|| NONE_LABEL.to_string()),
        client: client_label(&text(client).unwrap_or_default()),
        active: flag(active, "active")?,
        sessions: count(sessions, "sessions")?,
        max_time: seconds(max_time, "max_time")?,
    })
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

/// A boolean from 0/1; NULL (a tenant without sessions) is false.
fn flag(value: Value, column: &str) -> Result<bool, SourceError> {
    Ok(number(value, column)?.is_some_and(|n| n != 0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    const OB: RowContext<'static> = RowContext {
        tenant: "fallback-tenant",
        server: "10.0.0.9",
        null_string_is_no_db: true,
    };

    #[test]
    fn decodes_text_protocol_rows() {
        let group = decode_group(
            vec![
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
            group,
            SessionGroup {
                tenant: "t1".into(),
                server: "10.0.0.1".into(),
                db: "app".into(),
                user: "root".into(),
                client: "10.0.0.100".into(),
                active: true,
                sessions: 3,
                max_time: 12.005242,
            }
        );
    }

    #[test]
    fn nulls_quirks_and_binary_types_are_tolerated() {
        let group = decode_group(
            vec![
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
        assert_eq!(group.tenant, "fallback-tenant");
        assert_eq!(group.server, "10.0.0.9");
        assert_eq!(group.db, NONE_LABEL);
        assert_eq!(group.user, NONE_LABEL);
        assert_eq!(group.client, "::1");
        assert!(!group.active);
        assert_eq!(group.sessions, 0);
        assert_eq!(group.max_time, 0.0);

        // A DECIMAL count, a UInt flag and a float time decode too.
        let group = decode_group(
            vec![
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
        assert_eq!(group.db, NONE_LABEL);
        assert_eq!(group.user, "u\u{fffd}\"\n");
        assert_eq!(group.client, NONE_LABEL);
        assert_eq!(
            (group.active, group.sessions, group.max_time),
            (true, 7, 1.5)
        );
    }

    #[test]
    fn the_string_null_is_a_database_on_mysql() {
        let ctx = RowContext {
            null_string_is_no_db: false,
            ..OB
        };
        let row = vec![
            Value::NULL,
            Value::NULL,
            bytes("NULL"),
            bytes("u"),
            bytes(""),
            bytes("0"),
            bytes("1"),
            bytes("0"),
        ];
        assert_eq!(decode_group(row, &ctx).unwrap().db, "NULL");
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        let row = |sessions: Value| {
            vec![
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
            let err = decode_group(row(bad.clone()), &OB).unwrap_err();
            assert_eq!(err.reason, Reason::Query, "{bad:?}");
        }
        let err = decode_group(vec![Value::NULL; 3], &OB).unwrap_err();
        assert!(
            err.message.contains("expected 8 columns, got 3"),
            "{}",
            err.message
        );
    }
}
