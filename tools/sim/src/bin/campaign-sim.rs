//! `campaign-sim`: the simulated outdial-, call-, flow-, queue- and webhook-manager as a process.
//!
//! Serves the peers' queues (docs/contract.md#outbound-calls) with in-memory state and an HTTP
//! admin API (see `campaign_sim::admin`) until SIGTERM or ctrl-c. Flags mirror the
//! service's naming (`--rabbitmq_address` / `RABBITMQ_ADDRESS`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use campaign_bus::{EventBus, Names};
use campaign_sim::{MsRange, Scenario, Sim, admin};
use clap::Parser;
use tracing::info;
use tracing_subscriber::EnvFilter;

/// Simulated platform peers for campaign-manager.
#[derive(Debug, Parser)]
#[command(name = "campaign-sim", version)]
struct Args {
    /// RabbitMQ URL.
    #[arg(
        long = "rabbitmq_address",
        env = "RABBITMQ_ADDRESS",
        default_value = "amqp://guest:guest@localhost:5672"
    )]
    rabbitmq_address: String,
    /// Where the simulated peers publish their events: `topic` (the platform's
    /// `bin-manager.event`, keyed) or `fanout` (the peers' own fanout exchanges); use the same
    /// setting as campaign-manager's `--event_bus`.
    #[arg(long = "event_bus", env = "EVENT_BUS", default_value = "topic")]
    event_bus: EventBus,
    /// Prefix of every queue/exchange name (`<prefix>.bin-manager...`); empty = platform names.
    #[arg(long = "prefix", env = "SIM_PREFIX", default_value = "")]
    prefix: String,
    /// Scenario JSON file (fields of `sim::Scenario`; missing ones take the defaults).
    #[arg(long = "scenario", env = "SIM_SCENARIO")]
    scenario: Option<PathBuf>,
    /// RNG seed (overrides the scenario's).
    #[arg(long = "seed", env = "SIM_SEED")]
    seed: Option<u64>,
    /// Calls and activeflows end immediately (ring, talk and flow durations 0).
    #[arg(long = "instant", env = "SIM_INSTANT")]
    instant: bool,
    /// Address of the HTTP admin API.
    #[arg(
        long = "admin_listen_address",
        env = "SIM_ADMIN_LISTEN_ADDRESS",
        default_value = "127.0.0.1:2114"
    )]
    admin_listen_address: String,
}

fn scenario(args: &Args) -> anyhow::Result<Scenario> {
    let mut s = match &args.scenario {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading scenario {}", path.display()))?;
            Scenario::from_json(&text)
                .with_context(|| format!("parsing scenario {}", path.display()))?
        }
        None => Scenario::default(),
    };
    if let Some(seed) = args.seed {
        s.seed = seed;
    }
    if args.instant {
        s.ring_ms = MsRange::fixed(0);
        s.talk_ms = MsRange::fixed(0);
        s.flow_ms = MsRange::fixed(0);
    }
    Ok(s)
}

/// Resolves on SIGTERM or ctrl-c. The handlers are installed when this is called (not when the
/// future is first polled), so call it before the slow startup steps.
fn terminated() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = term.recv() => {}
                _ = ctrl_c => {}
            }
            return;
        }
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let scenario = scenario(&args)?;
    let stop_signal = terminated();
    let names = if args.prefix.is_empty() {
        Names::default()
    } else {
        Names::prefixed(&args.prefix)
    };
    let listener = tokio::net::TcpListener::bind(&args.admin_listen_address)
        .await
        .with_context(|| format!("binding admin address {}", args.admin_listen_address))?;
    let sim = Sim::start_on(names, &args.rabbitmq_address, scenario, args.event_bus)
        .await
        .context("starting the simulator (is RabbitMQ running?)")?;
    info!(admin = %args.admin_listen_address, outdial_queue = %sim.names().outdial_queue,
          event_bus = %args.event_bus, "campaign-sim ready");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(admin::serve(sim.clone(), listener, async move {
        let _ = stop_rx.await;
    }));
    stop_signal.await;
    info!("shutting down");
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    sim.shutdown().await;
    Ok(())
}
