//! What the broker says about the queues this service consumes: messages waiting and consumers
//! attached, as gauges (`campaign_manager_queue_messages{queue}`,
//! `campaign_manager_queue_consumers{queue}`), so that the alert rules can watch the RPC path
//! (nobody consumes the request queue, a backlog builds) and the dead-letter queue's depth
//! without a RabbitMQ exporter. The consumer count is the broker's: it includes the Go service's
//! consumers while both run (the cut-over's check).
//!
//! Every `interval` the watcher declares each queue passively (no side effect; a missing queue
//! is a 404 that closes the channel) on a channel of its own. A queue it cannot read loses its
//! series until the next good read, so a stale value never lingers; while the broker is
//! unreachable none are exported. Every service process watches the same queues; the rules
//! aggregate with `max`.

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use prometheus::{IntGaugeVec, Opts, Registry};
use tokio::sync::watch;

use super::connection::BusConnection;
use super::error::{BusError, short};

/// The two gauges, by queue name.
#[derive(Clone)]
pub struct QueueGauges {
    messages: IntGaugeVec,
    consumers: IntGaugeVec,
}

impl QueueGauges {
    /// Creates the gauges and registers them into `registry`.
    pub fn register(registry: &Registry) -> Result<QueueGauges, prometheus::Error> {
        let messages = IntGaugeVec::new(
            Opts::new(
                "queue_messages",
                "Messages ready in a queue of this service, as the broker reports them",
            )
            .namespace("campaign_manager"),
            &["queue"],
        )?;
        let consumers = IntGaugeVec::new(
            Opts::new(
                "queue_consumers",
                "Consumers attached to a queue of this service (of any process), as the broker reports them",
            )
            .namespace("campaign_manager"),
            &["queue"],
        )?;
        registry.register(Box::new(messages.clone()))?;
        registry.register(Box::new(consumers.clone()))?;
        Ok(QueueGauges {
            messages,
            consumers,
        })
    }

    /// Reads `queues` every `interval` until `stop` turns true.
    pub async fn watch(
        self,
        conn: BusConnection,
        queues: Vec<String>,
        interval: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            self.read_all(&conn, &queues).await;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// One round: every queue read, or its series removed.
    pub async fn read_all(&self, conn: &BusConnection, queues: &[String]) {
        let mut channel = None;
        for queue in queues {
            if channel.is_none() {
                channel = conn.channel().await.ok().map(|(ch, _)| ch);
            }
            let read = match &channel {
                Some(ch) => read_queue(ch, queue).await,
                None => Err(BusError::Unavailable("no channel".into())),
            };
            match read {
                Ok((messages, consumers)) => {
                    self.messages
                        .with_label_values(&[queue.as_str()])
                        .set(i64::from(messages));
                    self.consumers
                        .with_label_values(&[queue.as_str()])
                        .set(i64::from(consumers));
                }
                Err(e) => {
                    tracing::debug!(queue = %queue, error = %e, "cannot read queue depth");
                    let _ = self.messages.remove_label_values(&[queue.as_str()]);
                    let _ = self.consumers.remove_label_values(&[queue.as_str()]);
                    // A failed passive declare closes the channel: take a new one.
                    if let Some(ch) = channel.take() {
                        let _ = ch.close(200, "queue gauges".into()).await;
                    }
                }
            }
        }
        if let Some(ch) = channel {
            let _ = ch.close(200, "queue gauges".into()).await;
        }
    }
}

async fn read_queue(channel: &lapin::Channel, queue: &str) -> Result<(u32, u32), BusError> {
    let declared = tokio::time::timeout(
        Duration::from_secs(3),
        channel.queue_declare(
            short(queue)?,
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .map_err(|_| BusError::Timeout(Duration::from_secs(3), "passive queue declare"))??;
    Ok((declared.message_count(), declared.consumer_count()))
}
