//! `campaign-sim` driven over the real RabbitMQ on localhost, the way campaign-manager drives it:
//! RPCs through the bus's RPC client, events read from queues bound where the simulator publishes
//! (the topic exchange by default, the peers' fanout exchanges on the fanout bus), and the HTTP
//! admin API over a raw socket. Each test uses its own `Names::prefixed` namespace and deletes
//! its queues and exchanges at the end.
//!
//! A file per concern: `routes.rs` (every peer route over the bus and the events it publishes,
//! errors, queues, webhooks and faults), `reads.rs` (call and activeflow reads in each state;
//! only a typed 404 is "none"), `faults.rs` (late replies and late effects), `admin_api.rs` (the
//! HTTP admin API); the rig they share is here.

mod admin_api;
mod faults;
mod reads;
mod routes;

use std::time::Duration;

use campaign_manager::bus::routing::routing_key;
use campaign_manager::bus::{Bus, BusOptions, Event, EventBus, Names, Request, Response};
use campaign_manager::model::{Action, Address, Call, OutdialTarget};
use campaign_manager::peers::{BusPeers, CallManager, CallRequest, FlowManager, PeerError};
use campaign_sim::{
    Fault, MsRange, Outcome, Override, Scenario, Service, Sim, TargetSpec, TargetState, admin,
};
use futures::StreamExt;
use rand::RngExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn uniq() -> String {
    let n: u64 = rand::rng().random();
    format!("simt{n:016x}")
}

/// A started simulator plus a client bus on the same names.
struct Env {
    sim: Sim,
    client: Bus,
    names: Names,
    finished: bool,
}

/// If a test panics before `finish`, still delete its queues and exchanges (on a thread with its
/// own runtime, since `Drop` cannot await).
impl Drop for Env {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let names = self.names.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(conn) =
                    lapin::Connection::connect(URL, lapin::ConnectionProperties::default()).await
                else {
                    return;
                };
                if let Ok(ch) = conn.create_channel().await {
                    for q in [
                        &names.outdial_queue,
                        &names.call_queue,
                        &names.flow_queue,
                        &names.queue_queue,
                        &names.webhook_queue,
                    ] {
                        let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
                    }
                    for x in [
                        &names.call_event_exchange,
                        &names.flow_event_exchange,
                        &names.topic_exchange,
                    ] {
                        let _ = ch
                            .exchange_delete(x.as_str().into(), Default::default())
                            .await;
                    }
                }
                let _ = conn.close(200, "test cleanup".into()).await;
            });
        })
        .join();
    }
}

impl Env {
    async fn start(scenario: Scenario) -> Env {
        Env::start_with_timeout(scenario, BusOptions::default().rpc.default_timeout).await
    }

    /// A simulator and a client whose calls time out after `rpc_timeout`.
    async fn start_with_timeout(scenario: Scenario, rpc_timeout: Duration) -> Env {
        Env::start_on(scenario, rpc_timeout, EventBus::Topic).await
    }

    /// A simulator publishing on `bus` and a client whose calls time out after `rpc_timeout`.
    async fn start_on(scenario: Scenario, rpc_timeout: Duration, bus: EventBus) -> Env {
        let names = Names::prefixed(&uniq());
        let sim = Sim::start_on(names.clone(), URL, scenario, bus)
            .await
            .expect("sim start");
        let mut o = BusOptions::default();
        o.connection.connection_name = "sim-test-client".into();
        o.rpc.default_timeout = rpc_timeout;
        let client = Bus::connect_with(URL, names.clone(), &prometheus::Registry::new(), o)
            .await
            .expect("client connect");
        Env {
            sim,
            client,
            names,
            finished: false,
        }
    }

    /// The typed peer clients campaign-manager uses, over the test's client bus.
    fn peers(&self) -> BusPeers {
        BusPeers::new(self.client.rpc(), self.names.clone())
    }

    async fn call(&self, service: Service, req: Request) -> Response {
        let queue = self.sim.queue_of(service).to_string();
        self.client.rpc().call(&queue, &req).await.expect("rpc")
    }

    async fn get(&self, service: Service, uri: &str) -> Response {
        self.call(service, Request::new("GET", uri)).await
    }

    async fn send(&self, service: Service, method: &str, uri: &str, body: Value) -> Response {
        let req = Request::new(method, uri).with_json(&body).expect("body");
        self.call(service, req).await
    }

    /// A fresh exclusive queue bound to every event of `publisher` (`call-manager`,
    /// `flow-manager`) where the simulator publishes them, with a consumer on it.
    async fn listen(&self, publisher: &str) -> (lapin::Channel, lapin::Consumer) {
        let (exchange, key) = match (self.sim.event_bus(), publisher) {
            (EventBus::Topic, p) => (self.names.topic_exchange.clone(), format!("{p}.#")),
            (EventBus::Fanout, "call-manager") => {
                (self.names.call_event_exchange.clone(), String::new())
            }
            (EventBus::Fanout, _) => (self.names.flow_event_exchange.clone(), String::new()),
        };
        let (ch, _) = self.client.connection().channel().await.expect("channel");
        let consumer = crate::support::amqp::tap(&ch, &exchange, &key, "listen").await;
        (ch, consumer)
    }

    async fn finish(mut self) {
        self.finished = true;
        self.client.shutdown().await;
        self.sim.shutdown_and_delete().await;
    }
}

/// The next event, whose routing key is checked: on the topic bus the platform's key for its
/// publisher, type and data `id` (the call's or the activeflow's own), "" on the fanout bus.
async fn next_event(consumer: &mut lapin::Consumer, within: Duration) -> Option<Event> {
    let d = tokio::time::timeout(within, consumer.next())
        .await
        .ok()??
        .ok()?;
    let ev: Event = serde_json::from_slice(&d.data).ok()?;
    if !d.routing_key.as_str().is_empty() {
        let id = ev
            .data_as::<Value>()
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        assert_eq!(
            d.routing_key.as_str(),
            routing_key(&ev.publisher, &ev.r#type, &id)
        );
    }
    Some(ev)
}

/// The next `call_hangup` of `call_id` (other events are skipped), within `within`.
async fn hangup_of(
    consumer: &mut lapin::Consumer,
    call_id: Uuid,
    within: Duration,
) -> Option<Call> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let ev = next_event(consumer, left).await?;
        if ev.r#type != "call_hangup" {
            continue;
        }
        let call: Call = ev.data_as().ok()?;
        if call.id == call_id {
            return Some(call);
        }
    }
}

/// The next `activeflow_deleted` of `id` (other events are skipped), within `within`.
async fn activeflow_end_of(consumer: &mut lapin::Consumer, id: Uuid, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(ev) = next_event(consumer, left).await else {
            return false;
        };
        let data: Value = ev.data_as().unwrap_or(Value::Null);
        if ev.r#type == "activeflow_deleted" && data["id"] == id.to_string() {
            return true;
        }
    }
}

fn call_request(destination: &str) -> CallRequest {
    CallRequest {
        call_id: Uuid::new_v4(),
        customer_id: Uuid::new_v4(),
        flow_id: Uuid::new_v4(),
        activeflow_id: Uuid::new_v4(),
        source: Address::tel("+1"),
        destination: Address::tel(destination),
    }
}

fn body(r: &Response) -> Value {
    r.data_as::<Value>().expect("json data")
}

const ALL2: &str = "try_count_0=2&try_count_1=2&try_count_2=2&try_count_3=2&try_count_4=2";
