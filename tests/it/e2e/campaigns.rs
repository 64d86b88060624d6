//! Whole campaigns through the service and the simulator: call and flow campaigns run until
//! their lists are exhausted (also on the fanout bus and on three tick shards), a stop while
//! calls are up goes `stopping` then `stop` and `run` resumes, a `continue` campaign waits
//! on an empty list and dials targets added later.

use super::*;

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
