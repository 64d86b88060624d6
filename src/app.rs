//! Assembles a running campaign-manager from its configuration: storage, bus, peers,
//! service, RPC routes, event subscriptions, tick workers and the metrics/health endpoint.
//! The binaries, the demo and the end-to-end tests all start the system through [`App`], so
//! what is tested is what runs.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use campaign_workers::{Chains, WorkerHealth};
use prometheus::Registry;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::Api;
use crate::bus::{Bus, BusOptions, QueueGauges};
use crate::config::{Infra, Settings};
use crate::events::Subscriptions;
use crate::http::Probe;
use crate::metrics::Metrics;
use crate::notify::BusNotifier;
use crate::peers::{BusPeers, Peers};
use crate::scheduler::{CampaignRunner, ExecutingCampaigns, SchedulerChains};
use crate::service::tick::Ticker;
use crate::service::{Service, run_repair};
use crate::store::{Cache, MigrationReport, Store};

/// What a process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// RPC routes, event subscriptions and (if `workers > 0`) tick workers.
    Service,
    /// Tick workers only (`campaign-worker`).
    Worker,
}

/// How long [`App::stop`] waits for its tasks: the tick workers' drain (10 s, the workers
/// crate's `shutdown_timeout`) plus an RPC timeout and slack. The Deployments'
/// `terminationGracePeriodSeconds` (30 s and more) outlast it.
pub const STOP_BOUND: Duration = Duration::from_secs(20);

/// A running system.
pub struct App {
    /// The service (for in-process callers such as tests and the demo).
    pub service: Service,
    /// The store the service uses (for in-process callers that set up data: tests, benchmarks).
    pub store: Store,
    /// The API (dispatch without a broker).
    pub api: Arc<Api>,
    /// The bus.
    pub bus: Arc<Bus>,
    /// The scheduler handle.
    pub chains: Chains,
    /// Metrics registry of the process.
    pub metrics: Metrics,
    /// Where the metrics and health endpoints listen (`None` with `serve_http = false`).
    pub http_addr: Option<std::net::SocketAddr>,
    /// This process's tick workers (reported by `/readyz`; `None` with `workers = 0`).
    pub worker_health: Option<WorkerHealth>,
    stop_tx: watch::Sender<bool>,
    stop_workers_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

struct StoreProbe(Store);
#[async_trait]
impl Probe for StoreProbe {
    fn name(&self) -> &'static str {
        "mysql"
    }
    async fn check(&self) -> Result<(), String> {
        if self.0.ping().await {
            Ok(())
        } else {
            Err("SELECT 1 failed".to_owned())
        }
    }
}

struct CacheProbe(Cache);
#[async_trait]
impl Probe for CacheProbe {
    fn name(&self) -> &'static str {
        "redis"
    }
    async fn check(&self) -> Result<(), String> {
        if self.0.ping().await {
            Ok(())
        } else {
            Err("PING failed".to_owned())
        }
    }
}

struct BrokerProbe(Arc<Bus>);
#[async_trait]
impl Probe for BrokerProbe {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }
    async fn check(&self) -> Result<(), String> {
        if self.0.is_healthy() {
            Ok(())
        } else {
            Err("no live connection".to_owned())
        }
    }
}

struct WorkersProbe(WorkerHealth);
#[async_trait]
impl Probe for WorkersProbe {
    fn name(&self) -> &'static str {
        "workers"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.check()
    }
}

async fn wait_stop(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

impl App {
    /// Connects everything and starts serving. Fails (and the binary exits non-zero) when a
    /// dependency cannot be reached, instead of running half-connected.
    pub async fn start(infra: &Infra, settings: &Settings, role: Role) -> anyhow::Result<App> {
        let infra = &infra.clone().with_secret_files()?;
        let repair = settings.repair()?;
        let database = infra.database()?;
        for note in &database.notes {
            tracing::warn!(database = %database.describe(), "{note}");
        }
        let metrics = Metrics::new(Registry::new()).context("registering metrics")?;
        let cache =
            Cache::new(&infra.redis_url(), &settings.cache_prefix).context("redis address")?;
        let store =
            Store::connect_with(&database, cache.clone(), settings.database_max_connections)
                .await
                .with_context(|| format!("connecting to MySQL ({})", database.describe()))?;
        metrics
            .registry
            .register(Box::new(store.dials.pool_wait()))
            .context("registering the pool wait metric")?;
        metrics
            .registry
            .register(Box::new(store.dials.retries()))
            .context("registering the record retries metric")?;
        metrics
            .registry
            .register(Box::new(store.campaigncalls.retries()))
            .context("registering the finish retries metric")?;
        if settings.migrate {
            store
                .migrate()
                .await
                .context("applying database migrations")?;
        }
        let names = settings.names();
        let bus = Arc::new(
            Bus::connect_with(&infra.rabbitmq_address, names.clone(), &metrics.registry, {
                let mut o = BusOptions {
                    event_bus: settings.event_bus,
                    ..BusOptions::default()
                };
                o.subscriber.topic_patterns = crate::events::topic_patterns();
                o.subscriber.concurrency = settings.event_concurrency.max(1);
                o.subscriber.retry_delays = settings
                    .event_retry_ms
                    .iter()
                    .map(|ms| Duration::from_millis(*ms))
                    .collect();
                o
            })
            .await
            .with_context(|| {
                format!(
                    "connecting to RabbitMQ ({})",
                    redact(&infra.rabbitmq_address)
                )
            })?,
        );
        bus.declare_event_exchange().await.with_context(|| {
            format!(
                "declaring the event exchange {}",
                bus.publisher().exchange()
            )
        })?;
        let mut sched = infra.scheduler(&settings.tick_namespace, settings.tick_shards.into());
        sched.concurrency = settings.workers.max(1);
        sched.max_tick = Duration::from_millis(settings.max_tick_ms);
        let chains = Chains::connect(&sched)
            .await
            .context("connecting the tick scheduler to Redis")?;

        let peers = Peers::over_bus(BusPeers::new(bus.rpc(), names));
        let notifier = Arc::new(BusNotifier::new(
            bus.publisher(),
            bus.change_publisher(),
            peers.webhook.clone(),
            metrics.clone(),
        ));
        let service = Service::new(
            store.clone(),
            peers,
            notifier,
            Arc::new(SchedulerChains(chains.clone())),
            metrics.clone(),
            settings.delays(),
        );
        let api = Api::new(service.clone());
        if role == Role::Service {
            bus.serve_requests(api.clone(), settings.rpc_concurrency)
                .await
                .context("serving the request queue")?;
            bus.subscribe(Subscriptions::new(service.clone()))
                .await
                .with_context(|| {
                    format!(
                        "subscribing to call and flow events ({} bus)",
                        settings.event_bus
                    )
                })?;
        }

        let (stop_tx, stop_rx) = watch::channel(false);
        let (stop_workers_tx, stop_workers_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut worker_health = None;
        if settings.workers > 0 {
            let ticker = Ticker::new(service.clone()).with_target_batch(settings.target_batch);
            // Ticks read campaigns and outplans from an in-process copy that the service's
            // own change notices keep fresh (service::campaign_cache).
            tasks.push(tokio::spawn(crate::events::changes::listen(
                bus.connection().clone(),
                bus.names().change_exchange.clone(),
                ticker.cache(),
                stop_rx.clone(),
            )));
            let runner = Arc::new(CampaignRunner(Arc::new(ticker)));
            let source = Arc::new(ExecutingCampaigns {
                store: store.clone(),
                namespace: settings.tick_namespace.clone(),
            });
            let registry = metrics.registry.clone();
            let (all, workers_only) = (wait_stop(stop_rx.clone()), wait_stop(stop_workers_rx));
            let stop = async move {
                tokio::select! {
                    _ = all => {},
                    _ = workers_only => {},
                }
            };
            let health = WorkerHealth::new();
            worker_health = Some(health.clone());
            tasks.push(tokio::spawn(async move {
                let run = campaign_workers::run_workers_reporting(
                    sched, runner, source, &registry, &health, stop,
                );
                if let Err(e) = run.await {
                    tracing::error!(error = %e, "tick workers stopped with an error");
                }
            }));
        }
        // The repair runs beside the RPC server too, without tick workers: the service's base
        // deployment (no ticking) still resolves campaigncalls whose hangup was lost.
        if settings.workers > 0 || role == Role::Service {
            tasks.push(tokio::spawn(run_repair(
                service.clone(),
                repair,
                Duration::from_millis(settings.repair_interval_ms.max(100)),
                wait_stop(stop_rx.clone()),
            )));
        }
        if role == Role::Service {
            tasks.extend(watch_deployment(
                &store,
                &bus,
                &metrics,
                &settings.tick_namespace,
                &stop_rx,
            )?);
        }
        let mut http_addr = None;
        if settings.serve_http {
            let listen = infra.metrics_listen();
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("binding the metrics endpoint on {listen}"))?;
            http_addr = listener.local_addr().ok();
            let mut probes: Vec<Box<dyn Probe>> = vec![
                Box::new(StoreProbe(store.clone())),
                Box::new(CacheProbe(cache)),
                Box::new(BrokerProbe(bus.clone())),
            ];
            if let Some(health) = &worker_health {
                probes.push(Box::new(WorkersProbe(health.clone())));
            }
            let (path, m, stop) = (
                infra.prometheus_endpoint.clone(),
                metrics.clone(),
                wait_stop(stop_rx.clone()),
            );
            tasks.push(tokio::spawn(async move {
                if let Err(e) = crate::http::serve(listener, &path, m, probes, stop).await {
                    tracing::error!(error = %e, "metrics endpoint stopped");
                }
            }));
        }
        tracing::info!(
            ?role,
            workers = settings.workers,
            "campaign-manager started"
        );
        Ok(App {
            service,
            store,
            api,
            bus,
            chains,
            metrics,
            http_addr,
            worker_health,
            stop_tx,
            stop_workers_tx,
            tasks,
        })
    }

    /// Stops this process's tick workers only (running ticks finish), leaving RPC, events and
    /// `/readyz` up; from then on `/readyz` reports the workers as stopped.
    pub fn stop_workers(&self) {
        let _ = self.stop_workers_tx.send(true);
    }

    /// Graceful stop: stop taking requests and ticks, let running ones finish (bounded),
    /// close the broker connection.
    pub async fn stop(self) {
        let _ = self.stop_tx.send(true);
        // Every task watches `stop`; the bound only guards against one that does not (a peer or
        // broker call stuck past its own timeout), so that a stop always ends.
        let deadline = tokio::time::Instant::now() + STOP_BOUND;
        let mut abandoned = 0;
        for mut t in self.tasks {
            if tokio::time::timeout_at(deadline, &mut t).await.is_err() {
                t.abort();
                abandoned += 1;
            }
        }
        if abandoned > 0 {
            tracing::warn!(
                abandoned,
                bound_s = STOP_BOUND.as_secs(),
                "tasks still running at the stop bound were aborted"
            );
        }
        if let Err(e) = self.store.dials.flush_requested_marks().await {
            tracing::warn!(error = %e, "requested marks not written at the stop; the repair resolves those dials");
        }
        if let Err(e) = self.store.outbox.flush_deletes().await {
            tracing::warn!(error = %e, "outbox deletes not written at the stop; the repair settles those rows");
        }
        self.bus.shutdown().await;
    }
}

/// `campaign-manager migrate`: applies the database migrations of `migrations/` (see
/// `store::migrate`) and returns what it did. Needs only the database (no Redis, no broker), so
/// it runs as a one-off job before the long-running processes start with `MIGRATE=false`.
pub async fn migrate(infra: &Infra) -> anyhow::Result<MigrationReport> {
    let infra = infra.clone().with_secret_files()?;
    let database = infra.database()?;
    for note in &database.notes {
        tracing::warn!(database = %database.describe(), "{note}");
    }
    let store = Store::connect(&database, Cache::disabled())
        .await
        .with_context(|| format!("connecting to MySQL ({})", database.describe()))?;
    let report = store
        .migrate()
        .await
        .context("applying database migrations");
    store.pool.close().await;
    report
}

/// The service processes' view of the deployment (see `crate::gauges` and
/// `campaign_bus::queue_gauges`): executing campaigns and the durable tick switch from MySQL,
/// depth and consumers of the request, subscribe and dead-letter queues from the broker.
fn watch_deployment(
    store: &Store,
    bus: &Arc<Bus>,
    metrics: &Metrics,
    namespace: &str,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let queue_gauges =
        QueueGauges::register(&metrics.registry).context("registering the queue gauges")?;
    let names = bus.names();
    let queues = vec![
        names.request_queue.clone(),
        names.subscribe_queue.clone(),
        names.subscribe_dead_queue.clone(),
    ];
    Ok(vec![
        tokio::spawn(crate::gauges::watch_deployment(
            store.clone(),
            namespace.to_owned(),
            metrics.clone(),
            crate::gauges::GAUGE_INTERVAL,
            stop.clone(),
        )),
        tokio::spawn(queue_gauges.watch(
            bus.connection().clone(),
            queues,
            crate::gauges::GAUGE_INTERVAL,
            stop.clone(),
        )),
    ])
}

/// A URL with its password replaced, for error messages.
pub use crate::config::redact_url as redact;

/// Resolves on SIGTERM, SIGINT or SIGHUP.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hup = signal(SignalKind::hangup()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {},
        _ = async { match hup.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {},
    }
}

/// The body of the service binaries: start, wait for a signal, stop gracefully. A start
/// failure is printed with its cause and exits 1.
pub async fn run_until_signal(
    name: &str,
    infra: &Infra,
    settings: &Settings,
    role: Role,
) -> std::process::ExitCode {
    let app = match App::start(infra, settings, role).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "{name} could not start");
            eprintln!("{name} could not start: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    shutdown_signal().await;
    tracing::info!("shutting down");
    app.stop().await;
    std::process::ExitCode::SUCCESS
}
