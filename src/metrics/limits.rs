//! The periodic reads' families (see `limits_interval`): the limits beside the
//! counts, and the deadlock and active-session-history counters.

use super::labels::SeriesLabels;
use super::{
    SessionCollector, Values, ASH_SAMPLES, DB_SESSIONS_LIMIT, DEADLOCKS, SESSIONS_LIMIT,
    USER_SESSIONS_LIMIT,
};
use crate::stats::{Periodic, NONE_LABEL, OTHER_LABEL};
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use std::fmt;

impl SessionCollector {
    /// The periodic reads (see `limits_interval`): the limits beside the counts, a
    /// series only where a limit exists, and the deadlock counter.
    pub(super) fn limits_and_deadlocks(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let periodic = || {
            self.up_tenants().filter_map(|(target, tenant, stats)| {
                Some((target, tenant, stats, stats.periodic.as_deref()?))
            })
        };
        let mut metric = encoder.encode_descriptor(
            SESSIONS_LIMIT,
            "Sessions the tenant (the server) accepts: max_connections, less the superuser's reserve on PostgreSQL; no series where it is unlimited. Read every limits_interval.",
            None,
            MetricType::Gauge,
        )?;
        for (target, tenant, _, found) in periodic() {
            if let Some(limit) = found.sessions {
                let labels = SeriesLabels {
                    target,
                    tenant: Some(tenant),
                    extra: &[],
                };
                metric.encode_family(&labels)?.encode_gauge(&limit)?;
            }
        }
        // Limits of the users and databases that have sessions (their own series
        // exist, under the cardinality guard), so a limit never costs a series alone.
        type Limit = fn(&Periodic, &str) -> Option<u64>;
        let scopes: [(&str, &str, &str, Values, Limit); 2] = [
            (
                USER_SESSIONS_LIMIT,
                "user",
                "Sessions the user may open: the account's own limit, else the server's default per user; for users with sessions, no series where unlimited. Read every limits_interval.",
                |s| &s.by_user,
                |p, user| p.user_limit(user),
            ),
            (
                DB_SESSIONS_LIMIT,
                "db",
                "Sessions the database accepts (PostgreSQL's datconnlimit); for databases with sessions, no series where unlimited. Read every limits_interval.",
                |s| &s.by_db,
                |p, db| p.dbs.get(db).copied(),
            ),
        ];
        for (name, label, help, values, limit) in scopes {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (target, tenant, stats, found) in periodic() {
                for value in values(stats).keys() {
                    if value == OTHER_LABEL || value == NONE_LABEL {
                        continue;
                    }
                    if let Some(limit) = limit(found, value) {
                        let labels = SeriesLabels {
                            target,
                            tenant: Some(tenant),
                            extra: &[(label, value)],
                        };
                        metric.encode_family(&labels)?.encode_gauge(&limit)?;
                    }
                }
            }
        }
        let mut metric = encoder.encode_descriptor(
            DEADLOCKS,
            "Deadlocks the database detected and resolved: InnoDB's counter, the sum of pg_stat_database.deadlocks, or the events of OceanBase's deadlock history counted once each since the exporter started (starting from the history's size). Read every limits_interval.",
            None,
            MetricType::Counter,
        )?;
        for (target, tenant, _, found) in periodic() {
            if let Some(count) = found.deadlocks {
                let labels = SeriesLabels {
                    target,
                    tenant: Some(tenant),
                    extra: &[],
                };
                metric
                    .encode_family(&labels)?
                    .encode_counter::<SeriesLabels, _, f64>(&count, None)?;
            }
        }
        let mut metric = encoder.encode_descriptor(
            ASH_SAMPLES,
            "OceanBase's active session history: samples by wait class and wait event (CPU for a session on CPU) since the exporter's first read; each is one active session for one second, so rate() is the average active sessions. Read every limits_interval.",
            None,
            MetricType::Counter,
        )?;
        for (target, tenant, _, found) in periodic() {
            for ((class, event), count) in found.ash.iter().flatten() {
                let labels = SeriesLabels {
                    target,
                    tenant: Some(tenant),
                    extra: &[("wait_class", class), ("wait_event", event)],
                };
                metric
                    .encode_family(&labels)?
                    .encode_counter::<SeriesLabels, _, f64>(count, None)?;
            }
        }
        Ok(())
    }
}
