//! Poolers in front of a database: a target whose sessions all come from a pooler's
//! address names the pooler's targets in `behind:`, and asks each, in its own cycle,
//! which real client each of its backends serves.
//!
//! A leaf of `source`: a kind that stands in front registers a [`Front`] for each of
//! its targets when it is built ([`register`]), and owns it; a kind behind one looks
//! its fronts up by target name ([`lookup`]). Neither names the other. The registry
//! holds no front alive: a target removed by a reload takes its front (and the
//! front's connection) with it.

use crate::error::SourceError;
use crate::future::BoxFuture;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// The client a backend serves: its address and its application, as the pooler
/// sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealClient {
    pub addr: String,
    pub application: String,
}

/// Which backend serves whom: by the backend's process id on the database and the
/// port its connection came from (the pooler's side of it), which together name one
/// connection of one server.
pub type Backends = HashMap<(u32, u16), RealClient>;

/// A pooler that can say which real client each of its server connections serves.
pub trait Front: Send + Sync {
    /// Read now, or an answer read at most `max_age` ago (a cycle asks for now; the
    /// session API's requests, which come several at once for one page, share one).
    fn backends(&self, max_age: Duration) -> BoxFuture<'_, Result<Backends, SourceError>>;
}

/// How old an answer the session API's requests may share: a page's list, pile-up
/// and stats come together.
pub const API_MAX_AGE: Duration = Duration::from_secs(2);

type Registry = Mutex<BTreeMap<String, Weak<dyn Front>>>;

static FRONTS: Registry = Mutex::new(BTreeMap::new());

/// Makes `front` the one of target `name` (replacing the one of an earlier
/// configuration) for as long as its owner keeps it; the entries of fronts gone
/// are forgotten meanwhile.
pub fn register(name: &str, front: &Arc<dyn Front>) {
    let mut fronts = FRONTS.lock().unwrap_or_else(|e| e.into_inner());
    fronts.retain(|_, front| front.strong_count() > 0);
    fronts.insert(name.to_string(), Arc::downgrade(front));
}

/// The front of target `name`, while its target is built.
pub fn lookup(name: &str) -> Option<Arc<dyn Front>> {
    let fronts = FRONTS.lock().unwrap_or_else(|e| e.into_inner());
    fronts.get(name).and_then(Weak::upgrade)
}

/// The backends of every front named (each read at most `max_age` ago), asked at
/// once and merged; a front not built yet, or whose read fails within `timeout` (one
/// deadline for all), adds none (its backends keep the pooler's address this
/// cycle), and says why at debug level.
pub async fn backends_of(names: &[String], timeout: Duration, max_age: Duration) -> Backends {
    let reads = names.iter().map(|name| async move {
        let Some(front) = lookup(name) else {
            tracing::debug!(front = %name, "the target in front is not built yet");
            return Backends::new();
        };
        match tokio::time::timeout(timeout, front.backends(max_age)).await {
            Ok(Ok(backends)) => backends,
            Ok(Err(err)) => {
                tracing::debug!(front = %name, "reading the real clients: {err}");
                Backends::new()
            }
            Err(_) => {
                tracing::debug!(front = %name, "reading the real clients timed out");
                Backends::new()
            }
        }
    });
    futures_util::future::join_all(reads)
        .await
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl Front for Fixed {
        fn backends(&self, _: Duration) -> BoxFuture<'_, Result<Backends, SourceError>> {
            Box::pin(async { Ok(Backends::new()) })
        }
    }

    /// A front lives as long as its owner: a target removed by a reload (its source
    /// dropped) is no longer found, and a rebuilt one replaces it.
    #[test]
    fn a_front_is_found_while_its_owner_keeps_it() {
        let owner: Arc<dyn Front> = Arc::new(Fixed);
        register("front-test-a", &owner);
        assert!(lookup("front-test-a").is_some());
        drop(owner);
        assert!(lookup("front-test-a").is_none());
        let rebuilt: Arc<dyn Front> = Arc::new(Fixed);
        register("front-test-a", &rebuilt);
        assert!(lookup("front-test-a").is_some());
    }
}
