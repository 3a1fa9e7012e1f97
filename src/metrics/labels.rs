//! The label sets of the exporter's series, written by hand rather than derived: the
//! derive cannot borrow, and encoding 100,000 series should not clone 100,000 label
//! strings.

use crate::stats::{Blocker, TopSession};
use crate::status::TargetStatus;
use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};
use std::fmt;

/// The labels of one series: target, then tenant and one dimension where they apply,
/// then the target's constant labels.
///
/// Written by hand rather than derived: the derive cannot borrow, and encoding
/// 100,000 series should not clone 100,000 label strings.
pub(super) struct SeriesLabels<'a> {
    pub(super) target: &'a TargetStatus,
    pub(super) tenant: Option<&'a str>,
    pub(super) extra: &'a [(&'static str, &'a str)],
}

impl EncodeLabelSet for SeriesLabels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        label(encoder, "target", &self.target.name)?;
        if let Some(tenant) = self.tenant {
            label(encoder, "tenant", tenant)?;
        }
        for (key, value) in self.extra {
            label(encoder, key, value)?;
        }
        constant_labels(encoder, self.target)
    }
}

/// Encodes one label; pair by pair rather than through a slice, so a series costs
/// no allocation.
pub(super) fn label(
    encoder: &mut LabelSetEncoder,
    key: &str,
    value: &str,
) -> Result<(), fmt::Error> {
    (key, value).encode(encoder.encode_label())
}

/// The target's constant labels, after the series' own.
pub(super) fn constant_labels(
    encoder: &mut LabelSetEncoder,
    target: &TargetStatus,
) -> Result<(), fmt::Error> {
    for (key, value) in &target.labels {
        label(encoder, key, value)?;
    }
    Ok(())
}

/// The labels of one of the longest active sessions. Each rank is its own series, and
/// the session in it changes as sessions come and go: bounded by `top_sessions`, but
/// churning, which is why the default is small.
pub(super) struct TopLabels<'a> {
    pub(super) target: &'a TargetStatus,
    pub(super) tenant: &'a str,
    pub(super) rank: usize,
    pub(super) session: &'a TopSession,
}

impl EncodeLabelSet for TopLabels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        let rank = self.rank.to_string();
        let session_id = self.session.session_id.to_string();
        let s = self.session;
        for (key, value) in [
            ("target", self.target.name.as_str()),
            ("tenant", self.tenant),
            ("rank", &rank),
            ("session_id", &session_id),
            ("user", &s.user),
            ("db", &s.db),
            ("client_ip", &s.client),
            ("sql_id", &s.sql_id),
        ] {
            label(encoder, key, value)?;
        }
        constant_labels(encoder, self.target)
    }
}

/// The labels of one of the sessions others wait on most; like [`TopLabels`], one
/// series per rank, bounded by `top_sessions`.
pub(super) struct BlockerLabels<'a> {
    pub(super) target: &'a TargetStatus,
    pub(super) tenant: &'a str,
    pub(super) rank: usize,
    pub(super) blocker: &'a Blocker,
}

impl EncodeLabelSet for BlockerLabels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        let rank = self.rank.to_string();
        let session_id = self.blocker.session_id.to_string();
        let b = self.blocker;
        for (key, value) in [
            ("target", self.target.name.as_str()),
            ("tenant", self.tenant),
            ("rank", &rank),
            ("session_id", &session_id),
            ("user", &b.user),
            ("db", &b.db),
            ("client_ip", &b.client),
            ("lock", b.lock.label()),
        ] {
            label(encoder, key, value)?;
        }
        constant_labels(encoder, self.target)
    }
}
