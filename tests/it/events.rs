//! Black-box event tests: a test queue bound where the service publishes sees every event with
//! its envelope, full payload and (on the topic bus) the platform's routing key; call/flow events
//! published as the peers publish them finish campaigncalls, update outdial targets and stop
//! `stopping` campaigns; customers get webhooks. The system runs on the topic bus unless a test
//! says otherwise (`support::peer_events` routes both ways on either bus).

use crate::support;
use crate::support::wait_until;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use campaign_manager::bus::routing::routing_key;
use campaign_manager::bus::{EventBus, Names};
use campaign_sim::{Outcome, Scenario, TargetState};
use futures::StreamExt;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::{Value, json};
use support::contract::*;
use support::scenarios::{fast_ticks, silent};
use support::{TestSystem, amqp_url, peer_events};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A raw AMQP connection publishing peer events the way the system's bus carries them.
struct Raw {
    _conn: lapin::Connection,
    ch: lapin::Channel,
    names: Names,
    bus: EventBus,
}

impl Raw {
    async fn new(sys: &TestSystem) -> Raw {
        let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .expect("raw connect");
        let ch = conn.create_channel().await.expect("channel");
        Raw {
            _conn: conn,
            ch,
            names: sys.names.names.clone(),
            bus: sys.settings.event_bus,
        }
    }

    /// Publishes `kind` by `publisher` with `data`, addressed (on the topic bus) by the data's
    /// `id` as the peers address their calls and activeflows.
    async fn publish_event(&self, publisher: &str, kind: &str, data: Value) {
        let address = data["id"].as_str().unwrap_or_default().to_owned();
        let ev = json!({"type": kind, "publisher": publisher, "data_type": "application/json", "data": data});
        self.publish_body(publisher, kind, &address, ev.to_string().as_bytes())
            .await;
    }

    /// Publishes raw `body` where an event `kind` by `publisher` about `address` goes.
    async fn publish_body(&self, publisher: &str, kind: &str, address: &str, body: &[u8]) {
        let to = peer_events::route(&self.names, self.bus, publisher, kind, address);
        peer_events::publish(&self.ch, &to, body).await;
    }
}

/// A test queue bound where the service publishes its events, collecting each event's routing
/// key and raw body.
struct EventTap {
    _conn: lapin::Connection,
    bus: EventBus,
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

impl EventTap {
    async fn bind(sys: &TestSystem) -> EventTap {
        let (exchange, kind, binding) = peer_events::service_events(sys);
        let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .expect("tap connect");
        let ch = conn.create_channel().await.expect("channel");
        peer_events::declare(&ch, &exchange, kind).await;
        let mut consumer = support::amqp::tap(&ch, &exchange, binding, "tap queue").await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                sink.lock().unwrap().push((
                    d.routing_key.to_string(),
                    String::from_utf8_lossy(&d.data).into_owned(),
                ));
            }
        });
        EventTap {
            _conn: conn,
            bus: sys.settings.event_bus,
            seen,
        }
    }

    /// Every event so far: `(routing key, raw body, parsed body)`.
    fn all(&self) -> Vec<(String, String, Value)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(key, raw)| {
                let v: Value = serde_json::from_str(raw).expect("event JSON");
                (key.clone(), raw.clone(), v)
            })
            .collect()
    }

    /// The key the event must have come with: on the topic bus the platform's, addressed by
    /// the campaign for campaign and campaigncall events and by the outplan for outplan events;
    /// "" on the fanout bus.
    fn expected_key(&self, kind: &str, data: &Value) -> String {
        if self.bus == EventBus::Fanout {
            return String::new();
        }
        let address = if kind.starts_with("campaigncall_") {
            &data["campaign_id"]
        } else {
            &data["id"]
        };
        routing_key(
            "campaign-manager",
            kind,
            address.as_str().unwrap_or_default(),
        )
    }

    fn count(&self, kind: &str, id: &str) -> usize {
        self.all()
            .iter()
            .filter(|(_, _, v)| v["type"] == kind && v["data"]["id"] == id)
            .count()
    }

    /// Waits for the `n`-th (1-based) event of `kind` about resource `id`, checks its envelope
    /// byte for byte (order of the envelope and of the payload keys), returns its data.
    async fn nth(&self, kind: &str, id: &str, n: usize, keys: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let hits: Vec<(String, String, Value)> = self
                .all()
                .into_iter()
                .filter(|(_, _, v)| v["type"] == kind && v["data"]["id"] == id)
                .collect();
            if let Some((key, raw, v)) = hits.get(n - 1) {
                let data = v["data"].clone();
                let expected = format!(
                    r#"{{"type":"{kind}","publisher":"campaign-manager","data_type":"application/json","data":{}}}"#,
                    canonical(&data, keys)
                );
                assert_eq!(raw, &expected);
                assert_eq!(key, &self.expected_key(kind, &data), "{kind}");
                return data;
            }
            assert!(
                Instant::now() < deadline,
                "no {kind} #{n} for {id}; seen: {:?}",
                self.all()
                    .iter()
                    .map(|(_, _, v)| v["type"].clone())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    async fn one(&self, kind: &str, id: &str, keys: &[&str]) -> Value {
        self.nth(kind, id, 1, keys).await
    }
}

fn outplan_body(customer: Uuid) -> Value {
    json!({
        "customer_id": customer, "name": "plan", "detail": "pd",
        "source": {"type": "tel", "target": "+821100000001"},
        "dial_timeout": 30000, "try_interval": 0,
        "max_try_count_0": 1, "max_try_count_1": 1, "max_try_count_2": 1,
        "max_try_count_3": 1, "max_try_count_4": 1
    })
}

/// The webhooks the sim received for `customer` with event type `kind`.
fn webhooks(sys: &TestSystem, customer: Uuid, kind: &str) -> Vec<Value> {
    sys.sim
        .webhooks()
        .into_iter()
        .filter(|w| w["customer_id"] == customer.to_string() && w["data"]["type"] == kind)
        .collect()
}

async fn wait_webhook(sys: &TestSystem, customer: Uuid, kind: &str, id: &str) -> Value {
    let mut found = None;
    wait_until(&format!("webhook {kind}"), Duration::from_secs(10), || {
        let hit = webhooks(sys, customer, kind)
            .into_iter()
            .find(|w| w["data"]["data"]["id"] == id);
        let ok = hit.is_some();
        if ok {
            found = hit;
        }
        async move { ok }
    })
    .await;
    let w = found.unwrap();
    assert_eq!(w["data_type"], "application/json");
    w["data"]["data"].clone()
}

async fn campaigncalls(sys: &TestSystem, campaign: &str) -> Vec<Value> {
    sys.ok(
        "GET",
        "/v1/campaigncalls?page_size=100",
        Some(json!({"campaign_id": campaign})),
    )
    .await
    .as_array()
    .unwrap()
    .clone()
}

async fn campaign(sys: &TestSystem, id: &str) -> Value {
    sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await
}

// ---------------------------------------------------------------------------------------------
// Outplan events
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn outplan_events_and_webhooks() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let tap = EventTap::bind(&sys).await;
    let customer = Uuid::new_v4();
    let o = sys
        .ok("POST", "/v1/outplans", Some(outplan_body(customer)))
        .await;
    let id = o["id"].as_str().unwrap().to_owned();
    assert_eq!(tap.one("outplan_created", &id, OUTPLAN_KEYS).await, o);

    let u1 = sys
        .ok(
            "PUT",
            &format!("/v1/outplans/{id}"),
            Some(json!({"name": "n1"})),
        )
        .await;
    assert_eq!(tap.nth("outplan_updated", &id, 1, OUTPLAN_KEYS).await, u1);
    let u2 = sys
        .ok(
            "PUT",
            &format!("/v1/outplans/{id}/dials"),
            Some(json!({"dial_timeout": 10, "try_interval": 20})),
        )
        .await;
    assert_eq!(tap.nth("outplan_updated", &id, 2, OUTPLAN_KEYS).await, u2);
    let d = sys.ok("DELETE", &format!("/v1/outplans/{id}"), None).await;
    let ev = tap.one("outplan_deleted", &id, OUTPLAN_KEYS).await;
    assert_eq!(ev, d);
    assert!(ev["tm_delete"].is_string());

    // Refused requests publish nothing.
    let (status, _, body) = sys
        .rpc(
            "PUT",
            &format!("/v1/outplans/{id}"),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(status, 404, "update of a deleted outplan: {body}");
    let (status, _, body) = sys
        .rpc("POST", "/v1/outplans", Some(json!({"name": "no customer"})))
        .await;
    assert_eq!(status, 400, "create without a customer: {body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(tap.count("outplan_updated", &id), 2);
    assert_eq!(tap.all().len(), 4, "exactly the four events");

    // The customer got the same payloads as webhooks (outplan webhook = full record).
    assert_eq!(
        wait_webhook(&sys, customer, "outplan_created", &id).await,
        o
    );
    assert_eq!(
        wait_webhook(&sys, customer, "outplan_deleted", &id).await,
        d
    );
    wait_until("4 webhooks", Duration::from_secs(10), || async {
        sys.sim.webhook_count() >= 4
    })
    .await;
    assert_eq!(webhooks(&sys, customer, "outplan_updated").len(), 2);
    sys.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Campaign events
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn campaign_events_and_webhooks() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), fast_ticks).await;
    let tap = EventTap::bind(&sys).await;
    let customer = Uuid::new_v4();
    let outplan = sys
        .ok("POST", "/v1/outplans", Some(outplan_body(customer)))
        .await;
    // No targets: after `run`, the first tick finds the list exhausted and stops the campaign.
    let outdial = sys.sim.create_outdial(customer, 0, 1);
    let c = sys
        .ok(
            "POST",
            "/v1/campaigns",
            Some(
                json!({"customer_id": customer, "type": "call", "name": "c", "detail": "d",
                "actions": [{"type": "answer"}], "service_level": 10,
                "outplan_id": outplan["id"], "outdial_id": outdial}),
            ),
        )
        .await;
    let id = c["id"].as_str().unwrap().to_owned();
    let created = tap.one("campaign_created", &id, CAMPAIGN_KEYS).await;
    assert_eq!(created, c);
    assert_eq!(created["execute"], "stop");
    assert!(
        created["flow_id"]
            .as_str()
            .is_some_and(|f| f != Uuid::nil().to_string())
    );

    // Every update publishes campaign_updated with the updated record.
    let next = sys
        .ok(
            "POST",
            "/v1/campaigns",
            Some(json!({"customer_id": customer, "type": "flow"})),
        )
        .await;
    let updates = [
        (format!("/v1/campaigns/{id}"), json!({"name": "renamed"})),
        (
            format!("/v1/campaigns/{id}/service_level"),
            json!({"service_level": 80}),
        ),
        (
            format!("/v1/campaigns/{id}/actions"),
            json!({"actions": [{"type": "hangup"}]}),
        ),
        (
            format!("/v1/campaigns/{id}/resource_info"),
            json!({"outplan_id": outplan["id"], "outdial_id": outdial}),
        ),
        (
            format!("/v1/campaigns/{id}/next_campaign_id"),
            json!({"next_campaign_id": next["id"]}),
        ),
    ];
    for (n, (uri, body)) in updates.into_iter().enumerate() {
        let u = sys.ok("PUT", &uri, Some(body)).await;
        let ev = tap.nth("campaign_updated", &id, n + 1, CAMPAIGN_KEYS).await;
        assert_eq!(ev, u, "{uri}");
    }
    let last = campaign(&sys, &id).await;
    assert_eq!(last["name"], "renamed");
    assert_eq!(last["service_level"], 80);
    assert_eq!(last["next_campaign_id"], next["id"]);

    // A refused update publishes nothing.
    let (status, _, body) = sys
        .rpc(
            "PUT",
            &format!("/v1/campaigns/{id}/service_level"),
            Some(json!({"service_level": -5})),
        )
        .await;
    assert_eq!(status, 400, "a negative service level: {body}");

    // run → campaign_status_run; the chain ends (no targets) → campaign_status_stop.
    let r = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}/status"),
            Some(json!({"status": "run"})),
        )
        .await;
    let ev = tap.one("campaign_status_run", &id, CAMPAIGN_KEYS).await;
    assert_eq!(ev, r);
    assert_eq!(
        (ev["status"].as_str(), ev["execute"].as_str()),
        (Some("run"), Some("run"))
    );
    let ev = tap.one("campaign_status_stop", &id, CAMPAIGN_KEYS).await;
    assert_eq!(
        (ev["status"].as_str(), ev["execute"].as_str()),
        (Some("stop"), Some("stop"))
    );
    assert_eq!(ev, campaign(&sys, &id).await);
    assert_eq!(tap.count("campaign_status_stopping", &id), 0);

    // delete → campaign_deleted with tm_delete.
    let d = sys.ok("DELETE", &format!("/v1/campaigns/{id}"), None).await;
    let ev = tap.one("campaign_deleted", &id, CAMPAIGN_KEYS).await;
    assert_eq!(ev, d);
    assert!(ev["tm_delete"].is_string());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(tap.count("campaign_updated", &id), 5);
    assert_eq!(tap.count("campaign_status_run", &id), 1);

    // Webhooks: the customer-facing shape (no execute, no flow_id), same values.
    for kind in [
        "campaign_created",
        "campaign_updated",
        "campaign_status_run",
        "campaign_status_stop",
        "campaign_deleted",
    ] {
        let w = wait_webhook(&sys, customer, kind, &id).await;
        let raw = serde_json::to_string(&w).unwrap();
        assert_eq!(raw, canonical(&w, CAMPAIGN_WEBHOOK_KEYS), "{kind}");
    }
    let w = wait_webhook(&sys, customer, "campaign_deleted", &id).await;
    for k in CAMPAIGN_WEBHOOK_KEYS {
        assert_eq!(w[*k], d[*k], "{k}");
    }
    assert_eq!(webhooks(&sys, customer, "campaign_updated").len(), 5);
    assert!(sys.sim.webhook_count() >= 10);
    // A campaign without customer (nil) would get no webhook; ours all went to `customer`.
    assert!(
        sys.sim
            .webhooks()
            .iter()
            .all(|w| w["customer_id"] == customer.to_string())
    );
    sys.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Campaigncall events and call_hangup / activeflow_deleted handling
// ---------------------------------------------------------------------------------------------

/// Creates an outplan, an outdial of `targets` targets (one destination each) and a campaign of
/// `customer` over them with the create body's other `fields`, and puts it to `run`; returns
/// its id and JSON as created.
async fn running_campaign(
    sys: &TestSystem,
    customer: Uuid,
    targets: usize,
    fields: Value,
) -> (String, Value) {
    let outplan = sys
        .ok("POST", "/v1/outplans", Some(outplan_body(customer)))
        .await;
    let outdial = sys.sim.create_outdial(customer, targets, 1);
    let mut body =
        json!({"customer_id": customer, "outplan_id": outplan["id"], "outdial_id": outdial});
    if let (Some(b), Some(x)) = (body.as_object_mut(), fields.as_object()) {
        b.extend(x.clone());
    }
    let c = sys.ok("POST", "/v1/campaigns", Some(body)).await;
    let id = c["id"].as_str().unwrap().to_owned();
    sys.ok(
        "PUT",
        &format!("/v1/campaigns/{id}/status"),
        Some(json!({"status": "run"})),
    )
    .await;
    (id, c)
}

#[tokio::test]
async fn call_hangups_finish_campaigncalls_and_stop_the_campaign() {
    call_hangups_finish_campaigncalls_on(EventBus::Topic).await;
}

#[tokio::test]
async fn call_hangups_finish_campaigncalls_and_stop_the_campaign_on_the_fanout_bus() {
    call_hangups_finish_campaigncalls_on(EventBus::Fanout).await;
}

/// Hangups finish the campaigncalls they name (result by reason, target done or idle), the
/// campaign stops with its last call, and events, replays and garbage do no harm, on `bus`.
async fn call_hangups_finish_campaigncalls_on(bus: EventBus) {
    let sys = TestSystem::start(silent(), |s| {
        fast_ticks(s);
        s.event_bus = bus;
    })
    .await;
    let tap = EventTap::bind(&sys).await;
    let raw = Raw::new(&sys).await;
    let customer = Uuid::new_v4();
    let (id, _) = running_campaign(&sys, customer, 4, json!({"type": "call", "name": "c"})).await;
    let ccs = four_calls_dialing(&sys, &tap, &id, customer).await;

    let reasons = ["busy", "", "weird_reason", "normal"];
    for (i, (cc, reason)) in ccs.iter().zip(reasons).enumerate() {
        hang_up_and_check(&sys, &tap, &raw, &id, i, cc, reason).await;
    }
    let ev = tap.one("campaign_status_stop", &id, CAMPAIGN_KEYS).await;
    assert_eq!(
        (ev["status"].as_str(), ev["execute"].as_str()),
        (Some("stop"), Some("stop"))
    );
    assert_eq!(ev, campaign(&sys, &id).await);

    // A hangup for an unknown call and unreadable events are ignored; the service still answers.
    raw.publish_event(
        "call-manager",
        "call_hangup",
        json!({"id": Uuid::new_v4(), "hangup_reason": "normal"}),
    )
    .await;
    raw.publish_event("call-manager", "call_hangup", json!("garbage"))
        .await;
    raw.publish_event("flow-manager", "activeflow_deleted", json!({"id": 5}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(campaign(&sys, &id).await["status"], "stop");
    let done: Vec<Value> = campaigncalls(&sys, &id).await;
    assert!(done.iter().all(|cc| cc["status"] == "done"));
    // The second was finished again as success by its late `normal` hangup.
    assert_eq!(done.iter().filter(|cc| cc["result"] == "fail").count(), 2);

    // Customer webhooks for campaigncalls: identical payloads.
    let first = ccs[0]["id"].as_str().unwrap();
    let w = wait_webhook(&sys, customer, "campaigncall_updated", first).await;
    assert_eq!(
        w,
        tap.one("campaigncall_updated", first, CAMPAIGNCALL_KEYS)
            .await
    );
    let w = wait_webhook(&sys, customer, "campaigncall_created", first).await;
    assert_eq!(w, ccs[0]);
    let w = wait_webhook(&sys, customer, "campaign_status_stop", &id).await;
    assert_eq!(w["status"], "stop");
    sys.stop().await;
}

/// Step of `call_hangups_finish_campaigncalls_and_stop_the_campaign`: the campaign `id` dials all
/// four targets and keeps running while the calls are up; returns the campaigncalls.
async fn four_calls_dialing(
    sys: &TestSystem,
    tap: &EventTap,
    id: &str,
    customer: Uuid,
) -> Vec<Value> {
    // All four targets get dialed; the list is then empty, but not exhausted while calls
    // are up (their targets could come back): the campaign keeps running.
    wait_until(
        "4 dialing campaigncalls",
        Duration::from_secs(20),
        || async { campaigncalls(sys, id).await.len() == 4 },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(tap.count("campaign_status_stopping", id), 0);
    let ccs = campaigncalls(sys, id).await;
    for cc in &ccs {
        let ccid = cc["id"].as_str().unwrap();
        let created = tap
            .one("campaigncall_created", ccid, CAMPAIGNCALL_KEYS)
            .await;
        assert_eq!(created["status"], "dialing");
        assert_eq!(created["result"], "");
        assert_eq!(created["reference_type"], "call");
        assert_eq!(created["campaign_id"], id);
        assert_eq!(created["customer_id"], customer.to_string());
        assert_eq!(created, *cc);
        let target = Uuid::parse_str(cc["outdial_target_id"].as_str().unwrap()).unwrap();
        assert_eq!(
            sys.sim.target(target).unwrap().status,
            TargetState::Progressing
        );
        assert!(
            sys.sim
                .calls()
                .iter()
                .any(|k| k.id.to_string() == cc["reference_id"].as_str().unwrap())
        );
    }
    assert_eq!(campaign(sys, id).await["status"], "run");
    ccs
}

/// Step of `call_hangups_finish_campaigncalls_and_stop_the_campaign`: the `i`th campaigncall's call
/// hangs up with `reason` (empty: none given), among events to ignore, and once more.
async fn hang_up_and_check(
    sys: &TestSystem,
    tap: &EventTap,
    raw: &Raw,
    id: &str,
    i: usize,
    cc: &Value,
    reason: &str,
) {
    let ccid = cc["id"].as_str().unwrap().to_owned();
    let call_id = cc["reference_id"].as_str().unwrap().to_owned();
    let target = Uuid::parse_str(cc["outdial_target_id"].as_str().unwrap()).unwrap();
    // activeflow_deleted for a call campaigncall is ignored (the hangup decides).
    raw.publish_event(
        "flow-manager",
        "activeflow_deleted",
        json!({"id": cc["activeflow_id"], "reference_type": "call"}),
    )
    .await;
    // Events from the wrong publisher are ignored, even under call-manager's routing key.
    let wrong = json!({"type": "call_hangup", "publisher": "someone-else",
        "data_type": "application/json", "data": {"id": call_id, "hangup_reason": "normal"}});
    raw.publish_body(
        "call-manager",
        "call_hangup",
        &call_id,
        wrong.to_string().as_bytes(),
    )
    .await;
    let data = if reason.is_empty() {
        json!({"id": call_id})
    } else {
        json!({"id": call_id, "hangup_reason": reason})
    };
    raw.publish_event("call-manager", "call_hangup", data.clone())
        .await;
    let ev = tap
        .one("campaigncall_updated", &ccid, CAMPAIGNCALL_KEYS)
        .await;
    let want = if reason == "normal" {
        "success"
    } else {
        "fail"
    };
    assert_eq!(ev["status"], "done", "{reason}");
    assert_eq!(ev["result"], want, "{reason}");
    assert!(ev["tm_update"].is_string());
    let want_target = if reason == "normal" {
        TargetState::Done
    } else {
        TargetState::Idle
    };
    wait_until("the target status", Duration::from_secs(10), || {
        let st = sys.sim.target(target).map(|t| t.status);
        async move { st == Some(want_target) }
    })
    .await;
    let stored = sys
        .ok("GET", &format!("/v1/campaigncalls/{ccid}"), None)
        .await;
    assert_eq!(stored, ev);

    // A repeated hangup that is not a late success changes nothing.
    raw.publish_event(
        "call-manager",
        "call_hangup",
        json!({"id": call_id, "hangup_reason": "busy"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sys.ok("GET", &format!("/v1/campaigncalls/{ccid}"), None)
            .await,
        stored
    );
    assert_eq!(tap.count("campaigncall_updated", &ccid), 1);
    if i == 1 {
        // A late `normal` hangup after a `fail`: finished again as success, target `done`.
        raw.publish_event(
            "call-manager",
            "call_hangup",
            json!({"id": call_id, "hangup_reason": "normal"}),
        )
        .await;
        wait_until("the late success", Duration::from_secs(10), || async {
            tap.count("campaigncall_updated", &ccid) == 2
        })
        .await;
        let again = sys
            .ok("GET", &format!("/v1/campaigncalls/{ccid}"), None)
            .await;
        assert_eq!(
            (&again["status"], &again["result"]),
            (&json!("done"), &json!("success"))
        );
        wait_until("the target done", Duration::from_secs(10), || {
            let st = sys.sim.target(target).map(|t| t.status);
            async move { st == Some(TargetState::Done) }
        })
        .await;
    }

    // Running until the last call ends (each target is out of tries), then stop.
    let status = campaign(sys, id).await["status"].clone();
    if i < 3 {
        assert_eq!(status, "run", "after hangup {i}");
        assert_eq!(tap.count("campaign_status_stop", id), 0);
    }
}

#[tokio::test]
async fn activeflow_deleted_finishes_a_flow_campaigncall() {
    let sys = TestSystem::start(silent(), fast_ticks).await;
    let tap = EventTap::bind(&sys).await;
    let raw = Raw::new(&sys).await;
    let customer = Uuid::new_v4();
    let (id, c) = running_campaign(
        &sys,
        customer,
        1,
        json!({"type": "flow", "actions": [{"type": "talk"}]}),
    )
    .await;
    wait_until("a campaigncall", Duration::from_secs(20), || async {
        campaigncalls(&sys, &id).await.len() == 1
    })
    .await;
    let cc = campaigncalls(&sys, &id).await[0].clone();
    let ccid = cc["id"].as_str().unwrap().to_owned();
    let created = tap
        .one("campaigncall_created", &ccid, CAMPAIGNCALL_KEYS)
        .await;
    assert_eq!(created["status"], "dialing");
    assert_eq!(created["reference_type"], "flow");
    assert_eq!(created["reference_id"], Uuid::nil().to_string());
    // Flow campaigncalls go progressing at once.
    let progressing = tap
        .nth("campaigncall_updated", &ccid, 1, CAMPAIGNCALL_KEYS)
        .await;
    assert_eq!(progressing["status"], "progressing");
    assert_eq!(progressing["result"], "");
    // The list is empty but the flow still runs: the campaign keeps running (not
    // exhausted yet). The activeflow was created and executed in the sim.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(campaign(&sys, &id).await["status"], "run");
    assert_eq!(tap.count("campaign_status_stopping", &id), 0);
    let af = sys
        .sim
        .activeflows()
        .into_iter()
        .find(|a| a.reference_id.to_string() == ccid)
        .expect("activeflow");
    assert_eq!(af.id.to_string(), cc["activeflow_id"].as_str().unwrap());
    assert_eq!(af.flow_id.to_string(), c["flow_id"].as_str().unwrap());
    let target = Uuid::parse_str(cc["outdial_target_id"].as_str().unwrap()).unwrap();
    assert_eq!(
        sys.sim.target(target).unwrap().status,
        TargetState::Progressing
    );

    // A call_hangup does not finish a flow campaigncall (reference id is nil, no call).
    raw.publish_event(
        "call-manager",
        "call_hangup",
        json!({"id": Uuid::new_v4(), "hangup_reason": "busy"}),
    )
    .await;
    // activeflow_deleted → done/success, target done, campaign stop.
    for _ in 0..2 {
        raw.publish_event(
            "flow-manager",
            "activeflow_deleted",
            json!({"id": af.id, "status": "ended"}),
        )
        .await;
    }
    let done = tap
        .nth("campaigncall_updated", &ccid, 2, CAMPAIGNCALL_KEYS)
        .await;
    assert_eq!(
        (done["status"].as_str(), done["result"].as_str()),
        (Some("done"), Some("success"))
    );
    wait_until("target done", Duration::from_secs(10), || {
        let st = sys.sim.target(target).map(|t| t.status);
        async move { st == Some(TargetState::Done) }
    })
    .await;
    let stop = tap.one("campaign_status_stop", &id, CAMPAIGN_KEYS).await;
    assert_eq!(stop["status"], "stop");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        tap.count("campaigncall_updated", &ccid),
        2,
        "duplicate event ignored"
    );
    assert_eq!(
        sys.ok("GET", &format!("/v1/campaigncalls/{ccid}"), None)
            .await,
        done
    );
    // campaigncall_deleted.
    let d = sys
        .ok("DELETE", &format!("/v1/campaigncalls/{ccid}"), None)
        .await;
    let ev = tap
        .one("campaigncall_deleted", &ccid, CAMPAIGNCALL_KEYS)
        .await;
    assert_eq!(ev, d);
    assert!(ev["tm_delete"].is_string());
    sys.stop().await;
}

#[tokio::test]
async fn stop_request_while_calls_are_up_goes_stopping_then_stop() {
    // end_handle continue keeps the chain alive, so the stop comes from the request.
    let sys = TestSystem::start(silent(), fast_ticks).await;
    let tap = EventTap::bind(&sys).await;
    let raw = Raw::new(&sys).await;
    let customer = Uuid::new_v4();
    let (id, _) = running_campaign(
        &sys,
        customer,
        1,
        json!({"type": "call", "end_handle": "continue"}),
    )
    .await;
    wait_until("a campaigncall", Duration::from_secs(20), || async {
        campaigncalls(&sys, &id).await.len() == 1
    })
    .await;
    assert_eq!(campaign(&sys, &id).await["status"], "run");
    let s = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}/status"),
            Some(json!({"status": "stop"})),
        )
        .await;
    assert_eq!(s["status"], "stopping");
    let ev = tap
        .one("campaign_status_stopping", &id, CAMPAIGN_KEYS)
        .await;
    assert_eq!(ev["status"], "stopping");
    // The chain notices and ends (execute → stop), the call is still up: stays stopping.
    wait_until("execute stop", Duration::from_secs(10), || async {
        campaign(&sys, &id).await["execute"] == "stop"
    })
    .await;
    assert_eq!(campaign(&sys, &id).await["status"], "stopping");
    let cc = campaigncalls(&sys, &id).await[0].clone();
    raw.publish_event(
        "call-manager",
        "call_hangup",
        json!({"id": cc["reference_id"], "hangup_reason": "noanswer"}),
    )
    .await;
    let ev = tap.one("campaign_status_stop", &id, CAMPAIGN_KEYS).await;
    assert_eq!(
        (ev["status"].as_str(), ev["execute"].as_str()),
        (Some("stop"), Some("stop"))
    );
    let cc = sys
        .ok(
            "GET",
            &format!("/v1/campaigncalls/{}", cc["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(
        (cc["status"].as_str(), cc["result"].as_str()),
        (Some("done"), Some("fail"))
    );
    sys.stop().await;
}

/// Sample count of `campaign_manager_receive_subscribe_event_process_time` for one
/// (publisher, type): how many such events the service has handled.
fn handled_events(sys: &TestSystem, publisher: &str, kind: &str) -> u64 {
    let app = sys.app.as_ref().expect("service running");
    app.metrics
        .registry
        .gather()
        .iter()
        .filter(|f| f.name() == "campaign_manager_receive_subscribe_event_process_time")
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| {
            let label = |k: &str| {
                m.get_label()
                    .iter()
                    .find(|l| l.name() == k)
                    .map(|l| l.value().to_owned())
            };
            label("publisher").as_deref() == Some(publisher)
                && label("type").as_deref() == Some(kind)
        })
        .map(|m| m.get_histogram().get_sample_count())
        .sum()
}

#[tokio::test]
async fn call_hangup_without_call_id_leaves_flow_campaigncalls_open() {
    let sys = TestSystem::start(silent(), fast_ticks).await;
    let raw = Raw::new(&sys).await;
    let customer = Uuid::new_v4();
    let (id, _) = running_campaign(
        &sys,
        customer,
        1,
        json!({"type": "flow", "actions": [{"type": "talk"}]}),
    )
    .await;
    wait_until(
        "a progressing flow campaigncall",
        Duration::from_secs(20),
        || async {
            campaigncalls(&sys, &id)
                .await
                .first()
                .is_some_and(|cc| cc["status"] == "progressing")
        },
    )
    .await;
    let cc = campaigncalls(&sys, &id).await[0].clone();
    assert_eq!(cc["reference_type"], "flow");
    assert_eq!(cc["reference_id"], Uuid::nil().to_string());
    let ccid = cc["id"].as_str().unwrap().to_owned();

    // Hangups whose call id is missing, null or the nil UUID: the lookup by reference id
    // would find the flow campaigncall (its reference id is nil).
    let before = handled_events(&sys, "call-manager", "call_hangup");
    let hostile = [
        json!({"hangup_reason": "normal"}),
        json!({"id": null, "hangup_reason": "busy"}),
        json!({"id": Uuid::nil(), "hangup_reason": "normal", "status": "hangup"}),
    ];
    for data in &hostile {
        raw.publish_event("call-manager", "call_hangup", data.clone())
            .await;
    }
    wait_until("the hangups handled", Duration::from_secs(10), || async {
        handled_events(&sys, "call-manager", "call_hangup") >= before + hostile.len() as u64
    })
    .await;
    let after = sys
        .ok("GET", &format!("/v1/campaigncalls/{ccid}"), None)
        .await;
    assert_eq!(after["status"], "progressing", "{after}");
    assert_eq!(after["result"], "", "{after}");
    assert_eq!(campaign(&sys, &id).await["status"], "run");
    let target = Uuid::parse_str(cc["outdial_target_id"].as_str().unwrap()).unwrap();
    assert_eq!(
        sys.sim.target(target).unwrap().status,
        TargetState::Progressing
    );
    sys.stop().await;
}

#[tokio::test]
async fn undecodable_event_ends_in_the_dead_letter_queue_after_configured_retries() {
    let sys = TestSystem::start(silent(), |s| s.event_retry_ms = vec![50, 50, 50]).await;
    let raw = Raw::new(&sys).await;
    raw.publish_body("call-manager", "call_hangup", "", b"not an event")
        .await;
    let dead = sys.names.names.subscribe_dead_queue.clone();
    let depth = || async {
        raw.ch
            .queue_declare(
                dead.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("dead-letter queue declared by the service")
            .message_count()
    };
    wait_until("the dead letter", Duration::from_secs(15), || async {
        depth().await == 1
    })
    .await;
    let registry = &sys.app.as_ref().expect("running").metrics.registry;
    let dead_lettered: f64 = registry
        .gather()
        .iter()
        .filter(|f| f.name() == "campaign_manager_event_dead_lettered_total")
        .flat_map(|f| f.get_metric().iter())
        .map(|m| m.get_counter().get_value())
        .sum();
    assert_eq!(dead_lettered, 1.0);
    let msg = raw
        .ch
        .basic_get(
            dead.as_str().into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .expect("get")
        .expect("a dead letter");
    assert_eq!(msg.delivery.data, b"not an event");
    let headers = msg.delivery.properties.headers().clone().expect("headers");
    assert_eq!(
        headers.inner().get("x-retry-count"),
        Some(&lapin::types::AMQPValue::LongLongInt(3))
    );
    sys.stop().await;
}
