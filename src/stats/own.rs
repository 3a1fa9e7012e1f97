//! Statistics a kind shapes itself, with the metric families it fills: what a kind
//! whose report is not per tenant (DBSS's, per audited database) gives instead of
//! [`TenantStats`](super::TenantStats). The exporter encodes their series among the
//! target's own, without knowing the kind.

use std::fmt;

/// A gauge family a kind's own statistics fill. Every such family is registered once
/// (`source::OWN_FAMILIES`), so that its header is written even while no target has
/// a series of it.
#[derive(Debug, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
}

/// One series of a [`Family`]: its labels after `target` (the target's constant
/// labels follow them), and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub family: &'static Family,
    pub labels: Vec<(&'static str, String)>,
    pub value: Value,
}

/// A series' value: a count, or an amount such as seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Count(u64),
    Amount(f64),
}

/// Statistics a kind shapes itself (see the module's doc).
pub trait KindStatistics: fmt::Debug + Send + Sync {
    /// Applies the cardinality guard: at most `max` values of each dimension keep a
    /// series, the rest are summed into one labelled `__other__`.
    fn cap(&mut self, max: usize);

    /// Every series, in a stable order.
    fn series(&self) -> Vec<Series>;

    /// The dimensions whose values the guard summed into `__other__`, and how many
    /// (`dbsession_series_dropped{dimension}`).
    fn dropped(&self) -> Vec<(&'static str, usize)>;
}

impl PartialEq for dyn KindStatistics {
    fn eq(&self, other: &Self) -> bool {
        self.series() == other.series() && self.dropped() == other.dropped()
    }
}
