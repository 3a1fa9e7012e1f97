//! The published state: the latest result of every target, and the exposition bytes
//! encoded from it.
//!
//! Target loops send their new [`TargetStatus`] to one publisher task, which encodes
//! the exposition once per change (coalescing bursts) in both text formats, plain and
//! gzip, and swaps it in through a `watch` channel. A scrape borrows the current
//! [`Published`] and copies out ready bytes; it never queries or encodes anything.

use crate::config::{Kind, Target};
use crate::exposition::{openmetrics_to_classic, Format};
use crate::metrics;
use crate::source::{Reason, SourceError};
use crate::stats::{self, Collection, TenantStats};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch};

/// What is known about one tenant after the last cycle.
#[derive(Debug, Clone, PartialEq)]
pub enum TenantStatus {
    /// Collected in the last cycle.
    Up(TenantStats),
    /// Known (configured, or seen before) but not collected in the last cycle:
    /// the target failed, or the configured tenant does not exist.
    Down,
}

/// One target's state after its last cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetStatus {
    pub name: String,
    pub kind: Kind,
    pub labels: Vec<(String, String)>,
    /// True once the first cycle has ended (success or failure): readiness.
    pub tried: bool,
    pub tenants: BTreeMap<String, TenantStatus>,
    pub last_success: Option<SystemTime>,
    pub last_duration: Option<Duration>,
    pub errors: BTreeMap<Reason, u64>,
    pub last_error: Option<SourceError>,
    /// Tenants the config names: reported (down) even when they do not exist.
    expected_tenants: Vec<String>,
}

impl TargetStatus {
    /// The state before the first cycle.
    pub fn new(target: &Target) -> Self {
        let expected_tenants = match target.kind {
            Kind::Mysql => vec![target.name.clone()],
            Kind::Oceanbase => target.tenants.clone().unwrap_or_default(),
        };
        Self {
            name: target.name.clone(),
            kind: target.kind,
            labels: target.labels.clone(),
            tried: false,
            tenants: BTreeMap::new(),
            last_success: None,
            last_duration: None,
            errors: Reason::ALL.iter().map(|r| (*r, 0)).collect(),
            last_error: None,
            expected_tenants,
        }
    }

    /// Records a successful cycle: the tenants found replace the previous ones, so a
    /// dropped tenant's series disappear. Configured tenants not found are down.
    pub fn record_success(&mut self, collection: Collection, took: Duration, now: SystemTime) {
        let mut tenants: BTreeMap<String, TenantStatus> = stats::fold(collection)
            .into_iter()
            .map(|(name, stats)| (name, TenantStatus::Up(stats)))
            .collect();
        for name in &self.expected_tenants {
            tenants.entry(name.clone()).or_insert(TenantStatus::Down);
        }
        self.tenants = tenants;
        self.tried = true;
        self.last_duration = Some(took);
        self.last_success = Some(now);
        self.last_error = None;
    }

    /// Records a failed cycle: every known tenant goes down and loses its session
    /// series (stale numbers shown as current would mislead), keeping its `up` series.
    pub fn record_failure(&mut self, error: SourceError, took: Duration) {
        for name in &self.expected_tenants {
            self.tenants
                .entry(name.clone())
                .or_insert(TenantStatus::Down);
        }
        for status in self.tenants.values_mut() {
            *status = TenantStatus::Down;
        }
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

/// Everything a scrape or a page needs, prepared once per change.
#[derive(Debug)]
pub struct Published {
    pub targets: Vec<Arc<TargetStatus>>,
    openmetrics: Body,
    classic: Body,
}

/// One encoded exposition, plain and gzip-compressed.
#[derive(Debug, Clone)]
pub struct Body {
    pub plain: Bytes,
    pub gzip: Bytes,
}

impl Published {
    /// Encodes `targets`. Encoding only fails if a `fmt::Write` into a String fails,
    /// which it cannot; the error is still carried rather than unwrapped.
    pub fn encode(targets: Vec<Arc<TargetStatus>>) -> Result<Self, std::fmt::Error> {
        let openmetrics = metrics::encode(&targets)?;
        let classic = openmetrics_to_classic(&openmetrics);
        Ok(Self {
            openmetrics: Body::new(openmetrics.into_bytes()),
            classic: Body::new(classic.into_bytes()),
            targets,
        })
    }

    pub fn body(&self, format: Format) -> &Body {
        match format {
            Format::OpenMetrics => &self.openmetrics,
            Format::Classic => &self.classic,
        }
    }

    /// Ready once every target has finished its first cycle.
    pub fn ready(&self) -> bool {
        self.targets.iter().all(|t| t.tried)
    }
}

impl Body {
    fn new(plain: Vec<u8>) -> Self {
        // Fast compression: this runs once per change, and most of the gain of gzip on
        // repetitive exposition text comes at the lowest level.
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(plain.len() / 8),
            flate2::Compression::fast(),
        );
        let gzip = encoder
            .write_all(&plain)
            .and_then(|()| encoder.finish())
            .unwrap_or_default();
        Self {
            plain: Bytes::from(plain),
            gzip: Bytes::from(gzip),
        }
    }
}

/// Channel ends that connect target loops, the publisher and the HTTP server.
pub struct Channels {
    pub updates: mpsc::Sender<Arc<TargetStatus>>,
    pub published: watch::Receiver<Arc<Published>>,
}

/// Starts the publisher for `targets` and returns where to send updates and where to
/// read the published state. The publisher ends when every update sender is dropped.
pub fn start(targets: &[Target]) -> Channels {
    let statuses: Vec<Arc<TargetStatus>> = targets
        .iter()
        .map(|t| Arc::new(TargetStatus::new(t)))
        .collect();
    let first = Published::encode(statuses.clone()).expect("encoding into a String cannot fail");
    let (published_tx, published_rx) = watch::channel(Arc::new(first));
    let (updates_tx, updates_rx) = mpsc::channel(targets.len().max(1) * 2);
    tokio::spawn(publish(updates_rx, published_tx, statuses));
    Channels {
        updates: updates_tx,
        published: published_rx,
    }
}

async fn publish(
    mut updates: mpsc::Receiver<Arc<TargetStatus>>,
    published: watch::Sender<Arc<Published>>,
    mut statuses: Vec<Arc<TargetStatus>>,
) {
    while let Some(first) = updates.recv().await {
        let mut next = Some(first);
        // Targets that finish together are published together.
        while let Some(update) = next {
            if let Some(slot) = statuses.iter_mut().find(|s| s.name == update.name) {
                *slot = update;
            }
            next = updates.try_recv().ok();
        }
        match Published::encode(statuses.clone()) {
            Ok(snapshot) => {
                published.send_replace(Arc::new(snapshot));
            }
            Err(err) => tracing::error!("encoding the exposition failed: {err}"),
        }
    }
}
