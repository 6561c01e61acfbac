//! Wiring: config in; store, engines, executor and managers built; the gRPC
//! services, health, reflection, gRPC-Web and the plain HTTP routes (the
//! Alertmanager webhook, the chat webhooks, the dashboard at `/`, `/metrics`)
//! served on one port under the edge stack (`server/edge.rs`: request ids, a
//! span per request, authentication and authorization, the timeout
//! backstop; the gRPC metrics layer sits inside gRPC-Web); background work
//! owned by one [`Background`]; configuration reloads ([`Reloader`]);
//! graceful shutdown.

use crate::api::{AuditApi, DecisionApi, IdentityApi, IncidentApi, StatsApi};
use crate::auth::Authenticator;
use crate::background::Background;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::domain::Role;
use crate::engine::{Engines, ExpertEngine};
use crate::executor::Executor;
use crate::executor::kubectl::KubectlExecutor;
use crate::executor::kubernetes::KubernetesExecutor;
use crate::ingest::{IngestSettings, Ingestor, Webhook};
use crate::manager::{DecisionManager, ExecutorKind, IncidentManager, StatsManager, Sweeper};
use crate::notify::Notifier;

use crate::proto::audit_service_server::AuditServiceServer;
use crate::proto::decision_service_server::DecisionServiceServer;
use crate::proto::identity_service_server::IdentityServiceServer;
use crate::proto::incident_service_server::IncidentServiceServer;
use crate::proto::stats_service_server::StatsServiceServer;
use crate::store::{Change, MemoryStore, RedisStore, Retention, Store};
use crate::watch::{Hub, WatchContext};

mod audit_sink;
mod edge;
mod grpc_status;
mod grpc_web_only;
mod incoming;
mod observe;
mod reload;
mod request_timeout;
pub mod tls;
mod ui;
pub use self::reload::Reloader;
use anyhow::Context;
use futures::StreamExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::server::HealthReporter;

/// The fully qualified names of verdict's services, as health reports them
/// (taken from the generated servers, never typed by hand).
pub const SERVICE_NAMES: [&str; 5] = [
    <IncidentServiceServer<IncidentApi> as NamedService>::NAME,
    <DecisionServiceServer<DecisionApi> as NamedService>::NAME,
    <StatsServiceServer<StatsApi> as NamedService>::NAME,
    <AuditServiceServer<AuditApi> as NamedService>::NAME,
    <IdentityServiceServer<IdentityApi> as NamedService>::NAME,
];

/// The least time background tasks get to stop after the drain (a sweep
/// or a cache write in flight finishes its store call).
const BACKGROUND_STOP: Duration = Duration::from_secs(2);

/// How often health re-checks the store.
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

/// Optional replacements for tests and benchmarks.
#[derive(Default)]
pub struct Overrides {
    pub clock: Option<Arc<dyn Clock>>,
    /// Replaces the analyzer (the expert engine by default).
    pub analyzer: Option<Arc<dyn crate::engine::Analyzer>>,
    /// Replaces the chat notifier's settings (read from the config and
    /// the environment by default): tests give the bot token directly.
    pub notify: Option<crate::notify::NotifySettings>,
    /// The chat notifier's background tasks do not start: a replica that
    /// writes decisions (enqueueing their cards) and dies before sending
    /// any, for the tests of the outbox's atomicity.
    pub notifier_idle: bool,
    /// Replaces the authentication settings (and the secure-by-default
    /// start rules): the benchmark's spawned server takes its own token.
    pub auth: Option<crate::auth::AuthSettings>,
}

/// A running server. Dropping it does not stop it; call [`Running::shutdown`].
pub struct Running {
    pub addr: SocketAddr,
    hub: Arc<Hub>,
    reloader: Reloader,
    shutdown: CancellationToken,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// What reloads this server's authentication and approval policy.
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// The token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Watch streams currently open on this replica.
    pub fn live_watchers(&self) -> usize {
        self.hub.live()
    }

    /// The number of open watch streams, as it changes: lets a caller await
    /// a count (e.g. every watcher gone) instead of polling it.
    pub fn live_watchers_changes(&self) -> tokio::sync::watch::Receiver<usize> {
        self.hub.live_changes()
    }

    /// Stops the server gracefully and waits until it has stopped.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the server stops (after its shutdown token is cancelled,
    /// or a background task panicked). An error says why serving failed or
    /// which background task panicked.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.done.await.context("server task panicked")?
    }
}

/// Builds the store the config asks for; with `chat_outbox` (a chat
/// notifier is configured), every decision change also enqueues its card's
/// update in the same atomic write.
pub fn build_store(config: &Config, chat_outbox: bool) -> anyhow::Result<Arc<dyn Store>> {
    build_store_with(config, chat_outbox, None)
}

/// [`build_store`], handing appended audit events to `sink` too.
fn build_store_with(
    config: &Config,
    chat_outbox: bool,
    sink: Option<crate::store::AuditSink>,
) -> anyhow::Result<Arc<dyn Store>> {
    let retention = Retention {
        decisions: config.history_retention,
        stats: config.stats_retention,
        audit: config.audit_retention,
        ..Retention::default()
    };
    let signer = audit_signer(config);
    if config.in_memory() {
        tracing::warn!(
            "=== IN-MEMORY STORE: nothing is persisted and replicas do not share state; use --redis-url in production ==="
        );
        let mut store = MemoryStore::new(retention);
        if chat_outbox {
            store = store.with_chat_outbox();
        }
        if let Some(sink) = sink {
            store = store.with_audit_sink(sink);
        }
        return Ok(Arc::new(match signer {
            Some(s) => store.with_audit(s),
            None => store,
        }));
    }
    let url = config.redis_url.as_deref().unwrap_or_default();
    let mut store = RedisStore::new(
        url,
        crate::store::redis::PoolConfig {
            size: config.redis_pool_size,
            wait: config.redis_pool_wait,
            connect_timeout: config.redis_connect_timeout,
            response_timeout: config.redis_response_timeout,
        },
        retention,
    )?;
    if chat_outbox {
        store = store.with_chat_outbox();
    }
    if let Some(sink) = sink {
        store = store.with_audit_sink(sink);
    }
    Ok(Arc::new(match signer {
        Some(s) => store.with_audit(s),
        None => store,
    }))
}

/// The audit signer, keyed from the variable `audit_key_env` names (None
/// when auditing is off). The key is never logged, only its id.
fn audit_signer(config: &Config) -> Option<crate::audit::Signer> {
    if !config.audit {
        tracing::warn!("audit trail OFF: changes are not recorded");
        return None;
    }
    let key = std::env::var(&config.audit_key_env).unwrap_or_default();
    let signer = if key.is_empty() {
        tracing::warn!(
            variable = %config.audit_key_env,
            "no audit key set: audit events are sealed with the PUBLIC development key and prove nothing"
        );
        crate::audit::Signer::new(crate::audit::DEVELOPMENT_KEY)
    } else {
        crate::audit::Signer::new(key.as_bytes())
    };
    tracing::info!(key_id = signer.key_id(), "audit trail on");
    Some(signer)
}

/// The authenticator, after the secure-by-default rules: without any
/// credential, loopback starts with a loud warning and any other address
/// only with `--allow-unauthenticated`; `--dev` adds a fresh admin token
/// (printed once) that is accepted beside anonymous callers.
pub fn build_auth(config: &Config) -> anyhow::Result<Arc<Authenticator>> {
    let mut settings = config.auth_settings();
    if settings.enabled() {
        let auth = Authenticator::new(&settings).map_err(anyhow::Error::msg)?;
        tracing::info!(tokens = settings.tokens.len(), "authentication on");
        return Ok(Arc::new(auth));
    }
    let ip = config.listen.ip();
    anyhow::ensure!(
        ip.is_loopback() || config.allow_unauthenticated,
        "no authentication is configured and {ip} is not a loopback address: every caller would be an anonymous admin. \
         Configure [[auth_tokens]] (verdict token create), listen on 127.0.0.1, or pass --allow-unauthenticated"
    );
    tracing::warn!(
        "=== NO AUTHENTICATION CONFIGURED: every caller is an anonymous ADMIN (may approve anything); configure [[auth_tokens]] before exposing verdict ==="
    );
    if config.dev {
        let (token, entry) =
            crate::auth::token::generate("dev-admin", [Role::Admin].into_iter().collect())
                .map_err(anyhow::Error::msg)?;
        settings.tokens.push(entry);
        settings.optional = true;
        // Printed, never logged: it is the one place the token appears.
        eprintln!("verdict --dev: admin token (this run only): {token}");
        eprintln!(
            "  try: VERDICT_TOKEN={token} verdict --addr http://{} incident list",
            config.listen
        );
    }
    Ok(Arc::new(
        Authenticator::new(&settings).map_err(anyhow::Error::msg)?,
    ))
}

/// Binds `config.listen` and starts serving in the background.
pub async fn start(config: Config, mut overrides: Overrides) -> anyhow::Result<Running> {
    let auth = match overrides.auth.take() {
        Some(settings) => Arc::new(Authenticator::new(&settings).map_err(anyhow::Error::msg)?),
        None => build_auth(&config)?,
    };
    // A JWKS URL is read before serving: an identity provider that cannot
    // be reached fails the start, naming the URL, instead of refusing
    // every JWT later.
    auth.fetch_jwks()
        .await
        .map_err(|e| anyhow::anyhow!("cannot start: {e}"))?;
    let tls = match tls::TlsFiles::from_config(&config) {
        Some(files) => Some(
            tls::ServerTls::new(files, config.tls_handshake_timeout)
                .context("cannot set up TLS on the listener")?,
        ),
        None => None,
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let background = Background::new(shutdown.clone());
    // Before anything records: handles taken earlier would record nowhere.
    let metrics = observe::install(&config)?;
    let executor = build_executor(&config).await?;
    let (sink, sink_reopen) = start_audit_sink(&config, &background).await?;
    let parts = build_parts(&config, overrides, executor, &background, sink)?;
    start_background(&config, &parts, &background).await?;
    observe::start(&config, metrics.as_ref(), &parts.hub, &background).await?;
    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, false).await;
    background.spawn(
        "store health",
        watch_store_health(parts.store.clone(), health.clone(), shutdown.clone()),
    );
    let reloader = Reloader {
        auth: auth.clone(),
        decisions: parts.decisions.clone(),
        safety: parts.safety.clone(),
        audit: config.audit.then(|| parts.incidents.audit_log()),
        in_force: Arc::new(std::sync::Mutex::new(reload::Summary::of(
            &config,
            parts.safety.as_ref(),
        ))),
        sink_reopen,
        tls: tls.clone(),
    };
    let app = routes(&config, &parts, health_service, auth)?;
    let app = observe::main_port_route(app, &config, metrics.as_ref());
    // HTTP/2 limits as settings (issue 12.6): streams per connection,
    // request header list and frame sizes. Streams that never send their
    // request are closed by `RequestTimeoutLayer` (in `routes`).
    let router = tonic::transport::Server::builder()
        .accept_http1(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .max_concurrent_streams(config.http2_max_concurrent_streams)
        .http2_max_header_list_size(config.http2_max_header_list_size)
        .max_frame_size(config.http2_max_frame_size)
        .concurrency_limit_per_connection(1024)
        .add_routes(Routes::from(app));
    // Our own accept loop (`server/incoming.rs`): a connection cap below
    // the open-file limit and back-off on accept errors, and TCP_NODELAY on
    // every accepted socket. (tonic sets it only on listeners it binds
    // itself; with Nagle's algorithm on, a response written in two segments
    // waits for the client's delayed ACK: 40 ms added to every RPC that
    // awaits anything, BENCHMARKS.md, "before".)
    let limit = incoming::ConnectionLimit::resolve(config.max_connections, config.redis_pool_size);
    tracing::info!(max_connections = limit.0, "connection cap");
    let incoming = incoming::incoming(listener, limit);
    // TLS (when configured) after the accept loop, before HTTP.
    let connections: futures::stream::BoxStream<'static, Result<tls::Conn, std::io::Error>> =
        match &tls {
            Some(tls) => tls::accept(incoming, tls.clone()).boxed(),
            None => incoming.map(|c| c.map(tls::Conn::Plain)).boxed(),
        };
    let stopping = Stopping {
        health,
        decisions: parts.decisions.clone(),
        background,
        grace: config.shutdown_grace,
    };
    let done = tokio::spawn(serve(router, connections, stopping));
    tracing::info!(%addr, tls = tls.is_some(), store = if config.in_memory() { "memory" } else { "redis" }, "verdict listening");
    Ok(Running {
        addr,
        hub: parts.hub,
        reloader,
        shutdown,
        done,
    })
}

/// What a replica is made of, built from the config.
struct Parts {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    incidents: Arc<IncidentManager>,
    decisions: Arc<DecisionManager>,
    stats: Arc<StatsManager>,
    ingestor: Arc<Ingestor>,
    hub: Arc<Hub>,
    /// Stops streams and refuses new work; cancelled at shutdown.
    shutdown: CancellationToken,
    /// Read at build time: a missing webhook token must stop the start,
    /// not surface later.
    webhook_token: Option<crate::ingest::WebhookToken>,
    /// The chat notifier, when a chat is configured.
    notifier: Option<Arc<Notifier>>,
    /// Whether the notifier's background tasks start ([`Overrides`]).
    notifier_idle: bool,
    /// The LLM answers' safety policy, reloaded with the configuration.
    safety: Option<crate::engine::policy::Policy>,
}

/// The executor of the configured kind, if it runs commands here. The
/// cluster is not contacted until a command runs, so a replica starts while
/// the API server is away.
async fn build_executor(config: &Config) -> anyhow::Result<Option<Arc<dyn Executor>>> {
    Ok(match config.executor {
        ExecutorKind::External | ExecutorKind::DryRun => None,
        ExecutorKind::Kubernetes => Some(Arc::new(
            KubernetesExecutor::connect(config.executor_settings())
                .await
                .context("cannot configure the kubernetes executor")?,
        )),
        ExecutorKind::Kubectl => Some(Arc::new(KubectlExecutor::new(config.executor_settings()))),
    })
}

/// The JSON-lines audit sink, when `audit_sink` is set (and auditing is
/// on): opened now, so a path that cannot be written stops the start;
/// its writer runs in the background. Returns the sink for the store and
/// what reopens it (on reload).
async fn start_audit_sink(
    config: &Config,
    background: &Background,
) -> anyhow::Result<(
    Option<crate::store::AuditSink>,
    Option<tokio::sync::mpsc::Sender<audit_sink::Reopen>>,
)> {
    let (true, Some(target)) = (config.audit, config.audit_sink.as_deref()) else {
        return Ok((None, None));
    };
    let target = audit_sink::Target::parse(target);
    let first = target
        .open()
        .await
        .with_context(|| format!("audit_sink: cannot open {target:?}"))?;
    let (sink, lines) = crate::store::AuditSink::channel();
    // One reopen at a time is plenty: reloads are rare.
    let (reopen, reopens) = tokio::sync::mpsc::channel(1);
    tracing::info!(?target, "audit sink on");
    background.spawn(
        "audit sink",
        audit_sink::run(target, first, lines, reopens, background.shutdown().clone()),
    );
    Ok((Some(sink), Some(reopen)))
}

/// Store, engines and managers.
fn build_parts(
    config: &Config,
    overrides: Overrides,
    executor: Option<Arc<dyn Executor>>,
    background: &Background,
    sink: Option<crate::store::AuditSink>,
) -> anyhow::Result<Parts> {
    let notify = match overrides.notify {
        Some(n) => n,
        None => config.notify_settings()?,
    };
    let notifier_idle = overrides.notifier_idle;
    let store = build_store_with(config, notify.enabled(), sink)?;
    let clock = overrides.clock.unwrap_or_else(|| Arc::new(SystemClock));
    let expert = Arc::new(match &config.rules_file {
        Some(path) => ExpertEngine::from_file(path, config.max_replicas)?,
        None => ExpertEngine::builtin(),
    });
    let (analyzer, safety): (Arc<dyn crate::engine::Analyzer>, _) = match overrides.analyzer {
        Some(a) => (a, None),
        None => {
            let engines = build_engines(config, &expert, &store, background)?;
            let safety = engines.policy().cloned();
            (engines, safety)
        }
    };
    let webhook_token = config.ingest.webhook_token()?;
    // One trail per replica: its refusal counts are shared by every caller.
    let audit = crate::manager::AuditLog::with_limits(
        store.clone(),
        clock.clone(),
        config.audit_refusal_limits(),
    );
    let mut decisions = DecisionManager::new(
        store.clone(),
        expert,
        analyzer,
        clock.clone(),
        config.decision_settings(),
        background.shutdown().clone(),
    )
    .with_audit_log(audit.clone());
    if let Some(executor) = executor {
        decisions = decisions.with_executor(executor, &config.executor_settings());
    }
    let decisions = Arc::new(decisions);
    let notifier = if notify.enabled() {
        Some(Notifier::new(
            store.clone(),
            decisions.clone(),
            clock.clone(),
            notify,
        )?)
    } else {
        None
    };
    decisions.set_approval_policy(config.approval_policy());
    let ingestor = Arc::new(Ingestor::new(
        store.clone(),
        decisions.clone(),
        clock.clone(),
        IngestSettings::from(&config.ingest),
    ));
    Ok(Parts {
        incidents: Arc::new(
            IncidentManager::new(store.clone(), clock.clone()).with_audit_log(audit.clone()),
        ),
        stats: Arc::new(StatsManager::new(
            store.clone(),
            clock.clone(),
            config.stats_retention,
        )),
        hub: Hub::new(
            config.max_watchers,
            Arc::new(crate::api::WireRender::new(clock.clone())),
        ),
        shutdown: background.shutdown().clone(),
        store,
        clock,
        decisions,
        ingestor,
        webhook_token,
        notifier,
        notifier_idle,
        safety,
    })
}

/// The dual and consensus engines (with the LLM, when one is configured).
fn build_engines(
    config: &Config,
    expert: &Arc<ExpertEngine>,
    store: &Arc<dyn Store>,
    background: &Background,
) -> anyhow::Result<Arc<Engines>> {
    let engine_settings = config.engine_settings();
    match &engine_settings.llm {
        Some(llm) => tracing::info!(
            base_url = %llm.base_url,
            model = %llm.model,
            provider = %llm.provider,
            api_key = if llm.api_key.is_some() { "set" } else { "none" },
            "LLM configured: dual engine, consensus for P0/P1"
        ),
        None => {
            tracing::info!("no LLM configured (--llm-base-url): the expert engine decides alone")
        }
    }
    Ok(Arc::new(Engines::new(
        &engine_settings,
        expert.clone(),
        store.clone(),
        background.tracker(),
    )?))
}

/// The change-feed follower (feeding the watch hub and the decision
/// manager's joined callers) and the recovery sweep, owned by `background`.
async fn start_background(
    config: &Config,
    parts: &Parts,
    background: &Background,
) -> anyhow::Result<()> {
    let (hub, decisions) = (parts.hub.clone(), parts.decisions.clone());
    let notifier = parts.notifier.clone();
    let feed = parts
        .store
        .follow_changes(
            Arc::new(move |change| match change {
                Change::Decision(d) => {
                    decisions.observe(&d);
                    if let Some(n) = &notifier {
                        n.observe(&d);
                    }
                    hub.publish(*d);
                }
                Change::Incident(i) => hub.publish_incident(*i),
            }),
            background.shutdown().clone(),
        )
        .await?;
    background.spawn("change feed", feed);
    if config.audit {
        background.spawn(
            "refusal summaries",
            parts
                .incidents
                .audit_log()
                .summarise_refusals(background.shutdown().clone()),
        );
    }
    if let Some(n) = parts.notifier.as_ref().filter(|_| !parts.notifier_idle) {
        let stop = background.shutdown();
        background.spawn("chat card outbox", n.clone().run_outbox(stop.clone()));
        if n.polls_telegram() {
            background.spawn("telegram poller", n.clone().run_poller(stop.clone()));
        }
        if n.answers_slack() {
            background.spawn("slack answers", n.clone().run_slack_answers(stop.clone()));
        }
    }
    // Dry-runs the commands of decisions this replica makes READY.
    if let Some(worker) = parts
        .decisions
        .preflight_worker(background.shutdown().clone())
    {
        background.spawn("dry-run worker", worker);
    }
    // Finishes decisions abandoned ANALYZING by a replica that died.
    if !config.sweep_interval.is_zero() {
        let sweeper = Sweeper::new(
            parts.decisions.clone(),
            parts.store.clone(),
            parts.clock.clone(),
            config.sweep_interval,
        );
        background.spawn("recovery sweep", sweeper.run(background.shutdown().clone()));
    }
    Ok(())
}

/// Every route on the one port, under the edge stack: the plain HTTP
/// routes first, everything else gRPC (or gRPC-Web).
fn routes(
    config: &Config,
    parts: &Parts,
    health_service: HealthServer<impl Health>,
    auth: Arc<Authenticator>,
) -> anyhow::Result<axum::Router> {
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(crate::proto::RPC_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            )
    };
    let watch = WatchContext {
        hub: parts.hub.clone(),
        decisions: parts.decisions.clone(),
        store: parts.store.clone(),
        clock: parts.clock.clone(),
        shutdown: parts.shutdown.clone(),
    };
    let max = config.max_message_bytes;
    let grpc = Routes::new(health_service)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .add_service(
            IncidentServiceServer::new(IncidentApi::new(
                parts.incidents.clone(),
                parts.ingestor.clone(),
                parts.webhook_token.clone(),
            ))
            .max_decoding_message_size(max),
        )
        .add_service(crate::api::DecisionRoutes::new(
            DecisionApi::new(watch),
            max,
        ))
        .add_service(
            StatsServiceServer::new(StatsApi::new(parts.stats.clone()))
                .max_decoding_message_size(max),
        )
        .add_service(AuditServiceServer::new(AuditApi::new(
            parts.incidents.audit_log(),
            parts.shutdown.clone(),
        )))
        .add_service(IdentityServiceServer::new(IdentityApi::new()));
    // gRPC-Web wraps the gRPC routes only: tonic-web answers 400 to every
    // other HTTP/1.1 request, which would shut out the plain HTTP routes.
    // CORS (when configured) answers browsers' preflights before gRPC-Web.
    // Inside gRPC-Web, the codes of requests tonic refuses before a handler
    // runs are corrected (oversized → RESOURCE_EXHAUSTED, undecodable →
    // INVALID_ARGUMENT) for both gRPC and gRPC-Web callers.
    // Only gRPC-Web requests pass through tonic-web (`grpc_web_only.rs`);
    // native gRPC goes straight to the same inner stack.
    let grpc = tower::ServiceBuilder::new()
        .layer(observe::grpc_layer(config))
        .layer(grpc_status::GrpcStatusLayer)
        .layer(request_timeout::RequestTimeoutLayer::new(
            config.http2_request_timeout,
        ))
        .service(grpc);
    let web = tower::ServiceBuilder::new()
        .option_layer(cors_layer(&config.cors_origins))
        .layer(tonic_web::GrpcWebLayer::new())
        .service(grpc.clone());
    let grpc = grpc_web_only::GrpcWebOnly::new(web, grpc);
    let app = crate::ingest::webhook::router(Webhook {
        ingestor: parts.ingestor.clone(),
        token: parts.webhook_token.clone(),
        max_bytes: config.ingest.max_webhook_bytes,
    });
    let app = match &parts.notifier {
        Some(n) => app.merge(crate::notify::webhook_router(n.clone())),
        None => app,
    };
    // The dashboard's few GET routes, unless turned off (`--no-ui`).
    let app = if config.ui_enabled {
        app.merge(ui::router())
    } else {
        app
    };
    let gate = edge::Gate {
        auth,
        audit: config.audit.then(|| parts.incidents.audit_log()),
    };
    Ok(edge::apply(app.fallback_service(grpc), gate))
}

/// How a running server stops.
struct Stopping {
    health: HealthReporter,
    decisions: Arc<DecisionManager>,
    background: Background,
    grace: Duration,
}

/// Serves until the shutdown token is cancelled (or serving fails), then
/// stops in order: health NOT_SERVING (load balancers stop sending work),
/// no new connections, in-flight RPCs and background analyses given
/// `grace`, then the background tasks awaited.
async fn serve(
    router: tonic::transport::server::Router,
    incoming: impl futures::Stream<Item = Result<tls::Conn, std::io::Error>> + Send + 'static,
    stopping: Stopping,
) -> anyhow::Result<()> {
    let token = stopping.background.shutdown().clone();
    // Stops accepting and starts the graceful drain; cancelled only after
    // health has flipped to NOT_SERVING.
    let stop_serving = CancellationToken::new();
    let serve =
        router.serve_with_incoming_shutdown(incoming, stop_serving.clone().cancelled_owned());
    tokio::pin!(serve);
    let mut until = None;
    let result = tokio::select! {
        r = &mut serve => r.map_err(anyhow::Error::from),
        _ = token.cancelled() => {
            set_health(&stopping.health, false).await;
            stop_serving.cancel();
            let grace = stopping.grace;
            let deadline = tokio::time::Instant::now() + grace;
            until = Some(deadline);
            let r = match tokio::time::timeout_at(deadline, &mut serve).await {
                Ok(r) => r.map_err(anyhow::Error::from),
                Err(_) => {
                    tracing::warn!(?grace, "in-flight requests did not finish in time; closing");
                    Ok(())
                }
            };
            stopping.decisions.drain(remaining(deadline)).await;
            r
        }
    };
    // Also when serving failed on its own: stop the feed, sweeps, streams.
    let bound = until.map_or(stopping.grace, remaining).max(BACKGROUND_STOP);
    let background = stopping.background.stop(bound).await;
    tracing::info!("server stopped");
    result.and(background)
}

/// Time left until `deadline`.
fn remaining(deadline: tokio::time::Instant) -> Duration {
    deadline.saturating_duration_since(tokio::time::Instant::now())
}

/// CORS for gRPC-Web callers on other origins, when configured: the
/// headers gRPC-Web sends, and the gRPC status headers a browser may read.
fn cors_layer(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok()))
    };
    let h = HeaderName::from_static;
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([http::Method::POST, http::Method::OPTIONS])
            .allow_headers([
                CONTENT_TYPE,
                AUTHORIZATION,
                h("x-grpc-web"),
                h("x-user-agent"),
                h("grpc-timeout"),
            ])
            .expose_headers([
                h("grpc-status"),
                h("grpc-message"),
                h("grpc-status-details-bin"),
            ])
            .max_age(Duration::from_secs(3600)),
    )
}

/// Sets the server (`""`) and each of verdict's services, by their typed
/// names, SERVING or NOT_SERVING.
async fn set_health(health: &HealthReporter, serving: bool) {
    let status = if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    health.set_service_status("", status).await;
    if serving {
        health
            .set_serving::<IncidentServiceServer<IncidentApi>>()
            .await;
        health
            .set_serving::<DecisionServiceServer<DecisionApi>>()
            .await;
        health.set_serving::<StatsServiceServer<StatsApi>>().await;
        health.set_serving::<AuditServiceServer<AuditApi>>().await;
        health
            .set_serving::<IdentityServiceServer<IdentityApi>>()
            .await;
    } else {
        health
            .set_not_serving::<IncidentServiceServer<IncidentApi>>()
            .await;
        health
            .set_not_serving::<DecisionServiceServer<DecisionApi>>()
            .await;
        health
            .set_not_serving::<StatsServiceServer<StatsApi>>()
            .await;
        health
            .set_not_serving::<AuditServiceServer<AuditApi>>()
            .await;
        health
            .set_not_serving::<IdentityServiceServer<IdentityApi>>()
            .await;
    }
}

/// Keeps health true to the store: NOT_SERVING while it does not answer.
async fn watch_store_health(
    store: Arc<dyn Store>,
    health: HealthReporter,
    shutdown: CancellationToken,
) {
    let mut last = None;
    let mut tick = tokio::time::interval(HEALTH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let ok = matches!(
            tokio::time::timeout(HEALTH_INTERVAL, store.ping()).await,
            Ok(Ok(()))
        );
        if last != Some(ok) && !shutdown.is_cancelled() {
            if ok {
                tracing::info!("store reachable: SERVING");
            } else {
                tracing::warn!("store unreachable: NOT_SERVING");
            }
            set_health(&health, ok).await;
            last = Some(ok);
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn termination_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
