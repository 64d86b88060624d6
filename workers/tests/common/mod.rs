//! Shared test fixtures: a random namespace per test that deletes its keys, a runner that
//! records every tick, a settable source of wanted ids, and workers run on a background task.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use campaign_workers::{
    BoxError, ChainRunner, ChainSource, SchedulerConfig, SchedulerError, Tick, TickOutcome,
    run_workers,
};
use redis::AsyncCommands;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[path = "../../../tests/it/support/seed.rs"]
pub mod seed;

pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Local clock in microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

pub fn now_ms() -> u64 {
    now_us() / 1000
}

/// A random namespace; call `cleanup` at the end of the test.
pub struct TestNs {
    pub name: String,
}

impl TestNs {
    pub fn new(test: &str) -> Self {
        Self {
            name: format!("cw-test-{test}-{:08x}", rand::random::<u32>()),
        }
    }

    /// A config for tests: fast reconciler, short lease and shutdown.
    pub fn config(&self) -> SchedulerConfig {
        SchedulerConfig {
            reconcile_interval: Duration::from_millis(500),
            lease: Duration::from_secs(2),
            shutdown_timeout: Duration::from_secs(5),
            concurrency: 500,
            ..SchedulerConfig::new(REDIS_URL, self.name.clone())
        }
    }

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(REDIS_URL)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Delete every key of the namespace (also used to simulate a flushed Redis).
    pub async fn delete_keys(&self) -> usize {
        let mut conn = self.conn().await;
        let keys: Vec<String> = {
            let mut iter = conn
                .scan_match::<_, String>(format!("{}:*", self.name))
                .await
                .unwrap();
            let mut keys = Vec::new();
            while let Some(k) = futures::StreamExt::next(&mut iter).await {
                keys.push(k.unwrap());
            }
            keys
        };
        for chunk in keys.chunks(500) {
            let _: () = conn.del(chunk).await.unwrap();
        }
        keys.len()
    }

    pub async fn cleanup(&self) {
        self.delete_keys().await;
        let mut conn = self.conn().await;
        let _: () = conn
            .zrem("core:apalis:queues:list", format!("{}:workers", self.name))
            .await
            .unwrap();
    }
}

/// One recorded tick.
#[derive(Debug, Clone)]
pub struct Record {
    pub tick: Tick,
    pub start_us: u64,
    pub end_us: u64,
}

/// Records every tick; continues after `cadence` (or stops, per `stop_ids`), optionally taking
/// `work` time per tick.
pub struct Recorder {
    pub cadence: Duration,
    pub work: Duration,
    pub records: Mutex<Vec<Record>>,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub stop_ids: Mutex<Vec<String>>,
}

impl Recorder {
    pub fn new(cadence: Duration) -> Arc<Self> {
        Self::with_work(cadence, Duration::ZERO)
    }

    pub fn with_work(cadence: Duration, work: Duration) -> Arc<Self> {
        Arc::new(Self {
            cadence,
            work,
            records: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            stop_ids: Mutex::new(Vec::new()),
        })
    }

    pub fn records(&self) -> Vec<Record> {
        self.records.lock().unwrap().clone()
    }

    pub fn records_of(&self, id: &str) -> Vec<Record> {
        self.records()
            .into_iter()
            .filter(|r| r.tick.id == id)
            .collect()
    }

    pub fn count(&self) -> usize {
        self.records.lock().unwrap().len()
    }
}

#[async_trait]
impl ChainRunner for Recorder {
    async fn tick(&self, _id: &str) -> TickOutcome {
        unreachable!("the scheduler calls run_tick")
    }

    async fn run_tick(&self, tick: &Tick) -> TickOutcome {
        let start_us = now_us();
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if !self.work.is_zero() {
            tokio::time::sleep(self.work).await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.records.lock().unwrap().push(Record {
            tick: tick.clone(),
            start_us,
            end_us: now_us(),
        });
        if self.stop_ids.lock().unwrap().contains(&tick.id) {
            TickOutcome::Stop
        } else {
            TickOutcome::Continue(self.cadence)
        }
    }
}

/// Wanted ids, settable by the test.
#[derive(Default)]
pub struct Wanted(pub Mutex<Vec<String>>);

impl Wanted {
    pub fn new(ids: Vec<String>) -> Arc<Self> {
        Arc::new(Self(Mutex::new(ids)))
    }
}

#[async_trait]
impl ChainSource for Wanted {
    async fn wanted(&self) -> Result<Vec<String>, BoxError> {
        Ok(self.0.lock().unwrap().clone())
    }
}

/// Workers running on a background task until `stop`.
pub struct Running {
    pub stop: Option<oneshot::Sender<()>>,
    pub handle: JoinHandle<Result<(), SchedulerError>>,
    pub registry: prometheus::Registry,
}

impl Running {
    pub fn start(
        cfg: SchedulerConfig,
        runner: Arc<dyn ChainRunner>,
        source: Arc<dyn ChainSource>,
    ) -> Self {
        let (tx, rx) = oneshot::channel::<()>();
        let registry = prometheus::Registry::new();
        let reg = registry.clone();
        let handle = tokio::spawn(async move {
            run_workers(cfg, runner, source, &reg, async {
                let _ = rx.await;
            })
            .await
        });
        Self {
            stop: Some(tx),
            handle,
            registry,
        }
    }

    /// Signal shutdown and wait for `run_workers` to return.
    pub async fn shutdown(mut self) -> Result<(), SchedulerError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.handle.await.unwrap()
    }

    /// Value of a metric sample (counter or gauge) by name and optional `outcome` label.
    pub fn metric(&self, name: &str, outcome: Option<&str>) -> f64 {
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap();
        let series = match outcome {
            Some(o) => format!("{name}{{outcome=\"{o}\"}} "),
            None => format!("{name} "),
        };
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(f64::NAN)
    }
}

/// Poll `check` every 50 ms until it holds or `within` passes; returns whether it held.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
