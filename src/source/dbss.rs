//! Huawei Cloud DBSS: each cycle, one `POST .../statistics/session/db-client` for the
//! client session distribution of the configured instance (sessions per audited
//! database over `time_range`), published as `dbsession_dbss_client_sessions`.
//!
//! DBSS does the counting; the exporter only relabels (null fields become
//! `__none__`) and sums entries that would be the same series. Non-200 answers map
//! to the `reason` label (400 `bad_request`, 401 `auth`, 403 `forbidden`, 5xx
//! `server`) and carry DBSS's `error_code`/`error_msg` into the log line.

use super::{BoxFuture, Reason, Source, SourceError};
use crate::config::{Dbss, Target};
use crate::dbss::api;
use crate::dbss::client::{Client, ClientError};
use crate::dbss::token::TokenFile;
use crate::stats::{Collected, DbssClients};
use bytes::Bytes;
use hyper::{Method, StatusCode};

pub struct DbssSource {
    settings: Dbss,
    max_series: usize,
    token: TokenFile,
    /// Built on first use and dropped by [`Source::reset`], so a failed cycle never
    /// reuses a pooled connection and a fixed `ca_file` is picked up.
    client: Option<Client>,
    path: String,
    body: Bytes,
}

impl DbssSource {
    pub fn new(target: &Target) -> Self {
        let settings = target
            .dbss
            .clone()
            .expect("config validation gives every kind: dbss target its dbss settings");
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
            path: api::client_sessions_path(&settings),
            body: Bytes::from(api::client_sessions_body(&settings)),
            max_series: target.max_series_per_dimension,
            settings,
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
        let rows = entries.len();
        Ok(Collected {
            tenants: Default::default(),
            rows,
            dbss: Some(DbssClients::fold(
                &self.settings.instance_id,
                entries,
                self.max_series,
            )),
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
}
