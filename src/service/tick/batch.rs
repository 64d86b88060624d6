//! The per-tick batch of dials ([`Dials`]): the ready targets dialed one after another, each
//! recorded dial's placement (claim and peer request, `dial.rs`) running alongside while the
//! tick waits for its next dial instant, then the summary of what became of them.
//!
//! One struct holds the loop's state because a paced tick dials several targets within
//! [`PACED_TICK_SPAN`], and what it learns on the way (the rate's recent dial times, the
//! store's `Paced` instants, local-hours sleeps, the placements in flight, the first failure)
//! decides both its next dial and its outcome.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt};
use futures::stream::FuturesUnordered;
use uuid::Uuid;

use super::super::callbacks::callback_destination;
use super::super::retry_rules::RetryView;
use super::dial::{Dial, DialTry, Pending};
use super::fail::Fail;
use super::load::Plan;
use super::pick::{pick_destination_skipping, target_ready};
use super::{
    CALLING_HOURS_MAX_SLEEP, CALLING_HOURS_MIN_SLEEP, Fence, Outcome, PACED_ATTEMPTS,
    PACED_TICK_LEAD, PACED_TICK_SPAN, Settled, Ticker, until,
};
use crate::model::{Address, DialRate, OutdialTarget};
use crate::store::Recorded;

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
pub(super) struct Dials<'a> {
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
    pub(super) next_dial: Option<DateTime<Utc>>,
    /// The retry rules' view of the batch's targets (their waits, their final destinations).
    retry: RetryView,
}

impl<'a> Dials<'a> {
    /// Reads the recent dial times (and MySQL's now) when the campaign has a dial rate.
    pub(super) async fn new(
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
    pub(super) async fn dial_all(&mut self) -> Result<Option<Outcome>, Fail> {
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
    /// keeps its pace ([`Ticker::tick`] backs off after
    /// [`UNKNOWN_STREAK_LIMIT`](super::UNKNOWN_STREAK_LIMIT) in a row). A refused dial or a
    /// store error backs the chain off.
    pub(super) async fn summarise(self, settled: &mut Settled) -> Result<Outcome, Fail> {
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
