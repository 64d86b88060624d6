//! The repair's outbox step: follow-up work a finish or an end recorded (`store::outbox`) and
//! nobody completed, done once its row is older than the repair's margin (by then no process
//! is still doing it, and a claim outdial-manager took before the margin has landed):
//! * `target_status`: the target is set as the finish decided, with the campaign's dial fence
//!   locked and only if no later campaigncall has the target (a target a later dial claimed is
//!   never set back). This is what sets a target back to `idle` when a claim landed after the
//!   dial was given up, and what writes the target after a finish whose write failed or whose
//!   process died;
//! * `next_campaign`: a sequence's next campaign is started (`sequence.rs`).
//!
//! A failure postpones the row (one minute, doubling up to ten); rows are asked oldest due
//! first, and a postponed row is due later, so failing rows do not starve others.

use uuid::Uuid;

use super::Service;
use crate::model::TargetStatus;
use crate::store::{OutboxEntry, OutboxKind, TargetSettle};

/// Most rows done per repair pass.
const BATCH: u32 = 100;

/// The wait before a failed row is tried again: 60 s doubling with each attempt, at most 600 s.
fn backoff_secs(attempts: i32) -> i64 {
    60_i64.saturating_mul(1 << attempts.clamp(0, 4)).min(600)
}

impl Service {
    /// Does the outbox rows older than `margin_ms` (module doc); returns how many were settled.
    pub async fn settle_outbox(&self, margin_ms: i64) -> usize {
        let due = match self.store.outbox.due(margin_ms, BATCH).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "outbox unreadable; next pass");
                return 0;
            }
        };
        let mut settled = 0;
        for entry in due {
            let retry = backoff_secs(entry.attempts);
            let done = match entry.kind {
                OutboxKind::TargetStatus => self.settle_target_entry(&entry, retry).await,
                OutboxKind::NextCampaign => {
                    self.settle_sequence_entry(&entry, retry).await
                        == super::sequence::SequenceStart::Settled
                }
            };
            if done {
                settled += 1;
            }
        }
        settled
    }

    async fn settle_target_entry(&self, entry: &OutboxEntry, retry_secs: i64) -> bool {
        let status = if entry.value == "done" {
            TargetStatus::Done
        } else {
            TargetStatus::Idle
        };
        let outdial = self.peers.outdial.clone();
        let target: Uuid = entry.subject_id;
        let settled = self
            .store
            .outbox
            .settle_target(entry, || async move {
                outdial.set_target_status(target, status).await
            })
            .await;
        match settled {
            Ok(Ok(how)) => {
                let how = match how {
                    TargetSettle::Written => "target_written",
                    TargetSettle::MovedOn => "target_moved_on",
                };
                tracing::info!(campaigncall_id = %entry.campaigncall_id, target_id = %target, ?status, how, "outbox: target settled");
                true
            }
            Ok(Err(e)) => {
                tracing::warn!(campaigncall_id = %entry.campaigncall_id, target_id = %target, error = %e, "outbox: target not set; tried again later");
                if let Err(e) = self.store.outbox.postpone(entry.id, retry_secs).await {
                    tracing::warn!(error = %e, "outbox row not postponed");
                }
                false
            }
            Err(e) => {
                tracing::warn!(campaigncall_id = %entry.campaigncall_id, error = %e, "outbox: target not settled; next pass");
                false
            }
        }
    }
}
