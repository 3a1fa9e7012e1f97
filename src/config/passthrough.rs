//! `passthrough:`, the session API's settings: authentication (a bearer token,
//! obshell's own header with its password and RSA key), what each credential may do
//! (`access`), the Host names served (`allowed_hosts`), limits and kills.

use super::pem::read_pkcs8_pem;
use super::{Checker, DEFAULT_PASSTHROUGH_CONCURRENCY, DEFAULT_PASSTHROUGH_TIMEOUT};
use crate::secret::{read_password_file, Secret};
use crate::web::auth::Principal;
use crate::web::BasicAuth;
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
    /// Host names served besides IP literals and `localhost`, lower case: any other
    /// `Host` is refused, so a web page that rebinds its own name to this address
    /// (DNS rebinding) reads nothing.
    pub allowed_hosts: Vec<String>,
    /// What each credential may do; None: every credential reads every tenant, and
    /// the bearer token and obshell's password (not basic auth users) may kill.
    pub access: Option<Vec<Access>>,
}

/// One entry of `passthrough.access`.
#[derive(Debug, Clone, PartialEq)]
pub struct Access {
    /// Who: basic auth users by name, `token`, `obshell`.
    pub users: Vec<Principal>,
    /// Which tenants, as globs on the API's tenant names; empty: every tenant.
    pub tenants: Vec<glob::Pattern>,
    /// Whether they may end sessions there (`allow_kill` must be on too).
    pub kill: bool,
}

impl Access {
    fn covers(&self, who: &Principal, tenant: &str) -> bool {
        self.users.contains(who)
            && (self.tenants.is_empty() || self.tenants.iter().any(|t| t.matches(tenant)))
    }
}

/// What a credential may do in one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub read: bool,
    pub kill: bool,
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
            allowed_hosts: Vec::new(),
            access: None,
        }
    }
}

/// The name `access` gives a credential: `token`, `obshell`, or a basic auth user's.
fn principal_named(name: &str) -> Principal {
    match name {
        "token" => Principal::Token,
        "obshell" => Principal::Obshell,
        user => Principal::User(user.to_string()),
    }
}

impl Passthrough {
    /// The API returns SQL text, which can hold secrets: enabled, it needs a bearer
    /// token, basic auth users (`web_has_users`, from --web.config.file), or an
    /// explicit `insecure_no_auth`. The message says what to add.
    ///
    /// Each credential `access` names must exist: a basic auth user of `basic`, the
    /// bearer token, obshell's password.
    pub fn check_auth(&self, basic: Option<&BasicAuth>) -> Result<(), String> {
        if self.access.is_some() {
            if let Some(user) = basic
                .into_iter()
                .flat_map(BasicAuth::users)
                .find(|u| *u == "token" || *u == "obshell")
            {
                return Err(format!(
                    "passthrough.access: `{user}` in access names the {}, so the basic auth \
                     user `{user}` of --web.config.file could not be given anything: rename the \
                     user",
                    if user == "token" {
                        "bearer token"
                    } else {
                        "obshell password"
                    }
                ));
            }
        }
        for (i, entry) in self.access.iter().flatten().enumerate() {
            for who in &entry.users {
                let missing = match who {
                    Principal::Token if self.bearer_token.is_none() => {
                        "`token` names the bearer token, but passthrough.bearer_token_file is not set"
                            .to_string()
                    }
                    Principal::Obshell if self.obshell_auth.is_none() => {
                        "`obshell` names obshell's password, but passthrough.obshell_auth is not set"
                            .to_string()
                    }
                    Principal::User(name)
                        if !basic.is_some_and(|b| b.users().any(|u| u == name)) =>
                    {
                        format!(
                            "`{name}` is not a basic_auth_users entry of --web.config.file (nor \
                             `token` or `obshell`): add the user there, or fix the name"
                        )
                    }
                    _ => continue,
                };
                return Err(format!("passthrough.access[{i}].users: {missing}"));
            }
        }
        if !self.enabled
            || self.bearer_token.is_some()
            || self.obshell_auth.is_some()
            || basic.is_some()
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

    /// What `who` may do in `tenant` (see `access`).
    pub fn grant(&self, who: &Principal, tenant: &str) -> Grant {
        match &self.access {
            None => Grant {
                read: true,
                kill: self.allow_kill && !matches!(who, Principal::User(_)),
            },
            Some(entries) => {
                let mut covering = entries.iter().filter(|e| e.covers(who, tenant));
                let read = covering.clone().next().is_some();
                Grant {
                    read,
                    kill: self.allow_kill && covering.any(|e| e.kill),
                }
            }
        }
    }

    /// Whether `who` may use the API at all: every credential without `access`;
    /// with it, those an entry names.
    pub fn admits(&self, who: &Principal) -> bool {
        self.access
            .as_ref()
            .is_none_or(|entries| entries.iter().any(|e| e.users.contains(who)))
    }

    /// Whether the API serves a request for `host` (its `Host` header, or the
    /// authority of an absolute URI): an IP literal, `localhost`, or a name of
    /// `allowed_hosts`, with or without a port.
    pub fn serves_host(&self, host: &str) -> bool {
        let port_ok = |port: &str| !port.is_empty() && port.chars().all(|c| c.is_ascii_digit());
        let name = match host.strip_prefix('[') {
            // An IPv6 literal: `[::1]` or `[::1]:9767`, nothing else.
            Some(rest) => {
                let Some((ip, after)) = rest.split_once(']') else {
                    return false;
                };
                let port = after.strip_prefix(':');
                return ip.parse::<std::net::Ipv6Addr>().is_ok()
                    && (after.is_empty() || port.is_some_and(port_ok));
            }
            None => match host.rsplit_once(':') {
                Some((name, port)) if port_ok(port) => name,
                Some(_) => return false,
                None => host,
            },
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        name.parse::<std::net::Ipv4Addr>().is_ok()
            || name.eq_ignore_ascii_case("localhost")
            || self
                .allowed_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name))
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
    #[serde(default)]
    allowed_hosts: Vec<String>,
    access: Option<Vec<RawAccess>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccess {
    #[serde(default)]
    users: Vec<String>,
    tenants: Option<Vec<String>>,
    #[serde(default)]
    kill: bool,
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
    let allowed_hosts = raw
        .allowed_hosts
        .into_iter()
        .enumerate()
        .filter_map(|(i, host)| {
            let valid = !host.is_empty()
                && host.len() <= 253
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if !valid {
                check.problem(
                    &format!("passthrough.allowed_hosts[{i}]"),
                    format!(
                        "`{host}` is not a host name: write the name clients use in the URL, \
                         without scheme or port, e.g. exporter.example"
                    ),
                );
            }
            valid.then(|| host.trim_end_matches('.').to_ascii_lowercase())
        })
        .collect();
    let access = raw.access.map(|entries| {
        if entries.is_empty() {
            check.problem(
                "passthrough.access",
                "lists no entry, so no credential could use the API: list one, or remove access",
            );
        }
        if raw.insecure_no_auth {
            check.problem(
                "passthrough.access",
                "grants credentials, but insecure_no_auth serves requests without any: \
                 remove insecure_no_auth, or access",
            );
        }
        entries
            .into_iter()
            .enumerate()
            .map(|(i, entry)| validate_access(entry, i, check))
            .collect()
    });
    Passthrough {
        enabled: raw.enabled,
        bearer_token,
        insecure_no_auth: raw.insecure_no_auth,
        max_concurrent_per_target: concurrency.clamp(1, 64),
        request_timeout,
        obshell_auth,
        allow_kill: raw.allow_kill,
        allowed_hosts,
        access,
    }
}

fn validate_access(raw: RawAccess, i: usize, check: &mut Checker) -> Access {
    let key = format!("passthrough.access[{i}]");
    if raw.users.is_empty() {
        check.problem(
            &format!("{key}.users"),
            "names no one: list basic_auth_users names, `token` (the bearer token) or \
             `obshell` (obshell's password)",
        );
    }
    let mut tenants = Vec::new();
    match raw.tenants {
        Some(list) if list.is_empty() => check.problem(
            &format!("{key}.tenants"),
            "lists no tenant: list globs such as \"shop_*\", or remove tenants for every tenant",
        ),
        Some(list) => {
            for (j, glob) in list.iter().enumerate() {
                match glob::Pattern::new(glob) {
                    Ok(pattern) => tenants.push(pattern),
                    Err(err) => check.problem(
                        &format!("{key}.tenants[{j}]"),
                        format!("`{glob}` is not a glob ({err}): use *, ? and [a-z] wildcards, e.g. \"shop_*\""),
                    ),
                }
            }
        }
        None => {}
    }
    Access {
        users: raw.users.iter().map(|name| principal_named(name)).collect(),
        tenants,
        kill: raw.kill,
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
        match super::pem::decrypting_key(&der) {
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
