//! Assembles a running campaign-manager from its configuration: storage, bus, peers,
//! service, RPC routes, event subscriptions, tick workers and the metrics/health endpoint.
//! The binaries, the demo and the end-to-end tests all start the system through [`App`], so
//! what is tested is what runs.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use campaign_workers::{Chains, SchedulerConfig};
use clap::Args;
use prometheus::Registry;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::Api;
use crate::bus::{Bus, BusOptions, Names};
use crate::config::Infra;
use crate::events::Subscriptions;
use crate::http::Probe;
use crate::metrics::Metrics;
use crate::peers::{BusPeers, Peers};
use crate::scheduler::{CampaignRunner, ExecutingCampaigns, SchedulerChains};
use crate::service::tick::Ticker;
use crate::service::{BusNotifier, Delays, RepairSettings, Service, run_repair};
use crate::store::{Cache, OverdueRule, Store};

/// Settings of the service beyond the platform's infrastructure flags.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// How many campaign ticks this process runs at once (0: run no tick workers).
    #[arg(long = "workers", env = "WORKERS", default_value_t = 500)]
    pub workers: usize,

    /// How many RPC requests are handled at once.
    #[arg(
        long = "rpc_concurrency",
        env = "RPC_CONCURRENCY",
        default_value_t = 32
    )]
    pub rpc_concurrency: usize,

    /// How many subscribed events (hangups, flow ends) are handled at once.
    #[arg(
        long = "event_concurrency",
        env = "EVENT_CONCURRENCY",
        default_value_t = 64
    )]
    pub event_concurrency: usize,

    /// Apply database migrations at start.
    #[arg(long = "migrate", env = "MIGRATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate: bool,

    /// Prefix of every queue and exchange name (empty: the platform's names).
    #[arg(long = "queue_prefix", env = "QUEUE_PREFIX", default_value = "")]
    pub queue_prefix: String,

    /// Prefix of the cache keys (empty: the platform's keys).
    #[arg(long = "cache_prefix", env = "CACHE_PREFIX", default_value = "")]
    pub cache_prefix: String,

    /// Redis namespace of the tick scheduler.
    #[arg(
        long = "tick_namespace",
        env = "TICK_NAMESPACE",
        default_value = "campaign-manager:ticks"
    )]
    pub tick_namespace: String,

    /// Delay of the first tick after `run`, ms.
    #[arg(long = "first_tick_ms", env = "FIRST_TICK_MS", default_value_t = 1000)]
    pub first_tick_ms: u64,

    /// Delay after a dial, ms.
    #[arg(long = "dial_tick_ms", env = "DIAL_TICK_MS", default_value_t = 500)]
    pub dial_tick_ms: u64,

    /// Delay when waiting (no capacity, retry interval, empty list), ms.
    #[arg(long = "wait_tick_ms", env = "WAIT_TICK_MS", default_value_t = 5000)]
    pub wait_tick_ms: u64,

    /// Longest a tick may run, ms. Past it the tick's lease is not renewed (its chain is
    /// re-seeded) and it may record no dial and ask no peer.
    #[arg(long = "max_tick_ms", env = "MAX_TICK_MS", default_value_t = 30_000)]
    pub max_tick_ms: u64,

    /// How many available targets a tick asks the outdial for; the first one ready is dialed.
    #[arg(long = "target_batch", env = "TARGET_BATCH", default_value_t = 20)]
    pub target_batch: u32,

    /// How often the campaigncall repair runs, ms (in processes with tick workers).
    #[arg(
        long = "repair_interval_ms",
        env = "REPAIR_INTERVAL_MS",
        default_value_t = 5_000
    )]
    pub repair_interval_ms: u64,

    /// A campaigncall still dialing this long after the outplan's dial_timeout is looked up at
    /// its peer, ms. Must exceed max_tick_ms plus the RPC timeout (3 s).
    #[arg(
        long = "repair_margin_ms",
        env = "REPAIR_MARGIN_MS",
        default_value_t = 60_000
    )]
    pub repair_margin_ms: u64,

    /// The longest call, s: a progressing campaigncall is looked up at its peer after this
    /// long, and one still reported up after it is given up as failed.
    #[arg(
        long = "max_call_duration_s",
        env = "MAX_CALL_DURATION_S",
        default_value_t = 7_200
    )]
    pub max_call_duration_s: u64,

    /// Delays before retry 1, 2, 3 of a failed subscribed event, ms (comma-separated; the
    /// count is the number of retries). After the last, the event goes to the dead-letter queue.
    #[arg(
        long = "event_retry_ms",
        env = "EVENT_RETRY_MS",
        value_delimiter = ',',
        default_value = "5000,30000,120000"
    )]
    pub event_retry_ms: Vec<u64>,

    /// Serve the metrics/health endpoint.
    #[arg(long = "serve_http", env = "SERVE_HTTP", default_value_t = true, action = clap::ArgAction::Set)]
    pub serve_http: bool,
}

impl Settings {
    /// Tick delays from the settings.
    pub fn delays(&self) -> Delays {
        Delays {
            first: Duration::from_millis(self.first_tick_ms),
            after_dial: Duration::from_millis(self.dial_tick_ms),
            wait: Duration::from_millis(self.wait_tick_ms),
            ..Delays::default()
        }
    }

    /// Repair settings, refused when the margin could let a late dial request arrive after the
    /// repair concluded it was never made.
    pub fn repair(&self) -> anyhow::Result<RepairSettings> {
        let rpc_timeout_ms = 3_000;
        if self.repair_margin_ms <= self.max_tick_ms + rpc_timeout_ms {
            anyhow::bail!(
                "repair_margin_ms ({}) must exceed max_tick_ms ({}) + the RPC timeout ({rpc_timeout_ms})",
                self.repair_margin_ms,
                self.max_tick_ms
            );
        }
        let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Ok(RepairSettings {
            rule: OverdueRule {
                margin_ms: ms(self.repair_margin_ms),
                max_call_ms: ms(self.max_call_duration_s.saturating_mul(1000)),
            },
            ..RepairSettings::default()
        })
    }

    /// Queue and exchange names.
    pub fn names(&self) -> Names {
        if self.queue_prefix.is_empty() {
            Names::default()
        } else {
            Names::prefixed(&self.queue_prefix)
        }
    }
}

/// What a process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// RPC routes, event subscriptions and (if `workers > 0`) tick workers.
    Service,
    /// Tick workers only (`campaign-worker`).
    Worker,
}

/// A running system.
pub struct App {
    /// The service (for in-process callers such as tests and the demo).
    pub service: Service,
    /// The API (dispatch without a broker).
    pub api: Arc<Api>,
    /// The bus.
    pub bus: Arc<Bus>,
    /// The scheduler handle.
    pub chains: Chains,
    /// Metrics registry of the process.
    pub metrics: Metrics,
    stop_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

struct StoreProbe(Store);
#[async_trait]
impl Probe for StoreProbe {
    fn name(&self) -> &'static str {
        "mysql"
    }
    async fn ready(&self) -> bool {
        self.0.ping().await
    }
}

struct CacheProbe(Cache);
#[async_trait]
impl Probe for CacheProbe {
    fn name(&self) -> &'static str {
        "redis"
    }
    async fn ready(&self) -> bool {
        self.0.ping().await
    }
}

struct BrokerProbe(Arc<Bus>);
#[async_trait]
impl Probe for BrokerProbe {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }
    async fn ready(&self) -> bool {
        self.0.is_healthy()
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
        let repair = settings.repair()?;
        let metrics = Metrics::new(Registry::new()).context("registering metrics")?;
        let cache =
            Cache::new(&infra.redis_url(), &settings.cache_prefix).context("redis address")?;
        let db_url = infra.database_url()?;
        let store = Store::connect(&db_url, cache.clone())
            .await
            .with_context(|| format!("connecting to MySQL ({})", redact(&db_url)))?;
        if settings.migrate {
            store
                .migrate()
                .await
                .context("applying database migrations")?;
        }
        let names = settings.names();
        let bus = Arc::new(
            Bus::connect_with(&infra.rabbitmq_address, names.clone(), &metrics.registry, {
                let mut o = BusOptions::default();
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
        let mut sched = SchedulerConfig::new(infra.redis_url(), settings.tick_namespace.clone());
        sched.concurrency = settings.workers.max(1);
        sched.max_tick = Duration::from_millis(settings.max_tick_ms);
        let chains = Chains::connect(&sched)
            .await
            .context("connecting the tick scheduler to Redis")?;

        let peers = Peers::over_bus(BusPeers::new(bus.rpc(), names));
        let notifier = Arc::new(BusNotifier::new(
            bus.publisher(),
            peers.webhook.clone(),
            metrics.clone(),
        ));
        let service = Service {
            store: store.clone(),
            peers,
            notifier,
            chains: Arc::new(SchedulerChains(chains.clone())),
            metrics: metrics.clone(),
            delays: settings.delays(),
        };
        let api = Api::new(service.clone());
        if role == Role::Service {
            bus.serve_requests(api.clone(), settings.rpc_concurrency)
                .await
                .context("serving the request queue")?;
            bus.subscribe(Subscriptions::new(service.clone()))
                .await
                .context("subscribing to call and flow events")?;
        }

        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        if settings.workers > 0 {
            let ticker = Ticker::new(service.clone()).with_target_batch(settings.target_batch);
            // Ticks read campaigns and outplans from an in-process copy that the service's
            // own change events keep fresh (service::campaign_cache).
            tasks.push(tokio::spawn(crate::events::changes::listen(
                bus.connection().clone(),
                bus.names().event_exchange.clone(),
                ticker.cache(),
                stop_rx.clone(),
            )));
            let runner = Arc::new(CampaignRunner(Arc::new(ticker)));
            let source = Arc::new(ExecutingCampaigns(store.clone()));
            let registry = metrics.registry.clone();
            let stop = wait_stop(stop_rx.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) =
                    campaign_workers::run_workers(sched, runner, source, &registry, stop).await
                {
                    tracing::error!(error = %e, "tick workers stopped with an error");
                }
            }));
        }
        if settings.workers > 0 {
            tasks.push(tokio::spawn(run_repair(
                service.clone(),
                repair,
                Duration::from_millis(settings.repair_interval_ms.max(100)),
                wait_stop(stop_rx.clone()),
            )));
        }
        if settings.serve_http {
            let listen = infra.metrics_listen();
            let listener_check = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("binding the metrics endpoint on {listen}"))?;
            drop(listener_check);
            let probes: Vec<Box<dyn Probe>> = vec![
                Box::new(StoreProbe(store)),
                Box::new(CacheProbe(cache)),
                Box::new(BrokerProbe(bus.clone())),
            ];
            let (path, m, stop) = (
                infra.prometheus_endpoint.clone(),
                metrics.clone(),
                wait_stop(stop_rx.clone()),
            );
            tasks.push(tokio::spawn(async move {
                if let Err(e) = crate::http::serve(&listen, &path, m, probes, stop).await {
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
            api,
            bus,
            chains,
            metrics,
            stop_tx,
            tasks,
        })
    }

    /// Graceful stop: stop taking requests and ticks, let running ones finish (bounded),
    /// close the broker connection.
    pub async fn stop(self) {
        let _ = self.stop_tx.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.bus.shutdown().await;
    }
}

/// A URL with its password replaced, for error messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

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

#[derive(clap::Parser)]
struct SettingsOnly {
    #[command(flatten)]
    settings: Settings,
}

impl Settings {
    /// The defaults, overridden by the environment.
    pub fn from_env() -> Settings {
        use clap::Parser;
        SettingsOnly::parse_from(["campaign-manager"]).settings
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
