//! The suppression (do-not-call) list, black box over RabbitMQ (docs/contact-strategy.md): its
//! routes and events, and the dial's check against it with the simulator as the platform.
//! `campaign-control suppression` is tested in tools/control/tests/suppressions.rs.

use crate::support;
use crate::support::black_box::{create_campaign, expect_400, expect_404, id_of, set_status};
use crate::support::seed::seeded_rng;
use crate::support::wait_until;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use campaign_manager::bus::EventBus;
use campaign_manager::bus::routing::routing_key;
use campaign_sim::{Outcome as SimOutcome, Scenario, TargetSpec, TargetState};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use rand::RngExt;
use rand::seq::{IndexedRandom, SliceRandom};
use serde_json::{Value, json};
use support::{TestSystem, amqp_url, peer_events};
use uuid::Uuid;

fn fast(s: &mut campaign_manager::config::Settings) {
    s.workers = 2;
    s.first_tick_ms = 100;
    s.dial_tick_ms = 20;
    s.wait_tick_ms = 100;
}

async fn create(sys: &TestSystem, customer: Uuid, target: &str) -> Value {
    sys.ok(
        "POST",
        "/v1/suppressions",
        Some(json!({"customer_id": customer, "target": target, "reason": "opt-out"})),
    )
    .await
}

/// Every entry of the customer, following the page tokens with pages of `size`.
async fn list_all(sys: &TestSystem, customer: Uuid, size: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = sys
            .ok(
                "GET",
                &format!(
                    "/v1/suppressions?customer_id={customer}&page_size={size}&page_token={token}"
                ),
                None,
            )
            .await;
        let rows = page.as_array().expect("a list").clone();
        let Some(last) = rows.last() else {
            return out;
        };
        token = last["tm_create"].as_str().expect("tm_create").to_owned();
        out.extend(rows);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_returns_the_record_and_a_duplicate_returns_the_existing_one() {
    let sys = TestSystem::start(Scenario::instant(SimOutcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let first = create(&sys, customer, " +1 (212) 555-0100 ").await;
    let keys: Vec<&str> = first
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["id", "customer_id", "target", "reason", "tm_create"]);
    assert_eq!(first["target"], "+12125550100");
    assert_eq!(first["customer_id"], customer.to_string());
    // The same number written differently is the same entry.
    let again = create(&sys, customer, "+1-212-555-0100").await;
    assert_eq!(again, first);
    assert_eq!(list_all(&sys, customer, 10).await.len(), 1);
    // Another customer has its own list.
    let other = create(&sys, Uuid::new_v4(), "+12125550100").await;
    assert_ne!(other["id"], first["id"]);

    let expire = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let e = sys
        .ok(
            "POST",
            "/v1/suppressions",
            Some(
                json!({"customer_id": customer, "target": "SIP:Bob@Example.com",
                "reason": "r", "tm_expire": expire}),
            ),
        )
        .await;
    assert_eq!(e["target"], "sip:bob@example.com");
    assert!(e["tm_expire"].is_string(), "{e}");

    let uri = "/v1/suppressions";
    let c = customer.to_string();
    for (body, field) in [
        (json!({"target": "+1"}), "customer_id"),
        (
            json!({"customer_id": "nope", "target": "+1"}),
            "customer_id",
        ),
        (json!({"customer_id": c}), "target"),
        (json!({"customer_id": c, "target": "+0"}), "target"),
        (
            json!({"customer_id": c, "target": "+1", "reason": 7}),
            "reason",
        ),
        (
            json!({"customer_id": c, "target": "+1", "tm_expire": "2020-01-01T00:00:00Z"}),
            "tm_expire",
        ),
        (
            json!({"customer_id": c, "target": "+1", "tm_expire": "tomorrow"}),
            "tm_expire",
        ),
    ] {
        expect_400(&sys, "POST", uri, body, field).await;
    }
    expect_400(
        &sys,
        "GET",
        "/v1/suppressions?target=%2B1",
        json!(null),
        "customer_id",
    )
    .await;
    expect_400(
        &sys,
        "GET",
        &format!("/v1/suppressions?customer_id={customer}&target=%2B0"),
        json!(null),
        "target",
    )
    .await;
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_filters_by_target_and_delete_removes() {
    let sys = TestSystem::start(Scenario::instant(SimOutcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let mut ids = HashSet::new();
    for i in 0..7 {
        ids.insert(create(&sys, customer, &format!("+1555000{i:04}")).await["id"].clone());
    }
    // An import's rows too, which are written in one statement.
    let imported = sys
        .ok(
            "POST",
            "/v1/suppressions/import",
            Some(json!({"customer_id": customer, "reason": "list",
                "targets": (0..25).map(|i| format!("+1666000{i:04}")).collect::<Vec<_>>()})),
        )
        .await;
    assert_eq!(imported, json!({"count": 25}));
    let all = list_all(&sys, customer, 3).await;
    assert_eq!(all.len(), 32, "every entry once over the pages");
    let distinct: HashSet<&Value> = all.iter().map(|v| &v["id"]).collect();
    assert_eq!(distinct.len(), 32);

    let one = sys
        .ok(
            "GET",
            &format!("/v1/suppressions?customer_id={customer}&target=%2B1%20555%200000003"),
            None,
        )
        .await;
    assert_eq!(one.as_array().expect("a list").len(), 1, "{one}");
    assert_eq!(one[0]["target"], "+15550000003");

    let id = id_of(&one[0]);
    let gone = sys
        .ok("DELETE", &format!("/v1/suppressions/{id}"), None)
        .await;
    assert_eq!(gone, one[0]);
    expect_404(&sys, "DELETE", &format!("/v1/suppressions/{id}"), None).await;
    assert_eq!(list_all(&sys, customer, 100).await.len(), 31);
    // Listed again after removal: a new entry.
    let back = create(&sys, customer, "+15550000003").await;
    assert_ne!(back["id"], gone["id"]);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_is_all_or_nothing_and_takes_at_most_ten_thousand() {
    let sys = TestSystem::start(Scenario::instant(SimOutcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let uri = "/v1/suppressions/import";
    create(&sys, customer, "+15550000001").await;
    let bad = json!({"customer_id": customer, "reason": "r",
        "targets": ["+15550000002", "+15550000003", "sip:x@y", "+0999", "+15550000004"]});
    expect_400(&sys, "POST", uri, bad, "targets[3]").await;
    assert_eq!(
        list_all(&sys, customer, 100).await.len(),
        1,
        "nothing of it listed"
    );
    let too_many: Vec<String> = (0..10_001).map(|i| format!("+1777{i:07}")).collect();
    expect_400(
        &sys,
        "POST",
        uri,
        json!({"customer_id": customer, "reason": "r", "targets": too_many}),
        "targets",
    )
    .await;
    expect_400(
        &sys,
        "POST",
        uri,
        json!({"reason": "r", "targets": ["+1"]}),
        "customer_id",
    )
    .await;
    expect_400(
        &sys,
        "POST",
        uri,
        json!({"customer_id": customer, "targets": "+1"}),
        "targets",
    )
    .await;

    // 10,000 (one already listed, one repeated in another spelling) in one go.
    let mut targets: Vec<String> = (0..9_999).map(|i| format!("+1888{i:07}")).collect();
    targets.push("+1 555 000 0001".into());
    targets[5] = "+1-888-000-0000".into();
    let answer = sys
        .ok(
            "POST",
            uri,
            Some(json!({"customer_id": customer, "reason": "r", "targets": targets})),
        )
        .await;
    assert_eq!(answer, json!({"count": 9_999}));
    assert_eq!(list_all(&sys, customer, 1000).await.len(), 9_999);
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
                sink.lock().unwrap().push((d.routing_key.to_string(), v));
            }
        });
        let customer = Uuid::new_v4();
        let s = create(&sys, customer, "+15550000001").await;
        create(&sys, customer, "+15550000001").await; // a duplicate: no second event
        sys.ok(
            "DELETE",
            &format!("/v1/suppressions/{}", s["id"].as_str().unwrap()),
            None,
        )
        .await;
        sys.ok(
            "POST",
            "/v1/suppressions/import",
            Some(json!({"customer_id": customer, "reason": "r", "targets": ["+15550000002"]})),
        )
        .await;
        wait_until("the events", Duration::from_secs(10), || async {
            seen.lock().unwrap().len() >= 3
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
                "suppression_created",
                "suppression_deleted",
                "suppression_created"
            ],
            "{bus:?}"
        );
        assert_eq!(events[0].1["data"], s);
        assert_eq!(events[1].1["data"], s);
        assert_eq!(events[2].1["data"]["target"], "+15550000002");
        for (key, v) in &events {
            let want = match bus {
                EventBus::Topic => routing_key(
                    "campaign-manager",
                    v["type"].as_str().unwrap_or_default(),
                    v["data"]["id"].as_str().unwrap_or_default(),
                ),
                EventBus::Fanout => String::new(),
            };
            assert_eq!(key, &want, "{bus:?}");
            assert_eq!(v["publisher"], "campaign-manager");
        }
        if bus == EventBus::Topic {
            assert!(events[0].0.starts_with("campaign-manager.suppression."));
            assert!(events[0].0.ends_with(".created"));
        }
        let _ = conn.close(0, "done".into()).await;
        sys.stop().await;
    }
}

/// The campaigncalls of a campaign: (destination target, creation time).
async fn dials(sys: &TestSystem, campaign: Uuid) -> Vec<(String, DateTime<Utc>)> {
    let list = sys
        .ok(
            "GET",
            "/v1/campaigncalls?page_size=1000",
            Some(json!({ "campaign_id": campaign.to_string() })),
        )
        .await;
    list.as_array()
        .expect("a list")
        .iter()
        .map(|c| {
            let t = c["tm_create"].as_str().expect("tm_create");
            let at = DateTime::parse_from_rfc3339(t)
                .expect("an RFC 3339 time")
                .with_timezone(&Utc);
            let to = c["destination"]["target"].as_str().unwrap_or_default();
            (to.to_owned(), at)
        })
        .collect()
}

async fn wait_stopped(sys: &TestSystem, ids: &[Uuid]) {
    wait_until(
        "the campaigns stopped",
        Duration::from_secs(120),
        || async {
            let mut all = true;
            for id in ids {
                let c = sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await;
                all &= c["status"] == "stop";
            }
            all
        },
    )
    .await;
}

fn number_of(t: &campaign_sim::SimTarget, index: usize) -> String {
    t.target.destinations()[index]
        .0
        .map(|a| a.target.clone())
        .unwrap_or_default()
}

/// The target's try counts of its first two destinations.
fn tries(t: &campaign_sim::SimTarget) -> [i32; 2] {
    [t.target.try_count_0, t.target.try_count_1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_dial_reaches_a_number_after_its_suppression_committed() {
    // Two campaigns of one customer at 50 dials/s, 800 targets each; 500 of each list are
    // suppressed before the run, 100 more numbers at random moments while it runs.
    let mut rng = seeded_rng("no_dial_reaches_a_number_after_its_suppression_committed");
    let sys = TestSystem::start(Scenario::instant(SimOutcome::Answered), fast).await;
    let customer = Uuid::new_v4();
    let mut campaigns = Vec::new();
    let mut numbers: Vec<(Uuid, String)> = Vec::new();
    for name in ["a", "b"] {
        let outdial = sys.sim.create_outdial(customer, 800, 1);
        for t in sys.sim.targets(outdial) {
            numbers.push((t.target.id, number_of(&t, 0)));
        }
        let c = create_campaign(
            &sys,
            name,
            customer,
            outdial,
            json!({"pacing": {"dials_per_second": 50}}),
        )
        .await;
        campaigns.push(id_of(&c));
    }
    let mut up_front: Vec<(Uuid, String)> = Vec::new();
    for half in numbers.chunks(800) {
        let mut picked: Vec<(Uuid, String)> = half.to_vec();
        picked.shuffle(&mut rng);
        up_front.extend(picked.into_iter().take(500));
    }
    let up_front_set: HashSet<String> = up_front.iter().map(|(_, n)| n.clone()).collect();
    let answer = sys
        .ok(
            "POST",
            "/v1/suppressions/import",
            Some(json!({"customer_id": customer, "reason": "opt-out",
                "targets": up_front_set.iter().collect::<Vec<_>>()})),
        )
        .await;
    assert_eq!(answer["count"], 1000);
    for id in &campaigns {
        set_status(&sys, *id, "run").await;
    }
    wait_until("the first dial", Duration::from_secs(30), || async {
        !sys.sim.calls().is_empty()
    })
    .await;

    // While it runs: 100 numbers not dialed yet (from the ends of the lists, dialed last),
    // each at a random moment; the instant the create's answer came is after its commit.
    let mut later: HashMap<String, DateTime<Utc>> = HashMap::new();
    let pool: Vec<&(Uuid, String)> = numbers
        .iter()
        .filter(|(_, n)| !up_front_set.contains(n))
        .collect();
    for _ in 0..100 {
        let idle: Vec<&&(Uuid, String)> =
            pool.iter()
                .filter(|(id, n)| {
                    !later.contains_key(n)
                        && sys.sim.target(*id).is_some_and(|t| {
                            t.status == TargetState::Idle && t.target.try_count_0 == 0
                        })
                })
                .collect();
        // One of the last 40 still idle (the lists are dialed in order).
        let Some(pick) = idle
            .iter()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .choose(&mut rng)
            .copied()
        else {
            break;
        };
        create(&sys, customer, &pick.1).await;
        later.insert(pick.1.clone(), Utc::now());
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..30))).await;
    }
    assert!(
        later.len() >= 50,
        "only {} numbers were still undialed",
        later.len()
    );
    wait_stopped(&sys, &campaigns).await;

    let mut dialed: Vec<(String, DateTime<Utc>)> = Vec::new();
    for id in &campaigns {
        dialed.extend(dials(&sys, *id).await);
    }
    for (to, at) in &dialed {
        assert!(
            !up_front_set.contains(to),
            "{to} was dialed though listed before the run"
        );
        if let Some(listed) = later.get(to) {
            assert!(
                at <= listed,
                "{to} dialed at {at}, after its entry committed ({listed})"
            );
        }
    }
    // Every number not suppressed was dialed; the up-front ones ended as done, untried.
    let dialed_set: HashSet<&String> = dialed.iter().map(|(to, _)| to).collect();
    for (_, n) in &pool {
        assert!(
            dialed_set.contains(n) || later.contains_key(n),
            "{n} never dialed"
        );
    }
    for (id, n) in &up_front {
        let t = sys.sim.target(*id).expect("target");
        assert_eq!(t.status, TargetState::Done, "{n}");
        assert_eq!(t.target.try_count_0, 0, "{n}");
    }
    let spared = later.keys().filter(|n| !dialed_set.contains(n)).count();
    eprintln!(
        "{} dials; {} of the {} numbers suppressed mid-run were never dialed",
        dialed.len(),
        spared,
        later.len()
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suppressed_destination_is_skipped_for_the_next_and_expired_entries_do_not_count() {
    let sys = TestSystem::start(Scenario::instant(SimOutcome::Answered), fast).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 0, 1);
    let tel = |n: &str| Some(campaign_manager::model::Address::tel(n));
    let spec = |d: Vec<Option<campaign_manager::model::Address>>| TargetSpec {
        destinations: d,
        ..TargetSpec::default()
    };
    // a: first destination suppressed, the second dialed; b: both suppressed, never dialed;
    // c: its entry expired before the run, dialed.
    let a = sys
        .sim
        .add_target(
            outdial,
            spec(vec![tel("+15550000001"), tel("+15550000002")]),
        )
        .expect("target");
    let b = sys
        .sim
        .add_target(
            outdial,
            spec(vec![tel("+15550000003"), tel("+1 555 000 0004")]),
        )
        .expect("target");
    let c = sys
        .sim
        .add_target(outdial, spec(vec![tel("+15550000005")]))
        .expect("target");
    for n in ["+15550000001", "+15550000003", "+15550000004"] {
        create(&sys, customer, n).await;
    }
    let expire = (Utc::now() + chrono::Duration::milliseconds(800)).to_rfc3339();
    sys.ok(
        "POST",
        "/v1/suppressions",
        Some(
            json!({"customer_id": customer, "target": "+15550000005", "reason": "r",
            "tm_expire": expire}),
        ),
    )
    .await;
    // Another customer's list does not apply.
    create(&sys, Uuid::new_v4(), "+15550000002").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let campaign = id_of(&create_campaign(&sys, "skip", customer, outdial, json!({})).await);
    set_status(&sys, campaign, "run").await;
    wait_stopped(&sys, &[campaign]).await;

    let mut called: Vec<String> = dials(&sys, campaign)
        .await
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    called.sort();
    assert_eq!(called, ["+15550000002", "+15550000005"]);
    let ta = sys.sim.target(a).expect("a");
    assert_eq!(tries(&ta), [0, 1]);
    let tb = sys.sim.target(b).expect("b");
    assert_eq!(tb.status, TargetState::Done);
    assert_eq!(tries(&tb), [0, 0]);
    assert_eq!(sys.sim.target(c).expect("c").target.try_count_0, 1);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suppressed_target_whose_end_failed_is_ended_by_a_later_tick() {
    // Ending a suppressed target is a step after the refused record: if outdial-manager
    // refuses it (or the process dies first), the next tick offered the target ends it.
    let sys = TestSystem::start(Scenario::instant(SimOutcome::Answered), fast).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 0, 1);
    let target = sys
        .sim
        .add_target(
            outdial,
            TargetSpec {
                destinations: vec![Some(campaign_manager::model::Address::tel("+15550000001"))],
                ..TargetSpec::default()
            },
        )
        .expect("target");
    create(&sys, customer, "+15550000001").await;
    sys.sim.inject(campaign_sim::Fault {
        service: Some(campaign_sim::Service::Outdial),
        method: Some("PUT".into()),
        uri_contains: Some("/status".into()),
        kind: campaign_sim::FaultKind::Status(500),
        count: 2,
    });
    let campaign = id_of(&create_campaign(&sys, "retry", customer, outdial, json!({})).await);
    set_status(&sys, campaign, "run").await;
    wait_stopped(&sys, &[campaign]).await;
    let t = sys.sim.target(target).expect("target");
    assert_eq!(t.status, TargetState::Done);
    assert_eq!(t.target.try_count_0, 0);
    assert!(dials(&sys, campaign).await.is_empty());
    assert!(sys.sim.calls().is_empty());
    sys.stop().await;
}
