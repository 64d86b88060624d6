//! Integration tests of `campaign_manager::bus` against the real RabbitMQ on localhost.
//! Every test uses its own `Names::prefixed(<random>)` namespace and deletes what it declared.

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

#[tokio::test]
async fn rpc_round_trip_and_correlation_id() {
    let p = uniq();
    let (bus, _reg, names) = start(&p, options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    let echo = Arc::new(Echo::default());
    bus.serve_requests(echo.clone(), 10).await.unwrap();

    // Through our own client, many in parallel: each call gets its own reply.
    let rpc = bus.rpc();
    let calls = (0..50).map(|i| {
        let rpc = rpc.clone();
        let q = names.request_queue.clone();
        async move {
            let resp = rpc
                .call(&q, &Request::new("GET", format!("/v1/things/{i}")))
                .await
                .unwrap();
            (i, resp)
        }
    });
    for (i, resp) in futures::future::join_all(calls).await {
        assert_eq!(resp.status_code, 200);
        assert_eq!(resp.data_type, "application/json");
        let v: serde_json::Value = resp.data_as().unwrap();
        assert_eq!(v["uri"], format!("/v1/things/{i}"));
        assert_eq!(v["publisher"], "campaign-manager");
    }
    assert_eq!(rpc.pending_calls(), 0);

    // Raw request: correlation id copied, text/plain, exact body bytes.
    let raw = raw().await;
    let (reply_q, mut replies) = raw.reply_queue().await;
    raw.publish(
        "",
        &names.request_queue,
        br#"{"uri":"/v1/x","method":"POST","publisher":"api-manager","data_type":"application/json","data":{"a":1}}"#,
        text_plain()
            .with_reply_to(reply_q.as_str().into())
            .with_correlation_id("corr-42".into()),
    )
    .await;
    let d = next_msg(&mut replies, Duration::from_secs(5))
        .await
        .expect("reply");
    assert_eq!(
        d.properties.correlation_id().as_ref().map(|c| c.as_str()),
        Some("corr-42")
    );
    assert_eq!(
        d.properties.content_type().as_ref().map(|c| c.as_str()),
        Some("text/plain")
    );
    assert_eq!(
        std::str::from_utf8(&d.data).unwrap(),
        r#"{"status_code":200,"data_type":"application/json","data":{"uri":"/v1/x","method":"POST","publisher":"api-manager"}}"#
    );
    bus.shutdown().await;
    raw.cleanup(&names, &[]).await;
}

#[tokio::test]
async fn unparseable_request_gets_400_and_no_reply_to_gets_nothing() {
    let p = uniq();
    let (bus, _reg, names) = start(&p, options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    let echo = Arc::new(Echo::default());
    bus.serve_requests(echo.clone(), 1).await.unwrap();
    let raw = raw().await;
    let (reply_q, mut replies) = raw.reply_queue().await;
    let with_reply = || {
        text_plain()
            .with_reply_to(reply_q.as_str().into())
            .with_correlation_id("c1".into())
    };

    raw.publish("", &names.request_queue, b"{not json", with_reply())
        .await;
    let d = next_msg(&mut replies, Duration::from_secs(5))
        .await
        .expect("400 reply");
    assert_eq!(&d.data[..], br#"{"status_code":400,"data_type":""}"#);
    assert_eq!(
        d.properties.correlation_id().as_ref().map(|c| c.as_str()),
        Some("c1")
    );
    // Wrong field type is a parse failure too.
    raw.publish(
        "",
        &names.request_queue,
        br#"{"uri":5,"method":"GET"}"#,
        with_reply(),
    )
    .await;
    let d = next_msg(&mut replies, Duration::from_secs(5))
        .await
        .expect("400 reply");
    assert_eq!(&d.data[..], br#"{"status_code":400,"data_type":""}"#);
    assert_eq!(echo.calls.load(Ordering::SeqCst), 0);

    // No reply_to: a valid request is handled but not answered; garbage is acked and dropped.
    raw.publish(
        "",
        &names.request_queue,
        br#"{"uri":"/v1/quiet","method":"POST","publisher":"p","data_type":""}"#,
        text_plain(),
    )
    .await;
    raw.publish("", &names.request_queue, b"garbage", text_plain())
        .await;
    // Concurrency 1 => requests are processed in order; this marker comes back last.
    raw.publish(
        "",
        &names.request_queue,
        br#"{"uri":"/v1/marker","method":"GET","publisher":"p","data_type":""}"#,
        with_reply(),
    )
    .await;
    let d = next_msg(&mut replies, Duration::from_secs(5))
        .await
        .expect("marker reply");
    let r: Response = serde_json::from_slice(&d.data).unwrap();
    assert_eq!(
        r.data_as::<serde_json::Value>().unwrap()["uri"],
        "/v1/marker"
    );
    assert!(
        next_msg(&mut replies, Duration::from_millis(300))
            .await
            .is_none()
    );
    assert_eq!(echo.calls.load(Ordering::SeqCst), 2);
    // Everything was acked: nothing left in the queue.
    assert_eq!(raw.message_count(&names.request_queue).await, 0);
    bus.shutdown().await;
    raw.cleanup(&names, &[]).await;
}

#[tokio::test]
async fn rpc_timeout() {
    let p = uniq();
    let (bus, reg, names) = start(&p, options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    let raw = raw().await;
    let silent = format!("{p}.silent");
    raw.declare_queue(&silent).await;
    let started = Instant::now();
    let err = bus
        .rpc()
        .call_with(
            &silent,
            &Request::new("GET", "/v1/nothing"),
            CallOptions::timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(bus.rpc().pending_calls(), 0);
    // The histogram observed the call.
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&reg.gather())
        .unwrap();
    assert!(text.contains("campaign_manager_request_process_time_count"));
    assert!(text.contains(r#"resource="/v1/nothing""#));
    bus.shutdown().await;
    raw.cleanup(&names, &[silent]).await;
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

#[tokio::test]
async fn circuit_breaker_opens_rejects_and_recovers() {
    let p = uniq();
    let mut o = options(&p);
    o.rpc.default_timeout = Duration::from_millis(100);
    o.rpc.breaker = BreakerConfig {
        failure_threshold: 5,
        open_duration: Duration::from_millis(700),
    };
    let (bus, reg, names) = start(&p, o).await;
    let _cleanup = PanicCleanup::new(&names);
    let raw = raw().await;
    let target = format!("{p}.peer");
    raw.declare_queue(&target).await;
    let rpc = bus.rpc();
    let req = Request::new("GET", "/v1/ping");
    for _ in 0..5 {
        let e = rpc.call(&target, &req).await.unwrap_err();
        assert!(matches!(e, RpcError::Timeout { .. }), "{e:?}");
    }
    assert_eq!(rpc.breaker_state(&target), BreakerState::Open);
    let e = rpc.call(&target, &req).await.unwrap_err();
    assert!(matches!(e, RpcError::BreakerOpen { .. }));
    assert_eq!(
        e.to_string(),
        format!("circuit breaker is open for target: {target}")
    );
    let t = target.as_str();
    assert_eq!(
        metric(
            &reg,
            "campaign_manager_circuitbreaker_rejected_total",
            &[("target", t)]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &reg,
            "campaign_manager_circuitbreaker_state",
            &[("target", t)]
        ),
        1.0
    );

    // The peer comes up; after the open period the probe succeeds and closes the breaker.
    let peer_names = Names {
        request_queue: target.clone(),
        ..Names::prefixed(&format!("{p}.peer"))
    };
    let peer_reg = prometheus::Registry::new();
    let mut po = options(&format!("{p}-peer"));
    po.connection.connection_name = format!("cm-bus-test-{p}-peer");
    let peer = Bus::connect_with(URL, peer_names, &peer_reg, po)
        .await
        .unwrap();
    peer.serve_requests(Arc::new(Echo::default()), 2)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let resp = rpc
        .call_with(&target, &req, CallOptions::timeout(Duration::from_secs(3)))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 200);
    assert_eq!(rpc.breaker_state(&target), BreakerState::Closed);
    let tr = |from, to| {
        metric(
            &reg,
            "campaign_manager_circuitbreaker_state_transitions_total",
            &[("target", t), ("from", from), ("to", to)],
        )
    };
    assert_eq!(tr("closed", "open"), 1.0);
    assert_eq!(tr("open", "half-open"), 1.0);
    assert_eq!(tr("half-open", "closed"), 1.0);
    assert_eq!(
        metric(
            &reg,
            "campaign_manager_circuitbreaker_state",
            &[("target", t)]
        ),
        0.0
    );
    // Non-2xx replies are successes for the breaker.
    struct NotFound;
    #[async_trait]
    impl RequestHandler for NotFound {
        async fn handle(&self, _req: Request) -> Response {
            Response::status(404)
        }
    }
    let nf = format!("{p}.nf");
    peer.serve_requests_on(&nf, Arc::new(NotFound), 2)
        .await
        .unwrap();
    for _ in 0..7 {
        let r = rpc
            .call_with(&nf, &req, CallOptions::timeout(Duration::from_secs(3)))
            .await
            .unwrap();
        assert_eq!((r.status_code, r.data_type.as_str()), (404, ""));
    }
    assert_eq!(rpc.breaker_state(&nf), BreakerState::Closed);
    peer.shutdown().await;
    bus.shutdown().await;
    raw.cleanup(&names, &[target, nf]).await;
}

#[tokio::test]
async fn event_publish_reaches_bound_queue() {
    let p = uniq();
    let (bus, _reg, names) = start(&p, options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    let raw = raw().await;
    raw.ch
        .exchange_declare(
            names.event_exchange.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let (q, mut msgs) = raw.reply_queue().await;
    raw.ch
        .queue_bind(
            q.as_str().into(),
            names.event_exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let ev = Event::json(
        "campaign_created",
        &serde_json::json!({"id": "abc", "n": 1}),
    )
    .unwrap();
    bus.publisher().publish(&ev).await.unwrap();
    assert_delivered(
        &mut msgs,
        (&names.event_exchange, ""),
        r#"{"type":"campaign_created","publisher":"campaign-manager","data_type":"application/json","data":{"id":"abc","n":1}}"#,
    )
    .await;
    bus.shutdown().await;
    // After shutdown publishing fails fast with a typed error.
    let e = bus.publisher().publish(&ev).await.unwrap_err();
    assert!(
        matches!(e, BusError::Unavailable(_) | BusError::Shutdown),
        "{e:?}"
    );
    raw.cleanup(&names, &[]).await;
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

#[tokio::test]
async fn subscriber_retries_then_dead_letters() {
    let p = uniq();
    let (bus, reg, names) = start(&p, options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    let rec = Arc::new(Recorder::default());
    // Exchanges are declared by subscribe itself (empty broker).
    bus.subscribe(rec.clone()).await.unwrap();
    let raw = raw().await;
    let event = |t: &str| {
        format!(
            r#"{{"type":"{t}","publisher":"call-manager","data_type":"application/json","data":{{"id":"x"}}}}"#
        )
    };
    raw.publish(
        &names.call_event_exchange,
        "",
        event("call_hangup").as_bytes(),
        text_plain(),
    )
    .await;
    raw.publish(
        &names.flow_event_exchange,
        "",
        event("activeflow_deleted").as_bytes(),
        text_plain(),
    )
    .await;
    // Poison first, then a good event: the good one must still be handled.
    raw.publish(
        &names.flow_event_exchange,
        "",
        b"{{{ not json",
        text_plain(),
    )
    .await;
    raw.publish(
        &names.call_event_exchange,
        "",
        event("after_poison").as_bytes(),
        text_plain(),
    )
    .await;
    let mut origin = FieldTable::default();
    origin.insert(
        "x-test-origin".into(),
        lapin::types::AMQPValue::LongString("kept".into()),
    );
    raw.publish(
        &names.call_event_exchange,
        "",
        event("fail").as_bytes(),
        text_plain()
            .with_headers(origin)
            .with_message_id("m-1".into()),
    )
    .await;

    let q = names.subscribe_queue.as_str();
    let dead = || {
        metric(
            &reg,
            "campaign_manager_event_dead_lettered_total",
            &[("queue", q)],
        )
    };
    wait_until("2 dead letters", Duration::from_secs(15), || async {
        dead() >= 2.0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = rec.seen.lock().await.clone();
    for t in ["call_hangup", "activeflow_deleted", "after_poison"] {
        assert_eq!(seen.iter().filter(|s| *s == t).count(), 1, "{t}: {seen:?}");
    }
    // One first attempt plus three retries.
    assert_eq!(seen.iter().filter(|s| *s == "fail").count(), 4, "{seen:?}");
    assert_eq!(dead(), 2.0);
    // Nothing is dropped any more.
    assert_eq!(
        metric(&reg, "rabbitmqhandler_event_dropped_total", &[("queue", q)]),
        0.0
    );
    for n in ["1", "2", "3"] {
        // The failing event and the poison body were each retried once per level.
        assert_eq!(
            metric(
                &reg,
                "rabbitmqhandler_event_retried_total",
                &[("queue", q), ("retry_count", n)]
            ),
            2.0
        );
    }
    // Both wait in the durable dead-letter queue with their body, headers and why/when.
    assert_eq!(raw.message_count(&names.subscribe_dead_queue).await, 2);
    let letters = drain_queue(&raw, &names.subscribe_dead_queue).await;
    assert_eq!(letters.len(), 2);
    let by_body = |body: &[u8]| {
        letters
            .iter()
            .find(|d| d.data == body)
            .unwrap_or_else(|| panic!("no dead letter {}", String::from_utf8_lossy(body)))
    };
    let (failed, poison) = (by_body(event("fail").as_bytes()), by_body(b"{{{ not json"));
    assert_eq!(header_text(failed, "x-test-origin"), "kept");
    assert_eq!(
        failed.properties.message_id().as_ref().map(|m| m.as_str()),
        Some("m-1")
    );
    assert_eq!(failed.properties.delivery_mode(), &Some(2));
    for d in [failed, poison] {
        assert_eq!(
            header(d, "x-retry-count"),
            Some(&lapin::types::AMQPValue::LongLongInt(3))
        );
        let first = header_text(d, "x-first-failed-at");
        let at = header_text(d, "x-dead-lettered-at");
        let (first, at) = (
            chrono::DateTime::parse_from_rfc3339(&first).expect("RFC 3339"),
            chrono::DateTime::parse_from_rfc3339(&at).expect("RFC 3339"),
        );
        assert!(first <= at, "{first} > {at}");
        assert_eq!(header_text(d, "x-original-queue"), q);
    }
    assert_eq!(header_text(failed, "x-death-reason"), "induced failure");
    assert!(!header_text(poison, "x-death-reason").is_empty());
    bus.shutdown().await;
    raw.cleanup(&names, &[]).await;
}

#[tokio::test]
async fn event_stays_queued_while_the_dead_letter_queue_is_missing() {
    let p = uniq();
    let (bus, reg, names) = start(&p, options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    let rec = Arc::new(Recorder::default());
    bus.subscribe(rec.clone()).await.unwrap();
    let raw = raw().await;
    // An operator deleted the dead-letter queue: the publish to it is unroutable.
    raw.ch
        .queue_delete(
            names.subscribe_dead_queue.as_str().into(),
            QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    raw.publish(
        &names.call_event_exchange,
        "",
        br#"{"type":"fail","publisher":"call-manager","data_type":"application/json"}"#,
        text_plain(),
    )
    .await;
    // Four attempts, then each failed dead-lettering puts it back and it is handled again.
    let attempts = || {
        let rec = rec.clone();
        async move { rec.seen.lock().await.len() }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while attempts().await < 6 {
        assert!(Instant::now() < deadline, "event not redelivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let q = names.subscribe_queue.as_str();
    assert_eq!(
        metric(
            &reg,
            "campaign_manager_event_dead_lettered_total",
            &[("queue", q)]
        ),
        0.0
    );
    // The queue is back: the next attempt lands there.
    raw.declare_queue(&names.subscribe_dead_queue).await;
    wait_until("dead letter", Duration::from_secs(15), || async {
        metric(
            &reg,
            "campaign_manager_event_dead_lettered_total",
            &[("queue", q)],
        ) >= 1.0
    })
    .await;
    bus.shutdown().await;
    let letters = drain_queue(&raw, &names.subscribe_dead_queue).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(
        header(&letters[0], "x-retry-count"),
        Some(&lapin::types::AMQPValue::LongLongInt(3))
    );
    raw.cleanup(&names, &[]).await;
}

async fn force_close(connection_name: &str) {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "-q",
            "--no-table-headers",
            "pid",
            "client_properties",
        ])
        .output()
        .await
        .expect("rabbitmqctl");
    let text = String::from_utf8_lossy(&out.stdout);
    let needle = format!("\"{connection_name}\"");
    let pids: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&needle))
        .filter_map(|l| l.split('\t').next())
        .collect();
    assert_eq!(
        pids.len(),
        1,
        "connection {connection_name} not found: {text}"
    );
    let st = tokio::process::Command::new("rabbitmqctl")
        .args(["close_connection", pids[0], "test force close"])
        .output()
        .await
        .expect("rabbitmqctl close");
    assert!(st.status.success(), "{st:?}");
}

#[tokio::test]
async fn reconnects_after_broker_side_close() {
    let p = uniq();
    let (bus, _reg, names) = start(&p, options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    bus.serve_requests(Arc::new(Echo::default()), 4)
        .await
        .unwrap();
    let rec = Arc::new(Recorder::default());
    bus.subscribe(rec.clone()).await.unwrap();
    let rpc = bus.rpc();
    let req = Request::new("GET", "/v1/alive");
    assert_eq!(
        rpc.call(&names.request_queue, &req)
            .await
            .unwrap()
            .status_code,
        200
    );
    assert!(bus.is_healthy());

    force_close(bus.connection_name()).await;
    let closed_at = Instant::now();
    // Answered again within 5 s, by the re-registered server consumer.
    let mut answered = false;
    while closed_at.elapsed() < Duration::from_secs(5) {
        match rpc
            .call_with(
                &names.request_queue,
                &req,
                CallOptions::timeout(Duration::from_millis(500)),
            )
            .await
        {
            Ok(r) if r.status_code == 200 => {
                answered = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(answered, "no answer within 5 s after forced close");
    assert!(bus.is_healthy());
    // It really was a new connection (same process, same Bus).
    let generation = bus.connection().current().map(|l| l.generation);
    assert_eq!(generation, Some(2));
    // Publisher and subscriber work again too (exchanges/bindings/consumers re-established).
    let raw = raw().await;
    raw.publish(
        &names.call_event_exchange,
        "",
        br#"{"type":"after_reconnect","publisher":"x","data_type":""}"#,
        text_plain(),
    )
    .await;
    let rec2 = rec.clone();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if rec2
            .seen
            .lock()
            .await
            .iter()
            .any(|s| s == "after_reconnect")
        {
            break;
        }
        assert!(Instant::now() < deadline, "subscriber not re-registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bus.publisher()
        .publish(&Event::json("x", &1).unwrap())
        .await
        .unwrap();
    bus.shutdown().await;
    raw.cleanup(&names, &[]).await;
}

#[tokio::test]
async fn connect_to_dead_broker_fails_fast() {
    let mut o = BusOptions::default();
    o.connection.initial_connect_wait = Duration::from_millis(500);
    let reg = prometheus::Registry::new();
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        Bus::connect_with(
            "amqp://guest:guest@127.0.0.1:1/%2f",
            Names::prefixed("dead"),
            &reg,
            o,
        ),
    )
    .await;
    assert!(
        matches!(r, Ok(Err(BusError::Unavailable(_)))),
        "connect must fail, not hang"
    );
}

#[tokio::test]
async fn fuzz_random_and_truncated_requests() {
    let p = uniq();
    let (bus, _reg, names) = start(&p, options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    let echo = Arc::new(Echo::default());
    bus.serve_requests(echo.clone(), 10).await.unwrap();
    let raw = raw().await;
    let (reply_q, mut replies) = raw.reply_queue().await;
    let valid = br#"{"uri":"/v1/campaigns?page_size=10","method":"GET","publisher":"api-manager","data_type":"application/json","data":{"customer_id":"60f76478-c454-11ec-969b-13906a5eea9d"},"request_id":"r"}"#;
    let mut rng = seeded_rng("fuzz_random_and_truncated_requests");
    let total = 3000usize;
    let mut expected_replies = 0usize;
    let mut valid_sent = 0usize;
    for i in 0..total {
        let body: Vec<u8> = match i % 4 {
            0 => {
                let n = rng.random_range(0..200);
                (0..n).map(|_| rng.random::<u8>()).collect()
            }
            1 => valid[..rng.random_range(0..valid.len())].to_vec(),
            2 => {
                let mut b = valid.to_vec();
                let k = rng.random_range(0..b.len());
                b[k] = rng.random::<u8>();
                b
            }
            _ => {
                valid_sent += 1;
                valid.to_vec()
            }
        };
        let mut props = text_plain().with_correlation_id(format!("f{i}").into());
        if i % 5 != 0 {
            props = props.with_reply_to(reply_q.as_str().into());
            expected_replies += 1;
        }
        raw.publish("", &names.request_queue, &body, props).await;
    }
    let mut got = 0usize;
    let mut seen = std::collections::HashSet::new();
    while got < expected_replies {
        let d = next_msg(&mut replies, Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("only {got}/{expected_replies} replies"));
        let r: Response = serde_json::from_slice(&d.data).expect("reply is a Response");
        assert!(matches!(r.status_code, 200 | 400), "{r:?}");
        let corr = d.properties.correlation_id().clone().unwrap().to_string();
        assert!(seen.insert(corr), "duplicate reply");
        got += 1;
    }
    assert!(
        next_msg(&mut replies, Duration::from_millis(300))
            .await
            .is_none()
    );
    // Every intact request reached the handler (mutated ones may or may not parse).
    assert!(echo.calls.load(Ordering::SeqCst) >= valid_sent);
    // Still serving.
    let r = bus
        .rpc()
        .call(
            &names.request_queue,
            &Request::new("GET", "/v1/still-alive"),
        )
        .await
        .unwrap();
    assert_eq!(r.status_code, 200);
    bus.shutdown().await;
    raw.cleanup(&names, &[]).await;
}

/// A TCP proxy in front of the broker that the test can take down and bring back, to simulate a
/// broker outage/restart without touching the shared broker.
struct Proxy {
    port: u16,
    up: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    async fn start() -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, _) = tokio::sync::watch::channel(true);
        let up_rx = up.subscribe();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if !*up_rx.borrow() {
                    drop(client);
                    continue;
                }
                let mut down = up_rx.clone();
                tokio::spawn(async move {
                    let Ok(upstream) = tokio::net::TcpStream::connect("127.0.0.1:5672").await
                    else {
                        return;
                    };
                    let (mut c, mut u) = (client, upstream);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut c, &mut u) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Proxy { port, up }
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

#[tokio::test]
async fn outage_fails_fast_then_recovers() {
    let p = uniq();
    let proxy = Proxy::start().await;
    let names = Names::prefixed(&p);
    let _cleanup = PanicCleanup::new(&names);
    let mut o = options(&p);
    // Keep the breaker out of the way: this test is about the connection.
    o.rpc.breaker.failure_threshold = 1_000;
    let reg = prometheus::Registry::new();
    let bus = Bus::connect_with(&proxy.url(), names.clone(), &reg, o)
        .await
        .unwrap();
    bus.serve_requests(Arc::new(Echo::default()), 4)
        .await
        .unwrap();
    let rec = Arc::new(Recorder::default());
    bus.subscribe(rec.clone()).await.unwrap();
    let rpc = bus.rpc();
    let req = Request::new("GET", "/v1/alive");
    assert_eq!(
        rpc.call(&names.request_queue, &req)
            .await
            .unwrap()
            .status_code,
        200
    );

    proxy.set_up(false);
    wait_until(
        "connection loss noticed",
        Duration::from_secs(10),
        || async { !bus.is_healthy() },
    )
    .await;
    // During the outage publishes and calls fail with typed errors instead of hanging.
    let ev = Event::json("during_outage", &1).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), bus.publisher().publish(&ev)).await;
    assert!(matches!(r, Ok(Err(BusError::Unavailable(_)))), "{r:?}");
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        rpc.call(&names.request_queue, &req),
    )
    .await;
    assert!(matches!(r, Ok(Err(RpcError::Transport { .. }))), "{r:?}");

    // The broker "comes back": everything is re-established in the same process.
    proxy.set_up(true);
    let back = Instant::now();
    let mut answered = false;
    while back.elapsed() < Duration::from_secs(10) {
        if let Ok(r) = rpc
            .call_with(
                &names.request_queue,
                &req,
                CallOptions::timeout(Duration::from_millis(500)),
            )
            .await
        {
            assert_eq!(r.status_code, 200);
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "not answered after the outage");
    bus.publisher().publish(&ev).await.unwrap();
    let raw = raw().await;
    raw.publish(
        &names.flow_event_exchange,
        "",
        br#"{"type":"after_outage","publisher":"x","data_type":""}"#,
        text_plain(),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !rec.seen.lock().await.iter().any(|s| s == "after_outage") {
        assert!(Instant::now() < deadline, "subscriber not re-registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bus.shutdown().await;
    raw.cleanup(&names, &[]).await;
}

/// Sleeps before answering, to have requests in flight during shutdown.
struct Slow;

#[async_trait]
impl RequestHandler for Slow {
    async fn handle(&self, req: Request) -> Response {
        tokio::time::sleep(Duration::from_millis(400)).await;
        Response::json(200, &req.uri)
    }
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests() {
    let p = uniq();
    let (bus, _reg, names) = start(&p, options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    bus.serve_requests(Arc::new(Slow), 4).await.unwrap();
    let raw = raw().await;
    let (reply_q, mut replies) = raw.reply_queue().await;
    for i in 0..3 {
        raw.publish(
            "",
            &names.request_queue,
            format!(r#"{{"uri":"/v1/slow/{i}","method":"GET","publisher":"p","data_type":""}}"#)
                .as_bytes(),
            text_plain()
                .with_reply_to(reply_q.as_str().into())
                .with_correlation_id(format!("s{i}").into()),
        )
        .await;
    }
    // Let the server pick them up, then stop while they are being handled.
    tokio::time::sleep(Duration::from_millis(150)).await;
    bus.shutdown().await;
    let mut got = Vec::new();
    while let Some(d) = next_msg(&mut replies, Duration::from_millis(500)).await {
        got.push(String::from_utf8(d.data).unwrap());
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            r#"{"status_code":200,"data_type":"application/json","data":"/v1/slow/0"}"#,
            r#"{"status_code":200,"data_type":"application/json","data":"/v1/slow/1"}"#,
            r#"{"status_code":200,"data_type":"application/json","data":"/v1/slow/2"}"#,
        ]
    );
    // Nothing left unacked or requeued.
    assert_eq!(raw.message_count(&names.request_queue).await, 0);
    assert!(!bus.is_healthy());
    raw.cleanup(&names, &[]).await;
}

// ---- The topic bus: the platform's `bin-manager.event` ----

/// Whether `exchange` exists on the broker.
async fn exchange_exists(raw: &Raw, exchange: &str) -> bool {
    crate::support::amqp::exchange_exists(&raw._conn, exchange).await
}

fn peer_event(kind: &str) -> Vec<u8> {
    format!(r#"{{"type":"{kind}","publisher":"peer","data_type":"application/json","data":{{}}}}"#)
        .into_bytes()
}

#[tokio::test]
async fn topic_subscriber_hears_exactly_its_patterns_and_declares_no_fanout() {
    let p = uniq();
    let (bus, _reg, names) = start(&p, topic_options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    let rec = Arc::new(Recorder::default());
    bus.subscribe(rec.clone())
        .await
        .expect("subscribe on the topic bus");
    let raw = raw().await;
    // Routed in publish order: anything not matching would arrive before the last two.
    for (key, kind) in [
        ("call-manager.call.c1.created", "call_created"),
        ("call-manager.call.c1", "short_key"),
        ("campaign-manager.campaign.x.created", "campaign_created"),
        ("flow-manager.activeflow.a1.created", "activeflow_created"),
        ("call-manager.call.c1.hangup", "call_hangup"),
        ("flow-manager.activeflow.-.deleted", "activeflow_deleted"),
    ] {
        raw.publish(&names.topic_exchange, key, &peer_event(kind), text_plain())
            .await;
    }
    wait_until("both matching events", Duration::from_secs(10), || async {
        rec.seen.lock().await.len() >= 2
    })
    .await;
    assert_eq!(
        *rec.seen.lock().await,
        ["call_hangup", "activeflow_deleted"]
    );
    // The peers' fanout exchanges were neither declared nor bound.
    assert!(!exchange_exists(&raw, &names.call_event_exchange).await);
    assert!(!exchange_exists(&raw, &names.flow_event_exchange).await);
    assert!(exchange_exists(&raw, &names.topic_exchange).await);
    bus.shutdown().await;
    raw.cleanup(&names, &[]).await;
}

#[tokio::test]
async fn topic_subscriber_retries_then_dead_letters() {
    let p = uniq();
    let (bus, reg, names) = start(&p, topic_options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    let rec = Arc::new(Recorder::default());
    bus.subscribe(rec.clone()).await.unwrap();
    let raw = raw().await;
    raw.publish(
        &names.topic_exchange,
        "call-manager.call.c2.hangup",
        &peer_event("fail"),
        text_plain(),
    )
    .await;
    let q = names.subscribe_queue.as_str();
    wait_until("the dead letter", Duration::from_secs(15), || async {
        metric(
            &reg,
            "campaign_manager_event_dead_lettered_total",
            &[("queue", q)],
        ) >= 1.0
    })
    .await;
    // One first attempt plus three retries through the retry queues.
    assert_eq!(*rec.seen.lock().await, ["fail"; 4]);
    let letters = drain_queue(&raw, &names.subscribe_dead_queue).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].data, peer_event("fail"));
    assert_eq!(
        header(&letters[0], "x-retry-count"),
        Some(&lapin::types::AMQPValue::LongLongInt(3))
    );
    bus.shutdown().await;
    raw.cleanup(&names, &[]).await;
}

#[tokio::test]
async fn topic_publisher_sends_keyed_events_to_the_topic_exchange_only() {
    let p = uniq();
    let (bus, _reg, names) = start(&p, topic_options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    bus.declare_event_exchange().await.expect("declare");
    let raw = raw().await;
    let (q, mut msgs) = raw.reply_queue().await;
    raw.ch
        .queue_bind(
            q.as_str().into(),
            names.topic_exchange.as_str().into(),
            "campaign-manager.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let campaign = "7c41a9e0-0000-4000-8000-000000000001";
    let ev = Event::json("campaigncall_created", &serde_json::json!({"id": "cc"})).unwrap();
    let key = bus
        .publisher()
        .publish_addressed(&ev, campaign)
        .await
        .unwrap();
    assert_eq!(
        key,
        format!("campaign-manager.campaigncall.{campaign}.created")
    );
    assert_delivered(
        &mut msgs,
        (&names.topic_exchange, &key),
        r#"{"type":"campaigncall_created","publisher":"campaign-manager","data_type":"application/json","data":{"id":"cc"}}"#,
    )
    .await;
    // The nil address goes out under the placeholder.
    let nil = uuid::Uuid::nil().to_string();
    let key = bus.publisher().publish_addressed(&ev, &nil).await.unwrap();
    assert_eq!(key, "campaign-manager.campaigncall.-.created");
    // Our fanout exchange was never declared.
    assert!(!exchange_exists(&raw, &names.event_exchange).await);
    bus.shutdown().await;
    raw.cleanup(&names, &[]).await;
}

#[tokio::test]
async fn a_topic_exchange_of_another_kind_fails_the_declare_and_the_subscription() {
    let p = uniq();
    let mut o = topic_options(&p);
    o.ready_timeout = Duration::from_secs(2);
    let (bus, _reg, names) = start(&p, o).await;
    let _cleanup = PanicCleanup::new(&names);
    let raw = raw().await;
    // Someone declared the platform's exchange name with the wrong kind.
    crate::support::peer_events::declare(&raw.ch, &names.topic_exchange, ExchangeKind::Fanout)
        .await;
    let e = bus.declare_event_exchange().await.unwrap_err();
    assert!(e.to_string().contains("PRECONDITION_FAILED"), "{e}");
    let e = bus
        .subscribe(Arc::new(Recorder::default()))
        .await
        .unwrap_err();
    assert!(matches!(e, BusError::NotRegistered { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains(&names.subscribe_queue) && text.contains("PRECONDITION_FAILED"),
        "{text}"
    );
    bus.shutdown().await;
    raw.cleanup(&names, &[]).await;
}

#[tokio::test]
async fn subscribing_on_the_topic_bus_without_patterns_is_refused() {
    let p = uniq();
    let mut o = topic_options(&p);
    o.subscriber.topic_patterns.clear();
    let (bus, _reg, names) = start(&p, o).await;
    let _cleanup = PanicCleanup::new(&names);
    let e = bus
        .subscribe(Arc::new(Recorder::default()))
        .await
        .unwrap_err();
    assert!(matches!(e, BusError::Config(_)), "{e:?}");
    bus.shutdown().await;
}
