//! The contract between the scheduler and a kind of target: [`Source`].
//!
//! A leaf of `source`: each kind implements the trait here, and the registry in
//! `source/mod.rs` builds them, so no kind imports the registry.

use crate::error::{Reason, SourceError};
pub use crate::future::BoxFuture;
use crate::stats::Collected;

/// One target's way of reading its sessions: its kind's cycle.
pub trait Source: Send {
    /// Runs one cycle: connect if needed, send the kind's statements (or request),
    /// add their answers up.
    /// The caller bounds it with the target's `collect_timeout`.
    fn collect(&mut self) -> BoxFuture<'_, Result<Collected, SourceError>>;

    /// Forgets every pooled connection. Called after a failed or abandoned cycle, so a
    /// connection left in an unknown state (mid-query, server restarted) is never reused.
    fn reset(&mut self);

    /// The reasons this kind can fail with: each gets an error counter from the
    /// start, so `rate()` and `increase()` see the first failure.
    fn reasons(&self) -> &'static [Reason] {
        &Reason::DATABASE
    }
}
