//! session_exporter: a Prometheus exporter for database session metrics.
//!
//! Which module owns what, and how data flows from [`config`] through [`scheduler`],
//! [`source`], [`stats`], [`status`] and [`snapshot`] to [`http`], is mapped once, in
//! `docs/architecture.md`. Two rules hold that shape: a scrape only copies bytes the
//! snapshot prepared, it never touches a database ([`passthrough`], off by default, is
//! the one part that queries on request); and no two sibling modules use each other
//! (`tests/it/modules.rs` checks it).

pub mod config;
pub mod exposition;
pub mod future;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod passthrough;
pub mod reload;
pub mod scheduler;
pub mod secret;
pub mod sessions;
pub mod snapshot;
pub mod source;
pub mod stats;
pub mod status;
pub mod timefmt;
pub mod tls;
pub mod web;

/// The exporter's version, from Cargo.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
