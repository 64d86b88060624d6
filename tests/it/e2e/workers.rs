//! A `campaign-worker` process killed mid-campaign is replaced and no try is dialed twice.

use super::*;

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
