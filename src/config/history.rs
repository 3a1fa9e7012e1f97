//! `history:`, the session history's settings: where its store lives, how long and how
//! large it may grow, and what a cycle keeps. Without the key nothing is recorded.

use super::duration::format_duration;
use super::Checker;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long cycles are kept by default: a day, what an on-call person looks back on.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// The store's size bound by default.
pub const DEFAULT_MAX_SIZE: u64 = 1 << 30;
/// Sessions kept per tenant and cycle by default.
pub const DEFAULT_MAX_SESSIONS: usize = 1000;
/// Characters of SQL text kept by default.
pub const DEFAULT_SQL_TEXT_MAX: usize = 1024;
/// The most sessions per tenant and cycle, and characters of SQL text, a cycle may
/// carry to the store.
const MAX_MAX_SESSIONS: usize = 100_000;
const MAX_SQL_TEXT: usize = 65_536;
/// The smallest store worth keeping: below it a single busy cycle would not fit.
const MIN_MAX_SIZE: u64 = 1 << 20;

/// The session history, when on.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// The store's file (its directory is made when missing).
    pub path: PathBuf,
    /// Cycles older than this go.
    pub retention: Duration,
    /// The oldest cycles go once the store's pages take more than this.
    pub max_size: u64,
    /// Sessions kept per tenant and cycle, blockers and the longest first.
    pub max_sessions: usize,
    /// Characters of a statement's text kept (0: none).
    pub sql_text_max: usize,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHistory {
    path: Option<String>,
    retention: Option<String>,
    max_size: Option<serde_yaml::Value>,
    max_sessions: Option<usize>,
    sql_text_max: Option<usize>,
}

/// Validates `history:`; a relative path is taken from the config file's directory.
pub(super) fn validate_history(
    raw: Option<RawHistory>,
    base_dir: &Path,
    check: &mut Checker,
) -> Option<History> {
    let raw = raw?;
    let path = match raw.path.as_deref().map(str::trim) {
        Some(path) if !path.is_empty() => base_dir.join(path),
        _ => {
            check.problem(
                "history.path",
                "missing: name the store's file, e.g. /var/lib/session-exporter/history.db \
                 (remove `history:` to record nothing)",
            );
            PathBuf::new()
        }
    };
    let retention = check.duration(
        "history.retention",
        raw.retention.as_deref(),
        DEFAULT_RETENTION,
    );
    if retention < Duration::from_secs(60) {
        check.problem(
            "history.retention",
            format!(
                "{} is shorter than a minute: keep at least the last few cycles",
                format_duration(retention)
            ),
        );
    }
    let max_size = match &raw.max_size {
        None => DEFAULT_MAX_SIZE,
        Some(value) => match parse_size(value) {
            Ok(size) if size >= MIN_MAX_SIZE => size,
            Ok(size) => {
                check.problem(
                    "history.max_size",
                    format!("{size} bytes is less than 1MiB: a busy cycle alone would not fit"),
                );
                DEFAULT_MAX_SIZE
            }
            Err(message) => {
                check.problem("history.max_size", message);
                DEFAULT_MAX_SIZE
            }
        },
    };
    let max_sessions = raw.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS);
    if max_sessions == 0 {
        check.problem(
            "history.max_sessions",
            "0 would keep no session: remove `history:` to record nothing",
        );
    }
    // Bounds on what one cycle may hold in memory on its way to the store.
    if max_sessions > MAX_MAX_SESSIONS {
        check.problem(
            "history.max_sessions",
            format!("{max_sessions} is more than {MAX_MAX_SESSIONS} sessions per tenant and cycle"),
        );
    }
    let sql_text_max = raw.sql_text_max.unwrap_or(DEFAULT_SQL_TEXT_MAX);
    if sql_text_max > MAX_SQL_TEXT {
        check.problem(
            "history.sql_text_max",
            format!("{sql_text_max} is more than {MAX_SQL_TEXT} characters"),
        );
    }
    Some(History {
        path,
        retention,
        max_size,
        max_sessions,
        sql_text_max,
    })
}

/// A size in bytes: a whole number, or one with a unit (`KiB`, `MiB`, `GiB`, `TiB`,
/// or `KB`, `MB`, `GB`, `TB` in powers of ten).
fn parse_size(value: &serde_yaml::Value) -> Result<u64, String> {
    let hint = "write bytes, or a number and a unit, e.g. 512MiB or 1GiB";
    if let Some(n) = value.as_u64() {
        return Ok(n);
    }
    let Some(text) = value.as_str() else {
        return Err(format!("not a size: {hint}"));
    };
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let number: u64 = text[..digits]
        .parse()
        .map_err(|_| format!("`{text}` is not a size: {hint}"))?;
    let unit: u64 = match text[digits..].trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => return Err(format!("`{other}` is not a unit of size: {hint}")),
    };
    number
        .checked_mul(unit)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_bytes_or_a_number_and_a_unit() {
        let size = |yaml: &str| parse_size(&serde_yaml::from_str(yaml).unwrap());
        assert_eq!(size("1048576"), Ok(1 << 20));
        assert_eq!(size("512MiB"), Ok(512 << 20));
        assert_eq!(size("1 GiB"), Ok(1 << 30));
        assert_eq!(size("2GB"), Ok(2_000_000_000));
        assert!(size("1.5GiB").unwrap_err().contains("not a unit"));
        assert!(size("GiB").unwrap_err().contains("not a size"));
        assert!(size("[1]").unwrap_err().contains("not a size"));
        assert!(size("99999999999TiB").unwrap_err().contains("too large"));
    }
}
