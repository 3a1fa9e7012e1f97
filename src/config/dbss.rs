//! The settings of a `kind: dbss` target (Huawei Cloud Database Security Service) and
//! their validation: the endpoint, the path IDs the API constrains (32 to 64
//! characters), the token file, the database filter and the time range.
//!
//! The token itself is not part of the configuration: only its file is, and it is
//! re-read whenever it changes (see [`crate::secret::TokenFile`]), so a rotation needs
//! no reload.

use super::{fields_of, parse_duration, KindInput, TargetKind};
use crate::tls::read_certs;
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Connect timeout when the file names none (capped by the collect timeout).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The `time.time_range` of the client session distribution request: how far back
/// DBSS counts sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TimeRange {
    #[default]
    HalfHour,
    Hour,
    ThreeHour,
    TwelveHour,
    Day,
    Week,
    Month,
}

impl TimeRange {
    /// The value DBSS expects, e.g. `HALF_HOUR`.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeRange::HalfHour => "HALF_HOUR",
            TimeRange::Hour => "HOUR",
            TimeRange::ThreeHour => "THREE_HOUR",
            TimeRange::TwelveHour => "TWELVE_HOUR",
            TimeRange::Day => "DAY",
            TimeRange::Week => "WEEK",
            TimeRange::Month => "MONTH",
        }
    }
}

/// Where the DBSS API is: `https://host[:port][/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// True for `https`; `http` is accepted for loopback hosts only.
    pub tls: bool,
    /// The host as written (a name, an IPv4 address, or an IPv6 address without brackets).
    pub host: String,
    pub port: u16,
    /// A path prefix without trailing `/` (empty for none), put before `/v1/...`.
    pub prefix: String,
}

impl Endpoint {
    /// Parses a base URL. Plain `http` would send the token in clear text, so it is
    /// refused unless the host is a loopback address (a local proxy or test server).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (tls, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!(
                "`{text}` is not a base URL: write https://host, e.g. https://dbss.ap-southeast-1.myhuaweicloud.com"
            ));
        };
        if rest.contains(['?', '#']) {
            return Err(format!(
                "`{text}` has a query or fragment: give the base URL only"
            ));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.contains('@') {
            return Err(format!(
                "`{text}` holds credentials: remove them, the token is read from token_file"
            ));
        }
        let (host, port) = split_authority(authority, if tls { 443 } else { 80 })
            .ok_or_else(|| format!("`{text}` has no valid host[:port]"))?;
        if !tls && !is_loopback(&host) {
            return Err(format!(
                "`{text}` is plain http, which would send the X-Auth-Token in clear text: use https:// (http is accepted for loopback addresses only)"
            ));
        }
        if path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '%')
        {
            return Err(format!(
                "`{text}` has a path with spaces, control characters or escapes: give the base URL only"
            ));
        }
        Ok(Self {
            tls,
            host,
            port,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }

    /// `host:port` for the `Host` header and the URI (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `scheme://host:port`, without the prefix.
    pub fn origin(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.authority())
    }

    /// The full URI of `path` (which starts with `/`) on this endpoint.
    pub fn uri(&self, path: &str) -> String {
        format!("{}{}{path}", self.origin(), self.prefix)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri(""))
    }
}

/// `host[:port]` or `[v6][:port]`, with `default_port` when none is given.
fn split_authority(authority: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
    if !valid_host || (host.contains(':') && !authority.starts_with('[')) {
        return None;
    }
    let port = match port {
        None => default_port,
        Some(port) => port.parse::<u16>().ok().filter(|p| *p != 0)?,
    };
    Some((host.to_ascii_lowercase(), port))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A validated `kind: dbss` target's own settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Dbss {
    pub endpoint: Endpoint,
    pub project_id: String,
    pub instance_id: String,
    /// Holds the IAM token sent as `X-Auth-Token`; re-read when it changes.
    pub token_file: PathBuf,
    /// Databases to report (`db_id` of the request); empty reports every database.
    pub db_ids: Vec<String>,
    pub time_range: TimeRange,
    /// CA certificates (PEM) trusted instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// Turns certificate verification off; refused unless set explicitly, and warned about.
    pub insecure_skip_verify: bool,
    pub connect_timeout: Duration,
}

/// The keys of a `kind: dbss` target, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDbss {
    endpoint: Option<String>,
    project_id: Option<String>,
    instance_id: Option<String>,
    token_file: Option<PathBuf>,
    db_ids: Option<Vec<String>>,
    time_range: Option<TimeRange>,
    ca_file: Option<PathBuf>,
    insecure_skip_verify: Option<bool>,
    connect_timeout: Option<String>,
}

/// Every key this kind accepts.
pub(super) fn keys() -> Vec<&'static str> {
    fields_of::<RawDbss>().to_vec()
}

/// Checks the DBSS keys; the target's `collect_timeout` caps the connect timeout.
/// Problems go to `input`; the result is usable either way.
pub(super) fn validate(input: &mut KindInput<'_>) -> TargetKind {
    let raw = input.read::<RawDbss>();
    let collect_timeout = input.collect_timeout;
    let endpoint = match raw.endpoint.as_deref() {
        None => {
            input.problem(
                "endpoint",
                "is required for kind dbss: the DBSS base URL, e.g. https://dbss.ap-southeast-1.myhuaweicloud.com",
            );
            None
        }
        Some(text) => Endpoint::parse(text)
            .map_err(|message| input.problem("endpoint", message))
            .ok(),
    };
    let mut path_id = |field: &str, value: Option<String>| {
        let Some(value) = value else {
            input.problem(
                field,
                format!("is required for kind dbss: the {field} shown in the DBSS console (32 to 64 characters)"),
            );
            return String::new();
        };
        if !valid_path_id(&value) {
            input.problem(
                field,
                format!(
                    "`{}` is not a DBSS {field}: it has 32 to 64 characters (letters, digits, `-`, `_`), as shown in the console",
                    value.chars().take(80).collect::<String>()
                ),
            );
        }
        value
    };
    let project_id = path_id("project_id", raw.project_id);
    let instance_id = path_id("instance_id", raw.instance_id);
    let token_file = match raw.token_file {
        None => {
            input.problem(
                "token_file",
                "is required for kind dbss: a file holding the IAM token (X-Subject-Token) sent as X-Auth-Token",
            );
            PathBuf::new()
        }
        Some(file) => {
            let path = input.base_dir.join(file);
            if let Err(message) = crate::secret::read_token_file(&path) {
                input.problem("token_file", message);
            }
            path
        }
    };
    let db_ids = raw.db_ids.unwrap_or_default();
    for (i, id) in db_ids.iter().enumerate() {
        if id.trim().is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
            input.problem(
                &format!("db_ids[{i}]"),
                "database IDs are 1 to 128 characters without control characters",
            );
        } else if db_ids[..i].contains(id) {
            input.problem(&format!("db_ids[{i}]"), format!("`{id}` is listed twice"));
        }
    }
    let ca_file = raw.ca_file.map(|file| input.base_dir.join(file));
    if let Some(file) = &ca_file {
        if let Err(message) = read_certs(file) {
            input.problem("ca_file", message);
        }
    }
    let insecure_skip_verify = raw.insecure_skip_verify.unwrap_or(false);
    if insecure_skip_verify && ca_file.is_some() {
        input.problem(
            "insecure_skip_verify",
            "turns verification off, so ca_file would be ignored: keep one of them (ca_file, preferably)",
        );
    }
    let connect_timeout = match raw.connect_timeout.as_deref().map(parse_duration) {
        None => DEFAULT_CONNECT_TIMEOUT.min(collect_timeout),
        Some(Ok(d)) if d.is_zero() || d > collect_timeout => {
            input.problem(
                "connect_timeout",
                format!(
                    "must be longer than 0s and at most collect_timeout ({})",
                    super::format_duration(collect_timeout)
                ),
            );
            collect_timeout
        }
        Some(Ok(d)) => d,
        Some(Err(message)) => {
            input.problem("connect_timeout", message);
            collect_timeout
        }
    };
    TargetKind::Dbss(Dbss {
        endpoint: endpoint.unwrap_or(Endpoint {
            tls: true,
            host: String::new(),
            port: 443,
            prefix: String::new(),
        }),
        project_id,
        instance_id,
        token_file,
        db_ids,
        time_range: raw.time_range.unwrap_or_default(),
        ca_file,
        insecure_skip_verify,
        connect_timeout,
    })
}

/// DBSS's project and instance IDs: 32 to 64 characters. They go into a URL path, so
/// only characters that need no escaping are accepted.
pub fn valid_path_id(id: &str) -> bool {
    (32..=64).contains(&id.len()) && is_path_safe(id)
}

/// Letters, digits, `-` and `_` only: a path segment that needs no escaping and
/// cannot step out of its place (`/`, `..`, `?`, `%`).
pub fn is_path_safe(id: &str) -> bool {
    id.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// This kind in the configuration ([`super::KINDS`]).
pub(crate) const KIND: super::KindEntry = super::KindEntry {
    name: "dbss",
    keys,
    foreign_key_hint: "; a dbss target reads DBSS's report over HTTPS (the endpoint and token_file say where and how)",
    validate,
    // DBSS's report is by audited database, not by tenant.
    expected_tenants: |_, _| Vec::new(),
    fronts: false,
    behind: super::nothing_in_front,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_with_defaults_and_prefixes() {
        let e = Endpoint::parse("https://dbss.example-region.example.com").unwrap();
        assert_eq!(
            (e.tls, e.host.as_str(), e.port),
            (true, "dbss.example-region.example.com", 443)
        );
        assert_eq!(
            e.uri("/v1/x"),
            "https://dbss.example-region.example.com:443/v1/x"
        );
        let e = Endpoint::parse("https://[::1]:8443/gw/").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.prefix.as_str()),
            ("::1", 8443, "/gw")
        );
        assert_eq!(e.uri("/v2/a"), "https://[::1]:8443/gw/v2/a");
        let e = Endpoint::parse("http://127.0.0.1:9000").unwrap();
        assert!(!e.tls);
    }

    #[test]
    fn endpoints_refuse_what_would_leak_or_mislead() {
        for (text, expect) in [
            ("dbss.example.com", "not a base URL"),
            ("http://dbss.example.com", "clear text"),
            ("https://user:pw@dbss.example.com", "credentials"),
            ("https://dbss.example.com/?a=b", "query"),
            ("https://:443", "host"),
            ("https://dbss.example.com:0", "host"),
            ("https://dbss.example.com:99999", "host"),
            ("https://::1:443", "host"),
            ("https://dbss.example.com/a b", "path"),
        ] {
            let err = Endpoint::parse(text).unwrap_err();
            assert!(err.contains(expect), "{text}: {err}");
        }
    }

    #[test]
    fn path_ids_are_32_to_64_safe_characters() {
        assert!(valid_path_id(&"a".repeat(32)));
        assert!(valid_path_id(&"0123456789abcdef-_".repeat(3)[..54]));
        assert!(valid_path_id(&"A".repeat(64)));
        assert!(!valid_path_id(&"a".repeat(31)));
        assert!(!valid_path_id(&"a".repeat(65)));
        assert!(!valid_path_id(&format!("{}/..", "a".repeat(32))));
        assert!(!valid_path_id(&format!("{}?x", "a".repeat(32))));
    }
}
