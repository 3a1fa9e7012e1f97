//! The recorder: the one owner of the store, on a thread of its own.
//!
//! Targets' loops hand it their cycles through a bounded queue and never wait: when
//! the queue is full (a disk slower than the cycles) a cycle is dropped and counted,
//! so no target is held by the history. What goes wrong is counted by reason in
//! [`Health`], which `/metrics` reads:
//! - a store that cannot be read (corrupt, another schema version) is moved aside,
//!   never deleted, and a fresh one started;
//! - a store that cannot be opened at all (a directory it may not write) is tried
//!   again a minute later;
//! - a full disk pauses recording: each later cycle tries again, at most every
//!   [`RETRY`], and the first that fits resumes it.

use super::store::{wal_path, Store};
use super::{unix_millis, CycleSample};
use crate::config::History;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Cycles waiting for the store at most: past it, cycles are dropped and counted.
const QUEUE: usize = 64;
/// How often the bounds are applied and the store's size read.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How soon a store that could not be opened, or a full disk, is tried again.
pub const RETRY: Duration = Duration::from_secs(30);

/// Why recording failed, the `reason` label of `dbsession_history_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorReason {
    /// The store could not be opened (its directory, its permissions).
    Open,
    /// The store could not be read (corrupt, another version) and was moved aside.
    Unreadable,
    /// The disk is full: recording paused.
    DiskFull,
    /// A cycle could not be written for another reason.
    Write,
    /// The store fell behind the cycles and one was dropped.
    Behind,
}

impl ErrorReason {
    pub const ALL: [ErrorReason; 5] = [
        ErrorReason::Open,
        ErrorReason::Unreadable,
        ErrorReason::DiskFull,
        ErrorReason::Write,
        ErrorReason::Behind,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ErrorReason::Open => "open",
            ErrorReason::Unreadable => "unreadable",
            ErrorReason::DiskFull => "disk_full",
            ErrorReason::Write => "write",
            ErrorReason::Behind => "behind",
        }
    }
}

/// What `/metrics` says of the history, updated by the recorder.
#[derive(Debug, Default)]
pub struct Health {
    errors: [AtomicU64; ErrorReason::ALL.len()],
    bytes: AtomicU64,
    /// Unix milliseconds of the oldest cycle kept; 0 when none.
    oldest_ms: AtomicI64,
    recording: AtomicBool,
}

/// A reading of [`Health`].
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReading {
    pub errors: Vec<(ErrorReason, u64)>,
    pub bytes: u64,
    pub oldest: Option<f64>,
    pub recording: bool,
}

impl Health {
    fn count(&self, reason: ErrorReason) {
        self.errors[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn read(&self) -> HealthReading {
        let oldest = self.oldest_ms.load(Ordering::Relaxed);
        HealthReading {
            errors: ErrorReason::ALL
                .iter()
                .map(|r| (*r, self.errors[*r as usize].load(Ordering::Relaxed)))
                .collect(),
            bytes: self.bytes.load(Ordering::Relaxed),
            oldest: (oldest > 0).then(|| oldest as f64 / 1000.0),
            recording: self.recording.load(Ordering::Relaxed),
        }
    }
}

/// The handle targets' loops record through; cloned for each.
#[derive(Debug, Clone)]
pub struct Recorder {
    queue: SyncSender<CycleSample>,
    health: Arc<Health>,
    /// Sessions per tenant and cycle it keeps (`history.max_sessions` at start).
    max_sessions: usize,
    /// Characters of SQL text it keeps (`history.sql_text_max` at start).
    sql_text_max: usize,
}

impl Recorder {
    /// Starts the recorder thread for `settings`.
    pub fn start(settings: History) -> std::io::Result<Recorder> {
        let (queue, cycles) = sync_channel(QUEUE);
        let health = Arc::new(Health::default());
        let (max_sessions, sql_text_max) = (settings.max_sessions, settings.sql_text_max);
        let thread = Thread {
            settings,
            health: health.clone(),
            store: None,
            next_open: Instant::now(),
            paused_until: None,
            last_prune: None,
            failures: 0,
        };
        std::thread::Builder::new()
            .name("history".into())
            .spawn(move || thread.run(cycles))?;
        Ok(Recorder {
            queue,
            health,
            max_sessions,
            sql_text_max,
        })
    }

    /// Characters of SQL text it keeps, for the kinds that cut it when they read it.
    pub fn sql_text_max(&self) -> usize {
        self.sql_text_max
    }

    /// Sessions per tenant and cycle the targets keep for it.
    pub fn max_sessions(&self) -> usize {
        self.max_sessions
    }

    /// Hands a cycle to the recorder without waiting; a full queue drops it.
    pub fn record(&self, sample: CycleSample) {
        match self.queue.try_send(sample) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.health.count(ErrorReason::Behind),
            Err(TrySendError::Disconnected(_)) => {
                // The recorder's thread is gone: nothing records any more.
                self.health.count(ErrorReason::Write);
                self.health.recording.store(false, Ordering::Relaxed);
            }
        }
    }

    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }
}

struct Thread {
    settings: History,
    health: Arc<Health>,
    store: Option<Store>,
    /// When a store that could not be opened is tried again.
    next_open: Instant,
    /// Set while the disk is full: when the next write is tried.
    paused_until: Option<Instant>,
    last_prune: Option<Instant>,
    /// Writes that failed in a row (other than a full disk): past [`REOPEN_AFTER`]
    /// the store is closed and opened again.
    failures: u32,
}

/// Failed writes in a row after which the store is opened again (a connection left
/// in a bad state, a file replaced under it).
const REOPEN_AFTER: u32 = 3;

impl Thread {
    fn run(mut self, cycles: Receiver<CycleSample>) {
        self.ensure_open();
        loop {
            match cycles.recv_timeout(PRUNE_EVERY) {
                Ok(sample) => self.write(&sample),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.maybe_prune();
        }
    }

    /// Opens the store when it is not open and its time has come; a store that
    /// cannot be read is moved aside and a fresh one made.
    fn ensure_open(&mut self) -> bool {
        if self.store.is_some() {
            return true;
        }
        if Instant::now() < self.next_open {
            return false;
        }
        let path = self.settings.path.clone();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Err(err) = std::fs::create_dir_all(dir) {
                return self.cannot_open(&format!("{}: {err}", dir.display()));
            }
        }
        match Store::open(&path) {
            Ok(store) => {
                tracing::info!(path = %path.display(), "recording the session history");
                self.store = Some(store);
            }
            Err(err) if err.unreadable() => {
                self.health.count(ErrorReason::Unreadable);
                match move_aside(&path) {
                    Ok(aside) => {
                        tracing::error!(
                            path = %path.display(),
                            moved_to = %aside.display(),
                            "the session history's store cannot be read ({err}): it was moved to {} and a new one started at {}",
                            aside.display(),
                            path.display()
                        );
                        match Store::open(&path) {
                            Ok(store) => self.store = Some(store),
                            Err(err) => return self.cannot_open(&err.to_string()),
                        }
                    }
                    Err(move_err) => {
                        return self.cannot_open(&format!(
                            "{err}, and it could not be moved aside: {move_err}"
                        ))
                    }
                }
            }
            Err(err) => return self.cannot_open(&err.to_string()),
        }
        self.health.recording.store(true, Ordering::Relaxed);
        self.last_prune = None;
        true
    }

    fn cannot_open(&mut self, why: &str) -> bool {
        self.health.count(ErrorReason::Open);
        self.health.recording.store(false, Ordering::Relaxed);
        tracing::error!(
            path = %self.settings.path.display(),
            "the session history is not recorded: {why} (tried again in {}s; collection goes on)",
            RETRY.as_secs()
        );
        self.next_open = Instant::now() + RETRY;
        false
    }

    fn write(&mut self, sample: &CycleSample) {
        if !self.ensure_open() {
            return;
        }
        if let Some(until) = self.paused_until {
            if Instant::now() < until {
                return;
            }
        }
        let max = self.settings.sql_text_max;
        let Some(store) = self.store.as_mut() else {
            return;
        };
        match store.record(sample, max) {
            Ok(()) => {
                if self.paused_until.take().is_some() {
                    tracing::info!(path = %store.path().display(), "the session history records again: the disk has room");
                }
                self.health.recording.store(true, Ordering::Relaxed);
                self.failures = 0;
                if self.health.oldest_ms.load(Ordering::Relaxed) == 0 {
                    self.health
                        .oldest_ms
                        .store(unix_millis(sample.at), Ordering::Relaxed);
                }
            }
            Err(err) if err.disk_full() => {
                self.health.count(ErrorReason::DiskFull);
                if self.paused_until.is_none() {
                    tracing::error!(
                        path = %store.path().display(),
                        "the session history paused: the disk is full ({err}); it resumes by itself when there is room, collection goes on"
                    );
                }
                self.health.recording.store(false, Ordering::Relaxed);
                self.paused_until = Some(Instant::now() + RETRY);
            }
            Err(err) => {
                tracing::warn!(target = %sample.target, "a cycle was not recorded in the session history: {err}");
                let unreadable = err.unreadable();
                self.failed(unreadable);
            }
        }
    }

    /// Counts a failed write or bound; a store corrupted under the recorder, or one
    /// that failed [`REOPEN_AFTER`] times in a row, is closed (and opened again, or
    /// moved aside, at the next cycle).
    fn failed(&mut self, unreadable: bool) {
        self.health.count(ErrorReason::Write);
        self.health.recording.store(false, Ordering::Relaxed);
        self.failures += 1;
        if unreadable || self.failures >= REOPEN_AFTER {
            self.store = None;
            self.failures = 0;
        }
    }

    /// Applies the bounds once a [`PRUNE_EVERY`], and reads the size and the oldest
    /// cycle for `/metrics`.
    fn maybe_prune(&mut self) {
        if self.last_prune.is_some_and(|at| at.elapsed() < PRUNE_EVERY) {
            return;
        }
        let Some(store) = self.store.as_mut() else {
            return;
        };
        self.last_prune = Some(Instant::now());
        let before = SystemTime::now()
            .checked_sub(self.settings.retention)
            .map_or(0, unix_millis);
        // A tenth below the bound, so it is not met again at once.
        let bound = self.settings.max_size / 10 * 9;
        match store.prune(before, bound) {
            Ok(gone) if gone > 0 => {
                tracing::debug!(cycles = gone, "the session history's oldest cycles went")
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!("the session history's bounds could not be applied: {err}");
                let unreadable = err.unreadable();
                self.failed(unreadable);
                return;
            }
        }
        self.health.bytes.store(store.bytes(), Ordering::Relaxed);
        if let Ok(oldest) = store.oldest() {
            self.health
                .oldest_ms
                .store(oldest.unwrap_or(0), Ordering::Relaxed);
        }
    }
}

/// Moves a store (and its write-ahead log and shared memory) aside, beside it, with
/// the time in its name; returns where it went.
fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    let stamp = unix_millis(SystemTime::now()) / 1000;
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".unreadable-{stamp}"));
    let aside = PathBuf::from(aside);
    // Its log first: a log left beside a new store would be replayed into it.
    for (from, suffix) in [(wal_path(path), "-wal"), (shm_path(path), "-shm")] {
        if from.exists() {
            let mut to = aside.as_os_str().to_owned();
            to.push(suffix);
            std::fs::rename(&from, PathBuf::from(to))?;
        }
    }
    std::fs::rename(path, &aside)?;
    Ok(aside)
}

fn shm_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-shm");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::TenantSample;
    use crate::stats::KeptSession;

    fn settings(path: PathBuf) -> History {
        History {
            path,
            retention: Duration::from_secs(3600),
            max_size: 1 << 30,
            max_sessions: 10,
            sql_text_max: 100,
        }
    }

    fn sample() -> CycleSample {
        CycleSample {
            target: "db".into(),
            at: SystemTime::now(),
            tenants: vec![TenantSample {
                tenant: "t".into(),
                sessions: 2,
                active: 1,
                kept: vec![KeptSession {
                    id: 5,
                    active: true,
                    ..KeptSession::default()
                }],
                ..TenantSample::default()
            }],
        }
    }

    fn thread(settings: History) -> Thread {
        Thread {
            settings,
            health: Arc::new(Health::default()),
            store: None,
            next_open: Instant::now(),
            paused_until: None,
            last_prune: None,
            failures: 0,
        }
    }

    /// A file that is no store is moved aside, kept, and a fresh store records; the
    /// error is counted.
    #[test]
    fn an_unreadable_store_is_moved_aside_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        std::fs::write(&path, vec![0x42; 4096]).unwrap();
        let mut thread = thread(settings(path.clone()));
        thread.write(&sample());
        let reading = thread.health.read();
        assert!(reading.recording);
        assert!(reading.errors.contains(&(ErrorReason::Unreadable, 1)));
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("history.db.unreadable-"))
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert_eq!(
            std::fs::read(dir.path().join(&aside[0])).unwrap(),
            vec![0x42; 4096],
            "kept as it was"
        );
        let store = Store::open(&path).unwrap();
        assert!(store.moment("db", "t", i64::MAX).unwrap().is_some());
    }

    /// A store in a place it cannot be made is counted, not recorded, and tried
    /// again later; nothing panics.
    #[test]
    fn a_store_that_cannot_be_opened_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let mut thread = thread(settings(file.join("history.db")));
        thread.write(&sample());
        thread.write(&sample());
        let reading = thread.health.read();
        assert!(!reading.recording);
        assert!(
            reading.errors.contains(&(ErrorReason::Open, 1)),
            "tried once until RETRY: {reading:?}"
        );
    }

    /// The recorder's queue never blocks a target: past its size cycles are dropped
    /// and counted.
    #[test]
    fn a_full_queue_drops_and_counts() {
        let (queue, _cycles) = sync_channel(1);
        let recorder = Recorder {
            queue,
            health: Arc::new(Health::default()),
            max_sessions: 10,
            sql_text_max: 100,
        };
        recorder.record(sample());
        recorder.record(sample());
        assert!(recorder
            .health
            .read()
            .errors
            .contains(&(ErrorReason::Behind, 1)));
    }
}
