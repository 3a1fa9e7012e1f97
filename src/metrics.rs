//! Every exported metric: its name, help, type and labels, in one place. Dashboards
//! and alerts depend on these names; change them only with a changelog entry.
//!
//! The exposition is encoded from the published [`TargetStatus`]es through a
//! prometheus-client `Collector`: each target's samples once per change of that
//! target, split by family, so `snapshot` assembles the whole exposition (and one
//! target's, for `/probe`) by concatenation, never per scrape.

mod connections;
mod families;
mod horizon;
mod labels;
mod limits;

pub use families::EncodedFamilies;
use labels::{BlockerLabels, SeriesLabels, TopLabels};

use crate::history::HealthReading;
use crate::stats::own::{Family, Series, Value};
use crate::stats::{CollectParts, Counts, TenantStats};
use crate::status::{TargetStatus, TenantStatus};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

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
pub const TRANSACTION_SESSIONS: &str = "dbsession_transaction_sessions";
pub const IDLE_IN_TRANSACTION: &str = "dbsession_idle_in_transaction_sessions";
pub const USER_IDLE_IN_TRANSACTION: &str = "dbsession_user_idle_in_transaction_sessions";
pub const CLIENT_IDLE_IN_TRANSACTION: &str = "dbsession_client_idle_in_transaction_sessions";
pub const MAX_TRANSACTION_AGE: &str = "dbsession_max_transaction_age_seconds";
pub const MAX_IDLE_IN_TRANSACTION: &str = "dbsession_max_idle_in_transaction_seconds";
pub const LOCK_WAITING: &str = "dbsession_lock_waiting_sessions";
pub const MAX_LOCK_WAIT: &str = "dbsession_max_lock_wait_seconds";
pub const TOP_BLOCKER: &str = "dbsession_top_blocker_sessions";
pub const STATE_SESSIONS: &str = "dbsession_state_sessions";
pub const SESSIONS_LIMIT: &str = "dbsession_sessions_limit";
pub const USER_SESSIONS_LIMIT: &str = "dbsession_user_sessions_limit";
pub const DB_SESSIONS_LIMIT: &str = "dbsession_db_sessions_limit";
/// Written as `dbsession_deadlocks_total`: prometheus-client appends `_total`.
pub const DEADLOCKS: &str = "dbsession_deadlocks";
pub const WAIT_EVENT_SESSIONS: &str = "dbsession_wait_event_sessions";
/// Written as `dbsession_ash_samples_total`: prometheus-client appends `_total`.
pub const ASH_SAMPLES: &str = "dbsession_ash_samples";
pub const SQL_ACTIVE_SESSIONS: &str = "dbsession_sql_active_sessions";
pub const BUILD_INFO: &str = "dbsession_exporter_build_info";
pub const RELOAD_SUCCESSFUL: &str = "dbsession_config_last_reload_successful";
pub const RELOAD_SUCCESS_TIME: &str = "dbsession_config_last_reload_success_timestamp_seconds";
pub const HISTORY_BYTES: &str = "dbsession_history_bytes";
pub const HISTORY_OLDEST: &str = "dbsession_history_oldest_timestamp_seconds";
pub const HISTORY_RECORDING: &str = "dbsession_history_recording";
/// Written as `dbsession_history_errors_total`: prometheus-client appends `_total`.
pub const HISTORY_ERRORS: &str = "dbsession_history_errors";

/// A tenant's values of one dimension.
type Values = fn(&TenantStats) -> &std::collections::BTreeMap<String, Counts>;

/// One per-dimension pair of families: name of the label, and the two metric names.
struct Dimension {
    label: &'static str,
    sessions: &'static str,
    active: &'static str,
    what: &'static str,
    values: fn(&TenantStats) -> &std::collections::BTreeMap<String, Counts>,
    /// Whether a tenant's target collects it (an optional part).
    collected: fn(&CollectParts) -> bool,
}

const DIMENSIONS: [Dimension; 5] = [
    Dimension {
        label: "db",
        sessions: "dbsession_db_sessions",
        active: "dbsession_db_active_sessions",
        what: "per current database (__none__: no database selected)",
        values: |s| &s.by_db,
        collected: |_| true,
    },
    Dimension {
        label: "user",
        sessions: "dbsession_user_sessions",
        active: "dbsession_user_active_sessions",
        what: "per database user",
        values: |s| &s.by_user,
        collected: |_| true,
    },
    Dimension {
        label: "client_ip",
        sessions: "dbsession_client_sessions",
        active: "dbsession_client_active_sessions",
        what: "per client address (__none__: background threads)",
        values: |s| &s.by_client,
        collected: |_| true,
    },
    Dimension {
        label: "svr_ip",
        sessions: "dbsession_server_sessions",
        active: "dbsession_server_active_sessions",
        what: "per server the sessions are on (the target's address for a single server)",
        values: |s| &s.by_server,
        collected: |_| true,
    },
    Dimension {
        label: "application",
        sessions: "dbsession_application_sessions",
        active: "dbsession_application_active_sessions",
        what: "per application, the program that opened them (PostgreSQL's application_name, MySQL's program_name connection attribute, OceanBase's MODULE else CLIENT_INFO; __none__: it gave none)",
        values: |s| &s.by_application,
        collected: |p| p.applications,
    },
];

#[derive(Debug)]
struct SessionCollector {
    targets: Vec<Arc<TargetStatus>>,
    /// The families the kinds' own statistics fill (`source::OWN_FAMILIES`).
    own: &'static [&'static Family],
}

/// Encodes the per-target families (OpenMetrics text, no `# EOF`) for `targets`.
/// With no targets it yields the headers alone, which is how the exposition is
/// assembled from per-target chunks (see `snapshot`).
pub fn encode_families(
    targets: &[Arc<TargetStatus>],
    own: &'static [&'static Family],
) -> Result<EncodedFamilies, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SessionCollector {
        targets: targets.to_vec(),
        own,
    }));
    let mut out = String::with_capacity(estimated_size(targets));
    prometheus_client::encoding::text::encode_registry(&mut out, &registry)?;
    // The estimate is a ceiling (a quarter above the text of the scale scenario's
    // 85,000 series): give the rest back, as the text lives until the next cycle,
    // beside the exposition assembled from it (glibc shrinks a mapped buffer in place).
    out.shrink_to_fit();
    Ok(EncodedFamilies::new(out))
}

/// A little above the encoded size of `targets`, so the buffer is not regrown and
/// copied while encoding (a large cluster encodes to megabytes).
fn estimated_size(targets: &[Arc<TargetStatus>]) -> usize {
    // Bytes per series line (names and labels), series per tenant beside its values.
    const LINE: usize = 128;
    const PER_TENANT: usize = 16;
    let series: usize = targets
        .iter()
        .flat_map(|t| t.tenants.values())
        .map(|status| match status {
            TenantStatus::Up(s) => {
                let values = s.by_db.len()
                    + s.by_user.len()
                    + s.by_client.len()
                    + s.by_server.len()
                    + s.by_application.len();
                let reasons =
                    s.by_state.len() + s.blockers.len() + s.by_wait.len() + s.by_statement.len();
                PER_TENANT + 2 * values + s.top.len() + reasons
            }
            TenantStatus::Down => 1,
        })
        .sum::<usize>()
        + targets
            .iter()
            .filter_map(|t| t.own.as_ref())
            .map(|own| own.series().len())
            .sum::<usize>();
    16 * 1024 + series * LINE
}

/// The state of configuration (re)loads, for the `dbsession_config_*` metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReloadStatus {
    pub last_successful: bool,
    /// Unix time of the last successful load (the start counts as one).
    pub last_success: std::time::SystemTime,
}

/// Encodes the process-wide families (build info, config reloads, the session
/// history's recorder when it runs) with headers.
pub fn encode_process(
    reload: ReloadStatus,
    history: Option<HealthReading>,
) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ProcessCollector { reload, history }));
    let mut out = String::with_capacity(1024);
    prometheus_client::encoding::text::encode_registry(&mut out, &registry)?;
    Ok(out)
}

#[derive(Debug)]
struct ProcessCollector {
    reload: ReloadStatus,
    history: Option<HealthReading>,
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
        if let Some(history) = &self.history {
            encode_history(&mut encoder, history)?;
        }
        Ok(())
    }
}

/// The session history's recorder: none of these series exist without `history:`.
fn encode_history(encoder: &mut DescriptorEncoder, history: &HealthReading) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(
        HISTORY_RECORDING,
        "1 while the session history records; 0 while it cannot (its store could not be opened, or the disk is full: see dbsession_history_errors_total).",
        None,
        MetricType::Gauge,
    )?;
    metric.encode_gauge(&i64::from(history.recording))?;
    let mut metric = encoder.encode_descriptor(
        HISTORY_BYTES,
        "Bytes the session history's store takes on disk (its file and write-ahead log), read once a minute.",
        None,
        MetricType::Gauge,
    )?;
    metric.encode_gauge(&(history.bytes as i64))?;
    if let Some(oldest) = history.oldest {
        let mut metric = encoder.encode_descriptor(
            HISTORY_OLDEST,
            "Unix time of the oldest cycle the session history keeps.",
            None,
            MetricType::Gauge,
        )?;
        metric.encode_gauge(&oldest)?;
    }
    let mut metric = encoder.encode_descriptor(
        HISTORY_ERRORS,
        "Failures of the session history, by reason: open (the store could not be opened; one per try), unreadable (corrupt or another version: moved aside), disk_full (recording paused; one per try), write (a cycle or the bounds not written), behind (the store fell behind and a cycle was dropped).",
        None,
        MetricType::Counter,
    )?;
    for (reason, n) in &history.errors {
        metric
            .encode_family(&[("reason", reason.label())])?
            .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(n, None)?;
    }
    Ok(())
}

impl SessionCollector {
    /// The families the kinds' own statistics fill, each with its header whether or
    /// not a target has series of it.
    fn own_families(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let series: Vec<(&TargetStatus, Vec<Series>)> = self
            .targets
            .iter()
            .filter_map(|target| Some((target.as_ref(), target.own.as_ref()?.series())))
            .collect();
        for family in self.own {
            let mut metric =
                encoder.encode_descriptor(family.name, family.help, None, MetricType::Gauge)?;
            for (target, series) in &series {
                for one in series.iter().filter(|one| one.family == *family) {
                    let extra: Vec<(&'static str, &str)> = one
                        .labels
                        .iter()
                        .map(|(name, value)| (*name, value.as_str()))
                        .collect();
                    let labels = SeriesLabels {
                        target,
                        tenant: None,
                        extra: &extra,
                    };
                    let mut series = metric.encode_family(&labels)?;
                    match one.value {
                        Value::Count(n) => series.encode_gauge(&n)?,
                        Value::Amount(x) => series.encode_gauge(&x)?,
                    }
                }
            }
        }
        Ok(())
    }

    /// Every (target, tenant, stats) whose last cycle succeeded.
    fn up_tenants(&self) -> impl Iterator<Item = (&TargetStatus, &str, &TenantStats)> {
        self.targets.iter().flat_map(|t| {
            t.tenants
                .iter()
                .filter_map(move |(name, status)| match status {
                    TenantStatus::Up(stats) => Some((t.as_ref(), name.as_str(), stats.as_ref())),
                    TenantStatus::Down => None,
                })
        })
    }

    /// One series per tenant that has a `value` (a gauge or a counter); none for a
    /// tenant whose engine does not say.
    fn tenant_optional(
        &self,
        encoder: &mut DescriptorEncoder,
        (name, help, kind): (&str, &str, MetricType),
        value: fn(&TenantStats) -> Option<u64>,
    ) -> fmt::Result {
        let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
        for (target, tenant, stats) in self.up_tenants() {
            let Some(n) = value(stats) else {
                continue;
            };
            let labels = SeriesLabels {
                target,
                tenant: Some(tenant),
                extra: &[],
            };
            let mut family = metric.encode_family(&labels)?;
            match kind {
                MetricType::Counter => family.encode_counter::<SeriesLabels, _, f64>(&n, None)?,
                _ => family.encode_gauge(&n)?,
            }
        }
        Ok(())
    }

    fn tenant_gauge<V: EncodeGaugeValue>(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        value: fn(&TenantStats) -> V,
    ) -> fmt::Result {
        self.part_gauge(encoder, name, help, |_| true, value)
    }

    /// A per-tenant gauge of an optional part: tenants whose target does not collect
    /// it (`collected` false) have no series.
    fn part_gauge<V: EncodeGaugeValue>(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        collected: fn(&CollectParts) -> bool,
        value: fn(&TenantStats) -> V,
    ) -> fmt::Result {
        let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (target, tenant, stats) in self.up_tenants() {
            if !collected(&stats.parts) {
                continue;
            }
            let labels = SeriesLabels {
                target,
                tenant: Some(tenant),
                extra: &[],
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
            (dim.active, format!("Active sessions {}.", dim.what))
        } else {
            (dim.sessions, format!("Sessions {}.", dim.what))
        };
        let mut metric = encoder.encode_descriptor(name, &help, None, MetricType::Gauge)?;
        for (target, tenant, stats) in self.up_tenants() {
            if !(dim.collected)(&stats.parts) {
                continue;
            }
            for (value, counts) in (dim.values)(stats) {
                let labels = SeriesLabels {
                    target,
                    tenant: Some(tenant),
                    extra: &[(dim.label, value)],
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

    /// Why sessions pile up: open transactions, idle ones inside them, lock waits
    /// and who they wait on, sessions by command and state. Each family covers the
    /// tenants whose target collects its part.
    fn transactions_and_locks(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        self.part_gauge(
            encoder,
            TRANSACTION_SESSIONS,
            "Sessions with an open transaction, read-only ones included (docs/metrics.md says how each engine tells).",
            |p| p.transactions,
            |s| s.transaction_sessions,
        )?;
        self.part_gauge(
            encoder,
            IDLE_IN_TRANSACTION,
            "Sessions with an open transaction that are not running a statement (idle in transaction).",
            |p| p.transactions,
            |s| s.idle_in_transaction_sessions,
        )?;
        self.idle_dimension(
            encoder,
            USER_IDLE_IN_TRANSACTION,
            "user",
            "per database user",
            |s| &s.by_user,
        )?;
        self.idle_dimension(
            encoder,
            CLIENT_IDLE_IN_TRANSACTION,
            "client_ip",
            "per client address",
            |s| &s.by_client,
        )?;
        self.part_gauge(
            encoder,
            MAX_TRANSACTION_AGE,
            "Age of the tenant's oldest open transaction, in seconds; 0 when none.",
            |p| p.transactions,
            |s| s.max_transaction_age,
        )?;
        self.part_gauge(
            encoder,
            MAX_IDLE_IN_TRANSACTION,
            "Longest time a session has sat idle inside an open transaction (its TIME since the last statement), in seconds; 0 when none.",
            |p| p.transactions,
            |s| s.max_idle_in_transaction,
        )?;
        self.part_gauge(
            encoder,
            LOCK_WAITING,
            "Sessions waiting for a lock: row locks, and the metadata and table locks an engine reports (docs/metrics.md says which).",
            |p| p.locks,
            |s| s.lock_waiting_sessions,
        )?;
        self.part_gauge(
            encoder,
            MAX_LOCK_WAIT,
            "Longest current lock wait, in seconds; 0 when none waits.",
            |p| p.locks,
            |s| s.max_lock_wait,
        )?;
        let mut metric = encoder.encode_descriptor(
            TOP_BLOCKER,
            "Sessions waiting for a lock held by this session, for the tenant's top blockers (rank 1 the most waited on; top_sessions per tenant), with what locates the session; never its SQL text.",
            None,
            MetricType::Gauge,
        )?;
        for (target, tenant, stats) in self.up_tenants() {
            if !stats.parts.locks {
                continue;
            }
            for (i, blocker) in stats.blockers.iter().enumerate() {
                let labels = BlockerLabels {
                    target,
                    tenant,
                    rank: i + 1,
                    blocker,
                };
                metric
                    .encode_family(&labels)?
                    .encode_gauge(&blocker.waiters)?;
            }
        }
        let mut metric = encoder.encode_descriptor(
            STATE_SESSIONS,
            "Sessions by command and state as the engine reports them (__none__: empty), under the cardinality guard.",
            None,
            MetricType::Gauge,
        )?;
        for (target, tenant, stats) in self.up_tenants() {
            if !stats.parts.states {
                continue;
            }
            for ((command, state), n) in &stats.by_state {
                let labels = SeriesLabels {
                    target,
                    tenant: Some(tenant),
                    extra: &[("command", command), ("state", state)],
                };
                metric.encode_family(&labels)?.encode_gauge(n)?;
            }
        }
        Ok(())
    }

    /// What the active sessions are doing: their waits, and the statements they run.
    fn waits_and_statements(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let mut metric = encoder.encode_descriptor(
            WAIT_EVENT_SESSIONS,
            "Active sessions by what they wait on now (PostgreSQL's wait_event_type and wait_event, MySQL's performance_schema wait instrument); wait_class=\"CPU\" for those waiting for nothing. Adds up to dbsession_active_sessions; under the cardinality guard.",
            None,
            MetricType::Gauge,
        )?;
        for (target, tenant, stats) in self.up_tenants() {
            if !stats.parts.waits {
                continue;
            }
            for ((class, event), n) in &stats.by_wait {
                let labels = SeriesLabels {
                    target,
                    tenant: Some(tenant),
                    extra: &[("wait_class", class), ("wait_event", event)],
                };
                metric.encode_family(&labels)?.encode_gauge(n)?;
            }
        }
        let mut metric = encoder.encode_descriptor(
            SQL_ACTIVE_SESSIONS,
            "Active sessions running each statement (OceanBase's SQL_ID, PostgreSQL's query_id, MySQL's statement digest), the tenant's top_sessions most frequent ones and __other__; never the SQL text.",
            None,
            MetricType::Gauge,
        )?;
        for (target, tenant, stats) in self.up_tenants() {
            if !stats.parts.statements {
                continue;
            }
            for (sql_id, n) in &stats.by_statement {
                let labels = SeriesLabels {
                    target,
                    tenant: Some(tenant),
                    extra: &[("sql_id", sql_id)],
                };
                metric.encode_family(&labels)?.encode_gauge(n)?;
            }
        }
        Ok(())
    }

    /// Idle-in-transaction sessions per value of a dimension: only values with some,
    /// so a large connection pool costs no series while all is well.
    fn idle_dimension(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        label: &'static str,
        what: &str,
        values: fn(&TenantStats) -> &std::collections::BTreeMap<String, Counts>,
    ) -> fmt::Result {
        let help = format!(
            "Sessions idle inside an open transaction {what}; values without any have no series."
        );
        let mut metric = encoder.encode_descriptor(name, &help, None, MetricType::Gauge)?;
        for (target, tenant, stats) in self.up_tenants() {
            if !stats.parts.transactions {
                continue;
            }
            for (value, counts) in values(stats) {
                if counts.idle_in_transaction == 0 {
                    continue;
                }
                let labels = SeriesLabels {
                    target,
                    tenant: Some(tenant),
                    extra: &[(label, value)],
                };
                metric
                    .encode_family(&labels)?
                    .encode_gauge(&counts.idle_in_transaction)?;
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
                        extra: &[],
                    };
                    metric
                        .encode_family(&labels)?
                        .encode_gauge(&i64::from(target.is_up()))?;
                }
                continue;
            }
            for (tenant, status) in target.tenants.iter() {
                let labels = SeriesLabels {
                    target,
                    tenant: Some(tenant),
                    extra: &[],
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
                extra: &[],
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
                    extra: &[],
                };
                metric
                    .encode_family(&labels)?
                    .encode_gauge(&took.as_secs_f64())?;
            }
        }

        let mut metric = encoder.encode_descriptor(
            COLLECT_ERRORS,
            "Failed collection cycles of this target, by reason: connect, auth, timeout, query; for targets read over HTTPS also bad_request (HTTP 400 or another 4xx), forbidden (403) and server (5xx).",
            None,
            MetricType::Counter,
        )?;
        for target in &self.targets {
            for (reason, &count) in &target.errors {
                let labels = SeriesLabels {
                    target,
                    tenant: None,
                    extra: &[("reason", reason.as_str())],
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
        self.tenant_gauge(&mut encoder, SESSIONS, "Sessions of the tenant.", |s| {
            s.sessions
        })?;
        self.tenant_gauge(
            &mut encoder,
            ACTIVE_SESSIONS,
            "Active sessions of the tenant: running a statement, not idle (docs/metrics.md says how each engine tells).",
            |s| s.active_sessions,
        )?;
        self.tenant_gauge(
            &mut encoder,
            MAX_ACTIVE_TIME,
            "Longest TIME among the tenant's active sessions, in seconds; 0 when none is active.",
            |s| s.max_active_time,
        )?;
        for dim in &DIMENSIONS {
            self.dimension(&mut encoder, dim, false)?;
            self.dimension(&mut encoder, dim, true)?;
        }
        let mut metric = encoder.encode_descriptor(
            TOP_ACTIVE_SESSION,
            "TIME of the tenant's longest active sessions, rank 1 the longest (top_sessions per tenant), with what locates the session; never its SQL text.",
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
        self.transactions_and_locks(&mut encoder)?;
        self.horizon(&mut encoder)?;
        self.limits_and_deadlocks(&mut encoder)?;
        self.connections(&mut encoder)?;
        self.waits_and_statements(&mut encoder)?;
        self.own_families(&mut encoder)?;
        let mut metric = encoder.encode_descriptor(
            SERIES_DROPPED,
            "Distinct values of a dimension (db, user, client_ip, state: command and state pairs; application and wait_event, wait class and event pairs, only once some are; dbss_database for DBSS targets) summed into the `__other__` series by the cardinality guard (max_series_per_dimension); totals stay exact.",
            None,
            MetricType::Gauge,
        )?;
        for (target, tenant, stats) in self.up_tenants() {
            let dropped = stats.dropped;
            // The dimensions of waits and applications have a series once values were
            // summed away (a thousand tenants' zeros would be two thousand series).
            for (dimension, count, always) in [
                ("db", dropped.db, true),
                ("user", dropped.user, true),
                ("client_ip", dropped.client, true),
                ("state", dropped.state, true),
                ("application", dropped.application, false),
                ("wait_event", dropped.wait, false),
            ] {
                if !always && count == 0 {
                    continue;
                }
                let labels = SeriesLabels {
                    target,
                    tenant: Some(tenant),
                    extra: &[("dimension", dimension)],
                };
                metric
                    .encode_family(&labels)?
                    .encode_gauge(&(count as u64))?;
            }
        }
        for target in &self.targets {
            let Some(own) = &target.own else {
                continue;
            };
            for (dimension, count) in own.dropped() {
                let labels = SeriesLabels {
                    target,
                    tenant: None,
                    extra: &[("dimension", dimension)],
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
