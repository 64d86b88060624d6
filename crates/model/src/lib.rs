//! The campaign domain's data: what is stored, what travels on the bus, and the peer
//! services' records we read. JSON is byte-compatible with the Go service (docs/contract.md#json-records):
//! serde derives keep the contract's field order, and the small serde helpers in
//! `json` reproduce Go's encodings (nil UUIDs, trimmed RFC 3339 timestamps).
//!
//! No I/O here: the store and the bus depend on this module, never the other way round.

mod action;
mod address;
mod callback;
mod calling_hours;
mod campaign;
mod campaigncall;
mod customer_limits;
mod destination_zone;
mod event;
mod flow_reconcile;
pub mod json;
mod outplan;
mod pacing;
mod peer;
mod requests;
mod retry_rules;
mod stats;
mod suppression;
mod voipbin_error;
mod zone_table;

pub use action::Action;
pub use address::Address;
pub use callback::{Callback, CallbackCreate};
pub use calling_hours::{CallingHours, CallingWindow, DAY_NAMES, Gate, MAX_CLOSED_DATES, Schedule};
pub use campaign::{Campaign, CampaignStatus, CampaignType, CampaignWebhook, EndHandle, Execute};
pub use campaigncall::{
    Campaigncall, CampaigncallResult, CampaigncallStatus, ReferenceType, TargetStatus,
};
pub use customer_limits::{CustomerDialLimits, parse_dial_limits};
pub use destination_zone::{destination_zones, e164_zones};
pub use event::{DomainEvent, EventRecord};
pub use flow_reconcile::{FlowReconcile, recent_interval_sec};
pub use outplan::Outplan;
pub use pacing::{DialRate, MAX_DIALS_PER_SECOND, MIN_DIALS_PER_SECOND, Pacing};
pub use peer::{Activeflow, Call, Flow, Outdial, OutdialTarget, Queue};
pub use requests::{
    ActionsUpdate, CallingHoursUpdate, CampaignCreate, CampaignFilters, CampaignStatusUpdate,
    CampaignUpdate, CampaigncallFilters, CampaigncallFinish, NextCampaignUpdate, OutplanCreate,
    OutplanDials, OutplanFilters, OutplanUpdate, PacingUpdate, ResourceInfoUpdate,
    ServiceLevelUpdate,
};
pub use retry_rules::{
    CallTalk, Finals, HANGUP_REASONS, RetryRule, RetryRules, SHORT_CALL, TargetHistory,
    check_min_talk_ms, stored_reason,
};
pub use stats::{CampaignStats, TargetMark, TickRecord};
pub use suppression::{
    MAX_IMPORT_TARGETS, Suppression, SuppressionCreate, SuppressionImport, SuppressionImported,
    normalise_target,
};
pub use voipbin_error::VoipbinError;
pub use zone_table::SOURCE as ZONE_DATA_SOURCE;

/// Parses an enum from its platform string, naming the field and the allowed values on failure.
pub fn parse_enum<T: serde::de::DeserializeOwned>(field: &str, value: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(value.to_owned()))
        .map_err(|e| format!("invalid {field} {value:?}: {e}"))
}

/// The platform string of an enum value (its serde name).
pub fn enum_str<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

#[cfg(test)]
mod golden_tests;
