//! The orphaned-flow reconcile pass (`POST /v1/campaigns/flows/reconcile`, called by the
//! platform's schedule-manager every few hours; docs/contract.md#orphaned-flows).
//!
//! Deleting a campaign deletes its flow at flow-manager only best effort (`delete_campaign`):
//! when that fails the flow stays, counting against the customer's flow quota. A pass looks at
//! the campaigns deleted in the last 7 days, newest first, at most 500, and for each asks
//! flow-manager for the flow: a live one is deleted (cleaned), a deleted one or a typed 404 needs
//! nothing (skipped), any other answer is a failure, left for the next pass. Newest first, so a
//! campaign is examined within a few passes of its deletion even when the window holds more
//! than one pass reads. The pass caps its own duration (90 s) because nothing else bounds it.
//!
//! Nothing here is a multi-step state change of our own: a pass only reads our database and
//! asks flow-manager to delete flows, which is idempotent; a pass cut short (process death,
//! cap, peer outage) leaves everything for the next one. A `DELETE` whose reply we did not wait
//! for may still take effect; the next pass then finds the flow deleted and skips it.
//!
//! The window and the "recent" cut-off compare a campaign's `tm_delete`, written by the clock of
//! the process that deleted it, with this process's clock; a skew of seconds does not matter at
//! these scales (days and hours), as on the platform.

use std::time::{Duration, Instant};

use chrono::Utc;

use super::{Service, ServiceResult};
use crate::model::{Campaign, FlowReconcile};

/// How much one pass reads and how long it may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileLimits {
    /// How far back deleted campaigns are looked at.
    pub window: Duration,
    /// At most this many campaigns per pass.
    pub scan_limit: u32,
    /// The pass stops examining candidates after this long (`partial`).
    pub pass_timeout: Duration,
}

impl Default for ReconcileLimits {
    /// The platform's: 7 days, 500 campaigns, 90 s.
    fn default() -> Self {
        ReconcileLimits {
            window: Duration::from_secs(7 * 24 * 3600),
            scan_limit: 500,
            pass_timeout: Duration::from_secs(90),
        }
    }
}

/// The interval used for `recent_saturated` when the caller gives none: 24 hours.
pub const DEFAULT_RECENT_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// What became of one candidate.
enum Outcome {
    Cleaned,
    Skipped,
    Failed,
}

impl Service {
    /// One pass with the platform's limits; `recent_interval` is the caller's schedule interval
    /// (`None`: 24 hours). Fails only when the deleted campaigns cannot be read.
    pub async fn reconcile_flows(
        &self,
        recent_interval: Option<Duration>,
    ) -> ServiceResult<FlowReconcile> {
        self.reconcile_flows_with(ReconcileLimits::default(), recent_interval)
            .await
    }

    /// One pass with `limits` (see the module doc).
    pub async fn reconcile_flows_with(
        &self,
        limits: ReconcileLimits,
        recent_interval: Option<Duration>,
    ) -> ServiceResult<FlowReconcile> {
        let deadline = Instant::now() + limits.pass_timeout;
        let now = Utc::now();
        let since = now - chrono_span(limits.window);
        let candidates = self
            .store
            .campaigns
            .deleted_since(since, limits.scan_limit)
            .await?;
        let full = |n: usize| n == limits.scan_limit as usize;
        let recent_cutoff = now - chrono_span(recent_interval.unwrap_or(DEFAULT_RECENT_INTERVAL));
        let recent = candidates
            .iter()
            .filter(|c| c.tm_delete.is_some_and(|t| t >= recent_cutoff))
            .count();
        let mut result = FlowReconcile {
            saturated: full(candidates.len()),
            recent_saturated: full(recent),
            ..FlowReconcile::default()
        };
        // A candidate deleted this close to the window's far edge would fall out of the scan
        // if flow-manager stayed down a little longer: worth a warning when it is an orphan.
        let edge = since + chrono_span(limits.window / 10);
        for c in &candidates {
            if Instant::now() >= deadline {
                result.partial = true;
                tracing::warn!(
                    examined = result.cleaned + result.skipped + result.failed,
                    candidates = candidates.len(),
                    "reconcile pass cut short by its time cap"
                );
                break;
            }
            match self.reconcile_flow_of(c, deadline, edge).await {
                Outcome::Cleaned => result.cleaned += 1,
                Outcome::Skipped => result.skipped += 1,
                Outcome::Failed => result.failed += 1,
            }
        }
        tracing::info!(?result, "orphaned-flow reconcile pass");
        Ok(result)
    }

    /// Looks at one deleted campaign's flow and deletes it if it is still live.
    async fn reconcile_flow_of(
        &self,
        c: &Campaign,
        deadline: Instant,
        edge: chrono::DateTime<Utc>,
    ) -> Outcome {
        let Some(deleted_at) = c.tm_delete else {
            // The query selects deleted campaigns only; a live one here is a bug, not an orphan.
            tracing::warn!(campaign_id = %c.id, "reconcile candidate without tm_delete; skipped");
            return Outcome::Skipped;
        };
        if c.flow_id.is_nil() {
            return Outcome::Skipped;
        }
        let peer = &self.peers.flow;
        let failed = |what: &str, error: String| {
            self.metrics.campaign_flow_reconcile_failed_total.inc();
            tracing::warn!(campaign_id = %c.id, flow_id = %c.flow_id, %error, "reconcile: could not {what} the flow");
            Outcome::Failed
        };
        match tokio::time::timeout_at(deadline.into(), peer.get_flow(c.flow_id)).await {
            Err(_) => return failed("read", "the pass's time cap".into()),
            Ok(Err(e)) => return failed("read", e.to_string()),
            Ok(Ok(None)) => return Outcome::Skipped,
            Ok(Ok(Some(f))) if f.tm_delete.is_some() => return Outcome::Skipped,
            Ok(Ok(Some(_))) => {}
        }
        if deleted_at < edge {
            tracing::warn!(campaign_id = %c.id, flow_id = %c.flow_id, tm_delete = %deleted_at,
                           "orphaned flow of a campaign deleted near the reconcile window's far edge");
        }
        match tokio::time::timeout_at(deadline.into(), peer.delete_flow(c.flow_id)).await {
            Err(_) => failed("delete", "the pass's time cap".into()),
            Ok(Err(e)) => failed("delete", e.to_string()),
            Ok(Ok(())) => {
                self.metrics.campaign_flow_reconcile_cleaned_total.inc();
                tracing::info!(campaign_id = %c.id, flow_id = %c.flow_id, "reconcile: deleted an orphaned flow");
                Outcome::Cleaned
            }
        }
    }
}

/// `d` as a chrono span (saturating at its maximum, which no limit here comes near).
fn chrono_span(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
