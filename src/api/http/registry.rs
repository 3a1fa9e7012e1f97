//! The session API's settings and one backend per target, built by the kinds and
//! replaced on reload.

use super::*;

/// What the session API serves of one target, built by its kind (see [`Backends`]).
pub enum Backend {
    /// Its sessions: list, detail, stats, kill, pile-up and deadlocks.
    Sessions(Arc<dyn SessionApi>),
    /// The detail of its statements, asked of the service it reads (DBSS's).
    Detail(Box<dyn DetailSource>),
}

/// Builds a target's [`Backend`], with at most `max_concurrent` requests at once,
/// each bounded at `timeout` where the server can; None for a target the API does
/// not serve. The exporter passes the kinds' registration (`source::api_backend`), so
/// that this module uses no kind.
pub type Backends = fn(&Target, usize, Duration) -> Option<Backend>;

/// The session API's settings and one backend per target, replaced on reload.
pub struct Registry {
    current: RwLock<Arc<Applied>>,
    backends: Backends,
    /// The session history's store, as the exporter started with it (its recorder
    /// keeps those settings until a restart); None when nothing is recorded.
    history: Option<std::path::PathBuf>,
    /// The landing page's sparklines, read at most once a minute.
    pub(super) sparklines: super::history::Sparklines,
}

/// The configuration applied last: the settings, and what each target serves.
pub(super) struct Applied {
    pub(super) settings: Passthrough,
    /// obshell's header authentication, with its key; kept across reloads that leave
    /// `obshell_auth` unchanged, so clients keep the key they fetched.
    pub(super) obshell: Option<Arc<obshell::ObshellAuth>>,
    /// Targets with sessions to list, for the obshell-compatible endpoints.
    pub(super) backends: HashMap<String, TargetApi>,
    /// Targets whose statements' detail is forwarded (DBSS's).
    pub(super) details: HashMap<String, Arc<detail::Forward>>,
}

impl Registry {
    pub fn new(config: &Config, backends: Backends) -> Self {
        let registry = Self {
            current: RwLock::new(Arc::new(Applied {
                settings: Passthrough::default(),
                obshell: None,
                backends: HashMap::new(),
                details: HashMap::new(),
            })),
            backends,
            history: config.history.as_ref().map(|h| h.path.clone()),
            sparklines: Default::default(),
        };
        registry.apply(config);
        registry
    }

    /// The session history's store; None when nothing is recorded.
    pub(super) fn history(&self) -> Option<&std::path::Path> {
        self.history.as_deref()
    }

    /// Whether the exporter records the session history.
    pub fn records_history(&self) -> bool {
        self.history.is_some()
    }

    /// Takes a new configuration: backends of unchanged targets keep their
    /// connections, the others are rebuilt or dropped (their pools close in the
    /// background).
    pub fn apply(&self, config: &Config) {
        let settings = config.passthrough.clone();
        let old = self.get();
        let (max, timeout) = (settings.max_concurrent_per_target, settings.request_timeout);
        // Each target gets what its kind serves (sessions, or its statements' detail);
        // nothing while the API is off. A target configured as before keeps its own.
        let (mut backends, mut details) = (HashMap::new(), HashMap::new());
        for target in config.targets.iter().filter(|_| settings.enabled) {
            let name = target.name.clone();
            if let Some(kept) = old
                .details
                .get(&name)
                .filter(|kept| kept.serves(target, max))
            {
                details.insert(name, kept.clone());
                continue;
            }
            let kept = old.backends.get(&name).filter(|kept| {
                kept.target == *target && kept.max_concurrent == max && kept.timeout == timeout
            });
            if let Some(kept) = kept {
                backends.insert(name, kept.clone());
                continue;
            }
            match (self.backends)(target, max, timeout) {
                Some(Backend::Sessions(api)) => {
                    let served = TargetApi {
                        expected_tenants: target.kind.expected_tenants(&target.name),
                        target: target.clone(),
                        max_concurrent: max,
                        timeout,
                        api,
                    };
                    backends.insert(name, served);
                }
                Some(Backend::Detail(detail)) => {
                    let forward = detail::Forward::new(&name, detail, max);
                    details.insert(name, Arc::new(forward));
                }
                None => {}
            }
        }
        if settings.enabled && settings.insecure_no_auth {
            tracing::warn!(
                "passthrough.insecure_no_auth: the session API answers anyone who can reach \
                 this port, with the SQL text of every session; set bearer_token_file or \
                 basic auth users instead"
            );
        }
        let obshell = match (&settings.obshell_auth, &old.obshell) {
            (Some(new), Some(kept)) if old.settings.obshell_auth.as_ref() == Some(new) => {
                Some(kept.clone())
            }
            (Some(new), _) => match obshell::ObshellAuth::new(
                new.password.clone(),
                new.private_key.as_deref(),
                new.max_header_lifetime,
            ) {
                Ok(auth) => {
                    if new.private_key.is_none() {
                        tracing::info!(
                            "passthrough.obshell_auth: a new RSA key was made at start; set \
                             private_key_file to share one between replicas behind one address"
                        );
                    }
                    Some(Arc::new(auth))
                }
                Err(err) => {
                    tracing::error!("passthrough.obshell_auth: {err}; obshell headers are refused");
                    None
                }
            },
            (None, _) => None,
        };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Applied {
            settings,
            obshell,
            backends,
            details,
        });
    }

    /// The tenants of `target` the session API serves (those its last collection
    /// `found` and those its configuration names), sorted; None when it serves none
    /// of target's (the API is off, or the target has no sessions to list).
    pub fn served_tenants<'a>(
        &self,
        target: &str,
        found: impl Iterator<Item = &'a String>,
    ) -> Option<Vec<String>> {
        let current = self.get();
        let served = current.backends.get(target)?;
        let mut names: Vec<String> = found.cloned().collect();
        names.extend(served.expected_tenants.iter().cloned());
        names.sort_unstable();
        names.dedup();
        Some(names)
    }

    pub(super) fn get(&self) -> Arc<Applied> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A target's session API, and what it was built from, so a reload that changes
/// neither keeps its connections.
#[derive(Clone)]
pub(super) struct TargetApi {
    pub(super) target: Target,
    /// The tenants the configuration names: served even before a collection finds
    /// them (a single server's one tenant, an OceanBase cluster's listed ones).
    pub(super) expected_tenants: Vec<String>,
    pub(super) max_concurrent: usize,
    pub(super) timeout: std::time::Duration,
    pub(super) api: Arc<dyn SessionApi>,
}
