//! Configuration reloads, from SIGHUP or `POST /-/reload`: re-read the file, and
//! either apply it or refuse it whole and keep running the previous one.
//!
//! One task owns the scheduler and serves reload requests in order, so two reloads
//! never interleave. Each outcome is logged and exported as
//! `dbsession_config_last_reload_successful` and `…_success_timestamp_seconds`.

use crate::config;
use crate::scheduler::Scheduler;
use crate::snapshot::Update;
use crate::web::config as web_config;
use crate::web::Web;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// A request to reload; `respond` carries the outcome back to an HTTP caller.
pub struct ReloadRequest {
    pub respond: Option<oneshot::Sender<Result<String, String>>>,
}

/// The files a reload reads again.
pub struct Files {
    pub config: PathBuf,
    /// --web.config.file, re-read too: certificates and users change without restart.
    pub web_config: Option<PathBuf>,
    pub web: Arc<Web>,
    pub session_api: Arc<crate::api::http::Registry>,
    /// The session history as the exporter started with it: its recorder is not
    /// restarted by a reload.
    pub history: Option<crate::config::History>,
}

/// Serves reload requests until `cancel` fires, then hands the scheduler back for
/// an orderly shutdown. Both files are read first; nothing changes unless both are
/// valid.
pub async fn serve(
    files: Files,
    mut scheduler: Scheduler,
    updates: mpsc::Sender<Update>,
    mut requests: mpsc::Receiver<ReloadRequest>,
    cancel: CancellationToken,
) -> Scheduler {
    loop {
        let request = tokio::select! {
            _ = cancel.cancelled() => break,
            request = requests.recv() => match request {
                Some(request) => request,
                None => break,
            },
        };
        let loaded = config::load(&files.config)
            .map_err(|err| err.to_string())
            .and_then(|config| {
                let web = files
                    .web_config
                    .as_deref()
                    .map(web_config::load)
                    .transpose()
                    .map_err(|err| err.to_string())?;
                // Enabling the session API needs authentication: the web config
                // being loaded (or the one running) must provide it if the file does not.
                let running = files.web.get();
                let basic = match &web {
                    Some(web) => web.auth.as_deref(),
                    None => running.auth.as_deref(),
                };
                config.passthrough.check_auth(basic)?;
                Ok((config, web))
            });
        let outcome = match loaded {
            Ok((config, web)) => {
                if let Some(web) = web {
                    files.web.set(web);
                }
                if config.history != files.history {
                    tracing::warn!(
                        "`history:` changed: the session history keeps the settings it started with until the exporter restarts"
                    );
                }
                let applied = scheduler.apply(&config).await;
                files.session_api.apply(&config);
                let summary = format!(
                    "configuration reloaded: {} started, {} restarted, {} stopped, {} unchanged{}",
                    applied.started.len(),
                    applied.restarted.len(),
                    applied.stopped.len(),
                    applied.kept,
                    if applied.other_shards > 0 {
                        format!(", {} in other shards", applied.other_shards)
                    } else {
                        String::new()
                    }
                );
                tracing::info!(
                    started = ?applied.started,
                    restarted = ?applied.restarted,
                    stopped = ?applied.stopped,
                    "{summary}"
                );
                Ok(summary)
            }
            Err(err) => {
                tracing::error!(
                    "configuration reload refused, the previous configuration keeps running: {err}"
                );
                Err(err.to_string())
            }
        };
        let _ = updates
            .send(Update::Reload {
                successful: outcome.is_ok(),
                at: SystemTime::now(),
            })
            .await;
        if let Some(respond) = request.respond {
            let _ = respond.send(outcome);
        }
    }
    scheduler
}
