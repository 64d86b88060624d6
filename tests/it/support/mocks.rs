//! The peer mocks (mockall), configured by a test before the service is built.

#![allow(dead_code)]

use std::sync::Arc;

use campaign_manager::peers::{
    DialGate, MockCallManager, MockFlowManager, MockOutdialManager, MockQueueManager,
    MockWebhookManager, OpenGate, Peers,
};

/// One mock per peer service.
pub struct Mocks {
    /// outdial-manager.
    pub outdial: MockOutdialManager,
    /// call-manager.
    pub call: MockCallManager,
    /// flow-manager.
    pub flow: MockFlowManager,
    /// queue-manager.
    pub queue: MockQueueManager,
    /// webhook-manager.
    pub webhook: MockWebhookManager,
    /// Whether a dial's call request can be sent (never refusing unless a test says so).
    pub gate: Arc<dyn DialGate>,
}

impl Mocks {
    /// Mocks with no expectation set (any call fails the test).
    pub fn new() -> Mocks {
        Mocks {
            outdial: MockOutdialManager::new(),
            call: MockCallManager::new(),
            flow: MockFlowManager::new(),
            queue: MockQueueManager::new(),
            webhook: MockWebhookManager::new(),
            gate: Arc::new(OpenGate),
        }
    }

    /// The mocks as the service's peers.
    pub fn into_peers(self) -> Peers {
        Peers {
            outdial: Arc::new(self.outdial),
            call: Arc::new(self.call),
            flow: Arc::new(self.flow),
            queue: Arc::new(self.queue),
            webhook: Arc::new(self.webhook),
            gate: self.gate,
        }
    }
}
