//! The configuration file: its types, loading, and validation.
//!
//! Loading is two steps. serde turns the YAML into raw structs (unknown keys and wrong
//! types of the common keys stop it, with serde's own line and column). Then
//! `validate` checks meaning (addresses, durations, names, and which keys fit which
//! kind) and collects *every* problem with its `file:line: key`, so one run tells the
//! user all there is to fix. A secret never appears in an error, a log line or a
//! `Debug` print.
//!
//! A target is its common keys ([`Target`]) plus one kind's settings
//! ([`TargetKind`]). Each kind's keys, their types and their checks live in the
//! kind's own module; `KINDS` registers them, and is the only list of kinds here.

mod database;
pub mod dbss;
mod duration;
mod files;
pub mod history;
mod keys;
mod locate;
pub mod mysql;
mod names;
pub mod oceanbase;
mod passthrough;
pub mod pem;
pub mod pgbouncer;
pub mod postgresql;

pub use database::{Address, AddressError, CollectParts, Database, Filter, NameList};
pub use duration::{format_duration, parse_duration};
pub use history::History;
pub use passthrough::{
    Access, Grant, ObshellAuthSettings, Passthrough, DEFAULT_MAX_HEADER_LIFETIME,
};

use crate::secret::Secret;
use files::{expand_pattern, load_targets_file};
use keys::{fields_of, RawTarget};
use locate::KeyLines;
use names::{expand_env, valid_label_name, valid_name};
use serde::Deserialize;
use std::collections::HashSet;
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
/// More would turn the top-sessions series into a session list: use the session API.
pub const MAX_TOP_SESSIONS: usize = 50;
/// Concurrent session API queries per target when the file names none.
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
    /// The session history; None records nothing.
    pub history: Option<History>,
}

/// One target to collect from: what every kind has, and its kind's own settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Unique name; the `target` label of every series of this target.
    pub name: String,
    /// Constant labels added to every series of this target, sorted by name.
    pub labels: Vec<(String, String)>,
    pub collect_interval: Duration,
    pub collect_timeout: Duration,
    /// The cardinality guard: at most this many series per tenant and dimension (db,
    /// user, client_ip; a DBSS target's databases), `__other__` included; 0 turns it
    /// off.
    pub max_series_per_dimension: usize,
    /// Sessions per tenant and cycle kept for the session history (`history:`'s
    /// `max_sessions`); None when nothing is recorded.
    pub history_sessions: Option<usize>,
    /// Characters of a kept session's SQL text the history keeps (`sql_text_max`),
    /// for the kinds that cut it in their statement; 0 when nothing is recorded.
    pub history_sql_text: usize,
    pub kind: TargetKind,
}

/// What kind of target this is, with that kind's own settings: which decides how its
/// sessions are read.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetKind {
    /// OceanBase through `GV$OB_PROCESSLIST` (a cluster's sys tenant), or
    /// `V$OB_PROCESSLIST` for single-tenant servers such as seekdb.
    Oceanbase(oceanbase::Oceanbase),
    /// MySQL or MariaDB through `information_schema.PROCESSLIST`.
    Mysql(mysql::Mysql),
    /// PostgreSQL through `pg_stat_activity`.
    Postgresql(postgresql::Postgresql),
    /// Huawei Cloud Database Security Service: its client session distribution report,
    /// over HTTPS.
    Dbss(dbss::Dbss),
    /// PgBouncer through its admin console: its clients, pools and limits.
    Pgbouncer(pgbouncer::Pgbouncer),
}

impl TargetKind {
    /// This kind's entry in [`KINDS`]: a `match`, so the compiler sees that every
    /// kind has one.
    fn entry(&self) -> &'static KindEntry {
        match self {
            TargetKind::Oceanbase(_) => &oceanbase::KIND,
            TargetKind::Mysql(_) => &mysql::KIND,
            TargetKind::Postgresql(_) => &postgresql::KIND,
            TargetKind::Dbss(_) => &dbss::KIND,
            TargetKind::Pgbouncer(_) => &pgbouncer::KIND,
        }
    }

    /// The name written in `kind:`.
    pub fn name(&self) -> &'static str {
        self.entry().name
    }

    /// The targets in front of this one (its `behind:`): poolers whose clients are
    /// the real clients of its sessions.
    pub fn behind(&self) -> &[String] {
        (self.entry().behind)(self)
    }

    /// The tenants the configuration names for target `name`: reported (down) even
    /// when a collection does not find them, and served by the session API before
    /// one does.
    pub fn expected_tenants(&self, name: &str) -> Vec<String> {
        (self.entry().expected_tenants)(self, name)
    }
}

/// A kind as the configuration knows it: its `kind:` name, the keys its settings
/// accept (read from its settings types), what to tell a user who gives it another
/// kind's key, the validation of its keys, and the tenants a target of it names.
pub(crate) struct KindEntry {
    pub name: &'static str,
    pub keys: fn() -> Vec<&'static str>,
    /// Follows "applies to kind X only, not to a `name` target".
    pub foreign_key_hint: &'static str,
    pub validate: fn(&mut KindInput<'_>) -> TargetKind,
    /// See [`TargetKind::expected_tenants`]; called with this kind's variant only.
    pub expected_tenants: fn(&TargetKind, &str) -> Vec<String>,
    /// Whether a target of this kind can stand in front of another (a pooler), which
    /// that one names in its `behind:`.
    pub fronts: bool,
    /// The targets a target of this kind names in its `behind:` (see
    /// [`TargetKind::behind`]); called with this kind's variant only.
    pub behind: fn(&TargetKind) -> &[String],
}

/// A kind whose targets name none in front of them.
pub(crate) fn nothing_in_front(_: &TargetKind) -> &[String] {
    &[]
}

/// One server, one tenant, named after the target.
pub(crate) fn the_target_is_the_tenant(_: &TargetKind, target: &str) -> Vec<String> {
    vec![target.to_string()]
}

/// Every kind of target, each entry in its kind's module ([`TargetKind::entry`] maps
/// a variant to it).
pub(crate) const KINDS: [&KindEntry; 5] = [
    &oceanbase::KIND,
    &mysql::KIND,
    &postgresql::KIND,
    &dbss::KIND,
    &pgbouncer::KIND,
];

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
    passthrough: passthrough::RawPassthrough,
    history: Option<history::RawHistory>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGlobal {
    collect_interval: Option<String>,
    collect_timeout: Option<String>,
    max_series_per_dimension: Option<usize>,
    top_sessions: Option<usize>,
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

/// serde_yaml's message without the " at line L column C" it appends: the problem's
/// location is written in front of it, as every other problem's is.
fn yaml_message(err: &serde_yaml::Error) -> String {
    let mut message = err.to_string();
    if err.location().is_some() {
        if let Some(cut) = message.rfind(" at line ") {
            message.truncate(cut);
        }
    }
    message
}

fn syntax_error(path: &Path, err: &serde_yaml::Error) -> ConfigError {
    let message = yaml_message(err);
    let location = match err.location() {
        Some(loc) => format!("{}:{}: ", loc.line(), loc.column()),
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
            self.problem(key, top_sessions_problem(n));
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
    check_fronts(&targets, check);
    let passthrough = passthrough::validate_passthrough(raw.passthrough, base_dir, check);
    let history = history::validate_history(raw.history, base_dir, check);
    for target in &mut targets {
        target.history_sessions = history.as_ref().map(|h| h.max_sessions);
        target.history_sql_text = history.as_ref().map_or(0, |h| h.sql_text_max);
    }
    Config {
        targets,
        passthrough,
        history,
    }
}

/// Each name a target lists in `behind:` is a target of a kind that stands in front
/// of another, in any file.
fn check_fronts(targets: &[Target], check: &mut Checker) {
    let kind_of = |name: &str| {
        targets
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.kind.entry())
    };
    let fronting: Vec<&str> = KINDS.iter().filter(|k| k.fronts).map(|k| k.name).collect();
    for target in targets {
        for name in target.kind.behind() {
            let problem = match kind_of(name) {
                Some(entry) if entry.fronts => continue,
                Some(entry) => format!("`{name}` is a {} target", entry.name),
                None => format!("there is no target `{name}`"),
            };
            check.problem(
                "targets",
                format!(
                    "target `{}`: behind: {problem}: name {} targets in front of it",
                    target.name,
                    fronting.join(" or ")
                ),
            );
        }
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

/// The global settings a target inherits unless it sets its own.
struct Defaults {
    interval: Duration,
    timeout: Duration,
    max_series: usize,
    top_sessions: usize,
}

fn validate_target(
    raw: RawTarget,
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
    let entry = KINDS
        .iter()
        .find(|entry| entry.name == raw.kind)
        .expect("the parser accepts registered kinds only");
    let mut input = KindInput {
        key,
        settings: raw.settings,
        base_dir,
        env,
        global,
        collect_timeout: timeout,
        check,
    };
    input.refuse_foreign_keys(entry);
    let kind = (entry.validate)(&mut input);
    Target {
        name: raw.name,
        labels: raw.labels.into_iter().collect(),
        collect_interval: interval,
        collect_timeout: timeout,
        max_series_per_dimension: max_series,
        history_sessions: None,
        history_sql_text: 0,
        kind,
    }
}

/// What a kind's validation reads: its keys as written, and what they may depend on
/// (the file's directory for relative paths, `${VAR}` lookups, the global defaults,
/// the target's collect timeout). Problems are reported by the kind's key.
pub(crate) struct KindInput<'a> {
    /// `targets[i]`: problems are placed on `targets[i].<key>`.
    key: &'a str,
    /// The keys not read yet.
    settings: serde_yaml::Mapping,
    base_dir: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
    global: &'a Defaults,
    collect_timeout: Duration,
    check: &'a mut Checker,
}

impl KindInput<'_> {
    /// A problem with `field` of this target (`tenants[1]`, `filter.min_time`).
    fn problem(&mut self, field: &str, message: impl Into<String>) {
        self.check
            .problem(&format!("{}.{field}", self.key), message);
    }

    /// Reports, and drops, every key that belongs to other kinds only.
    fn refuse_foreign_keys(&mut self, kind: &KindEntry) {
        let accepted = (kind.keys)();
        let foreign: Vec<String> = self
            .settings
            .keys()
            .filter_map(|key| key.as_str())
            .filter(|key| !accepted.contains(key))
            .map(str::to_string)
            .collect();
        for key in foreign {
            self.settings.remove(key.as_str());
            let owners = keys::kinds_accepting(&key);
            let owners = match owners.as_slice() {
                [one] => format!("kind {one}"),
                [many @ .., last] => format!("kinds {} and {last}", many.join(", ")),
                [] => "no kind".to_string(),
            };
            self.problem(
                &key,
                format!(
                    "applies to {owners} only, not to a {} target{}: remove it",
                    kind.name, kind.foreign_key_hint
                ),
            );
        }
    }

    /// Takes the keys of `T` out of the unread ones and deserializes them. A key of
    /// the wrong type is a problem on that key (with serde's message) and is left
    /// out, so the other keys are still read and checked.
    fn read<T: for<'de> Deserialize<'de> + Default>(&mut self) -> T {
        let fields = fields_of::<T>();
        let mut mine = serde_yaml::Mapping::new();
        for field in fields {
            if let Some(value) = self.settings.remove(*field) {
                mine.insert(serde_yaml::Value::String(field.to_string()), value);
            }
        }
        // Each round drops the key that failed: at most one round per key.
        for _ in 0..=fields.len() {
            match keys::settings_of(mine.clone()) {
                Ok(settings) => return settings,
                Err((Some(path), message)) => {
                    self.problem(&path, message);
                    let key = path.split(['.', '[']).next().unwrap_or_default();
                    if mine.remove(key).is_none() {
                        break;
                    }
                }
                Err((None, message)) => {
                    self.problem(fields.first().copied().unwrap_or("kind"), message);
                    break;
                }
            }
        }
        T::default()
    }

    /// Replaces `${NAME}` in `text` with the environment variable's value.
    fn expand_env(&self, text: &str) -> Result<Secret, String> {
        expand_env(text, self.env)
    }
}

/// The problem with a `top_sessions` above [`MAX_TOP_SESSIONS`].
fn top_sessions_problem(n: usize) -> String {
    format!("{n} is more than {MAX_TOP_SESSIONS}: keep it small (each rank is a series that churns), and list sessions through the passthrough API")
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

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
