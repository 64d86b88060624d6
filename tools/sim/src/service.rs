//! The five platform services the simulator plays, one request queue each. Its own module so
//! that the fault table, the state and the request routing all name a service without
//! depending on each other.

use serde::{Deserialize, Serialize};

/// One of the simulated platform services (one request queue each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    /// outdial-manager.
    Outdial,
    /// call-manager.
    Call,
    /// flow-manager.
    Flow,
    /// queue-manager.
    Queue,
    /// webhook-manager.
    Webhook,
}

impl Service {
    /// All services.
    pub const ALL: [Service; 5] = [
        Service::Outdial,
        Service::Call,
        Service::Flow,
        Service::Queue,
        Service::Webhook,
    ];
}
