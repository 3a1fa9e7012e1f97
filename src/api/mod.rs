//! The session API, obshell-compatible, and the sessions page built on it: all of it
//! lives here.
//!
//! - The model: what a request asks ([`params`]), what it gets ([`answers`],
//!   [`session`], [`pileup`], [`deadlocks`]) or why it failed ([`failure`]), and the
//!   [`SessionApi`] the HTTP handlers call.
//! - The plumbing ([`serve`]): permits, the streamed page, the kill's checks, around
//!   the [`serve::SessionBackend`] a kind of target writes (its connections and its
//!   SQL, and what it can do: [`serve::Capabilities`]); [`processlist`] is that
//!   backend once for the kinds that read a MySQL-protocol processlist.
//! - The HTTP handlers ([`http`]): routes, the Host names served, authentication and
//!   each credential's grant, timeouts, obshell's envelope; obshell's header
//!   authentication ([`obshell`]); the sessions page ([`page`]).
//!
//! It uses no kind: the kinds (`source/<kind>/`) implement its traits, and the
//! exporter hands it each target's backend ([`http::Backends`]).

pub mod answers;
pub mod deadlocks;
pub mod failure;
pub mod http;
pub mod obshell;
pub mod page;
pub mod params;
pub mod pileup;
pub mod processlist;
pub mod serve;
pub mod session;

pub use answers::{PageInfo, PageStream, SessionStats};
pub use deadlocks::{DeadLock, DeadLockNode, DeadLockPage};
pub use failure::Failure;
pub use params::{ListParams, PageParams};
pub use pileup::{Pileup, PileupRows, Waiter};
pub use session::{Field, FieldValue, TenantSession, Victim};

pub use crate::future::BoxFuture;

/// What a kind's sessions can give beyond the list, detail, stats, kill and pile-up
/// every kind serves: declared by the kind, so that no shared code asks which kind
/// a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Whether the database keeps the deadlocks it detected, for
    /// [`SessionApi::deadlocks`] (PostgreSQL only logs and counts them).
    pub deadlock_history: bool,
    /// Whether one session can be ended ([`SessionApi::kill`]).
    pub kill: Kill,
}

/// Whether a kind can end one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kill {
    Supported,
    /// It cannot: a kill answers 501 with this (why, and what to do instead), and
    /// the page offers none.
    Unsupported(&'static str),
}

/// One target's sessions, read live on request. Implementations bound their own
/// concurrency and use connections of their own, never the collection's; the caller
/// bounds each request with `passthrough.request_timeout`.
pub trait SessionApi: Send + Sync {
    /// The target's name, for messages.
    fn target(&self) -> &str;

    /// What the target's kind can give beyond what every kind serves.
    fn capabilities(&self) -> Capabilities;

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
