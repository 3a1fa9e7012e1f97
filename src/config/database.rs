//! The settings every SQL kind of target shares: where the server is, the account,
//! which sessions count, and how many of the longest active ones to export.
//!
//! A SQL kind's settings struct holds a [`Database`]; its module reads the keys with
//! [`RawDatabase`] beside its own (see `oceanbase` and `mysql`).

use super::{KindInput, MAX_TOP_SESSIONS};
use crate::secret::{read_password_file, Secret};
pub use crate::stats::CollectParts;
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Where a SQL target's server is and how to log in, and which of its sessions count.
#[derive(Debug, Clone, PartialEq)]
pub struct Database {
    pub address: Address,
    pub user: String,
    pub password: Secret,
    /// How many of each tenant's longest active sessions to export; 0 turns it off.
    pub top_sessions: usize,
    /// Which sessions count at all.
    pub filter: Filter,
    /// Which optional parts each cycle reads (`collect:`); all by default.
    pub collect: CollectParts,
    /// How often the limits, the deadlock counter and OceanBase's active session history are read (`limits_interval`):
    /// settings change rarely, so they need not cost a statement every cycle.
    pub limits_interval: Duration,
}

/// `limits_interval` when none is given.
pub const DEFAULT_LIMITS_INTERVAL: Duration = Duration::from_secs(60);

/// Which sessions a target counts. Sessions filtered out appear in no series, totals
/// included, as with mysqld_exporter's `processlist.min_time`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only sessions whose TIME is at least this long.
    pub min_time: Option<Duration>,
    pub users: NameList,
    pub databases: NameList,
}

/// Exact names to keep (`allow`, when given) and to drop (`deny`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameList {
    pub allow: Option<Vec<String>>,
    pub deny: Vec<String>,
}

impl NameList {
    pub fn is_empty(&self) -> bool {
        self.allow.is_none() && self.deny.is_empty()
    }

    /// Whether `name` is kept: allowed (when a list of allowed names is given) and
    /// not denied, as the statements' conditions keep it.
    pub fn admits(&self, name: &str) -> bool {
        self.allow
            .as_ref()
            .is_none_or(|allow| allow.iter().any(|a| a == name))
            && !self.deny.iter().any(|d| d == name)
    }
}

impl Filter {
    /// Whether a session of `user` in `db`, `time` seconds in its state, counts: the
    /// filter applied in memory, for a kind whose server takes no conditions.
    pub fn admits(&self, user: &str, db: &str, time: f64) -> bool {
        self.min_time.is_none_or(|min| time >= min.as_secs_f64())
            && self.users.admits(user)
            && self.databases.admits(db)
    }
}

/// `host:port` of a database server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Why an address could not be read; each message says how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("`{0}` opens `[` without closing it")]
    UnclosedBracket(String),
    #[error("`{text}` has no port: write it as [{host}]:2881")]
    NoPortV6 { text: String, host: String },
    #[error("`{0}` looks like an IPv6 address: write it as [address]:port")]
    BareV6(String),
    #[error("`{0}` has no port: write host:port, e.g. 127.0.0.1:2881 (OceanBase) or 127.0.0.1:3306 (MySQL)")]
    NoPort(String),
    #[error("`{0}` has no host: write host:port, e.g. 127.0.0.1:2881")]
    NoHost(String),
    #[error("`{0}` is not a port: use a number from 1 to 65535")]
    BadPort(String),
}

impl Address {
    /// Parses `host:port` or `[v6]:port`; the port is required because guessing
    /// between 2881 (OceanBase) and 3306 (MySQL) would hide a typo.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        let text = text.trim();
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| AddressError::UnclosedBracket(text.to_string()))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| AddressError::NoPortV6 {
                    text: text.to_string(),
                    host: host.to_string(),
                })?;
            (host, port)
        } else {
            match text.rsplit_once(':') {
                Some((host, _)) if host.contains(':') => {
                    return Err(AddressError::BareV6(text.to_string()))
                }
                Some((host, port)) => (host, port),
                None => return Err(AddressError::NoPort(text.to_string())),
            }
        };
        if host.is_empty() {
            return Err(AddressError::NoHost(text.to_string()));
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| AddressError::BadPort(port.to_string()))?;
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }
}

/// The keys of [`Database`], as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatabase {
    address: Option<String>,
    user: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    top_sessions: Option<usize>,
    filter: Option<RawFilter>,
    collect: Option<RawParts>,
    limits_interval: Option<String>,
}

/// `collect:`: each optional part can be turned off where its view is expensive.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParts {
    transactions: Option<bool>,
    locks: Option<bool>,
    states: Option<bool>,
    limits: Option<bool>,
    deadlocks: Option<bool>,
    connections: Option<bool>,
    waits: Option<bool>,
    applications: Option<bool>,
    statements: Option<bool>,
}

impl RawParts {
    fn parts(self) -> CollectParts {
        let all = CollectParts::default();
        CollectParts {
            transactions: self.transactions.unwrap_or(all.transactions),
            locks: self.locks.unwrap_or(all.locks),
            states: self.states.unwrap_or(all.states),
            limits: self.limits.unwrap_or(all.limits),
            deadlocks: self.deadlocks.unwrap_or(all.deadlocks),
            connections: self.connections.unwrap_or(all.connections),
            waits: self.waits.unwrap_or(all.waits),
            applications: self.applications.unwrap_or(all.applications),
            statements: self.statements.unwrap_or(all.statements),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilter {
    min_time: Option<String>,
    #[serde(default)]
    users: RawNameList,
    #[serde(default)]
    databases: RawNameList,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNameList {
    allow: Option<Vec<String>>,
    #[serde(default)]
    deny: Vec<String>,
}

impl RawDatabase {
    /// Checks the keys; problems go to `input`, and the result is usable either way.
    pub(super) fn validate(self, input: &mut KindInput<'_>) -> Database {
        let address = match &self.address {
            None => {
                input.problem(
                    "address",
                    "is required: the database's host:port, e.g. 127.0.0.1:2881",
                );
                None
            }
            Some(text) => Address::parse(text)
                .map_err(|err| input.problem("address", err.to_string()))
                .ok(),
        };
        let user = self.user.unwrap_or_default();
        if user.trim().is_empty() {
            input.problem(
                "user",
                "is empty: name the monitoring account, e.g. monitor@sys",
            );
        }
        let password = match (self.password, self.password_file) {
            (Some(_), Some(_)) => {
                input.problem(
                    "password_file",
                    "give either password or password_file, not both",
                );
                Secret::default()
            }
            (Some(text), None) => input.expand_env(&text).unwrap_or_else(|message| {
                input.problem("password", message);
                Secret::default()
            }),
            (None, Some(file)) => {
                read_password_file(&input.base_dir.join(file)).unwrap_or_else(|message| {
                    input.problem("password_file", message);
                    Secret::default()
                })
            }
            (None, None) => Secret::default(),
        };
        let top_sessions = self.top_sessions.unwrap_or(input.global.top_sessions);
        if top_sessions > MAX_TOP_SESSIONS {
            input.problem("top_sessions", super::top_sessions_problem(top_sessions));
        }
        let raw_filter = self.filter.unwrap_or_default();
        let min_time = raw_filter.min_time.as_deref().and_then(|text| {
            super::parse_duration(text)
                .map_err(|message| input.problem("filter.min_time", message))
                .ok()
        });
        let filter = Filter {
            min_time,
            users: name_list(input, "filter.users", raw_filter.users),
            databases: name_list(input, "filter.databases", raw_filter.databases),
        };
        let limits_interval = match self.limits_interval.as_deref() {
            None => DEFAULT_LIMITS_INTERVAL,
            Some(text) => match super::parse_duration(text) {
                Ok(every) if every >= Duration::from_secs(1) => every,
                Ok(_) => {
                    input.problem(
                        "limits_interval",
                        "is below 1s: the limits change rarely; 1m is the default",
                    );
                    DEFAULT_LIMITS_INTERVAL
                }
                Err(message) => {
                    input.problem("limits_interval", message);
                    DEFAULT_LIMITS_INTERVAL
                }
            },
        };
        Database {
            address: address.unwrap_or(Address {
                host: String::new(),
                port: 0,
            }),
            user,
            password,
            top_sessions,
            filter,
            collect: self.collect.map(RawParts::parts).unwrap_or_default(),
            limits_interval,
        }
    }
}

/// Names are written into SQL as string literals: refuse what could not be quoted
/// the same way in every SQL mode.
fn name_list(input: &mut KindInput<'_>, key: &str, raw: RawNameList) -> NameList {
    let lists = [
        ("allow", raw.allow.as_deref().unwrap_or_default()),
        ("deny", &raw.deny[..]),
    ];
    for (field, names) in lists {
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() || name.contains('\\') || name.chars().any(char::is_control) {
                input.problem(
                    &format!("{key}.{field}[{i}]"),
                    "names must be non-empty, without backslashes or control characters",
                );
            }
        }
    }
    if raw.allow.as_ref().is_some_and(Vec::is_empty) {
        input.problem(
            &format!("{key}.allow"),
            "is empty, which would drop every session: list names, or remove the key",
        );
    }
    NameList {
        allow: raw.allow,
        deny: raw.deny,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            Address::parse("db.example:3306").unwrap(),
            Address {
                host: "db.example".into(),
                port: 3306
            }
        );
        assert_eq!(Address::parse("[fe80::1]:2881").unwrap().host, "fe80::1");
        for (bad, why) in [
            ("::1:2881", "IPv6"),
            (":2881", "no host"),
            ("h:0", "not a port"),
            ("h:x", "not a port"),
            ("[::1]", "no port"),
            ("[::1:2", "without closing"),
        ] {
            let err = Address::parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
