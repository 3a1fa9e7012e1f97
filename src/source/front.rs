//! Poolers in front of a database: a target whose sessions all come from a pooler's
//! address names the pooler's targets in `behind:`, and asks each, in its own cycle,
//! which real client each of its backends serves.
//!
//! A leaf of `source`: a kind that stands in front registers a [`Front`] for each of
//! its targets when it is built ([`register`]); a kind behind one looks its fronts up
//! by target name ([`lookup`]). Neither names the other.

use crate::error::SourceError;
use crate::future::BoxFuture;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

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

/// A pooler that can say, now, which real client each of its server connections
/// serves.
pub trait Front: Send + Sync {
    fn backends(&self) -> BoxFuture<'_, Result<Backends, SourceError>>;
}

type Registry = Mutex<BTreeMap<String, Arc<dyn Front>>>;

static FRONTS: Registry = Mutex::new(BTreeMap::new());

/// Makes `front` the one of target `name` (replacing the one of an earlier
/// configuration).
pub fn register(name: &str, front: Arc<dyn Front>) {
    let mut fronts = FRONTS.lock().unwrap_or_else(|e| e.into_inner());
    fronts.insert(name.to_string(), front);
}

/// The front of target `name`, once it is built.
pub fn lookup(name: &str) -> Option<Arc<dyn Front>> {
    let fronts = FRONTS.lock().unwrap_or_else(|e| e.into_inner());
    fronts.get(name).cloned()
}

/// The backends of every front named, asked at once and merged; a front not built
/// yet, or whose read fails within `timeout` (one deadline for all), adds none (its
/// backends keep the pooler's address this cycle), and says why at debug level.
pub async fn backends_of(names: &[String], timeout: std::time::Duration) -> Backends {
    let reads = names.iter().map(|name| async move {
        let Some(front) = lookup(name) else {
            tracing::debug!(front = %name, "the target in front is not built yet");
            return Backends::new();
        };
        match tokio::time::timeout(timeout, front.backends()).await {
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
