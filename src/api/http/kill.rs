//! `DELETE` of sessions and of their statements: every check made from the headers,
//! before the body is read.

use super::*;

/// Largest kill request body: a few thousand ids, encrypted and base64.
pub(super) const MAX_KILL_BODY: usize = 64 * 1024;
/// Sessions one kill request may name.
pub(super) const MAX_KILL_IDS: usize = 1000;

/// obshell's kill request body, and the answer's data: the sessions ended.
#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SessionIds {
    pub(super) session_ids: Vec<u64>,
    /// Ours, optional: when each session started, as the list showed it (its
    /// `started`), by id. A session whose id now names another ends nothing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) started: BTreeMap<String, String>,
}

impl SessionIds {
    /// The sessions to end, with the start shown for each where one was sent.
    /// Called once the number of ids is checked.
    pub(super) fn victims(&self) -> Result<Vec<Victim>, Failure> {
        let asked: std::collections::HashSet<u64> = self.session_ids.iter().copied().collect();
        let mut started = HashMap::with_capacity(self.started.len());
        for (key, start) in &self.started {
            // The id as the list gives it, digits alone: `+7` or `007` would be
            // another spelling, never silently left unchecked.
            let id = key.parse::<u64>().ok().filter(|id| id.to_string() == *key);
            match id {
                Some(id) if asked.contains(&id) => {
                    started.insert(id, start.clone());
                }
                _ => {
                    return Err(Failure::bad_parameter(
                        "started",
                        format!(
                            "started names `{}`, which is not one of session_ids: key it by the ids, as the list gives them",
                            key.chars().take(32).collect::<String>()
                        ),
                    ))
                }
            }
        }
        Ok(self
            .session_ids
            .iter()
            .map(|id| Victim {
                id: *id,
                started: started.get(id).cloned(),
            })
            .collect())
    }
}

/// `DELETE .../sessions`: KILL each session.
pub(super) async fn kill(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    caller: Caller,
    body: axum::body::Body,
) -> Response {
    kill_sessions(&state, &caller, &name, body, false).await
}

/// `DELETE .../sessions/queries`: KILL QUERY each session.
pub(super) async fn kill_queries(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    caller: Caller,
    body: axum::body::Body,
) -> Response {
    kill_sessions(&state, &caller, &name, body, true).await
}

/// Refused unless `allow_kill`, before any database is asked; the ids come from the
/// body (opened with the obshell header's key when one was sent); every kill is
/// logged, with its outcome and who asked.
///
/// The body is read last: credentials, the tenant, the grant and the same-origin
/// proof are checked from the headers alone, so a client that announces a body and
/// never sends it learns nothing and holds nothing without them, and with them waits
/// at most --web.body-timeout.
pub(super) async fn kill_sessions(
    state: &ApiState,
    caller: &Caller,
    name: &str,
    body: axum::body::Body,
    query_only: bool,
) -> Response {
    let endpoint = if query_only { "kill_query" } else { "kill" };
    let switched_on = state.registry.get().settings.allow_kill;
    let proof = caller.same_origin_proof();
    let body_timeout = state.body_timeout;
    handle_with_body(
        state,
        caller,
        endpoint,
        name,
        body_timeout,
        |backend,
         tenant,
         Authorized {
             verified,
             trace,
             who,
             grant,
         }| async move {
            let refused = match proof {
                Err(failure) => Some(failure),
                Ok(()) if !switched_on => Some(Failure::forbidden(
                    "ending sessions is off: set passthrough.allow_kill: true",
                )),
                Ok(()) if !grant.kill => Some(Failure::forbidden(format!(
                    "the {who} may not end sessions in tenant `{tenant}`: give it kill: true in a \
                     passthrough.access entry for this tenant (basic auth users of the web \
                     config, which Prometheus may scrape with, never kill without one): nothing \
                     was ended"
                ))),
                Ok(()) => None,
            };
            if let Some(failure) = refused {
                // Credentials that were good asked for a kill: worth the audit log.
                tracing::info!(
                    trace_id = %trace,
                    endpoint,
                    tenant,
                    peer = %caller.peer_display(),
                    by = %who,
                    outcome = %failure.message,
                    "kill refused"
                );
                return Err(failure);
            }
            let body =
                match tokio::time::timeout(body_timeout, axum::body::to_bytes(body, MAX_KILL_BODY))
                    .await
                {
                    Err(_) => return Err(Failure::body_timeout(body_timeout)),
                    Ok(Err(_)) => {
                        return Err(Failure::bad_parameter(
                            "body",
                            format!(
                                "the body is larger than {} KiB, or was cut off",
                                MAX_KILL_BODY / 1024
                            ),
                        ))
                    }
                    Ok(Ok(body)) => body,
                };
            let plain = match &verified {
                Some(verified) => verified.open_body(&body).ok_or_else(|| {
                    Failure::bad_parameter(
                    "body",
                    "the body is not encrypted with the X-OCS-Header's key (base64 of AES-128-CBC)",
                )
                })?,
                None => body.to_vec(),
            };
            let asked = serde_json::from_slice::<SessionIds>(&plain).map_err(|err| {
                Failure::bad_parameter(
                    "session_ids",
                    format!(
                        "the body must be {{\"session_ids\": [ids]}}, optionally with \
                         \"started\": {{\"id\": \"start\"}}: {err}"
                    ),
                )
            })?;
            if asked.session_ids.is_empty() || asked.session_ids.len() > MAX_KILL_IDS {
                return Err(Failure::bad_parameter(
                    "session_ids",
                    format!("session_ids must list 1 to {MAX_KILL_IDS} sessions"),
                ));
            }
            let victims = asked.victims()?;
            let ids = asked.session_ids;
            let outcome = backend.kill(&tenant, &victims, query_only).await;
            let result = match &outcome {
                Ok(()) => "ended".to_string(),
                Err(failure) => failure.message.clone(),
            };
            let outcome = outcome.map(|()| SessionIds {
                session_ids: ids.clone(),
                started: BTreeMap::new(),
            });
            tracing::info!(
                trace_id = %trace,
                endpoint,
                tenant,
                peer = %caller.peer_display(),
                by = %who,
                ids = ?ids,
                outcome = %result,
                "sessions killed on request"
            );
            outcome
        },
    )
    .await
}
