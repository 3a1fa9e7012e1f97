//! The obshell-compatible session API's model: what a request asks ([`params`]), what
//! it gets ([`answers`], [`session`]) or why it failed ([`failure`]), the
//! [`SessionApi`] the HTTP layer calls, and its plumbing ([`serve`]), around the
//! [`serve::SessionBackend`] a kind of target writes: its connections and its SQL.
//!
//! A leaf between the HTTP layer (`passthrough`: routes, authentication, timeouts,
//! obshell's envelope) and the kinds (`source`), so that neither imports the other.

pub mod answers;
pub mod deadlocks;
pub mod failure;
pub mod params;
pub mod pileup;
pub mod serve;
pub mod session;

pub use answers::{PageInfo, PageStream, SessionStats};
pub use deadlocks::{DeadLock, DeadLockNode, DeadLockPage};
pub use failure::Failure;
pub use params::{ListParams, PageParams};
pub use pileup::{Pileup, PileupRows};
pub use session::{Field, FieldValue, TenantSession, Victim};

pub use crate::future::BoxFuture;

/// One target's sessions, read live on request. Implementations bound their own
/// concurrency and use connections of their own, never the collection's; the caller
/// bounds each request with `passthrough.request_timeout`.
pub trait SessionApi: Send + Sync {
    /// The target's name, for messages.
    fn target(&self) -> &str;

    /// A page of `tenant`'s sessions, filtered and sorted as `params` asks, streamed.
    fn list<'a>(
        &'a self,
        tenant: &'a str,
        params: &'a ListParams,
    ) -> BoxFuture<'a, Result<PageStream, Failure>>;

    /// One session of `tenant`, with its SQL text.
    fn detail<'a>(
        &'a self,
        tenant: &'a str,
        id: u64,
    ) -> BoxFuture<'a, Result<TenantSession, Failure>>;

    /// `tenant`'s statistics, computed as a collection computes them.
    fn stats<'a>(&'a self, tenant: &'a str) -> BoxFuture<'a, Result<SessionStats, Failure>>;

    /// Ends sessions `victims` of `tenant` (`query_only`: their running statements).
    /// Every one must be a session of `tenant` now, the same session where its start
    /// is given, or nothing is done.
    fn kill<'a>(
        &'a self,
        tenant: &'a str,
        victims: &'a [Victim],
        query_only: bool,
    ) -> BoxFuture<'a, Result<(), Failure>>;

    /// Who waits for whom and the open transactions of `tenant` now.
    fn pileup<'a>(&'a self, tenant: &'a str) -> BoxFuture<'a, Result<Pileup, Failure>>;

    /// A page of the deadlocks the database detected for `tenant`, newest first.
    fn deadlocks<'a>(
        &'a self,
        tenant: &'a str,
        params: &'a PageParams,
    ) -> BoxFuture<'a, Result<DeadLockPage, Failure>>;
}
