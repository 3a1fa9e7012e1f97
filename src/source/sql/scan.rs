//! PostgreSQL's one statement ([`Scan`]): the grouping, the top sessions' window and
//! the lock joins in one read of `pg_stat_activity`, decoded by [`super::decode_row`].

/// How one kind reads its processlist, for [`Scan::statement`]: expressions over the
/// processlist `p` and whatever [`Scan::from`] joins to it. The default reads no
/// optional part and has one tenant and one server (see [`Scan::default`]).
#[derive(Debug, Clone)]
pub struct Scan {
    /// What comes before the statement's first SELECT (the tag, MariaDB's bound).
    pub prefix: String,
    /// Optimizer hints written right after the first SELECT (MySQL's bound).
    pub hint: String,
    /// `p` and its joins.
    pub from: String,
    /// Conditions on `p` every counted session meets (the exporter's own excluded,
    /// the filters).
    pub filter: String,
    /// The tenant and server of a row; `NULL` where the target has one.
    pub tenant: String,
    pub server: String,
    pub client: String,
    /// The condition for an active session.
    pub active: String,
    pub sql_id: String,
    /// 1 for a session with an open transaction, else 0; `0` when not collected.
    pub in_transaction: String,
    /// The age of its open transaction in seconds; `NULL` when none.
    pub transaction_age: String,
    /// How long it has waited for a lock in seconds; `NULL` when it does not wait.
    pub lock_wait: String,
    /// How many sessions wait for a lock it holds; `0` when none.
    pub waiters: String,
    /// The session's application, and for an active session its wait class, wait
    /// event and statement id (NULL for none; a NULL class is [`CPU`](crate::stats::CPU));
    /// `NULL` where not collected.
    pub application: String,
    pub wait_class: String,
    pub wait_event: String,
    pub statement: String,
    /// Whether command and state are grouped by.
    pub states: bool,
    /// How many of each tenant's longest active sessions to keep apart.
    pub top_sessions: usize,
    /// Rows added after the grouped ones (the cluster's zero row per tenant).
    pub union: String,
}

impl Default for Scan {
    /// A kind that reads no transaction, lock or state, with one tenant and one server
    /// (NULL: the row context names them) and no SQL id; it still sets where the
    /// sessions are (`from`, `filter`), `client` and `active`.
    fn default() -> Self {
        let null = || "NULL".to_string();
        Self {
            prefix: String::new(),
            hint: String::new(),
            from: String::new(),
            filter: String::new(),
            tenant: null(),
            server: null(),
            client: String::new(),
            active: String::new(),
            sql_id: null(),
            in_transaction: "0".to_string(),
            transaction_age: null(),
            lock_wait: null(),
            waiters: "0".to_string(),
            application: null(),
            wait_class: null(),
            wait_event: null(),
            statement: null(),
            states: false,
            top_sessions: 0,
            union: String::new(),
        }
    }
}

impl Scan {
    /// The one statement of a cycle. The processlist is read once, in a derived table
    /// that joins what each session needs (its transaction, its lock wait, how many
    /// wait on it) and ranks the active ones; the outer query groups those rows by
    /// (tenant, server, db, user, client, command, state). The longest active
    /// sessions (a window function ranks them per tenant) and every session others
    /// wait on are grouped by their own id too, so each is a row of its own (see
    /// [`COLUMNS`](super::COLUMNS)).
    pub fn statement(&self) -> String {
        let Scan {
            prefix,
            hint,
            from,
            filter,
            tenant,
            server,
            client,
            active,
            sql_id,
            in_transaction,
            transaction_age,
            lock_wait,
            waiters,
            application,
            wait_class,
            wait_event,
            statement,
            states,
            top_sessions,
            union,
        } = self;
        let when_active = |expression: &str| match expression {
            "NULL" => "NULL".to_string(),
            _ => format!("CASE WHEN {active} THEN {expression} END"),
        };
        let (wait_class, wait_event, statement) = (
            when_active(wait_class),
            when_active(wait_event),
            when_active(statement),
        );
        // The optional keys a part reads, selected and grouped by; the others are a
        // constant NULL, which splits no group.
        let keys = [
            ("AP", application.as_str()),
            ("WC", &wait_class),
            ("WE", &wait_event),
            ("SQ", &statement),
        ];
        let read = |(column, expression): &(&str, &str)| match *expression {
            "NULL" => None,
            _ => Some(format!("x.{column}")),
        };
        let selected: Vec<String> = keys
            .iter()
            .map(|key| read(key).unwrap_or_else(|| "NULL".to_string()))
            .collect();
        let selected = selected.join(", ");
        let optional: String = keys
            .iter()
            .filter_map(read)
            .map(|key| format!(", {key}"))
            .collect();
        let (command, state) = if *states {
            ("p.COMMAND", "p.STATE")
        } else {
            ("NULL", "NULL")
        };
        // The rank is a column of its own, compared a level up: MariaDB 10.11 answers
        // NULL for `a OR <window function> <= n` in one expression.
        let (rank, apart) = if *top_sessions > 0 {
            let partition = if tenant == "NULL" {
                String::new()
            } else {
                format!("PARTITION BY {tenant} ")
            };
            (
                format!(
                    "ROW_NUMBER() OVER ({partition}ORDER BY CASE WHEN {active} THEN 0 ELSE 1 END, p.TIME DESC, p.ID)"
                ),
                format!("y.W > 0 OR (y.A = 1 AND y.R <= {top_sessions})"),
            )
        } else {
            ("NULL".to_string(), "y.W > 0".to_string())
        };
        format!(
            "{prefix}SELECT {hint}x.TN, x.SV, x.D, x.U, x.C, x.CMD, x.ST, NULLIF(SUM(x.A), 0), COUNT(*), \
             MAX(CASE WHEN x.A = 1 THEN x.T END), NULLIF(SUM(x.IT), 0), NULLIF(SUM(x.IT * (1 - x.A)), 0), \
             MAX(x.TA), MAX(CASE WHEN x.IT = 1 AND x.A = 0 THEN x.T END), \
             NULLIF(SUM(CASE WHEN x.LW IS NULL THEN 0 ELSE 1 END), 0), MAX(x.LW), x.K, \
             CASE WHEN x.K IS NOT NULL THEN MAX(x.Q) END, NULLIF(MAX(x.W), 0), {selected} \
             FROM (SELECT y.*, CASE WHEN {apart} THEN y.I END AS K \
             FROM (SELECT {tenant} AS TN, {server} AS SV, p.DB AS D, p.USER AS U, {client} AS C, \
             {command} AS CMD, {state} AS ST, CASE WHEN {active} THEN 1 ELSE 0 END AS A, p.TIME AS T, \
             {sql_id} AS Q, {in_transaction} AS IT, {transaction_age} AS TA, {lock_wait} AS LW, \
             {waiters} AS W, p.ID AS I, {rank} AS R, {application} AS AP, {wait_class} AS WC, \
             {wait_event} AS WE, {statement} AS SQ \
             FROM {from} WHERE {filter}) y) x \
             GROUP BY x.TN, x.SV, x.D, x.U, x.C, x.CMD, x.ST, x.K{optional}{union}"
        )
    }
}
