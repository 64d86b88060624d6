//! Idle benchmark: what a `campaign-manager` process costs with no campaign running, and how late
//! the first tick of a campaign started on such a process is.
//!
//! It runs the release binary (`$CAMPAIGN_MANAGER_BIN`, else the one cargo built for this bench)
//! as a child process against this machine's MariaDB, Redis and RabbitMQ, on a database, queue
//! prefix, cache prefix and tick namespace of its own (removed at the end), and prints:
//! * per case (`WORKERS=0`, then the default `WORKERS`), the CPU of the child over the window in
//!   millicores (utime + stime from `/proc/<pid>/stat`, after a settling pause) and its RSS;
//! * with the default `WORKERS`, after the idle window: `--rounds` times, a one-target campaign
//!   created and set to `run` (the simulated peers, in this process, answer the dial at once), the
//!   time from the `run` reply to the first dial the simulator receives, and that minus the
//!   service's first-tick delay (`FIRST_TICK_MS`, 1000 ms): how late the first tick was. Each
//!   campaign ends after its one dial, so the process is idle again before the next round;
//! * the same process' idle CPU once more after those campaigns ended (it must go quiet again).
//!
//! Run: `cargo bench --bench idle` (60 s windows) or `cargo bench --bench idle -- --quick` (30 s).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use campaign_demo::{ProcUsage, delete_broker_names, delete_redis_prefixes, proc_usage_of};
use campaign_manager::bus::{Bus, Names};
use campaign_sim::{Outcome, Scenario, Sim};
use clap::Parser;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, MySqlConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    /// 30 s windows instead of 60 s.
    #[arg(long)]
    quick: bool,
    /// Campaigns started one after another on the idle process to time their first tick.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds the process runs before a window starts (start-up, migrations, first passes).
    #[arg(long, default_value_t = 10)]
    settle_secs: u64,
    /// MariaDB server URL (without database).
    #[arg(
        long,
        env = "TEST_MYSQL_URL",
        default_value = "mysql://root@127.0.0.1:3306"
    )]
    mysql: String,
    /// RabbitMQ address.
    #[arg(
        long,
        env = "RABBITMQ_ADDRESS",
        default_value = "amqp://guest:guest@127.0.0.1:5672"
    )]
    rabbitmq: String,
    #[arg(long, hide = true)]
    bench: bool,
}

/// The `campaign-manager` executable.
fn service_binary() -> std::path::PathBuf {
    std::env::var_os("CAMPAIGN_MANAGER_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_campaign-manager").into())
}

/// A free loopback port for the child's metrics and health endpoint.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Status code of `GET path` on `addr` (0 when nothing answers).
async fn http_status(addr: &str, path: &str) -> u16 {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return 0;
    };
    let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return 0;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// One service process on its own database, prefixes and namespace.
struct Service {
    child: tokio::process::Child,
    pid: String,
    names: Names,
    tag: String,
}

impl Service {
    async fn start(args: &Args, tag: &str, workers: Option<usize>) -> anyhow::Result<Service> {
        let http = format!("127.0.0.1:{}", free_port()?);
        let mut cmd = tokio::process::Command::new(service_binary());
        cmd.env("DATABASE_DSN", format!("{}/cmidle_{tag}", args.mysql))
            .env("REDIS_DATABASE", "0")
            .env("RABBITMQ_ADDRESS", &args.rabbitmq)
            .env("QUEUE_PREFIX", format!("cmidle-{tag}"))
            .env("CACHE_PREFIX", format!("cmidle:{tag}:cache:"))
            .env("TICK_NAMESPACE", format!("cmidle:{tag}:ticks"))
            .env("PROMETHEUS_LISTEN_ADDRESS", &http)
            .env("RUST_LOG", "warn")
            .kill_on_drop(true);
        if let Some(w) = workers {
            cmd.env("WORKERS", w.to_string());
        }
        let child = cmd.spawn().context("starting campaign-manager")?;
        let pid = child.id().map(|p| p.to_string()).unwrap_or_default();
        let service = Service {
            child,
            pid,
            names: Names::prefixed(&format!("cmidle-{tag}")),
            tag: tag.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_status(&http, "/readyz").await != 200 {
            if Instant::now() > deadline {
                service.stop(args).await;
                bail!("campaign-manager was not ready within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(service)
    }

    fn usage(&self) -> ProcUsage {
        proc_usage_of(&self.pid)
    }

    /// CPU in millicores over `secs`, and RSS (MiB) at the end.
    async fn idle_window(&self, secs: u64) -> (f64, f64) {
        let (u0, t0) = (self.usage(), Instant::now());
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let u1 = self.usage();
        let millicores = (u1.cpu_secs - u0.cpu_secs) / t0.elapsed().as_secs_f64() * 1000.0;
        (millicores, u1.rss_kib as f64 / 1024.0)
    }

    /// SIGTERM, then SIGKILL after 20 s; removes the queues, keys and database.
    async fn stop(mut self, args: &Args) {
        let _ = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(&self.pid)
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        delete_broker_names(&args.rabbitmq, &self.names).await;
        let tag = &self.tag;
        delete_redis_prefixes(
            "redis://127.0.0.1:6379/0",
            &[
                format!("cmidle:{tag}:ticks:"),
                format!("cmidle:{tag}:cache:"),
            ],
        )
        .await;
        if let Ok(mut admin) = MySqlConnection::connect(&args.mysql).await {
            let drop = format!("DROP DATABASE IF EXISTS cmidle_{tag}");
            let _ = sqlx::query(AssertSqlSafe(drop)).execute(&mut admin).await;
            let _ = admin.close().await;
        }
    }
}

/// An RPC client and the simulated peers on the service's prefix.
struct Caller {
    client: Bus,
    sim: Sim,
    names: Names,
}

impl Caller {
    async fn ok(&self, method: &str, uri: &str, body: Value) -> anyhow::Result<Value> {
        campaign_demo::service_ok(&self.client, &self.names, method, uri, Some(body)).await
    }

    /// A one-target campaign (status `stop`).
    async fn campaign(&self) -> anyhow::Result<Uuid> {
        let customer = Uuid::new_v4();
        let outplan = self
            .ok(
                "POST",
                "/v1/outplans",
                json!({
                    "customer_id": customer, "name": "idle bench", "detail": "",
                    "source": {"type": "tel", "target": "+15550000000"},
                    "dial_timeout": 30000, "try_interval": 0,
                    "max_try_count_0": 1, "max_try_count_1": 1, "max_try_count_2": 1,
                    "max_try_count_3": 1, "max_try_count_4": 1,
                }),
            )
            .await?;
        let outdial = self.sim.create_outdial(customer, 1, 1);
        let c = self
            .ok(
                "POST",
                "/v1/campaigns",
                json!({
                    "customer_id": customer, "type": "call", "name": "idle bench", "detail": "",
                    "actions": [{"type": "answer"}], "service_level": 100,
                    "end_handle": "stop", "outplan_id": outplan["id"], "outdial_id": outdial,
                    "queue_id": Uuid::nil(),
                }),
            )
            .await?;
        c["id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .with_context(|| format!("campaign reply without an id: {c}"))
    }

    /// Sets a fresh campaign to `run`; the time from the reply to the simulator's next dial.
    async fn first_dial(&self) -> anyhow::Result<Duration> {
        let id = self.campaign().await?;
        let calls = self.sim.stats().calls;
        let uri = format!("/v1/campaigns/{id}/status");
        self.ok("PUT", &uri, json!({ "status": "run" })).await?;
        let replied = Instant::now();
        while self.sim.stats().calls == calls {
            if replied.elapsed() > Duration::from_secs(30) {
                bail!("no dial within 30 s of `run`");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(replied.elapsed())
    }
}

/// Times `rounds` first dials on the idle process, each after the last campaign went quiet.
async fn first_dials(args: &Args, service: &Service) -> anyhow::Result<Vec<Duration>> {
    let sim = Sim::start_on(
        service.names.clone(),
        &args.rabbitmq,
        Scenario::instant(Outcome::Answered),
        campaign_manager::config::Settings::from_env().event_bus,
    )
    .await
    .context("starting the simulator")?;
    let client = Bus::connect(
        &args.rabbitmq,
        service.names.clone(),
        &prometheus::Registry::new(),
    )
    .await
    .context("connecting the RPC client")?;
    let caller = Caller {
        client,
        sim,
        names: service.names.clone(),
    };
    let mut out = Vec::new();
    for _ in 0..args.rounds {
        let result = caller.first_dial().await;
        // The campaign ends after its one dial; let its chain end and the loops go quiet.
        tokio::time::sleep(Duration::from_secs(8)).await;
        out.push(result?);
    }
    caller.client.shutdown().await;
    caller.sim.shutdown_and_delete().await;
    Ok(out)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let secs = if args.quick { 30 } else { 60 };
    println!(
        "idle: {} ({secs} s windows after {} s settling)",
        service_binary().display(),
        args.settle_secs
    );
    let mut admin = MySqlConnection::connect(&args.mysql)
        .await
        .context("connecting to MariaDB")?;
    for workers in [Some(0), None] {
        let tag = Uuid::new_v4().simple().to_string()[..10].to_owned();
        let create = format!("CREATE DATABASE cmidle_{tag}");
        sqlx::query(AssertSqlSafe(create))
            .execute(&mut admin)
            .await?;
        let service = Service::start(&args, &tag, workers).await?;
        tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
        let label = match workers {
            Some(w) => format!("WORKERS={w}"),
            None => "WORKERS default".to_owned(),
        };
        let (mc, rss) = service.idle_window(secs).await;
        println!("{label:<18} idle CPU {mc:6.1} millicores   RSS {rss:5.1} MiB");
        if workers.is_none() {
            match first_dials(&args, &service).await {
                Ok(delays) => {
                    let list = |f: &dyn Fn(&Duration) -> f64| {
                        delays
                            .iter()
                            .map(|d| format!("{:.0}", f(d)))
                            .collect::<Vec<_>>()
                            .join(" / ")
                    };
                    println!(
                        "{label:<18} run reply -> first dial {} ms (first tick late by {} ms after FIRST_TICK_MS = 1000)",
                        list(&|d| ms(*d)),
                        list(&|d| ms(*d) - 1000.0),
                    );
                    let (mc, rss) = service.idle_window(secs).await;
                    println!(
                        "{label:<18} idle CPU {mc:6.1} millicores   RSS {rss:5.1} MiB (after those campaigns)"
                    );
                }
                Err(e) => println!("{label:<18} first dial: failed: {e:#}"),
            }
        }
        service.stop(&args).await;
    }
    let _ = admin.close().await;
    Ok(())
}
