//! The history's SQLite store: its schema, a cycle's write, the bounds, and the reads.
//!
//! A sample must cost little on disk (issue 40: at most 64 bytes a recorded session),
//! so a sample row holds integers only: what repeats from cycle to cycle is stored
//! once and referred to. A session's identity (tenant, id, server, user, db, client,
//! application) is a row of `sessions`; a statement (its id and text) a row of
//! `statements`; every other word (command, state, wait class and event) a row of
//! `words`. Times are whole milliseconds. `samples` is keyed by (cycle, session)
//! without a rowid, so the key is the row's place and no index is kept beside it.
//!
//! Each cycle is one transaction: after a `kill -9` a cycle reads back whole or not
//! at all (WAL journal). The schema is documented in docs/history.md; its version is
//! in `meta`. A store of version 1 is brought to this one when opened for writing;
//! one of any other version is not read (the recorder moves it aside).

use super::{unix_millis, CycleSample};
use crate::stats::Word;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The schema's version, in `meta`; a store of another is not read. Version 1
/// (without `last_at`) is brought to it when opened for writing.
pub const SCHEMA_VERSION: &str = "2";

/// How stale a row's `last_at` may be: a cycle that uses a word, statement or
/// session writes its time only when the stored one is older than this. The
/// cycles' write then updates a row about once this long, not once a cycle, and
/// pruning deletes what no cycle left refers to by reading `last_at`, not the
/// samples: a row whose `last_at` is older than the oldest cycle left by more than
/// this is used by none of them.
pub const LAST_USE_SLACK_MS: i64 = 10 * 60 * 1000;

/// The tables (docs/history.md describes each column).
const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tenants (
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL,
    name TEXT NOT NULL,
    UNIQUE (target, name)
);
CREATE TABLE cycles (
    id INTEGER PRIMARY KEY,
    tenant INTEGER NOT NULL REFERENCES tenants (id),
    at INTEGER NOT NULL,
    sessions INTEGER NOT NULL,
    active INTEGER NOT NULL,
    lock_waiting INTEGER NOT NULL,
    idle_in_transaction INTEGER NOT NULL,
    longest_active_ms INTEGER NOT NULL,
    kept INTEGER NOT NULL,
    truncated INTEGER NOT NULL
);
CREATE INDEX cycles_by_tenant ON cycles (tenant, at);
CREATE INDEX cycles_by_time ON cycles (at);
CREATE TABLE cycle_waits (
    cycle INTEGER NOT NULL,
    class INTEGER NOT NULL REFERENCES words (id),
    sessions INTEGER NOT NULL,
    PRIMARY KEY (cycle, class)
) WITHOUT ROWID;
CREATE TABLE cycle_statements (
    cycle INTEGER NOT NULL,
    statement INTEGER NOT NULL REFERENCES statements (id),
    sessions INTEGER NOT NULL,
    PRIMARY KEY (cycle, statement)
) WITHOUT ROWID;
CREATE TABLE words (
    id INTEGER PRIMARY KEY,
    text TEXT NOT NULL UNIQUE,
    last_at INTEGER NOT NULL
);
CREATE INDEX words_by_last_use ON words (last_at);
CREATE TABLE statements (
    id INTEGER PRIMARY KEY,
    sql_id TEXT NOT NULL,
    text TEXT NOT NULL,
    last_at INTEGER NOT NULL,
    UNIQUE (sql_id, text)
);
CREATE INDEX statements_by_last_use ON statements (last_at);
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    tenant INTEGER NOT NULL REFERENCES tenants (id),
    session_id INTEGER NOT NULL,
    server INTEGER NOT NULL REFERENCES words (id),
    user INTEGER NOT NULL REFERENCES words (id),
    db INTEGER NOT NULL REFERENCES words (id),
    client INTEGER NOT NULL REFERENCES words (id),
    application INTEGER NOT NULL REFERENCES words (id),
    last_at INTEGER NOT NULL,
    UNIQUE (tenant, session_id, server, user, db, client, application)
);
CREATE INDEX sessions_by_last_use ON sessions (last_at);
CREATE TABLE samples (
    cycle INTEGER NOT NULL,
    session INTEGER NOT NULL REFERENCES sessions (id),
    command INTEGER NOT NULL REFERENCES words (id),
    state INTEGER NOT NULL REFERENCES words (id),
    active INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    transaction_age_ms INTEGER,
    lock_wait_ms INTEGER,
    blocked_by INTEGER,
    waiters INTEGER NOT NULL,
    wait_class INTEGER NOT NULL REFERENCES words (id),
    wait_event INTEGER NOT NULL REFERENCES words (id),
    statement INTEGER REFERENCES statements (id),
    PRIMARY KEY (cycle, session)
) WITHOUT ROWID;
";

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: schema version {found}, this build reads {SCHEMA_VERSION}")]
    Version { path: PathBuf, found: String },
}

impl StoreError {
    /// Whether the store's file is not a store this build can read (corrupt, another
    /// version): it is then moved aside, not retried.
    pub fn unreadable(&self) -> bool {
        match self {
            StoreError::Version { .. } => true,
            StoreError::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
            ),
        }
    }

    /// Whether the disk (or the file system's quota) is full.
    pub fn disk_full(&self) -> bool {
        matches!(self, StoreError::Sqlite { source, .. }
            if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull))
    }
}

/// Remembers the ids of what was stored already, so a cycle of repeated sessions
/// and statements costs one lookup each, not a statement each. Each map is cleared
/// when large: a miss costs one upsert, never a wrong id. An entry's `last_at` is
/// never later than the row's (a row's only grows), which is what lets pruning
/// forget exactly the entries whose rows it may have deleted.
///
/// A kept session's text is a [`Word`] its target shares from cycle to cycle, so
/// it is looked up by the word's identity: a repeated value is hashed as one
/// number, its text neither hashed nor compared. A map holds the words it is keyed
/// by, so no other word takes their identity while they are in it.
#[derive(Debug, Default)]
struct Ids {
    /// By target, then tenant: looked up without copying either name.
    tenants: HashMap<String, HashMap<String, i64, Fold>, Fold>,
    /// Words by identity, and text that comes as a string (the wait classes).
    words: HashMap<usize, (Word, Used), Fold>,
    texts: HashMap<String, Used, Fold>,
    /// By the identities of (SQL id, text), for the `sql_text_max` they were cut at.
    statements: HashMap<(usize, usize), (Word, Word, Used), Fold>,
    statement_bytes: usize,
    sql_text_max: usize,
    sessions: HashMap<[i64; 7], Used, Fold>,
}

/// A row's id, and the `last_at` stored for it.
#[derive(Debug, Clone, Copy)]
struct Used {
    id: i64,
    last_at: i64,
}

type Fold = foldhash::fast::FixedState;

impl Ids {
    /// Entries a map holds at most.
    const MAX: usize = 200_000;
    /// Bytes of statements' text the cache holds alive at most: texts differ by
    /// their literals, so a busy server brings new ones every cycle.
    const MAX_STATEMENT_BYTES: usize = 8 << 20;

    /// Clears what has grown past its bound, and the statements if they were cut
    /// at another length.
    fn bound(&mut self, sql_text_max: usize) {
        if self.words.len() + self.texts.len() > Self::MAX {
            self.words.clear();
            self.texts.clear();
        }
        if self.statements.len() > Self::MAX
            || self.statement_bytes > Self::MAX_STATEMENT_BYTES
            || self.sql_text_max != sql_text_max
        {
            self.statements.clear();
            self.statement_bytes = 0;
            self.sql_text_max = sql_text_max;
        }
        if self.sessions.len() > Self::MAX {
            self.sessions.clear();
        }
    }

    /// Forgets the rows that pruning may have deleted: those whose `last_at` is
    /// older than `cut`.
    fn forget_older(&mut self, cut: i64) {
        self.words.retain(|_, (_, used)| used.last_at >= cut);
        self.texts.retain(|_, used| used.last_at >= cut);
        let mut bytes = 0;
        self.statements.retain(|_, (sql_id, text, used)| {
            let keep = used.last_at >= cut;
            if keep {
                bytes += sql_id.len() + text.len();
            }
            keep
        });
        self.statement_bytes = bytes;
        self.sessions.retain(|_, used| used.last_at >= cut);
    }
}

/// The tables whose rows pruning deletes once no cycle uses them.
#[derive(Debug, Clone, Copy)]
enum Table {
    Words,
    Statements,
    Sessions,
}

impl Table {
    /// Moves a row's `last_at` forward only: cycles of several targets, or a clock
    /// stepped back, may come with an earlier time than the row's.
    fn touch_sql(self) -> &'static str {
        match self {
            Table::Words => {
                "UPDATE words SET last_at = MAX(last_at, ?1) WHERE id = ?2 RETURNING last_at"
            }
            Table::Statements => {
                "UPDATE statements SET last_at = MAX(last_at, ?1) WHERE id = ?2 RETURNING last_at"
            }
            Table::Sessions => {
                "UPDATE sessions SET last_at = MAX(last_at, ?1) WHERE id = ?2 RETURNING last_at"
            }
        }
    }
}

/// The id of a cached row used by the cycle at `at`, whose `last_at` is written
/// again once older than [`LAST_USE_SLACK_MS`]; None if the row is gone (the
/// caller stores it anew).
fn reuse(
    tx: &rusqlite::Transaction<'_>,
    table: Table,
    used: &mut Used,
    at: i64,
) -> rusqlite::Result<Option<i64>> {
    if at - used.last_at > LAST_USE_SLACK_MS {
        let stored: Option<i64> = tx
            .prepare_cached(table.touch_sql())?
            .query_row(params![at, used.id], |r| r.get(0))
            .optional()?;
        match stored {
            Some(last_at) => used.last_at = last_at,
            None => return Ok(None),
        }
    }
    Ok(Some(used.id))
}

/// Brings a store of schema version 1 to this one: every word, statement and
/// session counts as used by its newest cycle (or now, if later), so pruning
/// keeps them until the cycles of then have gone.
fn migrate_from_1(conn: &Connection) -> rusqlite::Result<()> {
    let newest: Option<i64> = conn.query_row("SELECT MAX(at) FROM cycles", [], |r| r.get(0))?;
    let now = unix_millis(std::time::SystemTime::now()).max(newest.unwrap_or(0));
    conn.execute_batch(&format!(
        "BEGIN;
         ALTER TABLE words ADD COLUMN last_at INTEGER NOT NULL DEFAULT {now};
         ALTER TABLE statements ADD COLUMN last_at INTEGER NOT NULL DEFAULT {now};
         ALTER TABLE sessions ADD COLUMN last_at INTEGER NOT NULL DEFAULT {now};
         CREATE INDEX words_by_last_use ON words (last_at);
         CREATE INDEX statements_by_last_use ON statements (last_at);
         CREATE INDEX sessions_by_last_use ON sessions (last_at);
         UPDATE meta SET value = '{SCHEMA_VERSION}' WHERE key = 'schema_version';
         COMMIT;"
    ))
}

/// An open store.
pub struct Store {
    pub(super) conn: Connection,
    path: PathBuf,
    ids: Ids,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens the store at `path`, creating it (and its schema) when new.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let wrap = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(wrap)?;
        // Reading the header and the schema is what finds a file that is no
        // database, or a corrupt one. auto_vacuum first: it takes effect only on a
        // database whose header nothing has written yet (journal_mode = WAL does).
        // A checkpoint every 8,192 pages (32 MiB of WAL), not 1,000: a cycle of many
        // tenants dirties the same pages of the cycles' index each time, and a
        // checkpoint copies a page once however many cycles changed it (at
        // scenario 3's scale, 2.1 -> 1.2 MiB written a cycle).
        conn.execute_batch(
            "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF; \
             PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 8192;",
        )
        .map_err(wrap)?;
        let tables: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(wrap)?;
        if tables == 0 {
            conn.execute_batch(&format!(
                "BEGIN; {SCHEMA} INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}'); COMMIT;"
            ))
            .map_err(wrap)?;
        } else {
            // Only a store without `meta` is of another kind; any other error (busy,
            // an I/O error) is not a reason to move a store aside.
            let meta: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                    [],
                    |r| r.get(0),
                )
                .map_err(wrap)?;
            let found: Option<String> = match meta {
                0 => None,
                _ => conn
                    .query_row(
                        "SELECT value FROM meta WHERE key = 'schema_version'",
                        [],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(wrap)?,
            };
            let old = found.as_deref() == Some("1");
            if !old && found.as_deref() != Some(SCHEMA_VERSION) {
                return Err(StoreError::Version {
                    path: path.to_path_buf(),
                    found: found.unwrap_or_else(|| "none".to_string()),
                });
            }
            let check: String = conn
                .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
                .map_err(wrap)?;
            if check != "ok" {
                return Err(StoreError::Sqlite {
                    path: path.to_path_buf(),
                    source: rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                        Some(check),
                    ),
                });
            }
            if old {
                migrate_from_1(&conn).map_err(wrap)?;
            }
        }
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            ids: Ids::default(),
        })
    }

    /// A store opened for reading (see `read.rs`): nothing is written through it.
    pub(super) fn reading(conn: Connection, path: &Path) -> Store {
        Store {
            conn,
            path: path.to_path_buf(),
            ids: Ids::default(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn wrap(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes one cycle of a target, all its tenants in one transaction. The SQL
    /// text is cut at `sql_text_max` characters (0 keeps none).
    pub fn record(&mut self, sample: &CycleSample, sql_text_max: usize) -> Result<(), StoreError> {
        self.ids.bound(sql_text_max);
        let tx = self
            .conn
            .transaction()
            .map_err(|e| wrap_path(&self.path, e))?;
        let result = write_cycle(&tx, &mut self.ids, sample, sql_text_max);
        match result.and_then(|()| tx.commit()) {
            Ok(()) => Ok(()),
            Err(e) => {
                // The ids learnt in a transaction rolled back may not exist.
                self.ids = Ids::default();
                Err(self.wrap(e))
            }
        }
    }

    /// Bytes the store takes on disk: its file and its write-ahead log.
    pub fn bytes(&self) -> u64 {
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        size(&self.path) + size(&wal_path(&self.path))
    }

    /// Bytes its pages hold (the file less its free pages).
    fn used_bytes(&self) -> Result<u64, StoreError> {
        let pragma = |name: &str| -> Result<i64, StoreError> {
            self.conn
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .map_err(|e| self.wrap(e))
        };
        let pages = pragma("page_count")? - pragma("freelist_count")?;
        Ok((pages.max(0) * pragma("page_size")?) as u64)
    }

    /// The time of the oldest cycle kept, in Unix milliseconds.
    pub fn oldest(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row("SELECT MIN(at) FROM cycles", [], |r| r.get(0))
            .map_err(|e| self.wrap(e))
    }

    /// Deletes the cycles older than `before_ms`, then the oldest ones until the
    /// pages in use fit `max_bytes` (a tenth of it left free, so a bound is not met
    /// again at the next cycle), and what no sample refers to any more. Returns how
    /// many cycles went.
    pub fn prune(&mut self, before_ms: i64, max_bytes: u64) -> Result<u64, StoreError> {
        let mut gone = self.delete_cycles_before(before_ms)?;
        for _ in 0..64 {
            if self.used_bytes()? <= max_bytes {
                break;
            }
            // The oldest tenth of what is kept, at least one cycle.
            let (count, _): (i64, Option<i64>) = self
                .conn
                .query_row("SELECT COUNT(*), MIN(id) FROM cycles", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .map_err(|e| self.wrap(e))?;
            if count == 0 {
                break;
            }
            let cut: Option<i64> = self
                .conn
                .query_row(
                    "SELECT at FROM cycles ORDER BY at LIMIT 1 OFFSET ?1",
                    [(count / 10).max(1) - 1],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.wrap(e))?;
            let newest: Option<i64> = self
                .conn
                .query_row("SELECT MAX(at) FROM cycles", [], |r| r.get(0))
                .map_err(|e| self.wrap(e))?;
            // The newest cycle stays, whatever the bound: a store of one cycle is
            // what the history needs at least.
            let Some(cut) = cut.zip(newest).map(|(cut, newest)| cut.min(newest - 1)) else {
                break;
            };
            let deleted = self.delete_cycles_before(cut + 1)?;
            if deleted == 0 {
                break;
            }
            gone += deleted;
            self.conn
                .execute_batch("PRAGMA incremental_vacuum")
                .map_err(|e| self.wrap(e))?;
        }
        if gone > 0 {
            self.collect_garbage()?;
        }
        Ok(gone)
    }

    /// Deletes the sessions, statements and words no cycle left uses (see
    /// [`LAST_USE_SLACK_MS`]: read from their `last_at`, not from the samples, so
    /// it costs what it deletes, not the store's size), in one transaction, and
    /// gives free pages back.
    fn collect_garbage(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| wrap_path(&path, e))?;
        let oldest: Option<i64> = tx
            .query_row("SELECT MIN(at) FROM cycles", [], |r| r.get(0))
            .map_err(|e| wrap_path(&path, e))?;
        // No cycle left: nothing is used.
        let cut = oldest.map_or(i64::MAX, |at| at.saturating_sub(LAST_USE_SLACK_MS));
        for table in ["sessions", "statements", "words"] {
            tx.execute(&format!("DELETE FROM {table} WHERE last_at < ?1"), [cut])
                .map_err(|e| wrap_path(&path, e))?;
        }
        tx.commit().map_err(|e| wrap_path(&path, e))?;
        self.ids.forget_older(cut);
        self.conn
            .execute_batch("PRAGMA incremental_vacuum")
            .map_err(|e| self.wrap(e))
    }

    fn delete_cycles_before(&mut self, before_ms: i64) -> Result<u64, StoreError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| wrap_path(&path, e))?;
        let doomed = "SELECT id FROM cycles WHERE at < ?1";
        tx.execute(
            &format!("DELETE FROM samples WHERE cycle IN ({doomed})"),
            [before_ms],
        )
        .and_then(|_| {
            tx.execute(
                &format!("DELETE FROM cycle_waits WHERE cycle IN ({doomed})"),
                [before_ms],
            )
        })
        .and_then(|_| {
            tx.execute(
                &format!("DELETE FROM cycle_statements WHERE cycle IN ({doomed})"),
                [before_ms],
            )
        })
        .map_err(|e| wrap_path(&path, e))?;
        let gone = tx
            .execute("DELETE FROM cycles WHERE at < ?1", [before_ms])
            .map_err(|e| wrap_path(&path, e))?;
        tx.commit().map_err(|e| wrap_path(&path, e))?;
        Ok(gone as u64)
    }
}

fn wrap_path(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// The write-ahead log beside a store.
pub fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Milliseconds of `seconds`, as stored.
fn millis(seconds: f64) -> i64 {
    (seconds * 1000.0).round().clamp(0.0, i64::MAX as f64) as i64
}

/// `text` cut at `max` characters.
fn cut(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

fn write_cycle(
    tx: &rusqlite::Transaction<'_>,
    ids: &mut Ids,
    sample: &CycleSample,
    sql_text_max: usize,
) -> rusqlite::Result<()> {
    let at = unix_millis(sample.at);
    // Prepared once a cycle: the statement cache's lookup, which hashes and compares
    // the SQL text, would otherwise be paid once a row.
    let mut samples = Batch::new(
        tx,
        "INSERT OR REPLACE INTO samples (cycle, session, command, state, active, time_ms, \
         transaction_age_ms, lock_wait_ms, blocked_by, waiters, wait_class, wait_event, statement)",
        13,
    )?;
    let mut waits = Batch::new(tx, "INSERT INTO cycle_waits (cycle, class, sessions)", 3)?;
    let mut statements = Batch::new(
        tx,
        "INSERT INTO cycle_statements (cycle, statement, sessions)",
        3,
    )?;
    let mut insert_cycle = tx.prepare_cached(
        "INSERT INTO cycles (tenant, at, sessions, active, lock_waiting, idle_in_transaction, \
         longest_active_ms, kept, truncated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    // A tenant's sample rows, put in key order before they are written.
    let mut rows: Vec<[Option<i64>; 13]> = Vec::new();
    for tenant in &sample.tenants {
        let known = ids
            .tenants
            .get(&sample.target)
            .and_then(|tenants| tenants.get(&tenant.tenant));
        let tenant_id = match known {
            Some(id) => *id,
            None => {
                let id: i64 = tx.query_row(
                    "INSERT INTO tenants (target, name) VALUES (?1, ?2) \
                     ON CONFLICT (target, name) DO UPDATE SET name = excluded.name RETURNING id",
                    params![sample.target, tenant.tenant],
                    |r| r.get(0),
                )?;
                ids.tenants
                    .entry(sample.target.clone())
                    .or_default()
                    .insert(tenant.tenant.clone(), id);
                id
            }
        };
        insert_cycle.execute(params![
            tenant_id,
            at,
            tenant.sessions as i64,
            tenant.active as i64,
            tenant.lock_waiting as i64,
            tenant.idle_in_transaction as i64,
            millis(tenant.longest_active),
            tenant.kept.len() as i64,
            tenant.truncated as i64,
        ])?;
        let cycle = tx.last_insert_rowid();
        let mut classes = Vec::with_capacity(tenant.by_wait_class.len());
        for (class, n) in &tenant.by_wait_class {
            classes.push((text(tx, ids, class, at)?, *n as i64));
        }
        classes.sort_unstable();
        for (class, n) in classes {
            waits.push(&[Some(cycle), Some(class), Some(n)])?;
        }
        // Active sessions per statement, for the timeline's top statements.
        let mut by_statement: Vec<(i64, i64)> = Vec::new();
        for kept in &tenant.kept {
            let key = [
                tenant_id,
                kept.id as i64,
                word(tx, ids, &kept.server, at)?,
                word(tx, ids, &kept.user, at)?,
                word(tx, ids, &kept.db, at)?,
                word(tx, ids, &kept.client, at)?,
                word(tx, ids, &kept.application, at)?,
            ];
            let known = match ids.sessions.get_mut(&key) {
                Some(used) => reuse(tx, Table::Sessions, used, at)?,
                None => None,
            };
            let session = match known {
                Some(id) => id,
                None => {
                    let used = tx
                        .prepare_cached(
                            "INSERT INTO sessions (tenant, session_id, server, user, db, client, \
                             application, last_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                             ON CONFLICT (tenant, session_id, server, user, db, client, application) \
                             DO UPDATE SET last_at = MAX(last_at, excluded.last_at) \
                             RETURNING id, last_at",
                        )?
                        .query_row(
                            params![key[0], key[1], key[2], key[3], key[4], key[5], key[6], at],
                            used_row,
                        )?;
                    ids.sessions.insert(key, used);
                    used.id
                }
            };
            let statement = match (kept.sql_id.is_empty(), kept.sql_text.is_empty()) {
                (true, true) => None,
                _ => Some(statement(
                    tx,
                    ids,
                    &kept.sql_id,
                    &kept.sql_text,
                    (sql_text_max, at),
                )?),
            };
            if let Some(id) = statement.filter(|_| kept.active) {
                match by_statement.iter_mut().find(|(known, _)| *known == id) {
                    Some((_, n)) => *n += 1,
                    None => by_statement.push((id, 1)),
                }
            }
            rows.push([
                Some(cycle),
                Some(session),
                Some(word(tx, ids, &kept.command, at)?),
                Some(word(tx, ids, &kept.state, at)?),
                Some(kept.active as i64),
                Some(millis(kept.time)),
                kept.transaction_age.map(millis),
                kept.lock_wait.map(millis),
                kept.blocked_by.map(|id| id as i64),
                Some(kept.waiters as i64),
                Some(word(tx, ids, &kept.wait_class, at)?),
                Some(word(tx, ids, &kept.wait_event, at)?),
                statement,
            ]);
        }
        // In key order: each row then goes at the end of the table, where SQLite
        // appends to the last page, instead of splitting pages through the cycle.
        rows.sort_unstable_by_key(|row| row[1]);
        for row in rows.drain(..) {
            samples.push(&row)?;
        }
        by_statement.sort_unstable();
        for (statement, n) in by_statement {
            statements.push(&[Some(cycle), Some(statement), Some(n)])?;
        }
    }
    samples.finish()?;
    waits.finish()?;
    statements.finish()
}

/// Rows of one table written [`Batch::ROWS`] to a statement: a statement's start and
/// its binding, paid once a row, were a fifth of a cycle's write.
struct Batch<'t> {
    tx: &'t rusqlite::Transaction<'t>,
    /// `INSERT INTO table (columns)`.
    head: &'static str,
    columns: usize,
    full: rusqlite::CachedStatement<'t>,
    values: Vec<Option<i64>>,
}

impl<'t> Batch<'t> {
    /// Rows a statement writes (at most 13 x 64 parameters, far below SQLite's 32,766).
    const ROWS: usize = 64;

    fn new(
        tx: &'t rusqlite::Transaction<'t>,
        head: &'static str,
        columns: usize,
    ) -> rusqlite::Result<Self> {
        Ok(Self {
            tx,
            head,
            columns,
            full: tx.prepare_cached(&Self::sql(head, columns, Self::ROWS))?,
            values: Vec::with_capacity(columns * Self::ROWS),
        })
    }

    fn sql(head: &str, columns: usize, rows: usize) -> String {
        let row = format!("({})", vec!["?"; columns].join(", "));
        format!("{head} VALUES {}", vec![row; rows].join(", "))
    }

    /// Adds a row (of `columns` values), writing the batch once it is full.
    fn push(&mut self, row: &[Option<i64>]) -> rusqlite::Result<()> {
        debug_assert_eq!(row.len(), self.columns);
        self.values.extend_from_slice(row);
        if self.values.len() == self.columns * Self::ROWS {
            self.full
                .execute(rusqlite::params_from_iter(self.values.drain(..)))?;
        }
        Ok(())
    }

    /// Writes the rows left (fewer than a batch).
    fn finish(mut self) -> rusqlite::Result<()> {
        if self.values.is_empty() {
            return Ok(());
        }
        let rows = self.values.len() / self.columns;
        self.tx
            .prepare_cached(&Self::sql(self.head, self.columns, rows))?
            .execute(rusqlite::params_from_iter(self.values.drain(..)))?;
        Ok(())
    }
}

/// A row's id and `last_at`, as an upsert returns them.
fn used_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Used> {
    Ok(Used {
        id: r.get(0)?,
        last_at: r.get(1)?,
    })
}

/// The id of `text` in `words`, stored when new, used at `at`.
fn upsert_word(tx: &rusqlite::Transaction<'_>, text: &str, at: i64) -> rusqlite::Result<Used> {
    tx.prepare_cached(
        "INSERT INTO words (text, last_at) VALUES (?1, ?2) ON CONFLICT (text) \
         DO UPDATE SET last_at = MAX(last_at, excluded.last_at) RETURNING id, last_at",
    )?
    .query_row(params![text, at], used_row)
}

/// The id of a kept session's word in `words`, used by the cycle at `at`.
fn word(
    tx: &rusqlite::Transaction<'_>,
    ids: &mut Ids,
    word: &Word,
    at: i64,
) -> rusqlite::Result<i64> {
    if let Some((_, used)) = ids.words.get_mut(&word.identity()) {
        if let Some(id) = reuse(tx, Table::Words, used, at)? {
            return Ok(id);
        }
    }
    let used = upsert_word(tx, word, at)?;
    ids.words.insert(word.identity(), (word.clone(), used));
    Ok(used.id)
}

/// The id of a text that comes as a string in `words`, used at `at`.
fn text(
    tx: &rusqlite::Transaction<'_>,
    ids: &mut Ids,
    text: &str,
    at: i64,
) -> rusqlite::Result<i64> {
    if let Some(used) = ids.texts.get_mut(text) {
        if let Some(id) = reuse(tx, Table::Words, used, at)? {
            return Ok(id);
        }
    }
    let used = upsert_word(tx, text, at)?;
    ids.texts.insert(text.to_string(), used);
    Ok(used.id)
}

/// The id of a statement (its id, and its text cut at `sql_text_max` characters)
/// in `statements`, stored when new, used at `at`.
fn statement(
    tx: &rusqlite::Transaction<'_>,
    ids: &mut Ids,
    sql_id: &Word,
    text: &Word,
    (sql_text_max, at): (usize, i64),
) -> rusqlite::Result<i64> {
    let key = (sql_id.identity(), text.identity());
    if let Some((_, _, used)) = ids.statements.get_mut(&key) {
        if let Some(id) = reuse(tx, Table::Statements, used, at)? {
            return Ok(id);
        }
    }
    let used = tx
        .prepare_cached(
            "INSERT INTO statements (sql_id, text, last_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (sql_id, text) DO UPDATE SET last_at = MAX(last_at, excluded.last_at) \
             RETURNING id, last_at",
        )?
        .query_row(
            params![sql_id.as_str(), cut(text, sql_text_max), at],
            used_row,
        )?;
    if let Some((old_id, old_text, _)) = ids
        .statements
        .insert(key, (sql_id.clone(), text.clone(), used))
    {
        ids.statement_bytes -= old_id.len() + old_text.len();
    }
    ids.statement_bytes += sql_id.len() + text.len();
    Ok(used.id)
}

#[cfg(test)]
mod tests;
