//! Statements sent over a MySQL-protocol connection (OceanBase, seekdb, MySQL,
//! MariaDB): the exporter's own sessions written into them, the probes of optional
//! relations and columns, a cycle's [`Statements`] run into [`Rows`], and the
//! driver's values read as [`Cell`]s. What the statements say, and how their rows are
//! decoded, is [`super::sql`]'s: it knows nothing of the driver.

use super::conn::{classify, is_missing_or_denied_relation};
use super::error::SourceError;
use super::sql::{
    bad_answer, parse_number, Cell, Connections, Pass, PeriodicReads, RowContext, Rows, Shape,
    Statements, OWN_SESSIONS, TAG,
};
use crate::config::Database;
use crate::stats::Collected;
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

impl Statements {
    /// Runs the cycle's statements on `conn` and adds their rows up. `tenants` are
    /// present even without rows; `shape` says which read of the sessions to send, and
    /// is updated for the next cycle.
    pub async fn run(
        &self,
        conn: &mut mysql_async::Conn,
        ctx: &RowContext<'_>,
        tenants: &[&str],
        shape: &mut Shape,
    ) -> Result<Collected, SqlError> {
        self.run_with(conn, ctx, tenants, shape, None).await
    }

    /// [`Statements::run`], counting applications by the connections' `programs`
    /// (see [`Statements::programs`]), which learns the new connections.
    pub async fn run_with(
        &self,
        conn: &mut mysql_async::Conn,
        ctx: &RowContext<'_>,
        tenants: &[&str],
        shape: &mut Shape,
        programs: Option<&mut Connections>,
    ) -> Result<Collected, SqlError> {
        let mut rows = Rows::new(ctx, tenants);
        if let (Some(programs), Some(_)) = (programs, &self.programs) {
            rows = rows.with_connections(programs);
        }
        if let Some(particulars) = &self.particulars {
            read(conn, particulars, &mut rows, Pass::Particulars).await?;
        }
        let pass = match self.session_read {
            true => Pass::PerSession,
            false => Pass::Groups,
        };
        let sql = match &self.ungrouped {
            Some(ungrouped) if shape.ungrouped => ungrouped,
            _ => &self.groups,
        };
        if !rows.failed() {
            read(conn, sql, &mut rows, pass).await?;
        }
        if let Some(fallback) = self
            .fallback
            .as_ref()
            .filter(|_| rows.held() && !rows.failed())
        {
            read(conn, fallback, &mut rows, Pass::Fallback).await?;
        }
        if let Some(prefix) = &self.programs {
            let unknown = rows.unknown_programs();
            if !unknown.is_empty() {
                read(
                    conn,
                    &Connections::statement(prefix, &unknown),
                    &mut rows,
                    Pass::Programs,
                )
                .await?;
                rows.settle_programs(&unknown);
            }
        }
        if let Some(activity) = self.activity.as_ref().filter(|_| rows.wants_activity()) {
            let sql = match &self.activity_known {
                Some(known) if !rows.needs_threads() => known,
                _ => activity,
            };
            read(conn, sql, &mut rows, Pass::Activity).await?;
        }
        if let Some(details) = &self.details {
            if rows.seen().lock_waits && !rows.failed() {
                read(conn, details, &mut rows, Pass::Details).await?;
            }
        }
        if self.ungrouped.is_some() && !rows.failed() {
            *shape = rows.next_shape(*shape);
        }
        rows.finish().map_err(SqlError::Answer)
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

/// Sends `sql` and adds its rows, decoded as `pass` says, to `rows` as they arrive:
/// one statement of a cycle that may send several.
pub async fn read(
    conn: &mut mysql_async::Conn,
    sql: &str,
    rows: &mut Rows<'_>,
    pass: Pass,
) -> Result<(), SqlError> {
    use mysql_async::prelude::Queryable;
    let sql = with_own_sessions(conn, sql);
    let mut result = conn.query_iter(sql).await?;
    result
        .for_each(|row| rows.add_as(row.unwrap(), pass))
        .await?;
    Ok(())
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

/// [`read`] for a statement with parameters (a passthrough request's tenant), which
/// are bound by the server, never written into the SQL text. The prepared statement
/// is closed after use: with no statement cache, the driver would otherwise leave it
/// open on the connection (and OceanBase soon refuses with "maximum open cursors").
pub async fn read_bound(
    conn: &mut mysql_async::Conn,
    sql: &str,
    params: mysql_async::Params,
    rows: &mut Rows<'_>,
    pass: Pass,
) -> Result<(), SqlError> {
    use mysql_async::prelude::Queryable;
    let sql = with_own_sessions(conn, sql);
    let statement = conn.prep(sql).await?;
    let read = match conn.exec_iter(&statement, params).await {
        Ok(mut result) => result
            .for_each(|row| rows.add_as(row.unwrap(), pass))
            .await
            .map_err(SqlError::from),
        Err(err) => Err(err.into()),
    };
    let closed = conn.close(statement).await;
    read?;
    closed?;
    Ok(())
}

/// Sends a kind's statement of the pile-up (see [`super::sql::add_pileup_row`]),
/// its parameters bound, and reads its rows.
pub async fn read_pileup(
    conn: &mut mysql_async::Conn,
    sql: &str,
    params: Vec<Value>,
) -> Result<crate::sessions::PileupRows, SqlError> {
    use mysql_async::prelude::Queryable;
    let sql = with_own_sessions(conn, sql);
    let statement = conn.prep(sql).await?;
    let found: Result<Vec<mysql_async::Row>, _> = conn.exec(&statement, params).await;
    let closed = conn.close(statement).await;
    let (found, ()) = (found?, closed?);
    let mut rows = crate::sessions::PileupRows::default();
    for row in found {
        super::sql::add_pileup_row(&mut rows, row.unwrap()).map_err(SqlError::Answer)?;
    }
    Ok(rows)
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
