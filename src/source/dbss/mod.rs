//! Huawei Cloud DBSS (Database Security Service), everything of the kind but its
//! settings (`config::dbss`) and its session API endpoint: the API contract ([`api`]),
//! the HTTPS client ([`client`]), and the source.
//!
//! Each cycle, one `POST .../statistics/session/db-client` for the
//! client session distribution of the configured instance (sessions per audited
//! database over `time_range`), published as `dbsession_dbss_client_sessions`.
//!
//! DBSS does the counting; the exporter only relabels (null fields become
//! `__none__`) and sums entries that would be the same series. Non-200 answers map
//! to the `reason` label (400 `bad_request`, 401 `auth`, 403 `forbidden`, 5xx
//! `server`) and carry DBSS's `error_code`/`error_msg` into the log line.

pub mod api;
pub mod client;
mod report;

use super::collect::{BoxFuture, Source};
use crate::api::http::{DetailRequest, DetailSource};
use crate::config::dbss::Dbss;
use crate::config::{Target, TargetKind};
use crate::error::{Reason, SourceError};
use crate::secret::TokenFile;
use crate::stats::{Collected, Statistics};
use bytes::Bytes;
use client::{Client, ClientError};
use hyper::{Method, StatusCode};
pub use report::{ClientDistribution, ClientEntry, CLIENT_SESSIONS};

/// The reasons a DBSS target can fail with (401 is `auth`).
const REASONS: [Reason; 7] = [
    Reason::Connect,
    Reason::Auth,
    Reason::Timeout,
    Reason::Query,
    Reason::BadRequest,
    Reason::Forbidden,
    Reason::Server,
];

pub struct DbssSource {
    settings: Dbss,
    token: TokenFile,
    /// Built on first use and dropped by [`Source::reset`], so a failed cycle never
    /// reuses a pooled connection and a fixed `ca_file` is picked up.
    client: Option<Client>,
    path: String,
    body: Bytes,
}

impl DbssSource {
    pub fn new(target: &Target, settings: &Dbss) -> Self {
        if settings.insecure_skip_verify {
            tracing::warn!(
                target = %target.name,
                "insecure_skip_verify: the DBSS certificate is not verified, so the token can be \
                 sent to whoever answers at {}; set ca_file instead",
                settings.endpoint
            );
        }
        Self {
            token: TokenFile::new(settings.token_file.clone()),
            path: api::client_sessions_path(settings),
            body: Bytes::from(api::client_sessions_body(settings)),
            settings: settings.clone(),
            client: None,
        }
    }

    async fn run(&mut self) -> Result<Collected, SourceError> {
        let token = self
            .token
            .get()
            .map_err(|message| SourceError::new(Reason::Auth, message))?;
        let client = match &self.client {
            Some(client) => client.clone(),
            None => {
                let client = Client::new(&self.settings).map_err(client_error)?;
                self.client = Some(client.clone());
                client
            }
        };
        let answer = client
            .send(Method::POST, &self.path, &token, Some(self.body.clone()))
            .await
            .map_err(client_error)?;
        if answer.status != StatusCode::OK {
            let api_error = api::decode_error(&answer.body, Some(&token));
            let mut message = format!(
                "DBSS answered {}: {}",
                answer.status,
                api::hint(answer.status)
            );
            if !api_error.code.is_empty() || !api_error.message.is_empty() {
                message.push_str(&format!(" ({}: {})", api_error.code, api_error.message));
            }
            return Err(SourceError {
                reason: api::reason_of(answer.status),
                message,
                api_error: Some(api_error),
            });
        }
        let (entries, without_count) = api::decode_client_sessions(&answer.body)
            .map_err(|message| SourceError::new(Reason::Query, message))?;
        if without_count > 0 {
            tracing::debug!(
                instance_id = %self.settings.instance_id,
                entries = without_count,
                "DBSS entries without session_num left out"
            );
        }
        Ok(Collected {
            rows: entries.len(),
            beside: None,
            statistics: Statistics::Own(Box::new(ClientDistribution::new(
                &self.settings.instance_id,
                entries,
            ))),
        })
    }
}

/// DBSS's SQL statement detail (`GET /v2/{project_id}/audit/{instance_id}/sqls/{id}`),
/// which the session API forwards: the kind's one request on demand.
pub struct SqlDetail {
    settings: Dbss,
    /// Built once; a client that cannot be built (a bad `ca_file`) is every
    /// request's error until a reload builds a new one.
    client: Result<Client, ClientError>,
    token: TokenFile,
}

/// Why the SQL detail could not be asked for or answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlDetailError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The token file is unreadable or holds no valid token.
    #[error("{0}")]
    Token(String),
}

/// A client and a current token: everything but the request itself.
pub struct ReadyDetail<'a> {
    settings: &'a Dbss,
    client: &'a Client,
    token: crate::secret::Secret,
}

impl SqlDetail {
    pub fn new(settings: &Dbss) -> Self {
        Self {
            client: Client::new(settings),
            token: TokenFile::new(settings.token_file.clone()),
            settings: settings.clone(),
        }
    }

    pub fn settings(&self) -> &Dbss {
        &self.settings
    }

    /// The client and the token as of now, or why a request cannot be sent.
    pub fn ready(&self) -> Result<ReadyDetail<'_>, SqlDetailError> {
        let client = self.client.as_ref().map_err(|err| err.clone())?;
        let token = self.token.get().map_err(SqlDetailError::Token)?;
        Ok(ReadyDetail {
            settings: &self.settings,
            client,
            token,
        })
    }
}

impl ReadyDetail<'_> {
    /// Asks for statement `id`, which must pass [`api::valid_sql_id`]. DBSS's answer
    /// is returned as it came, whatever its status.
    pub async fn fetch(&self, id: &str) -> Result<client::Answer, SqlDetailError> {
        let path = api::sql_detail_path(self.settings, id);
        Ok(self
            .client
            .send(Method::GET, &path, &self.token, None)
            .await?)
    }
}

/// What the session API serves of a DBSS target: the detail of its statements,
/// forwarded (see [`crate::source::api_backend`]).
pub fn api_backend(settings: &Dbss) -> crate::api::http::Backend {
    crate::api::http::Backend::Detail(Box::new(SqlDetail::new(settings)))
}

impl DetailSource for SqlDetail {
    fn serves(&self, target: &Target) -> bool {
        matches!(&target.kind, TargetKind::Dbss(settings) if *settings == self.settings)
    }

    fn valid_id(&self, id: &str) -> bool {
        api::valid_sql_id(id)
    }

    fn ready(&self) -> Result<Box<dyn DetailRequest + '_>, String> {
        match SqlDetail::ready(self) {
            Ok(ready) => Ok(Box::new(ready)),
            Err(err) => Err(err.to_string()),
        }
    }
}

impl DetailRequest for ReadyDetail<'_> {
    fn fetch<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(StatusCode, Bytes), String>> {
        Box::pin(async move {
            let answer = ReadyDetail::fetch(self, id)
                .await
                .map_err(|err| err.to_string())?;
            Ok((answer.status, answer.body))
        })
    }
}

/// The reason of an exchange that produced no answer: unreachable (connect, TLS,
/// broken answer) or an answer the exporter will not read (redirected elsewhere,
/// too large).
fn client_error(err: ClientError) -> SourceError {
    let reason = match err {
        ClientError::Setup(_) | ClientError::Connect { .. } | ClientError::Body { .. } => {
            Reason::Connect
        }
        ClientError::Redirect { .. }
        | ClientError::TooManyRedirects { .. }
        | ClientError::TooLarge { .. } => Reason::Query,
    };
    SourceError::new(reason, err.to_string())
}

impl Source for DbssSource {
    fn collect(&mut self) -> BoxFuture<'_, Result<Collected, SourceError>> {
        Box::pin(self.run())
    }

    fn reset(&mut self) {
        self.client = None;
    }

    fn reasons(&self) -> &'static [Reason] {
        &REASONS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::NONE_LABEL;

    /// A documented answer in, the exact distribution out: nulls become `__none__`,
    /// entries with the same labels add up, one without a count is left out.
    #[test]
    fn an_answer_gives_the_exact_distribution() {
        let body = br#"[
            {"db_id": null, "db_ip": "100.79.0.248", "session_num": 16, "db_name": null},
            {"db_id": "d1", "db_ip": "10.0.0.37", "session_num": 3, "db_name": "orders"},
            {"db_id": "d1", "db_ip": "10.0.0.37", "session_num": 2, "db_name": "orders"},
            {"db_id": "d2", "db_ip": "10.0.0.38", "session_num": null, "db_name": "x"}
        ]"#;
        let (entries, without_count) = api::decode_client_sessions(body).unwrap();
        assert_eq!((entries.len(), without_count), (3, 1));
        let clients = ClientDistribution::new("inst", entries);
        let got: Vec<((&str, &str, &str), u64)> = clients
            .sessions
            .iter()
            .map(|((id, ip, name), n)| ((id.as_str(), ip.as_str(), name.as_str()), *n))
            .collect();
        assert_eq!(
            got,
            [
                ((NONE_LABEL, "100.79.0.248", NONE_LABEL), 16),
                (("d1", "10.0.0.37", "orders"), 5),
            ]
        );
    }

    #[test]
    fn statuses_without_an_answer_are_connect_or_query() {
        let connect = client_error(ClientError::Connect {
            endpoint: "https://x".into(),
            detail: "refused".into(),
        });
        assert_eq!(connect.reason, Reason::Connect);
        let large = client_error(ClientError::TooLarge {
            endpoint: "https://x".into(),
        });
        assert_eq!(large.reason, Reason::Query);
    }
}
