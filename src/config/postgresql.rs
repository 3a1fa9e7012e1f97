//! The settings of a `kind: postgresql` target: one PostgreSQL server (a cluster, in
//! PostgreSQL's words), read through `pg_stat_activity`; its one tenant is named
//! after the target.

use super::database::{Database, RawDatabase};
use super::{fields_of, KindInput, TargetKind};
use crate::tls::read_certs;
use rustls::pki_types::CertificateDer;
use serde::Deserialize;
use std::path::PathBuf;

/// A validated `kind: postgresql` target's own settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Postgresql {
    pub database: Database,
    /// The database to connect to. Any one will do: `pg_stat_activity` shows every
    /// session of the server whichever database the exporter is connected to.
    pub dbname: String,
    pub sslmode: SslMode,
    /// CA certificates to verify the server with (`sslrootcert`); the system's when
    /// none are given.
    pub root_certs: Vec<CertificateDer<'static>>,
    /// The targets of poolers in front of this server (`behind:`): its sessions
    /// from them get the real client's address and application.
    pub behind: Vec<String>,
}

/// libpq's `sslmode`, with libpq's meanings: `prefer` and `require` encrypt without
/// checking who answers, `verify-ca` checks the certificate chain, `verify-full` the
/// chain and the host name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    /// TLS when the server offers it, plain otherwise (libpq's default).
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }
}

/// The keys of this kind beyond [`RawDatabase`]'s.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPostgresql {
    database: Option<String>,
    sslmode: Option<String>,
    sslrootcert: Option<PathBuf>,
    behind: Option<Vec<String>>,
}

/// Every key this kind accepts.
pub(super) fn keys() -> Vec<&'static str> {
    [fields_of::<RawDatabase>(), fields_of::<RawPostgresql>()].concat()
}

pub(super) fn validate(input: &mut KindInput<'_>) -> TargetKind {
    let database = input.read::<RawDatabase>().validate(input);
    let raw = input.read::<RawPostgresql>();
    let dbname = raw.database.unwrap_or_else(|| "postgres".to_string());
    if dbname.is_empty() || dbname.chars().any(char::is_control) {
        input.problem(
            "database",
            "is not a database name: name the database to connect to, e.g. postgres",
        );
    }
    let mut sslmode = match raw.sslmode.as_deref() {
        None => SslMode::default(),
        Some(text) => SslMode::parse(text).unwrap_or_else(|| {
            input.problem(
                "sslmode",
                format!(
                    "`{text}` is not an sslmode: use disable, prefer, require, verify-ca or verify-full"
                ),
            );
            SslMode::default()
        }),
    };
    let mut root_certs = Vec::new();
    if let Some(file) = &raw.sslrootcert {
        match read_certs(&input.base_dir.join(file)) {
            Ok(certs) => root_certs = certs,
            Err(message) => input.problem("sslrootcert", message),
        }
        // As libpq: a root certificate with `require` means the chain is checked.
        if sslmode == SslMode::Require {
            sslmode = SslMode::VerifyCa;
        }
        if matches!(sslmode, SslMode::Disable | SslMode::Prefer) {
            input.problem(
                "sslrootcert",
                "is only read with sslmode verify-ca or verify-full (or require): set sslmode, or remove the key",
            );
        }
    }
    let behind = raw.behind.unwrap_or_default();
    if behind.iter().any(|name| name.trim().is_empty()) {
        input.problem(
            "behind",
            "names an empty target: list the names of the PgBouncer targets in front of this server",
        );
    }
    TargetKind::Postgresql(Postgresql {
        database,
        dbname,
        sslmode,
        root_certs,
        behind,
    })
}

/// This kind in the configuration ([`super::KINDS`]).
pub(crate) const KIND: super::KindEntry = super::KindEntry {
    name: "postgresql",
    keys,
    foreign_key_hint: "; a postgresql target has one tenant named after the target",
    validate,
    expected_tenants: super::the_target_is_the_tenant,
    fronts: false,
    behind: |kind| match kind {
        TargetKind::Postgresql(settings) => &settings.behind,
        _ => &[],
    },
};

#[cfg(test)]
mod tests {
    use super::SslMode;

    #[test]
    fn sslmodes_are_libpqs() {
        assert_eq!(SslMode::parse("verify-full"), Some(SslMode::VerifyFull));
        assert_eq!(SslMode::parse("allow"), None, "allow is not supported");
        assert_eq!(SslMode::default(), SslMode::Prefer);
    }
}
