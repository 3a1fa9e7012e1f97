//! OceanBase: a cluster through the sys tenant's `GV$OB_PROCESSLIST`, or a
//! single-tenant server (seekdb) through `V$OB_PROCESSLIST`.
//!
//! Cluster mode LEFT JOINs `DBA_OB_TENANTS` to the processlist, as OceanBase's own
//! obagent does, so a tenant without sessions still comes back (with a count of 0)
//! in the same single query. Active means `STATE = 'ACTIVE'`. The client address is
//! `USER_CLIENT_IP` (the real client; `HOST` is the proxy for sessions through
//! OBProxy), falling back to `HOST` without its port.

use super::conn::{classify, is_missing_or_denied_relation, Connector};
use super::sql::{filter_conditions, host_without_port, query, RowContext, TAG};
use super::{BoxFuture, Source, SourceError};
use crate::config::{Relation, Target};
use crate::stats::Collected;

const GRANT: &str = "grant it with GRANT SELECT ON oceanbase.* TO the account \
                     (a cluster needs GV$OB_PROCESSLIST and DBA_OB_TENANTS in the sys tenant)";

/// Which view this target is read through; found on the first successful cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Cluster,
    SingleTenant,
}

pub struct OceanbaseSource {
    target: Target,
    connector: Connector,
    mode: Option<Mode>,
    cluster_sql: String,
    single_sql: String,
    /// The tenant label in single-tenant mode.
    single_tenant: String,
}

impl OceanbaseSource {
    pub fn new(target: &Target) -> Self {
        // The server stops our query at the same limit the scheduler abandons it, so
        // an abandoned cycle leaves no work behind in the database.
        let timeout_us = target.collect_timeout.as_micros().max(1);
        let init = vec![format!("{TAG} SET SESSION ob_query_timeout = {timeout_us}")];
        // Configured views force cluster mode: the user told us what to read.
        let mode = (target.processlist_view.is_some() || target.tenants_view.is_some())
            .then_some(Mode::Cluster);
        Self {
            connector: Connector::new(target, init),
            mode,
            cluster_sql: cluster_sql(target),
            single_sql: single_sql(target),
            single_tenant: single_tenant_name(target),
            target: target.clone(),
        }
    }

    async fn run(&mut self) -> Result<Collected, SourceError> {
        let mut conn = self
            .connector
            .conn()
            .await
            .map_err(|e| classify(&e, &self.target, "connecting", GRANT))?;
        match self.mode {
            Some(Mode::Cluster) => self
                .query_cluster(&mut conn)
                .await
                .map_err(|e| self.classify_cluster(&e))?,
            Some(Mode::SingleTenant) => self.single(&mut conn).await,
            // First success decides the mode; it is not revisited, so a privilege
            // revoked later shows as an auth error instead of a silent switch to
            // the connected tenant alone.
            None => match self.query_cluster(&mut conn).await {
                Ok(collection) => {
                    self.mode = Some(Mode::Cluster);
                    collection
                }
                Err(err) if is_missing_or_denied_relation(&err) => {
                    tracing::info!(
                        target = %self.target.name,
                        tenant = %self.single_tenant,
                        "GV$OB_PROCESSLIST is not visible to this account ({err}); \
                         collecting the connected tenant through V$OB_PROCESSLIST"
                    );
                    let collection = self.single(&mut conn).await?;
                    self.mode = Some(Mode::SingleTenant);
                    Ok(collection)
                }
                Err(err) => Err(self.classify_cluster(&err)),
            },
        }
    }

    /// The cluster statement; every tenant comes back in a group row (a zero row
    /// when it has no sessions).
    async fn query_cluster(
        &self,
        conn: &mut mysql_async::Conn,
    ) -> Result<Result<Collected, SourceError>, mysql_async::Error> {
        let ctx = RowContext {
            tenant: "",
            server: &self.target.address.host,
            null_string_is_no_db: true,
        };
        query(conn, &self.cluster_sql, &ctx, &[]).await
    }

    fn classify_cluster(&self, err: &mysql_async::Error) -> SourceError {
        let what = format!("reading {}", self.processlist_name());
        classify(err, &self.target, &what, GRANT)
    }

    fn processlist_name(&self) -> String {
        processlist_relation(&self.target)
    }

    async fn single(&self, conn: &mut mysql_async::Conn) -> Result<Collected, SourceError> {
        let ctx = RowContext {
            tenant: &self.single_tenant,
            server: &self.target.address.host,
            null_string_is_no_db: true,
        };
        query(conn, &self.single_sql, &ctx, &[&self.single_tenant])
            .await
            .map_err(|e| {
                classify(
                    &e,
                    &self.target,
                    "reading oceanbase.V$OB_PROCESSLIST",
                    GRANT,
                )
            })?
    }
}

impl Source for OceanbaseSource {
    fn collect(&mut self) -> BoxFuture<'_, Result<Collected, SourceError>> {
        Box::pin(self.run())
    }

    fn reset(&mut self) {
        self.connector.reset();
    }
}

/// The cluster statement: one row per (tenant, server, db, user, client) with its
/// active count,
/// one zero row per tenant without sessions, and with `top_sessions` each tenant's
/// longest active sessions (a window function picks N per tenant).
fn cluster_sql(target: &Target) -> String {
    // Tenant names are validated as [A-Za-z0-9_] at config load, so quoting is safe.
    let tenant_filter = target
        .tenants
        .as_ref()
        .map(|names| {
            let list: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
            format!(" AND t.TENANT_NAME IN ({})", list.join(", "))
        })
        .unwrap_or_default();
    cluster_sql_with(target, &tenant_filter)
}

/// The cluster statement for one tenant, given as the statement's one parameter:
/// the passthrough's live stats, without top sessions.
pub(super) fn tenant_stats_sql(target: &Target) -> String {
    let target = Target {
        top_sessions: 0,
        ..target.clone()
    };
    cluster_sql_with(&target, " AND t.TENANT_NAME = ?")
}

/// The single-tenant statement without top sessions: the passthrough's live stats.
pub(super) fn single_stats_sql(target: &Target) -> String {
    single_sql(&Target {
        top_sessions: 0,
        ..target.clone()
    })
}

/// The relation sessions are read from in cluster mode.
pub(super) fn processlist_relation(target: &Target) -> String {
    target.processlist_view.as_ref().map_or(
        "`oceanbase`.`GV$OB_PROCESSLIST`".to_string(),
        Relation::to_sql,
    )
}

/// The relation tenants are read from in cluster mode.
pub(super) fn tenants_relation(target: &Target) -> String {
    target
        .tenants_view
        .as_ref()
        .map_or("`oceanbase`.`DBA_OB_TENANTS`".to_string(), Relation::to_sql)
}

fn cluster_sql_with(target: &Target, tenant_filter: &str) -> String {
    let processlist = processlist_relation(target);
    let tenants_view = tenants_relation(target);
    let client = format!(
        "COALESCE(NULLIF(p.USER_CLIENT_IP, ''), {})",
        host_without_port("p.HOST")
    );
    // The exporter's own session is excluded: on OceanBase 4 a session id is unique
    // per server, so it is matched with the server the session runs on.
    let not_own = "NOT (p.ID = CONNECTION_ID() AND p.SVR_IP = HOST_IP())";
    let filters = filter_conditions(&target.filter, "p.");
    let mut sql = format!(
        "{TAG} SELECT 'g', t.TENANT_NAME, p.SVR_IP, p.DB, p.USER, {client}, \
         SUM(p.STATE = 'ACTIVE'), COUNT(p.ID), MAX(CASE WHEN p.STATE = 'ACTIVE' THEN p.TIME END), NULL, NULL \
         FROM {tenants_view} t LEFT JOIN {processlist} p ON p.TENANT = t.TENANT_NAME \
         AND {not_own}{filters} \
         WHERE t.TENANT_TYPE <> 'META'{tenant_filter} \
         GROUP BY 2, 3, 4, 5, 6"
    );
    if target.top_sessions > 0 {
        sql.push_str(&format!(
            " UNION ALL SELECT 't', x.TENANT, x.SVR_IP, x.DB, x.USER, x.CLIENT, 1, 1, x.TIME, x.ID, x.SQL_ID \
             FROM (SELECT p.TENANT, p.SVR_IP, p.DB, p.USER, {client} AS CLIENT, p.TIME, p.ID, p.SQL_ID, \
             ROW_NUMBER() OVER (PARTITION BY p.TENANT ORDER BY p.TIME DESC, p.ID) AS RN \
             FROM {processlist} p JOIN {tenants_view} t ON p.TENANT = t.TENANT_NAME \
             WHERE t.TENANT_TYPE <> 'META'{tenant_filter} AND p.STATE = 'ACTIVE' AND {not_own}{filters}) x \
             WHERE x.RN <= {}",
            target.top_sessions
        ));
    }
    sql
}

/// The single-tenant statement; tenant and server come from the config (see
/// `RowContext`).
fn single_sql(target: &Target) -> String {
    let client = format!(
        "COALESCE(NULLIF(USER_CLIENT_IP, ''), {})",
        host_without_port("HOST")
    );
    let filters = filter_conditions(&target.filter, "");
    let mut sql = format!(
        "{TAG} SELECT 'g', NULL, NULL, DB, USER, {client}, SUM(STATE = 'ACTIVE'), COUNT(*), \
         MAX(CASE WHEN STATE = 'ACTIVE' THEN TIME END), NULL, NULL \
         FROM `oceanbase`.`V$OB_PROCESSLIST` WHERE ID <> CONNECTION_ID(){filters} \
         GROUP BY 4, 5, 6"
    );
    if target.top_sessions > 0 {
        sql.push_str(&format!(
            " UNION ALL (SELECT 't', NULL, NULL, DB, USER, {client}, 1, 1, TIME, ID, SQL_ID \
             FROM `oceanbase`.`V$OB_PROCESSLIST` WHERE ID <> CONNECTION_ID() AND STATE = 'ACTIVE'{filters} \
             ORDER BY TIME DESC, ID LIMIT {})",
            target.top_sessions
        ));
    }
    sql
}

/// The tenant label of a single-tenant server, which (seekdb) does not tell its name:
/// `tenant` from the config, else the tenant in `user` (`monitor@t1`, `monitor@t1#c`,
/// `c:t1:monitor`), else the target's name.
fn single_tenant_name(target: &Target) -> String {
    if let Some(tenant) = &target.tenant {
        return tenant.clone();
    }
    let from_user = if let Some((_, rest)) = target.user.split_once('@') {
        rest.split('#').next()
    } else {
        let parts: Vec<&str> = target.user.split(':').collect();
        (parts.len() == 3).then(|| parts[1])
    };
    from_user
        .filter(|t| !t.is_empty())
        .unwrap_or(&target.name)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Address, Kind, Secret};
    use std::time::Duration;

    fn target(user: &str) -> Target {
        Target {
            name: "ob".into(),
            kind: Kind::Oceanbase,
            address: Address {
                host: "10.0.0.1".into(),
                port: 2881,
            },
            user: user.into(),
            password: Secret::default(),
            tenants: None,
            tenant: None,
            labels: vec![],
            collect_interval: Duration::from_secs(15),
            collect_timeout: Duration::from_secs(5),
            max_series_per_dimension: 100,
            top_sessions: 5,
            filter: Default::default(),
            processlist_view: None,
            tenants_view: None,
            dbss: None,
        }
    }

    #[test]
    fn single_tenant_name_sources_in_order() {
        assert_eq!(single_tenant_name(&target("monitor@t1")), "t1");
        assert_eq!(single_tenant_name(&target("monitor@t1#prod")), "t1");
        assert_eq!(single_tenant_name(&target("prod:t2:monitor")), "t2");
        assert_eq!(single_tenant_name(&target("monitor")), "ob");
        assert_eq!(single_tenant_name(&target("monitor@")), "ob");
        let mut t = target("monitor@t1");
        t.tenant = Some("configured".into());
        assert_eq!(single_tenant_name(&t), "configured");
    }

    #[test]
    fn cluster_sql_filters_tenants_and_reads_configured_views() {
        let mut t = target("monitor@sys");
        let sql = cluster_sql(&t);
        assert!(sql.starts_with("/* session_exporter "));
        assert!(sql.contains(
            "FROM `oceanbase`.`DBA_OB_TENANTS` t LEFT JOIN `oceanbase`.`GV$OB_PROCESSLIST` p"
        ));
        assert!(!sql.contains("IN ("));
        assert!(!sql.contains("INFO"), "statistics never read the SQL text");

        t.tenants = Some(vec!["t1".into(), "t2".into()]);
        t.processlist_view = Some(Relation::parse("test.PL").unwrap());
        let sql = cluster_sql(&t);
        assert!(sql.contains("AND t.TENANT_NAME IN ('t1', 't2')"));
        assert!(sql.contains("LEFT JOIN `test`.`PL` p"));
    }
}
