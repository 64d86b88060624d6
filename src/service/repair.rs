//! The campaigncall repair: finds what a crash, a stall, a lost reply or a lost event left
//! open, and resolves it by asking the peer that knows, never by dialing again.
//!
//! A pass (run every few seconds by every process with tick workers, one process at a time
//! under a MySQL named lock, at most `batch` campaigncalls per pass):
//! * an open campaigncall past its rule ([`OverdueRule`]: `dialing` or unconfirmed longer than
//!   the outplan's `dial_timeout` + margin, `progressing` longer than the longest call) is
//!   looked up at its peer by the id chosen before the peer was asked:
//!   - call-manager `GET /v1/calls/<id>`: 404 → the call was never created: `done/fail`,
//!     target `idle`, try free again; `status: hangup` → finished with its `hangup_reason`
//!     (the hangup event was lost); any other status → still up, looked at again later
//!     (30 s doubling to 10 min);
//!   - flow-manager `GET /v1/activeflows/<id>`: 404 → never created (`fail`, as above);
//!     `ended` or deleted → `done/success` (the `activeflow_deleted` event was lost);
//!     running → later;
//!   - whenever the peer knows the call or activeflow, the dial's step becomes `requested`
//!     first: it was placed, so its try must never look abandoned (free) once it is done;
//!   - a peer error leaves it for the next pass;
//!   - a campaigncall still reported up longer than the longest call (`max_call_duration`)
//!     is given up: `done/fail`, target `idle` (a call-manager record stuck "up" must not keep
//!     a campaign from ever ending; the bound is a setting, 2 h by default).
//! * then the outbox rows older than the margin are done (`service::outbox`): target statuses
//!   a finish did not write, targets a late claim left `progressing`, sequence starts;
//! * then campaigns whose state change was cut short are completed: `stopping` with nothing up
//!   becomes `stop`; `run` with `execute = stop` (a crash inside `end_execution`) is stopped as
//!   the tick had decided.
//!
//! Why the margin makes "404" mean "never": a tick asks a peer only before its deadline
//! (`max_tick`), and the request expires in the broker after the RPC timeout; the margin is
//! configured larger than both, so by the time the repair asks, no request for that id can
//! still arrive.

use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use super::{Service, ServiceError, ServiceResult, hangup_result};
use crate::model::{
    Campaign, CampaignStatus, Campaigncall, CampaigncallResult, Execute, ReferenceType, enum_str,
};
use crate::store::{DialStep, Overdue, OverdueRule};

/// Settings of the repair.
#[derive(Debug, Clone, Copy)]
pub struct RepairSettings {
    /// When open campaigncalls are looked at.
    pub rule: OverdueRule,
    /// Most campaigncalls looked at per pass.
    pub batch: u32,
    /// Campaigns whose last change is younger than this are left alone (their change may
    /// still be in progress in another process).
    pub settle: Duration,
}

impl Default for RepairSettings {
    fn default() -> Self {
        RepairSettings {
            rule: OverdueRule {
                margin_ms: 60_000,
                max_call_ms: 7_200_000,
            },
            batch: 100,
            settle: Duration::from_secs(10),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Campaigncalls looked at.
    pub checked: usize,
    /// Campaigncalls finished.
    pub finished: usize,
    /// Campaigns whose state was completed.
    pub campaigns: usize,
    /// Outbox rows settled (target statuses, sequence starts: `service::outbox`).
    pub outbox: usize,
    /// False when another process held the repair lock.
    pub ran: bool,
}

/// Whether the campaigncall was created more than `ms` ago.
fn over(cc: &Campaigncall, ms: i64) -> bool {
    cc.tm_create
        .is_some_and(|t| Utc::now() - t > chrono::Duration::milliseconds(ms))
}

/// What the peer said about an open campaigncall.
enum Found {
    NeverCreated,
    Ended(CampaigncallResult, &'static str),
    StillUp,
}

/// Runs a repair pass every `interval` until `stop` resolves.
pub async fn run_repair(
    service: Service,
    settings: RepairSettings,
    interval: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = &mut stop => return,
        }
        match service.repair_pass(&settings).await {
            Ok(r) if r.finished > 0 || r.campaigns > 0 => {
                tracing::info!(
                    checked = r.checked,
                    finished = r.finished,
                    campaigns = r.campaigns,
                    "repair pass"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "repair pass failed"),
        }
    }
}

impl Service {
    /// One repair pass (module doc), if no other process is running one.
    pub async fn repair_pass(&self, settings: &RepairSettings) -> ServiceResult<RepairReport> {
        let Some(lock) = self.store.try_lock("campaigncall-repair").await? else {
            return Ok(RepairReport::default());
        };
        let result = self.repair_unlocked(settings).await;
        lock.release().await;
        result
    }

    async fn repair_unlocked(&self, settings: &RepairSettings) -> ServiceResult<RepairReport> {
        let mut report = RepairReport {
            ran: true,
            ..RepairReport::default()
        };
        let overdue = self
            .store
            .dials
            .overdue(settings.rule, settings.batch)
            .await?;
        for o in overdue {
            report.checked += 1;
            match self.repair_campaigncall(&o, &settings.rule).await {
                Ok(true) => report.finished += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(campaigncall_id = %o.campaigncall.id, error = %e, "repair failed; next pass");
                }
            }
        }
        report.outbox = self.settle_outbox(settings.rule.margin_ms).await;
        let settled = Utc::now()
            - chrono::Duration::from_std(settings.settle).unwrap_or(chrono::Duration::zero());
        for id in self.store.campaigns.ids_stopping_idle(settled).await? {
            if self.repair_campaign(id, "stopping_stopped").await {
                report.campaigns += 1;
            }
        }
        for id in self.store.campaigns.ids_run_not_executing(settled).await? {
            if self.repair_campaign(id, "run_without_execution").await {
                report.campaigns += 1;
            }
        }
        Ok(report)
    }

    async fn repair_campaign(&self, id: Uuid, repair: &'static str) -> bool {
        match self.stop_campaign(id).await {
            Ok(c) => {
                tracing::info!(campaign_id = %id, repair, status = ?c.status, "campaign state completed");
                self.metrics
                    .campaign_repair_total
                    .with_label_values(&[repair])
                    .inc();
                true
            }
            Err(e) => {
                tracing::warn!(campaign_id = %id, error = %e, "campaign repair failed");
                false
            }
        }
    }

    /// Resolves one open campaigncall; true if it finished it.
    async fn repair_campaigncall(&self, o: &Overdue, rule: &OverdueRule) -> ServiceResult<bool> {
        let cc = &o.campaigncall;
        let found = match self.ask_peer(cc).await {
            Ok(f) => f,
            Err(e) => {
                self.count_repair("peer_error");
                return Err(e);
            }
        };
        let placed = !matches!(found, Found::NeverCreated | Found::Ended(_, "no_reference"));
        if placed && o.step.is_some_and(|step| step != DialStep::Requested) {
            // The peer knows the call: it was placed, whatever step the tick got to note. Noted
            // before finishing, so a done campaigncall never looks like an abandoned try.
            self.store
                .dials
                .set_step(cc.id, DialStep::Requested)
                .await?;
        }
        match found {
            Found::NeverCreated => {
                self.count_repair("never_created");
                tracing::info!(campaigncall_id = %cc.id, step = ?o.step, "peer never created the call; campaigncall failed");
                let done = self.abandon_dial(cc.id).await?;
                self.campaigncall_ended(cc.campaign_id).await?;
                Ok(done)
            }
            Found::Ended(result, found) => {
                self.count_repair(found);
                tracing::info!(campaigncall_id = %cc.id, ?result, "peer reports the call ended; campaigncall finished");
                let done = self
                    .finish_campaigncall_because(cc.id, result, Some(found))
                    .await?
                    .is_some();
                self.campaigncall_ended(cc.campaign_id).await?;
                Ok(done)
            }
            Found::StillUp if over(cc, rule.max_call_ms) => {
                self.count_repair("over_max_duration");
                tracing::warn!(campaigncall_id = %cc.id, "still up past the longest call; given up as failed");
                let done = self
                    .finish_campaigncall_because(
                        cc.id,
                        CampaigncallResult::Fail,
                        Some("over_max_duration"),
                    )
                    .await?
                    .is_some();
                self.campaigncall_ended(cc.campaign_id).await?;
                Ok(done)
            }
            Found::StillUp => {
                self.count_repair("still_up");
                let wait = 30_i64.saturating_mul(1 << o.checks.clamp(0, 5)).min(600);
                self.store
                    .dials
                    .check_later(cc, Utc::now() + chrono::Duration::seconds(wait))
                    .await?;
                Ok(false)
            }
        }
    }

    /// `POST /v1/campaigns/<id>/force_stop` (docs/cli.md): an operator ends a campaign stuck
    /// in `stopping` whose calls are gone, without waiting for the repair's bounds. Its chain is
    /// told to end (`execute = stop`), then every open campaigncall is settled as a repair pass
    /// would, except that the operator's word decides what the peer cannot: a call the peer
    /// never created frees its try, one it reports ended gets its real result, and one it still
    /// reports up, or that it cannot be asked about, is finished as `fail` (their tries stay
    /// used, as for any placed call, so none is dialed twice). Then the campaign
    /// stops. A stopped campaign is returned as it is; a running one is refused (stop it first,
    /// so no tick is dialing while its calls are settled).
    pub async fn force_stop_campaign(&self, id: Uuid) -> ServiceResult<Campaign> {
        let c = self
            .store
            .campaigns
            .get_fresh(id)
            .await?
            .filter(|c| c.tm_delete.is_none())
            .ok_or(ServiceError::NotFound("campaign"))?;
        match c.status {
            CampaignStatus::Stop => return Ok(c),
            CampaignStatus::Run => {
                return Err(ServiceError::Precondition(format!(
                    "campaign is {}; stop it first (force_stop only ends a campaign stuck in \
                     stopping)",
                    enum_str(&c.status)
                )));
            }
            CampaignStatus::Stopping => {}
        }
        self.store.campaigns.set_execute(id, Execute::Stop).await?;
        for cc in self.store.campaigncalls.list_ongoing(id, 1000).await? {
            let found = self.ask_peer(&cc).await;
            match found {
                Ok(Found::NeverCreated) => {
                    self.abandon_dial(cc.id).await?;
                }
                Ok(Found::Ended(result, _)) => {
                    self.finish_campaigncall_because(cc.id, result, Some("force_stop"))
                        .await?;
                }
                Ok(Found::StillUp) | Err(_) => {
                    // Placed, or perhaps placed: its try must not be dialed again.
                    self.mark_placed(cc.id).await?;
                    tracing::warn!(campaign_id = %id, campaigncall_id = %cc.id, peer_error = found.is_err(), "force stop: campaigncall the peer does not report ended finished as fail");
                    self.finish_campaigncall_because(
                        cc.id,
                        CampaigncallResult::Fail,
                        Some("force_stop"),
                    )
                    .await?;
                }
            }
        }
        let stopped = self.stop_campaign(id).await?;
        tracing::info!(campaign_id = %id, status = ?stopped.status, "campaign force-stopped by an operator");
        Ok(stopped)
    }

    async fn ask_peer(&self, cc: &Campaigncall) -> ServiceResult<Found> {
        Ok(match cc.reference_type {
            ReferenceType::Call if !cc.reference_id.is_nil() => {
                match self.peers.call.get_call(cc.reference_id).await? {
                    None => Found::NeverCreated,
                    Some(call) if call.is_hungup() => {
                        Found::Ended(hangup_result(&call.hangup_reason), "hangup_lost")
                    }
                    Some(_) => Found::StillUp,
                }
            }
            ReferenceType::Flow if !cc.activeflow_id.is_nil() => {
                match self.peers.flow.get_activeflow(cc.activeflow_id).await? {
                    None => Found::NeverCreated,
                    Some(af) if af.is_finished() => {
                        Found::Ended(CampaigncallResult::Success, "flow_ended")
                    }
                    Some(_) => Found::StillUp,
                }
            }
            // Nothing to ask about (a legacy row without a reference): nobody can end it.
            _ => Found::Ended(CampaigncallResult::Fail, "no_reference"),
        })
    }

    fn count_repair(&self, found: &'static str) {
        self.metrics
            .campaigncall_repair_total
            .with_label_values(&[found])
            .inc();
    }
}
