//! Shared test fixtures: a fresh, migrated MariaDB database per test and a unique Redis key
//! prefix, both removed when the fixture is dropped (also when the test panics); the whole
//! system over RabbitMQ ([`TestSystem`]); one [`wait_until`].
//!
//! Where to look for the rest:
//! - [`mocked`]: the service over a test store with mockall peers (tick, repair, pacing,
//!   calling-hours and service-rule tests start there); [`mocks`]: the peer mocks themselves;
//! - [`records`]: rows a test writes directly (outplan, campaign, campaigncall);
//! - [`black_box`]: steps over the RPC API (create a campaign, set its status, expect a 400);
//! - [`scenarios`]: simulator scenarios and fast tick settings;
//! - [`amqp`], [`proxy`], [`recorder`], [`contract`]: raw broker access, a relay a test can cut,
//!   a recording peer, and the contract's key lists.

#![allow(dead_code)]

pub mod amqp;
pub mod black_box;
pub mod contract;
pub mod mocked;
pub mod mocks;
pub mod peer_events;
pub mod proxy;
pub mod recorder;
pub mod records;
pub mod scenarios;
pub mod schema;
pub mod seed;

use std::future::Future;
use std::time::{Duration, Instant};

use campaign_manager::store::{Cache, Store};
use sqlx::mysql::MySqlPoolOptions;
use sqlx::{AssertSqlSafe, MySqlPool};

/// Polls `check` every 20 ms until it is true; panics naming `what` after `timeout`. A plain
/// condition is written `|| async { cond }`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// MySQL 8.0's default `sql_mode` (what Cloud SQL MySQL 8.0 runs with): every test session
/// runs with it, set through the DSN's `sql_mode`, so SQL that MySQL 8.0 refuses in that mode
/// fails here although the server is MariaDB.
pub const MYSQL8_SQL_MODE: &str = "ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,\
                                   NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION";

/// Server URL of the local MariaDB (no database).
pub fn mysql_server() -> String {
    std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// URL of the local Redis.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

/// A short random lowercase name.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .get(..12)
            .unwrap_or("x")
    )
}

/// A database created for one test; dropped with the fixture.
pub struct TestDb {
    /// Database name.
    pub name: String,
    /// URL of the database, with MySQL 8.0's default `sql_mode` ([`MYSQL8_SQL_MODE`]) as
    /// its `sql_mode` parameter: use it as the service's DSN.
    pub url: String,
    /// Pool on it (sessions in MySQL 8.0's default `sql_mode`).
    pub pool: MySqlPool,
}

impl TestDb {
    /// Creates an empty database (not migrated).
    pub async fn empty() -> TestDb {
        let name = unique("cmtest_");
        let admin = MySqlPoolOptions::new()
            .max_connections(1)
            .connect(&mysql_server())
            .await
            .expect("connect to MariaDB at 127.0.0.1:3306");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("create database");
        admin.close().await;
        let url = format!("{}/{name}?sql_mode={MYSQL8_SQL_MODE}", mysql_server());
        let dsn = campaign_manager::dsn::DatabaseDsn::parse(&url).expect("test DSN");
        let pool = Store::pool_options(&dsn)
            .max_connections(8)
            .connect_with(dsn.options)
            .await
            .expect("connect to test database");
        TestDb { name, url, pool }
    }

    /// Another pool on this database with at most `max` connections (one: every statement of
    /// whatever uses it goes down one session, whose status counters a test can read).
    pub async fn pool_of(&self, max: u32) -> MySqlPool {
        let dsn = campaign_manager::dsn::DatabaseDsn::parse(&self.url).expect("test DSN");
        Store::pool_options(&dsn)
            .max_connections(max)
            .connect_with(dsn.options)
            .await
            .expect("connect to test database")
    }

    /// How many sessions on this database have been running one statement for more than
    /// 200 ms: in a test whose statements take a millisecond otherwise, the ones waiting for a
    /// lock. Read from the process list, which shows them whatever they wait for
    /// (`information_schema.innodb_trx` leaves a waiting transaction out at times on MariaDB, and
    /// a test waiting to see it there waited forever).
    pub async fn waiting(&self) -> usize {
        // Compared here, not in SQL: the session's collation need not be information_schema's.
        let rows: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT db, info FROM information_schema.processlist \
             WHERE command IN ('Query', 'Execute') AND time_ms > 200",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap_or_default();
        rows.iter()
            .filter(|(db, info)| {
                db.as_deref() == Some(self.name.as_str())
                    && !info.as_deref().unwrap_or("").contains("processlist")
            })
            .count()
    }

    /// Waits (up to 20 s) until `n` sessions on this database wait ([`TestDb::waiting`]);
    /// whether they did.
    pub async fn until_waiting(&self, n: usize) -> bool {
        tokio::time::timeout(Duration::from_secs(20), async {
            while self.waiting().await < n {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .is_ok()
    }

    /// Creates and migrates a database.
    pub async fn migrated() -> TestDb {
        let db = TestDb::empty().await;
        campaign_manager::store::migrate::run(&db.pool)
            .await
            .expect("migrate");
        db
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async context; use a small runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(admin) = MySqlPoolOptions::new()
                    .max_connections(1)
                    .connect(&mysql_server())
                    .await
                {
                    let _ = sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
                        .execute(&admin)
                        .await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

/// A Redis key prefix for one test; its keys are deleted with the fixture.
pub struct TestPrefix(pub String);

impl TestPrefix {
    /// A new unique prefix ending in ':'.
    pub fn new() -> TestPrefix {
        TestPrefix(format!("{}:", unique("cmtest")))
    }

    /// A cache on the local Redis under this prefix.
    pub fn cache(&self) -> Cache {
        Cache::new(&redis_url(), &self.0).expect("redis url")
    }
}

impl TestPrefix {
    /// Deletes every key under this prefix now (its tick namespace and cache), as a `FLUSHDB`
    /// would for this test alone.
    pub fn flush(&self) {
        let client = redis::Client::open(redis_url()).expect("redis");
        let mut conn = client.get_connection().expect("redis connection");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.0))
            .query(&mut conn)
            .expect("keys");
        assert!(!keys.is_empty(), "the test's keys exist");
        let _: () = redis::cmd("DEL").arg(keys).query(&mut conn).expect("del");
    }
}

/// Runs `rabbitmqctl` with `args` and returns its output; fails the test if it fails.
pub async fn rabbitmqctl(args: &[&str]) -> String {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .await
        .expect("rabbitmqctl");
    assert!(out.status.success(), "rabbitmqctl {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Drop for TestPrefix {
    fn drop(&mut self) {
        // With tick shards the scheduler's keys are `{<prefix>ticks:i}...` (hash tags).
        let patterns = [format!("{}*", self.0), format!("{{{}*", self.0)];
        if let Ok(client) = redis::Client::open(redis_url())
            && let Ok(mut conn) = client.get_connection()
        {
            let keys: Vec<String> = patterns
                .iter()
                .flat_map(|pattern| {
                    redis::cmd("KEYS")
                        .arg(pattern)
                        .query::<Vec<String>>(&mut conn)
                        .unwrap_or_default()
                })
                .collect();
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
            }
            // apalis registers each queue in a global sorted set; drop ours from it.
            let queues: Vec<String> = redis::cmd("ZRANGE")
                .arg("core:apalis:queues:list")
                .arg(0)
                .arg(-1)
                .query(&mut conn)
                .unwrap_or_default();
            let ours: Vec<&String> = queues
                .iter()
                .filter(|q| q.starts_with(&self.0) || q.starts_with(&format!("{{{}", self.0)))
                .collect();
            if !ours.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("ZREM")
                    .arg("core:apalis:queues:list")
                    .arg(ours)
                    .query(&mut conn);
            }
        }
    }
}

/// A migrated database and a cache prefix, with a `Store` over both.
pub struct TestStore {
    /// The store.
    pub store: Store,
    /// The database (kept for its Drop).
    pub db: TestDb,
    /// The prefix (kept for its Drop).
    pub prefix: TestPrefix,
}

impl TestStore {
    /// A fresh store.
    pub async fn new() -> TestStore {
        let db = TestDb::migrated().await;
        let prefix = TestPrefix::new();
        let store = Store::with_pool(db.pool.clone(), prefix.cache());
        TestStore { store, db, prefix }
    }

    /// A fresh store whose pool has one connection (`db.pool` is still a pool of its own):
    /// what the store sends can be counted on that session ([`TestStore::statements`]).
    pub async fn on_one_connection() -> TestStore {
        let db = TestDb::migrated().await;
        let prefix = TestPrefix::new();
        let store = Store::with_pool(db.pool_of(1).await, prefix.cache());
        TestStore { store, db, prefix }
    }

    /// The statements the store's session has run so far (`Questions` less the `SHOW`s, which
    /// are the counting itself), for a store made by [`TestStore::on_one_connection`]: the
    /// difference of two reads is what ran between them. Prepared statements are counted once
    /// per execution (their preparation is not a statement), `BEGIN`/`COMMIT`/`ROLLBACK` one
    /// each; the pool's pings are not statements.
    pub async fn statements(&self) -> i64 {
        let mut conn = self
            .store
            .pool
            .acquire()
            .await
            .expect("the store's connection");
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SHOW SESSION STATUS WHERE Variable_name IN ('Questions', 'Com_show_status')",
        )
        .fetch_all(&mut *conn)
        .await
        .expect("Questions");
        let value = |name: &str| -> i64 {
            rows.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.parse().ok())
                .expect("a counter")
        };
        value("Questions") - value("Com_show_status")
    }

    /// The session's nonzero `Com_*` counters (what [`TestStore::statements`] counted, by
    /// kind), to show where a count comes from.
    pub async fn statement_kinds(&self) -> Vec<(String, String)> {
        let mut conn = self
            .store
            .pool
            .acquire()
            .await
            .expect("the store's connection");
        sqlx::query_as("SHOW SESSION STATUS LIKE 'Com\\_%'")
            .fetch_all(&mut *conn)
            .await
            .expect("Com_*")
            .into_iter()
            .filter(|(_, v): &(String, String)| v != "0")
            .collect()
    }
}

/// AMQP URL of the local broker.
pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Unique queue/exchange names for one test; every queue and exchange they name (ours, the
/// retry queues, the peers') is deleted with the fixture, also when the test panics.
pub struct TestNames {
    /// The prefix.
    pub prefix: String,
    /// The names.
    pub names: campaign_manager::bus::Names,
}

impl TestNames {
    /// New unique names.
    pub fn new() -> TestNames {
        let prefix = unique("cmt");
        TestNames {
            names: campaign_manager::bus::Names::prefixed(&prefix),
            prefix,
        }
    }
}

impl Drop for TestNames {
    fn drop(&mut self) {
        let n = self.names.clone();
        let mut queues = n.owned_queues(3);
        queues.extend([
            n.outdial_queue.clone(),
            n.call_queue.clone(),
            n.flow_queue.clone(),
            n.queue_queue.clone(),
            n.webhook_queue.clone(),
        ]);
        let mut exchanges = n.owned_exchanges();
        exchanges.extend([n.call_event_exchange.clone(), n.flow_event_exchange.clone()]);
        exchanges.sort();
        exchanges.dedup();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(conn) =
                    lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
                        .await
                else {
                    return;
                };
                if let Ok(ch) = conn.create_channel().await {
                    for q in &queues {
                        let _ = ch
                            .queue_delete(
                                q.as_str().into(),
                                lapin::options::QueueDeleteOptions::default(),
                            )
                            .await;
                    }
                    for e in &exchanges {
                        let _ = ch
                            .exchange_delete(
                                e.as_str().into(),
                                lapin::options::ExchangeDeleteOptions::default(),
                            )
                            .await;
                    }
                }
                let _ = conn.close(0, "test cleanup".into()).await;
            });
        })
        .join();
    }
}

/// The whole system for black-box and end-to-end tests: campaign-manager (in-process, with
/// its own database, cache prefix, tick namespace and queue names), the peer simulator on
/// the same names, and an RPC client that talks to the service only over RabbitMQ.
pub struct TestSystem {
    /// The service (None after `stop`).
    pub app: Option<campaign_manager::app::App>,
    /// Simulated peers.
    pub sim: campaign_sim::Sim,
    /// A separate bus connection acting as the platform's caller.
    pub client: campaign_manager::bus::Bus,
    /// Settings the service was started with.
    pub settings: campaign_manager::config::Settings,
    /// Infra the service was started with.
    pub infra: campaign_manager::config::Infra,
    // Drop order: names last so queues outlive the connections using them.
    /// Database.
    pub db: TestDb,
    /// Cache and tick keys.
    pub prefix: TestPrefix,
    /// Queue names.
    pub names: TestNames,
}

impl TestSystem {
    /// Starts sim + service. `tweak` adjusts the settings (workers, delays...).
    pub async fn start(
        scenario: campaign_sim::Scenario,
        tweak: impl FnOnce(&mut campaign_manager::config::Settings),
    ) -> TestSystem {
        TestSystem::start_with_sim_on(scenario, tweak, None).await
    }

    /// Like `start`, with the simulator serving `sim_names` instead of the service's peer
    /// queues (so something else can stand between them, see `recorder.rs`).
    pub async fn start_with_sim_on(
        scenario: campaign_sim::Scenario,
        tweak: impl FnOnce(&mut campaign_manager::config::Settings),
        sim_names: Option<&campaign_manager::bus::Names>,
    ) -> TestSystem {
        // The simulator's outcomes follow its seed: printed, so a failing run can be re-run.
        eprintln!("simulator scenario seed {}", scenario.seed);
        let names = TestNames::new();
        let db = TestDb::empty().await;
        let prefix = TestPrefix::new();
        let mut infra = campaign_manager::config::Infra::from_env();
        infra.database_dsn = db.url.clone();
        infra.rabbitmq_address = amqp_url();
        infra.redis_database = 0;
        let mut settings = campaign_manager::config::Settings::from_env();
        settings.queue_prefix = names.prefix.clone();
        settings.cache_prefix = prefix.0.clone();
        settings.tick_namespace = format!("{}ticks", prefix.0);
        settings.serve_http = false;
        settings.workers = 0;
        tweak(&mut settings);
        // The simulated peers publish on the bus the service listens on.
        let sim_names = sim_names.cloned().unwrap_or_else(|| names.names.clone());
        let sim = campaign_sim::Sim::start_on(sim_names, &amqp_url(), scenario, settings.event_bus)
            .await
            .expect("start the simulator");
        let app = campaign_manager::app::App::start(
            &infra,
            &settings,
            campaign_manager::app::Role::Service,
        )
        .await
        .expect("start campaign-manager");
        let client = campaign_manager::bus::Bus::connect(
            &amqp_url(),
            names.names.clone(),
            &prometheus::Registry::new(),
        )
        .await
        .expect("client bus");
        TestSystem {
            app: Some(app),
            sim,
            client,
            settings,
            infra,
            db,
            prefix,
            names,
        }
    }

    /// Sends a request to the service's queue and returns the reply (status, data_type, data).
    #[must_use = "check the reply: a dropped reply hides a failing request"]
    pub async fn rpc(
        &self,
        method: &str,
        uri: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, String, serde_json::Value) {
        let mut req = campaign_manager::bus::Request::new(method, uri);
        if let Some(b) = body {
            req = req.with_json(&b).expect("encode body");
        }
        let res = self
            .client
            .rpc()
            .call(&self.names.names.request_queue, &req)
            .await
            .expect("rpc reply");
        let data = res
            .data_as::<serde_json::Value>()
            .unwrap_or(serde_json::Value::Null);
        (res.status_code, res.data_type.clone(), data)
    }

    /// Like `rpc`, expecting 200, returning the data.
    pub async fn ok(
        &self,
        method: &str,
        uri: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let (status, data_type, data) = self.rpc(method, uri, body).await;
        assert_eq!(status, 200, "{method} {uri} → {status} {data_type} {data}");
        data
    }

    /// Stops everything (the service first, so nothing publishes into deleted queues).
    /// Stops the service, the client and the simulator (deleting the test's queues). Each step
    /// is bounded: a step that never completes is named on stderr and the next one runs, so a
    /// shutdown that hangs (seen rarely under load, cause not found yet) cannot hang the suite.
    pub async fn stop(mut self) {
        if let Some(app) = self.app.take() {
            bounded_step("the service's stop", app.stop()).await;
        }
        bounded_step("the client's shutdown", self.client.shutdown()).await;
        bounded_step("the simulator's shutdown", self.sim.shutdown_and_delete()).await;
    }
}

/// Runs one step of [`TestSystem::stop`], giving up after 60 s with a line naming it.
async fn bounded_step(what: &str, step: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(Duration::from_secs(60), step)
        .await
        .is_err()
    {
        eprintln!("test system: {what} did not complete within 60 s; going on");
    }
}

/// The path cargo gives a test of the package that builds binary `name` (`path`); this module is
/// shared by the root package's tests (which have `campaign-worker`) and campaign-control's
/// (which have `campaign-control`), so a test asking for the other package's binary fails here.
pub fn binary(name: &str, path: Option<&'static str>) -> &'static str {
    match path {
        Some(p) => p,
        None => panic!("{name} is not a binary of this test's package; move the test there"),
    }
}

/// A `campaign-worker` child process on the test system's database, tick namespace and queues
/// (killed when dropped), with `extra` flags (workers, delays...) appended.
pub fn spawn_worker(sys: &TestSystem, extra: &[&str]) -> tokio::process::Child {
    let s = &sys.settings;
    tokio::process::Command::new(binary(
        "campaign-worker",
        option_env!("CARGO_BIN_EXE_campaign-worker"),
    ))
    .args(["--database_dsn", &sys.infra.database_dsn])
    .args(["--rabbitmq_address", &sys.infra.rabbitmq_address])
    .args(["--redis_address", &sys.infra.redis_address])
    .args(["--redis_database", "0"])
    .args(["--queue_prefix", &s.queue_prefix])
    .args(["--cache_prefix", &s.cache_prefix])
    .args(["--tick_namespace", &s.tick_namespace])
    .args(["--serve_http", "false"])
    .args(extra)
    .env("RUST_LOG", "warn")
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::inherit())
    .kill_on_drop(true)
    .spawn()
    .expect("spawn campaign-worker")
}

/// Runs `campaign-control --json` against the test system's broker and queue names;
/// returns (exit code, stdout, stderr).
pub async fn control_json(sys: &TestSystem, args: &[&str]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(binary(
        "campaign-control",
        option_env!("CARGO_BIN_EXE_campaign-control"),
    ));
    for var in ["RABBITMQ_ADDRESS", "QUEUE_PREFIX", "TICK_NAMESPACE"] {
        cmd.env_remove(var);
    }
    let out = cmd
        .args([
            "--rabbitmq_address",
            &amqp_url(),
            "--queue_prefix",
            &sys.names.prefix,
            "--json",
        ])
        .args(args)
        .output()
        .await
        .expect("spawn campaign-control");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
