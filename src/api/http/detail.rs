//! `GET /api/v1/dbss/:target/sqls/:id`: DBSS's SQL statement detail, forwarded.
//!
//! The request goes to `GET /v2/{project_id}/audit/{instance_id}/sqls/{id}` of the
//! target's endpoint with its token, and DBSS's answer comes back as it was sent:
//! status, body (`{"sql": SqlDetailBean}` or DBSS's error) and content type. What the
//! exporter answers itself (no such target, a malformed id, no answer in time) uses
//! DBSS's error shape (`error_code`, `error_msg`, `details`,
//! `encoded_authorization_message`), so a client reads one shape whoever failed; its
//! codes start with `EXPORTER.`. Authentication, the timeout and the concurrency cap
//! are the session API's own; asking is the kind's ([`DetailSource`]).

use super::envelope::{Failure, TraceId};
use super::{authorize, not_granted, ApiState, Caller};
use crate::config::{Passthrough, Target};
use crate::future::BoxFuture;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Where a target's statements are detailed on request: the service a kind reads
/// (DBSS's audit API), asked with the target's own credentials.
pub trait DetailSource: Send + Sync {
    /// Whether this was built for `target` as it is configured: a reload keeps it
    /// (and its pooled connections) then.
    fn serves(&self, target: &Target) -> bool;

    /// Whether `id` can name a statement of this service, checked before asking.
    fn valid_id(&self, id: &str) -> bool;

    /// What a request needs, found without asking (a client set up, a token read), or
    /// why it cannot be sent: read once, before waiting for a slot, and used for the
    /// request.
    fn ready(&self) -> Result<Box<dyn DetailRequest + '_>, String>;
}

/// One request of a statement's detail, ready to send ([`DetailSource::ready`]).
pub trait DetailRequest: Send + Sync {
    /// Asks for statement `id`: the service's status and body as they came, or why no
    /// answer came.
    fn fetch<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(StatusCode, Bytes), String>>;
}

/// One target as the session API forwards to it: the kind's request, and the API's
/// cap on concurrent requests.
pub struct Forward {
    name: String,
    detail: Box<dyn DetailSource>,
    permits: Semaphore,
    max_concurrent: usize,
}

impl Forward {
    pub fn new(name: &str, detail: Box<dyn DetailSource>, max_concurrent: usize) -> Self {
        Self {
            name: name.to_string(),
            detail,
            permits: Semaphore::new(max_concurrent),
            max_concurrent,
        }
    }

    /// True when this forward already serves `target` with `max_concurrent`: a
    /// reload then keeps its pooled connections.
    pub fn serves(&self, target: &Target, max_concurrent: usize) -> bool {
        self.detail.serves(target) && self.max_concurrent == max_concurrent
    }

    /// A 502 naming this target: DBSS could not be asked (client setup, token file,
    /// connection).
    fn bad_gateway(&self, problem: impl std::fmt::Display) -> Failure {
        failure(
            StatusCode::BAD_GATEWAY,
            "EXPORTER.BadGateway",
            format!("target `{}`: {problem}", self.name),
        )
    }

    async fn fetch(&self, id: &str) -> Result<Response, Failure> {
        // What can fail without asking fails before waiting for a slot.
        let ready = self.detail.ready().map_err(|err| self.bad_gateway(err))?;
        let _permit = self.permits.acquire().await.map_err(|_| {
            failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "EXPORTER.Unavailable",
                "the exporter is shutting down",
            )
        })?;
        let (status, body) = ready.fetch(id).await.map_err(|err| self.bad_gateway(err))?;
        // DBSS answers JSON; whatever type it claims, the exporter's origin serves it
        // as JSON (never as HTML or script a browser would run here).
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(response)
    }
}

fn failure(status: StatusCode, err_code: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        status,
        err_code,
        message: message.into(),
        field: None,
        code: None,
    }
}

/// DBSS's error body for an answer of the exporter's own.
#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    error_code: &'a str,
    error_msg: &'a str,
    details: [(); 0],
    encoded_authorization_message: Option<()>,
}

fn error_response(failure: &Failure) -> Response {
    let body = ErrorBody {
        error_code: failure.err_code,
        error_msg: &failure.message,
        details: [],
        encoded_authorization_message: None,
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = (failure.status, json).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if failure.status == StatusCode::UNAUTHORIZED {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Bearer realm=\"session_exporter\", Basic realm=\"session_exporter\"",
            ),
        );
    }
    response
}

/// The handler.
pub async fn sql_detail(
    State(state): State<ApiState>,
    Path((target, id)): Path<(String, String)>,
    caller: Caller,
) -> Response {
    let started = Instant::now();
    let trace = TraceId::new();
    let current = state.registry.get();
    // A DBSS target's name is its tenant name in `access`.
    let result = match authorize(&current, &state, &caller).await {
        Err(failure) => Err(dbss_shaped(failure)),
        Ok((who, _)) if !current.settings.grant(&who, &target).read => {
            Err(dbss_shaped(not_granted(&who, &target)))
        }
        Ok((who, _)) => {
            let shown = |name: &str| current.settings.grant(&who, name).read;
            forward(&current.details, &current.settings, &target, &id, shown).await
        }
    };
    let (mut response, error) = match result {
        Ok(response) => (response, String::new()),
        Err(failure) => (error_response(&failure), failure.message),
    };
    if let Ok(value) = HeaderValue::from_str(&trace.to_string()) {
        response.headers_mut().insert("x-trace-id", value);
    }
    let status = response.status().as_u16();
    let target = target.chars().take(64).collect::<String>();
    let duration_ms = started.elapsed().as_millis() as u64;
    let error = error.as_str();
    if status >= 500 {
        tracing::warn!(trace_id = %trace, endpoint = "dbss_sql", target, status, duration_ms, error, "passthrough request failed");
    } else if status == 401 || status == 403 {
        tracing::debug!(trace_id = %trace, endpoint = "dbss_sql", target, status, duration_ms, error, "passthrough request refused");
    } else {
        tracing::info!(trace_id = %trace, endpoint = "dbss_sql", target, status, duration_ms, error, "passthrough request");
    }
    response
}

/// The session API's own failures (disabled, unauthorized) with codes of this API.
fn dbss_shaped(failure: Failure) -> Failure {
    let err_code = match failure.status {
        StatusCode::UNAUTHORIZED => "EXPORTER.Unauthorized",
        StatusCode::NOT_FOUND => "EXPORTER.NotFound",
        _ => "EXPORTER.Error",
    };
    Failure {
        err_code,
        ..failure
    }
}

/// Finds the target, checks the id, and forwards within the request timeout.
async fn forward(
    forwards: &HashMap<String, Arc<Forward>>,
    settings: &Passthrough,
    target: &str,
    id: &str,
    shown: impl Fn(&str) -> bool,
) -> Result<Response, Failure> {
    let Some(forward) = forwards.get(target) else {
        let mut known: Vec<&str> = forwards
            .keys()
            .map(String::as_str)
            .filter(|name| shown(name))
            .collect();
        known.sort_unstable();
        return Err(failure(
            StatusCode::NOT_FOUND,
            "EXPORTER.NotFound",
            format!(
                "no dbss target `{}`: the dbss targets are {}",
                target.chars().take(64).collect::<String>(),
                if known.is_empty() {
                    "none (add one with kind: dbss)".to_string()
                } else {
                    known.join(", ")
                }
            ),
        ));
    };
    if !forward.detail.valid_id(id) {
        return Err(failure(
            StatusCode::BAD_REQUEST,
            "EXPORTER.IllegalArgument",
            "id must be 1 to 128 letters, digits, `-` or `_`: the id field of an entry of DBSS's SQL list",
        ));
    }
    let limit: Duration = settings.request_timeout;
    match tokio::time::timeout(limit, forward.fetch(id)).await {
        Ok(result) => result,
        Err(_) => Err(failure(
            StatusCode::GATEWAY_TIMEOUT,
            "EXPORTER.GatewayTimeout",
            format!(
                "target `{}`: no answer from DBSS within passthrough.request_timeout ({})",
                forward.name,
                crate::config::format_duration(limit)
            ),
        )),
    }
}
