//! Where session statistics come from: one [`Source`] per target, built for its kind
//! by [`build`], the one place here that knows every kind.
//!
//! A SQL source never reads SQL text (`INFO`) and never pulls one row per session:
//! the database groups by (tenant, server, db, user, client), counting the active
//! sessions of each group, so the answer is as small as the number of distinct
//! combinations. Each kind lives in its own module: its statement and its decoding,
//! its mode detection, and what the session API reads of it (see [`processlist`]).
//! Adding a kind means its module and one arm in [`build`] (and in [`session_api`]
//! when it has sessions to list).

mod collect;
mod conn;
pub mod dbss;
pub mod error;
mod mysql;
mod oceanbase;
mod postgresql;
pub mod processlist;
pub mod query;
pub mod sql;

pub use collect::{BoxFuture, Source};
pub use error::{ApiError, Reason, SourceError};

use crate::config::{Target, TargetKind};
use crate::sessions::serve::Served;
use crate::sessions::SessionApi;
use std::sync::Arc;
use std::time::Duration;

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
    }
}

/// The session API of `target`, on a pool of at most `max_concurrent` connections of
/// its own, its queries bounded at `timeout` where the server can; None for a kind
/// without one (DBSS, whose SQL detail the passthrough forwards instead).
pub fn session_api(
    target: &Target,
    max_concurrent: usize,
    timeout: Duration,
) -> Option<Arc<dyn SessionApi>> {
    let processlist: Box<dyn processlist::Processlist> = match &target.kind {
        TargetKind::Oceanbase(settings) => {
            Box::new(oceanbase::OceanbaseProcesslist::new(target, settings))
        }
        TargetKind::Mysql(settings) => Box::new(mysql::MysqlProcesslist::new(target, settings)),
        TargetKind::Postgresql(settings) => {
            return Some(Arc::new(Served::new(
                postgresql::PostgresqlSessions::new(
                    &target.name,
                    settings,
                    max_concurrent,
                    timeout,
                ),
                max_concurrent,
                timeout,
            )))
        }
        TargetKind::Dbss(_) => return None,
    };
    let backend = processlist::ProcesslistBackend::new(
        processlist,
        target.collect_interval,
        max_concurrent,
        timeout,
    );
    Some(Arc::new(Served::new(backend, max_concurrent, timeout)))
}
