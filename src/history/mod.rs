//! The session history: every cycle's sessions worth keeping, per tenant, in an
//! embedded SQLite store a DBA can open with `sqlite3` (schema: docs/history.md).
//!
//! A target's loop hands each successful cycle's [`CycleSample`] to the recorder,
//! which owns the store on a thread of its own: a slow disk delays the history,
//! never a cycle or a scrape. The store is bounded by age and by size, the oldest
//! cycles going first. What the recorder cannot do (a store it cannot open, a full
//! disk) it counts and says, and collection goes on without it.

pub mod read;
pub mod recorder;
pub mod store;

pub use read::{Moment, Spread, Step};
pub use recorder::{Health, HealthReading, Recorder};

use crate::stats::{KeptSession, TenantStats};
use std::time::SystemTime;

/// One tenant at one cycle: its counts, and the sessions worth keeping.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantSample {
    pub tenant: String,
    pub sessions: u64,
    pub active: u64,
    pub lock_waiting: u64,
    pub idle_in_transaction: u64,
    /// Longest TIME of an active session, in seconds.
    pub longest_active: f64,
    /// Active sessions by wait class (CPU for those waiting on nothing).
    pub by_wait_class: Vec<(String, u64)>,
    /// The sessions kept, in [`KeptSession::rank`] order, and how many the cap left
    /// out.
    pub kept: Vec<KeptSession>,
    pub truncated: u64,
}

impl TenantSample {
    /// Takes a tenant's kept sessions out of its statistics (the metrics do not
    /// export them) and copies its counts.
    pub fn take(tenant: &str, stats: &mut TenantStats) -> Self {
        let mut by_wait_class: Vec<(String, u64)> = Vec::new();
        for ((class, _), n) in &stats.by_wait {
            match by_wait_class.iter_mut().find(|(c, _)| c == class) {
                Some((_, known)) => *known += n,
                None => by_wait_class.push((class.clone(), *n)),
            }
        }
        Self {
            tenant: tenant.to_string(),
            sessions: stats.sessions,
            active: stats.active_sessions,
            lock_waiting: stats.lock_waiting_sessions,
            idle_in_transaction: stats.idle_in_transaction_sessions,
            longest_active: stats.max_active_time,
            by_wait_class,
            kept: std::mem::take(&mut stats.kept),
            truncated: std::mem::take(&mut stats.kept_truncated),
        }
    }
}

/// One successful cycle of one target.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleSample {
    pub target: String,
    pub at: SystemTime,
    pub tenants: Vec<TenantSample>,
}

/// Milliseconds since the Unix epoch, as the store keeps times (0 before it).
pub fn unix_millis(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
