//! RPC benchmark: requests/s and latency of `GET /v1/campaigns/<id>` (cache hit) and
//! `POST /v1/outplans` over RabbitMQ, with 1, 8 and 64 concurrent clients, against the real
//! service started in-process on this machine's MariaDB, Redis and RabbitMQ.
//!
//! Run: `cargo bench --bench rpc` (add `-- --secs 5` to change the time per case).
//! Uses its own database, queue prefix and cache prefix, and removes the database at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use campaign_demo::{delete_broker_names, delete_redis_prefixes};
use campaign_manager::app::{App, Role};
use campaign_manager::bus::{Bus, Names, Request};
use campaign_manager::config::{Infra, Settings};
use campaign_manager::model::*;
use clap::Parser;
use sqlx::{AssertSqlSafe, MySqlPool};
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    /// Seconds per case.
    #[arg(long, default_value_t = 5)]
    secs: u64,
    #[arg(long, hide = true)]
    bench: bool,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn run_case(
    bus: &Arc<Bus>,
    queue: &str,
    make: Arc<dyn Fn() -> Request + Send + Sync>,
    clients: usize,
    secs: u64,
) -> (f64, Duration, Duration, usize) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let rpc = bus.rpc();
        let make = make.clone();
        let queue = queue.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < deadline {
                let req = make();
                let t = Instant::now();
                match rpc.call(&queue, &req).await {
                    Ok(r) if r.status_code == 200 => lat.push(t.elapsed()),
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    (
        all.len() as f64 / elapsed,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        errors,
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tag = Uuid::new_v4().simple().to_string()[..10].to_owned();
    let db = format!("cmbench_{tag}");
    let admin = MySqlPool::connect("mysql://root@127.0.0.1:3306").await?;
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&admin)
        .await?;

    let mut infra = Infra::from_env();
    infra.database_dsn = format!("mysql://root@127.0.0.1:3306/{db}");
    infra.rabbitmq_address = "amqp://guest:guest@127.0.0.1:5672/%2f".into();
    infra.redis_database = 0;
    let mut settings = Settings::from_env();
    settings.queue_prefix = format!("bench-{tag}");
    settings.cache_prefix = format!("bench-{tag}:");
    settings.tick_namespace = format!("bench-{tag}:ticks");
    settings.workers = 0;
    settings.serve_http = false;
    settings.rpc_concurrency = 64;
    let app = App::start(&infra, &settings, Role::Service).await?;

    // A campaign to read (inserted directly: creating one through RPC needs flow-manager).
    let customer = Uuid::new_v4();
    let c = Campaign {
        id: Uuid::new_v4(),
        customer_id: customer,
        kind: CampaignType::Call,
        execute: Execute::Stop,
        name: "bench".into(),
        detail: String::new(),
        status: CampaignStatus::Stop,
        service_level: 100,
        end_handle: EndHandle::Stop,
        flow_id: Uuid::new_v4(),
        actions: None,
        outplan_id: Uuid::nil(),
        outdial_id: Uuid::nil(),
        queue_id: Uuid::nil(),
        next_campaign_id: Uuid::nil(),
        tm_create: None,
        tm_update: None,
        tm_delete: None,
        calling_hours: None,
        pacing: None,
    };
    app.store.campaigns.create(&c).await?;

    let names = Names::prefixed(&settings.queue_prefix);
    let client = Arc::new(
        Bus::connect(
            &infra.rabbitmq_address,
            names.clone(),
            &prometheus::Registry::new(),
        )
        .await?,
    );
    let get_uri = format!("/v1/campaigns/{}", c.id);
    let get: Arc<dyn Fn() -> Request + Send + Sync> =
        Arc::new(move || Request::new("GET", get_uri.clone()));
    let body = serde_json::json!({"customer_id": customer, "name": "bench", "source": {"type": "tel", "target": "+1"}, "try_interval": 60000, "max_try_count_0": 3});
    let post: Arc<dyn Fn() -> Request + Send + Sync> = Arc::new(move || {
        Request::new("POST", "/v1/outplans")
            .with_json(&body)
            .unwrap_or_else(|_| Request::new("POST", "/v1/outplans"))
    });

    println!(
        "RPC over RabbitMQ, {} s per case, service in-process (rpc_concurrency 64)",
        args.secs
    );
    println!(
        "{:<34} {:>8} {:>10} {:>9} {:>9} {:>7}",
        "case", "clients", "req/s", "p50 ms", "p99 ms", "errors"
    );
    for (name, make) in [
        ("GET /v1/campaigns/<id> (cache hit)", get),
        ("POST /v1/outplans", post),
    ] {
        for clients in [1usize, 8, 64] {
            let (rps, p50, p99, errors) = run_case(
                &client,
                &names.request_queue,
                make.clone(),
                clients,
                args.secs,
            )
            .await;
            println!(
                "{name:<34} {clients:>8} {rps:>10.0} {:>9.2} {:>9.2} {errors:>7}",
                p50.as_secs_f64() * 1000.0,
                p99.as_secs_f64() * 1000.0
            );
        }
    }
    client.shutdown().await;
    app.stop().await;
    // The benchmark's queues, exchanges, database and Redis keys (the demo's cleanup helpers).
    delete_broker_names(&infra.rabbitmq_address, &names).await;
    sqlx::query(AssertSqlSafe(format!("DROP DATABASE {db}")))
        .execute(&admin)
        .await?;
    delete_redis_prefixes(&infra.redis_url(), &[format!("bench-{tag}")]).await;
    Ok(())
}
