//! The dial record's refusals (src/store/dials.rs) the repair relies on: a stale or late tick,
//! a campaign not running and a try taken record nothing; an abandoned try is freed, a placed
//! one stays taken.

use super::*;

#[tokio::test]
async fn abandoned_try_can_be_recorded_again() {
    let s = setup();
    let env = env_with(&s, Mocks::new()).await;
    let f = fence();
    let first = env.first_try(&s.campaign, f).await;
    // Finished without its try released (a crash between the two): step still `recorded`.
    env.finish(first.id, CampaigncallResult::Fail).await;
    assert_eq!(env.step(first.id).await, Some(DialStep::Recorded));

    let again = same_try(&first);
    match record(&env, &again, f).await {
        Recorded::Dial(stored) => assert_eq!(stored.id, again.id),
        other => panic!("abandoned try not freed: {other:?}"),
    }
    assert_eq!(env.step(first.id).await, None);
    assert_eq!(env.step(again.id).await, Some(DialStep::Recorded));
}

/// The repair postpones a campaigncall it read open (`check_later`) while the dial is abandoned
/// meanwhile (finished `not_placed`, its row deleted to free its try): no dial row comes back
/// (a `requested` one, as for a Go campaigncall, kept the try taken forever: the target was
/// never dialed again and its campaign never ended, seen once in
/// `dials::a_worker_stopped_past_its_lease_neither_dials_twice_nor_writes_late`).
#[tokio::test]
async fn a_dial_abandoned_while_the_repair_postpones_it_keeps_its_try_free() {
    let s = setup();
    let env = env_with(&s, Mocks::new()).await;
    let f = fence();
    let first = env.first_try(&s.campaign, f).await;
    env.set_step(first.id, DialStep::TargetClaimed).await;
    let read_open = env.call(first.id).await;
    env.finish(first.id, CampaigncallResult::Fail).await;
    env.ts
        .store
        .dials
        .release_try(first.id)
        .await
        .expect("release");
    env.ts
        .store
        .dials
        .check_later(&read_open, std::time::Duration::from_secs(30), true)
        .await
        .expect("postpone");
    assert_eq!(env.step(first.id).await, None, "the try is free");
    let again = same_try(&first);
    assert!(matches!(record(&env, &again, f).await, Recorded::Dial(_)));
}

#[tokio::test]
async fn done_try_whose_call_was_placed_stays_taken() {
    let s = setup();
    let env = env_with(&s, Mocks::new()).await;
    let f = fence();
    let first = env.first_try(&s.campaign, f).await;
    env.set_step(first.id, DialStep::Requested).await;
    env.finish(first.id, CampaigncallResult::Success).await;

    let again = same_try(&first);
    assert_eq!(record(&env, &again, f).await, Recorded::TryTaken);
    assert_eq!(env.step(first.id).await, Some(DialStep::Requested));
    assert!(!env.stored(again.id).await);
}

#[tokio::test]
async fn open_try_is_taken() {
    let s = setup();
    let env = env_with(&s, Mocks::new()).await;
    let f = fence();
    let first = env.first_try(&s.campaign, f).await;

    let again = same_try(&first);
    assert_eq!(record(&env, &again, f).await, Recorded::TryTaken);
    assert_eq!(env.step(again.id).await, None);
    assert!(
        !env.stored(again.id).await,
        "nothing written for a taken try"
    );
    assert_eq!(env.call(first.id).await.status, CampaigncallStatus::Dialing);
}

#[tokio::test]
async fn stale_fence_records_nothing() {
    let s = setup();
    let env = env_with(&s, Mocks::new()).await;
    let f = fence();
    env.first_try(&s.campaign, f).await;
    assert_eq!(env.fence_of(s.campaign.id).await, f.seq);

    // Another target, by a tick older than the one that dialed.
    let stale = support::records::campaigncall_of(&s.campaign, CampaigncallStatus::Dialing);
    let older = DialFence {
        seq: f.seq - 1,
        ..f
    };
    assert_eq!(record(&env, &stale, older).await, Recorded::Stale);
    assert_eq!(env.step(stale.id).await, None);
    // The same tick may dial several targets.
    let sibling = support::records::campaigncall_of(&s.campaign, CampaigncallStatus::Dialing);
    assert!(matches!(record(&env, &sibling, f).await, Recorded::Dial(_)));
    assert_eq!(env.fence_of(s.campaign.id).await, f.seq);
}

#[tokio::test]
async fn late_tick_records_nothing() {
    let s = setup();
    let env = env_with(&s, Mocks::new()).await;
    let cc = support::records::campaigncall_of(&s.campaign, CampaigncallStatus::Dialing);
    let late = DialFence {
        deadline: Utc::now() - ChronoDuration::seconds(1),
        ..fence()
    };
    assert_eq!(record(&env, &cc, late).await, Recorded::Late);
    assert_eq!(env.step(cc.id).await, None);
    assert_eq!(env.fence_of(s.campaign.id).await, 0);
}

#[tokio::test]
async fn campaign_not_running_records_nothing() {
    let mut s = setup();
    s.campaign.status = CampaignStatus::Stopping;
    s.campaign.execute = Execute::Stop;
    let env = env_with(&s, Mocks::new()).await;
    let cc = support::records::campaigncall_of(&s.campaign, CampaigncallStatus::Dialing);
    assert_eq!(record(&env, &cc, fence()).await, Recorded::NotRunning);

    // `run` but told to stop: refused too.
    let id = s.campaign.id;
    env.ts
        .store
        .campaigns
        .transition(id, &[CampaignStatus::Stopping], CampaignStatus::Run, None)
        .await
        .expect("run");
    assert_eq!(env.campaign(id).await.execute, Execute::Stop);
    assert_eq!(record(&env, &cc, fence()).await, Recorded::NotRunning);
    assert_eq!(env.step(cc.id).await, None);
    assert!(!env.stored(cc.id).await);
}
