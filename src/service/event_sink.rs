//! Events out, as the service sees them: it hands every [`DomainEvent`] to an [`EventSink`] and
//! knows nothing of how it travels. The production sink (RabbitMQ + webhooks) is
//! `crate::notify::BusNotifier`, outside this layer; [`RecordingEvents`] keeps them for tests.

use std::sync::Mutex;

use async_trait::async_trait;

use crate::model::DomainEvent;

/// Where the service's domain events go. Emitting never fails the business operation: a sink
/// logs and counts its own failures, as the platform does.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Takes one event (the record after the change).
    async fn emit(&self, event: DomainEvent);
}

/// A sink that keeps the events in order (for tests).
#[derive(Default)]
pub struct RecordingEvents {
    /// Every emitted event, oldest first.
    pub events: Mutex<Vec<DomainEvent>>,
}

impl RecordingEvents {
    /// The recorded events' contract names.
    pub fn types(&self) -> Vec<String> {
        self.events
            .lock()
            .map(|e| e.iter().map(|e| e.name().to_owned()).collect())
            .unwrap_or_default()
    }
}

#[async_trait]
impl EventSink for RecordingEvents {
    async fn emit(&self, event: DomainEvent) {
        if let Ok(mut e) = self.events.lock() {
            e.push(event);
        }
    }
}
