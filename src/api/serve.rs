//! The session API's plumbing, written once for every kind of target: a cap on
//! concurrent requests, a list's page streamed on a task of its own with bounded
//! memory, the check that every session to end exists before any is ended, and
//! ending them one by one. A kind writes a [`SessionBackend`] (its connections and
//! its SQL, nothing else); [`BackendApi`] turns it into the [`SessionApi`] the HTTP
//! layer calls.

use super::{
    BoxFuture, Capabilities, DeadLock, DeadLockPage, Failure, Kill, ListParams, PageInfo,
    PageParams, PageStream, Pileup, PileupRows, SessionApi, SessionStats, TenantSession, Victim,
};
use crate::stats::TenantStats;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// Sessions converted ahead of the client: what a list holds in memory at most,
/// whatever its size.
const STREAM_AHEAD: usize = 64;

/// What a kind of target answers the session API with. Each method runs on a
/// connection [`SessionBackend::connect`] gave, under one of the target's permits.
pub trait SessionBackend: Send + Sync + 'static {
    /// A connection of the backend's own, never the collection's.
    type Conn: Send + 'static;
    /// A list's page, counted and ready to stream.
    type Page: PageRows<Conn = Self::Conn>;

    /// The target's name, for messages.
    fn target(&self) -> &str;

    /// What this kind can give beyond what every kind serves.
    fn capabilities(&self) -> Capabilities;

    /// A connection for one request.
    fn connect(&self) -> impl Future<Output = Result<Self::Conn, Failure>> + Send;

    /// Takes back a connection a request is done with, every statement's answer read
    /// (dropping it must be enough otherwise).
    fn release(&self, conn: Self::Conn);

    /// How many of `tenant`'s sessions match `params` in all pages, and the page
    /// `params` asks for, ready to stream.
    fn page(
        &self,
        conn: &mut Self::Conn,
        tenant: &str,
        params: &ListParams,
    ) -> impl Future<Output = Result<(u64, Self::Page), Failure>> + Send;

    /// Session `id` of `tenant` with its SQL text; None when there is none.
    fn detail(
        &self,
        conn: &mut Self::Conn,
        tenant: &str,
        id: u64,
    ) -> impl Future<Output = Result<Option<TenantSession>, Failure>> + Send;

    /// `tenant`'s statistics as a collection computes them; None when the target no
    /// longer has that tenant.
    fn stats(
        &self,
        conn: &mut Self::Conn,
        tenant: &str,
    ) -> impl Future<Output = Result<Option<TenantStats>, Failure>> + Send;

    /// Which of `ids` are sessions of `tenant` now, once for each server a session
    /// of that id runs on.
    fn present(
        &self,
        conn: &mut Self::Conn,
        tenant: &str,
        ids: &[u64],
    ) -> impl Future<Output = Result<Vec<u64>, Failure>> + Send;

    /// `tenant`'s lock waits and open transactions now, at most
    /// [`super::pileup::MAX_PILEUP_ROWS`] + 1 of each (the longest waits, the oldest
    /// transactions), so that the answer can tell when there were more.
    fn pileup(
        &self,
        conn: &mut Self::Conn,
        tenant: &str,
    ) -> impl Future<Output = Result<PileupRows, Failure>> + Send;

    /// The sessions of `tenant` among `ids`, as the list answers them.
    fn sessions(
        &self,
        conn: &mut Self::Conn,
        tenant: &str,
        ids: &[u64],
    ) -> impl Future<Output = Result<Vec<TenantSession>, Failure>> + Send;

    /// When each of `ids`, sessions of `tenant`, started; None when the engine
    /// records no start (the default), and a kill cannot be tied to one session's
    /// life beyond its id.
    fn started(
        &self,
        conn: &mut Self::Conn,
        tenant: &str,
        ids: &[u64],
    ) -> impl Future<Output = Result<Option<HashMap<u64, String>>, Failure>> + Send {
        let _ = (conn, tenant, ids);
        async { Ok(None) }
    }

    /// Ends session `id` (`query_only`: its running statement), only if it started
    /// at `started` when that is given (in the statement that ends it, so that no
    /// other session can take the id in between).
    fn end(
        &self,
        conn: &mut Self::Conn,
        id: u64,
        started: Option<&str>,
        query_only: bool,
    ) -> impl Future<Output = Result<(), Refusal>> + Send;

    /// How many deadlocks the database detected for `tenant` in all, and those of
    /// the page `params` asks for (at most [`PageParams::size`]), newest first.
    fn deadlocks(
        &self,
        conn: &mut Self::Conn,
        tenant: &str,
        params: &PageParams,
    ) -> impl Future<Output = Result<(u64, Vec<DeadLock>), Failure>> + Send;
}

/// A page of sessions to send: owns what it needs, so that it runs on a task of its
/// own, after the request that counted it has answered the page's header.
pub trait PageRows: Send + 'static {
    type Conn: Send + 'static;

    /// Sends the page's sessions into `sink` as the database sends them, and gives
    /// `conn` back when it read every row (drops it otherwise: rows may be unread).
    fn send(self, conn: Self::Conn, sink: PageSink) -> impl Future<Output = ()> + Send;
}

/// Where a page's sessions go, one at a time.
pub struct PageSink {
    tx: mpsc::Sender<Result<TenantSession, Failure>>,
    /// How long a client may stop reading before the page gives up on it.
    idle: Duration,
}

impl PageSink {
    /// Hands over one session (or the error that ends the page); false when the page
    /// must stop: it was an error, the client went away, or it stopped reading for
    /// the request timeout.
    pub async fn send(&self, session: Result<TenantSession, Failure>) -> bool {
        let failed = session.is_err();
        let sent = tokio::time::timeout(self.idle, self.tx.send(session)).await;
        !failed && matches!(sent, Ok(Ok(())))
    }
}

/// Why a session was not ended.
#[derive(Debug)]
pub enum Refusal {
    /// The database refused the exporter's account: `grant` says what it needs.
    Denied {
        what: String,
        why: String,
        grant: String,
    },
    /// Anything else (a lost connection, a timeout).
    Failed { what: String, why: String },
    /// The id names another session than the one that started at the time given.
    Replaced { id: u64 },
}

/// A [`SessionBackend`] with the plumbing around it: the [`SessionApi`] of one target.
pub struct BackendApi<B> {
    backend: Arc<B>,
    permits: Arc<Semaphore>,
    /// The request timeout: also how long a list waits for a client that stopped
    /// reading before it gives the connection back.
    timeout: Duration,
}

impl<B: SessionBackend> BackendApi<B> {
    /// At most `max_concurrent` requests at a time, each bounded by `timeout` where
    /// the backend's server can bound it.
    pub fn new(backend: B, max_concurrent: usize, timeout: Duration) -> Self {
        Self {
            backend: Arc::new(backend),
            permits: Arc::new(Semaphore::new(max_concurrent)),
            timeout,
        }
    }

    /// A slot of `max_concurrent_per_target`, owned, so a list's streaming task can
    /// hold it until its last row.
    async fn permit(&self) -> Result<OwnedSemaphorePermit, Failure> {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Failure::unavailable("the passthrough is shutting down"))
    }

    /// Counts, then streams the page on a task of its own, which holds the
    /// connection and the permit until the last session is handed over.
    async fn list(&self, tenant: &str, params: &ListParams) -> Result<PageStream, Failure> {
        params.offset()?;
        let permit = self.permit().await?;
        let mut conn = self.backend.connect().await?;
        let (total, rows) = self.backend.page(&mut conn, tenant, params).await?;
        let page = PageInfo {
            total_elements: total,
            total_pages: total.div_ceil(params.size),
            size: params.size,
            number: params.page,
            recorded_at: None,
            truncated: None,
        };
        let (tx, rx) = mpsc::channel(STREAM_AHEAD);
        let sink = PageSink {
            tx,
            idle: self.timeout,
        };
        tokio::spawn(async move {
            rows.send(conn, sink).await;
            drop(permit);
        });
        Ok(PageStream { page, sessions: rx })
    }

    async fn detail(&self, tenant: &str, id: u64) -> Result<TenantSession, Failure> {
        let _permit = self.permit().await?;
        let mut conn = self.backend.connect().await?;
        let session = self.backend.detail(&mut conn, tenant, id).await?;
        self.backend.release(conn);
        session.ok_or_else(|| {
            Failure::not_found(
                "OB.Tenant.Session.NotExist",
                format!("tenant `{tenant}` has no session {id} (it may have ended)"),
            )
        })
    }

    async fn stats(&self, tenant: &str) -> Result<SessionStats, Failure> {
        let _permit = self.permit().await?;
        let mut conn = self.backend.connect().await?;
        let stats = self.backend.stats(&mut conn, tenant).await?;
        self.backend.release(conn);
        stats.map(SessionStats::from).ok_or_else(|| {
            Failure::not_found(
                "OB.Tenant.NotExist",
                format!(
                    "tenant `{tenant}` no longer exists in target `{}`",
                    self.backend.target()
                ),
            )
        })
    }

    async fn deadlocks(&self, tenant: &str, params: &PageParams) -> Result<DeadLockPage, Failure> {
        if params.offset().is_none() {
            return Err(Failure::bad_parameter(
                "page",
                format!(
                    "page {} is beyond any result: ask for an earlier page",
                    params.page
                ),
            ));
        }
        let _permit = self.permit().await?;
        let mut conn = self.backend.connect().await?;
        let (total, events) = self.backend.deadlocks(&mut conn, tenant, params).await?;
        self.backend.release(conn);
        Ok(DeadLockPage::new(params, total, events))
    }

    /// Two reads: the waits and transactions, then the sessions they name.
    async fn pileup(&self, tenant: &str) -> Result<Pileup, Failure> {
        let _permit = self.permit().await?;
        let mut conn = self.backend.connect().await?;
        let rows = self.backend.pileup(&mut conn, tenant).await?;
        let ids = rows.ids();
        let sessions = match ids.is_empty() {
            true => Vec::new(),
            false => self.backend.sessions(&mut conn, tenant, &ids).await?,
        };
        self.backend.release(conn);
        Ok(rows.answer(sessions))
    }

    /// Checks that every id is a session of `tenant` now (the same session, where
    /// its start is given), then ends them one by one, stopping at the first the
    /// server refuses, as obshell does.
    async fn kill(
        &self,
        tenant: &str,
        victims: &[Victim],
        query_only: bool,
    ) -> Result<(), Failure> {
        if let Kill::Unsupported(why) = self.backend.capabilities().kill {
            let target = self.backend.target();
            return Err(Failure::not_supported(format!(
                "target `{target}` cannot end one session: {why}; nothing was ended"
            )));
        }
        let _permit = self.permit().await?;
        let mut conn = self.backend.connect().await?;
        let ids: Vec<u64> = victims.iter().map(|v| v.id).collect();
        let found = self.backend.present(&mut conn, tenant, &ids).await?;
        check_present(tenant, &ids, &found)?;
        let target = self.backend.target();
        if victims.iter().any(|v| v.started.is_some()) {
            let Some(now) = self.backend.started(&mut conn, tenant, &ids).await? else {
                return Err(Failure::bad_parameter(
                    "started",
                    format!("target `{target}` records no session start: send session_ids alone; nothing was ended"),
                ));
            };
            for victim in victims {
                if let Some(shown) = &victim.started {
                    let current = now.get(&victim.id);
                    if current != Some(shown) {
                        let now = current.map_or_else(
                            || "none by that id is there any more".to_string(),
                            |current| format!("the one there now started at {current}"),
                        );
                        let starts = format!(" (the one shown started at {shown}; {now})");
                        return Err(replaced(tenant, victim.id, &starts, "nothing was ended"));
                    }
                }
            }
        }
        for (done, victim) in victims.iter().enumerate() {
            let ended = self
                .backend
                .end(&mut conn, victim.id, victim.started.as_deref(), query_only)
                .await;
            if let Err(refusal) = ended {
                return Err(match refusal {
                    Refusal::Denied { what, why, grant } => Failure::grant_missing(format!(
                        "target `{target}`: the exporter's account lacks the grant for {what} ({why}): {grant}; {done} of the sessions before it were ended"
                    )),
                    Refusal::Failed { what, why } => Failure::unavailable(format!(
                        "target `{target}`: {what} failed ({why}); {done} of the sessions before it were ended"
                    )),
                    Refusal::Replaced { id } => replaced(
                        tenant,
                        id,
                        "",
                        &format!("{done} of the sessions before it were ended"),
                    ),
                });
            }
        }
        self.backend.release(conn);
        Ok(())
    }
}

/// The 409 of a kill whose id no longer names the session shown: it ended, and the
/// engine may have given its id to a new one. `starts`: what was shown and what is
/// there now, in words, or ""; `ended`: what the request ended before it.
fn replaced(tenant: &str, id: u64, starts: &str, ended: &str) -> Failure {
    Failure {
        status: axum::http::StatusCode::CONFLICT,
        err_code: "Exporter.Session.Replaced",
        message: format!(
            "session {id} of tenant `{tenant}` is not the session that was shown{starts}: that \
             one ended, and the id may now name another; refresh the list; {ended}"
        ),
        field: None,
        code: None,
    }
}

/// Nothing is ended unless every id is one session of `tenant`: `found` has each id
/// that exists once per server it runs on.
fn check_present(tenant: &str, ids: &[u64], found: &[u64]) -> Result<(), Failure> {
    for (i, id) in found.iter().enumerate() {
        if found[..i].contains(id) {
            return Err(Failure::bad_parameter(
                "session_ids",
                format!("session {id} of tenant `{tenant}` is on more than one server: end it on its server itself; nothing was ended"),
            ));
        }
    }
    let missing: Vec<String> = ids
        .iter()
        .filter(|id| !found.contains(id))
        .map(u64::to_string)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Failure::not_found(
        "OB.Tenant.Session.NotExist",
        format!(
            "tenant `{tenant}` has no session {}: nothing was ended",
            missing.join(", ")
        ),
    ))
}

impl<B: SessionBackend> SessionApi for BackendApi<B> {
    fn target(&self) -> &str {
        self.backend.target()
    }

    fn capabilities(&self) -> Capabilities {
        self.backend.capabilities()
    }

    fn list<'a>(
        &'a self,
        tenant: &'a str,
        params: &'a ListParams,
    ) -> BoxFuture<'a, Result<PageStream, Failure>> {
        Box::pin(self.list(tenant, params))
    }

    fn detail<'a>(
        &'a self,
        tenant: &'a str,
        id: u64,
    ) -> BoxFuture<'a, Result<TenantSession, Failure>> {
        Box::pin(self.detail(tenant, id))
    }

    fn stats<'a>(&'a self, tenant: &'a str) -> BoxFuture<'a, Result<SessionStats, Failure>> {
        Box::pin(self.stats(tenant))
    }

    fn kill<'a>(
        &'a self,
        tenant: &'a str,
        victims: &'a [Victim],
        query_only: bool,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(self.kill(tenant, victims, query_only))
    }

    fn deadlocks<'a>(
        &'a self,
        tenant: &'a str,
        params: &'a PageParams,
    ) -> BoxFuture<'a, Result<DeadLockPage, Failure>> {
        Box::pin(self.deadlocks(tenant, params))
    }

    fn pileup<'a>(&'a self, tenant: &'a str) -> BoxFuture<'a, Result<Pileup, Failure>> {
        Box::pin(self.pileup(tenant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn every_id_must_be_present_once() {
        assert_eq!(check_present("t", &[1, 2], &[2, 1]), Ok(()));
        let missing = check_present("t", &[1, 2, 3], &[2]).unwrap_err();
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert_eq!(
            missing.message,
            "tenant `t` has no session 1, 3: nothing was ended"
        );
        let twice = check_present("t", &[7], &[7, 7]).unwrap_err();
        assert_eq!(twice.status, StatusCode::BAD_REQUEST);
        assert_eq!(twice.field, Some("session_ids"));
        assert!(twice.message.contains("more than one server"), "{twice:?}");
    }

    #[tokio::test]
    async fn a_sink_stops_on_an_error_and_on_a_client_gone() {
        let (tx, mut rx) = mpsc::channel(1);
        let sink = PageSink {
            tx,
            idle: Duration::from_millis(50),
        };
        assert!(sink.send(Ok(TenantSession::default())).await);
        // The channel is full and nobody reads: the client stopped reading.
        assert!(!sink.send(Ok(TenantSession::default())).await);
        assert!(rx.recv().await.unwrap().is_ok());
        assert!(!sink.send(Err(Failure::unavailable("x"))).await);
        assert!(rx.recv().await.unwrap().is_err());
        drop(rx);
        assert!(!sink.send(Ok(TenantSession::default())).await);
    }
}
