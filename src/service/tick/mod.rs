//! One campaign tick: what it dials now and what its chain does next ([`Next`], [`Outcome`]).
//!
//! Owns the tick's steps, in `Ticker::run`: load what it needs (campaign, calling hours,
//! outplan, a batch of available targets), settle an empty list (wait, or end the campaign and
//! start its next one), check whether it may dial (pacing cap, queue capacity), dial the ready
//! targets (`Dials`: one per tick, or several at the dial rate's instants), and summarise.
//! A dial is three steps, each of which may be the last a dying process makes: record it behind
//! the tick's [`Fence`], claim the target, ask the peer; `Ticker::place` (dial.rs) says what
//! repairs each intermediate state. A transient failure backs the chain off and keeps the campaign
//! running; only what can never work stops it. An unknown outcome of one dial holds back only
//! its target (claimed, its campaigncall open at step `unknown`): the tick goes on and the chain
//! keeps its pace, unless the campaign's last [`UNKNOWN_STREAK_LIMIT`] dials all ended unknown
//! (then it backs off, as it does under an open breaker).
//!
//! The details are in docs/architecture.md (the tick and its dial steps), docs/pacing.md,
//! docs/calling_hours.md and docs/contact-strategy.md (suppressed destinations; retry rules:
//! a target's wait and its final destinations come from `service::retry_rules`; callbacks: the
//! tick asks `service::callbacks` which targets to hold back and which to dial first).
//!
//! The module is cut by concept; each file's header says what it owns. Every public item is
//! defined or re-exported in this file (`service::tick::...`); the files are private:
//! - this file: [`Ticker`], [`Ticker::tick`] and `Ticker::run` (the steps in order), and what
//!   the chain is told ([`Next`], [`Outcome`]): the back-off and the counts of consecutive
//!   failures and of unknown outcomes per campaign;
//! - `load.rs`: the load step (campaign, calling hours, outplan, targets: `Plan`), the empty
//!   list and the campaign's end, the queue's agents;
//! - `batch.rs`: the per-tick batch of dials (`Dials`): choosing, pacing, the summary;
//! - `dial.rs`: one recorded dial's steps (record, claim, ask the peer, settle, give up), the
//!   write-ahead story of a dial;
//! - `pick.rs`: whether a target is ready and which destination it dials (pure functions);
//! - `fail.rs`: `Fail`, why a tick could not go on, and the errors that become one.

mod batch;
mod dial;
mod fail;
mod load;
mod pick;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Service;
use super::callbacks::DueCallbacks;
use super::campaign_cache::TickCache;
use crate::model::{CampaignStatus, Execute};
use crate::store::DialFence;
use batch::Dials;
use fail::Fail;

pub use pick::{pick_destination, pick_destination_after, pick_destination_skipping, target_ready};

/// The tick's identity in its chain, which fences its dials: the chain sequence number (a
/// fencing token that only grows, also across re-seeds) and the tick's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    /// The tick's sequence number.
    pub seq: u64,
    /// Past this instant (this process' wall clock, `Utc::now()`) the tick records no dial:
    /// the record transaction uses only the time left until it (`store::dials`).
    pub deadline: chrono::DateTime<Utc>,
    /// The same deadline on this process' monotonic clock: past it the tick asks no peer.
    pub local_deadline: Instant,
}

impl Fence {
    fn expired(&self) -> bool {
        Instant::now() >= self.local_deadline
    }

    fn dial(&self) -> DialFence {
        DialFence {
            seq: self.seq,
            deadline: self.deadline,
        }
    }
}

/// What the chain does after a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Run the next tick after this delay.
    Continue(Duration),
    /// End the chain.
    Stop,
}

/// Why a tick did what it did (logged, counted, and asserted by tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A dial was made.
    Dialed,
    /// Nothing to do now; try again after the wait delay.
    Waiting(&'static str),
    /// Nothing to do until a known time; try again after this delay.
    Sleeping(&'static str, Duration),
    /// A transient failure; back off.
    Backoff(String),
    /// The chain ends (the campaign is no longer running, or can never run).
    Ended(&'static str),
}

/// The tick's wall clock (injectable for tests of the calling-hours sleep).
pub type Clock = std::sync::Arc<dyn Fn() -> chrono::DateTime<Utc> + Send + Sync>;

/// Runs ticks; remembers consecutive transient failures per campaign for the back-off, and
/// consecutive dials that ended with an unknown outcome ([`UNKNOWN_STREAK_LIMIT`]).
pub struct Ticker {
    service: Service,
    failures: Mutex<HashMap<Uuid, u32>>,
    unknown_streaks: Mutex<HashMap<Uuid, u32>>,
    target_batch: u32,
    clock: Clock,
    cache: std::sync::Arc<TickCache>,
}

/// Longest sleep of a campaign outside its calling hours before its chain looks again.
pub const CALLING_HOURS_MAX_SLEEP: Duration = Duration::from_secs(3600);

/// Shortest such sleep (a tick that fires a hair before the window opens does not spin).
pub const CALLING_HOURS_MIN_SLEEP: Duration = Duration::from_millis(50);

/// How long one tick of a campaign with a dial rate keeps dialing, one dial at each allowed
/// instant, before it hands over to the next tick.
pub const PACED_TICK_SPAN: Duration = Duration::from_secs(1);

/// How long before its next allowed dial a paced campaign's next tick is due (its reads of the
/// campaign, outplan, targets and caps are done by then; it sleeps the rest).
pub const PACED_TICK_LEAD: Duration = Duration::from_millis(400);

/// How often in a row the store may answer `Paced` for one dial before the tick stops trying
/// (each answer names a later instant, which the tick waits for).
pub const PACED_ATTEMPTS: u32 = 3;

/// How many available targets a tick asks the outdial for by default.
pub const DEFAULT_TARGET_BATCH: u32 = 20;

/// After this many dials of a campaign in a row ended with an unknown outcome (no placed dial
/// between them, counted by this process), its chain backs off as for a transient failure
/// (`tick_backoff_total{reason="unknown"}`): the peer looks down although its breaker is still
/// closed (it counts the whole process' timeouts, and a 5xx reply not at all). Fewer hold back
/// only their targets.
pub const UNKNOWN_STREAK_LIMIT: u32 = 3;

/// How long from now until `at` (zero once it passed).
fn until(at: DateTime<Utc>) -> Duration {
    (at - Utc::now()).to_std().unwrap_or_default()
}

impl Ticker {
    /// A ticker over the service.
    pub fn new(service: Service) -> Ticker {
        Ticker {
            service,
            failures: Mutex::new(HashMap::new()),
            unknown_streaks: Mutex::new(HashMap::new()),
            target_batch: DEFAULT_TARGET_BATCH,
            clock: std::sync::Arc::new(Utc::now),
            cache: std::sync::Arc::new(TickCache::default()),
        }
    }

    /// The copies of campaigns and outplans its ticks read (`campaign_cache`); the process'
    /// change listener (`events::changes`) keeps them fresh.
    pub fn cache(&self) -> std::sync::Arc<TickCache> {
        self.cache.clone()
    }

    /// Reads the time of day for calling hours from `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Ticker {
        self.clock = clock;
        self
    }

    /// Asks the outdial for up to `n` available targets per tick (at least 1).
    pub fn with_target_batch(mut self, n: u32) -> Ticker {
        self.target_batch = n.max(1);
        self
    }

    /// The service it runs on.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Runs one tick of campaign `id`, fenced by `fence`.
    pub async fn tick(&self, id: Uuid, fence: &Fence) -> (Next, Outcome) {
        let started = Instant::now();
        let m = &self.service.metrics;
        m.campaign_execute_total.inc();
        let mut trace = Trace::default();
        let result = self.run(id, fence, &mut trace).await;
        let Trace {
            seen,
            next_dial,
            settled,
            next_callback,
        } = trace;
        let delays = self.service.delays;
        let streak = self.note_unknowns(id, settled);
        let result = match result {
            // Every dial of this tick ended unknown, and so did the ones before it: the peer
            // looks down. Each dial is left to its repair all the same.
            Ok(Outcome::Dialed) if settled.placed == 0 && streak >= UNKNOWN_STREAK_LIMIT => {
                Err(Fail::Unanswered(streak))
            }
            other => other,
        };
        let out = match result {
            Ok(outcome) => {
                self.reset_failures(id);
                let next = match &outcome {
                    Outcome::Dialed => Next::Continue(match next_dial {
                        Some(at) => until(at).saturating_sub(PACED_TICK_LEAD),
                        None => delays.after_dial,
                    }),
                    Outcome::Waiting(_) => Next::Continue(delays.wait),
                    Outcome::Sleeping(_, delay) => Next::Continue(*delay),
                    Outcome::Ended(_) | Outcome::Backoff(_) => Next::Stop,
                };
                if let Outcome::Ended(reason) = &outcome {
                    self.forget_unknowns(id);
                    m.tick_stop_total.with_label_values(&[reason]).inc();
                    tracing::info!(campaign_id = %id, reason, "campaign chain ended");
                }
                (next, outcome)
            }
            Err(Fail::Transient(reason)) => self.back_off(id, "transient", reason),
            Err(Fail::Unanswered(streak)) => self.back_off(
                id,
                "unknown",
                format!("the last {streak} dials all ended with an unknown outcome"),
            ),
            Err(Fail::Permanent(reason)) => {
                self.reset_failures(id);
                self.forget_unknowns(id);
                m.tick_stop_total.with_label_values(&[reason]).inc();
                tracing::warn!(campaign_id = %id, reason, "campaign cannot run; stopping it");
                let ended = match seen {
                    Some((status, execute)) => {
                        self.service.end_execution_seen(id, status, execute).await
                    }
                    None => Ok(true),
                };
                match ended {
                    Ok(true) => (Next::Stop, Outcome::Ended(reason)),
                    Ok(false) => (
                        Next::Continue(delays.after_dial),
                        Outcome::Waiting("state_changed"),
                    ),
                    Err(e) => {
                        // Could not record the stop: keep the chain and try again later.
                        tracing::warn!(campaign_id = %id, error = %e, "could not stop the campaign");
                        (Next::Continue(delays.wait), Outcome::Backoff(e.to_string()))
                    }
                }
            }
        };
        let out = (DueCallbacks::next_tick(next_callback, out.0), out.1);
        self.service.record_tick(id, out.0, &out.1).await;
        m.tick_process_time
            .observe(started.elapsed().as_secs_f64() * 1000.0);
        out
    }

    /// Backs the chain off after one more consecutive failure: the wait delay, doubling per
    /// failure up to `max_backoff`; counted in `tick_backoff_total{reason=label}`.
    fn back_off(&self, id: Uuid, label: &'static str, reason: String) -> (Next, Outcome) {
        let delays = self.service.delays;
        let n = self.bump_failures(id);
        let delay = delays
            .wait
            .saturating_mul(1 << n.min(6).saturating_sub(1))
            .min(delays.max_backoff);
        self.service
            .metrics
            .tick_backoff_total
            .with_label_values(&[label])
            .inc();
        tracing::warn!(campaign_id = %id, failures = n, delay_ms = delay.as_millis() as u64, reason, "tick backs off");
        (Next::Continue(delay), Outcome::Backoff(reason))
    }

    /// Counts this tick's dials into the campaign's run of unknown outcomes and returns it: a
    /// placed dial ends the run, each unknown one extends it.
    fn note_unknowns(&self, id: Uuid, settled: Settled) -> u32 {
        let Ok(mut streaks) = self.unknown_streaks.lock() else {
            return 0;
        };
        if settled.placed > 0 {
            streaks.remove(&id);
            return 0;
        }
        if settled.unknown == 0 {
            return streaks.get(&id).copied().unwrap_or(0);
        }
        let n = streaks.entry(id).or_insert(0);
        *n = n.saturating_add(settled.unknown);
        *n
    }

    /// Drops the campaign's run of unknown outcomes (its chain ended).
    fn forget_unknowns(&self, id: Uuid) {
        if let Ok(mut s) = self.unknown_streaks.lock() {
            s.remove(&id);
        }
    }

    fn bump_failures(&self, id: Uuid) -> u32 {
        let Ok(mut f) = self.failures.lock() else {
            return 1;
        };
        let n = f.entry(id).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    fn reset_failures(&self, id: Uuid) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(&id);
        }
    }

    /// The tick's steps: load what it needs, settle an empty list, check the caps, dial.
    async fn run(&self, id: Uuid, fence: &Fence, trace: &mut Trace) -> Result<Outcome, Fail> {
        let mut plan = match self.load(id, trace).await? {
            ControlFlow::Continue(plan) => plan,
            ControlFlow::Break(outcome) => return Ok(outcome),
        };
        plan.callbacks = self.service.due_callbacks(&plan.campaign).await?;
        plan.callbacks.arrange(&mut plan.targets);
        trace.next_callback = plan.callbacks.next_in();
        if plan.targets.is_empty() && plan.callbacks.any_pending() {
            return Ok(Outcome::Waiting("callback_pending"));
        }
        if plan.targets.is_empty() {
            return self.list_empty(&plan.campaign, &plan.outplan).await;
        }
        let agents = match self.agents(&plan.campaign).await? {
            Ok(agents) => agents,
            Err(reason) => return Ok(Outcome::Waiting(reason)),
        };
        let mut dials = Dials::new(self, &plan, fence, agents).await?;
        let outcome = dials.dial_all().await;
        trace.next_dial = dials.next_dial;
        match outcome? {
            Some(outcome) => Ok(outcome),
            None => dials.summarise(&mut trace.settled).await,
        }
    }
}

/// What [`Ticker::tick`] learns from a run besides its outcome.
#[derive(Default)]
struct Trace {
    /// The campaign's state as read, for the conditional end of a permanent failure.
    seen: Option<(CampaignStatus, Execute)>,
    /// A paced campaign's next allowed dial, which times its next tick.
    next_dial: Option<DateTime<Utc>>,
    /// What became of the tick's dials, for the run of unknown outcomes.
    settled: Settled,
    /// How long until the campaign's next callback is due, which caps its next tick's delay.
    next_callback: Option<Duration>,
}

/// How many of a tick's dials the peer took, and how many ended with an unknown outcome.
#[derive(Debug, Default, Clone, Copy)]
struct Settled {
    placed: u32,
    unknown: u32,
}
