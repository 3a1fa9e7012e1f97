//! Why a session-API request failed, in obshell's terms: the HTTP status, obshell's
//! `errCode`, and a message that says what to change. The HTTP layer
//! (`passthrough::envelope`) puts it into obshell's envelope.

use axum::http::StatusCode;

/// A failed request: the HTTP status, obshell-style error code, and a message that
/// says what to change.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub status: StatusCode,
    pub err_code: &'static str,
    pub message: String,
    /// The query parameter at fault, for 400s.
    pub field: Option<&'static str>,
}

impl Failure {
    pub fn bad_parameter(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            err_code: "Common.IllegalArgument",
            message: message.into(),
            field: Some(field),
        }
    }

    pub fn not_found(err_code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            err_code,
            message: message.into(),
            field: None,
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            err_code: "Common.Unavailable",
            message: message.into(),
            field: None,
        }
    }

    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            err_code: "Common.Unauthorized",
            message: "unauthorized: send `Authorization: Bearer <token>` or HTTP basic \
                      credentials"
                .to_string(),
            field: None,
        }
    }
}
