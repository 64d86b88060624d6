//! The apalis job of the scheduler and what a worker does with it.
//!
//! A [`TickJob`] is `(id, seq, due_at_ms)`. The feeder hands it to apalis up to `lead` before it is
//! due, alone or together with other ticks taken in the same step ([`Delivery`]: up to
//! `ticks_per_job` per apalis job, so apalis' per-job Redis work is shared); for each tick the
//! worker then, independently of the other ticks of its job:
//! 1. waits until due (local clock corrected by the measured Redis offset); on shutdown it hands
//!    the unclaimed tick back to the feed instead, so another process runs it on time;
//!    Then it waits for one of `concurrency` running-tick permits (handing the tick back on
//!    shutdown), so ticks waiting for their due time never hold a running slot; while the
//!    durable off switch is not on (see `switch`) it hands the tick back instead;
//! 2. claims it (compare-and-set in Redis, batched with the process' other claims; stale or duplicate deliveries stop here, an early claim
//!    is refused by the Redis clock and retried after the reported wait, a paused cluster gets the
//!    tick handed back);
//! 3. runs the [`ChainRunner`] (a panic counts as `Continue(panic_backoff)`, so a buggy tick cannot
//!    kill the chain or the worker) while the lease keeper renews its lease;
//! 4. schedules the next tick `delay` after this one ended (by the Redis clock as estimated here,
//!    so waiting for the finish batch does not stretch the cadence; never before the finish
//!    itself) or ends the chain, unless the chain moved meanwhile (batched too).
//!
//! The apalis handler spawns this on the runtime and awaits it: tick bodies run on every core, and a
//! tick keeps going even if the apalis worker around it fails (e.g. after a flushed Redis). The
//! handler never returns an error, so apalis' own retries (25 attempts whatever `max_attempts`
//! says) never kick in; at-least-once delivery is made at-most-once by the claim.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apalis::prelude::{BoxDynError, Data};
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, watch};

use crate::batcher::Batcher;
use crate::chain_state::{ChainState, Claim, ClaimRequest, Finish, FinishRequest};
use crate::lease_keeper::RunningTicks;
use crate::metrics::{Metrics, Outcome};
use crate::switch::OffSwitch;
use crate::wake::Wakes;
use crate::{ChainRunner, Tick, TickOutcome};

/// One tick of one chain, as the feeder hands it over (alone or in a [`Delivery`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TickJob {
    /// Chain id.
    pub(crate) id: String,
    /// The chain's seq this tick must find to run.
    pub(crate) seq: u64,
    /// Due time, ms since the Unix epoch (Redis clock).
    pub(crate) due_at_ms: u64,
}

/// The payload of one apalis job: one tick (`{"id":…,"seq":…,"due_at_ms":…}`, the only form
/// before jobs held several) or several (`{"ticks":[…]}`). A job of several ticks ends when its
/// last tick ends; if its worker dies, apalis delivers the whole job again and the ticks that
/// already ran are dropped by their claims as stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Delivery {
    /// One tick.
    One(TickJob),
    /// Ticks taken together by the feeder.
    Many {
        /// The ticks, soonest due first.
        ticks: Vec<TickJob>,
    },
}

impl Delivery {
    /// `ticks` as one job: the plain one-tick form when there is one.
    pub(crate) fn of(mut ticks: Vec<TickJob>) -> Delivery {
        if ticks.len() == 1
            && let Some(tick) = ticks.pop()
        {
            return Delivery::One(tick);
        }
        Delivery::Many { ticks }
    }
}

/// Everything a worker needs to run tick jobs; shared by all jobs of a process.
pub(crate) struct TickContext {
    pub(crate) state: ChainState,
    /// This process' claims, sent in batches.
    pub(crate) claims: Batcher<ClaimRequest, Claim>,
    /// This process' finishes, sent in batches.
    pub(crate) finishes: Batcher<FinishRequest, Finish>,
    pub(crate) runner: Arc<dyn ChainRunner>,
    pub(crate) metrics: Metrics,
    pub(crate) running: RunningTicks,
    /// One permit per tick allowed to run at once (`concurrency`).
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) stopping: watch::Receiver<bool>,
    /// Longest a tick may run (its lease is not renewed past it).
    pub(crate) max_tick: Duration,
    /// Redis clock minus local clock, ms.
    pub(crate) clock_offset_ms: i64,
    /// Delay before the next tick when the runner panicked.
    pub(crate) panic_backoff: Duration,
    /// The durable off switch: a tick delivered while it is not on is handed back, unclaimed.
    pub(crate) switch: OffSwitch,
    /// Wakes the local feeder when a finished tick scheduled its successor.
    pub(crate) wakes: Wakes,
}

/// Local wall clock, ms since the Unix epoch.
pub(crate) fn local_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Local wall clock, µs since the Unix epoch.
fn local_now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// How often a Redis failure in claim/finish is retried before the tick is left to its lease.
const REDIS_ATTEMPTS: u32 = 3;
const REDIS_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// The apalis handler: run each tick of the job on its own task and wait for all of them.
pub(crate) async fn deliver(job: Delivery, ctx: Data<Arc<TickContext>>) -> Result<(), BoxDynError> {
    let ctx: Arc<TickContext> = (*ctx).clone();
    let ticks = match job {
        Delivery::One(tick) => vec![tick],
        Delivery::Many { ticks } => ticks,
    };
    let tasks: Vec<_> = ticks
        .into_iter()
        .map(|tick| tokio::spawn(ctx.clone().handle(tick)))
        .collect();
    for task in tasks {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "tick task failed");
        }
    }
    Ok(())
}

impl TickContext {
    /// The Redis clock as estimated locally, µs since the Unix epoch.
    fn redis_now_us(&self) -> i128 {
        i128::from(local_now_us()) + i128::from(self.clock_offset_ms) * 1000
    }

    /// Time left until `due_ms` by the Redis clock as estimated locally (microsecond precision,
    /// so the wake-up is not up to a millisecond late from truncation).
    fn until_due(&self, due_ms: u64) -> Duration {
        let left_us = i128::from(due_ms) * 1000 - self.redis_now_us();
        Duration::from_micros(u64::try_from(left_us.max(0)).unwrap_or(0))
    }

    fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Wait for `d` unless the process starts stopping first; true if it is stopping.
    async fn sleep_unless_stopping(&self, d: Duration) -> bool {
        let mut stopping = self.stopping.clone();
        tokio::select! {
            _ = tokio::time::sleep(d) => self.is_stopping(),
            _ = stopping.wait_for(|s| *s) => true,
        }
    }

    /// Hand an unclaimed tick back to the feed.
    async fn hand_back(&self, job: &TickJob) {
        match self.state.release(&job.id, job.seq, job.due_at_ms).await {
            Ok(true) => tracing::debug!(id = %job.id, seq = job.seq, "tick handed back"),
            Ok(false) => self.metrics.tick(Outcome::Stale),
            Err(e) => {
                // The lease set by the feeder expires and the reconciler re-seeds the chain.
                tracing::warn!(id = %job.id, error = %e, "could not hand a tick back");
            }
        }
    }

    /// Steps 1-4 of the module doc for one delivered job.
    pub(crate) async fn handle(self: Arc<Self>, job: TickJob) {
        // 1. Wait until due.
        loop {
            if self.is_stopping() {
                return self.hand_back(&job).await;
            }
            let left = self.until_due(job.due_at_ms);
            if left.is_zero() {
                break;
            }
            if self.sleep_unless_stopping(left).await {
                return self.hand_back(&job).await;
            }
        }
        let permit = {
            let mut stopping = self.stopping.clone();
            tokio::select! {
                permit = self.permits.clone().acquire_owned() => permit.ok(),
                _ = stopping.wait_for(|s| *s) => None,
            }
        };
        let Some(_permit) = permit else {
            return self.hand_back(&job).await;
        };
        if !self.switch.allows_ticks() {
            return self.hand_back(&job).await;
        }
        // 2. Claim. The local deadline is taken before the claim is sent, so it never lies
        // later than the one derived from the Redis clock.
        let mut failures = 0;
        let mut deadline = std::time::Instant::now() + self.max_tick;
        let claimed_at_ms = loop {
            let req = ClaimRequest {
                id: job.id.clone(),
                seq: job.seq,
                due_ms: job.due_at_ms,
            };
            match self.claims.call(req).await {
                Ok(Claim::Claimed { now_ms }) => break now_ms,
                Ok(Claim::Stale) => {
                    tracing::debug!(id = %job.id, seq = job.seq, "stale tick dropped");
                    self.metrics.tick(Outcome::Stale);
                    return;
                }
                Ok(Claim::Paused) => return self.hand_back(&job).await,
                Ok(Claim::Early(wait)) => {
                    if self.sleep_unless_stopping(wait).await {
                        return self.hand_back(&job).await;
                    }
                    deadline = std::time::Instant::now() + self.max_tick;
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(id = %job.id, error = %e, "claim failed");
                    if failures >= REDIS_ATTEMPTS {
                        // Not claimed: the feeder's lease expires and the chain is re-seeded.
                        return;
                    }
                    tokio::time::sleep(REDIS_RETRY_PAUSE).await;
                }
            }
        };
        let lateness = claimed_at_ms.saturating_sub(job.due_at_ms);
        // Histogram of milliseconds; the cast cannot lose anything that matters.
        self.metrics.lateness_ms.observe(lateness as f64);

        // 3. Run.
        let next_seq = job.seq + 1;
        let tick = Tick {
            id: job.id.clone(),
            seq: job.seq,
            due_at_ms: job.due_at_ms,
            claimed_at_ms,
            deadline_ms: claimed_at_ms
                .saturating_add(u64::try_from(self.max_tick.as_millis()).unwrap_or(u64::MAX)),
            deadline,
        };
        self.running.insert(&job.id, next_seq, deadline);
        self.metrics.running_ticks.inc();
        let outcome = match AssertUnwindSafe(self.runner.run_tick(&tick))
            .catch_unwind()
            .await
        {
            Ok(outcome) => outcome,
            Err(_) => {
                tracing::error!(id = %job.id, seq = job.seq, "tick panicked; backing off");
                TickOutcome::Continue(self.panic_backoff)
            }
        };
        self.running.remove(&job.id, next_seq);
        self.metrics.running_ticks.dec();
        let ended_at_ms = u64::try_from((self.redis_now_us() / 1000).max(0)).unwrap_or(0);

        // 4. Schedule the next tick or end the chain.
        let delay = match outcome {
            TickOutcome::Continue(d) => Some(d),
            TickOutcome::Stop => None,
        };
        self.metrics.tick(match outcome {
            TickOutcome::Continue(_) => Outcome::Continue,
            TickOutcome::Stop => Outcome::Stop,
        });
        for attempt in 1..=REDIS_ATTEMPTS {
            let req = FinishRequest {
                id: job.id.clone(),
                claimed_seq: next_seq,
                delay,
                ended_at_ms,
            };
            match self.finishes.call(req).await {
                Ok(Finish::Scheduled { due_ms }) => {
                    tracing::trace!(id = %job.id, seq = next_seq, due_ms, "next tick scheduled");
                    // The successor may be due before what the feeder sleeps for; once this
                    // process stops feeding, the other processes' feeders must hear of it.
                    if *self.stopping.borrow() {
                        self.state.publish_wake().await;
                    } else {
                        self.wakes.feeder();
                    }
                    return;
                }
                Ok(Finish::Stopped) => {
                    tracing::debug!(id = %job.id, "chain ended by its tick");
                    return;
                }
                Ok(Finish::Stale) => {
                    tracing::debug!(id = %job.id, "chain moved while its tick ran");
                    return;
                }
                Err(e) => {
                    tracing::warn!(id = %job.id, attempt, error = %e, "finishing a tick failed");
                    tokio::time::sleep(REDIS_RETRY_PAUSE).await;
                }
            }
        }
        // The claim's lease expires and the reconciler re-seeds the chain.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_payload_round_trips_as_json() {
        let job = TickJob {
            id: "c-1".into(),
            seq: 1_764_000_000_000_123,
            due_at_ms: 1_764_000_000_500,
        };
        let text = serde_json::to_string(&job).unwrap();
        assert_eq!(
            text,
            r#"{"id":"c-1","seq":1764000000000123,"due_at_ms":1764000000500}"#
        );
        assert_eq!(serde_json::from_str::<TickJob>(&text).unwrap(), job);
        // A job of one tick keeps that form; several share one job.
        let one = Delivery::of(vec![job.clone()]);
        assert_eq!(serde_json::to_string(&one).unwrap(), text);
        assert_eq!(serde_json::from_str::<Delivery>(&text).unwrap(), one);
        let second = TickJob {
            id: "c-2".into(),
            seq: 7,
            due_at_ms: 1_764_000_000_510,
        };
        let many = Delivery::of(vec![job.clone(), second]);
        let text = serde_json::to_string(&many).unwrap();
        assert_eq!(
            text,
            r#"{"ticks":[{"id":"c-1","seq":1764000000000123,"due_at_ms":1764000000500},{"id":"c-2","seq":7,"due_at_ms":1764000000510}]}"#
        );
        assert_eq!(serde_json::from_str::<Delivery>(&text).unwrap(), many);
        assert!(serde_json::from_str::<Delivery>(r#"{"id":"c-1"}"#).is_err());
    }
}
