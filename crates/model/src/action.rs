//! A flow action (`fmaction.Action`), as campaigns store them and flow-manager takes them.
//! The action vocabulary belongs to flow-manager, so `type` and `option` pass through as given.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::json::{opt_time, uuid_or_nil};

/// One step of a flow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Action id (nil when flow-manager assigns it).
    #[serde(default, deserialize_with = "uuid_or_nil")]
    pub id: Uuid,
    /// The next action's id.
    #[serde(default, deserialize_with = "uuid_or_nil")]
    pub next_id: Uuid,
    /// Action type, e.g. `answer`, `queue_join`; omitted when empty.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Free-form options; omitted when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option: Option<serde_json::Map<String, serde_json::Value>>,
    /// When the action ran (always emitted).
    #[serde(default, with = "opt_time")]
    pub tm_execute: Option<DateTime<Utc>>,
}

impl Action {
    /// The `queue_join` action appended to a campaign's flow when the campaign has a queue.
    pub fn queue_join(queue_id: Uuid) -> Action {
        let mut option = serde_json::Map::new();
        option.insert(
            "queue_id".into(),
            serde_json::Value::String(queue_id.to_string()),
        );
        Action {
            kind: "queue_join".into(),
            option: Some(option),
            ..Action::default()
        }
    }
}
