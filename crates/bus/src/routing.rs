//! How events travel between the platform's services (PLATFORM-NOW §1, docs/contract.md#events):
//! the [`EventBus`] setting, and the routing keys and binding patterns of the platform's one
//! topic exchange.
//!
//! On the topic bus every service publishes to the durable topic exchange `bin-manager.event`
//! with the key `<publisher>.<resource>.<subscription-id>.<action>`, and subscribers bind
//! patterns such as `call-manager.call.*.hangup`. The rules below are the platform's
//! (`bin-common-handler/models/eventtopic/routingkey.go`): a key is only useful if it is
//! byte-for-byte the one every other service computes, so they are copied exactly and pinned by
//! a golden table in the tests. The fanout bus is the older platform: one fanout exchange per
//! publishing service, routing key `""`.

use std::fmt;
use std::str::FromStr;

/// Which event transport the platform runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventBus {
    /// One durable topic exchange for every service, keyed events (the platform today).
    #[default]
    Topic,
    /// One fanout exchange per publishing service (platforms before the topic cut-over).
    Fanout,
}

impl EventBus {
    /// The setting's spelling (`topic`, `fanout`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventBus::Topic => "topic",
            EventBus::Fanout => "fanout",
        }
    }
}

impl fmt::Display for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `--event_bus` value that is neither `topic` nor `fanout`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event bus {0:?}: expected `topic` or `fanout`")]
pub struct UnknownEventBus(pub String);

impl FromStr for EventBus {
    type Err = UnknownEventBus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "topic" => Ok(EventBus::Topic),
            "fanout" => Ok(EventBus::Fanout),
            other => Err(UnknownEventBus(other.to_owned())),
        }
    }
}

/// A segment with no meaningful value. Type-level bindings (`<publisher>.<resource>.#`) still
/// match a key holding it; instance bindings never do.
pub const PLACEHOLDER: &str = "-";

/// Longest subscription id kept in a key; a longer one becomes [`PLACEHOLDER`] (AMQP caps a
/// whole routing key at 255 bytes and the broker refuses a longer one).
const SUBSCRIPTION_ID_MAX_LEN: usize = 64;

/// The nil UUID as text: an address that addresses nothing.
const NIL_UUID: &str = "00000000-0000-0000-0000-000000000000";

/// The routing key of an event on the topic exchange:
/// `<publisher>.<resource>.<subscription-id>.<action>`.
///
/// The type is lower-cased, its `.` become `_`, and it splits on its first `_` into resource
/// and action (`campaign_status_run` → `campaign` / `status_run`; a type without `_` has
/// resource `-`). Every segment is lower-cased with `.`, `*` and `#` turned into `_`, and an
/// empty one becomes `-`; the subscription id becomes `-` when empty, the nil UUID or longer
/// than 64 bytes.
pub fn routing_key(publisher: &str, event_type: &str, subscription_id: &str) -> String {
    let (resource, action) = split_event_type(event_type);
    [
        segment(publisher),
        segment(&resource),
        subscription_segment(subscription_id),
        segment(&action),
    ]
    .join(".")
}

/// Whether `subscription_id` collapses to [`PLACEHOLDER`] in a key (counted by publishers, so
/// events published without an address stay visible).
pub fn is_placeholder(subscription_id: &str) -> bool {
    subscription_segment(subscription_id) == PLACEHOLDER
}

/// The binding pattern for one event type of one publisher, across every subscription id:
/// `<publisher>.<resource>.*.<action>` (e.g. `call-manager.call.*.hangup`).
pub fn pattern_for_event_type(publisher: &str, event_type: &str) -> String {
    let (resource, action) = split_event_type(event_type);
    [
        segment(publisher),
        segment(&resource),
        "*".to_owned(),
        segment(&action),
    ]
    .join(".")
}

fn split_event_type(event_type: &str) -> (String, String) {
    let normalized = event_type.to_lowercase().replace('.', "_");
    match normalized.split_once('_') {
        Some((resource, action)) => (resource.to_owned(), action.to_owned()),
        None => (String::new(), normalized),
    }
}

fn segment(value: &str) -> String {
    let cleaned: String = value
        .to_lowercase()
        .chars()
        .map(|c| if matches!(c, '.' | '*' | '#') { '_' } else { c })
        .collect();
    if cleaned.is_empty() {
        PLACEHOLDER.to_owned()
    } else {
        cleaned
    }
}

fn subscription_segment(subscription_id: &str) -> String {
    if subscription_id.is_empty()
        || subscription_id == NIL_UUID
        || subscription_id.len() > SUBSCRIPTION_ID_MAX_LEN
    {
        PLACEHOLDER.to_owned()
    } else {
        segment(subscription_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAMPAIGN: &str = "7c41a9e0-0000-4000-8000-000000000001";

    /// The platform's golden table for campaign-manager (`routingkey_golden_test.go`): every
    /// event of one campaign, campaigncall events included, carries the campaign's id.
    #[test]
    fn campaign_manager_keys_match_the_platform() {
        for (event_type, key) in [
            ("campaign_created", "campaign.{id}.created"),
            ("campaign_updated", "campaign.{id}.updated"),
            ("campaign_deleted", "campaign.{id}.deleted"),
            ("campaign_status_run", "campaign.{id}.status_run"),
            ("campaign_status_stopping", "campaign.{id}.status_stopping"),
            ("campaign_status_stop", "campaign.{id}.status_stop"),
            ("campaigncall_created", "campaigncall.{id}.created"),
            ("campaigncall_updated", "campaigncall.{id}.updated"),
            ("campaigncall_deleted", "campaigncall.{id}.deleted"),
        ] {
            let want = format!("campaign-manager.{}", key.replace("{id}", CAMPAIGN));
            assert_eq!(routing_key("campaign-manager", event_type, CAMPAIGN), want);
        }
    }

    #[test]
    fn peers_keys_and_the_patterns_that_match_them() {
        let call = "0d3c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
        assert_eq!(
            routing_key("call-manager", "call_hangup", call),
            format!("call-manager.call.{call}.hangup")
        );
        assert_eq!(
            pattern_for_event_type("call-manager", "call_hangup"),
            "call-manager.call.*.hangup"
        );
        assert_eq!(
            pattern_for_event_type("flow-manager", "activeflow_deleted"),
            "flow-manager.activeflow.*.deleted"
        );
    }

    #[test]
    fn segments_are_normalized() {
        assert_eq!(
            routing_key("Pub.A", "Res.Act_X", "ID*1#2"),
            "pub_a.res.id_1_2.act_x"
        );
        assert_eq!(routing_key("", "created", "x"), "-.-.x.created");
        assert_eq!(routing_key("p", "", "x"), "p.-.x.-");
        assert_eq!(routing_key("p", "a_", "x"), "p.a.x.-");
    }

    #[test]
    fn missing_nil_or_oversized_addresses_become_the_placeholder() {
        for id in ["", NIL_UUID, &"a".repeat(65)] {
            assert_eq!(routing_key("p", "r_a", id), "p.r.-.a", "{id}");
            assert!(is_placeholder(id), "{id}");
        }
        let longest = "a".repeat(64);
        assert_eq!(
            routing_key("p", "r_a", &longest),
            format!("p.r.{longest}.a")
        );
        assert!(!is_placeholder(CAMPAIGN));
    }

    #[test]
    fn the_setting_parses_both_spellings_only() {
        assert_eq!("topic".parse(), Ok(EventBus::Topic));
        assert_eq!("fanout".parse(), Ok(EventBus::Fanout));
        assert_eq!(EventBus::default(), EventBus::Topic);
        let e = "Topic".parse::<EventBus>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown event bus \"Topic\": expected `topic` or `fanout`"
        );
    }
}
