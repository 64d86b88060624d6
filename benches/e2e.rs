//! End-to-end benchmark: N concurrent campaigns (default 10, 100 and 1,000) dialing through
//! campaign-manager against the simulator with instant call outcomes, on this machine's
//! MariaDB, Redis and RabbitMQ, with the platform's tick delays (first 1000 ms, 500 ms after a
//! dial).
//!
//! The service (RPC routes, event subscriptions, tick workers) and the RPC client run in this
//! process. The simulated peers run here too, or with `--sim-process` as their own
//! `campaign-sim` child process (cargo builds it next to the bench and names it in
//! `CARGO_BIN_EXE_campaign-sim`), driven over its admin HTTP API. Only then is this process'
//! CPU the service's own: the client is idle while the window is measured.
//!
//! Per case it prints: dial attempts/s end to end (calls the simulator received) against the
//! ideal (one dial per campaign per 500 ms), chain tick lateness p50/p99 (the workers crate's
//! `campaign_manager_chain_tick_lateness_ms`), tick time, mean latency of each outbound RPC
//! and of event handling, CPU and RSS of this process, of the simulator process and of the
//! MariaDB, Redis and RabbitMQ server processes over the measured window, and per dial:
//! the service's CPU ms, SQL statements, outbound RPCs, events and broker messages.
//!
//! SQL statements come from MariaDB's global `Questions` and `Com_*` counters (the server is
//! shared with other clients): their rate over `--baseline-secs` before the case starts is
//! taken as other load and subtracted, so treat them as ± the noise of that load.
//!
//! Run: `cargo bench --bench e2e` or
//! `cargo build --release --bin campaign-sim && cargo bench --bench e2e -- --campaigns 100,1000 --secs 10 --sim-process`. Paced campaigns
//! (the cost of a paced tick): `-- --campaigns 1,10 --dials-per-second 10`. The cost of the
//! dial's suppression check: `-- --campaigns 100 --suppressions 100000` (entries for the
//! campaigns' customer, none of them a number the campaigns dial).
//! Each case uses its own database, queue prefix and Redis keys, removed at the end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use campaign_demo::{
    ProcUsage, delete_broker_names, delete_redis_prefixes, proc_usage, proc_usage_of,
};
use campaign_manager::app::{App, Role};
use campaign_manager::bus::{Bus, Names};
use campaign_manager::config::Infra;
use campaign_manager::config::Settings;
use campaign_sim::{MsRange, Outcome, Scenario, Sim};
use clap::Parser;
use futures::StreamExt;
use prometheus::proto::{MetricFamily, MetricType};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, MySqlConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// The `campaign-sim` executable: `$CAMPAIGN_SIM_BIN`, else the one cargo built beside this
/// bench (`target/<profile>/campaign-sim`; it is another package's binary, so build it first:
/// `cargo build --release --bin campaign-sim`).
fn sim_binary() -> anyhow::Result<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("CAMPAIGN_SIM_BIN") {
        return Ok(path.into());
    }
    let exe = std::env::current_exe().context("locating the bench executable")?;
    // target/<profile>/deps/e2e-<hash> → target/<profile>/campaign-sim
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("campaign-sim"))
        .context("the bench executable has no target directory")?;
    if !path.exists() {
        bail!(
            "{} not found: run `cargo build --release --bin campaign-sim` first \
             (or set CAMPAIGN_SIM_BIN)",
            path.display()
        );
    }
    Ok(path)
}

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
    /// Pace every campaign at this many dials per second (`pacing.dials_per_second`: the cost
    /// of a paced tick); 0: not paced (one dial per tick, `--dial_tick_ms` apart).
    #[arg(long, default_value_t = 0.0)]
    dials_per_second: f64,
    /// Talk time of every call, ms (0: every call ends at once). With calls that last, a dial's
    /// `requested` mark lands before its hangup, as on the platform.
    #[arg(long, default_value_t = 0)]
    talk_ms: u64,
    /// Run the simulator as its own `campaign-sim` process (so this process is the service).
    #[arg(long)]
    sim_process: bool,
    /// Suppression list entries of the campaigns' customer, imported before the run (numbers
    /// none of the campaigns dial: the dial's lookup in a list of this size).
    #[arg(long, default_value_t = 0)]
    suppressions: usize,
    /// Seconds over which MariaDB's statement rate is sampled before each case (other load).
    #[arg(long, default_value_t = 3)]
    baseline_secs: u64,
    /// Start a MariaDB of the bench's own (`mariadb-install-db` + `mariadbd` on a free port, in
    /// a temporary directory, removed at the end) instead of using `--mysql`: its statement
    /// counters and CPU are then the service's alone, whatever else the machine runs.
    #[arg(long)]
    own_mariadb: bool,
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

/// CPU seconds and RSS of the servers the case uses: the MariaDB it is connected to (its
/// `@@pid_file`), the local Redis and RabbitMQ (by process name).
fn servers(mariadb_pid: &str) -> Vec<(&'static str, ProcUsage)> {
    let mut out = vec![("mariadbd", proc_usage_of(mariadb_pid))];
    for (label, comm) in [
        ("redis-server", "redis-server"),
        ("rabbitmq (beam.smp)", "beam.smp"),
    ] {
        let mut total = ProcUsage::default();
        for p in pids_named(comm) {
            let u = proc_usage_of(&p);
            total.cpu_secs += u.cpu_secs;
            total.rss_kib += u.rss_kib;
        }
        out.push((label, total));
    }
    out
}

/// The process id of the MariaDB `conn` is connected to (from its pid file).
async fn mariadb_pid(conn: &mut MySqlConnection) -> anyhow::Result<String> {
    let (file,): (String,) = sqlx::query_as("SELECT @@pid_file").fetch_one(conn).await?;
    let pid = std::fs::read_to_string(&file)
        .with_context(|| format!("reading MariaDB's pid file {file}"))?;
    Ok(pid.trim().to_owned())
}

/// A MariaDB of the bench's own (`--own-mariadb`), killed and its directory removed on drop.
struct OwnMariadb {
    child: std::process::Child,
    dir: std::path::PathBuf,
    url: String,
}

impl OwnMariadb {
    /// Installs a data directory and starts `mariadbd` on a free port; waits until it answers.
    async fn start() -> anyhow::Result<OwnMariadb> {
        let dir = std::env::temp_dir().join(format!("cmbench-mariadb-{}", Uuid::new_v4().simple()));
        let data = dir.join("data");
        std::fs::create_dir_all(&dir)?;
        campaign_demo::install_mariadb(&data)?;
        let port = free_port()?;
        let child = campaign_demo::own_mariadbd(&data, &dir.join("mariadb.sock"), port)
            .arg(format!("--pid-file={}", dir.join("mariadb.pid").display()))
            .arg("--max-connections=500")
            .spawn()
            .context("starting mariadbd")?;
        let own = OwnMariadb {
            child,
            dir,
            url: format!("mysql://root@127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match MySqlConnection::connect(&own.url).await {
                Ok(c) => {
                    let _ = c.close().await;
                    return Ok(own);
                }
                Err(e) if Instant::now() > deadline => bail!("own mariadbd did not start: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

impl Drop for OwnMariadb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Busy and total jiffies of the whole machine (first line of `/proc/stat`).
fn box_jiffies() -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let Some(line) = text.lines().next() else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // idle + iowait
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// MariaDB's global statement counters (`Questions` and the `Com_*` this service issues).
async fn sql_counters(conn: &mut MySqlConnection) -> anyhow::Result<BTreeMap<String, f64>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SHOW GLOBAL STATUS WHERE Variable_name IN \
         ('Questions','Com_select','Com_insert','Com_insert_select','Com_update','Com_delete', \
          'Com_begin','Com_commit','Com_rollback')",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(k, v)| (k.to_lowercase(), v.parse().unwrap_or(0.0)))
        .collect())
}

/// `after - before` per counter.
fn deltas(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .collect()
}

/// One request to the simulator's admin HTTP API: `(status, JSON body)`.
async fn admin_http(addr: &str, method: &str, path: &str, body: &Value) -> anyhow::Result<Value> {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to the simulator's admin API at {addr}"))?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: sim\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    let status = out.get(9..12).unwrap_or("").to_owned();
    let json = out.split("\r\n\r\n").nth(1).unwrap_or("null");
    if status != "200" {
        bail!("simulator {method} {path} answered {status}: {json}");
    }
    Ok(serde_json::from_str(json)?)
}

/// A free loopback port for the simulator's admin API.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The simulated peers: in this process, or a `campaign-sim` child process.
enum Peers {
    Here(Sim),
    Child {
        child: tokio::process::Child,
        pid: String,
        admin: String,
        scenario_file: std::path::PathBuf,
    },
}

impl Peers {
    async fn start(
        names: &Names,
        infra: &Infra,
        settings: &Settings,
        separate: bool,
        talk_ms: u64,
    ) -> anyhow::Result<Peers> {
        let prefix = settings.queue_prefix.as_str();
        let mut scenario = Scenario::instant(Outcome::Answered);
        scenario.talk_ms = MsRange::fixed(talk_ms);
        if !separate {
            let bus = settings.event_bus;
            let sim = Sim::start_on(names.clone(), &infra.rabbitmq_address, scenario, bus)
                .await
                .context("starting the simulator")?;
            return Ok(Peers::Here(sim));
        }
        let admin = format!("127.0.0.1:{}", free_port()?);
        let scenario_file = std::env::temp_dir().join(format!("{prefix}-scenario.json"));
        std::fs::write(&scenario_file, serde_json::to_vec(&scenario)?)?;
        let child = tokio::process::Command::new(sim_binary()?)
            .arg("--prefix")
            .arg(prefix)
            .arg("--scenario")
            .arg(&scenario_file)
            .arg("--admin_listen_address")
            .arg(&admin)
            .arg("--event_bus")
            .arg(settings.event_bus.as_str())
            .env("RABBITMQ_ADDRESS", &infra.rabbitmq_address)
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .context("starting campaign-sim")?;
        let pid = child.id().map(|p| p.to_string()).unwrap_or_default();
        let peers = Peers::Child {
            child,
            pid,
            admin,
            scenario_file,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Peers::Child { admin, .. } = &peers
                && admin_http(admin, "GET", "/health", &Value::Null)
                    .await
                    .is_ok()
            {
                return Ok(peers);
            }
            if Instant::now() > deadline {
                peers.stop().await;
                bail!("campaign-sim did not answer on its admin API within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn create_outdial(&self, customer: Uuid, targets: usize) -> anyhow::Result<Uuid> {
        match self {
            Peers::Here(sim) => Ok(sim.create_outdial(customer, targets, 1)),
            Peers::Child { admin, .. } => {
                let v = admin_http(
                    admin,
                    "POST",
                    "/outdials",
                    &json!({"customer_id": customer, "targets": targets, "destinations": 1}),
                )
                .await?;
                id_of(&v)
            }
        }
    }

    /// (calls created, events published) so far.
    async fn counts(&self) -> anyhow::Result<(u64, u64)> {
        match self {
            Peers::Here(sim) => Ok((sim.stats().calls as u64, sim.published_events().0)),
            Peers::Child { admin, .. } => {
                let v = admin_http(admin, "GET", "/stats", &Value::Null).await?;
                Ok((
                    v["calls"].as_u64().unwrap_or(0),
                    v["events_published"].as_u64().unwrap_or(0),
                ))
            }
        }
    }

    fn usage(&self) -> Option<ProcUsage> {
        match self {
            Peers::Here(_) => None,
            Peers::Child { pid, .. } => Some(proc_usage_of(pid)),
        }
    }

    /// Stops the simulator (SIGTERM, then SIGKILL after 10 s) and deletes its queues.
    async fn stop(self) {
        match self {
            Peers::Here(sim) => sim.shutdown_and_delete().await,
            Peers::Child {
                mut child,
                pid,
                scenario_file,
                ..
            } => {
                let _ = tokio::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(&pid)
                    .status()
                    .await;
                if tokio::time::timeout(Duration::from_secs(10), child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.kill().await;
                }
                let _ = std::fs::remove_file(scenario_file);
            }
        }
    }
}

fn id_of(v: &Value) -> anyhow::Result<Uuid> {
    v["id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .with_context(|| format!("reply without an id: {v}"))
}

/// The service, the peers and an RPC client on one queue prefix.
struct Rig {
    app: Option<App>,
    peers: Peers,
    client: Bus,
    names: Names,
    settings: Settings,
    infra: Infra,
}

impl Rig {
    async fn start(
        infra: &Infra,
        settings: &Settings,
        separate: bool,
        talk_ms: u64,
    ) -> anyhow::Result<Rig> {
        let names = settings.names();
        let peers = Peers::start(&names, infra, settings, separate, talk_ms).await?;
        let app = match App::start(infra, settings, Role::Service).await {
            Ok(app) => app,
            Err(e) => {
                peers.stop().await;
                delete_broker_names(&infra.rabbitmq_address, &names).await;
                return Err(e.context("starting campaign-manager"));
            }
        };
        let client = match Bus::connect(
            &infra.rabbitmq_address,
            names.clone(),
            &prometheus::Registry::new(),
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                app.stop().await;
                peers.stop().await;
                delete_broker_names(&infra.rabbitmq_address, &names).await;
                return Err(anyhow::Error::new(e).context("connecting the RPC client"));
            }
        };
        Ok(Rig {
            app: Some(app),
            peers,
            client,
            names,
            settings: settings.clone(),
            infra: infra.clone(),
        })
    }

    /// One request to the service, failing unless the reply is 200.
    async fn ok(&self, method: &str, uri: &str, body: Value) -> anyhow::Result<Value> {
        campaign_demo::service_ok(&self.client, &self.names, method, uri, Some(body)).await
    }

    async fn create_outplan(&self, customer: Uuid) -> anyhow::Result<Uuid> {
        let o = self
            .ok(
                "POST",
                "/v1/outplans",
                json!({
                    "customer_id": customer, "name": "bench outplan", "detail": "",
                    "source": {"type": "tel", "target": "+15550000000"},
                    "dial_timeout": 30000, "try_interval": 0,
                    "max_try_count_0": 1, "max_try_count_1": 1, "max_try_count_2": 1,
                    "max_try_count_3": 1, "max_try_count_4": 1,
                }),
            )
            .await?;
        id_of(&o)
    }

    async fn create_campaign(
        &self,
        customer: Uuid,
        outplan: Uuid,
        outdial: Uuid,
        dials_per_second: f64,
    ) -> anyhow::Result<Uuid> {
        let mut body = json!({
            "customer_id": customer, "type": "call", "name": "bench", "detail": "",
            "actions": [{"type": "answer"}], "service_level": 100,
            "end_handle": "stop", "outplan_id": outplan, "outdial_id": outdial,
            "queue_id": Uuid::nil(),
        });
        if dials_per_second > 0.0 {
            body["pacing"] = json!({ "dials_per_second": dials_per_second });
        }
        let v = self.ok("POST", "/v1/campaigns", body).await?;
        id_of(&v)
    }

    async fn set_status(&self, id: Uuid, status: &str) -> anyhow::Result<()> {
        self.ok(
            "PUT",
            &format!("/v1/campaigns/{id}/status"),
            json!({ "status": status }),
        )
        .await
        .map(|_| ())
    }

    /// Stops everything and deletes the prefix's queues and Redis keys.
    async fn shutdown(mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
        self.client.shutdown().await;
        self.peers.stop().await;
        delete_broker_names(&self.infra.rabbitmq_address, &self.names).await;
        let mut prefixes = vec![format!("{}:", self.settings.tick_namespace)];
        if !self.settings.cache_prefix.is_empty() {
            prefixes.push(self.settings.cache_prefix.clone());
        }
        delete_redis_prefixes(&self.infra.redis_url(), &prefixes).await;
    }
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
    /// Per dial: service CPU ms, SQL statements, outbound RPCs, events, broker messages.
    cpu_ms_per_dial: f64,
    sql_per_dial: f64,
    rpcs_per_dial: f64,
    events_per_dial: f64,
    messages_per_dial: f64,
    /// CPU ms per dial of the other processes: simulator (with `--sim-process`), MariaDB,
    /// Redis, RabbitMQ.
    others_ms_per_dial: Vec<(String, f64)>,
    /// The process using the most CPU, with its % of one core; the box's busy %.
    busiest: (String, f64),
    box_pct: f64,
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
    let result = run_case_in(args, n, &tag, &db_name, &mut admin).await;
    let _ = sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db_name}")))
        .execute(&mut admin)
        .await;
    let _ = admin.close().await;
    result
}

async fn run_case_in(
    args: &Args,
    n: usize,
    tag: &str,
    db_name: &str,
    admin: &mut MySqlConnection,
) -> anyhow::Result<Case> {
    // Other clients' statement rate on the shared server, before this case adds its own.
    let b0 = sql_counters(admin).await?;
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.baseline_secs)).await;
    let b1 = sql_counters(admin).await?;
    let base_rate: BTreeMap<String, f64> = deltas(&b0, &b1)
        .into_iter()
        .map(|(k, v)| (k, v / t.elapsed().as_secs_f64()))
        .collect();

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
    let rig = Rig::start(&infra, &settings, args.sim_process, args.talk_ms).await?;
    let outcome = measure(args, n, &rig, admin, db_name, &base_rate).await;
    // Stop every campaign before tearing down, so no tick dials into deleted queues.
    if let Ok((_, ids)) = &outcome {
        futures::stream::iter(ids.iter().copied())
            .for_each_concurrent(16, |id| {
                let rig = &rig;
                async move {
                    let _ = rig.set_status(id, "stop").await;
                }
            })
            .await;
    }
    rig.shutdown().await;
    outcome.map(|(c, _)| c)
}

/// Writes `n` suppression list entries for the customer straight into the case's database,
/// numbers no campaign dials (`+1999…`): the dial's lookup runs in a list of that size. (Not
/// through the import route: its events and webhooks would still be on their way during the
/// measured window.)
async fn suppress(
    admin: &mut MySqlConnection,
    db_name: &str,
    customer: Uuid,
    n: usize,
) -> anyhow::Result<()> {
    let now = chrono::Utc::now().naive_utc();
    let rows: Vec<usize> = (0..n).collect();
    for chunk in rows.chunks(1000) {
        let mut q = sqlx::QueryBuilder::<sqlx::MySql>::new(format!(
            "INSERT INTO {db_name}.campaign_suppressions \
             (id, customer_id, target, reason, tm_expire, tm_create) "
        ));
        q.push_values(chunk, |mut b, i| {
            b.push_bind(Uuid::new_v4().as_bytes().to_vec())
                .push_bind(customer.as_bytes().to_vec())
                .push_bind(format!("+1999{i:08}"))
                .push_bind("bench")
                .push_bind(None::<chrono::NaiveDateTime>)
                .push_bind(now + chrono::Duration::microseconds(*i as i64));
        });
        q.build().execute(&mut *admin).await?;
    }
    Ok(())
}

async fn measure(
    args: &Args,
    n: usize,
    rig: &Rig,
    admin: &mut MySqlConnection,
    db_name: &str,
    base_rate: &BTreeMap<String, f64>,
) -> anyhow::Result<(Case, Vec<Uuid>)> {
    let setup = Instant::now();
    let customer = Uuid::new_v4();
    // Dials per second of one campaign: its pace, else one per tick.
    let rate = if args.dials_per_second > 0.0 {
        args.dials_per_second
    } else {
        1000.0 / args.dial_tick_ms as f64
    };
    let ideal = n as f64 * rate;
    // Enough targets that no list runs out during warm-up + measurement.
    let per = (rate * (args.warmup + args.secs + 4) as f64 * 1.3).ceil() as usize;
    let outplan = rig.create_outplan(customer).await?;
    if args.suppressions > 0 {
        suppress(admin, db_name, customer, args.suppressions).await?;
    }
    let mut outdials = Vec::with_capacity(n);
    for _ in 0..n {
        outdials.push(rig.peers.create_outdial(customer, per).await?);
    }
    let created: Vec<anyhow::Result<Uuid>> = futures::stream::iter(outdials)
        .map(|outdial| rig.create_campaign(customer, outplan, outdial, args.dials_per_second))
        .buffer_unordered(16)
        .collect()
        .await;
    let ids = created.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let runs: Vec<anyhow::Result<()>> = futures::stream::iter(ids.clone())
        .map(|id| rig.set_status(id, "run"))
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

    let registry = &rig
        .app
        .as_ref()
        .context("the service is running")?
        .metrics
        .registry;
    let m0 = registry.gather();
    let (calls0, sim_events0) = rig.peers.counts().await?;
    let cpu0 = proc_usage();
    let sim0 = rig.peers.usage();
    let mariadb = mariadb_pid(admin).await?;
    let srv0 = servers(&mariadb);
    let box0 = box_jiffies();
    let sql0 = sql_counters(admin).await?;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.secs)).await;
    let wall = t0.elapsed().as_secs_f64();
    let sql1 = sql_counters(admin).await?;
    let m1 = registry.gather();
    let (calls1, sim_events1) = rig.peers.counts().await?;
    let cpu1 = proc_usage();
    let sim1 = rig.peers.usage();
    let srv1 = servers(&mariadb);
    let box1 = box_jiffies();

    let dial_count = calls1.saturating_sub(calls0) as f64;
    let dials = dial_count / wall;
    let per_dial = |x: f64| {
        if dial_count > 0.0 {
            x / dial_count
        } else {
            0.0
        }
    };
    let lateness = "campaign_manager_chain_tick_lateness_ms";
    let tick = "campaign_manager_tick_process_time_ms";
    let pct = |a: f64, b: f64| (b - a) / wall * 100.0;

    // Per process CPU, % of one core.
    let here = if args.sim_process {
        "campaign-manager (this process: service + workers)"
    } else {
        "this process (service + workers + sim + client)"
    };
    let mut procs: Vec<(String, f64, u64)> = vec![(
        here.into(),
        pct(cpu0.cpu_secs, cpu1.cpu_secs),
        cpu1.rss_kib / 1024,
    )];
    if let (Some(a), Some(b)) = (sim0, sim1) {
        procs.push((
            "campaign-sim".into(),
            pct(a.cpu_secs, b.cpu_secs),
            b.rss_kib / 1024,
        ));
    }
    for ((name, a), (_, b)) in srv0.iter().zip(&srv1) {
        procs.push((
            (*name).into(),
            pct(a.cpu_secs, b.cpu_secs),
            b.rss_kib / 1024,
        ));
    }
    let mut others_ms_per_dial = Vec::new();
    if let (Some(a), Some(b)) = (sim0, sim1) {
        others_ms_per_dial.push((
            "campaign-sim".to_owned(),
            per_dial((b.cpu_secs - a.cpu_secs) * 1000.0),
        ));
    }
    for ((name, a), (_, b)) in srv0.iter().zip(&srv1) {
        others_ms_per_dial.push((
            (*name).to_owned(),
            per_dial((b.cpu_secs - a.cpu_secs) * 1000.0),
        ));
    }
    let busiest = procs
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|p| (p.0.clone(), p.1))
        .unwrap_or_default();
    let box_pct = {
        let (busy, total) = (box1.0.saturating_sub(box0.0), box1.1.saturating_sub(box0.1));
        if total == 0 {
            0.0
        } else {
            busy as f64 / total as f64 * 100.0
        }
    };

    // SQL: global deltas minus the other clients' baseline rate.
    let sql: BTreeMap<String, f64> = deltas(&sql0, &sql1)
        .into_iter()
        .map(|(k, v)| {
            let other = base_rate.get(&k).copied().unwrap_or(0.0) * wall;
            (k, (v - other).max(0.0))
        })
        .collect();
    let rpcs = histogram(&m1, "campaign_manager_request_process_time")
        .2
        .saturating_sub(histogram(&m0, "campaign_manager_request_process_time").2)
        as f64;
    let events = histogram(&m1, "campaign_manager_notify_process_time")
        .2
        .saturating_sub(histogram(&m0, "campaign_manager_notify_process_time").2)
        as f64;
    let sim_events = sim_events1.saturating_sub(sim_events0) as f64;
    // Service out: RPC requests (webhooks are RPCs to webhook-manager) + events; the peers
    // answer each RPC and publish their own events (hangups).
    let messages = 2.0 * rpcs + events + sim_events;

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
        cpu_pct: procs[0].1,
        rss_mib: cpu1.rss_kib / 1024,
        cpu_ms_per_dial: per_dial((cpu1.cpu_secs - cpu0.cpu_secs) * 1000.0),
        sql_per_dial: per_dial(sql.get("questions").copied().unwrap_or(0.0)),
        rpcs_per_dial: per_dial(rpcs),
        events_per_dial: per_dial(events),
        messages_per_dial: per_dial(messages),
        others_ms_per_dial,
        busiest,
        box_pct,
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
        "  wait for a pooled MySQL connection before a dial's record: mean {} ms",
        fmt_opt(mean_of(&m0, &m1, campaign_manager::store::POOL_WAIT_METRIC))
    );
    println!(
        "  CPU by process (% of one core; the box has {} cores, busy {box_pct:.0} %):",
        cores()
    );
    for (name, cpu, rss) in &procs {
        println!("    {name:<52} CPU {cpu:>4.0} %, RSS {rss} MiB");
    }
    println!(
        "  busiest: {} at {:.0} % of one core",
        case.busiest.0, case.busiest.1
    );
    println!(
        "  per dial: {} CPU {:.2} ms; SQL {:.1} statements ({}); RPCs {:.1}; events {:.1}; broker messages {:.1}",
        if args.sim_process {
            "service"
        } else {
            "service + sim"
        },
        case.cpu_ms_per_dial,
        case.sql_per_dial,
        sql.iter()
            .filter(|(k, _)| k.as_str() != "questions")
            .map(|(k, v)| format!("{} {:.1}", k.trim_start_matches("com_"), per_dial(*v)))
            .collect::<Vec<_>>()
            .join(", "),
        case.rpcs_per_dial,
        case.events_per_dial,
        case.messages_per_dial,
    );
    println!(
        "  per dial, CPU of the other processes: {}",
        case.others_ms_per_dial
            .iter()
            .map(|(name, ms)| format!("{name} {ms:.2} ms"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  (SQL: MariaDB global counters minus other clients' rate before the case: {:.0} statements/s)",
        base_rate.get("questions").copied().unwrap_or(0.0)
    );
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
    println!("  mean time per outbound RPC (ms, count in window, ms per tick, per dial):");
    for (target, count, mean) in means(
        &m0,
        &m1,
        "campaign_manager_request_process_time",
        "resource+method",
    ) {
        println!(
            "    {target:<58} {mean:>6.2} ms  ×{count:<6} {:>6.2} ms/tick {:>5.2}/dial",
            per_tick(mean * count as f64),
            per_dial(count as f64)
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
            println!(
                "    {short} {k:<28} {mean:>6.2} ms  ×{count} {:.2}/dial",
                per_dial(count as f64)
            );
        }
    }
    Ok((case, ids))
}

/// CPU cores of this machine.
fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    // Kept until the end of main: dropping it stops the server.
    let _own = if args.own_mariadb {
        let own = OwnMariadb::start().await?;
        println!("own MariaDB at {}", own.url);
        args.mysql = own.url.clone();
        Some(own)
    } else {
        None
    };
    println!(
        "e2e benchmark: campaigns {:?}, {} s measured after {} s warm-up, {} tick workers, dial delay {} ms, simulator {}",
        args.campaigns,
        args.secs,
        args.warmup,
        args.workers,
        args.dial_tick_ms,
        if args.sim_process {
            "in its own process"
        } else {
            "in this process"
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
        "\n| campaigns | setup s | dials/s | ideal/s | lateness p50/p99 ms | tick mean/p99 ms | CPU % | RSS MiB | CPU ms/dial | MariaDB ms/dial | SQL/dial | RPCs/dial | events/dial | msgs/dial | busiest (% of a core) | box busy % |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|");
    for c in &cases {
        println!(
            "| {} | {:.1} | {:.0} | {:.0} | {} / {} | {} / {} | {:.0} | {} | {:.2} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} | {} ({:.0}) | {:.0} |",
            c.campaigns,
            c.setup_secs,
            c.dials_per_sec,
            c.ideal_per_sec,
            fmt_opt(c.lateness.0),
            fmt_opt(c.lateness.1),
            fmt_opt(c.tick_ms.0),
            fmt_opt(c.tick_ms.1),
            c.cpu_pct,
            c.rss_mib,
            c.cpu_ms_per_dial,
            c.others_ms_per_dial
                .iter()
                .find(|(name, _)| name == "mariadbd")
                .map_or(0.0, |(_, ms)| *ms),
            c.sql_per_dial,
            c.rpcs_per_dial,
            c.events_per_dial,
            c.messages_per_dial,
            c.busiest.0,
            c.busiest.1,
            c.box_pct
        );
    }
    Ok(())
}
