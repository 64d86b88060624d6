//! The campaigncall repair: finds what a crash, a stall, a lost reply or a lost event left
//! open, and resolves it by asking the peer that knows, never by dialing again.
//!
//! A pass (run every few seconds by every process with tick workers, one process at a time
//! under a MySQL named lock that is re-checked before each step, at most `batch` campaigncalls
//! per pass, the longest due first):
//! * an open campaigncall past its rule ([`OverdueRule`]: `dialing` or unconfirmed longer than
//!   the outplan's `dial_timeout` + margin, `progressing` longer than the longest call) whose
//!   next check is due is looked up at its peer by the id chosen before the peer was asked
//!   (call-manager `GET /v1/calls/<id>`, flow-manager `GET /v1/activeflows/<id>`):
//!   - ended (`status: hangup`; an activeflow `ended` or deleted) → finished with its result
//!     (the hangup or `activeflow_deleted` event was lost);
//!   - still up → looked at again later;
//!   - the peer's typed 404 → depends on the dial's step: never trusted when the create was
//!     answered (`requested`, or a Go campaigncall), looked at again later; for any other step
//!     "never created" (`done/fail`, target `idle`, try free again) needs a second typed 404
//!     more than the margin after the first (kept in `campaign_dials.tm_not_found`);
//!   - anything else (a bare 500 or 400, a bare 404, a timeout) → looked at again later;
//!   - "later" is `backoff` doubling up to `backoff_max` (30 s to 10 min by default), and ends
//!     at the longest call (`max_call_duration`, 2 h by default): then the campaigncall is given
//!     up (`done/fail`, target `idle`, its try kept as perhaps placed), so no row is asked
//!     forever and no campaign is kept from ending;
//!   - whenever the peer knows the call or activeflow, the dial's step becomes `requested`
//!     first: it was placed, so its try must never look abandoned (free) once it is done.
//! * then the outbox rows older than the margin are done (`service::outbox`): target statuses
//!   a finish did not write, targets a late claim left `progressing`, sequence starts;
//! * then campaigns whose state change was cut short are completed: `stopping` with nothing up
//!   becomes `stop`; `run` with `execute = stop` (a crash inside `end_execution`) is stopped as
//!   the tick had decided.
//!
//! Why a 404 may mean "never": a tick asks a peer only before its deadline (`max_tick`), the
//! request expires in the broker after the RPC timeout, and the margin is larger than both; but
//! a request one of the peer's consumers already took is acted on whenever that consumer
//! resumes, so one 404 proves nothing. Two typed 404s a margin apart bound that window; an
//! answered create has a call, whatever a later read says.
//!
//! A dial still at step `recorded` was never claimed: the tick notes the
//! claim before it asks call-manager, so nothing was placed and outdial-manager counted no
//! try. When such a dial is given up, its try is freed, never kept: outdial-manager offers the
//! target again with that same try, which a kept row would refuse forever (the target never
//! dialed, its campaign never ending).
//!
//! What each dial step leaves open after a death, a stall, a lost reply or a late effect, and
//! what resolves it: docs/architecture.md ("Reliability").

use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use super::{Service, ServiceError, ServiceResult, hangup_result};
use crate::model::{
    Call, Campaign, CampaignStatus, Campaigncall, CampaigncallResult, Execute, ReferenceType,
    enum_str,
};
use crate::store::{DialStep, NamedLock, Overdue, OverdueRule};

/// Open campaigncalls `force_stop` reads at a time (it goes on until none is left).
const FORCE_STOP_PAGE: u32 = 500;

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
    /// First delay before a postponed campaigncall is looked at again; it doubles with every
    /// postponement, up to `backoff_max`.
    pub backoff: Duration,
    /// Longest delay between two looks at a postponed campaigncall.
    pub backoff_max: Duration,
}

impl RepairSettings {
    /// How long to wait before the next look at a campaigncall postponed `checks` times
    /// already: `backoff` doubling, at most `backoff_max`.
    pub fn delay(&self, checks: i32) -> Duration {
        let doublings = u32::try_from(checks.clamp(0, 20)).unwrap_or(0);
        self.backoff
            .saturating_mul(1 << doublings)
            .min(self.backoff_max)
    }
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
            backoff: Duration::from_secs(30),
            backoff_max: Duration::from_secs(600),
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

/// What the peer said about an open campaigncall.
enum Found {
    /// Its typed 404: it has no such call or activeflow now.
    Absent,
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
        match service.store.dials.oldest_overdue(settings.rule).await {
            Ok(age) => service
                .metrics
                .repair_oldest_overdue_seconds
                .set(i64::try_from(age.as_secs()).unwrap_or(i64::MAX)),
            Err(e) => tracing::debug!(error = %e, "cannot read the oldest overdue campaigncall"),
        }
    }
}

impl Service {
    /// One repair pass (module doc), if no other process is running one.
    pub async fn repair_pass(&self, settings: &RepairSettings) -> ServiceResult<RepairReport> {
        let Some(mut lock) = self.store.try_lock("campaigncall-repair").await? else {
            return Ok(RepairReport::default());
        };
        let result = self.repair_locked(settings, &mut lock).await;
        lock.release().await;
        result
    }

    /// The pass under `lock`, re-checked before each campaigncall and before the campaigns:
    /// once its session is gone another process may be repairing the same rows, so the pass
    /// stops where it is (the next pass, in whichever process, goes on).
    async fn repair_locked(
        &self,
        settings: &RepairSettings,
        lock: &mut NamedLock,
    ) -> ServiceResult<RepairReport> {
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
            if !lock.held().await {
                tracing::warn!(checked = report.checked, "repair lock lost; pass stopped");
                return Ok(report);
            }
            report.checked += 1;
            match self.repair_campaigncall(&o, settings).await {
                Ok(true) => report.finished += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(campaigncall_id = %o.campaigncall.id, error = %e, "repair failed; next pass");
                }
            }
        }
        if !lock.held().await {
            tracing::warn!(checked = report.checked, "repair lock lost; pass stopped");
            return Ok(report);
        }
        report.outbox = self.settle_outbox(settings.rule.margin_ms).await;
        self.sweep_callbacks().await;
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
    async fn repair_campaigncall(&self, o: &Overdue, s: &RepairSettings) -> ServiceResult<bool> {
        let cc = &o.campaigncall;
        let found = match self.ask_peer(cc).await {
            Ok(f) => f,
            Err(e) => {
                // A bare 500 or 400, a bare 404, a timeout: nothing is learned.
                self.count_repair("peer_error");
                tracing::warn!(campaigncall_id = %cc.id, error = %e, "peer could not say; looked at later");
                return self.later_or_give_up(o, s, false).await;
            }
        };
        let placed = !matches!(found, Found::Absent | Found::Ended(_, "no_reference"));
        if placed && o.step.is_some_and(|step| step != DialStep::Requested) {
            // The peer knows the call: it was placed, whatever step the tick got to note. Noted
            // before finishing, so a done campaigncall never looks like an abandoned try.
            self.store
                .dials
                .set_step(cc.id, DialStep::Requested)
                .await?;
        }
        match found {
            Found::Absent => self.not_found(o, s).await,
            Found::Ended(result, found) => {
                self.count_repair(found);
                tracing::info!(campaigncall_id = %cc.id, ?result, "peer reports the call ended; campaigncall finished");
                self.finish_repaired(cc, result, found).await
            }
            Found::StillUp => {
                if !o.past_longest_call {
                    self.count_repair("still_up");
                }
                self.later_or_give_up(o, s, false).await
            }
        }
    }

    /// The peer's typed 404. Never trusted for a dial whose create was answered (step
    /// `requested`, or a Go campaigncall): a live call must not be judged never created, so it
    /// is looked at again until the longest call. For any other step, "never created" needs a
    /// second typed 404 more than the margin after the first (a request a stalled consumer
    /// took may still land in between).
    async fn not_found(&self, o: &Overdue, s: &RepairSettings) -> ServiceResult<bool> {
        let cc = &o.campaigncall;
        let answered = matches!(o.step, None | Some(DialStep::Requested));
        if !answered && o.not_found_past_margin {
            self.count_repair("never_created");
            tracing::info!(campaigncall_id = %cc.id, step = ?o.step, "peer never created the call; campaigncall failed");
            let done = self.abandon_dial(cc.id).await?;
            self.campaigncall_ended(cc.campaign_id).await?;
            return Ok(done);
        }
        self.count_repair(if answered {
            "not_found_after_answer"
        } else {
            "not_found_once"
        });
        self.later_or_give_up(o, s, !answered).await
    }

    /// Postpones the campaigncall (`backoff` doubling; at least the margin after a first typed
    /// 404, so the second one is far enough from it), or gives it up once it is older than the
    /// longest call: `done/fail`, target `idle`, its try kept (it may have been placed).
    async fn later_or_give_up(
        &self,
        o: &Overdue,
        s: &RepairSettings,
        not_found: bool,
    ) -> ServiceResult<bool> {
        let cc = &o.campaigncall;
        if o.past_longest_call {
            self.count_repair("over_max_duration");
            tracing::warn!(campaigncall_id = %cc.id, step = ?o.step, "open past the longest call; given up as failed");
            if o.step == Some(DialStep::Recorded) {
                // Never claimed (module doc): keeping its try would refuse that try
                // forever, and with it the target and the campaign's end.
                let done = self
                    .finish_campaigncall_because(
                        cc.id,
                        CampaigncallResult::Fail,
                        Some("over_max_duration"),
                    )
                    .await?
                    .is_some();
                self.store.dials.release_try(cc.id).await?;
                self.campaigncall_ended(cc.campaign_id).await?;
                return Ok(done);
            }
            self.mark_placed(cc.id).await?;
            return self
                .finish_repaired(cc, CampaigncallResult::Fail, "over_max_duration")
                .await;
        }
        let mut wait = s.delay(o.checks);
        if not_found {
            let margin = u64::try_from(s.rule.margin_ms).unwrap_or(0);
            wait = wait.max(Duration::from_millis(margin.saturating_add(1)));
        }
        self.store.dials.check_later(cc, wait, not_found).await?;
        Ok(false)
    }

    /// Finishes a campaigncall the repair resolved, and whatever its campaign waited on.
    async fn finish_repaired(
        &self,
        cc: &Campaigncall,
        result: CampaigncallResult,
        reason: &'static str,
    ) -> ServiceResult<bool> {
        let done = self
            .finish_campaigncall_because(cc.id, result, Some(reason))
            .await?
            .is_some();
        self.campaigncall_ended(cc.campaign_id).await?;
        Ok(done)
    }

    /// `POST /v1/campaigns/<id>/force_stop` (docs/cli.md): an operator ends a campaign stuck
    /// in `stopping` whose calls are gone, without waiting for the repair's bounds. Its chain is
    /// told to end (`execute = stop`), then every open campaigncall, page after page, is
    /// settled as a repair pass would, except that the operator's word decides what the peer
    /// cannot: a call the peer never created frees its try, one it reports ended gets its real
    /// result, and one it cannot be asked about (or a flow still running) is finished as `fail`
    /// (their tries stay used, as for any placed call, so none is dialed twice).
    ///
    /// A call call-manager still reports up is hung up (`POST /v1/calls/<id>/hangup`) and
    /// finished with the result its hangup will carry ([`hung_up_result`]): answered →
    /// `success` (target `done`: the person was reached), not yet answered → `fail` (target
    /// `idle`). Its `call_hangup` says the same, so whichever of the two lands first the other
    /// changes nothing: the final state does not depend on the order. When call-manager does not
    /// answer the hangup (an unknown outcome), the call is finished as `fail`, and a later
    /// `call_hangup` with `normal` finishes it again as `success` (the late-success rule), also
    /// when that event read the campaigncall before this finish.
    ///
    /// Then the campaign stops. A stopped campaign is returned as it is; a running one is
    /// refused (stop it first, so no tick is dialing while its calls are settled).
    ///
    /// A death part-way leaves the campaign `stopping` with `execute = stop` and some calls
    /// settled: running it again settles the rest (each settle is its own compare-and-set). A
    /// death between the hangup and the finish leaves the campaigncall open with its call
    /// ending: its `call_hangup` finishes it, or the next force_stop finds the call ended.
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
        let mut settled = std::collections::HashSet::new();
        loop {
            let open = self
                .store
                .campaigncalls
                .list_ongoing(id, FORCE_STOP_PAGE)
                .await?;
            let fresh: Vec<Campaigncall> = open
                .into_iter()
                .filter(|cc| settled.insert(cc.id))
                .collect();
            if fresh.is_empty() {
                break;
            }
            for cc in &fresh {
                self.force_settle(id, cc).await?;
            }
        }
        let stopped = self.stop_campaign(id).await?;
        tracing::info!(campaign_id = %id, status = ?stopped.status, settled = settled.len(), "campaign force-stopped by an operator");
        Ok(stopped)
    }

    /// Settles one open campaigncall for [`Service::force_stop_campaign`].
    async fn force_settle(&self, id: Uuid, cc: &Campaigncall) -> ServiceResult<()> {
        let found = self.ask_peer(cc).await;
        let step = self.store.dials.step(cc.id).await?;
        match found {
            // The operator's word: a call the peer has no row of frees its try, unless
            // its create was answered (then the 404 is not trusted: handled as still up).
            // A dial never claimed frees it whatever the peer says (module doc).
            Ok(Found::Absent) if step != Some(DialStep::Requested) => {
                self.abandon_dial(cc.id).await?;
            }
            Err(_) if step == Some(DialStep::Recorded) => {
                self.abandon_dial(cc.id).await?;
            }
            Ok(Found::Ended(result, _)) => {
                self.finish_campaigncall_because(cc.id, result, Some("force_stop"))
                    .await?;
            }
            Ok(Found::StillUp) if cc.reference_type == ReferenceType::Call => {
                // Nobody should stay on a line the campaign no longer follows. The call ends
                // as call-manager's reply says, and this finish stores that same result, so
                // its `call_hangup`, landing before or after, changes nothing (docs/cli.md;
                // tests/it/force_stop.rs).
                let result = match self.peers.call.hangup_call(cc.reference_id).await {
                    Ok(call) => hung_up_result(&call),
                    Err(e) => {
                        // Unknown outcome: the operator's word, until a `normal` hangup says
                        // otherwise (a late success finishes it again).
                        tracing::warn!(campaign_id = %id, campaigncall_id = %cc.id, error = %e, "force stop: call-manager did not answer the hangup; finished as fail");
                        CampaigncallResult::Fail
                    }
                };
                self.mark_placed(cc.id).await?;
                self.finish_campaigncall_because(cc.id, result, Some("force_stop"))
                    .await?;
            }
            Ok(Found::StillUp | Found::Absent) | Err(_) => {
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
        Ok(())
    }

    async fn ask_peer(&self, cc: &Campaigncall) -> ServiceResult<Found> {
        Ok(match cc.reference_type {
            ReferenceType::Call if !cc.reference_id.is_nil() => {
                match self.peers.call.get_call(cc.reference_id).await? {
                    None => Found::Absent,
                    Some(call) if call.is_hungup() => {
                        Found::Ended(hangup_result(&call.hangup_reason), "hangup_lost")
                    }
                    Some(_) => Found::StillUp,
                }
            }
            ReferenceType::Flow if !cc.activeflow_id.is_nil() => {
                match self.peers.flow.get_activeflow(cc.activeflow_id).await? {
                    None => Found::Absent,
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

/// The result of a call `force_stop` hung up, from call-manager's reply to the hangup: the
/// result its `call_hangup` will carry. `terminating`: it was answered, and call-manager ends
/// an answered call with `normal` (success: the person was reached); `hangup`: it had ended,
/// with its reason's result; anything else (`canceling`: not answered yet, it ends with
/// `cancel`) is a fail.
fn hung_up_result(reply: &Call) -> CampaigncallResult {
    match reply.status.as_str() {
        "terminating" => CampaigncallResult::Success,
        "hangup" => hangup_result(&reply.hangup_reason),
        _ => CampaigncallResult::Fail,
    }
}
