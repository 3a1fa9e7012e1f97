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

mod caller;
mod detail;
pub mod envelope;
mod history;
mod kill;
mod registry;

use caller::{authorize, not_granted, resolve};
pub use caller::{Caller, PAGE_HEADER};
use kill::{kill, kill_queries, SessionIds};
use registry::Applied;
pub use registry::{Backend, Backends, Registry};

pub use detail::{DetailRequest, DetailSource};

use crate::api::obshell;
use crate::api::{ListParams, PageParams, SessionApi, Victim};
use crate::config::{Config, Grant, Passthrough, Target};
use crate::snapshot::Published;
use crate::web::auth::{Credentials, Principal};
use crate::web::Web;
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

/// What the session API's handlers read.
#[derive(Clone)]
pub struct ApiState {
    pub registry: Arc<Registry>,
    pub published: watch::Receiver<Arc<Published>>,
    pub web: Arc<Web>,
    /// How long a request body may take (--web.body-timeout).
    pub body_timeout: std::time::Duration,
}

/// Every endpoint of the API (see the module's doc). They answer 404 in the envelope
/// while the session API is off.
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
        .route(
            "/api/v1/tenant/{name}/sessions/{session_id}/history",
            get(history::session_history),
        )
        .route("/api/v1/tenant/{name}/history", get(history::timeline))
        .route("/api/v1/tenant/{name}/deadlocks", get(deadlocks))
        .route("/api/v1/dbss/{target}/sqls/{id}", get(detail::sql_detail))
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
    /// Whether the exporter records the session history (`history:`), which the
    /// `at=` reads, the timeline and a session's story answer from.
    history: bool,
}

/// A tenant the credentials may read.
#[derive(serde::Serialize)]
struct ServedTenant {
    name: String,
    target: String,
    kind: &'static str,
    /// Whether the engine keeps a history of its deadlocks (PostgreSQL does not).
    deadlocks: bool,
    /// Whether these credentials may end sessions here, and the kind can.
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
                    deadlocks: served.api.capabilities().deadlock_history,
                    kill: grant.kill
                        && served.api.capabilities().kill == crate::api::Kill::Supported,
                    name,
                })
            }));
        }
        Tenants {
            allow_kill: tenants.iter().any(|t| t.kill),
            history: state.registry.history().is_some(),
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
             /sessions/:sessionId, /sessions/:sessionId/history, /sessions/stats and /sessions/pileup, \
             GET /api/v1/tenant/:name/history and /deadlocks, \
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
    let history = state.clone();
    handle(
        &state,
        &caller,
        "list",
        &name,
        |backend, tenant, _| async move {
            let params = ListParams::parse(query.as_deref())?;
            match params.at {
                Some(at) => {
                    let target = backend.target().to_string();
                    history::list_at(&history, target, tenant, params, at).await
                }
                None => backend.list(&tenant, &params).await,
            }
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
            let id = session_id_of(&session_id)?;
            backend.detail(&tenant, id).await
        },
    )
    .await
}

/// The `{session_id}` of a path: a whole number.
fn session_id_of(text: &str) -> Result<u64, Failure> {
    text.parse::<u64>().map_err(|_| {
        Failure::bad_parameter(
            "sessionId",
            format!(
                "sessionId must be a whole number (a session ID), not `{}`",
                text.chars().take(64).collect::<String>()
            ),
        )
    })
}

/// `GET .../sessions/queries` is a session id that is not a number, as for detail.
async fn detail_named_queries(
    state: State<ApiState>,
    Path(name): Path<String>,
    caller: Caller,
) -> Response {
    detail(state, Path((name, "queries".to_string())), caller).await
}

/// `GET .../sessions/pileup` (ours): who waits for whom, and the open transactions.
async fn pileup(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    caller: Caller,
) -> Response {
    let history = state.clone();
    handle(
        &state,
        &caller,
        "pileup",
        &name,
        |backend, tenant, _| async move {
            match crate::api::params::at_only(query.as_deref())? {
                Some(at) => {
                    let target = backend.target().to_string();
                    history::pileup_at(&history, target, tenant, at).await
                }
                None => backend.pileup(&tenant).await,
            }
        },
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
                     (or the session history's store) is slow or unreachable, or {} passthrough \
                     queries are already running on it",
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

impl Reply for crate::api::TenantSession {
    fn reply(result: Result<Self, Failure>, trace: TraceId, started: Instant) -> Response {
        respond(&result, trace, started)
    }
}

impl Reply for crate::api::DeadLockPage {
    fn reply(result: Result<Self, Failure>, trace: TraceId, started: Instant) -> Response {
        respond(&result, trace, started)
    }
}

impl Reply for crate::api::Pileup {
    fn reply(result: Result<Self, Failure>, trace: TraceId, started: Instant) -> Response {
        respond(&result, trace, started)
    }
}

impl Reply for crate::api::SessionStats {
    fn reply(result: Result<Self, Failure>, trace: TraceId, started: Instant) -> Response {
        respond(&result, trace, started)
    }
}

impl Reply for SessionIds {
    fn reply(result: Result<Self, Failure>, trace: TraceId, started: Instant) -> Response {
        respond(&result, trace, started)
    }
}

impl Reply for crate::api::PageStream {
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
