//! The contract's JSON shapes as key lists (docs/contract.md#json-records), for byte-exact reply checks.

#![allow(dead_code)]

use serde_json::Value;

pub const CAMPAIGN_KEYS: &[&str] = &[
    "id",
    "customer_id",
    "type",
    "execute",
    "name",
    "detail",
    "status",
    "service_level",
    "end_handle",
    "flow_id",
    "actions",
    "outplan_id",
    "outdial_id",
    "queue_id",
    "next_campaign_id",
    "tm_create",
    "tm_update",
    "tm_delete",
];

pub const CAMPAIGNCALL_KEYS: &[&str] = &[
    "id",
    "customer_id",
    "campaign_id",
    "outplan_id",
    "outdial_id",
    "outdial_target_id",
    "queue_id",
    "activeflow_id",
    "flow_id",
    "reference_type",
    "reference_id",
    "status",
    "result",
    "source",
    "destination",
    "destination_index",
    "try_count",
    "tm_create",
    "tm_update",
    "tm_delete",
];

pub const OUTPLAN_KEYS: &[&str] = &[
    "id",
    "customer_id",
    "name",
    "detail",
    "source",
    "dial_timeout",
    "try_interval",
    "max_try_count_0",
    "max_try_count_1",
    "max_try_count_2",
    "max_try_count_3",
    "max_try_count_4",
    "tm_create",
    "tm_update",
    "tm_delete",
];

/// The compact JSON of `v` with exactly `keys`, in that order (what a byte-exact reply is).
pub fn canonical(v: &Value, keys: &[&str]) -> String {
    let obj = v.as_object().expect("an object");
    assert_eq!(obj.len(), keys.len(), "unexpected key set: {v}");
    let parts: Vec<String> = keys
        .iter()
        .map(|k| {
            let val = obj.get(*k).unwrap_or_else(|| panic!("missing {k} in {v}"));
            format!("\"{k}\":{}", serde_json::to_string(val).unwrap())
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

pub const CAMPAIGN_WEBHOOK_KEYS: &[&str] = &[
    "id",
    "customer_id",
    "type",
    "name",
    "detail",
    "status",
    "service_level",
    "end_handle",
    "actions",
    "outplan_id",
    "outdial_id",
    "queue_id",
    "next_campaign_id",
    "tm_create",
    "tm_update",
    "tm_delete",
];
