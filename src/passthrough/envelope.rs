//! obshell's response envelope, on every answer of the passthrough, success or not:
//! `successful`, `timestamp`, `duration` (ms), `status`, `traceId`, then `data` or
//! `error`. The error carries the fields of obshell's `ApiError`: `code` (obshell's
//! legacy numeric code; here the HTTP status), `errCode`, `message`, and `subErrors`
//! naming the offending parameter.

pub use crate::sessions::Failure;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::time::{Instant, SystemTime};

/// One request's trace id: 16 hex digits, in the envelope and in the request's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceId(u64);

impl TraceId {
    /// A fresh id. Unpredictable enough to tell requests apart in logs; not a secret.
    pub fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u128(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        Self(hasher.finish())
    }
}

impl Default for TraceId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for TraceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[derive(Serialize)]
struct Body<'a, T: Serialize> {
    successful: bool,
    timestamp: String,
    duration: u64,
    status: u16,
    #[serde(rename = "traceId")]
    trace_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ApiError<'a>>,
}

#[derive(Serialize)]
struct ApiError<'a> {
    code: u16,
    #[serde(rename = "errCode")]
    err_code: &'a str,
    message: &'a str,
    #[serde(rename = "subErrors", skip_serializing_if = "Vec::is_empty")]
    sub_errors: Vec<FieldError<'a>>,
}

/// obshell's `ApiFieldError`.
#[derive(Serialize)]
struct FieldError<'a> {
    tag: &'a str,
    field: &'a str,
    message: &'a str,
}

/// Builds the envelope of `result` for a request that started at `started`.
pub fn respond<T: Serialize>(
    result: &Result<T, Failure>,
    trace: TraceId,
    started: Instant,
) -> Response {
    let (status, data, error) = match result {
        Ok(data) => (StatusCode::OK, Some(data), None),
        Err(failure) => (
            failure.status,
            None,
            Some(ApiError {
                code: failure.code.unwrap_or(failure.status.as_u16()),
                err_code: failure.err_code,
                message: &failure.message,
                sub_errors: failure
                    .field
                    .map(|field| FieldError {
                        tag: "query",
                        field,
                        message: &failure.message,
                    })
                    .into_iter()
                    .collect(),
            }),
        ),
    };
    let body = Body {
        successful: result.is_ok(),
        timestamp: crate::timefmt::rfc3339(SystemTime::now(), 9),
        duration: started.elapsed().as_millis() as u64,
        status: status.as_u16(),
        trace_id: trace.to_string(),
        data,
        error,
    };
    let json = serde_json::to_vec(&body).unwrap_or_else(|err| {
        // Serializing our own types cannot fail short of a bug; still answer JSON.
        format!(
            r#"{{"successful":false,"status":500,"traceId":"{trace}","error":{{"code":500,"errCode":"Common.Unexpected","message":"encoding the answer failed: {err}"}}}}"#
        )
        .into_bytes()
    });
    let mut response = (status, json).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Bearer realm=\"session_exporter\", Basic realm=\"session_exporter\"",
            ),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn success_and_failure_have_the_same_envelope() {
        let trace = TraceId::new();
        let ok = json(respond(
            &Ok::<_, Failure>(vec![1, 2]),
            trace,
            Instant::now(),
        ))
        .await;
        assert_eq!(ok["successful"], true);
        assert_eq!(ok["status"], 200);
        assert_eq!(ok["data"], serde_json::json!([1, 2]));
        assert!(ok.get("error").is_none());
        assert_eq!(ok["traceId"].as_str().unwrap(), trace.to_string());
        let ts = ok["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), "2026-11-24T10:37:00.123456789Z".len(), "{ts}");

        let failure = Failure::bad_parameter("page", "page must be a whole number from 1");
        let err = json(respond(&Err::<(), _>(failure), trace, Instant::now())).await;
        assert_eq!(err["successful"], false);
        assert_eq!(err["status"], 400);
        assert!(err.get("data").is_none());
        assert_eq!(err["error"]["code"], 400);
        assert_eq!(err["error"]["errCode"], "Common.IllegalArgument");
        assert_eq!(err["error"]["subErrors"][0]["field"], "page");
    }

    #[test]
    fn trace_ids_are_16_hex_digits_and_differ() {
        let (a, b) = (TraceId::new().to_string(), TraceId::new().to_string());
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
