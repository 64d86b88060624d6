//! The whole simulated platform as one plain value, and what happens when a timer fires.
//!
//! Everything the simulator knows lives in `SimState` behind a single mutex in the running `Sim`:
//! requests are short, so one lock keeps every cross-service rule (a call finds its outdial target,
//! an activeflow needs its flow) trivially consistent. Nothing here does I/O or reads the clock;
//! the transport passes `now` in and publishes the `Publish`es that come out.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use serde::Serialize;
use uuid::Uuid;

use super::calls::Calls;
use super::faults::Faults;
use super::flows::Flows;
use super::outdials::Outdials;
use super::queues::Queues;
use super::scenario::{Outcome, Scenario};
use super::service::Service;
use super::webhooks::Webhooks;
use crate::bus::Event;
use crate::bus::envelope::{DATA_TYPE_JSON, to_raw};

/// `publisher` of the events call-manager publishes.
pub const CALL_MANAGER: &str = "call-manager";
/// `publisher` of the events flow-manager publishes.
pub const FLOW_MANAGER: &str = "flow-manager";

/// Which peer event exchange an event goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    /// `bin-manager.call-manager.event`.
    Call,
    /// `bin-manager.flow-manager.event`.
    Flow,
}

/// An event to publish.
#[derive(Debug, Clone)]
pub struct Publish {
    /// Target exchange.
    pub exchange: Exchange,
    /// The envelope.
    pub event: Event,
}

/// Something to do later, produced by a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Hang the call up after the delay.
    HangUp {
        /// Call id.
        call_id: Uuid,
        /// Delay from now.
        after: Duration,
    },
    /// End the activeflow after the delay.
    EndActiveflow {
        /// Activeflow id.
        id: Uuid,
        /// Delay from now.
        after: Duration,
    },
}

/// A snapshot of counters for tests, the demo and the admin endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Requests received per service (faulted ones included).
    pub requests: HashMap<Service, u64>,
    /// Calls created.
    pub calls: usize,
    /// Calls not hung up yet.
    pub calls_live: usize,
    /// Ended calls per outcome.
    pub calls_ended: HashMap<Outcome, usize>,
    /// Activeflows created.
    pub activeflows: usize,
    /// Activeflows not ended yet.
    pub activeflows_live: usize,
    /// Webhooks accepted.
    pub webhooks: u64,
    /// Targets (all outdials) idle / progressing / done.
    pub targets_idle: usize,
    /// See `targets_idle`.
    pub targets_progressing: usize,
    /// See `targets_idle`.
    pub targets_done: usize,
}

/// The simulated platform.
pub struct SimState {
    /// outdial-manager.
    pub outdials: Outdials,
    /// queue-manager.
    pub queues: Queues,
    /// call-manager.
    pub calls: Calls,
    /// flow-manager.
    pub flows: Flows,
    /// webhook-manager.
    pub webhooks: Webhooks,
    /// Pending failure injections.
    pub faults: Faults,
    /// Current scenario.
    pub scenario: Scenario,
    /// Seeded RNG of the scenario.
    pub rng: StdRng,
    /// Requests received per service.
    pub requests: HashMap<Service, u64>,
}

fn event(kind: &str, publisher: &str, data: &impl Serialize) -> Option<Event> {
    match to_raw(data) {
        Ok(raw) => Some(Event {
            r#type: kind.to_string(),
            publisher: publisher.to_string(),
            data_type: DATA_TYPE_JSON.to_string(),
            data: Some(raw),
        }),
        Err(error) => {
            tracing::error!(%error, kind, "cannot serialize event");
            None
        }
    }
}

impl SimState {
    /// An empty platform running `scenario`.
    pub fn new(scenario: Scenario) -> SimState {
        SimState {
            outdials: Outdials::default(),
            queues: Queues::default(),
            calls: Calls::default(),
            flows: Flows::default(),
            webhooks: Webhooks::default(),
            faults: Faults::default(),
            rng: scenario.rng(),
            scenario,
            requests: HashMap::new(),
        }
    }

    /// Replace the scenario and reseed the RNG.
    pub fn set_scenario(&mut self, scenario: Scenario) {
        self.rng = scenario.rng();
        self.scenario = scenario;
    }

    /// The attempt log: every `progressing` request, with the call placed for it and, once it
    /// ended, its hangup reason, talk time and hangup time.
    pub fn attempts(&self) -> Vec<super::outdials::Attempt> {
        let mut out = self.outdials.attempts().to_vec();
        for a in &mut out {
            let Some(call) = a.call_id.and_then(|id| self.calls.get(id)) else {
                continue;
            };
            let Some(hangup) = call.tm_hangup else {
                continue;
            };
            a.tm_hangup = Some(hangup);
            a.hangup_reason = Some(call.hangup_reason().to_owned());
            a.talk_ms = call
                .tm_progressing(hangup)
                .map(|answer| (hangup - answer).num_milliseconds());
        }
        out
    }

    /// The call's timer fired: hang it up and say what to publish (`call_hangup`, and the call's
    /// `activeflow_deleted` when the scenario asks for it). Empty if already ended.
    pub fn hang_up(&mut self, call_id: Uuid, now: DateTime<Utc>) -> Vec<Publish> {
        let with_af = self.scenario.call_activeflow_events;
        let Some(call) = self.calls.hang_up(call_id, now) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(ev) = event("call_hangup", CALL_MANAGER, &call.json(now)) {
            out.push(Publish {
                exchange: Exchange::Call,
                event: ev,
            });
        }
        if with_af && !call.activeflow_id.is_nil() {
            let data = serde_json::json!({
                "id": call.activeflow_id,
                "customer_id": call.customer_id,
                "flow_id": call.flow_id,
                "status": "ended",
                "reference_type": "call",
                "reference_id": call.id,
            });
            if let Some(ev) = event("activeflow_deleted", FLOW_MANAGER, &data) {
                out.push(Publish {
                    exchange: Exchange::Flow,
                    event: ev,
                });
            }
        }
        out
    }

    /// The activeflow's timer fired: end it and return its `activeflow_deleted` (if running).
    pub fn end_activeflow(&mut self, id: Uuid, now: DateTime<Utc>) -> Vec<Publish> {
        let Some(af) = self.flows.finish(id, now) else {
            return Vec::new();
        };
        event("activeflow_deleted", FLOW_MANAGER, &af.json())
            .map(|event| Publish {
                exchange: Exchange::Flow,
                event,
            })
            .into_iter()
            .collect()
    }

    /// Current counters.
    pub fn stats(&self) -> Stats {
        let (idle, progressing, done) = self.outdials.status_counts(None);
        let afs = self.flows.activeflows();
        Stats {
            requests: self.requests.clone(),
            calls: self.calls.len(),
            calls_live: self.calls.live(),
            calls_ended: self.calls.ended_by_outcome(),
            activeflows: afs.len(),
            activeflows_live: self.flows.live_activeflows(),
            webhooks: self.webhooks.count(),
            targets_idle: idle,
            targets_progressing: progressing,
            targets_done: done,
        }
    }
}
