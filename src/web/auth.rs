//! The one credential check: basic auth users (bcrypt, from --web.config.file) on
//! every endpoint, and a bearer token beside them on the session API; it tells who
//! asked ([`Principal`]), which the session API's grants are given to.
//!
//! bcrypt costs tens of milliseconds by design, so the check has two steps: a cheap
//! one ([`Credentials::check_cached`]: the token, or basic credentials seen before)
//! that a scrape can take inline, and the bcrypt verification, which
//! [`Credentials::check`] runs on a blocking thread, off the runtime's workers, one at
//! a time ([`BasicAuth::turn`]).

use super::config::Known;
use super::{BasicAuth, ClientKey};
use crate::secret::Secret;
use std::sync::Arc;

/// What a request must present, as configured.
#[derive(Clone, Copy, Default)]
pub struct Credentials<'a> {
    pub basic: Option<&'a Arc<BasicAuth>>,
    pub bearer: Option<&'a Secret>,
}

/// Who a request's credentials name: what the session API's `access` entries grant
/// to, and what a kill's audit line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A basic auth user of --web.config.file.
    User(String),
    /// The session API's bearer token.
    Token,
    /// obshell's password, in an `X-OCS-Header`.
    Obshell,
    /// Nothing is configured, and nothing asked for (`insecure_no_auth`).
    Anyone,
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::User(name) => write!(f, "user {name}"),
            Principal::Token => f.write_str("bearer token"),
            Principal::Obshell => f.write_str("obshell password"),
            Principal::Anyone => f.write_str("anyone (insecure_no_auth)"),
        }
    }
}

/// The outcome of the cheap step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    Allowed(Principal),
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
            return Cached::Allowed(Principal::Anyone);
        }
        let Some(given) = authorization else {
            return Cached::Denied;
        };
        if let (Some(token), Some(bearer)) = (self.bearer, strip_scheme(given, "bearer")) {
            if constant_time_eq(bearer.trim().as_bytes(), token.expose().as_bytes()) {
                return Cached::Allowed(Principal::Token);
            }
        }
        match self.basic {
            Some(auth) if strip_scheme(given, "basic").is_some() => match auth.seen(given) {
                Known::Accepted(user) => Cached::Allowed(Principal::User(user)),
                Known::Refused => Cached::Denied,
                Known::New => Cached::NeedsVerification,
            },
            _ => Cached::Denied,
        }
    }

    /// The whole check: who the credentials name, or None. bcrypt, when needed, runs
    /// on a blocking thread, after the checks before it in line, where `client` has
    /// one at a time.
    pub async fn check(
        &self,
        authorization: Option<&str>,
        client: Option<ClientKey>,
    ) -> Option<Principal> {
        match self.check_cached(authorization) {
            Cached::Allowed(who) => Some(who),
            Cached::Denied => None,
            Cached::NeedsVerification => {
                let (Some(auth), Some(header)) = (self.basic.cloned(), authorization) else {
                    return None;
                };
                // Waiting is async: a line of guesses holds no thread.
                let own = match client {
                    Some(client) => Some(auth.lines().turn(client).await),
                    None => None,
                };
                let turn = auth.turn().clone().acquire_owned().await.ok()?;
                // The same header may have been checked while this one waited.
                match auth.seen(header) {
                    Known::Accepted(user) => return Some(Principal::User(user)),
                    Known::Refused => return None,
                    Known::New => {}
                }
                // The turns go with the work: a client that hangs up drops this
                // future, but bcrypt runs on, and the next starts only after it.
                let (header, worker) = (header.to_string(), auth.clone());
                tokio::task::spawn_blocking(move || {
                    let _turns = (own, turn);
                    worker.verify(&header)
                })
                .await
                .ok()
                .flatten()
                .map(Principal::User)
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
            Cached::Allowed(Principal::Token)
        );
        for wrong in [Some("Bearer 0123456789abcdeX"), Some("Basic dTpw"), None] {
            assert_eq!(credentials.check_cached(wrong), Cached::Denied, "{wrong:?}");
        }
        assert_eq!(
            Credentials::default().check_cached(None),
            Cached::Allowed(Principal::Anyone),
            "nothing configured"
        );
    }
}
