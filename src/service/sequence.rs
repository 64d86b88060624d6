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
//!
//! **Durable:** the campaign's end (`execute = stop`) and an outbox row `next_campaign` are
//! written in one transaction (`store::campaigns::stop_execute_if`). The ending tick then starts
//! the next campaign and deletes the row; a death or a failure that may pass (a database error,
//! a peer timeout while the next campaign's resources are checked) leaves the row, and the
//! campaigncall repair tries it again once it is older than the margin, every minute, until it
//! is started or refused by a rule (tests/it/dial_paths.rs `sequence_*`).

use super::{Service, ServiceError};
use crate::model::{Campaign, CampaignStatus, DomainEvent};
use crate::store::{OutboxEntry, OutboxKind};

/// What one attempt at a sequence start came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SequenceStart {
    /// Started, or not to be started (a rule refused it): the outbox row is done.
    Settled,
    /// Failed in a way that may pass (database, peer timeout): try again later.
    Retry,
}

impl Service {
    /// After `ended` ended because its list is exhausted: starts its next campaign from the
    /// outbox row its end wrote (module header), then deletes the row; a failure that may pass
    /// leaves the row for the repair. Never fails the caller.
    pub async fn start_next_campaign(&self, ended: &Campaign) {
        let entries = match self
            .store
            .outbox
            .of_campaign(ended.id, OutboxKind::NextCampaign)
            .await
        {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(campaign_id = %ended.id, error = %e, "next campaign not started now; the repair starts it");
                return;
            }
        };
        for entry in entries {
            self.settle_sequence_entry(&entry, 60).await;
        }
    }

    /// One attempt at the sequence start `entry` asks for; deletes the row when settled, else
    /// postpones it by `retry_secs`. Returns what it came to.
    pub(super) async fn settle_sequence_entry(
        &self,
        entry: &OutboxEntry,
        retry_secs: i64,
    ) -> SequenceStart {
        let outcome = match self.store.campaigns.get_fresh(entry.campaign_id).await {
            Ok(Some(ended)) => self.start_next_of(&ended, entry.subject_id).await,
            Ok(None) => SequenceStart::Settled,
            Err(e) => {
                tracing::warn!(campaign_id = %entry.campaign_id, error = %e, "next campaign not started: campaign unreadable");
                SequenceStart::Retry
            }
        };
        let done = match outcome {
            SequenceStart::Settled => self.store.outbox.delete(entry.id).await,
            SequenceStart::Retry => self.store.outbox.postpone(entry.id, retry_secs).await,
        };
        if let Err(e) = done {
            tracing::warn!(campaign_id = %entry.campaign_id, error = %e, "sequence outbox row not updated; the repair looks again");
        }
        outcome
    }

    /// Starts `next_id` after `ended` when the rules allow (module header).
    async fn start_next_of(&self, ended: &Campaign, next_id: uuid::Uuid) -> SequenceStart {
        let skip = |reason: &str| {
            tracing::info!(campaign_id = %ended.id, next_campaign_id = %next_id, reason, "next campaign not started");
            SequenceStart::Settled
        };
        let retry = |what: &str, e: &dyn std::fmt::Display| {
            tracing::warn!(campaign_id = %ended.id, next_campaign_id = %next_id, error = %e, what, "next campaign not started now; tried again later");
            SequenceStart::Retry
        };
        let since = match self.store.stats.run_started(ended.id).await {
            Ok(t) => t,
            Err(e) => return retry("run start unreadable", &e),
        };
        match self.store.stats.dialed_since(ended.id, since).await {
            Ok(true) => {}
            Ok(false) => return skip("no_dial_in_this_run"),
            Err(e) => return retry("dials unreadable", &e),
        }
        let next = match self.store.campaigns.get_fresh(next_id).await {
            Ok(Some(n)) => n,
            Ok(None) => return skip("next_missing"),
            Err(e) => return retry("next unreadable", &e),
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
            Err(e) if may_pass(&e) => {
                return retry("next could not run", &e);
            }
            Err(e) => {
                tracing::warn!(campaign_id = %ended.id, next_campaign_id = %next_id, error = %e, "next campaign could not run");
                return SequenceStart::Settled;
            }
        };
        tracing::info!(campaign_id = %ended.id, next_campaign_id = %next_id, "next campaign started");
        if let Ok(Some(now_ended)) = self.store.campaigns.get_fresh(ended.id).await {
            self.emit(DomainEvent::CampaignUpdated(now_ended.clone()))
                .await;
        }
        self.emit(DomainEvent::CampaignUpdated(started.clone()))
            .await;
        SequenceStart::Settled
    }
}

/// Whether a failed start may succeed later: any database error, a peer that did not answer.
fn may_pass(e: &ServiceError) -> bool {
    match e {
        ServiceError::Store(_) => true,
        ServiceError::Peer(p) => p.is_transient(),
        _ => false,
    }
}
