//! The listener: accepts connections, performs the TLS handshake when the web
//! configuration asks for it, and serves HTTP/1.1 with the router.
//!
//! axum's own `serve` speaks plain TCP only; this loop adds TLS, a bound on how long a
//! client may take to send its headers (a slow client cannot hold a connection
//! forever), a cap on open connections, and graceful shutdown that lets in-flight
//! requests finish. The web configuration is read per connection from [`Web`], so a
//! reload changes certificates and users for every new connection.

use crate::web::{ClientAddr, Web};
use axum::response::Response;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections at most by default (--web.max-connections); more wait in the
/// kernel's accept queue.
pub const MAX_CONNECTIONS: usize = 1024;

/// Answers a request without the router when it can (a scrape), else None.
pub type FastPath = Arc<dyn Fn(&hyper::Request<Incoming>) -> Option<Response> + Send + Sync>;

/// Serves `router` on `listener` until `cancel` fires, then lets open requests finish
/// for up to `drain`. Requests `fast` answers skip the router.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    fast: FastPath,
    max_connections: usize,
    web: Arc<Web>,
    cancel: CancellationToken,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        let slot = tokio::select! {
            _ = cancel.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!("accepting a connection failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let config = web.get();
        // Scrapes take the direct path; everything else goes through the router.
        let router = TowerToHyperService::new(router.clone());
        let fast = fast.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            use hyper::service::Service as _;
            request.extensions_mut().insert(ClientAddr(peer));
            let answer = fast(&request).ok_or_else(|| router.call(request));
            async move {
                match answer {
                    Ok(response) => Ok(response),
                    Err(routed) => routed.await,
                }
            }
        });
        let watcher = graceful.watcher();
        let http = http.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match &config.tls {
                None => {
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                }
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(err)) => {
                            tracing::debug!(%peer, "TLS handshake failed: {err}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = http.serve_connection(TokioIo::new(tls), service);
                    let _ = watcher.watch(conn).await;
                }
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(drain, graceful.shutdown()).await;
}
