//! Integration tests of `campaign_manager::bus` against the real RabbitMQ on localhost.
//! Every test uses its own `Names::prefixed(<random>)` namespace and deletes what it declared.
//! A file per concern (`rpc.rs`, `events.rs`, `connection.rs`, `topic.rs`); this module holds
//! the rig they share: bus options, a raw AMQP client, the echo and recording handlers, metric and
//! header readers.

mod connection;
mod events;
mod rpc;
mod topic;

use crate::support::seed::seeded_rng;
use crate::support::wait_until;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use campaign_manager::bus::{
    BoxError, BreakerConfig, BreakerState, Bus, BusError, BusOptions, CallOptions, Event, EventBus,
    EventHandler, Names, Request, RequestHandler, Response, RpcError,
};
use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};
use rand::RngExt;
use tokio::sync::Mutex;

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn uniq() -> String {
    let n: u64 = rand::rng().random();
    format!("t{n:016x}")
}

/// Options of the tests of the fanout bus (most of this file: the topology every platform had
/// before the topic cut-over); the topic bus tests at the end start from [`topic_options`].
fn options(prefix: &str) -> BusOptions {
    let mut o = BusOptions {
        event_bus: EventBus::Fanout,
        ..BusOptions::default()
    };
    o.connection.connection_name = format!("cm-bus-test-{prefix}");
    o.subscriber.retry_delays = vec![Duration::from_millis(100); 3];
    o
}

/// The platform's bind set of campaign-manager on the topic exchange.
const PATTERNS: [&str; 2] = [
    "call-manager.call.*.hangup",
    "flow-manager.activeflow.*.deleted",
];

/// Options of the tests of the topic bus.
fn topic_options(prefix: &str) -> BusOptions {
    let mut o = options(prefix);
    o.event_bus = EventBus::Topic;
    o.subscriber.topic_patterns = PATTERNS.iter().map(|p| p.to_string()).collect();
    o
}

async fn start(prefix: &str, opts: BusOptions) -> (Bus, prometheus::Registry, Names) {
    let names = Names::prefixed(prefix);
    let registry = prometheus::Registry::new();
    let bus = Bus::connect_with(URL, names.clone(), &registry, opts)
        .await
        .expect("connect");
    (bus, registry, names)
}

/// A test-side raw connection + channel.
struct Raw {
    _conn: lapin::Connection,
    ch: lapin::Channel,
}

async fn raw() -> Raw {
    let conn = lapin::Connection::connect(URL, lapin::ConnectionProperties::default())
        .await
        .expect("raw connect");
    let ch = conn.create_channel().await.expect("raw channel");
    Raw { _conn: conn, ch }
}

impl Raw {
    /// A server-named exclusive queue with a no-ack consumer on it.
    async fn reply_queue(&self) -> (String, lapin::Consumer) {
        let name = crate::support::amqp::private_queue(&self.ch, "reply queue").await;
        let consumer = self
            .ch
            .basic_consume(
                name.as_str().into(),
                format!("c-{name}").into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        (name, consumer)
    }

    async fn publish(&self, exchange: &str, key: &str, body: &[u8], props: BasicProperties) {
        self.ch
            .basic_publish(
                exchange.into(),
                key.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    async fn declare_queue(&self, name: &str) {
        self.ch
            .queue_declare(
                name.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
    }

    /// How many messages wait in `queue` (a passive declare: the queue must exist).
    async fn message_count(&self, queue: &str) -> u32 {
        self.ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count()
    }

    async fn cleanup(&self, names: &Names, extra_queues: &[String]) {
        for q in names.owned_queues(3).iter().chain(extra_queues) {
            let _ = self
                .ch
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        for e in names.owned_exchanges() {
            let _ = self
                .ch
                .exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
    }
}

/// On panic (a failed assertion), deletes the test's queues and exchanges so a failing test does
/// not leave debris on the shared broker; the normal path cleans up through `Raw::cleanup`.
struct PanicCleanup {
    queues: Vec<String>,
    exchanges: Vec<String>,
}

impl PanicCleanup {
    fn new(names: &Names) -> Self {
        Self {
            queues: names.owned_queues(3),
            exchanges: names.owned_exchanges(),
        }
    }
}

impl Drop for PanicCleanup {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for q in &self.queues {
            let _ = std::process::Command::new("rabbitmqctl")
                .args(["delete_queue", q.as_str()])
                .output();
        }
        for e in &self.exchanges {
            let expr = format!(
                "rabbit_exchange:delete(rabbit_misc:r(<<\"/\">>, exchange, <<\"{e}\">>), false, <<\"test\">>)."
            );
            let _ = std::process::Command::new("rabbitmqctl")
                .args(["eval", expr.as_str()])
                .output();
        }
    }
}

async fn next_msg(c: &mut lapin::Consumer, wait: Duration) -> Option<lapin::message::Delivery> {
    match tokio::time::timeout(wait, c.next()).await {
        Ok(Some(Ok(d))) => Some(d),
        _ => None,
    }
}

/// Echoes uri and method back as JSON; counts calls.
#[derive(Default)]
struct Echo {
    calls: AtomicUsize,
}

#[async_trait]
impl RequestHandler for Echo {
    async fn handle(&self, req: Request) -> Response {
        self.calls.fetch_add(1, Ordering::SeqCst);
        #[derive(serde::Serialize)]
        struct Echoed {
            uri: String,
            method: String,
            publisher: String,
        }
        Response::json(
            200,
            &Echoed {
                uri: req.uri,
                method: req.method,
                publisher: req.publisher,
            },
        )
    }
}

fn text_plain() -> BasicProperties {
    BasicProperties::default().with_content_type("text/plain".into())
}

fn metric(reg: &prometheus::Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    for mf in reg.gather() {
        if mf.name() != name {
            continue;
        }
        for m in mf.get_metric() {
            let ok = labels.iter().all(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *k && l.value() == *v)
            });
            if ok {
                return match mf.get_field_type() {
                    prometheus::proto::MetricType::COUNTER => m.get_counter().get_value(),
                    prometheus::proto::MetricType::GAUGE => m.get_gauge().get_value(),
                    _ => 0.0,
                };
            }
        }
    }
    0.0
}

/// Asserts the next message on `msgs` is `body`, from `(exchange, routing key)`, as the
/// platform publishes events: `text/plain`, transient.
async fn assert_delivered(msgs: &mut lapin::Consumer, (exchange, key): (&str, &str), body: &str) {
    let d = next_msg(msgs, Duration::from_secs(5)).await.expect("event");
    assert_eq!(std::str::from_utf8(&d.data).unwrap(), body);
    assert_eq!(
        (d.exchange.as_str(), d.routing_key.as_str()),
        (exchange, key)
    );
    assert_eq!(
        d.properties.content_type().as_ref().map(|c| c.as_str()),
        Some("text/plain")
    );
    assert_eq!(*d.properties.delivery_mode(), Some(1));
}

/// Records events; fails every event whose type is `fail`.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<String>>,
}

#[async_trait]
impl EventHandler for Recorder {
    async fn handle(&self, ev: Event) -> Result<(), BoxError> {
        self.seen.lock().await.push(ev.r#type.clone());
        if ev.r#type == "fail" {
            return Err("induced failure".into());
        }
        Ok(())
    }
}

/// Reads (and consumes) every message in `queue`.
async fn drain_queue(raw: &Raw, queue: &str) -> Vec<lapin::message::Delivery> {
    let mut out = Vec::new();
    while let Some(m) = raw
        .ch
        .basic_get(
            queue.into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
    {
        out.push(m.delivery);
    }
    out
}

fn header<'a>(d: &'a lapin::message::Delivery, name: &str) -> Option<&'a lapin::types::AMQPValue> {
    d.properties.headers().as_ref()?.inner().get(name)
}

fn header_text(d: &lapin::message::Delivery, name: &str) -> String {
    match header(d, name) {
        Some(lapin::types::AMQPValue::LongString(s)) => {
            String::from_utf8_lossy(s.as_bytes()).into_owned()
        }
        other => panic!("header {name}: {other:?}"),
    }
}
