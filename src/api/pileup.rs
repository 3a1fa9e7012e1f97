//! Why a tenant's sessions pile up, read live: who waits for a lock held by whom,
//! and the open transactions, oldest first, with the sessions they name. What the
//! sessions page draws its blocking tree and its lists of long and idle
//! transactions from; not obshell's (it has no such endpoint).
//!
//! Bounded whatever the database holds: at most [`MAX_PILEUP_ROWS`] waits and as many
//! transactions (the longest waits and the oldest transactions; `truncated` says
//! when more were left out), and each named session's SQL cut to
//! [`MAX_PILEUP_SQL`] characters (the detail has it whole).

use super::session::TenantSession;
use crate::error::SourceError;
use crate::sql::{bad_answer, Cell};
use crate::stats::HeldLock;
use serde::Serialize;
use std::collections::HashSet;

/// Waits, and transactions, one answer holds at most.
pub const MAX_PILEUP_ROWS: usize = 500;

/// Characters of a named session's SQL text the answer keeps.
pub const MAX_PILEUP_SQL: usize = 1024;

/// One session waiting for a lock that another holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LockWait {
    pub waiter: u64,
    pub blocker: u64,
    /// How long the waiter has waited for this lock, in seconds.
    pub wait_seconds: f64,
    /// A row lock (any lock the engine's lock waits show), or a metadata lock.
    pub lock: HeldLock,
    /// The object of a metadata lock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<LockedObject>,
}

/// The table (or other object) a metadata lock is on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LockedObject {
    pub schema: String,
    pub name: String,
}

/// A waiting session's place in the blocking graph, so that a tree draws the graph as
/// it is. InnoDB and PostgreSQL name, besides the holder, every earlier waiter for the
/// same lock as a blocker too: three waiters on one row wait on the holder, and the
/// later ones on the earlier ones. That is no cycle; only a cycle of waits is a
/// deadlock.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Waiter {
    pub id: u64,
    /// The blocker it is drawn under: of those it waits on, the one nearest a
    /// session that waits for none (then the longest wait, then the lowest id).
    /// None for the session a cycle of waits is drawn from.
    pub under: Option<u64>,
    /// The other sessions it waits on, by id.
    pub also_waits_on: Vec<u64>,
    /// It is on a cycle of waits: a deadlock the engine has not resolved yet.
    pub in_cycle: bool,
}

/// One session's open transaction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenTransaction {
    pub id: u64,
    /// Seconds since the transaction began.
    pub age_seconds: f64,
    /// The session runs no statement (idle in its transaction), by the rule the
    /// metrics count `dbsession_idle_in_transaction_sessions` with.
    pub idle: bool,
}

/// `GET /api/v1/tenant/:name/sessions/pileup`'s data.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Pileup {
    /// Longest waits first.
    pub lock_waits: Vec<LockWait>,
    /// Each session of `lock_waits` that waits, once, nearest the roots first: where
    /// a tree draws it ([`Waiter`]).
    pub waiters: Vec<Waiter>,
    /// Oldest first.
    pub transactions: Vec<OpenTransaction>,
    /// Every session the waits and transactions name that still exists, by id.
    pub sessions: Vec<TenantSession>,
    /// More waits or transactions exist than the answer holds.
    pub truncated: bool,
    /// With `at` only: when the cycle of the session history shown was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<String>,
}

/// What a kind reads: pairs of (waiter, blocker, seconds) and (session, age).
#[derive(Debug, Default)]
pub struct PileupRows {
    pub lock_waits: Vec<LockWait>,
    /// (session, age in seconds), in any order.
    pub transactions: Vec<(u64, f64)>,
}

impl PileupRows {
    /// The sessions the rows name, each once, in a stable order.
    pub fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .lock_waits
            .iter()
            .flat_map(|w| [w.waiter, w.blocker])
            .chain(self.transactions.iter().map(|t| t.0))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The answer: rows ordered and bounded, joined with the `sessions` of the tenant
    /// that still exist (a wait or a transaction of a session that is gone, or of
    /// another tenant of the cluster, is left out). A session is idle when its
    /// `state` is not `ACTIVE`, which every kind sets by the metrics' rule.
    pub fn answer(self, mut sessions: Vec<TenantSession>) -> Pileup {
        let active: HashSet<u64> = sessions
            .iter()
            .filter(|s| s.state == "ACTIVE")
            .filter_map(|s| u64::try_from(s.id).ok())
            .collect();
        let present: HashSet<u64> = sessions
            .iter()
            .filter_map(|s| u64::try_from(s.id).ok())
            .collect();
        let known = |id: u64| present.contains(&id);
        let mut lock_waits: Vec<LockWait> = self
            .lock_waits
            .into_iter()
            .filter(|w| known(w.waiter) && known(w.blocker))
            .collect();
        lock_waits.sort_by(|a, b| b.wait_seconds.total_cmp(&a.wait_seconds));
        let mut transactions: Vec<OpenTransaction> = self
            .transactions
            .into_iter()
            .filter(|(id, _)| known(*id))
            .map(|(id, age_seconds)| OpenTransaction {
                id,
                age_seconds,
                idle: !active.contains(&id),
            })
            .collect();
        transactions.sort_by(|a, b| b.age_seconds.total_cmp(&a.age_seconds));
        transactions.dedup_by_key(|t| t.id);
        let truncated = lock_waits.len() > MAX_PILEUP_ROWS || transactions.len() > MAX_PILEUP_ROWS;
        lock_waits.truncate(MAX_PILEUP_ROWS);
        transactions.truncate(MAX_PILEUP_ROWS);
        let named: HashSet<u64> = lock_waits
            .iter()
            .flat_map(|w| [w.waiter, w.blocker])
            .chain(transactions.iter().map(|t| t.id))
            .collect();
        sessions.retain(|s| u64::try_from(s.id).is_ok_and(|id| named.contains(&id)));
        sessions.sort_by_key(|s| s.id);
        sessions.dedup_by_key(|s| s.id);
        for session in &mut sessions {
            if let Some((cut, _)) = session.info.char_indices().nth(MAX_PILEUP_SQL) {
                session.info.truncate(cut);
                session.info.push('…');
            }
        }
        Pileup {
            waiters: place_waiters(&lock_waits),
            lock_waits,
            transactions,
            sessions,
            truncated,
            recorded_at: None,
        }
    }
}

/// Places each waiting session of `waits` in the blocking graph (see [`Waiter`]).
///
/// A session's depth is its distance from a root, a blocker that waits for none, in
/// the fewest waits; each waiter is drawn under one of its blockers of the least
/// depth, so the tree is the graph's breadth-first tree from the roots. Sessions no
/// root reaches wait on a cycle: the lowest id of a cycle is drawn from, as a root
/// with no place above it, and the rest of it hangs below. At most
/// [`MAX_PILEUP_ROWS`] waits: quadratic at worst, in microseconds.
fn place_waiters(waits: &[LockWait]) -> Vec<Waiter> {
    use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
    // Per waiter, its blockers with the longest wait on each.
    let mut blockers: BTreeMap<u64, BTreeMap<u64, f64>> = BTreeMap::new();
    for w in waits {
        let seconds = blockers
            .entry(w.waiter)
            .or_default()
            .entry(w.blocker)
            .or_insert(w.wait_seconds);
        *seconds = seconds.max(w.wait_seconds);
    }
    let on_cycle: BTreeSet<u64> = blockers
        .keys()
        .copied()
        .filter(|&start| waits_on_itself(start, &blockers))
        .collect();
    let mut waiters_of: HashMap<u64, Vec<u64>> = HashMap::new();
    for (&waiter, of) in &blockers {
        for &blocker in of.keys() {
            waiters_of.entry(blocker).or_default().push(waiter);
        }
    }
    // Breadth first from the roots: a waiter's depth is one more than its nearest
    // blocker's.
    let mut depth: HashMap<u64, usize> = HashMap::new();
    let mut queue: VecDeque<u64> = VecDeque::new();
    for root in waiters_of.keys().filter(|b| !blockers.contains_key(b)) {
        depth.insert(*root, 0);
        queue.push_back(*root);
    }
    let mut cycle_starts = BTreeSet::new();
    loop {
        while let Some(id) = queue.pop_front() {
            let next = depth[&id] + 1;
            for &waiter in waiters_of.get(&id).into_iter().flatten() {
                if let std::collections::hash_map::Entry::Vacant(slot) = depth.entry(waiter) {
                    slot.insert(next);
                    queue.push_back(waiter);
                }
            }
        }
        // What no root reaches waits on a cycle: drawn from the cycle's lowest id.
        match on_cycle.iter().find(|id| !depth.contains_key(id)) {
            Some(&start) => {
                depth.insert(start, 0);
                cycle_starts.insert(start);
                queue.push_back(start);
            }
            None => break,
        }
    }
    let mut placed: Vec<(usize, f64, Waiter)> = blockers
        .iter()
        .map(|(&id, of)| {
            let under = match cycle_starts.contains(&id) {
                true => None,
                false => of
                    .iter()
                    .filter_map(|(b, s)| Some((*depth.get(b)?, *b, *s)))
                    .min_by(|a, b| a.0.cmp(&b.0).then(b.2.total_cmp(&a.2)).then(a.1.cmp(&b.1)))
                    .map(|(_, b, _)| b),
            };
            let longest = of.values().copied().fold(0.0, f64::max);
            let waiter = Waiter {
                id,
                under,
                also_waits_on: of.keys().copied().filter(|b| Some(*b) != under).collect(),
                in_cycle: on_cycle.contains(&id),
            };
            (
                depth.get(&id).copied().unwrap_or(usize::MAX),
                longest,
                waiter,
            )
        })
        .collect();
    placed.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(b.1.total_cmp(&a.1))
            .then(a.2.id.cmp(&b.2.id))
    });
    placed.into_iter().map(|(_, _, waiter)| waiter).collect()
}

/// Whether `start` reaches itself by the sessions it waits on.
fn waits_on_itself(
    start: u64,
    blockers: &std::collections::BTreeMap<u64, std::collections::BTreeMap<u64, f64>>,
) -> bool {
    let mut seen = HashSet::new();
    let mut stack: Vec<u64> = blockers[&start].keys().copied().collect();
    while let Some(id) = stack.pop() {
        if id == start {
            return true;
        }
        if seen.insert(id) {
            stack.extend(
                blockers
                    .get(&id)
                    .into_iter()
                    .flat_map(|of| of.keys().copied()),
            );
        }
    }
    false
}

/// The columns of a pile-up row, for messages.
const COLUMNS: [&str; 4] = ["kind", "session", "blocker", "seconds"];

/// Adds one row to `rows`; a row of another shape is an error naming its column.
pub fn add_pileup_row<C: Cell>(
    rows: &mut PileupRows,
    cells: impl IntoIterator<Item = C>,
) -> Result<(), SourceError> {
    let mut cells = cells.into_iter();
    let mut next = |i: usize| {
        cells
            .next()
            .ok_or_else(|| bad_answer(format!("the pile-up row has no column {}", COLUMNS[i])))
    };
    let kind = id(next(0)?, 0)?;
    let session = id(next(1)?, 1)?;
    let blocker = next(2)?;
    // A wait or transaction that began after the server's clock was read is 0 s old.
    let seconds = next(3)?.into_number(COLUMNS[3])?.unwrap_or(0.0).max(0.0);
    match (kind, session) {
        (_, None) => {}
        (Some(kind @ (0 | 2)), Some(waiter)) => {
            // A metadata lock wait names its object in two more columns.
            let (lock, object) = match kind {
                2 => {
                    let mut text = || cells.next().and_then(Cell::into_text).unwrap_or_default();
                    let (schema, name) = (text(), text());
                    (HeldLock::Metadata, Some(LockedObject { schema, name }))
                }
                _ => (HeldLock::Row, None),
            };
            if let Some(blocker) = id(blocker, 2)? {
                rows.lock_waits.push(LockWait {
                    waiter,
                    blocker,
                    wait_seconds: seconds,
                    lock,
                    object,
                });
            }
        }
        (Some(1), Some(session)) => rows.transactions.push((session, seconds)),
        (other, _) => {
            return Err(bad_answer(format!(
                "the pile-up row's kind is {other:?}, not 0 (a wait), 1 (a transaction) or 2 \
                 (a metadata lock wait)"
            )))
        }
    }
    Ok(())
}

/// A whole number, or None for NULL (a transaction of no session: a background one).
fn id<C: Cell>(cell: C, column: usize) -> Result<Option<u64>, SourceError> {
    let Some(text) = cell.into_text() else {
        return Ok(None);
    };
    text.trim().parse::<u64>().map(Some).map_err(|_| {
        bad_answer(format!(
            "the pile-up row's {} is `{}`, not a session id",
            COLUMNS[column],
            text.chars().take(40).collect::<String>()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waits(pairs: &[(u64, u64)]) -> Vec<LockWait> {
        pairs
            .iter()
            .map(|&(waiter, blocker)| LockWait {
                waiter,
                blocker,
                wait_seconds: 100.0 - waiter as f64,
                lock: HeldLock::Row,
                object: None,
            })
            .collect()
    }

    fn placed(pairs: &[(u64, u64)]) -> Vec<(u64, Option<u64>, Vec<u64>, bool)> {
        place_waiters(&waits(pairs))
            .into_iter()
            .map(|w| (w.id, w.under, w.also_waits_on, w.in_cycle))
            .collect()
    }

    /// Three sessions update one row behind its holder, 341: InnoDB (and
    /// PostgreSQL's pg_blocking_pids) name the earlier waiters as blockers too.
    /// Each is drawn under the holder, the others named, and nothing is a cycle.
    #[test]
    fn waiters_of_one_lock_are_no_cycle() {
        let innodb = [
            (342, 341),
            (343, 341),
            (343, 342),
            (344, 341),
            (344, 342),
            (344, 343),
        ];
        assert_eq!(
            placed(&innodb),
            [
                (342, Some(341), vec![], false),
                (343, Some(341), vec![342], false),
                (344, Some(341), vec![342, 343], false),
            ]
        );
        // A chain is drawn as one: 3 waits on 2 alone, which waits on 1.
        assert_eq!(
            placed(&[(3, 2), (2, 1)]),
            [(2, Some(1), vec![], false), (3, Some(2), vec![], false)]
        );
    }

    /// A true cycle (a deadlock not yet resolved) is drawn from its lowest id, each
    /// of its sessions said to be on it; one waiting on the cycle is not on it.
    #[test]
    fn only_a_cycle_of_waits_is_a_cycle() {
        assert_eq!(
            placed(&[(10, 11), (11, 10), (12, 11), (13, 5), (13, 12)]),
            [
                (10, None, vec![11], true),
                (11, Some(10), vec![], true),
                (13, Some(5), vec![12], false),
                (12, Some(11), vec![], false),
            ]
        );
        // A session that waits on itself (a broken answer) is a cycle, not a hang.
        assert_eq!(placed(&[(7, 7)]), [(7, None, vec![7], true)]);
        assert!(place_waiters(&[]).is_empty());
    }

    #[test]
    fn rows_of_both_kinds_are_read_and_bad_ones_named() {
        let mut rows = PileupRows::default();
        add_pileup_row(&mut rows, [Some("0"), Some("12"), Some("7"), Some("3.5")]).unwrap();
        add_pileup_row(&mut rows, [Some("1"), Some("7"), None, Some("40.25")]).unwrap();
        // A background transaction (no session), and a clock read a moment early.
        add_pileup_row(&mut rows, [Some("1"), None, None, Some("9")]).unwrap();
        add_pileup_row(&mut rows, [Some("1"), Some("8"), None, Some("-0.001")]).unwrap();
        assert_eq!(
            rows.lock_waits,
            vec![LockWait {
                waiter: 12,
                blocker: 7,
                wait_seconds: 3.5,
                lock: HeldLock::Row,
                object: None,
            }]
        );
        assert_eq!(rows.transactions, vec![(7, 40.25), (8, 0.0)]);
        let bad = add_pileup_row(&mut rows, [Some("0"), Some("x"), None, None]).unwrap_err();
        assert!(bad.to_string().contains("session"), "{bad}");
        let bad = add_pileup_row(&mut rows, [Some("5"), Some("1"), None, None]).unwrap_err();
        assert!(bad.to_string().contains("kind"), "{bad}");
        assert!(add_pileup_row(&mut rows, [Some("0"), Some("1")]).is_err());
        // A metadata lock wait, with its table.
        let mut rows = PileupRows::default();
        let cells = [
            Some("2"),
            Some("13"),
            Some("7"),
            Some("4"),
            Some("shop"),
            Some("orders"),
        ];
        add_pileup_row(&mut rows, cells).unwrap();
        assert_eq!(
            rows.lock_waits,
            vec![LockWait {
                waiter: 13,
                blocker: 7,
                wait_seconds: 4.0,
                lock: HeldLock::Metadata,
                object: Some(LockedObject {
                    schema: "shop".into(),
                    name: "orders".into(),
                }),
            }]
        );
    }

    fn session(id: i64, info: &str) -> TenantSession {
        TenantSession {
            id,
            info: info.to_string(),
            state: if [2, 3].contains(&id) {
                "ACTIVE"
            } else {
                "SLEEP"
            }
            .to_string(),
            ..TenantSession::default()
        }
    }

    #[test]
    fn rows_are_ordered_joined_and_cut() {
        let rows = PileupRows {
            lock_waits: vec![
                LockWait {
                    waiter: 2,
                    blocker: 1,
                    wait_seconds: 3.0,
                    lock: HeldLock::Row,
                    object: None,
                },
                LockWait {
                    waiter: 3,
                    blocker: 1,
                    wait_seconds: 9.0,
                    lock: HeldLock::Row,
                    object: None,
                },
                // Its blocker is gone (or another tenant's): left out.
                LockWait {
                    waiter: 4,
                    blocker: 99,
                    wait_seconds: 1.0,
                    lock: HeldLock::Row,
                    object: None,
                },
            ],
            transactions: vec![(1, 20.0), (2, 5.0), (3, 30.0), (77, 40.0)],
        };
        assert_eq!(rows.ids(), vec![1, 2, 3, 4, 77, 99]);
        let long = "é".repeat(MAX_PILEUP_SQL + 10);
        let sessions = vec![
            session(3, "UPDATE t"),
            session(1, &long),
            session(2, "SELECT 1"),
            session(4, ""),
            session(5, "not named"),
        ];
        let answer = rows.answer(sessions);
        let waits: Vec<(u64, u64)> = answer
            .lock_waits
            .iter()
            .map(|w| (w.waiter, w.blocker))
            .collect();
        assert_eq!(waits, vec![(3, 1), (2, 1)]);
        let transactions: Vec<(u64, bool)> =
            answer.transactions.iter().map(|t| (t.id, t.idle)).collect();
        assert_eq!(transactions, vec![(3, false), (1, true), (2, false)]);
        let ids: Vec<i64> = answer.sessions.iter().map(|s| s.id).collect();
        assert_eq!(
            ids,
            vec![1, 2, 3],
            "4 waits on a session gone, 5 is not named"
        );
        assert_eq!(answer.sessions[0].info.chars().count(), MAX_PILEUP_SQL + 1);
        assert!(answer.sessions[0].info.ends_with('…'));
        assert!(!answer.truncated);
    }

    #[test]
    fn more_rows_than_an_answer_holds_are_cut_and_said() {
        let n = MAX_PILEUP_ROWS as u64 + 5;
        let rows = PileupRows {
            lock_waits: Vec::new(),
            transactions: (0..n).map(|id| (id, id as f64)).collect(),
        };
        let sessions = (0..n as i64).map(|id| session(id, "")).collect();
        let answer = rows.answer(sessions);
        assert!(answer.truncated);
        assert_eq!(answer.transactions.len(), MAX_PILEUP_ROWS);
        assert_eq!(answer.transactions[0].id, n - 1, "the oldest first");
        assert_eq!(answer.sessions.len(), MAX_PILEUP_ROWS);
    }
}
