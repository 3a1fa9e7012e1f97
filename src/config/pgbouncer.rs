//! The settings of a `kind: pgbouncer` target: one PgBouncer, read through its admin
//! console (the virtual `pgbouncer` database) as one of its `stats_users`; its one
//! tenant is named after the target.

use super::database::{Database, RawDatabase};
use super::{fields_of, KindInput, TargetKind};

/// A validated `kind: pgbouncer` target's own settings: the address, account and
/// filters every SQL kind has. The admin console is always the database `pgbouncer`,
/// and it is reached without TLS (PgBouncer's admin console is normally on loopback
/// or a Unix socket beside it).
#[derive(Debug, Clone, PartialEq)]
pub struct Pgbouncer {
    pub database: Database,
}

/// Every key this kind accepts.
pub(super) fn keys() -> Vec<&'static str> {
    fields_of::<RawDatabase>().to_vec()
}

pub(super) fn validate(input: &mut KindInput<'_>) -> TargetKind {
    let database = input.read::<RawDatabase>().validate(input);
    TargetKind::Pgbouncer(Pgbouncer { database })
}

/// This kind in the configuration ([`super::KINDS`]).
pub(crate) const KIND: super::KindEntry = super::KindEntry {
    name: "pgbouncer",
    keys,
    foreign_key_hint: "; a pgbouncer target reads the admin console's `pgbouncer` database \
                       and has one tenant named after the target",
    validate,
    expected_tenants: super::the_target_is_the_tenant,
    fronts: true,
    behind: super::nothing_in_front,
};
