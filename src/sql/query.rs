//! Statements sent over a MySQL-protocol connection: the exporter's own sessions
//! written into them, the driver as a cycle's [`Connection`], the probes of optional
//! relations and columns, and the driver's values read as [`Cell`]s. Which statements
//! a cycle sends is its kind's; how rows are decoded is [`super`]'s, which knows
//! nothing of the driver.

use super::conn::{classify, is_missing_or_denied_relation};
use super::{bad_answer, parse_number, Cell, Connection, PeriodicReads, OWN_SESSIONS, TAG};
use crate::config::Database;
use crate::error::SourceError;
use mysql_async::Value;

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

impl Connection for mysql_async::Conn {
    type Cell<'r> = Value;
    type Error = mysql_async::Error;

    /// Writes this process's own session ids where the statement says
    /// [`OWN_SESSIONS`], and streams the rows as the server sends them.
    async fn rows<F>(&mut self, sql: &str, mut each: F) -> Result<(), mysql_async::Error>
    where
        F: for<'r> FnMut(Vec<Value>) + Send,
    {
        use mysql_async::prelude::Queryable;
        let sql = with_own_sessions(self, sql);
        let mut result = self.query_iter(sql).await?;
        result.for_each(|row| each(row.unwrap())).await
    }
}

/// Whether this account can read `relation`: `Ok(None)` when it can, `Ok(Some(err))`
/// when the relation is missing or denied (the caller turns off what needs it and
/// says why), `Err` for anything else (the cycle fails like any other).
pub async fn probe_relation(
    conn: &mut mysql_async::Conn,
    relation: &str,
) -> Result<Option<mysql_async::Error>, mysql_async::Error> {
    use mysql_async::prelude::Queryable;
    // LIMIT 1, not WHERE 1 = 0: for an impossible WHERE MariaDB does not fill an
    // information_schema table, and so never checks the privilege it needs.
    match conn
        .query_drop(format!("{TAG} SELECT 1 FROM {relation} LIMIT 1"))
        .await
    {
        Ok(()) => Ok(None),
        Err(err) if is_missing_or_denied_relation(&err) => Ok(Some(err)),
        Err(err) => Err(err),
    }
}

/// Whether `relation` has `column`; a missing relation is an error like any other
/// (the caller probed it first).
pub async fn has_column(
    conn: &mut mysql_async::Conn,
    relation: &str,
    column: &str,
) -> Result<bool, mysql_async::Error> {
    use mysql_async::prelude::Queryable;
    match conn
        .query_drop(format!("{TAG} SELECT {column} FROM {relation} LIMIT 1"))
        .await
    {
        Ok(()) => Ok(true),
        // ER_BAD_FIELD_ERROR: unknown column.
        Err(mysql_async::Error::Server(err)) if err.code == 1054 => Ok(false),
        Err(err) => Err(err),
    }
}

/// Why a statement over a MySQL-protocol connection gave no statistics.
pub type SqlError = super::SqlError<mysql_async::Error>;

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

/// Sends a statement of periodic reads and keeps what it found in `reads` for the
/// tenants of the next cycles; `tenant` stands for an empty tenant column. A failure
/// is said (with `grant` as the hint) and the last values are kept: limits and
/// deadlocks never fail the cycle of the sessions.
pub async fn read_periodic(
    conn: &mut mysql_async::Conn,
    sql: &str,
    reads: &mut PeriodicReads,
    tenant: &str,
    (database, target, grant): (&Database, &str, &str),
) {
    use mysql_async::prelude::Queryable;
    let mut answer = reads.rows(tenant);
    let mut wrong = None;
    let sent = async {
        let mut result = conn.query_iter(sql).await?;
        result
            .for_each(|row| {
                if wrong.is_none() {
                    wrong = answer.add(row.unwrap()).err();
                }
            })
            .await
    };
    let failed = match sent.await {
        Err(err) => classify(&err, database, "reading limits and deadlocks", grant),
        Ok(()) => match wrong {
            Some(err) => err,
            None => return reads.finish(answer),
        },
    };
    tracing::warn!(target = %target, "{failed}");
    reads.failed();
}

/// [`read`](super::read) for a statement with parameters (a session API
/// request's tenant), which are bound by the server, never written into the SQL text.
/// The prepared statement is closed after use: with no statement cache, the driver
/// would otherwise leave it open on the connection (and OceanBase soon refuses with
/// "maximum open cursors").
pub async fn read_bound(
    conn: &mut mysql_async::Conn,
    sql: &str,
    params: mysql_async::Params,
    mut each: impl FnMut(Vec<Value>) -> Result<(), SourceError> + Send,
) -> Result<(), SqlError> {
    use mysql_async::prelude::Queryable;
    let sql = with_own_sessions(conn, sql);
    let statement = conn.prep(sql).await?;
    let mut refused = None;
    let read = match conn.exec_iter(&statement, params).await {
        Ok(mut result) => result
            .for_each(|row| {
                if refused.is_none() {
                    refused = each(row.unwrap()).err();
                }
            })
            .await
            .map_err(SqlError::from),
        Err(err) => Err(err.into()),
    };
    let closed = conn.close(statement).await;
    read?;
    closed?;
    match refused {
        Some(err) => Err(SqlError::Answer(err)),
        None => Ok(()),
    }
}

impl Cell for Value {
    fn is_null(&self) -> bool {
        matches!(self, Value::NULL)
    }

    fn into_text(self) -> Option<String> {
        text(self)
    }

    fn into_number(self, column: &str) -> Result<Option<f64>, SourceError> {
        match self {
            Value::NULL => Ok(None),
            Value::Int(n) => Ok(Some(n as f64)),
            Value::UInt(n) => Ok(Some(n as f64)),
            Value::Float(n) => Ok(Some(f64::from(n))),
            Value::Double(n) => Ok(Some(n)),
            Value::Bytes(bytes) => parse_number(&bytes, column).map(Some),
            other => Err(bad_answer(format!(
                "column {column} is {}, not a number",
                other.as_sql(true)
            ))),
        }
    }
}

/// A MySQL value as text; NULL is None (see [`Cell::into_text`]).
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
