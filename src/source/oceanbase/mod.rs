//! OceanBase: a cluster through the sys tenant's `GV$OB_PROCESSLIST`, or a
//! single-tenant server (seekdb) through `V$OB_PROCESSLIST`.
//!
//! A cycle reads the processlist once, every session in a row of its own (see
//! [`statements`]), after a small statement of particulars that lists a cluster's
//! tenants (so a tenant without sessions reports zeros) and the open transactions
//! and lock waits the sessions are matched with. Active means `STATE = 'ACTIVE'`.
//! The client address is `USER_CLIENT_IP` (the real client; `HOST` is the proxy for
//! sessions through OBProxy), falling back to `HOST` without its port.

mod cycle;
mod deadlocks;
mod per_session;
mod sessions;

use sessions::OceanbaseProcesslist;

use super::collect::{BoxFuture, Source};
use crate::config::oceanbase::{Oceanbase, Relation};
use crate::config::{Database, Target};
use crate::error::SourceError;
use crate::sql::conn::{classify, is_missing_or_denied_relation, Connector};
use crate::sql::query::{self, SqlError};
use crate::sql::{
    filter_conditions, host_without_port, mysql_limits, Grouping, LockWait, PeriodicReads,
    RowContext, Rules, MAX_EVENTS, OWN_SESSIONS, TAG,
};
use crate::stats::{Collected, Keeping};
#[cfg(test)]
use cycle::cycle;
use cycle::{cycle_reading, Cycle};
use per_session::Shape;
use std::time::Duration;

/// The privilege to suggest when one is missing.
const GRANT: &str = "grant it with GRANT SELECT ON oceanbase.* TO the account \
                     (a cluster needs GV$OB_PROCESSLIST and DBA_OB_TENANTS in the sys tenant)";

/// Which view a target is read through. Collection finds it on its first successful
/// cycle; the session API finds it with [`detect_mode`], the same probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A cluster's sys tenant: `GV$OB_PROCESSLIST` (or the configured
    /// `processlist_view`), every tenant, with `TENANT` and server columns.
    Cluster,
    /// A single-tenant server (seekdb): `V$OB_PROCESSLIST`.
    SingleTenant,
}

pub struct OceanbaseSource {
    name: String,
    settings: Oceanbase,
    connector: Connector,
    mode: Option<Mode>,
    /// The statement of a mode, written for what this account can read there.
    plan: Option<Probed>,
    /// The tenant label in single-tenant mode.
    single_tenant: String,
    periodic: PeriodicReads,
    /// How sessions are kept for the session history; None: none.
    history: Option<Keeping>,
    /// Characters of their SQL text it keeps (0: none).
    history_sql_text: usize,
}

/// A mode's statements and the settings they were written for: the configured ones
/// with every part off whose view is missing or denied ([`OceanbaseSource::prepare`]).
struct Probed {
    mode: Mode,
    settings: Oceanbase,
    cycle: Cycle,
    /// Which read of the sessions the next cycle sends.
    shape: Shape,
    /// What was turned off and why, said once the mode proves right.
    unread: Vec<String>,
    /// Whether the accounts' own limits (`mysql.user`) can be read: a single tenant.
    users: bool,
}

/// The statement every new connection runs first: the server stops our queries at
/// `timeout` itself, so an abandoned cycle or request leaves no work behind.
fn init_statements(timeout: Duration) -> Vec<String> {
    vec![format!(
        "{TAG} SET SESSION ob_query_timeout = {}",
        timeout.as_micros().max(1)
    )]
}

/// The mode the configuration decides alone: configured views force cluster mode
/// (the user told us what to read).
fn configured_mode(settings: &Oceanbase) -> Option<Mode> {
    (settings.processlist_view.is_some() || settings.tenants_view.is_some())
        .then_some(Mode::Cluster)
}

/// Finds the mode of `settings` the way collection does: configured views or a
/// visible `DBA_OB_TENANTS` mean a cluster; a missing or denied one, a single tenant.
async fn detect_mode(
    conn: &mut mysql_async::Conn,
    settings: &Oceanbase,
) -> Result<Mode, mysql_async::Error> {
    use mysql_async::prelude::Queryable;
    if let Some(mode) = configured_mode(settings) {
        return Ok(mode);
    }
    let probe = format!(
        "{TAG} SELECT 1 FROM {} WHERE 1 = 0",
        tenants_relation(settings)
    );
    match conn.query_drop(probe).await {
        Ok(()) => Ok(Mode::Cluster),
        Err(err) if is_missing_or_denied_relation(&err) => Ok(Mode::SingleTenant),
        Err(err) => Err(err),
    }
}

impl OceanbaseSource {
    pub fn new(target: &Target, settings: &Oceanbase) -> Self {
        let connector = Connector::new(
            &settings.database,
            target.collect_interval,
            init_statements(target.collect_timeout),
        );
        Self {
            connector,
            mode: configured_mode(settings),
            plan: None,
            single_tenant: single_tenant_name(&target.name, settings),
            periodic: PeriodicReads::new(
                settings.database.collect,
                settings.database.limits_interval,
                target.collect_interval,
            )
            .with_ash(target.max_series_per_dimension),
            name: target.name.clone(),
            settings: settings.clone(),
            history: target.history_sessions.map(Keeping::new),
            history_sql_text: target.history_sql_text,
        }
    }

    /// `mode`'s statement, written once per pool and mode (see [`Self::write`]).
    async fn prepare(
        &mut self,
        conn: &mut mysql_async::Conn,
        mode: Mode,
    ) -> Result<&mut Probed, mysql_async::Error> {
        let plan = match self.plan.take() {
            Some(plan) if plan.mode == mode => plan,
            _ => self.write(conn, mode).await?,
        };
        Ok(self.plan.insert(plan))
    }

    /// Writes `mode`'s statement for what this account can read: a part whose view
    /// it cannot read (`GV$OB_LOCKS` not granted, a view an older version lacks) is
    /// turned off rather than failing every cycle.
    async fn write(
        &self,
        conn: &mut mysql_async::Conn,
        mode: Mode,
    ) -> Result<Probed, mysql_async::Error> {
        let mut settings = self.settings.clone();
        let (transactions, locks) = match mode {
            Mode::Cluster => (transactions_relation(&settings), locks_relation(&settings)),
            Mode::SingleTenant => (
                "`oceanbase`.`V$OB_TRANSACTION_SCHEDULERS`".to_string(),
                "`oceanbase`.`V$OB_LOCKS`".to_string(),
            ),
        };
        let mut unread = Vec::new();
        let parts = &mut settings.database.collect;
        for (on, relation, what) in [
            (&mut parts.transactions, transactions, "transactions"),
            (&mut parts.locks, locks, "lock waits and blockers"),
        ] {
            if *on {
                if let Some(err) = query::probe_relation(conn, &relation).await? {
                    *on = false;
                    unread.push(format!(
                        "{relation} is not readable ({err}): {what} are not collected; {GRANT}"
                    ));
                }
            }
        }
        let (variables, deadlocks) = match mode {
            Mode::Cluster => (
                Some(variables_relation(&settings)),
                deadlocks_relation(&settings),
            ),
            // A single tenant's limits are its variables, always readable.
            Mode::SingleTenant => (None, SINGLE_DEADLOCKS.to_string()),
        };
        let ash = ash_relation(&settings, mode);
        let sysstat = sysstat_relation(&settings, mode);
        let parts = &mut settings.database.collect;
        for (on, relation, what) in [
            (&mut parts.limits, variables, "session limits"),
            (&mut parts.deadlocks, Some(deadlocks), "deadlocks"),
            // seekdb has none: its active sessions' waits are not known.
            (
                &mut parts.waits,
                Some(ash),
                "active session history samples",
            ),
            // seekdb has none either: it counts no logons.
            (&mut parts.connections, Some(sysstat), "connection counters"),
        ] {
            let Some(relation) = relation.filter(|_| *on) else {
                continue;
            };
            if let Some(err) = query::probe_relation(conn, &relation).await? {
                *on = false;
                unread.push(format!(
                    "{relation} is not readable ({err}): {what} are not collected; {GRANT}"
                ));
            }
        }
        let users = mode == Mode::SingleTenant && parts.limits && {
            let denied = query::probe_relation(conn, "mysql.user").await?;
            if let Some(err) = &denied {
                unread.push(format!(
                    "mysql.user is not readable ({err}): the users' session limits \
                     (MAX_USER_CONNECTIONS) are not exported; grant it with GRANT SELECT ON \
                     mysql.user TO the account"
                ));
            }
            denied.is_none()
        };
        let processlist = relation(&settings, mode);
        if settings.database.collect.applications
            && !query::has_column(conn, &processlist, "MODULE").await?
        {
            settings.database.collect.applications = false;
            unread.push(format!(
                "{processlist} has no MODULE column (an OceanBase before 4.2?): applications \
                 are not collected"
            ));
        }
        let parts = settings.database.collect;
        let trans_state = (parts.transactions || parts.locks)
            && query::has_column(conn, &processlist, "TRANS_STATE").await?;
        let history = self.history.as_ref().map(|_| self.history_sql_text);
        let cycle = cycle_reading(&settings, mode, trans_state, history);
        cycle.log(&self.name);
        Ok(Probed {
            mode,
            settings,
            cycle,
            shape: Shape::default(),
            unread,
            users,
        })
    }

    /// Sends the statement of limits and deadlocks when it is due (see
    /// [`periodic_sql`]) and gives `collected`'s tenants what the last one found.
    async fn periodic(&mut self, conn: &mut mysql_async::Conn, collected: &mut Collected) {
        let Some(plan) = &self.plan else {
            return;
        };
        if self.periodic.due() {
            let (since, ash_since) = (self.periodic.events_since(), self.periodic.ash_since());
            if let Some(sql) = periodic_sql(plan, since, ash_since) {
                tracing::debug!(target = %self.name, sql = %sql, "statement of limits and deadlocks");
                let how = (&self.settings.database, self.name.as_str(), GRANT);
                let tenant = match plan.mode {
                    Mode::Cluster => "",
                    Mode::SingleTenant => &self.single_tenant,
                };
                query::read_periodic(conn, &sql, &mut self.periodic, tenant, how).await;
            }
        }
        self.periodic.attach(collected);
    }

    /// Says once what the plan leaves out.
    fn say_unread(&mut self) {
        if let Some(plan) = &mut self.plan {
            for message in plan.unread.drain(..) {
                tracing::warn!(target = %self.name, "{message}");
            }
        }
    }

    async fn run(&mut self) -> Result<Collected, SourceError> {
        let mut conn = self
            .connector
            .conn()
            .await
            .map_err(|e| classify(&e, &self.settings.database, "connecting", GRANT))?;
        let collected = match self.mode {
            Some(Mode::Cluster) => self
                .query_cluster(&mut conn)
                .await
                .map_err(|e| self.classify_cluster(e)),
            Some(Mode::SingleTenant) => self.single(&mut conn).await,
            // First success decides the mode; it is not revisited, so a privilege
            // revoked later shows as an auth error instead of a silent switch to
            // the connected tenant alone.
            None => match self.query_cluster(&mut conn).await {
                Ok(collected) => {
                    self.mode = Some(Mode::Cluster);
                    Ok(collected)
                }
                // The cluster view answered, if strangely: it is a cluster.
                Err(SqlError::Answer(err)) => {
                    self.mode = Some(Mode::Cluster);
                    Err(err)
                }
                Err(SqlError::Driver(err)) if is_missing_or_denied_relation(&err) => {
                    tracing::info!(
                        target = %self.name,
                        tenant = %self.single_tenant,
                        "GV$OB_PROCESSLIST is not visible to this account ({err}); \
                         collecting the connected tenant through V$OB_PROCESSLIST"
                    );
                    let collected = self.single(&mut conn).await?;
                    self.mode = Some(Mode::SingleTenant);
                    Ok(collected)
                }
                Err(err) => Err(self.classify_cluster(err)),
            },
        };
        let mut collected = collected?;
        self.say_unread();
        self.periodic(&mut conn, &mut collected).await;
        Ok(collected)
    }

    /// The cluster statement; every tenant comes back in a group row (a zero row
    /// when it has no sessions).
    async fn query_cluster(&mut self, conn: &mut mysql_async::Conn) -> Result<Collected, SqlError> {
        let history = self.history.clone();
        let Probed {
            settings,
            cycle,
            shape,
            ..
        } = self.prepare(conn, Mode::Cluster).await?;
        let ctx = RowContext {
            history,
            ..row_context(settings, "", Mode::Cluster)
        };
        cycle.run(conn, &ctx, &[], shape).await
    }

    fn classify_cluster(&self, err: SqlError) -> SourceError {
        let what = format!("reading {}", processlist_relation(&self.settings));
        err.classify(&self.settings.database, &what, GRANT)
    }

    async fn single(&mut self, conn: &mut mysql_async::Conn) -> Result<Collected, SourceError> {
        let classify = |e: SqlError, database: &Database| {
            e.classify(database, "reading oceanbase.V$OB_PROCESSLIST", GRANT)
        };
        let database = self.settings.database.clone();
        let tenant = self.single_tenant.clone();
        let history = self.history.clone();
        let Probed {
            settings,
            cycle,
            shape,
            ..
        } = self
            .prepare(conn, Mode::SingleTenant)
            .await
            .map_err(|e| classify(SqlError::Driver(e), &database))?;
        let ctx = RowContext {
            history,
            ..row_context(settings, &tenant, Mode::SingleTenant)
        };
        cycle
            .run(conn, &ctx, &[&tenant], shape)
            .await
            .map_err(|e| classify(e, &database))
    }
}

impl Source for OceanbaseSource {
    fn collect(&mut self) -> BoxFuture<'_, Result<Collected, SourceError>> {
        Box::pin(self.run())
    }

    fn reset(&mut self) {
        self.connector.reset();
        self.plan = None;
    }
}

/// The session API of a target of this kind (see [`crate::source::api_backend`]).
pub fn api_backend(
    target: &Target,
    settings: &Oceanbase,
    limits: (usize, Duration),
) -> crate::api::http::Backend {
    let processlist = Box::new(OceanbaseProcesslist::new(target, settings));
    crate::api::processlist::backend(processlist, target.collect_interval, limits)
}

/// How rows of this kind are decoded: `tenant` and the target's host stand in for
/// what a single server does not say; OceanBase writes the string `NULL` for no
/// database.
fn row_context<'a>(settings: &'a Oceanbase, tenant: &'a str, mode: Mode) -> RowContext<'a> {
    RowContext {
        tenant,
        server: &settings.database.address.host,
        null_string_is_no_db: true,
        keep: settings.database.top_sessions,
        parts: settings.database.collect,
        rules: RULES,
        // A cluster's tenants are the ones its zero rows list.
        listed_only: mode == Mode::Cluster,
        history: None,
    }
}

/// What a group's key means here: active is `STATE = 'ACTIVE'`; an open
/// transaction is a `TRANS_STATE` that is neither empty nor one of a finished or
/// unused transaction (a session without one shows an empty TRANS_STATE; one inside
/// a transaction `ACTIVE`, or `IMPLICIT_ACTIVE` for one opened by a statement with
/// autocommit off). Lock waits are read by the statement of particulars.
const RULES: Rules = Rules {
    active: |_, state| state == "ACTIVE",
    in_transaction: |state| {
        !NO_TRANSACTION
            .iter()
            .any(|none| state.eq_ignore_ascii_case(none))
    },
    lock_wait: |_, _| LockWait::No,
};

/// What names a session's program: `MODULE`, which `DBMS_APPLICATION_INFO.SET_MODULE`
/// and OceanBase's own drivers set, else `CLIENT_INFO`; NULL when neither is (a plain
/// MySQL client sets neither: seekdb's V$OB_PROCESSLIST shows both empty).
const APPLICATION: &str = "IF(p.MODULE <> '', p.MODULE, p.CLIENT_INFO)";

/// The statement of particulars (see [`per_session::PARTICULAR_COLUMNS`]): a cluster's
/// tenants, one zero row each (META tenants and those `tenants:` leaves out are not
/// listed, and their sessions are dropped when added up); each open transaction's
/// age from its scheduler's `ACTIVE_TIME`; each session waiting for a lock (a
/// `BLOCK = 1` row of the locks view) with its longest wait and the session holding
/// the row lock (`ID2` of its `TYPE = 'TR'` row), which the session history keeps; and each session others
/// wait on (the transaction and session a waiting `TYPE = 'TR'` row names in `ID1`
/// and `ID2`) with how many wait. None of it joins the processlist: the per-session
/// read that follows is matched with these rows by the exporter.
fn particulars_sql(
    settings: &Oceanbase,
    mode: Mode,
    tenant_filter: &str,
    history: bool,
) -> Option<String> {
    let parts = settings.database.collect;
    let mut rows = Vec::new();
    if mode == Mode::Cluster {
        rows.push(format!(
            "SELECT 0, t.TENANT_NAME, NULL, NULL, NULL FROM {} t \
             WHERE t.TENANT_TYPE <> 'META'{tenant_filter}",
            tenants_relation(settings)
        ));
    }
    if parts.transactions {
        // Ages are taken against the server's clock, read in the same statement.
        let server = match mode {
            Mode::Cluster => "s.SVR_IP, s.SVR_PORT",
            Mode::SingleTenant => "'', 0",
        };
        rows.push(format!(
            "SELECT 1, CONCAT_WS(',', {server}, s.SESSION_ID, s.ACTIVE_TIME), NULL, NULL, NULL \
             FROM {} s UNION ALL SELECT 4, NULL, NULL, NULL, NOW(6)",
            transactions(settings, mode)
        ));
    }
    if parts.locks {
        let locks = locks(settings, mode);
        // The holder only for the session history, which keeps it.
        let holder = match history {
            true => "MAX(CASE WHEN l.TYPE = 'TR' THEN l.ID2 END)",
            false => "NULL",
        };
        rows.push(format!(
            "SELECT 2, {holder}, l.TRANS_ID, l.SESSION_ID, MAX(l.CTIME) / 1000000 FROM {locks} l \
             WHERE l.BLOCK = 1 GROUP BY l.TRANS_ID, l.SESSION_ID"
        ));
        rows.push(format!(
            "SELECT 3, NULL, l.ID1, l.ID2, COUNT(DISTINCT l.TRANS_ID) FROM {locks} l \
             WHERE l.BLOCK = 1 AND l.TYPE = 'TR' GROUP BY l.ID1, l.ID2"
        ));
    }
    (!rows.is_empty()).then(|| format!("{TAG} {}", rows.join(" UNION ALL ")))
}

/// The session API's pile-up (see [`crate::api::pileup::add_pileup_row`]): each
/// session waiting for a transaction's row lock (a `BLOCK = 1`, `TYPE = 'TR'` row of
/// the locks view) with the session holding it (`ID2`), its longest wait first, and
/// each open transaction's session by its scheduler's `ACTIVE_TIME`, the oldest
/// first; at most `limit` of each. In a cluster, of the sessions of the tenant bound
/// to both `?`.
fn pileup_sql(settings: &Oceanbase, mode: Mode, limit: usize) -> String {
    let of_tenant = |column: &str| match mode {
        Mode::Cluster => format!(
            " AND {column} IN (SELECT p.ID FROM {} p WHERE p.TENANT = ?)",
            processlist_relation(settings)
        ),
        Mode::SingleTenant => String::new(),
    };
    format!(
        "{TAG} (SELECT 0, l.SESSION_ID, l.ID2, MAX(l.CTIME) / 1000000 AS s FROM {} l \
         WHERE l.BLOCK = 1 AND l.TYPE = 'TR'{} GROUP BY l.SESSION_ID, l.ID2 \
         ORDER BY s DESC LIMIT {limit}) UNION ALL (SELECT 1, t.SESSION_ID, NULL, \
         TIMESTAMPDIFF(MICROSECOND, t.ACTIVE_TIME, NOW(6)) / 1000000 AS s FROM {} t \
         WHERE 1 = 1{} ORDER BY t.ACTIVE_TIME LIMIT {limit})",
        locks(settings, mode),
        of_tenant("l.SESSION_ID"),
        transactions(settings, mode),
        of_tenant("t.SESSION_ID"),
    )
}

/// The `tenants:` list as conditions on the sessions and on the tenants view.
/// Tenant names are validated as [A-Za-z0-9_] at config load, so quoting is safe.
fn tenant_filters(settings: &Oceanbase) -> (String, String) {
    match &settings.tenants {
        Some(names) => {
            let list: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
            let list = list.join(", ");
            (
                format!(" AND p.TENANT IN ({list})"),
                format!(" AND t.TENANT_NAME IN ({list})"),
            )
        }
        None => (String::new(), String::new()),
    }
}

/// The client: `USER_CLIENT_IP` (the real client; `HOST` is the proxy for sessions
/// through OBProxy), `HOST` without its port only where it is empty: what the
/// session API's stats group by. A cycle's per-session read sends `USER_CLIENT_IP`,
/// and `HOST` only among a detailed session's particulars (the exporter cuts its
/// port); its statement of clients without an address groups the rest by this cut
/// (see [`Cycle::fallback`]).
fn client() -> String {
    format!(
        "CASE WHEN p.USER_CLIENT_IP <> '' THEN p.USER_CLIENT_IP ELSE {} END",
        host_without_port("p.HOST")
    )
}

/// The `TRANS_STATE`s of a session without an open transaction: none (empty), and
/// those of a transaction not begun or already ended, as [`RULES`] reads them (the
/// statements select the particulars of every non-empty one, a cheaper superset).
const NO_TRANSACTION: [&str; 6] = ["", "IDLE", "INVALID", "INVL", "COMMITTED", "ROLLED_BACK"];

/// Which sessions are counted, and where they are read, in `mode`.
fn sessions_read(settings: &Oceanbase, mode: Mode, session_filter: &str) -> (String, String) {
    let filters = filter_conditions(&settings.database.filter, "p.");
    match mode {
        // The exporter's own sessions are excluded: on OceanBase 4 a session id is
        // unique per server, so they are matched with the server they run on, the
        // one every connection of this target reaches.
        Mode::Cluster => (
            format!("{} p", processlist_relation(settings)),
            format!(
                "NOT (p.ID IN ({OWN_SESSIONS}) AND p.SVR_IP = HOST_IP()){filters}{session_filter}"
            ),
        ),
        Mode::SingleTenant => (
            "`oceanbase`.`V$OB_PROCESSLIST` p".to_string(),
            format!("p.ID NOT IN ({OWN_SESSIONS}){filters}"),
        ),
    }
}

/// The grouping of `mode` (see [`Grouping`]). A cluster's processlist is read
/// without a join: every tenant comes back in a zero row of its own (META tenants
/// and those `tenants:` leaves out do not), and the rows of tenants no zero row
/// lists are dropped when they are added up ([`RowContext::listed_only`]). Only a
/// processlist without `TRANS_STATE` joins the transactions view. `api` writes the
/// session API's stats, one statement alone: each group's longest TIME and the full
/// client expression are read by it.
fn grouping(
    settings: &Oceanbase,
    mode: Mode,
    session_filter: &str,
    tenant_filter: &str,
    trans_state: bool,
    api: bool,
) -> Grouping {
    let parts = settings.database.collect;
    let cluster = mode == Mode::Cluster;
    let (relation, filter) = sessions_read(settings, mode, session_filter);
    let mut grouping = Grouping {
        prefix: format!("{TAG} "),
        hint: String::new(),
        relation,
        joins: String::new(),
        filter,
        tenant: if cluster { "p.TENANT" } else { "NULL" }.to_string(),
        server: if cluster { "p.SVR_IP" } else { "NULL" }.to_string(),
        client: if api {
            client()
        } else {
            "p.USER_CLIENT_IP".to_string()
        },
        command: if parts.states { "p.COMMAND" } else { "NULL" }.to_string(),
        // The rules need STATE (active) whether states are collected or not.
        state: "p.STATE".to_string(),
        transaction: "NULL".to_string(),
        time: if api { "p.TIME" } else { "NULL" }.to_string(),
        transaction_age: "NULL".to_string(),
        lock_wait: "NULL".to_string(),
        session: "NULL".to_string(),
        application: match parts.applications {
            true => APPLICATION.to_string(),
            false => "NULL".to_string(),
        },
        ids: "NULL".to_string(),
        union: String::new(),
    };
    if parts.transactions || parts.locks {
        if trans_state {
            grouping.transaction = "p.TRANS_STATE".to_string();
        } else {
            grouping.joins = transactions_join(&transactions(settings, mode), cluster);
            grouping.transaction =
                "CASE WHEN s.SESSION_ID IS NOT NULL THEN 'ACTIVE' END".to_string();
        }
    }
    if cluster {
        grouping.union = format!(
            " UNION ALL SELECT t.TENANT_NAME, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, \
             NULL, NULL, NULL, NULL, NULL FROM {} t WHERE t.TENANT_TYPE <> 'META'{tenant_filter}",
            tenants_relation(settings)
        );
    }
    grouping
}

/// The transactions view of `mode`.
fn transactions(settings: &Oceanbase, mode: Mode) -> String {
    match mode {
        Mode::Cluster => transactions_relation(settings),
        Mode::SingleTenant => "`oceanbase`.`V$OB_TRANSACTION_SCHEDULERS`".to_string(),
    }
}

/// The locks view of `mode`.
fn locks(settings: &Oceanbase, mode: Mode) -> String {
    match mode {
        Mode::Cluster => locks_relation(settings),
        Mode::SingleTenant => "`oceanbase`.`V$OB_LOCKS`".to_string(),
    }
}

/// `LEFT JOIN` of a session's transaction scheduler (`s`), on its session's server
/// in a cluster (a session id is unique per server).
fn transactions_join(relation: &str, cluster: bool) -> String {
    if cluster {
        format!(
            " LEFT JOIN {relation} s ON s.SVR_IP = p.SVR_IP AND s.SVR_PORT = p.SVR_PORT \
             AND s.SESSION_ID = p.ID"
        )
    } else {
        format!(" LEFT JOIN {relation} s ON s.SESSION_ID = p.ID")
    }
}

/// The relation sessions are read from in `mode`.
fn relation(settings: &Oceanbase, mode: Mode) -> String {
    match mode {
        Mode::Cluster => processlist_relation(settings),
        Mode::SingleTenant => "`oceanbase`.`V$OB_PROCESSLIST`".to_string(),
    }
}

/// The relation sessions are read from in cluster mode.
fn processlist_relation(settings: &Oceanbase) -> String {
    settings.processlist_view.as_ref().map_or(
        "`oceanbase`.`GV$OB_PROCESSLIST`".to_string(),
        Relation::to_sql,
    )
}

/// The relation tenants are read from in cluster mode.
fn tenants_relation(settings: &Oceanbase) -> String {
    settings
        .tenants_view
        .as_ref()
        .map_or("`oceanbase`.`DBA_OB_TENANTS`".to_string(), Relation::to_sql)
}

/// The relations a cluster's transactions and locks are read from.
fn transactions_relation(settings: &Oceanbase) -> String {
    settings.transactions_view.as_ref().map_or(
        "`oceanbase`.`GV$OB_TRANSACTION_SCHEDULERS`".to_string(),
        Relation::to_sql,
    )
}

fn locks_relation(settings: &Oceanbase) -> String {
    settings
        .locks_view
        .as_ref()
        .map_or("`oceanbase`.`GV$OB_LOCKS`".to_string(), Relation::to_sql)
}

/// The relations a cluster's limits and deadlocks are read from.
fn variables_relation(settings: &Oceanbase) -> String {
    settings.variables_view.as_ref().map_or(
        "`oceanbase`.`CDB_OB_SYS_VARIABLES`".to_string(),
        Relation::to_sql,
    )
}

fn deadlocks_relation(settings: &Oceanbase) -> String {
    settings.deadlocks_view.as_ref().map_or(
        "`oceanbase`.`CDB_OB_DEADLOCK_EVENT_HISTORY`".to_string(),
        Relation::to_sql,
    )
}

/// A single tenant's deadlock history.
const SINGLE_DEADLOCKS: &str = "`oceanbase`.`DBA_OB_DEADLOCK_EVENT_HISTORY`";

/// The active session history of `mode`: every tenant's through the sys tenant.
/// The wait class and event of a sample `h` of the active session history: a sample
/// on CPU has no wait, its class and event are `CPU`.
const ASH_CLASS: &str = "IF(h.SESSION_STATE = 'ON CPU', 'CPU', IFNULL(h.WAIT_CLASS, ''))";
const ASH_EVENT: &str = "IF(h.SESSION_STATE = 'ON CPU', 'CPU', IFNULL(h.EVENT, ''))";

/// How recent a session's latest sample of the active session history must be to
/// tell the wait it is in now (the history samples each active session every second).
const SAMPLE_RECENT_SECONDS: u32 = 5;

/// The statistics that count logons: every tenant's through the sys tenant.
fn sysstat_relation(settings: &Oceanbase, mode: Mode) -> String {
    match mode {
        Mode::Cluster => settings
            .sysstat_view
            .as_ref()
            .map_or("`oceanbase`.`GV$SYSSTAT`".to_string(), Relation::to_sql),
        Mode::SingleTenant => "`oceanbase`.`V$SYSSTAT`".to_string(),
    }
}

fn ash_relation(settings: &Oceanbase, mode: Mode) -> String {
    match mode {
        Mode::Cluster => settings.ash_view.as_ref().map_or(
            "`oceanbase`.`GV$OB_ACTIVE_SESSION_HISTORY`".to_string(),
            Relation::to_sql,
        ),
        Mode::SingleTenant => "`oceanbase`.`V$OB_ACTIVE_SESSION_HISTORY`".to_string(),
    }
}

/// The condition on the active session history `h` for the samples not counted yet:
/// those of a server after the newest counted of it (`since`, `ip:port` to its
/// `SAMPLE_TIME`), and every sample after the oldest of those of a server not in it
/// (a server that joins the cluster). Values that are not an
/// address and a time as the server wrote them are left out (they cannot be
/// quoted into SQL safely, and the server never writes such).
fn ash_condition(since: &std::collections::BTreeMap<String, String>) -> String {
    let address = |text: &str| {
        !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'-' | b'_'))
    };
    let time = |text: &str| {
        !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || b" :.-".contains(&b))
    };
    let known: Vec<(&str, &str, &str)> =
        since
            .iter()
            .filter_map(|(server, newest)| {
                let (ip, port) = server.rsplit_once(':')?;
                (address(ip) && port.bytes().all(|b| b.is_ascii_digit()) && time(newest))
                    .then_some((ip, port, newest.as_str()))
            })
            .collect();
    if known.is_empty() {
        return "1 = 1".to_string();
    }
    let servers: Vec<String> = known
        .iter()
        .map(|(ip, port, _)| format!("'{ip}:{port}'"))
        .collect();
    // One comparison first, which leaves out nearly every sample already counted
    // (the servers' clocks are close), then each server's own newest.
    // (`YYYY-MM-DD HH:MM:SS[.f]`, zero-padded: the text sorts as the time does)
    let oldest = known
        .iter()
        .map(|(_, _, newest)| *newest)
        .min()
        .unwrap_or_default();
    let mut condition = format!(
        "h.SAMPLE_TIME > '{oldest}' AND (CONCAT(h.SVR_IP, ':', h.SVR_PORT) NOT IN ({})",
        servers.join(", ")
    );
    for (ip, port, newest) in known {
        condition.push_str(&format!(
            " OR (h.SVR_IP = '{ip}' AND h.SVR_PORT = {port} AND h.SAMPLE_TIME > '{newest}')"
        ));
    }
    condition.push(')');
    condition
}

/// `max_connections` at its maximum, OceanBase's default: no limit of the tenant's own.
const UNLIMITED_CONNECTIONS: u64 = 2_147_483_647;

/// The statement of periodic reads ([`PeriodicReads`]) of `plan`'s mode, None when
/// both parts are off:
/// - limits: a single tenant's `max_connections` and `max_user_connections`
///   variables and its accounts' own (`mysql.user`, when readable); a cluster's
///   tenants' `max_connections` from the sys tenant's variables view (the accounts'
///   limits live in each tenant, which the sys tenant does not read);
/// - deadlocks: the deadlock event history, which OceanBase keeps instead of a
///   counter: at the first read (`since` None) how many events it holds per tenant
///   and the events of the last margin before its newest, then the events reported
///   since `since` (µs), at most [`MAX_EVENTS`].
fn periodic_sql(
    plan: &Probed,
    since: Option<i64>,
    ash_since: &std::collections::BTreeMap<String, String>,
) -> Option<String> {
    let settings = &plan.settings;
    let parts = settings.database.collect;
    let cluster = plan.mode == Mode::Cluster;
    let (_, tenant_filter) = tenant_filters(settings);
    let tenants = tenants_relation(settings);
    let mut reads = Vec::new();
    if parts.limits {
        if cluster {
            reads.push(format!(
                "SELECT t.TENANT_NAME, 'sessions', '', NULLIF(v.VALUE, '{UNLIMITED_CONNECTIONS}') \
                 FROM {} v JOIN {tenants} t ON t.TENANT_ID = v.TENANT_ID \
                 WHERE v.NAME = 'max_connections' AND t.TENANT_TYPE <> 'META'{tenant_filter}",
                variables_relation(settings)
            ));
        } else {
            reads.extend(mysql_limits(plan.users, Some(UNLIMITED_CONNECTIONS)));
        }
    }
    if parts.deadlocks {
        let (history, tenant, join) = match cluster {
            true => (
                deadlocks_relation(settings),
                "t.TENANT_NAME",
                format!(" JOIN {tenants} t ON t.TENANT_ID = h.TENANT_ID"),
            ),
            false => (SINGLE_DEADLOCKS.to_string(), "''", String::new()),
        };
        let filter = match cluster {
            true => format!(" AND t.TENANT_TYPE <> 'META'{tenant_filter}"),
            false => String::new(),
        };
        reads.push("SELECT '', 'deadlock_history', '', NULL".to_string());
        let since = match since {
            Some(since) => since.to_string(),
            None => {
                reads.push(format!(
                    "SELECT {tenant}, 'deadlock_events', '', COUNT(DISTINCT h.EVENT_ID) \
                     FROM {history} h{join} WHERE 1 = 1{filter} GROUP BY 1"
                ));
                format!(
                    "(SELECT MAX(m.REPORT_TIME) FROM {history} m) - {}",
                    crate::sql::EVENT_MARGIN_MICROS
                )
            }
        };
        reads.push(format!(
            "(SELECT {tenant}, 'deadlock_event', h.EVENT_ID, MAX(h.REPORT_TIME) \
             FROM {history} h{join} WHERE h.REPORT_TIME >= {since}{filter} \
             GROUP BY 1, 3 LIMIT {MAX_EVENTS})"
        ));
    }
    if parts.waits {
        let (class, event) = (ASH_CLASS, ASH_EVENT);
        let (tenant, join, filter) = match cluster {
            true => (
                "t.TENANT_NAME",
                format!(" JOIN {tenants} t ON t.TENANT_ID = h.CON_ID"),
                format!(" AND t.TENANT_TYPE <> 'META'{tenant_filter}"),
            ),
            false => ("''", String::new(), String::new()),
        };
        reads.push("SELECT '', 'ash_history', '', NULL".to_string());
        reads.push(format!(
            "SELECT {tenant}, 'ash', CONCAT_WS(CHAR(0), h.SVR_IP, h.SVR_PORT, {class}, {event}, \
             MAX(h.SAMPLE_TIME)), COUNT(*) FROM {} h{join} WHERE {}{filter} \
             GROUP BY 1, h.SVR_IP, h.SVR_PORT, {class}, {event}",
            ash_relation(settings, plan.mode),
            ash_condition(ash_since)
        ));
    }
    if parts.connections {
        let (tenant, join, filter) = match cluster {
            true => (
                "t.TENANT_NAME",
                format!(" JOIN {tenants} t ON t.TENANT_ID = s.CON_ID"),
                format!(" AND t.TENANT_TYPE <> 'META'{tenant_filter}"),
            ),
            false => ("''", String::new(), String::new()),
        };
        // Each server counts its own sessions: a row per server, summed part by part
        // so that a server's restart lowers nothing.
        reads.push(format!(
            "SELECT {tenant}, CASE s.NAME WHEN '{LOGONS}' THEN 'connections' \
             WHEN '{LOGONS_FAILED}' THEN 'refused' ELSE 'ended' END, CONCAT(CASE s.NAME \
             WHEN '{LOGONS_FAILED}' THEN 'failed' WHEN '{LOGOUTS}' THEN 'logout' ELSE '' END, \
             '/', s.SVR_IP, ':', s.SVR_PORT), SUM(s.VALUE) FROM {} s{join} \
             WHERE s.NAME IN ('{LOGONS}', '{LOGONS_FAILED}', '{LOGOUTS}'){filter} \
             GROUP BY 1, s.NAME, s.SVR_IP, s.SVR_PORT",
            sysstat_relation(settings, plan.mode)
        ));
    }
    (!reads.is_empty()).then(|| format!("{TAG} {}", reads.join(" UNION ALL ")))
}

/// The statistics of `GV$SYSSTAT` that count a tenant's logons, failed logons and
/// logouts (connection attempts, refusals and sessions ended).
const LOGONS: &str = "user logons cumulative";
const LOGONS_FAILED: &str = "user logons failed cumulative";
const LOGOUTS: &str = "user logouts cumulative";

/// The tenant label of a single-tenant server, which (seekdb) does not tell its name:
/// `tenant` from the config, else the tenant in `user` (`monitor@t1`, `monitor@t1#c`,
/// `c:t1:monitor`), else the target's name.
fn single_tenant_name(target: &str, settings: &Oceanbase) -> String {
    if let Some(tenant) = &settings.tenant {
        return tenant.clone();
    }
    let user = &settings.database.user;
    let from_user = if let Some((_, rest)) = user.split_once('@') {
        rest.split('#').next()
    } else {
        let parts: Vec<&str> = user.split(':').collect();
        (parts.len() == 3).then(|| parts[1])
    };
    from_user
        .filter(|t| !t.is_empty())
        .unwrap_or(target)
        .to_string()
}

#[cfg(test)]
mod tests;
