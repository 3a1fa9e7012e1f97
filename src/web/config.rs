//! `--web.config.file`: the web configuration format of Prometheus' exporter-toolkit
//! (as node_exporter and mysqld_exporter read it): TLS, basic auth users with bcrypt
//! hashes, and extra response headers.
//!
//! Settings this exporter does not implement (cipher suites, curve preferences,
//! client SAN allow-lists, HTTP/2) are refused by name rather than ignored: a
//! security setting that silently does nothing is worse than an error.

use super::lines::ClientLines;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio_rustls::TlsAcceptor;

/// A loaded web configuration.
#[derive(Clone, Default)]
pub struct WebConfig {
    /// None: plain HTTP.
    pub tls: Option<TlsAcceptor>,
    pub auth: Option<Arc<BasicAuth>>,
    pub headers: Vec<(axum::http::HeaderName, axum::http::HeaderValue)>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field(
                "auth_users",
                &self.auth.as_ref().map_or(0, |a| a.users.len()),
            )
            .field("headers", &self.headers.len())
            .finish()
    }
}

/// Why a web configuration could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct WebConfigError {
    pub path: PathBuf,
    pub message: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
    http_server_config: Option<RawHttp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    min_version: Option<String>,
    max_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Reads and checks the web configuration at `path`. Relative file names inside it
/// are relative to its directory, as in exporter-toolkit.
pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
    let fail = |message: String| WebConfigError {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let raw: RawWebConfig = if text.trim().is_empty() {
        RawWebConfig::default()
    } else {
        serde_yaml::from_str(&text).map_err(|e| {
            fail(format!(
                "{e} (supported: tls_server_config {{cert_file, key_file, client_auth_type, client_ca_file, min_version, max_version}}, basic_auth_users, http_server_config {{headers}})"
            ))
        })?
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let tls = raw
        .tls_server_config
        .map(|tls| tls_acceptor(&tls, base))
        .transpose()
        .map_err(fail)?;
    let auth = if raw.basic_auth_users.is_empty() {
        None
    } else {
        Some(Arc::new(
            BasicAuth::new(raw.basic_auth_users).map_err(fail)?,
        ))
    };
    let headers = raw
        .http_server_config
        .map(|http| parse_headers(http.headers))
        .transpose()
        .map_err(fail)?
        .unwrap_or_default();
    Ok(WebConfig { tls, auth, headers })
}

fn tls_acceptor(raw: &RawTls, base: &Path) -> Result<TlsAcceptor, String> {
    let provider = crate::tls::provider();
    let cert_file = base.join(&raw.cert_file);
    let certs = crate::tls::read_certs(&cert_file)
        .map_err(|e| format!("tls_server_config.cert_file: {e}"))?;
    let key_file = base.join(&raw.key_file);
    let key = PrivateKeyDer::from_pem_file(&key_file)
        .map_err(|e| format!("tls_server_config.key_file {}: {e}", key_file.display()))?;
    let versions = protocol_versions(raw.min_version.as_deref(), raw.max_version.as_deref())?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let client_auth = raw.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let builder = match client_auth {
        "NoClientCert" => builder.with_no_client_auth(),
        "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" => {
            let ca_file = raw.client_ca_file.as_ref().ok_or_else(|| {
                format!("tls_server_config.client_auth_type {client_auth} needs client_ca_file")
            })?;
            let ca_file = base.join(ca_file);
            let mut roots = RootCertStore::empty();
            let certs = crate::tls::read_certs(&ca_file)
                .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    format!("tls_server_config.client_ca_file {}: {e}", ca_file.display())
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if client_auth == "VerifyClientCertIfGiven" {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| format!("tls_server_config.client_ca_file {}: {e}", ca_file.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        other => {
            return Err(format!(
                "tls_server_config.client_auth_type `{other}` is not supported: use NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            ))
        }
    };
    if raw.client_ca_file.is_some() && client_auth == "NoClientCert" {
        return Err("tls_server_config.client_ca_file is set but client_auth_type is NoClientCert: set client_auth_type to RequireAndVerifyClientCert, or remove client_ca_file".into());
    }
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!("tls_server_config: the certificate and key do not fit together: {e}")
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn protocol_versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let rank = |key: &str, value: &str| match value {
        "TLS12" => Ok(0),
        "TLS13" => Ok(1),
        "TLS10" | "TLS11" => Err(format!(
            "tls_server_config.{key} {value}: TLS 1.0 and 1.1 are not offered; use TLS12 or TLS13"
        )),
        other => Err(format!(
            "tls_server_config.{key} `{other}`: use TLS12 or TLS13"
        )),
    };
    let low = min
        .map(|v| rank("min_version", v))
        .transpose()?
        .unwrap_or(0);
    let high = max
        .map(|v| rank("max_version", v))
        .transpose()?
        .unwrap_or(1);
    if low > high {
        return Err("tls_server_config.min_version is above max_version".into());
    }
    let all = [&rustls::version::TLS12, &rustls::version::TLS13];
    Ok(all[low..=high].to_vec())
}

fn parse_headers(
    raw: BTreeMap<String, String>,
) -> Result<Vec<(axum::http::HeaderName, axum::http::HeaderValue)>, String> {
    raw.into_iter()
        .map(|(name, value)| {
            let header = axum::http::HeaderName::try_from(name.as_str()).map_err(|_| {
                format!("http_server_config.headers: `{name}` is not a header name")
            })?;
            if header == axum::http::header::CONTENT_TYPE
                || header == axum::http::header::CONTENT_ENCODING
                || header == axum::http::header::CONTENT_LENGTH
            {
                return Err(format!(
                    "http_server_config.headers: `{name}` is set by the exporter itself"
                ));
            }
            let value = axum::http::HeaderValue::try_from(value.as_str()).map_err(|_| {
                format!("http_server_config.headers.{name}: not a valid header value")
            })?;
            Ok((header, value))
        })
        .collect()
}

/// Basic auth users with bcrypt hashes. A bcrypt check costs tens of milliseconds by
/// design, too much for every scrape and a lever for anyone who can reach the port,
/// so, as exporter-toolkit does:
/// - credentials are remembered, accepted and refused alike, in caches that a reload
///   discards with the config (keyed by a digest of the header, not the header);
/// - one bcrypt runs at a time ([`BasicAuth::turn`]): a flood of new wrong passwords
///   costs one core, never both, and credentials accepted before never wait for it.
pub struct BasicAuth {
    users: HashMap<String, String>,
    /// A hash of a random string at the users' cost, checked for unknown users so
    /// that the answer takes as long as for a known one.
    dummy: String,
    /// Headers accepted before, and whose they are. Only the right password can add
    /// to it, so a flood cannot push a good scraper out.
    accepted: Mutex<HashMap<Digest, String>>,
    /// Headers refused before. A flood of new wrong passwords fills it; it then
    /// starts over, which costs only the flood its own repeats.
    refused: Mutex<HashSet<Digest>>,
    /// The one bcrypt at a time (see [`BasicAuth::turn`]).
    turn: Arc<tokio::sync::Semaphore>,
    /// Each client's own line before `turn`: a flood from one address makes
    /// another client's first check wait for one bcrypt of it at most.
    lines: Arc<ClientLines>,
}

/// SHA-256 of an `Authorization` value.
type Digest = [u8; 32];

/// What the caches know of a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    Accepted(String),
    Refused,
    /// Only bcrypt can tell.
    New,
}

/// Accepted `Authorization` values kept; past this the cache starts over.
const ACCEPTED_CACHE: usize = 256;
/// Refused `Authorization` values kept; past this the cache starts over.
const REFUSED_CACHE: usize = 4096;

fn digest(header: &str) -> Digest {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, header.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

impl BasicAuth {
    fn new(users: BTreeMap<String, String>) -> Result<Self, String> {
        let mut cost = bcrypt::DEFAULT_COST;
        for (user, hash) in &users {
            if user.contains(':') {
                return Err(format!(
                    "basic_auth_users: user `{user}` contains `:`, which basic auth cannot carry"
                ));
            }
            let parts = hash.parse::<bcrypt::HashParts>().map_err(|_| {
                format!(
                    "basic_auth_users.{user}: not a bcrypt hash (e.g. from `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
                )
            })?;
            cost = parts.get_cost();
        }
        let dummy = bcrypt::hash(format!("{:?}", std::time::SystemTime::now()), cost)
            .map_err(|e| format!("basic_auth_users: {e}"))?;
        Ok(Self {
            users: users.into_iter().collect(),
            dummy,
            accepted: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashSet::new()),
            turn: Arc::new(tokio::sync::Semaphore::new(1)),
            lines: ClientLines::new(),
        })
    }

    /// The user names, as `passthrough.access` may name them.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// What the caches know of `header`: the cheap path every scrape takes.
    pub fn seen(&self, header: &str) -> Known {
        let key = digest(header);
        let accepted = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(user) = accepted.get(&key) {
            return Known::Accepted(user.clone());
        }
        drop(accepted);
        let refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        if refused.contains(&key) {
            Known::Refused
        } else {
            Known::New
        }
    }

    /// The turn every bcrypt check waits for: one at a time. Its permit goes with
    /// the work, so a client that hangs up mid-check frees it only when bcrypt ends.
    pub fn turn(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.turn
    }

    /// Each client's own line before [`turn`](Self::turn).
    pub fn lines(&self) -> &Arc<ClientLines> {
        &self.lines
    }

    /// The bcrypt check (slow by design: call it off the async workers, in its
    /// [`turn`](Self::turn)); the user it names when it is right.
    pub fn verify(&self, header: &str) -> Option<String> {
        let key = digest(header);
        let accepted = decode_basic(header).and_then(|(user, password)| {
            let (hash, known) = match self.users.get(&user) {
                Some(hash) => (hash.as_str(), true),
                None => (self.dummy.as_str(), false),
            };
            (bcrypt::verify(password.as_bytes(), hash).unwrap_or(false) && known).then_some(user)
        });
        match &accepted {
            Some(user) => {
                let mut cache = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
                if cache.len() >= ACCEPTED_CACHE {
                    cache.clear();
                }
                cache.insert(key, user.clone());
            }
            None => {
                let mut cache = self.refused.lock().unwrap_or_else(|e| e.into_inner());
                if cache.len() >= REFUSED_CACHE {
                    cache.clear();
                }
                cache.insert(key);
            }
        }
        accepted
    }
}

/// `Basic base64(user:password)` -> (user, password).
fn decode_basic(header: &str) -> Option<(String, String)> {
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let decoded = base64_decode(encoded.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Standard base64 with padding, as HTTP clients send basic credentials.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_rejects_garbage() {
        assert_eq!(base64_decode("YWxpY2U6c2VjcmV0").unwrap(), b"alice:secret");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        for bad in ["YQ=", "Y===", "Y=Q=", "YW*j", "é"] {
            assert!(base64_decode(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn basic_auth_checks_and_caches() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let auth = BasicAuth::new(BTreeMap::from([("alice".to_string(), hash)])).unwrap();
        let header = |user: &str, pw: &str| {
            use base64::Engine as _;
            let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
            format!("Basic {encoded}")
        };
        assert_eq!(
            auth.seen(&header("alice", "s3cret")),
            Known::New,
            "not before it is verified"
        );
        assert_eq!(
            auth.verify(&header("alice", "s3cret")).as_deref(),
            Some("alice")
        );
        assert_eq!(
            auth.seen(&header("alice", "s3cret")),
            Known::Accepted("alice".to_string())
        );
        assert_eq!(auth.verify(&header("alice", "wrong")), None);
        assert_eq!(
            auth.seen(&header("alice", "wrong")),
            Known::Refused,
            "remembered"
        );
        assert_eq!(auth.verify(&header("bob", "s3cret")), None);
        assert_eq!(auth.verify("Bearer x"), None);
        // A flood of refusals starts their cache over; the accepted stay.
        for n in 0..=REFUSED_CACHE {
            auth.refused.lock().unwrap().insert(digest(&n.to_string()));
        }
        assert_eq!(auth.verify(&header("alice", "wrong-again")), None);
        assert_eq!(
            auth.seen(&header("alice", "s3cret")),
            Known::Accepted("alice".to_string())
        );
    }

    #[test]
    fn bad_settings_are_refused_with_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let write = |text: &str| {
            let path = dir.path().join("web.yml");
            std::fs::write(&path, text).unwrap();
            load(&path).map(|_| ()).unwrap_err().to_string()
        };
        assert!(write("basic_auth_users:\n  alice: plain\n")
            .contains("basic_auth_users.alice: not a bcrypt hash"));
        assert!(write(
            "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  cipher_suites: [x]\n"
        )
        .contains("unknown field `cipher_suites`"));
        assert!(
            write("tls_server_config:\n  cert_file: nope.pem\n  key_file: k.pem\n")
                .contains("tls_server_config.cert_file")
        );
        assert!(
            write("http_server_config:\n  headers:\n    Content-Type: x\n")
                .contains("set by the exporter itself")
        );
        let empty = dir.path().join("empty.yml");
        std::fs::write(&empty, "").unwrap();
        let config = load(&empty).unwrap();
        assert!(config.tls.is_none() && config.auth.is_none());
    }
}
