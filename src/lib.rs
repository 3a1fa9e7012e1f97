//! session_exporter: a Prometheus exporter for database session metrics.
//!
//! The pieces, in the order data flows through them: [`config`] says what to collect;
//! [`scheduler`] runs one loop per target that asks its [`source`] for grouped session
//! rows on every interval; [`stats`] folds those rows into per-tenant statistics;
//! [`snapshot`] keeps the latest result of every target and re-encodes the exposition
//! once per change, through [`metrics`] and [`exposition`]; [`http`] serves it. A scrape
//! only copies bytes that are already prepared: it never touches a database.
//! [`passthrough`], off by default, is the one part that queries a database on
//! request: obshell's session API, answered live, and DBSS's SQL detail, forwarded.
//! [`dbss`] holds what the DBSS source and passthrough share.

pub mod config;
pub mod dbss;
pub mod exposition;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod passthrough;
pub mod reload;
pub mod scheduler;
pub mod snapshot;
pub mod source;
pub mod stats;
pub mod timefmt;

/// The exporter's version, from Cargo.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
