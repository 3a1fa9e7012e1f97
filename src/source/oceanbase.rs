//! OceanBase: a cluster through the sys tenant's `GV$OB_PROCESSLIST`, or a
//! single-tenant server (seekdb) through `V$OB_PROCESSLIST`.
//!
//! Cluster mode LEFT JOINs `DBA_OB_TENANTS` to the processlist, as OceanBase's own
//! obagent does, so a tenant without sessions still comes back (with a count of 0)
//! in the same single query. Active means `STATE = 'ACTIVE'`. The client address is
//! `USER_CLIENT_IP` (the real client; `HOST` is the proxy for sessions through
//! OBProxy), falling back to `HOST` without its port.

use super::collect::{BoxFuture, Source};
use super::conn::{classify, is_missing_or_denied_relation, Connector};
use super::error::SourceError;
use super::processlist::{self, plain_column, Processlist, View};
use super::sql::{
    self, filter_conditions, host_without_port, Grouping, LockWait, Need, Pass, RowContext, Rows,
    Rules, SqlError, Statements, OWN_SESSIONS, TAG,
};
use crate::config::{Database, Oceanbase, Relation, Target};
use crate::sessions::Field;
use crate::stats::Collected;
use std::collections::HashSet;
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
    prepared: Option<Prepared>,
    /// The tenant label in single-tenant mode.
    single_tenant: String,
}

/// A mode's statements and the settings they were written for: the configured ones
/// with every part off whose view is missing or denied ([`OceanbaseSource::prepare`]).
struct Prepared {
    mode: Mode,
    settings: Oceanbase,
    statements: Statements,
    /// What was turned off and why, said once the mode proves right.
    unread: Vec<String>,
}

/// An OceanBase target as the session API reads it: every processlist column has
/// the conventional name; seekdb's `V$OB_PROCESSLIST` lacks the server and tenant
/// columns, which then come from the target.
pub struct Sessions {
    name: String,
    settings: Oceanbase,
}

impl Sessions {
    pub fn new(target: &Target, settings: &Oceanbase) -> Self {
        Self {
            name: target.name.clone(),
            settings: settings.clone(),
        }
    }
}

impl Processlist for Sessions {
    fn target(&self) -> &str {
        &self.name
    }

    fn database(&self) -> &Database {
        &self.settings.database
    }

    fn serves(&self, found: &mut dyn Iterator<Item = &String>, name: &str) -> bool {
        // (`any` needs a sized iterator; the loop takes the trait object as it is.)
        for tenant in found {
            if tenant == name {
                return true;
            }
        }
        false
    }

    fn tenants(&self, found: &mut dyn Iterator<Item = &String>) -> Vec<String> {
        found.cloned().collect()
    }

    fn init_statements(&self, timeout: Duration) -> Vec<String> {
        init_statements(timeout)
    }

    fn detect<'a>(
        &'a self,
        conn: &'a mut mysql_async::Conn,
    ) -> processlist::BoxFuture<'a, Result<View, mysql_async::Error>> {
        Box::pin(async move {
            let mode = detect_mode(conn, &self.settings).await?;
            Ok(View {
                relation: relation(&self.settings, mode),
                cluster: mode == Mode::Cluster,
            })
        })
    }

    fn column(&self, _: &View, field: Field, columns: &HashSet<String>) -> Option<String> {
        plain_column(field, columns)
    }

    fn active_condition(&self) -> String {
        "`STATE` = 'ACTIVE'".to_string()
    }

    fn tenant_stats<'a>(
        &'a self,
        conn: &'a mut mysql_async::Conn,
        view: &'a View,
        tenant: &'a str,
    ) -> processlist::BoxFuture<'a, Result<Collected, SqlError>> {
        let mode = if view.cluster {
            Mode::Cluster
        } else {
            Mode::SingleTenant
        };
        Box::pin(tenant_stats(conn, &self.settings, mode, tenant))
    }

    fn grant(&self) -> &'static str {
        "grant it with GRANT SELECT ON oceanbase.* TO the account"
    }

    fn kill_grant(&self) -> &'static str {
        "ending other users' sessions needs the SUPER privilege in the tenant (GRANT SUPER ON *.* TO the account)"
    }
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
            prepared: None,
            single_tenant: single_tenant_name(&target.name, settings),
            name: target.name.clone(),
            settings: settings.clone(),
        }
    }

    /// `mode`'s statement, written once per pool and mode (see [`Self::write`]).
    async fn prepare(
        &mut self,
        conn: &mut mysql_async::Conn,
        mode: Mode,
    ) -> Result<&Prepared, mysql_async::Error> {
        let prepared = match self.prepared.take() {
            Some(prepared) if prepared.mode == mode => prepared,
            _ => self.write(conn, mode).await?,
        };
        Ok(self.prepared.insert(prepared))
    }

    /// Writes `mode`'s statement for what this account can read: a part whose view
    /// it cannot read (`GV$OB_LOCKS` not granted, a view an older version lacks) is
    /// turned off rather than failing every cycle.
    async fn write(
        &self,
        conn: &mut mysql_async::Conn,
        mode: Mode,
    ) -> Result<Prepared, mysql_async::Error> {
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
                if let Some(err) = sql::probe_relation(conn, &relation).await? {
                    *on = false;
                    unread.push(format!(
                        "{relation} is not readable ({err}): {what} are not collected; {GRANT}"
                    ));
                }
            }
        }
        let parts = settings.database.collect;
        let trans_state = (parts.transactions || parts.locks)
            && sql::has_column(conn, &relation(&settings, mode), "TRANS_STATE").await?;
        let statements = statements(&settings, mode, trans_state);
        statements.log(&self.name);
        Ok(Prepared {
            mode,
            settings,
            statements,
            unread,
        })
    }

    /// Says once what the prepared statement leaves out.
    fn say_unread(&mut self) {
        if let Some(prepared) = &mut self.prepared {
            for message in prepared.unread.drain(..) {
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
        if collected.is_ok() {
            self.say_unread();
        }
        collected
    }

    /// The cluster statement; every tenant comes back in a group row (a zero row
    /// when it has no sessions).
    async fn query_cluster(&mut self, conn: &mut mysql_async::Conn) -> Result<Collected, SqlError> {
        let prepared = self.prepare(conn, Mode::Cluster).await?;
        let ctx = row_context(&prepared.settings, "", Mode::Cluster);
        prepared.statements.run(conn, &ctx, &[]).await
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
        let prepared = self
            .prepare(conn, Mode::SingleTenant)
            .await
            .map_err(|e| classify(SqlError::Driver(e), &database))?;
        let ctx = row_context(&prepared.settings, &tenant, Mode::SingleTenant);
        prepared
            .statements
            .run(conn, &ctx, &[&tenant])
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
        self.prepared = None;
    }
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
    }
}

/// What a group's key means here: active is `STATE = 'ACTIVE'`; an open
/// transaction is a `TRANS_STATE` that is neither empty nor one of a finished or
/// unused transaction (a session without one shows an empty TRANS_STATE; one inside
/// a transaction `ACTIVE`, or `IMPLICIT_ACTIVE` for one opened by a statement with
/// autocommit off). Lock waits are read by the statement of details.
const RULES: Rules = Rules {
    active: |_, state| state == "ACTIVE",
    in_transaction: |state| {
        !NO_TRANSACTION
            .iter()
            .any(|none| state.eq_ignore_ascii_case(none))
    },
    lock_wait: |_, _| LockWait::No,
    empty_client_read_again: true,
};

/// One tenant's statistics, read now for the session API: the statement and the
/// aggregation of a collection cycle, restricted to `tenant` (a bound parameter in a
/// cluster) and without top sessions, so the API's stats and `/metrics` cannot
/// disagree on method. `tenant` must be the tenant this mode serves.
async fn tenant_stats(
    conn: &mut mysql_async::Conn,
    settings: &Oceanbase,
    mode: Mode,
    tenant: &str,
) -> Result<Collected, SqlError> {
    let settings = &without_top_sessions(settings);
    // One statement: every group is added, its client read in full.
    let ctx = RowContext {
        rules: Rules {
            empty_client_read_again: false,
            ..RULES
        },
        ..row_context(settings, tenant, mode)
    };
    match mode {
        Mode::Cluster => {
            // No tenant is added up front: one the cluster no longer has is absent.
            // The tenant condition is written twice: the sessions, the zero row.
            let mut rows = Rows::new(&ctx, &[]);
            sql::read_bound(
                conn,
                &grouping(
                    settings,
                    mode,
                    " AND p.TENANT = ?",
                    " AND t.TENANT_NAME = ?",
                    false,
                    true,
                )
                .statement(),
                mysql_async::Params::Positional(vec![tenant.into(), tenant.into()]),
                &mut rows,
                Pass::Groups,
            )
            .await?;
            rows.finish().map_err(SqlError::Answer)
        }
        Mode::SingleTenant => {
            let mut rows = Rows::new(&ctx, &[tenant]);
            let sql = grouping(settings, mode, "", "", false, true).statement();
            sql::read(conn, &sql, &mut rows, Pass::Groups).await?;
            rows.finish().map_err(SqlError::Answer)
        }
    }
}

/// The API's stats are counts: no top sessions, transactions, locks or states.
fn without_top_sessions(settings: &Oceanbase) -> Oceanbase {
    let mut settings = settings.clone();
    settings.database.top_sessions = 0;
    settings.database.collect = crate::stats::Parts::NONE;
    settings
}

/// The statements of a cycle in `mode` (see [`Statements`]); `trans_state` says
/// whether the processlist has `TRANS_STATE`, which tells each session's
/// transaction without a join. The grouping reads no TIME: the statement of
/// details reads it for the active sessions and those in a transaction, the only
/// ones whose TIME is exported.
fn statements(settings: &Oceanbase, mode: Mode, trans_state: bool) -> Statements {
    let (sessions, tenants) = match mode {
        Mode::Cluster => tenant_filters(settings),
        Mode::SingleTenant => (String::new(), String::new()),
    };
    let grouping = grouping(settings, mode, &sessions, &tenants, trans_state, false);
    let mut fallback = grouping.clone();
    fallback.client = host_without_port("p.HOST");
    fallback
        .filter
        .push_str(" AND (p.USER_CLIENT_IP = '' OR p.USER_CLIENT_IP IS NULL)");
    fallback.union = String::new();
    Statements {
        groups: grouping.statement(),
        fallback: Some(fallback.statement()),
        details: Some((
            details_sql(settings, mode, trans_state),
            Need::ActiveOrTransactions,
        )),
    }
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
/// through OBProxy), `HOST` without its port only where it is empty. The grouping
/// reads `USER_CLIENT_IP` alone, its statement of clients without an address the
/// rest (see [`Statements::fallback`]); the statement of details, a few rows, both.
fn client() -> String {
    format!(
        "CASE WHEN p.USER_CLIENT_IP <> '' THEN p.USER_CLIENT_IP ELSE {} END",
        host_without_port("p.HOST")
    )
}

/// The `TRANS_STATE`s of a session without an open transaction: none (empty), and
/// those of a transaction not begun or already ended. [`RULES`] and
/// [`in_transaction_sql`] both read this list.
const NO_TRANSACTION: [&str; 6] = ["", "IDLE", "INVALID", "INVL", "COMMITTED", "ROLLED_BACK"];

/// An open transaction in SQL, as [`RULES`] decides it from `TRANS_STATE`.
fn in_transaction_sql() -> String {
    let states: Vec<String> = NO_TRANSACTION.iter().map(|s| format!("'{s}'")).collect();
    format!("p.TRANS_STATE NOT IN ({})", states.join(", "))
}

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
             NULL, NULL, NULL FROM {} t WHERE t.TENANT_TYPE <> 'META'{tenant_filter}",
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

/// The statement of details, read when a session is active or in a transaction:
/// of those sessions alone, per tenant the longest active TIME, the longest TIME
/// idle in a transaction, the oldest transaction's age (its scheduler's
/// `ACTIVE_TIME`), how many wait for a lock (a `BLOCK = 1` row of the locks view)
/// and for how long; and in rows of their own the tenant's `top_sessions` longest
/// active sessions (a window over these sessions only) and the sessions others wait
/// on (the transaction and session a waiting `TYPE = 'TR'` row names in `ID1` and
/// `ID2`) with how many wait. Lock rows are matched by transaction and session id,
/// not by server: in a cluster a lock row is reported by the server holding the row.
fn details_sql(settings: &Oceanbase, mode: Mode, trans_state: bool) -> String {
    let parts = settings.database.collect;
    let cluster = mode == Mode::Cluster;
    let (sessions, _) = match mode {
        Mode::Cluster => tenant_filters(settings),
        Mode::SingleTenant => (String::new(), String::new()),
    };
    let (relation, mut filter) = sessions_read(settings, mode, &sessions);
    let mut from = relation;
    let tenant = if cluster { "p.TENANT" } else { "NULL" };
    let reads_transactions = parts.transactions || parts.locks;
    let in_transaction = match (reads_transactions, trans_state) {
        (false, _) => "0".to_string(),
        (true, true) => in_transaction_sql(),
        (true, false) => "s.SESSION_ID IS NOT NULL".to_string(),
    };
    if reads_transactions && (parts.transactions || !trans_state) {
        from.push_str(&transactions_join(&transactions(settings, mode), cluster));
    }
    let age = if parts.transactions {
        "TIMESTAMPDIFF(MICROSECOND, s.ACTIVE_TIME, NOW(6)) / 1000000"
    } else {
        "NULL"
    };
    let (mut waiting, mut wait, mut waiters) = ("0", "NULL", "0");
    if parts.locks {
        let locks = locks(settings, mode);
        from.push_str(&format!(
            " LEFT JOIN (SELECT TRANS_ID, SESSION_ID, MAX(CTIME) AS WAITED FROM {locks} \
             WHERE BLOCK = 1 GROUP BY TRANS_ID, SESSION_ID) w \
             ON w.TRANS_ID = p.TRANS_ID AND w.SESSION_ID = p.ID \
             LEFT JOIN (SELECT ID1, ID2, COUNT(DISTINCT TRANS_ID) AS WAITERS FROM {locks} \
             WHERE BLOCK = 1 AND TYPE = 'TR' GROUP BY ID1, ID2) b \
             ON b.ID1 = p.TRANS_ID AND b.ID2 = p.ID"
        ));
        waiting = "CASE WHEN w.TRANS_ID IS NULL THEN 0 ELSE 1 END";
        wait = "w.WAITED / 1000000";
        waiters = "COALESCE(b.WAITERS, 0)";
    }
    filter.push_str(&format!(" AND (p.STATE = 'ACTIVE' OR {in_transaction})"));
    let partition = if cluster {
        "PARTITION BY p.TENANT "
    } else {
        ""
    };
    let top = settings.database.top_sessions;
    let client = client();
    let server = if cluster { "p.SVR_IP" } else { "NULL" };
    // A session kept in a row of its own: one of the longest active, or waited on. Its
    // key is its id and, in a cluster, its server (an id is unique per server only).
    let apart = format!("y.W > 0 OR (y.A = 1 AND y.R <= {top})");
    // The rank is a column of its own, compared a level up: MariaDB 10.11 answers
    // NULL for `a OR <window function> <= n` in one expression (and OceanBase reads
    // this statement's shape alike).
    format!(
        "{TAG} SELECT x.TN, x.K, MAX(x.U), MAX(x.D), MAX(x.C), MAX(x.Q), \
         MAX(CASE WHEN x.A = 1 THEN x.T END), MAX(CASE WHEN x.A = 0 AND x.IT = 1 THEN x.T END), \
         MAX(x.TA), NULLIF(SUM(x.WT), 0), MAX(x.LW), NULLIF(MAX(x.W), 0), \
         CASE WHEN x.K IS NOT NULL THEN MAX(x.A) END \
         FROM (SELECT y.*, CASE WHEN {apart} THEN y.I END AS K, CASE WHEN {apart} THEN y.SV END AS KS \
         FROM (SELECT {tenant} AS TN, {server} AS SV, p.ID AS I, p.USER AS U, p.DB AS D, {client} AS C, \
         p.SQL_ID AS Q, p.TIME AS T, CASE WHEN p.STATE = 'ACTIVE' THEN 1 ELSE 0 END AS A, \
         CASE WHEN {in_transaction} THEN 1 ELSE 0 END AS IT, {age} AS TA, {waiting} AS WT, \
         {wait} AS LW, {waiters} AS W, ROW_NUMBER() OVER ({partition}ORDER BY \
         CASE WHEN p.STATE = 'ACTIVE' THEN 0 ELSE 1 END, p.TIME DESC, p.ID) AS R \
         FROM {from} WHERE {filter}) y) x GROUP BY x.TN, x.K, x.KS"
    )
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
mod tests {
    use super::*;
    use crate::config::testing;
    use crate::source::sql::fixtures::{counts as c, pairs, row};
    use crate::source::sql::Rows;
    use crate::stats::{TopSession, NONE_LABEL};

    #[test]
    fn every_field_is_its_conventional_column_when_the_view_has_it() {
        let sessions = Sessions::new(
            &testing::target(
                "ob",
                crate::config::TargetKind::Oceanbase(testing::oceanbase("m")),
            ),
            &testing::oceanbase("m"),
        );
        let view = View {
            relation: "`oceanbase`.`GV$OB_PROCESSLIST`".into(),
            cluster: true,
        };
        let columns: HashSet<String> = ["ID", "SVR_IP", "TENANT", "TIME", "STATE"]
            .map(String::from)
            .into();
        let column = |field| sessions.column(&view, field, &columns);
        assert_eq!(column(Field::SvrIp).as_deref(), Some("`SVR_IP`"));
        assert_eq!(column(Field::SqlId), None);
        assert_eq!(column(Field::ProxyIp), None);
    }

    #[test]
    fn single_tenant_name_sources_in_order() {
        let name = |user: &str| single_tenant_name("ob", &testing::oceanbase(user));
        assert_eq!(name("monitor@t1"), "t1");
        assert_eq!(name("monitor@t1#prod"), "t1");
        assert_eq!(name("prod:t2:monitor"), "t2");
        assert_eq!(name("monitor"), "ob");
        assert_eq!(name("monitor@"), "ob");
        let mut settings = testing::oceanbase("monitor@t1");
        settings.tenant = Some("configured".into());
        assert_eq!(single_tenant_name("ob", &settings), "configured");
    }

    #[test]
    fn cluster_statements_filter_tenants_and_read_configured_views() {
        let mut settings = testing::oceanbase("monitor@sys");
        let st = statements(&settings, Mode::Cluster, true);
        let sql = &st.groups;
        assert!(sql.starts_with("/* session_exporter "));
        assert_eq!(
            sql.matches("GV$OB_PROCESSLIST").count(),
            1,
            "read once: {sql}"
        );
        assert!(
            sql.contains("FROM `oceanbase`.`GV$OB_PROCESSLIST` p WHERE"),
            "no join: {sql}"
        );
        assert!(
            sql.contains(
                "p.USER_CLIENT_IP, p.COMMAND, p.STATE, p.TRANS_STATE, COUNT(*), MAX(NULL)"
            ),
            "{sql}"
        );
        assert!(!sql.contains("OVER"), "no window in the grouping: {sql}");
        assert!(
            sql.contains(" UNION ALL SELECT t.TENANT_NAME, NULL"),
            "a zero row per tenant"
        );
        assert!(sql.contains(&format!(
            "NOT (p.ID IN ({OWN_SESSIONS}) AND p.SVR_IP = HOST_IP())"
        )));
        assert!(!sql.contains("INFO"), "statistics never read the SQL text");
        let fallback = st.fallback.as_deref().unwrap();
        assert!(fallback.contains("AND (p.USER_CLIENT_IP = '' OR p.USER_CLIENT_IP IS NULL)"));
        assert!(fallback.contains("p.HOST REGEXP"), "{fallback}");
        assert!(!fallback.contains("UNION"), "{fallback}");
        let (details, need) = st.details.clone().unwrap();
        assert_eq!(need, Need::ActiveOrTransactions);
        assert!(details.contains(
            "LEFT JOIN `oceanbase`.`GV$OB_TRANSACTION_SCHEDULERS` s ON s.SVR_IP = p.SVR_IP AND s.SVR_PORT = p.SVR_PORT AND s.SESSION_ID = p.ID"
        ), "{details}");
        assert!(details.contains("w ON w.TRANS_ID = p.TRANS_ID AND w.SESSION_ID = p.ID"));
        assert!(details.contains("b ON b.ID1 = p.TRANS_ID AND b.ID2 = p.ID"));
        assert!(
            details.contains(&format!(
                "AND (p.STATE = 'ACTIVE' OR {})",
                in_transaction_sql()
            )),
            "only active sessions and those in a transaction: {details}"
        );
        assert!(
            details.contains("PARTITION BY p.TENANT"),
            "top sessions per tenant"
        );
        assert!(
            !details.contains("INFO"),
            "statistics never read the SQL text"
        );

        // Without TRANS_STATE the grouping joins the transactions view instead.
        let st = statements(&settings, Mode::Cluster, false);
        assert!(st
            .groups
            .contains("LEFT JOIN `oceanbase`.`GV$OB_TRANSACTION_SCHEDULERS` s"));

        settings.tenants = Some(vec!["t1".into(), "t2".into()]);
        settings.processlist_view = Some(Relation::parse("test.PL").unwrap());
        settings.transactions_view = Some(Relation::parse("test.TX").unwrap());
        settings.locks_view = Some(Relation::parse("test.LK").unwrap());
        let st = statements(&settings, Mode::Cluster, true);
        assert!(st.groups.contains("AND p.TENANT IN ('t1', 't2')"));
        assert!(st.groups.contains("AND t.TENANT_NAME IN ('t1', 't2')"));
        assert!(st.groups.contains("FROM `test`.`PL` p WHERE"));
        let details = st.details.unwrap().0;
        assert!(details.contains("LEFT JOIN `test`.`TX` s"));
        assert!(details.contains("AND p.TENANT IN ('t1', 't2')"));
        assert_eq!(
            details.matches("FROM `test`.`LK` WHERE BLOCK = 1").count(),
            2
        );

        settings.database.collect = crate::stats::Parts {
            states: true,
            ..crate::stats::Parts::NONE
        };
        let st = statements(&settings, Mode::Cluster, true);
        assert!(!st.groups.contains("TRANS_STATE"), "{st:?}");
        let details = st.details.unwrap().0;
        assert!(
            !details.contains("`test`.`TX`") && !details.contains("`test`.`LK`"),
            "{details}"
        );
    }

    /// Fixed rows of a cluster in, exact statistics out: two servers, a tenant
    /// without sessions (its zero row), OceanBase's string `NULL` for no database,
    /// an idle group's TIME not counted, sessions kept apart counted like the rest
    /// and ranked as top sessions and blockers, transactions and lock waits summed.
    #[test]
    fn cluster_rows_give_exact_statistics() {
        let settings = testing::oceanbase("monitor@sys");
        let ctx = row_context(&settings, "", Mode::Cluster);
        let mut rows = Rows::new(&ctx, &[]);
        for (text, pass) in [
            (
                "t1|10.0.0.1|app|root|10.0.0.100|Query|ACTIVE||1|∅|∅|∅|∅",
                Pass::Groups,
            ),
            (
                "t1|10.0.0.1|app|root|10.0.0.100|Sleep|SLEEP||1|∅|∅|∅|∅",
                Pass::Groups,
            ),
            (
                "t1|10.0.0.1|app|root|10.0.0.100|Query|ACTIVE|ACTIVE|1|∅|∅|∅|∅",
                Pass::Groups,
            ),
            (
                "t1|10.0.0.2|NULL|root|10.0.0.100|Sleep|SLEEP||2|∅|∅|∅|∅",
                Pass::Groups,
            ),
            (
                "t1|10.0.0.2|NULL|root|10.0.0.100|Sleep|SLEEP|IMPLICIT_ACTIVE|2|∅|∅|∅|∅",
                Pass::Groups,
            ),
            (
                "t1|10.0.0.2|app|etl|::ffff:10.0.0.7|Query|ACTIVE|ACTIVE|1|∅|∅|∅|∅",
                Pass::Groups,
            ),
            (
                "META$1|10.0.0.2|app|etl|10.0.0.7|Query|ACTIVE||1|99|∅|∅|∅",
                Pass::Groups,
            ),
            ("t1|∅|∅|∅|∅|∅|∅|∅|0|∅|∅|∅|∅", Pass::Groups),
            ("idle|∅|∅|∅|∅|∅|∅|∅|0|∅|∅|∅|∅", Pass::Groups),
            (
                "t1|3221490|etl|app|::ffff:10.0.0.7||30|∅|6|1|4.5|∅|1",
                Pass::Details,
            ),
            (
                "t1|3221487|root|app|10.0.0.100|SQL1|12.5|∅|5|∅|∅|2|1",
                Pass::Details,
            ),
            ("t1|∅|root|NULL|10.0.0.100||11|40|50|∅|∅|∅|∅", Pass::Details),
        ] {
            rows.add_as(row(text), pass);
        }
        let collected = rows.finish().unwrap();
        // Nine grouped rows (two zero rows), three rows of details.
        assert_eq!(collected.rows, 12);
        let tenants = collected.into_tenants();
        assert_eq!(tenants.keys().collect::<Vec<_>>(), ["idle", "t1"]);
        assert_eq!(tenants["idle"], Default::default());
        let t1 = &tenants["t1"];
        assert_eq!(
            (t1.sessions, t1.active_sessions, t1.max_active_time),
            (8, 3, 30.0)
        );
        assert_eq!(pairs(&t1.by_db), [(NONE_LABEL, c(4, 0)), ("app", c(4, 3))]);
        assert_eq!(pairs(&t1.by_user), [("etl", c(1, 1)), ("root", c(7, 2))]);
        assert_eq!(
            pairs(&t1.by_client),
            [("10.0.0.100", c(7, 2)), ("10.0.0.7", c(1, 1))]
        );
        assert_eq!(
            pairs(&t1.by_server),
            [("10.0.0.1", c(3, 2)), ("10.0.0.2", c(5, 1))]
        );
        let top: Vec<(u64, &str, f64)> = t1
            .top
            .iter()
            .map(|s: &TopSession| (s.session_id, s.sql_id.as_str(), s.time))
            .collect();
        assert_eq!(top, [(3221490, "", 30.0), (3221487, "SQL1", 12.5)]);
        assert_eq!(
            (t1.transaction_sessions, t1.idle_in_transaction_sessions),
            (4, 2)
        );
        assert_eq!(
            (t1.max_transaction_age, t1.max_idle_in_transaction),
            (50.0, 40.0)
        );
        assert_eq!((t1.lock_waiting_sessions, t1.max_lock_wait), (1, 4.5));
        let blockers: Vec<(u64, &str, u64)> = t1
            .blockers
            .iter()
            .map(|b| (b.session_id, b.user.as_str(), b.waiters))
            .collect();
        assert_eq!(blockers, [(3221487, "root", 2)]);
        let by_state: Vec<(&str, &str, u64)> = t1
            .by_state
            .iter()
            .map(|((command, state), n)| (command.as_str(), state.as_str(), *n))
            .collect();
        // A group is active or not as a whole: its state says which.
        assert_eq!(by_state, [("Query", "ACTIVE", 3), ("Sleep", "SLEEP", 5)]);
    }

    /// A single-tenant server names neither tenant nor server: both come from the
    /// configuration, and the tenant is there even without sessions.
    #[test]
    fn single_tenant_rows_take_tenant_and_server_from_the_target() {
        let settings = testing::oceanbase("monitor@t1");
        let ctx = row_context(&settings, "t1", Mode::SingleTenant);
        let empty = Rows::new(&ctx, &["t1"]).finish().unwrap().into_tenants();
        assert_eq!(empty["t1"], Default::default());
        let mut rows = Rows::new(&ctx, &["t1"]);
        rows.add_as(
            row("∅|∅|∅|app|10.0.0.100|Query|ACTIVE||1|4|∅|∅|∅"),
            Pass::Groups,
        );
        rows.add_as(
            row("∅|∅|∅|app|10.0.0.100|Sleep|SLEEP||1|9|∅|∅|∅"),
            Pass::Groups,
        );
        let tenants = rows.finish().unwrap().into_tenants();
        let t1 = &tenants["t1"];
        assert_eq!(
            (t1.sessions, t1.active_sessions, t1.max_active_time),
            (2, 1, 4.0)
        );
        assert_eq!(t1.by_server.keys().collect::<Vec<_>>(), ["10.0.0.1"]);
        assert_eq!(t1.by_db.keys().collect::<Vec<_>>(), [NONE_LABEL]);
    }
}
