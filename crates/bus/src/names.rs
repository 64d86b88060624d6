//! Queue and exchange names used on the bus (docs/contract.md#rabbitmq).
//!
//! Every name comes from this struct (itself filled from config), never from a literal at the call
//! site, so that `Default` gives the platform's names while tests use `Names::prefixed` to get a
//! private namespace and run in parallel on one broker.

/// All queue and exchange names the service touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// Our RPC request queue (durable).
    pub request_queue: String,
    /// Our event exchange on the fanout bus (fanout, durable; `--event_bus fanout`).
    pub event_exchange: String,
    /// The platform's event exchange on the topic bus (topic, durable), shared by every
    /// service: we publish our events and bind our subscribe queue there (`--event_bus topic`).
    pub topic_exchange: String,
    /// Our internal change exchange (fanout, durable): a short notice per `campaign_*` /
    /// `outplan_*` event, heard by every process's tick cache (not part of the platform's
    /// contract; the event exchange carries every event unchanged).
    pub change_exchange: String,
    /// Our subscribe queue (durable), bound to the peer event exchanges.
    pub subscribe_queue: String,
    /// Durable dead-letter queue of the subscribe queue: events that failed every retry wait
    /// here for an operator (`campaign-control events dead ...`). `<subscribe_queue>.dead`.
    pub subscribe_dead_queue: String,
    /// call-manager's event exchange on the fanout bus.
    pub call_event_exchange: String,
    /// flow-manager's event exchange on the fanout bus.
    pub flow_event_exchange: String,
    /// outdial-manager's request queue.
    pub outdial_queue: String,
    /// call-manager's request queue.
    pub call_queue: String,
    /// flow-manager's request queue.
    pub flow_queue: String,
    /// queue-manager's request queue.
    pub queue_queue: String,
    /// webhook-manager's request queue.
    pub webhook_queue: String,
}

impl Default for Names {
    fn default() -> Self {
        Self {
            request_queue: "bin-manager.campaign-manager.request".into(),
            event_exchange: "bin-manager.campaign-manager.event".into(),
            topic_exchange: "bin-manager.event".into(),
            change_exchange: "bin-manager.campaign-manager.changes".into(),
            subscribe_queue: "bin-manager.campaign-manager.subscribe".into(),
            subscribe_dead_queue: "bin-manager.campaign-manager.subscribe.dead".into(),
            call_event_exchange: "bin-manager.call-manager.event".into(),
            flow_event_exchange: "bin-manager.flow-manager.event".into(),
            outdial_queue: "bin-manager.outdial-manager.request".into(),
            call_queue: "bin-manager.call-manager.request".into(),
            flow_queue: "bin-manager.flow-manager.request".into(),
            queue_queue: "bin-manager.queue-manager.request".into(),
            webhook_queue: "bin-manager.webhook-manager.request".into(),
        }
    }
}

impl Names {
    /// The platform names, each prefixed with `"<prefix>."` (for tests).
    pub fn prefixed(prefix: &str) -> Self {
        let d = Self::default();
        let p = |s: String| format!("{prefix}.{s}");
        Self {
            request_queue: p(d.request_queue),
            event_exchange: p(d.event_exchange),
            topic_exchange: p(d.topic_exchange),
            change_exchange: p(d.change_exchange),
            subscribe_queue: p(d.subscribe_queue),
            subscribe_dead_queue: p(d.subscribe_dead_queue),
            call_event_exchange: p(d.call_event_exchange),
            flow_event_exchange: p(d.flow_event_exchange),
            outdial_queue: p(d.outdial_queue),
            call_queue: p(d.call_queue),
            flow_queue: p(d.flow_queue),
            queue_queue: p(d.queue_queue),
            webhook_queue: p(d.webhook_queue),
        }
    }

    /// Name of the retry queue for retry level `level` (1-based) of the subscribe queue.
    pub fn subscribe_retry_queue(&self, level: usize) -> String {
        format!("{}.retry.{level}", self.subscribe_queue)
    }

    /// Every queue this service declares itself, given `retry_levels` subscriber retry levels.
    pub fn owned_queues(&self, retry_levels: usize) -> Vec<String> {
        let mut v = vec![
            self.request_queue.clone(),
            self.subscribe_queue.clone(),
            self.subscribe_dead_queue.clone(),
        ];
        v.extend((1..=retry_levels).map(|l| self.subscribe_retry_queue(l)));
        v
    }

    /// Every exchange this service may declare. The topic exchange is shared by the whole
    /// platform: delete these only for prefixed (test) names.
    pub fn owned_exchanges(&self) -> Vec<String> {
        vec![
            self.event_exchange.clone(),
            self.topic_exchange.clone(),
            self.change_exchange.clone(),
            self.call_event_exchange.clone(),
            self.flow_event_exchange.clone(),
        ]
    }
}
