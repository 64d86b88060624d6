//! Live stats benchmark: `GET /v1/campaigns/<id>/stats` over RabbitMQ for a campaign with
//! 1 million campaigncalls (plus 200,000 of another campaign in the same table), and the
//! per-tick cost of recording the tick's outcome (one Redis write).
//!
//! Run: `cargo bench --bench stats` (`-- --rows N` to change the size, `--requests N` the
//! number of timed requests). Rows are inserted with `INSERT ... SELECT` from MariaDB's
//! sequence engine (`seq_1_to_N`), in chunks of 100,000. Uses its own database, queue prefix
//! and cache prefix, and removes them at the end.

use std::time::{Duration, Instant};

use campaign_demo::{delete_broker_names, delete_redis_prefixes};
use campaign_manager::app::{App, Role};
use campaign_manager::bus::{Bus, Names, Request};
use campaign_manager::config::{Infra, Settings};
use campaign_manager::model::*;
use campaign_manager::service::tick::{Next, Outcome};
use clap::Parser;
use sqlx::{AssertSqlSafe, MySqlPool};
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    /// Campaigncalls of the measured campaign.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Timed stats requests.
    #[arg(long, default_value_t = 20)]
    requests: usize,
    #[arg(long, hide = true)]
    bench: bool,
}

const CHUNK: u64 = 100_000;

fn campaign(customer: Uuid) -> Campaign {
    Campaign {
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
        calling_hours: None,
        pacing: None,
        tm_create: None,
        tm_update: None,
        tm_delete: None,
    }
}

/// Inserts `rows` campaigncalls of `c`: 1 % dialing, 1 % progressing, the rest done (a third
/// of them failed), created one second apart up to now.
async fn fill(pool: &MySqlPool, c: &Campaign, rows: u64) -> anyhow::Result<()> {
    let mut done = 0;
    while done < rows {
        let n = CHUNK.min(rows - done);
        let sql = format!(
            "INSERT INTO campaign_campaigncalls (id, customer_id, campaign_id, outplan_id, \
               outdial_id, outdial_target_id, queue_id, activeflow_id, flow_id, reference_type, \
               reference_id, status, result, source, destination, destination_index, try_count, \
               tm_create, tm_update, tm_delete, reason) \
             SELECT UNHEX(MD5(CONCAT(?, k))), ?, ?, ?, ?, UNHEX(MD5(CONCAT('t', ?, k))), ?, \
               UNHEX(MD5(CONCAT('a', ?, k))), ?, 'call', UNHEX(MD5(CONCAT('r', ?, k))), \
               CASE k % 100 WHEN 0 THEN 'dialing' WHEN 1 THEN 'progressing' ELSE 'done' END, \
               CASE WHEN k % 100 < 2 THEN '' WHEN k % 3 = 0 THEN 'fail' ELSE 'success' END, \
               '{{\"type\":\"tel\",\"target\":\"+15550001000\"}}', \
               '{{\"type\":\"tel\",\"target\":\"+15550002000\"}}', 0, 1, \
               NOW(6) - INTERVAL ({rows} - k) SECOND, NOW(6), NULL, \
               CASE WHEN k % 100 < 2 THEN NULL WHEN k % 3 = 0 THEN \
                 ELT(1 + k % 4, 'busy', 'noanswer', 'failed', 'cancel') ELSE 'normal' END \
             FROM (SELECT seq + {done} AS k FROM seq_1_to_{n}) s"
        );
        let id = c.id.to_string();
        sqlx::query(AssertSqlSafe(sql))
            .bind(&id)
            .bind(c.customer_id.as_bytes().to_vec())
            .bind(c.id.as_bytes().to_vec())
            .bind(Uuid::nil().as_bytes().to_vec())
            .bind(Uuid::nil().as_bytes().to_vec())
            .bind(&id)
            .bind(Uuid::nil().as_bytes().to_vec())
            .bind(&id)
            .bind(c.flow_id.as_bytes().to_vec())
            .bind(&id)
            .execute(pool)
            .await?;
        done += n;
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
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
    let app = App::start(&infra, &settings, Role::Service).await?;
    let store = &app.store;

    let customer = Uuid::new_v4();
    let measured = campaign(customer);
    let other = campaign(customer);
    store.campaigns.create(&measured).await?;
    store.campaigns.create(&other).await?;
    let t = Instant::now();
    fill(&store.pool, &measured, args.rows).await?;
    fill(&store.pool, &other, args.rows / 5).await?;
    println!(
        "inserted {} + {} campaigncalls in {:.1} s",
        args.rows,
        args.rows / 5,
        t.elapsed().as_secs_f64()
    );

    let names = Names::prefixed(&settings.queue_prefix);
    let client = Bus::connect(
        &infra.rabbitmq_address,
        names.clone(),
        &prometheus::Registry::new(),
    )
    .await?;
    let uri = format!("/v1/campaigns/{}/stats", measured.id);
    let mut lat = Vec::new();
    let mut last = serde_json::Value::Null;
    // One untimed request warms the buffer pool, as a live campaign's would be.
    for i in 0..=args.requests {
        let t = Instant::now();
        let r = client
            .rpc()
            .call(&names.request_queue, &Request::new("GET", uri.clone()))
            .await?;
        let took = t.elapsed();
        anyhow::ensure!(r.status_code == 200, "stats answered {}", r.status_code);
        if i > 0 {
            lat.push(took);
        }
        last = r.data_as::<serde_json::Value>()?;
    }
    lat.sort();
    anyhow::ensure!(
        last["dials"].as_u64() == Some(args.rows),
        "stats counted {} dials, inserted {}",
        last["dials"],
        args.rows
    );
    println!(
        "GET /v1/campaigns/<id>/stats, {} campaigncalls, {} requests over RabbitMQ: \
         p50 {:.1} ms, max {:.1} ms (RPC timeout 3000 ms)",
        args.rows,
        lat.len(),
        ms(lat[lat.len() / 2]),
        ms(lat[lat.len() - 1])
    );
    println!("stats: {last}");

    // The per-tick cost of the tick record.
    let n = 2000;
    let t = Instant::now();
    for _ in 0..n {
        app.service
            .record_tick(
                measured.id,
                Next::Continue(Duration::from_secs(5)),
                &Outcome::Waiting("no_capacity"),
            )
            .await;
    }
    println!(
        "tick record (one pipelined Redis write): {:.3} ms per tick over {n} ticks",
        ms(t.elapsed()) / f64::from(n)
    );

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
