//! The server's own connection counters (read with the limits): what a snapshot of
//! the sessions cannot see, a storm of short connections and the clients turned
//! away at `max_connections`.

use super::labels::SeriesLabels;
use super::SessionCollector;
use crate::stats::Periodic;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use std::collections::BTreeMap;
use std::fmt;

/// Written as `dbsession_connections_total`: prometheus-client appends `_total`.
pub const CONNECTIONS: &str = "dbsession_connections";
/// Written as `dbsession_connections_refused_total`.
pub const CONNECTIONS_REFUSED: &str = "dbsession_connections_refused";
/// Written as `dbsession_sessions_ended_total`.
pub const SESSIONS_ENDED: &str = "dbsession_sessions_ended";
pub const SESSIONS_PEAK: &str = "dbsession_sessions_peak";

/// Counters by reason: which ones a tenant's read found.
type ByReason = fn(&Periodic) -> &BTreeMap<String, u64>;

impl SessionCollector {
    /// The connection counters of every tenant whose server keeps them; no series
    /// where it keeps none (PostgreSQL refuses without counting, seekdb counts no
    /// logons).
    pub(super) fn connections(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        self.tenant_optional(
            encoder,
            (
                CONNECTIONS,
                "Connections the server was asked for since its start: MySQL's Connections (attempts), PostgreSQL's pg_stat_database.sessions summed (14+), OceanBase's `user logons cumulative` summed over the tenant's servers. rate() is the tenant's connection rate. Read every limits_interval.",
                MetricType::Counter,
            ),
            |s| s.periodic.as_ref()?.connections,
        )?;
        let periodic = || {
            self.up_tenants().filter_map(|(target, tenant, stats)| {
                Some((target, tenant, stats.periodic.as_deref()?))
            })
        };
        let by_reason: [(&str, &str, ByReason); 2] = [
            (
                CONNECTIONS_REFUSED,
                "Connections the server refused since its start, by reason: max_connections (MySQL's Connection_errors_max_connections), aborted (Aborted_connects: any failed attempt, a refusal at max_connections included), access_denied (MariaDB's Access_denied_errors), failed (OceanBase's `user logons failed cumulative`). PostgreSQL counts none. Read every limits_interval.",
                |p| &p.refused,
            ),
            (
                SESSIONS_ENDED,
                "Sessions ended since the server's start, by reason, as the engine counts them: PostgreSQL's abandoned, fatal and killed (pg_stat_database, 14+); MySQL's aborted (Aborted_clients: closed without a proper goodbye); OceanBase's logout (`user logouts cumulative`: every session that ended). Read every limits_interval.",
                |p| &p.ended,
            ),
        ];
        for (name, help, counts) in by_reason {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (target, tenant, found) in periodic() {
                for (reason, n) in counts(found) {
                    let labels = SeriesLabels {
                        target,
                        tenant: Some(tenant),
                        extra: &[("reason", reason)],
                    };
                    metric
                        .encode_family(&labels)?
                        .encode_counter::<SeriesLabels, _, f64>(n, None)?;
                }
            }
        }
        self.tenant_optional(
            encoder,
            (
                SESSIONS_PEAK,
                "The most sessions the server has had at once since its start (MySQL's Max_used_connections), beside dbsession_sessions_limit; where the engine keeps one. Read every limits_interval.",
                MetricType::Gauge,
            ),
            |s| s.periodic.as_ref()?.peak,
        )
    }
}
