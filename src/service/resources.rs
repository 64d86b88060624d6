//! The resources a campaign points at: checks that they exist, belong to the same customer
//! and are not deleted (docs/contract.md#routes; nil ids always pass, each failure says which
//! resource is wrong, a peer that does not answer is reported as such, not as "invalid"),
//! and the outdial's ownership (`campaign_id` on the outdial).
//!
//! Ownership without a compare-and-set: outdial-manager's `PUT /v1/outdials/<id>/campaign_id`
//! overwrites unconditionally, so [`Service::claim_outdial`] writes, then reads the outdial
//! back and refuses (without touching it) when another campaign's id is there; and
//! [`Service::release_outdial`] clears only a claim it has just read as this campaign's, and
//! nothing when the read fails. What is left: two campaigns that both read the outdial as
//! free, then claim and read back in the order A-claim, A-read, B-claim, B-read, both
//! succeed and the outdial says B; A then cannot `run` (running validates ownership again),
//! so at most the owner dials. And a claim that lands between a release's read and its
//! clear is cleared. Closing these needs a conditional claim at outdial-manager.

use uuid::Uuid;

use super::{Service, ServiceError, ServiceResult};
use crate::model::Outdial;
use crate::peers::PeerError;
use crate::store::ResourceInfo;

impl Service {
    /// Validates `r` for campaign `campaign_id` of `customer_id`. Returns the outdial as read
    /// (when `r` names one), so the caller knows whether it is this campaign's already.
    pub(super) async fn validate_resources(
        &self,
        campaign_id: Uuid,
        customer_id: Uuid,
        r: ResourceInfo,
    ) -> ServiceResult<Option<Outdial>> {
        let invalid = |what: &str, why: &str| Err(ServiceError::Invalid(format!("{what} {why}")));
        if !r.outplan_id.is_nil() {
            match self.store.outplans.get(r.outplan_id).await? {
                None => return invalid("outplan_id", "does not exist"),
                Some(o) if o.tm_delete.is_some() => return invalid("outplan_id", "is deleted"),
                Some(o) if o.customer_id != customer_id => {
                    return invalid("outplan_id", "belongs to another customer");
                }
                Some(_) => {}
            }
        }
        let mut outdial = None;
        if !r.outdial_id.is_nil() {
            match self.peers.outdial.get_outdial(r.outdial_id).await {
                Err(e) if e.is_not_found() => return invalid("outdial_id", "does not exist"),
                Err(e) => return Err(e.into()),
                Ok(o) if o.tm_delete.is_some() => return invalid("outdial_id", "is deleted"),
                Ok(o) if o.customer_id != customer_id => {
                    return invalid("outdial_id", "belongs to another customer");
                }
                Ok(o) if !o.campaign_id.is_nil() && o.campaign_id != campaign_id => {
                    return invalid("outdial_id", "is used by another campaign");
                }
                Ok(o) => outdial = Some(o),
            }
        }
        if !r.queue_id.is_nil() {
            match self.peers.queue.get_queue(r.queue_id).await {
                Err(e) if e.is_not_found() => return invalid("queue_id", "does not exist"),
                Err(e) => return Err(e.into()),
                Ok(q) if q.tm_delete.is_some() => return invalid("queue_id", "is deleted"),
                Ok(q) if q.customer_id != customer_id => {
                    return invalid("queue_id", "belongs to another customer");
                }
                Ok(_) => {}
            }
        }
        if !r.next_campaign_id.is_nil() {
            if r.next_campaign_id == campaign_id {
                return invalid("next_campaign_id", "is the campaign itself");
            }
            match self.store.campaigns.get(r.next_campaign_id).await? {
                None => return invalid("next_campaign_id", "does not exist"),
                Some(c) if c.tm_delete.is_some() => {
                    return invalid("next_campaign_id", "is deleted");
                }
                Some(c) if c.customer_id != customer_id => {
                    return invalid("next_campaign_id", "belongs to another customer");
                }
                Some(_) => {}
            }
        }
        Ok(outdial)
    }

    /// Sets `campaign_id` on the outdial, then reads it back. Another campaign's id there
    /// (it claimed in between) is refused and left alone. When the claim's outcome is
    /// unknown (no answer) or the read-back fails, the claim is released if it is ours.
    pub(super) async fn claim_outdial(
        &self,
        outdial_id: Uuid,
        campaign_id: Uuid,
    ) -> ServiceResult<()> {
        if let Err(e) = self
            .peers
            .outdial
            .set_outdial_campaign(outdial_id, campaign_id)
            .await
        {
            // A status is a definite "not done"; no answer may still have been applied.
            if matches!(e, PeerError::Timeout { .. } | PeerError::Transport { .. }) {
                self.release_outdial(outdial_id, campaign_id).await;
            }
            return Err(e.into());
        }
        match self.peers.outdial.get_outdial(outdial_id).await {
            Ok(o) if o.campaign_id == campaign_id => Ok(()),
            Ok(o) => {
                tracing::warn!(%outdial_id, %campaign_id, owner = %o.campaign_id, "outdial claimed by another campaign meanwhile");
                Err(ServiceError::Invalid(
                    "outdial_id is used by another campaign".into(),
                ))
            }
            Err(e) => {
                self.release_outdial(outdial_id, campaign_id).await;
                Err(e.into())
            }
        }
    }

    /// Clears the campaign id on an outdial if, when read just now, it is this campaign's
    /// (best effort, logged). An outdial that cannot be read is left as it is: clearing it
    /// blind could take another campaign's claim.
    pub(super) async fn release_outdial(&self, outdial_id: Uuid, campaign_id: Uuid) {
        if outdial_id.is_nil() {
            return;
        }
        match self.peers.outdial.get_outdial(outdial_id).await {
            Ok(o) if o.campaign_id == campaign_id => {}
            Ok(_) => return,
            Err(e) if e.is_not_found() => return,
            Err(e) => {
                tracing::warn!(%outdial_id, %campaign_id, error = %e, "outdial not released: it could not be read");
                return;
            }
        }
        if let Err(e) = self
            .peers
            .outdial
            .set_outdial_campaign(outdial_id, Uuid::nil())
            .await
        {
            tracing::warn!(%outdial_id, %campaign_id, error = %e, "could not release the outdial");
        }
    }
}
