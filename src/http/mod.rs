//! The HTTP server: `/metrics` (path configurable), the landing page, and the
//! `/-/healthy` and `/-/ready` probes.
//!
//! Handlers only read the published snapshot: a scrape costs a pointer copy and a
//! write of bytes encoded earlier, whatever the number of targets or the scrape rate.

mod landing;

use crate::exposition::Format;
use crate::snapshot::Published;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use tokio::sync::watch;

/// What every handler can read.
#[derive(Clone)]
pub struct AppState {
    pub published: watch::Receiver<Arc<Published>>,
    pub telemetry_path: Arc<str>,
}

impl AppState {
    fn current(&self) -> Arc<Published> {
        self.published.borrow().clone()
    }
}

/// The router with every endpoint.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(landing::page))
        .route(&state.telemetry_path.clone(), get(metrics))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .with_state(state)
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(header_str(&headers, header::ACCEPT));
    let gzip = header_str(&headers, header::ACCEPT_ENCODING).is_some_and(accepts_gzip);
    let published = state.current();
    let body = published.body(format);
    let mut response = if gzip {
        let mut response = Response::new(Body::from(body.gzip.clone()));
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        response
    } else {
        Response::new(Body::from(body.plain.clone()))
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

async fn healthy() -> &'static str {
    "Healthy\n"
}

async fn ready(State(state): State<AppState>) -> Response {
    let published = state.current();
    if published.ready() {
        (StatusCode::OK, "Ready\n").into_response()
    } else {
        let waiting: Vec<&str> = published
            .targets
            .iter()
            .filter(|t| !t.tried)
            .map(|t| t.name.as_str())
            .collect();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "Not ready: first collection pending for {}\n",
                waiting.join(", ")
            ),
        )
            .into_response()
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
