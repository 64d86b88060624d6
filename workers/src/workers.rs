//! [`run_workers`]: everything one process contributes to the cluster, until shutdown.
//!
//! * one apalis-redis worker (unique name, fast heartbeat, at most `concurrency + max_waiting`
//!   jobs of up to `ticks_per_job` ticks in flight) running [`tick_job::deliver`]; restarted
//!   under a fresh name if it dies (apalis workers die on Redis errors, e.g. a flushed Redis
//!   unregisters them). Its fetch polls every `poll_interval` (5 ms) while it finds jobs, slows
//!   down to `idle_poll_interval` (1 s) while it finds none, and is woken at once when the feeder
//!   hands jobs over (`wake::FetchPace`);
//! * the feeder, the reconciler, the vacuum, the lease keeper and a gauge refresher, and the
//!   subscriber of the namespace's wake notices (`wake`): with nothing due, each loop sleeps
//!   until a notice or its long interval, so an idle process costs next to nothing;
//! * once per process, a reader of the durable off switch (`switch`), which the feeder and the
//!   tick jobs of every shard consult, and the permit-use gauge (`permits`);
//! * two [`Batcher`]s that send the process' claims and finishes as one script call per batch.
//!
//! apalis-redis settings that matter, and why (checked against its 1.0 source):
//! * `lock_tasks(false)`: its lock step is an `LREM` over the whole backlog per job (the measured
//!   throughput limit) and only marks a status; `fetch_next` already moves jobs into the worker's
//!   in-flight set, which is what orphan recovery uses.
//! * `batch_size ≥ jobs in flight / 2`: completions go through a channel of `4 × batch_size` that a
//!   stopping worker drains only after all in-flight jobs finished; smaller, a graceful stop under
//!   load deadlocks.
//! * `emit_events(false)`: nobody listens to its pub/sub; it costs a `PUBLISH` per job.
//!
//! Shutdown: tell every task to stop; ticks waiting for their due time hand themselves back to the
//! feed (another process runs them on time); running ticks finish and schedule their successors
//! while their leases are still renewed; after `shutdown_timeout` whatever still runs is left to
//! its lease and the reconciler.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{BackendExt, WorkerBuilder, WorkerBuilderExt};
use apalis_redis::RedisStorage;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::batcher::Batcher;
use crate::chain_state::{ChainState, Claim, ClaimRequest, Finish, FinishRequest};
use crate::feeder::Feeder;
use crate::health::{Loop, WorkerHealth};
use crate::keys::Keys;
use crate::lease_keeper::{RunningTicks, keep_leases};
use crate::metrics::{LoopName, Metrics};
use crate::permits::PermitUse;
use crate::reconciler::Reconciler;
use crate::redis_conn::{self, RedisConn};
use crate::stats::{read_gauges, read_stats};
use crate::switch::OffSwitch;
use crate::tick_job::{self, Delivery, TickContext, local_now_ms};
use crate::vacuum::run_vacuum;
use crate::wake::{self, FetchPace, Wakes};
use crate::{ChainRunner, ChainSource, SchedulerConfig, SchedulerError};

/// Pause before restarting an apalis worker that failed.
const RESTART_PAUSE: Duration = Duration::from_millis(500);
/// How often the cluster-wide gauges are refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);
/// Delay before the next tick of a chain whose runner panicked.
const PANIC_BACKOFF: Duration = Duration::from_secs(5);

/// Run worker tasks until `shutdown` resolves: apalis worker(s) + reconciler + vacuum.
/// Graceful: stop taking ticks, let running ones finish within `cfg.shutdown_timeout`, return Ok.
///
/// Errors only at start-up (invalid config, Redis unreachable, metrics already registered);
/// once running, Redis trouble is logged and retried.
pub async fn run_workers(
    cfg: SchedulerConfig,
    runner: Arc<dyn ChainRunner>,
    source: Arc<dyn ChainSource>,
    registry: &prometheus::Registry,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SchedulerError> {
    let health = WorkerHealth::new();
    run_workers_reporting(cfg, runner, source, registry, &health, shutdown).await
}

/// [`run_workers`], keeping `health` up to date: not ready until every task runs, and from the
/// moment any of them ends or stalls, or this function returns (see [`WorkerHealth`]).
pub async fn run_workers_reporting(
    cfg: SchedulerConfig,
    runner: Arc<dyn ChainRunner>,
    source: Arc<dyn ChainSource>,
    registry: &prometheus::Registry,
    health: &WorkerHealth,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SchedulerError> {
    let _stopped = health.stopped_on_drop();
    cfg.validate()?;
    let permits = Arc::new(tokio::sync::Semaphore::new(cfg.concurrency));
    registry.register(Box::new(PermitUse::new(permits.clone(), cfg.concurrency)?))?;
    let switch = OffSwitch::watch(source.clone(), cfg.switch_interval);
    let mut shards = cfg.shard_configs();
    if shards.len() == 1 {
        let shard = shards.remove(0);
        let metrics = Metrics::register(registry, None)?;
        let shared = Shared { permits, switch };
        return run_shard(shard, runner, source, metrics, health, shared, shutdown).await;
    }

    // Several shards: each runs as a namespace of its own (apalis worker, feeder, reconciler,
    // ...) over the chains that belong to it, sharing this process' tick permits.
    let base_name = cfg.base_worker_name();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut runs = JoinSet::new();
    for (i, shard) in shards.into_iter().enumerate() {
        let shard = SchedulerConfig {
            worker_name: Some(format!("{base_name}-s{i}")),
            ..shard
        };
        let metrics = Metrics::register(registry, Some(i))?;
        let source: Arc<dyn ChainSource> = Arc::new(ShardSource {
            all: source.clone(),
            router: cfg.clone(),
            shard: i,
        });
        let (runner, health) = (runner.clone(), health.add_shard());
        let shared = Shared {
            permits: permits.clone(),
            switch: switch.clone(),
        };
        let mut stop = stop_rx.clone();
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        runs.spawn(async move {
            run_shard(shard, runner, source, metrics, &health, shared, stopped).await
        });
    }
    health.set_started();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            done = runs.join_next() => match done {
                // A shard failed to start: stop the others and report it.
                Some(Ok(Err(e))) => {
                    stop_tx.send_replace(true);
                    while runs.join_next().await.is_some() {}
                    return Err(e);
                }
                Some(_) => {}
                None => return Ok(()),
            },
        }
    }
    stop_tx.send_replace(true);
    while let Some(done) = runs.join_next().await {
        if let Ok(Err(e)) = done {
            tracing::warn!(error = %e, "a shard's workers stopped with an error");
        }
    }
    Ok(())
}

/// The chains of one shard: those of `all` whose id maps to `shard`. Each shard's reconciler
/// reads the source itself (K reads per reconcile interval, cluster-wide): a read shared between
/// shards would be older than the reconciler's own snapshot, and it spares only chains born after
/// that snapshot.
struct ShardSource {
    all: Arc<dyn ChainSource>,
    router: SchedulerConfig,
    shard: usize,
}

#[async_trait::async_trait]
impl ChainSource for ShardSource {
    async fn wanted(&self) -> Result<Vec<String>, crate::BoxError> {
        let mut ids = self.all.wanted().await?;
        ids.retain(|id| self.router.shard_of(id) == self.shard);
        Ok(ids)
    }

    async fn switched_off(&self) -> Result<bool, crate::BoxError> {
        self.all.switched_off().await
    }
}

/// What the shards of one process share: the tick permits and the durable off switch.
struct Shared {
    permits: Arc<tokio::sync::Semaphore>,
    switch: OffSwitch,
}

/// The worker tasks of one shard (or of the whole namespace when it has one), until `shutdown`.
async fn run_shard(
    cfg: SchedulerConfig,
    runner: Arc<dyn ChainRunner>,
    source: Arc<dyn ChainSource>,
    metrics: Metrics,
    health: &WorkerHealth,
    shared: Shared,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SchedulerError> {
    let keys = Arc::new(Keys::new(&cfg.namespace));
    let state = ChainState::new(
        redis_conn::connect(&cfg.redis_url, &cfg.cluster_nodes).await?,
        keys.clone(),
    );
    let apalis_conn = redis_conn::connect(&cfg.redis_url, &cfg.cluster_nodes).await?;
    let clock_offset_ms = measure_clock_offset(&state).await?;
    let base_name = cfg.base_worker_name();
    tracing::info!(worker = %base_name, namespace = %cfg.namespace, clock_offset_ms, "starting chain workers");

    let (stop_tx, stop_rx) = watch::channel(false);
    let running = RunningTicks::default();
    let wakes = Wakes::default();
    let ctx = Arc::new(TickContext {
        state: state.clone(),
        claims: claim_batcher(state.clone(), cfg.lease),
        finishes: finish_batcher(state.clone()),
        runner,
        metrics: metrics.clone(),
        running: running.clone(),
        permits: shared.permits.clone(),
        stopping: stop_rx.clone(),
        max_tick: cfg.max_tick,
        clock_offset_ms,
        panic_backoff: PANIC_BACKOFF,
        switch: shared.switch.clone(),
        wakes: wakes.clone(),
    });
    let apalis_config = apalis_config(&cfg);
    let mut background = JoinSet::new();
    background.spawn(wake::listen(
        subscribe_url(&cfg),
        keys.wake.clone(),
        wakes.clone(),
        stop_rx.clone(),
    ));

    background.spawn(
        health.track(
            Loop::Feeder,
            cfg.feed_interval,
            Feeder {
                state: state.clone(),
                apalis_conn: apalis_conn.clone(),
                apalis_config: apalis_config.clone(),
                lead: cfg.lead,
                feed_batch: cfg.feed_batch,
                ticks_per_job: cfg.ticks_per_job,
                max_queued: cfg.max_queued,
                lease: cfg.lease,
                feed_interval: cfg.feed_interval,
                unknown_pause_grace: cfg.unknown_pause_grace,
                switch: shared.switch,
                idle_poll: cfg.idle_poll(),
                wakes: wakes.clone(),
                permits: shared.permits.clone(),
                wakeups: metrics.wakeups(LoopName::Feeder),
            }
            .run(stop_rx.clone()),
        ),
    );
    background.spawn(
        health.track(
            Loop::Reconciler,
            cfg.quiet_reconcile(),
            Reconciler {
                state: state.clone(),
                source,
                metrics: metrics.clone(),
                interval: cfg.reconcile_interval,
                reseed_spread: cfg.reseed_spread,
                lock_owner: base_name.clone(),
                quiet_interval: cfg.quiet_reconcile(),
                wakes: wakes.clone(),
                wakeups: metrics.wakeups(LoopName::Reconciler),
            }
            .run(stop_rx.clone()),
        ),
    );
    background.spawn(run_vacuum(
        state.conn.clone(),
        keys.clone(),
        cfg.vacuum_interval,
        stop_rx.clone(),
    ));
    background.spawn(refresh_gauges(
        GaugeReads {
            conn: state.conn.clone(),
            keys: keys.clone(),
            metrics: metrics.clone(),
            orphan_after: cfg.heartbeat_interval
                * u32::try_from(cfg.missed_heartbeats).unwrap_or(u32::MAX),
            quiet_interval: cfg.quiet_reconcile(),
            wakes: wakes.clone(),
        },
        stop_rx.clone(),
    ));
    // The lease keeper outlives the stop signal: it renews until the last tick finished.
    let (ticks_done_tx, ticks_done_rx) = watch::channel(false);
    let keeper = tokio::spawn(health.track(
        Loop::LeaseKeeper,
        cfg.lease / 3,
        keep_leases(state.clone(), running.clone(), cfg.lease, ticks_done_rx),
    ));
    let pace = FetchPace::new(
        &wakes,
        cfg.poll_interval,
        cfg.idle_poll(),
        metrics.wakeups(LoopName::Fetch),
    );
    let backend = Apalis {
        conn: apalis_conn,
        config: apalis_config,
        pace,
    };
    let mut supervisor = tokio::spawn(supervise(
        ctx,
        base_name,
        backend,
        cfg.clone(),
        stop_rx,
        health.clone(),
    ));
    health.set_started();

    shutdown.await;
    tracing::info!("stopping chain workers");
    stop_tx.send_replace(true);
    let deadline = Instant::now() + cfg.shutdown_timeout;
    if tokio::time::timeout_at(deadline, &mut supervisor)
        .await
        .is_err()
    {
        tracing::warn!(
            running = running.len(),
            "ticks still running after the shutdown timeout; leaving them to their leases"
        );
        supervisor.abort();
    }
    // Ticks detached from a failed apalis worker may still be finishing.
    while running.len() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ticks_done_tx.send_replace(true);
    let _ = keeper.await;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while background.join_next().await.is_some() {}
    })
    .await;
    background.abort_all();
    tracing::info!("chain workers stopped");
    Ok(())
}

/// Most ticks in one claim or finish script call.
const MAX_BATCH: usize = 500;
/// Claim (or finish) calls one process has on the wire at once.
const CALLS_IN_FLIGHT: usize = 4;

/// The claims of this process, one script call per batch.
fn claim_batcher(state: ChainState, lease: Duration) -> Batcher<ClaimRequest, Claim> {
    Batcher::spawn(
        "claim",
        MAX_BATCH,
        CALLS_IN_FLIGHT,
        move |reqs: Vec<ClaimRequest>| {
            let state = state.clone();
            async move { state.claim_many(&reqs, lease).await }
        },
    )
}

/// The finishes of this process, one script call per batch.
fn finish_batcher(state: ChainState) -> Batcher<FinishRequest, Finish> {
    Batcher::spawn(
        "finish",
        MAX_BATCH,
        CALLS_IN_FLIGHT,
        move |reqs: Vec<FinishRequest>| {
            let state = state.clone();
            async move { state.finish_many(&reqs, local_now_ms() / 1000).await }
        },
    )
}

/// The apalis-redis settings for the tick queue (see the module doc).
fn apalis_config(cfg: &SchedulerConfig) -> apalis_redis::Config {
    apalis_redis::Config::default()
        .queue(&cfg.namespace)
        .batch_size(cfg.fetch_batch())
        .heartbeat_interval(cfg.heartbeat_interval)
        .missed_heartbeats(cfg.missed_heartbeats)
        .lock_tasks(false)
        .persist_results(true)
        .emit_events(false)
}

/// The apalis backend of one shard: its connection, its settings and its fetch pace.
struct Apalis {
    conn: RedisConn,
    config: apalis_redis::Config,
    pace: FetchPace,
}

/// The Redis URL the wake subscription uses: the single Redis, or the first cluster seed node
/// (a `PUBLISH` on a cluster reaches the subscribers of every node).
fn subscribe_url(cfg: &SchedulerConfig) -> String {
    cfg.cluster_nodes
        .first()
        .cloned()
        .unwrap_or_else(|| cfg.redis_url.clone())
}

/// Run the apalis worker until `stopping`; restart it under a fresh name when it fails.
async fn supervise(
    ctx: Arc<TickContext>,
    base_name: String,
    backend: Apalis,
    cfg: SchedulerConfig,
    stopping: watch::Receiver<bool>,
    health: WorkerHealth,
) {
    let Apalis { conn, config, pace } = backend;
    let jobs_in_flight = cfg.jobs_in_flight();
    let mut restarts = 0u32;
    loop {
        if *stopping.borrow() {
            return;
        }
        let name = if restarts == 0 {
            base_name.clone()
        } else {
            format!("{base_name}-{restarts}")
        };
        let storage = RedisStorage::<Delivery, RedisConn>::new(conn.clone())
            .with_config(config.clone())
            .poll_with_strategy(pace.clone());
        let worker = WorkerBuilder::new(name.clone())
            .backend(storage)
            .data(ctx.clone())
            .concurrency(jobs_in_flight)
            .build(tick_job::deliver);
        let mut stop = stopping.clone();
        let signal = async move {
            let _ = stop.wait_for(|s| *s).await;
            Ok::<(), std::io::Error>(())
        };
        let running = health.apalis_running();
        let result = worker.run_until(signal).await;
        drop(running);
        if *stopping.borrow() {
            match result {
                Ok(()) => unregister(&conn, &config, &name).await,
                Err(e) => {
                    tracing::warn!(worker = %name, error = %e, "apalis worker stopped with an error");
                }
            }
            return;
        }
        match result {
            Ok(()) => tracing::warn!(worker = %name, "apalis worker exited; restarting"),
            Err(e) => {
                tracing::warn!(worker = %name, error = %e, "apalis worker failed; restarting")
            }
        }
        restarts += 1;
        let mut stop = stopping.clone();
        tokio::select! {
            _ = tokio::time::sleep(RESTART_PAUSE) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Remove a worker that stopped cleanly from the queue's worker set, and retire what apalis
/// still lists as its in-flight jobs. apalis-redis 1.0 means to unregister on close but
/// removes the in-flight key name instead of the worker name, so a stopped worker would look
/// alive to `stats()` until another worker's orphan check dropped it. And completions it had
/// not flushed yet stay in the worker's in-flight set, from where an orphan check would
/// re-deliver them (harmlessly: the claim drops them as stale) and their payloads would never
/// be vacuumed. By now every handler has returned — each of those jobs ran or handed its tick
/// back to the feed — so they move to the finished set, which the vacuum empties.
static RETIRE_WORKER: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"
local ids = redis.call('SMEMBERS', KEYS[3])
for _, id in ipairs(ids) do
  redis.call('SADD', KEYS[4], id)
end
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return #ids
"#,
    )
});

async fn unregister(conn: &RedisConn, config: &apalis_redis::Config, name: &str) {
    let mut conn = conn.clone();
    let result: Result<usize, redis::RedisError> = RETIRE_WORKER
        .key(config.workers_set())
        .key(format!("{}:metadata:{name}", config.workers_set()))
        .key(format!("{}:{name}", config.inflight_jobs_set()))
        .key(config.done_jobs_set())
        .arg(name)
        .invoke_async(&mut conn)
        .await;
    match result {
        Ok(retired) => tracing::debug!(worker = %name, retired, "apalis worker unregistered"),
        Err(e) => {
            tracing::warn!(worker = %name, error = %e, "unregistering the apalis worker failed")
        }
    }
}

/// Redis clock minus local clock, in ms, from the sample with the shortest round trip.
async fn measure_clock_offset(state: &ChainState) -> Result<i64, SchedulerError> {
    let mut best: Option<(u64, i64)> = None;
    for _ in 0..5 {
        let before = local_now_ms();
        let started = Instant::now();
        let redis_ms = state.redis_now_ms().await?;
        let rtt = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let local_mid = i128::from(before) + i128::from(rtt / 2000);
        let offset = i64::try_from(i128::from(redis_ms) - local_mid).unwrap_or(0);
        if best.is_none_or(|(r, _)| rtt < r) {
            best = Some((rtt, offset));
        }
    }
    Ok(best.map(|(_, o)| o).unwrap_or(0))
}

/// What the gauge refresh reads and where it writes.
struct GaugeReads {
    conn: RedisConn,
    keys: Arc<Keys>,
    metrics: Metrics,
    /// How old a worker's heartbeat may be for it to count as live (apalis' heartbeat ×
    /// missed heartbeats).
    orphan_after: Duration,
    /// The refresh interval while no chain is live and nothing is queued.
    quiet_interval: Duration,
    wakes: Wakes,
}

/// Refresh the cluster-wide gauges until `stopping`: every second while chains are live or
/// ticks queued, every `quiet_interval` otherwise (a wake notice brings the next read forward).
async fn refresh_gauges(g: GaugeReads, mut stopping: watch::Receiver<bool>) {
    let wakeups = g.metrics.wakeups(LoopName::Gauges);
    loop {
        wakeups.inc();
        let quiet = read_gauges_once(&g).await;
        let wait = if quiet {
            g.quiet_interval
        } else {
            GAUGE_INTERVAL
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = g.wakes.gauges_woken(), if quiet => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
    }
}

/// One read of the gauges; whether the namespace is quiet (no live chain, nothing queued).
async fn read_gauges_once(g: &GaugeReads) -> bool {
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let quiet = match read_gauges(&g.conn, &g.keys).await {
        Ok((live, depth)) => {
            g.metrics.live_chains.set(int(live));
            g.metrics.queue_depth.set(int(depth));
            live == 0 && depth == 0
        }
        Err(e) => {
            tracing::debug!(error = %e, "reading gauges failed");
            false
        }
    };
    match read_stats(&g.conn, &g.keys, g.orphan_after).await {
        Ok(stats) => {
            g.metrics.dead_jobs.set(int(stats.dead_jobs));
            let live = stats.workers.iter().filter(|w| w.alive).count();
            g.metrics.live_workers.set(int(live as u64));
            let overdue = stats.oldest_overdue.map_or(0, |(_, late)| late.as_millis());
            g.metrics
                .oldest_overdue_ms
                .set(i64::try_from(overdue).unwrap_or(i64::MAX));
            g.metrics.paused.set(i64::from(stats.paused));
        }
        Err(e) => tracing::debug!(error = %e, "reading scheduler stats failed"),
    }
    quiet
}
