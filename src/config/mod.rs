//! The configuration file: its types, loading, and validation.
//!
//! Loading is two steps. serde turns the YAML into raw structs (unknown keys and wrong
//! types stop it, with serde's own line and column). Then [`validate`] checks meaning
//! (addresses, durations, names, which keys fit which kind) and collects *every* problem
//! with its `file:line: key`, so one run tells the user all there is to fix.
//! A secret never appears in an error, a log line or a `Debug` print.

mod dbss;
mod duration;
mod locate;

pub use dbss::{is_path_safe, valid_path_id, Dbss, Endpoint, TimeRange};
pub use duration::parse_duration;

use locate::KeyLines;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Collection interval used when the file names none.
pub const DEFAULT_COLLECT_INTERVAL: Duration = Duration::from_secs(15);
/// Collection timeout used when the file names none.
pub const DEFAULT_COLLECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Series per tenant and dimension (db, user, client_ip) when the file names none.
pub const DEFAULT_MAX_SERIES_PER_DIMENSION: usize = 100;
/// Longest active sessions exported per tenant when the file names none.
pub const DEFAULT_TOP_SESSIONS: usize = 5;
/// More would turn the top-sessions series into a session list: use the passthrough.
pub const MAX_TOP_SESSIONS: usize = 50;
/// Concurrent passthrough queries per target when the file names none.
pub const DEFAULT_PASSTHROUGH_CONCURRENCY: usize = 4;
/// Passthrough request timeout when the file names none.
pub const DEFAULT_PASSTHROUGH_TIMEOUT: Duration = Duration::from_secs(5);

/// Labels the exporter sets itself; a target's constant labels may not reuse them.
const RESERVED_LABELS: [&str; 14] = [
    "target",
    "tenant",
    "db",
    "user",
    "client_ip",
    "svr_ip",
    "reason",
    "dimension",
    "instance",
    "job",
    "instance_id",
    "db_id",
    "db_ip",
    "db_name",
];

/// A validated configuration, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub targets: Vec<Target>,
    pub passthrough: Passthrough,
}

/// The obshell-compatible session API (`/api/v1/tenant/...`): off unless enabled.
#[derive(Debug, Clone, PartialEq)]
pub struct Passthrough {
    pub enabled: bool,
    /// Accepted as `Authorization: Bearer <token>`, read from `bearer_token_file`.
    pub bearer_token: Option<Secret>,
    /// Serve without any authentication; only when set explicitly, and warned about.
    pub insecure_no_auth: bool,
    /// Live queries at once per target; more wait, up to `request_timeout`.
    pub max_concurrent_per_target: usize,
    pub request_timeout: Duration,
}

impl Default for Passthrough {
    fn default() -> Self {
        Self {
            enabled: false,
            bearer_token: None,
            insecure_no_auth: false,
            max_concurrent_per_target: DEFAULT_PASSTHROUGH_CONCURRENCY,
            request_timeout: DEFAULT_PASSTHROUGH_TIMEOUT,
        }
    }
}

impl Passthrough {
    /// The API returns SQL text, which can hold secrets: enabled, it needs a bearer
    /// token, basic auth users (`web_has_users`, from --web.config.file), or an
    /// explicit `insecure_no_auth`. The message says what to add.
    pub fn check_auth(&self, web_has_users: bool) -> Result<(), String> {
        if !self.enabled || self.bearer_token.is_some() || web_has_users || self.insecure_no_auth {
            return Ok(());
        }
        Err(
            "passthrough.enabled needs authentication, since sessions show SQL text: set \
             passthrough.bearer_token_file, or basic_auth_users in --web.config.file \
             (or, on a trusted network only, passthrough.insecure_no_auth: true)"
                .to_string(),
        )
    }
}

/// What kind of database a target is, which decides how its sessions are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// OceanBase through `GV$OB_PROCESSLIST` (a cluster's sys tenant), or
    /// `V$OB_PROCESSLIST` for single-tenant servers such as seekdb.
    Oceanbase,
    /// MySQL or MariaDB through `information_schema.PROCESSLIST`.
    Mysql,
    /// Huawei Cloud Database Security Service: its client session distribution report,
    /// over HTTPS.
    Dbss,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Oceanbase => "oceanbase",
            Kind::Mysql => "mysql",
            Kind::Dbss => "dbss",
        }
    }
}

/// One database endpoint to collect from.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Unique name; the `target` label of every series of this target.
    pub name: String,
    pub kind: Kind,
    pub address: Address,
    pub user: String,
    pub password: Secret,
    /// OceanBase only: the tenants to report; `None` reports every tenant visible.
    pub tenants: Option<Vec<String>>,
    /// OceanBase only: the tenant label for a single-tenant server that does not tell
    /// its tenant's name (seekdb).
    pub tenant: Option<String>,
    /// Constant labels added to every series of this target, sorted by name.
    pub labels: Vec<(String, String)>,
    pub collect_interval: Duration,
    pub collect_timeout: Duration,
    /// The cardinality guard: at most this many db, user and client_ip series per
    /// tenant, `__other__` included; 0 turns it off.
    pub max_series_per_dimension: usize,
    /// How many of each tenant's longest active sessions to export; 0 turns it off.
    pub top_sessions: usize,
    /// Which sessions count at all.
    pub filter: Filter,
    /// OceanBase only: relations read instead of `oceanbase.GV$OB_PROCESSLIST` and
    /// `oceanbase.DBA_OB_TENANTS` (a view of the user's own, or a test table).
    pub processlist_view: Option<Relation>,
    pub tenants_view: Option<Relation>,
    /// Kind dbss only: the DBSS API and what to ask it. (`address` is then the
    /// endpoint's host and port, and `user` is empty.)
    pub dbss: Option<Dbss>,
}

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

impl Address {
    /// Parses `host:port` or `[v6]:port`; the port is required because guessing
    /// between 2881 (OceanBase) and 3306 (MySQL) would hide a typo.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("`{text}` opens `[` without closing it"))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| format!("`{text}` has no port: write it as [{host}]:2881"))?;
            (host, port)
        } else {
            match text.rsplit_once(':') {
                Some((host, _)) if host.contains(':') => {
                    return Err(format!(
                        "`{text}` looks like an IPv6 address: write it as [address]:port"
                    ))
                }
                Some((host, port)) => (host, port),
                None => {
                    return Err(format!(
                        "`{text}` has no port: write host:port, e.g. 127.0.0.1:2881 \
                         (OceanBase) or 127.0.0.1:3306 (MySQL)"
                    ))
                }
            }
        };
        if host.is_empty() {
            return Err(format!(
                "`{text}` has no host: write host:port, e.g. 127.0.0.1:2881"
            ));
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| format!("`{port}` is not a port: use a number from 1 to 65535"))?;
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }
}

/// A schema-qualified relation name such as `oceanbase.GV$OB_PROCESSLIST`.
///
/// Only identifier characters are accepted, and each part is quoted with backticks
/// when written into SQL, so a config value can never change a query's meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    parts: Vec<String>,
}

impl Relation {
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<String> = text.split('.').map(str::to_string).collect();
        let valid = |part: &String| {
            !part.is_empty()
                && part.len() <= 64
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        };
        if parts.len() > 2 || !parts.iter().all(valid) {
            return Err(format!(
                "`{text}` is not a relation name: write `schema.name` with letters, \
                 digits, `_` and `$`, e.g. oceanbase.GV$OB_PROCESSLIST"
            ));
        }
        Ok(Self { parts })
    }

    /// The relation quoted for SQL, e.g. `` `oceanbase`.`GV$OB_PROCESSLIST` ``.
    pub fn to_sql(&self) -> String {
        self.parts
            .iter()
            .map(|part| format!("`{part}`"))
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// A password: printed as `<redacted>` by `Debug`, readable only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why a configuration could not be used. Each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {}: {source} (pass another with --config.file)", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{location}{message}", path.display())]
    Syntax {
        path: PathBuf,
        /// `line:column: ` when serde knows it, else empty.
        location: String,
        message: String,
    },
    #[error("{} has {} problem(s):\n{}", path.display(), problems.len(), render(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// One semantic problem in the file: where, which key, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, when it is not the main config file (a `targets_files` match).
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

fn render(path: &Path, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| {
            let file = p.file.as_deref().unwrap_or(path).display();
            match p.line {
                Some(line) => format!("  {file}:{line}: {}: {}", p.key, p.message),
                None => format!("  {file}: {}: {}", p.key, p.message),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    global: RawGlobal,
    #[serde(default)]
    targets: Vec<RawTarget>,
    #[serde(default)]
    targets_files: Vec<String>,
    #[serde(default)]
    passthrough: RawPassthrough,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPassthrough {
    #[serde(default)]
    enabled: bool,
    bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    insecure_no_auth: bool,
    max_concurrent_per_target: Option<usize>,
    request_timeout: Option<String>,
}

/// A file matched by `targets_files`: targets only.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTargetsFile {
    #[serde(default)]
    targets: Vec<RawTarget>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGlobal {
    collect_interval: Option<String>,
    collect_timeout: Option<String>,
    max_series_per_dimension: Option<usize>,
    top_sessions: Option<usize>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: String,
    kind: Kind,
    address: Option<String>,
    user: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    tenants: Option<Vec<String>>,
    tenant: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    collect_interval: Option<String>,
    collect_timeout: Option<String>,
    max_series_per_dimension: Option<usize>,
    top_sessions: Option<usize>,
    filter: Option<RawFilter>,
    processlist_view: Option<String>,
    tenants_view: Option<String>,
    // Kind dbss (see `dbss::RawDbss`); flatten cannot be combined with
    // deny_unknown_fields, so the keys are listed here.
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

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text, &|name| std::env::var(name).ok())
}

/// Parses and validates `text` as read from `path` (used in messages and to resolve
/// relative `password_file`s). `env` looks up `${VAR}` references in passwords.
pub fn parse(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let raw: RawConfig = if text.trim().is_empty() {
        RawConfig::default()
    } else {
        serde_yaml::from_str(text).map_err(|err| syntax_error(path, &err))?
    };
    let lines = KeyLines::index(text);
    let mut check = Checker {
        file: None,
        lines,
        problems: Vec::new(),
    };
    let config = validate(raw, path, env, &mut check);
    let mut problems = check.problems;
    // Reported file by file, in line order, however the checks ran.
    problems.sort_by(|a, b| {
        (&a.file, a.line.unwrap_or(usize::MAX)).cmp(&(&b.file, b.line.unwrap_or(usize::MAX)))
    });
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }
}

fn syntax_error(path: &Path, err: &serde_yaml::Error) -> ConfigError {
    let mut message = err.to_string();
    let location = match err.location() {
        Some(loc) => {
            // serde appends " at line L column C"; the location moves to the front.
            if let Some(cut) = message.rfind(" at line ") {
                message.truncate(cut);
            }
            format!("{}:{}: ", loc.line(), loc.column())
        }
        None => " ".to_string(),
    };
    ConfigError::Syntax {
        path: path.to_path_buf(),
        location,
        message,
    }
}

/// Collects problems, each placed on the line of its key in the file being checked.
struct Checker {
    file: Option<PathBuf>,
    lines: KeyLines,
    problems: Vec<Problem>,
}

impl Checker {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            line: self.lines.line_of(key),
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn top_sessions(&mut self, key: &str, n: usize) {
        if n > MAX_TOP_SESSIONS {
            self.problem(
                key,
                format!("{n} is more than {MAX_TOP_SESSIONS}: keep it small (each rank is a series that churns), and list sessions through the passthrough API"),
            );
        }
    }

    /// Names are written into SQL as string literals: refuse what could not be
    /// quoted the same way in every SQL mode.
    fn name_list(&mut self, key: &str, raw: RawNameList) -> NameList {
        let lists = [
            ("allow", raw.allow.as_deref().unwrap_or_default()),
            ("deny", &raw.deny[..]),
        ];
        for (field, names) in lists {
            for (i, name) in names.iter().enumerate() {
                if name.is_empty() || name.contains('\\') || name.chars().any(char::is_control) {
                    self.problem(
                        &format!("{key}.{field}[{i}]"),
                        "names must be non-empty, without backslashes or control characters",
                    );
                }
            }
        }
        if raw.allow.as_ref().is_some_and(Vec::is_empty) {
            self.problem(
                &format!("{key}.allow"),
                "is empty, which would drop every session: list names, or remove the key",
            );
        }
        NameList {
            allow: raw.allow,
            deny: raw.deny,
        }
    }

    fn max_series(&mut self, key: &str, max: usize) {
        if max == 1 {
            self.problem(
                key,
                "1 leaves room for `__other__` alone: use 2 or more, or 0 to turn the guard off",
            );
        }
    }

    fn duration(&mut self, key: &str, text: Option<&str>, default: Duration) -> Duration {
        match text.map(parse_duration) {
            None => default,
            Some(Ok(d)) if d.is_zero() => {
                self.problem(key, "must be longer than 0s");
                default
            }
            Some(Ok(d)) => d,
            Some(Err(message)) => {
                self.problem(key, message);
                default
            }
        }
    }
}

fn validate(
    raw: RawConfig,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    check: &mut Checker,
) -> Config {
    let interval = check.duration(
        "global.collect_interval",
        raw.global.collect_interval.as_deref(),
        DEFAULT_COLLECT_INTERVAL,
    );
    let timeout = check.duration(
        "global.collect_timeout",
        raw.global.collect_timeout.as_deref(),
        default_timeout(DEFAULT_COLLECT_TIMEOUT, interval),
    );
    if raw.global.collect_timeout.is_some() && timeout >= interval {
        check.problem(
            "global.collect_timeout",
            format!(
                "must be shorter than collect_interval ({}), so a slow cycle ends before the next starts",
                format_duration(interval)
            ),
        );
    }
    let global = Defaults {
        interval,
        timeout,
        max_series: raw
            .global
            .max_series_per_dimension
            .unwrap_or(DEFAULT_MAX_SERIES_PER_DIMENSION),
        top_sessions: raw.global.top_sessions.unwrap_or(DEFAULT_TOP_SESSIONS),
    };
    check.max_series("global.max_series_per_dimension", global.max_series);
    check.top_sessions("global.top_sessions", global.top_sessions);
    let base_dir = path.parent().unwrap_or(Path::new("."));
    let mut names = HashSet::new();
    let mut targets = validate_targets(raw.targets, &global, base_dir, env, check, &mut names);
    for (i, pattern) in raw.targets_files.iter().enumerate() {
        match expand_pattern(base_dir, pattern) {
            Ok(files) => {
                for file in files {
                    targets.extend(load_targets_file(&file, &global, env, check, &mut names));
                }
            }
            Err(message) => check.problem(&format!("targets_files[{i}]"), message),
        }
    }
    if targets.is_empty() && check.problems.is_empty() {
        check.problem(
            "targets",
            "no targets: add at least one here or in a targets_files match (see config.example.yaml)",
        );
    }
    let passthrough = validate_passthrough(raw.passthrough, base_dir, check);
    Config {
        targets,
        passthrough,
    }
}

fn validate_passthrough(raw: RawPassthrough, base_dir: &Path, check: &mut Checker) -> Passthrough {
    let concurrency = raw
        .max_concurrent_per_target
        .unwrap_or(DEFAULT_PASSTHROUGH_CONCURRENCY);
    if !(1..=64).contains(&concurrency) {
        check.problem(
            "passthrough.max_concurrent_per_target",
            format!(
                "{concurrency} is out of range: use 1 to 64 (each is a connection to the database)"
            ),
        );
    }
    let request_timeout = check.duration(
        "passthrough.request_timeout",
        raw.request_timeout.as_deref(),
        DEFAULT_PASSTHROUGH_TIMEOUT,
    );
    let bearer_token = raw.bearer_token_file.and_then(|file| {
        match read_password_file(&base_dir.join(&file)) {
            Ok(token) if token.expose().trim().len() < 16 => {
                check.problem(
                    "passthrough.bearer_token_file",
                    format!("{} holds a token shorter than 16 characters: write a long random one, e.g. `openssl rand -hex 32`", file.display()),
                );
                None
            }
            Ok(token) => Some(Secret::new(token.expose().trim().to_string())),
            Err(message) => {
                check.problem("passthrough.bearer_token_file", message);
                None
            }
        }
    });
    Passthrough {
        enabled: raw.enabled,
        bearer_token,
        insecure_no_auth: raw.insecure_no_auth,
        max_concurrent_per_target: concurrency.clamp(1, 64),
        request_timeout,
    }
}

/// Validates a list of targets; `names` holds the names taken so far in any file.
fn validate_targets(
    raw: Vec<RawTarget>,
    global: &Defaults,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    check: &mut Checker,
    names: &mut HashSet<String>,
) -> Vec<Target> {
    raw.into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let key = format!("targets[{i}]");
            if !names.insert(raw.name.clone()) {
                check.problem(
                    &format!("{key}.name"),
                    format!(
                        "`{}` is used by an earlier target: names must be unique",
                        raw.name
                    ),
                );
            }
            validate_target(raw, &key, global, base_dir, env, check)
        })
        .collect()
}

/// The files matching `pattern` (relative to `base_dir`), sorted so the target order
/// does not depend on the file system.
fn expand_pattern(base_dir: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let full = base_dir.join(pattern);
    let full = full
        .to_str()
        .ok_or_else(|| format!("`{pattern}` is not valid UTF-8"))?;
    let matches =
        glob::glob(full).map_err(|err| format!("`{pattern}` is not a valid pattern: {err}"))?;
    let mut files = Vec::new();
    for entry in matches {
        match entry {
            Ok(path) if path.is_file() => files.push(path),
            Ok(_) => {}
            Err(err) => return Err(format!("cannot read a match of `{pattern}`: {err}")),
        }
    }
    files.sort();
    Ok(files)
}

/// Reads one `targets_files` match; its problems name that file and its lines.
fn load_targets_file(
    file: &Path,
    global: &Defaults,
    env: &dyn Fn(&str) -> Option<String>,
    check: &mut Checker,
    names: &mut HashSet<String>,
) -> Vec<Target> {
    let mut local = Checker {
        file: Some(file.to_path_buf()),
        lines: KeyLines::default(),
        problems: Vec::new(),
    };
    let targets = match std::fs::read_to_string(file) {
        Err(err) => {
            local.problem("targets", format!("cannot read this file: {err}"));
            Vec::new()
        }
        Ok(text) => match serde_yaml::from_str::<RawTargetsFile>(&text) {
            Err(err) => {
                let mut message = err.to_string();
                if let Some(cut) = message.rfind(" at line ") {
                    message.truncate(cut);
                }
                local.problems.push(Problem {
                    file: Some(file.to_path_buf()),
                    line: err.location().map(|l| l.line()),
                    key: "targets".to_string(),
                    message,
                });
                Vec::new()
            }
            Ok(raw) => {
                local.lines = KeyLines::index(&text);
                let base_dir = file.parent().unwrap_or(Path::new("."));
                validate_targets(raw.targets, global, base_dir, env, &mut local, names)
            }
        },
    };
    check.problems.append(&mut local.problems);
    targets
}

/// The global settings a target inherits unless it sets its own.
struct Defaults {
    interval: Duration,
    timeout: Duration,
    max_series: usize,
    top_sessions: usize,
}

fn validate_target(
    mut raw: RawTarget,
    key: &str,
    global: &Defaults,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    check: &mut Checker,
) -> Target {
    let k = |field: &str| format!("{key}.{field}");
    if !valid_name(&raw.name) {
        check.problem(
            &k("name"),
            format!(
                "`{}` is not a valid name: use 1-64 letters, digits, `_`, `-` or `.`, starting with a letter or digit",
                raw.name
            ),
        );
    }
    let raw_dbss = dbss::RawDbss {
        endpoint: raw.endpoint.take(),
        project_id: raw.project_id.take(),
        instance_id: raw.instance_id.take(),
        token_file: raw.token_file.take(),
        db_ids: raw.db_ids.take(),
        time_range: raw.time_range.take(),
        ca_file: raw.ca_file.take(),
        insecure_skip_verify: raw.insecure_skip_verify.take(),
        connect_timeout: raw.connect_timeout.take(),
    };
    let is_dbss = raw.kind == Kind::Dbss;
    if is_dbss {
        let database_only = [
            ("address", raw.address.is_some()),
            ("user", raw.user.is_some()),
            ("password", raw.password.is_some()),
            ("password_file", raw.password_file.is_some()),
            ("top_sessions", raw.top_sessions.is_some()),
            ("filter", raw.filter.is_some()),
        ];
        for (field, present) in database_only {
            if present {
                check.problem(
                    &k(field),
                    "does not apply to kind dbss, which reads DBSS's report over HTTPS: remove it (the endpoint and token_file say where and how)",
                );
            }
        }
    } else {
        for field in raw_dbss.present() {
            check.problem(
                &k(field),
                format!(
                    "applies to kind dbss only, not to a {} target: remove it",
                    raw.kind.as_str()
                ),
            );
        }
    }
    let address = match (&raw.address, is_dbss) {
        (_, true) => Address {
            host: String::new(),
            port: 0,
        },
        (None, false) => {
            check.problem(
                &k("address"),
                "is required: the database's host:port, e.g. 127.0.0.1:2881",
            );
            Address {
                host: String::new(),
                port: 0,
            }
        }
        (Some(text), false) => Address::parse(text).unwrap_or_else(|message| {
            check.problem(&k("address"), message);
            Address {
                host: String::new(),
                port: 0,
            }
        }),
    };
    let user = raw.user.take().unwrap_or_default();
    if !is_dbss && user.trim().is_empty() {
        check.problem(
            &k("user"),
            "is empty: name the monitoring account, e.g. monitor@sys",
        );
    }
    let password = match (raw.password, raw.password_file) {
        (Some(_), Some(_)) => {
            check.problem(
                &k("password_file"),
                "give either password or password_file, not both",
            );
            Secret::default()
        }
        (Some(text), None) => expand_env(&text, env).unwrap_or_else(|message| {
            check.problem(&k("password"), message);
            Secret::default()
        }),
        (None, Some(file)) => read_password_file(&base_dir.join(file)).unwrap_or_else(|message| {
            check.problem(&k("password_file"), message);
            Secret::default()
        }),
        (None, None) => Secret::default(),
    };

    let oceanbase_only = [
        ("tenants", raw.tenants.is_some()),
        ("tenant", raw.tenant.is_some()),
        ("processlist_view", raw.processlist_view.is_some()),
        ("tenants_view", raw.tenants_view.is_some()),
    ];
    if raw.kind != Kind::Oceanbase {
        for (field, present) in oceanbase_only {
            if present {
                check.problem(
                    &k(field),
                    if is_dbss {
                        "applies to kind oceanbase only; a dbss target has no tenants: remove it"
                            .to_string()
                    } else {
                        format!(
                            "applies to kind oceanbase only; a {} target has one tenant named after the target: remove it",
                            raw.kind.as_str()
                        )
                    },
                );
            }
        }
    }
    if let Some(tenants) = &raw.tenants {
        if tenants.is_empty() {
            check.problem(
                &k("tenants"),
                "is empty: list tenants, or remove the key to report every tenant",
            );
        }
        let mut seen = HashSet::new();
        for (i, tenant) in tenants.iter().enumerate() {
            if !valid_tenant(tenant) {
                check.problem(
                    &format!("{key}.tenants[{i}]"),
                    format!("`{tenant}` is not a tenant name: OceanBase tenant names are letters, digits and `_`"),
                );
            } else if !seen.insert(tenant) {
                check.problem(
                    &format!("{key}.tenants[{i}]"),
                    format!("`{tenant}` is listed twice"),
                );
            }
        }
    }
    if let Some(tenant) = &raw.tenant {
        if !valid_tenant(tenant) {
            check.problem(
                &k("tenant"),
                format!("`{tenant}` is not a tenant name: OceanBase tenant names are letters, digits and `_`"),
            );
        }
    }
    let mut relation = |field: &str, text: Option<&str>| {
        text.and_then(|text| {
            Relation::parse(text)
                .map_err(|message| check.problem(&k(field), message))
                .ok()
        })
    };
    let processlist_view = relation("processlist_view", raw.processlist_view.as_deref());
    let tenants_view = relation("tenants_view", raw.tenants_view.as_deref());

    for name in raw.labels.keys() {
        let label_key = format!("{key}.labels.{name}");
        if RESERVED_LABELS.contains(&name.as_str()) {
            check.problem(
                &label_key,
                format!("`{name}` is set by the exporter itself: choose another label name"),
            );
        } else if !valid_label_name(name) {
            check.problem(
                &label_key,
                format!("`{name}` is not a Prometheus label name: use letters, digits and `_`, not starting with a digit or `__`"),
            );
        }
    }

    let interval = check.duration(
        &k("collect_interval"),
        raw.collect_interval.as_deref(),
        global.interval,
    );
    let timeout = check.duration(
        &k("collect_timeout"),
        raw.collect_timeout.as_deref(),
        default_timeout(global.timeout, interval),
    );
    let max_series = raw.max_series_per_dimension.unwrap_or(global.max_series);
    check.max_series(&k("max_series_per_dimension"), max_series);
    let top_sessions = raw.top_sessions.unwrap_or(global.top_sessions);
    check.top_sessions(&k("top_sessions"), top_sessions);
    let raw_filter = raw.filter.unwrap_or_default();
    let filter = Filter {
        min_time: raw_filter.min_time.as_deref().and_then(|text| {
            parse_duration(text)
                .map_err(|message| check.problem(&k("filter.min_time"), message))
                .ok()
        }),
        users: check.name_list(&k("filter.users"), raw_filter.users),
        databases: check.name_list(&k("filter.databases"), raw_filter.databases),
    };
    if (raw.collect_interval.is_some() || raw.collect_timeout.is_some()) && timeout >= interval {
        check.problem(
            &k("collect_timeout"),
            format!(
                "{} must be shorter than this target's collect_interval ({})",
                format_duration(timeout),
                format_duration(interval)
            ),
        );
    }

    let (address, dbss) = if is_dbss {
        let settings = dbss::validate(raw_dbss, key, base_dir, timeout, check);
        let address = Address {
            host: settings.endpoint.host.clone(),
            port: settings.endpoint.port,
        };
        (address, Some(settings))
    } else {
        (address, None)
    };
    Target {
        name: raw.name,
        kind: raw.kind,
        address,
        user,
        password,
        tenants: raw.tenants,
        tenant: raw.tenant,
        labels: raw.labels.into_iter().collect(),
        collect_interval: interval,
        collect_timeout: timeout,
        max_series_per_dimension: max_series,
        top_sessions,
        filter,
        processlist_view,
        tenants_view,
        dbss,
    }
}

/// The timeout when none is given: `timeout` if it fits in `interval`, else 80 % of
/// the interval, so a short interval alone is a valid configuration.
fn default_timeout(timeout: Duration, interval: Duration) -> Duration {
    if timeout < interval {
        timeout
    } else {
        interval.mul_f64(0.8)
    }
}

/// Replaces `${NAME}` with the environment variable's value. The error names the
/// variable, never a value.
fn expand_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Secret, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or("has `${` without a closing `}`: write ${VARIABLE}")?;
        let name = &after[..end];
        let value = env(name).ok_or_else(|| {
            format!("refers to the environment variable {name}, which is not set: set it, or use password_file")
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Secret::new(out))
}

fn read_password_file(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    // Files written by `echo` end with a newline that is not part of the password.
    Ok(Secret::new(text.trim_end_matches(['\n', '\r']).to_string()))
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn valid_tenant(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_label_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with("__")
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Formats a duration the way the config writes it (`15s`, `500ms`, `1m30s`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, len) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if rest >= len {
            out.push_str(&format!("{}{unit}", rest / len));
            rest %= len;
        }
    }
    out
}

#[cfg(test)]
mod tests;
