//! A whole platform in one process, for the `campaign-demo` command and the end-to-end
//! benchmark: campaign-manager (RPC routes, event subscriptions, tick workers) and the peer
//! simulator (`campaign_sim`) on a private queue prefix, plus an RPC client that drives the
//! service only through RabbitMQ, as the platform's api-manager would.
//!
//! [`Stack::start`] assembles it, [`Stack::shutdown`] removes everything it created on the
//! broker (the service's and the simulator's queues and exchanges) and in Redis (the cache
//! prefix and the tick namespace). [`check_services`] tells whether MariaDB, Redis and
//! RabbitMQ answer, and what to start when one does not.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use uuid::Uuid;

use campaign_manager::{app, bus, config};

use crate::app::{App, Role};
use crate::bus::{Bus, Names, Request};
use crate::config::{Infra, Settings};
use campaign_sim::{Scenario, Sim};

/// The command that starts each local dependency on this machine.
pub const START_MARIADB: &str = "start-stop-daemon --start --oknodo --background --pidfile /run/mysqld/mysqld.pid --exec /usr/sbin/mariadbd";
/// See [`START_MARIADB`].
pub const START_REDIS: &str = "redis-server --daemonize yes --bind 127.0.0.1 --port 6379";
/// See [`START_MARIADB`].
pub const START_RABBITMQ: &str = "rabbitmq-server -detached";

/// A dependency that did not answer.
#[derive(Debug, Clone)]
pub struct Unreachable {
    /// `MariaDB`, `Redis` or `RabbitMQ`.
    pub service: &'static str,
    /// Where it was looked for (password redacted).
    pub address: String,
    /// What went wrong.
    pub error: String,
    /// The command that starts it here.
    pub start: String,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is not reachable at {} ({}).\n    start it with: {}",
            self.service, self.address, self.error, self.start
        )
    }
}

async fn within<T, E: std::fmt::Display>(
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(Duration::from_secs(3), fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 3 s".to_owned()),
    }
}

/// The Redis start command for `host:port` ([`START_REDIS`] for the default address).
pub fn redis_start(address: &str) -> String {
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            format!("redis-server --daemonize yes --bind {host} --port {port}")
        }
        _ => START_REDIS.to_owned(),
    }
}

/// Checks MariaDB (connect), Redis (`PING`) and RabbitMQ (AMQP connect); returns the ones
/// that did not answer, each with the command that starts it.
pub async fn check_services(infra: &Infra) -> Vec<Unreachable> {
    let mut down = Vec::new();
    let database = infra.database().map_err(|e| e.to_string());
    let db = match &database {
        Ok(database) => within(async {
            use sqlx::Connection;
            let conn = sqlx::MySqlConnection::connect_with(&database.options).await?;
            conn.close().await
        })
        .await
        .err(),
        Err(e) => Some(e.clone()),
    };
    if let Some(error) = db {
        down.push(Unreachable {
            service: "MariaDB",
            address: match &database {
                Ok(database) => database.describe(),
                Err(_) => crate::config::redact_dsn(&infra.database_dsn),
            },
            error,
            start: START_MARIADB.to_owned(),
        });
    }
    let redis_url = infra.redis_url();
    let redis = within(async {
        let client = redis::Client::open(redis_url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    })
    .await
    .err();
    if let Some(error) = redis {
        down.push(Unreachable {
            service: "Redis",
            address: infra.redis_address.clone(),
            error,
            start: redis_start(&infra.redis_address),
        });
    }
    let amqp = within(async {
        let conn = lapin::Connection::connect(
            &infra.rabbitmq_address,
            lapin::ConnectionProperties::default(),
        )
        .await?;
        conn.close(200, "check".into()).await
    })
    .await
    .err();
    if let Some(error) = amqp {
        down.push(Unreachable {
            service: "RabbitMQ",
            address: crate::app::redact(&infra.rabbitmq_address),
            error,
            start: START_RABBITMQ.to_owned(),
        });
    }
    down
}

/// campaign-manager + simulator + RPC client on one queue prefix.
pub struct Stack {
    /// The service (None once stopped).
    pub app: Option<App>,
    /// The simulated peers.
    pub sim: Sim,
    /// The caller's own broker connection.
    pub client: Bus,
    /// Queue and exchange names of this stack.
    pub names: Names,
    /// Settings the service runs with.
    pub settings: Settings,
    /// Infrastructure addresses.
    pub infra: Infra,
}

impl Stack {
    /// Starts the simulator on `settings.queue_prefix` (which must not be empty: the stack
    /// deletes its queues on shutdown) and on the service's `--event_bus`, then the service,
    /// then the client connection.
    pub async fn start(
        infra: &Infra,
        settings: &Settings,
        scenario: Scenario,
    ) -> anyhow::Result<Stack> {
        if settings.queue_prefix.is_empty() {
            bail!("a stack needs a queue prefix (it deletes its queues when it stops)");
        }
        let names = settings.names();
        let sim = Sim::start_on(
            names.clone(),
            &infra.rabbitmq_address,
            scenario,
            settings.event_bus,
        )
        .await
        .context("starting the simulator")?;
        let app = match App::start(infra, settings, Role::Service).await {
            Ok(app) => app,
            Err(e) => {
                sim.shutdown_and_delete().await;
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
                sim.shutdown_and_delete().await;
                return Err(anyhow::Error::new(e).context("connecting the RPC client"));
            }
        };
        Ok(Stack {
            app: Some(app),
            sim,
            client,
            names,
            settings: settings.clone(),
            infra: infra.clone(),
        })
    }

    /// One request to the service's queue: `(status_code, data)`.
    pub async fn rpc(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        service_rpc(&self.client, &self.names, method, uri, body).await
    }

    /// Like [`Stack::rpc`], failing unless the reply is 200.
    pub async fn ok(&self, method: &str, uri: &str, body: Option<Value>) -> anyhow::Result<Value> {
        service_ok(&self.client, &self.names, method, uri, body).await
    }

    /// Creates an outplan (tel source, one retry interval, the same max tries for every
    /// destination) and returns its id.
    pub async fn create_outplan(
        &self,
        customer: Uuid,
        try_interval_ms: i64,
        max_tries: i32,
    ) -> anyhow::Result<Uuid> {
        let o = self
            .ok(
                "POST",
                "/v1/outplans",
                Some(json!({
                    "customer_id": customer, "name": "demo outplan", "detail": "",
                    "source": {"type": "tel", "target": "+15550000000"},
                    "dial_timeout": 30000, "try_interval": try_interval_ms,
                    "max_try_count_0": max_tries, "max_try_count_1": max_tries,
                    "max_try_count_2": max_tries, "max_try_count_3": max_tries,
                    "max_try_count_4": max_tries,
                })),
            )
            .await?;
        id_of(&o)
    }

    /// Creates a campaign (status `stop`) and returns its id.
    pub async fn create_campaign(&self, c: &NewCampaign) -> anyhow::Result<Uuid> {
        let mut body = json!({
            "customer_id": c.customer, "type": c.kind, "name": c.name, "detail": "",
            "actions": [{"type": "answer"}], "service_level": c.service_level,
            "end_handle": c.end_handle, "outplan_id": c.outplan, "outdial_id": c.outdial,
            "queue_id": c.queue.unwrap_or_else(Uuid::nil),
        });
        if let (Some(pacing), Some(b)) = (&c.pacing, body.as_object_mut()) {
            b.insert("pacing".into(), pacing.clone());
        }
        let v = self.ok("POST", "/v1/campaigns", Some(body)).await?;
        id_of(&v)
    }

    /// `PUT /v1/campaigns/<id>/status`.
    pub async fn set_status(&self, id: Uuid, status: &str) -> anyhow::Result<Value> {
        self.ok(
            "PUT",
            &format!("/v1/campaigns/{id}/status"),
            Some(json!({ "status": status })),
        )
        .await
    }

    /// `GET /v1/campaigns/<id>`.
    pub async fn campaign(&self, id: Uuid) -> anyhow::Result<Value> {
        self.ok("GET", &format!("/v1/campaigns/{id}"), None).await
    }

    /// Every campaigncall of a campaign (all K1 pages).
    pub async fn campaigncalls(&self, campaign: Uuid) -> anyhow::Result<Vec<Value>> {
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let uri = format!("/v1/campaigncalls?page_size=1000&page_token={token}");
            let page = self
                .ok("GET", &uri, Some(json!({ "campaign_id": campaign })))
                .await?;
            let rows = page.as_array().cloned().unwrap_or_default();
            let Some(last) = rows.last() else {
                return Ok(all);
            };
            token = last["tm_create"].as_str().unwrap_or_default().to_owned();
            all.extend(rows);
        }
    }

    /// Stops the service, the client and the simulator, then deletes every queue and
    /// exchange of the prefix and the Redis keys of the cache prefix and tick namespace.
    pub async fn shutdown(mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
        self.client.shutdown().await;
        self.sim.shutdown_and_delete().await;
        delete_broker_names(&self.infra.rabbitmq_address, &self.names).await;
        let mut prefixes = vec![format!("{}:", self.settings.tick_namespace)];
        if !self.settings.cache_prefix.is_empty() {
            prefixes.push(self.settings.cache_prefix.clone());
        }
        delete_redis_prefixes(&self.infra.redis_url(), &prefixes).await;
    }
}

/// What [`Stack::create_campaign`] creates.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    /// Owner.
    pub customer: Uuid,
    /// `call` or `flow`.
    pub kind: &'static str,
    /// Name.
    pub name: String,
    /// `stop` or `continue`.
    pub end_handle: &'static str,
    /// Service level, percent.
    pub service_level: i32,
    /// Outplan.
    pub outplan: Uuid,
    /// Outdial (in the simulator).
    pub outdial: Uuid,
    /// Queue (in the simulator), if the dial rate follows agents.
    pub queue: Option<Uuid>,
    /// The campaign's `pacing` object (docs/pacing.md), if any.
    pub pacing: Option<Value>,
}

fn id_of(v: &Value) -> anyhow::Result<Uuid> {
    v["id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .with_context(|| format!("reply without an id: {v}"))
}

/// One request to campaign-manager's request queue over `client`: `(status_code, data)`.
pub async fn service_rpc(
    client: &Bus,
    names: &Names,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let mut req = Request::new(method, uri);
    if let Some(b) = body {
        req = req.with_json(&b)?;
    }
    let res = client
        .rpc()
        .call(&names.request_queue, &req)
        .await
        .with_context(|| format!("{method} {uri}"))?;
    let data = res.data_as::<Value>().unwrap_or(Value::Null);
    Ok((res.status_code, data))
}

/// Like [`service_rpc`], failing unless the reply is 200.
pub async fn service_ok(
    client: &Bus,
    names: &Names,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let (status, data) = service_rpc(client, names, method, uri, body).await?;
    if status != 200 {
        bail!("{method} {uri} answered {status}: {data}");
    }
    Ok(data)
}

/// Deletes the service's own queues and exchanges of `names` (best effort).
pub async fn delete_broker_names(amqp_url: &str, names: &Names) {
    let connect = lapin::Connection::connect(amqp_url, lapin::ConnectionProperties::default());
    let Ok(Ok(conn)) = tokio::time::timeout(Duration::from_secs(5), connect).await else {
        tracing::warn!("cleanup: cannot connect to the broker");
        return;
    };
    if let Ok(ch) = conn.create_channel().await {
        let mut queues = names.owned_queues(3);
        queues.extend([
            names.outdial_queue.clone(),
            names.call_queue.clone(),
            names.flow_queue.clone(),
            names.queue_queue.clone(),
            names.webhook_queue.clone(),
        ]);
        for q in &queues {
            let _ = ch
                .queue_delete(
                    q.as_str().into(),
                    lapin::options::QueueDeleteOptions::default(),
                )
                .await;
        }
        for e in names.owned_exchanges() {
            let _ = ch
                .exchange_delete(
                    e.as_str().into(),
                    lapin::options::ExchangeDeleteOptions::default(),
                )
                .await;
        }
    }
    let _ = conn.close(200, "cleanup".into()).await;
}

/// Deletes every Redis key starting with one of `prefixes` (SCAN + UNLINK; best effort).
pub async fn delete_redis_prefixes(redis_url: &str, prefixes: &[String]) {
    let Ok(client) = redis::Client::open(redis_url) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        tracing::warn!("cleanup: cannot connect to Redis");
        return;
    };
    // apalis registers every queue in one global sorted set; drop ours from it.
    let list = "core:apalis:queues:list";
    let queues: Vec<String> = redis::cmd("ZRANGE")
        .arg(list)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    let ours: Vec<&String> = queues
        .iter()
        .filter(|q| {
            prefixes
                .iter()
                .any(|p| !p.is_empty() && q.starts_with(p.as_str()))
        })
        .collect();
    if !ours.is_empty() {
        let _: redis::RedisResult<i64> = redis::cmd("ZREM")
            .arg(list)
            .arg(ours)
            .query_async(&mut conn)
            .await;
    }
    for prefix in prefixes {
        if prefix.is_empty() {
            continue;
        }
        let pattern = format!("{}*", escape_glob(prefix));
        let mut cursor: u64 = 0;
        loop {
            let scanned: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await;
            let Ok((next, keys)) = scanned else {
                break;
            };
            if !keys.is_empty() {
                let _: redis::RedisResult<i64> =
                    redis::cmd("UNLINK").arg(&keys).query_async(&mut conn).await;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
}

fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Process CPU time (user + system) and resident memory, from `/proc/self`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcUsage {
    /// User + system CPU seconds since the process started.
    pub cpu_secs: f64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// Peak resident set size, KiB.
    pub peak_rss_kib: u64,
}

/// Reads [`ProcUsage`] of this process (zeros where `/proc` cannot be read).
pub fn proc_usage() -> ProcUsage {
    proc_usage_of("self")
}

/// Reads [`ProcUsage`] of process `pid` (`"self"` for this one).
pub fn proc_usage_of(pid: &str) -> ProcUsage {
    let mut u = ProcUsage::default();
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Fields after the command name (which may contain spaces) start at ") ".
        if let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the name.
            let ticks: f64 = [11, 12]
                .iter()
                .filter_map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
                .sum();
            u.cpu_secs = ticks / clock_ticks();
        }
    }
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        for line in status.lines() {
            let kib = || {
                line.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            if line.starts_with("VmRSS:") {
                u.rss_kib = kib();
            } else if line.starts_with("VmHWM:") {
                u.peak_rss_kib = kib();
            }
        }
    }
    u
}

fn clock_ticks() -> f64 {
    // USER_HZ is 100 on every Linux architecture this runs on.
    100.0
}

/// Makes a MariaDB data directory in `data` for a server of one's own (`root` without a
/// password, no test database): what a benchmark or a test that must not share the local
/// server starts [`own_mariadbd`] on.
pub fn install_mariadb(data: &std::path::Path) -> anyhow::Result<()> {
    let out = std::process::Command::new("mariadb-install-db")
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args([
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ])
        .output()
        .context("running mariadb-install-db")?;
    if !out.status.success() {
        bail!(
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The `mariadbd` command of a server of one's own on the data directory `data` (made by
/// [`install_mariadb`]), listening on 127.0.0.1:`port` and on the socket `socket`, with no
/// binary log; the caller adds its own options and spawns it.
pub fn own_mariadbd(
    data: &std::path::Path,
    socket: &std::path::Path,
    port: u16,
) -> std::process::Command {
    let mut cmd = std::process::Command::new("mariadbd");
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", socket.display()))
        .args(["--user=root", "--bind-address=127.0.0.1", "--skip-log-bin"])
        .arg("--skip-name-resolve")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(escape_glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
        assert_eq!(escape_glob("campaign-demo:x:"), "campaign-demo:x:");
    }

    #[test]
    fn own_process_usage_is_read() {
        let u = proc_usage();
        assert!(u.rss_kib > 0);
        assert!(u.peak_rss_kib >= u.rss_kib);
        assert!(u.cpu_secs >= 0.0);
    }

    #[test]
    fn unreachable_says_what_to_start() {
        let u = Unreachable {
            service: "Redis",
            address: "127.0.0.1:6379".into(),
            error: "refused".into(),
            start: redis_start("127.0.0.1:6379"),
        };
        let text = u.to_string();
        assert!(text.contains("redis-server --daemonize yes"));
        assert!(text.contains("127.0.0.1:6379"));
        assert_eq!(redis_start("127.0.0.1:6379"), START_REDIS);
        assert_eq!(
            redis_start("10.0.0.2:6390"),
            "redis-server --daemonize yes --bind 10.0.0.2 --port 6390"
        );
    }
}
