//! Campaigncalls: a finish changes one once and puts a failed one's target back to idle (a
//! finish cut short completed by the repair), an unknown one is left alone, a delete needs
//! `done`, hangup reasons map to results.

use super::*;

#[tokio::test]
async fn finishing_a_campaigncall_twice_changes_it_once() {
    let mut m = Mocks::new();
    let target = Arc::new(Mutex::new(Vec::new()));
    let target_in = target.clone();
    m.outdial
        .expect_set_target_status()
        .withf(move |id, st| {
            target_in.lock().expect("lock").push((*id, *st));
            true
        })
        .times(1)
        .returning(|_, _| Ok(()));
    let env = Env::new(m).await;
    let c = env.stopped_campaign().await;
    let cc = env.insert_call(&c, CampaigncallStatus::Dialing).await;

    let first = env
        .service
        .finish_campaigncall(cc.id, CampaigncallResult::Success)
        .await
        .expect("finish")
        .expect("finished now");
    assert_eq!(first.status, CampaigncallStatus::Done);
    assert_eq!(first.result, CampaigncallResult::Success);
    let second = env
        .service
        .finish_campaigncall(cc.id, CampaigncallResult::Fail)
        .await
        .expect("finish again");
    assert!(second.is_none());

    let stored = env.service.campaigncall(cc.id).await.expect("read");
    assert_eq!(
        stored.result,
        CampaigncallResult::Success,
        "first result kept"
    );
    assert_eq!(
        target.lock().expect("lock").as_slice(),
        &[(cc.outdial_target_id, TargetStatus::Done)]
    );
    assert_eq!(env.events(), vec!["campaigncall_updated"]);
    assert_eq!(
        env.metrics
            .campaigncall_done_total
            .with_label_values(&["success"])
            .get(),
        1
    );
}

#[tokio::test]
async fn a_failed_campaigncall_puts_its_target_back_to_idle() {
    let mut m = Mocks::new();
    m.outdial
        .expect_set_target_status()
        .withf(|_, st| *st == TargetStatus::Idle)
        .times(1)
        .returning(|_, _| Ok(()));
    let env = Env::new(m).await;
    let c = env.stopped_campaign().await;
    let cc = env.insert_call(&c, CampaigncallStatus::Progressing).await;
    let done = env
        .service
        .finish_campaigncall(cc.id, CampaigncallResult::Fail)
        .await
        .expect("finish")
        .expect("finished now");
    assert_eq!(done.result, CampaigncallResult::Fail);
}

#[tokio::test]
async fn finishing_an_unknown_campaigncall_does_nothing() {
    let mut m = Mocks::new();
    m.outdial.expect_set_target_status().times(0);
    let env = Env::new(m).await;
    let r = env
        .service
        .finish_campaigncall(Uuid::new_v4(), CampaigncallResult::Success)
        .await
        .expect("finish");
    assert!(r.is_none());
    assert!(env.events().is_empty());
}

#[tokio::test]
async fn campaigncall_delete_requires_done() {
    let mut m = Mocks::new();
    m.outdial
        .expect_set_target_status()
        .returning(|_, _| Ok(()));
    let env = Env::new(m).await;
    let c = env.stopped_campaign().await;
    let cc = env.insert_call(&c, CampaigncallStatus::Dialing).await;
    let err = env
        .service
        .delete_campaigncall(cc.id)
        .await
        .expect_err("not done");
    assert!(matches!(err, ServiceError::Precondition(_)), "{err:?}");

    env.service
        .finish_campaigncall(cc.id, CampaigncallResult::Fail)
        .await
        .expect("finish");
    let d = env
        .service
        .delete_campaigncall(cc.id)
        .await
        .expect("delete");
    assert!(d.tm_delete.is_some());
    assert_eq!(
        env.events(),
        vec!["campaigncall_updated", "campaigncall_deleted"]
    );
}

#[test]
fn hangup_reasons_map_to_results() {
    assert_eq!(hangup_result("normal"), CampaigncallResult::Success);
    for reason in [
        "failed", "busy", "cancel", "timeout", "noanswer", "dialout", "amd",
    ] {
        assert_eq!(hangup_result(reason), CampaigncallResult::Fail, "{reason}");
    }
    for unknown in ["", "weird", "NORMAL"] {
        assert_eq!(
            hangup_result(unknown),
            CampaigncallResult::Fail,
            "{unknown:?}"
        );
    }
    assert_eq!(hangup_result("normal").target_status(), TargetStatus::Done);
    assert_eq!(hangup_result("busy").target_status(), TargetStatus::Idle);
}

/// A finish whose target update fails: the compare-and-set on the campaigncall has already
/// won, so the hangup is handled (the campaigncall done, the `stopping` campaign stopped) and
/// the target write is left in the outbox row written with the finish; the repair's outbox step
/// writes it. (Before, the target was written first and a failure made the bus redeliver the
/// hangup; a racing finish could then leave the result and the target disagreeing.)
#[tokio::test]
async fn a_finish_whose_target_update_failed_is_completed_by_the_repair() {
    let mut m = Mocks::new();
    let mut seq = mockall::Sequence::new();
    m.outdial
        .expect_set_target_status()
        .withf(|_, st| *st == TargetStatus::Idle)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Err(timeout()));
    m.outdial
        .expect_set_target_status()
        .withf(|_, st| *st == TargetStatus::Idle)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    let env = Env::new(m).await;
    let mut c = campaign(Uuid::new_v4(), Uuid::nil(), Uuid::nil());
    c.status = CampaignStatus::Stopping; // stop requested; the chain already ended
    let c = env.insert_campaign(&c).await;
    let cc = env.insert_call(&c, CampaigncallStatus::Dialing).await;

    let subs = campaign_manager::events::Subscriptions::new(env.service.clone());
    let hangup = Call {
        id: cc.reference_id,
        status: "hangup".into(),
        hangup_reason: "busy".into(),
    };
    subs.call_hangup(hangup).await.expect("handled");
    let stored = env.service.campaigncall(cc.id).await.expect("read");
    assert_eq!(stored.status, CampaigncallStatus::Done);
    assert_eq!(stored.result, CampaigncallResult::Fail);
    assert_eq!(
        env.campaign(c.id).await.status,
        CampaignStatus::Stop,
        "the last call ended: the stopping campaign stops"
    );

    assert_eq!(
        env.service.settle_outbox(0).await,
        1,
        "the repair writes the target"
    );
    assert_eq!(env.service.settle_outbox(0).await, 0, "once");
    // (Drop also checks that the target was put back to idle by the repair.)
}
