//! Which targets are dialed when, end to end: the queue's capacity caps the calls dialing and
//! follows the agents, a busy destination is retried after the interval and then the next one
//! is used, the list is not exhausted while a retryable call is up, and a target inside its
//! retry interval does not hold back a never-tried one.

use super::*;

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
