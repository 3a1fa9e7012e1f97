//! A local DBSS contract server: no Huawei Cloud is reachable from tests, so this
//! hyper server over TLS (certificates from a CA generated per server) enforces the
//! documented contract of the two APIs the exporter uses:
//! - `POST /v1/{project_id}/audit/{instance_id}/statistics/session/db-client` and
//!   `GET /v2/{project_id}/audit/{instance_id}/sqls/{id}`, path ids of 32 to 64
//!   characters (400 otherwise);
//! - `X-Auth-Token` required (401 without, or with a token it does not know; 403 for
//!   a known token without the permission);
//! - the session request is JSON with a `time` object (400 without), `time_range` one
//!   of the documented values, `db_id` an array of strings;
//! - every error answers DBSS's error body (`error_code`, `error_msg`, `details`,
//!   `encoded_authorization_message`); 200 answers are the documented examples, null
//!   fields included.
//!
//! Tests change its behaviour through [`State`]: a forced status, a delay, a
//! redirect, other data. It records every request it receives.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const PROJECT_ID: &str = "0b5d8a3c1e2f40a6b7c8d9e0f1a2b3c4";
pub const INSTANCE_ID: &str = "c0ffee11d2e34f5a6b7c8d9e0f1a2b3cin01";
/// The SQL id of the reference's example.
pub const SQL_ID: &str = "J8Zcg5gBPj4d6CRtK3Y4";

/// The reference's example answer of the client session distribution.
pub fn example_sessions() -> Value {
    json!([
        {"db_id": null, "db_ip": "100.79.0.248", "session_num": 16, "db_name": null},
        {"db_id": null, "db_ip": "100.79.0.247", "session_num": 13, "db_name": null}
    ])
}

/// The reference's example `SqlDetailBean`, as DBSS writes it (with its spacing).
pub const EXAMPLE_SQL: &str = r#"{
  "sql" : {
    "id" : "J8Zcg5gBPj4d6CRtK3Y4",
    "schema" : "",
    "object" : null,
    "field" : null,
    "lines" : "1",
    "level" : "",
    "query_id" : "16d3aeff-c11c-4d22-8e60-d943b9f55dc5",
    "tcp_session_id" : "10374",
    "db_session_id" : "10374",
    "db_user" : "root",
    "db_type" : "MySQL5.7.44-241205",
    "db_service_name" : "",
    "db_instance" : "",
    "db_ip" : "10.0.0.37",
    "db_port" : 3306,
    "db_port_str" : "3306",
    "db_mac" : "",
    "client_name" : "",
    "client_ip" : "100.79.0.247",
    "client_port" : 0,
    "client_port_str" : "--",
    "client_mac" : "",
    "client_tool" : "",
    "client_os_name" : "",
    "client_os_user" : "",
    "sql_statement" : "SELECT @@session.transaction_isolation",
    "query_type" : "SELECT",
    "object_type" : "VARIABLE",
    "sql_result" : "SUCCESS",
    "sql_response" : null,
    "log_result" : "",
    "response_status" : "EXECUT_SUCCESS",
    "response_length" : 0,
    "start_time" : "2025-08-07 06:57:43",
    "end_time" : "2025-08-07 06:57:43",
    "audit_result" : "SUCCESS",
    "scope_id" : "tcg7LJgBTpKZyZbbeDjk",
    "scope_name" : "FULL_AUDIT_RULES",
    "rule_type" : "",
    "rule_id" : "",
    "rule_name" : "",
    "execute_time" : 0
  }
}"#;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub token: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

/// What the server answers; tests change it at any time.
pub struct State {
    /// Tokens accepted with full access.
    pub tokens: Vec<String>,
    /// Tokens known but without permission: 403.
    pub forbidden_tokens: Vec<String>,
    /// The 200 answer of the session distribution (before the db_id filter).
    pub sessions: Value,
    /// SQL details by id, as raw JSON text.
    pub sqls: BTreeMap<String, String>,
    /// Answer every authorized request with this status and an error body.
    pub fail: Option<(u16, &'static str, String)>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Answer requests outside `/moved` with 307 to this location.
    pub redirect: Option<String>,
    pub requests: Vec<Recorded>,
}

pub struct ContractServer {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    /// The CA that signed the server's certificate (for 127.0.0.1 and localhost).
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ContractServer {
    /// Starts a server on a free loopback port accepting `token`.
    pub fn start(token: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "DBSS contract test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();

        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let state = Arc::new(Mutex::new(State {
            tokens: vec![token.to_string()],
            forbidden_tokens: Vec::new(),
            sessions: example_sessions(),
            sqls: [(SQL_ID.to_string(), EXAMPLE_SQL.to_string())].into(),
            fail: None,
            delay: Duration::ZERO,
            redirect: None,
            requests: Vec::new(),
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (tcp, _) = tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => match accepted {
                            Ok(accepted) => accepted,
                            Err(_) => continue,
                        },
                    };
                    let (acceptor, state) = (acceptor.clone(), shared.clone());
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let service = hyper::service::service_fn(move |request| {
                            let state = state.clone();
                            async move {
                                Ok::<_, std::convert::Infallible>(answer(&state, request).await)
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            });
        });
        Self {
            addr,
            state,
            ca_file,
            _dir: dir,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `https://127.0.0.1:port`.
    pub fn endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn set(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state.lock().unwrap());
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// A `kind: dbss` target of this server, trusting its CA, for a config file.
    pub fn target_yaml(&self, name: &str, token_file: &std::path::Path, extra: &str) -> String {
        format!(
            "  - name: {name}\n    kind: dbss\n    endpoint: {}\n    project_id: {PROJECT_ID}\n    instance_id: {INSTANCE_ID}\n    token_file: {}\n    ca_file: {}\n{extra}",
            self.endpoint(),
            token_file.display(),
            self.ca_file.display()
        )
    }
}

impl Drop for ContractServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// DBSS's error body.
fn error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = json!({
        "error_code": code,
        "error_msg": message,
        "details": [],
        "encoded_authorization_message": null,
    });
    Response::builder()
        .status(status)
        .header("content-type", "application/json;charset=UTF-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn ok(body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .header("content-type", "application/json;charset=UTF-8")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn valid_path_id(id: &str) -> bool {
    (32..=64).contains(&id.chars().count())
}

const TIME_RANGES: [&str; 7] = [
    "HALF_HOUR",
    "HOUR",
    "THREE_HOUR",
    "TWELVE_HOUR",
    "DAY",
    "WEEK",
    "MONTH",
];

async fn answer(
    state: &Mutex<State>,
    request: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let method = request.method().as_str().to_string();
    let full_path = request.uri().path().to_string();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (token, content_type) = (header("x-auth-token"), header("content-type"));
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    let (delay, redirect) = {
        let mut state = state.lock().unwrap();
        state.requests.push(Recorded {
            method: method.clone(),
            path: full_path.clone(),
            token: token.clone(),
            content_type: content_type.clone(),
            body: body.clone(),
        });
        (state.delay, state.redirect.clone())
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let path = match full_path.strip_prefix("/moved") {
        Some(rest) => rest.to_string(),
        None => {
            if let Some(location) = redirect {
                return Response::builder()
                    .status(307)
                    .header("location", location)
                    .body(Full::new(Bytes::new()))
                    .unwrap();
            }
            full_path.clone()
        }
    };
    let state = state.lock().unwrap();

    // The token first, as the API gateway checks it before anything else.
    let Some(token) = token else {
        return error(401, "DBSS.401001", "X-Auth-Token is required");
    };
    if state.forbidden_tokens.contains(&token) {
        return error(403, "DBSS.403001", "no permission for this instance");
    }
    if !state.tokens.contains(&token) {
        return error(401, "DBSS.401002", "the token is invalid or expired");
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (version, project, instance, rest) = match parts.as_slice() {
        [version, project, "audit", instance, rest @ ..] => (*version, *project, *instance, rest),
        _ => return error(400, "DBSS.400000", "no such API"),
    };
    if !valid_path_id(project) || !valid_path_id(instance) {
        return error(
            400,
            "DBSS.400001",
            "project_id and instance_id must have 32 to 64 characters",
        );
    }
    if let Some((status, code, message)) = &state.fail {
        return error(*status, code, message);
    }
    match (method.as_str(), version, rest) {
        ("POST", "v1", ["statistics", "session", "db-client"]) => {
            if !content_type.is_some_and(|c| c.starts_with("application/json")) {
                return error(400, "DBSS.400002", "the body must be JSON");
            }
            let Ok(Value::Object(request)) = serde_json::from_str::<Value>(&body) else {
                return error(400, "DBSS.400003", "the body must be a JSON object");
            };
            let Some(Value::Object(time)) = request.get("time") else {
                return error(400, "DBSS.400004", "time is required");
            };
            match time.get("time_range") {
                None => {}
                Some(Value::String(range)) if TIME_RANGES.contains(&range.as_str()) => {}
                Some(_) => return error(400, "DBSS.400005", "time_range is not valid"),
            }
            let wanted: Option<Vec<String>> = match request.get("db_id") {
                None => None,
                Some(Value::Array(ids)) if ids.iter().all(Value::is_string) => Some(
                    ids.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect(),
                ),
                Some(_) => return error(400, "DBSS.400006", "db_id must be an array of strings"),
            };
            let mut sessions = state.sessions.clone();
            if let (Some(wanted), Value::Array(entries)) = (wanted, &mut sessions) {
                if !wanted.is_empty() {
                    entries.retain(|e| {
                        e.get("db_id")
                            .and_then(Value::as_str)
                            .is_some_and(|id| wanted.iter().any(|w| w == id))
                    });
                }
            }
            ok(serde_json::to_string_pretty(&sessions).unwrap())
        }
        ("GET", "v2", ["sqls", id]) => match state.sqls.get(*id) {
            Some(sql) => ok(sql.clone()),
            None => error(400, "DBSS.400007", "no SQL statement with this id"),
        },
        _ => error(400, "DBSS.400000", "no such API"),
    }
}
