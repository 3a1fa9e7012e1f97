//! One target's state after its last cycle: what the scheduler records, the publisher
//! encodes, and the HTTP pages and the session API read.
//!
//! A leaf of the pipeline: it depends on the configuration, the statistics and the
//! source errors, and nothing that uses it.

use crate::config::Target;
use crate::error::{Reason, SourceError};
use crate::stats::{Collected, KindStatistics, Statistics, TenantStats};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What is known about one tenant after the last cycle.
#[derive(Debug, Clone, PartialEq)]
pub enum TenantStatus {
    /// Collected in the last cycle.
    Up(Box<TenantStats>),
    /// Known (configured, or seen before) but not collected in the last cycle:
    /// the target failed, or the configured tenant does not exist.
    Down,
}

/// One target's state after its last cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetStatus {
    pub name: String,
    /// The kind's name, as in `kind:`.
    pub kind: &'static str,
    pub labels: Vec<(String, String)>,
    /// Which run of this target produced the status: a reload that changes a target
    /// starts a new run, and a late result of the old one must not win.
    pub generation: u64,
    /// True once the first cycle has ended (success or failure).
    pub tried: bool,
    /// Shared, so that sending the status to the publisher every cycle copies a
    /// pointer, not every tenant's maps. A cycle replaces it whole.
    pub tenants: Arc<BTreeMap<String, TenantStatus>>,
    /// The last statistics of a kind that shapes its own (DBSS's report); `None`
    /// after a failure, and for the kinds whose statistics are per tenant.
    pub own: Option<Arc<dyn KindStatistics>>,
    pub last_success: Option<SystemTime>,
    pub last_duration: Option<Duration>,
    pub errors: BTreeMap<Reason, u64>,
    pub last_error: Option<SourceError>,
    /// Tenants the config names: reported (down) even when they do not exist.
    expected_tenants: Vec<String>,
    max_series_per_dimension: usize,
}

impl TargetStatus {
    /// The state before the first cycle of run `generation`; `reasons` are those
    /// its source can fail with (each counted from 0).
    pub fn new(target: &Target, generation: u64, reasons: &[Reason]) -> Self {
        Self {
            name: target.name.clone(),
            kind: target.kind.name(),
            labels: target.labels.clone(),
            generation,
            tried: false,
            tenants: Arc::default(),
            own: None,
            last_success: None,
            last_duration: None,
            errors: reasons.iter().map(|r| (*r, 0)).collect(),
            last_error: None,
            expected_tenants: target.kind.expected_tenants(&target.name),
            max_series_per_dimension: target.max_series_per_dimension,
        }
    }

    /// Records a successful cycle: the tenants found replace the previous ones, so a
    /// dropped tenant's series disappear. Configured tenants not found are down.
    pub fn record_success(
        &mut self,
        collected: impl Into<Collected>,
        took: Duration,
        now: SystemTime,
    ) {
        let max_series = self.max_series_per_dimension;
        let collected = collected.into();
        let found = match collected.statistics {
            Statistics::Tenants(tenants) => {
                self.own = collected.beside.map(|mut own| {
                    own.cap(max_series);
                    Arc::from(own)
                });
                tenants
            }
            Statistics::Own(mut own) => {
                own.cap(max_series);
                self.own = Some(Arc::from(own));
                BTreeMap::new()
            }
        };
        let mut tenants: BTreeMap<String, TenantStatus> = found
            .into_iter()
            .map(|(name, mut stats)| {
                stats.cap(max_series);
                (name, TenantStatus::Up(Box::new(stats)))
            })
            .collect();
        for name in &self.expected_tenants {
            tenants.entry(name.clone()).or_insert(TenantStatus::Down);
        }
        self.tenants = Arc::new(tenants);
        self.tried = true;
        self.last_duration = Some(took);
        self.last_success = Some(now);
        self.last_error = None;
    }

    /// Records a failed cycle: every known tenant goes down and loses its session
    /// series (stale numbers shown as current would mislead), keeping its `up` series.
    pub fn record_failure(&mut self, error: SourceError, took: Duration) {
        let down = self
            .tenants
            .keys()
            .chain(&self.expected_tenants)
            .map(|name| (name.clone(), TenantStatus::Down))
            .collect();
        self.tenants = Arc::new(down);
        self.own = None;
        *self.errors.entry(error.reason).or_default() += 1;
        self.tried = true;
        self.last_duration = Some(took);
        self.last_error = Some(error);
    }

    /// True when the last cycle succeeded.
    pub fn is_up(&self) -> bool {
        self.tried && self.last_error.is_none()
    }
}
