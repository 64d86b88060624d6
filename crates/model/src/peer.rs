//! Records of the platform's other services, as far as campaign-manager reads them
//! (docs/contract.md#outbound-calls). Unknown fields are ignored and missing ones default, because these
//! shapes belong to other services and grow without telling us.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Address;
use super::json::{opt_time, uuid_or_nil};

/// An outdial (contact list) of outdial-manager.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Outdial {
    /// Outdial id.
    #[serde(deserialize_with = "uuid_or_nil")]
    pub id: Uuid,
    /// Owner.
    #[serde(deserialize_with = "uuid_or_nil")]
    pub customer_id: Uuid,
    /// The campaign that owns the list (nil: free).
    #[serde(deserialize_with = "uuid_or_nil")]
    pub campaign_id: Uuid,
    /// Name.
    pub name: String,
    /// Free text.
    pub detail: String,
    /// Soft-deleted at.
    #[serde(with = "opt_time")]
    pub tm_delete: Option<DateTime<Utc>>,
}

/// A target of an outdial: up to five destinations with a try count each.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutdialTarget {
    /// Target id.
    #[serde(deserialize_with = "uuid_or_nil")]
    pub id: Uuid,
    /// Destination 0.
    pub destination_0: Option<Address>,
    /// Destination 1.
    pub destination_1: Option<Address>,
    /// Destination 2.
    pub destination_2: Option<Address>,
    /// Destination 3.
    pub destination_3: Option<Address>,
    /// Destination 4.
    pub destination_4: Option<Address>,
    /// Attempts made on destination 0.
    pub try_count_0: i32,
    /// Attempts made on destination 1.
    pub try_count_1: i32,
    /// Attempts made on destination 2.
    pub try_count_2: i32,
    /// Attempts made on destination 3.
    pub try_count_3: i32,
    /// Attempts made on destination 4.
    pub try_count_4: i32,
    /// Created at.
    #[serde(with = "opt_time")]
    pub tm_create: Option<DateTime<Utc>>,
    /// Last updated at (set by every attempt).
    #[serde(with = "opt_time")]
    pub tm_update: Option<DateTime<Utc>>,
    /// The outdial it belongs to (read by `GET /v1/outdialtargets/<id>`; nil when not sent).
    #[serde(deserialize_with = "uuid_or_nil")]
    pub outdial_id: Uuid,
    /// `idle`, `progressing` (a call is up) or `done`; empty when not sent.
    pub status: String,
    /// Soft-deleted at.
    #[serde(with = "opt_time")]
    pub tm_delete: Option<DateTime<Utc>>,
}

impl OutdialTarget {
    /// The five destinations with their try counts, in order.
    pub fn destinations(&self) -> [(Option<&Address>, i32); 5] {
        [
            (self.destination_0.as_ref(), self.try_count_0),
            (self.destination_1.as_ref(), self.try_count_1),
            (self.destination_2.as_ref(), self.try_count_2),
            (self.destination_3.as_ref(), self.try_count_3),
            (self.destination_4.as_ref(), self.try_count_4),
        ]
    }
}

/// A queue of queue-manager.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Queue {
    /// Queue id.
    #[serde(deserialize_with = "uuid_or_nil")]
    pub id: Uuid,
    /// Owner.
    #[serde(deserialize_with = "uuid_or_nil")]
    pub customer_id: Uuid,
    /// Soft-deleted at.
    #[serde(with = "opt_time")]
    pub tm_delete: Option<DateTime<Utc>>,
}

/// A call of call-manager (only what `call_hangup` handling and the campaigncall reconciler
/// read; `GET /v1/calls/<id>` answers the same shape).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Call {
    /// Call id.
    #[serde(deserialize_with = "uuid_or_nil")]
    pub id: Uuid,
    /// `dialing`, `ringing`, `progressing` (answered), `terminating`, `canceling` or `hangup`
    /// (ended; `hangup_reason` is then set). Empty in events that do not carry it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// Why the call ended: `normal`, `busy`, `noanswer`, ...
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hangup_reason: String,
}

impl Call {
    /// Whether call-manager reports the call as ended.
    pub fn is_hungup(&self) -> bool {
        self.status == "hangup"
    }
}

/// A flow of flow-manager.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Flow {
    /// Flow id.
    #[serde(deserialize_with = "uuid_or_nil")]
    pub id: Uuid,
    /// Set once flow-manager deleted the flow (it still answers `GET` for a deleted flow).
    #[serde(with = "opt_time", skip_serializing_if = "Option::is_none")]
    pub tm_delete: Option<DateTime<Utc>>,
}

/// An activeflow (a running flow) of flow-manager.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Activeflow {
    /// Activeflow id.
    #[serde(deserialize_with = "uuid_or_nil")]
    pub id: Uuid,
    /// `running` or `ended` (empty when not reported).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// Set once flow-manager deleted the activeflow.
    #[serde(with = "opt_time", skip_serializing_if = "Option::is_none")]
    pub tm_delete: Option<DateTime<Utc>>,
}

impl Activeflow {
    /// Whether flow-manager reports the activeflow as finished (ended or deleted).
    pub fn is_finished(&self) -> bool {
        self.status == "ended" || self.tm_delete.is_some()
    }
}
