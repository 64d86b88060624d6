//! The campaigns the repair completes: `stopping` ones once nothing is up, `run` ones with
//! `execute = stop` once settled, and none changed just now.

use super::*;

#[tokio::test]
async fn stopping_campaign_stops_when_its_last_call_is_repaired() {
    let s = setup();
    let p = planned();
    let mut m = Mocks::new();
    expect_get_call(&mut m, p.reference, 1, || {
        Ok(Some(call_in("hangup", "normal")))
    });
    expect_target(&mut m, p.target, TargetStatus::Done);
    let env = env_with(&s, m).await;
    let cc = env
        .dial_planned(&s.campaign, &p, ReferenceType::Call, OVERDUE_SECS)
        .await;
    let id = s.campaign.id;
    env.tell_to_stop(id).await;
    env.set_stopping(id).await;

    let r = env.pass().await;
    assert_eq!((r.checked, r.finished), (1, 1));
    assert_eq!(env.call(cc.id).await.status, CampaigncallStatus::Done);
    let c = env.campaign(id).await;
    assert_eq!((c.status, c.execute), (CampaignStatus::Stop, Execute::Stop));
    assert!(env.events().contains(&"campaign_status_stop".to_string()));
}

#[tokio::test]
async fn stopping_campaign_with_nothing_up_is_stopped() {
    let mut s = setup();
    s.campaign.status = CampaignStatus::Stopping;
    s.campaign.execute = Execute::Stop;
    let env = env_with(&s, Mocks::new()).await;
    let id = s.campaign.id;
    env.age_campaign(id, 60).await;

    let r = env.pass().await;
    assert_eq!((r.checked, r.campaigns), (0, 1));
    assert_eq!(env.campaign(id).await.status, CampaignStatus::Stop);
    assert_eq!(env.repaired("stopping_stopped"), 1);
    assert_eq!(env.events(), vec!["campaign_status_stop"]);
}

#[tokio::test]
async fn stopping_campaign_with_a_call_up_stays_stopping() {
    let s = setup();
    let env = env_with(&s, Mocks::new()).await;
    let id = s.campaign.id;
    // A fresh dial, not overdue: nothing to ask, and it keeps the campaign stopping.
    let cc = env.dial(&s.campaign, ReferenceType::Call).await;
    env.ts
        .store
        .campaigns
        .transition(
            id,
            &[CampaignStatus::Run],
            CampaignStatus::Stopping,
            Some(Execute::Stop),
        )
        .await
        .expect("stopping");
    env.age_campaign(id, 60).await;

    let r = env.pass().await;
    assert_eq!((r.checked, r.campaigns), (0, 0));
    assert_eq!(env.campaign(id).await.status, CampaignStatus::Stopping);
    assert_eq!(env.call(cc.id).await.status, CampaigncallStatus::Dialing);
    assert_eq!(env.repaired("stopping_stopped"), 0);
}

#[tokio::test]
async fn run_campaign_without_execution_is_stopped_once_settled() {
    let mut s = setup();
    s.campaign.execute = Execute::Stop;
    let env = env_with(&s, Mocks::new()).await;
    let id = s.campaign.id;
    env.age_campaign(id, 60).await;

    let r = env.pass().await;
    assert_eq!(r.campaigns, 1);
    let c = env.campaign(id).await;
    assert_eq!((c.status, c.execute), (CampaignStatus::Stop, Execute::Stop));
    assert_eq!(env.repaired("run_without_execution"), 1);
    assert_eq!(env.events(), vec!["campaign_status_stop"]);
}

#[tokio::test]
async fn run_campaign_just_changed_is_left_alone() {
    let s = setup();
    let env = env_with(&s, Mocks::new()).await;
    let id = s.campaign.id;
    // `execute = stop` written just now: its `end_execution` may still be running.
    env.tell_to_stop(id).await;

    let r = env.pass().await;
    assert_eq!((r.campaigns, r.ran), (0, true));
    let c = env.campaign(id).await;
    assert_eq!((c.status, c.execute), (CampaignStatus::Run, Execute::Stop));
    assert_eq!(env.repaired("run_without_execution"), 0);
    assert!(env.events().is_empty());
}
