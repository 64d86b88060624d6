//! Black-box tests of every RPC route (docs/contract.md#routes) over RabbitMQ: the service runs
//! in-process against the peer simulator; the tests talk to it only through its request queue.

use crate::support;
use crate::support::seed::seeded_rng;
use crate::support::wait_until;

use std::time::{Duration, Instant};

use campaign_manager::bus::{CallOptions, Request, Response};
use campaign_sim::{Outcome, Scenario, TargetState};
use futures::StreamExt;
use lapin::BasicProperties;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions};
use lapin::types::FieldTable;
use rand::RngExt;
use serde_json::{Value, json};
use support::contract::*;
use support::scenarios::{fast_ticks, silent};
use support::{TestSystem, amqp_url, peer_events, rabbitmqctl};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const NIL: &str = "00000000-0000-0000-0000-000000000000";

/// Sends a request and returns the whole reply (raw `data` kept).
async fn call(sys: &TestSystem, method: &str, uri: &str, body: Option<Value>) -> Response {
    let mut req = Request::new(method, uri);
    if let Some(b) = body {
        req = req.with_json(&b).unwrap();
    }
    sys.client
        .rpc()
        .call(&sys.names.names.request_queue, &req)
        .await
        .expect("rpc reply")
}

fn raw_data(r: &Response) -> &str {
    r.data.as_deref().map(|d| d.get()).unwrap_or("")
}

/// Asserts a typed error reply and returns its `reason`.
fn assert_typed(r: (u16, String, Value), code: u16, status: &str) -> String {
    let (c, dt, data) = r;
    assert_eq!(c, code, "{dt} {data}");
    assert_eq!(dt, "voipbin_error", "{data}");
    assert_eq!(data["status"], status, "{data}");
    assert_eq!(data["domain"], "campaign-manager", "{data}");
    assert!(data["message"].as_str().is_some_and(|m| !m.is_empty()));
    data["reason"].as_str().unwrap_or_default().to_owned()
}

fn assert_not_found(r: (u16, String, Value), what: &str) {
    let (reason, message) = match what {
        "campaign" => ("CAMPAIGN_NOT_FOUND", "The campaign was not found."),
        "campaigncall" => ("CAMPAIGNCALL_NOT_FOUND", "The campaign call was not found."),
        _ => ("OUTPLAN_NOT_FOUND", "The outplan was not found."),
    };
    assert_eq!(r.0, 404, "{r:?}");
    assert_eq!(r.1, "voipbin_error");
    assert_eq!(
        r.2,
        json!({"status":"NOT_FOUND","reason":reason,"domain":"campaign-manager","message":message})
    );
}

fn id_of(v: &Value) -> Uuid {
    Uuid::parse_str(v["id"].as_str().expect("id")).expect("uuid")
}

/// Each body of `bad`, sent as `method uri`, is refused with 400 `INVALID_ARGUMENT`.
async fn assert_refused_all(
    sys: &TestSystem,
    method: &str,
    uri: &str,
    bad: impl IntoIterator<Item = Value>,
) {
    for body in bad {
        assert_typed(
            sys.rpc(method, uri, Some(body)).await,
            400,
            "INVALID_ARGUMENT",
        );
    }
}

fn rand_id() -> String {
    Uuid::new_v4().to_string()
}

fn outplan_body(customer: Uuid) -> Value {
    json!({
        "customer_id": customer,
        "name": "plan",
        "detail": "plan detail",
        "source": {"type": "tel", "target": "+821100000001"},
        "dial_timeout": 30000,
        "try_interval": 0,
        "max_try_count_0": 1,
        "max_try_count_1": 2,
        "max_try_count_2": 3,
        "max_try_count_3": 4,
        "max_try_count_4": 5
    })
}

async fn new_outplan(sys: &TestSystem, customer: Uuid) -> Value {
    sys.ok("POST", "/v1/outplans", Some(outplan_body(customer)))
        .await
}

/// A stopped call campaign of `customer` with a fresh outplan and outdial (`targets` targets).
async fn new_campaign(sys: &TestSystem, customer: Uuid, targets: usize) -> (Value, Uuid, Uuid) {
    let outplan = id_of(&new_outplan(sys, customer).await);
    let outdial = sys.sim.create_outdial(customer, targets, 1);
    let c = sys
        .ok(
            "POST",
            "/v1/campaigns",
            Some(json!({
                "customer_id": customer, "type": "call", "name": "c", "detail": "d",
                "actions": [{"type": "answer"}], "service_level": 100, "end_handle": "stop",
                "outplan_id": outplan, "outdial_id": outdial
            })),
        )
        .await;
    (c, outplan, outdial)
}

/// A raw AMQP client: publishes arbitrary bytes to a queue and reads replies.
struct RawClient {
    _conn: lapin::Connection,
    ch: lapin::Channel,
    reply_q: String,
    replies: lapin::Consumer,
    n: u64,
}

impl RawClient {
    async fn new() -> RawClient {
        let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .expect("raw connect");
        let ch = conn.create_channel().await.expect("channel");
        let reply_q = crate::support::amqp::private_queue(&ch, "reply queue").await;
        let replies = ch
            .basic_consume(
                reply_q.as_str().into(),
                format!("c-{reply_q}").as_str().into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume");
        RawClient {
            _conn: conn,
            ch,
            reply_q,
            replies,
            n: 0,
        }
    }

    async fn publish(&self, exchange: &str, key: &str, body: &[u8], props: BasicProperties) {
        self.ch
            .basic_publish(
                exchange.into(),
                key.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
    }

    /// Publishes `body` to `queue` with reply_to and a fresh correlation id; returns the raw reply.
    async fn send(&mut self, queue: &str, body: &[u8]) -> String {
        self.n += 1;
        let corr = format!("raw-{}", self.n);
        let props = BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_correlation_id(corr.as_str().into())
            .with_reply_to(self.reply_q.as_str().into());
        self.publish("", queue, body, props).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let d = match tokio::time::timeout(left, self.replies.next()).await {
                Ok(Some(Ok(d))) => d,
                _ => panic!("no reply to {}", String::from_utf8_lossy(body)),
            };
            if d.properties.correlation_id().as_ref().map(|c| c.as_str()) == Some(corr.as_str()) {
                return String::from_utf8(d.data).expect("utf-8 reply");
            }
        }
    }
}

fn envelope(method: &str, uri: &str, data: Option<&str>) -> Vec<u8> {
    let mut s = format!(
        r#"{{"uri":{},"method":{},"publisher":"api-manager","data_type":"application/json""#,
        serde_json::to_string(uri).unwrap(),
        serde_json::to_string(method).unwrap()
    );
    if let Some(d) = data {
        s.push_str(",\"data\":");
        s.push_str(d);
    }
    s.push('}');
    s.into_bytes()
}

/// Publishes a call-manager `call_hangup` for `call_id`.
async fn publish_hangup(sys: &TestSystem, raw: &RawClient, call_id: &str, reason: &str) {
    let ev = json!({"type":"call_hangup","publisher":"call-manager","data_type":"application/json",
        "data":{"id": call_id, "hangup_reason": reason}});
    let (exchange, key) = peer_events::route_in(sys, "call-manager", "call_hangup", call_id);
    raw.publish(
        &exchange,
        &key,
        ev.to_string().as_bytes(),
        BasicProperties::default().with_content_type("text/plain".into()),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Outplans O1–O6
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn outplan_routes() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();

    let (o, id) = outplan_create(&sys, customer).await;
    outplan_create_refusals(&sys, customer).await;
    outplan_get(&sys, id, &o).await;
    outplan_update(&sys, id, &o).await;
    outplan_dials(&sys, id).await;
    // O2 list (details in lists_filters_and_pagination).
    let l = sys
        .ok(
            "GET",
            "/v1/outplans?page_size=10",
            Some(json!({"customer_id": customer, "deleted": false})),
        )
        .await;
    assert_eq!(l.as_array().unwrap().len(), 2);

    outplan_delete(&sys, customer, id).await;
    sys.stop().await;
}

/// Step of `outplan_routes`: `POST /v1/outplans` (O1); returns the outplan and its id.
async fn outplan_create(sys: &TestSystem, customer: Uuid) -> (Value, Uuid) {
    // O1 create: every field, byte-exact order.
    let r = call(sys, "POST", "/v1/outplans", Some(outplan_body(customer))).await;
    assert_eq!(r.status_code, 200);
    assert_eq!(r.data_type, "application/json");
    let o: Value = serde_json::from_str(raw_data(&r)).unwrap();
    assert_eq!(raw_data(&r), canonical(&o, OUTPLAN_KEYS));
    let id = id_of(&o);
    assert_eq!(id.get_version_num(), 4);
    assert_eq!(o["customer_id"], customer.to_string());
    assert_eq!(o["name"], "plan");
    assert_eq!(o["detail"], "plan detail");
    assert_eq!(o["source"], json!({"type":"tel","target":"+821100000001"}));
    assert_eq!(o["dial_timeout"], 30000);
    assert_eq!(o["try_interval"], 0);
    for i in 0..5 {
        assert_eq!(o[format!("max_try_count_{i}")], i + 1);
    }
    assert!(o["tm_create"].as_str().unwrap().ends_with('Z'));
    assert_eq!(o["tm_update"], Value::Null);
    assert_eq!(o["tm_delete"], Value::Null);
    // A given id is ignored (always generated).
    let o2 = sys
        .ok(
            "POST",
            "/v1/outplans",
            Some(json!({"id": rand_id(), "customer_id": customer})),
        )
        .await;
    assert_eq!(o2["source"], Value::Null);
    assert_eq!(o2["name"], "");
    assert_eq!(o2["max_try_count_0"], 0);
    (o, id)
}

/// Step of `outplan_routes`: what `POST /v1/outplans` refuses (O1).
async fn outplan_create_refusals(sys: &TestSystem, customer: Uuid) {
    // O1 errors.
    for bad in [
        json!({"name": "no customer"}),
        json!({"customer_id": 5}),
        json!({"customer_id": "not-a-uuid"}),
        json!({"customer_id": customer, "dial_timeout": "long"}),
        json!({"customer_id": customer, "try_interval": -1}),
        json!({"customer_id": customer, "max_try_count_3": -2}),
        json!({"customer_id": customer, "source": "tel"}),
        json!({"customer_id": customer, "name": 7}),
        json!([1, 2]),
        json!("text"),
        Value::Null,
    ] {
        let reason = assert_typed(
            sys.rpc("POST", "/v1/outplans", Some(bad.clone())).await,
            400,
            "INVALID_ARGUMENT",
        );
        assert_eq!(reason, "INVALID_ARGUMENT", "{bad}");
    }
    assert_typed(
        sys.rpc("POST", "/v1/outplans", None).await,
        400,
        "INVALID_ARGUMENT",
    );
}

/// Step of `outplan_routes`: `GET /v1/outplans/<id>` (O3) of outplan `o`.
async fn outplan_get(sys: &TestSystem, id: Uuid, o: &Value) {
    // O3 get.
    let r = call(sys, "GET", &format!("/v1/outplans/{id}"), None).await;
    assert_eq!(r.status_code, 200);
    assert_eq!(raw_data(&r), canonical(o, OUTPLAN_KEYS));
    assert_not_found(
        sys.rpc("GET", &format!("/v1/outplans/{}", rand_id()), None)
            .await,
        "outplan",
    );
}

/// Step of `outplan_routes`: `PUT /v1/outplans/<id>` (O5) of outplan `o`.
async fn outplan_update(sys: &TestSystem, id: Uuid, o: &Value) {
    // O5 update: partial body keeps omitted fields.
    let u = sys
        .ok(
            "PUT",
            &format!("/v1/outplans/{id}"),
            Some(json!({"name": "renamed"})),
        )
        .await;
    assert_eq!(u["name"], "renamed");
    assert_eq!(u["detail"], "plan detail");
    assert!(u["tm_update"].is_string());
    assert_eq!(u["tm_create"], o["tm_create"]);
    let u = sys
        .ok(
            "PUT",
            &format!("/v1/outplans/{id}"),
            Some(json!({"name": "n2", "detail": "d2"})),
        )
        .await;
    assert_eq!(
        (u["name"].as_str(), u["detail"].as_str()),
        (Some("n2"), Some("d2"))
    );
    assert_eq!(
        u["dial_timeout"], 30000,
        "dials untouched by a basic update"
    );
    assert_typed(
        sys.rpc(
            "PUT",
            &format!("/v1/outplans/{id}"),
            Some(json!({"name": 1})),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
    );
    assert_not_found(
        sys.rpc(
            "PUT",
            &format!("/v1/outplans/{}", rand_id()),
            Some(json!({"name": "x"})),
        )
        .await,
        "outplan",
    );
}

/// Step of `outplan_routes`: `PUT /v1/outplans/<id>/dials` (O6).
async fn outplan_dials(sys: &TestSystem, id: Uuid) {
    // O6 dials: all overwritten, missing source → null.
    let d = sys
        .ok(
            "PUT",
            &format!("/v1/outplans/{id}/dials"),
            Some(json!({"dial_timeout": 1000, "try_interval": 60000, "max_try_count_0": 3})),
        )
        .await;
    assert_eq!(d["source"], Value::Null);
    assert_eq!(d["dial_timeout"], 1000);
    assert_eq!(d["try_interval"], 60000);
    assert_eq!(d["max_try_count_0"], 3);
    assert_eq!(d["max_try_count_4"], 0);
    assert_eq!(d["name"], "n2", "basic info untouched by dials");
    let d = sys
        .ok(
            "PUT",
            &format!("/v1/outplans/{id}/dials"),
            Some(json!({"source": {"type": "sip", "target": "a@b"}, "dial_timeout": 5})),
        )
        .await;
    assert_eq!(d["source"], json!({"type":"sip","target":"a@b"}));
    assert_refused_all(
        sys,
        "PUT",
        &format!("/v1/outplans/{id}/dials"),
        [
            json!({"dial_timeout": "x"}),
            json!({"try_interval": -5}),
            json!({"max_try_count_1": 1.5}),
        ],
    )
    .await;
    assert_not_found(
        sys.rpc(
            "PUT",
            &format!("/v1/outplans/{}/dials", rand_id()),
            Some(json!({})),
        )
        .await,
        "outplan",
    );
    // The reply is what is stored.
    assert_eq!(sys.ok("GET", &format!("/v1/outplans/{id}"), None).await, d);
}

/// Step of `outplan_routes`: `DELETE /v1/outplans/<id>` (O4), then what a deleted outplan answers
/// and how lists see it.
async fn outplan_delete(sys: &TestSystem, customer: Uuid, id: Uuid) {
    // O4 delete.
    let del = call(sys, "DELETE", &format!("/v1/outplans/{id}"), None).await;
    assert_eq!(del.status_code, 200);
    let dv: Value = serde_json::from_str(raw_data(&del)).unwrap();
    assert_eq!(raw_data(&del), canonical(&dv, OUTPLAN_KEYS));
    assert!(dv["tm_delete"].is_string());
    assert_eq!(dv["tm_update"], dv["tm_delete"]);
    assert_eq!(dv["name"], "n2");
    // Deleted: GET/PUT/DELETE are typed 404, the row stays (soft delete).
    assert_not_found(
        sys.rpc("GET", &format!("/v1/outplans/{id}"), None).await,
        "outplan",
    );
    assert_not_found(
        sys.rpc("DELETE", &format!("/v1/outplans/{id}"), None).await,
        "outplan",
    );
    assert_not_found(
        sys.rpc(
            "PUT",
            &format!("/v1/outplans/{id}"),
            Some(json!({"name": "z"})),
        )
        .await,
        "outplan",
    );
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM campaign_outplans WHERE tm_delete IS NOT NULL AND name = 'n2'",
    )
    .fetch_one(&sys.db.pool)
    .await
    .unwrap();
    assert_eq!(n, 1);
    let l = sys
        .ok(
            "GET",
            "/v1/outplans?page_size=10",
            Some(json!({"customer_id": customer, "deleted": false})),
        )
        .await;
    assert_eq!(l.as_array().unwrap().len(), 1);
    let l = sys
        .ok(
            "GET",
            "/v1/outplans?page_size=10",
            Some(json!({"customer_id": customer, "deleted": true})),
        )
        .await;
    assert_eq!(l.as_array().unwrap().len(), 1);
    assert_eq!(l[0]["id"], id.to_string());
}

#[tokio::test]
async fn outplan_delete_refused_while_a_campaign_runs_on_it() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let (c, outplan, _) = new_campaign(&sys, customer, 1).await;
    let cid = id_of(&c);
    sys.ok(
        "PUT",
        &format!("/v1/campaigns/{cid}/status"),
        Some(json!({"status": "run"})),
    )
    .await;
    assert_eq!(
        assert_typed(
            sys.rpc("DELETE", &format!("/v1/outplans/{outplan}"), None)
                .await,
            409,
            "FAILED_PRECONDITION"
        ),
        "FAILED_PRECONDITION"
    );
    assert_eq!(
        sys.ok("GET", &format!("/v1/outplans/{outplan}"), None)
            .await["tm_delete"],
        Value::Null
    );
    sys.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Campaigns C1–C11
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn campaign_create_and_get() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let outplan = id_of(&new_outplan(&sys, customer).await);
    let outdial = sys.sim.create_outdial(customer, 3, 1);
    let queue = sys.sim.create_queue(customer, 2);
    let id = Uuid::new_v4();
    let body = json!({
        "id": id, "customer_id": customer, "type": "call", "name": "test name",
        "detail": "test detail", "actions": [{"type": "answer"}], "service_level": 100,
        "end_handle": "continue", "outplan_id": outplan, "outdial_id": outdial, "queue_id": queue
    });
    let flows_before = sys.sim.flows().len();
    let r = call(&sys, "POST", "/v1/campaigns", Some(body)).await;
    assert_eq!(r.status_code, 200, "{}", raw_data(&r));
    assert_eq!(r.data_type, "application/json");
    let c: Value = serde_json::from_str(raw_data(&r)).unwrap();
    assert_eq!(raw_data(&r), canonical(&c, CAMPAIGN_KEYS));
    let flow_id = c["flow_id"].as_str().unwrap().to_owned();
    let tm = c["tm_create"].as_str().unwrap().to_owned();
    // Byte-exact, with the values we sent.
    let expected = format!(
        concat!(
            r#"{{"id":"{id}","customer_id":"{cu}","type":"call","execute":"stop","name":"test name","#,
            r#""detail":"test detail","status":"stop","service_level":100,"end_handle":"continue","#,
            r#""flow_id":"{fl}","actions":[{{"id":"{nil}","next_id":"{nil}","type":"answer","tm_execute":null}}],"#,
            r#""outplan_id":"{op}","outdial_id":"{od}","queue_id":"{q}","next_campaign_id":"{nil}","#,
            r#""tm_create":"{tm}","tm_update":null,"tm_delete":null}}"#
        ),
        id = id,
        cu = customer,
        fl = flow_id,
        nil = NIL,
        op = outplan,
        od = outdial,
        q = queue,
        tm = tm
    );
    assert_eq!(raw_data(&r), expected);

    // The flow was created in the sim with queue_join appended; the outdial is claimed.
    assert_eq!(sys.sim.flows().len(), flows_before + 1);
    let flow = sys
        .sim
        .flows()
        .into_iter()
        .find(|f| f.id.to_string() == flow_id)
        .expect("flow in the sim");
    assert_eq!(flow.customer_id, customer);
    assert_eq!(flow.kind, "campaign");
    let kinds: Vec<&str> = flow.actions.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["answer", "queue_join"]);
    assert_eq!(
        flow.actions[1].option.as_ref().unwrap()["queue_id"],
        queue.to_string()
    );
    assert_eq!(sys.sim.outdial(outdial).unwrap().outdial.campaign_id, id);

    // C3 get (byte-exact too); unknown id → typed 404.
    let g = call(&sys, "GET", &format!("/v1/campaigns/{id}"), None).await;
    assert_eq!(g.status_code, 200);
    assert_eq!(raw_data(&g), expected);
    assert_not_found(
        sys.rpc("GET", &format!("/v1/campaigns/{}", rand_id()), None)
            .await,
        "campaign",
    );

    // Minimal create: generated id, no actions, no queue → no queue_join; defaults.
    let m = sys
        .ok(
            "POST",
            "/v1/campaigns",
            Some(json!({"customer_id": customer, "type": "flow"})),
        )
        .await;
    assert_eq!(id_of(&m).get_version_num(), 4);
    assert_eq!(m["type"], "flow");
    assert_eq!(m["actions"], Value::Null);
    assert_eq!(m["end_handle"], "stop");
    assert_eq!(m["service_level"], 0);
    assert_eq!(m["outdial_id"], NIL);
    let mflow = sys
        .sim
        .flows()
        .into_iter()
        .find(|f| Some(f.id.to_string().as_str()) == m["flow_id"].as_str())
        .expect("flow");
    assert!(mflow.actions.is_empty());

    // Same id again → 409 ALREADY_EXISTS, and no extra flow.
    let flows = sys.sim.flows().len();
    assert_typed(
        sys.rpc(
            "POST",
            "/v1/campaigns",
            Some(json!({"id": id, "customer_id": customer, "type": "call"})),
        )
        .await,
        409,
        "ALREADY_EXISTS",
    );
    assert_eq!(sys.sim.flows().len(), flows);

    // The row in MySQL.
    let (name, status, execute): (String, String, String) = sqlx::query_as(
        "SELECT name, status, execute FROM campaign_campaigns WHERE id = UNHEX(REPLACE(?, '-', ''))",
    )
    .bind(id.to_string())
    .fetch_one(&sys.db.pool)
    .await
    .unwrap();
    assert_eq!(
        (name.as_str(), status.as_str(), execute.as_str()),
        ("test name", "stop", "stop")
    );
    sys.stop().await;
}

#[tokio::test]
async fn campaign_create_validation() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let other = Uuid::new_v4();
    let outplan = id_of(&new_outplan(&sys, customer).await);
    let foreign_outplan = id_of(&new_outplan(&sys, other).await);
    let outdial = sys.sim.create_outdial(customer, 1, 1);
    let foreign_outdial = sys.sim.create_outdial(other, 1, 1);
    let foreign_queue = sys.sim.create_queue(other, 1);
    let flows_before = sys.sim.flows().len();
    let base = |extra: Value| {
        let mut b = json!({"customer_id": customer, "type": "call", "name": "x"});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let cases = [
        base(json!({"outdial_id": rand_id()})),
        base(json!({"outplan_id": rand_id()})),
        base(json!({"outplan_id": foreign_outplan})),
        base(json!({"outdial_id": foreign_outdial})),
        base(json!({"queue_id": rand_id()})),
        base(json!({"queue_id": foreign_queue})),
        base(json!({"next_campaign_id": rand_id()})),
        base(json!({"type": "sms"})),
        base(json!({"type": null})),
        base(json!({"end_handle": "restart"})),
        base(json!({"service_level": "high"})),
        base(json!({"service_level": -1})),
        base(json!({"outplan_id": "not-a-uuid"})),
        base(json!({"outdial_id": ""})),
        base(json!({"name": ["a"]})),
        base(json!({"actions": {"type": "answer"}})),
        base(json!({"customer_id": null})),
        json!({"type": "call"}),
        json!([]),
        json!(17),
    ];
    for body in cases {
        let r = sys.rpc("POST", "/v1/campaigns", Some(body.clone())).await;
        assert_eq!(r.0, 400, "{body} → {r:?}");
        assert_eq!(r.1, "voipbin_error", "{body}");
        assert_eq!(r.2["status"], "INVALID_ARGUMENT", "{body}");
    }
    // Nothing was created anywhere.
    assert_eq!(sys.sim.flows().len(), flows_before, "no orphan flow");
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM campaign_campaigns")
        .fetch_one(&sys.db.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(
        sys.sim.outdial(outdial).unwrap().outdial.campaign_id,
        Uuid::nil()
    );

    // An outdial owned by another campaign is refused.
    let first = sys
        .ok(
            "POST",
            "/v1/campaigns",
            Some(base(json!({"outplan_id": outplan, "outdial_id": outdial}))),
        )
        .await;
    let r = sys
        .rpc(
            "POST",
            "/v1/campaigns",
            Some(base(json!({"outdial_id": outdial}))),
        )
        .await;
    assert_typed(r, 400, "INVALID_ARGUMENT");
    assert_eq!(
        sys.sim.outdial(outdial).unwrap().outdial.campaign_id,
        id_of(&first)
    );
    // A deleted outplan is refused.
    sys.ok("DELETE", &format!("/v1/outplans/{outplan}"), None)
        .await;
    assert_typed(
        sys.rpc(
            "POST",
            "/v1/campaigns",
            Some(base(json!({"outplan_id": outplan}))),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
    );
    sys.stop().await;
}

#[tokio::test]
async fn campaign_updates() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let (c, outplan, outdial) = new_campaign(&sys, customer, 1).await;
    let id = id_of(&c);
    let flow_id = Uuid::parse_str(c["flow_id"].as_str().unwrap()).unwrap();

    updates_plain_fields(&sys, id, outplan).await;
    updates_service_level(&sys, id).await;
    let queue = updates_resource_info(&sys, customer, id, outplan, outdial, flow_id).await;
    updates_actions(&sys, id, flow_id, queue).await;
    let u = updates_next_campaign(&sys, customer, id).await;

    // Everything above is what GET returns now.
    let g = call(&sys, "GET", &format!("/v1/campaigns/{id}"), None).await;
    let gv: Value = serde_json::from_str(raw_data(&g)).unwrap();
    assert_eq!(raw_data(&g), canonical(&gv, CAMPAIGN_KEYS));
    assert_eq!(gv, u);
    sys.stop().await;
}

/// The flow's actions as the simulated flow-manager holds them: type and queue id, if any.
fn flow_actions(sys: &TestSystem, flow_id: Uuid) -> Vec<(String, Option<String>)> {
    let f = sys
        .sim
        .flows()
        .into_iter()
        .find(|f| f.id == flow_id)
        .unwrap();
    f.actions
        .iter()
        .map(|a| {
            (
                a.kind.clone(),
                a.option
                    .as_ref()
                    .and_then(|o| o.get("queue_id"))
                    .and_then(|v| v.as_str().map(str::to_owned)),
            )
        })
        .collect()
}

/// Step of `campaign_updates`: `PUT /v1/campaigns/<id>` (C5).
async fn updates_plain_fields(sys: &TestSystem, id: Uuid, outplan: Uuid) {
    // C5: omitted keys are api-manager's omitempty: name/detail/service_level ""/""/0,
    // end_handle and type kept (campaign_update_with_omitted_keys has the full story).
    let u = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}"),
            Some(json!({"name": "new name", "type": "call"})),
        )
        .await;
    assert_eq!(u["name"], "new name");
    assert_eq!(u["detail"], "");
    assert_eq!(u["type"], "call");
    assert_eq!(u["service_level"], 0);
    assert_eq!(u["end_handle"], "stop");
    assert!(u["tm_update"].is_string());
    let u = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}"),
            Some(json!({"name": "n", "detail": "dd", "type": "flow", "service_level": 50, "end_handle": "continue"})),
        )
        .await;
    assert_eq!(
        (
            &u["name"],
            &u["detail"],
            &u["type"],
            &u["service_level"],
            &u["end_handle"]
        ),
        (
            &json!("n"),
            &json!("dd"),
            &json!("flow"),
            &json!(50),
            &json!("continue")
        )
    );
    assert_eq!(u["outplan_id"], outplan.to_string(), "resources untouched");
    assert_refused_all(
        sys,
        "PUT",
        &format!("/v1/campaigns/{id}"),
        [
            json!({"type": "sms"}),
            json!({"end_handle": 1}),
            json!({"service_level": "x"}),
            json!({"service_level": -3}),
            json!({"name": null, "detail": 5}),
            json!("name"),
        ],
    )
    .await;
    assert_not_found(
        sys.rpc(
            "PUT",
            &format!("/v1/campaigns/{}", rand_id()),
            Some(json!({"name": "x"})),
        )
        .await,
        "campaign",
    );
}

/// Step of `campaign_updates`: `PUT /v1/campaigns/<id>/service_level` (C8).
async fn updates_service_level(sys: &TestSystem, id: Uuid) {
    // C8 service_level.
    let u = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}/service_level"),
            Some(json!({"service_level": 150})),
        )
        .await;
    assert_eq!(u["service_level"], 150);
    assert_eq!(u["name"], "n");
    assert_refused_all(
        sys,
        "PUT",
        &format!("/v1/campaigns/{id}/service_level"),
        [
            json!({}),
            json!({"service_level": "150"}),
            json!({"service_level": -1}),
            json!({"service_level": 1e20}),
        ],
    )
    .await;
    assert_not_found(
        sys.rpc(
            "PUT",
            &format!("/v1/campaigns/{}/service_level", rand_id()),
            Some(json!({"service_level": 1})),
        )
        .await,
        "campaign",
    );
}

/// Step of `campaign_updates`: `PUT /v1/campaigns/<id>/resource_info` (C10); returns the queue set.
async fn updates_resource_info(
    sys: &TestSystem,
    customer: Uuid,
    id: Uuid,
    outplan: Uuid,
    outdial: Uuid,
    flow_id: Uuid,
) -> Uuid {
    // C10 resource_info: add a queue (flow gets queue_join), move to a new outdial
    // (claimed; the old one released).
    let queue = sys.sim.create_queue(customer, 3);
    let outdial2 = sys.sim.create_outdial(customer, 1, 1);
    let u = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}/resource_info"),
            Some(json!({"outplan_id": outplan, "outdial_id": outdial2, "queue_id": queue})),
        )
        .await;
    assert_eq!(u["queue_id"], queue.to_string());
    assert_eq!(u["outdial_id"], outdial2.to_string());
    assert_eq!(u["next_campaign_id"], NIL);
    assert_eq!(sys.sim.outdial(outdial2).unwrap().outdial.campaign_id, id);
    assert_eq!(
        sys.sim.outdial(outdial).unwrap().outdial.campaign_id,
        Uuid::nil()
    );
    assert_eq!(
        flow_actions(sys, flow_id),
        vec![
            ("answer".to_owned(), None),
            ("queue_join".to_owned(), Some(queue.to_string()))
        ]
    );
    let foreign = sys.sim.create_outdial(Uuid::new_v4(), 1, 1);
    assert_refused_all(
        sys,
        "PUT",
        &format!("/v1/campaigns/{id}/resource_info"),
        [
            json!({"outdial_id": foreign}),
            json!({"outplan_id": rand_id()}),
            json!({"queue_id": rand_id()}),
            json!({"outdial_id": "zzz"}),
            json!({"next_campaign_id": id}),
        ],
    )
    .await;
    assert_eq!(
        sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await["queue_id"],
        queue.to_string(),
        "a refused update changes nothing"
    );
    assert_not_found(
        sys.rpc(
            "PUT",
            &format!("/v1/campaigns/{}/resource_info", rand_id()),
            Some(json!({})),
        )
        .await,
        "campaign",
    );
    queue
}

/// Step of `campaign_updates`: `PUT /v1/campaigns/<id>/actions` (C9), with `queue` set before.
async fn updates_actions(sys: &TestSystem, id: Uuid, flow_id: Uuid, queue: Uuid) {
    // C9 actions: stored as given; the flow gets them plus queue_join.
    let u = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}/actions"),
            Some(json!({"actions": [{"type": "talk", "option": {"text": "hi"}}, {"type": "hangup"}]})),
        )
        .await;
    let acts = u["actions"].as_array().unwrap();
    assert_eq!(acts.len(), 2);
    assert_eq!(
        acts[0],
        json!({"id": NIL, "next_id": NIL, "type": "talk", "option": {"text": "hi"}, "tm_execute": null})
    );
    assert_eq!(
        flow_actions(sys, flow_id),
        vec![
            ("talk".to_owned(), None),
            ("hangup".to_owned(), None),
            ("queue_join".to_owned(), Some(queue.to_string()))
        ]
    );
    assert_refused_all(
        sys,
        "PUT",
        &format!("/v1/campaigns/{id}/actions"),
        [
            json!({"actions": "answer"}),
            json!({"actions": [{"type": 3}]}),
            json!({"actions": [{"id": "bad"}]}),
        ],
    )
    .await;
    assert_not_found(
        sys.rpc(
            "PUT",
            &format!("/v1/campaigns/{}/actions", rand_id()),
            Some(json!({"actions": []})),
        )
        .await,
        "campaign",
    );
}

/// Step of `campaign_updates`: `PUT /v1/campaigns/<id>/next_campaign_id` (C11); returns the
/// campaign as the last update answered.
async fn updates_next_campaign(sys: &TestSystem, customer: Uuid, id: Uuid) -> Value {
    // C11 next_campaign_id: validated (exists, same customer, not itself).
    let (next, _, _) = new_campaign(sys, customer, 0).await;
    let u = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}/next_campaign_id"),
            Some(json!({"next_campaign_id": next["id"]})),
        )
        .await;
    assert_eq!(u["next_campaign_id"], next["id"]);
    let (foreign_c, _, _) = new_campaign(sys, Uuid::new_v4(), 0).await;
    assert_refused_all(
        sys,
        "PUT",
        &format!("/v1/campaigns/{id}/next_campaign_id"),
        [
            json!({"next_campaign_id": rand_id()}),
            json!({"next_campaign_id": id}),
            json!({"next_campaign_id": foreign_c["id"]}),
            json!({"next_campaign_id": 12}),
        ],
    )
    .await;
    let u = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}/next_campaign_id"),
            Some(json!({"next_campaign_id": null})),
        )
        .await;
    assert_eq!(u["next_campaign_id"], NIL);
    assert_not_found(
        sys.rpc(
            "PUT",
            &format!("/v1/campaigns/{}/next_campaign_id", rand_id()),
            Some(json!({"next_campaign_id": null})),
        )
        .await,
        "campaign",
    );
    u
}

/// `PUT /v1/campaigns/<id>` as api-manager sends it: Go's `omitempty` drops `""` and `0`,
/// so an omitted name/detail/service_level means ""/""/0, while an omitted end_handle (and
/// type) keeps the current value; `""` for either is refused and changes nothing.
#[tokio::test]
async fn campaign_update_with_omitted_keys() {
    let sys = TestSystem::start(silent(), |_| {}).await;
    let customer = Uuid::new_v4();
    let c = sys
        .ok(
            "POST",
            "/v1/campaigns",
            Some(json!({
                "customer_id": customer, "type": "flow", "name": "spring", "detail": "long text",
                "service_level": 80, "end_handle": "continue"
            })),
        )
        .await;
    let id = id_of(&c);
    let uri = format!("/v1/campaigns/{id}");

    // api-manager clearing the detail and the service level of a renamed campaign.
    let u = sys
        .ok("PUT", &uri, Some(json!({"name": "summer", "type": "flow"})))
        .await;
    assert_eq!(u["name"], "summer");
    assert_eq!(u["detail"], "", "omitted detail is the empty detail");
    assert_eq!(u["service_level"], 0, "omitted service_level is 0");
    assert_eq!(u["end_handle"], "continue", "omitted end_handle is kept");
    assert_eq!(u["type"], "flow");
    assert_eq!(sys.ok("GET", &uri, None).await, u, "stored as returned");

    // Everything omitted but the type: the name is cleared too; no type keeps the type.
    let u = sys.ok("PUT", &uri, Some(json!({"type": "call"}))).await;
    assert_eq!((&u["name"], &u["type"]), (&json!(""), &json!("call")));
    let u = sys
        .ok("PUT", &uri, Some(json!({"name": "x", "service_level": 5})))
        .await;
    assert_eq!(
        (&u["type"], &u["end_handle"], &u["service_level"]),
        (&json!("call"), &json!("continue"), &json!(5))
    );

    assert_refused_all(
        &sys,
        "PUT",
        &uri,
        [
            json!({"name": "y", "type": "call", "end_handle": ""}),
            json!({"name": "y", "type": ""}),
        ],
    )
    .await;
    assert_eq!(
        sys.ok("GET", &uri, None).await,
        u,
        "a refused update changes nothing"
    );
    sys.stop().await;
}

/// Issue 9 item 6: the cached copy says `stop` but MySQL says `run` (a stale cache entry).
/// DELETE must go by MySQL: 409, nothing deleted, no event. Same for a campaigncall that the
/// cache shows `done` while it is still dialing.
#[tokio::test]
async fn delete_goes_by_the_row_not_a_stale_cached_copy() {
    use campaign_manager::model::{Campaign, CampaigncallStatus};
    let sys = TestSystem::start(silent(), |_| {}).await;
    let customer = Uuid::new_v4();
    let c = sys
        .ok(
            "POST",
            "/v1/campaigns",
            Some(
                json!({"customer_id": customer, "type": "call", "name": "c", "end_handle": "stop"}),
            ),
        )
        .await;
    let id = id_of(&c);
    // Running in MySQL, behind the cache's back: the cached copy still says stop.
    sqlx::query("UPDATE campaign_campaigns SET status = 'run' WHERE id = ?")
        .bind(id.as_bytes().to_vec())
        .execute(&sys.db.pool)
        .await
        .expect("update row");
    let cached = sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await;
    assert_eq!(
        cached["status"], "stop",
        "the planted stale copy is what GET serves"
    );

    let (code, _, data) = sys
        .rpc("DELETE", &format!("/v1/campaigns/{id}"), None)
        .await;
    assert_eq!(code, 409, "{data}");
    assert_eq!(data["status"], "FAILED_PRECONDITION", "{data}");
    let row: (Option<chrono::NaiveDateTime>, String) =
        sqlx::query_as("SELECT tm_delete, status FROM campaign_campaigns WHERE id = ?")
            .bind(id.as_bytes().to_vec())
            .fetch_one(&sys.db.pool)
            .await
            .expect("row");
    assert_eq!(row, (None, "run".to_owned()), "nothing deleted");
    let flow_id = Uuid::parse_str(c["flow_id"].as_str().expect("flow id")).expect("uuid");
    assert!(
        sys.sim
            .flows()
            .iter()
            .any(|f| f.id == flow_id && f.tm_delete.is_none()),
        "the flow is not deleted"
    );

    // A campaigncall cached as done while MySQL says dialing.
    let store = campaign_manager::store::Store::with_pool(sys.db.pool.clone(), sys.prefix.cache());
    let campaign: Campaign = serde_json::from_value(cached).expect("campaign");
    let mut cc = support::records::campaigncall_of(&campaign, CampaigncallStatus::Done);
    cc = store.campaigncalls.create(&cc).await.expect("campaigncall");
    sqlx::query("UPDATE campaign_campaigncalls SET status = 'dialing' WHERE id = ?")
        .bind(cc.id.as_bytes().to_vec())
        .execute(&sys.db.pool)
        .await
        .expect("update row");
    let (code, _, data) = sys
        .rpc("DELETE", &format!("/v1/campaigncalls/{}", cc.id), None)
        .await;
    assert_eq!(code, 409, "{data}");
    assert!(
        store
            .campaigncalls
            .get_fresh(cc.id)
            .await
            .expect("read")
            .expect("row")
            .tm_delete
            .is_none()
    );
    sys.stop().await;
}

#[tokio::test]
async fn campaign_status_execute_and_delete_without_ticks() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let (c, _, outdial) = new_campaign(&sys, customer, 2).await;
    let id = id_of(&c);
    let mut raw = RawClient::new().await;
    let q = sys.names.names.request_queue.clone();
    let exec = envelope("POST", &format!("/v1/campaigns/{id}/execute"), None);

    execute_leaves_a_stopped_campaign(&sys, &mut raw, &q, id, &exec).await;
    let bare = status_refusals(&sys, customer, id).await;
    runs_and_runs_again(&sys, &mut raw, &q, id, &exec).await;
    delete_refused_while_running(&sys, id).await;
    stop_leaves_it_stopping(&sys, &mut raw, &q, id, &exec, outdial).await;
    deletes_a_stopped_campaign(&sys, &bare).await;
    sys.stop().await;
}

/// Step of `campaign_status_execute_and_delete_without_ticks`: `POST /v1/campaigns/<id>/execute`
/// (C6) on a stopped campaign and on an unknown one.
async fn execute_leaves_a_stopped_campaign(
    sys: &TestSystem,
    raw: &mut RawClient,
    q: &str,
    id: Uuid,
    exec: &[u8],
) {
    // C6 on a stopped campaign: bare 200 with no data, nothing changes.
    assert_eq!(
        raw.send(q, exec).await,
        r#"{"status_code":200,"data_type":"application/json"}"#
    );
    let g = sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await;
    assert_eq!(
        (g["status"].as_str(), g["execute"].as_str()),
        (Some("stop"), Some("stop"))
    );
    // Unknown id: the same bare 200.
    assert_eq!(
        raw.send(
            q,
            &envelope(
                "POST",
                &format!("/v1/campaigns/{}/execute", rand_id()),
                None
            )
        )
        .await,
        r#"{"status_code":200,"data_type":"application/json"}"#
    );
}

/// Step of `campaign_status_execute_and_delete_without_ticks`: what `PUT /v1/campaigns/<id>/status`
/// (C7) refuses; returns the campaign created bare (no outplan, no outdial) for that.
async fn status_refusals(sys: &TestSystem, customer: Uuid, id: Uuid) -> Value {
    // C7 status: bad values.
    assert_refused_all(
        sys,
        "PUT",
        &format!("/v1/campaigns/{id}/status"),
        [
            json!({"status": "stopping"}),
            json!({"status": "RUN"}),
            json!({"status": 1}),
            json!({}),
        ],
    )
    .await;
    assert_not_found(
        sys.rpc(
            "PUT",
            &format!("/v1/campaigns/{}/status", rand_id()),
            Some(json!({"status": "run"})),
        )
        .await,
        "campaign",
    );
    // Run needs an outplan and an outdial.
    let bare = sys
        .ok(
            "POST",
            "/v1/campaigns",
            Some(json!({"customer_id": customer, "type": "call"})),
        )
        .await;
    assert_typed(
        sys.rpc(
            "PUT",
            &format!("/v1/campaigns/{}/status", bare["id"].as_str().unwrap()),
            Some(json!({"status": "run"})),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
    );
    bare
}

/// Step of `campaign_status_execute_and_delete_without_ticks`: status `run`, twice, and execute on
/// a running campaign.
async fn runs_and_runs_again(
    sys: &TestSystem,
    raw: &mut RawClient,
    q: &str,
    id: Uuid,
    exec: &[u8],
) {
    // Run.
    let r = call(
        sys,
        "PUT",
        &format!("/v1/campaigns/{id}/status"),
        Some(json!({"status": "run"})),
    )
    .await;
    assert_eq!(r.status_code, 200);
    let rv: Value = serde_json::from_str(raw_data(&r)).unwrap();
    assert_eq!(raw_data(&r), canonical(&rv, CAMPAIGN_KEYS));
    assert_eq!(
        (rv["status"].as_str(), rv["execute"].as_str()),
        (Some("run"), Some("run"))
    );
    // Run again: still run, no error.
    let again = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}/status"),
            Some(json!({"status": "run"})),
        )
        .await;
    assert_eq!(again["status"], "run");
    assert_eq!(
        raw.send(q, exec).await,
        r#"{"status_code":200,"data_type":"application/json"}"#
    );
}

/// Step of `campaign_status_execute_and_delete_without_ticks`: `DELETE` (C4) of a running campaign
/// is refused.
async fn delete_refused_while_running(sys: &TestSystem, id: Uuid) {
    // C4 delete of a running campaign: typed 409, nothing deleted.
    let (status, data_type, data) = sys
        .rpc("DELETE", &format!("/v1/campaigns/{id}"), None)
        .await;
    let reason = assert_typed(
        (status, data_type, data.clone()),
        409,
        "FAILED_PRECONDITION",
    );
    assert_eq!(reason, "CAMPAIGN_NOT_STOPPED");
    assert_eq!(
        data["message"],
        "The campaign must be stopped before it can be deleted."
    );
    assert_eq!(
        sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await["tm_delete"],
        Value::Null
    );
}

/// Step of `campaign_status_execute_and_delete_without_ticks`: stop while the chain is alive, then
/// run again.
async fn stop_leaves_it_stopping(
    sys: &TestSystem,
    raw: &mut RawClient,
    q: &str,
    id: Uuid,
    exec: &[u8],
    outdial: Uuid,
) {
    // Stop with the chain still marked alive (no tick runs here) → stopping, execute run.
    let s = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}/status"),
            Some(json!({"status": "stop"})),
        )
        .await;
    assert_eq!(
        (s["status"].as_str(), s["execute"].as_str()),
        (Some("stopping"), Some("run"))
    );
    // Still not deletable while stopping.
    assert_typed(
        sys.rpc("DELETE", &format!("/v1/campaigns/{id}"), None)
            .await,
        409,
        "FAILED_PRECONDITION",
    );
    // Execute on a stopping campaign changes nothing.
    assert_eq!(
        raw.send(q, exec).await,
        r#"{"status_code":200,"data_type":"application/json"}"#
    );
    assert_eq!(
        sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await["status"],
        "stopping"
    );
    // Run from stopping → run again.
    let r = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}/status"),
            Some(json!({"status": "run"})),
        )
        .await;
    assert_eq!(r["status"], "run");
    assert_eq!(sys.sim.outdial(outdial).unwrap().outdial.campaign_id, id);
}

/// Step of `campaign_status_execute_and_delete_without_ticks`: `DELETE` of the stopped campaign
/// `bare`, and of an unknown id.
async fn deletes_a_stopped_campaign(sys: &TestSystem, bare: &Value) {
    // Deleting a stopped (never run) campaign works at once.
    let bid = bare["id"].as_str().unwrap();
    let d = sys
        .ok("DELETE", &format!("/v1/campaigns/{bid}"), None)
        .await;
    assert!(d["tm_delete"].is_string());
    assert_not_found(
        sys.rpc("GET", &format!("/v1/campaigns/{bid}"), None).await,
        "campaign",
    );
    assert_not_found(
        sys.rpc("DELETE", &format!("/v1/campaigns/{}", rand_id()), None)
            .await,
        "campaign",
    );
}

#[tokio::test]
async fn campaign_stop_then_delete_releases_flow_and_outdial() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), fast_ticks).await;
    let customer = Uuid::new_v4();
    // No targets: the chain's first tick finds the list exhausted and stops the campaign.
    let (c, _, outdial) = new_campaign(&sys, customer, 0).await;
    let id = id_of(&c);
    let flow_id = Uuid::parse_str(c["flow_id"].as_str().unwrap()).unwrap();
    let r = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}/status"),
            Some(json!({"status": "run"})),
        )
        .await;
    assert_eq!(r["status"], "run");
    wait_until("the campaign to stop", Duration::from_secs(15), || async {
        let g = sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await;
        g["status"] == "stop" && g["execute"] == "stop"
    })
    .await;
    let d = call(&sys, "DELETE", &format!("/v1/campaigns/{id}"), None).await;
    assert_eq!(d.status_code, 200, "{}", raw_data(&d));
    let dv: Value = serde_json::from_str(raw_data(&d)).unwrap();
    assert_eq!(raw_data(&d), canonical(&dv, CAMPAIGN_KEYS));
    assert!(dv["tm_delete"].is_string());
    assert_eq!(dv["id"], id.to_string());
    // The flow is deleted in the sim, the outdial released.
    let flow = sys
        .sim
        .flows()
        .into_iter()
        .find(|f| f.id == flow_id)
        .unwrap();
    assert!(flow.tm_delete.is_some(), "flow deleted");
    assert_eq!(
        sys.sim.outdial(outdial).unwrap().outdial.campaign_id,
        Uuid::nil()
    );
    // Soft-deleted: 404 for GET/DELETE/updates, listed with deleted=true.
    assert_not_found(
        sys.rpc("GET", &format!("/v1/campaigns/{id}"), None).await,
        "campaign",
    );
    assert_not_found(
        sys.rpc("DELETE", &format!("/v1/campaigns/{id}"), None)
            .await,
        "campaign",
    );
    assert_not_found(
        sys.rpc(
            "PUT",
            &format!("/v1/campaigns/{id}/status"),
            Some(json!({"status": "run"})),
        )
        .await,
        "campaign",
    );
    let l = sys
        .ok(
            "GET",
            "/v1/campaigns?page_size=10",
            Some(json!({"customer_id": customer, "deleted": true})),
        )
        .await;
    assert_eq!(l.as_array().unwrap().len(), 1);
    // The released outdial can be used by a new campaign.
    sys.ok(
        "POST",
        "/v1/campaigns",
        Some(json!({"customer_id": customer, "type": "call", "outdial_id": outdial})),
    )
    .await;
    sys.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Campaigncalls K1–K3
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn campaigncall_routes() {
    let sys = TestSystem::start(silent(), fast_ticks).await;
    let customer = Uuid::new_v4();
    let (c, outplan, outdial) = new_campaign(&sys, customer, 1).await;
    let id = id_of(&c);
    sys.ok(
        "PUT",
        &format!("/v1/campaigns/{id}/status"),
        Some(json!({"status": "run"})),
    )
    .await;
    let list_uri = "/v1/campaigncalls?page_size=10";
    let filter = json!({"campaign_id": id});
    wait_until("a campaigncall", Duration::from_secs(15), || async {
        sys.ok("GET", list_uri, Some(filter.clone()))
            .await
            .as_array()
            .map(Vec::len)
            == Some(1)
    })
    .await;
    // K1.
    let r = call(&sys, "GET", list_uri, Some(filter.clone())).await;
    assert_eq!(r.status_code, 200);
    let list: Value = serde_json::from_str(raw_data(&r)).unwrap();
    let cc = list[0].clone();
    assert_eq!(
        raw_data(&r),
        format!("[{}]", canonical(&cc, CAMPAIGNCALL_KEYS))
    );
    let ccid = id_of(&cc);
    let target = sys.sim.targets(outdial)[0].target.id;
    assert_eq!(cc["customer_id"], customer.to_string());
    assert_eq!(cc["campaign_id"], id.to_string());
    assert_eq!(cc["outplan_id"], outplan.to_string());
    assert_eq!(cc["outdial_id"], outdial.to_string());
    assert_eq!(cc["outdial_target_id"], target.to_string());
    assert_eq!(cc["flow_id"], c["flow_id"]);
    assert_eq!(cc["reference_type"], "call");
    assert_eq!(cc["status"], "dialing");
    assert_eq!(cc["result"], "");
    assert_eq!(cc["source"], json!({"type":"tel","target":"+821100000001"}));
    assert_eq!(cc["destination_index"], 0);
    assert_eq!(cc["try_count"], 1);
    let call_id = cc["reference_id"].as_str().unwrap().to_owned();
    // The call is placed right after the campaigncall is stored.
    wait_until("the call in the sim", Duration::from_secs(10), || {
        let placed = sys.sim.calls().iter().any(|k| k.id.to_string() == call_id);
        async move { placed }
    })
    .await;
    let none = sys
        .ok("GET", list_uri, Some(json!({"campaign_id": rand_id()})))
        .await;
    assert_eq!(none, json!([]));
    let by_status = sys
        .ok(
            "GET",
            list_uri,
            Some(json!({"status": "dialing", "customer_id": customer})),
        )
        .await;
    assert_eq!(by_status.as_array().unwrap().len(), 1);

    // K2.
    let g = call(&sys, "GET", &format!("/v1/campaigncalls/{ccid}"), None).await;
    assert_eq!(g.status_code, 200);
    assert_eq!(raw_data(&g), canonical(&cc, CAMPAIGNCALL_KEYS));
    assert_not_found(
        sys.rpc("GET", &format!("/v1/campaigncalls/{}", rand_id()), None)
            .await,
        "campaigncall",
    );

    // K3 while dialing → 409; after the hangup → deleted.
    assert_typed(
        sys.rpc("DELETE", &format!("/v1/campaigncalls/{ccid}"), None)
            .await,
        409,
        "FAILED_PRECONDITION",
    );
    let raw = RawClient::new().await;
    publish_hangup(&sys, &raw, &call_id, "normal").await;
    wait_until(
        "the campaigncall to finish",
        Duration::from_secs(10),
        || async {
            sys.ok("GET", &format!("/v1/campaigncalls/{ccid}"), None)
                .await["status"]
                == "done"
        },
    )
    .await;
    let g = sys
        .ok("GET", &format!("/v1/campaigncalls/{ccid}"), None)
        .await;
    assert_eq!(g["result"], "success");
    assert_eq!(sys.sim.target(target).unwrap().status, TargetState::Done);
    let d = call(&sys, "DELETE", &format!("/v1/campaigncalls/{ccid}"), None).await;
    assert_eq!(d.status_code, 200);
    let dv: Value = serde_json::from_str(raw_data(&d)).unwrap();
    assert_eq!(raw_data(&d), canonical(&dv, CAMPAIGNCALL_KEYS));
    assert!(dv["tm_delete"].is_string());
    assert_not_found(
        sys.rpc("GET", &format!("/v1/campaigncalls/{ccid}"), None)
            .await,
        "campaigncall",
    );
    assert_not_found(
        sys.rpc("DELETE", &format!("/v1/campaigncalls/{ccid}"), None)
            .await,
        "campaigncall",
    );
    assert_not_found(
        sys.rpc("DELETE", &format!("/v1/campaigncalls/{}", rand_id()), None)
            .await,
        "campaigncall",
    );
    let l = sys
        .ok(
            "GET",
            list_uri,
            Some(json!({"campaign_id": id, "deleted": false})),
        )
        .await;
    assert_eq!(l, json!([]));
    sys.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Lists: filters and pagination (docs/contract.md#lists)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn lists_filters_and_pagination() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let a = Uuid::new_v4();
    let b = Uuid::new_v4();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(new_outplan(&sys, a).await["id"].clone());
    }
    new_outplan(&sys, b).await;
    new_outplan(&sys, b).await;

    pages_newest_first(&sys, a, &ids).await;
    filters_select_rows(&sys, a, b).await;
    bad_list_queries_refused(&sys).await;
    page_size_clamped(&sys, a).await;
    sys.stop().await;
}

/// Step of `lists_filters_and_pagination`: customer `a`'s outplans `ids` (oldest first) come back
/// in pages of 2, newest first, each once.
async fn pages_newest_first(sys: &TestSystem, a: Uuid, ids: &[Value]) {
    // Pages of 2, newest first, token = tm_create of the last row: all 5, no duplicates.
    let mut seen: Vec<Value> = Vec::new();
    let mut token = String::new();
    for _ in 0..10 {
        let uri = format!(
            "/v1/outplans?page_size=2&page_token={}",
            form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
        );
        let page = sys.ok("GET", &uri, Some(json!({"customer_id": a}))).await;
        let rows = page.as_array().unwrap().clone();
        if rows.is_empty() {
            break;
        }
        assert!(rows.len() <= 2);
        token = rows.last().unwrap()["tm_create"]
            .as_str()
            .unwrap()
            .to_owned();
        seen.extend(rows);
    }
    let mut got: Vec<Value> = seen.iter().map(|r| r["id"].clone()).collect();
    assert_eq!(got.len(), 5, "{got:?}");
    let mut want = ids.to_vec();
    want.reverse();
    assert_eq!(got, want, "newest first");
    got.sort_by_key(|v| v.to_string());
    got.dedup();
    assert_eq!(got.len(), 5);
    for w in seen.windows(2) {
        assert!(w[0]["tm_create"].as_str() >= w[1]["tm_create"].as_str());
    }
}

/// Step of `lists_filters_and_pagination`: the default page size and the filters (`a` has 5
/// outplans, `b` 2).
async fn filters_select_rows(sys: &TestSystem, a: Uuid, b: Uuid) {
    // Missing page_size → default (all 7 here); no filter → everyone.
    let all = sys.ok("GET", "/v1/outplans?", None).await;
    assert_eq!(all.as_array().unwrap().len(), 7);
    let all = sys
        .ok("GET", "/v1/outplans?page_token=", Some(Value::Null))
        .await;
    assert_eq!(all.as_array().unwrap().len(), 7);
    let onlyb = sys
        .ok(
            "GET",
            "/v1/outplans?page_size=100",
            Some(json!({"customer_id": b, "name": "plan"})),
        )
        .await;
    assert_eq!(onlyb.as_array().unwrap().len(), 2);
    let none = sys
        .ok(
            "GET",
            "/v1/outplans?page_size=100",
            Some(json!({"customer_id": b, "name": "other"})),
        )
        .await;
    assert_eq!(none, json!([]));
    let by_int = sys
        .ok(
            "GET",
            "/v1/outplans?page_size=100",
            Some(json!({"dial_timeout": 30000, "customer_id": a})),
        )
        .await;
    assert_eq!(by_int.as_array().unwrap().len(), 5);
}

/// Step of `lists_filters_and_pagination`: bad page parameters and filters are refused on all three
/// lists, and a hostile filter key does nothing to the table (7 outplans).
async fn bad_list_queries_refused(sys: &TestSystem) {
    // Bad page parameters and filters → typed 400, on all three lists.
    let hostile = "name = name OR 1=1; DROP TABLE campaign_outplans; --";
    for list in ["/v1/outplans", "/v1/campaigns", "/v1/campaigncalls"] {
        for q in [
            "page_size=0",
            "page_size=-1",
            "page_size=abc",
            "page_size=1.5",
            "page_token=yesterday",
        ] {
            assert_typed(
                sys.rpc("GET", &format!("{list}?{q}"), None).await,
                400,
                "INVALID_ARGUMENT",
            );
        }
        for f in [
            json!({"no_such_field": "x"}),
            json!({hostile: "x"}),
            json!({"customer_id": 5}),
            json!({"customer_id": "not-a-uuid"}),
            json!({"deleted": 3}),
            json!({"tm_create": "2020-01-01T00:00:00Z"}),
            json!([1]),
            json!("customer_id"),
        ] {
            assert_typed(
                sys.rpc("GET", &format!("{list}?page_size=10"), Some(f.clone()))
                    .await,
                400,
                "INVALID_ARGUMENT",
            );
        }
        assert_eq!(
            sys.rpc("GET", &format!("{list}?page_size=5000"), None)
                .await
                .0,
            200
        );
    }
    // The hostile key did nothing to the table.
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM campaign_outplans")
        .fetch_one(&sys.db.pool)
        .await
        .unwrap();
    assert_eq!(n, 7);
}

/// Step of `lists_filters_and_pagination`: the page size is clamped to 1000 and defaults to 100.
async fn page_size_clamped(sys: &TestSystem, a: Uuid) {
    // page_size > 1000 is clamped to 1000; missing is 100.
    sqlx::query(
        "INSERT INTO campaign_outplans (id, customer_id, name, detail, dial_timeout, try_interval, \
         max_try_count_0, max_try_count_1, max_try_count_2, max_try_count_3, max_try_count_4, tm_create) \
         SELECT UNHEX(REPLACE(UUID(), '-', '')), UNHEX(REPLACE(?, '-', '')), 'bulk', '', 0, 0, 0, 0, 0, 0, 0, \
         NOW(6) - INTERVAL (seq + 10) SECOND FROM seq_1_to_1100",
    )
    .bind(a.to_string())
    .execute(&sys.db.pool)
    .await
    .unwrap();
    let big = sys
        .ok(
            "GET",
            "/v1/outplans?page_size=5000",
            Some(json!({"customer_id": a})),
        )
        .await;
    assert_eq!(big.as_array().unwrap().len(), 1000);
    let dflt = sys
        .ok("GET", "/v1/outplans?", Some(json!({"customer_id": a})))
        .await;
    assert_eq!(dflt.as_array().unwrap().len(), 100);
    let dflt = sys
        .ok(
            "GET",
            "/v1/outplans?page_size=",
            Some(json!({"customer_id": a})),
        )
        .await;
    assert_eq!(dflt.as_array().unwrap().len(), 100);
}

#[tokio::test]
async fn campaign_list_filters() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let a = Uuid::new_v4();
    let (c1, _, _) = new_campaign(&sys, a, 0).await;
    let (c2, _, _) = new_campaign(&sys, a, 0).await;
    new_campaign(&sys, Uuid::new_v4(), 0).await;
    let l = sys
        .ok(
            "GET",
            "/v1/campaigns?page_size=10",
            Some(json!({"customer_id": a})),
        )
        .await;
    let ids: Vec<&Value> = l.as_array().unwrap().iter().map(|c| &c["id"]).collect();
    assert_eq!(ids, vec![&c2["id"], &c1["id"]]);
    let r = call(
        &sys,
        "GET",
        "/v1/campaigns?page_size=1",
        Some(json!({"customer_id": a})),
    )
    .await;
    let one: Value = serde_json::from_str(raw_data(&r)).unwrap();
    assert_eq!(
        raw_data(&r),
        format!("[{}]", canonical(&one[0], CAMPAIGN_KEYS))
    );
    assert_eq!(one[0], c2);
    let l = sys
        .ok(
            "GET",
            "/v1/campaigns?page_size=10",
            Some(json!({"customer_id": a, "status": "stop", "type": "call", "deleted": "true"})),
        )
        .await;
    assert_eq!(l, json!([]));
    let l = sys
        .ok(
            "GET",
            "/v1/campaigns?page_size=10",
            Some(json!({"outdial_id": c1["outdial_id"]})),
        )
        .await;
    assert_eq!(l.as_array().unwrap().len(), 1);
    sys.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Envelope-level behaviour: URIs, bodies, sizes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn uri_matching_and_bare_404() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let (c, outplan, _) = new_campaign(&sys, Uuid::new_v4(), 0).await;
    let id = c["id"].as_str().unwrap().to_owned();
    let up = id.to_uppercase();
    let mut raw = RawClient::new().await;
    let q = sys.names.names.request_queue.clone();
    let bare404 = r#"{"status_code":404,"data_type":""}"#;
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        ("GET", format!("/v1/campaigns/{up}"), None),
        ("DELETE", format!("/v1/campaigns/{up}"), None),
        (
            "PUT",
            format!("/v1/campaigns/{up}/status"),
            Some(r#"{"status":"run"}"#),
        ),
        ("POST", format!("/v1/campaigns/{up}/execute"), None),
        (
            "GET",
            format!("/v1/outplans/{}", outplan.to_string().to_uppercase()),
            None,
        ),
        ("GET", "/v1/campaigns/not-a-uuid".into(), None),
        ("GET", format!("/v1/campaigns/{}", &id[..35]), None),
        ("GET", format!("/v1/campaigns/{id}0"), None),
        ("GET", format!("/v1/campaigns/{{{id}}}"), None),
        (
            "GET",
            format!("/v1/campaigns/{}", id.replace('-', "")),
            None,
        ),
        (
            "GET",
            format!("/v1/campaigncalls/{}", rand_id().to_uppercase()),
            None,
        ),
        ("GET", "/v1/campaigns".into(), None),
        ("GET", "/v1/outplans".into(), None),
        ("GET", "/v1/campaigncalls".into(), None),
        ("PATCH", format!("/v1/campaigns/{id}"), None),
        ("get", format!("/v1/campaigns/{id}"), None),
        ("POST", format!("/v1/campaigns/{id}"), None),
        ("PUT", format!("/v1/campaigns/{id}/nope"), Some("{}")),
        ("GET", format!("/v1/campaigns/{id}/execute"), None),
        ("GET", format!("/v1/campaigns/{id}/extra/more"), None),
        ("GET", format!("/v1/campaigns/{id}?x=1"), None),
        ("GET", "/v2/campaigns?page_size=1".into(), None),
        ("GET", "/v1/foo".into(), None),
        ("GET", "/v1/outdials?page_size=1".into(), None),
        ("GET", "".into(), None),
        ("GET", "/".into(), None),
        ("", "".into(), None),
        ("DELETE", format!("/v1/outplans/{id}/dials"), None),
    ];
    for (method, uri, data) in cases {
        let reply = raw.send(&q, &envelope(method, &uri, data)).await;
        assert_eq!(reply, bare404, "{method} {uri}");
    }
    // The lowercase form of the same id works.
    assert_eq!(
        sys.rpc("GET", &format!("/v1/campaigns/{id}"), None).await.0,
        200
    );
    sys.stop().await;
}

#[tokio::test]
async fn malformed_wrong_typed_and_oversized_bodies() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let (c, _, _) = new_campaign(&sys, customer, 0).await;
    let id = c["id"].as_str().unwrap().to_owned();
    let mut raw = RawClient::new().await;
    let q = sys.names.names.request_queue.clone();

    // An envelope that is not JSON (or whose data is broken JSON) → bare 400.
    let bare400 = r#"{"status_code":400,"data_type":""}"#;
    let broken: Vec<Vec<u8>> = vec![
        br#"{"uri":"/v1/outplans","method":"POST","publisher":"api-manager","data_type":"application/json","data":{"customer_id":}"#.to_vec(),
        br#"{"uri":"/v1/outplans","method":"POST","data":{"name":"x"#.to_vec(),
        b"not json at all".to_vec(),
        b"".to_vec(),
        br#"{"uri":5,"method":"GET"}"#.to_vec(),
        vec![0xff, 0xfe, 0x00, 0x7b],
    ];
    for b in &broken {
        assert_eq!(
            raw.send(&q, b).await,
            bare400,
            "{}",
            String::from_utf8_lossy(b)
        );
    }

    // Valid envelopes with bodies of the wrong shape → typed 400 naming the problem.
    let typed: Vec<(&str, String, &str)> = vec![
        ("POST", "/v1/outplans".into(), r#""a string""#),
        ("POST", "/v1/outplans".into(), r#"{"customer_id":true}"#),
        (
            "POST",
            "/v1/campaigns".into(),
            r#"{"customer_id":"x","type":"call"}"#,
        ),
        (
            "PUT",
            format!("/v1/campaigns/{id}"),
            r#"{"service_level":"100"}"#,
        ),
        (
            "PUT",
            format!("/v1/campaigns/{id}/status"),
            r#"{"status":["run"]}"#,
        ),
        ("PUT", format!("/v1/campaigns/{id}/status"), "null"),
        ("GET", "/v1/campaigns?page_size=1".into(), "42"),
    ];
    for (m, uri, data) in typed {
        let reply = raw.send(&q, &envelope(m, &uri, Some(data))).await;
        let r: Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(r["status_code"], 400, "{m} {uri} {data}: {reply}");
        assert_eq!(r["data_type"], "voipbin_error");
        assert_eq!(r["data"]["status"], "INVALID_ARGUMENT");
        assert_eq!(r["data"]["domain"], "campaign-manager");
        assert!(!reply.contains("sqlx") && !reply.contains("SQL"), "{reply}");
    }
    // A body-less update → typed 400.
    assert_typed(
        sys.rpc("PUT", &format!("/v1/campaigns/{id}/service_level"), None)
            .await,
        400,
        "INVALID_ARGUMENT",
    );

    // Over 1 MiB → 400, for creates and updates; nothing stored.
    let big = "x".repeat(1024 * 1024 + 10);
    let r = sys
        .rpc(
            "POST",
            "/v1/outplans",
            Some(json!({"customer_id": customer, "name": "big", "detail": big})),
        )
        .await;
    assert_eq!(r.0, 400, "{}", r.1);
    assert_eq!(r.2["status"], "INVALID_ARGUMENT");
    let r = sys
        .rpc(
            "PUT",
            &format!("/v1/campaigns/{id}"),
            Some(json!({"detail": big})),
        )
        .await;
    assert_eq!(r.0, 400);
    assert_eq!(
        sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await["detail"],
        "d"
    );
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM campaign_outplans WHERE name = 'big'")
        .fetch_one(&sys.db.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    // A large body under the limit is fine.
    let ok_detail = "y".repeat(60 * 1000);
    let o = sys
        .ok(
            "POST",
            "/v1/outplans",
            Some(json!({"customer_id": customer, "name": "almost", "detail": ok_detail})),
        )
        .await;
    assert_eq!(o["detail"].as_str().map(str::len), Some(60 * 1000));

    // Without reply_to nothing comes back, and the service keeps answering.
    raw.publish(
        "",
        &q,
        b"garbage without reply_to",
        BasicProperties::default(),
    )
    .await;
    assert_eq!(
        sys.rpc("GET", &format!("/v1/campaigns/{id}"), None).await.0,
        200
    );
    sys.stop().await;
}

#[tokio::test]
async fn array_bodies_are_refused() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let (c, outplan, outdial) = new_campaign(&sys, customer, 0).await;
    let id = c["id"].as_str().unwrap().to_owned();
    let mut raw = RawClient::new().await;
    let q = sys.names.names.request_queue.clone();
    // Go's encoding/json refuses an array for a struct: these must be 400 and change nothing.
    let cases: Vec<(&str, String, Value)> = vec![
        (
            "PUT",
            format!("/v1/campaigns/{id}/resource_info"),
            json!([]),
        ),
        ("PUT", format!("/v1/campaigns/{id}/status"), json!(["run"])),
        ("PUT", format!("/v1/campaigns/{id}/actions"), json!([])),
        (
            "PUT",
            format!("/v1/campaigns/{id}/service_level"),
            json!([5]),
        ),
        ("PUT", format!("/v1/campaigns/{id}"), json!(["renamed"])),
        ("PUT", format!("/v1/outplans/{outplan}"), json!(["renamed"])),
    ];
    for (m, uri, body) in cases {
        let r = sys.rpc(m, &uri, Some(body.clone())).await;
        assert_eq!(r.0, 400, "{m} {uri} {body} → {r:?}");
    }
    let g = sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await;
    assert_eq!(g["outdial_id"], outdial.to_string());
    assert_eq!(g["status"], "stop");
    // An envelope that is an array is not a request.
    assert_eq!(
        raw.send(&q, br#"["GET","/v1/outplans?"]"#).await,
        r#"{"status_code":400,"data_type":""}"#
    );
    sys.stop().await;
}

#[tokio::test]
async fn overlong_name_or_detail_is_a_400() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let (c, outplan, _) = new_campaign(&sys, customer, 0).await;
    let id = c["id"].as_str().unwrap().to_owned();
    let long_name = "n".repeat(300);
    let long_detail = "d".repeat(100 * 1000);
    let flows = sys.sim.flows().len();
    let cases: Vec<(&str, String, Value)> = vec![
        (
            "POST",
            "/v1/outplans".into(),
            json!({"customer_id": customer, "name": long_name}),
        ),
        (
            "POST",
            "/v1/outplans".into(),
            json!({"customer_id": customer, "detail": long_detail}),
        ),
        (
            "PUT",
            format!("/v1/outplans/{outplan}"),
            json!({"detail": long_detail}),
        ),
        (
            "POST",
            "/v1/campaigns".into(),
            json!({"customer_id": customer, "type": "call", "detail": long_detail}),
        ),
        (
            "POST",
            "/v1/campaigns".into(),
            json!({"customer_id": customer, "type": "call", "name": long_name}),
        ),
        (
            "PUT",
            format!("/v1/campaigns/{id}"),
            json!({"name": long_name}),
        ),
    ];
    for (m, uri, body) in cases {
        let r = sys.rpc(m, &uri, Some(body)).await;
        assert_eq!(
            (r.0, r.2["status"].as_str()),
            (400, Some("INVALID_ARGUMENT")),
            "{m} {uri} → {r:?}"
        );
    }
    assert_eq!(sys.sim.flows().len(), flows, "no orphan flow");
    sys.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Robustness: broker-side connection close, fuzzing
// ---------------------------------------------------------------------------------------------

/// The broker-side pid of the connection whose channel consumes `queue`.
async fn connection_consuming(queue: &str) -> Option<String> {
    let consumers = rabbitmqctl(&[
        "list_consumers",
        "-q",
        "--no-table-headers",
        "queue_name",
        "channel_pid",
    ])
    .await;
    let channel = consumers.lines().find_map(|l| {
        let mut it = l.split('\t');
        (it.next() == Some(queue)).then(|| it.next().unwrap_or_default().to_owned())
    })?;
    let channels = rabbitmqctl(&[
        "list_channels",
        "-q",
        "--no-table-headers",
        "pid",
        "connection",
    ])
    .await;
    channels.lines().find_map(|l| {
        let mut it = l.split('\t');
        (it.next() == Some(channel.as_str())).then(|| it.next().unwrap_or_default().to_owned())
    })
}

#[tokio::test]
async fn requests_answered_again_after_broker_side_close() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let (c, _, _) = new_campaign(&sys, customer, 0).await;
    let id = c["id"].as_str().unwrap().to_owned();
    let app = sys.app.as_ref().unwrap();
    let queue = sys.names.names.request_queue.clone();
    let conn = connection_consuming(&queue)
        .await
        .expect("the service's connection");
    // It is the service's connection (its client properties carry its connection_name).
    let listing = rabbitmqctl(&[
        "list_connections",
        "-q",
        "--no-table-headers",
        "pid",
        "client_properties",
    ])
    .await;
    let line = listing
        .lines()
        .find(|l| l.starts_with(&format!("{conn}\t")))
        .expect("listed");
    assert!(line.contains(app.bus.connection_name()), "{line}");
    let generation = app.bus.connection().current().map(|l| l.generation);

    rabbitmqctl(&["close_connection", &conn, "test: broker-side close"]).await;
    let closed = Instant::now();
    let req = Request::new("GET", format!("/v1/campaigns/{id}"));
    let mut answered = false;
    while closed.elapsed() < Duration::from_secs(5) {
        match sys
            .client
            .rpc()
            .call_with(
                &queue,
                &req,
                CallOptions::timeout(Duration::from_millis(500)),
            )
            .await
        {
            Ok(r) if r.status_code == 200 => {
                answered = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(answered, "no answer within 5 s of the forced close");
    // A new connection, and a full round trip through the peers (flow create) works again.
    let new_conn = connection_consuming(&queue).await.expect("reconnected");
    assert_ne!(new_conn, conn);
    assert!(app.bus.connection().current().map(|l| l.generation) > generation);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = sys
            .rpc(
                "POST",
                "/v1/campaigns",
                Some(json!({"customer_id": customer, "type": "flow"})),
            )
            .await;
        if r.0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "create after reconnect: {r:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sys.stop().await;
}

fn random_json(rng: &mut impl rand::Rng, depth: u32) -> Value {
    let pick = if depth > 3 {
        rng.random_range(0..5)
    } else {
        rng.random_range(0..8)
    };
    match pick {
        0 => Value::Null,
        1 => json!(rng.random::<bool>()),
        2 => json!(rng.random_range(-1_000_000i64..1_000_000)),
        3 => json!(rng.random::<f64>() * 1e6),
        4 => {
            let words = [
                "",
                "run",
                "stop",
                "call",
                "flow",
                "continue",
                "x",
                "é\u{1F600}",
                "'; DROP",
                NIL,
            ];
            json!(words[rng.random_range(0..words.len())])
        }
        5 => json!(Uuid::new_v4().to_string()),
        6 => Value::Array(
            (0..rng.random_range(0..4))
                .map(|_| random_json(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let keys = [
                "customer_id",
                "type",
                "name",
                "detail",
                "actions",
                "service_level",
                "end_handle",
                "outplan_id",
                "outdial_id",
                "queue_id",
                "next_campaign_id",
                "status",
                "source",
                "dial_timeout",
                "try_interval",
                "max_try_count_0",
                "id",
                "deleted",
                "zzz",
            ];
            let mut m = serde_json::Map::new();
            for _ in 0..rng.random_range(0..6) {
                m.insert(
                    keys[rng.random_range(0..keys.len())].into(),
                    random_json(rng, depth + 1),
                );
            }
            Value::Object(m)
        }
    }
}

#[tokio::test]
async fn fuzz_random_and_truncated_envelopes() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let (c, outplan, _) = new_campaign(&sys, customer, 0).await;
    let cid = c["id"].as_str().unwrap().to_owned();
    let mut raw = RawClient::new().await;
    let q = sys.names.names.request_queue.clone();
    let routes: Vec<(&str, String)> = vec![
        ("POST", "/v1/campaigns".into()),
        ("GET", "/v1/campaigns?page_size=3".into()),
        ("GET", format!("/v1/campaigns/{cid}")),
        ("PUT", format!("/v1/campaigns/{cid}")),
        ("POST", format!("/v1/campaigns/{cid}/execute")),
        ("PUT", format!("/v1/campaigns/{cid}/status")),
        ("PUT", format!("/v1/campaigns/{cid}/service_level")),
        ("PUT", format!("/v1/campaigns/{cid}/actions")),
        ("PUT", format!("/v1/campaigns/{cid}/resource_info")),
        ("PUT", format!("/v1/campaigns/{cid}/next_campaign_id")),
        ("GET", format!("/v1/campaigns/{cid}/stats")),
        ("GET", "/v1/campaigncalls?page_size=2".into()),
        ("GET", format!("/v1/campaigncalls/{}", rand_id())),
        ("DELETE", format!("/v1/campaigncalls/{}", rand_id())),
        ("POST", "/v1/outplans".into()),
        (
            "GET",
            "/v1/outplans?page_size=2&page_token=2020-01-01T00:00:00Z".into(),
        ),
        ("GET", format!("/v1/outplans/{outplan}")),
        ("PUT", format!("/v1/outplans/{outplan}")),
        ("PUT", format!("/v1/outplans/{outplan}/dials")),
        ("DELETE", format!("/v1/campaigns/{}", rand_id())),
        ("DELETE", format!("/v1/outplans/{}", rand_id())),
    ];
    let chars: Vec<char> = "/v1campaignsoutplans?=&-0123456789abcdefABCDEF%._~ \u{e9}"
        .chars()
        .collect();
    let mut rng = seeded_rng("fuzz_random_and_truncated_envelopes");
    let total = 3000usize;
    let mut expected = 0usize;
    let props = |i: usize, reply: bool, reply_q: &str| {
        let mut p = BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_correlation_id(format!("fz{i}").as_str().into());
        if reply {
            p = p.with_reply_to(reply_q.into());
        }
        p
    };
    let reply_q = raw.reply_q.clone();
    for i in 0..total {
        let (m, uri) = &routes[rng.random_range(0..routes.len())];
        let body = random_json(&mut rng, 0).to_string();
        let valid = envelope(m, uri, Some(&body));
        let bytes: Vec<u8> = match i % 6 {
            // A real route with a random JSON body.
            0 | 1 => valid,
            // Truncated.
            2 => valid[..rng.random_range(0..valid.len())].to_vec(),
            // A random URI (and method).
            3 => {
                let uri: String = (0..rng.random_range(0..60))
                    .map(|_| chars[rng.random_range(0..chars.len())])
                    .collect();
                let methods = ["GET", "POST", "PUT", "DELETE", "HEAD", ""];
                envelope(
                    methods[rng.random_range(0..methods.len())],
                    &uri,
                    Some(&body),
                )
            }
            // Random bytes.
            4 => (0..rng.random_range(0..300))
                .map(|_| rng.random::<u8>())
                .collect(),
            // One byte flipped.
            _ => {
                let mut b = valid;
                let k = rng.random_range(0..b.len());
                b[k] = rng.random::<u8>();
                b
            }
        };
        let reply = i % 7 != 0;
        if reply {
            expected += 1;
        }
        raw.publish("", &q, &bytes, props(i, reply, &reply_q)).await;
    }
    let mut got = 0usize;
    let mut seen = std::collections::HashSet::new();
    let mut counts = std::collections::BTreeMap::new();
    while got < expected {
        let d = match tokio::time::timeout(Duration::from_secs(30), raw.replies.next()).await {
            Ok(Some(Ok(d))) => d,
            _ => panic!("only {got}/{expected} replies"),
        };
        let r: Response = serde_json::from_slice(&d.data).expect("a Response");
        assert!(
            matches!(r.status_code, 200 | 400 | 404 | 409),
            "status {}: {}",
            r.status_code,
            String::from_utf8_lossy(&d.data)
        );
        *counts.entry(r.status_code).or_insert(0usize) += 1;
        let corr = d
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.to_string());
        assert!(seen.insert(corr.clone()), "duplicate reply {corr:?}");
        got += 1;
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(500), raw.replies.next())
            .await
            .is_err(),
        "no extra replies"
    );
    assert!(counts.get(&400).copied().unwrap_or(0) > 0, "{counts:?}");
    assert!(counts.get(&404).copied().unwrap_or(0) > 0, "{counts:?}");
    // Still answering normally.
    let g = sys.ok("GET", &format!("/v1/campaigns/{cid}"), None).await;
    assert_eq!(g["id"], cid);
    let o = new_outplan(&sys, customer).await;
    assert_eq!(o["customer_id"], customer.to_string());
    sys.stop().await;
}

/// Every series of `family` in the service's registry, as its label pairs.
fn series(sys: &TestSystem, family: &str) -> Vec<Vec<(String, String)>> {
    let app = sys.app.as_ref().expect("service running");
    app.metrics
        .registry
        .gather()
        .iter()
        .filter(|f| f.name() == family)
        .flat_map(|f| f.get_metric().iter())
        .map(|m| {
            m.get_label()
                .iter()
                .map(|l| (l.name().to_owned(), l.value().to_owned()))
                .collect()
        })
        .collect()
}

/// Distinct values of `label` over the series of `family`.
fn label_values(sys: &TestSystem, family: &str, label: &str) -> std::collections::BTreeSet<String> {
    series(sys, family)
        .into_iter()
        .flatten()
        .filter(|(k, _)| k == label)
        .map(|(_, v)| v)
        .collect()
}

/// Number of series in the whole registry.
fn all_series(sys: &TestSystem) -> usize {
    let app = sys.app.as_ref().expect("service running");
    app.metrics
        .registry
        .gather()
        .iter()
        .map(|f| f.get_metric().len())
        .sum()
}

fn random_text(rng: &mut impl rand::Rng, max: usize) -> String {
    let chars: Vec<char> = "abcXYZ/?=&-_.0123456789 %\u{e9}\u{1F600}\"\\"
        .chars()
        .collect();
    (0..rng.random_range(0..max))
        .map(|_| chars[rng.random_range(0..chars.len())])
        .collect()
}

#[tokio::test]
async fn metric_labels_stay_bounded_under_hostile_envelopes() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |s| {
        // One event at a time, so a last sentinel event is handled after all the others.
        s.event_concurrency = 1;
    })
    .await;
    let mut raw = RawClient::new().await;
    let q = sys.names.names.request_queue.clone();
    // A few legitimate requests so every label the service uses exists before the flood.
    let customer = Uuid::new_v4();
    new_outplan(&sys, customer).await;
    let (status, _, _) = sys
        .rpc("GET", &format!("/v1/campaigns/{}", rand_id()), None)
        .await;
    assert_eq!(status, 404, "an unknown campaign");
    let before = all_series(&sys);

    let mut rng = seeded_rng("metric_labels_stay_bounded_under_hostile_envelopes");
    let methods = ["GET", "POST", "PUT", "DELETE", "get", "HEAD", "PATCH", ""];
    let paths = [
        "/v1/campaigns",
        "/v1/campaigns?page_size=1",
        "/v1/campaigncalls?",
        "/v1/outplans?",
    ];
    let rounds = 600;
    for i in 0..rounds {
        let method = if i % 2 == 0 {
            random_text(&mut rng, 40)
        } else {
            methods[rng.random_range(0..methods.len())].to_owned()
        };
        let uri = match i % 3 {
            0 => random_text(&mut rng, 80),
            1 => format!("/v1/campaigns/{}", rand_id()),
            _ => paths[rng.random_range(0..paths.len())].to_owned(),
        };
        let reply = raw.send(&q, &envelope(&method, &uri, None)).await;
        let r: Response = serde_json::from_str(&reply).expect("a Response");
        assert!(r.status_code < 500, "{method:?} {uri:?} → {reply}");
    }
    // Events of random types and publishers (also the handled publishers with other types).
    let publishers = ["call-manager", "flow-manager", "", "x"];
    for i in 0..rounds {
        let publisher = if i % 2 == 0 {
            publishers[rng.random_range(0..publishers.len())].to_owned()
        } else {
            random_text(&mut rng, 30)
        };
        let ev = json!({"type": random_text(&mut rng, 30), "publisher": publisher,
            "data_type": "application/json", "data": {"id": rand_id()}});
        // Routed to the subscribe queue whatever the envelope says: on the topic bus the key
        // decides, and it is the handled events'.
        let (exchange, key) = if i % 2 == 0 {
            peer_events::route_in(&sys, "call-manager", "call_hangup", &rand_id())
        } else {
            peer_events::route_in(&sys, "flow-manager", "activeflow_deleted", "")
        };
        raw.publish(
            &exchange,
            &key,
            ev.to_string().as_bytes(),
            BasicProperties::default().with_content_type("text/plain".into()),
        )
        .await;
    }
    publish_hangup(&sys, &raw, &rand_id(), "normal").await;
    let hangups = || {
        series(
            &sys,
            "campaign_manager_receive_subscribe_event_process_time",
        )
        .iter()
        .any(|s| s.contains(&("type".to_owned(), "call_hangup".to_owned())))
    };
    wait_until(
        "the sentinel hangup handled",
        Duration::from_secs(30),
        || {
            let done = hangups();
            async move { done }
        },
    )
    .await;

    let family = "campaign_manager_receive_request_process_time";
    let methods_seen = label_values(&sys, family, "method");
    let allowed: std::collections::BTreeSet<String> = ["GET", "POST", "PUT", "DELETE", "other"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(methods_seen.is_subset(&allowed), "{methods_seen:?}");
    assert!(methods_seen.contains("other"), "{methods_seen:?}");
    let statuses_seen = label_values(&sys, family, "status");
    let classes: std::collections::BTreeSet<String> = ["2xx", "3xx", "4xx", "5xx", "other"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(statuses_seen.is_subset(&classes), "{statuses_seen:?}");
    let routes_seen = label_values(&sys, family, "type");
    assert!(routes_seen.contains("notfound"), "{routes_seen:?}");
    assert!(
        routes_seen
            .iter()
            .all(|t| t == "notfound" || t.starts_with("/v1/")),
        "{routes_seen:?}"
    );
    // 14 route labels (the 13 of the platform + stats) + notfound, 5 methods.
    assert!(
        series(&sys, family).len() <= 15 * 5,
        "{:?}",
        series(&sys, family)
    );
    let events_seen = series(
        &sys,
        "campaign_manager_receive_subscribe_event_process_time",
    );
    assert_eq!(
        events_seen,
        vec![vec![
            ("publisher".to_owned(), "call-manager".to_owned()),
            ("type".to_owned(), "call_hangup".to_owned()),
        ]]
    );
    // 1,200 hostile messages added at most the fixed sets above to the whole registry.
    let after = all_series(&sys);
    assert!(
        after <= before + 15 * 5 + 2,
        "series grew from {before} to {after}"
    );
    sys.stop().await;
}
