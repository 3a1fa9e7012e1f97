//! One target's live queries for the passthrough: its own small pool (never the
//! scheduler's connections), a cap on concurrent requests, and the SQL of the list,
//! detail and stats endpoints.
//!
//! Every value from a request is a bound parameter of a prepared statement; the SQL
//! text holds only names of ours (columns from an allowlist, the configured views).

use super::envelope::Failure;
use super::params::{ListParams, Observer};
use super::session::{expression, Field, TenantSession};
use crate::source::processlist::{Processlist, View};
use crate::source::sql::SqlError;
use crate::source::sql::{filter_conditions, TAG};
use crate::source::{self};
use crate::stats::{Counts, TenantStats, NONE_LABEL};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Pool, Value};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;
use tokio::sync::{OnceCell, Semaphore};

/// The relation and columns a target's sessions are read from, found once.
#[derive(Debug)]
struct Shape {
    view: View,
    relation: String,
    columns: HashSet<String>,
}

/// A page of the list: obshell's `PaginatedTenantSessions`.
#[derive(Debug, Serialize)]
pub struct Page {
    pub page: PageInfo,
    pub contents: Vec<TenantSession>,
}

/// obshell's `CustomPage`; `total_elements` is the real number of sessions matching
/// the filters (obshell reports the page's length).
#[derive(Debug, Serialize, PartialEq)]
pub struct PageInfo {
    pub total_elements: u64,
    pub total_pages: u64,
    pub size: u64,
    pub number: u64,
}

/// obshell's `TenantSessionStats`; `max_active_time` covers active sessions only.
#[derive(Debug, Serialize, PartialEq)]
pub struct SessionStats {
    pub total_count: u64,
    pub active_count: u64,
    pub max_active_time: f64,
    pub db_stats: Vec<DbStat>,
    pub user_stats: Vec<UserStat>,
    pub client_stats: Vec<ClientStat>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct DbStat {
    pub db_name: String,
    pub total_count: u64,
    pub active_count: u64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct UserStat {
    pub user_name: String,
    pub total_count: u64,
    pub active_count: u64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct ClientStat {
    pub client_ip: String,
    pub total_count: u64,
    pub active_count: u64,
}

impl From<TenantStats> for SessionStats {
    fn from(stats: TenantStats) -> Self {
        // Largest first, like obshell's example; names break ties. The metrics'
        // `__none__` (no database, no client address) is the API's empty string.
        fn ranked(values: BTreeMap<String, Counts>) -> Vec<(String, Counts)> {
            let mut list: Vec<(String, Counts)> = values
                .into_iter()
                .map(|(name, counts)| {
                    (
                        if name == NONE_LABEL {
                            String::new()
                        } else {
                            name
                        },
                        counts,
                    )
                })
                .collect();
            list.sort_by(|(a, x), (b, y)| y.sessions.cmp(&x.sessions).then_with(|| a.cmp(b)));
            list
        }
        Self {
            total_count: stats.sessions,
            active_count: stats.active_sessions,
            max_active_time: stats.max_active_time,
            db_stats: ranked(stats.by_db)
                .into_iter()
                .map(|(db_name, c)| DbStat {
                    db_name,
                    total_count: c.sessions,
                    active_count: c.active,
                })
                .collect(),
            user_stats: ranked(stats.by_user)
                .into_iter()
                .map(|(user_name, c)| UserStat {
                    user_name,
                    total_count: c.sessions,
                    active_count: c.active,
                })
                .collect(),
            client_stats: ranked(stats.by_client)
                .into_iter()
                .map(|(client_ip, c)| ClientStat {
                    client_ip,
                    total_count: c.sessions,
                    active_count: c.active,
                })
                .collect(),
        }
    }
}

/// One target's passthrough connections and what it knows about its relation.
pub struct Backend {
    pub target: Processlist,
    pool: Pool,
    permits: Semaphore,
    max_concurrent: usize,
    timeout: Duration,
    shape: OnceCell<Shape>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        source::close_in_background(self.pool.clone());
    }
}

impl Backend {
    /// `interval` is the target's collect interval, which sets how long idle
    /// connections are kept.
    pub fn new(
        target: Processlist,
        interval: Duration,
        max_concurrent: usize,
        timeout: Duration,
    ) -> Self {
        let init = target.init_statements(timeout);
        Self {
            pool: source::pool(target.database(), interval, init, max_concurrent),
            target,
            permits: Semaphore::new(max_concurrent),
            max_concurrent,
            timeout,
            shape: OnceCell::new(),
        }
    }

    /// True when this backend serves `target` with these settings unchanged, so a
    /// reload keeps its connections.
    pub fn serves(&self, target: &Processlist, max_concurrent: usize, timeout: Duration) -> bool {
        self.target == *target && self.max_concurrent == max_concurrent && self.timeout == timeout
    }

    pub async fn list(&self, tenant: &str, params: &ListParams) -> Result<Page, Failure> {
        let (total, contents) = self.sessions(tenant, params, true).await?;
        let total = total.unwrap_or_default();
        Ok(Page {
            page: PageInfo {
                total_elements: total,
                total_pages: total.div_ceil(params.size),
                size: params.size,
                number: params.page,
            },
            contents,
        })
    }

    /// The sessions `params` asks for, and with `count` how many match in all pages
    /// (one more query: the detail endpoint does without it).
    async fn sessions(
        &self,
        tenant: &str,
        params: &ListParams,
        count: bool,
    ) -> Result<(Option<u64>, Vec<TenantSession>), Failure> {
        let offset = params.offset()?;
        let _permit = self.permit().await?;
        let mut conn = self.conn().await?;
        let shape = self.shape(&mut conn).await?;
        let (conditions, mut values) = self.conditions(shape, tenant, params)?;
        let total = if count {
            let count_sql = format!(
                "{TAG} SELECT COUNT(*) FROM {} WHERE {conditions}",
                shape.relation
            );
            let total = exec(&mut conn, &count_sql, values.clone())
                .await
                .map_err(|e| self.failure(&e))?
                .into_iter()
                .next()
                .and_then(|row| row.unwrap().into_iter().next())
                .and_then(crate::source::sql::text)
                .and_then(|t| t.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    Failure::unavailable("the database did not return a session count")
                })?;
            Some(total)
        } else {
            None
        };
        let (fields, select) = select_list(shape);
        let mut order = String::new();
        if let Some((field, direction)) = params.sort {
            if let Some(expr) = expression(shape.view, field, &shape.columns) {
                order = format!("{expr} {}, ", direction.sql());
            }
        }
        order.push_str(&tiebreak(shape));
        let sql = format!(
            "{TAG} SELECT {select} FROM {} WHERE {conditions} ORDER BY {order} LIMIT ? OFFSET ?",
            shape.relation
        );
        values.push(params.size.into());
        values.push(offset.into());
        let rows = exec(&mut conn, &sql, values)
            .await
            .map_err(|e| self.failure(&e))?;
        let contents = rows
            .into_iter()
            .map(|row| self.session(shape, tenant, &fields, row))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((total, contents))
    }

    pub async fn detail(&self, tenant: &str, id: u64) -> Result<TenantSession, Failure> {
        let params = ListParams {
            id: Some(id),
            size: 1,
            ..ListParams::default()
        };
        let (_, contents) = self.sessions(tenant, &params, false).await?;
        contents.into_iter().next().ok_or_else(|| {
            Failure::not_found(
                "OB.Session.NotExist",
                format!("tenant `{tenant}` has no session {id} (it may have ended)"),
            )
        })
    }

    pub async fn stats(&self, tenant: &str) -> Result<SessionStats, Failure> {
        let _permit = self.permit().await?;
        let mut conn = self.conn().await?;
        let shape = self.shape(&mut conn).await?;
        let collected = self
            .target
            .tenant_stats(&mut conn, shape.view, tenant)
            .await
            .map_err(|err| match err {
                SqlError::Driver(err) => self.failure(&err),
                SqlError::Answer(err) => {
                    Failure::unavailable(format!("target `{}`: {err}", self.target.name()))
                }
            })?;
        let stats = collected
            .into_tenants()
            .into_iter()
            .find(|(name, _)| name == tenant)
            .map(|(_, s)| s);
        stats.map(SessionStats::from).ok_or_else(|| {
            Failure::not_found(
                "OB.Tenant.NotExist",
                format!(
                    "tenant `{tenant}` no longer exists in target `{}`",
                    self.target.name()
                ),
            )
        })
    }

    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, Failure> {
        self.permits
            .acquire()
            .await
            .map_err(|_| Failure::unavailable("the passthrough is shutting down"))
    }

    async fn conn(&self) -> Result<Conn, Failure> {
        self.pool.get_conn().await.map_err(|e| self.failure(&e))
    }

    async fn shape(&self, conn: &mut Conn) -> Result<&Shape, Failure> {
        self.shape
            .get_or_try_init(|| async {
                let view = self.target.detect_view(conn)
                    .await
                    .map_err(|e| self.failure(&e))?;
                let relation = self.target.relation(view);
                let probe = format!("{TAG} SELECT * FROM {relation} WHERE 1 = 0");
                let result = conn.query_iter(probe).await.map_err(|e| self.failure(&e))?;
                let columns: HashSet<String> = result
                    .columns_ref()
                    .iter()
                    .map(|c| c.name_str().to_ascii_uppercase())
                    .collect();
                result.drop_result().await.map_err(|e| self.failure(&e))?;
                if view == View::Cluster && !columns.contains("TENANT") {
                    return Err(Failure::unavailable(format!(
                        "{relation} has no TENANT column: the passthrough needs it to tell tenants apart"
                    )));
                }
                Ok(Shape { view, relation, columns })
            })
            .await
    }

    /// The WHERE clause of the list and its count, with its bound values.
    fn conditions(
        &self,
        shape: &Shape,
        tenant: &str,
        params: &ListParams,
    ) -> Result<(String, Vec<Value>), Failure> {
        let has = |c: &str| shape.columns.contains(c);
        let mut values: Vec<Value> = Vec::new();
        // The passthrough's own session is not one of the tenant's.
        let mut sql = match shape.view {
            View::Cluster => {
                values.push(tenant.into());
                if has("SVR_IP") {
                    "`TENANT` = ? AND NOT (`ID` = CONNECTION_ID() AND `SVR_IP` = HOST_IP())"
                        .to_string()
                } else {
                    "`TENANT` = ? AND `ID` <> CONNECTION_ID()".to_string()
                }
            }
            View::SingleTenant | View::Mysql => "`ID` <> CONNECTION_ID()".to_string(),
        };
        // The target's own filters apply, so the list agrees with the stats.
        sql.push_str(&filter_conditions(&self.target.database().filter, ""));
        for (field, wanted) in [
            (Field::User, &params.user),
            (Field::Db, &params.db),
            (Field::Host, &params.host),
        ] {
            let Some(wanted) = wanted.as_deref().filter(|w| !w.is_empty()) else {
                continue;
            };
            match expression(shape.view, field, &shape.columns) {
                // information_schema is utf8mb3 on MySQL and MariaDB: compared as is,
                // a 4-byte character in the filter is a collation error, not a miss.
                Some(expr) if shape.view == View::Mysql => {
                    sql.push_str(&format!(
                        " AND CONVERT({expr} USING utf8mb4) LIKE ? ESCAPE '!'"
                    ));
                    values.push(contains_pattern(wanted).into());
                }
                Some(expr) => {
                    sql.push_str(&format!(" AND {expr} LIKE ? ESCAPE '!'"));
                    values.push(contains_pattern(wanted).into());
                }
                None => sql.push_str(" AND 1 = 0"),
            }
        }
        if let Some(id) = params.id {
            sql.push_str(" AND `ID` = ?");
            values.push(id.into());
        }
        if let Some(observers) = &params.observers {
            sql.push_str(&self.observer_condition(shape, observers, &mut values));
        }
        if params.active_only {
            sql.push_str(&format!(" AND {}", self.target.active_condition()));
        }
        Ok((sql, values))
    }

    fn observer_condition(
        &self,
        shape: &Shape,
        observers: &[Observer],
        values: &mut Vec<Value>,
    ) -> String {
        if shape.view == View::Cluster && shape.columns.contains("SVR_IP") {
            let mut items = Vec::new();
            for observer in observers {
                values.push(observer.ip.to_string().into());
                match observer.port {
                    Some(port) if shape.columns.contains("SVR_PORT") => {
                        values.push(port.into());
                        items.push("(`SVR_IP` = ? AND `SVR_PORT` = ?)");
                    }
                    Some(_) => items.push("(`SVR_IP` = ? AND 1 = 0)"),
                    None => items.push("`SVR_IP` = ?"),
                }
            }
            return format!(" AND ({})", items.join(" OR "));
        }
        // One server: the target itself. It matches by address, and by port when
        // one is given (its SQL port, the only one it has).
        let address = &self.target.database().address;
        let host = address
            .host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| ip.to_canonical());
        let matches = observers
            .iter()
            .any(|o| host == Some(o.ip.to_canonical()) && o.port.is_none_or(|p| p == address.port));
        if matches {
            String::new()
        } else {
            " AND 1 = 0".to_string()
        }
    }

    fn session(
        &self,
        shape: &Shape,
        tenant: &str,
        fields: &[Field],
        row: mysql_async::Row,
    ) -> Result<TenantSession, Failure> {
        let mut session = TenantSession::default();
        for (field, value) in fields.iter().zip(row.unwrap()) {
            session.set(*field, value).map_err(|message| {
                Failure::unavailable(format!("target `{}`: {message}", self.target.name()))
            })?;
        }
        // What a single server does not say comes from the configuration.
        if shape.view != View::Cluster || !shape.columns.contains("TENANT") {
            session.tenant = tenant.to_string();
        }
        if shape.view != View::Cluster {
            let address = &self.target.database().address;
            if session.svr_ip.is_empty() {
                session.svr_ip = address.host.clone();
            }
            if session.sql_port == 0 {
                session.sql_port = i64::from(address.port);
            }
        }
        session.finish();
        Ok(session)
    }

    fn failure(&self, err: &mysql_async::Error) -> Failure {
        let error = self.target.classify(err);
        Failure::unavailable(format!("target `{}`: {error}", self.target.name()))
    }
}

/// Runs a prepared statement and closes it: with no statement cache, the driver would
/// leave every statement open on the pooled connection (MySQL counts them against
/// max_prepared_stmt_count; OceanBase soon refuses with "maximum open cursors").
async fn exec(
    conn: &mut Conn,
    sql: &str,
    values: Vec<Value>,
) -> Result<Vec<mysql_async::Row>, mysql_async::Error> {
    let statement = conn.prep(sql).await?;
    let rows = conn.exec(&statement, values).await;
    let closed = conn.close(statement).await;
    let rows = rows?;
    closed?;
    Ok(rows)
}

/// The SELECT list: every field the view can read, and which field each column is.
fn select_list(shape: &Shape) -> (Vec<Field>, String) {
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for field in Field::ALL {
        if let Some(expr) = expression(shape.view, field, &shape.columns) {
            fields.push(field);
            columns.push(expr);
        }
    }
    (fields, columns.join(", "))
}

/// Stable order under paging: a session is (server, id) in a cluster, id elsewhere.
fn tiebreak(shape: &Shape) -> String {
    if shape.view == View::Cluster && shape.columns.contains("SVR_IP") {
        "`ID` ASC, `SVR_IP` ASC".to_string()
    } else {
        "`ID` ASC".to_string()
    }
}

/// A LIKE pattern for "contains `text`", with `!` as the escape character (the same
/// in every SQL mode, unlike a backslash): `%`, `_` and `!` match themselves.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '!') {
            pattern.push('!');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("ro"), "%ro%");
        assert_eq!(contains_pattern("50%_!x"), "%50!%!_!!x%");
        assert_eq!(contains_pattern("'\\\0"), "%'\\\0%");
    }

    #[test]
    fn stats_are_ranked_and_none_is_empty() {
        let mut stats = TenantStats {
            sessions: 10,
            active_sessions: 5,
            max_active_time: 3.5,
            ..TenantStats::default()
        };
        stats.by_db.insert(
            "sys".into(),
            Counts {
                sessions: 2,
                active: 1,
            },
        );
        stats.by_db.insert(
            "test".into(),
            Counts {
                sessions: 8,
                active: 4,
            },
        );
        stats.by_client.insert(
            NONE_LABEL.into(),
            Counts {
                sessions: 1,
                active: 0,
            },
        );
        let api = SessionStats::from(stats);
        assert_eq!(api.db_stats[0].db_name, "test");
        assert_eq!(api.db_stats[1].db_name, "sys");
        assert_eq!(api.client_stats[0].client_ip, "");
        let json = serde_json::to_value(&api).unwrap();
        assert_eq!(json["db_stats"][0]["total_count"], 8);
        assert_eq!(json["max_active_time"], 3.5);
    }
}
