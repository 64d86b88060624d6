//! Events out: every change is published on the event exchange (full internal record) and,
//! for customers, sent to webhook-manager (the customer-facing shape). Publishing never fails
//! the business operation: it is logged and counted, as on the platform.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use serde_json::Value;
use uuid::Uuid;

use crate::bus::{Event, EventPublisher};
use crate::metrics::Metrics;
use crate::peers::WebhookManager;

/// Publishes an event about a resource.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// `payload` goes on the bus; `webhook` (the customer-facing shape) to the customer's
    /// webhook when `customer_id` is not nil.
    async fn notify(&self, event_type: &str, customer_id: Uuid, payload: Value, webhook: Value);
}

/// The production notifier: bus event + webhook, in the background.
pub struct BusNotifier {
    publisher: EventPublisher,
    webhook: Arc<dyn WebhookManager>,
    metrics: Metrics,
}

impl BusNotifier {
    /// A notifier publishing with `publisher` and sending webhooks through `webhook`.
    pub fn new(
        publisher: EventPublisher,
        webhook: Arc<dyn WebhookManager>,
        metrics: Metrics,
    ) -> BusNotifier {
        BusNotifier {
            publisher,
            webhook,
            metrics,
        }
    }
}

#[async_trait]
impl Notifier for BusNotifier {
    async fn notify(&self, event_type: &str, customer_id: Uuid, payload: Value, webhook: Value) {
        let started = Instant::now();
        match Event::json(event_type, &payload) {
            Ok(event) => match self.publisher.publish(&event).await {
                Ok(()) => self
                    .metrics
                    .notify_total
                    .with_label_values(&[event_type])
                    .inc(),
                Err(e) => tracing::warn!(event_type, error = %e, "event publish failed"),
            },
            Err(e) => tracing::error!(event_type, error = %e, "event not encodable"),
        }
        if !customer_id.is_nil() {
            // The webhook RPC waits for a reply (up to 3 s); don't hold the caller for it.
            let hook = self.webhook.clone();
            let event_type = event_type.to_owned();
            tokio::spawn(async move {
                if let Err(e) = hook.send(customer_id, &event_type, webhook).await {
                    tracing::info!(event_type, %customer_id, error = %e, "webhook not delivered");
                }
            });
        }
        self.metrics
            .notify_process_time
            .with_label_values(&[event_type])
            .observe(started.elapsed().as_secs_f64() * 1000.0);
    }
}

/// A notifier that records events (for tests).
#[derive(Default)]
pub struct RecordingNotifier {
    /// `(event_type, payload)` in order.
    pub events: Mutex<Vec<(String, Value)>>,
}

impl RecordingNotifier {
    /// The recorded event types.
    pub fn types(&self) -> Vec<String> {
        self.events
            .lock()
            .map(|e| e.iter().map(|(t, _)| t.clone()).collect())
            .unwrap_or_default()
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    async fn notify(&self, event_type: &str, _customer_id: Uuid, payload: Value, _webhook: Value) {
        if let Ok(mut e) = self.events.lock() {
            e.push((event_type.to_owned(), payload));
        }
    }
}
