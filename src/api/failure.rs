//! Why a session-API request failed, in obshell's terms: the HTTP status, obshell's
//! `errCode`, and a message that says what to change. The HTTP layer
//! (`api::http::envelope`) puts it into obshell's envelope.

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
    /// obshell's old numeric code, where obshell sends one (its SDK's retry logic reads
    /// it); otherwise the envelope's `code` is the HTTP status.
    pub code: Option<u16>,
}

impl Failure {
    pub fn bad_parameter(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            err_code: "Common.IllegalArgument",
            message: message.into(),
            field: Some(field),
            code: None,
        }
    }

    pub fn not_found(err_code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            err_code,
            message: message.into(),
            field: None,
            code: None,
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            err_code: "Common.Unavailable",
            message: message.into(),
            field: None,
            code: None,
        }
    }

    /// The database refused what the exporter's own account was asked to do (a kill
    /// without the grant it needs): 403, not 503, since the service is up and
    /// retrying cannot help; `message` names the grant.
    pub fn grant_missing(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            err_code: "Exporter.Account.GrantMissing",
            message: message.into(),
            field: None,
            code: None,
        }
    }

    /// A refused obshell header: obshell's status, codes and message for it.
    pub fn obshell_header(error: crate::api::obshell::HeaderError) -> Self {
        use crate::api::obshell::HeaderError;
        let status = match error {
            HeaderError::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::UNAUTHORIZED,
        };
        Self {
            status,
            err_code: error.err_code(),
            message: error.message().to_string(),
            field: None,
            code: Some(error.code()),
        }
    }

    /// The engine has no such thing to answer with (PostgreSQL's deadlock history):
    /// 501, which no retry can change; `message` says what there is instead.
    pub fn not_supported(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_IMPLEMENTED,
            err_code: "Common.NotSupported",
            message: message.into(),
            field: None,
            code: None,
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
            code: None,
        }
    }

    /// The credentials are good, but do not give what was asked (a tenant outside
    /// their grant, a kill they may not send, a Host the API does not serve): 403,
    /// which no retry with them can change; `message` says what would.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            err_code: "Common.Forbidden",
            message: message.into(),
            field: None,
            code: None,
        }
    }

    /// The client did not send the request's body within --web.body-timeout.
    pub fn body_timeout(timeout: std::time::Duration) -> Self {
        Self {
            status: StatusCode::REQUEST_TIMEOUT,
            err_code: "Common.RequestTimeout",
            message: format!(
                "the request's body did not arrive within --web.body-timeout ({}): nothing was done",
                crate::config::format_duration(timeout)
            ),
            field: None,
            code: None,
        }
    }
}
