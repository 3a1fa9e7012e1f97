//! Where session statistics come from: one module per kind of target, each running
//! its own cycle ([`Source`]) and serving its sessions to the session API, and the
//! one registration of every kind: [`build`], [`api_backend`] and [`OWN_FAMILIES`].
//!
//! A kind decides which statements its cycle sends and when, through the toolbox of
//! `crate::sql`, and gives its statistics per tenant (`stats::Aggregator`) or in a
//! shape of its own (`stats::own`). No kind reads the SQL text in a cycle. The
//! checklist for adding one is in docs/architecture.md; `tests/it/shape.rs` holds a
//! new kind to it.

mod collect;
pub mod dbss;
mod front;
mod mysql;
mod oceanbase;
mod pgbouncer;
mod postgresql;

pub use collect::{BoxFuture, Source};

use crate::api::http::Backend;
use crate::config::{Target, TargetKind};
use crate::stats::own::Family;
use std::time::Duration;

/// The metric families the kinds' own statistics fill ([`crate::stats::own`]),
/// registered here so that their headers are written with no target of the kind.
pub static OWN_FAMILIES: [&Family; 5] = {
    let [pools, waits, servers, sizes] = pgbouncer::FAMILIES;
    [&dbss::CLIENT_SESSIONS, pools, waits, servers, sizes]
};

/// Builds the source for `target`.
pub fn build(target: &Target) -> Box<dyn Source> {
    match &target.kind {
        TargetKind::Oceanbase(settings) => {
            Box::new(oceanbase::OceanbaseSource::new(target, settings))
        }
        TargetKind::Mysql(settings) => Box::new(mysql::MysqlSource::new(target, settings)),
        TargetKind::Postgresql(settings) => {
            Box::new(postgresql::PostgresqlSource::new(target, settings))
        }
        TargetKind::Dbss(settings) => Box::new(dbss::DbssSource::new(target, settings)),
        TargetKind::Pgbouncer(settings) => pgbouncer::build(target, settings),
    }
}

/// What the session API serves of `target` ([`api::http::Backends`]): a kind's
/// sessions, on a pool of at most `max_concurrent` connections of their own, their
/// queries bounded at `timeout` where the server can; or (DBSS) its statements'
/// detail.
pub fn api_backend(target: &Target, max_concurrent: usize, timeout: Duration) -> Option<Backend> {
    let limits = (max_concurrent, timeout);
    Some(match &target.kind {
        TargetKind::Oceanbase(settings) => oceanbase::api_backend(target, settings, limits),
        TargetKind::Mysql(settings) => mysql::api_backend(target, settings, limits),
        TargetKind::Postgresql(settings) => postgresql::api_backend(target, settings, limits),
        TargetKind::Dbss(settings) => dbss::api_backend(settings),
        TargetKind::Pgbouncer(settings) => pgbouncer::api_backend(target, settings, limits),
    })
}
