//! `passthrough:`, the session API's settings: authentication (a bearer token,
//! obshell's own header with its password and RSA key), limits and kills.

use super::pem::read_pkcs8_pem;
use super::{Checker, DEFAULT_PASSTHROUGH_CONCURRENCY, DEFAULT_PASSTHROUGH_TIMEOUT};
use crate::secret::{read_password_file, Secret};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The obshell-compatible session API (`/api/v1/tenant/...`): off unless enabled.
#[derive(Debug, Clone, PartialEq)]
pub struct Passthrough {
    pub enabled: bool,
    /// Accepted as `Authorization: Bearer <token>`, read from `bearer_token_file`.
    pub bearer_token: Option<Secret>,
    /// Serve without any authentication; only when set explicitly, and warned about.
    pub insecure_no_auth: bool,
    /// Live queries at once per target; more wait, up to `request_timeout`.
    pub max_concurrent_per_target: usize,
    pub request_timeout: Duration,
    /// obshell's own authentication (`X-OCS-Header`), for obshell's SDKs and clients.
    pub obshell_auth: Option<ObshellAuthSettings>,
    /// Serve `DELETE .../sessions` (KILL) and `.../sessions/queries` (KILL QUERY).
    pub allow_kill: bool,
}

/// `passthrough.obshell_auth`: what obshell clients authenticate with.
#[derive(Clone, PartialEq)]
pub struct ObshellAuthSettings {
    /// What clients send as `auth` (obshell: root@sys's password).
    pub password: Secret,
    /// The RSA key (PKCS#8 DER) from `private_key_file`; None: one made at start.
    pub private_key: Option<Vec<u8>>,
    /// How far ahead a header's expiry may lie.
    pub max_header_lifetime: Duration,
}

impl std::fmt::Debug for ObshellAuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObshellAuth")
            .field("password", &self.password)
            .field(
                "private_key",
                &self.private_key.as_ref().map(|_| "<redacted>"),
            )
            .field("max_header_lifetime", &self.max_header_lifetime)
            .finish()
    }
}

/// A header valid for longer would let a captured one be replayed that long.
pub const DEFAULT_MAX_HEADER_LIFETIME: Duration = Duration::from_secs(600);

impl Default for Passthrough {
    fn default() -> Self {
        Self {
            enabled: false,
            bearer_token: None,
            insecure_no_auth: false,
            max_concurrent_per_target: DEFAULT_PASSTHROUGH_CONCURRENCY,
            request_timeout: DEFAULT_PASSTHROUGH_TIMEOUT,
            obshell_auth: None,
            allow_kill: false,
        }
    }
}

impl Passthrough {
    /// The API returns SQL text, which can hold secrets: enabled, it needs a bearer
    /// token, basic auth users (`web_has_users`, from --web.config.file), or an
    /// explicit `insecure_no_auth`. The message says what to add.
    pub fn check_auth(&self, web_has_users: bool) -> Result<(), String> {
        if !self.enabled
            || self.bearer_token.is_some()
            || self.obshell_auth.is_some()
            || web_has_users
            || self.insecure_no_auth
        {
            return Ok(());
        }
        Err(
            "passthrough.enabled needs authentication, since sessions show SQL text: set \
             passthrough.bearer_token_file, passthrough.obshell_auth, or basic_auth_users in \
             --web.config.file (or, on a trusted network only, passthrough.insecure_no_auth: true)"
                .to_string(),
        )
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPassthrough {
    #[serde(default)]
    enabled: bool,
    bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    insecure_no_auth: bool,
    max_concurrent_per_target: Option<usize>,
    request_timeout: Option<String>,
    obshell_auth: Option<RawObshellAuth>,
    #[serde(default)]
    allow_kill: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObshellAuth {
    password_file: Option<PathBuf>,
    private_key_file: Option<PathBuf>,
    max_header_lifetime: Option<String>,
}

/// Checks `passthrough:`; files are relative to `base_dir`.
pub(super) fn validate_passthrough(
    raw: RawPassthrough,
    base_dir: &Path,
    check: &mut Checker,
) -> Passthrough {
    let concurrency = raw
        .max_concurrent_per_target
        .unwrap_or(DEFAULT_PASSTHROUGH_CONCURRENCY);
    if !(1..=64).contains(&concurrency) {
        check.problem(
            "passthrough.max_concurrent_per_target",
            format!(
                "{concurrency} is out of range: use 1 to 64 (each is a connection to the database)"
            ),
        );
    }
    let request_timeout = check.duration(
        "passthrough.request_timeout",
        raw.request_timeout.as_deref(),
        DEFAULT_PASSTHROUGH_TIMEOUT,
    );
    let bearer_token = raw.bearer_token_file.and_then(|file| {
        match read_password_file(&base_dir.join(&file)) {
            Ok(token) if token.expose().trim().len() < 16 => {
                check.problem(
                    "passthrough.bearer_token_file",
                    format!("{} holds a token shorter than 16 characters: write a long random one, e.g. `openssl rand -hex 32`", file.display()),
                );
                None
            }
            Ok(token) => Some(Secret::new(token.expose().trim().to_string())),
            Err(message) => {
                check.problem("passthrough.bearer_token_file", message);
                None
            }
        }
    });
    let obshell_auth = raw
        .obshell_auth
        .map(|raw| validate_obshell_auth(raw, base_dir, check));
    Passthrough {
        enabled: raw.enabled,
        bearer_token,
        insecure_no_auth: raw.insecure_no_auth,
        max_concurrent_per_target: concurrency.clamp(1, 64),
        request_timeout,
        obshell_auth,
        allow_kill: raw.allow_kill,
    }
}

fn validate_obshell_auth(
    raw: RawObshellAuth,
    base_dir: &Path,
    check: &mut Checker,
) -> ObshellAuthSettings {
    const KEY: &str = "passthrough.obshell_auth";
    let password = match raw.password_file {
        None => {
            check.problem(
                &format!("{KEY}.password_file"),
                "is required: a file holding the password obshell clients send (obshell's root@sys password)",
            );
            Secret::default()
        }
        Some(file) => match read_password_file(&base_dir.join(&file)) {
            Ok(password) if password.expose().is_empty() => {
                check.problem(
                    &format!("{KEY}.password_file"),
                    format!("{} is empty", file.display()),
                );
                password
            }
            Ok(password) => password,
            Err(message) => {
                check.problem(&format!("{KEY}.password_file"), message);
                Secret::default()
            }
        },
    };
    let private_key = raw.private_key_file.and_then(|file| {
        let path = base_dir.join(&file);
        let key = format!("{KEY}.private_key_file");
        let der = match read_pkcs8_pem(&path) {
            Ok(der) => der,
            Err(message) => {
                check.problem(&key, message);
                return None;
            }
        };
        match crate::web::obshell::ObshellAuth::new(Secret::default(), Some(&der), Duration::ZERO) {
            Ok(_) => Some(der),
            Err(err) => {
                check.problem(&key, format!("{}: {err}", path.display()));
                None
            }
        }
    });
    let max_header_lifetime = check.duration(
        &format!("{KEY}.max_header_lifetime"),
        raw.max_header_lifetime.as_deref(),
        DEFAULT_MAX_HEADER_LIFETIME,
    );
    ObshellAuthSettings {
        password,
        private_key,
        max_header_lifetime,
    }
}
