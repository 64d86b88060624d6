//! One campaign tick: what it dials now and what its chain does next ([`Next`], [`Outcome`]).
//!
//! Owns the tick's steps, in `Ticker::run`: load what it needs (campaign, calling hours,
//! outplan, a batch of available targets), settle an empty list (wait, or end the campaign and
//! start its next one), check whether it may dial (pacing cap, queue capacity), dial the ready
//! targets (`Dials`: one per tick, or several at the dial rate's instants), and summarise.
//! A dial is three steps, each of which may be the last a dying process makes: record it behind
//! the tick's [`Fence`], claim the target, ask the peer; `Ticker::place` says what repairs
//! each intermediate state. A transient failure backs the chain off and keeps the campaign
//! running; only what can never work stops it. An unknown outcome of one dial holds back only
//! its target (claimed, its campaigncall open at step `unknown`): the tick goes on and the chain
//! keeps its pace, unless the campaign's last [`UNKNOWN_STREAK_LIMIT`] dials all ended unknown
//! (then it backs off, as it does under an open breaker).
//!
//! The details are in docs/architecture.md (the tick and its dial steps), docs/pacing.md,
//! docs/calling_hours.md and docs/contact-strategy.md (suppressed destinations; retry rules:
//! a target's wait and its final destinations come from `service::retry_rules`; callbacks: the
//! tick asks `service::callbacks` which targets to hold back and which to dial first).

use std::collections::{HashMap, VecDeque};
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt};
use futures::stream::FuturesUnordered;
use uuid::Uuid;

use super::callbacks::{DueCallbacks, callback_destination};
use super::campaign_cache::TickCache;
use super::campaigncalls::NewCampaigncall;
use super::retry_rules::RetryView;
use super::{Service, ServiceError};
use crate::model::{
    Address, Campaign, CampaignStatus, CampaignType, DialRate, EndHandle, Execute, Finals,
    OutdialTarget, Outplan, ReferenceType, Schedule,
};
use crate::peers::{CallRequest, DialPeer, PeerError};
use crate::store::{DialFence, DialStep, Recorded};

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

/// A campaign against its calling hours.
enum Hours {
    /// No hours, or inside a window: dial.
    Open,
    /// Outside every window: sleep this long.
    Closed(Duration),
    /// `destination_local`: each target is checked in its callee's zone.
    PerDestination(Schedule),
}

/// One dial to record: the target, and the destination and try chosen for it.
struct DialTry {
    target_id: Uuid,
    destination: Address,
    index: i32,
    try_count: i32,
    /// The due callback this dial is for (it takes the callback in its transaction).
    callback_id: Option<Uuid>,
}

/// A recorded dial whose target is not claimed nor its peer asked yet.
struct Pending {
    cc: crate::model::Campaigncall,
    target_id: Uuid,
    index: i32,
    destination: Address,
    source: Option<Address>,
    reference_id: Uuid,
    activeflow_id: Uuid,
}

/// What became of placing a recorded dial (steps 2 and 3).
enum Dial {
    /// The peer took the request.
    Placed,
    /// The peer may or may not have taken the request (a timeout, a transport error, a 5xx):
    /// the campaigncall stays open at step `unknown` and the target claimed, for its hangup
    /// or the repair. Only this target is held back.
    Unknown,
    /// Nothing was dialed: the tick passed its deadline.
    Late,
}

/// Placements of a tick's recorded dials, running while it waits for its next dial instant.
type Placements<'a> = FuturesUnordered<BoxFuture<'a, Result<Dial, Fail>>>;

/// Awaits `work` while driving `in_flight`, collecting the placements that finish into `done`:
/// a tick's placements progress during everything it awaits (its sleeps and its records).
async fn while_placing<T>(
    work: impl std::future::Future<Output = T>,
    in_flight: &mut Placements<'_>,
    done: &mut Vec<Result<Dial, Fail>>,
) -> T {
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            Some(r) = in_flight.next(), if !in_flight.is_empty() => done.push(r),
        }
    }
}

/// Whether a peer failure says for sure that nothing was created ([`PeerError::is_refusal`]:
/// a 4xx, or never sent). Timeouts, transport errors, unreadable replies and 5xx leave the
/// outcome unknown.
fn is_definite(e: &PeerError) -> bool {
    e.is_refusal()
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

/// Why a tick could not go on.
enum Fail {
    /// It may work later (a store or peer error, a refusal, an open breaker): back off.
    Transient(String),
    /// The campaign's last dials all ended unknown ([`UNKNOWN_STREAK_LIMIT`]): back off.
    Unanswered(u32),
    /// It can never work: end the chain.
    Permanent(&'static str),
}

impl From<ServiceError> for Fail {
    fn from(e: ServiceError) -> Fail {
        match e {
            ServiceError::Peer(p) => p.into(),
            other => Fail::Transient(other.to_string()),
        }
    }
}

/// A peer failure in the middle of a tick backs off, whatever its kind: the checks that can
/// never pass (outdial gone, call campaign without a source...) end the chain as
/// [`Fail::Permanent`] where they are made, not here. A refusal only reads so in the reason.
impl From<PeerError> for Fail {
    fn from(e: PeerError) -> Fail {
        if e.is_transient() {
            Fail::Transient(e.to_string())
        } else {
            Fail::Transient(format!("peer refused: {e}"))
        }
    }
}

impl From<crate::store::StoreError> for Fail {
    fn from(e: crate::store::StoreError) -> Fail {
        Fail::Transient(e.to_string())
    }
}

/// How long from now until `at` (zero once it passed).
fn until(at: DateTime<Utc>) -> Duration {
    (at - Utc::now()).to_std().unwrap_or_default()
}

/// Whether the target may be dialed now given the outplan's retry interval (ms).
pub fn target_ready(
    target: &OutdialTarget,
    try_interval_ms: i32,
    now: chrono::DateTime<Utc>,
) -> bool {
    match (target.tm_create, target.tm_update) {
        // Never tried (outdial-manager creates targets with tm_update unset or equal to tm_create).
        (None, None) | (Some(_), None) => true,
        (Some(c), Some(u)) if c == u => true,
        (_, Some(u)) => {
            u <= now - chrono::Duration::milliseconds(i64::from(try_interval_ms.max(0)))
        }
    }
}

/// The first destination with tries left: `(address, index, try_count)`.
pub fn pick_destination(target: &OutdialTarget, outplan: &Outplan) -> Option<(Address, i32, i32)> {
    pick_destination_after(target, outplan, None)
}

/// The first destination with tries left whose index is above `after` (all of them for
/// `None`): the one dialed when the destination at `after` is suppressed.
pub fn pick_destination_after(
    target: &OutdialTarget,
    outplan: &Outplan,
    after: Option<i32>,
) -> Option<(Address, i32, i32)> {
    pick_destination_skipping(target, outplan, after, Finals::default())
}

/// [`pick_destination_after`] leaving out the destinations a final retry rule ended
/// (docs/contact-strategy.md#retry-rules).
pub fn pick_destination_skipping(
    target: &OutdialTarget,
    outplan: &Outplan,
    after: Option<i32>,
    finals: Finals,
) -> Option<(Address, i32, i32)> {
    let max = outplan.max_try_counts();
    target
        .destinations()
        .iter()
        .zip(max)
        .enumerate()
        .find_map(|(i, ((dest, tries), max))| match dest {
            Some(a)
                if *tries < max
                    && after.is_none_or(|a| i as i32 > a)
                    && !finals.contains(i as i32) =>
            {
                Some(((*a).clone(), i as i32, tries + 1))
            }
            _ => None,
        })
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

    /// Loads the campaign, its calling hours, outplan and a batch of available targets; breaks
    /// with the outcome when the campaign cannot dial now.
    async fn load(&self, id: Uuid, trace: &mut Trace) -> Result<ControlFlow<Outcome, Plan>, Fail> {
        let s = &self.service;
        let Some(campaign) = self.cache.campaign(&s.store, id).await? else {
            return Ok(ControlFlow::Break(Outcome::Ended("campaign_gone")));
        };
        trace.seen = Some((campaign.status, campaign.execute));
        if campaign.tm_delete.is_some() {
            return Err(Fail::Permanent("campaign_deleted"));
        }
        if campaign.status != CampaignStatus::Run || campaign.execute != Execute::Run {
            return Ok(ControlFlow::Break(
                self.end(&campaign, "not_running").await?,
            ));
        }
        if campaign.kind == CampaignType::Unset {
            return Err(Fail::Permanent("invalid_type"));
        }
        let local_hours = match self.calling_hours(&campaign) {
            Hours::Closed(sleep) => {
                let outcome = Outcome::Sleeping("outside_calling_hours", sleep);
                return Ok(ControlFlow::Break(outcome));
            }
            Hours::Open => None,
            Hours::PerDestination(schedule) => Some(schedule),
        };
        let outplan = match self.cache.outplan(&s.store, campaign.outplan_id).await? {
            Some(o) if o.tm_delete.is_none() => o,
            _ => return Err(Fail::Permanent("outplan_gone")),
        };
        if campaign.kind == CampaignType::Call && outplan.source.is_none() {
            return Err(Fail::Permanent("outplan_without_source"));
        }
        // A paced tick may dial for a whole PACED_TICK_SPAN: ask for at least that many.
        let batch = match campaign.pacing.and_then(|p| p.rate()) {
            Some(r) => self
                .target_batch
                .max(u32::try_from(r.window_dials()).unwrap_or(u32::MAX)),
            None => self.target_batch,
        };
        let targets = match s
            .peers
            .outdial
            .available_targets(campaign.outdial_id, outplan.max_try_counts(), batch)
            .await
        {
            Ok(t) => t,
            Err(e) if e.is_not_found() => return Err(Fail::Permanent("outdial_gone")),
            Err(e) => return Err(e.into()),
        };
        Ok(ControlFlow::Continue(Plan {
            campaign,
            outplan,
            local_hours,
            targets,
            callbacks: DueCallbacks::default(),
        }))
    }

    /// No target is available: wait, or end an `end_handle = stop` campaign whose list is
    /// exhausted and start its next campaign.
    async fn list_empty(&self, campaign: &Campaign, outplan: &Outplan) -> Result<Outcome, Fail> {
        // Legacy "" behaves as continue, as on the platform (only `stop` stops).
        if campaign.end_handle != EndHandle::Stop {
            return Ok(Outcome::Waiting("list_empty"));
        }
        // Targets of calls still up are hidden from "available" but may come back idle
        // with tries left: the list is only exhausted once no call is in progress.
        if self
            .service
            .store
            .campaigncalls
            .has_ongoing(campaign.id)
            .await?
        {
            return Ok(Outcome::Waiting("calls_in_flight"));
        }
        // A finished call's target is written back after the campaigncall's finish (its outbox
        // row goes once it is written): while one is pending, or if one landed since the list
        // was read (the list is asked again), the target may still be offered.
        let s = &self.service;
        let settling = s
            .store
            .outbox
            .of_campaign(campaign.id, crate::store::OutboxKind::TargetStatus)
            .await?;
        if !settling.is_empty() {
            return Ok(Outcome::Waiting("targets_settling"));
        }
        let again = s
            .peers
            .outdial
            .available_targets(campaign.outdial_id, outplan.max_try_counts(), 1)
            .await?;
        if !again.is_empty() {
            return Ok(Outcome::Waiting("list_refilled"));
        }
        // The end records the next campaign's start durably (sequence.rs).
        let outcome = self
            .end_then(campaign, "list_exhausted", campaign.next_campaign_id)
            .await?;
        if outcome == Outcome::Ended("list_exhausted") {
            self.service.start_next_campaign(campaign).await;
        }
        Ok(outcome)
    }

    /// Where the campaign stands against its calling hours. Stored hours that no longer
    /// validate (written by hand) dial nothing and are logged.
    fn calling_hours(&self, c: &Campaign) -> Hours {
        let Some(hours) = c.calling_hours.as_ref() else {
            return Hours::Open;
        };
        match hours.schedule() {
            Ok(s) if s.destination_local() => Hours::PerDestination(s),
            Ok(s) => match s.sleep(
                (self.clock)(),
                CALLING_HOURS_MIN_SLEEP,
                CALLING_HOURS_MAX_SLEEP,
            ) {
                Some(sleep) => Hours::Closed(sleep),
                None => Hours::Open,
            },
            Err(e) => {
                tracing::warn!(campaign_id = %c.id, error = %e, "stored calling hours are invalid; not dialing");
                Hours::Closed(CALLING_HOURS_MAX_SLEEP)
            }
        }
    }

    /// Ends the campaign's execution if it is still as read; otherwise the next tick looks
    /// again.
    async fn end(&self, c: &Campaign, reason: &'static str) -> Result<Outcome, ServiceError> {
        self.end_then(c, reason, Uuid::nil()).await
    }

    /// [`Ticker::end`], recording the start of `next_campaign` (unless nil) with the end.
    async fn end_then(
        &self,
        c: &Campaign,
        reason: &'static str,
        next_campaign: Uuid,
    ) -> Result<Outcome, ServiceError> {
        if self
            .service
            .end_execution_seen_then(c.id, c.status, c.execute, next_campaign)
            .await?
        {
            Ok(Outcome::Ended(reason))
        } else {
            Ok(Outcome::Waiting("state_changed"))
        }
    }

    /// The available agents of the campaign's queue (`None`: no queue), passed to the record
    /// transaction, which holds the queue's capacity against the campaign's dialing calls
    /// there (`store::dials`). Two cheap pre-checks spare a pointless request or transaction
    /// (the record checks both again on what MySQL has): with a cap, a campaign at it does not
    /// ask the queue (`Err("pacing")`); no agent at all is no capacity (`Err("no_capacity")`).
    async fn agents(&self, c: &Campaign) -> Result<Result<Option<i64>, &'static str>, Fail> {
        if c.queue_id.is_nil() {
            return Ok(Ok(None));
        }
        let s = &self.service;
        if let Some(cap) = c.pacing.and_then(|p| p.max_concurrent_calls)
            && (cap <= 0 || s.store.campaigncalls.count_ongoing(c.id).await? >= cap)
        {
            return Ok(Err("pacing"));
        }
        let agents = s.peers.queue.available_agents(c.queue_id).await?;
        if agents == 0 {
            return Ok(Err("no_capacity"));
        }
        Ok(Ok(Some(i64::try_from(agents).unwrap_or(i64::MAX))))
    }

    /// Step 1 of a dial: the campaigncall (`dialing`) and dial row in one transaction, behind
    /// the fence and the campaign's limits as MySQL has them. `Err` with the store's refusal
    /// when nothing was recorded: a stale or late tick, a stopped campaign, a limit (cap, queue
    /// capacity, dial rate), an already recorded (target, destination, try) or a suppressed
    /// destination.
    async fn record(
        &self,
        plan: &Plan,
        dial: DialTry,
        fence: &Fence,
        agents: Option<i64>,
    ) -> Result<Result<Box<Pending>, Recorded>, Fail> {
        let (c, o) = (&plan.campaign, &plan.outplan);
        let s = &self.service;
        let (reference_type, reference_id, source) = match c.kind {
            CampaignType::Call => (
                ReferenceType::Call,
                Uuid::new_v4(),
                Some(
                    o.source
                        .clone()
                        .ok_or(Fail::Permanent("outplan_without_source"))?,
                ),
            ),
            CampaignType::Flow => (ReferenceType::Flow, Uuid::nil(), None),
            CampaignType::Unset => return Err(Fail::Permanent("invalid_type")),
        };
        let activeflow_id = Uuid::new_v4();
        let DialTry {
            target_id,
            destination,
            index,
            try_count,
            callback_id,
        } = dial;
        let recorded = s
            .record_dial(
                NewCampaigncall {
                    campaign: c,
                    outplan: o,
                    target_id,
                    destination: destination.clone(),
                    destination_index: index,
                    try_count,
                    reference_type,
                    reference_id,
                    activeflow_id,
                    callback_id,
                },
                fence.dial(),
                agents,
            )
            .await?;
        match recorded {
            Recorded::Dial(cc) => Ok(Ok(Box::new(Pending {
                cc: *cc,
                target_id,
                index,
                destination,
                source,
                reference_id,
                activeflow_id,
            }))),
            // The campaign's own limits: the tick waits, nothing is counted as refused.
            refusal @ (Recorded::Paced(_) | Recorded::AtCap | Recorded::NoCapacity) => {
                Ok(Err(refusal))
            }
            refusal => {
                let reason = refusal.reason();
                tracing::info!(campaign_id = %c.id, target_id = %target_id, seq = fence.seq, reason, "dial not recorded");
                s.metrics
                    .dial_refused_total
                    .with_label_values(&[reason])
                    .inc();
                Ok(Err(refusal))
            }
        }
    }

    /// Steps 2 and 3 of a recorded dial: claim the target, ask the peer. A death after the
    /// record (step 1) leaves a campaigncall whose call the repair finds never created (two
    /// typed 404s): `fail`, target `idle`. A failed claim or a definite refusal abandons the
    /// dial here (`give_up`; the repair if that fails too). A timeout or transport error is an
    /// unknown outcome ([`Dial::Unknown`]): the campaigncall stays open for its hangup event or
    /// the repair.
    async fn place(&self, c: &Campaign, p: Box<Pending>, fence: &Fence) -> Result<Dial, Fail> {
        let s = &self.service;
        let Pending {
            cc,
            target_id,
            index,
            destination,
            source,
            reference_id,
            activeflow_id,
        } = *p;
        if let Some(late) = self
            .claim(c, cc.id, target_id, index, source.is_some(), fence)
            .await?
        {
            return Ok(late);
        }
        // 3. Ask the peer.
        let asked = match source {
            Some(source) => {
                let call = CallRequest {
                    call_id: reference_id,
                    customer_id: c.customer_id,
                    flow_id: c.flow_id,
                    activeflow_id,
                    source,
                    destination,
                };
                s.peers.call.create_call(&call).await
            }
            None => {
                if let Err(e) = s.campaigncall_progressing(cc.id).await {
                    self.give_up(cc.id).await;
                    return Err(e.into());
                }
                match s
                    .peers
                    .flow
                    .create_activeflow(activeflow_id, c.customer_id, c.flow_id, cc.id)
                    .await
                {
                    Ok(_) => s.peers.flow.execute_activeflow(activeflow_id).await,
                    Err(e) => Err(e),
                }
            }
        };
        self.settle(c, cc.id, asked).await
    }

    /// Step 2 of a recorded dial: claim the target (`progressing` at outdial-manager) and note
    /// it. `Some(Late)` when the tick's deadline passed and nothing was dialed; an error
    /// abandons the dial (nothing was asked).
    async fn claim(
        &self,
        c: &Campaign,
        campaigncall_id: Uuid,
        target_id: Uuid,
        index: i32,
        calls: bool,
        fence: &Fence,
    ) -> Result<Option<Dial>, Fail> {
        let s = &self.service;
        // 2. Claim the target, only when the call request can follow: the claim adds a try at
        // outdial-manager that is never taken back, so not under an open breaker or past the
        // deadline (tests/it/dial_paths.rs `claim_*`).
        if fence.expired() {
            self.give_up(campaigncall_id).await;
            return Ok(Some(Dial::Late));
        }
        let peer = if calls {
            DialPeer::Call
        } else {
            DialPeer::Flow
        };
        if s.peers.gate.is_refusing(peer) {
            tracing::warn!(campaign_id = %c.id, %campaigncall_id, ?peer, "breaker open; dial abandoned before the claim");
            self.give_up(campaigncall_id).await;
            return Err(PeerError::BreakerOpen {
                target: format!("{peer:?}"),
            }
            .into());
        }
        if let Err(e) = s
            .peers
            .outdial
            .set_target_progressing(target_id, index)
            .await
        {
            tracing::warn!(campaign_id = %c.id, %campaigncall_id, error = %e, "target claim failed; dial abandoned");
            self.give_up(campaigncall_id).await;
            return Err(e.into());
        }
        if let Err(e) = s
            .set_dial_step(campaigncall_id, DialStep::TargetClaimed)
            .await
        {
            // Nothing was asked yet: abandon (the repair does it if this fails too).
            self.give_up(campaigncall_id).await;
            return Err(e.into());
        }
        if fence.expired() {
            self.give_up(campaigncall_id).await;
            return Ok(Some(Dial::Late));
        }
        Ok(None)
    }

    /// After step 3: a taken request is noted `requested`, a definite refusal abandons the
    /// dial (and backs the chain off), an unknown outcome leaves the campaigncall open (noted
    /// `unknown`) and holds back only its target: the tick goes on with the others.
    async fn settle(
        &self,
        c: &Campaign,
        campaigncall_id: Uuid,
        asked: Result<(), PeerError>,
    ) -> Result<Dial, Fail> {
        let s = &self.service;
        match asked {
            Ok(()) => {
                // The call exists whatever happens next: a failed note leaves the campaigncall
                // open for its hangup (which marks the dial placed) or the repair, which reads
                // the call; the tick backs off.
                s.set_dial_step(campaigncall_id, DialStep::Requested)
                    .await?;
                Ok(Dial::Placed)
            }
            Err(e) if is_definite(&e) => {
                tracing::warn!(campaign_id = %c.id, %campaigncall_id, error = %e, "dial refused");
                self.give_up(campaigncall_id).await;
                Err(e.into())
            }
            Err(e) => {
                // The call may exist: never dial again to find out. Its hangup event or the
                // repair finishes the campaigncall; the target stays claimed meanwhile, so no
                // other tick offers it. If noting `unknown` fails, the step stays
                // `target_claimed`, which the repair resolves the same way (it asks the peer).
                tracing::warn!(campaign_id = %c.id, %campaigncall_id, error = %e, "dial outcome unknown; campaigncall left open, target held back");
                s.metrics.dial_unknown_total.inc();
                s.set_dial_step(campaigncall_id, DialStep::Unknown).await?;
                Ok(Dial::Unknown)
            }
        }
    }

    /// Ends a target whose every destination with tries left is suppressed or ended by a final
    /// retry rule: `done` at outdial-manager, with the `reason` logged; a suppressed one is
    /// counted for the stats first. Nothing was dialed nor recorded, so if this fails (or the
    /// process dies first) the next tick that is offered the target finds the same and does it
    /// again (the count stays one).
    async fn finish_target(&self, c: &Campaign, target_id: Uuid, reason: &'static str) {
        let s = &self.service;
        // Counted first (once per target, stats.rs); uncounted, the target waits for a tick.
        if reason == "suppressed"
            && let Err(e) = s.mark_suppressed(c.id, target_id).await
        {
            tracing::warn!(campaign_id = %c.id, %target_id, error = %e, "could not count a suppressed target now; the next tick ends it");
            return;
        }
        match s
            .peers
            .outdial
            .set_target_status(target_id, crate::model::TargetStatus::Done)
            .await
        {
            Ok(()) => {
                tracing::info!(campaign_id = %c.id, %target_id, reason, "target done");
            }
            Err(e) => {
                tracing::warn!(campaign_id = %c.id, %target_id, reason, error = %e, "could not end the target now; the next tick does");
            }
        }
    }

    /// Abandons a dial that placed no call; if that fails now, the repair does it later.
    async fn give_up(&self, campaigncall_id: Uuid) {
        if let Err(e) = self.service.abandon_dial(campaigncall_id).await {
            tracing::warn!(%campaigncall_id, error = %e, "could not abandon the dial now; left to the repair");
        }
    }
}

/// What a tick that may dial works with (the load step's result).
struct Plan {
    campaign: Campaign,
    outplan: Outplan,
    /// `destination_local`: the hours each target is checked against, in its callee's zone.
    local_hours: Option<Schedule>,
    targets: Vec<OutdialTarget>,
    /// The campaign's callbacks: due ones' targets lead `targets`, held ones are left out.
    callbacks: DueCallbacks,
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

/// How the dial loop goes on after one target.
enum Flow {
    /// Look at the next target.
    Next,
    /// Dial the same target on its destination after this (suppressed) index.
    Suppressed(i32),
    /// Dial the same target again (the store named a later instant for it, now waited for).
    Again,
    /// Dial no more in this tick; the placements finish and the tick is summarised.
    Stop,
    /// The tick ends now with this outcome (nothing was dialed).
    Done(Outcome),
}

/// The dial step of one tick: the targets it dials one after another, the placements running
/// alongside, and what it saw for the summary.
///
/// A paced tick plans its dial instants on MySQL's times: the recent dial times and MySQL's
/// now are read together, and every MySQL time is moved onto this process' clock by their
/// difference (`offset`), read once per tick; the store's `Paced` instants come converted.
/// The plan only says when to try: whether a dial may be recorded is decided by the store, on
/// MySQL's clock.
struct Dials<'a> {
    ticker: &'a Ticker,
    plan: &'a Plan,
    fence: &'a Fence,
    /// The queue's available agents (`None`: no queue), asked before each dial.
    agents: Option<i64>,
    rate: Option<DialRate>,
    now: DateTime<Utc>,
    /// MySQL's clock less this process' (with a dial rate; zero otherwise).
    offset: chrono::TimeDelta,
    /// The recent dial times the rate applies to, on this process' clock (also kept up to date
    /// with this tick's own).
    recent: Vec<DateTime<Utc>>,
    /// The store's last `Paced` instant for the dial being tried, and how often in a row.
    not_before: Option<DateTime<Utc>>,
    paced: u32,
    span_end: Instant,
    in_flight: Placements<'a>,
    placed: Vec<Result<Dial, Fail>>,
    /// A failure after the first dial: the placements finish first, then it is returned.
    failed: Option<Fail>,
    dialed: u32,
    waiting: &'static str,
    /// With destination_local: the earliest sleep until a skipped target's window opens.
    hours_sleep: Option<Duration>,
    /// A target waits for something other than its local hours.
    other_wait: bool,
    next_dial: Option<DateTime<Utc>>,
    /// The retry rules' view of the batch's targets (their waits, their final destinations).
    retry: RetryView,
}

impl<'a> Dials<'a> {
    /// Reads the recent dial times (and MySQL's now) when the campaign has a dial rate.
    async fn new(
        ticker: &'a Ticker,
        plan: &'a Plan,
        fence: &'a Fence,
        agents: Option<i64>,
    ) -> Result<Self, Fail> {
        let now = Utc::now();
        let rate = plan.campaign.pacing.and_then(|p| p.rate());
        let (offset, recent) = match rate {
            Some(r) => {
                let dials = &ticker.service.store.dials;
                let read = dials
                    .recent_dials(plan.campaign.id, r.window_dials())
                    .await?;
                // Read after the statement returned: MySQL's times land a hair late here,
                // never early.
                let offset = read.now - Utc::now();
                (offset, read.times.iter().map(|t| *t - offset).collect())
            }
            None => (chrono::TimeDelta::zero(), Vec::new()),
        };
        let retry = ticker
            .service
            .retry_view(plan.campaign.id, &plan.outplan, &plan.targets)
            .await?;
        Ok(Dials {
            ticker,
            plan,
            fence,
            agents,
            rate,
            now,
            offset,
            recent,
            not_before: None,
            paced: 0,
            span_end: Instant::now() + PACED_TICK_SPAN,
            in_flight: FuturesUnordered::new(),
            placed: Vec::new(),
            failed: None,
            dialed: 0,
            waiting: "retry_interval",
            hours_sleep: None,
            other_wait: false,
            next_dial: None,
            retry,
        })
    }

    /// Dials the ready targets in turn; `Some` when the tick ends before its summary.
    async fn dial_all(&mut self) -> Result<Option<Outcome>, Fail> {
        // A target comes back with the index of its destination the store found suppressed,
        // to be dialed on its next one (docs/contact-strategy.md).
        let plan = self.plan;
        let mut work: VecDeque<(&OutdialTarget, Option<i32>)> =
            plan.targets.iter().map(|t| (t, None)).collect();
        while let Some((target, after)) = work.pop_front() {
            match self.dial_one(target, after).await? {
                Flow::Next => {}
                Flow::Suppressed(index) => work.push_front((target, Some(index))),
                Flow::Again => work.push_front((target, after)),
                Flow::Stop => break,
                Flow::Done(outcome) => return Ok(Some(outcome)),
            }
        }
        Ok(None)
    }

    /// One target: pick its destination, wait for the caps and the rate, record the dial and
    /// start its placement.
    async fn dial_one(&mut self, target: &OutdialTarget, after: Option<i32>) -> Result<Flow, Fail> {
        let Some((destination, index, try_count)) = self.choose(target, after).await else {
            return Ok(Flow::Next);
        };
        if let Some(flow) = self.pace().await? {
            return Ok(flow);
        }
        let (ticker, plan, fence) = (self.ticker, self.plan, self.fence);
        let dial = DialTry {
            target_id: target.id,
            destination,
            index,
            try_count,
            callback_id: plan.callbacks.due_for(target.id).map(|c| c.id),
        };
        let recording = ticker.record(plan, dial, fence, self.agents);
        let recorded = while_placing(recording, &mut self.in_flight, &mut self.placed).await;
        self.recorded(recorded, index)
    }

    /// The destination to dial for `target` now, or `None` when it waits (retry interval,
    /// no destination left, outside its callee's local hours) or ends suppressed.
    async fn choose(
        &mut self,
        target: &OutdialTarget,
        after: Option<i32>,
    ) -> Option<(Address, i32, i32)> {
        let plan = self.plan;
        if let Some(callback) = plan.callbacks.due_for(target.id) {
            let picked = callback_destination(callback, target, after)?;
            return self.in_local_hours(target.id, picked).await;
        }
        // The wait and the final destinations follow the last outcomes' retry rules.
        if !target_ready(target, self.retry.delay_ms(target.id), self.now) {
            self.other_wait = true;
            return None;
        }
        let finals = self.retry.finals(target.id);
        let Some((destination, index, try_count)) =
            pick_destination_skipping(target, &plan.outplan, after, finals)
        else {
            if after.is_some() || !finals.is_empty() {
                let reason = if after.is_some() {
                    "suppressed"
                } else {
                    "final"
                };
                let ticker = self.ticker;
                ticker
                    .finish_target(&plan.campaign, target.id, reason)
                    .await;
                return None;
            }
            tracing::warn!(campaign_id = %plan.campaign.id, target_id = %target.id, "outdial offered a target without destination tries left");
            self.waiting = "no_destination";
            self.other_wait = true;
            return None;
        };
        self.in_local_hours(target.id, (destination, index, try_count))
            .await
    }

    /// The pick, unless its callee is outside their local hours (then `None`: the target
    /// waits). A callee without a zone of their own is counted for the stats (once per target).
    async fn in_local_hours(
        &mut self,
        target_id: Uuid,
        picked: (Address, i32, i32),
    ) -> Option<(Address, i32, i32)> {
        let (destination, index, try_count) = picked;
        let plan = self.plan;
        if let Some(schedule) = &plan.local_hours
            && schedule.falls_back(&destination)
        {
            let s = &self.ticker.service;
            s.mark_zone_fallback(plan.campaign.id, target_id).await;
        }
        if let Some(schedule) = &plan.local_hours
            && let Some(sleep) = schedule.for_destination(&destination).sleep(
                (self.ticker.clock)(),
                CALLING_HOURS_MIN_SLEEP,
                CALLING_HOURS_MAX_SLEEP,
            )
        {
            // Outside the callee's local hours: leave it for now, dial the others.
            self.hours_sleep = Some(self.hours_sleep.map_or(sleep, |s| s.min(sleep)));
            return None;
        }
        Some((destination, index, try_count))
    }

    /// Before a further dial: the queue's agents again (only with a rate; the caps themselves
    /// are checked by the record), then the wait until the rate allows it (or until the
    /// store's last `Paced` instant). `Some` when the tick dials no more.
    async fn pace(&mut self) -> Result<Option<Flow>, Fail> {
        let (ticker, plan) = (self.ticker, self.plan);
        if self.dialed > 0 && self.paced == 0 {
            // More than one dial per tick only with a rate.
            if self.rate.is_none() {
                return Ok(Some(Flow::Stop));
            }
            if self.agents.is_some() {
                let agents = ticker.agents(&plan.campaign);
                match while_placing(agents, &mut self.in_flight, &mut self.placed).await {
                    Ok(Ok(agents)) => self.agents = agents,
                    Ok(Err(_)) => return Ok(Some(Flow::Stop)),
                    Err(e) => {
                        self.failed = Some(e);
                        return Ok(Some(Flow::Stop));
                    }
                }
            }
        }
        let planned = self.rate.and_then(|r| r.next_allowed(&self.recent));
        if let Some(at) = planned.max(self.not_before) {
            let wait = until(at);
            if self.dialed > 0 && Instant::now() + wait > self.span_end {
                self.next_dial = Some(at);
                return Ok(Some(Flow::Stop));
            }
            if wait > PACED_TICK_SPAN {
                // Scheduled early (the rate changed, or another tick dialed): sleep on.
                let sleep = wait.saturating_sub(PACED_TICK_LEAD);
                return Ok(Some(Flow::Done(Outcome::Sleeping("pacing", sleep))));
            }
            let sleep = tokio::time::sleep(wait);
            while_placing(sleep, &mut self.in_flight, &mut self.placed).await;
        }
        Ok(None)
    }

    /// Acts on what the store made of a dial: a recorded one starts its placement, a paced one
    /// is tried again at the store's instant (while the tick's span allows).
    fn recorded(
        &mut self,
        recorded: Result<Result<Box<Pending>, Recorded>, Fail>,
        index: i32,
    ) -> Result<Flow, Fail> {
        let (ticker, plan, fence) = (self.ticker, self.plan, self.fence);
        let refusal = match recorded {
            // Placements already running finish first (summarise).
            Err(e) if self.dialed > 0 => {
                self.failed = Some(e);
                return Ok(Flow::Stop);
            }
            Err(e) => return Err(e),
            Ok(Ok(pending)) => {
                self.dialed += 1;
                self.not_before = None;
                self.paced = 0;
                if let Some(r) = self.rate {
                    let created = pending
                        .cc
                        .tm_create
                        .map_or_else(Utc::now, |t| t - self.offset);
                    self.recent.push(created);
                    self.next_dial = r.next_allowed(&self.recent);
                }
                // The target claim and the peer request run while the tick waits for its
                // next dial instant, so their latency does not delay the next dial.
                let placement = ticker.place(&plan.campaign, pending, fence).boxed();
                self.in_flight.push(placement);
                return Ok(Flow::Next);
            }
            Ok(Err(refusal)) => refusal,
        };
        Ok(match refusal {
            Recorded::Paced(at) => {
                self.paced += 1;
                let wait = until(at);
                let in_span = self.dialed == 0 || Instant::now() + wait <= self.span_end;
                if self.paced < PACED_ATTEMPTS && wait <= PACED_TICK_SPAN && in_span {
                    // The store's instant is exact (MySQL's clock): wait for it, record again.
                    self.not_before = Some(at);
                    Flow::Again
                } else if self.dialed == 0 {
                    let sleep = wait
                        .saturating_sub(PACED_TICK_LEAD)
                        .max(CALLING_HOURS_MIN_SLEEP);
                    Flow::Done(Outcome::Sleeping("pacing", sleep))
                } else {
                    self.next_dial = Some(at);
                    Flow::Stop
                }
            }
            // A callback holds the target, or took another dial: look at the next target.
            Recorded::CallbackPending | Recorded::CallbackTaken => Flow::Next,
            // The customer's limits (all its campaigns): wait for its instant, or end the span.
            Recorded::CustomerPaced(at) if self.dialed == 0 => Flow::Done(Outcome::Sleeping(
                "customer_limit",
                until(at).max(CALLING_HOURS_MIN_SLEEP),
            )),
            Recorded::Suppressed => Flow::Suppressed(index),
            // Another tick recorded this try (it may still be claiming the target): look
            // at the next target.
            Recorded::TryTaken => {
                self.waiting = "try_taken";
                self.other_wait = true;
                Flow::Next
            }
            _ if self.dialed > 0 => Flow::Stop,
            other => Flow::Done(Outcome::Waiting(other.reason())),
        })
    }

    /// Waits for every placement, then says what the tick did (and counts into `settled` what
    /// became of its dials). A dial whose outcome is unknown counts as made: the tick's chain
    /// keeps its pace ([`Ticker::tick`] backs off after [`UNKNOWN_STREAK_LIMIT`] in a row). A
    /// refused dial or a store error backs the chain off.
    async fn summarise(self, settled: &mut Settled) -> Result<Outcome, Fail> {
        let Dials {
            mut in_flight,
            mut placed,
            failed,
            dialed,
            hours_sleep,
            other_wait,
            waiting,
            ..
        } = self;
        while let Some(r) = in_flight.next().await {
            placed.push(r);
        }
        let mut late = false;
        let mut first_failure = failed;
        for r in placed {
            match r {
                Ok(Dial::Placed) => settled.placed += 1,
                Ok(Dial::Unknown) => settled.unknown += 1,
                Ok(Dial::Late) => late = true,
                Err(e) => first_failure = first_failure.or(Some(e)),
            }
        }
        if let Some(e) = first_failure {
            return Err(e);
        }
        if dialed > 0 {
            // A tick past its deadline placed nothing.
            if settled.placed == 0 && settled.unknown == 0 && late {
                return Ok(Outcome::Waiting("late_tick"));
            }
            return Ok(Outcome::Dialed);
        }
        if let Some(sleep) = hours_sleep
            && !other_wait
        {
            // Every target offered is outside its local hours: sleep until the first opens.
            return Ok(Outcome::Sleeping("outside_calling_hours", sleep));
        }
        Ok(Outcome::Waiting(waiting))
    }
}
