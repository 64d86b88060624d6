//! RPC server: consumes our request queue and answers on `reply_to` (docs/contract.md#rabbitmq).
//!
//! The queue is durable, declared as the platform does but without the delayed-message exchange
//! (the plugin is not installed). Concurrency is bounded (prefetch = concurrency). Unlike the Go
//! service we ack only after the reply is published, so a crash mid-request redelivers it. A body
//! that is not a `Request` gets a bare 400 when it has a `reply_to` and is acked and logged
//! otherwise; a panicking handler yields a 500 instead of killing the worker.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use futures::FutureExt;
use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use tracing::{error, warn};

use super::consumer::{DeliveryProcessor, preview};
use super::envelope::{Request, Response};
use super::error::{BusError, short};

/// Application side of the RPC server.
#[async_trait]
pub trait RequestHandler: Send + Sync {
    /// Handle one request; every outcome, including errors, is a `Response`.
    async fn handle(&self, req: Request) -> Response;
}

/// Default number of requests processed concurrently.
pub const DEFAULT_CONCURRENCY: usize = 10;

pub(crate) struct RpcProcessor {
    pub queue: String,
    pub handler: Arc<dyn RequestHandler>,
}

/// Declare a durable request queue with the platform's arguments (none).
pub(crate) async fn declare_request_queue(
    channel: &lapin::Channel,
    queue: &str,
) -> Result<(), BusError> {
    channel
        .queue_declare(
            short(queue)?,
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

#[async_trait]
impl DeliveryProcessor for RpcProcessor {
    async fn setup(&self, channel: &lapin::Channel) -> Result<(), BusError> {
        declare_request_queue(channel, &self.queue).await
    }

    async fn process(&self, channel: lapin::Channel, delivery: Delivery) {
        let reply_to = delivery
            .properties
            .reply_to()
            .clone()
            .filter(|r| !r.as_str().is_empty());
        // An envelope is a JSON object; serde would also read the array form of a struct.
        let is_object = delivery.data.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        let parsed = if is_object {
            serde_json::from_slice::<Request>(&delivery.data)
        } else {
            Err(serde::de::Error::custom("envelope is not a JSON object"))
        };
        let response = match parsed {
            Ok(req) => {
                let fut = self.handler.handle(req);
                match AssertUnwindSafe(fut).catch_unwind().await {
                    Ok(resp) => resp,
                    Err(_) => {
                        error!(queue = %self.queue, "request handler panicked; replying 500");
                        Response::status(500)
                    }
                }
            }
            Err(err) => {
                warn!(queue = %self.queue, error = %err, has_reply_to = reply_to.is_some(),
                      body = %preview(&delivery.data), "unparseable request");
                Response::status(400)
            }
        };
        if let Some(reply_to) = reply_to {
            let body = serde_json::to_vec(&response)
                .unwrap_or_else(|_| br#"{"status_code":500,"data_type":""}"#.to_vec());
            let mut props = BasicProperties::default().with_content_type("text/plain".into());
            if let Some(corr) = delivery.properties.correlation_id().clone() {
                props = props.with_correlation_id(corr);
            }
            let published = async {
                channel
                    .basic_publish(
                        "".into(),
                        reply_to.clone(),
                        BasicPublishOptions::default(),
                        &body,
                        props,
                    )
                    .await?
                    .await
            }
            .await;
            if let Err(error) = published {
                warn!(queue = %self.queue, %error, %reply_to, "reply publish failed");
            }
        }
        if let Err(error) = delivery.acker.ack(BasicAckOptions::default()).await {
            warn!(queue = %self.queue, %error, "ack failed (message will be redelivered)");
        }
    }
}
