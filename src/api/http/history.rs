//! The session history through the session API, authenticated and scoped as the rest
//! (see [`handle`]): a tenant's sessions as the last cycle at or before a moment
//! recorded them (the list's `at`), its timeline, and one session's story. Each is
//! read from the store opened read-only, on a blocking thread, and is bounded by what
//! it may return (a tenant's cap per cycle, [`MAX_STEPS`], [`MAX_STORY`]).

use super::*;
use crate::api::params::Direction;
use crate::api::params::{RangeParams, MAX_STEPS};
use crate::api::{Field, PageInfo, PageStream, TenantSession};
use crate::history::store::Store;
use crate::history::{Moment, Spread, Step};
use crate::stats::KeptSession;
use crate::timefmt::rfc3339;
use serde::Serialize;
use std::path::PathBuf;
use std::time::SystemTime;

/// Cycles of one session's story answered at most.
pub const MAX_STORY: usize = 2000;

/// Steps of a timeline by default: its range in this many.
const DEFAULT_STEPS: i64 = 240;

fn now_ms() -> i64 {
    crate::history::unix_millis(SystemTime::now())
}

fn time(ms: i64) -> String {
    let ms = u64::try_from(ms).unwrap_or(0);
    rfc3339(
        SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        3,
    )
}

/// The store's path, or why there is none.
fn store_path(state: &ApiState) -> Result<PathBuf, Failure> {
    state
        .registry
        .history()
        .map(std::path::Path::to_path_buf)
        .ok_or_else(|| {
            Failure::not_found(
                "History.NotRecorded",
                "this exporter records no session history: add `history:` to its configuration \
             (docs/history.md) and restart it",
            )
        })
}

/// History reads at once, for every client together: each holds a blocking thread
/// and the store's pages, so a flood of them waits here, within its request's
/// deadline, instead of taking what the scrapes and the other endpoints need.
static READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// The landing page's sparklines: per target, its active sessions over the last
/// hour in [`SPARK_STEPS`] steps (the average of each, summed over its tenants, at
/// most [`SPARK_TENANTS`] of them; None for a step without a recorded cycle).
///
/// They change once a minute, so they are read at most once a [`SPARK_EVERY`], by
/// one blocking task at a time that holds its own permit and fills the cache itself
/// (a client that leaves does not start another read). Every other request, a
/// flood of `GET /` among them, is answered from the cache: it never waits, holds
/// nothing, and never takes a turn of the session API's history reads ([`READS`]).
pub struct Sparklines {
    cache: Arc<std::sync::Mutex<Option<Read>>>,
    /// One read at a time.
    reading: Arc<tokio::sync::Semaphore>,
}

impl Default for Sparklines {
    fn default() -> Self {
        Self {
            cache: Arc::default(),
            reading: Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }
}

/// Each target's sparkline.
pub type Lines = HashMap<String, Vec<Option<f64>>>;

/// The sparklines read last, and when.
type Read = (std::time::Instant, Arc<Lines>);

/// How long the sparklines are served from the cache.
const SPARK_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl Registry {
    /// The sparklines of `targets` (each with its tenants); None when nothing is
    /// recorded, or before a first read succeeded.
    pub async fn sparklines(&self, targets: Vec<(String, Vec<String>)>) -> Option<Arc<Lines>> {
        let path = self.history()?.to_path_buf();
        let Sparklines { cache, reading } = &self.sparklines;
        let cached = cache.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some((at, lines)) = &cached {
            if at.elapsed() < SPARK_EVERY {
                return Some(lines.clone());
            }
        }
        let Ok(permit) = reading.clone().try_acquire_owned() else {
            return cached.map(|(_, lines)| lines);
        };
        let cache = cache.clone();
        let read = move || -> Option<Arc<Lines>> {
            let _permit = permit;
            let to_ms = now_ms();
            let from_ms = to_ms - 3_600_000;
            let range = (from_ms, to_ms, (to_ms - from_ms) / SPARK_STEPS as i64);
            let read = || -> Result<Lines, crate::history::store::StoreError> {
                let store = Store::open_read(&path)?;
                let mut lines = HashMap::new();
                for (target, tenants) in targets {
                    let mut line: Vec<Option<f64>> = vec![None; SPARK_STEPS];
                    for tenant in tenants.iter().take(SPARK_TENANTS) {
                        let steps = store.activity(&target, tenant, range)?;
                        for (slot, step) in line.iter_mut().zip(steps) {
                            if step.cycles > 0 {
                                *slot = Some(slot.unwrap_or(0.0) + step.active.avg);
                            }
                        }
                    }
                    lines.insert(target, line);
                }
                Ok(lines)
            };
            match read() {
                Ok(lines) => {
                    let lines = Arc::new(lines);
                    *cache.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((std::time::Instant::now(), lines.clone()));
                    Some(lines)
                }
                Err(err) => {
                    unreadable(&err);
                    None
                }
            }
        };
        match tokio::task::spawn_blocking(read).await {
            Ok(Some(lines)) => Some(lines),
            _ => cached.map(|(_, lines)| lines),
        }
    }
}

/// Steps of a sparkline (one a minute of its hour).
const SPARK_STEPS: usize = 60;

/// Tenants of one target a sparkline sums at most.
const SPARK_TENANTS: usize = 64;

/// Interrupts a read whose request is gone (its deadline passed, its client left),
/// so a blocking thread does not go on reading for nobody.
struct Interrupt(Option<rusqlite::InterruptHandle>);

impl Drop for Interrupt {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.interrupt();
        }
    }
}

/// Runs `read` on the store at `path`, opened read-only, on a blocking thread, one
/// of [`READS`] at a time.
async fn read<T: Send + 'static>(
    path: PathBuf,
    read: impl FnOnce(&Store) -> Result<T, crate::history::store::StoreError> + Send + 'static,
) -> Result<T, Failure> {
    let _turn = READS
        .acquire()
        .await
        .map_err(|_| Failure::unavailable("the session history is not read any more"))?;
    let opened = tokio::task::spawn_blocking(move || Store::open_read(&path)).await;
    let store = match opened {
        Ok(Ok(store)) => store,
        Ok(Err(err)) => return Err(unreadable(&err)),
        Err(err) => return Err(unreadable(&err)),
    };
    let mut interrupt = Interrupt(Some(store.interrupt_handle()));
    let answer = tokio::task::spawn_blocking(move || read(&store)).await;
    // Finished: nothing to interrupt.
    interrupt.0 = None;
    match answer {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(unreadable(&err)),
        Err(err) => Err(unreadable(&err)),
    }
}

/// Why a read failed, for the log (with the store's path), and the answer without it.
fn unreadable(err: &dyn std::fmt::Display) -> Failure {
    tracing::warn!("the session history could not be read: {err}");
    Failure::unavailable("the session history cannot be read now: the exporter's log says why")
}

/// The list at a moment (`GET .../sessions?at=`): the recorded sessions filtered,
/// sorted and paged as the live list is, in its shape; its page says which cycle it
/// is (`recorded_at`) and how many the cap left out.
pub(super) async fn list_at(
    state: &ApiState,
    target: String,
    tenant: String,
    params: ListParams,
    at_ms: i64,
) -> Result<PageStream, Failure> {
    let path = store_path(state)?;
    let tenant_name = tenant.clone();
    let moment = read(path, move |store| store.moment(&target, &tenant, at_ms)).await?;
    let Some(moment) = moment else {
        return Err(no_cycle(at_ms));
    };
    Ok(page_of(moment, &params, &tenant_name))
}

/// The pile-up at a moment (`GET .../sessions/pileup?at=`): who waited for whom and
/// the open transactions, as the last cycle at or before it recorded them, in the
/// live pile-up's shape, ordered and bounded as it is; `recorded_at` names the cycle.
pub(super) async fn pileup_at(
    state: &ApiState,
    target: String,
    tenant: String,
    at_ms: i64,
) -> Result<crate::api::Pileup, Failure> {
    let path = store_path(state)?;
    let name = tenant.clone();
    let moment = read(path, move |store| store.moment(&target, &name, at_ms))
        .await?
        .ok_or_else(|| no_cycle(at_ms))?;
    let rows = crate::api::PileupRows {
        lock_waits: moment
            .kept
            .iter()
            .filter_map(|k| {
                Some(crate::api::pileup::LockWait {
                    waiter: k.id,
                    blocker: k.blocked_by?,
                    wait_seconds: k.lock_wait?,
                    lock: crate::stats::HeldLock::Row,
                    object: None,
                })
            })
            .collect(),
        transactions: moment
            .kept
            .iter()
            .filter_map(|k| Some((k.id, k.transaction_age?)))
            .collect(),
    };
    // The pile-up calls a session active by its state, as every kind's live one sets it.
    let sessions = moment
        .kept
        .iter()
        .map(|k| {
            let mut session = listed(k, &tenant);
            if k.active {
                session.state = "ACTIVE".to_string();
            }
            session
        })
        .collect();
    let mut pileup = rows.answer(sessions);
    pileup.recorded_at = Some(time(moment.at_ms));
    Ok(pileup)
}

/// No cycle of the tenant is recorded at or before `at_ms`.
fn no_cycle(at_ms: i64) -> Failure {
    Failure::not_found(
        "History.NoCycle",
        format!(
            "no cycle of this tenant is recorded at or before {}: the history begins later, \
             or this tenant was not collected then",
            time(at_ms)
        ),
    )
}

/// The recorded sessions of `moment` that `params` selects, sorted and paged, listed
/// under `tenant`.
fn page_of(moment: Moment, params: &ListParams, tenant: &str) -> PageStream {
    let contains = |value: &str, part: &Option<String>| {
        part.as_ref()
            .is_none_or(|part| value.to_lowercase().contains(&part.to_lowercase()))
    };
    let mut sessions: Vec<KeptSession> = moment
        .kept
        .into_iter()
        .filter(|s| {
            contains(&s.user, &params.user)
                && contains(&s.db, &params.db)
                && contains(&s.client, &params.host)
                && (contains(&s.command, &params.state) || contains(&s.state, &params.state))
                && params.min_time.is_none_or(|min| s.time >= min)
                && params.id.is_none_or(|id| s.id == id)
                && (!params.active_only || s.active)
                && params.observers.as_ref().is_none_or(|observers| {
                    observers.iter().any(|o| *s.server == *o.ip.to_string())
                })
        })
        .collect();
    if let Some((field, direction)) = params.sort {
        sessions.sort_by(|a, b| {
            let order = compare(field, a, b).then(a.id.cmp(&b.id));
            match direction {
                Direction::Asc => order,
                Direction::Desc => order.reverse(),
            }
        });
    }
    let total = sessions.len() as u64;
    let size = params.size.max(1);
    let skip = params.page.saturating_sub(1).saturating_mul(size);
    let page: Vec<TenantSession> = sessions
        .iter()
        .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        .take(usize::try_from(size).unwrap_or(usize::MAX))
        .map(|s| listed(s, tenant))
        .collect();
    let (tx, rx) = tokio::sync::mpsc::channel(page.len().max(1));
    for session in page {
        // The channel holds the whole page: this never waits.
        let _ = tx.try_send(Ok(session));
    }
    PageStream {
        page: PageInfo {
            total_elements: total,
            total_pages: total.div_ceil(size),
            size,
            number: params.page,
            recorded_at: Some(time(moment.at_ms)),
            truncated: Some(moment.truncated),
        },
        sessions: rx,
    }
}

/// A recorded session in the live list's shape (what is not recorded is left empty).
fn listed(s: &KeptSession, tenant: &str) -> TenantSession {
    TenantSession {
        id: s.id as i64,
        svr_ip: s.server.to_string(),
        user: s.user.to_string(),
        db: s.db.to_string(),
        tenant: tenant.to_string(),
        host: s.client.to_string(),
        command: s.command.to_string(),
        time: s.time,
        state: s.state.to_string(),
        info: s.sql_text.to_string(),
        sql_id: s.sql_id.to_string(),
        application: s.application.to_string(),
        wait_class: s.wait_class.to_string(),
        wait_event: s.wait_event.to_string(),
        ..TenantSession::default()
    }
}

/// Orders two recorded sessions by a sortable field of the list (fields the history
/// does not keep compare equal).
fn compare(field: Field, a: &KeptSession, b: &KeptSession) -> std::cmp::Ordering {
    match field {
        Field::Id => a.id.cmp(&b.id),
        Field::SvrIp => a.server.cmp(&b.server),
        Field::User => a.user.cmp(&b.user),
        Field::Db => a.db.cmp(&b.db),
        Field::Host => a.client.cmp(&b.client),
        Field::Command => a.command.cmp(&b.command),
        Field::Time => a.time.total_cmp(&b.time),
        Field::State => a.state.cmp(&b.state),
        Field::Info => a.sql_text.cmp(&b.sql_text),
        Field::SqlId => a.sql_id.cmp(&b.sql_id),
        Field::Application => a.application.cmp(&b.application),
        Field::WaitClass => a.wait_class.cmp(&b.wait_class),
        Field::WaitEvent => a.wait_event.cmp(&b.wait_event),
        _ => std::cmp::Ordering::Equal,
    }
}

/// `GET .../history`: the timeline.
#[derive(Debug, Serialize)]
pub(super) struct Timeline {
    from: String,
    to: String,
    step_seconds: f64,
    steps: Vec<TimelineStep>,
}

#[derive(Debug, Serialize)]
struct TimelineStep {
    at: String,
    cycles: u64,
    sessions: Spread,
    active: Spread,
    by_wait_class: Vec<WaitClass>,
    lock_waiting: Spread,
    idle_in_transaction: Spread,
    top_statements: Vec<StatementSamples>,
}

#[derive(Debug, Serialize)]
struct WaitClass {
    wait_class: String,
    #[serde(flatten)]
    sessions: Spread,
}

#[derive(Debug, Serialize)]
struct StatementSamples {
    sql_id: String,
    active_samples: u64,
}

impl From<Step> for TimelineStep {
    fn from(step: Step) -> Self {
        Self {
            at: time(step.at_ms),
            cycles: step.cycles,
            sessions: step.sessions,
            active: step.active,
            by_wait_class: step
                .by_wait_class
                .into_iter()
                .map(|(wait_class, sessions)| WaitClass {
                    wait_class,
                    sessions,
                })
                .collect(),
            lock_waiting: step.lock_waiting,
            idle_in_transaction: step.idle_in_transaction,
            top_statements: step
                .top_statements
                .into_iter()
                .map(|(sql_id, active_samples)| StatementSamples {
                    sql_id,
                    active_samples,
                })
                .collect(),
        }
    }
}

pub(super) async fn timeline(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    caller: Caller,
) -> Response {
    let path = store_path(&state);
    handle(
        &state,
        &caller,
        "history",
        &name,
        |backend, tenant, _| async move {
            let path = path?;
            let range = RangeParams::parse(query.as_deref(), now_ms(), true)?;
            let span = range.to_ms - range.from_ms;
            // At most MAX_STEPS: a range over a day at 1m asks for longer steps.
            let step_ms = range
                .step_ms
                .unwrap_or_else(|| (span / DEFAULT_STEPS).max(1000))
                .max((span + MAX_STEPS - 1) / MAX_STEPS);
            let target = backend.target().to_string();
            let steps = read(path, move |store| {
                store.timeline(&target, &tenant, (range.from_ms, range.to_ms, step_ms))
            })
            .await?;
            Ok(Timeline {
                from: time(range.from_ms),
                to: time(range.to_ms),
                step_seconds: step_ms as f64 / 1000.0,
                steps: steps.into_iter().map(TimelineStep::from).collect(),
            })
        },
    )
    .await
}

/// `GET .../sessions/{id}/history`: the cycles one session was seen in.
#[derive(Debug, Serialize)]
pub(super) struct Story {
    session_id: u64,
    from: String,
    to: String,
    /// Whether more cycles than [`MAX_STORY`] matched (the first ones are given).
    truncated: bool,
    samples: Vec<StorySample>,
}

#[derive(Debug, Serialize)]
struct StorySample {
    at: String,
    svr_ip: String,
    user: String,
    db: String,
    host: String,
    application: String,
    command: String,
    state: String,
    active: bool,
    time: f64,
    transaction_age: Option<f64>,
    lock_wait: Option<f64>,
    blocked_by: Option<u64>,
    waiters: u64,
    wait_class: String,
    wait_event: String,
    sql_id: String,
    sql_text: String,
}

pub(super) async fn session_history(
    State(state): State<ApiState>,
    Path((name, session_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    caller: Caller,
) -> Response {
    let path = store_path(&state);
    handle(
        &state,
        &caller,
        "session history",
        &name,
        |backend, tenant, _| async move {
            let path = path?;
            let id = session_id_of(&session_id)?;
            let range = RangeParams::parse(query.as_deref(), now_ms(), false)?;
            let target = backend.target().to_string();
            let (story, truncated) = read(path, move |store| {
                store.session_story(
                    &target,
                    &tenant,
                    id,
                    (range.from_ms, range.to_ms),
                    MAX_STORY,
                )
            })
            .await?;
            Ok(Story {
                session_id: id,
                from: time(range.from_ms),
                to: time(range.to_ms),
                truncated,
                samples: story
                    .into_iter()
                    .map(|(at, s)| StorySample {
                        at: time(at),
                        svr_ip: s.server.to_string(),
                        user: s.user.to_string(),
                        db: s.db.to_string(),
                        host: s.client.to_string(),
                        application: s.application.to_string(),
                        command: s.command.to_string(),
                        state: s.state.to_string(),
                        active: s.active,
                        time: s.time,
                        transaction_age: s.transaction_age,
                        lock_wait: s.lock_wait,
                        blocked_by: s.blocked_by,
                        waiters: s.waiters,
                        wait_class: s.wait_class.to_string(),
                        wait_event: s.wait_event.to_string(),
                        sql_id: s.sql_id.to_string(),
                        sql_text: s.sql_text.to_string(),
                    })
                    .collect(),
            })
        },
    )
    .await
}

impl Reply for Timeline {
    fn reply(result: Result<Self, Failure>, trace: TraceId, started: Instant) -> Response {
        respond(&result, trace, started)
    }
}

impl Reply for Story {
    fn reply(result: Result<Self, Failure>, trace: TraceId, started: Instant) -> Response {
        respond(&result, trace, started)
    }
}
