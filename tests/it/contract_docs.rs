//! The AsyncAPI document (`docs/asyncapi.yaml`) against the code, so neither drifts: every
//! route of the route table is a request message and every request message is a route; every
//! event the service publishes is a message of the event channel and back; the consumed
//! events are exactly the subscriber's `CONSUMED` pairs; the topic bus's channels carry the
//! same events under routing keys whose parameters cover every key the code builds, and the
//! consumed topic channels are exactly the subscribe queue's bindings, in order. Also: the document has the AsyncAPI
//! 3.0.0 skeleton, every request message's payload agrees with its title, and every local
//! `$ref` resolves. No broker or database is needed.

use std::collections::BTreeSet;

use campaign_manager::api::route_table;
use campaign_manager::bus::routing::routing_key;
use campaign_manager::events::{CONSUMED, topic_patterns};
use campaign_manager::model::DomainEvent;
use serde_json::Value;

const UUID: &str = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";

fn asyncapi() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/asyncapi.yaml");
    let text = std::fs::read_to_string(path).expect("docs/asyncapi.yaml is readable");
    yaml_serde::from_str(&text).expect("docs/asyncapi.yaml is YAML")
}

/// Every event the service publishes: the domain event enum's names (its own unit test ties
/// `NAMES` to `name()` of every variant).
fn published_event_names() -> Vec<String> {
    DomainEvent::NAMES.iter().map(|n| (*n).to_owned()).collect()
}

/// The regex a request message's `uri` must carry for a route pattern: `{…}` segments are
/// lowercase UUIDs, `?{query}` is any query string.
fn uri_regex(pattern: &str) -> String {
    let (path, query) = match pattern.split_once('?') {
        Some((p, _)) => (p, true),
        None => (pattern, false),
    };
    let segments: Vec<&str> = path
        .split('/')
        .map(|s| if s.starts_with('{') { UUID } else { s })
        .collect();
    format!(
        "^{}{}$",
        segments.join("/"),
        if query { "\\?.*" } else { "" }
    )
}

/// Follows a local `$ref` (`#/a/b/c`).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.strip_prefix('#').expect("local $ref");
            doc.pointer(pointer)
                .unwrap_or_else(|| panic!("$ref {r} does not resolve"))
        }
        None => v,
    }
}

/// The messages of a channel, resolved, by their key.
fn channel_messages<'a>(doc: &'a Value, channel: &str) -> Vec<(&'a str, &'a Value)> {
    let messages = doc
        .pointer(&format!("/channels/{channel}/messages"))
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("channel {channel} has messages"));
    messages
        .iter()
        .map(|(k, m)| (k.as_str(), resolve(doc, m)))
        .collect()
}

/// The `properties` of a message payload, merged over its `allOf` parts.
fn payload_properties<'a>(doc: &'a Value, message: &'a Value) -> serde_json::Map<String, Value> {
    let payload = resolve(doc, &message["payload"]);
    let mut parts = vec![payload];
    if let Some(all) = payload.get("allOf").and_then(Value::as_array) {
        parts.extend(all.iter().map(|p| resolve(doc, p)));
    }
    let mut props = serde_json::Map::new();
    for p in parts {
        if let Some(o) = p.get("properties").and_then(Value::as_object) {
            props.extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    props
}

fn constant<'a>(props: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    props.get(key)?.get("const")?.as_str()
}

/// Panics with both differences when two sets differ.
fn assert_same(code: &BTreeSet<String>, doc: &BTreeSet<String>, what: &str) {
    let missing: Vec<_> = code.difference(doc).collect();
    let extra: Vec<_> = doc.difference(code).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: in the code but not in docs/asyncapi.yaml: {missing:?}; \
         in docs/asyncapi.yaml but not in the code: {extra:?}"
    );
}

#[test]
fn the_document_has_the_asyncapi_3_skeleton() {
    let doc = asyncapi();
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    for key in ["channels", "operations"] {
        assert!(doc[key].is_object(), "{key} is a map");
    }
    assert!(doc["components"]["messages"].is_object());
    assert!(doc["components"]["schemas"].is_object());
    for (name, op) in doc["operations"].as_object().expect("operations") {
        let action = op["action"].as_str().unwrap_or_default();
        assert!(
            action == "send" || action == "receive",
            "operation {name}: action {action:?}"
        );
        resolve(&doc, &op["channel"]);
    }
}

#[test]
fn every_local_ref_resolves() {
    fn walk(doc: &Value, v: &Value, count: &mut usize) {
        match v {
            Value::Object(o) => {
                if o.contains_key("$ref") {
                    resolve(doc, v);
                    *count += 1;
                }
                o.values().for_each(|x| walk(doc, x, count));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(doc, x, count)),
            _ => {}
        }
    }
    let doc = asyncapi();
    let mut count = 0;
    walk(&doc, &doc, &mut count);
    assert!(
        count > 100,
        "only {count} references: is the document complete?"
    );
}

#[test]
fn every_route_is_a_request_message_and_back() {
    let doc = asyncapi();
    let code: BTreeSet<String> = route_table()
        .iter()
        .map(|r| format!("{} {}", r.method, r.pattern))
        .collect();
    assert_eq!(code.len(), route_table().len(), "a route is listed twice");
    let documented: BTreeSet<String> = channel_messages(&doc, "requests")
        .iter()
        .map(|(key, m)| {
            m["title"]
                .as_str()
                .unwrap_or_else(|| panic!("request message {key} has a title"))
                .to_owned()
        })
        .collect();
    assert_same(&code, &documented, "routes");
}

#[test]
fn request_messages_agree_with_their_titles_and_operations() {
    let doc = asyncapi();
    let operations = doc["operations"].as_object().expect("operations");
    for (key, message) in channel_messages(&doc, "requests") {
        let title = message["title"].as_str().expect("title");
        let (method, pattern) = title.split_once(' ').expect("title is \"METHOD pattern\"");
        let props = payload_properties(&doc, message);
        assert_eq!(constant(&props, "method"), Some(method), "{key}: method");
        assert_eq!(
            props
                .get("uri")
                .and_then(|u| u.get("pattern"))
                .and_then(Value::as_str),
            Some(uri_regex(pattern).as_str()),
            "{key}: uri pattern"
        );
        // Exactly one operation receives it, with a reply.
        let receiving: Vec<_> = operations
            .iter()
            .filter(|(_, op)| op["action"] == "receive")
            .filter(|(_, op)| {
                op["messages"].as_array().is_some_and(|ms| {
                    ms.iter()
                        .any(|m| m["$ref"] == format!("#/channels/requests/messages/{key}"))
                })
            })
            .collect();
        assert_eq!(receiving.len(), 1, "{key}: operations receiving it");
        let (op_name, op) = receiving[0];
        assert_eq!(op["title"], title, "operation {op_name}: title");
        assert!(op["reply"].is_object(), "operation {op_name}: reply");
    }
}

#[test]
fn every_published_event_is_an_event_message_and_back() {
    let doc = asyncapi();
    let code: BTreeSet<String> = published_event_names().into_iter().collect();
    let messages = channel_messages(&doc, "events");
    let documented: BTreeSet<String> = messages.iter().map(|(k, _)| k.to_string()).collect();
    assert_same(&code, &documented, "published events");
    for (key, message) in &messages {
        let props = payload_properties(&doc, message);
        assert_eq!(message["name"], *key, "{key}: name");
        assert_eq!(constant(&props, "type"), Some(*key), "{key}: type");
        assert_eq!(
            constant(&props, "publisher"),
            Some("campaign-manager"),
            "{key}: publisher"
        );
    }
    let sent = &doc["operations"]["publishEvent"];
    assert_eq!(sent["action"], "send");
    assert_eq!(
        sent["messages"].as_array().map(Vec::len),
        Some(messages.len()),
        "publishEvent lists every event"
    );
}

#[test]
fn consumed_events_are_the_subscribers() {
    let doc = asyncapi();
    let code: BTreeSet<String> = CONSUMED
        .iter()
        .map(|(publisher, kind)| format!("{publisher} {kind}"))
        .collect();
    let documented: BTreeSet<String> = channel_messages(&doc, "subscriptions")
        .iter()
        .map(|(key, m)| {
            let props = payload_properties(&doc, m);
            let publisher =
                constant(&props, "publisher").unwrap_or_else(|| panic!("{key}: publisher const"));
            let kind = constant(&props, "type").unwrap_or_else(|| panic!("{key}: type const"));
            format!("{publisher} {kind}")
        })
        .collect();
    assert_same(&code, &documented, "consumed events");
    assert_eq!(doc["operations"]["consumeEvent"]["action"], "receive");
}

/// The values of a channel parameter's `enum`.
fn parameter_enum(doc: &Value, channel: &str, parameter: &str) -> BTreeSet<String> {
    doc.pointer(&format!("/channels/{channel}/parameters/{parameter}/enum"))
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{channel}: no enum for {parameter}"))
        .iter()
        .map(|v| v.as_str().expect("enum of strings").to_owned())
        .collect()
}

/// A channel's AMQP exchange binding: `(name, type)`.
fn exchange_of(doc: &Value, channel: &str) -> (String, String) {
    let x = &doc["channels"][channel]["bindings"]["amqp"]["exchange"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (text(&x["name"]), text(&x["type"]))
}

#[test]
fn the_topic_channel_carries_every_event_under_keys_its_parameters_describe() {
    let doc = asyncapi();
    let code: BTreeSet<String> = published_event_names().into_iter().collect();
    let documented: BTreeSet<String> = channel_messages(&doc, "topicEvents")
        .iter()
        .map(|(k, _)| k.to_string())
        .collect();
    assert_same(&code, &documented, "events on the topic channel");
    assert_eq!(
        doc["channels"]["topicEvents"]["address"],
        "campaign-manager.{resource}.{subscription_id}.{action}"
    );
    // The resources and actions of every key the code builds, and no others.
    let (mut resources, mut actions) = (BTreeSet::new(), BTreeSet::new());
    for name in published_event_names() {
        let key = routing_key("campaign-manager", &name, "x");
        let segments: Vec<&str> = key.split('.').collect();
        assert_eq!(segments.len(), 4, "{key}");
        resources.insert(segments[1].to_owned());
        actions.insert(segments[3].to_owned());
    }
    assert_same(
        &resources,
        &parameter_enum(&doc, "topicEvents", "resource"),
        "resources",
    );
    assert_same(
        &actions,
        &parameter_enum(&doc, "topicEvents", "action"),
        "actions",
    );
    assert_eq!(
        exchange_of(&doc, "topicEvents"),
        ("bin-manager.event".to_owned(), "topic".to_owned())
    );
    let sent = &doc["operations"]["publishTopicEvent"];
    assert_eq!(sent["action"], "send");
    assert_eq!(
        sent["messages"].as_array().map(Vec::len),
        Some(code.len()),
        "publishTopicEvent lists every event"
    );
}

#[test]
fn the_consumed_topic_channels_are_the_subscribe_queues_bindings() {
    let doc = asyncapi();
    let documented: Vec<String> = ["callHangups", "activeflowEnds"]
        .iter()
        .map(|channel| {
            assert_eq!(
                exchange_of(&doc, channel),
                ("bin-manager.event".to_owned(), "topic".to_owned()),
                "{channel}"
            );
            // A `{parameter}` segment is what the binding leaves open.
            doc["channels"][channel]["address"]
                .as_str()
                .unwrap_or_default()
                .split('.')
                .map(|seg| if seg.starts_with('{') { "*" } else { seg })
                .collect::<Vec<_>>()
                .join(".")
        })
        .collect();
    assert_eq!(documented, topic_patterns());
}

/// The checks above rely on these helpers; make sure they can tell a difference.
#[test]
fn the_checks_see_a_difference() {
    assert_eq!(
        uri_regex("/v1/campaigns/{campaign_id}/status"),
        format!("^/v1/campaigns/{UUID}/status$")
    );
    assert_eq!(uri_regex("/v1/outplans?{query}"), "^/v1/outplans\\?.*$");
    let names = published_event_names();
    assert!(names.iter().any(|n| n == "campaign_created"), "{names:?}");
    assert!(names.iter().any(|n| n == "outplan_deleted"), "{names:?}");
    let a: BTreeSet<String> = ["GET /a".to_owned()].into();
    let b: BTreeSet<String> = ["GET /b".to_owned()].into();
    let caught = std::panic::catch_unwind(|| assert_same(&a, &b, "test"));
    assert!(caught.is_err(), "a difference must fail");
}
