//! Records for tests that write rows directly.

#![allow(dead_code)]

use campaign_manager::model::{
    Address, Campaign, Campaigncall, CampaigncallResult, CampaigncallStatus, ReferenceType,
};
use uuid::Uuid;

/// A call campaigncall of campaign `c` in `status`, for a new target.
pub fn campaigncall_of(c: &Campaign, status: CampaigncallStatus) -> Campaigncall {
    Campaigncall {
        id: Uuid::new_v4(),
        customer_id: c.customer_id,
        campaign_id: c.id,
        outplan_id: c.outplan_id,
        outdial_id: c.outdial_id,
        outdial_target_id: Uuid::new_v4(),
        queue_id: c.queue_id,
        activeflow_id: Uuid::new_v4(),
        flow_id: c.flow_id,
        reference_type: ReferenceType::Call,
        reference_id: Uuid::new_v4(),
        status,
        result: CampaigncallResult::None,
        source: Some(Address::tel("+15550000000")),
        destination: Some(Address::tel("+15550000001")),
        destination_index: 0,
        try_count: 1,
        tm_create: None,
        tm_update: None,
        tm_delete: None,
    }
}

/// A stopped call campaign of `customer` with no resources, detail and service level set.
pub fn campaign_row(customer: Uuid) -> Campaign {
    use campaign_manager::model::{CampaignStatus, CampaignType, EndHandle, Execute};
    Campaign {
        id: Uuid::new_v4(),
        customer_id: customer,
        kind: CampaignType::Call,
        execute: Execute::Stop,
        name: "spring sale".into(),
        detail: "detail".into(),
        status: CampaignStatus::Stop,
        service_level: 100,
        end_handle: EndHandle::Stop,
        flow_id: Uuid::new_v4(),
        actions: None,
        outplan_id: Uuid::nil(),
        outdial_id: Uuid::nil(),
        queue_id: Uuid::nil(),
        next_campaign_id: Uuid::nil(),
        tm_create: None,
        tm_update: None,
        tm_delete: None,
        calling_hours: None,
        pacing: None,
    }
}
