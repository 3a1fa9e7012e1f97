//! Adding a cycle's rows up, tenant by tenant, as they arrive.

use super::*;

/// Adds rows up into per-tenant statistics as they arrive, so a cycle holds the
/// statistics, never the list of rows (with the session history on, also the
/// sessions kept for it: at most twice its cap per tenant).
///
/// It uses hash maps while adding (a row costs up to five lookups, and a cluster sends
/// tens of thousands of rows); [`Aggregator::finish`] turns them into the ordered maps
/// that encoding and the stats API walk. The databases send a tenant's rows together,
/// so the tenant of the previous row is checked before any lookup.
#[derive(Debug)]
pub struct Aggregator {
    tenants: Vec<(String, TenantTally)>,
    index: CycleMap<usize>,
    last: Option<usize>,
    rows: usize,
    /// How many top sessions and top blockers a tenant keeps.
    keep: usize,
    parts: CollectParts,
    /// Whether only listed tenants are kept (see [`Aggregator::listed_only`]).
    listed_only: bool,
    /// How sessions are kept for the session history (see
    /// [`Aggregator::keep_sessions`]); None keeps none.
    history: Option<Keeping>,
}

impl Default for Aggregator {
    /// Keeps every session a row names, and expects every part.
    fn default() -> Self {
        Self::new(usize::MAX, CollectParts::default())
    }
}

/// One tenant while adding up: totals and top sessions in `stats`, dimensions here.
#[derive(Debug, Default)]
struct TenantTally {
    stats: TenantStats,
    by_db: CycleMap<Counts>,
    by_user: CycleMap<Counts>,
    by_client: CycleMap<Counts>,
    by_server: CycleMap<Counts>,
    /// A handful of (command, state) pairs: searched in order, most recent first
    /// being no better, since rows alternate between them.
    by_state: Vec<((String, String), u64)>,
    by_application: CycleMap<Counts>,
    /// A handful of (class, event) pairs, searched in order like `by_state`.
    by_wait: Vec<((String, String), u64)>,
    by_statement: CycleMap<u64>,
    /// Named by [`Aggregator::add_tenant`] or by a zero row (see
    /// [`Aggregator::listed_only`]).
    listed: bool,
}

impl TenantTally {
    /// Counts `n` active sessions waiting on (`class`, `event`) and running
    /// `statement`; an empty value is not counted.
    fn add_activity<S: AsRef<str> + Into<String>>(
        &mut self,
        parts: CollectParts,
        class: &S,
        event: &S,
        statement: S,
        n: u64,
    ) {
        if parts.waits && !class.as_ref().is_empty() {
            add_pair(&mut self.by_wait, class, event, n);
        }
        if parts.statements && !statement.as_ref().is_empty() {
            match self.by_statement.get_mut(statement.as_ref()) {
                Some(known) => *known += n,
                None => {
                    self.by_statement.insert(statement.into(), n);
                }
            }
        }
    }
}

impl Aggregator {
    /// Keeps `keep` top sessions and top blockers per tenant (the statement may name
    /// more: an active blocker is kept apart for both reasons); `parts` says which
    /// optional statistics the rows carry.
    pub fn new(keep: usize, parts: CollectParts) -> Self {
        Self {
            tenants: Vec::new(),
            index: CycleMap::default(),
            last: None,
            rows: 0,
            keep,
            parts,
            listed_only: false,
            history: None,
        }
    }

    /// Keeps, of each tenant, up to `max` of the sessions that rows of their own
    /// name ([`SessionGroup::session`]) for the session history: active, in a
    /// transaction, waiting or blocking, blockers and the longest first
    /// ([`KeptSession::rank`]), counting the rest (`TenantStats::kept_truncated`).
    /// Their text comes from `keeping`'s words, which forget here what the cycles
    /// before no longer hold.
    pub fn keep_sessions(mut self, keeping: Keeping) -> Self {
        keeping.words.sweep();
        self.history = Some(keeping);
        self
    }

    /// The words of the sessions kept (see [`Words`]; a set of its own when the
    /// history is off): for a later read of the cycle completing what the grouping
    /// kept.
    pub fn words(&self) -> Words {
        self.history
            .as_ref()
            .map(|keeping| keeping.words.clone())
            .unwrap_or_default()
    }

    /// Keeps only the tenants a zero row (a group of 0 sessions) or
    /// [`Aggregator::add_tenant`] names: a cluster's statement lists its tenants in
    /// zero rows, so the processlist is read without a join to the tenants view, and
    /// sessions of a tenant it does not list (a META tenant) are dropped here.
    pub fn listed_only(mut self) -> Self {
        self.listed_only = true;
        self
    }

    /// Makes `tenant` present even if no row names it (it then reports zeros).
    pub fn add_tenant(&mut self, tenant: &str) {
        self.tenant(tenant).listed = true;
    }

    /// The tally of tenant `name`, created on first sight.
    fn tenant<S: AsRef<str> + Into<String>>(&mut self, name: S) -> &mut TenantTally {
        let i = match self.last {
            Some(i) if self.tenants[i].0 == name.as_ref() => i,
            _ => match self.index.get(name.as_ref()) {
                Some(&i) => i,
                None => {
                    let name: String = name.into();
                    self.index.insert(name.clone(), self.tenants.len());
                    self.tenants.push((name, TenantTally::default()));
                    self.tenants.len() - 1
                }
            },
        };
        self.last = Some(i);
        &mut self.tenants[i].1
    }

    /// Adds one group of sessions. A group of 0 sessions (the cluster query's row for
    /// a tenant without sessions) only makes its tenant present.
    pub fn add_group<S: AsRef<str> + Into<String>>(&mut self, group: SessionGroup<S>) {
        self.rows += 1;
        let (parts, keep) = (self.parts, self.keep);
        let states = parts.states;
        let kept = match (&self.history, &group.session) {
            (Some(keeping), Some(session)) => {
                Some((keeping.max, kept_session(&group, session, &keeping.words)))
            }
            _ => None,
        };
        let tenant = self.tenant(group.tenant);
        if group.sessions == 0 {
            tenant.listed = true;
            return;
        }
        let (n, active) = (group.sessions, group.active);
        let stats = &mut tenant.stats;
        stats.sessions += n;
        stats.active_sessions += active;
        if active > 0 {
            stats.max_active_time = stats.max_active_time.max(group.max_active_time);
        }
        stats.transaction_sessions += group.transactions;
        stats.idle_in_transaction_sessions += group.idle_in_transaction;
        stats.max_transaction_age = stats.max_transaction_age.max(group.max_transaction_age);
        stats.max_idle_in_transaction = stats
            .max_idle_in_transaction
            .max(group.max_idle_in_transaction);
        stats.lock_waiting_sessions += group.lock_waiting;
        stats.max_lock_wait = stats.max_lock_wait.max(group.max_lock_wait);
        if let Some(n) = group.idle_in_transaction_holding_horizon {
            *stats.idle_in_transaction_holding_horizon.get_or_insert(0) += n;
            let longest = stats.max_idle_holding_horizon.get_or_insert(0.0);
            *longest = longest.max(group.max_idle_holding_horizon.unwrap_or(0.0));
        }
        if let Some(age) = group.horizon_age {
            stats.horizon_age = Some(stats.horizon_age.map_or(age, |oldest| oldest.max(age)));
        }
        if let Some(session) = group.session {
            let (user, db, client) = (
                group.user.as_ref(),
                group.db.as_ref(),
                group.client.as_ref(),
            );
            if let Some((max, kept)) = kept {
                stats.kept.push(kept);
                if stats.kept.len() >= 2 * max.max(1) {
                    cut_kept(stats, max);
                }
            }
            if active > 0 {
                stats.top.push(TopSession {
                    tenant: String::new(),
                    session_id: session.id,
                    user: user.to_string(),
                    db: db.to_string(),
                    client: client.to_string(),
                    sql_id: session.sql_id,
                    time: group.max_active_time,
                });
                // A server with thousands of active threads sends each in a row of
                // its own: keep at most twice what is exported, not all of them.
                if stats.top.len() >= 2 * keep.max(1) {
                    keep_longest(&mut stats.top, keep);
                }
            }
            if let Some(age) = group.horizon_age {
                stats.horizon_holders.push(HorizonHolder {
                    session_id: session.id,
                    user: user.to_string(),
                    db: db.to_string(),
                    client: client.to_string(),
                    application: group.application.as_ref().to_string(),
                    age,
                });
                if stats.horizon_holders.len() >= 2 * keep.max(1) {
                    keep_oldest(&mut stats.horizon_holders, keep);
                }
            }
            if session.waiters > 0 {
                stats.blockers.push(Blocker {
                    session_id: session.id,
                    user: user.to_string(),
                    db: db.to_string(),
                    client: client.to_string(),
                    waiters: session.waiters,
                    lock: HeldLock::Row,
                });
            }
        }
        if states {
            add_pair(&mut tenant.by_state, &group.command, &group.state, n);
        }
        if active > 0 {
            tenant.add_activity(
                parts,
                &group.wait_class,
                &group.wait_event,
                group.statement,
                active,
            );
        }
        let counts = Counts {
            sessions: n,
            active,
            idle_in_transaction: group.idle_in_transaction,
        };
        // A source that counts applications apart leaves them empty here.
        if parts.applications && !group.application.as_ref().is_empty() {
            add_to(&mut tenant.by_application, group.application, counts);
        }
        add_to(&mut tenant.by_db, group.db, counts);
        add_to(&mut tenant.by_user, group.user, counts);
        add_to(&mut tenant.by_client, group.client, counts);
        add_to(&mut tenant.by_server, group.server, counts);
    }

    /// Adds one of a tenant's longest active sessions, as unit tests write them
    /// (sources send sessions as rows of their own, see [`SessionGroup::session`]).
    #[cfg(test)]
    pub fn add_top(&mut self, session: TopSession) {
        self.rows += 1;
        self.add_top_apart(session);
    }

    /// Adds one of a tenant's longest active sessions, read by a cycle's statement of
    /// details (its row is counted by [`Aggregator::add_detail`]).
    pub fn add_top_apart(&mut self, session: TopSession) {
        let tally = self.tenant(session.tenant.as_str());
        tally.stats.top.push(session);
    }

    /// Adds what one active session the grouping already counted waits on (class,
    /// event) and runs (a statement of activity's; an empty statement is none).
    pub fn add_activity(&mut self, tenant: &str, (class, event): (&str, &str), statement: &str) {
        let parts = self.parts;
        self.tenant(tenant)
            .add_activity(parts, &class, &event, statement, 1);
    }

    /// The sessions of `tenant` kept so far for the history (none when it is off),
    /// for a later read of the cycle to complete (MySQL's waits, statements and
    /// programs come after its grouping).
    pub fn kept_mut(&mut self, tenant: &str) -> &mut [KeptSession] {
        match self.history {
            Some(_) => &mut self.tenant(tenant).stats.kept,
            None => &mut [],
        }
    }

    /// Adds `counts` sessions of `tenant` to application `name`, counted apart from
    /// the groups that counted them otherwise (MySQL's, by connection).
    pub fn add_application(&mut self, tenant: &str, name: &str, counts: Counts) {
        if self.parts.applications {
            add_to(&mut self.tenant(tenant).by_application, name, counts);
        }
    }

    /// Adds a session others wait on, read by a cycle's statement of details (its
    /// row is counted by [`Aggregator::add_detail`]).
    pub fn add_blocker(&mut self, tenant: String, blocker: Blocker) {
        self.tenant(tenant).stats.blockers.push(blocker);
    }

    /// Adds what a cycle's statement of details read of `tenant`'s transactions and
    /// lock waits (the kinds whose grouped rows cannot carry them).
    pub fn add_detail(&mut self, tenant: String, detail: Detail) {
        self.rows += 1;
        let stats = &mut self.tenant(tenant).stats;
        stats.max_active_time = stats.max_active_time.max(detail.max_active_time);
        stats.max_idle_in_transaction = stats
            .max_idle_in_transaction
            .max(detail.max_idle_in_transaction);
        stats.max_transaction_age = stats.max_transaction_age.max(detail.max_transaction_age);
        stats.lock_waiting_sessions += detail.lock_waiting;
        stats.max_lock_wait = stats.max_lock_wait.max(detail.max_lock_wait);
    }

    /// Whether a group added so far has active sessions, sessions in a transaction,
    /// or sessions waiting for a lock: what decides whether a cycle reads details.
    pub fn present(&self) -> Present {
        let mut present = Present::default();
        for (_, tally) in &self.tenants {
            let stats = &tally.stats;
            present.active |= stats.active_sessions > 0;
            present.transactions |= stats.transaction_sessions > 0;
            present.lock_waits |= stats.lock_waiting_sessions > 0;
        }
        present
    }

    pub fn finish(self) -> Collected {
        let (keep, parts, listed_only) = (self.keep, self.parts, self.listed_only);
        let history = self.history.map(|keeping| keeping.max);
        let tenants = self
            .tenants
            .into_iter()
            .filter(|(_, tally)| tally.listed || !listed_only)
            .map(|(name, tally)| {
                let mut stats = tally.stats;
                stats.parts = parts;
                stats.by_db = tally.by_db.into_iter().collect();
                stats.by_user = tally.by_user.into_iter().collect();
                stats.by_client = tally.by_client.into_iter().collect();
                stats.by_server = tally.by_server.into_iter().collect();
                stats.by_state = tally.by_state.into_iter().collect();
                stats.by_application = tally.by_application.into_iter().collect();
                stats.by_wait = tally.by_wait.into_iter().collect();
                stats.by_statement = tally.by_statement.into_iter().collect();
                // A tenant's most frequent statements, the rest summed (keep 0: none).
                if keep == 0 {
                    stats.by_statement.clear();
                } else {
                    keep_largest(&mut stats.by_statement, keep, OTHER_LABEL.to_string());
                }
                keep_longest(&mut stats.top, keep);
                keep_oldest(&mut stats.horizon_holders, keep);
                for top in &mut stats.top {
                    top.tenant.clone_from(&name);
                }
                stats.blockers.sort_by(|a, b| {
                    b.waiters
                        .cmp(&a.waiters)
                        .then(a.session_id.cmp(&b.session_id))
                });
                stats.blockers.truncate(keep);
                if let Some(max) = history {
                    cut_kept(&mut stats, max);
                }
                (name, stats)
            })
            .collect();
        Collected {
            statistics: Statistics::Tenants(tenants),
            beside: None,
            rows: self.rows,
        }
    }
}

/// The session of a row of its own, as the history keeps it (past twice the cap a
/// tenant's list is cut to the cap by rank, the rest counted). Its text is the
/// target's shared words, looked up under one lock.
fn kept_session<S: AsRef<str>>(
    group: &SessionGroup<S>,
    session: &OneSession,
    words: &Words,
) -> KeptSession {
    let active = group.active > 0;
    let sql_id = match session.sql_id.is_empty() {
        true => group.statement.as_ref(),
        false => &session.sql_id,
    };
    let [server, user, db, client, application, command, state, wait_class, wait_event, sql_id, sql_text] =
        words.words([
            group.server.as_ref(),
            group.user.as_ref(),
            group.db.as_ref(),
            group.client.as_ref(),
            group.application.as_ref(),
            group.command.as_ref(),
            group.state.as_ref(),
            group.wait_class.as_ref(),
            group.wait_event.as_ref(),
            sql_id,
            &session.sql_text,
        ]);
    KeptSession {
        id: session.id,
        server,
        user,
        db,
        client,
        application,
        command,
        state,
        active,
        time: match active {
            true => group.max_active_time,
            false => group.max_idle_in_transaction,
        },
        // An age of 0 is one the read did not find (no transaction's start matched).
        transaction_age: (group.transactions > 0 && group.max_transaction_age > 0.0)
            .then_some(group.max_transaction_age),
        lock_wait: (group.lock_waiting > 0).then_some(group.max_lock_wait),
        blocked_by: session.blocked_by,
        waiters: session.waiters,
        wait_class,
        wait_event,
        sql_id,
        sql_text,
    }
}

/// Cuts a tenant's kept sessions to the `max` first by rank, counting the rest.
fn cut_kept(stats: &mut TenantStats, max: usize) {
    stats.kept.sort_by(KeptSession::rank);
    if stats.kept.len() > max {
        stats.kept_truncated += (stats.kept.len() - max) as u64;
        stats.kept.truncate(max);
    }
}

/// Adds `n` to the entry of (`a`, `b`) in a short list of pairs, copied only when
/// new.
fn add_pair<S: AsRef<str>>(pairs: &mut Vec<((String, String), u64)>, a: &S, b: &S, n: u64) {
    let (a, b) = (a.as_ref(), b.as_ref());
    match pairs.iter_mut().find(|((x, y), _)| x == a && y == b) {
        Some((_, count)) => *count += n,
        None => pairs.push(((a.to_string(), b.to_string()), n)),
    }
}

/// Adds `counts` to `key`'s entry, which is copied only when new.
fn add_to<S: AsRef<str> + Into<String>>(map: &mut CycleMap<Counts>, key: S, counts: Counts) {
    match map.get_mut(key.as_ref()) {
        Some(known) => known.add(counts),
        None => map.entry(key.into()).or_default().add(counts),
    }
}

/// Keeps the `keep` sessions holding the oldest snapshots, oldest first.
fn keep_oldest(holders: &mut Vec<HorizonHolder>, keep: usize) {
    holders.sort_by(|a, b| b.age.cmp(&a.age).then(a.session_id.cmp(&b.session_id)));
    holders.truncate(keep);
}

/// Keeps the `keep` longest sessions of `top`, longest first; equal times in
/// session id order, so ranks do not flap.
fn keep_longest(top: &mut Vec<TopSession>, keep: usize) {
    top.sort_by(|a, b| {
        b.time
            .total_cmp(&a.time)
            .then(a.session_id.cmp(&b.session_id))
    });
    top.truncate(keep);
}

/// Adds up `rows` per tenant. Every tenant of `rows.tenants` is present in the
/// result, with zeros when it has no sessions. Test code only.
#[cfg(test)]
pub fn aggregate(rows: SessionRows) -> BTreeMap<String, TenantStats> {
    Collected::from(rows).into_tenants()
}

#[cfg(test)]
impl From<SessionRows> for Collected {
    fn from(rows: SessionRows) -> Self {
        let mut aggregator = Aggregator::default();
        for tenant in &rows.tenants {
            aggregator.add_tenant(tenant);
        }
        for group in rows.groups {
            aggregator.add_group(group);
        }
        for top in rows.top {
            aggregator.add_top(top);
        }
        aggregator.finish()
    }
}
