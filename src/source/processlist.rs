//! What the session API reads of a SQL target: which processlist relation serves it,
//! found the way its collection finds it, and the tenant statistics computed by the
//! collection's own statement. The passthrough knows SQL targets through
//! [`Processlist`] alone; each kind's part is in its own module.

use super::error::SourceError;
use super::sql::SqlError;
use super::{mysql, oceanbase};
use crate::config::{Database, Oceanbase, Target, TargetKind};
use crate::stats::Collected;
use std::time::Duration;

/// Which relation a target's sessions are read from, and so which columns it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// An OceanBase cluster's sys tenant: `GV$OB_PROCESSLIST` (or the configured
    /// `processlist_view`), every tenant, with `TENANT` and server columns.
    Cluster,
    /// A single-tenant OceanBase server (seekdb): `V$OB_PROCESSLIST`.
    SingleTenant,
    /// MySQL or MariaDB: `information_schema.PROCESSLIST`.
    Mysql,
}

/// A SQL target as the session API sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Processlist {
    name: String,
    collect_timeout: Duration,
    kind: SqlKind,
}

#[derive(Debug, Clone, PartialEq)]
enum SqlKind {
    Oceanbase(Oceanbase),
    Mysql(Database),
}

impl Processlist {
    /// The processlist of `target`; None for a kind that has none (DBSS).
    pub fn of(target: &Target) -> Option<Self> {
        let kind = match &target.kind {
            TargetKind::Oceanbase(settings) => SqlKind::Oceanbase(settings.clone()),
            TargetKind::Mysql(settings) => SqlKind::Mysql(settings.database.clone()),
            TargetKind::Dbss(_) => return None,
        };
        Some(Self {
            name: target.name.clone(),
            collect_timeout: target.collect_timeout,
            kind,
        })
    }

    /// The target's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn database(&self) -> &Database {
        match &self.kind {
            SqlKind::Oceanbase(settings) => &settings.database,
            SqlKind::Mysql(database) => database,
        }
    }

    /// True when this target answers for tenant `name`, given the tenants its last
    /// collection found: a MySQL server's one tenant is its target's name.
    pub fn serves<'a>(&self, mut found: impl Iterator<Item = &'a String>, name: &str) -> bool {
        match &self.kind {
            SqlKind::Oceanbase(_) => found.any(|tenant| tenant == name),
            SqlKind::Mysql(_) => self.name == name,
        }
    }

    /// The tenants it answers for, for a "known tenants are …" message.
    pub fn tenants<'a>(&'a self, found: impl Iterator<Item = &'a String>) -> Vec<&'a str> {
        match &self.kind {
            SqlKind::Oceanbase(_) => found.map(String::as_str).collect(),
            SqlKind::Mysql(_) => vec![self.name.as_str()],
        }
    }

    /// Statements a new session-API connection runs first, bounding its queries at
    /// `timeout` where the server can.
    pub fn init_statements(&self, timeout: Duration) -> Vec<String> {
        match &self.kind {
            SqlKind::Oceanbase(_) => oceanbase::init_statements(timeout),
            // Processlist queries are short, and the request is abandoned anyway.
            SqlKind::Mysql(_) => Vec::new(),
        }
    }

    /// Finds the view, as collection does.
    pub async fn detect_view(
        &self,
        conn: &mut mysql_async::Conn,
    ) -> Result<View, mysql_async::Error> {
        match &self.kind {
            SqlKind::Oceanbase(settings) => {
                Ok(match oceanbase::detect_mode(conn, settings).await? {
                    oceanbase::Mode::Cluster => View::Cluster,
                    oceanbase::Mode::SingleTenant => View::SingleTenant,
                })
            }
            SqlKind::Mysql(_) => Ok(View::Mysql),
        }
    }

    /// The relation the sessions are read from in `view`.
    pub fn relation(&self, view: View) -> String {
        match (&self.kind, view) {
            (SqlKind::Oceanbase(settings), View::SingleTenant) => {
                oceanbase::relation(settings, oceanbase::Mode::SingleTenant)
            }
            (SqlKind::Oceanbase(settings), _) => {
                oceanbase::relation(settings, oceanbase::Mode::Cluster)
            }
            (SqlKind::Mysql(_), _) => "`information_schema`.`PROCESSLIST`".to_string(),
        }
    }

    /// The SQL condition "the session in this row is active", on the view's columns.
    pub fn active_condition(&self) -> String {
        match &self.kind {
            SqlKind::Oceanbase(_) => "`STATE` = 'ACTIVE'".to_string(),
            SqlKind::Mysql(_) => mysql_active(),
        }
    }

    /// One tenant's statistics, read now with the collection's own statement (without
    /// top sessions). `tenant` must be one this target serves (see [`Self::serves`]).
    pub async fn tenant_stats(
        &self,
        conn: &mut mysql_async::Conn,
        view: View,
        tenant: &str,
    ) -> Result<Collected, SqlError> {
        match &self.kind {
            SqlKind::Oceanbase(settings) => {
                let mode = match view {
                    View::SingleTenant => oceanbase::Mode::SingleTenant,
                    View::Cluster | View::Mysql => oceanbase::Mode::Cluster,
                };
                oceanbase::tenant_stats(conn, settings, mode, tenant).await
            }
            SqlKind::Mysql(database) => {
                mysql::tenant_stats(conn, database, self.collect_timeout, tenant).await
            }
        }
    }

    /// A driver error as the session API reports it, with the privilege to grant.
    pub fn classify(&self, err: &mysql_async::Error) -> SourceError {
        let grant = match &self.kind {
            SqlKind::Oceanbase(_) => "grant it with GRANT SELECT ON oceanbase.* TO the account",
            SqlKind::Mysql(_) => mysql::GRANT,
        };
        super::conn::classify(
            err,
            self.database(),
            "reading sessions for the passthrough",
            grant,
        )
    }
}

/// MySQL's "active" on the processlist's `COMMAND` column: the rule collection uses.
pub fn mysql_active() -> String {
    mysql::active_condition("`COMMAND`")
}
