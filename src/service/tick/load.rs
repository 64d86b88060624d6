//! The load step of a tick: what it needs before it may dial (the campaign, its calling hours,
//! outplan and a batch of available targets: [`Plan`]), the empty list (wait, or end an
//! `end_handle = stop` campaign and start its next one), and the queue's agents.
//!
//! Nothing here records a dial: its writes are the campaign's end, conditional on the state the
//! tick read, and its next campaign's start (sequence.rs). Each reason not to dial is decided
//! where its check is made, as an [`Outcome`] (the tick waits, sleeps or ends) or a permanent
//! [`Fail`] (the chain ends).

use std::ops::ControlFlow;
use std::time::Duration;

use uuid::Uuid;

use super::super::ServiceError;
use super::super::callbacks::DueCallbacks;
use super::fail::Fail;
use super::{CALLING_HOURS_MAX_SLEEP, CALLING_HOURS_MIN_SLEEP, Outcome, Ticker, Trace};
use crate::model::{
    Campaign, CampaignStatus, CampaignType, EndHandle, Execute, OutdialTarget, Outplan, Schedule,
};

/// A campaign against its calling hours.
enum Hours {
    /// No hours, or inside a window: dial.
    Open,
    /// Outside every window: sleep this long.
    Closed(Duration),
    /// `destination_local`: each target is checked in its callee's zone.
    PerDestination(Schedule),
}

impl Ticker {
    /// Loads the campaign, its calling hours, outplan and a batch of available targets; breaks
    /// with the outcome when the campaign cannot dial now.
    pub(super) async fn load(
        &self,
        id: Uuid,
        trace: &mut Trace,
    ) -> Result<ControlFlow<Outcome, Plan>, Fail> {
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
    pub(super) async fn list_empty(
        &self,
        campaign: &Campaign,
        outplan: &Outplan,
    ) -> Result<Outcome, Fail> {
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
    pub(super) async fn agents(
        &self,
        c: &Campaign,
    ) -> Result<Result<Option<i64>, &'static str>, Fail> {
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
}

/// What a tick that may dial works with (the load step's result).
pub(super) struct Plan {
    pub(super) campaign: Campaign,
    pub(super) outplan: Outplan,
    /// `destination_local`: the hours each target is checked against, in its callee's zone.
    pub(super) local_hours: Option<Schedule>,
    pub(super) targets: Vec<OutdialTarget>,
    /// The campaign's callbacks: due ones' targets lead `targets`, held ones are left out.
    pub(super) callbacks: DueCallbacks,
}
