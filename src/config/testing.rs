//! Test builders: a target with every setting at its default, so a unit test names
//! only the fields it cares about (`mysql("maria")`, then change what matters).

use super::mysql::Mysql;
use super::oceanbase::Oceanbase;
use super::*;

/// A database on 10.0.0.1:`port` with account `user`, defaults elsewhere.
pub fn database(user: &str, port: u16) -> Database {
    Database {
        address: Address {
            host: "10.0.0.1".into(),
            port,
        },
        user: user.into(),
        password: Secret::default(),
        top_sessions: DEFAULT_TOP_SESSIONS,
        filter: Filter::default(),
        collect: CollectParts::default(),
        limits_interval: super::database::DEFAULT_LIMITS_INTERVAL,
    }
}

/// Target `name` of `kind`, with the global defaults.
pub fn target(name: &str, kind: TargetKind) -> Target {
    Target {
        name: name.into(),
        labels: Vec::new(),
        collect_interval: DEFAULT_COLLECT_INTERVAL,
        collect_timeout: DEFAULT_COLLECT_TIMEOUT,
        max_series_per_dimension: DEFAULT_MAX_SERIES_PER_DIMENSION,
        history_sessions: None,
        history_sql_text: 0,
        kind,
    }
}

/// OceanBase settings for account `user`: every tenant, the default views.
pub fn oceanbase(user: &str) -> Oceanbase {
    Oceanbase {
        database: database(user, 2881),
        tenants: None,
        tenant: None,
        processlist_view: None,
        tenants_view: None,
        transactions_view: None,
        locks_view: None,
        variables_view: None,
        deadlocks_view: None,
        ash_view: None,
        sysstat_view: None,
    }
}

/// A MySQL target `name` for account `monitor`.
pub fn mysql(name: &str) -> Target {
    target(
        name,
        TargetKind::Mysql(Mysql {
            database: database("monitor", 3306),
        }),
    )
}
