//! `chain-bench-worker`: a real worker process with a no-op or recording runner, for fault tests
//! and benchmarks of the tick-chain scheduler.
//!
//! * `run`: run workers on a namespace whose wanted chains are `chain-0 .. chain-{N-1}`, each
//!   ticking every `--cadence-ms`, until SIGTERM/SIGINT. With `--record`, every tick is appended to
//!   the Redis list `{namespace}:bench:log` as `id seq due_at_ms claimed_at_ms start_us`.
//! * `bench`: the benchmark: chains × cadence in-process, the raw apalis-redis ceiling, and the
//!   recovery time after SIGKILL of a `run` child process. Prints a report, with the Redis
//!   commands per tick from `INFO commandstats` (server-wide: give it a Redis of its own).

mod bench;
mod commandstats;
mod runners;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use campaign_workers::{SchedulerConfig, run_workers};
use clap::{Parser, Subcommand};

use crate::runners::{NumberedChains, RecordingToRedis};

#[derive(Parser)]
#[command(about = "Worker process and benchmark for campaign-workers tick chains")]
struct Cli {
    /// Redis URL.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        global = true
    )]
    redis_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run workers until SIGTERM/SIGINT.
    Run(RunArgs),
    /// Run the benchmark and print its numbers.
    Bench(bench::BenchArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Namespace (key prefix and apalis queue).
    #[arg(long)]
    namespace: String,
    /// Wanted chains: chain-0 .. chain-{N-1}.
    #[arg(long, default_value_t = 100)]
    chains: usize,
    /// Delay between two ticks of a chain.
    #[arg(long, default_value_t = 500)]
    cadence_ms: u64,
    /// Append every tick to `{namespace}:bench:log`.
    #[arg(long)]
    record: bool,
    /// Ticks running at once in this process.
    #[arg(long, default_value_t = 500)]
    concurrency: usize,
    /// Ticks held waiting for their due time in this process.
    #[arg(long, default_value_t = 2000)]
    max_waiting: usize,
    /// Reconciler interval.
    #[arg(long, default_value_t = 1000)]
    reconcile_ms: u64,
    /// Lease of a handed-over or running tick.
    #[arg(long, default_value_t = 2000)]
    lease_ms: u64,
    /// Worker name (default host-pid-random).
    #[arg(long)]
    worker_name: Option<String>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run(cli.redis_url, args).await,
            Command::Bench(args) => bench::run(cli.redis_url, args).await,
        }
    })
}

async fn run(redis_url: String, args: RunArgs) -> anyhow::Result<()> {
    let cfg = SchedulerConfig {
        concurrency: args.concurrency,
        max_waiting: args.max_waiting,
        reconcile_interval: Duration::from_millis(args.reconcile_ms),
        lease: Duration::from_millis(args.lease_ms),
        worker_name: args.worker_name,
        shutdown_timeout: Duration::from_secs(5),
        ..SchedulerConfig::new(redis_url.clone(), args.namespace.clone())
    };
    let cadence = Duration::from_millis(args.cadence_ms);
    let runner: Arc<dyn campaign_workers::ChainRunner> = if args.record {
        Arc::new(RecordingToRedis::connect(&redis_url, &args.namespace, cadence).await?)
    } else {
        Arc::new(runners::NoOp { cadence })
    };
    let source = Arc::new(NumberedChains { count: args.chains });
    let registry = prometheus::Registry::new();
    run_workers(cfg, runner, source, &registry, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "no SIGTERM handler; waiting for SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
