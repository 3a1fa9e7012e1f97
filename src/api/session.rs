//! obshell's `TenantSession` and its fields. Where each field comes from is the
//! kind's business (`source::oceanbase`, `source::mysql`); a field a kind cannot
//! supply is the type's zero value: `0`, or `""`.

use serde::Serialize;

/// A value as a database sent it, for [`TenantSession::set`]: each kind's driver
/// values are turned into these.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Null,
    Int(i64),
    UInt(u64),
    Float(f64),
    Text(String),
}

/// Every field of obshell's `TenantSession`, in its order, and ours after them.
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
    /// Not obshell's: the program that opened the session (see
    /// [`TenantSession::application`]).
    Application,
    /// Not obshell's: what the session waits on now (see [`TenantSession::wait_class`]).
    WaitClass,
    WaitEvent,
    Started,
}

impl Field {
    pub const ALL: [Field; 27] = [
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
        Field::Application,
        Field::WaitClass,
        Field::WaitEvent,
        Field::Started,
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
            Field::Application => "application",
            Field::WaitClass => "wait_class",
            Field::WaitEvent => "wait_event",
            Field::Started => "started",
        }
    }

    /// The fields `sort` accepts: every one read from the database (`proxy_ip` is
    /// derived from `host`).
    pub fn sortable(name: &str) -> Option<Field> {
        Field::ALL
            .into_iter()
            .find(|f| f.name() == name && !matches!(f, Field::ProxyIp | Field::Started))
    }
}

/// obshell's `TenantSession`.
/// A session a kill names: its id, and when it started as the client was shown it
/// (where the engine records it). With `started`, an id that now names another
/// session (PostgreSQL reuses process ids) ends nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Victim {
    pub id: u64,
    pub started: Option<String>,
}

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
    /// Beside obshell's fields (its SDK reads the ones it knows): the program that
    /// opened the session, as `dbsession_application_sessions` counts it:
    /// PostgreSQL's `application_name`, MySQL's `program_name` connection attribute,
    /// OceanBase's `MODULE` else `CLIENT_INFO`; empty when none.
    pub application: String,
    /// Beside obshell's fields: what an active session waits on now, as
    /// `dbsession_wait_event_sessions` names it (`CPU` and `CPU` when it waits for
    /// nothing); empty when it is idle or the engine does not tell. PostgreSQL's
    /// `wait_event_type`/`wait_event` in the list and the detail; in the detail only,
    /// MySQL/MariaDB's innermost current wait of `performance_schema` and OceanBase's
    /// latest active session history sample of the last seconds.
    pub wait_class: String,
    pub wait_event: String,
    /// When the session started, RFC 3339 in UTC, where the engine records it
    /// (PostgreSQL's `backend_start`); what a kill sends to be sure the id still
    /// names this session.
    pub started: String,
}

impl TenantSession {
    /// Sets `field` from a database value. NULL leaves the zero value; a value of the
    /// wrong shape is an error naming the field.
    pub fn set(&mut self, field: Field, value: FieldValue) -> Result<(), String> {
        if value == FieldValue::Null {
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
            Field::Application => self.application = text(value),
            Field::WaitClass => self.wait_class = text(value),
            Field::WaitEvent => self.wait_event = text(value),
            Field::Started => self.started = text(value),
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

fn text(value: FieldValue) -> String {
    match value {
        FieldValue::Null => String::new(),
        FieldValue::Int(n) => n.to_string(),
        FieldValue::UInt(n) => n.to_string(),
        FieldValue::Float(n) => n.to_string(),
        FieldValue::Text(text) => text,
    }
}

fn float(value: FieldValue, field: Field) -> Result<f64, String> {
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

fn integer(value: FieldValue, field: Field) -> Result<i64, String> {
    match value {
        FieldValue::Int(n) => Ok(n),
        FieldValue::UInt(n) => {
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

    #[test]
    fn values_decode_tolerantly_and_proxy_ip_is_derived() {
        let mut s = TenantSession::default();
        s.set(Field::Id, FieldValue::Text("3221588508".into()))
            .unwrap();
        s.set(Field::Time, FieldValue::Float(12.5)).unwrap();
        s.set(Field::MemoryUsage, FieldValue::Text("1024000.000".into()))
            .unwrap();
        s.set(Field::Db, FieldValue::Null).unwrap();
        s.set(Field::Host, FieldValue::Text("10.0.0.9:41000".into()))
            .unwrap();
        s.set(Field::ProxySessId, FieldValue::UInt(77)).unwrap();
        s.finish();
        assert_eq!(
            (s.id, s.time, s.memory_usage),
            (3_221_588_508, 12.5, 1_024_000)
        );
        assert_eq!(s.db, "");
        assert_eq!(s.proxy_ip, "10.0.0.9");
        assert!(s
            .set(Field::Level, FieldValue::Text("high".into()))
            .unwrap_err()
            .contains("level"));
        assert!(s.set(Field::Id, FieldValue::UInt(u64::MAX)).is_err());

        let mut direct = TenantSession::default();
        direct
            .set(Field::Host, FieldValue::Text("10.0.0.9:41000".into()))
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
