//! Call and activeflow reads in each state of the call or flow, `None` for unknown ids, and
//! read errors that stay errors: only a typed 404 is read as "none".

use super::*;

#[tokio::test]
async fn get_call_answers_each_state_of_the_call_and_none_for_unknown_ids() {
    // Calls ring for a minute (so they are reliably seen ringing), except later ones.
    let silent = Override {
        destination_index: None,
        target: Some("+9001".into()),
        outcome: Outcome::Silent,
    };
    let env = Env::start(Scenario {
        ring_ms: MsRange::fixed(60_000),
        overrides: vec![silent.clone()],
        ..Scenario::instant(Outcome::Busy)
    })
    .await;
    let (_ch, mut events) = env.listen("call-manager").await;
    let peers = env.peers();

    let ringing = call_request("+1000");
    peers.create_call(&ringing).await.expect("create");
    let call = peers
        .get_call(ringing.call_id)
        .await
        .expect("get")
        .expect("the call exists");
    assert_eq!(call.id, ringing.call_id);
    assert_eq!(
        (call.status.as_str(), call.hangup_reason.as_str()),
        ("ringing", "")
    );
    assert!(!call.is_hungup());
    let raw = body(
        &env.get(Service::Call, &format!("/v1/calls/{}", ringing.call_id))
            .await,
    );
    assert!(raw["tm_hangup"].is_null(), "{raw}");

    // From now on calls end at once (busy), except the silent destination, answered at once.
    env.sim.set_scenario(Scenario {
        overrides: vec![silent],
        ..Scenario::instant(Outcome::Busy)
    });
    let busy = call_request("+1001");
    peers.create_call(&busy).await.expect("create");
    let event = hangup_of(&mut events, busy.call_id, Duration::from_secs(5))
        .await
        .expect("call_hangup of the busy call");
    assert_eq!(event.hangup_reason, "busy");
    let call = peers
        .get_call(busy.call_id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (call.status.as_str(), call.hangup_reason.as_str()),
        ("hangup", "busy")
    );
    assert!(call.is_hungup());
    let raw = body(
        &env.get(Service::Call, &format!("/v1/calls/{}", busy.call_id))
            .await,
    );
    assert!(raw["tm_hangup"].is_string(), "{raw}");

    // A silent call is answered and never ends: no hangup event, `progressing` every time.
    let lost = call_request("+9001");
    peers.create_call(&lost).await.expect("create");
    for _ in 0..3 {
        let call = peers
            .get_call(lost.call_id)
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(
            (call.status.as_str(), call.hangup_reason.as_str()),
            ("progressing", "")
        );
        assert!(
            hangup_of(&mut events, lost.call_id, Duration::from_millis(200))
                .await
                .is_none()
        );
    }
    // The first call still rings; an unknown id is no call at all.
    let call = peers
        .get_call(ringing.call_id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(call.status, "ringing");
    assert_eq!(peers.get_call(Uuid::new_v4()).await.expect("get"), None);
    env.finish().await;
}

#[tokio::test]
async fn get_activeflow_answers_running_then_ended_and_none_for_unknown_ids() {
    let env = Env::start(Scenario::instant(Outcome::Answered)).await;
    let (_ch, mut events) = env.listen("flow-manager").await;
    let peers = env.peers();
    let customer = Uuid::new_v4();
    let flow = peers
        .create_flow(customer, &[Action::queue_join(Uuid::nil())])
        .await
        .expect("flow");
    let af = Uuid::new_v4();
    peers
        .create_activeflow(af, customer, flow.id, Uuid::new_v4())
        .await
        .expect("activeflow");
    let got = peers
        .get_activeflow(af)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (got.id, got.status.as_str(), got.tm_delete),
        (af, "running", None)
    );
    assert!(!got.is_finished());

    peers.execute_activeflow(af).await.expect("execute");
    assert!(activeflow_end_of(&mut events, af, Duration::from_secs(5)).await);
    let got = peers
        .get_activeflow(af)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got.status, "ended");
    assert!(got.tm_delete.is_some());
    assert!(got.is_finished());
    assert_eq!(
        peers.get_activeflow(Uuid::new_v4()).await.expect("get"),
        None
    );
    env.finish().await;
}

/// The peers' read errors as their handlers answer them: call-manager's typed 404
/// `CALL_NOT_FOUND` only for a call it has no row of (read as "none"), its bare 500 (and a bare
/// 404) for anything else; flow-manager's bare 400 for a failed activeflow read. Each error
/// reaches the caller as an error, never as "none".
#[tokio::test]
async fn read_errors_are_errors_and_only_a_typed_404_is_none() {
    let env = Env::start(Scenario::instant(Outcome::Silent)).await;
    let peers = env.peers();
    let dial = call_request("+4000");
    peers.create_call(&dial).await.expect("create");
    assert_eq!(peers.get_call(Uuid::new_v4()).await.expect("get"), None);
    for status in [500, 404] {
        env.sim
            .inject(Fault::status(Service::Call, status, 1).on_method("GET"));
        let res = peers.get_call(dial.call_id).await;
        assert!(
            matches!(res, Err(PeerError::Status { status: s, typed: None, .. }) if s == status),
            "{res:?}"
        );
    }
    assert!(peers.get_call(dial.call_id).await.expect("get").is_some());

    let af = Uuid::new_v4();
    assert_eq!(peers.get_activeflow(af).await.expect("get"), None);
    env.sim
        .inject(Fault::status(Service::Flow, 400, 1).on_method("GET"));
    let res = peers.get_activeflow(af).await;
    assert!(
        matches!(res, Err(PeerError::Status { status: 400, .. })),
        "{res:?}"
    );
    env.finish().await;
}
