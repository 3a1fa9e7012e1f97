//! session_exporter: a Prometheus exporter for database session metrics.
//!
//! The pieces, in the order data flows through them: [`config`] says what to collect
//! (common target keys plus one kind's settings); [`scheduler`] runs one loop per
//! target that asks its [`source`] for one grouped statement's answer on every
//! interval; [`stats`] adds those rows up into per-tenant statistics; [`status`] holds
//! each target's latest state; [`snapshot`] re-encodes the exposition once per change,
//! through [`metrics`] and [`exposition`]; [`http`] serves it. A scrape only copies
//! bytes that are already prepared: it never touches a database. [`passthrough`], off
//! by default, is the one part that queries a database on request: obshell's session
//! API, answered live, and DBSS's SQL detail, forwarded. [`web`] (TLS, users, the
//! credential check) and [`secret`] are leaves that both sides use.
//!
//! A kind of target is `config/<kind>.rs` and `source/<kind>`, each registered once
//! (`config::KINDS`, `source::build`).

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
pub mod web;

/// The exporter's version, from Cargo.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
