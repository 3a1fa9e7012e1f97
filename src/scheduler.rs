//! One loop per target: collect every `collect_interval`, bounded by
//! `collect_timeout`, and hand the new state to the publisher.
//!
//! Targets never wait for each other: each loop is its own task with its own pool, so
//! a dead or slow database only affects its own series. A failing target backs off
//! (up to 4 intervals, with jitter) so a long outage costs the database and the logs
//! little, and its pooled connections are dropped so none that broke mid-query is
//! reused. Failures are logged when they start, when the error changes, and at most
//! every [`REPEAT_LOG_EVERY`] while they last; recovery is logged once.

use crate::config::{Config, Target};
use crate::error::{Reason, SourceError};
use crate::history::{CycleSample, Recorder, TenantSample};
use crate::snapshot::Update;
use crate::source::{self, Source};
use crate::stats::{Collected, Statistics};
use crate::status::TargetStatus;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// While a target keeps failing the same way, its error is logged this often.
pub const REPEAT_LOG_EVERY: Duration = Duration::from_secs(300);
/// Backoff never waits longer than this many intervals.
const MAX_BACKOFF_INTERVALS: u32 = 4;

/// Which targets this replica collects: `--shard=I --total-shards=N` keeps the
/// targets whose stable hash modulo N is I (as kube-state-metrics shards).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub total: u32,
}

impl Shard {
    /// Every target: one shard of one.
    pub const ALL: Shard = Shard { index: 0, total: 1 };

    /// True when `target` belongs to this shard. FNV-1a of the name: stable across
    /// processes, versions and platforms, unlike the standard library's hasher.
    pub fn owns(self, target: &str) -> bool {
        let hash = target.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        hash % u64::from(self.total.max(1)) == u64::from(self.index)
    }
}

/// What applying a configuration changed, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub started: Vec<String>,
    pub restarted: Vec<String>,
    pub stopped: Vec<String>,
    pub kept: usize,
    /// Configured targets that belong to other shards.
    pub other_shards: usize,
}

/// Runs one loop per target and applies new configurations to the running set.
pub struct Scheduler {
    running: HashMap<String, Running>,
    updates: mpsc::Sender<Update>,
    cancel: CancellationToken,
    shard: Shard,
    next_generation: u64,
    /// Where the loops hand their cycles for the session history; None records none.
    recorder: Option<Recorder>,
}

struct Running {
    target: Target,
    generation: u64,
    /// What its source can fail with, for the pending status a reload publishes.
    reasons: &'static [Reason],
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Scheduler {
    /// A scheduler with nothing running; `cancel` stops every loop at shutdown.
    pub fn new(updates: mpsc::Sender<Update>, cancel: CancellationToken, shard: Shard) -> Self {
        Self {
            running: HashMap::new(),
            updates,
            cancel,
            shard,
            next_generation: 1,
            recorder: None,
        }
    }

    /// Hands every loop's cycles to `recorder` (the session history).
    pub fn with_recorder(mut self, recorder: Option<Recorder>) -> Self {
        self.recorder = recorder;
        self
    }

    /// Makes the running loops match `config`. A target whose settings are unchanged
    /// keeps its loop, pool and series; a changed one is restarted (its last state
    /// stays published until the new loop reports); a removed one is stopped.
    pub async fn apply(&mut self, config: &Config) -> Applied {
        let mut applied = Applied::default();
        let mut previous = std::mem::take(&mut self.running);
        let mut plan = Vec::new();
        let mut to_start = Vec::new();
        for target in &config.targets {
            if !self.shard.owns(&target.name) {
                applied.other_shards += 1;
                continue;
            }
            // The recorder's settings are those the exporter started with (a reload
            // does not restart it): without one, a cycle keeps no session.
            let mut target = target.clone();
            target.history_sessions = self.recorder.as_ref().map(Recorder::max_sessions);
            target.history_sql_text = self.recorder.as_ref().map_or(0, Recorder::sql_text_max);
            let target = &target;
            match previous.remove(&target.name) {
                Some(running) if running.target == *target => {
                    applied.kept += 1;
                    let pending = TargetStatus::new(target, running.generation, running.reasons);
                    plan.push(Arc::new(pending));
                    self.running.insert(target.name.clone(), running);
                }
                old => {
                    if let Some(old) = old {
                        old.stop.cancel();
                        applied.restarted.push(target.name.clone());
                    } else {
                        applied.started.push(target.name.clone());
                    }
                    let generation = self.next_generation;
                    self.next_generation += 1;
                    let source = source::build(target);
                    let pending = TargetStatus::new(target, generation, source.reasons());
                    plan.push(Arc::new(pending));
                    to_start.push((target.clone(), generation, source));
                }
            }
        }
        for (name, old) in previous {
            old.stop.cancel();
            applied.stopped.push(name);
        }
        // The publisher learns the new set before any new loop can report into it.
        let _ = self.updates.send(Update::Targets(plan)).await;
        for (target, generation, source) in to_start {
            let stop = self.cancel.child_token();
            let reasons = source.reasons();
            let task = tokio::spawn(run_target(
                target.clone(),
                generation,
                source,
                Outputs {
                    updates: self.updates.clone(),
                    recorder: self.recorder.clone(),
                },
                stop.clone(),
            ));
            self.running.insert(
                target.name.clone(),
                Running {
                    target,
                    generation,
                    reasons,
                    stop,
                    task,
                },
            );
        }
        applied
    }

    /// Stops every loop and waits (bounded) for them to end.
    pub async fn shutdown(self, limit: Duration) {
        self.cancel.cancel();
        let tasks = self.running.into_values().map(|r| r.task);
        let _ = tokio::time::timeout(limit, async {
            for task in tasks {
                let _ = task.await;
            }
        })
        .await;
    }
}

/// Where a target's loop hands what it collected.
struct Outputs {
    updates: mpsc::Sender<Update>,
    recorder: Option<Recorder>,
}

/// A cycle whose panic (a bug, or an answer no decoder foresaw) is a failed cycle of
/// its target, not the end of the target's loop: the target is down with the
/// message, its source reset, and it is tried again at its next interval.
async fn contained(
    cycle: crate::future::BoxFuture<'_, Result<Collected, SourceError>>,
) -> Result<Collected, SourceError> {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(cycle).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_string());
            Err(SourceError::new(
                Reason::Query,
                format!("the collection stopped on an internal error ({what}); it is tried again at the next interval: please report it, with the log"),
            ))
        }
    }
}

async fn run_target(
    target: Target,
    generation: u64,
    mut source: Box<dyn Source>,
    Outputs { updates, recorder }: Outputs,
    cancel: CancellationToken,
) {
    let mut status = TargetStatus::new(&target, generation, source.reasons());
    let mut log = FailureLog::default();
    let mut failures: u32 = 0;
    let mut jitter = Jitter::seeded(&target.name);
    loop {
        let started = Instant::now();
        let outcome = tokio::select! {
            _ = cancel.cancelled() => break,
            outcome = tokio::time::timeout(target.collect_timeout, contained(source.collect())) => outcome,
        };
        let took = started.elapsed();
        match outcome.unwrap_or_else(|_| Err(SourceError::timeout(target.collect_timeout))) {
            Ok(mut collection) => {
                if let Some(recorder) = &recorder {
                    let sample = sample(&target.name, &mut collection);
                    // A kind without tenants (DBSS's report) has no sessions to keep.
                    if !sample.tenants.is_empty() {
                        recorder.record(sample);
                    }
                }
                if failures > 0 {
                    tracing::info!(target = %target.name, after_failures = failures, "collection recovered");
                }
                failures = 0;
                log = FailureLog::default();
                let rows = collection.rows;
                status.record_success(collection, took, SystemTime::now());
                tracing::debug!(
                    target = %target.name,
                    took_ms = took.as_millis() as u64,
                    rows,
                    tenants = status.tenants.len(),
                    "collected"
                );
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                source.reset();
                log.report(&target.name, &error);
                status.record_failure(error, took);
            }
        }
        if updates
            .send(Update::Status(Arc::new(status.clone())))
            .await
            .is_err()
        {
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

/// The session history's sample of a cycle: its tenants' counts, and the sessions
/// it kept, taken out of the statistics (the metrics do not read them).
fn sample(target: &str, collection: &mut Collected) -> CycleSample {
    let tenants = match &mut collection.statistics {
        Statistics::Tenants(tenants) => tenants
            .iter_mut()
            .map(|(name, stats)| TenantSample::take(name, stats))
            .collect(),
        Statistics::Own(_) => Vec::new(),
    };
    CycleSample {
        target: target.to_string(),
        at: SystemTime::now(),
        tenants,
    }
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
        let api = error.api_error.as_ref();
        tracing::warn!(
            target = %target,
            reason = error.reason.as_str(),
            repeated = self.suppressed,
            error_code = api.map(|e| e.code.as_str()),
            error_msg = api.map(|e| e.message.as_str()),
            "collection failed: {error}"
        );
        self.suppressed = 0;
        self.last = Some((error.clone(), now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source whose first cycle panics; later ones find nothing.
    struct PanicsOnce {
        cycles: usize,
        resets: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Source for PanicsOnce {
        fn collect(&mut self) -> crate::future::BoxFuture<'_, Result<Collected, SourceError>> {
            self.cycles += 1;
            let first = self.cycles == 1;
            Box::pin(async move {
                if first {
                    panic!("an answer no decoder foresaw");
                }
                Ok(Collected {
                    statistics: Statistics::Tenants(Default::default()),
                    beside: None,
                    rows: 0,
                })
            })
        }

        fn reset(&mut self) {
            self.resets
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// A panic in a cycle fails that cycle, says so, resets the source, and the
    /// target is collected again at its next interval.
    #[tokio::test(start_paused = true)]
    async fn a_panicking_cycle_fails_that_cycle_only() {
        let resets = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let source = PanicsOnce {
            cycles: 0,
            resets: resets.clone(),
        };
        let (updates, mut received) = mpsc::channel(4);
        let cancel = CancellationToken::new();
        let target = crate::config::testing::mysql("panics");
        let run = tokio::spawn(run_target(
            target,
            1,
            Box::new(source),
            Outputs {
                updates,
                recorder: None,
            },
            cancel.clone(),
        ));
        let Some(Update::Status(first)) = received.recv().await else {
            panic!("no first status");
        };
        let error = first.last_error.clone().expect("the first cycle failed");
        assert!(
            error.to_string().contains("an answer no decoder foresaw"),
            "{error}"
        );
        assert_eq!(resets.load(std::sync::atomic::Ordering::SeqCst), 1);
        let Some(Update::Status(second)) = received.recv().await else {
            panic!("no second status");
        };
        assert!(second.is_up(), "collected again: {:?}", second.last_error);
        cancel.cancel();
        run.await.expect("the target's loop ends when cancelled");
    }

    #[test]
    fn shards_split_targets_exactly_once_and_stably() {
        let names: Vec<String> = (0..1000).map(|i| format!("target-{i}")).collect();
        for total in [1, 2, 3, 7] {
            let shards: Vec<Shard> = (0..total).map(|index| Shard { index, total }).collect();
            for name in &names {
                let owners = shards.iter().filter(|s| s.owns(name)).count();
                assert_eq!(owners, 1, "{name} with {total} shards");
            }
            // Not all in one shard: the hash spreads them.
            let first = names.iter().filter(|n| shards[0].owns(n)).count();
            assert!(first > 1000 / total as usize / 2, "{total}: {first}");
        }
        // Stable: a name lands in the same shard in every process and version
        // (FNV-1a, computed independently: ob-prod -> 0 of 3, mariadb-app -> 6 of 7).
        assert!(Shard { index: 0, total: 3 }.owns("ob-prod"));
        assert!(Shard { index: 6, total: 7 }.owns("mariadb-app"));
    }

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
