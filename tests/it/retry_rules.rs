//! Retry rules by outcome and the minimum talk time (docs/contact-strategy.md), black-box over
//! RabbitMQ with the simulator answering each destination as the test sets it. Per target, the
//! simulator's attempt log must match the rules exactly: the destinations in order, how many,
//! nothing after a final reason, and each attempt at least the rule's delay after the hangup
//! before it and at most that delay plus one waiting tick plus [`TOLERANCE_MS`].

use std::collections::BTreeMap;
use std::time::Duration;

use campaign_sim::{
    Attempt, Fault, FaultKind, MsRange, Outcome, Override, Scenario, Service, TargetSpec,
    TargetState,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::black_box::{create_campaign, expect_400, id_of, set_status};
use crate::support::{TestSystem, wait_until};
use campaign_manager::model::Address;

/// What a late attempt may lag behind its due time beyond one waiting tick: a shared, busy
/// machine (two cores, several test runs) delays ticks and event handling by up to a second
/// or so; 3 s keeps the bound meaningful against the rules' 0.5-2 s delays without flaking.
const TOLERANCE_MS: i64 = 3_000;

/// Waiting ticks of the test's service, ms (the "one tick" of the upper bound).
const WAIT_TICK_MS: u64 = 300;

fn settings(s: &mut campaign_manager::config::Settings) {
    s.workers = 2;
    s.first_tick_ms = 100;
    s.dial_tick_ms = 100;
    s.wait_tick_ms = WAIT_TICK_MS;
}

/// Calls ring 100 ms and are answered with no talk unless an address is overridden.
fn scenario(overrides: &[(&str, Outcome)]) -> Scenario {
    Scenario {
        ring_ms: MsRange::fixed(100),
        overrides: overrides
            .iter()
            .map(|(address, outcome)| Override {
                destination_index: None,
                target: Some((*address).to_owned()),
                outcome: *outcome,
            })
            .collect(),
        ..Scenario::instant(Outcome::Answered)
    }
}

/// Creates an outplan with `fields` over a one-hour `try_interval` (so a reason without a rule
/// would visibly wait), runs a stopped-at-the-end call campaign over `outdial` with it, and
/// waits until the campaign stopped on its own.
async fn run_to_the_end(sys: &TestSystem, customer: Uuid, outdial: Uuid, fields: Value) -> Uuid {
    let mut body = json!({
        "customer_id": customer, "name": "retry", "detail": "",
        "source": {"type": "tel", "target": "+15550001000"},
        "dial_timeout": 30000, "try_interval": 3_600_000,
    });
    if let (Some(b), Some(f)) = (body.as_object_mut(), fields.as_object()) {
        b.extend(f.clone());
    }
    let outplan = sys.ok("POST", "/v1/outplans", Some(body)).await;
    let c = create_campaign(
        sys,
        "retry",
        customer,
        outdial,
        json!({"outplan_id": outplan["id"]}),
    )
    .await;
    let id = id_of(&c);
    set_status(sys, id, "run").await;
    wait_until("the campaign ends", Duration::from_secs(90), || async {
        let c = sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await;
        c["status"] == "stop"
    })
    .await;
    id
}

/// A target of `addresses` (destinations 0.. in order).
fn add_target(sys: &TestSystem, outdial: Uuid, addresses: &[&str]) -> Uuid {
    sys.sim
        .add_target(
            outdial,
            TargetSpec {
                destinations: addresses.iter().map(|a| Some(Address::tel(a))).collect(),
                ..TargetSpec::default()
            },
        )
        .expect("add target")
}

/// Checks one target's attempts against `want` (destination index, hangup reason, the delay
/// in ms its rule sets before the next attempt): exactly these, in order, each next attempt
/// between `delay` and `delay + one tick + TOLERANCE_MS` after the hangup before it.
fn check_target(name: &str, attempts: &[Attempt], target: Uuid, want: &[(usize, &str, i64)]) {
    let got: Vec<&Attempt> = attempts.iter().filter(|a| a.target_id == target).collect();
    let shape: Vec<(usize, Option<&str>)> = got
        .iter()
        .map(|a| (a.destination_index, a.hangup_reason.as_deref()))
        .collect();
    let expected: Vec<(usize, Option<&str>)> =
        want.iter().map(|(i, r, _)| (*i, Some(*r))).collect();
    assert_eq!(shape, expected, "{name}: attempts {got:#?}");
    for (pair, (_, reason, delay)) in got.windows(2).zip(want) {
        let hangup = pair[0].tm_hangup.expect("ended");
        let next = pair[1].at.expect("at");
        let gap = (next - hangup).num_milliseconds();
        assert!(
            gap >= *delay,
            "{name}: after {reason} the next attempt came {gap} ms after the hangup, rule {delay}"
        );
        let late = delay + WAIT_TICK_MS as i64 + TOLERANCE_MS;
        assert!(
            gap <= late,
            "{name}: after {reason} the next attempt came {gap} ms after the hangup, \
             later than {late}"
        );
    }
}

async fn by_reason(sys: &TestSystem, id: Uuid) -> BTreeMap<String, i64> {
    let stats = sys
        .ok("GET", &format!("/v1/campaigns/{id}/stats"), None)
        .await;
    serde_json::from_value(stats["by_reason"].clone()).expect("by_reason")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_target_is_dialed_as_the_rules_of_its_outcomes_say_and_amd_counts_apart() {
    let sys = TestSystem::start(
        scenario(&[
            ("+15550100100", Outcome::Busy),
            ("+15550100200", Outcome::Failed),
            ("+15550100201", Outcome::NoAnswer),
            ("+15550100300", Outcome::Failed),
            ("+15550100400", Outcome::Amd),
        ]),
        settings,
    )
    .await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 0, 1);
    // Busy three times on its first destination, then answered on its second.
    let busy = add_target(&sys, outdial, &["+15550100100", "+15550100101"]);
    // A failed number is final: straight to the second destination, tried twice (noanswer).
    let failed = add_target(&sys, outdial, &["+15550100200", "+15550100201"]);
    // A failed only destination ends the target although tries are left.
    let failed_only = add_target(&sys, outdial, &["+15550100300"]);
    // An answering machine is final here, with a short delay; then a person answers.
    let machine = add_target(&sys, outdial, &["+15550100400", "+15550100401"]);

    let id = run_to_the_end(
        &sys,
        customer,
        outdial,
        json!({
            "max_try_count_0": 3, "max_try_count_1": 2,
            "retry_rules": {
                "busy": {"delay_ms": 1000},
                "noanswer": {"delay_ms": 2000},
                "failed": {"final": true},
                "amd": {"delay_ms": 500, "final": true},
            },
        }),
    )
    .await;

    let attempts = sys.sim.attempts();
    check_target(
        "busy",
        &attempts,
        busy,
        &[
            (0, "busy", 1000),
            (0, "busy", 1000),
            (0, "busy", 1000),
            (1, "normal", 0),
        ],
    );
    check_target(
        "failed",
        &attempts,
        failed,
        &[
            (0, "failed", 0),
            (1, "noanswer", 2000),
            (1, "noanswer", 2000),
        ],
    );
    check_target("failed only", &attempts, failed_only, &[(0, "failed", 0)]);
    check_target(
        "machine",
        &attempts,
        machine,
        &[(0, "amd", 500), (1, "normal", 0)],
    );
    for t in [busy, failed, failed_only, machine] {
        assert_eq!(
            sys.sim.target(t).map(|t| t.status),
            Some(TargetState::Done),
            "{t}"
        );
    }
    let want: BTreeMap<String, i64> = [
        ("busy", 3),
        ("normal", 2),
        ("failed", 2),
        ("noanswer", 2),
        ("amd", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(by_reason(&sys, id).await, want);
    sys.stop().await;
}

/// The one step after a final reason that is not the finish itself: ending a target with only
/// final destinations left at outdial-manager. When it fails (or the process dies before it),
/// nothing was dialed nor recorded, and the next tick offered the target ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_target_whose_end_fails_is_ended_by_a_later_tick_without_another_call() {
    let number = "+15550300100";
    let sys = TestSystem::start(scenario(&[(number, Outcome::Failed)]), settings).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 0, 1);
    let target = add_target(&sys, outdial, &[number]);
    let mut body = json!({
        "customer_id": customer, "name": "retry", "detail": "",
        "source": {"type": "tel", "target": "+15550001000"},
        "dial_timeout": 30000, "try_interval": 3_600_000, "max_try_count_0": 3,
        // The delay leaves time to break the end before a tick looks at the target again.
        "retry_rules": {"failed": {"delay_ms": 2000, "final": true}},
    });
    let outplan = sys.ok("POST", "/v1/outplans", Some(body.take())).await;
    let c = create_campaign(
        &sys,
        "retry",
        customer,
        outdial,
        json!({"outplan_id": outplan["id"]}),
    )
    .await;
    let id = id_of(&c);
    set_status(&sys, id, "run").await;
    wait_until(
        "the failed call is finished",
        Duration::from_secs(30),
        || async {
            let ended = sys
                .sim
                .attempts()
                .iter()
                .any(|a| a.target_id == target && a.tm_hangup.is_some());
            ended && sys.sim.target(target).map(|t| t.status) == Some(TargetState::Idle)
        },
    )
    .await;
    // The next two attempts to end it fail.
    sys.sim.inject(Fault {
        service: Some(Service::Outdial),
        method: Some("PUT".into()),
        uri_contains: Some(format!("{target}/status")),
        kind: FaultKind::Status(500),
        count: 2,
    });
    wait_until("the campaign ends", Duration::from_secs(60), || async {
        let c = sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await;
        c["status"] == "stop"
    })
    .await;
    assert!(
        sys.sim.with_state(|s| s.faults.pending().is_empty()),
        "the end was not tried again after it failed"
    );
    check_target(
        "failed",
        &sys.sim.attempts(),
        target,
        &[(0, "failed", 2000)],
    );
    assert_eq!(
        sys.sim
            .target(target)
            .map(|t| (t.status, t.target.try_count_0)),
        Some((TargetState::Done, 1))
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_hangup_shorter_than_min_talk_ms_is_a_fail_retried_under_noanswer() {
    let sys = TestSystem::start(
        scenario(&[
            ("+15550200100", Outcome::Voicemail),
            ("+15550200101", Outcome::Talk(2500)),
            ("+15550200200", Outcome::Talk(3000)),
        ]),
        settings,
    )
    .await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 0, 1);
    // Voicemail (1 s of talk) twice on the first destination, then 2.5 s on the second.
    let voicemail = add_target(&sys, outdial, &["+15550200100", "+15550200101"]);
    let talker = add_target(&sys, outdial, &["+15550200200"]);
    let id = run_to_the_end(
        &sys,
        customer,
        outdial,
        json!({
            "max_try_count_0": 2, "max_try_count_1": 1,
            "min_talk_ms": 2000,
            "retry_rules": {"noanswer": {"delay_ms": 1000}},
        }),
    )
    .await;
    let attempts = sys.sim.attempts();
    check_target(
        "voicemail",
        &attempts,
        voicemail,
        &[(0, "normal", 1000), (0, "normal", 1000), (1, "normal", 0)],
    );
    check_target("talker", &attempts, talker, &[(0, "normal", 0)]);
    let stats = sys
        .ok("GET", &format!("/v1/campaigns/{id}/stats"), None)
        .await;
    assert_eq!(
        (stats["done_success"].clone(), stats["done_fail"].clone()),
        (json!(2), json!(2)),
        "{stats}"
    );
    let want: BTreeMap<String, i64> = [("short_call".to_owned(), 2), ("normal".to_owned(), 2)]
        .into_iter()
        .collect();
    assert_eq!(by_reason(&sys, id).await, want);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_settings_are_shown_when_set_kept_unless_given_and_each_bad_field_is_a_400() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let plain = json!({
        "customer_id": customer, "name": "p", "detail": "",
        "source": {"type": "tel", "target": "+15550001000"},
        "dial_timeout": 30000, "try_interval": 600000,
        "max_try_count_0": 2, "max_try_count_1": 0, "max_try_count_2": 0,
        "max_try_count_3": 0, "max_try_count_4": 0,
    });
    let with = |extra: Value| {
        let mut b = plain.clone();
        if let (Some(b), Some(x)) = (b.as_object_mut(), extra.as_object()) {
            b.extend(x.clone());
        }
        b
    };

    // An outplan without them has the platform's keys only.
    let o = sys.ok("POST", "/v1/outplans", Some(plain.clone())).await;
    assert!(
        o.get("retry_rules").is_none() && o.get("min_talk_ms").is_none(),
        "{o}"
    );
    let plain_id = id_of(&o);

    // Every bad field, on create and on the dials update, named in the 400.
    let rows: [(&str, Value, &str); 8] = [
        (
            "unknown reason",
            json!({"retry_rules": {"bussy": {"delay_ms": 1}}}),
            "retry_rules.bussy",
        ),
        (
            "negative delay",
            json!({"retry_rules": {"busy": {"delay_ms": -1}}}),
            "retry_rules.busy.delay_ms",
        ),
        (
            "a rule for normal",
            json!({"retry_rules": {"normal": {"delay_ms": 1}}}),
            "retry_rules.normal",
        ),
        (
            "a rule for short_call",
            json!({"retry_rules": {"short_call": {"delay_ms": 1}}}),
            "retry_rules.short_call",
        ),
        (
            "unknown rule field",
            json!({"retry_rules": {"busy": {"delay": 1}}}),
            "delay",
        ),
        (
            "delay not a number",
            json!({"retry_rules": {"busy": {"delay_ms": "soon"}}}),
            "soon",
        ),
        (
            "negative min_talk_ms",
            json!({"min_talk_ms": -5}),
            "min_talk_ms",
        ),
        (
            "min_talk_ms not a number",
            json!({"min_talk_ms": "long"}),
            "long",
        ),
    ];
    for (row, extra, field) in &rows {
        let body = with(extra.clone());
        eprintln!("row: {row}");
        expect_400(&sys, "POST", "/v1/outplans", body.clone(), field).await;
        expect_400(
            &sys,
            "PUT",
            &format!("/v1/outplans/{plain_id}/dials"),
            body,
            field,
        )
        .await;
    }

    // Set on create, shown; a dials update without them keeps them; `null` clears them.
    let rules = json!({"busy": {"delay_ms": 60000, "final": false}, "failed": {"delay_ms": 0, "final": true}});
    let o = sys
        .ok(
            "POST",
            "/v1/outplans",
            Some(with(json!({
                "retry_rules": {"failed": {"final": true}, "busy": {"delay_ms": 60000}},
                "min_talk_ms": 5000,
            }))),
        )
        .await;
    assert_eq!(
        (o["retry_rules"].clone(), o["min_talk_ms"].clone()),
        (rules.clone(), json!(5000))
    );
    let oid = id_of(&o);
    let got = sys.ok("GET", &format!("/v1/outplans/{oid}"), None).await;
    assert_eq!(got, o);
    let kept = sys
        .ok(
            "PUT",
            &format!("/v1/outplans/{oid}/dials"),
            Some(with(json!({"try_interval": 1000}))),
        )
        .await;
    assert_eq!(
        (
            kept["try_interval"].clone(),
            kept["retry_rules"].clone(),
            kept["min_talk_ms"].clone()
        ),
        (json!(1000), rules, json!(5000))
    );
    let cleared = sys
        .ok(
            "PUT",
            &format!("/v1/outplans/{oid}/dials"),
            Some(with(json!({"retry_rules": null, "min_talk_ms": null}))),
        )
        .await;
    assert!(
        cleared.get("retry_rules").is_none() && cleared.get("min_talk_ms").is_none(),
        "{cleared}"
    );
    let got = sys.ok("GET", &format!("/v1/outplans/{oid}"), None).await;
    assert_eq!(got, cleared);
    sys.stop().await;
}
