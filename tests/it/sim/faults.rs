//! Faults in time: a late reply times the caller out while the request still takes effect, and
//! effects after an error or after a stall still land.

use super::*;

#[tokio::test]
async fn late_reply_times_the_caller_out_but_the_request_takes_effect() {
    let timeout = Duration::from_millis(1000);
    let late = Duration::from_millis(3000);
    let env = Env::start_with_timeout(
        Scenario {
            ring_ms: MsRange::fixed(1500),
            ..Scenario::instant(Outcome::NoAnswer)
        },
        timeout,
    )
    .await;
    let (_calls_ch, mut call_events) = env.listen("call-manager").await;
    let (_flows_ch, mut flow_events) = env.listen("flow-manager").await;
    let peers = env.peers();

    // The dial: handled, reply held back past the caller's timeout.
    env.sim
        .inject(Fault::late_reply(Service::Call, late, 1).on_method("POST"));
    let dial = call_request("+3000");
    let res = peers.create_call(&dial).await;
    assert!(matches!(res, Err(PeerError::Timeout { .. })), "{res:?}");
    // The outcome is unknown to the caller, but call-manager has the call ...
    let call = peers
        .get_call(dial.call_id)
        .await
        .expect("get")
        .expect("the late-answered call exists");
    assert_eq!(call.id, dial.call_id);
    assert!(
        ["ringing", "terminating", "hangup"].contains(&call.status.as_str()),
        "{call:?}"
    );
    // ... and it ends as planned, with its event.
    let ended = hangup_of(&mut call_events, dial.call_id, Duration::from_secs(10))
        .await
        .expect("call_hangup of the late-answered call");
    assert_eq!(ended.hangup_reason, "noanswer");
    let call = peers
        .get_call(dial.call_id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (call.status.as_str(), call.hangup_reason.as_str()),
        ("hangup", "noanswer")
    );
    assert_eq!(env.sim.calls().len(), 1, "dialed once");

    // The same for an activeflow execution.
    let customer = Uuid::new_v4();
    let flow = peers.create_flow(customer, &[]).await.expect("flow");
    let af = Uuid::new_v4();
    peers
        .create_activeflow(af, customer, flow.id, Uuid::new_v4())
        .await
        .expect("activeflow");
    env.sim.inject(
        Fault::late_reply(Service::Flow, late, 1).on_uri(&format!("/v1/activeflows/{af}/execute")),
    );
    let res = peers.execute_activeflow(af).await;
    assert!(matches!(res, Err(PeerError::Timeout { .. })), "{res:?}");
    assert!(activeflow_end_of(&mut flow_events, af, Duration::from_secs(10)).await);
    let got = peers
        .get_activeflow(af)
        .await
        .expect("get")
        .expect("exists");
    assert!(got.is_finished(), "{got:?}");

    // A `no_reply_ms` request, by contrast, never happened.
    env.sim
        .inject(Fault::no_reply(Service::Call, late, 1).on_method("POST"));
    let lost = call_request("+3001");
    let res = peers.create_call(&lost).await;
    assert!(matches!(res, Err(PeerError::Timeout { .. })), "{res:?}");
    assert_eq!(peers.get_call(lost.call_id).await.expect("get"), None);
    env.finish().await;
}

/// `status_after_effect`: call-manager inserts the call, then answers a bare 500 (the call
/// rings and ends as planned). `late_effect_ms`: the request is taken at once, answered never
/// (the caller times out), and the call appears only later, as when a stalled consumer resumes.
#[tokio::test]
async fn effects_after_an_error_or_after_a_stall_still_land() {
    let timeout = Duration::from_millis(1000);
    let env = Env::start_with_timeout(Scenario::instant(Outcome::Busy), timeout).await;
    let (_ch, mut events) = env.listen("call-manager").await;
    let peers = env.peers();

    env.sim
        .inject(Fault::status_after_effect(Service::Call, 500, 1).on_method("POST"));
    let inserted = call_request("+4100");
    let res = peers.create_call(&inserted).await;
    assert!(
        matches!(
            res,
            Err(PeerError::Status {
                status: 500,
                typed: None,
                ..
            })
        ),
        "{res:?}"
    );
    let ended = hangup_of(&mut events, inserted.call_id, Duration::from_secs(5))
        .await
        .expect("call_hangup of the call answered 500");
    assert_eq!(ended.hangup_reason, "busy");

    let stall = Duration::from_millis(2500);
    env.sim
        .inject(Fault::late_effect(Service::Call, stall, 1).on_method("POST"));
    let stalled = call_request("+4101");
    let res = peers.create_call(&stalled).await;
    assert!(matches!(res, Err(PeerError::Timeout { .. })), "{res:?}");
    assert_eq!(
        peers.get_call(stalled.call_id).await.expect("get"),
        None,
        "taken but not acted on yet"
    );
    let ended = hangup_of(&mut events, stalled.call_id, Duration::from_secs(10))
        .await
        .expect("call_hangup of the stalled call");
    assert_eq!(ended.hangup_reason, "busy");
    assert!(
        peers
            .get_call(stalled.call_id)
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(env.sim.calls().len(), 2, "each dialed once");
    env.finish().await;
}
