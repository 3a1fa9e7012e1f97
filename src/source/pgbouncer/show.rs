//! The rows of the `SHOW` commands the cycle and the session API read, decoded by
//! column name ([`Columns`]): clients, pools, databases and the settings.
//!
//! Text is taken as PgBouncer writes it; a number that is not one is the answer's
//! error, naming the column, and fails the read that sent it (the last good limits
//! are kept; a failed cycle keeps nothing stale).

use super::console::{cell, Columns};
use crate::error::SourceError;
use crate::sql::bad_answer;
use std::collections::BTreeMap;

/// The admin console's own database: its clients are PgBouncer's, its pool has no
/// server connections.
pub const ADMIN_DB: &str = "pgbouncer";

/// One client connection (`SHOW CLIENTS`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Client {
    /// Its `ptr`, the address PgBouncer keeps it at: unique among the clients of the
    /// moment, and what a server connection's `link` names. Never shown: see
    /// [`Client::id`].
    pub ptr: u64,
    pub user: String,
    pub db: String,
    /// As PgBouncer names it: `active` (logged in: linked to a server connection or
    /// not), `waiting` (for one), `active_cancel_req`, … (see [`Client::command`]).
    pub state: String,
    pub addr: String,
    pub port: String,
    /// When it connected and last sent a request, in µs since 1970 (None where
    /// PgBouncer's time zone is not UTC, see [`utc_micros`]).
    pub connect_time: Option<i64>,
    pub request_time: Option<i64>,
    /// How long it has waited for a server connection, in seconds.
    pub wait: f64,
    /// The server connection it holds (its `ptr`).
    pub link: Option<u64>,
    /// Its `application_name`, without the suffix `application_name_add_host` adds.
    pub application: String,
}

impl Client {
    /// Its id as the metrics and the session API show it: its `ptr` through a
    /// hash keyed once per process, so that whoever reads them does not learn where
    /// PgBouncer keeps its memory; below 2^53, a number the page's JavaScript reads
    /// exactly. The same client has the same id for the process's life.
    pub fn id(&self) -> u64 {
        use std::hash::BuildHasher;
        static KEY: std::sync::OnceLock<foldhash::fast::RandomState> = std::sync::OnceLock::new();
        KEY.get_or_init(Default::default).hash_one(self.ptr) & ((1 << 53) - 1)
    }

    /// Linked to a server connection: running, or holding one between statements in
    /// session pooling.
    pub fn is_active(&self) -> bool {
        self.link.is_some()
    }

    /// What it is doing, as the `command` label and the API say it: `active` while
    /// linked to a server connection, `idle` when logged in without one (PgBouncer
    /// calls both `active`), `waiting` for one, and PgBouncer's other states as
    /// they are.
    pub fn command(&self) -> &str {
        match (self.state.as_str(), self.link.is_some()) {
            (_, true) => "active",
            ("active", false) => "idle",
            (state, false) => state,
        }
    }

    /// How long it has been in its state at `now` (µs since 1970): its wait while
    /// it waits, else since its last request; 0 when unknown.
    pub fn time(&self, now: i64) -> f64 {
        if self.state == "waiting" {
            return self.wait;
        }
        self.request_time
            .or(self.connect_time)
            .map_or(0.0, |t| (now.saturating_sub(t) as f64 / 1e6).max(0.0))
    }
}

/// Decodes `SHOW CLIENTS` rows.
#[derive(Debug, Default)]
pub struct ClientRows(Columns<12>);

impl ClientRows {
    pub fn decode(&mut self, names: &[String], row: &[Option<&str>]) -> Client {
        let [ptr, user, db, state, addr, port, connect, request, wait, wait_us, link, app] =
            self.0.resolve(
                names,
                [
                    "ptr",
                    "user",
                    "database",
                    "state",
                    "addr",
                    "port",
                    "connect_time",
                    "request_time",
                    "wait",
                    "wait_us",
                    "link",
                    "application_name",
                ],
            );
        let text = |at| cell(row, at).unwrap_or("").to_string();
        let whole = |at| cell(row, at).and_then(|v| v.trim().parse::<u64>().ok());
        Client {
            ptr: cell(row, ptr).and_then(pointer).unwrap_or(0),
            user: text(user),
            db: text(db),
            state: text(state),
            addr: text(addr),
            port: text(port),
            connect_time: cell(row, connect).and_then(utc_micros),
            request_time: cell(row, request).and_then(utc_micros),
            wait: whole(wait).unwrap_or(0) as f64 + whole(wait_us).unwrap_or(0) as f64 / 1e6,
            link: cell(row, link).and_then(pointer),
            application: without_added_host(cell(row, app).unwrap_or("")).to_string(),
        }
    }
}

/// The states of a pool's server connections, as `SHOW POOLS` counts them
/// (`sv_<state>`), in the order they are exported.
pub const SERVER_STATES: [&str; 5] = ["active", "idle", "used", "tested", "login"];

/// One pool (`SHOW POOLS`): a database and user's clients and server connections.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pool {
    pub db: String,
    pub user: String,
    pub active_clients: u64,
    pub waiting_clients: u64,
    /// Server connections by [`SERVER_STATES`].
    pub servers: [u64; 5],
    /// How long its oldest waiting client has waited, in seconds.
    pub max_wait: f64,
    pub mode: String,
}

/// Decodes `SHOW POOLS` rows.
#[derive(Debug, Default)]
pub struct PoolRows(Columns<12>);

impl PoolRows {
    pub fn decode(&mut self, names: &[String], row: &[Option<&str>]) -> Result<Pool, SourceError> {
        const WANTED: [&str; 12] = [
            "database",
            "user",
            "cl_active",
            "cl_waiting",
            "sv_active",
            "sv_idle",
            "sv_used",
            "sv_tested",
            "sv_login",
            "maxwait",
            "maxwait_us",
            "pool_mode",
        ];
        let at = self.0.resolve(names, WANTED);
        let n = |i: usize| count(cell(row, at[i]), WANTED[i]);
        Ok(Pool {
            db: cell(row, at[0]).unwrap_or("").to_string(),
            user: cell(row, at[1]).unwrap_or("").to_string(),
            active_clients: n(2)?,
            waiting_clients: n(3)?,
            servers: [n(4)?, n(5)?, n(6)?, n(7)?, n(8)?],
            max_wait: n(9)? as f64 + n(10)? as f64 / 1e6,
            mode: cell(row, at[11]).unwrap_or("").to_string(),
        })
    }
}

/// PgBouncer's limits: `SHOW CONFIG`'s and each database's of `SHOW DATABASES`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// `max_client_conn`: how many clients it accepts.
    pub max_client_conn: Option<u64>,
    /// `default_pool_size`, each database's own `pool_size` when set.
    pub default_pool_size: Option<u64>,
    /// Per database: its own pool size, if set.
    pub dbs: BTreeMap<String, Option<u64>>,
}

impl Limits {
    /// A `SHOW CONFIG` row (`key`, `value`, …).
    pub fn add_setting(
        &mut self,
        names: &[String],
        row: &[Option<&str>],
    ) -> Result<(), SourceError> {
        let at = |name: &str| names.iter().position(|n| n == name);
        let (Some(key), value) = (cell(row, at("key")), cell(row, at("value"))) else {
            return Ok(());
        };
        let slot = match key {
            "max_client_conn" => &mut self.max_client_conn,
            "default_pool_size" => &mut self.default_pool_size,
            _ => return Ok(()),
        };
        *slot = Some(count(value, key)?).filter(|&n| n > 0 || key == "max_client_conn");
        Ok(())
    }

    /// A `SHOW DATABASES` row: its `name` and `pool_size` (0 is none). The admin
    /// console's database is not a pool of server connections.
    pub fn add_database(
        &mut self,
        names: &[String],
        row: &[Option<&str>],
    ) -> Result<(), SourceError> {
        let at = |name: &str| names.iter().position(|n| n == name);
        let Some(name) = cell(row, at("name")).filter(|n| *n != ADMIN_DB) else {
            return Ok(());
        };
        let pool_size = count(cell(row, at("pool_size")), "pool_size")?;
        self.dbs
            .insert(name.to_string(), Some(pool_size).filter(|&n| n > 0));
        Ok(())
    }

    /// The size of database `db`'s pools.
    pub fn pool_size(&self, db: &str) -> Option<u64> {
        self.dbs
            .get(db)
            .copied()
            .flatten()
            .or(self.default_pool_size)
    }
}

/// A count; NULL (a column this version lacks) is 0.
fn count(value: Option<&str>, column: &str) -> Result<u64, SourceError> {
    match value {
        None => Ok(0),
        Some(text) => text
            .trim()
            .parse()
            .map_err(|_| bad_answer(format!("`{column}` is `{text}`, not a count"))),
    }
}

/// A `ptr` or `link`: hexadecimal, `0x…`; None when empty.
pub fn pointer(text: &str) -> Option<u64> {
    let digits = text.trim().strip_prefix("0x").unwrap_or(text.trim());
    u64::from_str_radix(digits, 16).ok().filter(|&p| p != 0)
}

/// A time as PgBouncer writes it (`2026-12-07 23:52:19 UTC`, its local time zone's
/// abbreviation last), in µs since 1970; None unless the zone is UTC (a zone's
/// abbreviation does not say its offset).
pub fn utc_micros(text: &str) -> Option<i64> {
    let (time, zone) = text.trim().rsplit_once(' ')?;
    matches!(zone, "UTC" | "GMT" | "Z")
        .then(|| crate::sql::datetime_micros(time))
        .flatten()
}

/// `application_name` without what PgBouncer's `application_name_add_host` appends
/// (` - host:port`), so the application dimension stays bounded.
pub fn without_added_host(name: &str) -> &str {
    match name.rsplit_once(" - ") {
        Some((app, host))
            if host.rsplit_once(':').is_some_and(|(_, port)| {
                !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
            }) =>
        {
            app
        }
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(header: &str) -> Vec<String> {
        header.split('|').map(str::to_string).collect()
    }

    #[test]
    fn clients_are_read_by_column_name_whatever_the_order() {
        let header = names("type|user|database|state|addr|port|local_addr|local_port|connect_time|request_time|wait|wait_us|close_needed|ptr|link|remote_pid|tls|application_name");
        let row = [
            "C",
            "app",
            "shop",
            "waiting",
            "10.0.0.7",
            "40552",
            "127.0.0.1",
            "6432",
            "2026-12-07 23:52:19 UTC",
            "2026-12-07 23:52:20 UTC",
            "1",
            "434190",
            "0",
            "0x563c8e4ae960",
            "",
            "0",
            "",
            "web - 10.0.0.7:40552",
        ]
        .map(Some);
        let client = ClientRows::default().decode(&header, &row);
        assert_eq!(client.ptr, 0x563c8e4ae960);
        assert!(client.id() < 1 << 53 && client.id() != client.ptr);
        assert_eq!((client.user.as_str(), client.db.as_str()), ("app", "shop"));
        assert_eq!((client.wait, client.link), (1.43419, None));
        assert_eq!(client.application, "web");
        assert!(!client.is_active());
        assert_eq!(
            client.time(0),
            1.43419,
            "a waiting client's time is its wait"
        );
        // A later version with an `id` first: the same client.
        let later = names(&format!("id|{}", header.join("|")));
        let mut with_id = vec![Some("7")];
        with_id.extend(row);
        assert_eq!(ClientRows::default().decode(&later, &with_id), client);
        // An active one: linked; its time runs from its last request.
        let mut linked = row;
        linked[3] = Some("active");
        linked[14] = Some("0x563c8e4bb2e0");
        let active = ClientRows::default().decode(&header, &linked);
        assert!(active.is_active());
        let at = active.request_time.unwrap() + 2_500_000;
        assert_eq!(active.time(at), 2.5);
    }

    #[test]
    fn a_pool_with_a_count_that_is_not_one_is_a_bad_answer() {
        let header = names("database|user|cl_active|cl_waiting|sv_active|sv_idle|sv_used|sv_tested|sv_login|maxwait|maxwait_us|pool_mode");
        let row = [
            "shop", "app", "2", "4", "2", "0", "1", "0", "0", "3", "500000", "session",
        ]
        .map(Some);
        let pool = PoolRows::default().decode(&header, &row).unwrap();
        assert_eq!(
            (
                pool.active_clients,
                pool.waiting_clients,
                pool.servers,
                pool.max_wait
            ),
            (2, 4, [2, 0, 1, 0, 0], 3.5)
        );
        let mut bad = row;
        bad[3] = Some("many");
        let err = PoolRows::default().decode(&header, &bad).unwrap_err();
        assert!(err.to_string().contains("`cl_waiting` is `many`"), "{err}");
    }

    #[test]
    fn limits_come_from_the_settings_and_each_database() {
        let mut limits = Limits::default();
        let config = names("key|value|default|changeable");
        for row in [
            ["max_client_conn", "200", "100", "yes"],
            ["default_pool_size", "20", "20", "yes"],
            ["max_db_connections", "0", "0", "yes"],
            ["listen_port", "6432", "6432", "no"],
        ] {
            limits.add_setting(&config, &row.map(Some)).unwrap();
        }
        let dbs = names("name|host|port|database|force_user|pool_size|min_pool_size|reserve_pool|pool_mode|max_connections|current_connections|paused|disabled");
        for row in [
            "pgbouncer||6432|pgbouncer|pgbouncer|2|0|0|statement|0|0|0|0",
            "shop|127.0.0.1|5432|shop||2|0|0||10|0|0|0",
            "blog|127.0.0.1|5432|blog||0|0|0||0|0|0|0",
        ] {
            let row: Vec<Option<&str>> = row.split('|').map(Some).collect();
            limits.add_database(&dbs, &row).unwrap();
        }
        assert_eq!(limits.max_client_conn, Some(200));
        assert_eq!(
            (limits.pool_size("shop"), limits.pool_size("blog")),
            (Some(2), Some(20))
        );
        assert!(!limits.dbs.contains_key(ADMIN_DB));
    }

    #[test]
    fn the_added_host_is_cut_off_and_nothing_else() {
        assert_eq!(without_added_host("web - 10.0.0.7:40552"), "web");
        assert_eq!(without_added_host(" - [::1]:5"), "");
        assert_eq!(without_added_host("a - b"), "a - b");
        assert_eq!(without_added_host("psql"), "psql");
    }

    #[test]
    fn times_are_read_in_utc_only() {
        assert_eq!(utc_micros("1970-01-01 00:00:02 UTC"), Some(2_000_000));
        assert_eq!(utc_micros("1970-01-01 00:00:02 CET"), None);
        assert_eq!(utc_micros(""), None);
        assert_eq!(pointer("0x10"), Some(16));
        assert_eq!(pointer(""), None);
    }
}
