//! A tick's dial: a call through call-manager and a flow through flow-manager, what each
//! records and sends; each way a dial fails (an unknown outcome left open, a refusal or a
//! failed claim failing the campaigncall and backing off) as a table; the back-off growing to
//! its cap, reset by a successful tick, kept per campaign.

use super::*;

#[tokio::test]
async fn call_campaign_dials_through_call_manager() {
    let s = setup(CampaignType::Call);
    let mut t = target();
    t.destination_0 = None;
    t.destination_1 = Some(Address::tel("+15550009999"));
    t.try_count_1 = 1;
    let target_id = t.id;
    let mut m = Mocks::new();
    offer(&mut m, s.campaign.outdial_id, t, 1);
    let sent = expect_call_dial_to(&mut m, target_id, 1);
    m.outdial.expect_set_target_status().times(0);
    let env = env_with(&s, m).await;

    let (next, outcome) = env.tick(s.campaign.id).await;
    assert_eq!(next, AFTER_DIAL);
    assert_eq!(outcome, Outcome::Dialed);

    let req = sent.lock().expect("lock")[0].clone();
    let calls = env.calls_of(s.campaign.id).await;
    assert_eq!(calls.len(), 1);
    let cc = &calls[0];
    assert_eq!(cc.status, CampaigncallStatus::Dialing);
    assert_eq!(cc.result, CampaigncallResult::None);
    assert_eq!(cc.reference_type, ReferenceType::Call);
    assert_eq!(cc.reference_id, req.call_id);
    assert!(!req.call_id.is_nil());
    assert_eq!(cc.activeflow_id, req.activeflow_id);
    assert_eq!(cc.outdial_target_id, target_id);
    assert_eq!(cc.outplan_id, s.outplan.id);
    assert_eq!(cc.outdial_id, s.campaign.outdial_id);
    assert_eq!(cc.flow_id, s.campaign.flow_id);
    assert_eq!(cc.customer_id, s.campaign.customer_id);
    assert_eq!(cc.destination_index, 1);
    assert_eq!(cc.try_count, 2);
    assert_eq!(cc.source, s.outplan.source);
    assert_eq!(cc.destination, Some(Address::tel("+15550009999")));

    assert_eq!(req.customer_id, s.campaign.customer_id);
    assert_eq!(req.flow_id, s.campaign.flow_id);
    assert_eq!(Some(req.source), s.outplan.source);
    assert_eq!(req.destination, Address::tel("+15550009999"));

    assert_eq!(env.events(), vec!["campaigncall_created"]);
    let payload = env.notifier.events.lock().expect("lock")[0].record_json();
    assert_eq!(payload["id"], serde_json::json!(cc.id.to_string()));
    assert_eq!(
        env.metrics
            .campaigncall_create_total
            .with_label_values(&["call"])
            .get(),
        1
    );
    let c = env.campaign(s.campaign.id).await;
    assert_eq!((c.status, c.execute), (CampaignStatus::Run, Execute::Run));
}

#[tokio::test]
async fn flow_campaign_starts_an_activeflow() {
    let s = setup(CampaignType::Flow);
    let t = target();
    let target_id = t.id;
    let customer = s.campaign.customer_id;
    let flow_id = s.campaign.flow_id;
    let mut m = Mocks::new();
    offer(&mut m, s.campaign.outdial_id, t, 1);
    m.outdial
        .expect_set_target_progressing()
        .withf(move |id, index| *id == target_id && *index == 0)
        .times(1)
        .returning(|_, _| Ok(()));
    let created = Arc::new(Mutex::new(Vec::<(Uuid, Uuid)>::new()));
    let created_in = created.clone();
    m.flow
        .expect_create_activeflow()
        .withf(move |af, cust, flow, cc| {
            created_in.lock().expect("lock").push((*af, *cc));
            *cust == customer && *flow == flow_id
        })
        .times(1)
        .returning(|af, _, _, _| {
            Ok(Activeflow {
                id: af,
                ..Default::default()
            })
        });
    let executed = Arc::new(Mutex::new(Vec::<Uuid>::new()));
    let executed_in = executed.clone();
    m.flow
        .expect_execute_activeflow()
        .withf(move |af| {
            executed_in.lock().expect("lock").push(*af);
            true
        })
        .times(1)
        .returning(|_| Ok(()));
    m.call.expect_create_call().times(0);
    let env = env_with(&s, m).await;

    assert_eq!(env.tick(s.campaign.id).await, (AFTER_DIAL, Outcome::Dialed));

    let calls = env.calls_of(s.campaign.id).await;
    assert_eq!(calls.len(), 1);
    let cc = &calls[0];
    assert_eq!(cc.status, CampaigncallStatus::Progressing);
    assert_eq!(cc.reference_type, ReferenceType::Flow);
    assert!(cc.reference_id.is_nil());
    assert_eq!(cc.destination_index, 0);
    assert_eq!(cc.try_count, 1);
    let (af, reference) = created.lock().expect("lock")[0];
    assert_eq!(af, cc.activeflow_id);
    assert_eq!(reference, cc.id);
    assert_eq!(executed.lock().expect("lock").as_slice(), &[af]);
    assert_eq!(
        env.events(),
        vec!["campaigncall_created", "campaigncall_updated"]
    );
}

#[tokio::test]
async fn flow_campaign_without_source_still_dials() {
    // Only call campaigns need a caller id.
    let mut s = setup(CampaignType::Flow);
    s.outplan.source = None;
    let mut m = Mocks::new();
    offer(&mut m, s.campaign.outdial_id, target(), 1);
    m.outdial
        .expect_set_target_progressing()
        .times(1)
        .returning(|_, _| Ok(()));
    m.flow
        .expect_create_activeflow()
        .times(1)
        .returning(|af, _, _, _| {
            Ok(Activeflow {
                id: af,
                ..Default::default()
            })
        });
    m.flow
        .expect_execute_activeflow()
        .times(1)
        .returning(|_| Ok(()));
    let env = env_with(&s, m).await;

    assert_eq!(env.tick(s.campaign.id).await, (AFTER_DIAL, Outcome::Dialed));
}

/// Mocks for `n` call dials that call-manager refuses with `err`.
fn failing_call_dials(s: &Setup, n: usize, err: PeerError) -> Mocks {
    let mut m = Mocks::new();
    let t = target();
    let target_id = t.id;
    offer(&mut m, s.campaign.outdial_id, t, n);
    m.outdial
        .expect_set_target_progressing()
        .times(n)
        .returning(|_, _| Ok(()));
    m.call
        .expect_create_call()
        .times(n)
        .returning(move |_| Err(err.clone()));
    m.outdial
        .expect_set_target_status()
        .withf(move |id, st| *id == target_id && *st == TargetStatus::Idle)
        .times(n)
        .returning(|_, _| Ok(()));
    m
}

async fn assert_failed_dial(env: &Env, s: &Setup, (next, outcome): (Next, Outcome)) {
    assert!(matches!(outcome, Outcome::Backoff(_)), "{outcome:?}");
    match next {
        Next::Continue(d) => assert!(d >= Duration::from_secs(5), "{d:?}"),
        Next::Stop => panic!("a failed dial must not end the chain"),
    }
    let calls = env.calls_of(s.campaign.id).await;
    assert!(!calls.is_empty());
    for cc in &calls {
        assert_eq!(cc.status, CampaigncallStatus::Done);
        assert_eq!(cc.result, CampaigncallResult::Fail);
    }
    let c = env.campaign(s.campaign.id).await;
    assert_eq!((c.status, c.execute), (CampaignStatus::Run, Execute::Run));
}

/// A target offered once and claimed (`set_target_progressing` answered `claim`).
fn offered_and_claimed(m: &mut Mocks, s: &Setup, claim: Result<(), PeerError>) -> Uuid {
    let t = target();
    let target_id = t.id;
    offer(m, s.campaign.outdial_id, t, 1);
    m.outdial
        .expect_set_target_progressing()
        .times(1)
        .returning(move |_, _| claim.clone());
    target_id
}

/// outdial-manager is told once that `target_id` is idle again.
fn expect_idle(m: &mut Mocks, target_id: Uuid) {
    m.outdial
        .expect_set_target_status()
        .withf(move |id, st| *id == target_id && *st == TargetStatus::Idle)
        .times(1)
        .returning(|_, _| Ok(()));
}

/// call-manager refuses the call with `err`, the target told nothing.
fn call_refused_with(m: &mut Mocks, s: &Setup, err: PeerError) {
    offered_and_claimed(m, s, Ok(()));
    m.call
        .expect_create_call()
        .times(1)
        .returning(move |_| Err(err.clone()));
    m.outdial.expect_set_target_status().times(0);
}

/// flow-manager refuses the activeflow with a 409; the target goes back to idle.
fn activeflow_refused(m: &mut Mocks, s: &Setup) {
    let target_id = offered_and_claimed(m, s, Ok(()));
    m.flow
        .expect_create_activeflow()
        .times(1)
        .returning(|_, _, _, _| Err(status_err(409)));
    m.flow.expect_execute_activeflow().times(0);
    expect_idle(m, target_id);
}

/// The claim times out; no call is requested and the target goes back to idle.
fn claim_timed_out(m: &mut Mocks, s: &Setup) {
    let target_id = offered_and_claimed(m, s, Err(timeout()));
    m.call.expect_create_call().times(0);
    expect_idle(m, target_id);
}

/// Each way one dial fails. call-manager's bare 500 (it answers that for errors after it
/// inserted the call row) and a timeout are unknown outcomes: the call may exist and ring, so
/// the campaigncall stays open with its call id, the target claimed and the try taken (the
/// hangup or the repair finishes it), and only that target is held back: the chain keeps its
/// pace (tests/it/liveness.rs). A 4xx refusal (not a reason to stop the whole campaign),
/// a failed activeflow and a failed claim (it may or may not have happened, but no call was
/// requested: the target goes back to idle, harmless if it never left it, and the try is free)
/// fail the campaigncall; none stops the campaign.
#[rustfmt::skip]
#[tokio::test]
async fn dial_failure_rows() {
    use CampaignType::{Call, Flow};
    let nothing = Change::Nothing;
    check_table(vec![
        tick_row("call_manager_500_is_an_unknown_outcome_and_leaves_the_campaigncall_open", Call, as_is, nothing, &[], |m, s| call_refused_with(m, s, status_err(500)),
                 "after 500ms dialed | campaign run/run | stops 0 | unknown dials 1 | events campaigncall_created | calls dialing none unknown | references 1"),
        tick_row("call_manager_timeout_leaves_the_campaigncall_open_and_keeps_the_pace", Call, as_is, nothing, &[], |m, s| call_refused_with(m, s, timeout()),
                 "after 500ms dialed | campaign run/run | stops 0 | unknown dials 1 | events campaigncall_created | calls dialing none unknown | references 1"),
        tick_row("call_manager_refusal_fails_the_campaigncall_and_backs_off", Call, as_is, nothing, &[], |m, s| *m = failing_call_dials(s, 1, status_err(400)),
                 "after 5s backoff | campaign run/run | stops 0 | unknown dials 0 | events campaigncall_created,campaigncall_updated | calls done fail - | references 1"),
        tick_row("activeflow_failure_fails_the_campaigncall_and_backs_off", Flow, as_is, nothing, &[], activeflow_refused,
                 "after 5s backoff | campaign run/run | stops 0 | unknown dials 0 | events campaigncall_created,campaigncall_updated,campaigncall_updated | calls done fail - | references 0"),
        tick_row("target_claim_failure_abandons_the_dial_and_frees_the_target_and_try", Call, as_is, nothing, &[], claim_timed_out,
                 "after 5s backoff | campaign run/run | stops 0 | unknown dials 0 | events campaigncall_created,campaigncall_updated | calls done fail - | references 1"),
    ]).await;
}

#[tokio::test]
async fn repeated_dial_failures_grow_the_delay_up_to_the_cap() {
    let s = setup(CampaignType::Call);
    let n = 8;
    let env = env_with(&s, failing_call_dials(&s, n, status_err(400))).await;

    let mut delays = Vec::new();
    for _ in 0..n {
        let (next, outcome) = env.tick(s.campaign.id).await;
        assert!(matches!(outcome, Outcome::Backoff(_)), "{outcome:?}");
        match next {
            Next::Continue(d) => delays.push(d),
            Next::Stop => panic!("a failed dial must not end the chain"),
        }
    }
    let cap = Delays::default().max_backoff;
    assert_eq!(delays[0], Duration::from_secs(5));
    assert!(delays[1] > delays[0], "{delays:?}");
    assert!(delays.windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
    assert!(delays.iter().all(|d| *d <= cap), "{delays:?}");
    assert_eq!(*delays.last().expect("delays"), cap, "{delays:?}");
    assert_eq!(env.calls_of(s.campaign.id).await.len(), n);
    assert_failed_dial(
        &env,
        &s,
        (Next::Continue(cap), Outcome::Backoff(String::new())),
    )
    .await;
}

#[tokio::test]
async fn a_successful_tick_resets_the_back_off() {
    let mut s = setup(CampaignType::Call);
    s.campaign.end_handle = EndHandle::Continue;
    let mut m = Mocks::new();
    let mut seq = mockall::Sequence::new();
    for result in [Err(timeout()), Err(timeout()), Ok(vec![]), Err(timeout())] {
        m.outdial
            .expect_available_targets()
            .times(1)
            .in_sequence(&mut seq)
            .returning(move |_, _, _| result.clone());
    }
    let env = env_with(&s, m).await;

    let id = s.campaign.id;
    assert_eq!(env.tick(id).await.0, Next::Continue(Duration::from_secs(5)));
    assert_eq!(
        env.tick(id).await.0,
        Next::Continue(Duration::from_secs(10))
    );
    assert_eq!(env.tick(id).await, (WAIT, Outcome::Waiting("list_empty")));
    assert_eq!(env.tick(id).await.0, Next::Continue(Duration::from_secs(5)));
}

#[tokio::test]
async fn separate_campaigns_back_off_independently() {
    let a = setup(CampaignType::Call);
    let mut b = setup(CampaignType::Call);
    b.campaign.end_handle = EndHandle::Continue;
    let (a_outdial, b_outdial) = (a.campaign.outdial_id, b.campaign.outdial_id);
    let mut m = Mocks::new();
    m.outdial
        .expect_available_targets()
        .withf(move |id, _, _| *id == a_outdial)
        .times(3)
        .returning(|_, _, _| Err(timeout()));
    m.outdial
        .expect_available_targets()
        .withf(move |id, _, _| *id == b_outdial)
        .times(1)
        .returning(|_, _, _| Err(timeout()));
    let env = env_with(&a, m).await;
    env.insert_outplan(&b.outplan).await;
    env.insert_campaign(&b.campaign).await;

    for _ in 0..3 {
        env.tick(a.campaign.id).await;
    }
    assert_eq!(
        env.tick(b.campaign.id).await.0,
        Next::Continue(Duration::from_secs(5))
    );
}
