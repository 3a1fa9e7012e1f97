//! The listener: accepts connections, performs the TLS handshake when the web
//! configuration asks for it, and serves HTTP/1.1 with the router.
//!
//! axum's own `serve` speaks plain TCP only; this loop adds TLS, [`Limits`] (a cap on
//! open connections, each client's share of it, and a deadline on every phase of a
//! connection, so that no client can hold a connection, or another client's slot, for
//! as long as it likes), and graceful shutdown that lets in-flight requests finish.
//! The web configuration is read per connection from [`Web`], so a reload changes
//! certificates and users for every new connection.

use super::clients::Shares;
use super::deadline::WriteDeadline;
use crate::web::lines::ClientLines;
use crate::web::{ClientAddr, ClientKey, Web};
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

/// Open connections at most by default (--web.max-connections); more wait in the
/// kernel's accept queue.
pub const MAX_CONNECTIONS: usize = 1024;
/// What a connection may hold and for how long (the --web.* flags; docs/operating.md,
/// "Connections and deadlines").
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Connections one client (an IPv4 address, an IPv6 /64) may hold at once; more
    /// are answered 503 and closed.
    pub max_connections_per_client: usize,
    /// The TLS handshake, a request's headers, and an idle keep-alive connection's
    /// wait for its next request (hyper starts its header timer when it waits). A
    /// body's deadline is its handler's (--web.body-timeout: only the session API's
    /// kills read one, once credentials and the route are checked).
    pub header_timeout: Duration,
    /// An answer, from the first write the client does not take at once until it has
    /// taken everything ([`WriteDeadline`]).
    pub write_timeout: Duration,
}

/// --web.max-connections-per-client by default: half of `max_connections`, so a
/// scraper from another address always finds a slot.
pub fn default_share(max_connections: usize) -> usize {
    (max_connections / 2).max(1)
}

/// Bytes hyper buffers for a connection's request head (and body reads): a request
/// line and headers longer than this are refused (431), so that half-sent heads on
/// every connection cost megabytes, not the ~400 KB each of hyper's default.
const MAX_BUFFERED: usize = 64 * 1024;

/// The answer to a connection past its client's share, written before closing it
/// (no request is read: nothing of it is needed).
const OVER_SHARE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 92\r\nConnection: close\r\nRetry-After: 1\r\n\r\ntoo many connections from this address: close some, or see --web.max-connections-per-client\n";

/// Answers a connection past its client's share with [`OVER_SHARE`] and closes it,
/// never waiting: the socket's buffer takes these few bytes at once, or they are
/// dropped. What the client has sent already is read and dropped first (at most
/// 16 KiB, only what is there), so that the close is a FIN after the answer, not a
/// reset that could discard it.
fn refuse(stream: tokio::net::TcpStream) {
    use std::io::Read as _;
    let _ = stream.try_write(OVER_SHARE);
    let Ok(stream) = stream.into_std() else {
        return;
    };
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut sent = [0u8; 4096];
    for _ in 0..4 {
        // Non-blocking (tokio's socket): WouldBlock ends it at once.
        match (&stream).read(&mut sent) {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
}

/// Answers a request without the router when it can (a scrape), else None.
pub type FastPath = Arc<dyn Fn(&hyper::Request<Incoming>) -> Option<Response> + Send + Sync>;

/// Serves `router` on `listener` until `cancel` fires, then lets open requests finish
/// for up to `drain`. Requests `fast` answers skip the router.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    fast: FastPath,
    limits: Limits,
    web: Arc<Web>,
    cancel: CancellationToken,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let shares = Shares::new(limits.max_connections_per_client);
    // A TLS handshake costs the server a key exchange and a signature, and the
    // client next to nothing: one of a client's handshakes at a time.
    let handshakes = ClientLines::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_BUFFERED);
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
        let client = ClientKey::from(peer.ip());
        let Some(share) = shares.take(client) else {
            // Past its share: told so, and closed, without waiting for anything.
            tracing::debug!(%client, "connection refused: the client holds its share of --web.max-connections");
            refuse(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let stream = WriteDeadline::new(stream, limits.write_timeout);
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
        let handshake_timeout = limits.header_timeout;
        let handshakes = handshakes.clone();
        tokio::spawn(async move {
            let _held = (slot, share);
            match &config.tls {
                None => {
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                }
                Some(acceptor) => {
                    let handshake = async {
                        let _turn = handshakes.turn(client).await;
                        acceptor.accept(stream).await
                    };
                    let tls = match tokio::time::timeout(handshake_timeout, handshake).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_of_a_connection_past_its_share_is_whole() {
        let text = std::str::from_utf8(OVER_SHARE).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.len());
        assert!(head.starts_with("HTTP/1.1 503 "));
    }

    #[test]
    fn a_client_gets_half_the_connections_by_default() {
        assert_eq!(default_share(1024), 512);
        assert_eq!(default_share(16), 8);
        assert_eq!(default_share(1), 1);
    }
}
