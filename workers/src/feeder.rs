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
//!   state it last read (it reads at every step: at least once per `idle_poll_interval`, 1 s by
//!   default, and every `feed_interval`, 10 ms, while ticks are due);
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

use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::TaskBuilder;
use apalis_redis::RedisTask;
use prometheus::IntCounter;
use tokio::sync::{Semaphore, watch};

use crate::SchedulerError;
use crate::chain_state::{ChainState, Control, DueTick, FeedAhead};
use crate::redis_conn::RedisConn;
use crate::switch::OffSwitch;
use crate::tick_job::{Delivery, TickJob};
use crate::wake::Wakes;

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
    /// Longest wait between steps (see [`SchedulerConfig::idle_poll_interval`](crate::SchedulerConfig)).
    pub(crate) idle_poll: Duration,
    /// Wake notices for this feeder, and the local apalis fetch it wakes after a push.
    pub(crate) wakes: Wakes,
    /// This process' tick permits: none free means peers should fetch what it pushes.
    pub(crate) permits: Arc<Semaphore>,
    /// Counts steps (`campaign_manager_chain_loop_wakeups_total{loop="feeder"}`).
    pub(crate) wakeups: IntCounter,
}

/// What one feeder step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    /// Ticks handed to apalis.
    pub(crate) handed: usize,
    /// The pause state read (`Absent` when nothing was read).
    pub(crate) control: Control,
    /// When the next tick is due, if read.
    pub(crate) ahead: FeedAhead,
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
    /// Feed until `stopping` turns true. Between steps it waits at least `feed_interval`, then
    /// until the earliest pending tick is within `lead` of due or a wake notice arrives, but no
    /// longer than `idle_poll`: with nothing due it wakes about once a second, not 100 times.
    pub(crate) async fn run(self, mut stopping: watch::Receiver<bool>) {
        let mut mirror = PauseMirror::new();
        loop {
            if *stopping.borrow() {
                return;
            }
            self.wakeups.inc();
            let pause = match self.feed_once(&mut mirror).await {
                Ok(step) => self.pause_after(step),
                Err(e) => {
                    tracing::warn!(error = %e, "feeding ticks to apalis failed");
                    ERROR_PAUSE
                }
            };
            if pause.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            let first = pause.min(self.feed_interval);
            tokio::select! {
                _ = tokio::time::sleep(first) => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
            if pause > first {
                tokio::select! {
                    _ = tokio::time::sleep(pause - first) => {}
                    _ = self.wakes.feeder_woken() => {}
                    _ = stopping.wait_for(|s| *s) => return,
                }
            }
        }
    }

    /// How long to wait after a step (a wake notice may cut it short).
    fn pause_after(&self, step: Step) -> Duration {
        if step.handed >= self.feed_batch {
            return Duration::ZERO;
        }
        match step.ahead {
            // Paused with the record read: `resume` publishes a notice.
            _ if step.control == Control::Paused => self.idle_poll,
            FeedAhead::Unknown => self.feed_interval,
            FeedAhead::Empty => self.idle_poll,
            FeedAhead::In(wait) => wait.clamp(self.feed_interval, self.idle_poll),
        }
    }

    /// One step: take due ticks and push them to apalis, noting the pause state in `mirror` (or
    /// restoring it from there if the namespace was wiped). Says how many were handed over and
    /// when the next tick is due.
    pub(crate) async fn feed_once(&self, mirror: &mut PauseMirror) -> Result<Step, SchedulerError> {
        let unknown = Step {
            handed: 0,
            control: Control::Absent,
            ahead: FeedAhead::Unknown,
        };
        if !self.switch.allows_ticks() {
            return Ok(unknown);
        }
        let taken = self
            .state
            .take_due(self.lead, self.feed_batch, self.lease, self.max_queued)
            .await?;
        match taken.control {
            Control::Running => mirror.seen = Some(false),
            Control::Paused => mirror.seen = Some(true),
            Control::Absent => {
                self.restore_control(mirror).await?;
                return Ok(unknown);
            }
        }
        let step = Step {
            handed: taken.ticks.len(),
            control: taken.control,
            ahead: taken.ahead,
        };
        if taken.ticks.is_empty() {
            return Ok(step);
        }
        match self.push(&taken.ticks).await {
            Ok(()) => {
                self.wakes.fetch();
                if self.permits.available_permits() == 0 {
                    // This process is full: let idle peers fetch what was just queued.
                    self.state.publish_wake().await;
                }
                Ok(step)
            }
            Err(e) => {
                // Put them back so they are not lost until their lease expires.
                for t in &taken.ticks {
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
