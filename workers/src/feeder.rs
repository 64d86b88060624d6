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
//! `lead` out of the feed (leasing them) and pushes them to apalis as ready jobs of up to
//! `ticks_per_job` ticks each, but only while apalis holds fewer than `max_queued` unfetched
//! jobs. Nothing in apalis is ever due in bulk, the jobs still run through apalis workers, and the
//! handler waits the last `lead` out, so ticks start on time. Feeders of several processes never hand over the same tick: the take is one script.
//!
//! ## The pause survives a wiped namespace
//!
//! `Chains::pause` is a record in Redis (`{ns}:chain:control`), so a `FLUSHDB`, a Redis restart
//! without persistence or deleted keys would lose it, and the reconciler would re-seed and run
//! every chain of a drained cluster. Therefore:
//! * every take also reads the control record, and each process' feeder remembers the pause
//!   state it last read (it reads every `feed_interval`, 10 ms by default);
//! * without the record nothing is handed to apalis: re-seeded chains only refill the feed (and a
//!   tick already handed over is stale, its chain's `seq` having gone with the wipe);
//! * the first feeder that finds the record missing writes back the state it remembers, in one
//!   "only if absent" script, so several processes cannot flip it back and forth.
//!
//! Limits, by design of a mirror held in process memory:
//! * if no worker process lives through the wipe (all restarted after it), nobody remembers:
//!   a process that never read the record waits `unknown_pause_grace` (500 ms) for one that
//!   did, then creates the record as *not paused* and the chains run. Re-run `queue drain` in
//!   that case, or use the durable off switch, which the embedding application keeps in its own
//!   store (see `switch`): while it is off, or not read yet, the feeder takes nothing.
//!   The same wait delays the first ticks of a brand-new namespace.
//! * a pause or resume less than one feed interval before the wipe may be missed by the process
//!   that restores, which then restores the state before it.
//! * while the record is missing (for at most a few feed intervals while a worker runs),
//!   `Chains::is_paused` and the stats read *not paused*, although nothing runs.
//! * keys deleted one by one rather than flushed: a tick already in apalis whose chain state
//!   outlived the record for a moment may still run once.

use std::time::{Duration, Instant};

use apalis::prelude::TaskBuilder;
use apalis_redis::RedisTask;
use tokio::sync::watch;

use crate::SchedulerError;
use crate::chain_state::{ChainState, Control, DueTick};
use crate::redis_conn::RedisConn;
use crate::switch::OffSwitch;
use crate::tick_job::{Delivery, TickJob};

/// What the feeder needs besides the chain state.
pub(crate) struct Feeder {
    pub(crate) state: ChainState,
    pub(crate) apalis_conn: RedisConn,
    pub(crate) apalis_config: apalis_redis::Config,
    pub(crate) lead: Duration,
    pub(crate) feed_batch: usize,
    /// Most ticks per apalis job.
    pub(crate) ticks_per_job: usize,
    pub(crate) max_queued: usize,
    pub(crate) lease: Duration,
    pub(crate) feed_interval: Duration,
    /// See [`SchedulerConfig::unknown_pause_grace`](crate::SchedulerConfig).
    pub(crate) unknown_pause_grace: Duration,
    /// The durable off switch: nothing is taken unless it reads on.
    pub(crate) switch: OffSwitch,
}

const ERROR_PAUSE: Duration = Duration::from_millis(500);

/// The pause state this process last read from the control record.
pub(crate) struct PauseMirror {
    /// `Some(paused)` once read; `None` before.
    seen: Option<bool>,
    /// When this process started looking.
    since: Instant,
}

impl PauseMirror {
    pub(crate) fn new() -> Self {
        Self {
            seen: None,
            since: Instant::now(),
        }
    }
}

impl Feeder {
    /// Feed until `stopping` turns true.
    pub(crate) async fn run(self, mut stopping: watch::Receiver<bool>) {
        let mut mirror = PauseMirror::new();
        loop {
            if *stopping.borrow() {
                return;
            }
            let pause = match self.feed_once(&mut mirror).await {
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

    /// One step: take due ticks and push them to apalis, noting the pause state in `mirror` (or
    /// restoring it from there if the namespace was wiped). Returns how many were handed over.
    pub(crate) async fn feed_once(
        &self,
        mirror: &mut PauseMirror,
    ) -> Result<usize, SchedulerError> {
        if !self.switch.allows_ticks() {
            return Ok(0);
        }
        let (control, ticks) = self
            .state
            .take_due(self.lead, self.feed_batch, self.lease, self.max_queued)
            .await?;
        match control {
            Control::Running => mirror.seen = Some(false),
            Control::Paused => mirror.seen = Some(true),
            Control::Absent => {
                self.restore_control(mirror).await?;
                return Ok(0);
            }
        }
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

    /// The control record is missing: write back the remembered pause state (see the module doc).
    async fn restore_control(&self, mirror: &PauseMirror) -> Result<(), SchedulerError> {
        let paused = match mirror.seen {
            Some(paused) => paused,
            None if mirror.since.elapsed() < self.unknown_pause_grace => return Ok(()),
            None => false,
        };
        if self.state.restore_control(paused).await? {
            if mirror.seen.is_some() {
                tracing::warn!(
                    namespace = %self.state.keys.namespace,
                    paused,
                    "the chain namespace was wiped; restored the pause state this process last saw"
                );
            } else {
                tracing::info!(
                    namespace = %self.state.keys.namespace,
                    "no control record and no process remembering one; created it (not paused)"
                );
            }
        }
        Ok(())
    }

    /// Push `ticks` (soonest due first) as jobs of up to `ticks_per_job` neighbours each.
    async fn push(&self, ticks: &[DueTick]) -> Result<(), SchedulerError> {
        let tasks = ticks
            .chunks(self.ticks_per_job.max(1))
            .map(|group| {
                let job = Delivery::of(
                    group
                        .iter()
                        .map(|t| TickJob {
                            id: t.id.clone(),
                            seq: t.seq,
                            due_at_ms: t.due_ms,
                        })
                        .collect(),
                );
                Ok(TaskBuilder::new(serde_json::to_vec(&job)?).build())
            })
            .collect::<Result<Vec<RedisTask>, SchedulerError>>()?;
        let mut conn = self.apalis_conn.clone();
        apalis_redis::queries::push_tasks(&mut conn, &self.apalis_config, &tasks).await?;
        Ok(())
    }
}
