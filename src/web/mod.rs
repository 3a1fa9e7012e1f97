//! The web configuration (--web.config.file: TLS, basic auth users, headers), swapped
//! whole on reload, and the one credential check every endpoint uses ([`auth`]).
//!
//! A leaf beside `http` and `passthrough`: both read it, and it imports neither.

pub mod auth;
pub mod config;
pub mod obshell;

pub use config::{BasicAuth, WebConfig, WebConfigError};

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

/// The address a request came from, put into its extensions by the accept loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// The current web configuration, swapped whole on reload.
#[derive(Debug, Default)]
pub struct Web {
    current: RwLock<Arc<WebConfig>>,
}

impl Web {
    pub fn new(config: WebConfig) -> Self {
        Self {
            current: RwLock::new(Arc::new(config)),
        }
    }

    pub fn get(&self) -> Arc<WebConfig> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set(&self, config: WebConfig) {
        match self.current.write() {
            Ok(mut current) => *current = Arc::new(config),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(config),
        }
    }
}
