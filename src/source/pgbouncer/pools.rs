//! A PgBouncer's pools as metric families of their own (`dbsession_pool_*`), beside
//! its clients' session statistics: where a pile-up starts before the database sees
//! it (clients waiting for a server connection, and for how long).

use super::show::{Limits, Pool, ADMIN_DB, SERVER_STATES};
use crate::stats::own::{Family, KindStatistics, Series, Value};
use crate::stats::OTHER_LABEL;
use std::collections::BTreeMap;

pub static WAITING_CLIENTS: Family = Family {
    name: "dbsession_pool_waiting_clients",
    help: "Clients of a PgBouncer pool (database and user) waiting for a server connection (cl_waiting).",
};

pub static MAX_WAIT: Family = Family {
    name: "dbsession_pool_max_wait_seconds",
    help: "How long the oldest waiting client of a PgBouncer pool has waited for a server connection (maxwait), in seconds; 0 when none waits.",
};

pub static SERVER_CONNECTIONS: Family = Family {
    name: "dbsession_pool_server_connections",
    help: "Server connections of a PgBouncer pool by state: active (linked to a client), idle, used, tested, login.",
};

pub static POOL_SIZE: Family = Family {
    name: "dbsession_pool_size",
    help: "The most server connections a PgBouncer pool opens (its database's pool_size, else default_pool_size), read every limits_interval.",
};

/// Every family of this kind's own, registered in `source::OWN_FAMILIES`.
pub const FAMILIES: [&Family; 4] = [&WAITING_CLIENTS, &MAX_WAIT, &SERVER_CONNECTIONS, &POOL_SIZE];

/// One pool's numbers, keyed by (db, user).
#[derive(Debug, Clone, Default, PartialEq)]
struct PoolNumbers {
    waiting: u64,
    max_wait: f64,
    servers: [u64; 5],
    size: Option<u64>,
}

/// A cycle's pools (the admin console's own left out), with their sizes.
#[derive(Debug, Default, PartialEq)]
pub struct PoolStatistics {
    pools: BTreeMap<(String, String), PoolNumbers>,
    dropped: usize,
}

impl PoolStatistics {
    pub fn new(pools: Vec<Pool>, limits: &Limits) -> Self {
        let pools = pools
            .into_iter()
            .filter(|pool| pool.db != ADMIN_DB)
            .map(|pool| {
                let size = limits.pool_size(&pool.db);
                let numbers = PoolNumbers {
                    waiting: pool.waiting_clients,
                    max_wait: pool.max_wait,
                    servers: pool.servers,
                    size,
                };
                ((pool.db, pool.user), numbers)
            })
            .collect();
        Self { pools, dropped: 0 }
    }
}

impl KindStatistics for PoolStatistics {
    /// Keeps the `max` pools with the most waiting clients (then server
    /// connections); the rest are summed into one pool `__other__`/`__other__`
    /// (their longest wait is the longest of them).
    fn cap(&mut self, max: usize) {
        if max == 0 || self.pools.len() <= max {
            return;
        }
        let mut ranked: Vec<_> = std::mem::take(&mut self.pools).into_iter().collect();
        ranked.sort_by(|(a_key, a), (b_key, b)| {
            let weight = |p: &PoolNumbers| (p.waiting, p.servers.iter().sum::<u64>());
            weight(b).cmp(&weight(a)).then_with(|| a_key.cmp(b_key))
        });
        let rest = ranked.split_off(max.saturating_sub(1));
        self.dropped = rest.len();
        let mut other = PoolNumbers::default();
        for (_, pool) in rest {
            other.waiting += pool.waiting;
            other.max_wait = other.max_wait.max(pool.max_wait);
            for (sum, n) in other.servers.iter_mut().zip(pool.servers) {
                *sum += n;
            }
            other.size = match (other.size, pool.size) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            };
        }
        self.pools = ranked.into_iter().collect();
        self.pools
            .insert((OTHER_LABEL.to_string(), OTHER_LABEL.to_string()), other);
    }

    fn series(&self) -> Vec<Series> {
        let mut series = Vec::with_capacity(self.pools.len() * 8);
        let labels =
            |db: &str, user: &str| vec![("db", db.to_string()), ("user", user.to_string())];
        for ((db, user), pool) in &self.pools {
            series.push(Series {
                family: &WAITING_CLIENTS,
                labels: labels(db, user),
                value: Value::Count(pool.waiting),
            });
            series.push(Series {
                family: &MAX_WAIT,
                labels: labels(db, user),
                value: Value::Amount(pool.max_wait),
            });
            for (state, n) in SERVER_STATES.iter().zip(pool.servers) {
                let mut labels = labels(db, user);
                labels.push(("state", state.to_string()));
                series.push(Series {
                    family: &SERVER_CONNECTIONS,
                    labels,
                    value: Value::Count(n),
                });
            }
            if let Some(size) = pool.size {
                series.push(Series {
                    family: &POOL_SIZE,
                    labels: labels(db, user),
                    value: Value::Count(size),
                });
            }
        }
        series
    }

    fn dropped(&self) -> Vec<(&'static str, usize)> {
        vec![("pool", self.dropped)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(db: &str, user: &str, waiting: u64, max_wait: f64) -> Pool {
        Pool {
            db: db.into(),
            user: user.into(),
            active_clients: 2,
            waiting_clients: waiting,
            servers: [2, 0, 0, 0, 0],
            max_wait,
            mode: "session".into(),
        }
    }

    #[test]
    fn each_pool_has_its_series_and_the_admin_console_none() {
        let mut limits = Limits {
            default_pool_size: Some(20),
            ..Limits::default()
        };
        limits.dbs.insert("shop".into(), Some(2));
        let stats = PoolStatistics::new(
            vec![
                pool("pgbouncer", "pgbouncer", 0, 0.0),
                pool("shop", "app", 4, 1.5),
            ],
            &limits,
        );
        let series: Vec<(&str, Vec<String>, Value)> = stats
            .series()
            .into_iter()
            .map(|s| {
                let labels = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                (s.family.name, labels, s.value)
            })
            .collect();
        assert_eq!(series.len(), 8, "{series:?}");
        assert_eq!(
            series[0],
            (
                "dbsession_pool_waiting_clients",
                vec!["db=shop".into(), "user=app".into()],
                Value::Count(4)
            )
        );
        assert_eq!(series[1].2, Value::Amount(1.5));
        assert_eq!(series[2].1[2], "state=active");
        assert_eq!(series[2].2, Value::Count(2));
        assert_eq!(
            series[7],
            (
                "dbsession_pool_size",
                vec!["db=shop".into(), "user=app".into()],
                Value::Count(2)
            )
        );
    }

    #[test]
    fn the_guard_keeps_the_pools_with_waiters_and_sums_the_rest() {
        let pools = (0..5)
            .map(|i| pool(&format!("db{i}"), "app", i, i as f64))
            .collect();
        let mut stats = PoolStatistics::new(pools, &Limits::default());
        stats.cap(3);
        let kept: Vec<&str> = stats.pools.keys().map(|(db, _)| db.as_str()).collect();
        assert_eq!(kept, ["__other__", "db3", "db4"]);
        let other = &stats.pools[&(OTHER_LABEL.to_string(), OTHER_LABEL.to_string())];
        assert_eq!(
            (other.waiting, other.max_wait, other.servers[0]),
            (3, 2.0, 6)
        );
        assert_eq!(stats.dropped(), [("pool", 3)]);
    }
}
