//! One recorded dial, step by step: the write-ahead story of a dial.
//!
//! A dial is three steps, each of which may be the last a dying process makes: `record` (the
//! campaigncall and its dial row, behind the tick's [`Fence`]), `claim` (the target, noted
//! `target_claimed`), then `place` asks the peer and `settle` notes what it answered
//! (`requested`, `unknown`, or the dial abandoned by `give_up`). Each step's doc says what the
//! state it leaves means and who repairs it; they live together because their order, and what
//! each leaves behind, is what the repair (`service::repair`) relies on.
//! `finish_target` is here too: it ends a target without a dial (all its destinations
//! suppressed or final), the tick's one write to a target outside these steps.

use uuid::Uuid;

use super::super::campaigncalls::NewCampaigncall;
use super::fail::Fail;
use super::load::Plan;
use super::{Fence, Ticker};
use crate::model::{Address, Campaign, CampaignType, ReferenceType};
use crate::peers::{CallRequest, DialPeer, PeerError};
use crate::store::{DialStep, Recorded};

/// One dial to record: the target, and the destination and try chosen for it.
pub(super) struct DialTry {
    pub(super) target_id: Uuid,
    pub(super) destination: Address,
    pub(super) index: i32,
    pub(super) try_count: i32,
    /// The due callback this dial is for (it takes the callback in its transaction).
    pub(super) callback_id: Option<Uuid>,
}

/// A recorded dial whose target is not claimed nor its peer asked yet.
pub(super) struct Pending {
    pub(super) cc: crate::model::Campaigncall,
    target_id: Uuid,
    index: i32,
    destination: Address,
    source: Option<Address>,
    reference_id: Uuid,
    activeflow_id: Uuid,
}

/// What became of placing a recorded dial (steps 2 and 3).
pub(super) enum Dial {
    /// The peer took the request.
    Placed,
    /// The peer may or may not have taken the request (a timeout, a transport error, a 5xx):
    /// the campaigncall stays open at step `unknown` and the target claimed, for its hangup
    /// or the repair. Only this target is held back.
    Unknown,
    /// Nothing was dialed: the tick passed its deadline.
    Late,
}

/// Whether a peer failure says for sure that nothing was created ([`PeerError::is_refusal`]:
/// a 4xx, or never sent). Timeouts, transport errors, unreadable replies and 5xx leave the
/// outcome unknown.
fn is_definite(e: &PeerError) -> bool {
    e.is_refusal()
}

impl Ticker {
    /// Step 1 of a dial: the campaigncall (`dialing`) and dial row in one transaction, behind
    /// the fence and the campaign's limits as MySQL has them. `Err` with the store's refusal
    /// when nothing was recorded: a stale or late tick, a stopped campaign, a limit (cap, queue
    /// capacity, dial rate), an already recorded (target, destination, try) or a suppressed
    /// destination.
    pub(super) async fn record(
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
    pub(super) async fn place(
        &self,
        c: &Campaign,
        p: Box<Pending>,
        fence: &Fence,
    ) -> Result<Dial, Fail> {
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
                // The call exists whatever happens next. The note is written a moment later
                // with other dials' (`DialRecords::mark_requested_soon`); one that never lands
                // leaves the campaigncall open for its hangup (which marks the dial placed) or
                // the repair, which reads the call.
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
    pub(super) async fn finish_target(&self, c: &Campaign, target_id: Uuid, reason: &'static str) {
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
