//! The campaigncall: one dial attempt of a campaign to one destination of one outdial target.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Address;
use super::json::opt_time;

/// What the campaigncall's `reference_id` points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReferenceType {
    /// Nothing (never produced by this service).
    None,
    /// A call of call-manager.
    Call,
    /// An activeflow of flow-manager (the reference id stays nil).
    Flow,
}

/// Progress of a dial attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaigncallStatus {
    /// Asked for, not yet answered or ended.
    Dialing,
    /// Running (a flow campaigncall once its activeflow exists).
    Progressing,
    /// Ended; see `result`.
    Done,
}

/// Outcome of a finished dial attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaigncallResult {
    /// Not finished.
    #[serde(rename = "")]
    None,
    /// Answered (or the flow completed).
    Success,
    /// Busy, no answer, failed, or the dial request itself failed.
    Fail,
}

/// Status of an outdial target as outdial-manager stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetStatus {
    /// Can be dialed (again).
    Idle,
    /// A dial attempt is in progress.
    Progressing,
    /// Finished for good.
    Done,
}

impl CampaigncallResult {
    /// The outdial target status a finished campaigncall leaves behind (docs/contract.md#outbound-calls).
    pub fn target_status(self) -> TargetStatus {
        match self {
            CampaigncallResult::Success => TargetStatus::Done,
            CampaigncallResult::None | CampaigncallResult::Fail => TargetStatus::Idle,
        }
    }
}

/// A dial attempt (docs/contract.md#json-records).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaigncall {
    /// Campaigncall id.
    pub id: Uuid,
    /// Owner.
    pub customer_id: Uuid,
    /// Campaign that dialed.
    pub campaign_id: Uuid,
    /// Outplan used.
    pub outplan_id: Uuid,
    /// Outdial of the target.
    pub outdial_id: Uuid,
    /// Target dialed.
    pub outdial_target_id: Uuid,
    /// Campaign's queue (nil if none).
    pub queue_id: Uuid,
    /// Activeflow id given to call-manager / flow-manager.
    pub activeflow_id: Uuid,
    /// Campaign's flow.
    pub flow_id: Uuid,
    /// Call or flow.
    pub reference_type: ReferenceType,
    /// Call id for `call`; nil for `flow`.
    pub reference_id: Uuid,
    /// Progress.
    pub status: CampaigncallStatus,
    /// Outcome.
    pub result: CampaigncallResult,
    /// Caller id (from the outplan).
    pub source: Option<Address>,
    /// Destination dialed.
    pub destination: Option<Address>,
    /// Which of the target's destinations (0..4).
    pub destination_index: i32,
    /// 1-based attempt number for that destination.
    pub try_count: i32,
    /// Created at.
    #[serde(with = "opt_time")]
    pub tm_create: Option<DateTime<Utc>>,
    /// Last updated at.
    #[serde(with = "opt_time")]
    pub tm_update: Option<DateTime<Utc>>,
    /// Soft-deleted at.
    #[serde(with = "opt_time")]
    pub tm_delete: Option<DateTime<Utc>>,
}
