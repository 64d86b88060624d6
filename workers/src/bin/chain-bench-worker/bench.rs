//! The benchmark of `chain-bench-worker bench`. Three parts, each on its own fresh namespace,
//! deleted afterwards:
//! 1. chains × cadence: N chains with random phases, a no-op runner recording only timing, the
//!    workers in this process; achieved ticks/s against the ideal N / cadence, lateness
//!    percentiles (local start − due), early starts, RSS;
//! 2. the raw apalis-redis ceiling: no-op jobs through one apalis worker with the same settings,
//!    fed in the same bounded slices (pushing everything at once kills apalis beyond ~8,000);
//! 3. recovery: two `run` child processes share N chains; one is SIGKILLed; how long until every
//!    chain ticked again, and whether any tick ran twice.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use apalis::prelude::{
    BackendExt, BoxDynError, Data, TaskBuilder, WorkerBuilder, WorkerBuilderExt,
};
use apalis_redis::{ConnectionManager, RedisStorage, RedisTask};
use campaign_workers::{Chains, SchedulerConfig, run_workers};
use redis::AsyncCommands;

use crate::commandstats::{CommandCounts, own_cpu_s, per_unit, redis_cpu_s_all};
use crate::runners::{NumberedChains, RecordingInMemory, chain_id, log_key, now_us};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Chain counts to run, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,5000")]
    chains: Vec<usize>,
    /// Delay between two ticks of a chain.
    #[arg(long, default_value_t = 500)]
    cadence_ms: u64,
    /// Seconds before measuring.
    #[arg(long, default_value_t = 3)]
    warmup_s: u64,
    /// Seconds measured per chain count.
    #[arg(long, default_value_t = 10)]
    measure_s: u64,
    /// Ticks running at once in the worker process.
    #[arg(long, default_value_t = 1000)]
    concurrency: usize,
    /// Ticks held waiting for their due time in the worker process.
    #[arg(long, default_value_t = 3000)]
    max_waiting: usize,
    /// No-op jobs for the raw apalis-redis ceiling (0 skips it).
    #[arg(long, default_value_t = 20000)]
    raw_jobs: usize,
    /// Prefix every bench namespace with this Redis Cluster hash tag (`{TAG}`), so all its keys
    /// share one slot: for running the bench against the node of a cluster that serves it.
    #[arg(long)]
    hash_tag: Option<String>,
    /// Seed node URLs of a Redis Cluster to run the chains on (comma separated) instead of
    /// `--redis-url`; Redis commands and CPU are then summed over these nodes (list every
    /// master). Use with `--raw-jobs 0 --recovery-chains 0`.
    #[arg(long, value_delimiter = ',')]
    cluster_nodes: Vec<String>,
    /// Shards the chains are spread over (`SchedulerConfig::shards`).
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Most ticks per apalis job (`SchedulerConfig::ticks_per_job`).
    #[arg(long, default_value_t = SchedulerConfig::default().ticks_per_job)]
    ticks_per_job: usize,
    /// Chains for the SIGKILL recovery measurement (0 skips it).
    #[arg(long, default_value_t = 1000)]
    recovery_chains: usize,
}

pub async fn run(redis_url: String, args: BenchArgs) -> anyhow::Result<()> {
    println!(
        "chain-bench: cadence {} ms, warm-up {} s, measured {} s per run, concurrency {} + {} waiting, {} shard(s) on {}",
        args.cadence_ms,
        args.warmup_s,
        args.measure_s,
        args.concurrency,
        args.max_waiting,
        args.shards,
        if args.cluster_nodes.is_empty() {
            redis_url.clone()
        } else {
            format!("the cluster of {}", args.cluster_nodes.join(","))
        }
    );
    let cadence = Duration::from_millis(args.cadence_ms);
    for &n in &args.chains {
        let r = chains_run(&redis_url, n, cadence, &args).await?;
        r.print();
    }
    if args.raw_jobs > 0 {
        let in_flight = args.concurrency + args.max_waiting;
        let batch = in_flight.div_ceil(2).clamp(16, 2000);
        let (rate, commands) = raw_ceiling(
            &redis_url,
            args.raw_jobs,
            in_flight,
            batch,
            false,
            args.hash_tag.as_deref(),
        )
        .await?;
        println!(
            "raw apalis-redis ceiling, scheduler settings (lock_tasks off, batch {batch}): {} no-op jobs, {rate:.0} jobs/s",
            args.raw_jobs
        );
        println!("      {}", per_unit(&commands, args.raw_jobs, "job"));
        let jobs = args.raw_jobs.min(5000);
        let (rate, commands) = raw_ceiling(
            &redis_url,
            jobs,
            in_flight,
            10,
            true,
            args.hash_tag.as_deref(),
        )
        .await?;
        println!(
            "raw apalis-redis ceiling, apalis defaults (lock_tasks on, batch 10): {jobs} no-op jobs, {rate:.0} jobs/s"
        );
        println!("      {}", per_unit(&commands, jobs, "job"));
        println!("  (both fed in slices of 500 with at most 2000 queued, as the feeder does)");
    }
    if args.recovery_chains > 0 {
        recovery(
            &redis_url,
            args.recovery_chains,
            args.cadence_ms,
            args.hash_tag.as_deref(),
        )
        .await?;
    }
    Ok(())
}

struct ChainsResult {
    chains: usize,
    ideal: f64,
    achieved: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    early: usize,
    ticks: usize,
    rss_kb: u64,
    /// Redis commands per command name over the measured window.
    commands: Vec<(String, u64)>,
    /// CPU seconds over the measured window: this process, the Redis server.
    cpu_s: (f64, f64),
}

impl ChainsResult {
    fn print(&self) {
        println!(
            "{:>5} chains: {:>7.1} ticks/s of ideal {:>7.1} ({:>5.1} %), lateness p50 {:.1} ms p99 {:.1} ms max {:.1} ms, early starts {} of {}, RSS {:.1} MB",
            self.chains,
            self.achieved,
            self.ideal,
            100.0 * self.achieved / self.ideal,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.early,
            self.ticks,
            self.rss_kb as f64 / 1024.0
        );
        println!("      {}", per_unit(&self.commands, self.ticks, "tick"));
        let per_tick_us = |s: f64| s * 1e6 / self.ticks.max(1) as f64;
        println!(
            "      CPU per tick: worker process {:.1} µs, Redis {:.1} µs",
            per_tick_us(self.cpu_s.0),
            per_tick_us(self.cpu_s.1)
        );
    }
}

fn percentile(sorted: &[i64], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = (sorted.len() * p / 100).min(sorted.len() - 1);
    sorted[i] as f64 / 1000.0
}

/// Resident set size of a process in KiB (`/proc/{pid}/status`).
fn rss_kb(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn namespace(kind: &str, hash_tag: Option<&str>) -> String {
    let tag = hash_tag.map(|t| format!("{{{t}}}")).unwrap_or_default();
    format!("{tag}chain-bench-{kind}-{:08x}", rand::random::<u32>())
}

/// Delete every key of `namespace` and of its shards (and its entries in apalis' global queue
/// list) on the Redis at `redis_url`.
async fn cleanup(redis_url: &str, namespace: &str) -> anyhow::Result<()> {
    let mut conn = redis::Client::open(redis_url)?
        .get_multiplexed_async_connection()
        .await?;
    // On a cluster only one node holds apalis' list (the others answer MOVED): best effort.
    let queues: Vec<String> = conn
        .zrange("core:apalis:queues:list", 0, -1)
        .await
        .unwrap_or_default();
    let ours: Vec<&String> = queues.iter().filter(|q| q.contains(namespace)).collect();
    if !ours.is_empty() {
        let _: () = conn.zrem("core:apalis:queues:list", ours).await?;
    }
    let keys: Vec<String> = {
        let mut iter = conn
            .scan_match::<_, String>(format!("*{namespace}*"))
            .await?;
        let mut keys = Vec::new();
        while let Some(k) = futures::StreamExt::next(&mut iter).await {
            keys.push(k?);
        }
        keys
    };
    // One key per call: on a cluster node the keys of different shards are in different slots.
    for key in keys {
        let _: () = conn.del(key).await?;
    }
    Ok(())
}

async fn chains_run(
    redis_url: &str,
    n: usize,
    cadence: Duration,
    args: &BenchArgs,
) -> anyhow::Result<ChainsResult> {
    let ns = namespace(&format!("{n}"), args.hash_tag.as_deref());
    let cfg = SchedulerConfig {
        concurrency: args.concurrency,
        max_waiting: args.max_waiting,
        shards: args.shards,
        ticks_per_job: args.ticks_per_job,
        cluster_nodes: args.cluster_nodes.clone(),
        ..SchedulerConfig::new(redis_url, ns.clone())
    };
    // The servers whose counters are read: every listed cluster node, or the one Redis.
    let servers: Vec<String> = if args.cluster_nodes.is_empty() {
        vec![redis_url.to_owned()]
    } else {
        args.cluster_nodes.clone()
    };
    let chains = Chains::connect(&cfg).await?;
    let cadence_ms = u64::try_from(cadence.as_millis()).unwrap_or(500).max(1);
    for i in 0..n {
        chains
            .start(
                &chain_id(i),
                Duration::from_millis(rand::random_range(0..cadence_ms)),
            )
            .await?;
    }
    let runner = Arc::new(RecordingInMemory {
        cadence,
        samples: Mutex::new(Vec::with_capacity(n * 60)),
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let registry = prometheus::Registry::new();
    let worker = {
        let runner = runner.clone();
        let source = Arc::new(NumberedChains { count: n });
        let registry = registry.clone();
        tokio::spawn(async move {
            run_workers(cfg, runner, source, &registry, async {
                let _ = stop_rx.await;
            })
            .await
        })
    };
    let mut stats_conns = Vec::new();
    for server in &servers {
        stats_conns.push(
            redis::Client::open(server.as_str())?
                .get_multiplexed_async_connection()
                .await?,
        );
    }
    tokio::time::sleep(Duration::from_secs(args.warmup_s)).await;
    let counts_from = CommandCounts::read_all(&mut stats_conns).await?;
    let cpu_from = (own_cpu_s(), redis_cpu_s_all(&mut stats_conns).await?);
    let from = now_us();
    tokio::time::sleep(Duration::from_secs(args.measure_s)).await;
    let to = now_us();
    let cpu_to = (own_cpu_s(), redis_cpu_s_all(&mut stats_conns).await?);
    let counts_to = CommandCounts::read_all(&mut stats_conns).await?;
    let rss = rss_kb("self");
    print_tick_outcomes(&registry);
    if args.shards > 1 {
        print_shard_lateness(&registry);
    }
    let _ = stop_tx.send(());
    worker.await?.context("run_workers")?;
    for server in &servers {
        cleanup(server, &ns).await?;
    }

    let samples = runner
        .samples
        .lock()
        .map_err(|_| anyhow::anyhow!("samples lock poisoned"))?
        .clone();
    let mut lateness: Vec<i64> = samples
        .iter()
        .filter(|s| s.start_us >= from && s.start_us < to)
        .map(|s| s.lateness_us)
        .collect();
    lateness.sort_unstable();
    if std::env::var_os("BENCH_SHOW_LATE").is_some() {
        let mut late: Vec<_> = samples.iter().filter(|s| s.lateness_us > 100_000).collect();
        late.sort_by_key(|s| s.start_us);
        let mut last = 0u64;
        for s in late {
            if s.start_us < last + 100_000 {
                continue;
            }
            last = s.start_us;
            let due_us = s.start_us as i64 - s.lateness_us;
            println!(
                "      late: start at {:.3} s (unix .{:03}), due at .{:03} of its second, {:.1} ms late",
                s.start_us as f64 / 1e6 % 1000.0,
                (s.start_us / 1000) % 1000,
                (due_us / 1000).rem_euclid(1000),
                s.lateness_us as f64 / 1000.0
            );
        }
    }
    let seconds = (to - from) as f64 / 1e6;
    Ok(ChainsResult {
        chains: n,
        ideal: n as f64 * 1000.0 / cadence_ms as f64,
        achieved: lateness.len() as f64 / seconds,
        p50_ms: percentile(&lateness, 50),
        p99_ms: percentile(&lateness, 99),
        max_ms: lateness.last().copied().unwrap_or(0) as f64 / 1000.0,
        early: lateness.iter().filter(|l| **l < 0).count(),
        ticks: lateness.len(),
        rss_kb: rss,
        commands: counts_to.since(&counts_from),
        cpu_s: (cpu_to.0 - cpu_from.0, cpu_to.1 - cpu_from.1),
    })
}

/// Tick deliveries since the start by outcome (stale: dropped by the claim), and re-seeds.
fn print_tick_outcomes(registry: &prometheus::Registry) {
    let mut counts: std::collections::BTreeMap<String, f64> = Default::default();
    for family in registry.gather() {
        let name = family.name().to_owned();
        if name != "campaign_manager_chain_ticks_total"
            && name != "campaign_manager_chain_reseeds_total"
        {
            continue;
        }
        for metric in family.get_metric() {
            let outcome = metric
                .get_label()
                .iter()
                .find(|l| l.name() == "outcome")
                .map(|l| l.value().to_owned())
                .unwrap_or_else(|| "re-seeded".to_owned());
            *counts.entry(outcome).or_default() += metric.get_counter().get_value();
        }
    }
    let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("      deliveries since start: {}", parts.join(", "));
}

/// Ticks and mean lateness per shard since the start (from the scheduler's own histogram).
fn print_shard_lateness(registry: &prometheus::Registry) {
    let mut parts = Vec::new();
    let families = registry.gather();
    let reseeds = |shard: &str| {
        families
            .iter()
            .filter(|f| f.name() == "campaign_manager_chain_reseeds_total")
            .flat_map(|f| f.get_metric())
            .filter(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == "shard" && l.value() == shard)
            })
            .map(|m| m.get_counter().get_value())
            .sum::<f64>()
    };
    for family in &families {
        if family.name() != "campaign_manager_chain_tick_lateness_ms" {
            continue;
        }
        for metric in family.get_metric() {
            let shard = metric
                .get_label()
                .iter()
                .find(|l| l.name() == "shard")
                .map(|l| l.value().to_owned())
                .unwrap_or_default();
            let h = metric.get_histogram();
            let count = h.get_sample_count();
            let mean = h.get_sample_sum() / count.max(1) as f64;
            parts.push(format!(
                "shard {shard}: {count} ticks, mean lateness {mean:.1} ms, {} re-seeded",
                reseeds(&shard)
            ));
        }
    }
    parts.sort();
    println!("      {}", parts.join("; "));
}

#[derive(Default)]
struct RawCounter {
    done: AtomicUsize,
}

async fn raw_job(_job: u64, counter: Data<Arc<RawCounter>>) -> Result<(), BoxDynError> {
    counter.done.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// No-op jobs through one apalis worker with the scheduler's settings; returns jobs/s and the
/// Redis commands of the run.
async fn raw_ceiling(
    redis_url: &str,
    jobs: usize,
    concurrency: usize,
    batch: usize,
    lock_tasks: bool,
    hash_tag: Option<&str>,
) -> anyhow::Result<(f64, Vec<(String, u64)>)> {
    let ns = namespace("raw", hash_tag);
    let mut stats_conn = redis::Client::open(redis_url)?
        .get_multiplexed_async_connection()
        .await?;
    let counts_from = CommandCounts::read(&mut stats_conn).await?;
    let conn: ConnectionManager = apalis_redis::connect(redis_url).await?;
    let config = apalis_redis::Config::default()
        .queue(&ns)
        .batch_size(batch)
        .heartbeat_interval(Duration::from_secs(1))
        .missed_heartbeats(3)
        .lock_tasks(lock_tasks)
        .emit_events(lock_tasks);
    let counter = Arc::new(RawCounter::default());
    let storage = RedisStorage::<u64, ConnectionManager>::new(conn.clone())
        .with_config(config.clone())
        .poll_with_interval(Duration::from_millis(5));
    let worker = WorkerBuilder::new(format!("{ns}-worker"))
        .backend(storage)
        .data(counter.clone())
        .concurrency(concurrency)
        .build(raw_job);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(worker.run_until(async move {
        let _ = stop_rx.await;
        Ok::<(), std::io::Error>(())
    }));

    let started = Instant::now();
    let mut pushed = 0usize;
    let mut feed_conn = conn.clone();
    while counter.done.load(Ordering::Relaxed) < jobs {
        let queued: (u64, u64) = redis::pipe()
            .zcard(format!("{ns}:scheduled"))
            .llen(format!("{ns}:active"))
            .query_async(&mut feed_conn)
            .await?;
        if pushed < jobs && queued.0 + queued.1 < 2000 {
            let batch = (jobs - pushed).min(500);
            let tasks: Vec<RedisTask> = (0..batch)
                .map(|i| TaskBuilder::new(format!("{}", pushed + i).into_bytes()).build())
                .collect();
            apalis_redis::queries::push_tasks(&mut feed_conn, &config, &tasks).await?;
            pushed += batch;
        } else {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if started.elapsed() > Duration::from_secs(120) {
            anyhow::bail!("raw ceiling run did not finish in 120 s");
        }
    }
    let rate = jobs as f64 / started.elapsed().as_secs_f64();
    let counts_to = CommandCounts::read(&mut stats_conn).await?;
    let _ = stop_tx.send(());
    let _ = worker.await;
    cleanup(redis_url, &ns).await?;
    Ok((rate, counts_to.since(&counts_from)))
}

fn spawn_worker(
    redis_url: &str,
    ns: &str,
    chains: usize,
    cadence_ms: u64,
) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("locating chain-bench-worker")?;
    Command::new(exe)
        .args([
            "--redis-url",
            redis_url,
            "run",
            "--namespace",
            ns,
            "--record",
        ])
        .args([
            "--chains",
            &chains.to_string(),
            "--cadence-ms",
            &cadence_ms.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("spawning a worker process")
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// Reads the recording runner's log incrementally.
struct LogReader {
    key: String,
    offset: isize,
}

impl LogReader {
    async fn read_new(
        &mut self,
        conn: &mut redis::aio::MultiplexedConnection,
    ) -> anyhow::Result<Vec<(String, u64, u64)>> {
        let lines: Vec<String> = conn.lrange(&self.key, self.offset, -1).await?;
        self.offset += isize::try_from(lines.len()).unwrap_or(0);
        Ok(lines
            .iter()
            .filter_map(|l| {
                let mut f = l.split(' ');
                let id = f.next()?.to_owned();
                let seq = f.next()?.parse().ok()?;
                let start_us = f.nth(2)?.parse().ok()?;
                Some((id, seq, start_us))
            })
            .collect())
    }
}

/// SIGKILL one of two worker processes and time how long until every chain ticked again.
async fn recovery(
    redis_url: &str,
    n: usize,
    cadence_ms: u64,
    hash_tag: Option<&str>,
) -> anyhow::Result<()> {
    let ns = namespace("recovery", hash_tag);
    let mut conn = redis::Client::open(redis_url)?
        .get_multiplexed_async_connection()
        .await?;
    let mut log = LogReader {
        key: log_key(&ns),
        offset: 0,
    };
    let mut a = spawn_worker(redis_url, &ns, n, cadence_ms)?;
    let mut b = spawn_worker(redis_url, &ns, n, cadence_ms)?;
    let mut seen: HashSet<(String, u64)> = HashSet::new();
    let mut duplicates = 0usize;
    let mut record = |entries: &[(String, u64, u64)], seen: &mut HashSet<(String, u64)>| {
        for (id, seq, _) in entries {
            if !seen.insert((id.clone(), *seq)) {
                duplicates += 1;
            }
        }
    };
    // Steady state: every chain ticking, then a few more seconds.
    let mut ticking: HashSet<String> = HashSet::new();
    let warm = Instant::now();
    while ticking.len() < n || warm.elapsed() < Duration::from_secs(5) {
        let entries = log.read_new(&mut conn).await?;
        record(&entries, &mut seen);
        ticking.extend(entries.into_iter().map(|e| e.0));
        if warm.elapsed() > Duration::from_secs(30) {
            terminate(&mut a);
            terminate(&mut b);
            anyhow::bail!("only {} of {n} chains ticking after 30 s", ticking.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_a = rss_kb(&a.id().to_string());
    let rss_b = rss_kb(&b.id().to_string());

    let kill_us = now_us();
    a.kill().context("SIGKILL")?;
    let _ = a.wait();
    let mut first_after: HashMap<String, u64> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while first_after.len() < n && Instant::now() < deadline {
        let entries = log.read_new(&mut conn).await?;
        record(&entries, &mut seen);
        for (id, _, start_us) in entries {
            if start_us > kill_us {
                first_after.entry(id).or_insert(start_us);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let entries = log.read_new(&mut conn).await?;
    record(&entries, &mut seen);
    terminate(&mut b);
    cleanup(redis_url, &ns).await?;

    let mut gaps: Vec<u64> = first_after.values().map(|s| s - kill_us).collect();
    gaps.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "recovery after SIGKILL of 1 of 2 workers ({n} chains at {cadence_ms} ms): first tick after {:.0} ms, every chain ticking again after {:.0} ms ({} of {n} chains), chains that waited > 1 s: {}, ticks run twice: {duplicates} of {}",
        ms(gaps.first().copied().unwrap_or(0)),
        ms(gaps.last().copied().unwrap_or(0)),
        gaps.len(),
        gaps.iter().filter(|g| **g > 1_000_000).count(),
        seen.len()
    );
    println!(
        "worker process RSS with {n} chains shared by two processes: {:.1} MB and {:.1} MB",
        rss_a as f64 / 1024.0,
        rss_b as f64 / 1024.0
    );
    Ok(())
}
