//! Sequences: an exhausted list starts the next campaign only when this run dialed, and never
//! one running, deleted or of another customer; and the tick record every tick leaves for the
//! live stats.

use super::*;

/// The next campaign of `s.campaign`: stopped, same customer and outplan, its own outdial
/// (outdial-manager answers for it, free); `s.campaign` points at it.
fn with_next(s: &mut Setup, m: &mut Mocks) -> Campaign {
    let mut next = campaign(s.campaign.customer_id, s.outplan.id, CampaignType::Call);
    next.status = CampaignStatus::Stop;
    next.execute = Execute::Stop;
    s.campaign.next_campaign_id = next.id;
    let (outdial_id, customer_id) = (next.outdial_id, next.customer_id);
    m.outdial
        .expect_get_outdial()
        .withf(move |id| *id == outdial_id)
        .returning(move |id| {
            Ok(Outdial {
                id,
                customer_id,
                ..Outdial::default()
            })
        });
    next
}

/// Outdial offers no target (any number of times).
fn exhausted(m: &mut Mocks) {
    m.outdial
        .expect_available_targets()
        .returning(|_, _, _| Ok(vec![]));
}

#[tokio::test]
async fn exhausted_list_starts_the_next_campaign_when_this_run_dialed() {
    let mut s = setup(CampaignType::Call);
    let mut m = Mocks::new();
    exhausted(&mut m);
    let next = with_next(&mut s, &mut m);
    let env = env_with(&s, m).await;
    env.insert_campaign(&next).await;
    env.insert_call(&s.campaign, CampaigncallStatus::Done).await;

    assert_eq!(
        env.tick(s.campaign.id).await,
        (Next::Stop, Outcome::Ended("list_exhausted"))
    );
    let a = env.campaign(s.campaign.id).await;
    assert_eq!((a.status, a.execute), (CampaignStatus::Stop, Execute::Stop));
    let b = env.campaign(next.id).await;
    assert_eq!((b.status, b.execute), (CampaignStatus::Run, Execute::Run));
    assert_eq!(
        env.events(),
        vec![
            "campaign_status_stop",
            "campaign_status_run",
            "campaign_updated",
            "campaign_updated"
        ]
    );
    // The run start of B is recorded, so B's own end is judged on B's dials only.
    let run = env.ts.store.stats.run_started(next.id).await.expect("read");
    assert!(run.is_some());
}

#[tokio::test]
async fn exhausted_list_without_a_dial_in_this_run_starts_nothing() {
    let mut s = setup(CampaignType::Call);
    let mut m = Mocks::new();
    exhausted(&mut m);
    let next = with_next(&mut s, &mut m);
    let env = env_with(&s, m).await;
    env.insert_campaign(&next).await;
    // A dial from an earlier run does not count.
    env.insert_call(&s.campaign, CampaigncallStatus::Done).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    env.ts
        .store
        .stats
        .record_run(s.campaign.id)
        .await
        .expect("record run");

    assert_eq!(
        env.tick(s.campaign.id).await,
        (Next::Stop, Outcome::Ended("list_exhausted"))
    );
    assert_eq!(env.campaign(next.id).await.status, CampaignStatus::Stop);
    assert_eq!(env.events(), vec!["campaign_status_stop"]);
}

#[tokio::test]
async fn next_campaign_running_deleted_or_of_another_customer_is_not_started() {
    for case in ["running", "deleted", "other_customer"] {
        let mut s = setup(CampaignType::Call);
        let mut m = Mocks::new();
        exhausted(&mut m);
        let mut next = with_next(&mut s, &mut m);
        match case {
            "running" => {
                next.status = CampaignStatus::Run;
                next.execute = Execute::Run;
            }
            "other_customer" => next.customer_id = Uuid::new_v4(),
            _ => {}
        }
        let env = env_with(&s, m).await;
        env.insert_campaign(&next).await;
        if case == "deleted" {
            env.ts
                .store
                .campaigns
                .delete(next.id)
                .await
                .expect("delete next");
        }
        env.insert_call(&s.campaign, CampaigncallStatus::Done).await;

        assert_eq!(
            env.tick(s.campaign.id).await,
            (Next::Stop, Outcome::Ended("list_exhausted")),
            "{case}"
        );
        let b = env.campaign(next.id).await;
        assert_eq!(b.status, next.status, "{case}: next campaign untouched");
        assert_eq!(b.execute, next.execute, "{case}");
        assert_eq!(env.events(), vec!["campaign_status_stop"], "{case}");
    }
}

#[tokio::test]
async fn every_tick_records_its_outcome_for_the_stats() {
    let mut s = setup(CampaignType::Call);
    s.campaign.end_handle = EndHandle::Continue;
    let mut m = Mocks::new();
    exhausted(&mut m);
    let env = env_with(&s, m).await;
    let before = Utc::now();
    assert_eq!(
        env.tick(s.campaign.id).await,
        (WAIT, Outcome::Waiting("list_empty"))
    );
    let t = env
        .ts
        .store
        .stats
        .last_tick(s.campaign.id)
        .await
        .expect("tick recorded");
    assert_eq!(t.outcome, "waiting");
    assert_eq!(t.waiting_reason.as_deref(), Some("list_empty"));
    let due = t.next_tick_at.expect("next tick due");
    assert!(
        due >= before + ChronoDuration::seconds(4),
        "{due} vs {before}"
    );
    let stats = env
        .ticker
        .service()
        .campaign_stats(s.campaign.id)
        .await
        .expect("stats");
    assert_eq!(stats.waiting_reason.as_deref(), Some("list_empty"));
    assert_eq!(stats.next_tick_at, Some(due));
}
