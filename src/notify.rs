//! Events out over the wire: [`BusNotifier`] is the service's [`EventSink`] in production. Each
//! [`DomainEvent`] is published on the event bus under its contract name with the full record as
//! data (docs/contract.md#events-published) and, for customers, sent to webhook-manager in the
//! customer-facing shape. On the topic bus the event goes to the platform's topic exchange keyed
//! by its address ([`DomainEvent::subscription_id`]: the campaign for campaign and campaigncall
//! events), counted in `topic_publish_total{type,result}` and, when it has no address,
//! `topic_placeholder_total{type}`; on the fanout bus to our own fanout exchange, as always. A `campaign_*` / `outplan_*` event is also announced to the
//! service's own processes as a change notice on the internal change exchange
//! (`events::changes`). Publishing never fails the business operation: it is logged and
//! counted, as on the platform.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::bus::routing::is_placeholder;
use crate::bus::{Event, EventBus, EventPublisher};
use crate::events::changes;
use crate::metrics::Metrics;
use crate::model::DomainEvent;
use crate::peers::WebhookManager;
use crate::service::EventSink;

/// The production event sink: bus event (+ change notice) + webhook, the webhook in the
/// background.
pub struct BusNotifier {
    publisher: EventPublisher,
    changes: EventPublisher,
    webhook: Arc<dyn WebhookManager>,
    metrics: Metrics,
}

impl BusNotifier {
    /// A notifier publishing events with `publisher`, change notices with `changes`, and
    /// sending webhooks through `webhook`.
    pub fn new(
        publisher: EventPublisher,
        changes: EventPublisher,
        webhook: Arc<dyn WebhookManager>,
        metrics: Metrics,
    ) -> BusNotifier {
        BusNotifier {
            publisher,
            changes,
            webhook,
            metrics,
        }
    }
}

impl BusNotifier {
    /// Publishes one encoded event, counting it as the platform counts its publishes.
    async fn publish(&self, event_type: &'static str, wire: &Event, event: &DomainEvent) {
        let address = event.subscription_id().to_string();
        let topic = self.publisher.bus() == EventBus::Topic;
        if topic && is_placeholder(&address) {
            self.metrics
                .topic_placeholder_total
                .with_label_values(&[event_type])
                .inc();
        }
        let result = self.publisher.publish_addressed(wire, &address).await;
        if topic {
            let label = if result.is_ok() { "ok" } else { "error" };
            self.metrics
                .topic_publish_total
                .with_label_values(&[event_type, label])
                .inc();
        }
        match result {
            Ok(_) => self
                .metrics
                .notify_total
                .with_label_values(&[event_type])
                .inc(),
            Err(e) => {
                tracing::warn!(event_type, exchange = %self.publisher.exchange(), error = %e, "event publish failed")
            }
        }
    }
}

#[async_trait]
impl EventSink for BusNotifier {
    async fn emit(&self, event: DomainEvent) {
        let started = Instant::now();
        let event_type = event.name();
        match Event::json(event_type, &event.record()) {
            Ok(wire) => self.publish(event_type, &wire, &event).await,
            Err(e) => tracing::error!(event_type, error = %e, "event not encodable"),
        }
        if let Some(notice) = changes::notice(event_type, event.record_id())
            && let Err(e) = self.changes.publish(&notice).await
        {
            // The other processes' tick caches then see the change after their safety TTL.
            tracing::warn!(event_type, error = %e, "change notice publish failed");
        }
        let customer_id = event.customer_id();
        if !customer_id.is_nil() {
            // The webhook RPC waits for a reply (up to 3 s); don't hold the caller for it.
            let hook = self.webhook.clone();
            let data = event.webhook_json();
            tokio::spawn(async move {
                if let Err(e) = hook.send(customer_id, event_type, data).await {
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
