//! The feeder: hands ticks that are about to be due to apalis-redis, in bounded slices.
//!
//! Why the pending ticks live in our own Redis zset (`{ns}:chain:feed`) and not in apalis'
//! scheduled set (DESIGN §3, checked against apalis-redis 1.0's `batch_push.lua`/`fetch_next.lua`):
//! * apalis stores run times in whole seconds and every push (even "now") goes through its
//!   scheduled set, so a tick due in 500 ms would become available up to a second early or late;
//! * its fetch promotes *all* due scheduled jobs with one `unpack`, which fails beyond ~8,000, and
//!   the worker dies. Thousands of chains started together are due together.
//!
//! So each process runs a feeder that atomically takes at most `feed_batch` ticks due within
//! `lead` out of the feed (leasing them) and pushes them to apalis as ready jobs, but only while
//! apalis holds fewer than `max_queued` unfetched jobs. Nothing in apalis is ever due in bulk, the
//! jobs still run through apalis workers, and the handler waits the last `lead` out, so ticks start
//! on time. Feeders of several processes never hand over the same tick: the take is one script.

use std::time::Duration;

use apalis::prelude::TaskBuilder;
use apalis_redis::{ConnectionManager, RedisTask};
use tokio::sync::watch;

use crate::SchedulerError;
use crate::chain_state::{ChainState, DueTick};
use crate::tick_job::TickJob;

/// What the feeder needs besides the chain state.
pub(crate) struct Feeder {
    pub(crate) state: ChainState,
    pub(crate) apalis_conn: ConnectionManager,
    pub(crate) apalis_config: apalis_redis::Config,
    pub(crate) lead: Duration,
    pub(crate) feed_batch: usize,
    pub(crate) max_queued: usize,
    pub(crate) lease: Duration,
    pub(crate) feed_interval: Duration,
}

const ERROR_PAUSE: Duration = Duration::from_millis(500);

impl Feeder {
    /// Feed until `stopping` turns true.
    pub(crate) async fn run(self, mut stopping: watch::Receiver<bool>) {
        loop {
            if *stopping.borrow() {
                return;
            }
            let pause = match self.feed_once().await {
                Ok(n) if n >= self.feed_batch => Duration::ZERO,
                Ok(_) => self.feed_interval,
                Err(e) => {
                    tracing::warn!(error = %e, "feeding ticks to apalis failed");
                    ERROR_PAUSE
                }
            };
            if pause.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
        }
    }

    /// One step: take due ticks and push them to apalis. Returns how many were handed over.
    pub(crate) async fn feed_once(&self) -> Result<usize, SchedulerError> {
        let ticks = self
            .state
            .take_due(self.lead, self.feed_batch, self.lease, self.max_queued)
            .await?;
        if ticks.is_empty() {
            return Ok(0);
        }
        match self.push(&ticks).await {
            Ok(()) => Ok(ticks.len()),
            Err(e) => {
                // Put them back so they are not lost until their lease expires.
                for t in &ticks {
                    if let Err(e) = self.state.release(&t.id, t.seq, t.due_ms).await {
                        tracing::warn!(id = %t.id, error = %e, "could not put a tick back");
                    }
                }
                Err(e)
            }
        }
    }

    async fn push(&self, ticks: &[DueTick]) -> Result<(), SchedulerError> {
        let tasks = ticks
            .iter()
            .map(|t| {
                let job = TickJob {
                    id: t.id.clone(),
                    seq: t.seq,
                    due_at_ms: t.due_ms,
                };
                Ok(TaskBuilder::new(serde_json::to_vec(&job)?).build())
            })
            .collect::<Result<Vec<RedisTask>, SchedulerError>>()?;
        let mut conn = self.apalis_conn.clone();
        apalis_redis::queries::push_tasks(&mut conn, &self.apalis_config, &tasks).await?;
        Ok(())
    }
}
