//! Huawei Cloud Database Security Service (DBSS): what the `dbss` source and the
//! SQL-detail passthrough share: the API contract ([`api`]), the HTTPS client
//! ([`client`]) and the token file ([`token`]).
//!
//! DBSS already audits the databases; the exporter reads its client session
//! distribution each cycle and forwards SQL-detail requests, so one dashboard covers
//! both. The token is sent to the configured endpoint only, and never written to a
//! log, a metric or an error.

pub mod api;
pub mod client;
pub mod token;
