//! The integration tests: one binary, a module per area, so the crate is linked once
//! (ripgrep's layout). They run the real `session_exporter` against real servers
//! (MariaDB, seekdb, PostgreSQL, promtool, Prometheus, schemathesis, obshell's SDK,
//! apt, rpm and podman for the packages) that `scripts/test.sh` installs and starts;
//! run alone, a test that needs a missing server says so and skips, except under
//! `CI=true`, where it fails.
//!
//! Run one area with `./scripts/test.sh --test it mariadb::`.

mod common;

mod access;
mod amplifier;
mod browser;
mod cli;
mod connections;
mod dbss;
mod deploy;
mod e2e_prometheus;
mod exclusive;
mod exposure;
mod faults;
mod history;
mod hostile;
mod load;
mod mariadb;
mod modules;
mod obshell_sdk;
mod oceanbase_cluster;
mod operate;
mod packages;
mod passthrough;
mod pileup;
mod postgresql;
mod schemathesis;
mod seekdb;
mod shape;
mod web;
