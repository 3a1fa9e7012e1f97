//! One loop per target: collect every `collect_interval`, bounded by
//! `collect_timeout`, and hand the new state to the publisher.
//!
//! Targets never wait for each other: each loop is its own task with its own pool, so
//! a dead or slow database only affects its own series. A failing target backs off
//! (up to 4 intervals, with jitter) so a long outage costs the database and the logs
//! little, and its pooled connections are dropped so none that broke mid-query is
//! reused. Failures are logged when they start, when the error changes, and at most
//! every [`REPEAT_LOG_EVERY`] while they last; recovery is logged once.

use crate::config::Target;
use crate::snapshot::TargetStatus;
use crate::source::{self, Source, SourceError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// While a target keeps failing the same way, its error is logged this often.
pub const REPEAT_LOG_EVERY: Duration = Duration::from_secs(300);
/// Backoff never waits longer than this many intervals.
const MAX_BACKOFF_INTERVALS: u32 = 4;

/// Starts one loop per target. Each ends when `cancel` fires or the publisher is gone.
pub fn spawn(
    targets: &[Target],
    updates: &mpsc::Sender<Arc<TargetStatus>>,
    cancel: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    targets
        .iter()
        .map(|target| {
            let source = source::build(target);
            tokio::spawn(run_target(
                target.clone(),
                source,
                updates.clone(),
                cancel.clone(),
            ))
        })
        .collect()
}

async fn run_target(
    target: Target,
    mut source: Box<dyn Source>,
    updates: mpsc::Sender<Arc<TargetStatus>>,
    cancel: CancellationToken,
) {
    let mut status = TargetStatus::new(&target);
    let mut log = FailureLog::default();
    let mut failures: u32 = 0;
    let mut jitter = Jitter::seeded(&target.name);
    loop {
        let started = Instant::now();
        let outcome = tokio::select! {
            _ = cancel.cancelled() => break,
            outcome = tokio::time::timeout(target.collect_timeout, source.collect()) => outcome,
        };
        let took = started.elapsed();
        match outcome.unwrap_or_else(|_| Err(SourceError::timeout(target.collect_timeout))) {
            Ok(collection) => {
                if failures > 0 {
                    tracing::info!(target = %target.name, after_failures = failures, "collection recovered");
                }
                failures = 0;
                log = FailureLog::default();
                status.record_success(collection, took, SystemTime::now());
                tracing::debug!(target = %target.name, took_ms = took.as_millis() as u64, tenants = status.tenants.len(), "collected");
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                source.reset();
                log.report(&target.name, &error);
                status.record_failure(error, took);
            }
        }
        if updates.send(Arc::new(status.clone())).await.is_err() {
            break;
        }
        let wait = next_delay(target.collect_interval, failures, &mut jitter).saturating_sub(took);
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    source.reset();
}

/// Time from the start of one cycle to the start of the next: the interval while
/// healthy; after `failures` failures in a row, 1, 2, 4, 4… intervals, ±10 %.
fn next_delay(interval: Duration, failures: u32, jitter: &mut Jitter) -> Duration {
    if failures <= 1 {
        return interval;
    }
    let factor = 1_u32
        .checked_shl(failures - 1)
        .unwrap_or(u32::MAX)
        .min(MAX_BACKOFF_INTERVALS);
    let base = interval * factor;
    base.mul_f64(0.9 + 0.2 * jitter.next_unit())
}

/// A tiny xorshift generator: backoff jitter needs spread between targets, not
/// cryptographic randomness, and this avoids a dependency.
struct Jitter(u64);

impl Jitter {
    fn seeded(name: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
        let seed = name.bytes().fold(nanos ^ 0x9e37_79b9_7f4a_7c15, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Self(seed | 1)
    }

    /// A number in [0, 1).
    fn next_unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1_u64 << 53) as f64
    }
}

/// Rate-limits error logs: a new or different error is logged at once, the same one
/// again only after [`REPEAT_LOG_EVERY`].
#[derive(Default)]
struct FailureLog {
    last: Option<(SourceError, Instant)>,
    suppressed: u64,
}

impl FailureLog {
    fn report(&mut self, target: &str, error: &SourceError) {
        let now = Instant::now();
        let repeat = matches!(&self.last, Some((last, at)) if last == error && now.duration_since(*at) < REPEAT_LOG_EVERY);
        if repeat {
            self.suppressed += 1;
            tracing::debug!(target = %target, reason = error.reason.as_str(), "collection failed: {error}");
            return;
        }
        tracing::warn!(
            target = %target,
            reason = error.reason.as_str(),
            repeated = self.suppressed,
            "collection failed: {error}"
        );
        self.suppressed = 0;
        self.last = Some((error.clone(), now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_four_intervals_with_jitter() {
        let interval = Duration::from_secs(10);
        let mut jitter = Jitter::seeded("t");
        assert_eq!(next_delay(interval, 0, &mut jitter), interval);
        assert_eq!(next_delay(interval, 1, &mut jitter), interval);
        for (failures, base) in [(2, 20.0), (3, 40.0), (4, 40.0), (40, 40.0)] {
            let delay = next_delay(interval, failures, &mut jitter).as_secs_f64();
            assert!(
                delay >= base * 0.9 && delay <= base * 1.1,
                "{failures}: {delay}"
            );
        }
    }

    #[test]
    fn jitter_stays_in_range() {
        let mut jitter = Jitter::seeded("x");
        for _ in 0..10_000 {
            let u = jitter.next_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
