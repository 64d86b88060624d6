//! `campaign-sim` driven over the real RabbitMQ on localhost, the way campaign-manager drives it:
//! RPCs through the bus's RPC client, events read from queues bound where the simulator publishes
//! (the topic exchange by default, the peers' fanout exchanges on the fanout bus), and the HTTP
//! admin API over a raw socket. Each test uses its own `Names::prefixed` namespace and deletes
//! its queues and exchanges at the end.

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

#[tokio::test]
async fn available_targets_follow_platform_semantics() {
    let env = Env::start(Scenario::instant(Outcome::Answered)).await;
    let customer = Uuid::new_v4();
    let od = env.sim.create_outdial(customer, 0, 1);
    let legacy = env
        .sim
        .add_target(
            od,
            TargetSpec {
                destinations: vec![Some(Address::tel("+1000"))],
                null_tm_update: true,
                ..TargetSpec::default()
            },
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let ids = env.sim.add_targets(od, 3, 2).unwrap();
    let exhausted = env
        .sim
        .add_target(
            od,
            TargetSpec {
                destinations: vec![Some(Address::tel("+2000")), None],
                try_counts: vec![2, 0],
                ..TargetSpec::default()
            },
        )
        .unwrap();

    let r = env
        .get(Service::Outdial, &format!("/v1/outdials/{od}"))
        .await;
    assert_eq!(r.status_code, 200);
    assert_eq!(body(&r)["customer_id"], customer.to_string());

    let avail = |limit: usize| format!("/v1/outdials/{od}/available?{ALL2}&limit={limit}");
    let list = |r: &Response| -> Vec<Uuid> {
        r.data_as::<Vec<OutdialTarget>>()
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect()
    };
    // NULL tm_update first, then by tm_update; the exhausted target never.
    let r = env.get(Service::Outdial, &avail(10)).await;
    assert_eq!(list(&r), vec![legacy, ids[0], ids[1], ids[2]]);
    assert_eq!(
        list(&env.get(Service::Outdial, &avail(1)).await),
        vec![legacy]
    );
    assert!(!list(&env.get(Service::Outdial, &avail(10)).await).contains(&exhausted));

    // Dial ids[0] on destination 1 twice → progressing hides it; back to idle it goes last;
    // with max 2 on destination 1 and 0 tries on destination 0 it stays available.
    for expected in 1..=2 {
        let r = env
            .send(
                Service::Outdial,
                "POST",
                &format!("/v1/outdialtargets/{}/progressing", ids[0]),
                json!({"destination_index": 1}),
            )
            .await;
        assert_eq!(r.status_code, 200);
        let t: OutdialTarget = r.data_as().unwrap();
        assert_eq!(t.try_count_1, expected);
        assert!(!list(&env.get(Service::Outdial, &avail(10)).await).contains(&ids[0]));
        let r = env
            .send(
                Service::Outdial,
                "PUT",
                &format!("/v1/outdialtargets/{}/status", ids[0]),
                json!({"status": "idle"}),
            )
            .await;
        assert_eq!(body(&r)["status"], "idle");
    }
    assert_eq!(
        list(&env.get(Service::Outdial, &avail(10)).await),
        vec![legacy, ids[1], ids[2], ids[0]]
    );
    // Only destination 1 allowed, max 2: ids[0] used both tries there.
    let only1 = format!(
        "/v1/outdials/{od}/available?try_count_0=0&try_count_1=2&try_count_2=0&try_count_3=0&try_count_4=0&limit=10"
    );
    assert_eq!(
        list(&env.get(Service::Outdial, &only1).await),
        vec![ids[1], ids[2]]
    );
    // done removes it for good.
    env.send(
        Service::Outdial,
        "PUT",
        &format!("/v1/outdialtargets/{legacy}/status"),
        json!({"status": "done"}),
    )
    .await;
    assert_eq!(env.sim.target(legacy).unwrap().status, TargetState::Done);
    assert!(!list(&env.get(Service::Outdial, &avail(10)).await).contains(&legacy));
    // campaign_id is stored.
    let camp = Uuid::new_v4();
    let r = env
        .send(
            Service::Outdial,
            "PUT",
            &format!("/v1/outdials/{od}/campaign_id"),
            json!({"campaign_id": camp}),
        )
        .await;
    assert_eq!(r.status_code, 200);
    assert_eq!(env.sim.outdial(od).unwrap().outdial.campaign_id, camp);
    assert_eq!(env.sim.attempts().len(), 2);
    env.finish().await;
}

#[tokio::test]
async fn calls_end_with_the_scenario_hangup_reason() {
    calls_end_with_the_scenario_hangup_reason_on(EventBus::Topic).await;
}

#[tokio::test]
async fn calls_end_with_the_scenario_hangup_reason_on_the_fanout_bus() {
    calls_end_with_the_scenario_hangup_reason_on(EventBus::Fanout).await;
}

async fn calls_end_with_the_scenario_hangup_reason_on(bus: EventBus) {
    let scenario = Scenario {
        ring_ms: campaign_sim::MsRange::fixed(50),
        ..Scenario::instant(Outcome::Answered).with_index_override(0, Outcome::Busy)
    };
    let env = Env::start_on(scenario, BusOptions::default().rpc.default_timeout, bus).await;
    let (_ch, mut events) = env.listen("call-manager").await;
    let od = env.sim.create_outdial(Uuid::new_v4(), 1, 2);
    let target = env.sim.targets(od).remove(0);
    let dest0 = target.target.destination_0.clone().unwrap();
    let dest1 = target.target.destination_1.clone().unwrap();
    let mut expected = Vec::new();
    for (dest, reason) in [(dest0, "busy"), (dest1, "normal")] {
        let call_id = Uuid::new_v4();
        let af = Uuid::new_v4();
        let r = env
            .send(
                Service::Call,
                "POST",
                &format!("/v1/calls/{call_id}"),
                json!({"flow_id": Uuid::new_v4(), "activeflow_id": af, "customer_id": Uuid::new_v4(),
                       "master_call_id": Uuid::nil(), "source": {"type":"tel","target":"+1"},
                       "destination": dest, "groupcall_id": Uuid::nil()}),
            )
            .await;
        assert_eq!(r.status_code, 200);
        expected.push((call_id, af, reason));
    }
    let mut got = Vec::new();
    for _ in 0..2 {
        let ev = next_event(&mut events, Duration::from_secs(5))
            .await
            .expect("call_hangup event");
        assert_eq!(
            (ev.r#type.as_str(), ev.publisher.as_str()),
            ("call_hangup", "call-manager")
        );
        let call: Call = ev.data_as().unwrap();
        got.push((call.id, call.hangup_reason));
    }
    got.sort();
    let mut want: Vec<_> = expected
        .iter()
        .map(|(c, _, r)| (*c, r.to_string()))
        .collect();
    want.sort();
    assert_eq!(got, want);
    let calls = env.sim.calls();
    assert_eq!(calls.len(), 2);
    for ((id, af, reason), rec) in expected.iter().zip(&calls) {
        assert_eq!((rec.id, rec.activeflow_id), (*id, *af));
        assert_eq!(rec.hangup_reason(), *reason);
        assert_eq!(rec.target_id, Some(target.target.id));
        assert!(rec.tm_hangup.is_some());
    }
    assert_eq!(calls[0].destination_index, Some(0));
    assert_eq!(calls[1].destination_index, Some(1));
    assert_eq!(env.sim.live_calls(), 0);
    env.finish().await;
}

#[tokio::test]
async fn activeflow_execute_publishes_activeflow_deleted() {
    let env = Env::start(Scenario::instant(Outcome::Answered)).await;
    let (_ch, mut events) = env.listen("flow-manager").await;
    let r = env
        .send(
            Service::Flow,
            "POST",
            "/v1/flows",
            json!({"customer_id": Uuid::new_v4(), "type": "campaign", "name": "", "detail": "",
                   "actions": [{"type": "answer"}], "on_complete_flow_id": Uuid::nil(), "persist": true}),
        )
        .await;
    assert_eq!(r.status_code, 200);
    let flow = body(&r)["id"].as_str().unwrap().to_string();
    let r = env
        .send(
            Service::Flow,
            "PUT",
            &format!("/v1/flows/{flow}/actions"),
            json!({"actions": [{"type": "answer"}, {"type": "queue_join", "option": {"queue_id": Uuid::nil()}}]}),
        )
        .await;
    assert_eq!(body(&r)["actions"].as_array().unwrap().len(), 2);
    let af = Uuid::new_v4();
    let cc = Uuid::new_v4();
    let r = env
        .send(
            Service::Flow,
            "POST",
            "/v1/activeflows",
            json!({"id": af, "customer_id": Uuid::new_v4(), "flow_id": flow, "reference_type": "campaign",
                   "reference_id": cc, "reference_activeflow_id": Uuid::nil()}),
        )
        .await;
    assert_eq!(body(&r)["id"], af.to_string());
    let exec = Request::new("POST", format!("/v1/activeflows/{af}/execute")).with_data_type("");
    assert_eq!(env.call(Service::Flow, exec.clone()).await.status_code, 200);
    let ev = next_event(&mut events, Duration::from_secs(5))
        .await
        .expect("activeflow_deleted");
    assert_eq!(
        (ev.r#type.as_str(), ev.publisher.as_str()),
        ("activeflow_deleted", "flow-manager")
    );
    let data: Value = ev.data_as().unwrap();
    assert_eq!(data["id"], af.to_string());
    assert_eq!(data["reference_id"], cc.to_string());
    assert_eq!(env.call(Service::Flow, exec).await.status_code, 409);
    let r = env
        .call(
            Service::Flow,
            Request::new("DELETE", format!("/v1/flows/{flow}")),
        )
        .await;
    assert_eq!(r.status_code, 200);
    assert!(env.sim.flows()[0].tm_delete.is_some());
    assert!(
        next_event(&mut events, Duration::from_millis(200))
            .await
            .is_none()
    );
    env.finish().await;
}

#[tokio::test]
async fn errors_queues_webhooks_and_faults() {
    let env = Env::start(Scenario::instant(Outcome::Answered)).await;
    let unknown = Uuid::new_v4();
    let od = env.sim.create_outdial(Uuid::new_v4(), 1, 1);
    for (service, req, code) in [
        (
            Service::Outdial,
            Request::new("GET", format!("/v1/outdials/{unknown}")),
            404,
        ),
        (
            Service::Outdial,
            Request::new(
                "GET",
                format!("/v1/outdials/{unknown}/available?{ALL2}&limit=1"),
            ),
            404,
        ),
        (
            Service::Outdial,
            Request::new("GET", format!("/v1/outdials/{od}/available?limit=1")),
            400,
        ),
        (
            Service::Outdial,
            Request::new("POST", format!("/v1/outdialtargets/{unknown}/progressing")),
            400,
        ),
        (Service::Outdial, Request::new("GET", "/v2/nothing"), 404),
        (
            Service::Call,
            Request::new("POST", format!("/v1/calls/{unknown}")),
            400,
        ),
        (
            Service::Flow,
            Request::new("POST", format!("/v1/activeflows/{unknown}/execute")),
            404,
        ),
        (
            Service::Queue,
            Request::new("GET", format!("/v1/queues/{unknown}/agents")),
            404,
        ),
        (
            Service::Webhook,
            Request::new("DELETE", "/v1/webhooks"),
            404,
        ),
    ] {
        let r = env.call(service, req.clone()).await;
        assert_eq!(
            (r.status_code, r.data_type.as_str()),
            (code, ""),
            "{} {}",
            req.method,
            req.uri
        );
        assert!(r.data.is_none());
    }
    let status = env
        .send(
            Service::Outdial,
            "PUT",
            &format!("/v1/outdialtargets/{unknown}/status"),
            json!({"status":"idle"}),
        )
        .await;
    assert_eq!(status.status_code, 404);

    // Queue agents change at run time.
    let q = env.sim.create_queue(Uuid::new_v4(), 3);
    let agents = || {
        Request::new("GET", format!("/v1/queues/{q}/agents"))
            .with_json(&json!({"status": "available"}))
            .unwrap()
    };
    assert_eq!(
        body(&env.call(Service::Queue, agents()).await)
            .as_array()
            .unwrap()
            .len(),
        3
    );
    env.sim.set_queue_agents(q, 7).unwrap();
    assert_eq!(
        body(&env.call(Service::Queue, agents()).await)
            .as_array()
            .unwrap()
            .len(),
        7
    );
    let r = env.get(Service::Queue, &format!("/v1/queues/{q}")).await;
    assert!(body(&r)["tm_delete"].is_null());

    // Webhooks are counted.
    for _ in 0..3 {
        let r = env
            .send(
                Service::Webhook,
                "POST",
                "/v1/webhooks",
                json!({"customer_id": Uuid::nil(), "data": {"type": "campaign_created"}}),
            )
            .await;
        assert_eq!(r.status_code, 200);
    }
    assert_eq!(env.sim.webhook_count(), 3);

    // Injected failures: 500 twice, then a request held past the caller's timeout.
    env.sim.inject(Fault::status(Service::Queue, 500, 2));
    assert_eq!(env.call(Service::Queue, agents()).await.status_code, 500);
    assert_eq!(env.call(Service::Queue, agents()).await.status_code, 500);
    assert_eq!(env.call(Service::Queue, agents()).await.status_code, 200);
    env.sim.inject(Fault::no_reply(
        Service::Queue,
        Duration::from_millis(1500),
        1,
    ));
    let rpc = env.client.rpc();
    let res = rpc
        .call_with(
            env.sim.queue_of(Service::Queue),
            &agents(),
            campaign_manager::bus::CallOptions::timeout(Duration::from_millis(300)),
        )
        .await;
    assert!(
        matches!(res, Err(campaign_manager::bus::RpcError::Timeout { .. })),
        "{res:?}"
    );
    assert_eq!(env.call(Service::Queue, agents()).await.status_code, 200);
    env.finish().await;
}

async fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let code = out[9..12].parse().unwrap();
    let json = out.split("\r\n\r\n").nth(1).unwrap_or("null");
    (code, serde_json::from_str(json).unwrap_or(Value::Null))
}

#[tokio::test]
async fn http_admin_api() {
    let env = Env::start(Scenario::instant(Outcome::Answered)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(admin::serve(env.sim.clone(), listener, async move {
        let _ = stopped.await;
    }));
    assert_eq!(http(addr, "GET", "/health", "").await.0, 200);
    let (code, v) = http(
        addr,
        "POST",
        "/outdials",
        r#"{"targets":4,"destinations":2}"#,
    )
    .await;
    assert_eq!(code, 200);
    let od = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["target_ids"].as_array().unwrap().len(), 4);
    let (_, v) = http(
        addr,
        "POST",
        &format!("/outdials/{od}/targets"),
        r#"{"count":1}"#,
    )
    .await;
    assert_eq!(v["target_ids"].as_array().unwrap().len(), 1);
    let (_, v) = http(addr, "GET", &format!("/outdials/{od}/targets"), "").await;
    assert_eq!(v.as_array().unwrap().len(), 5);
    assert_eq!(v[0]["status"], "idle");
    // The same outdial over the bus.
    let r = env
        .get(
            Service::Outdial,
            &format!("/v1/outdials/{od}/available?{ALL2}&limit=10"),
        )
        .await;
    assert_eq!(body(&r).as_array().unwrap().len(), 5);
    let (_, v) = http(addr, "POST", "/queues", r#"{"agents":2}"#).await;
    let q = v["id"].as_str().unwrap().to_string();
    assert_eq!(
        http(
            addr,
            "PUT",
            &format!("/queues/{q}/agents"),
            r#"{"agents":9}"#
        )
        .await
        .0,
        200
    );
    let r = env
        .get(Service::Queue, &format!("/v1/queues/{q}/agents"))
        .await;
    assert_eq!(body(&r).as_array().unwrap().len(), 9);
    assert_eq!(
        http(
            addr,
            "PUT",
            &format!("/queues/{}/agents", Uuid::new_v4()),
            r#"{"agents":1}"#
        )
        .await
        .0,
        404
    );
    assert_eq!(
        http(
            addr,
            "POST",
            "/faults",
            r#"{"service":"queue","kind":{"status":503},"count":1}"#
        )
        .await
        .0,
        200
    );
    assert_eq!(
        env.get(Service::Queue, &format!("/v1/queues/{q}"))
            .await
            .status_code,
        503
    );
    let late = r#"{"service":"call","method":"POST","kind":{"late_reply_ms":2500},"count":2}"#;
    assert_eq!(http(addr, "POST", "/faults", late).await.0, 200);
    let (_, pending) = http(addr, "GET", "/faults", "").await;
    assert_eq!(pending[0]["kind"], json!({"late_reply_ms": 2500}));
    assert_eq!(http(addr, "DELETE", "/faults", "").await.0, 200);
    assert_eq!(
        http(
            addr,
            "PUT",
            "/scenario",
            r#"{"seed":3,"weights":{"answered":0,"busy":1}}"#
        )
        .await
        .0,
        200
    );
    assert_eq!(env.sim.scenario().seed, 3);
    assert_eq!(http(addr, "POST", "/outdials", "not json").await.0, 400);
    assert_eq!(http(addr, "GET", "/nope", "").await.0, 404);
    let (_, stats) = http(addr, "GET", "/stats", "").await;
    assert_eq!(stats["targets_idle"], 5);
    assert_eq!(stats["requests"]["queue"], 2);
    let (_, v) = http(addr, "GET", "/calls", "").await;
    assert_eq!(v, json!([]));
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    env.finish().await;
}

#[tokio::test]
async fn get_call_answers_each_state_of_the_call_and_none_for_unknown_ids() {
    // Calls ring for a minute (so they are reliably seen ringing), except later ones.
    let silent = Override {
        destination_index: None,
        target: Some("+9001".into()),
        outcome: Outcome::Silent,
    };
    let env = Env::start(Scenario {
        ring_ms: MsRange::fixed(60_000),
        overrides: vec![silent.clone()],
        ..Scenario::instant(Outcome::Busy)
    })
    .await;
    let (_ch, mut events) = env.listen("call-manager").await;
    let peers = env.peers();

    let ringing = call_request("+1000");
    peers.create_call(&ringing).await.expect("create");
    let call = peers
        .get_call(ringing.call_id)
        .await
        .expect("get")
        .expect("the call exists");
    assert_eq!(call.id, ringing.call_id);
    assert_eq!(
        (call.status.as_str(), call.hangup_reason.as_str()),
        ("ringing", "")
    );
    assert!(!call.is_hungup());
    let raw = body(
        &env.get(Service::Call, &format!("/v1/calls/{}", ringing.call_id))
            .await,
    );
    assert!(raw["tm_hangup"].is_null(), "{raw}");

    // From now on calls end at once (busy), except the silent destination, answered at once.
    env.sim.set_scenario(Scenario {
        overrides: vec![silent],
        ..Scenario::instant(Outcome::Busy)
    });
    let busy = call_request("+1001");
    peers.create_call(&busy).await.expect("create");
    let event = hangup_of(&mut events, busy.call_id, Duration::from_secs(5))
        .await
        .expect("call_hangup of the busy call");
    assert_eq!(event.hangup_reason, "busy");
    let call = peers
        .get_call(busy.call_id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (call.status.as_str(), call.hangup_reason.as_str()),
        ("hangup", "busy")
    );
    assert!(call.is_hungup());
    let raw = body(
        &env.get(Service::Call, &format!("/v1/calls/{}", busy.call_id))
            .await,
    );
    assert!(raw["tm_hangup"].is_string(), "{raw}");

    // A silent call is answered and never ends: no hangup event, `progressing` every time.
    let lost = call_request("+9001");
    peers.create_call(&lost).await.expect("create");
    for _ in 0..3 {
        let call = peers
            .get_call(lost.call_id)
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(
            (call.status.as_str(), call.hangup_reason.as_str()),
            ("progressing", "")
        );
        assert!(
            hangup_of(&mut events, lost.call_id, Duration::from_millis(200))
                .await
                .is_none()
        );
    }
    // The first call still rings; an unknown id is no call at all.
    let call = peers
        .get_call(ringing.call_id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(call.status, "ringing");
    assert_eq!(peers.get_call(Uuid::new_v4()).await.expect("get"), None);
    env.finish().await;
}

#[tokio::test]
async fn get_activeflow_answers_running_then_ended_and_none_for_unknown_ids() {
    let env = Env::start(Scenario::instant(Outcome::Answered)).await;
    let (_ch, mut events) = env.listen("flow-manager").await;
    let peers = env.peers();
    let customer = Uuid::new_v4();
    let flow = peers
        .create_flow(customer, &[Action::queue_join(Uuid::nil())])
        .await
        .expect("flow");
    let af = Uuid::new_v4();
    peers
        .create_activeflow(af, customer, flow.id, Uuid::new_v4())
        .await
        .expect("activeflow");
    let got = peers
        .get_activeflow(af)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (got.id, got.status.as_str(), got.tm_delete),
        (af, "running", None)
    );
    assert!(!got.is_finished());

    peers.execute_activeflow(af).await.expect("execute");
    assert!(activeflow_end_of(&mut events, af, Duration::from_secs(5)).await);
    let got = peers
        .get_activeflow(af)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got.status, "ended");
    assert!(got.tm_delete.is_some());
    assert!(got.is_finished());
    assert_eq!(
        peers.get_activeflow(Uuid::new_v4()).await.expect("get"),
        None
    );
    env.finish().await;
}

#[tokio::test]
async fn late_reply_times_the_caller_out_but_the_request_takes_effect() {
    let timeout = Duration::from_millis(1000);
    let late = Duration::from_millis(3000);
    let env = Env::start_with_timeout(
        Scenario {
            ring_ms: MsRange::fixed(1500),
            ..Scenario::instant(Outcome::NoAnswer)
        },
        timeout,
    )
    .await;
    let (_calls_ch, mut call_events) = env.listen("call-manager").await;
    let (_flows_ch, mut flow_events) = env.listen("flow-manager").await;
    let peers = env.peers();

    // The dial: handled, reply held back past the caller's timeout.
    env.sim
        .inject(Fault::late_reply(Service::Call, late, 1).on_method("POST"));
    let dial = call_request("+3000");
    let res = peers.create_call(&dial).await;
    assert!(matches!(res, Err(PeerError::Timeout { .. })), "{res:?}");
    // The outcome is unknown to the caller, but call-manager has the call ...
    let call = peers
        .get_call(dial.call_id)
        .await
        .expect("get")
        .expect("the late-answered call exists");
    assert_eq!(call.id, dial.call_id);
    assert!(
        ["ringing", "terminating", "hangup"].contains(&call.status.as_str()),
        "{call:?}"
    );
    // ... and it ends as planned, with its event.
    let ended = hangup_of(&mut call_events, dial.call_id, Duration::from_secs(10))
        .await
        .expect("call_hangup of the late-answered call");
    assert_eq!(ended.hangup_reason, "noanswer");
    let call = peers
        .get_call(dial.call_id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (call.status.as_str(), call.hangup_reason.as_str()),
        ("hangup", "noanswer")
    );
    assert_eq!(env.sim.calls().len(), 1, "dialed once");

    // The same for an activeflow execution.
    let customer = Uuid::new_v4();
    let flow = peers.create_flow(customer, &[]).await.expect("flow");
    let af = Uuid::new_v4();
    peers
        .create_activeflow(af, customer, flow.id, Uuid::new_v4())
        .await
        .expect("activeflow");
    env.sim.inject(
        Fault::late_reply(Service::Flow, late, 1).on_uri(&format!("/v1/activeflows/{af}/execute")),
    );
    let res = peers.execute_activeflow(af).await;
    assert!(matches!(res, Err(PeerError::Timeout { .. })), "{res:?}");
    assert!(activeflow_end_of(&mut flow_events, af, Duration::from_secs(10)).await);
    let got = peers
        .get_activeflow(af)
        .await
        .expect("get")
        .expect("exists");
    assert!(got.is_finished(), "{got:?}");

    // A `no_reply_ms` request, by contrast, never happened.
    env.sim
        .inject(Fault::no_reply(Service::Call, late, 1).on_method("POST"));
    let lost = call_request("+3001");
    let res = peers.create_call(&lost).await;
    assert!(matches!(res, Err(PeerError::Timeout { .. })), "{res:?}");
    assert_eq!(peers.get_call(lost.call_id).await.expect("get"), None);
    env.finish().await;
}

/// The peers' read errors as their handlers answer them: call-manager's typed 404
/// `CALL_NOT_FOUND` only for a call it has no row of (read as "none"), its bare 500 (and a bare
/// 404) for anything else; flow-manager's bare 400 for a failed activeflow read. Each error
/// reaches the caller as an error, never as "none".
#[tokio::test]
async fn read_errors_are_errors_and_only_a_typed_404_is_none() {
    let env = Env::start(Scenario::instant(Outcome::Silent)).await;
    let peers = env.peers();
    let dial = call_request("+4000");
    peers.create_call(&dial).await.expect("create");
    assert_eq!(peers.get_call(Uuid::new_v4()).await.expect("get"), None);
    for status in [500, 404] {
        env.sim
            .inject(Fault::status(Service::Call, status, 1).on_method("GET"));
        let res = peers.get_call(dial.call_id).await;
        assert!(
            matches!(res, Err(PeerError::Status { status: s, typed: None, .. }) if s == status),
            "{res:?}"
        );
    }
    assert!(peers.get_call(dial.call_id).await.expect("get").is_some());

    let af = Uuid::new_v4();
    assert_eq!(peers.get_activeflow(af).await.expect("get"), None);
    env.sim
        .inject(Fault::status(Service::Flow, 400, 1).on_method("GET"));
    let res = peers.get_activeflow(af).await;
    assert!(
        matches!(res, Err(PeerError::Status { status: 400, .. })),
        "{res:?}"
    );
    env.finish().await;
}

/// `status_after_effect`: call-manager inserts the call, then answers a bare 500 (the call
/// rings and ends as planned). `late_effect_ms`: the request is taken at once, answered never
/// (the caller times out), and the call appears only later, as when a stalled consumer resumes.
#[tokio::test]
async fn effects_after_an_error_or_after_a_stall_still_land() {
    let timeout = Duration::from_millis(1000);
    let env = Env::start_with_timeout(Scenario::instant(Outcome::Busy), timeout).await;
    let (_ch, mut events) = env.listen("call-manager").await;
    let peers = env.peers();

    env.sim
        .inject(Fault::status_after_effect(Service::Call, 500, 1).on_method("POST"));
    let inserted = call_request("+4100");
    let res = peers.create_call(&inserted).await;
    assert!(
        matches!(
            res,
            Err(PeerError::Status {
                status: 500,
                typed: None,
                ..
            })
        ),
        "{res:?}"
    );
    let ended = hangup_of(&mut events, inserted.call_id, Duration::from_secs(5))
        .await
        .expect("call_hangup of the call answered 500");
    assert_eq!(ended.hangup_reason, "busy");

    let stall = Duration::from_millis(2500);
    env.sim
        .inject(Fault::late_effect(Service::Call, stall, 1).on_method("POST"));
    let stalled = call_request("+4101");
    let res = peers.create_call(&stalled).await;
    assert!(matches!(res, Err(PeerError::Timeout { .. })), "{res:?}");
    assert_eq!(
        peers.get_call(stalled.call_id).await.expect("get"),
        None,
        "taken but not acted on yet"
    );
    let ended = hangup_of(&mut events, stalled.call_id, Duration::from_secs(10))
        .await
        .expect("call_hangup of the stalled call");
    assert_eq!(ended.hangup_reason, "busy");
    assert!(
        peers
            .get_call(stalled.call_id)
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(env.sim.calls().len(), 2, "each dialed once");
    env.finish().await;
}
