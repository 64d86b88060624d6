//! Event subscriber: our subscribe queue bound to the peers' events (docs/contract.md#rabbitmq),
//! with bounded retries that do not need the delayed-message plugin.
//!
//! Topology per (re)connect: the durable subscribe queue, its dead-letter queue, and one durable
//! retry queue per retry level (`<subscribe>.retry.<n>`) whose dead-letter target is the subscribe
//! queue via the default exchange; then the bindings of the bus in use. On the topic bus: the
//! platform's topic exchange (declared, as every subscriber does, so start order does not
//! matter) and one binding per configured pattern, in order; the peers' fanout exchanges are
//! neither declared nor bound (the platform deletes them). On the fanout bus: the two peer fanout
//! exchanges (declared if absent so we start on an empty broker) bound with key "". A failed
//! declare or bind fails the session, so the first start fails rather than run deaf. A failed event (handler error, panic or undecodable JSON) is
//! republished to the retry queue of the next level with `x-retry-count = n` and a per-message
//! `expiration` of that level's delay; when it expires RabbitMQ dead-letters it back. The first
//! failure stamps `x-first-failed-at`. After the last level the event moves to the durable
//! dead-letter queue (`<subscribe>.dead`, see [`super::dead_letter`]) with its body, its headers
//! and why/when (`x-death-reason`, `x-retry-count`, `x-dead-lettered-at`), counted in
//! `campaign_manager_event_dead_lettered_total`. Every republish (retry or dead letter) is
//! persistent, mandatory and confirmed, and the original is acked only after the confirm; when
//! it fails the original is nacked back to the queue, so nothing is ever dropped. The queue is
//! never blocked: a failing message leaves it immediately.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicNackOptions, ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use tracing::{error, warn};

use super::consumer::{DeliveryProcessor, preview};
use super::dead_letter::{
    DEAD_LETTERED_HEADER, DEATH_REASON_HEADER, FIRST_FAILED_HEADER, MAX_REASON_CHARS,
    ORIGINAL_QUEUE_HEADER, bounded, carried_properties, declare_dead_queue, now_rfc3339,
    publish_confirmed,
};
use super::envelope::Event;
use super::error::{BusError, short};
use super::metrics::BusMetrics;
use super::names::Names;
use super::publisher::{declare_fanout, declare_topic};
use super::routing::EventBus;

/// Boxed error returned by event handlers: tower's, the same type as
/// `campaign_workers::BoxError`, so the project has one.
pub use tower::BoxError;

/// Application side of the subscriber.
#[async_trait]
pub trait EventHandler: Send + Sync {
    /// Handle one event; an error schedules a retry.
    async fn handle(&self, ev: Event) -> Result<(), BoxError>;
}

/// Header carrying the retry level of a republished event.
pub const RETRY_HEADER: &str = "x-retry-count";

/// Subscriber tunables.
#[derive(Debug, Clone)]
pub struct SubscriberOptions {
    /// Events processed concurrently (prefetch).
    pub concurrency: usize,
    /// Delay before retry 1, 2, 3, ...; its length is the number of retries.
    pub retry_delays: Vec<Duration>,
    /// Patterns the subscribe queue binds on the topic bus, in order (e.g.
    /// `call-manager.call.*.hangup`); unused on the fanout bus. Subscribing on the topic bus
    /// with none is refused.
    pub topic_patterns: Vec<String>,
}

impl Default for SubscriberOptions {
    fn default() -> Self {
        Self {
            concurrency: 10,
            retry_delays: vec![
                Duration::from_secs(5),
                Duration::from_secs(30),
                Duration::from_secs(120),
            ],
            topic_patterns: Vec::new(),
        }
    }
}

pub(crate) struct SubscribeProcessor {
    pub names: Names,
    pub bus: EventBus,
    pub topic_patterns: Vec<String>,
    pub handler: Arc<dyn EventHandler>,
    pub retry_delays: Vec<Duration>,
    pub metrics: BusMetrics,
}

/// Read `x-retry-count` whatever integer type the publisher used.
fn retry_count(props: &BasicProperties) -> u64 {
    let Some(headers) = props.headers() else {
        return 0;
    };
    match headers.inner().get(RETRY_HEADER) {
        Some(AMQPValue::ShortShortInt(v)) => u64::try_from(*v).unwrap_or(0),
        Some(AMQPValue::ShortShortUInt(v)) => u64::from(*v),
        Some(AMQPValue::ShortInt(v)) => u64::try_from(*v).unwrap_or(0),
        Some(AMQPValue::ShortUInt(v)) => u64::from(*v),
        Some(AMQPValue::LongInt(v)) => u64::try_from(*v).unwrap_or(0),
        Some(AMQPValue::LongUInt(v)) => u64::from(*v),
        Some(AMQPValue::LongLongInt(v)) => u64::try_from(*v).unwrap_or(0),
        Some(AMQPValue::Timestamp(v)) => *v,
        _ => 0,
    }
}

impl SubscribeProcessor {
    async fn handle(&self, body: &[u8]) -> Result<(), BoxError> {
        let ev: Event = serde_json::from_slice(body)?;
        match AssertUnwindSafe(self.handler.handle(ev))
            .catch_unwind()
            .await
        {
            Ok(r) => r,
            Err(_) => Err("event handler panicked".into()),
        }
    }

    /// The delivery's headers with `x-first-failed-at` stamped if this is its first failure.
    fn failure_headers(delivery: &Delivery) -> FieldTable {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        if !headers.contains_key(FIRST_FAILED_HEADER) {
            headers.insert(
                FIRST_FAILED_HEADER.into(),
                AMQPValue::LongString(LongString::from(now_rfc3339())),
            );
        }
        headers
    }

    /// Republish `delivery` to the retry queue of `level` and wait for the broker's confirm.
    async fn schedule_retry(
        &self,
        channel: &lapin::Channel,
        delivery: &Delivery,
        level: usize,
        delay: Duration,
    ) -> Result<(), BusError> {
        let mut headers = Self::failure_headers(delivery);
        headers.insert(RETRY_HEADER.into(), AMQPValue::LongLongInt(level as i64));
        let props = carried_properties(&delivery.properties, headers)
            .with_expiration(delay.as_millis().max(1).to_string().into());
        let queue = self.names.subscribe_retry_queue(level);
        publish_confirmed(channel, &queue, &delivery.data, props).await
    }

    /// Move `delivery` to the dead-letter queue with why and when, and wait for the confirm.
    async fn dead_letter(
        &self,
        channel: &lapin::Channel,
        delivery: &Delivery,
        retries: u64,
        reason: &str,
    ) -> Result<(), BusError> {
        let mut headers = Self::failure_headers(delivery);
        headers.insert(
            RETRY_HEADER.into(),
            AMQPValue::LongLongInt(i64::try_from(retries).unwrap_or(i64::MAX)),
        );
        headers.insert(
            DEATH_REASON_HEADER.into(),
            AMQPValue::LongString(LongString::from(bounded(reason, MAX_REASON_CHARS))),
        );
        headers.insert(
            DEAD_LETTERED_HEADER.into(),
            AMQPValue::LongString(LongString::from(now_rfc3339())),
        );
        headers.insert(
            ORIGINAL_QUEUE_HEADER.into(),
            AMQPValue::LongString(LongString::from(self.names.subscribe_queue.as_str())),
        );
        let props = carried_properties(&delivery.properties, headers);
        publish_confirmed(
            channel,
            &self.names.subscribe_dead_queue,
            &delivery.data,
            props,
        )
        .await
    }

    /// Give `delivery` back to the subscribe queue after a republish failed (after a pause, so
    /// an unhappy broker does not get a hot redelivery loop).
    async fn requeue(delivery: &Delivery) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = delivery
            .acker
            .nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            })
            .await;
    }
}

#[async_trait]
impl DeliveryProcessor for SubscribeProcessor {
    async fn setup(&self, channel: &lapin::Channel) -> Result<(), BusError> {
        let queue = short(&self.names.subscribe_queue)?;
        if self.bus == EventBus::Fanout {
            // Declared first, as before the topic bus existed, so nothing changes there.
            declare_fanout(channel, &self.names.call_event_exchange).await?;
            declare_fanout(channel, &self.names.flow_event_exchange).await?;
        }
        let durable_q = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(queue.clone(), durable_q, FieldTable::default())
            .await?;
        declare_dead_queue(channel, &self.names).await?;
        for level in 1..=self.retry_delays.len() {
            let mut args = FieldTable::default();
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(LongString::from("")),
            );
            args.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(LongString::from(self.names.subscribe_queue.as_str())),
            );
            channel
                .queue_declare(
                    short(&self.names.subscribe_retry_queue(level))?,
                    durable_q,
                    args,
                )
                .await?;
        }
        let bindings: Vec<(&str, &str)> = match self.bus {
            EventBus::Topic => {
                declare_topic(channel, &self.names.topic_exchange).await?;
                self.topic_patterns
                    .iter()
                    .map(|p| (self.names.topic_exchange.as_str(), p.as_str()))
                    .collect()
            }
            EventBus::Fanout => vec![
                (self.names.call_event_exchange.as_str(), ""),
                (self.names.flow_event_exchange.as_str(), ""),
            ],
        };
        for (exchange, key) in bindings {
            channel
                .queue_bind(
                    queue.clone(),
                    short(exchange)?,
                    short(key)?,
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(())
    }

    async fn process(&self, channel: lapin::Channel, delivery: Delivery) {
        let queue = self.names.subscribe_queue.as_str();
        let Err(err) = self.handle(&delivery.data).await else {
            if let Err(error) = delivery.acker.ack(BasicAckOptions::default()).await {
                warn!(queue, %error, "event ack failed (will be redelivered)");
            }
            return;
        };
        let done = retry_count(&delivery.properties);
        let next = usize::try_from(done)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        if let Some(delay) = self.retry_delays.get(next - 1).copied() {
            match self.schedule_retry(&channel, &delivery, next, delay).await {
                Ok(()) => {
                    warn!(queue, error = %err, retry = next, ?delay, "event handling failed; retry scheduled");
                    self.metrics
                        .event_retried
                        .with_label_values(&[queue, next.to_string().as_str()])
                        .inc();
                    if let Err(error) = delivery.acker.ack(BasicAckOptions::default()).await {
                        warn!(queue, %error, "event ack failed after retry publish (may be handled twice)");
                    }
                }
                Err(error) => {
                    error!(queue, %error, handler_error = %err, "cannot schedule retry; requeueing");
                    Self::requeue(&delivery).await;
                }
            }
        } else {
            let reason = err.to_string();
            match self.dead_letter(&channel, &delivery, done, &reason).await {
                Ok(()) => {
                    error!(queue, error = %err, retries = done, body = %preview(&delivery.data),
                           dead_letter_queue = %self.names.subscribe_dead_queue,
                           "event failed its last retry; moved to the dead-letter queue");
                    self.metrics
                        .event_dead_lettered
                        .with_label_values(&[queue])
                        .inc();
                    if let Err(error) = delivery.acker.ack(BasicAckOptions::default()).await {
                        warn!(queue, %error, "event ack failed after dead-lettering (may be dead-lettered twice)");
                    }
                }
                Err(error) => {
                    error!(queue, %error, handler_error = %err,
                           "cannot move the event to the dead-letter queue; requeueing");
                    Self::requeue(&delivery).await;
                }
            }
        }
    }
}
