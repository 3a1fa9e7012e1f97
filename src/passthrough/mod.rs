//! The obshell-compatible session API, off by default. Per tenant, under
//! `/api/v1/tenant/:name/sessions`: the list (filters, sort, paging; `DELETE` ends
//! sessions), `/queries` (`DELETE` ends their statements), `/stats`, `/:sessionId`
//! and `/pileup` (ours: lock waits and open transactions, for the sessions page),
//! and `/api/v1/tenant/:name/deadlocks`, the deadlocks the database detected; beside
//! them obshell's `/api/v1/info` and `/api/v1/secret`, which its SDK reads to
//! authenticate, and `/api/v1/dbss/:target/sqls/:id`, Huawei DBSS's detail of one SQL
//! statement. Answered live from the tenant's database, in obshell's envelope (DBSS's
//! in DBSS's shape).
//!
//! Unlike `/metrics`, these query a database on request, so they are guarded three
//! ways: authentication (a bearer token, or the basic auth users of
//! --web.config.file; `insecure_no_auth` is the explicit opt-out), a timeout per
//! request, and a cap on concurrent queries per target on a pool of their own, so the
//! API can never take the scheduler's connections.
//!
//! `:name` is a tenant the exporter knows: a tenant of an OceanBase target (configured
//! or found by its last collection), or the name of a MySQL or PostgreSQL target. When
//! two targets have a tenant of the same name, the first in the configuration answers.

mod dbss;
pub mod envelope;

use crate::config::{Config, Grant, Passthrough, Target, TargetKind};
use crate::sessions::{ListParams, PageParams, SessionApi, Victim};
use crate::snapshot::Published;
use crate::web::auth::{Credentials, Principal};
use crate::web::{obshell, Web};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use envelope::{respond, Failure, TraceId};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The passthrough's settings and one backend per target, replaced on reload.
pub struct Registry {
    current: RwLock<Arc<Current>>,
}

struct Current {
    settings: Passthrough,
    /// obshell's header authentication, with its key; kept across reloads that leave
    /// `obshell_auth` unchanged, so clients keep the key they fetched.
    obshell: Option<Arc<obshell::ObshellAuth>>,
    /// Targets with sessions to list, for the obshell-compatible endpoints.
    backends: HashMap<String, TargetApi>,
    /// DBSS targets, for the SQL-detail forward.
    dbss: HashMap<String, Arc<dbss::Forward>>,
}

impl Registry {
    pub fn new(config: &Config) -> Self {
        let registry = Self {
            current: RwLock::new(Arc::new(Current {
                settings: Passthrough::default(),
                obshell: None,
                backends: HashMap::new(),
                dbss: HashMap::new(),
            })),
        };
        registry.apply(config);
        registry
    }

    /// Takes a new configuration: backends of unchanged targets keep their
    /// connections, the others are rebuilt or dropped (their pools close in the
    /// background).
    pub fn apply(&self, config: &Config) {
        let settings = config.passthrough.clone();
        let old = self.get();
        let (max, timeout) = (settings.max_concurrent_per_target, settings.request_timeout);
        // Database targets get a backend (the obshell-compatible endpoints), DBSS
        // targets a forward (the SQL detail); nothing while the API is off.
        let (mut backends, mut dbss) = (HashMap::new(), HashMap::new());
        for target in config.targets.iter().filter(|_| settings.enabled) {
            let name = target.name.clone();
            if let TargetKind::Dbss(dbss_settings) = &target.kind {
                let forward = match old.dbss.get(&name) {
                    Some(kept) if kept.serves(dbss_settings, max) => kept.clone(),
                    _ => Arc::new(dbss::Forward::new(&name, dbss_settings, max)),
                };
                dbss.insert(name, forward);
            } else {
                let kept = old.backends.get(&name).filter(|kept| {
                    kept.target == *target && kept.max_concurrent == max && kept.timeout == timeout
                });
                let served = match kept {
                    Some(kept) => Some(kept.clone()),
                    None => crate::source::session_api(target, max, timeout).map(|api| TargetApi {
                        expected_tenants: target.kind.expected_tenants(&target.name),
                        target: target.clone(),
                        max_concurrent: max,
                        timeout,
                        api,
                    }),
                };
                if let Some(served) = served {
                    backends.insert(name, served);
                }
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
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Current {
            settings,
            obshell,
            backends,
            dbss,
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

    fn get(&self) -> Arc<Current> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A target's session API, and what it was built from, so a reload that changes
/// neither keeps its connections.
#[derive(Clone)]
struct TargetApi {
    target: Target,
    /// The tenants the configuration names: served even before a collection finds
    /// them (a single server's one tenant, an OceanBase cluster's listed ones).
    expected_tenants: Vec<String>,
    max_concurrent: usize,
    timeout: std::time::Duration,
    api: Arc<dyn SessionApi>,
}

/// What the passthrough's handlers read.
#[derive(Clone)]
pub struct ApiState {
    pub registry: Arc<Registry>,
    pub published: watch::Receiver<Arc<Published>>,
    pub web: Arc<Web>,
    /// How long a request body may take (--web.body-timeout).
    pub body_timeout: std::time::Duration,
}

/// Every endpoint of the API (see the module's doc). They answer 404 in the envelope
/// while the passthrough is off.
pub fn routes(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/tenant/{name}/sessions", get(list).delete(kill))
        .route(
            "/api/v1/tenant/{name}/sessions/queries",
            get(detail_named_queries).delete(kill_queries),
        )
        .route("/api/v1/tenant/{name}/sessions/stats", get(stats))
        .route("/api/v1/tenant/{name}/sessions/pileup", get(pileup))
        .route("/api/v1/tenant/{name}/sessions/{session_id}", get(detail))
        .route("/api/v1/tenant/{name}/deadlocks", get(deadlocks))
        .route("/api/v1/dbss/{target}/sqls/{id}", get(dbss::sql_detail))
        .route("/api/v1/tenants", get(tenants))
        .route("/api/v1/credentials", get(credentials))
        .route("/api/v1/info", get(info))
        .route("/api/v1/secret", get(secret))
        .route("/api/{*rest}", axum::routing::any(no_such_endpoint))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            served_hosts,
        ))
        .with_state(state)
}

/// Before every endpoint of the API: the request must name a Host it serves (an IP
/// literal, `localhost`, `allowed_hosts`). A web page whose name an attacker rebinds
/// to this address (DNS rebinding) is same-origin with it in the browser's eyes, and
/// would otherwise read every session's SQL; it still sends its own name as Host.
/// After every endpoint: the answer is JSON, never sniffed as anything else.
async fn served_hosts(
    State(state): State<ApiState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // One Host, or the authority of an absolute URI: a request naming two could
    // have one checked and another obeyed.
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let host = match (request.uri().authority(), hosts.next(), hosts.next()) {
        (Some(authority), _, None) => authority.as_str().to_string(),
        (None, Some(host), None) => host.to_str().unwrap_or_default().to_string(),
        _ => String::new(),
    };
    let mut response = if state.registry.get().settings.serves_host(&host) {
        next.run(request).await
    } else {
        tracing::debug!(host = %host.chars().take(100).collect::<String>(), "session API request for a Host it does not serve");
        let failure = Failure::forbidden(format!(
            "the session API does not serve Host `{}`: add the name to passthrough.allowed_hosts \
             (IP addresses and localhost are always served)",
            host.chars().take(100).collect::<String>()
        ));
        respond::<()>(&Err(failure), TraceId::new(), Instant::now())
    };
    // What the router answers by itself (a method a path does not serve, a path
    // it cannot decode) is plain text: answered in the envelope like the rest.
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if !json {
        let status = response.status();
        let failure = Failure {
            status,
            err_code: if status == axum::http::StatusCode::METHOD_NOT_ALLOWED {
                "Common.MethodNotAllowed"
            } else {
                "Common.BadRequest"
            },
            message: format!(
                "{}: see GET /api/v1/tenants and docs/openapi.yaml for the endpoints and their methods",
                status.canonical_reason().unwrap_or("refused")
            ),
            field: None,
            code: None,
        };
        let allow = response.headers().get(header::ALLOW).cloned();
        response = respond::<()>(&Err(failure), TraceId::new(), Instant::now());
        if let Some(allow) = allow {
            response.headers_mut().insert(header::ALLOW, allow);
        }
    }
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    response
}

/// The session API is off.
fn disabled() -> Failure {
    Failure::not_found(
        "Common.NotFound",
        "the session API is disabled: set passthrough.enabled in the configuration",
    )
}

/// What obshell's `GET /api/v1/info` tells a client about the agent; its SDK reads
/// it first, to choose the authentication.
#[derive(serde::Serialize)]
struct AgentInfo {
    /// Not `SINGLE`, for which the SDK would send an empty password.
    identity: &'static str,
    /// The obshell version whose session API this one serves.
    version: &'static str,
    #[serde(rename = "supportedAuth")]
    supported_auth: &'static [&'static str],
    /// No agent password: clients send `X-OCS-Header`, not `X-OCS-Agent-Header`.
    security: bool,
    #[serde(rename = "isObproxyAgent")]
    is_obproxy_agent: bool,
}

/// `GET /api/v1/info`, without credentials, as obshell answers it.
async fn info(State(state): State<ApiState>) -> Response {
    let current = state.registry.get();
    let result = if current.settings.enabled {
        Ok(AgentInfo {
            identity: "CLUSTER AGENT",
            version: "4.3.1.0",
            supported_auth: if current.obshell.is_some() {
                &["v2"]
            } else {
                &[]
            },
            security: false,
            is_obproxy_agent: false,
        })
    } else {
        Err(disabled())
    };
    respond(&result, TraceId::new(), Instant::now())
}

/// obshell's `GET /api/v1/secret`: the key clients encrypt their header with.
#[derive(serde::Serialize)]
struct AgentSecret {
    ip: String,
    port: u16,
    public_key: String,
}

/// `GET /api/v1/secret`, without credentials; `ip` and `port` are where the client
/// reached the exporter.
async fn secret(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let current = state.registry.get();
    let result = match (&current.obshell, current.settings.enabled) {
        (_, false) => Err(disabled()),
        (None, true) => Err(Failure::not_found(
            "Common.NotFound",
            "obshell's header authentication is off: set passthrough.obshell_auth",
        )),
        (Some(auth), true) => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default();
            let (ip, port) = match host.rsplit_once(':') {
                Some((ip, port)) if !ip.ends_with(':') => (
                    ip.trim_matches(['[', ']']).to_string(),
                    port.parse().unwrap_or(0),
                ),
                _ => (host.to_string(), 0),
            };
            Ok(AgentSecret {
                ip,
                port,
                public_key: auth.public_key().to_string(),
            })
        }
    };
    respond(&result, TraceId::new(), Instant::now())
}

/// `GET /api/v1/tenants` (ours): every tenant the API serves, with its target, and
/// whether sessions may be ended: what the sessions page asks first, and how it
/// learns that its credentials are good.
#[derive(serde::Serialize)]
struct Tenants {
    tenants: Vec<ServedTenant>,
    /// Whether these credentials may end sessions in some tenant listed.
    allow_kill: bool,
}

/// A tenant the credentials may read.
#[derive(serde::Serialize)]
struct ServedTenant {
    name: String,
    target: String,
    kind: &'static str,
    /// Whether the engine keeps a history of its deadlocks (PostgreSQL does not).
    deadlocks: bool,
    /// Whether these credentials may end sessions here.
    kill: bool,
}

async fn tenants(State(state): State<ApiState>, caller: Caller) -> Response {
    let current = state.registry.get();
    let result = authorize(&current, &state, &caller).await.map(|(who, _)| {
        let published = published(&state);
        let mut tenants = Vec::new();
        for entry in &published.targets {
            let (Some(served), Some(names)) = (
                current.backends.get(&entry.status.name),
                state
                    .registry
                    .served_tenants(&entry.status.name, entry.status.tenants.keys()),
            ) else {
                continue;
            };
            tenants.extend(names.into_iter().filter_map(|name| {
                let grant = current.settings.grant(&who, &name);
                grant.read.then(|| ServedTenant {
                    target: entry.status.name.clone(),
                    kind: entry.status.kind,
                    deadlocks: !matches!(served.target.kind, TargetKind::Postgresql(_)),
                    kill: grant.kill,
                    name,
                })
            }));
        }
        Tenants {
            allow_kill: tenants.iter().any(|t| t.kill),
            tenants,
        }
    });
    caller.answer(respond(&result, TraceId::new(), Instant::now()))
}

/// `GET /api/v1/credentials` (ours): whether the request's credentials are good,
/// answered 200 either way, so the sessions page can decide to show its sign-in
/// form without a refused request in the browser's console. It tells no more than
/// a 401 would.
#[derive(serde::Serialize)]
struct Credentialed {
    accepted: bool,
}

async fn credentials(State(state): State<ApiState>, caller: Caller) -> Response {
    let current = state.registry.get();
    let result = match current.settings.enabled {
        false => Err(disabled()),
        // Good credentials that `access` names nowhere are accepted here: the page
        // then shows the 403 that says so, not its sign-in form again.
        true => Ok(Credentialed {
            accepted: match authorize(&current, &state, &caller).await {
                Ok(_) => true,
                Err(failure) => failure.status == axum::http::StatusCode::FORBIDDEN,
            },
        }),
    };
    respond(&result, TraceId::new(), Instant::now())
}

/// Anything else under /api/ answers in the envelope too.
async fn no_such_endpoint(uri: axum::http::Uri) -> Response {
    let failure = Failure::not_found(
        "Common.NotFound",
        format!(
            "no endpoint {}: the API serves GET /api/v1/tenant/:name/sessions, \
             /sessions/:sessionId, /sessions/stats and /sessions/pileup, GET /api/v1/tenant/:name/deadlocks, \
             GET /api/v1/tenants and /api/v1/credentials, GET /api/v1/info and /api/v1/secret, \
             and GET /api/v1/dbss/:target/sqls/:id",
            uri.path().chars().take(200).collect::<String>()
        ),
    );
    respond::<()>(&Err(failure), TraceId::new(), Instant::now())
}

async fn list(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    caller: Caller,
) -> Response {
    handle(
        &state,
        &caller,
        "list",
        &name,
        |backend, tenant, _| async move {
            let params = ListParams::parse(query.as_deref())?;
            backend.list(&tenant, &params).await
        },
    )
    .await
}

/// `GET .../deadlocks`: a page of the deadlocks the database detected, newest first.
async fn deadlocks(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    caller: Caller,
) -> Response {
    handle(
        &state,
        &caller,
        "deadlocks",
        &name,
        |backend, tenant, _| async move {
            let params = PageParams::parse(query.as_deref())?;
            backend.deadlocks(&tenant, &params).await
        },
    )
    .await
}

async fn detail(
    State(state): State<ApiState>,
    Path((name, session_id)): Path<(String, String)>,
    caller: Caller,
) -> Response {
    handle(
        &state,
        &caller,
        "detail",
        &name,
        |backend, tenant, _| async move {
            let id = session_id.parse::<u64>().map_err(|_| {
                Failure::bad_parameter(
                    "sessionId",
                    format!(
                        "sessionId must be a whole number (a session ID), not `{}`",
                        session_id.chars().take(64).collect::<String>()
                    ),
                )
            })?;
            backend.detail(&tenant, id).await
        },
    )
    .await
}

/// `GET .../sessions/queries` is a session id that is not a number, as for detail.
async fn detail_named_queries(
    state: State<ApiState>,
    Path(name): Path<String>,
    caller: Caller,
) -> Response {
    detail(state, Path((name, "queries".to_string())), caller).await
}

/// Largest kill request body: a few thousand ids, encrypted and base64.
const MAX_KILL_BODY: usize = 64 * 1024;
/// Sessions one kill request may name.
const MAX_KILL_IDS: usize = 1000;

/// obshell's kill request body, and the answer's data: the sessions ended.
#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct SessionIds {
    session_ids: Vec<u64>,
    /// Ours, optional: when each session started, as the list showed it (its
    /// `started`), by id. A session whose id now names another ends nothing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    started: BTreeMap<String, String>,
}

impl SessionIds {
    /// The sessions to end, with the start shown for each where one was sent.
    /// Called once the number of ids is checked.
    fn victims(&self) -> Result<Vec<Victim>, Failure> {
        let asked: std::collections::HashSet<u64> = self.session_ids.iter().copied().collect();
        let mut started = HashMap::with_capacity(self.started.len());
        for (key, start) in &self.started {
            // The id as the list gives it, digits alone: `+7` or `007` would be
            // another spelling, never silently left unchecked.
            let id = key.parse::<u64>().ok().filter(|id| id.to_string() == *key);
            match id {
                Some(id) if asked.contains(&id) => {
                    started.insert(id, start.clone());
                }
                _ => {
                    return Err(Failure::bad_parameter(
                        "started",
                        format!(
                            "started names `{}`, which is not one of session_ids: key it by the ids, as the list gives them",
                            key.chars().take(32).collect::<String>()
                        ),
                    ))
                }
            }
        }
        Ok(self
            .session_ids
            .iter()
            .map(|id| Victim {
                id: *id,
                started: started.get(id).cloned(),
            })
            .collect())
    }
}

/// `DELETE .../sessions`: KILL each session.
async fn kill(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    caller: Caller,
    body: axum::body::Body,
) -> Response {
    kill_sessions(&state, &caller, &name, body, false).await
}

/// `DELETE .../sessions/queries`: KILL QUERY each session.
async fn kill_queries(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    caller: Caller,
    body: axum::body::Body,
) -> Response {
    kill_sessions(&state, &caller, &name, body, true).await
}

/// Refused unless `allow_kill`, before any database is asked; the ids come from the
/// body (opened with the obshell header's key when one was sent); every kill is
/// logged, with its outcome and who asked.
///
/// The body is read last: credentials, the tenant, the grant and the same-origin
/// proof are checked from the headers alone, so a client that announces a body and
/// never sends it learns nothing and holds nothing without them, and with them waits
/// at most --web.body-timeout.
async fn kill_sessions(
    state: &ApiState,
    caller: &Caller,
    name: &str,
    body: axum::body::Body,
    query_only: bool,
) -> Response {
    let endpoint = if query_only { "kill_query" } else { "kill" };
    let switched_on = state.registry.get().settings.allow_kill;
    let proof = caller.same_origin_proof();
    let body_timeout = state.body_timeout;
    handle_with_body(
        state,
        caller,
        endpoint,
        name,
        body_timeout,
        |backend,
         tenant,
         Authorized {
             verified,
             trace,
             who,
             grant,
         }| async move {
            let refused = match proof {
                Err(failure) => Some(failure),
                Ok(()) if !switched_on => Some(Failure::forbidden(
                    "ending sessions is off: set passthrough.allow_kill: true",
                )),
                Ok(()) if !grant.kill => Some(Failure::forbidden(format!(
                    "the {who} may not end sessions in tenant `{tenant}`: give it kill: true in a \
                     passthrough.access entry for this tenant (basic auth users of the web \
                     config, which Prometheus may scrape with, never kill without one): nothing \
                     was ended"
                ))),
                Ok(()) => None,
            };
            if let Some(failure) = refused {
                // Credentials that were good asked for a kill: worth the audit log.
                tracing::info!(
                    trace_id = %trace,
                    endpoint,
                    tenant,
                    peer = %caller.peer_display(),
                    by = %who,
                    outcome = %failure.message,
                    "kill refused"
                );
                return Err(failure);
            }
            let body =
                match tokio::time::timeout(body_timeout, axum::body::to_bytes(body, MAX_KILL_BODY))
                    .await
                {
                    Err(_) => return Err(Failure::body_timeout(body_timeout)),
                    Ok(Err(_)) => {
                        return Err(Failure::bad_parameter(
                            "body",
                            format!(
                                "the body is larger than {} KiB, or was cut off",
                                MAX_KILL_BODY / 1024
                            ),
                        ))
                    }
                    Ok(Ok(body)) => body,
                };
            let plain = match &verified {
                Some(verified) => verified.open_body(&body).ok_or_else(|| {
                    Failure::bad_parameter(
                    "body",
                    "the body is not encrypted with the X-OCS-Header's key (base64 of AES-128-CBC)",
                )
                })?,
                None => body.to_vec(),
            };
            let asked = serde_json::from_slice::<SessionIds>(&plain).map_err(|err| {
                Failure::bad_parameter(
                    "session_ids",
                    format!(
                        "the body must be {{\"session_ids\": [ids]}}, optionally with \
                         \"started\": {{\"id\": \"start\"}}: {err}"
                    ),
                )
            })?;
            if asked.session_ids.is_empty() || asked.session_ids.len() > MAX_KILL_IDS {
                return Err(Failure::bad_parameter(
                    "session_ids",
                    format!("session_ids must list 1 to {MAX_KILL_IDS} sessions"),
                ));
            }
            let victims = asked.victims()?;
            let ids = asked.session_ids;
            let outcome = backend.kill(&tenant, &victims, query_only).await;
            let result = match &outcome {
                Ok(()) => "ended".to_string(),
                Err(failure) => failure.message.clone(),
            };
            let outcome = outcome.map(|()| SessionIds {
                session_ids: ids.clone(),
                started: BTreeMap::new(),
            });
            tracing::info!(
                trace_id = %trace,
                endpoint,
                tenant,
                peer = %caller.peer_display(),
                by = %who,
                ids = ?ids,
                outcome = %result,
                "sessions killed on request"
            );
            outcome
        },
    )
    .await
}

/// `GET .../sessions/pileup` (ours): who waits for whom, and the open transactions.
async fn pileup(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    caller: Caller,
) -> Response {
    handle(
        &state,
        &caller,
        "pileup",
        &name,
        |backend, tenant, _| async move { backend.pileup(&tenant).await },
    )
    .await
}

async fn stats(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    caller: Caller,
) -> Response {
    handle(
        &state,
        &caller,
        "stats",
        &name,
        |backend, tenant, _| async move { backend.stats(&tenant).await },
    )
    .await
}

/// What every endpoint does around its query: authentication, the tenant lookup,
/// the timeout, the envelope and the log line.
async fn handle<T, F, Fut>(
    state: &ApiState,
    caller: &Caller,
    endpoint: &'static str,
    name: &str,
    run: F,
) -> Response
where
    T: Reply,
    F: FnOnce(Arc<dyn SessionApi>, String, Authorized) -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    handle_with_body(state, caller, endpoint, name, Duration::ZERO, run).await
}

/// [`handle`] for an endpoint whose work first reads a body, bounded by
/// `body_timeout` on its own: the request's whole deadline is that plus
/// `request_timeout`, so a slow body answers 408, not a database's 503.
async fn handle_with_body<T, F, Fut>(
    state: &ApiState,
    caller: &Caller,
    endpoint: &'static str,
    name: &str,
    body_timeout: Duration,
    run: F,
) -> Response
where
    T: Reply,
    F: FnOnce(Arc<dyn SessionApi>, String, Authorized) -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    let started = Instant::now();
    let trace = TraceId::new();
    let current = state.registry.get();
    let settings = &current.settings;
    let authorized = authorize(&current, state, caller)
        .await
        .and_then(|(who, verified)| {
            let grant = settings.grant(&who, name);
            if !grant.read {
                return Err(not_granted(&who, name));
            }
            let shown = |tenant: &str| settings.grant(&who, tenant).read;
            let backend = resolve(&current, &published(state), name, shown)?;
            Ok((
                backend,
                Authorized {
                    verified,
                    trace,
                    who,
                    grant,
                },
            ))
        });
    let result = match authorized {
        Err(failure) => Err(failure),
        Ok((backend, authorized)) => {
            let timeout = current.settings.request_timeout;
            let run = run(backend.clone(), name.to_string(), authorized);
            match tokio::time::timeout(timeout + body_timeout, run).await {
                Ok(result) => result,
                Err(_) => Err(Failure::unavailable(format!(
                    "target `{}`: no answer within passthrough.request_timeout ({}): the database \
                     is slow or unreachable, or {} passthrough queries are already running on it",
                    backend.target(),
                    crate::config::format_duration(timeout),
                    current.settings.max_concurrent_per_target
                ))),
            }
        }
    };
    let error_message = result.as_ref().err().map(|f| f.message.clone());
    let response = caller.answer(T::reply(result, trace, started));
    let status = response.status().as_u16();
    let error = error_message.as_deref().unwrap_or("");
    if status >= 500 {
        tracing::warn!(trace_id = %trace, endpoint, tenant = name, status, error, "passthrough request failed");
    } else if status == 401 || status == 403 {
        // Refusals are what a scan or a flood produces: not worth an info line each.
        tracing::debug!(
            trace_id = %trace,
            endpoint,
            tenant = name,
            status,
            peer = %caller.peer_display(),
            error,
            "passthrough request refused"
        );
    } else {
        tracing::info!(
            trace_id = %trace,
            endpoint,
            tenant = name,
            status,
            duration_ms = started.elapsed().as_millis() as u64,
            error,
            "passthrough request"
        );
    }
    response
}

/// What an endpoint's work gets from the checks before it: the verified obshell
/// header (whose key opens a body), the request's trace id, for its own log lines,
/// who asked and what they may do in the tenant.
struct Authorized {
    verified: Option<obshell::Verified>,
    trace: TraceId,
    who: Principal,
    grant: Grant,
}

/// How an endpoint's answer becomes a response: whole, in obshell's envelope, or
/// (the list) streamed into it.
trait Reply: Sized {
    fn reply(result: Result<Self, Failure>, trace: TraceId, started: Instant) -> Response;
}

impl Reply for crate::sessions::TenantSession {
    fn reply(result: Result<Self, Failure>, trace: TraceId, started: Instant) -> Response {
        respond(&result, trace, started)
    }
}

impl Reply for crate::sessions::DeadLockPage {
    fn reply(result: Result<Self, Failure>, trace: TraceId, started: Instant) -> Response {
        respond(&result, trace, started)
    }
}

impl Reply for crate::sessions::Pileup {
    fn reply(result: Result<Self, Failure>, trace: TraceId, started: Instant) -> Response {
        respond(&result, trace, started)
    }
}

impl Reply for crate::sessions::SessionStats {
    fn reply(result: Result<Self, Failure>, trace: TraceId, started: Instant) -> Response {
        respond(&result, trace, started)
    }
}

impl Reply for SessionIds {
    fn reply(result: Result<Self, Failure>, trace: TraceId, started: Instant) -> Response {
        respond(&result, trace, started)
    }
}

impl Reply for crate::sessions::PageStream {
    fn reply(result: Result<Self, Failure>, trace: TraceId, started: Instant) -> Response {
        match result {
            Ok(page) => envelope::respond_page(page, trace, started),
            Err(failure) => respond::<()>(&Err(failure), trace, started),
        }
    }
}

/// The latest published state (the borrow ends here, before any await).
fn published(state: &ApiState) -> Arc<Published> {
    state.published.borrow().clone()
}

/// Who asks: the request's headers, its path and query as received (what an obshell
/// header must name), and the client's address (what failed attempts are counted
/// by).
pub struct Caller {
    pub headers: HeaderMap,
    pub uri: String,
    pub peer: Option<std::net::IpAddr>,
}

/// What the sessions page sends with every request (see [`Caller::answer`] and
/// [`Caller::same_origin_proof`]).
pub const PAGE_HEADER: (&str, &str) = ("x-requested-with", "session_exporter");

impl Caller {
    /// The sessions page signs in with its own form: a refusal it gets carries no
    /// challenge, which would make the browser ask for basic auth in a dialog.
    fn answer(&self, mut response: Response) -> Response {
        if self
            .headers
            .get(PAGE_HEADER.0)
            .is_some_and(|v| v == PAGE_HEADER.1)
        {
            response.headers_mut().remove(header::WWW_AUTHENTICATE);
        }
        response
    }

    /// The same-origin proof of a request that ends sessions. A browser tells where
    /// a request comes from (`Origin`, `Sec-Fetch-Site`); from a browser, a kill must
    /// come from this exporter's own page, with the page's header, which no other
    /// site can add without a CORS preflight this server never grants. Another site
    /// cannot make a signed-in browser (whose basic auth it sends by itself) end
    /// sessions. Clients that are not browsers (obshell's SDK, curl) send none of
    /// these headers and are not concerned: they hold their credentials themselves.
    fn same_origin_proof(&self) -> Result<(), Failure> {
        let browser =
            self.headers.contains_key("origin") || self.headers.contains_key("sec-fetch-site");
        if !browser {
            return Ok(());
        }
        let from_page = self
            .headers
            .get(PAGE_HEADER.0)
            .is_some_and(|v| v == PAGE_HEADER.1);
        let foreign = crate::web::cross_origin(&self.headers);
        if foreign.is_none() && from_page {
            return Ok(());
        }
        Err(Failure::forbidden(format!(
            "a browser may end sessions only from this exporter's sessions page ({}): nothing \
             was ended",
            foreign.unwrap_or_else(|| "this origin, without the page's header".to_string())
        )))
    }

    /// The client's address for a log line: the address, or `unknown` (a request
    /// that did not come through the listener, as in unit tests).
    pub fn peer_display(&self) -> String {
        self.peer
            .map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self {
            headers: parts.headers.clone(),
            uri: parts.uri.path_and_query().map_or_else(
                || parts.uri.path().to_string(),
                |pq| pq.as_str().to_string(),
            ),
            peer: parts
                .extensions
                .get::<crate::web::ClientAddr>()
                .map(|addr| addr.0.ip()),
        })
    }
}

/// An obshell header (`X-OCS-Header`, when `obshell_auth` is set), or the bearer
/// token, or basic auth users of --web.config.file, or the explicit opt-out: who
/// asks, and the verified obshell header. A passthrough enabled with none of them
/// (refused at load) stays closed; a credential that `access` names nowhere is
/// refused (403) here, before any tenant is looked at.
async fn authorize(
    current: &Current,
    state: &ApiState,
    caller: &Caller,
) -> Result<(Principal, Option<obshell::Verified>), Failure> {
    let settings = &current.settings;
    if !settings.enabled {
        return Err(disabled());
    }
    let (who, verified) = if let Some(header) = caller.headers.get(obshell::HEADER) {
        let Some(auth) = current.obshell.clone() else {
            return Err(Failure::unauthorized());
        };
        let verified = auth
            .verify(
                header.to_str().unwrap_or_default(),
                &caller.uri,
                caller.peer,
                std::time::SystemTime::now(),
            )
            .await
            .map_err(|error| {
                tracing::debug!(peer = %caller.peer_display(), err_code = error.err_code(), "obshell header refused");
                Failure::obshell_header(error)
            })?;
        (Principal::Obshell, Some(verified))
    } else {
        let web = state.web.get();
        let credentials = Credentials {
            basic: web.auth.as_ref(),
            bearer: settings.bearer_token.as_ref(),
        };
        // Nothing configured is open only when asked for explicitly (an obshell header
        // is the only way in when obshell_auth is all there is).
        if credentials.is_empty() && (!settings.insecure_no_auth || current.obshell.is_some()) {
            return Err(Failure::unauthorized());
        }
        let given = caller
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let client = caller.peer.map(crate::web::ClientKey::from);
        let who = credentials
            .check(given, client)
            .await
            .ok_or_else(Failure::unauthorized)?;
        (who, None)
    };
    if !settings.admits(&who) {
        return Err(Failure::forbidden(format!(
            "the {who} is in no passthrough.access entry: add it to one to use the session API"
        )));
    }
    Ok((who, verified))
}

/// The 403 of a tenant outside `who`'s grant. It does not tell whether the tenant
/// exists.
fn not_granted(who: &Principal, tenant: &str) -> Failure {
    Failure::forbidden(format!(
        "the {who} is not given tenant `{}`: add the tenant to the tenants of one of its \
         passthrough.access entries",
        tenant.chars().take(128).collect::<String>()
    ))
}

/// The backend serving tenant `name`, from what the last collections found.
fn resolve(
    current: &Current,
    published: &Published,
    name: &str,
    shown: impl Fn(&str) -> bool,
) -> Result<Arc<dyn SessionApi>, Failure> {
    // Published targets in config order, with the tenants each answers for: those
    // its last collection found and those its configuration names.
    let with_tenants = || {
        published.targets.iter().filter_map(|entry| {
            let served = current.backends.get(&entry.status.name)?;
            let tenants = entry
                .status
                .tenants
                .keys()
                .chain(served.expected_tenants.iter());
            Some((served, tenants))
        })
    };
    with_tenants()
        .find_map(|(served, mut tenants)| tenants.any(|t| t == name).then_some(&served.api))
        .cloned()
        .ok_or_else(|| {
            let mut known: Vec<&str> = with_tenants()
                .flat_map(|(_, tenants)| tenants.map(String::as_str))
                .filter(|t| shown(t))
                .collect();
            known.sort_unstable();
            known.dedup();
            let shown = known.len().min(20);
            let more = if known.len() > shown {
                format!(" and {} more", known.len() - shown)
            } else {
                String::new()
            };
            if !published.ready {
                return Failure::unavailable(
                    "the exporter is starting: tenants are known once every target's first \
                     collection has finished; retry in a moment",
                );
            }
            Failure::not_found(
                "OB.Tenant.NotExist",
                format!(
                    "unknown tenant `{}`: known tenants are {}{more}",
                    name.chars().take(128).collect::<String>(),
                    if known.is_empty() {
                        "none yet (no collection has finished)".to_string()
                    } else {
                        known[..shown].join(", ")
                    }
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(headers: &[(&'static str, &str)]) -> Caller {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, value.parse().unwrap());
        }
        Caller {
            headers: map,
            uri: "/api/v1/tenant/t/sessions".to_string(),
            peer: None,
        }
    }

    #[test]
    fn a_kill_from_a_browser_must_come_from_the_page_of_this_origin() {
        let page = PAGE_HEADER;
        // Not a browser (the SDK, curl): not concerned.
        assert!(caller(&[("host", "127.0.0.1:9767")])
            .same_origin_proof()
            .is_ok());
        // The page: same origin, its header.
        assert!(caller(&[
            ("host", "127.0.0.1:9767"),
            ("origin", "http://127.0.0.1:9767"),
            ("sec-fetch-site", "same-origin"),
            page,
        ])
        .same_origin_proof()
        .is_ok());
        for headers in [
            // Another site's form or fetch, even with the header copied.
            vec![
                ("host", "127.0.0.1:9767"),
                ("origin", "http://evil.example"),
                page,
            ],
            vec![
                ("host", "127.0.0.1:9767"),
                ("origin", "http://127.0.0.1:9767.evil.example"),
                page,
            ],
            vec![
                ("host", "127.0.0.1:9767"),
                ("sec-fetch-site", "cross-site"),
                page,
            ],
            vec![
                ("host", "127.0.0.1:9767"),
                ("sec-fetch-site", "same-site"),
                page,
            ],
            // A browser on this origin, but not the page (a link, a plain form).
            vec![
                ("host", "127.0.0.1:9767"),
                ("origin", "http://127.0.0.1:9767"),
            ],
            vec![("origin", "http://127.0.0.1:9767"), page],
            vec![("host", "127.0.0.1:9767"), ("origin", "null"), page],
        ] {
            let refused = caller(&headers).same_origin_proof().unwrap_err();
            assert_eq!(
                refused.status,
                axum::http::StatusCode::FORBIDDEN,
                "{headers:?}"
            );
            assert!(refused.message.contains("nothing was ended"), "{refused:?}");
        }
    }

    #[test]
    fn a_kill_body_names_ids_and_optionally_their_starts() {
        let parse = |json: &str| serde_json::from_str::<SessionIds>(json).unwrap();
        // obshell's SDK: ids only.
        let sdk = parse(r#"{"session_ids": [7, 9]}"#).victims().unwrap();
        assert_eq!(
            sdk,
            [
                Victim {
                    id: 7,
                    started: None
                },
                Victim {
                    id: 9,
                    started: None
                }
            ]
        );
        // The page: a start for the ids whose engine records one.
        let page =
            parse(r#"{"session_ids": [7, 9], "started": {"9": "2026-12-07T01:02:03.000004Z"}}"#)
                .victims()
                .unwrap();
        assert_eq!(page[0].started, None);
        assert_eq!(
            page[1].started.as_deref(),
            Some("2026-12-07T01:02:03.000004Z")
        );
        // A start for an id not asked for, or for one not spelled as the list gives
        // ids: refused, never silently left unchecked.
        for key in ["8", "seven", "+7", "007", "-7", "7.0", ""] {
            let body = format!(r#"{{"session_ids": [7], "started": {{"{key}": "x"}}}}"#);
            let refused = parse(&body).victims().unwrap_err();
            assert_eq!(refused.status, axum::http::StatusCode::BAD_REQUEST, "{key}");
            assert_eq!(refused.field, Some("started"), "{key}");
        }
        assert!(serde_json::from_str::<SessionIds>(r#"{"session_ids": [1], "x": 1}"#).is_err());
        // The answer lists the ids alone, as obshell's does.
        let answer = SessionIds {
            session_ids: vec![7],
            started: BTreeMap::new(),
        };
        assert_eq!(
            serde_json::to_string(&answer).unwrap(),
            r#"{"session_ids":[7]}"#
        );
    }

    #[test]
    fn the_page_gets_refusals_without_a_challenge() {
        let refused = || {
            respond::<()>(
                &Err(Failure::unauthorized()),
                TraceId::new(),
                Instant::now(),
            )
        };
        let plain = caller(&[]).answer(refused());
        assert!(plain.headers().contains_key(header::WWW_AUTHENTICATE));
        let from_page = caller(&[PAGE_HEADER]).answer(refused());
        assert!(!from_page.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
