//! obshell's `TenantSession`, and where each of its fields comes from in each view.
//!
//! OceanBase's processlist has every field (a cluster's `GV$OB_PROCESSLIST`; seekdb's
//! `V$OB_PROCESSLIST` lacks the server and tenant columns, which then come from the
//! target). MySQL and MariaDB have `ID, USER, HOST, DB, COMMAND, TIME, STATE, INFO`
//! (MariaDB adds `TIME_MS` and `MEMORY_USED`); the fields they cannot supply are the
//! type's zero value: `0`, or `""`. Which columns exist is read from the server once
//! per target, so a custom `processlist_view` with fewer columns still works.

use crate::source::processlist::{mysql_active, View};
use mysql_async::Value;
use serde::Serialize;
use std::collections::HashSet;

/// Every field of obshell's `TenantSession`, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Id,
    SvrIp,
    SvrPort,
    SqlPort,
    User,
    Db,
    Tenant,
    Host,
    Command,
    Time,
    State,
    Info,
    ProxySessId,
    ProxyIp,
    Action,
    Module,
    ClientInfo,
    Level,
    SamplePercentage,
    RecordPolicy,
    SqlId,
    TotalCpuTime,
    MemoryUsage,
}

impl Field {
    pub const ALL: [Field; 23] = [
        Field::Id,
        Field::SvrIp,
        Field::SvrPort,
        Field::SqlPort,
        Field::User,
        Field::Db,
        Field::Tenant,
        Field::Host,
        Field::Command,
        Field::Time,
        Field::State,
        Field::Info,
        Field::ProxySessId,
        Field::ProxyIp,
        Field::Action,
        Field::Module,
        Field::ClientInfo,
        Field::Level,
        Field::SamplePercentage,
        Field::RecordPolicy,
        Field::SqlId,
        Field::TotalCpuTime,
        Field::MemoryUsage,
    ];

    /// The JSON name, which is also the name `sort` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::SvrIp => "svr_ip",
            Field::SvrPort => "svr_port",
            Field::SqlPort => "sql_port",
            Field::User => "user",
            Field::Db => "db",
            Field::Tenant => "tenant",
            Field::Host => "host",
            Field::Command => "command",
            Field::Time => "time",
            Field::State => "state",
            Field::Info => "info",
            Field::ProxySessId => "proxy_sess_id",
            Field::ProxyIp => "proxy_ip",
            Field::Action => "action",
            Field::Module => "module",
            Field::ClientInfo => "client_info",
            Field::Level => "level",
            Field::SamplePercentage => "sample_percentage",
            Field::RecordPolicy => "record_policy",
            Field::SqlId => "sql_id",
            Field::TotalCpuTime => "total_cpu_time",
            Field::MemoryUsage => "memory_usage",
        }
    }

    /// The fields `sort` accepts: every one read from the database (`proxy_ip` is
    /// derived from `host`).
    pub fn sortable(name: &str) -> Option<Field> {
        Field::ALL
            .into_iter()
            .find(|f| f.name() == name && *f != Field::ProxyIp)
    }

    /// OceanBase's column for this field.
    fn ob_column(self) -> Option<&'static str> {
        Some(match self {
            Field::Id => "ID",
            Field::SvrIp => "SVR_IP",
            Field::SvrPort => "SVR_PORT",
            Field::SqlPort => "SQL_PORT",
            Field::User => "USER",
            Field::Db => "DB",
            Field::Tenant => "TENANT",
            Field::Host => "HOST",
            Field::Command => "COMMAND",
            Field::Time => "TIME",
            Field::State => "STATE",
            Field::Info => "INFO",
            Field::ProxySessId => "PROXY_SESSID",
            Field::ProxyIp => return None,
            Field::Action => "ACTION",
            Field::Module => "MODULE",
            Field::ClientInfo => "CLIENT_INFO",
            Field::Level => "LEVEL",
            Field::SamplePercentage => "SAMPLE_PERCENTAGE",
            Field::RecordPolicy => "RECORD_POLICY",
            Field::SqlId => "SQL_ID",
            Field::TotalCpuTime => "TOTAL_CPU_TIME",
            Field::MemoryUsage => "MEMORY_USAGE",
        })
    }
}

/// The SQL expression that reads `field` in `view`, given the relation's columns
/// (upper case); None when the view has no such column (the field then comes from
/// the target, or is the zero value). Only names of ours are ever written here.
pub fn expression(view: View, field: Field, columns: &HashSet<String>) -> Option<String> {
    let has = |c: &str| columns.contains(c);
    match view {
        View::Cluster | View::SingleTenant => {
            let column = field.ob_column()?;
            has(column).then(|| format!("`{column}`"))
        }
        View::Mysql => match field {
            Field::Id | Field::User | Field::Host | Field::Db | Field::Command | Field::Info => {
                let column = field.ob_column()?;
                has(column).then(|| format!("`{column}`"))
            }
            // MariaDB has milliseconds; MySQL whole seconds.
            Field::Time if has("TIME_MS") => Some("`TIME_MS` / 1000".to_string()),
            Field::Time => has("TIME").then(|| "`TIME`".to_string()),
            // The contract's state is OceanBase's ACTIVE/SLEEP; MySQL's STATE column is
            // a thread stage. The same rule as the metrics' "active" decides it.
            Field::State => {
                has("COMMAND").then(|| format!("IF({}, 'ACTIVE', 'SLEEP')", mysql_active()))
            }
            Field::MemoryUsage => has("MEMORY_USED").then(|| "`MEMORY_USED`".to_string()),
            _ => None,
        },
    }
}

/// obshell's `TenantSession`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TenantSession {
    pub id: i64,
    pub svr_ip: String,
    pub svr_port: i64,
    pub sql_port: i64,
    pub user: String,
    pub db: String,
    pub tenant: String,
    pub host: String,
    pub command: String,
    pub time: f64,
    pub state: String,
    pub info: String,
    pub proxy_sess_id: i64,
    pub proxy_ip: String,
    pub action: String,
    pub module: String,
    pub client_info: String,
    pub level: i64,
    pub sample_percentage: i64,
    pub record_policy: String,
    pub sql_id: String,
    pub total_cpu_time: i64,
    pub memory_usage: i64,
}

impl TenantSession {
    /// Sets `field` from a database value. NULL leaves the zero value; a value of the
    /// wrong shape is an error naming the field.
    pub fn set(&mut self, field: Field, value: Value) -> Result<(), String> {
        if value == Value::NULL {
            return Ok(());
        }
        match field {
            Field::Id => self.id = integer(value, field)?,
            Field::SvrIp => self.svr_ip = text(value),
            Field::SvrPort => self.svr_port = integer(value, field)?,
            Field::SqlPort => self.sql_port = integer(value, field)?,
            Field::User => self.user = text(value),
            Field::Db => self.db = text(value),
            Field::Tenant => self.tenant = text(value),
            Field::Host => self.host = text(value),
            Field::Command => self.command = text(value),
            Field::Time => self.time = float(value, field)?,
            Field::State => self.state = text(value),
            Field::Info => self.info = text(value),
            Field::ProxySessId => self.proxy_sess_id = integer(value, field)?,
            Field::ProxyIp => self.proxy_ip = text(value),
            Field::Action => self.action = text(value),
            Field::Module => self.module = text(value),
            Field::ClientInfo => self.client_info = text(value),
            Field::Level => self.level = integer(value, field)?,
            Field::SamplePercentage => self.sample_percentage = integer(value, field)?,
            Field::RecordPolicy => self.record_policy = text(value),
            Field::SqlId => self.sql_id = text(value),
            Field::TotalCpuTime => self.total_cpu_time = integer(value, field)?,
            Field::MemoryUsage => self.memory_usage = integer(value, field)?,
        }
        Ok(())
    }

    /// Fills what is derived: `proxy_ip` is `host` without its port when the session
    /// came through OBProxy (`proxy_sess_id` set), as obshell's contract says.
    pub fn finish(&mut self) {
        if self.proxy_sess_id != 0 && self.proxy_ip.is_empty() {
            self.proxy_ip = crate::stats::host_without_port(&self.host)
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
        }
    }
}

fn text(value: Value) -> String {
    crate::source::sql::text(value).unwrap_or_default()
}

fn float(value: Value, field: Field) -> Result<f64, String> {
    let text = text(value);
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .ok_or_else(|| {
            format!(
                "the database sent `{text}` for {}, not a number",
                field.name()
            )
        })
}

fn integer(value: Value, field: Field) -> Result<i64, String> {
    match value {
        Value::Int(n) => Ok(n),
        Value::UInt(n) => {
            i64::try_from(n).map_err(|_| format!("{} is out of range: {n}", field.name()))
        }
        other => {
            let text = text(other);
            let trimmed = text.trim();
            trimmed
                .parse::<i64>()
                .ok()
                // DECIMAL columns come as `12.000`.
                .or_else(|| {
                    trimmed
                        .parse::<f64>()
                        .ok()
                        .filter(|n| n.is_finite() && n.fract() == 0.0 && n.abs() < 9.0e18)
                        .map(|n| n as i64)
                })
                .ok_or_else(|| {
                    format!(
                        "the database sent `{text}` for {}, not an integer",
                        field.name()
                    )
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(names: &[&str]) -> HashSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn each_view_reads_what_it_has() {
        let ob = columns(&["ID", "SVR_IP", "TENANT", "TIME", "STATE"]);
        assert_eq!(
            expression(View::Cluster, Field::SvrIp, &ob).as_deref(),
            Some("`SVR_IP`")
        );
        assert_eq!(expression(View::Cluster, Field::SqlId, &ob), None);
        assert_eq!(expression(View::Cluster, Field::ProxyIp, &ob), None);
        let maria = columns(&[
            "ID",
            "USER",
            "HOST",
            "DB",
            "COMMAND",
            "TIME",
            "STATE",
            "INFO",
            "TIME_MS",
            "MEMORY_USED",
        ]);
        assert_eq!(
            expression(View::Mysql, Field::Time, &maria).as_deref(),
            Some("`TIME_MS` / 1000")
        );
        assert_eq!(
            expression(View::Mysql, Field::MemoryUsage, &maria).as_deref(),
            Some("`MEMORY_USED`")
        );
        assert!(expression(View::Mysql, Field::State, &maria)
            .unwrap()
            .contains("'Sleep'"));
        assert_eq!(expression(View::Mysql, Field::SvrPort, &maria), None);
        let mysql = columns(&[
            "ID", "USER", "HOST", "DB", "COMMAND", "TIME", "STATE", "INFO",
        ]);
        assert_eq!(
            expression(View::Mysql, Field::Time, &mysql).as_deref(),
            Some("`TIME`")
        );
    }

    #[test]
    fn values_decode_tolerantly_and_proxy_ip_is_derived() {
        let mut s = TenantSession::default();
        s.set(Field::Id, Value::Bytes(b"3221588508".to_vec()))
            .unwrap();
        s.set(Field::Time, Value::Double(12.5)).unwrap();
        s.set(Field::MemoryUsage, Value::Bytes(b"1024000.000".to_vec()))
            .unwrap();
        s.set(Field::Db, Value::NULL).unwrap();
        s.set(Field::Host, Value::Bytes(b"10.0.0.9:41000".to_vec()))
            .unwrap();
        s.set(Field::ProxySessId, Value::UInt(77)).unwrap();
        s.finish();
        assert_eq!(
            (s.id, s.time, s.memory_usage),
            (3_221_588_508, 12.5, 1_024_000)
        );
        assert_eq!(s.db, "");
        assert_eq!(s.proxy_ip, "10.0.0.9");
        assert!(s
            .set(Field::Level, Value::Bytes(b"high".to_vec()))
            .unwrap_err()
            .contains("level"));
        assert!(s.set(Field::Id, Value::UInt(u64::MAX)).is_err());

        let mut direct = TenantSession::default();
        direct
            .set(Field::Host, Value::Bytes(b"10.0.0.9:41000".to_vec()))
            .unwrap();
        direct.finish();
        assert_eq!(direct.proxy_ip, "", "no proxy session id, no proxy");
    }

    #[test]
    fn sort_accepts_read_fields_only() {
        assert_eq!(Field::sortable("time"), Some(Field::Time));
        assert_eq!(Field::sortable("proxy_ip"), None);
        assert_eq!(Field::sortable("TIME"), None);
        assert_eq!(Field::sortable("1; DROP TABLE t"), None);
    }
}
