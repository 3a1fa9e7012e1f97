//! The HTTP server: `/metrics` (path configurable), `/probe?target=NAME` (one
//! target's series, for multi-target scrape configs), the landing page, the
//! `/-/healthy` and `/-/ready` probes, and `POST /-/reload` when the lifecycle API is
//! enabled.
//!
//! Handlers only read the published snapshot: a scrape costs a pointer copy and a
//! write of bytes encoded earlier, whatever the number of targets or the scrape rate.

mod clients;
mod deadline;
mod landing;
mod pieces;
pub mod server;

use crate::api::page;
use crate::exposition::Format;
use crate::reload::ReloadRequest;
use crate::snapshot::{Bodies, Published};
use crate::web::auth::{Cached, Credentials};
use crate::web::{ClientAddr, ClientKey, Web};
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

/// What every handler can read. Handlers get it behind one `Arc` (`Shared`), so a
/// request costs one reference count, not one per field.
pub struct AppState {
    pub published: watch::Receiver<Arc<Published>>,
    pub telemetry_path: Arc<str>,
    /// Where `POST /-/reload` sends its request; None unless --web.enable-lifecycle.
    pub reload: Option<mpsc::Sender<ReloadRequest>>,
    /// TLS, basic auth users and headers from --web.config.file.
    pub web: Arc<Web>,
    /// The obshell-compatible session API (answers 404 while disabled).
    pub session_api: Arc<crate::api::http::Registry>,
    /// How long a request body may take (--web.body-timeout).
    pub body_timeout: std::time::Duration,
}

type Shared = Arc<AppState>;

impl AppState {
    fn current(&self) -> Arc<Published> {
        self.published.borrow().clone()
    }
}

/// Every endpoint: the router, and a direct path for scrapes.
#[derive(Clone)]
pub struct App {
    pub router: Router,
    state: Shared,
}

impl App {
    /// The scrape fast path, for [`server::serve`].
    pub fn fast_path(&self) -> server::FastPath {
        let app = self.clone();
        Arc::new(move |request| app.scrape(request))
    }

    /// Answers a scrape of the telemetry path without the router and middleware
    /// (routing, boxed futures, state clones: a tenth of a small scrape's cost), with
    /// the same rules as `guard`. None for any other request, and for credentials
    /// not verified before (bcrypt runs on the router's path, off the runtime).
    pub fn scrape<B>(&self, request: &axum::http::Request<B>) -> Option<Response> {
        if request.method() != axum::http::Method::GET
            || request.uri().path() != &*self.state.telemetry_path
        {
            return None;
        }
        let config = self.state.web.get();
        let credentials = Credentials {
            basic: config.auth.as_ref(),
            bearer: None,
        };
        let authorization = header_str(request.headers(), header::AUTHORIZATION);
        if !matches!(credentials.check_cached(authorization), Cached::Allowed(_)) {
            return None;
        }
        let mut response = exposition(&self.state.current().all, request.headers());
        add_headers(&mut response, &config.headers);
        Some(response)
    }
}

/// The router with every endpoint.
pub fn router(state: AppState) -> App {
    let state: Shared = Arc::new(state);
    let router = Router::new()
        .route("/", get(landing::page))
        .route("/sessions", get(page::sessions))
        .route("/-/ui/sessions.js", get(page::script))
        .route("/-/ui/sessions.css", get(page::style))
        .route("/-/ui/uPlot.js", get(page::chart_script))
        .route("/-/ui/uPlot.css", get(page::chart_style))
        .route("/-/ui/icon.svg", get(page::icon))
        .route("/favicon.ico", get(page::icon))
        .route(&state.telemetry_path.clone(), get(metrics))
        .route("/probe", get(probe))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload).put(reload))
        .with_state(state.clone())
        .merge(crate::api::http::routes(crate::api::http::ApiState {
            registry: state.session_api.clone(),
            published: state.published.clone(),
            web: state.web.clone(),
            body_timeout: state.body_timeout,
        }))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard));
    App { router, state }
}

/// Basic auth (when users are configured) and the configured response headers, on
/// every endpoint, as exporter-toolkit does.
async fn guard(
    State(state): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let config = state.web.get();
    // The session API authenticates itself (bearer token or these users) and
    // answers 401 in its JSON envelope.
    let api = request.uri().path().starts_with("/api/");
    if !api {
        let credentials = Credentials {
            basic: config.auth.as_ref(),
            bearer: None,
        };
        let authorization = header_str(request.headers(), header::AUTHORIZATION);
        let client = request
            .extensions()
            .get::<ClientAddr>()
            .map(|addr| ClientKey::from(addr.0.ip()));
        if credentials.check(authorization, client).await.is_none() {
            let mut response = (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"session_exporter\""),
            );
            add_headers(&mut response, &config.headers);
            return response;
        }
    }
    let mut response = next.run(request).await;
    add_headers(&mut response, &config.headers);
    response
}

fn add_headers(response: &mut Response, headers: &[(header::HeaderName, HeaderValue)]) {
    for (name, value) in headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
}

/// Takes the request rather than a `HeaderMap`, which axum would clone.
async fn metrics(State(state): State<Shared>, request: axum::extract::Request) -> Response {
    let published = state.current();
    exposition(&published.all, request.headers())
}

/// One target's series, like mysqld_exporter's multi-target `/probe`: Prometheus
/// scrapes it once per target with `target` set by relabelling.
async fn probe(
    State(state): State<Shared>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some(name) = params.get("target").filter(|n| !n.is_empty()) else {
        return (StatusCode::BAD_REQUEST, "missing parameter `target`: use /probe?target=NAME with a target name from the configuration\n").into_response();
    };
    let published = state.current();
    match published.target(name) {
        Some(entry) => exposition(entry.probe(), &headers),
        None => {
            let known: Vec<&str> = published
                .targets
                .iter()
                .map(|t| t.status.name.as_str())
                .collect();
            (
                StatusCode::NOT_FOUND,
                format!(
                    "unknown target `{name}`: this exporter collects {}\n",
                    if known.is_empty() {
                        "no target".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            )
                .into_response()
        }
    }
}

/// Answers with prepared `bodies` in the format and encoding the client asked for.
fn exposition(bodies: &Bodies, headers: &HeaderMap) -> Response {
    let format = Format::negotiate(header_str(headers, header::ACCEPT));
    let gzip = header_str(headers, header::ACCEPT_ENCODING).is_some_and(accepts_gzip);
    let body = bodies.get(format);
    let mut response = if gzip {
        let mut response = Response::new(Body::from(body.gzip.clone()));
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        response
    } else {
        Response::new(Body::new(pieces::Pieces::new(body.pieces())))
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    response
}

async fn reload(State(state): State<Shared>, headers: HeaderMap) -> Response {
    // A form on another site can POST here from the operator's browser; only the
    // lifecycle's own clients (curl, a deployment tool), which send no Origin, or a
    // page of this origin may reload.
    if let Some(origin) = crate::web::cross_origin(&headers) {
        return (
            StatusCode::FORBIDDEN,
            format!("a reload from another site ({origin}) is refused: send it from curl or a deployment tool\n"),
        )
            .into_response();
    }
    let Some(requests) = &state.reload else {
        return (
            StatusCode::FORBIDDEN,
            "Lifecycle API is not enabled: start with --web.enable-lifecycle\n",
        )
            .into_response();
    };
    let (respond, outcome) = oneshot::channel();
    if requests
        .send(ReloadRequest {
            respond: Some(respond),
        })
        .await
        .is_err()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    match outcome.await {
        Ok(Ok(summary)) => (StatusCode::OK, format!("{summary}\n")).into_response(),
        Ok(Err(message)) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{message}\n")).into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response(),
    }
}

async fn healthy() -> &'static str {
    "Healthy\n"
}

async fn ready(State(state): State<Shared>) -> Response {
    let published = state.current();
    if published.ready {
        (StatusCode::OK, "Ready\n").into_response()
    } else {
        let waiting: Vec<&str> = published
            .targets
            .iter()
            .filter(|t| !t.status.tried)
            .map(|t| t.status.name.as_str())
            .collect();
        let message = if waiting.is_empty() {
            "Not ready: starting\n".to_string()
        } else {
            format!(
                "Not ready: first collection pending for {}\n",
                waiting.join(", ")
            )
        };
        (StatusCode::SERVICE_UNAVAILABLE, message).into_response()
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// True when `Accept-Encoding` allows gzip (and does not refuse it with `q=0`).
fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let refused = parts.any(
            |p| matches!(p.strip_prefix("q="), Some(q) if q.parse::<f32>().is_ok_and(|q| q == 0.0)),
        );
        coding.eq_ignore_ascii_case("gzip") && !refused
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("deflate, gzip;q=0.5"));
        assert!(accepts_gzip("GZIP"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip("xgzip"));
    }
}
