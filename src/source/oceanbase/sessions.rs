//! What the session API reads of an OceanBase target: its processlist's columns,
//! the view its mode gives, and its statistics as a cycle computes them.

use super::{detect_mode, grouping, init_statements, relation, row_context, Mode};
use crate::api::processlist::{self, plain_column, Processlist, View};
use crate::api::Capabilities;
use crate::api::{DeadLock, Field, PageParams, PileupRows, TenantSession};
use crate::config::oceanbase::Oceanbase;
use crate::config::{Database, Target};
use crate::sql::query::{self, SqlError};
use crate::sql::{add_group_row, read, TAG};
use crate::stats::Collected;
use std::collections::HashSet;
use std::time::Duration;

/// An OceanBase target as the session API reads it: every processlist column has
/// the conventional name; seekdb's `V$OB_PROCESSLIST` lacks the server and tenant
/// columns, which then come from the target.
pub struct OceanbaseProcesslist {
    name: String,
    settings: Oceanbase,
}

impl OceanbaseProcesslist {
    pub fn new(target: &Target, settings: &Oceanbase) -> Self {
        Self {
            name: target.name.clone(),
            settings: settings.clone(),
        }
    }
}

impl Processlist for OceanbaseProcesslist {
    fn target(&self) -> &str {
        &self.name
    }

    /// OceanBase keeps its deadlock history (`DBA_OB_DEADLOCK_EVENT_HISTORY`).
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            deadlock_history: true,
            kill: crate::api::Kill::Supported,
        }
    }

    fn database(&self) -> &Database {
        &self.settings.database
    }

    fn init_statements(&self, timeout: Duration) -> Vec<String> {
        init_statements(timeout)
    }

    fn detect<'a>(
        &'a self,
        conn: &'a mut mysql_async::Conn,
    ) -> processlist::BoxFuture<'a, Result<View, mysql_async::Error>> {
        Box::pin(async move {
            let mode = detect_mode(conn, &self.settings).await?;
            Ok(View {
                relation: relation(&self.settings, mode),
                cluster: mode == Mode::Cluster,
                connect_attributes: false,
            })
        })
    }

    fn column(&self, _: &View, field: Field, columns: &HashSet<String>) -> Option<String> {
        let has = |c: &str| columns.contains(c);
        match field {
            // As the metrics name it: MODULE, else CLIENT_INFO.
            Field::Application if has("MODULE") && has("CLIENT_INFO") => {
                Some("IF(`MODULE` <> '', `MODULE`, `CLIENT_INFO`)".to_string())
            }
            Field::Application => has("MODULE").then(|| "`MODULE`".to_string()),
            _ => plain_column(field, columns),
        }
    }

    fn active_condition(&self) -> String {
        "`STATE` = 'ACTIVE'".to_string()
    }

    fn tenant_stats<'a>(
        &'a self,
        conn: &'a mut mysql_async::Conn,
        view: &'a View,
        tenant: &'a str,
    ) -> processlist::BoxFuture<'a, Result<Collected, SqlError>> {
        let mode = if view.cluster {
            Mode::Cluster
        } else {
            Mode::SingleTenant
        };
        Box::pin(tenant_stats(conn, &self.settings, mode, tenant))
    }

    fn deadlocks<'a>(
        &'a self,
        conn: &'a mut mysql_async::Conn,
        view: &'a View,
        tenant: &'a str,
        params: &'a PageParams,
    ) -> processlist::BoxFuture<'a, Result<(u64, Vec<DeadLock>), SqlError>> {
        let mode = if view.cluster {
            Mode::Cluster
        } else {
            Mode::SingleTenant
        };
        let address = &self.settings.database.address;
        Box::pin(super::deadlocks::page(
            conn,
            &self.settings,
            mode,
            tenant,
            (&address.host, address.port),
            params,
        ))
    }

    fn pileup<'a>(
        &'a self,
        conn: &'a mut mysql_async::Conn,
        view: &'a View,
        tenant: &'a str,
        limit: usize,
    ) -> processlist::BoxFuture<'a, Result<PileupRows, SqlError>> {
        let (mode, params) = match view.cluster {
            true => (Mode::Cluster, vec![tenant.into(), tenant.into()]),
            false => (Mode::SingleTenant, Vec::new()),
        };
        let sql = super::pileup_sql(&self.settings, mode, limit);
        Box::pin(async move { crate::api::processlist::read_pileup(conn, &sql, params).await })
    }

    /// The session's latest sample of the active session history, if it is of the
    /// last seconds (a sample a second of each active session): the wait it is in
    /// now. seekdb has no such view: none.
    fn session_wait<'a>(
        &'a self,
        conn: &'a mut mysql_async::Conn,
        view: &'a View,
        session: &'a TenantSession,
    ) -> processlist::BoxFuture<'a, Result<Option<(String, String)>, SqlError>> {
        let (mode, server, mut params) = match view.cluster {
            true => (
                Mode::Cluster,
                " AND h.SVR_IP = ? AND h.SVR_PORT = ?",
                vec![
                    mysql_async::Value::from(session.svr_ip.as_str()),
                    session.svr_port.into(),
                ],
            ),
            false => (Mode::SingleTenant, "", Vec::new()),
        };
        params.insert(0, session.id.into());
        let sql = format!(
            "{TAG} SELECT {}, {} FROM {} h WHERE h.SESSION_ID = ?{server} AND h.SAMPLE_TIME >= NOW(6) - INTERVAL {} SECOND \
             ORDER BY h.SAMPLE_TIME DESC LIMIT 1",
            super::ASH_CLASS,
            super::ASH_EVENT,
            super::ash_relation(&self.settings, mode),
            super::SAMPLE_RECENT_SECONDS,
        );
        Box::pin(async move {
            let rows = crate::api::processlist::backend::exec(conn, &sql, params).await?;
            Ok(rows.into_iter().next().map(|row| {
                let mut cells = row.unwrap().into_iter().map(query::text);
                let mut next = || cells.next().flatten().unwrap_or_default();
                (next(), next())
            }))
        })
    }

    fn grant(&self) -> &'static str {
        "grant it with GRANT SELECT ON oceanbase.* TO the account"
    }

    fn kill_grant(&self) -> &'static str {
        "ending other users' sessions needs the SUPER privilege in the tenant (GRANT SUPER ON *.* TO the account)"
    }
}

/// One tenant's statistics, read now for the session API: the statement and the
/// aggregation of a collection cycle, restricted to `tenant` (a bound parameter in a
/// cluster) and without top sessions, so the API's stats and `/metrics` cannot
/// disagree on method. `tenant` must be the tenant this mode serves.
async fn tenant_stats(
    conn: &mut mysql_async::Conn,
    settings: &Oceanbase,
    mode: Mode,
    tenant: &str,
) -> Result<Collected, SqlError> {
    let settings = &without_top_sessions(settings);
    // One statement: every group is added, its client read in full.
    let ctx = row_context(settings, tenant, mode);
    match mode {
        Mode::Cluster => {
            // No tenant is added up front: one the cluster no longer has is absent.
            // The tenant condition is written twice: the sessions, the zero row.
            let mut aggregator = ctx.aggregator(&[]);
            query::read_bound(
                conn,
                &grouping(
                    settings,
                    mode,
                    " AND p.TENANT = ?",
                    " AND t.TENANT_NAME = ?",
                    false,
                    true,
                )
                .statement(),
                mysql_async::Params::Positional(vec![tenant.into(), tenant.into()]),
                |row| add_group_row(&mut aggregator, row, &ctx),
            )
            .await?;
            Ok(aggregator.finish())
        }
        Mode::SingleTenant => {
            let mut aggregator = ctx.aggregator(&[tenant]);
            let sql = grouping(settings, mode, "", "", false, true).statement();
            read(conn, &sql, |row| add_group_row(&mut aggregator, row, &ctx)).await?;
            Ok(aggregator.finish())
        }
    }
}

/// The settings of a count-only cycle: no top sessions, no parts.
fn without_top_sessions(settings: &Oceanbase) -> Oceanbase {
    let mut settings = settings.clone();
    settings.database.top_sessions = 0;
    settings.database.collect = crate::stats::CollectParts::NONE;
    settings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing;

    #[test]
    fn every_field_is_its_conventional_column_when_the_view_has_it() {
        let sessions = OceanbaseProcesslist::new(
            &testing::target(
                "ob",
                crate::config::TargetKind::Oceanbase(testing::oceanbase("m")),
            ),
            &testing::oceanbase("m"),
        );
        let view = View {
            relation: "`oceanbase`.`GV$OB_PROCESSLIST`".into(),
            cluster: true,
            connect_attributes: false,
        };
        let columns: HashSet<String> = ["ID", "SVR_IP", "TENANT", "TIME", "STATE"]
            .map(String::from)
            .into();
        let column = |field| sessions.column(&view, field, &columns);
        assert_eq!(column(Field::SvrIp).as_deref(), Some("`SVR_IP`"));
        assert_eq!(column(Field::SqlId), None);
        assert_eq!(column(Field::ProxyIp), None);
        assert_eq!(column(Field::Application), None, "no MODULE column");
        let with_module: HashSet<String> = ["MODULE", "CLIENT_INFO"].map(String::from).into();
        assert_eq!(
            sessions
                .column(&view, Field::Application, &with_module)
                .as_deref(),
            Some("IF(`MODULE` <> '', `MODULE`, `CLIENT_INFO`)")
        );
    }
}
