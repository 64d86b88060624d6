//! End-to-end benchmark: N concurrent campaigns (default 10, 100 and 1,000) dialing through
//! campaign-manager against the simulator with instant call outcomes, all in this process on
//! this machine's MariaDB, Redis and RabbitMQ, with the platform's tick delays (first 1000 ms,
//! 500 ms after a dial).
//!
//! Per case it prints: dial attempts/s end to end (calls the simulator received) against the
//! ideal (one dial per campaign per 500 ms), chain tick lateness p50/p99 (the workers crate's
//! `campaign_manager_chain_tick_lateness_ms`), tick time, mean latency of each outbound RPC
//! and of event handling, and CPU and RSS of this process and of the MariaDB, Redis and
//! RabbitMQ server processes over the measured window (where the time goes).
//!
//! Run: `cargo bench --bench e2e` or `cargo bench --bench e2e -- --campaigns 10,100 --secs 10`.
//! Paced campaigns (the cost of a paced tick): `-- --campaigns 1,10 --dials-per-second 10`; it
//! then also prints dials per tick and the CPU of all processes per tick and per dial.
//! Each case uses its own database, queue prefix and Redis keys, removed at the end.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use campaign_demo::{NewCampaign, ProcUsage, Stack, proc_usage, proc_usage_of};
use campaign_manager::config::{Infra, Settings};
use campaign_sim::{Outcome, Scenario};
use clap::Parser;
use futures::StreamExt;
use prometheus::proto::{MetricFamily, MetricType};
use sqlx::{AssertSqlSafe, Connection, MySqlConnection};
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    /// Campaign counts to run, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    campaigns: Vec<usize>,
    /// Measured seconds per case (after a warm-up).
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Warm-up seconds after the last campaign is set to run.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Tick workers (concurrent ticks) of the service.
    #[arg(long, default_value_t = 200)]
    workers: usize,
    /// Delay after a dial, ms (the platform's 500).
    #[arg(long, default_value_t = 500)]
    dial_tick_ms: u64,
    /// Pace every campaign at this many dials per second (`pacing.dials_per_second`); 0: not
    /// paced (one dial per tick, `--dial_tick_ms` apart).
    #[arg(long, default_value_t = 0.0)]
    dials_per_second: f64,
    /// MariaDB server URL (without database).
    #[arg(
        long,
        env = "TEST_MYSQL_URL",
        default_value = "mysql://root@127.0.0.1:3306"
    )]
    mysql: String,
    #[arg(long, hide = true)]
    bench: bool,
}

/// Sums of a histogram family over all its label sets: (bucket bounds, cumulative counts,
/// sample count, sample sum).
fn histogram(fams: &[MetricFamily], name: &str) -> (Vec<f64>, Vec<u64>, u64, f64) {
    let mut bounds = Vec::new();
    let mut counts: Vec<u64> = Vec::new();
    let (mut n, mut sum) = (0, 0.0);
    for f in fams.iter().filter(|f| f.name() == name) {
        if f.get_field_type() != MetricType::HISTOGRAM {
            continue;
        }
        for m in f.get_metric() {
            let h = m.get_histogram();
            n += h.get_sample_count();
            sum += h.get_sample_sum();
            for (i, b) in h.get_bucket().iter().enumerate() {
                if bounds.len() <= i {
                    bounds.push(b.upper_bound());
                    counts.push(0);
                }
                counts[i] += b.cumulative_count();
            }
        }
    }
    (bounds, counts, n, sum)
}

/// Per label value of `label`: (count, sum) of a histogram family.
fn histogram_by(fams: &[MetricFamily], name: &str, label: &str) -> BTreeMap<String, (u64, f64)> {
    let mut out = BTreeMap::new();
    for f in fams.iter().filter(|f| f.name() == name) {
        for m in f.get_metric() {
            let key = m
                .get_label()
                .iter()
                .filter(|l| label.split('+').any(|x| x == l.name()))
                .map(|l| l.value().to_owned())
                .collect::<Vec<_>>()
                .join(" ");
            let h = m.get_histogram();
            let e = out.entry(key).or_insert((0, 0.0));
            e.0 += h.get_sample_count();
            e.1 += h.get_sample_sum();
        }
    }
    out
}

/// Quantile `q` of the samples between two snapshots of a histogram, interpolated linearly
/// inside the bucket (the upper bound when it falls in the last, open bucket).
fn quantile(before: &[MetricFamily], after: &[MetricFamily], name: &str, q: f64) -> Option<f64> {
    let (bounds, c1, n1, _) = histogram(after, name);
    let (_, c0, n0, _) = histogram(before, name);
    let n = n1.checked_sub(n0)?;
    if n == 0 {
        return None;
    }
    let rank = q * n as f64;
    let mut prev_bound = 0.0;
    let mut prev_count = 0.0;
    for (i, b) in bounds.iter().enumerate() {
        let c = (c1[i] - c0.get(i).copied().unwrap_or(0)) as f64;
        if c >= rank {
            let inside = c - prev_count;
            let frac = if inside > 0.0 {
                (rank - prev_count) / inside
            } else {
                1.0
            };
            return Some(prev_bound + (b - prev_bound) * frac);
        }
        prev_bound = *b;
        prev_count = c;
    }
    Some(*bounds.last().unwrap_or(&0.0))
}

/// Mean of the samples between two snapshots, per label value.
fn means(
    before: &[MetricFamily],
    after: &[MetricFamily],
    name: &str,
    label: &str,
) -> Vec<(String, u64, f64)> {
    let b = histogram_by(before, name, label);
    histogram_by(after, name, label)
        .into_iter()
        .filter_map(|(k, (n, s))| {
            let (n0, s0) = b.get(&k).copied().unwrap_or((0, 0.0));
            let dn = n.checked_sub(n0)?;
            (dn > 0).then(|| (k, dn, (s - s0) / dn as f64))
        })
        .collect()
}

/// Mean of the samples of a histogram family between two snapshots.
fn mean_of(before: &[MetricFamily], after: &[MetricFamily], name: &str) -> Option<f64> {
    let (_, _, n0, s0) = histogram(before, name);
    let (_, _, n1, s1) = histogram(after, name);
    let n = n1.checked_sub(n0)?;
    (n > 0).then(|| (s1 - s0) / n as f64)
}

/// Pids of processes whose `comm` is `name`.
fn pids_named(name: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .map(|c| c.trim() == name)
                .unwrap_or(false)
        })
        .collect()
}

/// CPU seconds and RSS of the local servers, by name.
fn servers() -> Vec<(&'static str, ProcUsage)> {
    [
        ("mariadbd", "mariadbd"),
        ("redis-server", "redis-server"),
        ("rabbitmq (beam.smp)", "beam.smp"),
    ]
    .into_iter()
    .map(|(label, comm)| {
        let mut total = ProcUsage::default();
        for p in pids_named(comm) {
            let u = proc_usage_of(&p);
            total.cpu_secs += u.cpu_secs;
            total.rss_kib += u.rss_kib;
        }
        (label, total)
    })
    .collect()
}

struct Case {
    campaigns: usize,
    setup_secs: f64,
    dials_per_sec: f64,
    ideal_per_sec: f64,
    lateness: (Option<f64>, Option<f64>),
    tick_ms: (Option<f64>, Option<f64>),
    cpu_pct: f64,
    rss_mib: u64,
}

async fn run_case(args: &Args, n: usize) -> anyhow::Result<Case> {
    let tag = Uuid::new_v4().simple().to_string()[..10].to_owned();
    let db_name = format!("cmbench_{tag}");
    let mut admin = MySqlConnection::connect(&args.mysql)
        .await
        .context("connecting to MariaDB")?;
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
        .execute(&mut admin)
        .await?;
    let result = run_case_in(args, n, &tag, &db_name).await;
    let _ = sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db_name}")))
        .execute(&mut admin)
        .await;
    let _ = admin.close().await;
    result
}

async fn run_case_in(args: &Args, n: usize, tag: &str, db_name: &str) -> anyhow::Result<Case> {
    let mut infra = Infra::from_env();
    infra.database_dsn = format!("{}/{db_name}", args.mysql);
    infra.redis_database = 0;
    if std::env::var("RABBITMQ_ADDRESS").is_err() {
        infra.rabbitmq_address = "amqp://guest:guest@127.0.0.1:5672".into();
    }
    let mut settings = Settings::from_env();
    settings.workers = args.workers;
    settings.queue_prefix = format!("cmbench-{tag}");
    settings.cache_prefix = format!("cmbench:{tag}:cache:");
    settings.tick_namespace = format!("cmbench:{tag}:ticks");
    settings.serve_http = false;
    settings.first_tick_ms = 1000;
    settings.dial_tick_ms = args.dial_tick_ms;
    settings.wait_tick_ms = 5000;
    let stack =
        Arc::new(Stack::start(&infra, &settings, Scenario::instant(Outcome::Answered)).await?);
    let outcome = measure(args, n, &stack).await;
    // Stop every campaign before tearing down, so no tick dials into deleted queues.
    if let Ok((_, ids)) = &outcome {
        futures::stream::iter(ids.iter().copied())
            .for_each_concurrent(16, |id| {
                let stack = stack.clone();
                async move {
                    let _ = stack.set_status(id, "stop").await;
                }
            })
            .await;
    }
    match Arc::try_unwrap(stack) {
        Ok(stack) => stack.shutdown().await,
        Err(_) => eprintln!("stack still shared; not cleaned up"),
    }
    outcome.map(|(c, _)| c)
}

async fn measure(args: &Args, n: usize, stack: &Arc<Stack>) -> anyhow::Result<(Case, Vec<Uuid>)> {
    let setup = Instant::now();
    let customer = Uuid::new_v4();
    let rate = if args.dials_per_second > 0.0 {
        args.dials_per_second
    } else {
        1000.0 / args.dial_tick_ms as f64
    };
    let pacing = (args.dials_per_second > 0.0)
        .then(|| serde_json::json!({ "dials_per_second": args.dials_per_second }));
    let ideal = n as f64 * rate;
    // Enough targets that no list runs out during warm-up + measurement.
    let per = (rate * (args.warmup + args.secs + 4) as f64 * 1.3).ceil() as usize;
    let outplan = stack.create_outplan(customer, 0, 1).await?;
    let outdials: Vec<Uuid> = (0..n)
        .map(|_| stack.sim.create_outdial(customer, per, 1))
        .collect();
    let created: Vec<anyhow::Result<Uuid>> = futures::stream::iter(outdials)
        .map(|outdial| {
            let stack = stack.clone();
            let pacing = pacing.clone();
            async move {
                stack
                    .create_campaign(&NewCampaign {
                        customer,
                        kind: "call",
                        name: "bench".into(),
                        end_handle: "stop",
                        service_level: 100,
                        outplan,
                        outdial,
                        queue: None,
                        pacing: pacing.clone(),
                    })
                    .await
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let ids = created.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let runs: Vec<anyhow::Result<serde_json::Value>> = futures::stream::iter(ids.clone())
        .map(|id| {
            let stack = stack.clone();
            async move { stack.set_status(id, "run").await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    runs.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let setup_secs = setup.elapsed().as_secs_f64();
    eprintln!(
        "  {n} campaigns ({per} targets each) created and set to run in {setup_secs:.1} s; warming up {} s",
        args.warmup
    );
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;

    let registry = &stack
        .app
        .as_ref()
        .context("the service is running")?
        .metrics
        .registry;
    let m0 = registry.gather();
    let calls0 = stack.sim.stats().calls;
    let cpu0 = proc_usage();
    let srv0 = servers();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.secs)).await;
    let wall = t0.elapsed().as_secs_f64();
    let m1 = registry.gather();
    let calls1 = stack.sim.stats().calls;
    let cpu1 = proc_usage();
    let srv1 = servers();

    let dials = (calls1 - calls0) as f64 / wall;
    let lateness = "campaign_manager_chain_tick_lateness_ms";
    let tick = "campaign_manager_tick_process_time_ms";
    let case = Case {
        campaigns: n,
        setup_secs,
        dials_per_sec: dials,
        ideal_per_sec: ideal,
        lateness: (
            quantile(&m0, &m1, lateness, 0.5),
            quantile(&m0, &m1, lateness, 0.99),
        ),
        tick_ms: (mean_of(&m0, &m1, tick), quantile(&m0, &m1, tick, 0.99)),
        cpu_pct: (cpu1.cpu_secs - cpu0.cpu_secs) / wall * 100.0,
        rss_mib: cpu1.rss_kib / 1024,
    };
    println!(
        "\n== {n} campaigns: {dials:.0} dials/s (ideal {ideal:.0}/s, {:.0} %) ==",
        dials / ideal * 100.0
    );
    println!(
        "  tick lateness p50 {} / p99 {} ms; tick time mean {} / p99 {} ms (p99 from coarse buckets)",
        fmt_opt(case.lateness.0),
        fmt_opt(case.lateness.1),
        fmt_opt(case.tick_ms.0),
        fmt_opt(case.tick_ms.1)
    );
    println!(
        "  this process (service + workers + sim + client): CPU {:.0} % of one core, RSS {} MiB",
        case.cpu_pct, case.rss_mib
    );
    let mut cpu_all = cpu1.cpu_secs - cpu0.cpu_secs;
    for ((name, a), (_, b)) in srv0.iter().zip(&srv1) {
        cpu_all += b.cpu_secs - a.cpu_secs;
        println!(
            "  {name:<20} CPU {:>4.0} % of one core, RSS {} MiB",
            (b.cpu_secs - a.cpu_secs) / wall * 100.0,
            b.rss_kib / 1024
        );
    }
    let ticks = histogram(&m1, tick)
        .2
        .saturating_sub(histogram(&m0, tick).2);
    let dialed = (calls1 - calls0) as f64;
    if dialed > 0.0 && ticks > 0 {
        println!(
            "  {ticks} ticks, {:.2} dials per tick; CPU of all processes above: {:.2} ms per tick, \
             {:.2} ms per dial (tick time includes a paced tick's waits for its dial instants)",
            dialed / ticks as f64,
            cpu_all * 1000.0 / ticks as f64,
            cpu_all * 1000.0 / dialed
        );
    }
    let per_tick = |total: f64| {
        let ticks = histogram(&m1, tick)
            .2
            .saturating_sub(histogram(&m0, tick).2);
        if ticks == 0 {
            0.0
        } else {
            total / ticks as f64
        }
    };
    println!("  mean time per outbound RPC (ms, count in window, ms per tick):");
    for (target, count, mean) in means(
        &m0,
        &m1,
        "campaign_manager_request_process_time",
        "resource+method",
    ) {
        println!(
            "    {target:<58} {mean:>6.2} ms  ×{count:<6} {:>6.2} ms/tick",
            per_tick(mean * count as f64)
        );
    }
    for (name, label) in [
        (
            "campaign_manager_receive_subscribe_event_process_time",
            "type",
        ),
        (
            "campaign_manager_receive_request_process_time",
            "type+method",
        ),
        ("campaign_manager_notify_process_time", "type"),
    ] {
        for (k, count, mean) in means(&m0, &m1, name, label) {
            let short = name.trim_start_matches("campaign_manager_");
            println!("    {short} {k:<28} {mean:>6.2} ms  ×{count}");
        }
    }
    Ok((case, ids))
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "e2e benchmark: campaigns {:?}, {} s measured after {} s warm-up, {} tick workers, dial delay {} ms, dials_per_second {}",
        args.campaigns,
        args.secs,
        args.warmup,
        args.workers,
        args.dial_tick_ms,
        if args.dials_per_second > 0.0 {
            args.dials_per_second.to_string()
        } else {
            "unset".into()
        }
    );
    let mut cases = Vec::new();
    for &n in &args.campaigns {
        match run_case(&args, n).await {
            Ok(c) => cases.push(c),
            Err(e) => eprintln!("case {n} failed: {e:#}"),
        }
    }
    println!(
        "\n| campaigns | setup s | dials/s | ideal/s | lateness p50/p99 ms | tick mean/p99 ms | CPU % | RSS MiB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for c in &cases {
        println!(
            "| {} | {:.1} | {:.0} | {:.0} | {} / {} | {} / {} | {:.0} | {} |",
            c.campaigns,
            c.setup_secs,
            c.dials_per_sec,
            c.ideal_per_sec,
            fmt_opt(c.lateness.0),
            fmt_opt(c.lateness.1),
            fmt_opt(c.tick_ms.0),
            fmt_opt(c.tick_ms.1),
            c.cpu_pct,
            c.rss_mib
        );
    }
    Ok(())
}
