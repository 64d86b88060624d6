//! Records for tests that write rows directly.

#![allow(dead_code)]

use campaign_manager::model::{
    Address, Campaign, Campaigncall, CampaigncallResult, CampaigncallStatus, Outplan, ReferenceType,
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

/// An outplan of `customer`: a caller id, 30 s dial timeout, 10 min between tries, 3 tries for
/// each destination.
pub fn outplan(customer: Uuid) -> Outplan {
    Outplan {
        id: Uuid::new_v4(),
        customer_id: customer,
        name: "plan".into(),
        detail: String::new(),
        source: Some(Address::tel("+15551230000")),
        dial_timeout: 30_000,
        try_interval: 600_000,
        max_try_count_0: 3,
        max_try_count_1: 3,
        max_try_count_2: 3,
        max_try_count_3: 3,
        max_try_count_4: 3,
        tm_create: None,
        tm_update: None,
        tm_delete: None,
        retry_rules: None,
        min_talk_ms: None,
    }
}

/// A running (`run`/`run`) call campaign of `customer` over `outplan_id`, for an outdial of its
/// own, no queue, stopping at the end of its list.
pub fn running_campaign(customer: Uuid, outplan_id: Uuid) -> Campaign {
    use campaign_manager::model::{CampaignStatus, CampaignType, EndHandle, Execute};
    Campaign {
        id: Uuid::new_v4(),
        customer_id: customer,
        kind: CampaignType::Call,
        execute: Execute::Run,
        name: "campaign".into(),
        detail: String::new(),
        status: CampaignStatus::Run,
        service_level: 100,
        end_handle: EndHandle::Stop,
        flow_id: Uuid::new_v4(),
        actions: None,
        outplan_id,
        outdial_id: Uuid::new_v4(),
        queue_id: Uuid::nil(),
        next_campaign_id: Uuid::nil(),
        tm_create: None,
        tm_update: None,
        tm_delete: None,
        calling_hours: None,
        pacing: None,
    }
}
