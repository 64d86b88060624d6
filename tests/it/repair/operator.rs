//! The operator's word: `force_stop` settles every open campaigncall of a `stopping` campaign
//! by its peer's answer without waiting for the repair, and `finish` ends one campaigncall
//! as a hangup would.

use super::*;

/// `force_stop` settles every open campaigncall of a `stopping` campaign at once, young ones
/// included, by what its peer says: never created → fail and the try freed; hung up → its
/// reason's result; still up or no answer → fail (the operator's word). Then the campaign
/// stops. A running campaign is refused, a stopped one returned as it is.
#[tokio::test]
async fn force_stop_settles_open_calls_by_their_peer_and_stops() {
    let s = setup();
    let (never, ended, up, silent) = (planned(), planned(), planned(), planned());
    let mut m = Mocks::new();
    expect_get_call(&mut m, never.reference, 1, || Ok(None));
    expect_get_call(&mut m, ended.reference, 1, || {
        Ok(Some(call_in("hangup", "normal")))
    });
    expect_get_call(&mut m, up.reference, 1, || {
        Ok(Some(call_in("progressing", "")))
    });
    // The call still up is hung up at call-manager, which does not answer here: `fail`
    // (tests/it/force_stop.rs).
    m.call
        .expect_hangup_call()
        .times(1)
        .returning(|_| Err(timeout()));
    expect_get_call(&mut m, silent.reference, 1, || Err(timeout()));
    expect_target(&mut m, never.target, TargetStatus::Idle);
    expect_target(&mut m, ended.target, TargetStatus::Done);
    expect_target(&mut m, up.target, TargetStatus::Idle);
    expect_target(&mut m, silent.target, TargetStatus::Idle);
    let env = env_with(&s, m).await;
    let id = s.campaign.id;
    let mut calls = Vec::new();
    for p in [&never, &ended, &up, &silent] {
        calls.push(
            env.dial_planned(&s.campaign, p, ReferenceType::Call, 0)
                .await,
        );
    }
    // The silent one was claimed and asked for; its reply was lost.
    env.set_step(silent.id, DialStep::Unknown).await;
    let refused = env.service.force_stop_campaign(id).await.unwrap_err();
    assert!(refused.to_string().contains("stop it first"), "{refused}");
    env.set_stopping(id).await;
    assert_eq!(env.pass().await.checked, 0, "too young for the repair");

    let c = env
        .service
        .force_stop_campaign(id)
        .await
        .expect("force stop");
    assert_eq!((c.status, c.execute), (CampaignStatus::Stop, Execute::Stop));
    let results: Vec<CampaigncallResult> = {
        let mut r = Vec::new();
        for cc in &calls {
            let done = env.call(cc.id).await;
            assert_eq!(done.status, CampaigncallStatus::Done, "{}", cc.id);
            r.push(done.result);
        }
        r
    };
    assert_eq!(
        results,
        [
            CampaigncallResult::Fail,
            CampaigncallResult::Success,
            CampaigncallResult::Fail,
            CampaigncallResult::Fail
        ]
    );
    assert_eq!(
        env.step(never.id).await,
        None,
        "a never-created call frees its try"
    );
    for p in [&ended, &up, &silent] {
        assert_eq!(
            env.step(p.id).await,
            Some(DialStep::Requested),
            "a placed (or perhaps placed) call keeps its try"
        );
    }
    assert!(env.events().contains(&"campaign_status_stop".to_string()));
    // Stopped: returned as it is, nothing asked again (the mocks allow one call each).
    let again = env.service.force_stop_campaign(id).await.expect("again");
    assert_eq!(again.status, CampaignStatus::Stop);
}

/// `force_stop` of a dial never claimed (step `recorded`) whose peer cannot be asked frees its
/// try rather than keeping a try outdial-manager never counted.
#[tokio::test]
async fn force_stop_frees_the_try_of_a_dial_never_claimed() {
    let s = setup();
    let p = planned();
    let mut m = Mocks::new();
    expect_get_call(&mut m, p.reference, 1, || Err(timeout()));
    expect_target(&mut m, p.target, TargetStatus::Idle);
    let env = env_with(&s, m).await;
    let cc = env
        .dial_planned(&s.campaign, &p, ReferenceType::Call, 0)
        .await;
    let id = s.campaign.id;
    env.set_stopping(id).await;
    let c = env
        .service
        .force_stop_campaign(id)
        .await
        .expect("force stop");
    assert_eq!(c.status, CampaignStatus::Stop);
    assert_eq!(env.call(cc.id).await.result, CampaigncallResult::Fail);
    assert_eq!(env.step(cc.id).await, None, "the try is released");
}

/// An operator's `finish` ends one campaigncall as a hangup would (target, event), keeps its
/// try used, and stops a `stopping` campaign with nothing else up; a second finish and a
/// result of `""` are refused without changing anything.
#[tokio::test]
async fn operator_finish_keeps_the_try_and_stops_a_stopping_campaign() {
    let s = setup();
    let p = planned();
    let mut m = Mocks::new();
    expect_target(&mut m, p.target, TargetStatus::Done);
    let env = env_with(&s, m).await;
    let id = s.campaign.id;
    let cc = env
        .dial_planned(&s.campaign, &p, ReferenceType::Call, 0)
        .await;
    env.tell_to_stop(id).await;
    env.set_stopping(id).await;
    let refused = env
        .service
        .operator_finish_campaigncall(cc.id, CampaigncallResult::None, false)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("success or fail"), "{refused}");

    let done = env
        .service
        .operator_finish_campaigncall(cc.id, CampaigncallResult::Success, false)
        .await
        .expect("finish");
    assert_eq!(
        (done.status, done.result),
        (CampaigncallStatus::Done, CampaigncallResult::Success)
    );
    assert_eq!(env.step(cc.id).await, Some(DialStep::Requested));
    assert_eq!(env.campaign(id).await.status, CampaignStatus::Stop);
    let events = env.events();
    assert!(
        events.contains(&"campaigncall_updated".to_string()),
        "{events:?}"
    );
    assert!(
        events.contains(&"campaign_status_stop".to_string()),
        "{events:?}"
    );
    let again = env
        .service
        .operator_finish_campaigncall(cc.id, CampaigncallResult::Fail, false)
        .await
        .unwrap_err();
    assert!(
        again.to_string().contains("already done (result success)"),
        "{again}"
    );
    assert_eq!(env.call(cc.id).await.result, CampaigncallResult::Success);
}
