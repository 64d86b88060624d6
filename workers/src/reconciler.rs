//! The reconciler: makes the live chains match [`ChainSource::wanted`] every few seconds.
//!
//! It re-seeds wanted chains that are missing (flushed Redis, a chain that was never started)
//! or whose lease expired (a worker killed between claim and push, a job lost inside apalis),
//! and clears chains nobody wants any more. It runs in every process but a short Redis lock lets
//! one of them do the work per interval, so the source of truth (a database query in production)
//! is asked once per interval, not once per process. Every step is an idempotent script, so two
//! reconcilers racing (lock expired mid-run) cannot fork a chain.
//!
//! While no chain is live and none is wanted it slows down to `quiet_reconcile_interval`
//! (30 s): there is nothing to lose. A wake notice (a chain seeded anywhere) or a process finding
//! chains live brings it back to its pace.
//!
//! Chains seeded after the reconciler read the source (a campaign started a moment ago) are not
//! cleared: only chains born before that snapshot are.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounter;
use redis::AsyncCommands;
use tokio::sync::watch;

use crate::chain_state::ChainState;
use crate::metrics::Metrics;
use crate::wake::Wakes;
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
    /// No chain was wanted and none is live any more.
    pub(crate) quiet: bool,
}

/// Who reconciles this interval.
enum Turn {
    /// This process.
    Mine,
    /// Another one; `quiet` as it last found the namespace (and no chain live now).
    Others { quiet: bool },
}

/// The reconciler of one process.
pub(crate) struct Reconciler {
    pub(crate) state: ChainState,
    pub(crate) source: Arc<dyn ChainSource>,
    pub(crate) metrics: Metrics,
    pub(crate) interval: Duration,
    pub(crate) reseed_spread: Duration,
    pub(crate) lock_owner: String,
    /// The interval while nothing is live or wanted.
    pub(crate) quiet_interval: Duration,
    /// Wake notices (a chain seeded while quiet).
    pub(crate) wakes: Wakes,
    /// Counts passes (`campaign_manager_chain_loop_wakeups_total{loop="reconciler"}`).
    pub(crate) wakeups: IntCounter,
}

impl Reconciler {
    /// Reconcile every `interval` (first pass right away) until `stopping` turns true; every
    /// `quiet_interval` instead while no chain is live and none was wanted at the last pass
    /// (then a wake notice, e.g. a chain just seeded, brings the next pass to `interval` away).
    pub(crate) async fn run(self, mut stopping: watch::Receiver<bool>) {
        loop {
            if *stopping.borrow() {
                return;
            }
            self.wakeups.inc();
            let quiet = match self.take_turn().await {
                Ok(Turn::Mine) => match self.reconcile_once().await {
                    Ok(r) => {
                        if r.reseeded + r.cleared > 0 {
                            tracing::info!(
                                reseeded = r.reseeded,
                                cleared = r.cleared,
                                "reconciled chains"
                            );
                        }
                        r.quiet
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reconciling chains failed");
                        false
                    }
                },
                Ok(Turn::Others { quiet }) => quiet,
                Err(e) => {
                    tracing::warn!(error = %e, "reconciler lock failed");
                    false
                }
            };
            let wait = if quiet {
                self.quiet_interval
            } else {
                self.interval
            };
            let woken = tokio::select! {
                _ = tokio::time::sleep(wait) => false,
                _ = self.wakes.reconciler_woken(), if quiet => true,
                _ = stopping.wait_for(|s| *s) => return,
            };
            if woken {
                tokio::select! {
                    _ = tokio::time::sleep(self.interval) => {}
                    _ = stopping.wait_for(|s| *s) => return,
                }
            }
        }
    }

    /// Whether this process reconciles this interval (a lock that expires after the interval);
    /// if not, whether the namespace is quiet (no live chain, none wanted at the last pass).
    async fn take_turn(&self) -> Result<Turn, SchedulerError> {
        let ttl_ms = u64::try_from(self.interval.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_sub(50)
            .max(100);
        let keys = &self.state.keys;
        let mut conn = self.state.conn.clone();
        let (set, live, wanted): (Option<String>, u64, Option<u64>) = redis::pipe()
            .cmd("SET")
            .arg(&keys.reconciler_lock)
            .arg(&self.lock_owner)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .hlen(&keys.seq)
            .get(&keys.wanted_count)
            .query_async(&mut conn)
            .await?;
        Ok(match set {
            Some(_) => Turn::Mine,
            None => Turn::Others {
                quiet: live == 0 && wanted == Some(0),
            },
        })
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
        let () = conn.set(&keys.wanted_count, wanted.len()).await?;
        let mut result = Reconciled {
            reseeded: self.seed(&missing).await?,
            cleared: 0,
            quiet: false,
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
        // Quiet only if nothing is wanted and every live chain was just cleared (one born after
        // the snapshot is spared, so it stays live and keeps the reconciler at its pace).
        result.quiet = wanted.is_empty() && result.reseeded == 0 && result.cleared == live.len();

        self.metrics.reseeds.inc_by(result.reseeded as u64);
        Ok(result)
    }
}
