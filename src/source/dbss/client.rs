//! The HTTPS client of one DBSS target: hyper-util's pooled client over rustls.
//!
//! Certificates are verified against the system's CA store, or against `ca_file`
//! alone when one is given (as Prometheus' `tls_config.ca_file`); turning
//! verification off takes `insecure_skip_verify`. Connecting is bounded by
//! `connect_timeout`; the whole exchange by the caller (the collect timeout, or the
//! session API's request timeout). Redirects are followed only within the endpoint's
//! own scheme, host and port, at most [`MAX_REDIRECTS`] times: the token must never
//! be sent anywhere else. Answers are read up to [`MAX_BODY_BYTES`].

use crate::config::dbss::{Dbss, Endpoint};
use crate::secret::Secret;
use crate::tls::{read_certs, NoVerification};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE, LOCATION, USER_AGENT};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::{ClientConfig, RootCertStore};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A larger answer is refused rather than buffered: the session distribution has one
/// entry per audited database, and one SQL statement's detail is a few KiB.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Same-origin redirects followed for one request.
pub const MAX_REDIRECTS: usize = 3;
/// Idle pooled connections are closed after this (the API gateway's own keep-alive is
/// usually shorter; a dead one is simply reconnected).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why an exchange with DBSS did not produce an answer. No variant carries the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The TLS settings could not be built (CA file, system store).
    #[error("{0}")]
    Setup(String),
    #[error("cannot reach {endpoint}: {detail}")]
    Connect { endpoint: String, detail: String },
    #[error("{endpoint} redirected to {location}, which is not the endpoint's host: the token is never sent elsewhere; set endpoint to the right base URL")]
    Redirect { endpoint: String, location: String },
    #[error(
        "{endpoint} redirected more than {MAX_REDIRECTS} times: set endpoint to the right base URL"
    )]
    TooManyRedirects { endpoint: String },
    #[error("the answer of {endpoint} is larger than {} MiB", MAX_BODY_BYTES / 1024 / 1024)]
    TooLarge { endpoint: String },
    #[error("the answer of {endpoint} broke off: {detail}")]
    Body { endpoint: String, detail: String },
}

/// An answer, whatever its status.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

type Http = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// One target's client; cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Client {
    http: Http,
    endpoint: Endpoint,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint.to_string())
            .finish()
    }
}

impl Client {
    /// Builds the client of `settings`: TLS roots, verification and connect timeout.
    pub fn new(settings: &Dbss) -> Result<Self, ClientError> {
        let provider = crate::tls::provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Setup(format!("TLS setup failed: {e}")))?;
        let tls = if settings.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
                .with_no_client_auth()
        } else {
            let roots = match &settings.ca_file {
                Some(file) => {
                    let mut roots = RootCertStore::empty();
                    roots.add_parsable_certificates(read_certs(file).map_err(ClientError::Setup)?);
                    Arc::new(roots)
                }
                None => system_roots().map_err(ClientError::Setup)?,
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(settings.connect_timeout));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(4)
            .build(connector);
        Ok(Self {
            http,
            endpoint: settings.endpoint.clone(),
        })
    }

    /// Sends `method path` (path from the API's root, e.g. `/v1/...`) with the token
    /// and an optional JSON body, following same-origin redirects, and reads the
    /// answer whatever its status.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: &Secret,
        json: Option<Bytes>,
    ) -> Result<Answer, ClientError> {
        let endpoint = self.endpoint.to_string();
        let mut token = HeaderValue::from_str(token.expose()).map_err(|_| {
            // Checked when the file is read; kept as an error, never a panic.
            ClientError::Setup("token_file holds characters a header cannot carry".into())
        })?;
        token.set_sensitive(true);
        let mut uri = self.endpoint.uri(path);
        for _ in 0..=MAX_REDIRECTS {
            let mut request = Request::builder()
                .method(method.clone())
                .uri(&uri)
                .header("X-Auth-Token", token.clone())
                .header(ACCEPT, "application/json")
                .header(
                    USER_AGENT,
                    concat!("session_exporter/", env!("CARGO_PKG_VERSION")),
                );
            if json.is_some() {
                request = request.header(CONTENT_TYPE, "application/json;charset=UTF-8");
            }
            let request = request
                .body(Full::new(json.clone().unwrap_or_default()))
                .map_err(|e| ClientError::Setup(format!("cannot build the request: {e}")))?;
            let response =
                self.http
                    .request(request)
                    .await
                    .map_err(|err| ClientError::Connect {
                        endpoint: endpoint.clone(),
                        detail: with_tls_hint(error_chain(&err)),
                    })?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let keeps_method = method == Method::GET
                    || matches!(
                        status,
                        StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
                    );
                match self.same_origin(location) {
                    Some(next) if keeps_method => {
                        uri = next;
                        continue;
                    }
                    _ => {
                        return Err(ClientError::Redirect {
                            endpoint,
                            location: location.chars().take(200).collect(),
                        })
                    }
                }
            }
            let content_type = response.headers().get(CONTENT_TYPE).cloned();
            let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|err| {
                    if err.is::<http_body_util::LengthLimitError>() {
                        ClientError::TooLarge {
                            endpoint: endpoint.clone(),
                        }
                    } else {
                        ClientError::Body {
                            endpoint: endpoint.clone(),
                            detail: err.to_string(),
                        }
                    }
                })?
                .to_bytes();
            return Ok(Answer {
                status,
                content_type,
                body,
            });
        }
        Err(ClientError::TooManyRedirects { endpoint })
    }

    /// The absolute URI of `location` when it stays on the endpoint's scheme, host
    /// and port (a path alone does).
    fn same_origin(&self, location: &str) -> Option<String> {
        if location.starts_with('/') && !location.starts_with("//") {
            return Some(format!("{}{location}", self.endpoint.origin()));
        }
        let uri: Uri = location.parse().ok()?;
        let tls = match uri.scheme_str()? {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let same = tls == self.endpoint.tls
            && host.eq_ignore_ascii_case(&self.endpoint.host)
            && port == self.endpoint.port;
        same.then(|| location.to_string())
    }
}

/// The system's CA store, loaded once per process.
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                Err("no CA certificates found in the system store: install the ca-certificates package, or set ca_file".to_string())
            } else {
                Ok(Arc::new(roots))
            }
        })
        .clone()
}

/// An error and its causes, joined: hyper's own message ("client error (Connect)")
/// says little without them.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// rustls names certificate problems by their variant; the one users meet most
/// (a self-made CA certificate installed as the server's own) gets what to do.
fn with_tls_hint(detail: String) -> String {
    if detail.contains("CaUsedAsEndEntity") {
        format!(
            "{detail} (the server presents a CA certificate as its own, which TLS clients \
             refuse: issue the server a leaf certificate signed by that CA, and list the CA \
             in ca_file)"
        )
    } else {
        detail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(endpoint: &str) -> Client {
        let settings = Dbss {
            endpoint: Endpoint::parse(endpoint).unwrap(),
            project_id: "p".repeat(32),
            instance_id: "i".repeat(32),
            token_file: "/dev/null".into(),
            db_ids: Vec::new(),
            time_range: crate::config::dbss::TimeRange::HalfHour,
            ca_file: None,
            insecure_skip_verify: true,
            connect_timeout: Duration::from_secs(1),
        };
        Client::new(&settings).unwrap()
    }

    #[test]
    fn a_ca_certificate_as_the_server_s_own_is_explained() {
        let detail = with_tls_hint(
            "client error (Connect): invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))"
                .to_string(),
        );
        assert!(
            detail.contains("leaf certificate signed by that CA"),
            "{detail}"
        );
        assert_eq!(with_tls_hint("refused".into()), "refused");
    }

    #[test]
    fn redirects_stay_on_the_endpoint() {
        let c = client("https://dbss.example.com/gw");
        assert_eq!(
            c.same_origin("/gw/v1/x").as_deref(),
            Some("https://dbss.example.com:443/gw/v1/x")
        );
        assert_eq!(
            c.same_origin("https://DBSS.example.com:443/v1/x")
                .as_deref(),
            Some("https://DBSS.example.com:443/v1/x")
        );
        assert!(c.same_origin("https://dbss.example.com/v1/x").is_some());
        for elsewhere in [
            "https://evil.example.com/v1/x",
            "http://dbss.example.com/v1/x",
            "https://dbss.example.com:8443/v1/x",
            "//evil.example.com/v1/x",
            "ftp://dbss.example.com/",
            "",
            "not a uri",
        ] {
            assert_eq!(c.same_origin(elsewhere), None, "{elsewhere}");
        }
    }
}
