//! Where session rows come from: one [`Source`] per target kind, each sending one
//! grouped query per cycle.
//!
//! A source never reads SQL text (`INFO`) and never pulls one row per session: the
//! database groups by (tenant, server, db, user, client, active), so the answer is as
//! small as the number of distinct combinations. Adding a kind means one new file and
//! one arm in [`build`].

mod conn;
mod mysql;
mod oceanbase;
pub mod sql;

use crate::config::{Kind, Target};
use crate::stats::Collected;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use conn::classify;

/// A boxed future, so [`Source`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One kind of target: how to read its sessions.
pub trait Source: Send {
    /// Runs one collection: connect if needed, send the grouped query, decode it.
    /// The caller bounds it with the target's `collect_timeout`.
    fn collect(&mut self) -> BoxFuture<'_, Result<Collected, SourceError>>;

    /// Forgets every pooled connection. Called after a failed or abandoned cycle, so a
    /// connection left in an unknown state (mid-query, server restarted) is never reused.
    fn reset(&mut self);
}

/// Builds the source for `target`.
pub fn build(target: &Target) -> Box<dyn Source> {
    match target.kind {
        Kind::Oceanbase => Box::new(oceanbase::OceanbaseSource::new(target)),
        Kind::Mysql => Box::new(mysql::MysqlSource::new(target)),
    }
}

/// Why a collection failed, in the user's terms; the `reason` label of
/// `dbsession_collect_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// The server could not be reached, or refused the connection (e.g. too many).
    Connect,
    /// Wrong credentials or a missing privilege.
    Auth,
    /// The cycle did not finish within `collect_timeout`.
    Timeout,
    /// The query failed or its answer could not be read.
    Query,
}

impl Reason {
    pub const ALL: [Reason; 4] = [
        Reason::Connect,
        Reason::Auth,
        Reason::Timeout,
        Reason::Query,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Connect => "connect",
            Reason::Auth => "auth",
            Reason::Timeout => "timeout",
            Reason::Query => "query",
        }
    }
}

/// A failed collection: the reason label plus a message that says what to check.
/// Messages never contain a password.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    pub reason: Reason,
    pub message: String,
}

impl SourceError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }

    pub fn timeout(limit: Duration) -> Self {
        Self::new(
            Reason::Timeout,
            format!(
                "no answer within collect_timeout ({}): check the server's load and network, or raise collect_timeout",
                crate::config::format_duration(limit)
            ),
        )
    }
}
