//! Black-box tests of every RPC route (docs/contract.md#routes) over RabbitMQ: the service runs
//! in-process against the peer simulator; the tests talk to it only through its request queue.
//! One file per route family; this module holds what they share: the request helpers, the typed
//! error checks, the tables of refused requests, and a raw AMQP client for envelopes the typed
//! client cannot send.

mod campaign_refusals;
mod campaign_status;
mod campaign_updates;
mod campaigncalls;
mod campaigns;
mod errors;
mod lists;
mod outplans;
mod robustness;
mod rows;

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

use rows::{Row, Want, check_rows, not_found_of, row, rows_of};

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

/// Asserts the typed 404 of a `what` (`campaign`, `campaigncall`, `outplan`), to the byte.
fn assert_not_found(r: (u16, String, Value), what: &str) {
    let (reason, message) = not_found_of(what);
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
