//! The vacuum horizon: the oldest snapshot (or transaction id) a session holds keeps
//! every row deleted since from being vacuumed. Only some sessions idle in a
//! transaction hold one, so these say which do (engines that report it:
//! PostgreSQL's `backend_xmin` and `backend_xid`).

use super::labels::SeriesLabels;
use super::SessionCollector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use std::fmt;

pub const HORIZON_AGE: &str = "dbsession_xmin_horizon_age";
pub const HORIZON_HOLDER_AGE: &str = "dbsession_horizon_holder_age";
pub const IDLE_HOLDING_HORIZON: &str = "dbsession_idle_in_transaction_holding_horizon_sessions";
pub const MAX_IDLE_HOLDING_HORIZON: &str =
    "dbsession_max_idle_in_transaction_holding_horizon_seconds";

impl SessionCollector {
    /// The horizon's age, the sessions holding it back, and how many of those idle
    /// in a transaction; no series where the engine does not say.
    pub(super) fn horizon(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        self.tenant_optional(
            encoder,
            (
                HORIZON_AGE,
                "Age in transactions of the oldest snapshot or transaction id a client session holds (PostgreSQL: the oldest of backend_xmin and backend_xid): vacuum keeps every row deleted since. No series while no session holds one.",
                MetricType::Gauge,
            ),
            |s| s.horizon_age,
        )?;
        let mut metric = encoder.encode_descriptor(
            HORIZON_HOLDER_AGE,
            "Age in transactions of the snapshot each of the tenant's top_sessions oldest holders holds, with what locates the session (end it, or its transaction, to free the horizon).",
            None,
            MetricType::Gauge,
        )?;
        for (target, tenant, stats) in self.up_tenants() {
            for holder in &stats.horizon_holders {
                let id = holder.session_id.to_string();
                let labels = SeriesLabels {
                    target,
                    tenant: Some(tenant),
                    extra: &[
                        ("session_id", &id),
                        ("user", &holder.user),
                        ("db", &holder.db),
                        ("client_ip", &holder.client),
                        ("application", &holder.application),
                    ],
                };
                metric.encode_family(&labels)?.encode_gauge(&holder.age)?;
            }
        }
        self.tenant_optional(
            encoder,
            (
                IDLE_HOLDING_HORIZON,
                "Of the sessions idle in a transaction, those holding back vacuum (PostgreSQL: with a backend_xmin or a backend_xid: a snapshot, or a write); the others (READ COMMITTED reads between statements) do not.",
                MetricType::Gauge,
            ),
            |s| s.idle_in_transaction_holding_horizon,
        )?;
        let mut metric = encoder.encode_descriptor(
            MAX_IDLE_HOLDING_HORIZON,
            "The longest a session idle in a transaction that holds back vacuum has been idle, in seconds; 0 when none does. What DbSessionIdleInTransaction pages on where the engine says (PostgreSQL).",
            None,
            MetricType::Gauge,
        )?;
        for (target, tenant, stats) in self.up_tenants() {
            if let Some(seconds) = stats.max_idle_holding_horizon {
                let labels = SeriesLabels {
                    target,
                    tenant: Some(tenant),
                    extra: &[],
                };
                metric.encode_family(&labels)?.encode_gauge(&seconds)?;
            }
        }
        Ok(())
    }
}
