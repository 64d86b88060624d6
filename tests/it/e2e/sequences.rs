//! Sequences: an exhausted campaign starts its next one, which dials its own list, and a cycle
//! of campaigns with exhausted lists ends; live stats match the campaigncalls and say why a
//! campaign waits.

use super::*;

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
