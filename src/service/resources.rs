//! Checks that the resources a campaign points at exist, belong to the same customer and
//! are not deleted (CONTRACT.md §10.3). Nil ids always pass. Each failure says which
//! resource is wrong; a peer that does not answer is reported as such, not as "invalid".

use uuid::Uuid;

use super::{Service, ServiceError, ServiceResult};
use crate::store::ResourceInfo;

impl Service {
    /// Validates `r` for campaign `campaign_id` of `customer_id`.
    pub(super) async fn validate_resources(
        &self,
        campaign_id: Uuid,
        customer_id: Uuid,
        r: ResourceInfo,
    ) -> ServiceResult<()> {
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
                Ok(_) => {}
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
        Ok(())
    }
}
