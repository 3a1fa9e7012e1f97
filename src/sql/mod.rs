//! The toolbox every SQL kind's cycle is built from; it names no kind.
//!
//! - [`Connection`] and [`read`]: one statement's rows handed to a closure as they
//!   arrive, over any driver (and over a unit test's fixed answers);
//! - [`Cell`] and the tolerant decoders of counts, seconds and labels, so every
//!   driver's answer means the same;
//! - [`RowContext`] and [`Rules`]: what a kind's rows mean where they do not say it;
//! - [`Grouping`]: one flat `GROUP BY` over a processlist, which more than one kind
//!   sends;
//! - [`PeriodicReads`]: the limits, deadlocks and samples read now and then;
//! - the conditions of a target's filters;
//! - [`conn`] and [`query`]: MySQL-protocol connections and statements.
//!
//! Which statements a cycle sends, when, and how their rows add up, is each kind's:
//! see `source/<kind>/`. Every query is sent over the text protocol (no prepared
//! statements: nothing is bound, and the binary protocol's strict integer/double
//! typing broke on `SUM`'s DECIMAL).

use crate::config::Filter;
use crate::error::{Reason, SourceError};
use crate::stats::{client_label, Aggregator, CollectParts, Keeping, NONE_LABEL};
pub mod conn;
mod counters;
mod grouping;
mod periodic;
pub mod query;
mod read;

pub use grouping::{add_group_row, decode_group, Grouping, GROUP_COLUMNS};
pub use periodic::{
    mysql_limits, PeriodicReads, PeriodicRows, EVENT_MARGIN_MICROS, MAX_EVENTS, PERIODIC_COLUMNS,
};
pub use read::{read, Connection, SqlError};

/// Leading comment on every statement, so a DBA reading the processlist or a slow log
/// sees who sent it.
pub const TAG: &str = concat!("/* session_exporter ", env!("CARGO_PKG_VERSION"), " */");

/// Stands, in a statement's text, for the list of the exporter's own session ids on
/// the server (`ID NOT IN (…)`): [`with_own_sessions`](query::with_own_sessions) writes them in just before the
/// statement is sent, so no statement counts or lists the exporter's connections.
pub const OWN_SESSIONS: &str = "CONNECTION_ID() /* own sessions */";

/// SQL for "HOST without its `:port`", mirroring [`crate::stats::host_without_port`]
/// so the database can group by client address instead of by connection.
pub fn host_without_port(column: &str) -> String {
    format!(
        "IF({column} REGEXP ':[0-9]+$', \
         LEFT({column}, CHAR_LENGTH({column}) - CHAR_LENGTH(SUBSTRING_INDEX({column}, ':', -1)) - 1), \
         {column})"
    )
}

/// Defaults and quirks for decoding one source's rows.
pub struct RowContext<'a> {
    pub tenant: &'a str,
    pub server: &'a str,
    /// OceanBase writes the *string* `NULL` in DB for sessions without a database.
    pub null_string_is_no_db: bool,
    /// How many top sessions and top blockers a tenant keeps.
    pub keep: usize,
    /// Which optional parts the statement reads.
    pub parts: CollectParts,
    /// What a group's key means ([`Grouping`]'s rows, OceanBase's sessions).
    pub rules: Rules,
    /// Whether only the tenants the rows list are kept (see
    /// [`Aggregator::listed_only`]): a cluster's statements read the processlist
    /// without a join to the tenants view.
    pub listed_only: bool,
    /// How sessions are kept for the session history ([`Aggregator::keep_sessions`]);
    /// None when the target records none.
    pub history: Option<Keeping>,
}

impl<'a> RowContext<'a> {
    /// The context of a count only (the session API's stats of a one-tenant target):
    /// `tenant` on `server`, no top sessions, no optional part, no history.
    pub fn counts_only(tenant: &'a str, server: &'a str) -> Self {
        RowContext {
            tenant,
            server,
            null_string_is_no_db: false,
            keep: 0,
            parts: crate::stats::CollectParts::NONE,
            rules: Rules::NONE,
            listed_only: false,
            history: None,
        }
    }
}

impl RowContext<'_> {
    /// An aggregator for this context's rows, with `tenants` present even without
    /// a row of theirs.
    pub fn aggregator(&self, tenants: &[&str]) -> Aggregator {
        let mut aggregator = Aggregator::new(self.keep, self.parts);
        if self.listed_only {
            aggregator = aggregator.listed_only();
        }
        if let Some(keeping) = &self.history {
            aggregator = aggregator.keep_sessions(keeping.clone());
        }
        for tenant in tenants {
            aggregator.add_tenant(tenant);
        }
        aggregator
    }
}

/// What the key of a [`Grouping`] row means on one kind: which groups are active,
/// in a transaction, waiting for a lock. The database groups by the raw columns and
/// these decide per group, so no expression is evaluated per session.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Whether sessions of this COMMAND and STATE are active.
    pub active: fn(command: &str, state: &str) -> bool,
    /// Whether this value of the transaction column means an open transaction.
    pub in_transaction: fn(transaction: &str) -> bool,
    /// Whether sessions of this transaction and STATE wait for a lock, and for how
    /// long: [`LockWait::Statement`] waits as long as the statement has run.
    pub lock_wait: fn(transaction: &str, state: &str) -> LockWait,
}

/// How a group waits for a lock (see [`Rules::lock_wait`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    No,
    /// A row lock: the wait is the row's lock-wait column.
    Row,
    /// A lock the statement's TIME measures (MySQL's metadata and table locks).
    Statement,
}

impl Rules {
    /// For the kinds that read nothing through [`Grouping`] (PostgreSQL): no group
    /// is active, in a transaction or waiting.
    pub const NONE: Rules = Rules {
        active: |_, _| false,
        in_transaction: |_| false,
        lock_wait: |_, _| LockWait::No,
    };
}

/// A database name as a label: `__none__` for NULL, empty, and OceanBase's string
/// `NULL`.
pub fn db_label<C: Cell>(db: C, ctx: &RowContext<'_>) -> String {
    match db.into_text() {
        None => NONE_LABEL.to_string(),
        Some(db) if db.is_empty() || (ctx.null_string_is_no_db && db == "NULL") => {
            NONE_LABEL.to_string()
        }
        Some(db) => db,
    }
}

/// A client address (the port already cut by the statement) as a label.
pub fn client_of<C: Cell>(client: C) -> String {
    client_label(client.into_text().unwrap_or_default())
}

/// ` AND …` conditions that apply `filter` to processlist columns named with
/// `prefix` (`"p."` or `""`). Names are quoted as string literals; config validation
/// refused backslashes and control characters, so doubling quotes is enough in every
/// SQL mode.
pub fn filter_conditions(filter: &Filter, prefix: &str) -> String {
    let mut sql = String::new();
    if let Some(min) = filter.min_time {
        sql.push_str(&format!(" AND {prefix}TIME >= {}", min.as_secs_f64()));
    }
    for (column, list) in [("USER", &filter.users), ("DB", &filter.databases)] {
        if let Some(allow) = &list.allow {
            sql.push_str(&format!(" AND {prefix}{column} IN ({})", quote_list(allow)));
        }
        if !list.deny.is_empty() {
            // NULL (no database) is not a denied name: keep it explicitly.
            sql.push_str(&format!(
                " AND ({prefix}{column} IS NULL OR {prefix}{column} NOT IN ({}))",
                quote_list(&list.deny)
            ));
        }
    }
    sql
}

/// A LIKE pattern for "contains `text`", with `!` as the escape character (the same
/// in every SQL mode, unlike a backslash): `%`, `_` and `!` match themselves.
pub fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '!') {
            pattern.push('!');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

fn quote_list(names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("'{}'", name.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn bad_answer(detail: String) -> SourceError {
    SourceError::new(
        Reason::Query,
        format!("unexpected answer from the server: {detail}"),
    )
}

/// One value of a row as a driver hands it over: MySQL's [`Value`](mysql_async::Value), or the text of
/// PostgreSQL's simple query protocol (`None` for NULL). Both are decoded by the same
/// rules, so every kind's answer means the same.
pub trait Cell {
    fn is_null(&self) -> bool;
    /// The value as text; NULL is None. Bytes that are not UTF-8 are replaced, not
    /// rejected: a user name with a stray byte must not make the whole target go dark.
    fn into_text(self) -> Option<String>;
    /// A number from any representation the servers use: integer, double, or a
    /// decimal string (`SUM` is DECIMAL on seekdb and MariaDB). NULL is None.
    fn into_number(self, column: &str) -> Result<Option<f64>, SourceError>;
}

impl Cell for Option<&str> {
    fn is_null(&self) -> bool {
        self.is_none()
    }

    fn into_text(self) -> Option<String> {
        self.map(str::to_string)
    }

    fn into_number(self, column: &str) -> Result<Option<f64>, SourceError> {
        self.map(|text| parse_number(text.as_bytes(), column))
            .transpose()
    }
}

/// A number written as text.
pub fn parse_number(bytes: &[u8], column: &str) -> Result<f64, SourceError> {
    // Counts, most of a large answer, are plain digits: summed without the float
    // parser (exact below 2^53, hence at most 15 digits).
    if (1..=15).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_digit) {
        return Ok(bytes.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')) as f64);
    }
    let text = String::from_utf8_lossy(bytes);
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .ok_or_else(|| bad_answer(format!("column {column} is `{text}`, not a number")))
}

/// A session count: a non-negative whole number; NULL counts as 0.
pub fn count(value: impl Cell, column: &str) -> Result<u64, SourceError> {
    match value.into_number(column)? {
        None => Ok(0),
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= u64::MAX as f64 => Ok(n as u64),
        Some(n) => Err(bad_answer(format!("column {column} is {n}, not a count"))),
    }
}

/// The text of column `i` of a row of PostgreSQL's simple query protocol. A value
/// that is not UTF-8 (a `SQL_ASCII` database keeps any bytes; PgBouncer keeps an
/// `application_name` as its client sent it) reads as U+FFFD: the driver's `get`
/// would panic on it, and one client must not stop a target's collection.
pub fn simple_text(row: &tokio_postgres::SimpleQueryRow, i: usize) -> Option<&str> {
    row.try_get(i).unwrap_or(Some("\u{FFFD}"))
}

/// A duration in seconds; NULL (no sessions) and negative values (clock skew) are 0.
pub fn seconds(value: impl Cell, column: &str) -> Result<f64, SourceError> {
    Ok(value.into_number(column)?.unwrap_or(0.0).max(0.0))
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]`, as the text protocol writes a DATETIME or a
/// TIMESTAMP, in microseconds since 1970-01-01 00:00:00 of the same time zone; None
/// for anything else. Only differences of two are used, both read in one session.
pub fn datetime_micros(text: &str) -> Option<i64> {
    let (date, time) = text.trim().split_once(' ')?;
    let mut date = date.splitn(3, '-').map(|n| n.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut clock = clock.splitn(3, ':').map(|n| n.parse::<i64>().ok());
    let (hour, minute, second) = (clock.next()??, clock.next()??, clock.next()??);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || fraction.len() > 6 {
        return None;
    }
    let micros = match fraction {
        "" => 0,
        digits => digits.parse::<i64>().ok()? * 10_i64.pow(6 - digits.len() as u32),
    };
    // Days from the civil date (H. Hinnant's algorithm), March-based years.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000_000 + second * 1_000_000 + micros)
}

/// The first `N - 1` fields of `text` split at `separator`, and the rest; None when
/// there are fewer than `N`.
pub fn fields<const N: usize>(text: &str, separator: char) -> Option<[&str; N]> {
    if !separator.is_ascii() {
        let mut fields = text.splitn(N, separator);
        let fields: [Option<&str>; N] = std::array::from_fn(|_| fields.next());
        return fields
            .iter()
            .all(Option::is_some)
            .then(|| fields.map(Option::unwrap_or_default));
    }
    // An ASCII separator is one byte that no other character contains, so the text
    // is cut at bytes: every row of a cycle's largest read is cut this way, and
    // `str::splitn`'s character searcher cost twice as much.
    let separator = separator as u8;
    let mut out = [""; N];
    let mut start = 0;
    for (i, field) in out.iter_mut().enumerate() {
        let rest = &text[start..];
        if i + 1 == N {
            *field = rest;
            break;
        }
        let end = rest.bytes().position(|b| b == separator)?;
        *field = &rest[..end];
        start += end + 1;
    }
    Some(out)
}

/// Rows as a test writes them, for the sources' "fixed rows in, exact statistics
/// out" tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::Connection;
    use crate::stats::Counts;
    use mysql_async::Value;
    use std::collections::BTreeMap;

    /// A text-protocol row written as its values between `|`, in the order of the
    /// statement's columns the test feeds it, `∅` for NULL: for the short rows of
    /// four or five columns. Wider rows are written by name (see [`named`]).
    pub fn row(text: &str) -> Vec<Value> {
        text.split('|')
            .map(|v| match v {
                "∅" => Value::NULL,
                v => Value::Bytes(v.as_bytes().to_vec()),
            })
            .collect()
    }

    /// The columns of [`super::decode_group`] (MySQL's grouped read), in order.
    const GROUP: [&str; super::GROUP_COLUMNS] = [
        "tenant",
        "server",
        "db",
        "user",
        "client",
        "command",
        "state",
        "transaction",
        "sessions",
        "time",
        "transaction_age",
        "lock_wait",
        "session",
        "application",
        "ids",
    ];

    /// A row of [`super::decode_group`] from its named values; every column not
    /// named is NULL, and a later value of a column replaces an earlier one.
    pub fn group(values: &[(&str, &str)]) -> Vec<Value> {
        named(&GROUP, values)
    }

    /// A row of `columns` from its named values (see [`group`]).
    pub fn named(columns: &[&str], values: &[(&str, &str)]) -> Vec<Value> {
        let mut row = vec![Value::NULL; columns.len()];
        for (name, value) in values {
            let at = columns
                .iter()
                .position(|column| column == name)
                .unwrap_or_else(|| panic!("no column `{name}` among {columns:?}"));
            row[at] = Value::Bytes(value.as_bytes().to_vec());
        }
        row
    }

    /// A connection with fixed answers, for a kind's cycle in a unit test: every
    /// statement sent is kept in `sent`, in order, and answered with the first answer
    /// still unused whose text it contains: rows, or a driver's failure (none: no
    /// rows). Each answer serves one statement, so a test scripts one cycle after
    /// another.
    #[derive(Debug, Default)]
    pub struct Scripted {
        answers: Vec<(String, Answer)>,
        pub sent: Vec<String>,
    }

    /// A scripted statement's answer: its rows, or the driver's failure.
    type Answer = Result<Vec<Vec<Value>>, DriverFailed>;

    /// What a [`Scripted`] connection fails with: the connection broke, the server
    /// refused the statement.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct DriverFailed(pub String);

    impl Scripted {
        /// Answers the next statement containing `text` with `rows`.
        pub fn answer(mut self, text: &str, rows: Vec<Vec<Value>>) -> Self {
            self.answers.push((text.to_string(), Ok(rows)));
            self
        }

        /// Fails the next statement containing `text` in the driver, before any row.
        pub fn fail(mut self, text: &str) -> Self {
            let failure = DriverFailed(format!("scripted failure of `{text}`"));
            self.answers.push((text.to_string(), Err(failure)));
            self
        }

        /// The statements sent so far, forgotten.
        pub fn take_sent(&mut self) -> Vec<String> {
            std::mem::take(&mut self.sent)
        }
    }

    impl Connection for Scripted {
        type Cell<'r> = Value;
        type Error = DriverFailed;

        fn rows<F>(
            &mut self,
            sql: &str,
            mut each: F,
        ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send
        where
            F: for<'r> FnMut(Vec<Value>) + Send,
        {
            self.sent.push(sql.to_string());
            let answer = match self.answers.iter().position(|(text, _)| sql.contains(text)) {
                Some(at) => self.answers.remove(at).1,
                None => Ok(Vec::new()),
            };
            std::future::ready(answer.map(|rows| {
                for row in rows {
                    each(row);
                }
            }))
        }
    }

    /// A context for decoding tests: every part on, NULL tenants and servers
    /// standing for `fallback-tenant` and `10.0.0.9`, OceanBase's string `NULL` for
    /// no database.
    pub const CONTEXT: super::RowContext<'static> = super::RowContext {
        tenant: "fallback-tenant",
        server: "10.0.0.9",
        null_string_is_no_db: true,
        keep: 5,
        parts: crate::stats::CollectParts::ALL,
        rules: super::Rules::NONE,
        listed_only: false,
        history: None,
    };

    /// Runs a cycle on a [`Scripted`] connection, whose answers are ready at once.
    pub fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(future)
    }

    /// A dimension as (value, (sessions, active)) pairs, in label order.
    pub fn pairs(values: &BTreeMap<String, Counts>) -> Vec<(&str, (u64, u64))> {
        values
            .iter()
            .map(|(k, v)| (k.as_str(), (v.sessions, v.active)))
            .collect()
    }

    /// A dimension's values with sessions idle in a transaction, and how many.
    pub fn idle(values: &BTreeMap<String, Counts>) -> Vec<(&str, u64)> {
        values
            .iter()
            .filter(|(_, v)| v.idle_in_transaction > 0)
            .map(|(k, v)| (k.as_str(), v.idle_in_transaction))
            .collect()
    }

    pub fn counts(sessions: u64, active: u64) -> (u64, u64) {
        (sessions, active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NameList;
    use std::time::Duration;

    /// Cut at bytes, the fields are what `str::splitn` gives, for any text: with
    /// the separator at either end, doubled, missing, beside multi-byte characters.
    #[test]
    fn fields_are_splitn_s() {
        fn by_splitn<const N: usize>(text: &str, separator: char) -> Option<[&str; N]> {
            let all: Vec<&str> = text.splitn(N, separator).collect();
            <[&str; N]>::try_from(all).ok()
        }
        proptest::proptest!(|(text in "[a,é\\x00]{0,12}")| {
            proptest::prop_assert_eq!(fields::<3>(&text, ','), by_splitn::<3>(&text, ','));
            proptest::prop_assert_eq!(fields::<1>(&text, '\0'), by_splitn::<1>(&text, '\0'));
            proptest::prop_assert_eq!(fields::<4>(&text, '\0'), by_splitn::<4>(&text, '\0'));
            proptest::prop_assert_eq!(fields::<2>(&text, 'é'), by_splitn::<2>(&text, 'é'));
            proptest::prop_assert_eq!(fields::<0>(&text, ','), Some([]));
        });
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("ro"), "%ro%");
        assert_eq!(contains_pattern("50%_!x"), "%50!%!_!!x%");
        assert_eq!(contains_pattern("'\\\0"), "%'\\\0%");
    }

    #[test]
    fn filters_become_quoted_conditions() {
        assert_eq!(filter_conditions(&Filter::default(), "p."), "");
        let filter = Filter {
            min_time: Some(Duration::from_millis(1500)),
            users: NameList {
                allow: None,
                deny: vec!["repl".into(), "o'brien".into()],
            },
            databases: NameList {
                allow: Some(vec!["app".into()]),
                deny: vec![],
            },
        };
        assert_eq!(
            filter_conditions(&filter, "p."),
            " AND p.TIME >= 1.5 AND (p.USER IS NULL OR p.USER NOT IN ('repl', 'o''brien')) AND p.DB IN ('app')"
        );
    }
    #[test]
    fn datetimes_are_read_to_the_microsecond() {
        let at = |text| datetime_micros(text);
        assert_eq!(at("1970-01-01 00:00:00"), Some(0));
        assert_eq!(at("1970-01-02 00:00:01.5"), Some(86_401_500_000));
        assert_eq!(at("2000-03-01 00:00:00"), Some(951_868_800_000_000));
        assert_eq!(
            at("2026-12-03 17:00:00.000001").zip(at("2026-12-03 16:58:20")),
            Some((1_796_317_200_000_001, 1_796_317_100_000_000))
        );
        for bad in [
            "",
            "2026-12-03",
            "2026-13-01 00:00:00",
            "x-1-1 0:0:0",
            "2026-01-01 00:00:00.1234567",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }
}
