//! Each client's own line before a step that costs the server more than the client
//! (a bcrypt check, a TLS handshake): one of a client's requests at a time takes
//! the step, the others of that client wait behind it, without holding a thread.
//!
//! A flood from one address then has one request at the step, so another client
//! waits for one of the flood's at most, and the flood itself costs at most one of
//! whatever the step runs on. Waiting rather than refusing keeps a browser's
//! parallel first requests (the sessions page sends several with the same
//! credentials) working.

use super::ClientKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One line per client with a request in it.
#[derive(Debug, Default)]
pub struct ClientLines {
    /// An entry lives while a request of its client holds or waits for its turn,
    /// so the map never holds more entries than there are such requests.
    lines: Mutex<HashMap<ClientKey, Arc<Semaphore>>>,
}

/// A client's turn at the step; the next of its requests goes when it is dropped.
/// Owned, so that it can go with the work to a blocking thread: a request whose
/// client hangs up mid-step must not free the turn while the work still runs.
#[derive(Debug)]
pub struct ClientTurn {
    lines: Arc<ClientLines>,
    client: ClientKey,
    line: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
}

impl ClientLines {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Waits until no other request of `client` is at the step.
    pub async fn turn(self: &Arc<Self>, client: ClientKey) -> ClientTurn {
        let line = {
            let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
            lines
                .entry(client)
                .or_insert_with(|| Arc::new(Semaphore::new(1)))
                .clone()
        };
        // The semaphore is never closed, so acquiring only waits.
        let permit = line.clone().acquire_owned().await.ok();
        ClientTurn {
            lines: self.clone(),
            client,
            line,
            permit,
        }
    }
}

impl Drop for ClientTurn {
    fn drop(&mut self) {
        let mut lines = self.lines.lines.lock().unwrap_or_else(|e| e.into_inner());
        drop(self.permit.take());
        // Only the map's and this one: no request of the client waits any more.
        if Arc::strong_count(&self.line) == 2 {
            lines.remove(&self.client);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One request of a client at a time; another client is not concerned; a line
    /// goes with its last request.
    #[tokio::test(start_paused = true)]
    async fn a_client_has_one_request_at_the_step() {
        let lines = ClientLines::new();
        let client = |last: u8| ClientKey::from(std::net::IpAddr::from([127, 0, 0, last]));
        let first = lines.turn(client(2)).await;
        let second = lines.turn(client(2));
        tokio::pin!(second);
        // Paused time: the timeout fires as soon as nothing else can move.
        let waited = tokio::time::timeout(std::time::Duration::from_secs(1), second.as_mut()).await;
        assert!(
            waited.is_err(),
            "the client's second request waits for its first"
        );
        let other = lines.turn(client(1)).await;
        drop(first);
        let second = second.await;
        drop((second, other));
        assert!(
            lines.lines.lock().unwrap().is_empty(),
            "no line outlives its requests"
        );
    }
}
