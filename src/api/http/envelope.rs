//! obshell's response envelope, on every answer of the session API, success or not:
//! `successful`, `timestamp`, `duration` (ms), `status`, `traceId`, then `data` or
//! `error`. The error carries the fields of obshell's `ApiError`: `code` (obshell's
//! legacy numeric code; here the HTTP status), `errCode`, `message`, and `subErrors`
//! naming the offending parameter.

pub use crate::api::Failure;
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

/// Sessions gathered into one chunk of a streamed list before it is written.
const CHUNK_BYTES: usize = 16 * 1024;

/// The list's envelope, streamed: the head (with the page, whose total is known
/// first), then each session as the database sends it, then the end. Memory stays
/// bounded whatever the page's size. A failure once the head is sent cannot change
/// the status any more: the answer then breaks off (so no client takes a partial
/// list for a whole one), and the failure is logged with the trace id.
pub fn respond_page(page: crate::api::PageStream, trace: TraceId, started: Instant) -> Response {
    use crate::api::PageStream;
    let head = format!(
        r#"{{"successful":true,"timestamp":{},"duration":{},"status":200,"traceId":"{trace}","data":{{"page":{},"contents":["#,
        serde_json::to_string(&crate::timefmt::rfc3339(SystemTime::now(), 9)).unwrap_or_default(),
        started.elapsed().as_millis() as u64,
        serde_json::to_string(&page.page).unwrap_or_default(),
    );
    enum State {
        Head(String, PageStream),
        Rows { sessions: PageStream, first: bool },
        Done,
    }
    let stream = futures_util::stream::unfold(State::Head(head, page), move |state| async move {
        match state {
            State::Head(head, sessions) => Some((
                Ok(bytes::Bytes::from(head)),
                State::Rows {
                    sessions,
                    first: true,
                },
            )),
            State::Rows {
                mut sessions,
                mut first,
            } => {
                let mut chunk = Vec::with_capacity(CHUNK_BYTES);
                let mut ended = false;
                while chunk.len() < CHUNK_BYTES {
                    let next = if chunk.is_empty() {
                        sessions.sessions.recv().await
                    } else {
                        match sessions.sessions.try_recv() {
                            Ok(next) => Some(next),
                            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => None,
                        }
                    };
                    match next {
                        Some(Ok(session)) => {
                            if !first {
                                chunk.push(b',');
                            }
                            first = false;
                            if serde_json::to_writer(&mut chunk, &session).is_err() {
                                return Some((
                                    Err(broken(trace, "encoding a session failed")),
                                    State::Done,
                                ));
                            }
                        }
                        Some(Err(failure)) => {
                            return Some((Err(broken(trace, &failure.message)), State::Done));
                        }
                        None => {
                            ended = true;
                            break;
                        }
                    }
                }
                if ended {
                    chunk.extend_from_slice(b"]}}");
                    Some((Ok(bytes::Bytes::from(chunk)), State::Done))
                } else {
                    Some((
                        Ok(bytes::Bytes::from(chunk)),
                        State::Rows { sessions, first },
                    ))
                }
            }
            State::Done => None,
        }
    });
    let mut response = Response::new(axum::body::Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The error that breaks a streamed answer off, logged.
fn broken(trace: TraceId, message: &str) -> std::io::Error {
    tracing::warn!(trace_id = %trace, error = message, "a streamed session list broke off");
    std::io::Error::other(message.to_string())
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
