//! The subscribe queue's dead-letter queue: where events go after their last retry, and the
//! operations an operator runs on it (peek, replay, purge).
//!
//! The subscriber moves an exhausted event here with its original body and headers plus why and
//! when ([`DEATH_REASON_HEADER`], [`RETRY_HEADER`], [`FIRST_FAILED_HEADER`],
//! [`DEAD_LETTERED_HEADER`]); the publish is persistent, mandatory and confirmed, and the
//! original is acked only after the confirm, so an event is always in exactly one queue.
//!
//! Peeking is non-destructive: `basic.get` without ack up to the limit, then one
//! `basic.nack(multiple, requeue)`. The messages are held by the peeking channel only for that
//! moment (a crash of the peeker closes the channel, which requeues them too) and return to the
//! head of the queue in their order. Nothing consumes this queue, so no one else is delayed.
//! Replay moves at most the number of events present when it started (so an event that fails
//! again and comes back is not replayed twice in one run), each with its retry count removed,
//! publishing to the subscribe queue with a confirm before acking it here.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation};
use serde_json::{Value, json};

use super::connection::BusConnection;
use super::error::{BusError, short};
use super::names::Names;
pub use super::subscriber::RETRY_HEADER;

/// Header: why the last attempt failed (the handler's error, bounded).
pub const DEATH_REASON_HEADER: &str = "x-death-reason";
/// Header: when the event failed for the first time (RFC 3339, UTC).
pub const FIRST_FAILED_HEADER: &str = "x-first-failed-at";
/// Header: when the event was moved to the dead-letter queue (RFC 3339, UTC).
pub const DEAD_LETTERED_HEADER: &str = "x-dead-lettered-at";
/// Header: the queue the event was consumed from before it was dead-lettered.
pub const ORIGINAL_QUEUE_HEADER: &str = "x-original-queue";
/// Header: how many times the event was replayed from the dead-letter queue.
pub const REPLAY_COUNT_HEADER: &str = "x-replay-count";
/// Header: when the event was last replayed (RFC 3339, UTC).
pub const REPLAYED_AT_HEADER: &str = "x-replayed-at";
/// Header the broker adds when a retry queue's TTL hands a message back.
const BROKER_DEATH_HEADER: &str = "x-death";

/// Longest `x-death-reason` kept (a handler error may quote a whole body).
pub const MAX_REASON_CHARS: usize = 1000;

/// How long a publish may wait for the broker's confirm.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// Now as the RFC 3339 text the headers use.
pub(crate) fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `text` cut to at most `max` characters (on a character boundary).
pub fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// The properties a republished event keeps: its content metadata and ids, never `expiration`
/// (retry queues set it) or `user_id` (the broker checks it against the connection's user).
pub(crate) fn carried_properties(p: &BasicProperties, headers: FieldTable) -> BasicProperties {
    let mut out = BasicProperties::default()
        .with_content_type(
            p.content_type()
                .clone()
                .unwrap_or_else(|| "text/plain".into()),
        )
        .with_headers(headers)
        .with_delivery_mode(2);
    if let Some(v) = p.content_encoding().clone() {
        out = out.with_content_encoding(v);
    }
    if let Some(v) = p.correlation_id().clone() {
        out = out.with_correlation_id(v);
    }
    if let Some(v) = p.message_id().clone() {
        out = out.with_message_id(v);
    }
    if let Some(v) = *p.timestamp() {
        out = out.with_timestamp(v);
    }
    if let Some(v) = p.kind().clone() {
        out = out.with_type(v);
    }
    if let Some(v) = p.app_id().clone() {
        out = out.with_app_id(v);
    }
    out
}

/// Publish `body` to `queue` through the default exchange, persistent and mandatory, and wait
/// for the broker's confirm (the channel must be in confirm mode). An unroutable message (the
/// queue does not exist) is an error, not a silent drop.
pub(crate) async fn publish_confirmed(
    channel: &Channel,
    queue: &str,
    body: &[u8],
    props: BasicProperties,
) -> Result<(), BusError> {
    let confirm = channel
        .basic_publish(
            "".into(),
            short(queue)?,
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body,
            props,
        )
        .await?;
    let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, confirm)
        .await
        .map_err(|_| BusError::Timeout(CONFIRM_TIMEOUT, "publish confirm"))??;
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(_)) => Err(BusError::Unavailable(format!(
            "queue {queue} does not exist (message returned unroutable)"
        ))),
        Confirmation::Nack(_) => Err(BusError::Unavailable(format!(
            "broker refused the publish to {queue} (nack)"
        ))),
        Confirmation::NotRequested => Err(BusError::Unavailable(
            "publisher confirms are not enabled on the channel".into(),
        )),
    }
}

/// Declare the dead-letter queue (durable, no arguments; idempotent).
pub(crate) async fn declare_dead_queue(channel: &Channel, names: &Names) -> Result<u32, BusError> {
    let q = channel
        .queue_declare(
            short(&names.subscribe_dead_queue)?,
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(q.message_count())
}

/// One header value as JSON (strings as text, tables as objects).
pub fn header_json(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(n) => json!(n),
        AMQPValue::ShortShortUInt(n) => json!(n),
        AMQPValue::ShortInt(n) => json!(n),
        AMQPValue::ShortUInt(n) => json!(n),
        AMQPValue::LongInt(n) => json!(n),
        AMQPValue::LongUInt(n) => json!(n),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::Float(f) => json!(f),
        AMQPValue::Double(f) => json!(f),
        AMQPValue::DecimalValue(d) => json!(format!("{}e-{}", d.value, d.scale)),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::LongString(s) => json!(String::from_utf8_lossy(s.as_bytes())),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(header_json).collect()),
        AMQPValue::Timestamp(t) => json!(t),
        AMQPValue::FieldTable(t) => headers_json(t),
        AMQPValue::ByteArray(b) => json!(
            b.as_slice()
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect::<String>()
        ),
        AMQPValue::Void => Value::Null,
    }
}

/// A header table as a JSON object (sorted by name).
pub fn headers_json(t: &FieldTable) -> Value {
    let map: BTreeMap<String, Value> = t
        .inner()
        .iter()
        .map(|(k, v)| (k.to_string(), header_json(v)))
        .collect();
    json!(map)
}

/// An event waiting in the dead-letter queue, as read by [`DeadLetters::peek`].
#[derive(Debug, Clone)]
pub struct DeadEvent {
    /// Every header, as JSON.
    pub headers: Value,
    /// The body as published by the peer.
    pub body: Vec<u8>,
}

impl DeadEvent {
    fn header_str(&self, name: &str) -> Option<String> {
        match self.headers.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// Why the last attempt failed.
    pub fn reason(&self) -> Option<String> {
        self.header_str(DEATH_REASON_HEADER)
    }

    /// Retries made before it was dead-lettered.
    pub fn retry_count(&self) -> Option<u64> {
        self.headers.get(RETRY_HEADER).and_then(Value::as_u64)
    }

    /// When it failed first.
    pub fn first_failed_at(&self) -> Option<String> {
        self.header_str(FIRST_FAILED_HEADER)
    }

    /// When it was dead-lettered.
    pub fn dead_lettered_at(&self) -> Option<String> {
        self.header_str(DEAD_LETTERED_HEADER)
    }

    /// The body as JSON when it is JSON, else as (lossy) text.
    pub fn body_json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| json!(String::from_utf8_lossy(&self.body)))
    }

    /// The envelope's `publisher` and `type`, when the body is an event envelope.
    pub fn publisher_and_type(&self) -> (Option<String>, Option<String>) {
        let body = self.body_json();
        let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        (field("publisher"), field("type"))
    }
}

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayReport {
    /// Events in the dead-letter queue when the replay started.
    pub found: u32,
    /// Events moved back to the subscribe queue.
    pub replayed: u32,
}

/// A replay that stopped on a failure after moving `replayed` events.
#[derive(Debug)]
pub struct ReplayError {
    /// Events moved before the failure.
    pub replayed: u32,
    /// The failure (the event it happened on is back in the dead-letter queue).
    pub error: BusError,
}

/// Operations on the dead-letter queue over one confirm-mode channel.
pub struct DeadLetters {
    channel: Channel,
    names: Names,
}

impl DeadLetters {
    /// Open a channel on `conn` and declare the dead-letter queue (so a broker where the
    /// service has not run yet reads as empty rather than failing).
    pub async fn open(conn: &BusConnection, names: Names) -> Result<DeadLetters, BusError> {
        let (channel, _) = conn.channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        declare_dead_queue(&channel, &names).await?;
        Ok(DeadLetters { channel, names })
    }

    /// The dead-letter queue's name.
    pub fn queue(&self) -> &str {
        &self.names.subscribe_dead_queue
    }

    fn dead(&self) -> Result<ShortString, BusError> {
        short(&self.names.subscribe_dead_queue)
    }

    /// Events waiting now.
    pub async fn count(&self) -> Result<u32, BusError> {
        declare_dead_queue(&self.channel, &self.names).await
    }

    /// The first `limit` events, oldest first, left in the queue.
    pub async fn peek(&self, limit: usize) -> Result<Vec<DeadEvent>, BusError> {
        let mut out = Vec::new();
        let mut last_tag = None;
        let read = async {
            while out.len() < limit {
                let Some(msg) = self
                    .channel
                    .basic_get(self.dead()?, BasicGetOptions { no_ack: false })
                    .await?
                else {
                    break;
                };
                let d = msg.delivery;
                last_tag = Some(d.delivery_tag);
                out.push(DeadEvent {
                    headers: d
                        .properties
                        .headers()
                        .as_ref()
                        .map(headers_json)
                        .unwrap_or_else(|| json!({})),
                    body: d.data,
                });
            }
            Ok::<_, BusError>(())
        }
        .await;
        // Give every read message back, also when a later read failed.
        if let Some(tag) = last_tag {
            self.channel
                .basic_nack(
                    tag,
                    BasicNackOptions {
                        multiple: true,
                        requeue: true,
                    },
                )
                .await?;
        }
        read?;
        Ok(out)
    }

    /// Move up to `max` events (all present at the start when `None`) back to the subscribe
    /// queue with their retry count reset. Each is acked here only after the subscribe queue
    /// confirmed it; on a failure that event stays here and the replay stops.
    pub async fn replay(&self, max: Option<u32>) -> Result<ReplayReport, ReplayError> {
        let fail = |replayed, error| ReplayError { replayed, error };
        let found = self.count().await.map_err(|e| fail(0, e))?;
        let want = max.map_or(found, |m| m.min(found));
        let target = self.names.subscribe_queue.clone();
        let mut replayed = 0;
        while replayed < want {
            let queue = self.dead().map_err(|e| fail(replayed, e))?;
            let got = self
                .channel
                .basic_get(queue, BasicGetOptions { no_ack: false })
                .await
                .map_err(|e| fail(replayed, e.into()))?;
            let Some(msg) = got else { break };
            let d = msg.delivery;
            let mut headers = d.properties.headers().clone().unwrap_or_default();
            let replays = headers
                .inner()
                .get(REPLAY_COUNT_HEADER)
                .and_then(|v| match v {
                    AMQPValue::LongLongInt(n) => Some(*n),
                    _ => None,
                })
                .unwrap_or(0);
            let mut kept = FieldTable::default();
            for (k, v) in headers.inner() {
                let drop = [
                    RETRY_HEADER,
                    DEATH_REASON_HEADER,
                    DEAD_LETTERED_HEADER,
                    BROKER_DEATH_HEADER,
                ]
                .contains(&k.as_str());
                if !drop {
                    kept.insert(k.clone(), v.clone());
                }
            }
            headers = kept;
            headers.insert(
                REPLAY_COUNT_HEADER.into(),
                AMQPValue::LongLongInt(replays.saturating_add(1)),
            );
            headers.insert(
                REPLAYED_AT_HEADER.into(),
                AMQPValue::LongString(LongString::from(now_rfc3339())),
            );
            let props = carried_properties(&d.properties, headers);
            match publish_confirmed(&self.channel, &target, &d.data, props).await {
                Ok(()) => {
                    self.channel
                        .basic_ack(d.delivery_tag, BasicAckOptions::default())
                        .await
                        .map_err(|e| fail(replayed, e.into()))?;
                    replayed += 1;
                }
                Err(error) => {
                    let _ = self
                        .channel
                        .basic_nack(
                            d.delivery_tag,
                            BasicNackOptions {
                                multiple: false,
                                requeue: true,
                            },
                        )
                        .await;
                    return Err(fail(replayed, error));
                }
            }
        }
        Ok(ReplayReport { found, replayed })
    }

    /// Delete every event in the dead-letter queue; returns how many there were.
    pub async fn purge(&self) -> Result<u32, BusError> {
        Ok(self
            .channel
            .queue_purge(self.dead()?, QueuePurgeOptions::default())
            .await?)
    }

    /// Close the channel.
    pub async fn close(self) {
        let _ = self.channel.close(200, "done".into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_bounded_on_char_boundaries() {
        assert_eq!(bounded("abc", 5), "abc");
        assert_eq!(bounded("abcdef", 3), "abc…");
        assert_eq!(bounded("ééé", 2), "éé…");
    }

    #[test]
    fn headers_render_as_json() {
        let mut t = FieldTable::default();
        t.insert("a".into(), AMQPValue::LongString("x".into()));
        t.insert("n".into(), AMQPValue::LongLongInt(3));
        t.insert("v".into(), AMQPValue::Void);
        assert_eq!(headers_json(&t), json!({"a": "x", "n": 3, "v": null}));
    }
}
