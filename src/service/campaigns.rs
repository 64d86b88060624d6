//! Campaigns: create, read, update, delete, and the status machine (docs/contract.md#campaign-lifecycle).
//!
//! Fixed against the Go service: a given id that exists is refused before anything is
//! created; the flow and the outdial claim are undone when a later step fails (no orphan
//! flow, no half-created campaign); `resource_info` claims first and undoes the flow and its
//! claim when a later step fails; `PUT /v1/campaigns/<id>` reads omitted keys as the
//! platform's caller means them ([`CampaignUpdate`]); an outdial is released when the
//! campaign moves off it or is deleted (only if it is still this campaign's); deleting a
//! campaign that is not stopped is a 409, decided by the `UPDATE`'s own condition; `run` on
//! a running campaign makes sure its chain is alive instead of doing nothing.

use serde_json::Value;
use uuid::Uuid;

use super::{Service, ServiceError, ServiceResult};
use crate::model::{
    Action, Campaign, CampaignCreate, CampaignStatus, CampaignType, CampaignUpdate, DomainEvent,
    EndHandle, Execute,
};
use crate::store::{BasicInfo, Deletion, Filters, OutboxEntry, OutboxKind, Page, ResourceInfo};

/// `type` and `end_handle` given in a request must be real values (`""` exists only in
/// legacy rows).
fn check_enums(kind: Option<CampaignType>, end_handle: Option<EndHandle>) -> ServiceResult<()> {
    if kind == Some(CampaignType::Unset) {
        return Err(ServiceError::Invalid("type must be call or flow".into()));
    }
    if end_handle == Some(EndHandle::Unset) {
        return Err(ServiceError::Invalid(
            "end_handle must be stop or continue".into(),
        ));
    }
    Ok(())
}

fn check_service_level(level: i32) -> ServiceResult<()> {
    if level < 0 {
        return Err(ServiceError::Invalid(format!(
            "service_level must not be negative, got {level}"
        )));
    }
    Ok(())
}

/// The actions sent to flow-manager: the user's, plus `queue_join` when there is a queue.
fn flow_actions(actions: &Option<Vec<Action>>, queue_id: Uuid) -> Vec<Action> {
    let mut all = actions.clone().unwrap_or_default();
    if !queue_id.is_nil() {
        all.push(Action::queue_join(queue_id));
    }
    all
}

impl Service {
    /// Hands a domain event to the event sink.
    pub(super) async fn emit(&self, event: DomainEvent) {
        self.events.emit(event).await;
    }

    /// `GET /v1/campaigns/<id>`: a campaign that exists and is not deleted.
    pub async fn campaign(&self, id: Uuid) -> ServiceResult<Campaign> {
        match self.store.campaigns.get(id).await? {
            Some(c) if c.tm_delete.is_none() => Ok(c),
            _ => Err(ServiceError::NotFound("campaign")),
        }
    }

    /// The campaign straight from MySQL, for decisions that must not act on a cached copy.
    async fn campaign_fresh(&self, id: Uuid) -> ServiceResult<Campaign> {
        match self.store.campaigns.get_fresh(id).await? {
            Some(c) if c.tm_delete.is_none() => Ok(c),
            _ => Err(ServiceError::NotFound("campaign")),
        }
    }

    /// `GET /v1/campaigns?...`.
    pub async fn campaigns(
        &self,
        filters: &serde_json::Map<String, Value>,
        page: Page,
    ) -> ServiceResult<Vec<Campaign>> {
        let f: Filters = self.store.campaigns.filters(filters)?;
        Ok(self.store.campaigns.list(&f, page).await?)
    }

    /// `POST /v1/campaigns`.
    pub async fn create_campaign(&self, req: CampaignCreate) -> ServiceResult<Campaign> {
        let kind = check_create(&req)?;
        let id = if req.id.is_nil() {
            Uuid::new_v4()
        } else {
            req.id
        };
        if self.store.campaigns.get_fresh(id).await?.is_some() {
            return Err(ServiceError::AlreadyExists(format!("campaign {id} exists")));
        }
        let resources = ResourceInfo {
            outplan_id: req.outplan_id,
            outdial_id: req.outdial_id,
            queue_id: req.queue_id,
            next_campaign_id: req.next_campaign_id,
        };
        self.validate_resources(id, req.customer_id, resources)
            .await?;

        let flow = self
            .peers
            .flow
            .create_flow(req.customer_id, &flow_actions(&req.actions, req.queue_id))
            .await?;
        let undo_flow = || async {
            if let Err(e) = self.peers.flow.delete_flow(flow.id).await {
                tracing::warn!(flow_id = %flow.id, error = %e, "could not delete the flow of a failed campaign create");
            }
        };
        if !req.outdial_id.is_nil()
            && let Err(e) = self.claim_outdial(req.outdial_id, id).await
        {
            undo_flow().await;
            return Err(e);
        }
        let outdial_id = req.outdial_id;
        let campaign = new_campaign(id, kind, flow.id, req);
        let stored = match self.store.campaigns.create(&campaign).await {
            Ok(c) => c,
            Err(e) => {
                undo_flow().await;
                self.release_outdial(outdial_id, id).await;
                return Err(e.into());
            }
        };
        self.metrics.campaign_create_total.inc();
        self.emit(DomainEvent::CampaignCreated(stored.clone()))
            .await;
        Ok(stored)
    }

    /// `PUT /v1/campaigns/<id>`.
    pub async fn update_campaign(&self, id: Uuid, req: CampaignUpdate) -> ServiceResult<Campaign> {
        check_enums(req.kind, req.end_handle)?;
        self.campaign(id).await?;
        let info = BasicInfo {
            name: req.name,
            detail: req.detail,
            kind: req.kind,
            service_level: req.service_level,
            end_handle: req.end_handle,
        };
        check_service_level(info.service_level)?;
        super::check_text(&info.name, &info.detail)?;
        let u = self
            .store
            .campaigns
            .update_basic_info(id, &info)
            .await?
            .ok_or(ServiceError::NotFound("campaign"))?;
        self.emit(DomainEvent::CampaignUpdated(u.clone())).await;
        Ok(u)
    }

    /// `PUT /v1/campaigns/<id>/service_level`.
    pub async fn update_service_level(&self, id: Uuid, level: i32) -> ServiceResult<Campaign> {
        check_service_level(level)?;
        self.campaign(id).await?;
        let u = self
            .store
            .campaigns
            .update_service_level(id, level)
            .await?
            .ok_or(ServiceError::NotFound("campaign"))?;
        self.emit(DomainEvent::CampaignUpdated(u.clone())).await;
        Ok(u)
    }

    /// `PUT /v1/campaigns/<id>/actions`: flow first, then the row; the flow is put back if
    /// the row cannot be written.
    pub async fn update_actions(
        &self,
        id: Uuid,
        actions: Option<Vec<Action>>,
    ) -> ServiceResult<Campaign> {
        let c = self.campaign_fresh(id).await?;
        self.peers
            .flow
            .update_flow_actions(c.flow_id, &flow_actions(&actions, c.queue_id))
            .await?;
        match self.store.campaigns.update_actions(id, &actions).await {
            Ok(Some(u)) => {
                self.emit(DomainEvent::CampaignUpdated(u.clone())).await;
                Ok(u)
            }
            other => {
                if let Err(e) = self
                    .peers
                    .flow
                    .update_flow_actions(c.flow_id, &flow_actions(&c.actions, c.queue_id))
                    .await
                {
                    tracing::error!(campaign_id = %id, error = %e, "flow actions out of sync with the campaign");
                }
                match other {
                    Err(e) => Err(e.into()),
                    _ => Err(ServiceError::NotFound("campaign")),
                }
            }
        }
    }

    /// `PUT /v1/campaigns/<id>/resource_info`. Steps, each undone when a later one fails:
    /// validate (reads only) → claim the new outdial (undo: release it, only if this request
    /// claimed it) → flow actions with the new queue's `queue_join` (undo: the old actions)
    /// → the row → release the old outdial (best effort, nothing to undo after the row).
    pub async fn update_resource_info(&self, id: Uuid, r: ResourceInfo) -> ServiceResult<Campaign> {
        let c = self.campaign_fresh(id).await?;
        let outdial = self.validate_resources(id, c.customer_id, r).await?;

        let outdial_moves = r.outdial_id != c.outdial_id;
        let claims =
            outdial_moves && !r.outdial_id.is_nil() && outdial.is_none_or(|o| o.campaign_id != id);
        if claims {
            self.claim_outdial(r.outdial_id, id).await?;
        }
        let undo_claim = || async {
            if claims {
                self.release_outdial(r.outdial_id, id).await;
            }
        };

        let queue_moves = r.queue_id != c.queue_id;
        if queue_moves
            && let Err(e) = self
                .peers
                .flow
                .update_flow_actions(c.flow_id, &flow_actions(&c.actions, r.queue_id))
                .await
        {
            undo_claim().await;
            return Err(e.into());
        }
        let undo_flow = || async {
            if queue_moves
                && let Err(e) = self
                    .peers
                    .flow
                    .update_flow_actions(c.flow_id, &flow_actions(&c.actions, c.queue_id))
                    .await
            {
                tracing::error!(campaign_id = %id, error = %e, "flow actions out of sync with the campaign");
            }
        };

        let u = match self.store.campaigns.update_resource_info(id, r).await {
            Ok(Some(u)) => u,
            other => {
                undo_flow().await;
                undo_claim().await;
                return Err(match other {
                    Err(e) => e.into(),
                    _ => ServiceError::NotFound("campaign"),
                });
            }
        };
        if outdial_moves {
            self.release_outdial(c.outdial_id, id).await;
        }
        self.emit(DomainEvent::CampaignUpdated(u.clone())).await;
        Ok(u)
    }

    /// `PUT /v1/campaigns/<id>/next_campaign_id` (validated, unlike the Go service).
    pub async fn update_next_campaign_id(&self, id: Uuid, next: Uuid) -> ServiceResult<Campaign> {
        let c = self.campaign(id).await?;
        let resources = ResourceInfo {
            next_campaign_id: next,
            ..ResourceInfo::default()
        };
        self.validate_resources(id, c.customer_id, resources)
            .await?;
        let u = self
            .store
            .campaigns
            .update_next_campaign_id(id, next)
            .await?
            .ok_or(ServiceError::NotFound("campaign"))?;
        self.emit(DomainEvent::CampaignUpdated(u.clone())).await;
        Ok(u)
    }

    /// `DELETE /v1/campaigns/<id>`: only a stopped campaign (409 `CAMPAIGN_NOT_STOPPED`
    /// otherwise, as the platform answers). The status is checked by the `UPDATE` itself, never
    /// on a cached copy. The campaign's flow is deleted after it, best effort: a failure is
    /// counted by reason and left to the orphaned-flow reconcile pass
    /// (`service::flow_reconcile`).
    pub async fn delete_campaign(&self, id: Uuid) -> ServiceResult<Campaign> {
        let d = match self.store.campaigns.delete_if_stopped(id).await? {
            Deletion::Deleted(d) => d,
            Deletion::Refused(_) => {
                return Err(ServiceError::Refused {
                    reason: "CAMPAIGN_NOT_STOPPED",
                    message: "The campaign must be stopped before it can be deleted.",
                });
            }
            Deletion::Missing => return Err(ServiceError::NotFound("campaign")),
        };
        self.emit(DomainEvent::CampaignDeleted(d.clone())).await;
        self.delete_campaign_callbacks(id).await;
        if let Err(e) = self.peers.flow.delete_flow(d.flow_id).await {
            let reason = if e.is_typed_not_found() {
                "not_found"
            } else {
                "error"
            };
            self.metrics
                .campaign_flow_delete_failed_total
                .with_label_values(&[reason])
                .inc();
            tracing::warn!(campaign_id = %id, flow_id = %d.flow_id, customer_id = %d.customer_id,
                           reason, error = %e, "the deleted campaign's flow was not deleted");
        }
        self.release_outdial(d.outdial_id, id).await;
        Ok(d)
    }

    /// `PUT /v1/campaigns/<id>/status`.
    pub async fn update_status(&self, id: Uuid, status: &str) -> ServiceResult<Campaign> {
        match status {
            "run" => self.run_campaign(id).await,
            "stop" => {
                self.campaign(id).await?;
                self.stop_campaign(id).await
            }
            other => Err(ServiceError::Invalid(format!(
                "unsupported status {other:?}: use run or stop"
            ))),
        }
    }

    async fn run_campaign(&self, id: Uuid) -> ServiceResult<Campaign> {
        let c = self.campaign(id).await?;
        if c.status == CampaignStatus::Run {
            self.ensure_chain(&c).await;
            return Ok(c);
        }
        if c.outplan_id.is_nil() || c.outdial_id.is_nil() {
            return Err(ServiceError::Invalid(
                "a campaign needs an outplan and an outdial to run".into(),
            ));
        }
        let resources = ResourceInfo::of(&c);
        self.validate_resources(id, c.customer_id, resources)
            .await?;
        // Before the transition, so no dial of this run predates it (sequences, sequence.rs).
        if let Err(e) = self.store.stats.record_run(id).await {
            tracing::warn!(campaign_id = %id, error = %e, "run start not recorded");
        }
        let changed = self
            .store
            .campaigns
            .transition(
                id,
                &[CampaignStatus::Stop, CampaignStatus::Stopping],
                CampaignStatus::Run,
                Some(Execute::Run),
            )
            .await?;
        let u = self.campaign(id).await?;
        if changed {
            self.metrics.campaign_status_run_total.inc();
            self.emit(DomainEvent::CampaignStatusRun(u.clone())).await;
        }
        self.ensure_chain(&u).await;
        Ok(u)
    }

    /// Makes sure a running campaign has a live chain (idempotent). A failure here is not
    /// the caller's problem: `execute = run` is in MySQL, so the reconciler seeds the chain.
    async fn ensure_chain(&self, c: &Campaign) {
        if c.execute != Execute::Run {
            return;
        }
        if let Err(e) = self.chains.start_chain(c.id, self.delays.first).await {
            tracing::warn!(campaign_id = %c.id, error = %e, "chain not started now; the reconciler will seed it");
        }
    }

    /// `POST /v1/campaigns/<id>/execute`: make sure a running campaign's chain is alive.
    /// Never starts a second loop; a campaign that is not running is left alone.
    pub async fn execute(&self, id: Uuid) -> ServiceResult<()> {
        let Some(c) = self.store.campaigns.get_fresh(id).await? else {
            return Ok(());
        };
        if c.tm_delete.is_some() || c.status != CampaignStatus::Run {
            return Ok(());
        }
        // `execute = run` only while the row still says `run` (the guard is in the UPDATE).
        if c.execute != Execute::Run
            && !self
                .store
                .campaigns
                .transition(
                    id,
                    &[CampaignStatus::Run],
                    CampaignStatus::Run,
                    Some(Execute::Run),
                )
                .await?
        {
            return Ok(());
        }
        if let Err(e) = self.chains.start_chain(id, std::time::Duration::ZERO).await {
            tracing::warn!(campaign_id = %id, error = %e, "chain not started now; the reconciler will seed it");
        }
        Ok(())
    }

    /// Whether the campaign can stop now: its chain is off and no call is in progress.
    async fn is_stoppable(&self, c: &Campaign) -> ServiceResult<bool> {
        Ok(c.execute == Execute::Stop && !self.store.campaigncalls.has_ongoing(c.id).await?)
    }

    /// `stop` request, end of a chain, or last call ended: stop now when stoppable, else
    /// `stopping` (the chain's next tick or the last hangup finishes the job).
    pub async fn stop_campaign(&self, id: Uuid) -> ServiceResult<Campaign> {
        let c = self
            .store
            .campaigns
            .get_fresh(id)
            .await?
            .ok_or(ServiceError::NotFound("campaign"))?;
        if c.status == CampaignStatus::Stop {
            return Ok(c);
        }
        // Each UPDATE re-checks in SQL the state this decision was made on, so a `run` or a
        // dial landing between the read and the write is never undone
        // (tests/it/dial_paths.rs `stop_*`).
        if self.is_stoppable(&c).await? {
            if self.store.campaigns.stop_if_stoppable(id).await? {
                let u = self
                    .store
                    .campaigns
                    .get_fresh(id)
                    .await?
                    .ok_or(ServiceError::NotFound("campaign"))?;
                self.metrics.campaign_status_stop_total.inc();
                self.emit(DomainEvent::CampaignStatusStop(u.clone())).await;
                return Ok(u);
            }
        } else if self.store.campaigns.stopping_if(id, c.execute).await? {
            let u = self
                .store
                .campaigns
                .get_fresh(id)
                .await?
                .ok_or(ServiceError::NotFound("campaign"))?;
            self.emit(DomainEvent::CampaignStatusStopping(u.clone()))
                .await;
            return Ok(u);
        }
        self.store
            .campaigns
            .get_fresh(id)
            .await?
            .ok_or(ServiceError::NotFound("campaign"))
    }

    /// Called when a chain ends: `execute = stop`, then stop or stopping.
    pub async fn end_execution(&self, id: Uuid) -> ServiceResult<()> {
        self.store.campaigns.set_execute(id, Execute::Stop).await?;
        match self.stop_campaign(id).await {
            Ok(_) | Err(ServiceError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Like [`Service::end_execution`], but only if the campaign is still in the state the
    /// caller (a tick) read: a `run` that landed after the read wins. Returns whether the
    /// execution was ended.
    pub async fn end_execution_seen(
        &self,
        id: Uuid,
        seen_status: CampaignStatus,
        seen_execute: Execute,
    ) -> ServiceResult<bool> {
        self.end_execution_seen_then(id, seen_status, seen_execute, Uuid::nil())
            .await
    }

    /// [`Service::end_execution_seen`] for a campaign whose list is exhausted: with a
    /// `next_campaign` (not nil), the end records its start durably in the same transaction
    /// (`sequence.rs`).
    pub async fn end_execution_seen_then(
        &self,
        id: Uuid,
        seen_status: CampaignStatus,
        seen_execute: Execute,
        next_campaign: Uuid,
    ) -> ServiceResult<bool> {
        let then = (!next_campaign.is_nil()).then(|| {
            OutboxEntry::new(OutboxKind::NextCampaign, id, Uuid::nil(), next_campaign, "")
        });
        if seen_execute == Execute::Run
            && !self
                .store
                .campaigns
                .stop_execute_if(id, seen_status, seen_execute, then.as_ref())
                .await?
        {
            return Ok(false);
        }
        if seen_execute == Execute::Stop {
            // Already stopped executing: only the status may still need to follow, and
            // `stop_campaign` moves it only from `run`/`stopping` while execute is stop.
            let fresh = self.store.campaigns.get_fresh(id).await?;
            if fresh.is_none_or(|c| c.execute != Execute::Stop || c.status != seen_status) {
                return Ok(false);
            }
        }
        match self.stop_campaign(id).await {
            Ok(_) | Err(ServiceError::NotFound(_)) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// After a campaigncall ended: a `stopping` campaign stops once it is stoppable. The
    /// whole campaign is read only when it is `stopping` (rarely: once per campaign end).
    pub async fn campaigncall_ended(&self, campaign_id: Uuid) -> ServiceResult<()> {
        if !self.store.campaigns.is_stopping(campaign_id).await? {
            return Ok(());
        }
        let Some(c) = self.store.campaigns.get_fresh(campaign_id).await? else {
            return Ok(());
        };
        if c.status == CampaignStatus::Stopping && self.is_stoppable(&c).await? {
            self.stop_campaign(campaign_id).await?;
        }
        Ok(())
    }
}

/// Checks a create request's fields (400 naming the field); returns its campaign type.
fn check_create(req: &CampaignCreate) -> ServiceResult<CampaignType> {
    let kind = req
        .kind
        .ok_or_else(|| ServiceError::Invalid("type is required (call or flow)".into()))?;
    check_enums(Some(kind), req.end_handle)?;
    check_service_level(req.service_level)?;
    super::check_text(&req.name, &req.detail)?;
    super::calling_hours::check(&req.calling_hours)?;
    super::pacing::check(&req.pacing)?;
    if req.customer_id.is_nil() {
        return Err(ServiceError::Invalid("customer_id is required".into()));
    }
    Ok(kind)
}

/// The campaign a create request stores: stopped, with the flow made for it.
fn new_campaign(id: Uuid, kind: CampaignType, flow_id: Uuid, req: CampaignCreate) -> Campaign {
    Campaign {
        id,
        customer_id: req.customer_id,
        kind,
        execute: Execute::Stop,
        name: req.name,
        detail: req.detail,
        status: CampaignStatus::Stop,
        service_level: req.service_level,
        end_handle: req.end_handle.unwrap_or(EndHandle::Stop),
        flow_id,
        actions: req.actions,
        outplan_id: req.outplan_id,
        outdial_id: req.outdial_id,
        queue_id: req.queue_id,
        next_campaign_id: req.next_campaign_id,
        tm_create: None,
        tm_update: None,
        tm_delete: None,
        calling_hours: req.calling_hours,
        pacing: req.pacing,
    }
}
