//! The campaign: what to dial (an outdial), how (an outplan), and its two state fields:
//! `status` (the user-visible lifecycle) and `execute` (whether a tick chain should be alive).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::json::opt_time;
use super::{Action, CallingHours, Pacing};

/// What a dial attempt of the campaign does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignType {
    /// Ask call-manager for a call that runs the campaign's flow.
    Call,
    /// Ask flow-manager to run the campaign's flow directly.
    Flow,
    /// `""`: only found in rows the Go service wrote (it never validated `type`). Readable so
    /// such campaigns can be listed, fixed and deleted; refused on input; a tick stops it.
    #[serde(rename = "")]
    Unset,
}

/// User-visible lifecycle of a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignStatus {
    /// Not dialing, no call in progress.
    Stop,
    /// Asked to stop; waiting for its calls in progress to end.
    Stopping,
    /// Dialing.
    Run,
}

/// Whether the campaign's tick chain should be alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Execute {
    /// A chain of ticks drives the campaign.
    Run,
    /// No chain.
    Stop,
}

/// What the campaign does when its outdial has no dialable target left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndHandle {
    /// Stop the campaign.
    Stop,
    /// Keep waiting for new targets.
    Continue,
    /// `""`: only found in rows the Go service wrote; it behaves as `continue` there (anything
    /// but `stop` continued), and so it does here. Refused on input.
    #[serde(rename = "")]
    Unset,
}

/// A campaign, as stored, cached, returned by RPC and published in events (docs/contract.md#json-records).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    /// Campaign id.
    pub id: Uuid,
    /// Owner.
    pub customer_id: Uuid,
    /// Call or flow.
    #[serde(rename = "type")]
    pub kind: CampaignType,
    /// Whether a tick chain should be alive.
    pub execute: Execute,
    /// Name.
    pub name: String,
    /// Free text.
    pub detail: String,
    /// Lifecycle status.
    pub status: CampaignStatus,
    /// Percentage of available queue agents to dial for.
    pub service_level: i32,
    /// What to do when the list is exhausted.
    pub end_handle: EndHandle,
    /// The flow created for the campaign.
    pub flow_id: Uuid,
    /// Actions as the user gave them (without the auto-appended `queue_join`).
    pub actions: Option<Vec<Action>>,
    /// Dial settings.
    pub outplan_id: Uuid,
    /// Contact list.
    pub outdial_id: Uuid,
    /// Queue whose available agents cap the dial rate (nil: no cap).
    pub queue_id: Uuid,
    /// Stored and returned; the platform never acted on it.
    pub next_campaign_id: Uuid,
    /// Created at.
    #[serde(with = "opt_time")]
    pub tm_create: Option<DateTime<Utc>>,
    /// Last updated at (`null` until the first update).
    #[serde(with = "opt_time")]
    pub tm_update: Option<DateTime<Utc>>,
    /// Soft-deleted at.
    #[serde(with = "opt_time")]
    pub tm_delete: Option<DateTime<Utc>>,
    /// When the campaign may dial (docs/calling_hours.md); omitted when unset, so a campaign
    /// without it has the platform's bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calling_hours: Option<CallingHours>,
    /// How hard it may dial (docs/pacing.md, `model::pacing`); omitted when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pacing: Option<Pacing>,
}

/// The campaign as customers see it in webhooks: without `execute` and `flow_id`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignWebhook<'a> {
    id: Uuid,
    customer_id: Uuid,
    #[serde(rename = "type")]
    kind: CampaignType,
    name: &'a str,
    detail: &'a str,
    status: CampaignStatus,
    service_level: i32,
    end_handle: EndHandle,
    actions: &'a Option<Vec<Action>>,
    outplan_id: Uuid,
    outdial_id: Uuid,
    queue_id: Uuid,
    next_campaign_id: Uuid,
    #[serde(with = "opt_time")]
    tm_create: Option<DateTime<Utc>>,
    #[serde(with = "opt_time")]
    tm_update: Option<DateTime<Utc>>,
    #[serde(with = "opt_time")]
    tm_delete: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    calling_hours: Option<&'a CallingHours>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pacing: Option<&'a Pacing>,
}

impl Campaign {
    /// The customer-facing shape of this campaign.
    pub fn webhook(&self) -> CampaignWebhook<'_> {
        CampaignWebhook {
            id: self.id,
            customer_id: self.customer_id,
            kind: self.kind,
            name: &self.name,
            detail: &self.detail,
            status: self.status,
            service_level: self.service_level,
            end_handle: self.end_handle,
            actions: &self.actions,
            outplan_id: self.outplan_id,
            outdial_id: self.outdial_id,
            queue_id: self.queue_id,
            next_campaign_id: self.next_campaign_id,
            tm_create: self.tm_create,
            tm_update: self.tm_update,
            tm_delete: self.tm_delete,
            calling_hours: self.calling_hours.as_ref(),
            pacing: self.pacing.as_ref(),
        }
    }
}
