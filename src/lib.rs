//! session_exporter: a Prometheus exporter for database session metrics.
//!
//! Which module owns what, and how data flows from [`config`] through [`scheduler`],
//! [`source`], [`stats`], [`status`] and [`snapshot`] to [`http`], and the session
//! API ([`api`]) beside them, is mapped once, in
//! `docs/architecture.md`. Two rules hold that shape: a scrape only copies bytes the
//! snapshot prepared, it never touches a database ([`api`], off by default, is
//! the one part that queries on request); and no two sibling modules use each other
//! (`tests/it/modules.rs` checks it).

pub mod api;
pub mod config;
pub mod error;
pub mod exposition;
pub mod future;
pub mod history;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod reload;
pub mod scheduler;
pub mod secret;
pub mod snapshot;
pub mod source;
pub mod sql;
pub mod stats;
pub mod status;
pub mod timefmt;
pub mod tls;
pub mod web;

/// The exporter's version, from Cargo.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
