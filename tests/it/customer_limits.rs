//! Customer-wide dial limits (docs/contact-strategy.md "Customer-wide limits"), black box over
//! RabbitMQ with `campaign-sim` as the platform: the route (set, get, clear, a 400 per bad
//! field), and two campaigns of one customer that together never have more calls up than the
//! customer's `max_concurrent_calls` nor more dials in any 1 s window than its
//! `dials_per_second`, while a campaign of another customer is not held back and the stats say
//! `customer_limit`. Also the tick against a real test store with mocked peers: at the
//! customer's cap it waits, below it dials, and a dial the customer's rate does not allow yet
//! makes the chain sleep until its instant. `campaign-control customer limits` is tested in
//! tools/control/tests/customer_limits.rs.

use crate::support;
use crate::support::black_box::{create_campaign, expect_400, expect_404, id_of, set_status};
use crate::support::wait_until;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use campaign_manager::bus::routing::routing_key;
use campaign_manager::model::{
    Address, Campaign, CampaigncallStatus, EndHandle, OutdialTarget, Pacing,
};
use campaign_manager::service::Delays;
use campaign_manager::service::tick::{Next, Outcome};
use campaign_sim::{MsRange, Outcome as SimOutcome, Scenario};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use futures::StreamExt;
use serde_json::{Value, json};
use support::TestSystem;
use support::mocked::{Mocked, fresh_fence};
use support::mocks::Mocks;
use uuid::Uuid;

/// Short delays and a few tick workers: without the customer's limits the campaigns would
/// dial far faster than them.
fn fast(s: &mut campaign_manager::config::Settings) {
    s.workers = 2;
    s.first_tick_ms = 100;
    s.dial_tick_ms = 20;
    s.wait_tick_ms = 100;
}

fn uri(customer: Uuid) -> String {
    format!("/v1/customers/{customer}/dial_limits")
}

async fn run(sys: &TestSystem, id: Uuid) {
    assert_eq!(set_status(sys, id, "run").await["status"], "run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_sets_gets_and_clears_and_names_each_bad_field() {
    let sys = TestSystem::start(Scenario::instant(SimOutcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    // None set: both null (not a 404: a customer without limits is the usual case).
    let none = sys.ok("GET", &uri(customer), None).await;
    assert_eq!(
        none,
        json!({"customer_id": customer, "max_concurrent_calls": null,
               "dials_per_second": null, "tm_update": null})
    );

    let set = sys
        .ok(
            "PUT",
            &uri(customer),
            Some(json!({"max_concurrent_calls": 3, "dials_per_second": 2.5})),
        )
        .await;
    let keys: Vec<&str> = set
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "customer_id",
            "max_concurrent_calls",
            "dials_per_second",
            "tm_update"
        ]
    );
    assert_eq!(set["max_concurrent_calls"], 3);
    assert_eq!(set["dials_per_second"], 2.5);
    assert!(set["tm_update"].is_string(), "{set}");
    assert_eq!(sys.ok("GET", &uri(customer), None).await, set);
    // Another customer has none.
    assert_eq!(
        sys.ok("GET", &uri(Uuid::new_v4()), None).await["max_concurrent_calls"],
        Value::Null
    );

    // A PUT replaces both: an absent key clears that limit.
    let one = sys
        .ok("PUT", &uri(customer), Some(json!({"dials_per_second": 1})))
        .await;
    assert_eq!(one["max_concurrent_calls"], Value::Null);
    assert_eq!(one["dials_per_second"], 1.0);

    for (body, field) in [
        (json!({"max_concurrent_calls": -1}), "max_concurrent_calls"),
        (json!({"max_concurrent_calls": 2.5}), "max_concurrent_calls"),
        (json!({"max_concurrent_calls": "3"}), "max_concurrent_calls"),
        (json!({"dials_per_second": 0}), "dials_per_second"),
        (json!({"dials_per_second": 50.5}), "dials_per_second"),
        (json!({"dials_per_second": "fast"}), "dials_per_second"),
        (json!({"dial_per_second": 1}), "dial_per_second"),
        (json!([1]), "JSON object"),
    ] {
        expect_400(&sys, "PUT", &uri(customer), body, field).await;
    }
    // Refused bodies changed nothing.
    assert_eq!(sys.ok("GET", &uri(customer), None).await, one);

    // Nulls clear, and so does DELETE.
    let cleared = sys
        .ok(
            "PUT",
            &uri(customer),
            Some(json!({"max_concurrent_calls": null, "dials_per_second": null})),
        )
        .await;
    assert_eq!(cleared, none);
    assert_eq!(sys.ok("GET", &uri(customer), None).await, none);
    sys.ok(
        "PUT",
        &uri(customer),
        Some(json!({"max_concurrent_calls": 0})),
    )
    .await;
    assert_eq!(sys.ok("DELETE", &uri(customer), None).await, none);
    assert_eq!(sys.ok("GET", &uri(customer), None).await, none);

    expect_404(&sys, "GET", "/v1/customers/not-a-uuid/dial_limits", None).await;
    expect_404(&sys, "POST", &uri(customer), Some(json!({}))).await;
    sys.stop().await;
}

/// The customer's calls up (created, not hung up) at instant `at`, from the simulator's records.
fn up_at(calls: &[campaign_sim::CallRecord], customer: Uuid, at: DateTime<Utc>) -> usize {
    calls
        .iter()
        .filter(|c| c.customer_id == customer)
        .filter(|d| d.tm_create.is_some_and(|s| s <= at) && d.tm_hangup.is_none_or(|e| e > at))
        .count()
}

/// The customer's calls up now.
fn live(sys: &TestSystem, customer: Uuid) -> usize {
    sys.sim
        .calls()
        .iter()
        .filter(|c| c.customer_id == customer && c.tm_create.is_some() && c.tm_hangup.is_none())
        .count()
}

async fn waiting_reason(sys: &TestSystem, id: Uuid) -> Value {
    sys.ok("GET", &format!("/v1/campaigns/{id}/stats"), None)
        .await["waiting_reason"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_campaigns_of_a_customer_never_have_more_calls_up_together_than_its_cap() {
    // Calls talk 1.5 s. Customer A: cap 3; its first campaign has no pacing, its second a cap
    // of 10 of its own. Customer B: no limits, one campaign.
    let scenario = Scenario {
        ring_ms: MsRange::fixed(100),
        talk_ms: MsRange::fixed(1500),
        ..Scenario::instant(SimOutcome::Answered)
    };
    let sys = TestSystem::start(scenario, fast).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    sys.ok("PUT", &uri(a), Some(json!({"max_concurrent_calls": 3})))
        .await;
    let a1 =
        id_of(&create_campaign(&sys, "a1", a, sys.sim.create_outdial(a, 8, 1), json!({})).await);
    let a2 = id_of(
        &create_campaign(
            &sys,
            "a2",
            a,
            sys.sim.create_outdial(a, 8, 1),
            json!({"pacing": {"max_concurrent_calls": 10}}),
        )
        .await,
    );
    let b1 =
        id_of(&create_campaign(&sys, "b1", b, sys.sim.create_outdial(b, 8, 1), json!({})).await);
    for id in [a1, a2, b1] {
        run(&sys, id).await;
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut most_a, mut most_b, mut saw_reason) = (0, 0, false);
    while sys.sim.calls().iter().filter(|c| c.is_ended()).count() < 24 {
        assert!(
            Instant::now() < deadline,
            "the lists were not dialed in time"
        );
        let up = live(&sys, a);
        assert!(up <= 3, "{up} calls of customer A up with a cap of 3");
        most_a = most_a.max(up);
        most_b = most_b.max(live(&sys, b));
        if !saw_reason && up == 3 {
            for id in [a1, a2] {
                saw_reason |= waiting_reason(&sys, id).await == "customer_limit";
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("customer cap 3: at most {most_a} calls of A up, {most_b} of B (no limit)");
    assert_eq!(most_a, 3, "customer A's cap was never reached");
    assert!(
        most_b > 3,
        "customer B was held back: at most {most_b} calls up"
    );
    assert!(
        saw_reason,
        "the stats never showed waiting_reason customer_limit"
    );

    // The same from the call records: at each creation of one of A's calls, at most 3 of A's
    // calls (itself included) were up; both campaigns dialed.
    let calls = sys.sim.calls();
    assert_eq!(calls.len(), 24);
    for c in calls.iter().filter(|c| c.customer_id == a) {
        let at = c.tm_create.expect("created at");
        let up = up_at(&calls, a, at);
        assert!(up <= 3, "{up} calls of customer A up at {at}");
    }
    sys.stop().await;
}

/// The creation times of the campaign's campaigncalls, read through the RPC API.
async fn campaigncall_times(sys: &TestSystem, campaign: Uuid) -> Vec<DateTime<Utc>> {
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
            DateTime::parse_from_rfc3339(t)
                .or_else(|_| {
                    chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
                        .map(|n| n.and_utc().fixed_offset())
                })
                .expect("a time")
                .with_timezone(&Utc)
        })
        .collect()
}

/// The most creations in any half-open 1 s window `[t, t + 1 s)`.
fn busiest_second(times: &[DateTime<Utc>]) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    (0..sorted.len())
        .map(|i| {
            let end = sorted[i] + ChronoDuration::seconds(1);
            sorted[i..].iter().take_while(|t| **t < end).count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_campaigns_of_a_customer_never_dial_faster_together_than_its_rate() {
    // Calls end at once. Customer A: 4 dials per second; its first campaign has no pacing,
    // its second 20 per second of its own. Customer B: no limits, one campaign.
    let sys = TestSystem::start(Scenario::instant(SimOutcome::Answered), fast).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    sys.ok("PUT", &uri(a), Some(json!({"dials_per_second": 4})))
        .await;
    let a1 =
        id_of(&create_campaign(&sys, "a1", a, sys.sim.create_outdial(a, 200, 1), json!({})).await);
    let a2 = id_of(
        &create_campaign(
            &sys,
            "a2",
            a,
            sys.sim.create_outdial(a, 200, 1),
            json!({"pacing": {"dials_per_second": 20}}),
        )
        .await,
    );
    let b1 =
        id_of(&create_campaign(&sys, "b1", b, sys.sim.create_outdial(b, 400, 1), json!({})).await);
    for id in [a1, a2, b1] {
        run(&sys, id).await;
    }
    // Both of A's campaigns have dialed (the customer's rate is shared first come, first
    // served: on a loaded machine the unpaced one may take the first few seconds alone).
    wait_until(
        "a dial of each of customer A's campaigns",
        Duration::from_secs(30),
        || async {
            !campaigncall_times(&sys, a1).await.is_empty()
                && !campaigncall_times(&sys, a2).await.is_empty()
        },
    )
    .await;
    let mut saw_reason = false;
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        for id in [a1, a2] {
            saw_reason |= waiting_reason(&sys, id).await == "customer_limit";
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for id in [a1, a2, b1] {
        set_status(&sys, id, "stop").await;
    }

    let (t1, t2) = (
        campaigncall_times(&sys, a1).await,
        campaigncall_times(&sys, a2).await,
    );
    let both: Vec<DateTime<Utc>> = t1.iter().chain(t2.iter()).copied().collect();
    let times_b = campaigncall_times(&sys, b1).await;
    let (busiest_a, busiest_b) = (busiest_second(&both), busiest_second(&times_b));
    let mut sorted = both.clone();
    sorted.sort();
    let span = match (sorted.first(), sorted.last()) {
        (Some(f), Some(l)) => (*l - *f).as_seconds_f64(),
        _ => 0.0,
    };
    eprintln!(
        "customer rate 4/s: {} + {} dials of A over {span:.2} s ({:.2}/s), at most {busiest_a} \
         in any 1 s window; B (no limit) {} dials, at most {busiest_b} in one",
        t1.len(),
        t2.len(),
        (sorted.len().max(1) - 1) as f64 / span.max(0.001),
        times_b.len()
    );
    assert!(
        !t1.is_empty() && !t2.is_empty(),
        "both of A's campaigns dial"
    );
    assert!(
        busiest_a <= 4,
        "{busiest_a} dials of customer A in one second at 4 per second"
    );
    assert!(
        busiest_b > 4,
        "customer B was held back: at most {busiest_b} dials in a second"
    );
    assert!(
        saw_reason,
        "the stats never showed waiting_reason customer_limit"
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_and_clear_publish_customer_dial_limits_updated() {
    let sys = TestSystem::start(Scenario::instant(SimOutcome::Answered), |_| {}).await;
    let (exchange, kind, binding) = support::peer_events::service_events(&sys);
    let conn =
        lapin::Connection::connect(&support::amqp_url(), lapin::ConnectionProperties::default())
            .await
            .expect("tap connect");
    let ch = conn.create_channel().await.expect("channel");
    support::peer_events::declare(&ch, &exchange, kind).await;
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
    let set = sys
        .ok(
            "PUT",
            &uri(customer),
            Some(json!({"max_concurrent_calls": 2})),
        )
        .await;
    let cleared = sys.ok("DELETE", &uri(customer), None).await;
    sys.ok("GET", &uri(customer), None).await; // a read publishes nothing
    wait_until("the events", Duration::from_secs(10), || async {
        seen.lock().unwrap().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = seen.lock().unwrap().clone();
    assert_eq!(events.len(), 2, "{events:?}");
    for ((key, v), data) in events.iter().zip([&set, &cleared]) {
        assert_eq!(v["type"], "customer_dial_limits_updated");
        assert_eq!(&v["data"], data);
        assert_eq!(
            key,
            &routing_key(
                "campaign-manager",
                "customer_dial_limits_updated",
                &customer.to_string()
            )
        );
    }
    let _ = conn.close(0, "done".into()).await;
    sys.stop().await;
}

// ---------------------------------------------------------------- the tick, mocked peers

/// The outdial offers one never-tried target once.
fn offer_one(m: &mut Mocks) {
    let created = Utc::now();
    let t = OutdialTarget {
        id: Uuid::new_v4(),
        destination_0: Some(Address::tel("+15550001000")),
        tm_create: Some(created),
        tm_update: Some(created),
        ..OutdialTarget::default()
    };
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(move |_, _, _| Ok(vec![t.clone()]));
}

/// A running call campaign without pacing, its customer limited to `limits`, and `up` calls
/// of another campaign of the same customer in `dialing`.
async fn customer_env(m: Mocks, limits: Pacing, up: usize) -> (Mocked, Campaign) {
    let (mocked, campaign) =
        Mocked::with_running_call(m, |c| c.end_handle = EndHandle::Continue).await;
    mocked
        .ts
        .store
        .customer_limits
        .set(campaign.customer_id, limits)
        .await
        .expect("set limits");
    let mut other = campaign.clone();
    other.id = Uuid::new_v4();
    for _ in 0..up {
        mocked
            .insert_call(&other, CampaigncallStatus::Dialing)
            .await;
    }
    (mocked, campaign)
}

#[tokio::test]
async fn at_the_customers_cap_the_tick_waits_with_reason_customer_limit() {
    // Cap 2 for the customer, two calls of its other campaign up: no dial (the mocks expect
    // none), a wait with reason customer_limit.
    let mut m = Mocks::new();
    offer_one(&mut m);
    let cap = Pacing {
        max_concurrent_calls: Some(2),
        dials_per_second: None,
    };
    let (mocked, campaign) = customer_env(m, cap, 2).await;
    let got = mocked.ticker().tick(campaign.id, &fresh_fence()).await;
    assert_eq!(
        got,
        (
            Next::Continue(Delays::default().wait),
            Outcome::Waiting("customer_limit")
        )
    );
}

#[tokio::test]
async fn below_the_customers_cap_the_tick_dials() {
    let mut m = Mocks::new();
    offer_one(&mut m);
    m.outdial
        .expect_set_target_progressing()
        .times(1)
        .returning(|_, _| Ok(()));
    m.call.expect_create_call().times(1).returning(|_| Ok(()));
    let cap = Pacing {
        max_concurrent_calls: Some(2),
        dials_per_second: None,
    };
    let (mocked, campaign) = customer_env(m, cap, 1).await;
    let (_, outcome) = mocked.ticker().tick(campaign.id, &fresh_fence()).await;
    assert_eq!(outcome, Outcome::Dialed);
}

#[tokio::test]
async fn a_dial_the_customers_rate_does_not_allow_yet_sleeps_until_its_instant() {
    // 1 dial per second for the customer; its other campaign dialed just now: the next dial
    // is allowed about 1 s later, too far to wait for in the transaction.
    let mut m = Mocks::new();
    offer_one(&mut m);
    let rate = Pacing {
        max_concurrent_calls: None,
        dials_per_second: Some(1.0),
    };
    let (mocked, campaign) = customer_env(m, rate, 1).await;
    let (next, outcome) = mocked.ticker().tick(campaign.id, &fresh_fence()).await;
    let Outcome::Sleeping("customer_limit", d) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(d <= Duration::from_secs(1) && d > Duration::ZERO, "{d:?}");
    assert_eq!(next, Next::Continue(d));
}

// ---------------------------------------------------------------- the store, concurrent dials

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_dials_of_six_campaigns_never_pass_the_customers_cap_and_never_fail() {
    // Six running campaigns of one customer (cap 4) record dials concurrently while their calls
    // are moved to progressing and finished concurrently, and an observer reads the customer's
    // open calls throughout. Every committed state has at most 4 open; no statement fails (a
    // deadlock between the dial's locking reads and the finishes would show as an error).
    use campaign_manager::model::{CampaignStatus, CampaigncallResult, Execute};
    use campaign_manager::store::{DialFence, Recorded};
    use std::sync::atomic::{AtomicBool, Ordering};

    const CAP: i64 = 4;
    const DIALS_EACH: usize = 12;
    let ts = Arc::new(support::TestStore::new().await);
    let customer = Uuid::new_v4();
    ts.store
        .customer_limits
        .set(
            customer,
            Pacing {
                max_concurrent_calls: Some(CAP),
                dials_per_second: None,
            },
        )
        .await
        .expect("set limits");
    let mut campaigns = Vec::new();
    for _ in 0..6 {
        let mut c = support::records::campaign_row(customer);
        c.status = CampaignStatus::Run;
        c.execute = Execute::Run;
        campaigns.push(ts.store.campaigns.create(&c).await.expect("campaign"));
    }
    let fence = DialFence {
        seq: 1,
        deadline: Utc::now() + ChronoDuration::hours(1),
    };
    let open: Arc<Mutex<Vec<Uuid>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let count_open = {
        let pool = ts.db.pool.clone();
        move || {
            let pool = pool.clone();
            async move {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM campaign_campaigncalls WHERE customer_id = ? \
                     AND status IN ('dialing', 'progressing')",
                )
                .bind(customer.as_bytes().to_vec())
                .fetch_one(&pool)
                .await
                .expect("count open");
                n
            }
        }
    };

    let mut dialers = Vec::new();
    for c in campaigns.clone() {
        let (ts, open) = (ts.clone(), open.clone());
        dialers.push(tokio::spawn(async move {
            let (mut recorded, mut refused) = (0, 0);
            while recorded < DIALS_EACH {
                let cc = support::records::campaigncall_of(&c, CampaigncallStatus::Dialing);
                match ts.store.dials.record(&cc, fence).await.expect("record") {
                    Recorded::Dial(stored) => {
                        recorded += 1;
                        open.lock().unwrap().push(stored.id);
                    }
                    Recorded::CustomerLimit => {
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    other => panic!("unexpected refusal {other:?}"),
                }
            }
            refused
        }));
    }
    let finisher = {
        let (ts, open, done) = (ts.clone(), open.clone(), done.clone());
        tokio::spawn(async move {
            let mut k = 0usize;
            while !done.load(Ordering::SeqCst) || !open.lock().unwrap().is_empty() {
                let next = {
                    let mut o = open.lock().unwrap();
                    (!o.is_empty()).then(|| o.remove(0))
                };
                let Some(id) = next else {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                };
                k += 1;
                if k.is_multiple_of(2) {
                    ts.store
                        .campaigncalls
                        .set_progressing(id)
                        .await
                        .expect("progressing");
                }
                ts.store
                    .campaigncalls
                    .finish(id, CampaigncallResult::Success)
                    .await
                    .expect("finish");
            }
        })
    };
    let observer = {
        let (done, count_open) = (done.clone(), count_open.clone());
        tokio::spawn(async move {
            let mut most = 0;
            while !done.load(Ordering::SeqCst) {
                let n = count_open().await;
                assert!(
                    n <= CAP,
                    "{n} open calls of the customer with a cap of {CAP}"
                );
                most = most.max(n);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            most
        })
    };
    let mut refused = 0;
    for d in dialers {
        refused += d.await.expect("dialer");
    }
    done.store(true, Ordering::SeqCst);
    finisher.await.expect("finisher");
    let most = observer.await.expect("observer");
    eprintln!(
        "6 campaigns, cap {CAP}: {} dials recorded, {refused} refused at the cap, at most {most} \
         open seen",
        6 * DIALS_EACH
    );
    assert!(refused > 0, "the cap never refused a dial");
    assert_eq!(count_open().await, 0);
}
