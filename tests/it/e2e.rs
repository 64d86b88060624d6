//! End-to-end campaigns: campaign-manager (RPC routes, event subscriptions, tick workers) and
//! the peer simulator `campaign-sim`, on the real MariaDB, Redis and RabbitMQ of this machine,
//! with unique names per test (see `support::TestSystem`).
//!
//! Everything the platform would do goes through the RPC API: outplan create, campaign create,
//! status changes, campaign and campaigncall reads. The simulator plays outdial-, call-, flow-
//! and queue-manager and is inspected directly (its calls, activeflows, dial attempts and
//! targets are the ground truth the service's records are checked against).
//!
//! Delays are short (first tick 100 ms, 50 ms after a dial, 300 ms when waiting) and lists
//! small, so the whole file runs in well under two minutes.
//!
//! Every scenario runs on the platform's topic exchange (the default); the central ones (a call
//! campaign, a flow campaign, stop while calls are up) also run on the fanout bus of older
//! platforms (`..._on_the_fanout_bus`).

use crate::support;
use crate::support::wait_until;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use campaign_manager::bus::EventBus;
use campaign_manager::config::Settings;
use campaign_sim::{MsRange, Outcome, Scenario, SimTarget, TargetState, Weights};
use serde_json::{Value, json};
use support::TestSystem;
use support::black_box::set_status;
use uuid::Uuid;

/// Short delays and a few tick workers in the service process.
fn fast(s: &mut Settings) {
    s.workers = 8;
    s.first_tick_ms = 100;
    s.dial_tick_ms = 50;
    s.wait_tick_ms = 300;
}

/// [`fast`] on the event bus `bus`.
fn fast_on(bus: EventBus) -> impl FnOnce(&mut Settings) {
    move |s| {
        fast(s);
        s.event_bus = bus;
    }
}

/// What a test campaign is made of.
struct Plan {
    kind: &'static str,
    end_handle: &'static str,
    try_interval_ms: i64,
    max_tries: [i32; 5],
    queue: Option<(Uuid, i32)>,
}

impl Plan {
    fn call() -> Plan {
        Plan {
            kind: "call",
            end_handle: "stop",
            try_interval_ms: 0,
            max_tries: [1, 1, 1, 1, 1],
            queue: None,
        }
    }
}

/// An outplan and a campaign (status `stop`) over `outdial`, created through the RPC API.
async fn create_campaign(sys: &TestSystem, customer: Uuid, outdial: Uuid, plan: &Plan) -> Uuid {
    let m = plan.max_tries;
    let outplan = sys
        .ok(
            "POST",
            "/v1/outplans",
            Some(json!({
                "customer_id": customer, "name": "e2e", "detail": "e2e outplan",
                "source": {"type": "tel", "target": "+15550001000"},
                "dial_timeout": 30000, "try_interval": plan.try_interval_ms,
                "max_try_count_0": m[0], "max_try_count_1": m[1], "max_try_count_2": m[2],
                "max_try_count_3": m[3], "max_try_count_4": m[4],
            })),
        )
        .await;
    let (queue_id, service_level) = plan.queue.unwrap_or((Uuid::nil(), 100));
    let campaign = sys
        .ok(
            "POST",
            "/v1/campaigns",
            Some(json!({
                "customer_id": customer, "type": plan.kind, "name": "e2e", "detail": "",
                "actions": [{"type": "answer"}], "service_level": service_level,
                "end_handle": plan.end_handle, "outplan_id": outplan["id"],
                "outdial_id": outdial, "queue_id": queue_id,
            })),
        )
        .await;
    assert_eq!(campaign["status"], "stop");
    uuid(&campaign["id"])
}

fn uuid(v: &Value) -> Uuid {
    Uuid::parse_str(v.as_str().unwrap_or_default()).expect("uuid field")
}

async fn campaign(sys: &TestSystem, id: Uuid) -> Value {
    sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await
}

/// Polls the campaign until `status` (and `execute`, when given) hold; panics after `timeout`.
async fn wait_campaign(
    sys: &TestSystem,
    id: Uuid,
    status: &str,
    execute: Option<&str>,
    timeout: Duration,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let c = campaign(sys, id).await;
        if c["status"] == status && execute.is_none_or(|e| c["execute"] == e) {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "campaign never reached status {status} / execute {execute:?}: {c}\nsim stats: {:?}",
            sys.sim.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every campaigncall of a campaign through K1 (all pages), with optional extra filters.
async fn campaigncalls(sys: &TestSystem, campaign_id: Uuid, extra: Value) -> Vec<Value> {
    let mut filters = json!({ "campaign_id": campaign_id });
    if let (Some(f), Some(x)) = (filters.as_object_mut(), extra.as_object()) {
        f.extend(x.clone());
    }
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let uri = format!("/v1/campaigncalls?page_size=1000&page_token={token}");
        let page = sys.ok("GET", &uri, Some(filters.clone())).await;
        let rows = page.as_array().cloned().unwrap_or_default();
        if rows.is_empty() {
            return all;
        }
        token = rows
            .last()
            .and_then(|r| r["tm_create"].as_str())
            .unwrap_or_default()
            .to_owned();
        all.extend(rows);
    }
}

fn tries_left(t: &SimTarget, max: &[i32; 5]) -> bool {
    t.has_tries_left(max)
}

/// Every target is `done`, or `idle` with no destination tries left.
fn assert_targets_finished(sys: &TestSystem, outdial: Uuid, max: &[i32; 5]) {
    for t in sys.sim.targets(outdial) {
        let finished = t.status == TargetState::Done
            || (t.status == TargetState::Idle && !tries_left(&t, max));
        assert!(finished, "target not finished: {:?}", t);
    }
}

/// Campaigncalls of a call campaign and the simulator's calls match 1:1 (reference id = call
/// id), all done, with the result of the call's outcome and the call's target/destination.
fn assert_calls_match(sys: &TestSystem, ccs: &[Value]) {
    let calls: HashMap<Uuid, _> = sys.sim.calls().into_iter().map(|c| (c.id, c)).collect();
    assert_eq!(ccs.len(), calls.len(), "campaigncalls vs sim calls");
    let mut seen = HashSet::new();
    for cc in ccs {
        assert_eq!(cc["reference_type"], "call");
        let call_id = uuid(&cc["reference_id"]);
        assert!(seen.insert(call_id), "two campaigncalls for call {call_id}");
        let call = calls
            .get(&call_id)
            .unwrap_or_else(|| panic!("campaigncall without sim call: {cc}"));
        assert_eq!(cc["status"], "done", "{cc}");
        let want = if call.outcome == Outcome::Answered {
            "success"
        } else {
            "fail"
        };
        assert_eq!(cc["result"], want, "{cc} vs {:?}", call.outcome);
        assert_eq!(call.target_id, Some(uuid(&cc["outdial_target_id"])));
        assert_eq!(
            call.destination_index.map(|i| i as i64),
            cc["destination_index"].as_i64()
        );
        assert_eq!(uuid(&cc["activeflow_id"]), call.activeflow_id);
    }
}

/// (target, destination index, try count) of every campaigncall is unique and matches the
/// simulator's dial attempts exactly.
fn assert_attempts_match(sys: &TestSystem, ccs: &[Value]) {
    let mut from_cc: Vec<(Uuid, i64, i64)> = ccs
        .iter()
        .map(|c| {
            (
                uuid(&c["outdial_target_id"]),
                c["destination_index"].as_i64().unwrap_or(-1),
                c["try_count"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    let mut from_sim: Vec<(Uuid, i64, i64)> = sys
        .sim
        .attempts()
        .iter()
        .map(|a| {
            (
                a.target_id,
                a.destination_index as i64,
                i64::from(a.try_count),
            )
        })
        .collect();
    from_cc.sort();
    from_sim.sort();
    let unique: HashSet<_> = from_cc.iter().collect();
    assert_eq!(unique.len(), from_cc.len(), "a try was dialed twice");
    assert_eq!(from_cc, from_sim, "campaigncalls vs sim attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_campaign_runs_until_its_list_is_exhausted() {
    call_campaign_runs_until_its_list_is_exhausted_on(EventBus::Topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_campaign_runs_until_its_list_is_exhausted_on_the_fanout_bus() {
    call_campaign_runs_until_its_list_is_exhausted_on(EventBus::Fanout).await;
}

async fn call_campaign_runs_until_its_list_is_exhausted_on(bus: EventBus) {
    let scenario = Scenario {
        weights: Weights {
            answered: 0.5,
            busy: 0.2,
            noanswer: 0.2,
            failed: 0.1,
        },
        seed: 7,
        ..Scenario::instant(Outcome::Answered)
    };
    let sys = TestSystem::start(scenario, fast_on(bus)).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 30, 2);
    let plan = Plan {
        max_tries: [2, 1, 0, 0, 0],
        ..Plan::call()
    };
    let id = create_campaign(&sys, customer, outdial, &plan).await;
    let run = set_status(&sys, id, "run").await;
    assert_eq!(run["status"], "run");
    assert_eq!(run["execute"], "run");

    let end = wait_campaign(&sys, id, "stop", Some("stop"), Duration::from_secs(60)).await;
    assert_eq!(end["status"], "stop");
    assert_targets_finished(&sys, outdial, &plan.max_tries);
    let ccs = campaigncalls(&sys, id, json!({})).await;
    assert!(ccs.len() >= 30, "only {} campaigncalls", ccs.len());
    assert_calls_match(&sys, &ccs);
    assert_attempts_match(&sys, &ccs);
    assert_eq!(sys.sim.live_calls(), 0);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaigns_on_three_tick_shards_each_run_until_their_lists_are_exhausted() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |s| {
        fast(s);
        s.tick_shards = 3;
    })
    .await;
    let router = campaign_workers::SchedulerConfig {
        shards: 3,
        ..campaign_workers::SchedulerConfig::new("", sys.settings.tick_namespace.clone())
    };
    let customer = Uuid::new_v4();
    let mut campaigns = Vec::new();
    let mut shards = HashSet::new();
    while shards.len() < 3 {
        let outdial = sys.sim.create_outdial(customer, 6, 1);
        let id = create_campaign(&sys, customer, outdial, &Plan::call()).await;
        shards.insert(router.shard_of(&id.to_string()));
        campaigns.push((id, outdial));
    }
    for (id, _) in &campaigns {
        assert_eq!(set_status(&sys, *id, "run").await["execute"], "run");
    }
    for (id, outdial) in &campaigns {
        wait_campaign(&sys, *id, "stop", Some("stop"), Duration::from_secs(60)).await;
        assert_targets_finished(&sys, *outdial, &Plan::call().max_tries);
        assert_eq!(campaigncalls(&sys, *id, json!({})).await.len(), 6);
    }
    let all: Vec<Value> = {
        let mut all = Vec::new();
        for (id, _) in &campaigns {
            all.extend(campaigncalls(&sys, *id, json!({})).await);
        }
        all
    };
    assert_calls_match(&sys, &all);
    assert_attempts_match(&sys, &all);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_campaign_runs_until_its_list_is_exhausted() {
    flow_campaign_runs_until_its_list_is_exhausted_on(EventBus::Topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_campaign_runs_until_its_list_is_exhausted_on_the_fanout_bus() {
    flow_campaign_runs_until_its_list_is_exhausted_on(EventBus::Fanout).await;
}

async fn flow_campaign_runs_until_its_list_is_exhausted_on(bus: EventBus) {
    let scenario = Scenario {
        flow_ms: MsRange::new(0, 40),
        ..Scenario::instant(Outcome::Answered)
    };
    let sys = TestSystem::start(scenario, fast_on(bus)).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 25, 1);
    let plan = Plan {
        kind: "flow",
        ..Plan::call()
    };
    let id = create_campaign(&sys, customer, outdial, &plan).await;
    set_status(&sys, id, "run").await;
    wait_campaign(&sys, id, "stop", Some("stop"), Duration::from_secs(60)).await;

    assert_targets_finished(&sys, outdial, &plan.max_tries);
    assert!(
        sys.sim
            .targets(outdial)
            .iter()
            .all(|t| t.status == TargetState::Done),
        "flows always succeed, so every target is done"
    );
    let ccs = campaigncalls(&sys, id, json!({})).await;
    let afs: HashMap<Uuid, _> = sys
        .sim
        .activeflows()
        .into_iter()
        .map(|a| (a.id, a))
        .collect();
    assert_eq!(ccs.len(), 25);
    assert_eq!(afs.len(), ccs.len(), "campaigncalls vs sim activeflows");
    for cc in &ccs {
        assert_eq!(cc["reference_type"], "flow");
        assert_eq!(cc["status"], "done");
        assert_eq!(cc["result"], "success");
        assert!(
            afs.contains_key(&uuid(&cc["activeflow_id"])),
            "campaigncall without activeflow: {cc}"
        );
    }
    assert_attempts_match(&sys, &ccs);
    sys.stop().await;
}

/// Samples the number of `dialing` campaigncalls for `for_how_long`; returns the maximum
/// seen and how many calls the simulator received meanwhile.
async fn sample_dialing(sys: &TestSystem, id: Uuid, for_how_long: Duration) -> (usize, usize) {
    let calls_before = sys.sim.calls().len();
    let end = Instant::now() + for_how_long;
    let mut max = 0;
    while Instant::now() < end {
        let n = campaigncalls(sys, id, json!({"status": "dialing"}))
            .await
            .len();
        max = max.max(n);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    (max, sys.sim.calls().len() - calls_before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_capacity_caps_dialing_calls_and_follows_the_agents() {
    // Calls last 0.7-1.1 s, so with a 50 ms dial delay they overlap and capacity binds.
    let scenario = Scenario {
        ring_ms: MsRange::new(200, 300),
        talk_ms: MsRange::new(500, 800),
        ..Scenario::instant(Outcome::Answered)
    };
    let sys = TestSystem::start(scenario, fast).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 50, 1);
    let queue = sys.sim.create_queue(customer, 4);
    // 4 agents × 50 % = 2 at once.
    let plan = Plan {
        queue: Some((queue, 50)),
        ..Plan::call()
    };
    let id = create_campaign(&sys, customer, outdial, &plan).await;
    set_status(&sys, id, "run").await;

    let (max_low, calls_low) = sample_dialing(&sys, id, Duration::from_secs(3)).await;
    assert!(max_low <= 2, "{max_low} dialing with capacity 2");
    assert_eq!(max_low, 2, "capacity 2 was never used");

    // 10 agents × 50 % = 5 at once.
    sys.sim.set_queue_agents(queue, 10).expect("queue exists");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (max_high, calls_high) = sample_dialing(&sys, id, Duration::from_secs(3)).await;
    assert!(max_high <= 5, "{max_high} dialing with capacity 5");
    assert!(
        max_high >= 3,
        "more agents did not raise concurrency: {max_high}"
    );
    assert!(
        calls_high > calls_low,
        "more agents did not raise the dial rate: {calls_low} then {calls_high} calls in 3 s"
    );

    // Back to 0 agents: nothing new is dialed.
    sys.sim.set_queue_agents(queue, 0).expect("queue exists");
    wait_until("calls to end", Duration::from_secs(5), || async {
        sys.sim.live_calls() == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = sys.sim.calls().len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sys.sim.calls().len(), before, "dialed with no agents");
    set_status(&sys, id, "stop").await;
    wait_campaign(&sys, id, "stop", Some("stop"), Duration::from_secs(10)).await;
    eprintln!(
        "capacity 2: max {max_low} dialing, {calls_low} calls/3 s; capacity 5: max {max_high}, {calls_high} calls/3 s"
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_destination_is_retried_after_the_interval_then_the_next_one_is_used() {
    let scenario = Scenario::instant(Outcome::Answered).with_index_override(0, Outcome::Busy);
    let sys = TestSystem::start(scenario, fast).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 5, 2);
    let interval = 700;
    let plan = Plan {
        try_interval_ms: interval,
        max_tries: [3, 2, 0, 0, 0],
        ..Plan::call()
    };
    let id = create_campaign(&sys, customer, outdial, &plan).await;
    set_status(&sys, id, "run").await;
    wait_campaign(&sys, id, "stop", Some("stop"), Duration::from_secs(60)).await;

    let mut by_target: BTreeMap<Uuid, Vec<_>> = BTreeMap::new();
    for a in sys.sim.attempts() {
        by_target.entry(a.target_id).or_default().push(a);
    }
    assert_eq!(by_target.len(), 5);
    for (target, attempts) in &by_target {
        let tries: Vec<(usize, i32)> = attempts
            .iter()
            .map(|a| (a.destination_index, a.try_count))
            .collect();
        assert_eq!(
            tries,
            vec![(0, 1), (0, 2), (0, 3), (1, 1)],
            "target {target}: busy destination 0 three times, then destination 1 once"
        );
        for w in attempts.windows(2) {
            let (Some(a), Some(b)) = (w[0].at, w[1].at) else {
                panic!("attempt without time");
            };
            let gap = (b - a).num_milliseconds();
            assert!(
                gap >= interval,
                "target {target} retried after {gap} ms < {interval} ms"
            );
        }
    }
    for t in sys.sim.targets(outdial) {
        assert_eq!(t.status, TargetState::Done);
    }
    let ccs = campaigncalls(&sys, id, json!({})).await;
    assert_eq!(ccs.len(), 20);
    assert_calls_match(&sys, &ccs);
    assert_attempts_match(&sys, &ccs);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_while_calls_are_up_goes_stopping_then_stop_and_run_resumes() {
    stop_while_calls_are_up_goes_stopping_then_stop_and_run_resumes_on(EventBus::Topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_while_calls_are_up_goes_stopping_then_stop_and_run_resumes_on_the_fanout_bus() {
    stop_while_calls_are_up_goes_stopping_then_stop_and_run_resumes_on(EventBus::Fanout).await;
}

async fn stop_while_calls_are_up_goes_stopping_then_stop_and_run_resumes_on(bus: EventBus) {
    let scenario = Scenario {
        ring_ms: MsRange::new(100, 200),
        talk_ms: MsRange::new(1200, 1500),
        ..Scenario::instant(Outcome::Answered)
    };
    let sys = TestSystem::start(scenario, fast_on(bus)).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 20, 1);
    let id = create_campaign(&sys, customer, outdial, &Plan::call()).await;
    set_status(&sys, id, "run").await;
    wait_until("three calls up", Duration::from_secs(10), || async {
        sys.sim.live_calls() >= 3
    })
    .await;

    let stopping = set_status(&sys, id, "stop").await;
    assert_eq!(stopping["status"], "stopping", "{stopping}");
    let dialed_at_stop = sys.sim.calls().len();
    let stopped = wait_campaign(&sys, id, "stop", Some("stop"), Duration::from_secs(10)).await;
    assert_eq!(stopped["status"], "stop");
    assert_eq!(sys.sim.live_calls(), 0, "stopped while calls were up");
    assert!(
        campaigncalls(&sys, id, json!({"status": "dialing"}))
            .await
            .is_empty()
    );
    // At most a tick already under way when `stop` arrived may still dial.
    let dialed_stopped = sys.sim.calls().len();
    assert!(dialed_stopped <= dialed_at_stop + 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        sys.sim.calls().len(),
        dialed_stopped,
        "dialed while stopped"
    );
    assert!(dialed_stopped < 20, "the whole list was dialed before stop");

    // Run again: the rest of the list is dialed and the campaign ends by itself.
    let again = set_status(&sys, id, "run").await;
    assert_eq!(again["status"], "run");
    wait_campaign(&sys, id, "stop", Some("stop"), Duration::from_secs(30)).await;
    assert_targets_finished(&sys, outdial, &Plan::call().max_tries);
    let ccs = campaigncalls(&sys, id, json!({})).await;
    assert_eq!(ccs.len(), 20);
    assert_calls_match(&sys, &ccs);
    assert_attempts_match(&sys, &ccs);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_campaign_waits_on_an_empty_list_and_dials_added_targets() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), fast).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 3, 1);
    let plan = Plan {
        end_handle: "continue",
        ..Plan::call()
    };
    let id = create_campaign(&sys, customer, outdial, &plan).await;
    set_status(&sys, id, "run").await;
    wait_until("3 calls", Duration::from_secs(10), || async {
        sys.sim.calls().len() >= 3
    })
    .await;
    let requests = || {
        sys.sim
            .stats()
            .requests
            .get(&campaign_sim::Service::Outdial)
            .copied()
            .unwrap_or(0)
    };
    let before = requests();
    // Still ticking: it keeps asking outdial-manager for targets (~every 300 ms; waited for
    // rather than timed, as the machine may be busy).
    wait_until(
        "ticks on an empty list",
        Duration::from_secs(10),
        || async { requests() >= before + 3 },
    )
    .await;
    let c = campaign(&sys, id).await;
    assert_eq!(c["status"], "run", "{c}");
    assert_eq!(c["execute"], "run", "{c}");

    sys.sim.add_targets(outdial, 4, 1).expect("outdial exists");
    wait_until("7 calls", Duration::from_secs(10), || async {
        sys.sim.calls().len() >= 7
    })
    .await;
    wait_until("every target done", Duration::from_secs(5), || async {
        sys.sim
            .targets(outdial)
            .iter()
            .all(|t| t.status == TargetState::Done)
    })
    .await;
    assert_eq!(campaign(&sys, id).await["status"], "run");

    set_status(&sys, id, "stop").await;
    wait_campaign(&sys, id, "stop", Some("stop"), Duration::from_secs(10)).await;
    let ccs = campaigncalls(&sys, id, json!({})).await;
    assert_eq!(ccs.len(), 7);
    assert_calls_match(&sys, &ccs);
    assert_attempts_match(&sys, &ccs);
    sys.stop().await;
}

/// A `campaign-worker` child with 8 tick workers and the short delays.
fn spawn_worker(sys: &TestSystem) -> tokio::process::Child {
    support::spawn_worker(
        sys,
        &[
            "--workers",
            "8",
            "--first_tick_ms",
            "100",
            "--dial_tick_ms",
            "100",
            "--wait_tick_ms",
            "300",
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_process_is_replaced_and_no_try_is_dialed_twice() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |s| {
        fast(s);
        s.workers = 0;
    })
    .await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 40, 1);
    let id = create_campaign(&sys, customer, outdial, &Plan::call()).await;

    let mut first = spawn_worker(&sys);
    set_status(&sys, id, "run").await;
    wait_until(
        "12 calls by the first worker",
        Duration::from_secs(20),
        || async { sys.sim.calls().len() >= 12 },
    )
    .await;
    first.start_kill().expect("SIGKILL the worker");
    let status = first.wait().await.expect("reap the worker");
    assert!(!status.success(), "the worker was killed: {status:?}");
    let at_kill = sys.sim.calls().len();
    assert!(at_kill < 40, "the list was done before the kill");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        campaign(&sys, id).await["status"],
        "run",
        "the campaign stays run without workers"
    );

    let mut second = spawn_worker(&sys);
    wait_campaign(&sys, id, "stop", Some("stop"), Duration::from_secs(40)).await;
    let _ = second.start_kill();
    let _ = second.wait().await;

    let mut per_target: HashMap<Uuid, usize> = HashMap::new();
    for a in sys.sim.attempts() {
        *per_target.entry(a.target_id).or_default() += 1;
    }
    assert_eq!(per_target.len(), 40, "every target dialed");
    assert!(
        per_target.values().all(|n| *n == 1),
        "a target was dialed twice: {:?}",
        per_target.values().filter(|n| **n > 1).count()
    );
    for t in sys.sim.targets(outdial) {
        assert_eq!(t.status, TargetState::Done);
    }
    let ccs = campaigncalls(&sys, id, json!({})).await;
    assert_calls_match(&sys, &ccs);
    assert_attempts_match(&sys, &ccs);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_is_not_exhausted_while_a_retryable_call_is_up() {
    // One target, two tries on its only destination, no retry interval; the first call is
    // busy after 600 ms. While it is up the available query returns nothing (the target is
    // progressing), but the list is not exhausted: the target comes back with a try left.
    let scenario = Scenario {
        ring_ms: MsRange::fixed(600),
        ..Scenario::instant(Outcome::Busy)
    };
    let sys = TestSystem::start(scenario, fast).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 1, 1);
    let plan = Plan {
        max_tries: [2, 0, 0, 0, 0],
        ..Plan::call()
    };
    let id = create_campaign(&sys, customer, outdial, &plan).await;
    set_status(&sys, id, "run").await;
    wait_campaign(&sys, id, "stop", Some("stop"), Duration::from_secs(20)).await;
    assert_eq!(
        sys.sim.attempts().len(),
        2,
        "the second try of the target was never made: {:?}",
        sys.sim.targets(outdial)
    );
    assert_targets_finished(&sys, outdial, &plan.max_tries);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_inside_its_retry_interval_does_not_hold_back_a_never_tried_one() {
    // docs/go-differences.md item 12, over the bus: outplan tries (1, 1, 0, 0, 0), try interval 10 min;
    // target A was tried 5 s ago on destination 0 (destination 1 still open) and is older by
    // `tm_update` than never-tried B, so outdial-manager lists A first. B is dialed at once; A
    // waits for its interval.
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), fast).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 0, 2);
    let spec = |tries: Vec<i32>| campaign_sim::TargetSpec {
        id: None,
        destinations: vec![
            Some(campaign_manager::model::Address::tel("+15550003000")),
            Some(campaign_manager::model::Address::tel("+15550003001")),
        ],
        try_counts: tries,
        null_tm_update: false,
    };
    let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let a = sys.sim.with_state(|st| {
        let a = st
            .outdials
            .add_target(outdial, spec(vec![0, 0]), hour_ago)
            .expect("target A");
        let tried = chrono::Utc::now() - chrono::Duration::seconds(5);
        st.outdials.progressing(a, 0, tried).expect("A tried");
        st.outdials
            .set_status(a, TargetState::Idle, tried)
            .expect("A idle");
        a
    });
    let b = sys.sim.add_target(outdial, spec(vec![])).expect("target B");
    let plan = Plan {
        end_handle: "continue",
        try_interval_ms: 600_000,
        max_tries: [1, 1, 0, 0, 0],
        ..Plan::call()
    };
    let id = create_campaign(&sys, customer, outdial, &plan).await;
    set_status(&sys, id, "run").await;
    wait_until("B dialed", Duration::from_secs(10), || async {
        sys.sim.calls().iter().any(|c| c.target_id == Some(b))
    })
    .await;
    // A was listed first every time, and is still not dialed again inside its interval.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        sys.sim.calls().iter().all(|c| c.target_id != Some(a)),
        "A dialed inside its retry interval"
    );
    set_status(&sys, id, "stop").await;
    wait_campaign(&sys, id, "stop", Some("stop"), Duration::from_secs(10)).await;
    sys.stop().await;
}

// ---------------------------------------------------------------- sequences (issue 10)

async fn set_next(sys: &TestSystem, id: Uuid, next: Uuid) {
    let c = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}/next_campaign_id"),
            Some(json!({ "next_campaign_id": next })),
        )
        .await;
    assert_eq!(uuid(&c["next_campaign_id"]), next);
}

/// When the service last put the campaign to `run` (`campaign_runs`), if ever.
async fn run_started(sys: &TestSystem, id: Uuid) -> Option<chrono::NaiveDateTime> {
    let row: Option<(chrono::NaiveDateTime,)> =
        sqlx::query_as("SELECT tm_run FROM campaign_runs WHERE campaign_id = ?")
            .bind(id.as_bytes().to_vec())
            .fetch_optional(&sys.db.pool)
            .await
            .expect("read campaign_runs");
    row.map(|(t,)| t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_campaign_starts_its_next_campaign_which_dials_its_own_list() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), fast).await;
    let customer = Uuid::new_v4();
    let outdial_a = sys.sim.create_outdial(customer, 3, 1);
    let outdial_b = sys.sim.create_outdial(customer, 2, 1);
    let plan = Plan::call();
    let b = create_campaign(&sys, customer, outdial_b, &plan).await;
    let a = create_campaign(&sys, customer, outdial_a, &plan).await;
    set_next(&sys, a, b).await;
    set_status(&sys, a, "run").await;

    wait_campaign(&sys, a, "stop", Some("stop"), Duration::from_secs(30)).await;
    // B was started by A's end, dials its two targets and ends in turn.
    let deadline = Instant::now() + Duration::from_secs(30);
    while campaigncalls(&sys, b, json!({})).await.len() < 2 {
        assert!(Instant::now() < deadline, "B never dialed its list");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_campaign(&sys, b, "stop", Some("stop"), Duration::from_secs(30)).await;
    let (calls_a, calls_b) = (
        campaigncalls(&sys, a, json!({})).await,
        campaigncalls(&sys, b, json!({})).await,
    );
    assert_eq!((calls_a.len(), calls_b.len()), (3, 2));
    assert_calls_match(&sys, &[calls_a.clone(), calls_b.clone()].concat());
    for cc in &calls_b {
        assert_eq!(uuid(&cc["outdial_id"]), outdial_b);
    }
    // B ran after A's last dial: the sequence, not an earlier run.
    let b_run = run_started(&sys, b).await.expect("B was put to run");
    let a_last = calls_a
        .iter()
        .filter_map(|c| c["tm_create"].as_str())
        .max()
        .expect("A dialed")
        .to_owned();
    let a_last = chrono::DateTime::parse_from_rfc3339(&a_last)
        .expect("tm_create")
        .naive_utc();
    assert!(
        b_run > a_last,
        "B run at {b_run}, A's last dial at {a_last}"
    );
    sys.stop().await;
}

/// Two stopped campaigns of `customer` over `plan`, each the other's next campaign, over new
/// outdials with `first_targets` and `second_targets` targets (one destination each).
async fn campaign_cycle(
    sys: &TestSystem,
    customer: Uuid,
    plan: &Plan,
    first_targets: usize,
    second_targets: usize,
) -> (Uuid, Uuid) {
    let first = create_campaign(
        sys,
        customer,
        sys.sim.create_outdial(customer, first_targets, 1),
        plan,
    )
    .await;
    let second = create_campaign(
        sys,
        customer,
        sys.sim.create_outdial(customer, second_targets, 1),
        plan,
    )
    .await;
    set_next(sys, first, second).await;
    set_next(sys, second, first).await;
    (first, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_of_campaigns_with_exhausted_lists_ends() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), fast).await;
    let customer = Uuid::new_v4();
    let plan = Plan::call();

    // Both lists empty: A ends without a dial and starts nothing.
    let (a, b) = campaign_cycle(&sys, customer, &plan, 0, 0).await;
    set_status(&sys, a, "run").await;
    wait_campaign(&sys, a, "stop", Some("stop"), Duration::from_secs(30)).await;
    // Several wait delays (300 ms) later nothing has started.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(campaign(&sys, b).await["status"], "stop");
    assert_eq!(run_started(&sys, b).await, None, "B never ran");
    assert_eq!(campaign(&sys, a).await["status"], "stop");

    // A (one target) → B (empty) → A: A dials, ends and starts B; B ends without a dial
    // and does not start A again.
    let (c, d) = campaign_cycle(&sys, customer, &plan, 1, 0).await;
    set_status(&sys, c, "run").await;
    let c_run = run_started(&sys, c).await.expect("C was put to run");
    wait_campaign(&sys, c, "stop", Some("stop"), Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while run_started(&sys, d).await.is_none() {
        assert!(Instant::now() < deadline, "D was never started by C");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_campaign(&sys, d, "stop", Some("stop"), Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for id in [c, d] {
        let now = campaign(&sys, id).await;
        assert_eq!(
            (now["status"].as_str(), now["execute"].as_str()),
            (Some("stop"), Some("stop"))
        );
    }
    assert_eq!(run_started(&sys, c).await, Some(c_run), "C ran once");
    assert_eq!(campaigncalls(&sys, c, json!({})).await.len(), 1);
    assert!(campaigncalls(&sys, d, json!({})).await.is_empty());
    sys.stop().await;
}

// ---------------------------------------------------------------- live stats (issue 10)

async fn stats(sys: &TestSystem, id: Uuid) -> Value {
    sys.ok("GET", &format!("/v1/campaigns/{id}/stats"), None)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_match_the_campaigncalls_and_say_why_a_campaign_waits() {
    let scenario = Scenario {
        weights: Weights {
            answered: 0.5,
            busy: 0.3,
            noanswer: 0.2,
            failed: 0.0,
        },
        seed: 11,
        ..Scenario::instant(Outcome::Answered)
    };
    let sys = TestSystem::start(scenario, fast).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 8, 1);
    let plan = Plan::call();
    let id = create_campaign(&sys, customer, outdial, &plan).await;

    let before = stats(&sys, id).await;
    assert_eq!(before["dials"], 0);
    assert_eq!(before["status"], "stop");
    assert_eq!(before["last_dial_at"], Value::Null);
    assert_eq!(before["by_reason"], json!({}));

    set_status(&sys, id, "run").await;
    wait_campaign(&sys, id, "stop", Some("stop"), Duration::from_secs(30)).await;
    let ccs = campaigncalls(&sys, id, json!({})).await;
    let count = |status: &str, result: Option<&str>| {
        ccs.iter()
            .filter(|c| c["status"] == status && result.is_none_or(|r| c["result"] == r))
            .count() as i64
    };
    let s = stats(&sys, id).await;
    let keys: Vec<&str> = s
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "campaign_id",
            "status",
            "execute",
            "dials",
            "dialing",
            "progressing",
            "done_success",
            "done_fail",
            "by_reason",
            "calls_up",
            "dials_last_minute",
            "last_dial_at",
            "next_tick_at",
            "waiting_reason",
            "suppressed",
            "zone_fallback_targets"
        ]
    );
    assert_eq!(uuid(&s["campaign_id"]), id);
    assert_eq!(
        (s["status"].as_str(), s["execute"].as_str()),
        (Some("stop"), Some("stop"))
    );
    assert_eq!(s["dials"], ccs.len() as i64);
    assert_eq!(s["dials"], 8);
    assert_eq!(s["dialing"], count("dialing", None));
    assert_eq!(s["progressing"], count("progressing", None));
    assert_eq!(s["calls_up"], 0);
    let (ok, failed) = (count("done", Some("success")), count("done", Some("fail")));
    assert_eq!(
        (s["done_success"].as_i64(), s["done_fail"].as_i64()),
        (Some(ok), Some(failed))
    );
    assert!(ok > 0 && failed > 0, "the scenario gives both results");
    // by_reason: each done campaigncall under the hangup reason its call ended with (as the
    // simulator hung it up), summing to the done counts.
    let mut by_hangup = serde_json::Map::new();
    for c in &ccs {
        let reference = uuid(&c["reference_id"]);
        let call = sys
            .sim
            .calls()
            .into_iter()
            .find(|call| call.id == reference)
            .expect("the campaigncall's call");
        let n = by_hangup
            .entry(call.hangup_reason().to_owned())
            .or_insert(json!(0));
        *n = json!(n.as_i64().unwrap_or(0) + 1);
    }
    assert!(by_hangup.len() >= 2, "{by_hangup:?}");
    assert_eq!(s["by_reason"], Value::Object(by_hangup));
    let summed: i64 = s["by_reason"]
        .as_object()
        .expect("by_reason")
        .values()
        .filter_map(Value::as_i64)
        .sum();
    assert_eq!(summed, ok + failed);
    assert_eq!(s["dials_last_minute"], 8);
    let last = ccs.iter().filter_map(|c| c["tm_create"].as_str()).max();
    assert_eq!(s["last_dial_at"].as_str(), last);
    assert_eq!(
        s["next_tick_at"],
        Value::Null,
        "a stopped campaign has no tick due"
    );
    assert_eq!(s["waiting_reason"], Value::Null);

    // A running `continue` campaign on an empty list says why it waits and when it looks again.
    let empty = Plan {
        end_handle: "continue",
        ..Plan::call()
    };
    let waiting = create_campaign(
        &sys,
        customer,
        sys.sim.create_outdial(customer, 0, 1),
        &empty,
    )
    .await;
    set_status(&sys, waiting, "run").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let s = loop {
        let s = stats(&sys, waiting).await;
        if s["waiting_reason"] == "list_empty" {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "never waiting on list_empty: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (s["status"].as_str(), s["execute"].as_str()),
        (Some("run"), Some("run"))
    );
    assert!(s["next_tick_at"].is_string(), "{s}");
    assert_eq!(s["dials"], 0);
    set_status(&sys, waiting, "stop").await;

    // Unknown campaign: 404.
    let (code, _, _) = sys
        .rpc(
            "GET",
            &format!("/v1/campaigns/{}/stats", Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(code, 404);
    sys.stop().await;
}
