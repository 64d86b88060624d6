//! Event publisher: `Event`s to a durable exchange (docs/contract.md#rabbitmq): our fanout
//! exchange with routing key "" on the fanout bus, or the platform's topic exchange with the
//! event's key ([`crate::routing::routing_key`]) on the topic bus.
//!
//! One cached channel per connection generation (the Go service opened a channel per publish); the
//! exchange is (re)declared whenever a new channel is opened, so it exists again after a broker
//! restart. Messages are transient, `content_type = text/plain`. Publishing while the broker is
//! unreachable fails at once with `BusError::Unavailable`; a stuck publish fails after
//! `publish_timeout`.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};
use tokio::sync::Mutex;

use super::connection::BusConnection;
use super::envelope::Event;
use super::error::{BusError, short};
use super::routing::{EventBus, routing_key};

struct Inner {
    conn: BusConnection,
    exchange: String,
    bus: EventBus,
    channel: Mutex<Option<(u64, lapin::Channel)>>,
    publish_timeout: Duration,
}

/// Publishes events to one exchange; cheap to clone.
#[derive(Clone)]
pub struct EventPublisher {
    inner: Arc<Inner>,
}

/// Declare a durable exchange of `kind` (not auto-delete, no arguments: how every platform
/// service declares its exchanges, so any of them may come first).
async fn declare_durable(
    channel: &lapin::Channel,
    name: &str,
    kind: ExchangeKind,
) -> Result<(), BusError> {
    channel
        .exchange_declare(
            short(name)?,
            kind,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Declare a durable fanout exchange.
pub async fn declare_fanout(channel: &lapin::Channel, name: &str) -> Result<(), BusError> {
    declare_durable(channel, name, ExchangeKind::Fanout).await
}

/// Declare a durable topic exchange (the platform's `bin-manager.event`).
pub async fn declare_topic(channel: &lapin::Channel, name: &str) -> Result<(), BusError> {
    declare_durable(channel, name, ExchangeKind::Topic).await
}

impl EventPublisher {
    /// A publisher to the fanout `exchange` over `conn` (routing key "").
    pub fn new(conn: BusConnection, exchange: String, publish_timeout: Duration) -> Self {
        Self::on(conn, EventBus::Fanout, exchange, publish_timeout)
    }

    /// A publisher to `exchange` of the kind `bus` says: a fanout exchange, or a topic exchange
    /// whose keys [`EventPublisher::publish_addressed`] computes.
    pub fn on(
        conn: BusConnection,
        bus: EventBus,
        exchange: String,
        publish_timeout: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                conn,
                exchange,
                bus,
                channel: Mutex::new(None),
                publish_timeout,
            }),
        }
    }

    /// The exchange events go to.
    pub fn exchange(&self) -> &str {
        &self.inner.exchange
    }

    /// Which bus this publisher is on.
    pub fn bus(&self) -> EventBus {
        self.inner.bus
    }

    async fn declare_on(&self, ch: &lapin::Channel) -> Result<(), BusError> {
        match self.inner.bus {
            EventBus::Fanout => declare_fanout(ch, &self.inner.exchange).await,
            EventBus::Topic => declare_topic(ch, &self.inner.exchange).await,
        }
    }

    /// Declares the exchange now, on a channel of its own, so that a broker refusing it (e.g.
    /// an exchange of that name with another kind) fails the caller's start instead of every
    /// later publish.
    pub async fn declare(&self) -> Result<(), BusError> {
        let (ch, _) = self.inner.conn.channel().await?;
        let t = self.inner.publish_timeout;
        let declared = tokio::time::timeout(t, self.declare_on(&ch))
            .await
            .map_err(|_| BusError::Timeout(t, "exchange declare"))?;
        let _ = ch.close(200, "declared".into()).await;
        declared
    }

    async fn channel(&self) -> Result<lapin::Channel, BusError> {
        let mut cached = self.inner.channel.lock().await;
        let live = self
            .inner
            .conn
            .current()
            .ok_or_else(|| BusError::Unavailable("no live broker connection".into()))?;
        if let Some((generation, ch)) = cached.as_ref()
            && *generation == live.generation
            && ch.status().connected()
        {
            return Ok(ch.clone());
        }
        let (ch, generation) = self.inner.conn.channel().await?;
        let t = self.inner.publish_timeout;
        tokio::time::timeout(t, self.declare_on(&ch))
            .await
            .map_err(|_| BusError::Timeout(t, "exchange declare"))??;
        *cached = Some((generation, ch.clone()));
        Ok(ch)
    }

    /// Publish `ev` (JSON body) with routing key "" (what a fanout exchange expects).
    pub async fn publish(&self, ev: &Event) -> Result<(), BusError> {
        self.publish_with_key(ev, "").await
    }

    /// Publish `ev` addressed to `subscription_id` (the id a subscriber follows, e.g. the
    /// campaign of a campaigncall): on the topic bus under its routing key, on the fanout bus
    /// with key "". Returns the routing key used.
    pub async fn publish_addressed(
        &self,
        ev: &Event,
        subscription_id: &str,
    ) -> Result<String, BusError> {
        let key = match self.inner.bus {
            EventBus::Topic => routing_key(&ev.publisher, &ev.r#type, subscription_id),
            EventBus::Fanout => String::new(),
        };
        self.publish_with_key(ev, &key).await?;
        Ok(key)
    }

    /// Publish `ev` (JSON body) with routing key `key`.
    pub async fn publish_with_key(&self, ev: &Event, key: &str) -> Result<(), BusError> {
        let body = serde_json::to_vec(ev)?;
        let key = short(key)?;
        let exchange = short(&self.inner.exchange)?;
        let t = self.inner.publish_timeout;
        let ch = tokio::time::timeout(t, self.channel())
            .await
            .map_err(|_| BusError::Timeout(t, "publisher channel"))??;
        let props = BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_delivery_mode(1);
        tokio::time::timeout(t, async {
            ch.basic_publish(exchange, key, BasicPublishOptions::default(), &body, props)
                .await?
                .await
        })
        .await
        .map_err(|_| BusError::Timeout(t, "event publish"))??;
        Ok(())
    }
}
