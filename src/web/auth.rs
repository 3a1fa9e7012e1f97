//! The one credential check: basic auth users (bcrypt, from --web.config.file) on
//! every endpoint, and a bearer token beside them on the session API.
//!
//! bcrypt costs tens of milliseconds by design, so the check has two steps: a cheap
//! one ([`Credentials::check_cached`]: the token, or basic credentials accepted
//! before) that a scrape can take inline, and the bcrypt verification, which
//! [`Credentials::check`] runs on a blocking thread, off the runtime's workers.

use super::BasicAuth;
use crate::secret::Secret;
use std::sync::Arc;

/// What a request must present, as configured.
#[derive(Clone, Copy, Default)]
pub struct Credentials<'a> {
    pub basic: Option<&'a Arc<BasicAuth>>,
    pub bearer: Option<&'a Secret>,
}

/// The outcome of the cheap step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cached {
    Allowed,
    Denied,
    /// Basic credentials not seen before: only bcrypt can tell.
    NeedsVerification,
}

impl Credentials<'_> {
    /// True when nothing is configured: every request is allowed.
    pub fn is_empty(&self) -> bool {
        self.basic.is_none() && self.bearer.is_none()
    }

    /// The check without bcrypt, given the `Authorization` header.
    pub fn check_cached(&self, authorization: Option<&str>) -> Cached {
        if self.is_empty() {
            return Cached::Allowed;
        }
        let Some(given) = authorization else {
            return Cached::Denied;
        };
        if let (Some(token), Some(bearer)) = (self.bearer, strip_scheme(given, "bearer")) {
            if constant_time_eq(bearer.trim().as_bytes(), token.expose().as_bytes()) {
                return Cached::Allowed;
            }
        }
        match self.basic {
            Some(auth) if strip_scheme(given, "basic").is_some() => {
                if auth.cached(given) {
                    Cached::Allowed
                } else {
                    Cached::NeedsVerification
                }
            }
            _ => Cached::Denied,
        }
    }

    /// The whole check; bcrypt, when needed, runs on a blocking thread.
    pub async fn check(&self, authorization: Option<&str>) -> bool {
        match self.check_cached(authorization) {
            Cached::Allowed => true,
            Cached::Denied => false,
            Cached::NeedsVerification => {
                let (Some(auth), Some(header)) = (self.basic.cloned(), authorization) else {
                    return false;
                };
                let header = header.to_string();
                tokio::task::spawn_blocking(move || auth.verify(&header))
                    .await
                    .unwrap_or(false)
            }
        }
    }
}

/// The credentials after `scheme ` (the scheme is case-insensitive).
fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = header.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// Compares without returning early at the first difference, so the time taken
/// does not tell how much of a guessed token was right.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abcdef0123456789", b"abcdef0123456789"));
        assert!(!constant_time_eq(b"abcdef0123456789", b"abcdef012345678x"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn schemes_are_case_insensitive() {
        assert_eq!(strip_scheme("Bearer t0k", "bearer"), Some("t0k"));
        assert_eq!(strip_scheme("bearer t0k", "bearer"), Some("t0k"));
        assert_eq!(strip_scheme("Basic dTpw", "bearer"), None);
        assert_eq!(strip_scheme("Bearer", "bearer"), None);
    }

    #[test]
    fn bearer_tokens_decide_without_bcrypt() {
        let token = Secret::new("0123456789abcdef".into());
        let credentials = Credentials {
            basic: None,
            bearer: Some(&token),
        };
        assert_eq!(
            credentials.check_cached(Some("Bearer 0123456789abcdef")),
            Cached::Allowed
        );
        for wrong in [Some("Bearer 0123456789abcdeX"), Some("Basic dTpw"), None] {
            assert_eq!(credentials.check_cached(wrong), Cached::Denied, "{wrong:?}");
        }
        assert_eq!(
            Credentials::default().check_cached(None),
            Cached::Allowed,
            "nothing configured"
        );
    }
}
