//! The settings of a `kind: oceanbase` target: an OceanBase cluster read through its
//! sys tenant (every tenant), or a single-tenant server such as seekdb.

use super::database::{Database, RawDatabase};
use super::{fields_of, KindInput, TargetKind};
use serde::Deserialize;
use std::collections::HashSet;

/// A validated `kind: oceanbase` target's own settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Oceanbase {
    pub database: Database,
    /// The tenants to report; `None` reports every tenant visible.
    pub tenants: Option<Vec<String>>,
    /// The tenant label for a single-tenant server that does not tell its tenant's
    /// name (seekdb).
    pub tenant: Option<String>,
    /// Relations read instead of `oceanbase.GV$OB_PROCESSLIST` and
    /// `oceanbase.DBA_OB_TENANTS` (a view of the user's own, or a test table).
    pub processlist_view: Option<Relation>,
    pub tenants_view: Option<Relation>,
    /// Relations read instead of `oceanbase.GV$OB_TRANSACTION_SCHEDULERS` and
    /// `oceanbase.GV$OB_LOCKS` in cluster mode.
    pub transactions_view: Option<Relation>,
    pub locks_view: Option<Relation>,
    /// Relations read instead of `oceanbase.CDB_OB_SYS_VARIABLES` and
    /// `oceanbase.CDB_OB_DEADLOCK_EVENT_HISTORY` in cluster mode (limits, deadlocks).
    pub variables_view: Option<Relation>,
    pub deadlocks_view: Option<Relation>,
    /// Read instead of `oceanbase.GV$OB_ACTIVE_SESSION_HISTORY` in cluster mode (waits).
    pub ash_view: Option<Relation>,
    /// Read instead of `oceanbase.GV$SYSSTAT` in cluster mode (connection counters).
    pub sysstat_view: Option<Relation>,
}

/// A schema-qualified relation name such as `oceanbase.GV$OB_PROCESSLIST`.
///
/// Only identifier characters are accepted, and each part is quoted with backticks
/// when written into SQL, so a config value can never change a query's meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    parts: Vec<String>,
}

/// A relation name with characters other than letters, digits, `_` and `$`, or more
/// than two parts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a relation name: write `schema.name` with letters, digits, `_` and `$`, e.g. oceanbase.GV$OB_PROCESSLIST")]
pub struct RelationError(String);

impl Relation {
    pub fn parse(text: &str) -> Result<Self, RelationError> {
        let parts: Vec<String> = text.split('.').map(str::to_string).collect();
        let valid = |part: &String| {
            !part.is_empty()
                && part.len() <= 64
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        };
        if parts.len() > 2 || !parts.iter().all(valid) {
            return Err(RelationError(text.to_string()));
        }
        Ok(Self { parts })
    }

    /// The relation quoted for SQL, e.g. `` `oceanbase`.`GV$OB_PROCESSLIST` ``.
    pub fn to_sql(&self) -> String {
        self.parts
            .iter()
            .map(|part| format!("`{part}`"))
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// The keys of this kind beyond [`RawDatabase`]'s.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOceanbase {
    tenants: Option<Vec<String>>,
    tenant: Option<String>,
    processlist_view: Option<String>,
    tenants_view: Option<String>,
    transactions_view: Option<String>,
    locks_view: Option<String>,
    variables_view: Option<String>,
    deadlocks_view: Option<String>,
    ash_view: Option<String>,
    sysstat_view: Option<String>,
}

/// Every key this kind accepts.
pub(super) fn keys() -> Vec<&'static str> {
    [fields_of::<RawDatabase>(), fields_of::<RawOceanbase>()].concat()
}

/// The tenants listed in `tenants:`, if any (otherwise the cluster's, as found).
pub(super) fn expected_tenants(kind: &TargetKind, _target: &str) -> Vec<String> {
    match kind {
        TargetKind::Oceanbase(settings) => settings.tenants.clone().unwrap_or_default(),
        _ => Vec::new(),
    }
}

pub(super) fn validate(input: &mut KindInput<'_>) -> TargetKind {
    let database = input.read::<RawDatabase>().validate(input);
    let raw = input.read::<RawOceanbase>();
    if let Some(tenants) = &raw.tenants {
        if tenants.is_empty() {
            input.problem(
                "tenants",
                "is empty: list tenants, or remove the key to report every tenant",
            );
        }
        let mut seen = HashSet::new();
        for (i, tenant) in tenants.iter().enumerate() {
            let key = format!("tenants[{i}]");
            if !valid_tenant(tenant) {
                input.problem(&key, not_a_tenant(tenant));
            } else if !seen.insert(tenant) {
                input.problem(&key, format!("`{tenant}` is listed twice"));
            }
        }
    }
    if let Some(tenant) = &raw.tenant {
        if !valid_tenant(tenant) {
            input.problem("tenant", not_a_tenant(tenant));
        }
    }
    let mut relation = |field: &str, text: Option<&str>| {
        text.and_then(|text| {
            Relation::parse(text)
                .map_err(|err| input.problem(field, err.to_string()))
                .ok()
        })
    };
    let processlist_view = relation("processlist_view", raw.processlist_view.as_deref());
    let tenants_view = relation("tenants_view", raw.tenants_view.as_deref());
    let transactions_view = relation("transactions_view", raw.transactions_view.as_deref());
    let locks_view = relation("locks_view", raw.locks_view.as_deref());
    let variables_view = relation("variables_view", raw.variables_view.as_deref());
    let deadlocks_view = relation("deadlocks_view", raw.deadlocks_view.as_deref());
    let ash_view = relation("ash_view", raw.ash_view.as_deref());
    let sysstat_view = relation("sysstat_view", raw.sysstat_view.as_deref());
    TargetKind::Oceanbase(Oceanbase {
        database,
        tenants: raw.tenants,
        tenant: raw.tenant,
        processlist_view,
        tenants_view,
        transactions_view,
        locks_view,
        variables_view,
        deadlocks_view,
        ash_view,
        sysstat_view,
    })
}

fn not_a_tenant(tenant: &str) -> String {
    format!("`{tenant}` is not a tenant name: OceanBase tenant names are letters, digits and `_`")
}

fn valid_tenant(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// This kind in the configuration ([`super::KINDS`]).
pub(crate) const KIND: super::KindEntry = super::KindEntry {
    name: "oceanbase",
    keys,
    foreign_key_hint: "",
    validate,
    expected_tenants,
    fronts: false,
    behind: super::nothing_in_front,
};
