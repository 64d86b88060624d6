//! `campaign-sim`: stand-ins for outdial-, call-, flow-, queue- and webhook-manager.
//!
//! The simulator speaks the peers' side of docs/contract.md#outbound-calls with in-memory state. It is
//! split so that almost everything is pure and unit-tested: per-concept state (`outdials`, `queues`,
//! `calls`, `flows`, `webhooks`), the `scenario` that decides call outcomes, `faults` for failure
//! injection, `routes` (request in, response + timers out) over the aggregate `state`. This module
//! is the thin async shell: it serves the five request queues through the project's `bus`, runs the
//! hangup/activeflow timers and publishes the resulting events as the peers do: on the platform's
//! topic exchange keyed `call-manager.call.<call id>.hangup` /
//! `flow-manager.activeflow.<activeflow id>.deleted` (the default), or on the peers' own fanout
//! exchanges ([`Sim::start_on`] with [`EventBus::Fanout`]). `admin` exposes the admin API over
//! HTTP for the standalone binary.
//!
//! In-process use (tests, demo):
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use campaign_bus::Names;
//! use campaign_sim::{Scenario, Sim, Outcome};
//! let sim = Sim::start(Names::prefixed("t1"), "amqp://guest:guest@127.0.0.1:5672/%2f",
//!                      Scenario::instant(Outcome::Answered)).await?;
//! let list = sim.create_outdial(uuid::Uuid::new_v4(), 100, 1);
//! let queue = sim.create_queue(uuid::Uuid::new_v4(), 10);
//! // ... run campaign-manager against the same names ...
//! let calls = sim.calls();
//! sim.shutdown_and_delete().await;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod calls;
pub mod faults;
pub mod flows;
pub mod outdials;
pub mod queues;
pub mod routes;
pub mod scenario;
pub mod service;
pub mod state;
pub mod webhooks;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use tokio::sync::watch;
use tracing::warn;
use uuid::Uuid;

// The project's crates under the names the modules use.
use campaign_bus as bus;
use campaign_model as model;

use crate::bus::error::short;
use crate::bus::{
    Bus, BusError, BusOptions, Event, EventBus, EventPublisher, Names, Request, RequestHandler,
    Response,
};
use crate::model::Address;

pub use calls::CallRecord;
pub use faults::{Fault, FaultKind};
pub use flows::{SimActiveflow, SimFlow};
pub use outdials::{Attempt, SimOutdial, SimTarget, TargetSpec, TargetState};
pub use scenario::{
    AMD_DETECTION_MS, CallPlan, MsRange, Outcome, Override, Scenario, VOICEMAIL_TALK_MS, Weights,
};
pub use service::Service;
pub use state::{Effect, Exchange, Publish, SimState, Stats};

/// Requests handled concurrently per service queue.
pub const CONCURRENCY: usize = 32;

/// Errors of starting or driving the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Broker connection or topology setup failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// An admin call referred to an unknown outdial/queue.
    #[error("not found: {0}")]
    NotFound(String),
    /// An admin call had bad arguments.
    #[error("invalid: {0}")]
    Invalid(String),
}

struct Shared {
    state: Mutex<SimState>,
    call_events: EventPublisher,
    flow_events: EventPublisher,
    shutdown: watch::Sender<bool>,
    published: AtomicU64,
    publish_failures: AtomicU64,
    numbers: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn publish(&self, items: Vec<Publish>) {
        for p in items {
            let publisher = match p.exchange {
                Exchange::Call => &self.call_events,
                Exchange::Flow => &self.flow_events,
            };
            match publisher
                .publish_addressed(&p.event, &subscription_id(&p.event))
                .await
            {
                Ok(_) => {
                    self.published.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    self.publish_failures.fetch_add(1, Ordering::Relaxed);
                    warn!(%error, kind = %p.event.r#type, "sim event publish failed");
                }
            }
        }
    }

    /// Start the timers of `effects`; each fires once unless the sim shuts down first.
    fn schedule(self: &Arc<Self>, effects: Vec<Effect>) {
        for effect in effects {
            let shared = self.clone();
            let mut stop = self.shutdown.subscribe();
            tokio::spawn(async move {
                let after = match effect {
                    Effect::HangUp { after, .. } | Effect::EndActiveflow { after, .. } => after,
                };
                tokio::select! {
                    _ = tokio::time::sleep(after) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let items = {
                    let mut st = shared.lock();
                    match effect {
                        Effect::HangUp { call_id, .. } => st.hang_up(call_id, Utc::now()),
                        Effect::EndActiveflow { id, .. } => st.end_activeflow(id, Utc::now()),
                    }
                };
                shared.publish(items).await;
            });
        }
    }
}

impl Shared {
    /// A request taken now that takes effect only after `after` (a stalled consumer): handled
    /// then, without faults, and its reply dropped.
    fn take_effect_later(self: &Arc<Self>, service: Service, req: Request, after: Duration) {
        let shared = self.clone();
        let mut stop = self.shutdown.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(after) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let handled = shared.lock().route(service, &req, Utc::now());
            shared.schedule(handled.effects);
        });
    }
}

/// The address the platform's peers publish an event under: the top-level `id` of its data (a
/// call's or an activeflow's own id; empty, hence the placeholder, when there is none).
fn subscription_id(event: &Event) -> String {
    #[derive(serde::Deserialize)]
    struct Id {
        #[serde(default)]
        id: String,
    }
    event.data_as::<Id>().map(|d| d.id).unwrap_or_default()
}

struct ServiceHandler {
    service: Service,
    shared: Arc<Shared>,
}

#[async_trait]
impl RequestHandler for ServiceHandler {
    async fn handle(&self, req: Request) -> Response {
        let handled = self.shared.lock().handle(self.service, &req, Utc::now());
        self.shared.schedule(handled.effects);
        let mut stop = self.shared.shutdown.subscribe();
        if let Some(after) = handled.late_effect {
            // Never answered: the handler holds its slot until the simulator stops, as a
            // stalled consumer holds its unacknowledged message.
            self.shared.take_effect_later(self.service, req, after);
            let _ = stop.wait_for(|s| *s).await;
        } else if let Some(delay) = handled.delay {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        }
        handled.response
    }
}

/// A running simulator: serves the five peer request queues of `names` until shut down.
/// Cheap to clone; every clone drives the same simulator.
#[derive(Clone)]
pub struct Sim {
    shared: Arc<Shared>,
    bus: Arc<Bus>,
    names: Names,
    event_bus: EventBus,
    amqp_url: String,
}

impl Sim {
    /// [`Sim::start_on`] the topic bus (the platform today).
    pub async fn start(names: Names, amqp_url: &str, scenario: Scenario) -> Result<Sim, SimError> {
        Sim::start_on(names, amqp_url, scenario, EventBus::Topic).await
    }

    /// Connect to `amqp_url`, declare where the peers' events go on `event_bus` (the topic
    /// exchange, or the two peer fanout exchanges) and serve the outdial, call, flow, queue and
    /// webhook request queues of `names`. Returns once all five consumers are registered.
    pub async fn start_on(
        names: Names,
        amqp_url: &str,
        scenario: Scenario,
        event_bus: EventBus,
    ) -> Result<Sim, SimError> {
        let mut options = BusOptions {
            event_bus,
            ..BusOptions::default()
        };
        options.connection.connection_name = format!("campaign-sim-{}", std::process::id());
        let bus = Bus::connect_with(
            amqp_url,
            names.clone(),
            &prometheus::Registry::new(),
            options,
        )
        .await?;
        let timeout = Duration::from_secs(5);
        let conn = bus.connection().clone();
        let publisher = |fanout_exchange: &str| match event_bus {
            EventBus::Topic => EventPublisher::on(
                conn.clone(),
                EventBus::Topic,
                names.topic_exchange.clone(),
                timeout,
            ),
            EventBus::Fanout => EventPublisher::new(conn.clone(), fanout_exchange.into(), timeout),
        };
        let (call_events, flow_events) = (
            publisher(&names.call_event_exchange),
            publisher(&names.flow_event_exchange),
        );
        call_events.declare().await?;
        flow_events.declare().await?;
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            state: Mutex::new(SimState::new(scenario)),
            call_events,
            flow_events,
            shutdown,
            published: AtomicU64::new(0),
            publish_failures: AtomicU64::new(0),
            numbers: AtomicU64::new(0),
        });
        let sim = Sim {
            shared,
            bus: Arc::new(bus),
            names,
            event_bus,
            amqp_url: amqp_url.to_string(),
        };
        for service in Service::ALL {
            let handler = Arc::new(ServiceHandler {
                service,
                shared: sim.shared.clone(),
            });
            let queue = sim.queue_of(service).to_string();
            if let Err(e) = sim
                .bus
                .serve_requests_on(&queue, handler, CONCURRENCY)
                .await
            {
                sim.shutdown().await;
                return Err(e.into());
            }
        }
        Ok(sim)
    }

    /// The names this simulator serves.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Where this simulator publishes its events.
    pub fn event_bus(&self) -> EventBus {
        self.event_bus
    }

    /// The bus (e.g. for its RPC client in tests).
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// The request queue of `service`.
    pub fn queue_of(&self, service: Service) -> &str {
        let n = &self.names;
        match service {
            Service::Outdial => &n.outdial_queue,
            Service::Call => &n.call_queue,
            Service::Flow => &n.flow_queue,
            Service::Queue => &n.queue_queue,
            Service::Webhook => &n.webhook_queue,
        }
    }

    /// Run `f` on the locked state (for anything the helpers below do not cover). Keep it short:
    /// request handling waits for the lock.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut SimState) -> R) -> R {
        f(&mut self.shared.lock())
    }

    /// Handle a request as if it came from the bus (no transport; timers still run, and a
    /// `late_effect_ms` request still takes effect later).
    pub fn handle_local(&self, service: Service, req: &Request) -> Response {
        let handled = self.shared.lock().handle(service, req, Utc::now());
        self.shared.schedule(handled.effects);
        if let Some(after) = handled.late_effect {
            self.shared.take_effect_later(service, req.clone(), after);
        }
        handled.response
    }

    fn next_number(&self) -> String {
        let n = self.shared.numbers.fetch_add(1, Ordering::Relaxed);
        format!("+8210{n:08}")
    }

    /// Create an outdial owned by `customer_id` with `targets` targets of `destinations`
    /// (1..=5) generated `tel` destinations each. Returns the outdial id.
    pub fn create_outdial(&self, customer_id: Uuid, targets: usize, destinations: usize) -> Uuid {
        let now = Utc::now();
        let id = self
            .shared
            .lock()
            .outdials
            .create(None, customer_id, "sim outdial", now);
        // `id` exists, so adding generated targets cannot fail.
        let _ = self.add_targets(id, targets, destinations);
        id
    }

    /// Add `count` targets with `destinations` (1..=5) generated `tel` destinations each.
    pub fn add_targets(
        &self,
        outdial_id: Uuid,
        count: usize,
        destinations: usize,
    ) -> Result<Vec<Uuid>, SimError> {
        if !(1..=5).contains(&destinations) {
            return Err(SimError::Invalid(format!(
                "destinations {destinations} not in 1..=5"
            )));
        }
        let specs: Vec<TargetSpec> = (0..count)
            .map(|_| TargetSpec {
                destinations: (0..destinations)
                    .map(|_| Some(Address::tel(&self.next_number())))
                    .collect(),
                ..TargetSpec::default()
            })
            .collect();
        specs
            .into_iter()
            .map(|s| self.add_target(outdial_id, s))
            .collect()
    }

    /// Add one target as specified.
    pub fn add_target(&self, outdial_id: Uuid, spec: TargetSpec) -> Result<Uuid, SimError> {
        self.shared
            .lock()
            .outdials
            .add_target(outdial_id, spec, Utc::now())
            .map_err(|e| match e {
                outdials::OutdialError::NotFound => {
                    SimError::NotFound(format!("outdial {outdial_id}"))
                }
                outdials::OutdialError::Invalid(m) => SimError::Invalid(m),
            })
    }

    /// Soft-delete an outdial (campaign validation should then reject it).
    pub fn delete_outdial(&self, id: Uuid) -> Result<(), SimError> {
        self.shared
            .lock()
            .outdials
            .delete(id, Utc::now())
            .map_err(|_| SimError::NotFound(format!("outdial {id}")))
    }

    /// An outdial.
    pub fn outdial(&self, id: Uuid) -> Option<SimOutdial> {
        self.shared.lock().outdials.get(id).cloned()
    }

    /// The targets of an outdial, in insertion order.
    pub fn targets(&self, outdial_id: Uuid) -> Vec<SimTarget> {
        self.shared
            .lock()
            .outdials
            .targets_of(outdial_id)
            .map(|v| v.into_iter().cloned().collect())
            .unwrap_or_default()
    }

    /// One target.
    pub fn target(&self, id: Uuid) -> Option<SimTarget> {
        self.shared.lock().outdials.target(id).cloned()
    }

    /// Every `progressing` request received, in order (one per dial attempt), with the call
    /// placed for it and how it ended (`GET /attempts`).
    pub fn attempts(&self) -> Vec<Attempt> {
        self.shared.lock().attempts()
    }

    /// Create a queue with `agents` available agents. Returns its id.
    pub fn create_queue(&self, customer_id: Uuid, agents: usize) -> Uuid {
        self.shared
            .lock()
            .queues
            .create(None, customer_id, agents, Utc::now())
    }

    /// Change a queue's available agent count (takes effect on the next agents request).
    pub fn set_queue_agents(&self, queue_id: Uuid, agents: usize) -> Result<(), SimError> {
        if self.shared.lock().queues.set_agents(queue_id, agents) {
            Ok(())
        } else {
            Err(SimError::NotFound(format!("queue {queue_id}")))
        }
    }

    /// Soft-delete a queue.
    pub fn delete_queue(&self, queue_id: Uuid) -> Result<(), SimError> {
        if self.shared.lock().queues.delete(queue_id, Utc::now()) {
            Ok(())
        } else {
            Err(SimError::NotFound(format!("queue {queue_id}")))
        }
    }

    /// Every call created, in creation order.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.shared.lock().calls.all()
    }

    /// Calls not hung up yet.
    pub fn live_calls(&self) -> usize {
        self.shared.lock().calls.live()
    }

    /// Every flow (deleted ones included, with `tm_delete`).
    pub fn flows(&self) -> Vec<SimFlow> {
        self.shared.lock().flows.all()
    }

    /// Every activeflow, in creation order.
    pub fn activeflows(&self) -> Vec<SimActiveflow> {
        self.shared.lock().flows.activeflows()
    }

    /// Webhooks accepted so far.
    pub fn webhook_count(&self) -> u64 {
        self.shared.lock().webhooks.count()
    }

    /// The most recent webhook bodies (bounded), oldest first.
    pub fn webhooks(&self) -> Vec<serde_json::Value> {
        self.shared.lock().webhooks.recent()
    }

    /// Add a failure injection rule.
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.add(fault);
    }

    /// Remove every pending failure injection.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Replace the scenario (reseeds the RNG); affects calls/activeflows created afterwards.
    pub fn set_scenario(&self, scenario: Scenario) {
        self.shared.lock().set_scenario(scenario);
    }

    /// The current scenario.
    pub fn scenario(&self) -> Scenario {
        self.shared.lock().scenario.clone()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.shared.lock().stats()
    }

    /// Events published / failed to publish so far.
    pub fn published_events(&self) -> (u64, u64) {
        (
            self.shared.published.load(Ordering::Relaxed),
            self.shared.publish_failures.load(Ordering::Relaxed),
        )
    }

    /// Wait until `pred(stats)` holds, polling every 20 ms, at most `timeout`; returns whether it held.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&Stats) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if pred(&self.stats()) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stop serving: pending timers are dropped (no more events), in-flight requests finish,
    /// then the connection closes. Queues and exchanges stay.
    pub async fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
        self.bus.shutdown().await;
    }

    /// `shutdown`, then delete the five request queues and the event exchanges of `names` it
    /// published to over a fresh connection (for tests using `Names::prefixed`; never on
    /// platform names).
    pub async fn shutdown_and_delete(&self) {
        self.shutdown().await;
        let props = lapin::ConnectionProperties::default();
        let connect = lapin::Connection::connect(&self.amqp_url, props);
        let Ok(Ok(conn)) = tokio::time::timeout(Duration::from_secs(5), connect).await else {
            warn!("sim cleanup: cannot connect");
            return;
        };
        if let Ok(ch) = conn.create_channel().await {
            for service in Service::ALL {
                if let Ok(q) = short(self.queue_of(service)) {
                    let _ = ch.queue_delete(q, QueueDeleteOptions::default()).await;
                }
            }
            let exchanges = match self.event_bus {
                EventBus::Topic => vec![&self.names.topic_exchange],
                EventBus::Fanout => vec![
                    &self.names.call_event_exchange,
                    &self.names.flow_event_exchange,
                ],
            };
            for ex in exchanges {
                if let Ok(ex) = short(ex) {
                    let _ = ch
                        .exchange_delete(ex, ExchangeDeleteOptions::default())
                        .await;
                }
            }
        }
        let _ = conn.close(200, "sim cleanup".into()).await;
    }
}
