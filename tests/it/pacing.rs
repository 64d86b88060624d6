//! Pacing (docs/pacing.md): the tick against a real test store with mocked
//! peers (the cap's `Waiting("pacing")`, several paced dials per tick, the next tick due just
//! before the next allowed dial), and black-box over RabbitMQ with `campaign-sim`: the route and
//! the campaign JSON, a campaign that never has more calls up than its cap, and one that makes
//! 100 ± 5 dials in 10 s at 10 per second and never 11 in one second. (The operator CLI's
//! `campaign pacing` is tested in tools/control/tests/campaign_settings.rs.)

use crate::support;
use crate::support::wait_until;

use std::time::{Duration, Instant};

use campaign_manager::model::*;
use campaign_manager::service::Delays;
use campaign_manager::service::tick::{Next, Outcome, Ticker};
use campaign_sim::{MsRange, Outcome as SimOutcome, Scenario};
use chrono::{DateTime, Duration as ChronoDuration, SubsecRound, Utc};
use serde_json::json;
use support::TestSystem;
use support::black_box::{create_campaign, expect_400, expect_404, id_of, set_status};
use support::mocked::{Mocked, fresh_fence};
use support::mocks::Mocks;
use uuid::Uuid;

// ---------------------------------------------------------------- the tick, mocked peers

/// A running call campaign with `pacing` and its outplan, stored, on a ticker over `m`.
struct TickEnv {
    mocked: Mocked,
    ticker: Ticker,
    campaign: Campaign,
}

impl TickEnv {
    async fn new(m: Mocks, pacing: Option<Pacing>, queue: bool) -> TickEnv {
        let (mocked, campaign) = Mocked::with_running_call(m, |c| {
            c.service_level = 100;
            c.queue_id = if queue { Uuid::new_v4() } else { Uuid::nil() };
            c.pacing = pacing;
            c.end_handle = EndHandle::Continue;
        })
        .await;
        TickEnv {
            ticker: mocked.ticker(),
            mocked,
            campaign,
        }
    }

    async fn tick(&self) -> (Next, Outcome) {
        self.ticker.tick(self.campaign.id, &fresh_fence()).await
    }

    /// Stores a campaigncall of the campaign in `status`.
    async fn insert_call(&self, status: CampaigncallStatus) {
        self.mocked.insert_call(&self.campaign, status).await;
    }
}

fn limits(max: Option<i64>, rate: Option<f64>) -> Option<Pacing> {
    Some(Pacing {
        max_concurrent_calls: max,
        dials_per_second: rate,
    })
}

fn never_tried_target() -> OutdialTarget {
    let created = Utc::now().trunc_subsecs(6);
    OutdialTarget {
        id: Uuid::new_v4(),
        destination_0: Some(Address::tel("+15550001000")),
        tm_create: Some(created),
        tm_update: Some(created),
        ..OutdialTarget::default()
    }
}

/// The outdial offers one never-tried target once.
fn offer_one(m: &mut Mocks) {
    let t = never_tried_target();
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(move |_, _, _| Ok(vec![t.clone()]));
}

/// Expects exactly one dial.
fn expect_dial(m: &mut Mocks) {
    m.outdial
        .expect_set_target_progressing()
        .times(1)
        .returning(|_, _| Ok(()));
    m.call.expect_create_call().times(1).returning(|_| Ok(()));
}

fn waiting(reason: &'static str) -> (Next, Outcome) {
    (
        Next::Continue(Delays::default().wait),
        Outcome::Waiting(reason),
    )
}

#[tokio::test]
async fn at_the_cap_the_tick_waits_for_pacing_without_dialing() {
    // Cap 2: one dialing and one progressing call are up. Mocks expect no dial.
    let mut m = Mocks::new();
    offer_one(&mut m);
    let env = TickEnv::new(m, limits(Some(2), None), false).await;
    env.insert_call(CampaigncallStatus::Dialing).await;
    env.insert_call(CampaigncallStatus::Progressing).await;
    env.insert_call(CampaigncallStatus::Done).await;
    assert_eq!(env.tick().await, waiting("pacing"));
}

#[tokio::test]
async fn below_the_cap_the_tick_dials() {
    // Cap 2, one call up (a finished one does not count).
    let mut m = Mocks::new();
    offer_one(&mut m);
    expect_dial(&mut m);
    let env = TickEnv::new(m, limits(Some(2), None), false).await;
    env.insert_call(CampaigncallStatus::Progressing).await;
    env.insert_call(CampaigncallStatus::Done).await;
    assert_eq!(
        env.tick().await,
        (
            Next::Continue(Delays::default().after_dial),
            Outcome::Dialed
        )
    );
}

#[tokio::test]
async fn a_cap_of_zero_dials_nothing() {
    let mut m = Mocks::new();
    offer_one(&mut m);
    let env = TickEnv::new(m, limits(Some(0), None), false).await;
    assert_eq!(env.tick().await, waiting("pacing"));
}

#[tokio::test]
async fn the_cap_applies_with_a_queue_whose_capacity_is_larger() {
    // 10 agents × 100 % leave room for 10 dialing calls; the cap of 1 is reached first and
    // the queue is not even asked.
    let mut m = Mocks::new();
    offer_one(&mut m);
    m.queue.expect_available_agents().times(0);
    let env = TickEnv::new(m, limits(Some(1), None), true).await;
    env.insert_call(CampaigncallStatus::Dialing).await;
    assert_eq!(env.tick().await, waiting("pacing"));
}

#[tokio::test]
async fn the_queue_capacity_still_applies_under_the_cap() {
    // Cap 5 not reached, but 1 agent × 100 % = 1 ≤ 1 dialing: the queue's limit wins.
    let mut m = Mocks::new();
    offer_one(&mut m);
    m.queue
        .expect_available_agents()
        .times(1)
        .returning(|_| Ok(1));
    let env = TickEnv::new(m, limits(Some(5), None), true).await;
    env.insert_call(CampaigncallStatus::Dialing).await;
    assert_eq!(env.tick().await, waiting("no_capacity"));
}

#[tokio::test]
async fn after_a_dial_the_next_tick_is_due_just_before_the_next_allowed_dial() {
    let mut m = Mocks::new();
    offer_one(&mut m);
    expect_dial(&mut m);
    let env = TickEnv::new(m, limits(None, Some(1.0)), false).await;
    let (next, outcome) = env.tick().await;
    assert_eq!(outcome, Outcome::Dialed);
    // Next allowed dial 1 s after this one; the tick is due PACED_TICK_LEAD (400 ms) before.
    let Next::Continue(d) = next else {
        panic!("{next:?}")
    };
    assert!(
        d <= Duration::from_millis(600) && d > Duration::from_millis(250),
        "{d:?}"
    );
}

/// The creation times of the campaign's campaigncalls, oldest first.
async fn dial_times(ts: &support::TestStore, campaign: Uuid) -> Vec<DateTime<Utc>> {
    let mut t = ts
        .store
        .dials
        .recent_dial_times(campaign, 1000)
        .await
        .expect("dial times");
    t.reverse();
    t
}

#[tokio::test]
async fn a_paced_tick_dials_several_targets_each_at_its_allowed_instant() {
    // R = 4: three ready targets are dialed by one tick, 250 ms apart (the span is 1 s).
    let mut m = Mocks::new();
    let targets: Vec<OutdialTarget> = (0..3).map(|_| never_tried_target()).collect();
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(move |_, _, _| Ok(targets.clone()));
    m.outdial
        .expect_set_target_progressing()
        .times(3)
        .returning(|_, _| Ok(()));
    m.call.expect_create_call().times(3).returning(|_| Ok(()));
    let env = TickEnv::new(m, limits(None, Some(4.0)), false).await;
    let (_, outcome) = env.tick().await;
    assert_eq!(outcome, Outcome::Dialed);
    let times = dial_times(&env.mocked.ts, env.campaign.id).await;
    assert_eq!(times.len(), 3);
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= ChronoDuration::milliseconds(250),
            "{times:?}"
        );
    }
}

#[tokio::test]
async fn a_paced_tick_stops_at_the_cap_between_dials() {
    // Two ready targets, a cap of 1: one dial, then the cap ends the tick's dialing.
    let mut m = Mocks::new();
    let targets: Vec<OutdialTarget> = (0..2).map(|_| never_tried_target()).collect();
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(move |_, _, _| Ok(targets.clone()));
    expect_dial(&mut m);
    let env = TickEnv::new(m, limits(Some(1), Some(50.0)), false).await;
    assert_eq!(env.tick().await.1, Outcome::Dialed);
    assert_eq!(dial_times(&env.mocked.ts, env.campaign.id).await.len(), 1);
}

#[tokio::test]
async fn a_tick_due_long_before_the_next_allowed_dial_sleeps_for_pacing() {
    // A dial just recorded at R = 0.2: the next one is 5 s away, so the tick asks no peer.
    let mut m = Mocks::new();
    offer_one(&mut m);
    let env = TickEnv::new(m, limits(None, Some(0.2)), false).await;
    env.insert_call(CampaigncallStatus::Done).await;
    let (next, outcome) = env.tick().await;
    let Outcome::Sleeping("pacing", d) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        d > Duration::from_secs(3) && d <= Duration::from_secs(5),
        "{d:?}"
    );
    assert_eq!(next, Next::Continue(d));
}

#[tokio::test]
async fn the_rate_does_not_shorten_waiting() {
    // Nothing to dial (end_handle continue): the wait delay, not the shorter pacing delay.
    let mut m = Mocks::new();
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(|_, _, _| Ok(vec![]));
    let env = TickEnv::new(m, limits(None, Some(50.0)), false).await;
    assert_eq!(env.tick().await, waiting("list_empty"));
}

// ---------------------------------------------------------------- black box over RabbitMQ

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_sets_and_clears_pacing_and_refuses_out_of_range_values() {
    let sys = TestSystem::start(Scenario::instant(SimOutcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let created = create_campaign(&sys, "pacing", customer, Uuid::nil(), json!({})).await;
    let id = id_of(&created);
    assert!(
        created.get("pacing").is_none(),
        "unset is omitted: {created}"
    );
    let uri = format!("/v1/campaigns/{id}");
    let route = format!("{uri}/pacing");

    let pacing = json!({"max_concurrent_calls": 3, "dials_per_second": 2.5});
    let set = sys
        .ok("PUT", &route, Some(json!({ "pacing": pacing })))
        .await;
    assert_eq!(set["pacing"], pacing);
    let got = sys.ok("GET", &uri, None).await;
    assert_eq!(got["pacing"], pacing, "read back as given");

    for (body, field) in [
        (
            json!({"pacing": {"max_concurrent_calls": -1}}),
            "pacing.max_concurrent_calls",
        ),
        (
            json!({"pacing": {"max_concurrent_calls": 2.5}}),
            "pacing.max_concurrent_calls",
        ),
        (
            json!({"pacing": {"dials_per_second": 0.01}}),
            "pacing.dials_per_second",
        ),
        (
            json!({"pacing": {"dials_per_second": 51}}),
            "pacing.dials_per_second",
        ),
        (
            json!({"pacing": {"dials_per_second": "10"}}),
            "pacing.dials_per_second",
        ),
        (json!({"pacing": {"burst": 3}}), "pacing.burst"),
        (json!({}), "pacing"),
    ] {
        expect_400(&sys, "PUT", &route, body, field).await;
    }
    let got = sys.ok("GET", &uri, None).await;
    assert_eq!(got["pacing"], pacing, "unchanged by refused PUTs");

    // One limit only: the other is omitted.
    let only = json!({"dials_per_second": 1});
    let set = sys.ok("PUT", &route, Some(json!({ "pacing": only }))).await;
    assert_eq!(set["pacing"], json!({"dials_per_second": 1.0}));

    // null clears: the field is gone again.
    let cleared = sys.ok("PUT", &route, Some(json!({ "pacing": null }))).await;
    assert!(cleared.get("pacing").is_none(), "{cleared}");
    let got = sys.ok("GET", &uri, None).await;
    assert!(got.get("pacing").is_none(), "{got}");

    // Accepted at create; refused there too when bad.
    let with = create_campaign(
        &sys,
        "pacing",
        customer,
        Uuid::nil(),
        json!({ "pacing": pacing }),
    )
    .await;
    assert_eq!(with["pacing"], pacing);
    expect_400(
        &sys,
        "POST",
        "/v1/campaigns",
        json!({"customer_id": customer, "type": "call", "name": "bad",
                "pacing": {"dials_per_second": 100}}),
        "pacing.dials_per_second",
    )
    .await;

    // Unknown campaign: 404.
    expect_404(
        &sys,
        "PUT",
        &format!("/v1/campaigns/{}/pacing", Uuid::new_v4()),
        Some(json!({ "pacing": null })),
    )
    .await;
    sys.stop().await;
}

/// Short delays and a few tick workers; the after-dial delay is short so that only pacing
/// spaces the dials.
fn fast(s: &mut campaign_manager::config::Settings) {
    s.workers = 2;
    s.first_tick_ms = 100;
    s.dial_tick_ms = 20;
    s.wait_tick_ms = 100;
}

async fn run(sys: &TestSystem, id: Uuid) {
    let run = set_status(sys, id, "run").await;
    assert_eq!(run["status"], "run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_campaign_never_has_more_calls_up_than_its_cap() {
    // Every call talks 1.5 s; twelve targets; a cap of 3.
    let scenario = Scenario {
        ring_ms: MsRange::fixed(100),
        talk_ms: MsRange::fixed(1500),
        ..Scenario::instant(SimOutcome::Answered)
    };
    let sys = TestSystem::start(scenario, fast).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 12, 1);
    let c = create_campaign(
        &sys,
        "pacing",
        customer,
        outdial,
        json!({"pacing": {"max_concurrent_calls": 3}}),
    )
    .await;
    let id = id_of(&c);
    run(&sys, id).await;

    // Sample the simulator's live calls while the list is dialed; once the cap is reached the
    // stats say why the campaign waits.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut most = 0;
    let mut saw_pacing = false;
    while sys.sim.calls().iter().filter(|c| c.is_ended()).count() < 12 {
        assert!(Instant::now() < deadline, "the list was not dialed in time");
        let live = sys.sim.live_calls();
        assert!(live <= 3, "{live} calls up with a cap of 3");
        most = most.max(live);
        if !saw_pacing && live == 3 {
            let stats = sys
                .ok("GET", &format!("/v1/campaigns/{id}/stats"), None)
                .await;
            saw_pacing = stats["waiting_reason"] == "pacing";
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(most, 3, "the cap was never reached");
    assert!(saw_pacing, "the stats never showed waiting_reason pacing");

    // The same from the call records: at each creation, at most 3 calls (itself included)
    // were up.
    let calls = sys.sim.calls();
    assert_eq!(calls.len(), 12);
    for c in &calls {
        let at = c.tm_create.expect("created at");
        let up = calls
            .iter()
            .filter(|d| d.tm_create.is_some_and(|s| s <= at) && d.tm_hangup.is_none_or(|e| e > at))
            .count();
        assert!(up <= 3, "{up} calls up at {at}");
    }
    sys.stop().await;
}

/// The most call creations in any half-open 1 s window `[t, t + 1 s)`.
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

#[test]
fn busiest_second_counts_a_half_open_window() {
    let t0 = Utc::now();
    let ms = |n| t0 + ChronoDuration::milliseconds(n);
    assert_eq!(busiest_second(&[]), 0);
    assert_eq!(busiest_second(&[ms(0), ms(999), ms(1000)]), 2);
    assert_eq!(busiest_second(&[ms(1000), ms(0), ms(500), ms(1400)]), 3);
}

/// A gap between two dials longer than this (1.5 spacings at 10 per second) is a stall of the
/// process, not pacing: a paced dial lands about a millisecond after its instant unless the
/// process or the database was held up.
const STALL_MS: i64 = 150;

/// How many dials (sorted times) fall in the first `span_ms` of running time from the first
/// dial, where each gap counts at most `stall_ms`; and the stalled time left out.
fn dials_in_running_time(times: &[DateTime<Utc>], span_ms: i64, stall_ms: i64) -> (usize, i64) {
    let (mut running, mut stalled, mut n) = (0, 0, 0);
    for (i, t) in times.iter().enumerate() {
        if i > 0 {
            let gap = (*t - times[i - 1]).num_milliseconds();
            running += gap.min(stall_ms);
            stalled += (gap - stall_ms).max(0);
        }
        if running >= span_ms {
            break;
        }
        n += 1;
    }
    (n, stalled)
}

#[test]
fn running_time_leaves_out_stalls_only() {
    let t0 = Utc::now();
    let at = |ms: &[i64]| -> Vec<DateTime<Utc>> {
        ms.iter()
            .map(|m| t0 + ChronoDuration::milliseconds(*m))
            .collect()
    };
    // Every 100 ms for 12 s: 100 in the first 10 s.
    let even: Vec<i64> = (0..120).map(|k| k * 100).collect();
    assert_eq!(dials_in_running_time(&at(&even), 10_000, 300), (100, 0));
    // The same with a 1 s stall after the 50th dial: 800 ms left out (a gap counts 300 ms).
    let stalled: Vec<i64> = even
        .iter()
        .map(|m| if *m >= 5000 { m + 1000 } else { *m })
        .collect();
    assert_eq!(dials_in_running_time(&at(&stalled), 10_000, 300), (98, 800));
    // A slow campaign (every 125 ms) is not excused: 80.
    let slow: Vec<i64> = (0..120).map(|k| k * 125).collect();
    assert_eq!(dials_in_running_time(&at(&slow), 10_000, 300).0, 80);
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
    let mut times: Vec<DateTime<Utc>> = list
        .as_array()
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
        .collect();
    times.sort();
    times
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_dials_per_second_make_a_hundred_in_ten_seconds_and_never_eleven_in_one() {
    // 10 dials per second for a little over 10 s, calls that end at once, more targets than
    // it can dial. Counted on the campaigncalls' creation times (what the rate is held to).
    let sys = TestSystem::start(Scenario::instant(SimOutcome::Answered), fast).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 400, 1);
    let c = create_campaign(
        &sys,
        "pacing",
        customer,
        outdial,
        json!({"pacing": {"dials_per_second": 10}}),
    )
    .await;
    let id = id_of(&c);
    run(&sys, id).await;
    wait_until("the first dial", Duration::from_secs(20), || async {
        !sys.sim.calls().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(11_500)).await;
    sys.ok(
        "PUT",
        &format!("/v1/campaigns/{id}/status"),
        Some(json!({ "status": "stop" })),
    )
    .await;

    let times = campaigncall_times(&sys, id).await;
    let first = *times.first().expect("a dial");
    let last = *times.last().expect("a dial");
    assert!(
        last - first >= ChronoDuration::seconds(10),
        "dialing lasted only {}",
        last - first
    );
    let in_ten = times
        .iter()
        .filter(|t| **t < first + ChronoDuration::seconds(10))
        .count();
    let busiest = busiest_second(&times);
    let gaps: Vec<i64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).num_milliseconds())
        .collect();
    let (in_ten_running, stalled_ms) = dials_in_running_time(&times, 10_000, STALL_MS);
    eprintln!(
        "dials_per_second 10: {in_ten} dials in the first 10 s ({in_ten_running} in the first \
         10 s the process ran; {stalled_ms} ms of stalls over {STALL_MS} ms left out), at most \
         {busiest} in any 1 s window ({} in {:.3} s in all); gaps (ms): {gaps:?}",
        times.len(),
        (last - first).as_seconds_f64()
    );
    // The machine is shared by several builds: a stall of the whole process (a gap between two
    // dials over 1.5 spacings) is not the campaign's rate, so the 10 s are counted in the time the
    // process ran. The window rule below is checked on the raw times: it holds whatever stalls.
    assert!(
        (95..=105).contains(&in_ten_running),
        "{in_ten_running} dials in 10 s of running at 10 per second (raw: {in_ten})"
    );
    assert!(
        busiest <= 10,
        "{busiest} dials in one second at 10 per second"
    );
    // The simulator saw as many call requests as there are call campaigncalls.
    assert_eq!(sys.sim.calls().len(), times.len());
    sys.stop().await;
}
