//! The reconciler: makes the live chains match [`ChainSource::wanted`] every few seconds.
//!
//! It re-seeds wanted chains that are missing (flushed Redis, a chain that was never started)
//! or whose lease expired (a worker killed between claim and push, a job lost inside apalis),
//! and clears chains nobody wants any more. It runs in every process but a short Redis lock lets
//! one of them do the work per interval, so the source of truth (a database query in production)
//! is asked once per interval, not once per process. Every step is an idempotent script, so two
//! reconcilers racing (lock expired mid-run) cannot fork a chain.
//!
//! Chains seeded after the reconciler read the source (a campaign started a moment ago) are not
//! cleared: only chains born before that snapshot are.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use tokio::sync::watch;

use crate::chain_state::ChainState;
use crate::metrics::Metrics;
use crate::{ChainSource, SchedulerError};

/// Ids per script call, to keep each script short.
const CHUNK: usize = 500;
/// Most expired leases handled per pass.
const MAX_EXPIRED: usize = 5000;

/// What one reconciliation did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reconciled {
    /// Chains seeded because they were missing or their lease expired.
    pub(crate) reseeded: usize,
    /// Chains cleared because they are not wanted.
    pub(crate) cleared: usize,
}

/// The reconciler of one process.
pub(crate) struct Reconciler {
    pub(crate) state: ChainState,
    pub(crate) source: Arc<dyn ChainSource>,
    pub(crate) metrics: Metrics,
    pub(crate) interval: Duration,
    pub(crate) reseed_spread: Duration,
    pub(crate) lock_owner: String,
}

impl Reconciler {
    /// Reconcile every `interval` (first pass right away) until `stopping` turns true.
    pub(crate) async fn run(self, mut stopping: watch::Receiver<bool>) {
        loop {
            if *stopping.borrow() {
                return;
            }
            match self.take_turn().await {
                Ok(true) => match self.reconcile_once().await {
                    Ok(r) if r != Reconciled::default() => {
                        tracing::info!(
                            reseeded = r.reseeded,
                            cleared = r.cleared,
                            "reconciled chains"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "reconciling chains failed"),
                },
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "reconciler lock failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
        }
    }

    /// Whether this process reconciles this interval (a lock that expires after the interval).
    async fn take_turn(&self) -> Result<bool, SchedulerError> {
        let ttl_ms = u64::try_from(self.interval.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_sub(50)
            .max(100);
        let mut conn = self.state.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(&self.state.keys.reconciler_lock)
            .arg(&self.lock_owner)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }

    fn spread_delay(&self) -> Duration {
        let spread = u64::try_from(self.reseed_spread.as_millis()).unwrap_or(0);
        if spread == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(rand::random_range(0..spread))
        }
    }

    async fn seed(&self, ids: &[String]) -> Result<usize, SchedulerError> {
        let mut seeded = 0;
        for chunk in ids.chunks(CHUNK) {
            let chains: Vec<(String, Duration)> = chunk
                .iter()
                .map(|id| (id.clone(), self.spread_delay()))
                .collect();
            seeded += self
                .state
                .seed(&chains)
                .await?
                .into_iter()
                .filter(|s| *s)
                .count();
        }
        Ok(seeded)
    }

    /// One reconciliation pass.
    pub(crate) async fn reconcile_once(&self) -> Result<Reconciled, SchedulerError> {
        let snapshot_ms = self.state.redis_now_ms().await?;
        let wanted: HashSet<String> = match self.source.wanted().await {
            Ok(ids) => ids.into_iter().collect(),
            Err(e) => {
                // Without the source of truth, change nothing.
                tracing::warn!(error = %e, "chain source failed; skipping reconciliation");
                return Ok(Reconciled::default());
            }
        };
        let mut conn = self.state.conn.clone();
        let keys = &self.state.keys;
        let live: HashSet<String> = conn
            .hkeys::<_, Vec<String>>(&keys.seq)
            .await?
            .into_iter()
            .collect();

        let missing: Vec<String> = wanted.difference(&live).cloned().collect();
        let unwanted: Vec<String> = live.difference(&wanted).cloned().collect();
        let mut result = Reconciled {
            reseeded: self.seed(&missing).await?,
            cleared: 0,
        };
        for chunk in unwanted.chunks(CHUNK) {
            result.cleared += self.state.clear(chunk, Some(snapshot_ms)).await?;
        }

        let now_ms = self.state.redis_now_ms().await?;
        let expired: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(&keys.lease)
            .arg("-inf")
            .arg(format!("({now_ms}"))
            .arg("LIMIT")
            .arg(0)
            .arg(MAX_EXPIRED)
            .query_async(&mut conn)
            .await?;
        let expired: Vec<String> = expired
            .into_iter()
            .filter(|id| wanted.contains(id))
            .collect();
        result.reseeded += self.seed(&expired).await?;

        self.metrics.reseeds.inc_by(result.reseeded as u64);
        Ok(result)
    }
}
