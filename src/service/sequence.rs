//! Campaign sequences (issue 10, docs/stats-and-sequences.md): a campaign that ends by itself because its
//! list is exhausted (`end_handle` `stop`) puts its `next_campaign_id` campaign to `run`,
//! through the ordinary status change (resources validated, `campaign_status_run` published),
//! then publishes `campaign_updated` for both.
//!
//! **The rule that stops cycles:** a campaign starts its next one only if it recorded at least
//! one campaigncall (a dial) since it was last put to `run` (`campaign_runs.tm_run`, written by
//! the run path; a campaign run before that table existed counts any campaigncall). Why a
//! cycle ends: every sequence start needs a fresh dial by the campaign that starts, and dials
//! are finite (each target has a bounded number of tries, and an exhausted list offers none).
//! A→B→A with both lists empty: A ends without dialing and starts nothing. A (3 targets) →
//! B (empty) → A: A dials, ends, starts B; B ends without dialing and does not restart A.
//!
//! Not started (logged at info with the reason): no dial in this run, next campaign missing or deleted, of another customer, or not `stop`.

use super::Service;
use crate::model::{Campaign, CampaignStatus, DomainEvent};

impl Service {
    /// After `ended` ended because its list is exhausted: starts its next campaign when the
    /// rules allow (module header). Never fails the caller; every refusal is logged.
    pub async fn start_next_campaign(&self, ended: &Campaign) {
        let next_id = ended.next_campaign_id;
        if next_id.is_nil() {
            return;
        }
        let skip = |reason: &str| {
            tracing::info!(campaign_id = %ended.id, next_campaign_id = %next_id, reason, "next campaign not started");
        };
        let since = match self.store.stats.run_started(ended.id).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(campaign_id = %ended.id, error = %e, "next campaign not started: run start unreadable");
                return;
            }
        };
        match self.store.stats.dialed_since(ended.id, since).await {
            Ok(true) => {}
            Ok(false) => return skip("no_dial_in_this_run"),
            Err(e) => {
                tracing::warn!(campaign_id = %ended.id, error = %e, "next campaign not started: dials unreadable");
                return;
            }
        }
        let next = match self.store.campaigns.get_fresh(next_id).await {
            Ok(Some(n)) => n,
            Ok(None) => return skip("next_missing"),
            Err(e) => {
                tracing::warn!(campaign_id = %ended.id, error = %e, "next campaign not started: unreadable");
                return;
            }
        };
        if next.tm_delete.is_some() {
            return skip("next_deleted");
        }
        if next.customer_id != ended.customer_id {
            return skip("next_other_customer");
        }
        if next.status != CampaignStatus::Stop {
            return skip("next_not_stopped");
        }
        let started = match self.update_status(next_id, "run").await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(campaign_id = %ended.id, next_campaign_id = %next_id, error = %e, "next campaign could not run");
                return;
            }
        };
        tracing::info!(campaign_id = %ended.id, next_campaign_id = %next_id, "next campaign started");
        if let Ok(Some(now_ended)) = self.store.campaigns.get_fresh(ended.id).await {
            self.emit(DomainEvent::CampaignUpdated(now_ended.clone()))
                .await;
        }
        self.emit(DomainEvent::CampaignUpdated(started.clone()))
            .await;
    }
}
