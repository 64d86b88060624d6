//! Event publisher: `Event`s to our durable fanout exchange (docs/contract.md#rabbitmq).
//!
//! One cached channel per connection generation (the Go service opened a channel per publish); the
//! exchange is (re)declared whenever a new channel is opened, so it exists again after a broker
//! restart. Messages are transient, `content_type = text/plain`, routing key "". Publishing while
//! the broker is unreachable fails at once with `BusError::Unavailable`; a stuck publish fails
//! after `publish_timeout`.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};
use tokio::sync::Mutex;

use super::connection::BusConnection;
use super::envelope::Event;
use super::error::{BusError, short};

struct Inner {
    conn: BusConnection,
    exchange: String,
    channel: Mutex<Option<(u64, lapin::Channel)>>,
    publish_timeout: Duration,
}

/// Publishes events to the service's event exchange; cheap to clone.
#[derive(Clone)]
pub struct EventPublisher {
    inner: Arc<Inner>,
}

/// Declare a durable fanout exchange.
pub async fn declare_fanout(channel: &lapin::Channel, name: &str) -> Result<(), BusError> {
    channel
        .exchange_declare(
            short(name)?,
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

impl EventPublisher {
    /// A publisher to `exchange` over `conn` (the simulator publishes the peers' events this way).
    pub fn new(conn: BusConnection, exchange: String, publish_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                conn,
                exchange,
                channel: Mutex::new(None),
                publish_timeout,
            }),
        }
    }

    /// The exchange events go to.
    pub fn exchange(&self) -> &str {
        &self.inner.exchange
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
        tokio::time::timeout(t, declare_fanout(&ch, &self.inner.exchange))
            .await
            .map_err(|_| BusError::Timeout(t, "exchange declare"))??;
        *cached = Some((generation, ch.clone()));
        Ok(ch)
    }

    /// Publish `ev` (JSON body) to the event exchange.
    pub async fn publish(&self, ev: &Event) -> Result<(), BusError> {
        let body = serde_json::to_vec(ev)?;
        let exchange = short(&self.inner.exchange)?;
        let t = self.inner.publish_timeout;
        let ch = tokio::time::timeout(t, self.channel())
            .await
            .map_err(|_| BusError::Timeout(t, "publisher channel"))??;
        let props = BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_delivery_mode(1);
        tokio::time::timeout(t, async {
            ch.basic_publish(
                exchange,
                "".into(),
                BasicPublishOptions::default(),
                &body,
                props,
            )
            .await?
            .await
        })
        .await
        .map_err(|_| BusError::Timeout(t, "event publish"))??;
        Ok(())
    }
}
