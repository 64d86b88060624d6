//! Events on a test system's event bus, from outside the service: where a peer's event goes so
//! that the service hears it, and where to listen for the service's own events. On the topic
//! bus (the default) both travel on the system's topic exchange under the platform's routing
//! keys; on the fanout bus on the per-service fanout exchanges with key "".

#![allow(dead_code)]

use campaign_manager::bus::routing::routing_key;
use campaign_manager::bus::{EventBus, Names};
use lapin::ExchangeKind;
use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;

use super::TestSystem;

/// `(exchange, routing key)` of an event `kind` by `publisher` about `address` (the call's or
/// the activeflow's id), as the platform's peer publishes it on `bus`. On the fanout bus
/// call-manager's events go to its exchange and every other publisher's to flow-manager's.
pub fn route(
    names: &Names,
    bus: EventBus,
    publisher: &str,
    kind: &str,
    address: &str,
) -> (String, String) {
    match bus {
        EventBus::Topic => (
            names.topic_exchange.clone(),
            routing_key(publisher, kind, address),
        ),
        EventBus::Fanout if publisher == "call-manager" => {
            (names.call_event_exchange.clone(), String::new())
        }
        EventBus::Fanout => (names.flow_event_exchange.clone(), String::new()),
    }
}

/// [`route`] on the bus `sys` runs.
pub fn route_in(sys: &TestSystem, publisher: &str, kind: &str, address: &str) -> (String, String) {
    route(
        &sys.names.names,
        sys.settings.event_bus,
        publisher,
        kind,
        address,
    )
}

/// Publishes `body` (any bytes) on `ch` to `(exchange, key)`, `text/plain` and transient as the
/// platform's services publish, and waits for the broker to take it.
pub async fn publish(ch: &lapin::Channel, (exchange, key): &(String, String), body: &[u8]) {
    ch.basic_publish(
        exchange.as_str().into(),
        key.as_str().into(),
        BasicPublishOptions::default(),
        body,
        lapin::BasicProperties::default().with_content_type("text/plain".into()),
    )
    .await
    .expect("publish")
    .await
    .expect("publish taken");
}

/// Where the service's own events can be heard on `sys`'s bus: the exchange (declared as its
/// kind, so a tap may bind before the service published anything), its kind, and the binding
/// key that catches every event of the service.
pub fn service_events(sys: &TestSystem) -> (String, ExchangeKind, &'static str) {
    let n = &sys.names.names;
    match sys.settings.event_bus {
        EventBus::Topic => (
            n.topic_exchange.clone(),
            ExchangeKind::Topic,
            "campaign-manager.#",
        ),
        EventBus::Fanout => (n.event_exchange.clone(), ExchangeKind::Fanout, ""),
    }
}

/// Declares `exchange` durable of `kind`, as its publisher does.
pub async fn declare(ch: &lapin::Channel, exchange: &str, kind: ExchangeKind) {
    ch.exchange_declare(
        exchange.into(),
        kind,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("declare the event exchange");
}
