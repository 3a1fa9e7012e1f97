//! Every exported metric: its name, help, type and labels, in one place. Dashboards
//! and alerts depend on these names; change them only with a changelog entry.
//!
//! The exposition is encoded from the published [`TargetStatus`]es through a
//! prometheus-client `Collector`: each target's samples once per change of that
//! target, split by family, so `snapshot` assembles the whole exposition (and one
//! target's, for `/probe`) by concatenation, never per scrape.

use crate::snapshot::{TargetStatus, TenantStatus};
use crate::source::Reason;
use crate::stats::{Counts, TenantStats, TopSession};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, LabelSetEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// Appended to the help of every session metric: Prometheus' exporter guidelines ask
/// an exporter that serves cached values to say so.
const CACHED: &str = "Served from the last collection (every collect_interval); a scrape never queries the database.";

pub const UP: &str = "dbsession_up";
pub const SESSIONS: &str = "dbsession_sessions";
pub const ACTIVE_SESSIONS: &str = "dbsession_active_sessions";
pub const MAX_ACTIVE_TIME: &str = "dbsession_max_active_time_seconds";
pub const LAST_SUCCESS: &str = "dbsession_last_collect_success_timestamp_seconds";
pub const COLLECT_DURATION: &str = "dbsession_collect_duration_seconds";
/// Written as `dbsession_collect_errors_total`: prometheus-client appends `_total`.
pub const COLLECT_ERRORS: &str = "dbsession_collect_errors";
pub const SERIES_DROPPED: &str = "dbsession_series_dropped";
pub const TOP_ACTIVE_SESSION: &str = "dbsession_top_active_session_seconds";
pub const BUILD_INFO: &str = "dbsession_exporter_build_info";
pub const RELOAD_SUCCESSFUL: &str = "dbsession_config_last_reload_successful";
pub const RELOAD_SUCCESS_TIME: &str = "dbsession_config_last_reload_success_timestamp_seconds";

/// One per-dimension pair of families: name of the label, and the two metric names.
struct Dimension {
    label: &'static str,
    sessions: &'static str,
    active: &'static str,
    what: &'static str,
    values: fn(&TenantStats) -> &std::collections::BTreeMap<String, Counts>,
}

const DIMENSIONS: [Dimension; 4] = [
    Dimension {
        label: "db",
        sessions: "dbsession_db_sessions",
        active: "dbsession_db_active_sessions",
        what: "per current database (__none__: no database selected)",
        values: |s| &s.by_db,
    },
    Dimension {
        label: "user",
        sessions: "dbsession_user_sessions",
        active: "dbsession_user_active_sessions",
        what: "per database user",
        values: |s| &s.by_user,
    },
    Dimension {
        label: "client_ip",
        sessions: "dbsession_client_sessions",
        active: "dbsession_client_active_sessions",
        what: "per client address (__none__: background threads)",
        values: |s| &s.by_client,
    },
    Dimension {
        label: "svr_ip",
        sessions: "dbsession_server_sessions",
        active: "dbsession_server_active_sessions",
        what: "per server the sessions are on (the target's address for a single server)",
        values: |s| &s.by_server,
    },
];

/// The labels of one series: target, then tenant and one dimension where they apply,
/// then the target's constant labels.
///
/// Written by hand rather than derived: the derive cannot borrow, and encoding
/// 100,000 series should not clone 100,000 label strings.
struct SeriesLabels<'a> {
    target: &'a TargetStatus,
    tenant: Option<&'a str>,
    extra: Option<(&'static str, &'a str)>,
}

impl EncodeLabelSet for SeriesLabels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(3 + self.target.labels.len());
        pairs.push(("target", &self.target.name));
        if let Some(tenant) = self.tenant {
            pairs.push(("tenant", tenant));
        }
        if let Some(extra) = self.extra {
            pairs.push(extra);
        }
        pairs.extend(
            self.target
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        pairs.as_slice().encode(encoder)
    }
}

/// The labels of one of the longest active sessions. Each rank is its own series, and
/// the session in it changes as sessions come and go: bounded by `top_sessions`, but
/// churning, which is why the default is small.
struct TopLabels<'a> {
    target: &'a TargetStatus,
    tenant: &'a str,
    rank: usize,
    session: &'a TopSession,
}

impl EncodeLabelSet for TopLabels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        let rank = self.rank.to_string();
        let session_id = self.session.session_id.to_string();
        let s = self.session;
        let mut pairs: Vec<(&str, &str)> = vec![
            ("target", &self.target.name),
            ("tenant", self.tenant),
            ("rank", &rank),
            ("session_id", &session_id),
            ("user", &s.user),
            ("db", &s.db),
            ("client_ip", &s.client),
            ("sql_id", &s.sql_id),
        ];
        pairs.extend(
            self.target
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        pairs.as_slice().encode(encoder)
    }
}

#[derive(Debug)]
struct SessionCollector {
    targets: Vec<Arc<TargetStatus>>,
}

/// One metric family's text: its `# HELP`/`# TYPE` header and its sample lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FamilyText {
    pub header: String,
    pub samples: String,
}

/// Encodes the per-target families (OpenMetrics text, no `# EOF`) for `targets`,
/// split by family, in the fixed order every encoding uses. With no targets it
/// yields the headers alone, which is how the exposition is assembled from
/// per-target chunks (see `snapshot`).
pub fn encode_families(targets: &[Arc<TargetStatus>]) -> Result<Vec<FamilyText>, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SessionCollector {
        targets: targets.to_vec(),
    }));
    let series: usize = targets.iter().map(|t| t.tenants.len()).sum();
    let mut out = String::with_capacity(4096 + series * 2048);
    prometheus_client::encoding::text::encode_registry(&mut out, &registry)?;
    Ok(split_families(&out))
}

/// Splits OpenMetrics text into families at each `# HELP` line.
fn split_families(text: &str) -> Vec<FamilyText> {
    let mut families: Vec<FamilyText> = Vec::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") {
            families.push(FamilyText::default());
        }
        let Some(family) = families.last_mut() else {
            continue;
        };
        let part = if line.starts_with('#') {
            &mut family.header
        } else {
            &mut family.samples
        };
        part.push_str(line);
        part.push('\n');
    }
    families
}

/// The state of configuration (re)loads, for the `dbsession_config_*` metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReloadStatus {
    pub last_successful: bool,
    /// Unix time of the last successful load (the start counts as one).
    pub last_success: std::time::SystemTime,
}

/// Encodes the process-wide families (build info, config reloads) with headers.
pub fn encode_process(reload: ReloadStatus) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ProcessCollector { reload }));
    let mut out = String::with_capacity(1024);
    prometheus_client::encoding::text::encode_registry(&mut out, &registry)?;
    Ok(out)
}

#[derive(Debug)]
struct ProcessCollector {
    reload: ReloadStatus,
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let mut metric = encoder.encode_descriptor(
            BUILD_INFO,
            "A metric with a constant 1 labelled by the exporter's version, git revision and rustc version.",
            None,
            MetricType::Gauge,
        )?;
        let labels = [
            ("version", crate::VERSION),
            ("revision", env!("SESSION_EXPORTER_REVISION")),
            ("rustc", env!("SESSION_EXPORTER_RUSTC")),
        ];
        metric.encode_family(&labels)?.encode_gauge(&1_i64)?;
        let mut metric = encoder.encode_descriptor(
            RELOAD_SUCCESSFUL,
            "1 if the last configuration load (start, SIGHUP or POST /-/reload) succeeded; 0 if the file was refused and the previous configuration kept running.",
            None,
            MetricType::Gauge,
        )?;
        metric.encode_gauge(&i64::from(self.reload.last_successful))?;
        let mut metric = encoder.encode_descriptor(
            RELOAD_SUCCESS_TIME,
            "Unix time of the last successful configuration load.",
            None,
            MetricType::Gauge,
        )?;
        let seconds = self
            .reload
            .last_success
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        metric.encode_gauge(&seconds)?;
        Ok(())
    }
}

impl SessionCollector {
    /// Every (target, tenant, stats) whose last cycle succeeded.
    fn up_tenants(&self) -> impl Iterator<Item = (&TargetStatus, &str, &TenantStats)> {
        self.targets.iter().flat_map(|t| {
            t.tenants
                .iter()
                .filter_map(move |(name, status)| match status {
                    TenantStatus::Up(stats) => Some((t.as_ref(), name.as_str(), stats)),
                    TenantStatus::Down => None,
                })
        })
    }

    fn tenant_gauge<V: EncodeGaugeValue>(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        value: fn(&TenantStats) -> V,
    ) -> fmt::Result {
        let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (target, tenant, stats) in self.up_tenants() {
            let labels = SeriesLabels {
                target,
                tenant: Some(tenant),
                extra: None,
            };
            metric.encode_family(&labels)?.encode_gauge(&value(stats))?;
        }
        Ok(())
    }

    fn dimension(
        &self,
        encoder: &mut DescriptorEncoder,
        dim: &Dimension,
        active: bool,
    ) -> fmt::Result {
        let (name, help) = if active {
            (
                dim.active,
                format!("Active sessions {}. {CACHED}", dim.what),
            )
        } else {
            (dim.sessions, format!("Sessions {}. {CACHED}", dim.what))
        };
        let mut metric = encoder.encode_descriptor(name, &help, None, MetricType::Gauge)?;
        for (target, tenant, stats) in self.up_tenants() {
            for (value, counts) in (dim.values)(stats) {
                let labels = SeriesLabels {
                    target,
                    tenant: Some(tenant),
                    extra: Some((dim.label, value)),
                };
                let n = if active {
                    counts.active
                } else {
                    counts.sessions
                };
                metric.encode_family(&labels)?.encode_gauge(&n)?;
            }
        }
        Ok(())
    }

    fn health(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let mut metric = encoder.encode_descriptor(
            UP,
            "1 if the last collection of this tenant succeeded; 0 if it failed, timed out, \
             or the configured tenant was not found (tenant=\"\" while no tenant is known yet).",
            None,
            MetricType::Gauge,
        )?;
        for target in &self.targets {
            if target.tenants.is_empty() {
                // Nothing known yet (or a cluster never reached): one series still says
                // whether the target works, so an alert on dbsession_up == 0 fires.
                if target.tried {
                    let labels = SeriesLabels {
                        target,
                        tenant: Some(""),
                        extra: None,
                    };
                    metric
                        .encode_family(&labels)?
                        .encode_gauge(&i64::from(target.is_up()))?;
                }
                continue;
            }
            for (tenant, status) in &target.tenants {
                let labels = SeriesLabels {
                    target,
                    tenant: Some(tenant),
                    extra: None,
                };
                let up = matches!(status, TenantStatus::Up(_));
                metric
                    .encode_family(&labels)?
                    .encode_gauge(&i64::from(up))?;
            }
        }

        let mut metric = encoder.encode_descriptor(
            LAST_SUCCESS,
            "Unix time of this target's last successful collection; 0 before the first.",
            None,
            MetricType::Gauge,
        )?;
        for target in &self.targets {
            let seconds = target
                .last_success
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0.0, |d| d.as_secs_f64());
            let labels = SeriesLabels {
                target,
                tenant: None,
                extra: None,
            };
            metric.encode_family(&labels)?.encode_gauge(&seconds)?;
        }

        let mut metric = encoder.encode_descriptor(
            COLLECT_DURATION,
            "Wall time of this target's last collection cycle (connect and query), in seconds.",
            None,
            MetricType::Gauge,
        )?;
        for target in &self.targets {
            if let Some(took) = target.last_duration {
                let labels = SeriesLabels {
                    target,
                    tenant: None,
                    extra: None,
                };
                metric
                    .encode_family(&labels)?
                    .encode_gauge(&took.as_secs_f64())?;
            }
        }

        let mut metric = encoder.encode_descriptor(
            COLLECT_ERRORS,
            "Failed collection cycles of this target, by reason (connect, auth, timeout, query).",
            None,
            MetricType::Counter,
        )?;
        for target in &self.targets {
            for reason in Reason::ALL {
                let count = target.errors.get(&reason).copied().unwrap_or(0);
                let labels = SeriesLabels {
                    target,
                    tenant: None,
                    extra: Some(("reason", reason.as_str())),
                };
                metric
                    .encode_family(&labels)?
                    .encode_counter::<SeriesLabels, _, f64>(&count, None)?;
            }
        }
        Ok(())
    }
}

impl Collector for SessionCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        self.health(&mut encoder)?;
        self.tenant_gauge(
            &mut encoder,
            SESSIONS,
            &format!("Sessions of the tenant. {CACHED}"),
            |s| s.sessions,
        )?;
        self.tenant_gauge(
            &mut encoder,
            ACTIVE_SESSIONS,
            &format!("Active sessions of the tenant (OceanBase: STATE = 'ACTIVE'; MySQL: COMMAND not idle). {CACHED}"),
            |s| s.active_sessions,
        )?;
        self.tenant_gauge(
            &mut encoder,
            MAX_ACTIVE_TIME,
            &format!("Longest TIME among the tenant's active sessions, in seconds; 0 when none is active. {CACHED}"),
            |s| s.max_active_time,
        )?;
        for dim in &DIMENSIONS {
            self.dimension(&mut encoder, dim, false)?;
            self.dimension(&mut encoder, dim, true)?;
        }
        let mut metric = encoder.encode_descriptor(
            TOP_ACTIVE_SESSION,
            &format!("TIME of the tenant's longest active sessions, rank 1 the longest (top_sessions per tenant), with what locates the session; never its SQL text. {CACHED}"),
            None,
            MetricType::Gauge,
        )?;
        for (target, tenant, stats) in self.up_tenants() {
            for (i, session) in stats.top.iter().enumerate() {
                let labels = TopLabels {
                    target,
                    tenant,
                    rank: i + 1,
                    session,
                };
                metric.encode_family(&labels)?.encode_gauge(&session.time)?;
            }
        }
        let mut metric = encoder.encode_descriptor(
            SERIES_DROPPED,
            "Distinct values of a dimension (db, user, client_ip) summed into the `__other__` series by the cardinality guard (max_series_per_dimension); totals stay exact.",
            None,
            MetricType::Gauge,
        )?;
        for (target, tenant, stats) in self.up_tenants() {
            let folded = stats.folded;
            for (dimension, count) in [
                ("db", folded.db),
                ("user", folded.user),
                ("client_ip", folded.client),
            ] {
                let labels = SeriesLabels {
                    target,
                    tenant: Some(tenant),
                    extra: Some(("dimension", dimension)),
                };
                metric
                    .encode_family(&labels)?
                    .encode_gauge(&(count as u64))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
