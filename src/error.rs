//! Why a collection failed: the `reason` label, and a message that says what to check.
//! A leaf module: the scheduler, the target status and every kind use these types.

use std::time::Duration;

/// Why a collection failed, in the user's terms; the `reason` label of
/// `dbsession_collect_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// The server could not be reached, or refused the connection (e.g. too many).
    Connect,
    /// Wrong credentials or a missing privilege.
    Auth,
    /// The cycle did not finish within `collect_timeout`.
    Timeout,
    /// The query failed or its answer could not be read (DBSS: an answer that is not
    /// the documented one, e.g. an unexpected status or body).
    Query,
    /// DBSS answered 400 (or another 4xx): the request does not fit the API.
    BadRequest,
    /// DBSS answered 403: the token's user may not read this instance's reports.
    Forbidden,
    /// DBSS answered 500 or another 5xx.
    Server,
}

impl Reason {
    /// The reasons a database target can fail with; every kind can fail with these.
    pub const DATABASE: [Reason; 4] = [
        Reason::Connect,
        Reason::Auth,
        Reason::Timeout,
        Reason::Query,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Connect => "connect",
            Reason::Auth => "auth",
            Reason::Timeout => "timeout",
            Reason::Query => "query",
            Reason::BadRequest => "bad_request",
            Reason::Forbidden => "forbidden",
            Reason::Server => "server",
        }
    }
}

/// A failed collection: the reason label plus a message that says what to check.
/// Messages never contain a password or token.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    pub reason: Reason,
    pub message: String,
    /// The error an HTTP API returned (DBSS's `error_code`, `error_msg`), logged as
    /// fields of their own.
    pub api_error: Option<ApiError>,
}

/// An API's own error code and message, as it sent them (cleaned for logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

impl SourceError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            api_error: None,
        }
    }

    pub fn timeout(limit: Duration) -> Self {
        Self::new(
            Reason::Timeout,
            format!(
                "no answer within collect_timeout ({}): check the server's load and network, or raise collect_timeout",
                crate::config::format_duration(limit)
            ),
        )
    }
}
