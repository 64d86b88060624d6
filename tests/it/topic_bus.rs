//! The `campaign-manager` binary on the platform's topic exchange, as a process on the real
//! broker: its events arrive on the topic exchange under the platform's keys (a campaigncall's
//! under its campaign's id), a hangup published there under call-manager's key finishes the
//! campaigncall, nothing touches the fanout exchanges, and the topic metrics count it. With
//! `--event_bus fanout` it publishes on its fanout exchange as before and leaves the topic
//! exchange alone; an exchange it cannot declare stops the start. The peers are the in-process
//! simulator on the same bus.

use crate::support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use campaign_manager::bus::routing::routing_key;
use campaign_manager::bus::{Bus, EventBus, Names, Request};
use campaign_sim::Sim;
use futures::StreamExt;
use lapin::ExchangeKind;
use serde_json::{Value, json};
use support::scenarios::silent;
use support::{TestDb, TestNames, TestPrefix, amqp_url, peer_events};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `campaign-manager` on the test's database, cache, tick namespace and queue names.
fn service(
    db: &TestDb,
    names: &TestNames,
    prefix: &TestPrefix,
    port: u16,
    bus: Option<&str>,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_campaign-manager"));
    cmd.env_remove("EVENT_BUS")
        .args(["--database_dsn", &db.url])
        .args(["--rabbitmq_address", &amqp_url()])
        .args(["--redis_database", "0"])
        .args(["--queue_prefix", &names.prefix])
        .args(["--cache_prefix", &prefix.0])
        .args(["--tick_namespace", &format!("{}ticks", prefix.0)])
        .args(["--prometheus_listen_address", &format!("127.0.0.1:{port}")])
        .args([
            "--workers",
            "2",
            "--first_tick_ms",
            "100",
            "--dial_tick_ms",
            "100",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(bus) = bus {
        cmd.args(["--event_bus", bus]);
    }
    cmd
}

async fn metrics(port: u16) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("metrics port");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("response");
    out
}

/// A queue bound where the service publishes, with the deliveries as `(key, body)`.
struct Tap {
    _conn: lapin::Connection,
    ch: lapin::Channel,
    consumer: lapin::Consumer,
}

impl Tap {
    async fn bind(exchange: &str, kind: ExchangeKind, key: &str) -> Tap {
        let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .expect("tap connect");
        let ch = conn.create_channel().await.expect("channel");
        peer_events::declare(&ch, exchange, kind).await;
        let consumer = support::amqp::tap(&ch, exchange, key, "tap").await;
        Tap {
            _conn: conn,
            ch,
            consumer,
        }
    }

    /// The next event of `kind` (others skipped) within 20 s: `(routing key, event)`.
    async fn next(&mut self, kind: &str) -> (String, Value) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let d = match tokio::time::timeout(left, self.consumer.next()).await {
                Ok(Some(Ok(d))) => d,
                _ => panic!("no {kind} within 20 s"),
            };
            let ev: Value = serde_json::from_slice(&d.data).expect("event JSON");
            if ev["type"] == kind {
                return (d.routing_key.to_string(), ev);
            }
        }
    }

    /// Whether `exchange` exists on the broker.
    async fn exists(&self, exchange: &str) -> bool {
        support::amqp::exchange_exists(&self._conn, exchange).await
    }
}

async fn rpc(client: &Bus, names: &Names, method: &str, uri: &str, body: Value) -> Value {
    let req = Request::new(method, uri).with_json(&body).expect("body");
    let res = client
        .rpc()
        .call(&names.request_queue, &req)
        .await
        .expect("reply");
    assert_eq!(res.status_code, 200, "{method} {uri}");
    res.data_as().expect("JSON data")
}

/// Waits until the service answers on its request queue.
async fn until_serving(client: &Bus, names: &Names) {
    support::wait_until("the service serving", Duration::from_secs(30), || async {
        let req = Request::new("GET", format!("/v1/campaigns/{}", Uuid::new_v4()));
        client.rpc().call(&names.request_queue, &req).await.is_ok()
    })
    .await;
}

/// An outplan and a call campaign over a 1-target outdial; returns the campaign.
async fn create_campaign(client: &Bus, names: &Names, sim: &Sim) -> Value {
    let customer = Uuid::new_v4();
    let outdial = sim.create_outdial(customer, 1, 1);
    let outplan = rpc(
        client,
        names,
        "POST",
        "/v1/outplans",
        json!({
            "customer_id": customer, "name": "o", "detail": "",
            "source": {"type": "tel", "target": "+15550000000"},
            "dial_timeout": 30000, "try_interval": 0, "max_try_count_0": 1,
        }),
    )
    .await;
    rpc(
        client,
        names,
        "POST",
        "/v1/campaigns",
        json!({
            "customer_id": customer, "type": "call", "name": "c", "detail": "",
            "actions": [{"type": "answer"}], "service_level": 100, "end_handle": "stop",
            "outplan_id": outplan["id"], "outdial_id": outdial,
        }),
    )
    .await
}

/// The binary with the simulator on the bus `bus` (`--event_bus flag`, or none for the
/// default), an RPC client, and a tap where the binary publishes its events on that bus.
struct Rig {
    _db: TestDb,
    _prefix: TestPrefix,
    names: TestNames,
    sim: Sim,
    child: tokio::process::Child,
    client: Bus,
    tap: Tap,
    port: u16,
}

impl Rig {
    async fn start(bus: EventBus, flag: Option<&str>) -> Rig {
        let (db, names, prefix) = (TestDb::empty().await, TestNames::new(), TestPrefix::new());
        let n = names.names.clone();
        let sim = Sim::start_on(n.clone(), &amqp_url(), silent(), bus)
            .await
            .expect("sim");
        let tap = match bus {
            EventBus::Topic => {
                Tap::bind(&n.topic_exchange, ExchangeKind::Topic, "campaign-manager.#").await
            }
            EventBus::Fanout => Tap::bind(&n.event_exchange, ExchangeKind::Fanout, "").await,
        };
        let port = free_port();
        let child = service(&db, &names, &prefix, port, flag)
            .spawn()
            .expect("spawn campaign-manager");
        let client = Bus::connect(&amqp_url(), n.clone(), &prometheus::Registry::new())
            .await
            .expect("client");
        until_serving(&client, &n).await;
        Rig {
            _db: db,
            _prefix: prefix,
            names,
            sim,
            child,
            client,
            tap,
            port,
        }
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        self.client.shutdown().await;
        self.sim.shutdown_and_delete().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_publishes_and_hears_events_on_the_topic_exchange() {
    // The default bus: no --event_bus, no EVENT_BUS.
    let mut rig = Rig::start(EventBus::Topic, None).await;
    let n = rig.names.names.clone();
    let campaign = create_campaign(&rig.client, &n, &rig.sim).await;
    let id = campaign["id"].as_str().expect("id").to_owned();
    let (key, ev) = rig.tap.next("campaign_created").await;
    assert_eq!(key, format!("campaign-manager.campaign.{id}.created"));
    assert_eq!(ev["publisher"], "campaign-manager");
    assert_eq!(ev["data"], campaign);

    let status = json!({"status": "run"});
    rpc(
        &rig.client,
        &n,
        "PUT",
        &format!("/v1/campaigns/{id}/status"),
        status,
    )
    .await;
    let (key, ev) = rig.tap.next("campaign_status_run").await;
    assert_eq!(key, format!("campaign-manager.campaign.{id}.status_run"));
    assert_eq!(ev["data"]["id"], id.as_str());
    // A dial: keyed by its campaign, not by the campaigncall.
    let (key, ev) = rig.tap.next("campaigncall_created").await;
    let cc = ev["data"].clone();
    assert_ne!(cc["id"], id.as_str());
    assert_eq!(key, format!("campaign-manager.campaigncall.{id}.created"));

    // call-manager's hangup on the topic exchange finishes it.
    let call_id = cc["reference_id"].as_str().expect("call id").to_owned();
    let to = peer_events::route(&n, EventBus::Topic, "call-manager", "call_hangup", &call_id);
    assert_eq!(to.1, format!("call-manager.call.{call_id}.hangup"));
    let hangup = json!({"type": "call_hangup", "publisher": "call-manager",
        "data_type": "application/json", "data": {"id": call_id, "hangup_reason": "normal"}});
    peer_events::publish(&rig.tap.ch, &to, hangup.to_string().as_bytes()).await;
    let (key, ev) = rig.tap.next("campaigncall_updated").await;
    assert_eq!(key, format!("campaign-manager.campaigncall.{id}.updated"));
    assert_eq!(
        (ev["data"]["status"].as_str(), ev["data"]["result"].as_str()),
        (Some("done"), Some("success"))
    );
    let (key, _) = rig.tap.next("campaign_status_stop").await;
    assert_eq!(
        key,
        routing_key("campaign-manager", "campaign_status_stop", &id)
    );

    // Counted as the platform counts its topic publishes; every series exists from the start.
    let text = metrics(rig.port).await;
    for line in [
        r#"campaign_manager_topic_publish_total{result="ok",type="campaign_created"} 1"#,
        r#"campaign_manager_topic_publish_total{result="ok",type="campaigncall_created"} 1"#,
        r#"campaign_manager_topic_publish_total{result="error",type="campaign_created"} 0"#,
        r#"campaign_manager_topic_publish_total{result="ok",type="outplan_deleted"} 0"#,
        r#"campaign_manager_topic_placeholder_total{type="campaigncall_created"} 0"#,
        r#"campaign_manager_topic_placeholder_total{type="outplan_deleted"} 0"#,
    ] {
        assert!(text.contains(line), "{line} not in /metrics");
    }
    // Nothing reached (or even declared) a fanout exchange.
    for fanout in [
        &n.event_exchange,
        &n.call_event_exchange,
        &n.flow_event_exchange,
    ] {
        assert!(!rig.tap.exists(fanout).await, "{fanout} was declared");
    }
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_event_bus_fanout_the_binary_publishes_on_its_fanout_exchange_only() {
    let mut rig = Rig::start(EventBus::Fanout, Some("fanout")).await;
    let n = rig.names.names.clone();
    let campaign = create_campaign(&rig.client, &n, &rig.sim).await;
    let (key, ev) = rig.tap.next("campaign_created").await;
    assert_eq!(key, "");
    assert_eq!(ev["data"], campaign);
    // The topic exchange is someone else's business on this platform.
    assert!(!rig.tap.exists(&n.topic_exchange).await);
    rig.stop().await;
}

#[tokio::test]
async fn an_event_exchange_it_cannot_declare_stops_the_start() {
    let (db, names, prefix) = (TestDb::empty().await, TestNames::new(), TestPrefix::new());
    let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    // The platform's exchange name, taken by an exchange of another kind.
    peer_events::declare(&ch, &names.names.topic_exchange, ExchangeKind::Fanout).await;
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        service(&db, &names, &prefix, free_port(), Some("topic")).output(),
    )
    .await
    .expect("exits")
    .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "declaring the event exchange {}",
            names.names.topic_exchange
        )) && err.contains("PRECONDITION_FAILED"),
        "{err}"
    );
    let _ = conn.close(200, "done".into()).await;
}
