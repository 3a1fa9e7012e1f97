//! The settings of a `kind: mysql` target: one MySQL or MariaDB server, whose one
//! tenant is named after the target.

use super::database::{Database, RawDatabase};
use super::{fields_of, KindInput, TargetKind};

/// A validated `kind: mysql` target's own settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Mysql {
    pub database: Database,
}

/// Every key this kind accepts.
pub(super) fn keys() -> Vec<&'static str> {
    fields_of::<RawDatabase>().to_vec()
}

pub(super) fn validate(input: &mut KindInput<'_>) -> TargetKind {
    let database = input.read::<RawDatabase>().validate(input);
    TargetKind::Mysql(Mysql { database })
}

/// This kind in the configuration ([`super::KINDS`]).
pub(crate) const KIND: super::KindEntry = super::KindEntry {
    name: "mysql",
    keys,
    foreign_key_hint: "; a mysql target has one tenant named after the target",
    validate,
    expected_tenants: super::the_target_is_the_tenant,
    fronts: false,
    behind: super::nothing_in_front,
};
