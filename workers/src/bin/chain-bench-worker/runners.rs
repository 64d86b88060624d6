//! Runners and sources of the bench worker: a no-op runner, a runner that records every tick in
//! Redis (for the fault test and the recovery benchmark, which look across processes), one that
//! records in memory (for in-process benchmarks), and a source wanting `chain-0 .. chain-{N-1}`.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use campaign_workers::{BoxError, ChainRunner, ChainSource, Tick, TickOutcome};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

/// Local clock in microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The name of numbered chain `i`.
pub fn chain_id(i: usize) -> String {
    format!("chain-{i}")
}

/// Wants `chain-0 .. chain-{count-1}`.
pub struct NumberedChains {
    pub count: usize,
}

#[async_trait]
impl ChainSource for NumberedChains {
    async fn wanted(&self) -> Result<Vec<String>, BoxError> {
        Ok((0..self.count).map(chain_id).collect())
    }
}

/// Does nothing; every chain continues after `cadence`.
pub struct NoOp {
    pub cadence: Duration,
}

#[async_trait]
impl ChainRunner for NoOp {
    async fn tick(&self, _id: &str) -> TickOutcome {
        TickOutcome::Continue(self.cadence)
    }
}

/// Appends every tick to `{namespace}:bench:log` as `id seq due_at_ms claimed_at_ms start_us`.
pub struct RecordingToRedis {
    conn: ConnectionManager,
    log_key: String,
    cadence: Duration,
}

impl RecordingToRedis {
    pub async fn connect(url: &str, namespace: &str, cadence: Duration) -> anyhow::Result<Self> {
        let conn = redis::Client::open(url)?.get_connection_manager().await?;
        Ok(Self {
            conn,
            log_key: log_key(namespace),
            cadence,
        })
    }
}

/// The Redis list the recording runner appends to.
pub fn log_key(namespace: &str) -> String {
    format!("{namespace}:bench:log")
}

#[async_trait]
impl ChainRunner for RecordingToRedis {
    async fn tick(&self, _id: &str) -> TickOutcome {
        TickOutcome::Continue(self.cadence)
    }

    async fn run_tick(&self, tick: &Tick) -> TickOutcome {
        let line = format!(
            "{} {} {} {} {}",
            tick.id,
            tick.seq,
            tick.due_at_ms,
            tick.claimed_at_ms,
            now_us()
        );
        let mut conn = self.conn.clone();
        if let Err(e) = conn.rpush::<_, _, ()>(&self.log_key, line).await {
            tracing::warn!(error = %e, "recording a tick failed");
        }
        TickOutcome::Continue(self.cadence)
    }
}

/// One recorded tick.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Local start minus due time, microseconds (negative = early).
    pub lateness_us: i64,
    /// Local start, microseconds since the Unix epoch.
    pub start_us: u64,
}

/// Records the timing of every tick in memory; continues after `cadence`.
pub struct RecordingInMemory {
    pub cadence: Duration,
    pub samples: Mutex<Vec<Sample>>,
}

#[async_trait]
impl ChainRunner for RecordingInMemory {
    async fn tick(&self, _id: &str) -> TickOutcome {
        TickOutcome::Continue(self.cadence)
    }

    async fn run_tick(&self, tick: &Tick) -> TickOutcome {
        let start_us = now_us();
        let due_us = i64::try_from(tick.due_at_ms.saturating_mul(1000)).unwrap_or(i64::MAX);
        let lateness_us = i64::try_from(start_us).unwrap_or(i64::MAX) - due_us;
        if let Ok(mut s) = self.samples.lock() {
            s.push(Sample {
                lateness_us,
                start_us,
            });
        }
        TickOutcome::Continue(self.cadence)
    }
}
