//! `campaign-demo`: one command that runs a whole outbound campaign on this machine.
//!
//! It checks that MariaDB, Redis and RabbitMQ answer (and says what to start when one does
//! not), starts campaign-manager with its tick workers and the peer simulator in this process
//! under a private queue prefix (so it never touches a real platform on the same broker),
//! creates an outplan, an outdial with a few hundred targets, a queue and a campaign through
//! the real RPC API, sets the campaign to `run`, shows live progress and ends with a summary
//! when the campaign stops by itself. Its queues, exchanges and Redis keys are removed on exit,
//! also after Ctrl-C.
//!
//! Run: `cargo run --release --bin campaign-demo` (`-- --help` for the flags).

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;

use campaign_demo::{NewCampaign, Stack, check_services, proc_usage};
use campaign_manager::app::shutdown_signal;
use campaign_manager::config::{Infra, Settings};
use campaign_sim::{MsRange, Outcome, Scenario, TargetState, Weights};

/// Runs a demo campaign against simulated platform peers.
#[derive(Parser, Debug)]
#[command(version, rename_all = "snake_case")]
struct Cli {
    /// MySQL/MariaDB DSN (`mysql://...` or the platform's `user:pass@tcp(host:port)/db`).
    #[arg(
        long,
        env = "DATABASE_DSN",
        default_value = "mysql://root@127.0.0.1:3306/test"
    )]
    database_dsn: String,
    /// Redis `host:port`.
    #[arg(long, env = "REDIS_ADDRESS", default_value = "127.0.0.1:6379")]
    redis_address: String,
    /// Redis database number.
    #[arg(long, env = "REDIS_DATABASE", default_value_t = 1)]
    redis_database: i64,
    /// AMQP URI of RabbitMQ.
    #[arg(
        long,
        env = "RABBITMQ_ADDRESS",
        default_value = "amqp://guest:guest@127.0.0.1:5672"
    )]
    rabbitmq_address: String,
    /// Event bus of the demo's service and simulator: `topic` (the platform's
    /// `bin-manager.event`, as today) or `fanout` (the per-service exchanges of older platforms).
    #[arg(long, env = "EVENT_BUS", default_value = "topic")]
    event_bus: campaign_manager::bus::EventBus,

    /// Targets in the outdial.
    #[arg(long, default_value_t = 300)]
    targets: usize,
    /// Destinations per target (1-5).
    #[arg(long, default_value_t = 1)]
    destinations: usize,
    /// Tries per destination.
    #[arg(long, default_value_t = 2)]
    max_tries: i32,
    /// Retry interval of a target, ms.
    #[arg(long, default_value_t = 2000)]
    try_interval_ms: i64,
    /// Campaign type: `call` or `flow`.
    #[arg(long, default_value = "call", value_parser = ["call", "flow"])]
    kind: String,
    /// Available agents of the campaign's queue (0: no queue, the dial rate is not capped).
    #[arg(long, default_value_t = 30)]
    agents: usize,
    /// Service level, percent: at most agents × level / 100 calls dialing at once.
    #[arg(long, default_value_t = 100)]
    service_level: i32,
    /// Pacing: most dials per second of the campaign (0.1-50; 0: no rate, the
    /// `dial_tick_ms` delay applies).
    #[arg(long, default_value_t = 8.0)]
    dials_per_second: f64,
    /// Pacing: most calls of the campaign up at once (unset: no cap).
    #[arg(long)]
    max_concurrent_calls: Option<i64>,

    /// Weight of answered calls.
    #[arg(long, default_value_t = 0.6)]
    answer: f64,
    /// Weight of busy calls.
    #[arg(long, default_value_t = 0.15)]
    busy: f64,
    /// Weight of unanswered calls.
    #[arg(long, default_value_t = 0.2)]
    noanswer: f64,
    /// Weight of failed calls.
    #[arg(long, default_value_t = 0.05)]
    failed: f64,
    /// Ringing time, ms, as `min-max` (or one number).
    #[arg(long, default_value = "300-1500", value_parser = parse_range)]
    ring_ms: MsRange,
    /// Talk time of answered calls, ms, `min-max`.
    #[arg(long, default_value = "1000-4000", value_parser = parse_range)]
    talk_ms: MsRange,
    /// Run time of a flow campaign's activeflows, ms, `min-max`.
    #[arg(long, default_value = "500-2000", value_parser = parse_range)]
    flow_ms: MsRange,
    /// Seed of the simulator's randomness.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Delay of the first tick after `run`, ms.
    #[arg(long, default_value_t = 500)]
    first_tick_ms: u64,
    /// Delay after a dial, ms (the platform uses 500).
    #[arg(long, default_value_t = 100)]
    dial_tick_ms: u64,
    /// Delay when waiting (no agent free, retry interval, empty list), ms.
    #[arg(long, default_value_t = 1000)]
    wait_tick_ms: u64,
    /// Tick workers.
    #[arg(long, default_value_t = 16)]
    workers: usize,
    /// Give up (stop the campaign) after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

fn parse_range(s: &str) -> Result<MsRange, String> {
    let num = |t: &str| {
        t.trim()
            .parse::<u64>()
            .map_err(|_| format!("{t:?} is not a number of ms"))
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            if b < a {
                return Err(format!("{s}: max below min"));
            }
            Ok(MsRange::new(a, b))
        }
        None => Ok(MsRange::fixed(num(s)?)),
    }
}

/// Counters shown while running and in the summary.
#[derive(Debug, Default, Clone)]
struct Snapshot {
    dialed: usize,
    live: usize,
    answered: usize,
    busy: usize,
    noanswer: usize,
    failed: usize,
    targets_done: usize,
    targets_out: usize,
    remaining: usize,
}

fn snapshot(stack: &Stack, outdial: Uuid, max: &[i32; 5], kind: &str) -> Snapshot {
    let stats = stack.sim.stats();
    let ended = |o: Outcome| stats.calls_ended.get(&o).copied().unwrap_or(0);
    let mut s = Snapshot::default();
    if kind == "flow" {
        s.dialed = stats.activeflows;
        s.live = stats.activeflows_live;
        s.answered = stats.activeflows - stats.activeflows_live;
    } else {
        s.dialed = stats.calls;
        s.live = stats.calls_live;
        s.answered = ended(Outcome::Answered);
        s.busy = ended(Outcome::Busy);
        s.noanswer = ended(Outcome::NoAnswer);
        s.failed = ended(Outcome::Failed);
    }
    for t in stack.sim.targets(outdial) {
        match t.status {
            TargetState::Done => s.targets_done += 1,
            TargetState::Idle if !t.has_tries_left(max) => s.targets_out += 1,
            _ => s.remaining += 1,
        }
    }
    s
}

fn fmt_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 60.0 {
        format!("{}m{:04.1}s", (secs / 60.0) as u64, secs % 60.0)
    } else {
        format!("{secs:.1}s")
    }
}

fn print_table(rows: &[(&str, String)]) {
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let v = rows.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    let line = format!("+-{}-+-{}-+", "-".repeat(w), "-".repeat(v));
    println!("{line}");
    for (k, val) in rows {
        println!("| {k:<w$} | {val:>v$} |");
    }
    println!("{line}");
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "error,lapin=off".to_owned());
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .try_init();
    if !(1..=5).contains(&cli.destinations) {
        eprintln!("--destinations must be 1 to 5");
        return ExitCode::from(2);
    }

    let mut infra = Infra::from_env();
    infra.database_dsn = cli.database_dsn.clone();
    infra.redis_address = cli.redis_address.clone();
    infra.redis_database = cli.redis_database;
    infra.rabbitmq_address = cli.rabbitmq_address.clone();

    println!("campaign-demo: checking MariaDB, Redis and RabbitMQ ...");
    let down = check_services(&infra).await;
    if !down.is_empty() {
        for d in &down {
            eprintln!("  ✗ {d}");
        }
        eprintln!("Start what is missing, then run the demo again.");
        return ExitCode::FAILURE;
    }
    println!("  ✓ all three answer");

    let run_id = Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut settings = Settings::from_env();
    settings.workers = cli.workers.max(1);
    settings.queue_prefix = format!("campaign-demo-{run_id}");
    settings.cache_prefix = format!("campaign-demo:{run_id}:cache:");
    settings.tick_namespace = format!("campaign-demo:{run_id}:ticks");
    settings.first_tick_ms = cli.first_tick_ms;
    settings.dial_tick_ms = cli.dial_tick_ms;
    settings.wait_tick_ms = cli.wait_tick_ms;
    settings.serve_http = false;
    settings.migrate = true;
    settings.event_bus = cli.event_bus;

    let scenario = Scenario {
        seed: cli.seed,
        ring_ms: cli.ring_ms,
        talk_ms: cli.talk_ms,
        flow_ms: cli.flow_ms,
        weights: Weights {
            answered: cli.answer,
            busy: cli.busy,
            noanswer: cli.noanswer,
            failed: cli.failed,
        },
        ..Scenario::default()
    };
    println!(
        "campaign-demo: starting campaign-manager ({} tick workers) and the simulator on queue prefix {}, {} event bus ...",
        settings.workers, settings.queue_prefix, settings.event_bus
    );
    let stack = match Stack::start(&infra, &settings, scenario).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("campaign-demo could not start: {e:#}");
            return ExitCode::FAILURE;
        }
    };

    let mut campaign_id = None;
    let outcome = tokio::select! {
        r = run(&stack, &cli, &mut campaign_id) => r.map(|()| true),
        _ = shutdown_signal() => Ok(false),
    };
    let code = match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("\ncampaign-demo: interrupted; stopping the campaign and cleaning up ...");
            if let Some(id) = campaign_id {
                let _ = stack.set_status(id, "stop").await;
            }
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("campaign-demo failed: {e:#}");
            if let Some(id) = campaign_id {
                let _ = stack.set_status(id, "stop").await;
            }
            ExitCode::FAILURE
        }
    };
    println!("campaign-demo: removing the demo's queues and keys ...");
    stack.shutdown().await;
    code
}

/// The demo campaign's `pacing` object from the flags (`None`: neither limit set).
fn demo_pacing(cli: &Cli) -> Option<serde_json::Value> {
    let rate = (cli.dials_per_second > 0.0).then_some(cli.dials_per_second);
    if rate.is_none() && cli.max_concurrent_calls.is_none() {
        return None;
    }
    Some(serde_json::json!({
        "max_concurrent_calls": cli.max_concurrent_calls,
        "dials_per_second": rate,
    }))
}

async fn run(stack: &Stack, cli: &Cli, campaign_id: &mut Option<Uuid>) -> anyhow::Result<()> {
    let customer = Uuid::new_v4();
    let outdial = stack
        .sim
        .create_outdial(customer, cli.targets, cli.destinations);
    let queue = (cli.agents > 0).then(|| stack.sim.create_queue(customer, cli.agents));
    let outplan = stack
        .create_outplan(customer, cli.try_interval_ms, cli.max_tries)
        .await?;
    let kind: &'static str = if cli.kind == "flow" { "flow" } else { "call" };
    let id = stack
        .create_campaign(&NewCampaign {
            customer,
            kind,
            name: "campaign-demo".into(),
            end_handle: "stop",
            service_level: cli.service_level,
            outplan,
            outdial,
            queue,
            pacing: demo_pacing(cli),
        })
        .await?;
    *campaign_id = Some(id);
    println!("  outplan  {outplan}");
    println!(
        "  outdial  {outdial} ({} targets × {} destination(s), {} tries each)",
        cli.targets, cli.destinations, cli.max_tries
    );
    match queue {
        Some(q) => println!(
            "  queue    {q} ({} agents, service level {} % → at most {} dialing)",
            cli.agents,
            cli.service_level,
            cli.agents as i64 * i64::from(cli.service_level) / 100
        ),
        None => println!("  queue    none (dial rate not capped)"),
    }
    match demo_pacing(cli) {
        Some(p) => println!("  pacing   {p}"),
        None => println!("  pacing   none"),
    }
    println!("  campaign {id} ({kind}, end_handle stop)");
    let cpu_before = proc_usage().cpu_secs;
    let started = Instant::now();
    let c = stack.set_status(id, "run").await?;
    println!(
        "campaign-demo: campaign is {} — dialing ...\n",
        c["status"].as_str().unwrap_or("?")
    );

    let max = [cli.max_tries; 5];
    let bar = ProgressBar::new(cli.targets as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:32.cyan/blue} {pos}/{len} targets finished\n  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut history: Vec<(Instant, usize)> = Vec::new();
    let mut max_live = 0;
    let mut last_status = String::from("run");
    let mut last_poll = Instant::now() - Duration::from_secs(1);
    let deadline = started + Duration::from_secs(cli.timeout_secs);
    loop {
        let s = snapshot(stack, outdial, &max, kind);
        max_live = max_live.max(s.live);
        let now = Instant::now();
        history.push((now, s.dialed));
        history.retain(|(t, _)| now.duration_since(*t) <= Duration::from_secs(5));
        let rate = match history.first() {
            Some((t, n)) if now.duration_since(*t) > Duration::from_millis(500) => {
                (s.dialed - n) as f64 / now.duration_since(*t).as_secs_f64()
            }
            _ => 0.0,
        };
        bar.set_position((s.targets_done + s.targets_out) as u64);
        bar.set_message(format!(
            "dialed {} | up {} | answered {} | failed {} | remaining {} | {:.1} dials/s | campaign {}",
            s.dialed,
            s.live,
            s.answered,
            s.busy + s.noanswer + s.failed,
            s.remaining,
            rate,
            last_status
        ));
        if now.duration_since(last_poll) >= Duration::from_millis(500) {
            last_poll = now;
            let c = stack.campaign(id).await?;
            last_status = c["status"].as_str().unwrap_or("?").to_owned();
            if last_status == "stop" && c["execute"] == "stop" {
                break;
            }
        }
        if now > deadline {
            bar.abandon();
            anyhow::bail!("the campaign did not stop within {} s", cli.timeout_secs);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed();
    let s = snapshot(stack, outdial, &max, kind);
    bar.set_position((s.targets_done + s.targets_out) as u64);
    bar.finish_with_message(format!(
        "dialed {} | answered {} | failed {} | remaining {} | campaign stop",
        s.dialed,
        s.answered,
        s.busy + s.noanswer + s.failed,
        s.remaining
    ));

    let ccs = stack.campaigncalls(id).await?;
    let mut results: HashMap<String, usize> = HashMap::new();
    for cc in &ccs {
        let key = format!(
            "{}/{}",
            cc["status"].as_str().unwrap_or("?"),
            cc["result"].as_str().unwrap_or("?")
        );
        *results.entry(key).or_default() += 1;
    }
    let usage = proc_usage();
    let secs = elapsed.as_secs_f64().max(0.001);
    println!(
        "\ncampaign {id} stopped by itself after {}\n",
        fmt_duration(elapsed)
    );
    let mut rows: Vec<(&str, String)> = vec![
        ("targets", cli.targets.to_string()),
        ("  reached (done)", s.targets_done.to_string()),
        ("  out of tries", s.targets_out.to_string()),
        ("  not finished", s.remaining.to_string()),
        ("dial attempts", s.dialed.to_string()),
    ];
    if kind == "call" {
        rows.extend([
            ("  answered", s.answered.to_string()),
            ("  busy", s.busy.to_string()),
            ("  no answer", s.noanswer.to_string()),
            ("  failed", s.failed.to_string()),
        ]);
    } else {
        rows.push(("  flows run", s.answered.to_string()));
    }
    rows.extend([
        ("campaigncalls (RPC)", ccs.len().to_string()),
        (
            "  done/success",
            results
                .get("done/success")
                .copied()
                .unwrap_or(0)
                .to_string(),
        ),
        (
            "  done/fail",
            results.get("done/fail").copied().unwrap_or(0).to_string(),
        ),
        ("most calls up at once", max_live.to_string()),
        ("dial rate", format!("{:.1}/s", s.dialed as f64 / secs)),
        ("duration", fmt_duration(elapsed)),
        (
            "CPU (whole demo process)",
            format!("{:.1} s", usage.cpu_secs - cpu_before),
        ),
        (
            "RSS / peak",
            format!(
                "{} / {} MiB",
                usage.rss_kib / 1024,
                usage.peak_rss_kib / 1024
            ),
        ),
        ("webhooks received", stack.sim.webhook_count().to_string()),
    ]);
    print_table(&rows);
    Ok(())
}
