//! Where session statistics come from: one [`Source`] per target, built for its kind
//! by [`build`], the one place here that knows every kind.
//!
//! A SQL source never reads SQL text (`INFO`) and never pulls one row per session:
//! the database groups by (tenant, server, db, user, client), counting the active
//! sessions of each group, so the answer is as small as the number of distinct
//! combinations. Each kind lives in its own module: its statement and its decoding,
//! its mode detection, and what the session API reads of it (see [`processlist`]).
//! Adding a kind means its module and one arm in [`build`].

mod collect;
mod conn;
pub mod dbss;
pub mod error;
mod mysql;
mod oceanbase;
pub mod processlist;
pub mod sql;

pub use collect::{BoxFuture, Source};
pub use conn::{close_in_background, pool};
pub use error::{ApiError, Reason, SourceError};

use crate::config::{Target, TargetKind};

/// Builds the source for `target`.
pub fn build(target: &Target) -> Box<dyn Source> {
    match &target.kind {
        TargetKind::Oceanbase(settings) => {
            Box::new(oceanbase::OceanbaseSource::new(target, settings))
        }
        TargetKind::Mysql(settings) => Box::new(mysql::MysqlSource::new(target, settings)),
        TargetKind::Dbss(settings) => Box::new(dbss::DbssSource::new(target, settings)),
    }
}
