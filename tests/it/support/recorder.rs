//! A recording peer: stands between the service and the simulator on the service's peer
//! request queues, logs every request in arrival order and answers with the simulator's own
//! reply (computed in-process by `Sim::handle_local`, so the simulator's state and injected
//! faults apply as usual). Tests read the log to check the exact sequence of peer requests,
//! undo steps included.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use campaign_manager::bus::{Bus, Request, RequestHandler, Response};
use campaign_sim::{Service, Sim};
use serde_json::Value;

use super::{TestNames, TestSystem, amqp_url};

/// One request a peer received.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// Which peer.
    pub service: Service,
    /// `GET`, `PUT`...
    pub method: String,
    /// The URI.
    pub uri: String,
    /// The JSON body (`Null` when none).
    pub body: Value,
    /// The status the peer answered.
    pub status: u16,
}

impl Seen {
    /// `METHOD uri`, plus what identifies the change for the writes the tests look at:
    /// ` campaign_id=<id>` for an outdial claim/release, ` queue_join=<ids>` for flow actions.
    pub fn line(&self) -> String {
        let mut line = format!("{} {}", self.method, self.uri);
        if let Some(c) = self.body.get("campaign_id").and_then(Value::as_str) {
            line.push_str(&format!(" campaign_id={c}"));
        }
        if let Some(actions) = self.body.get("actions").and_then(Value::as_array) {
            let queues: Vec<&str> = actions
                .iter()
                .filter(|a| a["type"] == "queue_join")
                .filter_map(|a| a["option"]["queue_id"].as_str())
                .collect();
            line.push_str(&format!(" queue_join={}", queues.join(",")));
        }
        if self.status != 200 {
            line.push_str(&format!(" -> {}", self.status));
        }
        line
    }
}

struct Proxy {
    service: Service,
    sim: Sim,
    log: Arc<Mutex<Vec<Seen>>>,
}

#[async_trait]
impl RequestHandler for Proxy {
    async fn handle(&self, req: Request) -> Response {
        let res = self.sim.handle_local(self.service, &req);
        let body = req
            .data
            .as_deref()
            .and_then(|d| serde_json::from_str(d.get()).ok())
            .unwrap_or(Value::Null);
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Seen {
                service: self.service,
                method: req.method.clone(),
                uri: req.uri.clone(),
                body,
                status: res.status_code,
            });
        res
    }
}

/// The whole system with the recording peer in front of the simulator.
pub struct RecordedSystem {
    /// Service, simulator (on its own queues) and client.
    pub sys: TestSystem,
    log: Arc<Mutex<Vec<Seen>>>,
    bus: Bus,
    _sim_names: TestNames,
}

impl RecordedSystem {
    /// Starts the simulator on private queues, the service, and the recording peer on the
    /// service's outdial/call/flow/queue/webhook request queues.
    pub async fn start(scenario: campaign_sim::Scenario) -> RecordedSystem {
        let sim_names = TestNames::new();
        let sys = TestSystem::start_with_sim_on(scenario, |_| {}, Some(&sim_names.names)).await;
        let bus = Bus::connect(
            &amqp_url(),
            sys.names.names.clone(),
            &prometheus::Registry::new(),
        )
        .await
        .expect("recorder bus");
        let log = Arc::new(Mutex::new(Vec::new()));
        let n = &sys.names.names;
        for (service, queue) in [
            (Service::Outdial, &n.outdial_queue),
            (Service::Call, &n.call_queue),
            (Service::Flow, &n.flow_queue),
            (Service::Queue, &n.queue_queue),
            (Service::Webhook, &n.webhook_queue),
        ] {
            let proxy = Arc::new(Proxy {
                service,
                sim: sys.sim.clone(),
                log: log.clone(),
            });
            bus.serve_requests_on(queue, proxy, 8)
                .await
                .expect("serve a peer queue");
        }
        RecordedSystem {
            sys,
            log,
            bus,
            _sim_names: sim_names,
        }
    }

    /// Forgets what was recorded so far.
    pub fn clear(&self) {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The requests to outdial-, flow- and queue-manager since the last `clear`, as
    /// [`Seen::line`]s (webhooks and calls left out: they are not what these tests follow).
    pub fn lines(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|s| matches!(s.service, Service::Outdial | Service::Flow | Service::Queue))
            .map(Seen::line)
            .collect()
    }

    /// Stops the service, then the recorder and the simulator.
    pub async fn stop(self) {
        let RecordedSystem {
            mut sys,
            bus,
            _sim_names,
            ..
        } = self;
        if let Some(app) = sys.app.take() {
            app.stop().await;
        }
        bus.shutdown().await;
        sys.stop().await;
        drop(_sim_names);
    }
}
