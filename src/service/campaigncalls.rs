//! Campaigncalls: creating a dial attempt, marking it progressing, finishing it (with the
//! outdial target status that follows), and the read/delete routes.
//!
//! Finishing is a compare-and-set on `status <> done`, so a repeated or late hangup or
//! activeflow event changes nothing twice. The compare-and-set and an outbox row for the
//! target's status are one transaction; only the winner writes the target, and a write that
//! failed or was cut short is done by the repair (`service::outbox`).

use serde_json::Value;
use uuid::Uuid;

use super::{Service, ServiceError, ServiceResult};
use crate::model::{
    Address, Campaign, Campaigncall, CampaigncallResult, CampaigncallStatus, DomainEvent, Outplan,
    ReferenceType, TargetStatus, enum_str,
};
use crate::store::{
    Deletion, DialFence, DialStep, Filters, FreshCampaigncall, OutboxEntry, Page, Recorded,
};

/// The result of a call by its `hangup_reason` (docs/contract.md#events-consumed), or by the
/// reason stored for it (`short_call`: a `normal` hangup below the outplan's `min_talk_ms`).
/// Unknown reasons (the Go service crashed on them) count as `fail`, with a warning.
pub fn hangup_result(reason: &str) -> CampaigncallResult {
    match reason {
        "normal" => CampaigncallResult::Success,
        "failed"
        | "busy"
        | "cancel"
        | "timeout"
        | "noanswer"
        | "dialout"
        | "amd"
        | crate::model::SHORT_CALL => CampaigncallResult::Fail,
        other => {
            tracing::warn!(
                hangup_reason = other,
                "unknown hangup reason; counted as fail"
            );
            CampaigncallResult::Fail
        }
    }
}

/// What a new dial attempt is made of.
pub(super) struct NewCampaigncall<'a> {
    pub campaign: &'a Campaign,
    pub outplan: &'a Outplan,
    pub target_id: Uuid,
    pub destination: Address,
    pub destination_index: i32,
    pub try_count: i32,
    pub reference_type: ReferenceType,
    pub reference_id: Uuid,
    pub activeflow_id: Uuid,
    /// The callback this dial serves (`service::callbacks`), if any.
    pub callback_id: Option<Uuid>,
}

/// Whether the call of a finished campaigncall existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    /// It did (a hangup, an ended activeflow, the peer's word, an operator's): the dial is
    /// marked placed in the finish's transaction (its try is never freed), and the target's
    /// outbox row is deleted once the target is written.
    Now,
    /// It did not (an abandoned dial): the try is freed, and the row is kept: the repair writes
    /// the target again after its margin (a claim that may still land), then deletes it.
    AgainAfterMargin,
}

/// The campaigncall a finish is about.
#[derive(Debug, Clone, Copy)]
enum Finishing<'a> {
    /// Known by its id only.
    Id(Uuid),
    /// Just read from MySQL, with whether its dial is known to be at `requested`.
    Read(&'a Campaigncall, bool),
}

impl Service {
    /// The campaigncall of a call (`reference_id`) with its dial's step, straight from MySQL,
    /// for the `call_hangup` handler.
    pub async fn campaigncall_by_call(
        &self,
        call_id: Uuid,
    ) -> ServiceResult<Option<FreshCampaigncall>> {
        Ok(self
            .store
            .campaigncalls
            .fresh_by_reference_id(call_id)
            .await?)
    }

    /// The campaigncall of an activeflow with its dial's step, straight from MySQL, for the
    /// `activeflow_deleted` handler.
    pub async fn campaigncall_by_activeflow(
        &self,
        activeflow_id: Uuid,
    ) -> ServiceResult<Option<FreshCampaigncall>> {
        Ok(self
            .store
            .campaigncalls
            .fresh_by_activeflow_id(activeflow_id)
            .await?)
    }

    /// Records a `dialing` campaigncall behind the tick's fence (see `store::dials`): nothing
    /// is written when the tick is stale or late, the campaign stopped or is at one of its
    /// limits (cap, queue capacity with `agents` available, dial rate), the try is already
    /// recorded or the destination suppressed; the store's [`Recorded`] says which. The target
    /// is not touched here.
    pub(super) async fn record_dial(
        &self,
        n: NewCampaigncall<'_>,
        fence: DialFence,
        agents: Option<i64>,
    ) -> ServiceResult<Recorded> {
        let cc = Campaigncall {
            id: Uuid::new_v4(),
            customer_id: n.campaign.customer_id,
            campaign_id: n.campaign.id,
            outplan_id: n.outplan.id,
            outdial_id: n.campaign.outdial_id,
            outdial_target_id: n.target_id,
            queue_id: n.campaign.queue_id,
            activeflow_id: n.activeflow_id,
            flow_id: n.campaign.flow_id,
            reference_type: n.reference_type,
            reference_id: n.reference_id,
            status: CampaigncallStatus::Dialing,
            result: CampaigncallResult::None,
            source: n.outplan.source.clone(),
            destination: Some(n.destination),
            destination_index: n.destination_index,
            try_count: n.try_count,
            tm_create: None,
            tm_update: None,
            tm_delete: None,
        };
        let recorded = self
            .store
            .dials
            .record_with(&cc, fence, agents, n.callback_id)
            .await?;
        if let Recorded::Dial(stored) = &recorded {
            self.metrics
                .campaigncall_create_total
                .with_label_values(&[&enum_str(&stored.reference_type)])
                .inc();
            self.emit(DomainEvent::CampaigncallCreated((**stored).clone()))
                .await;
        }
        Ok(recorded)
    }

    /// Notes how far a dial got. A failure is returned: the tick fails the dial rather than
    /// carry on with a step the repair would misread. `requested` (the peer confirmed the call)
    /// is noted soon rather than now, with the other dials' (`DialRecords::mark_requested_soon`):
    /// it is the one step nothing waits on.
    pub(super) async fn set_dial_step(
        &self,
        campaigncall_id: Uuid,
        step: DialStep,
    ) -> ServiceResult<()> {
        if step == DialStep::Requested {
            self.store.dials.mark_requested_soon(campaigncall_id);
            return Ok(());
        }
        self.store.dials.set_step(campaigncall_id, step).await?;
        Ok(())
    }

    /// A dial that placed no call (refused, or never sent): the campaigncall `done`/`fail`, the
    /// target back to `idle`, and its try free again. The claim of the target may still land
    /// after this (a request outdial-manager took but acts on late), so the target's outbox row
    /// is kept: the repair sets the target `idle` again after its margin, unless a later dial
    /// has taken it. A campaigncall someone else finished meanwhile (a hangup: the call was
    /// placed) keeps its try. If the campaigncall cannot be finished now, it stays open and the
    /// repair finishes it later (it asks the peer, which knows no such call). Returns whether
    /// this call finished the campaigncall.
    pub(super) async fn abandon_dial(&self, id: Uuid) -> ServiceResult<bool> {
        let finished = self
            .finish_settling(
                Finishing::Id(id),
                CampaigncallResult::Fail,
                Some("not_placed"),
                Settle::AgainAfterMargin,
            )
            .await?
            .is_some();
        if finished {
            self.store.dials.release_try(id).await?;
        }
        Ok(finished)
    }

    /// `dialing` → `progressing` (flow campaigncalls once their activeflow runs).
    pub(super) async fn campaigncall_progressing(&self, id: Uuid) -> ServiceResult<()> {
        if let Some(u) = self.store.campaigncalls.set_progressing(id).await? {
            self.emit(DomainEvent::CampaigncallUpdated(u.clone())).await;
        }
        Ok(())
    }

    /// The finish (module doc): the compare-and-set on the campaigncall with the target's
    /// status as an outbox row in one transaction, then, by the winner only, the target write.
    /// What a death leaves: before the commit, an open campaigncall (its event is redelivered,
    /// or the repair asks the peer); after it, the outbox row, which the repair's
    /// `settle_outbox` writes once it is older than the margin
    /// (tests/it/dial_paths.rs `finish_*`). A campaigncall the caller has just read is
    /// finished without reading it again (`Campaigncalls::finish_read`).
    async fn finish_settling(
        &self,
        which: Finishing<'_>,
        result: CampaigncallResult,
        reason: Option<&str>,
        settle: Settle,
    ) -> ServiceResult<Option<Campaigncall>> {
        let placed = settle == Settle::Now;
        let calls = &self.store.campaigncalls;
        let finished = match which {
            Finishing::Id(id) => calls.finish_settling(id, result, reason, placed).await?,
            Finishing::Read(read, dial_requested) => {
                calls
                    .finish_read(read, dial_requested, result, reason, placed)
                    .await?
            }
        };
        let Some((done, entry)) = finished else {
            return Ok(None);
        };
        self.emit(DomainEvent::CampaigncallUpdated(done.clone()))
            .await;
        self.metrics
            .campaigncall_done_total
            .with_label_values(&[&enum_str(&result)])
            .inc();
        self.settle_target(&entry, result.target_status(), settle)
            .await;
        Ok(Some(done))
    }

    /// Writes the target status of a finish whose outbox row is `entry`. A failure is logged:
    /// the row stays, and the repair writes it later.
    ///
    /// A `fail` and a late `success` of one campaigncall (a force_stop or give-up racing a
    /// `normal` hangup) each write the target, and the two writes may reach outdial-manager in
    /// either order. So once an `idle` is written, the campaigncall is read again: if it is
    /// `success` by now, `done` is written after it. Either the success was stored before that
    /// read (then this writes `done` last) or after it (then its own `done` is sent after this
    /// `idle` was answered): the target ends `done` in both orders.
    ///
    /// For a settled `idle` that read is folded into the outbox row's delete (one statement:
    /// the row is deleted unless the campaigncall is `success` by then); only when the row was
    /// not deleted is it deleted as usual and the campaigncall read.
    async fn settle_target(&self, entry: &OutboxEntry, status: TargetStatus, settle: Settle) {
        let outbox = &self.store.outbox;
        let written = if status == TargetStatus::Idle && settle == Settle::Now {
            // Written, and its row left for the delete below (`AgainAfterMargin` keeps it).
            if !self
                .write_target(entry, status, Settle::AgainAfterMargin)
                .await
            {
                return;
            }
            match outbox.delete_unless_success(entry).await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(campaigncall_id = %entry.campaigncall_id, error = %e, "outbox row not deleted after its target was set idle; deleted again");
                }
            }
            if let Err(e) = outbox.delete(entry.id).await {
                tracing::warn!(campaigncall_id = %entry.campaigncall_id, error = %e, "target set; its outbox row stays (written again by the repair)");
            }
            true
        } else {
            self.write_target(entry, status, settle).await
        };
        if !written || status != TargetStatus::Idle {
            return;
        }
        match self
            .store
            .campaigncalls
            .get_fresh(entry.campaigncall_id)
            .await
        {
            Ok(Some(cc)) if cc.result == CampaigncallResult::Success => {
                tracing::info!(campaigncall_id = %entry.campaigncall_id, "a success landed while its target was set idle; target set done");
                self.write_target(entry, TargetStatus::Done, Settle::Now)
                    .await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(campaigncall_id = %entry.campaigncall_id, error = %e, "campaigncall unreadable after its target was set idle");
            }
        }
    }

    /// One target write for [`Service::settle_target`]; whether outdial-manager took it.
    async fn write_target(
        &self,
        entry: &OutboxEntry,
        status: TargetStatus,
        settle: Settle,
    ) -> bool {
        match self
            .peers
            .outdial
            .set_target_status(entry.subject_id, status)
            .await
        {
            Ok(()) if settle == Settle::Now => {
                self.store.outbox.delete_soon(entry.id);
                true
            }
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(campaigncall_id = %entry.campaigncall_id, target_id = %entry.subject_id, error = %e, "target status not set now; the repair sets it");
                false
            }
        }
    }

    /// Finishes a campaigncall once: `done` with `result`, then the target goes `done`
    /// (success) or back to `idle`. Returns the campaigncall if this call finished it.
    ///
    /// The compare-and-set on the campaigncall comes first and only its winner writes the
    /// target, so a give-up racing a `normal` hangup never leaves result `success` with the
    /// target `idle`. If outdial-manager fails, the outbox row written with the finish stays and
    /// the repair sets the target.
    pub async fn finish_campaigncall(
        &self,
        id: Uuid,
        result: CampaigncallResult,
    ) -> ServiceResult<Option<Campaigncall>> {
        self.finish_campaigncall_because(id, result, None).await
    }

    /// [`Service::finish_campaigncall`], storing why it ended (the hangup reason,
    /// `flow_ended`, `not_placed`, ...) for the live stats' `by_reason`.
    pub async fn finish_campaigncall_because(
        &self,
        id: Uuid,
        result: CampaigncallResult,
        reason: Option<&str>,
    ) -> ServiceResult<Option<Campaigncall>> {
        let Some(cc) = self.store.campaigncalls.get_fresh(id).await? else {
            return Ok(None);
        };
        self.finish_read_campaigncall(&cc, result, reason).await
    }

    /// [`Service::finish_campaigncall`] for a campaigncall the caller has just read from
    /// MySQL (not from the cache), so it is not read a second time.
    pub async fn finish_read_campaigncall(
        &self,
        cc: &Campaigncall,
        result: CampaigncallResult,
        reason: Option<&str>,
    ) -> ServiceResult<Option<Campaigncall>> {
        self.finish_fresh(cc, false, result, reason).await
    }

    /// [`Service::finish_read_campaigncall`], knowing whether the dial is at `requested`.
    async fn finish_fresh(
        &self,
        cc: &Campaigncall,
        dial_requested: bool,
        result: CampaigncallResult,
        reason: Option<&str>,
    ) -> ServiceResult<Option<Campaigncall>> {
        if cc.status == CampaigncallStatus::Done {
            return Ok(None);
        }
        self.finish_settling(
            Finishing::Read(cc, dial_requested),
            result,
            reason,
            Settle::Now,
        )
        .await
    }

    /// A `call_hangup` / `activeflow_deleted` for `cc` (just read): an open campaigncall is
    /// finished with `result`; one already done changes nothing, except a `success` for one
    /// stored `fail`, which is finished again as `success` (one `campaigncall_updated`, the
    /// target `done`). Returns the campaigncall if this changed it.
    ///
    /// The read may be stale: someone (force_stop, the repair's give-up, an operator) can
    /// finish the campaigncall between it and this finish, whose compare-and-set then loses.
    /// The late-success rule then applies to what they stored (its own compare-and-set on
    /// `done`/`fail` in MySQL), so a `success` ends as `success` whichever finish came first
    /// (tests/it/force_stop.rs).
    pub async fn finish_from_event(
        &self,
        cc: &FreshCampaigncall,
        result: CampaigncallResult,
        reason: &str,
    ) -> ServiceResult<Option<Campaigncall>> {
        let read_open = cc.status != CampaigncallStatus::Done;
        if read_open
            && let Some(done) = self
                .finish_fresh(cc, cc.dial_requested, result, Some(reason))
                .await?
        {
            return Ok(Some(done));
        }
        // Read done with another result than `fail`: nothing to change. Read open but finished
        // meanwhile: its stored result is unknown here, and the update below checks it.
        let stored_fail = read_open || cc.result == CampaigncallResult::Fail;
        if !stored_fail || result != CampaigncallResult::Success {
            return Ok(None);
        }
        // Read open: the row changed since the read, so only what is stored now can decide.
        let calls = &self.store.campaigncalls;
        let refinished = if read_open {
            calls.refinish_success(cc.id, reason).await?
        } else {
            calls
                .refinish_success_read(cc, cc.dial_requested, reason)
                .await?
        };
        let Some((done, entry)) = refinished else {
            return Ok(None);
        };
        tracing::info!(campaigncall_id = %cc.id, reason, "late success for a failed campaigncall; finished again as success");
        self.emit(DomainEvent::CampaigncallUpdated(done.clone()))
            .await;
        self.settle_target(&entry, result.target_status(), Settle::Now)
            .await;
        Ok(Some(done))
    }

    /// A `call_hangup` for `cc` (just read from MySQL): the reason is stored as the retry rules
    /// read it (`short_call` for a `normal` hangup shorter than the outplan's `min_talk_ms`,
    /// `service::retry_rules`), with its result, through [`Service::finish_from_event`]. An
    /// empty reason is stored as `unknown`. An outplan that cannot be read for `min_talk_ms`
    /// is an error: nothing is finished, and the bus delivers the event again.
    pub async fn finish_hangup(
        &self,
        cc: &FreshCampaigncall,
        hangup_reason: &str,
        talk: crate::model::CallTalk,
    ) -> ServiceResult<Option<Campaigncall>> {
        let reason = match hangup_reason {
            "" => "unknown".to_owned(),
            r => self.hangup_reason(cc, r, talk).await?,
        };
        self.finish_from_event(cc, hangup_result(&reason), &reason)
            .await
    }

    /// Notes that the campaigncall's call was placed (its dial step becomes `requested`), so
    /// once done its try never looks abandoned and is not dialed again. Nothing for a
    /// campaigncall without a dial row (the Go service's).
    pub(super) async fn mark_placed(&self, id: Uuid) -> ServiceResult<()> {
        if let Some(step) = self.store.dials.step(id).await?
            && step != DialStep::Requested
        {
            self.store.dials.set_step(id, DialStep::Requested).await?;
        }
        Ok(())
    }

    /// `POST /v1/campaigncalls/<id>/finish` (docs/cli.md): an operator ends a campaigncall
    /// whose call is known to be gone, as a hangup would: the target follows the result, the
    /// event is published, and a `stopping` campaign stops once nothing is up. The try counts
    /// as placed (never dialed again). A campaigncall already done is a 409 (its result stays).
    ///
    /// `fail` first asks the peer whether the call is gone (a call it reports up, or cannot say
    /// about, is a 409: finishing it `fail` would set the target `idle` and offer a person who
    /// may be talking), unless `force`.
    pub async fn operator_finish_campaigncall(
        &self,
        id: Uuid,
        result: CampaigncallResult,
        force: bool,
    ) -> ServiceResult<Campaigncall> {
        if result == CampaigncallResult::None {
            return Err(ServiceError::Invalid(
                "result must be success or fail".into(),
            ));
        }
        let cc = self
            .store
            .campaigncalls
            .get_fresh(id)
            .await?
            .filter(|c| c.tm_delete.is_none())
            .ok_or(ServiceError::NotFound("campaigncall"))?;
        let already_done = || {
            ServiceError::Precondition(format!(
                "campaigncall is already done (result {})",
                enum_str(&cc.result)
            ))
        };
        if cc.status == CampaigncallStatus::Done {
            return Err(already_done());
        }
        if result == CampaigncallResult::Fail && !force {
            self.call_gone(&cc).await?;
        }
        // The operator says the call existed: its try stays used (the finish marks it placed).
        let Some(done) = self
            .finish_campaigncall_because(id, result, Some("operator_finish"))
            .await?
        else {
            // Finished by a hangup between the read and the update.
            return Err(already_done());
        };
        tracing::info!(campaigncall_id = %id, ?result, "campaigncall finished by an operator");
        self.campaigncall_ended(done.campaign_id).await?;
        Ok(done)
    }

    /// Ok if the peer says the campaigncall's call or activeflow is gone (not found, hung up,
    /// ended); a 409 naming what it said otherwise.
    async fn call_gone(&self, cc: &Campaigncall) -> ServiceResult<()> {
        let up = match cc.reference_type {
            ReferenceType::Call if !cc.reference_id.is_nil() => self
                .peers
                .call
                .get_call(cc.reference_id)
                .await
                .map(|c| c.is_some_and(|c| !c.is_hungup())),
            ReferenceType::Flow if !cc.activeflow_id.is_nil() => self
                .peers
                .flow
                .get_activeflow(cc.activeflow_id)
                .await
                .map(|a| a.is_some_and(|a| !a.is_finished())),
            _ => Ok(false),
        };
        match up {
            Ok(false) => Ok(()),
            Ok(true) => Err(ServiceError::Precondition(
                "the call is still up at its peer; finish with force to override".into(),
            )),
            Err(e) => Err(ServiceError::Precondition(format!(
                "the peer could not say whether the call is gone ({e}); finish with force to \
                 override"
            ))),
        }
    }

    /// `GET /v1/campaigncalls/<id>`.
    pub async fn campaigncall(&self, id: Uuid) -> ServiceResult<Campaigncall> {
        match self.store.campaigncalls.get(id).await? {
            Some(c) if c.tm_delete.is_none() => Ok(c),
            _ => Err(ServiceError::NotFound("campaigncall")),
        }
    }

    /// `GET /v1/campaigncalls?...`.
    pub async fn campaigncalls(
        &self,
        filters: &serde_json::Map<String, Value>,
        page: Page,
    ) -> ServiceResult<Vec<Campaigncall>> {
        let f: Filters = self.store.campaigncalls.filters(filters)?;
        Ok(self.store.campaigncalls.list(&f, page).await?)
    }

    /// `DELETE /v1/campaigncalls/<id>`: only a finished one (409 otherwise), checked by the
    /// `UPDATE` itself rather than on a cached copy.
    pub async fn delete_campaigncall(&self, id: Uuid) -> ServiceResult<Campaigncall> {
        let d = match self.store.campaigncalls.delete_if_done(id).await? {
            Deletion::Deleted(d) => d,
            Deletion::Refused(c) => {
                return Err(ServiceError::Precondition(format!(
                    "campaigncall is {}; only a done campaigncall can be deleted",
                    enum_str(&c.status)
                )));
            }
            Deletion::Missing => return Err(ServiceError::NotFound("campaigncall")),
        };
        self.emit(DomainEvent::CampaigncallDeleted(d.clone())).await;
        Ok(d)
    }
}
