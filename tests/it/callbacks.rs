//! Callbacks, black box over RabbitMQ with the simulator as the platform
//! (docs/contact-strategy.md): a target with a pending callback is not dialed before its time
//! and is dialed at it (within one tick), also past its used-up tries and on a campaign started
//! after the time; the routes' checks and events; a deleted campaign's callbacks go with it.
//! `campaign-control callback` is tested in tools/control/tests/callbacks.rs.

use crate::support;
use crate::support::black_box::{create_campaign, expect_400, expect_404, id_of, set_status};
use crate::support::wait_until;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use campaign_manager::bus::EventBus;
use campaign_manager::bus::routing::routing_key;
use campaign_manager::model::Address;
use campaign_sim::{Fault, Outcome as SimOutcome, Scenario, Service, TargetSpec};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::{Value, json};
use support::{TestSystem, amqp_url, peer_events};
use uuid::Uuid;

/// How late after its time a callback's dial may be recorded: one tick after a dial (200 ms
/// here) plus scheduling noise on a shared machine. The campaign's waiting tick is 10 s, so a
/// chain that were not woken for the callback would mostly miss it.
const TOLERANCE: Duration = Duration::from_secs(2);

/// Quick ticks after a dial, slow ones when waiting: a callback is only dialed on time if
/// its chain is scheduled by it.
fn slow_waits(s: &mut campaign_manager::config::Settings) {
    s.workers = 2;
    s.first_tick_ms = 100;
    s.dial_tick_ms = 200;
    s.wait_tick_ms = 10_000;
}

fn tel_target(number: &str, tries: i32) -> TargetSpec {
    TargetSpec {
        destinations: vec![Some(Address::tel(number))],
        try_counts: vec![tries],
        ..TargetSpec::default()
    }
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("a time"))
        .expect("an RFC 3339 time")
        .with_timezone(&Utc)
}

async fn add_callback(sys: &TestSystem, campaign: Uuid, target: Uuid, at: DateTime<Utc>) -> Value {
    sys.ok(
        "POST",
        &format!("/v1/campaigns/{campaign}/callbacks"),
        Some(json!({"outdial_target_id": target, "destination_index": 0, "at": at.to_rfc3339()})),
    )
    .await
}

/// The campaign's campaigncalls of `target`.
async fn calls_of(sys: &TestSystem, campaign: Uuid, target: Uuid) -> Vec<Value> {
    let list = sys
        .ok(
            "GET",
            "/v1/campaigncalls?page_size=100",
            Some(json!({ "campaign_id": campaign.to_string() })),
        )
        .await;
    list.as_array()
        .expect("a list")
        .iter()
        .filter(|c| c["outdial_target_id"] == target.to_string())
        .cloned()
        .collect()
}

/// Waits for the first campaigncall of `target` and returns it.
async fn first_call_of(sys: &TestSystem, campaign: Uuid, target: Uuid) -> Value {
    wait_until(
        "the target's campaigncall",
        Duration::from_secs(30),
        || async { !calls_of(sys, campaign, target).await.is_empty() },
    )
    .await;
    calls_of(sys, campaign, target).await.remove(0)
}

/// Asserts the dial was recorded at the callback's time: never before, at most
/// [`TOLERANCE`] after.
fn assert_on_time(call: &Value, at: DateTime<Utc>) {
    let dialed = time(&call["tm_create"]);
    assert!(
        dialed >= at,
        "dialed at {dialed}, before its callback at {at}"
    );
    let late = (dialed - at).to_std().unwrap_or_default();
    assert!(
        late <= TOLERANCE,
        "dialed at {dialed}, {late:?} after its callback at {at}"
    );
    eprintln!("callback dialed {late:?} after its time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_dials_its_target_at_its_time_and_not_before() {
    let sys = TestSystem::start(Scenario::instant(SimOutcome::Answered), slow_waits).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 0, 1);
    let held = sys
        .sim
        .add_target(outdial, tel_target("+15550000001", 0))
        .expect("target");
    let other = sys
        .sim
        .add_target(outdial, tel_target("+15550000002", 0))
        .expect("target");
    let c = id_of(&create_campaign(&sys, "cb", customer, outdial, json!({})).await);
    // Both targets are never tried and available; the callback holds one back until its time.
    let at = Utc::now() + chrono::Duration::seconds(4);
    let cb = add_callback(&sys, c, held, at).await;
    let keys: Vec<&str> = cb
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "customer_id",
            "campaign_id",
            "outdial_target_id",
            "destination_index",
            "at",
            "tm_create"
        ]
    );
    assert_eq!(cb["customer_id"], customer.to_string());
    assert_eq!(cb["campaign_id"], c.to_string());
    set_status(&sys, c, "run").await;

    first_call_of(&sys, c, other).await;
    assert!(
        calls_of(&sys, c, held).await.is_empty(),
        "the held target was dialed with the other, before its callback"
    );
    let call = first_call_of(&sys, c, held).await;
    assert_on_time(&call, at);
    assert_eq!(call["destination"]["target"], "+15550000001");

    // The callback is served by that campaigncall, and dialed once.
    let id = id_of(&cb);
    let served = sys
        .ok("GET", &format!("/v1/campaigns/{c}/callbacks/{id}"), None)
        .await;
    assert_eq!(served["campaigncall_id"], call["id"]);
    wait_until("the campaign stopped", Duration::from_secs(60), || async {
        sys.ok("GET", &format!("/v1/campaigns/{c}"), None).await["status"] == "stop"
    })
    .await;
    assert_eq!(calls_of(&sys, c, held).await.len(), 1);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_on_a_running_campaign_dials_past_the_used_up_tries() {
    let sys = TestSystem::start(Scenario::instant(SimOutcome::Answered), slow_waits).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 0, 1);
    // Its one try (the outplan's maximum) is used: outdial-manager offers it no more.
    let target = sys
        .sim
        .add_target(outdial, tel_target("+15550000003", 1))
        .expect("target");
    let c = id_of(
        &create_campaign(
            &sys,
            "cb",
            customer,
            outdial,
            json!({"end_handle": "continue"}),
        )
        .await,
    );
    set_status(&sys, c, "run").await;
    // The chain finds the list empty and waits its 10 s.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let at = Utc::now() + chrono::Duration::seconds(2);
    add_callback(&sys, c, target, at).await;

    let call = first_call_of(&sys, c, target).await;
    assert_on_time(&call, at);
    assert_eq!(call["try_count"], 2, "{call}");
    let t = sys.sim.target(target).expect("target");
    assert_eq!(t.target.try_count_0, 2, "outdial-manager counted the claim");

    set_status(&sys, c, "stop").await;
    wait_until("the campaign stopped", Duration::from_secs(60), || async {
        sys.ok("GET", &format!("/v1/campaigns/{c}"), None).await["status"] == "stop"
    })
    .await;
    assert_eq!(calls_of(&sys, c, target).await.len(), 1, "dialed once");
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_of_a_stopped_campaign_fires_after_run() {
    let sys = TestSystem::start(Scenario::instant(SimOutcome::Answered), slow_waits).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 0, 1);
    let target = sys
        .sim
        .add_target(outdial, tel_target("+15550000004", 1))
        .expect("target");
    let c = id_of(&create_campaign(&sys, "cb", customer, outdial, json!({})).await);
    let at = Utc::now() + chrono::Duration::milliseconds(1500);
    add_callback(&sys, c, target, at).await;
    tokio::time::sleep((at - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(1))
        .await;
    assert!(
        calls_of(&sys, c, target).await.is_empty(),
        "a stopped campaign dials nothing"
    );
    let run_at = Utc::now();
    set_status(&sys, c, "run").await;
    let call = first_call_of(&sys, c, target).await;
    let dialed = time(&call["tm_create"]);
    assert!(dialed >= run_at, "{dialed} before the run at {run_at}");
    // The list is exhausted once the callback is served (end_handle stop).
    wait_until("the campaign stopped", Duration::from_secs(60), || async {
        sys.ok("GET", &format!("/v1/campaigns/{c}"), None).await["status"] == "stop"
    })
    .await;
    assert_eq!(calls_of(&sys, c, target).await.len(), 1);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_that_placed_no_call_frees_its_callback() {
    let sys = TestSystem::start(Scenario::instant(SimOutcome::Answered), |s| {
        s.workers = 2;
        s.first_tick_ms = 100;
        s.dial_tick_ms = 100;
        s.wait_tick_ms = 200;
    })
    .await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 0, 1);
    let target = sys
        .sim
        .add_target(outdial, tel_target("+15550000006", 1))
        .expect("target");
    let c = id_of(
        &create_campaign(
            &sys,
            "cb",
            customer,
            outdial,
            json!({"end_handle": "continue"}),
        )
        .await,
    );
    // call-manager refuses the first call: the dial is abandoned, nothing was placed.
    sys.sim
        .inject(Fault::status(Service::Call, 400, 1).on_method("POST"));
    set_status(&sys, c, "run").await;
    let at = Utc::now() + chrono::Duration::seconds(1);
    let cb = add_callback(&sys, c, target, at).await;
    wait_until(
        "a second dial of the callback",
        Duration::from_secs(30),
        || async { calls_of(&sys, c, target).await.len() >= 2 },
    )
    .await;
    let calls = calls_of(&sys, c, target).await;
    let refused: Vec<&Value> = calls.iter().filter(|c| c["result"] == "fail").collect();
    assert_eq!(refused.len(), 1, "{calls:?}");
    for call in &calls {
        assert!(time(&call["tm_create"]) >= at, "{call}");
    }
    let placed = calls
        .iter()
        .find(|c| c["result"] != "fail")
        .expect("the placed dial");
    wait_until("the callback served", Duration::from_secs(30), || async {
        let now = sys
            .ok(
                "GET",
                &format!("/v1/campaigns/{c}/callbacks/{}", id_of(&cb)),
                None,
            )
            .await;
        now["campaigncall_id"] == placed["id"]
    })
    .await;
    assert_eq!(sys.sim.calls().len(), 1, "one call placed");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(calls_of(&sys, c, target).await.len(), 2, "not dialed again");
    set_status(&sys, c, "stop").await;
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_fields_are_400s_and_unknown_records_404s() {
    let sys = TestSystem::start(Scenario::instant(SimOutcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 0, 1);
    let target = sys
        .sim
        .add_target(outdial, tel_target("+15550000005", 0))
        .expect("target");
    let elsewhere = sys.sim.create_outdial(customer, 1, 1);
    let foreign = sys.sim.targets(elsewhere)[0].target.id;
    let c = id_of(&create_campaign(&sys, "cb", customer, outdial, json!({})).await);
    let uri = format!("/v1/campaigns/{c}/callbacks");
    let later = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    for (body, field) in [
        (
            json!({"destination_index": 0, "at": later}),
            "outdial_target_id",
        ),
        (
            json!({"outdial_target_id": "nope", "destination_index": 0, "at": later}),
            "outdial_target_id",
        ),
        (
            json!({"outdial_target_id": target, "at": later}),
            "destination_index",
        ),
        (
            json!({"outdial_target_id": target, "destination_index": 5, "at": later}),
            "destination_index",
        ),
        // The target has destination_0 only.
        (
            json!({"outdial_target_id": target, "destination_index": 1, "at": later}),
            "destination_index",
        ),
        (
            json!({"outdial_target_id": target, "destination_index": 0}),
            "at",
        ),
        (
            json!({"outdial_target_id": target, "destination_index": 0, "at": "at six"}),
            "at",
        ),
        (
            json!({"outdial_target_id": target, "destination_index": 0,
                "at": (Utc::now() - chrono::Duration::seconds(1)).to_rfc3339()}),
            "at",
        ),
    ] {
        expect_400(&sys, "POST", &uri, body, field).await;
    }
    // A target outdial-manager does not have, or one of another outdial: 404.
    for t in [Uuid::new_v4(), foreign] {
        expect_404(
            &sys,
            "POST",
            &uri,
            Some(json!({"outdial_target_id": t, "destination_index": 0, "at": later})),
        )
        .await;
    }
    let unknown = Uuid::new_v4();
    expect_404(
        &sys,
        "POST",
        &format!("/v1/campaigns/{unknown}/callbacks"),
        Some(json!({"outdial_target_id": target, "destination_index": 0, "at": later})),
    )
    .await;
    expect_404(
        &sys,
        "GET",
        &format!("/v1/campaigns/{unknown}/callbacks?page_size=10"),
        None,
    )
    .await;
    expect_404(&sys, "GET", &format!("{uri}/{unknown}"), None).await;
    expect_404(&sys, "DELETE", &format!("{uri}/{unknown}"), None).await;

    // Pages, newest first; get and delete.
    let mut made = Vec::new();
    for i in 0..5 {
        let at = Utc::now() + chrono::Duration::hours(1 + i);
        made.push(add_callback(&sys, c, target, at).await);
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = sys
            .ok(
                "GET",
                &format!("{uri}?page_size=2&page_token={token}"),
                None,
            )
            .await;
        let rows = page.as_array().expect("a list").clone();
        let Some(last) = rows.last() else { break };
        token = last["tm_create"].as_str().expect("tm_create").to_owned();
        seen.extend(rows);
    }
    made.reverse();
    assert_eq!(seen, made, "every callback once, newest first");
    let id = id_of(&made[0]);
    assert_eq!(sys.ok("GET", &format!("{uri}/{id}"), None).await, made[0]);
    // Another campaign's callback is not this one's.
    let c2 = id_of(&create_campaign(&sys, "cb2", customer, elsewhere, json!({})).await);
    expect_404(
        &sys,
        "GET",
        &format!("/v1/campaigns/{c2}/callbacks/{id}"),
        None,
    )
    .await;
    assert_eq!(
        sys.ok("DELETE", &format!("{uri}/{id}"), None).await,
        made[0]
    );
    expect_404(&sys, "GET", &format!("{uri}/{id}"), None).await;
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_campaign_deletes_its_callbacks() {
    let sys = TestSystem::start(Scenario::instant(SimOutcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 2, 1);
    let targets: Vec<Uuid> = sys
        .sim
        .targets(outdial)
        .iter()
        .map(|t| t.target.id)
        .collect();
    let c = id_of(&create_campaign(&sys, "cb", customer, outdial, json!({})).await);
    let kept = sys.sim.create_outdial(customer, 1, 1);
    let other = id_of(&create_campaign(&sys, "kept", customer, kept, json!({})).await);
    let later = Utc::now() + chrono::Duration::hours(1);
    for t in &targets {
        add_callback(&sys, c, *t, later).await;
    }
    add_callback(&sys, other, sys.sim.targets(kept)[0].target.id, later).await;
    let count = |campaign: Uuid| {
        let pool = sys.db.pool.clone();
        async move {
            let (n,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM campaign_callbacks WHERE campaign_id = ?")
                    .bind(campaign.as_bytes().to_vec())
                    .fetch_one(&pool)
                    .await
                    .expect("count");
            n
        }
    };
    assert_eq!(count(c).await, 2);
    sys.ok("DELETE", &format!("/v1/campaigns/{c}"), None).await;
    assert_eq!(
        count(c).await,
        0,
        "the deleted campaign's callbacks are gone"
    );
    assert_eq!(count(other).await, 1, "another campaign keeps its own");
    // A process that died between the campaign's delete and its callbacks' left a row: the
    // repair pass removes it.
    sqlx::query(
        "INSERT INTO campaign_callbacks (id, customer_id, campaign_id, outdial_target_id, \
         destination_index, tm_due, campaigncall_id, tm_create) \
         VALUES (?, ?, ?, ?, 0, UTC_TIMESTAMP(6), NULL, UTC_TIMESTAMP(6))",
    )
    .bind(Uuid::new_v4().as_bytes().to_vec())
    .bind(customer.as_bytes().to_vec())
    .bind(c.as_bytes().to_vec())
    .bind(targets[0].as_bytes().to_vec())
    .execute(&sys.db.pool)
    .await
    .expect("insert");
    assert_eq!(count(c).await, 1);
    let app = sys.app.as_ref().expect("running");
    app.service
        .repair_pass(&campaign_manager::service::RepairSettings::default())
        .await
        .expect("repair pass");
    assert_eq!(count(c).await, 0, "the repair pass removed the orphan");
    assert_eq!(count(other).await, 1);
    expect_404(
        &sys,
        "GET",
        &format!("/v1/campaigns/{c}/callbacks?page_size=10"),
        None,
    )
    .await;
    expect_404(
        &sys,
        "POST",
        &format!("/v1/campaigns/{c}/callbacks"),
        Some(
            json!({"outdial_target_id": targets[0], "destination_index": 0,
            "at": later.to_rfc3339()}),
        ),
    )
    .await;
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_and_deleted_events_on_both_buses() {
    for bus in [EventBus::Topic, EventBus::Fanout] {
        let sys = TestSystem::start(Scenario::instant(SimOutcome::Answered), |s| {
            s.event_bus = bus
        })
        .await;
        let (exchange, kind, binding) = peer_events::service_events(&sys);
        let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .expect("tap connect");
        let ch = conn.create_channel().await.expect("channel");
        peer_events::declare(&ch, &exchange, kind).await;
        let mut consumer = support::amqp::tap(&ch, &exchange, binding, "tap").await;
        let seen: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let sink = seen.clone();
        tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                let v: Value = serde_json::from_slice(&d.data).unwrap_or(Value::Null);
                if v["type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("callback_"))
                {
                    sink.lock().unwrap().push((d.routing_key.to_string(), v));
                }
            }
        });
        let customer = Uuid::new_v4();
        let outdial = sys.sim.create_outdial(customer, 1, 1);
        let target = sys.sim.targets(outdial)[0].target.id;
        let c = id_of(&create_campaign(&sys, "cb", customer, outdial, json!({})).await);
        let later = Utc::now() + chrono::Duration::hours(1);
        let first = add_callback(&sys, c, target, later).await;
        let gone = sys
            .ok(
                "DELETE",
                &format!("/v1/campaigns/{c}/callbacks/{}", id_of(&first)),
                None,
            )
            .await;
        let second = add_callback(&sys, c, target, later).await;
        sys.ok("DELETE", &format!("/v1/campaigns/{c}"), None).await;
        wait_until("the events", Duration::from_secs(10), || async {
            seen.lock().unwrap().len() >= 4
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let events = seen.lock().unwrap().clone();
        let kinds: Vec<&str> = events
            .iter()
            .map(|(_, v)| v["type"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            kinds,
            [
                "callback_created",
                "callback_deleted",
                "callback_created",
                "callback_deleted"
            ],
            "{bus:?}"
        );
        assert_eq!(events[0].1["data"], first);
        assert_eq!(events[1].1["data"], gone);
        assert_eq!(events[2].1["data"], second);
        assert_eq!(events[3].1["data"], second, "deleted with its campaign");
        for (key, v) in &events {
            let want = match bus {
                EventBus::Topic => routing_key(
                    "campaign-manager",
                    v["type"].as_str().unwrap_or_default(),
                    &c.to_string(),
                ),
                EventBus::Fanout => String::new(),
            };
            assert_eq!(key, &want, "{bus:?}");
            assert_eq!(v["publisher"], "campaign-manager");
        }
        if bus == EventBus::Topic {
            assert_eq!(
                events[0].0,
                format!("campaign-manager.callback.{c}.created")
            );
        }
        let _ = conn.close(0, "done".into()).await;
        sys.stop().await;
    }
}
