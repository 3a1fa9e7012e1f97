//! `session_exporter`: flags, wiring and shutdown order. No logic lives here.
//!
//! Start: load the config (exit 2 if bad), start the publisher, apply the config to
//! the scheduler, then serve HTTP and reload requests (SIGHUP, `POST /-/reload`).
//! Shutdown, on SIGTERM or SIGINT: one cancellation token stops the HTTP server
//! (in-flight scrapes finish), the reload task and every target loop (an in-flight
//! query is dropped and its pool closed in the background); the process exits
//! within one second, with 0. A second signal meanwhile exits at once, with 1.

use clap::Parser;
use session_exporter::config::{self, ConfigError};
use session_exporter::history::Recorder;
use session_exporter::http::server;
use session_exporter::http::{self, AppState};
use session_exporter::logging::{self, LogFormat, LogLevel};
use session_exporter::reload::{self, ReloadRequest};
use session_exporter::scheduler::{Scheduler, Shard};
use session_exporter::snapshot;
use session_exporter::web::config as web_config;
use session_exporter::web::{Web, WebConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("SESSION_EXPORTER_REVISION"),
    ", rustc ",
    env!("SESSION_EXPORTER_RUSTC"),
    ")"
);

/// Prometheus exporter for database session metrics: OceanBase clusters, seekdb,
/// MySQL, MariaDB, PostgreSQL and Huawei Cloud DBSS. Every flag can also be set
/// through the environment variable shown with it.
#[derive(Debug, Parser)]
#[command(name = "session_exporter", version = LONG_VERSION)]
struct Cli {
    /// Path to the configuration file (see config.example.yaml).
    #[arg(
        long = "config.file",
        env = "SESSION_EXPORTER_CONFIG_FILE",
        default_value = "config.yaml"
    )]
    config_file: PathBuf,

    /// Check the configuration file, print what is wrong, and exit (0 if valid, 2 if not).
    #[arg(long = "config.check")]
    config_check: bool,

    /// Address to listen on: `:9767` (all interfaces), `127.0.0.1:9767` or `[::1]:9767`.
    #[arg(
        long = "web.listen-address",
        env = "SESSION_EXPORTER_WEB_LISTEN_ADDRESS",
        default_value = ":9767"
    )]
    listen_address: String,

    /// Path under which to expose metrics.
    #[arg(
        long = "web.telemetry-path",
        env = "SESSION_EXPORTER_WEB_TELEMETRY_PATH",
        default_value = "/metrics"
    )]
    telemetry_path: String,

    /// Only log messages with the given severity or above.
    #[arg(
        long = "log.level",
        env = "SESSION_EXPORTER_LOG_LEVEL",
        value_enum,
        default_value = "info"
    )]
    log_level: LogLevel,

    /// Output format of log messages.
    #[arg(
        long = "log.format",
        env = "SESSION_EXPORTER_LOG_FORMAT",
        value_enum,
        default_value = "logfmt"
    )]
    log_format: LogFormat,

    /// Path to a web configuration file (exporter-toolkit format): TLS, basic auth
    /// users with bcrypt hashes, response headers. Re-read on every reload.
    #[arg(long = "web.config.file", env = "SESSION_EXPORTER_WEB_CONFIG_FILE")]
    web_config_file: Option<PathBuf>,

    /// Open HTTP connections served at once; more wait in the kernel's accept queue
    /// until one closes.
    #[arg(
        long = "web.max-connections",
        env = "SESSION_EXPORTER_WEB_MAX_CONNECTIONS",
        default_value_t = server::MAX_CONNECTIONS as u32,
        value_parser = clap::value_parser!(u32).range(1..=65_536)
    )]
    max_connections: u32,

    /// Open connections one client (an IPv4 address, an IPv6 /64) may hold; more are
    /// answered 503. Default: half of --web.max-connections, so a scraper from another
    /// address always finds a slot. Behind a reverse proxy (every client has its
    /// address), set it to --web.max-connections and let the proxy limit its clients.
    #[arg(
        long = "web.max-connections-per-client",
        env = "SESSION_EXPORTER_WEB_MAX_CONNECTIONS_PER_CLIENT",
        value_parser = clap::value_parser!(u32).range(1..=65_536)
    )]
    max_connections_per_client: Option<u32>,

    /// How long a client may take for the TLS handshake and for a request's headers,
    /// and how long a keep-alive connection may wait idle for its next request.
    #[arg(
        long = "web.header-timeout",
        env = "SESSION_EXPORTER_WEB_HEADER_TIMEOUT",
        default_value = "10s",
        value_parser = web_timeout
    )]
    header_timeout: Duration,

    /// How long a client may take to send a request's body (only the session API's
    /// kills have one; it is read after the credentials are checked).
    #[arg(
        long = "web.body-timeout",
        env = "SESSION_EXPORTER_WEB_BODY_TIMEOUT",
        default_value = "10s",
        value_parser = web_timeout
    )]
    body_timeout: Duration,

    /// How long a client may take to read an answer, from the first moment it stops
    /// reading; then the connection is closed.
    #[arg(
        long = "web.write-timeout",
        env = "SESSION_EXPORTER_WEB_WRITE_TIMEOUT",
        default_value = "10s",
        value_parser = web_timeout
    )]
    write_timeout: Duration,

    /// Enable POST /-/reload (SIGHUP always reloads the configuration).
    #[arg(
        long = "web.enable-lifecycle",
        env = "SESSION_EXPORTER_WEB_ENABLE_LIFECYCLE"
    )]
    enable_lifecycle: bool,

    /// This replica's shard, from 0: it collects only the targets whose name hashes
    /// to it. Replicas with the same shard collect the same targets (HA).
    #[arg(long = "shard", env = "SESSION_EXPORTER_SHARD", default_value_t = 0)]
    shard: u32,

    /// The number of shards the targets are split into.
    #[arg(
        long = "total-shards",
        env = "SESSION_EXPORTER_TOTAL_SHARDS",
        default_value_t = 1
    )]
    total_shards: u32,

    /// Print a man page or a shell's completion script for these flags, and exit. The
    /// packages install them; from a tarball:
    /// `session_exporter --generate=bash > /etc/bash_completion.d/session_exporter`.
    #[arg(long = "generate", value_enum, value_name = "WHAT")]
    generate: Option<Generated>,
}

/// A --web.*-timeout: a duration (`500ms`, `10s`, `1m`) from 100 ms to 10 minutes.
fn web_timeout(text: &str) -> Result<Duration, String> {
    let timeout = config::parse_duration(text)?;
    if !(Duration::from_millis(100)..=Duration::from_secs(600)).contains(&timeout) {
        return Err(format!("{text}: use a duration from 100ms to 10m"));
    }
    Ok(timeout)
}

/// What `--generate` prints.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Generated {
    /// The man page, session_exporter(1), in roff.
    Man,
    /// A bash completion script.
    Bash,
    /// A zsh completion script (`_session_exporter`).
    Zsh,
    /// A fish completion script.
    Fish,
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    if let Some(what) = cli.generate {
        return generate(what);
    }
    logging::init(cli.log_level, cli.log_format);

    if cli.total_shards == 0 || cli.shard >= cli.total_shards {
        eprintln!(
            "--shard={} --total-shards={}: the shard must be from 0 to total-shards - 1",
            cli.shard, cli.total_shards
        );
        return ExitCode::from(2);
    }
    let config = match config::load(&cli.config_file) {
        Ok(config) => config,
        Err(err) => return config_failure(&err),
    };
    let web_config = match cli
        .web_config_file
        .as_deref()
        .map(web_config::load)
        .transpose()
    {
        Ok(web) => web.unwrap_or_default(),
        Err(err) => {
            eprintln!("--web.config.file {err}");
            return ExitCode::from(2);
        }
    };
    if let Err(message) = config.passthrough.check_auth(web_config.auth.as_deref()) {
        eprintln!("{}: {message}", cli.config_file.display());
        return ExitCode::from(2);
    }
    if cli.config_check {
        println!(
            "{}: valid, {} target(s)",
            cli.config_file.display(),
            config.targets.len()
        );
        return ExitCode::SUCCESS;
    }
    if !cli.telemetry_path.starts_with('/') || cli.telemetry_path.len() < 2 {
        eprintln!("--web.telemetry-path must start with / and name a path, e.g. /metrics");
        return ExitCode::from(2);
    }
    if cli.telemetry_path == "/api" || cli.telemetry_path.starts_with("/api/") {
        eprintln!(
            "--web.telemetry-path {}: /api/ belongs to the session API, which checks its own \
             credentials; choose another path, e.g. /metrics",
            cli.telemetry_path
        );
        return ExitCode::from(2);
    }
    let listen = match parse_listen_address(&cli.listen_address) {
        Ok(addr) => addr,
        Err(message) => {
            eprintln!("--web.listen-address: {message}");
            return ExitCode::from(2);
        }
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let shard = Shard {
        index: cli.shard,
        total: cli.total_shards,
    };
    let code = runtime.block_on(run(cli, config, web_config, listen, shard));
    // Pools close in the background; do not wait for a server that does not answer.
    runtime.shutdown_timeout(Duration::from_millis(200));
    code
}

/// Renders from the flags' definitions, so the man page and the completions never
/// disagree with `--help`. Rendered into memory first: the generators panic on a
/// write error (a closed pipe), which must be a message and an exit code instead.
fn generate(what: Generated) -> ExitCode {
    use clap::CommandFactory;
    use clap_complete::Shell;
    use std::io::Write;

    let mut command = Cli::command();
    let mut text = Vec::new();
    let shell = match what {
        Generated::Man => None,
        Generated::Bash => Some(Shell::Bash),
        Generated::Zsh => Some(Shell::Zsh),
        Generated::Fish => Some(Shell::Fish),
    };
    match shell {
        Some(shell) => clap_complete::generate(shell, &mut command, "session_exporter", &mut text),
        None => {
            if let Err(err) = clap_mangen::Man::new(command).render(&mut text) {
                eprintln!("cannot render the man page: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&text).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cannot write to standard output: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Printed plainly, not as a log line: it spans lines and is read by a person.
fn config_failure(err: &ConfigError) -> ExitCode {
    eprintln!("{err}");
    ExitCode::from(2)
}

/// Keeps large allocations out of the fragmentable heap. Each publish builds exposition
/// buffers of several megabytes at 100,000 sessions; glibc's dynamic mmap threshold
/// grows past them after the first free, so later ones land in the main heap, where
/// fragmentation held peak RSS at ~85 MiB in `bench/` scenario 3 against ~53 MiB with a
/// fixed 128 KiB threshold (freed mmaps go straight back to the kernel). An operator's
/// own `MALLOC_MMAP_THRESHOLD_` wins. Other allocators (mimalloc) measured worse.
///
/// One arena instead of glibc's eight per core: a cycle's rows are decoded on a
/// runtime worker, encoded on the publisher thread and served by the others, and each
/// arena of its own kept its freed chunks apart. Two arenas took the same scenario's
/// peak from 65 to 55 MiB; under its scrapes (wrk, 8 connections) the second arena still
/// grew the peak from 50 to 60-66 MiB, where one held it at 50 (issue 39). The
/// exporter's few threads allocate little outside a cycle, so they hardly contend.
/// An operator's own `MALLOC_ARENA_MAX` wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only adjusts allocator parameters; it is called before any
    // other thread exists. A zero return (rejected value) leaves glibc's defaults.
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        }
    }
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

async fn run(
    cli: Cli,
    config: config::Config,
    web_config: WebConfig,
    listen: SocketAddr,
    shard: Shard,
) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(
                "cannot listen on {listen}: {err} (choose another with --web.listen-address)"
            );
            return ExitCode::FAILURE;
        }
    };
    let bound = listener.local_addr().map_or(listen, |a| a);
    tracing::info!(
        version = session_exporter::VERSION,
        address = %bound,
        targets = config.targets.len(),
        shard = shard.index,
        total_shards = shard.total,
        tls = web_config.tls.is_some(),
        basic_auth = web_config.auth.is_some(),
        "session_exporter listening"
    );
    let web = Arc::new(Web::new(web_config));

    let cancel = CancellationToken::new();
    let recorder = match &config.history {
        None => {
            tracing::info!(
                "no `history:` in the configuration: the session history records nothing (see docs/history.md)"
            );
            None
        }
        Some(history) => match Recorder::start(history.clone()) {
            Ok(recorder) => Some(recorder),
            Err(err) => {
                tracing::error!("cannot start the session history's thread: {err}");
                return ExitCode::FAILURE;
            }
        },
    };
    let channels = match snapshot::start(
        &session_exporter::source::OWN_FAMILIES,
        recorder.as_ref().map(Recorder::health),
    ) {
        Ok(channels) => channels,
        Err(err) => {
            tracing::error!("cannot start the publisher thread: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut scheduler =
        Scheduler::new(channels.updates.clone(), cancel.clone(), shard).with_recorder(recorder);
    let applied = scheduler.apply(&config).await;
    if applied.other_shards > 0 {
        tracing::info!(
            collected = applied.started.len(),
            other_shards = applied.other_shards,
            "collecting this shard's targets only"
        );
    }

    let session_api = Arc::new(session_exporter::api::http::Registry::new(
        &config,
        session_exporter::source::api_backend,
    ));
    let (reload_tx, reload_rx) = mpsc::channel::<ReloadRequest>(4);
    let files = reload::Files {
        config: cli.config_file.clone(),
        web_config: cli.web_config_file.clone(),
        web: web.clone(),
        session_api: session_api.clone(),
        history: config.history.clone(),
    };
    let reloader = tokio::spawn(reload::serve(
        files,
        scheduler,
        channels.updates,
        reload_rx,
        cancel.clone(),
    ));
    tokio::spawn(forward_sighup(reload_tx.clone(), cancel.clone()));

    let max_connections = cli.max_connections as usize;
    let limits = server::Limits {
        max_connections,
        max_connections_per_client: cli
            .max_connections_per_client
            .map_or_else(|| server::default_share(max_connections), |n| n as usize),
        header_timeout: cli.header_timeout,
        write_timeout: cli.write_timeout,
    };
    let app = http::router(AppState {
        body_timeout: cli.body_timeout,
        published: channels.published,
        telemetry_path: Arc::from(cli.telemetry_path.as_str()),
        reload: cli.enable_lifecycle.then_some(reload_tx),
        web: web.clone(),
        session_api,
    });
    let server = tokio::spawn(server::serve(
        listener,
        app.router.clone(),
        app.fast_path(),
        limits,
        web,
        cancel.clone(),
        Duration::from_millis(500),
    ));

    wait_for_signal().await;
    tracing::info!("shutting down (a second signal exits at once)");
    cancel.cancel();
    // An operator who signals again does not want to wait for in-flight work.
    tokio::spawn(async {
        wait_for_signal().await;
        tracing::warn!("second signal: exiting without waiting for in-flight work");
        std::process::exit(1);
    });
    // Keep-alive connections and slow clients do not hold the exit beyond a second.
    let _ = tokio::time::timeout(Duration::from_millis(800), async {
        let _ = server.await;
        if let Ok(scheduler) = reloader.await {
            scheduler.shutdown(Duration::from_millis(300)).await;
        }
    })
    .await;
    ExitCode::SUCCESS
}

/// Turns every SIGHUP into a reload request.
async fn forward_sighup(requests: mpsc::Sender<ReloadRequest>, cancel: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(hup) => hup,
            Err(err) => {
                tracing::warn!("cannot watch SIGHUP ({err}); reload with POST /-/reload instead");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                received = hup.recv() => {
                    if received.is_none() || requests.send(ReloadRequest { respond: None }).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (requests, cancel);
}

/// Parses `:port`, `host:port` or `[v6]:port`. A bare `:port` listens on every
/// interface (IPv6 and IPv4 where the system allows), as Go exporters do.
fn parse_listen_address(text: &str) -> Result<SocketAddr, String> {
    let with_host = if text.starts_with(':') {
        format!("[::]{text}")
    } else {
        text.to_string()
    };
    let addr: SocketAddr = with_host
        .parse()
        .map_err(|_| format!("`{text}` is not host:port, e.g. :9767 or 127.0.0.1:9767"))?;
    if text.starts_with(':') && !ipv6_available() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], addr.port())));
    }
    Ok(addr)
}

fn ipv6_available() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(err) => {
                    tracing::warn!("cannot watch SIGTERM ({err}); only Ctrl-C stops the exporter");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
