//! Fencing of a tick's dial: a stale tick (an older chain incarnation) or one past its deadline
//! records nothing and asks no peer, one past its local deadline gives the try back before the
//! claim, one try is recorded once whatever the ticks, and a stop or a `run` landing mid-tick
//! is never undone.

use super::*;

/// Mocks that accept any number of successful call dials of whatever is offered.
fn accepting_dials(m: &mut Mocks) {
    m.outdial
        .expect_set_target_progressing()
        .returning(|_, _| Ok(()));
    m.call.expect_create_call().returning(|_| Ok(()));
}

#[tokio::test]
async fn a_stale_tick_records_no_dial_and_asks_no_peer() {
    // A tick of a re-seeded chain's old incarnation (lower sequence number) wakes up after the
    // new incarnation dialed: MySQL refuses its dial, so it neither claims nor calls.
    let s = setup(CampaignType::Call);
    let mut m = Mocks::new();
    let (first, second) = (target(), target());
    let offers = Arc::new(Mutex::new(vec![second, first]));
    m.outdial
        .expect_available_targets()
        .times(2)
        .returning(move |_, _, _| Ok(vec![offers.lock().expect("lock").pop().expect("offer")]));
    m.outdial
        .expect_set_target_progressing()
        .times(1)
        .returning(|_, _| Ok(()));
    m.call.expect_create_call().times(1).returning(|_| Ok(()));
    let env = env_with(&s, m).await;

    let stale = fresh_fence();
    let fresh = Fence {
        seq: stale.seq + 1_000,
        ..stale
    };
    assert_eq!(
        env.ticker.tick(s.campaign.id, &fresh).await,
        (AFTER_DIAL, Outcome::Dialed)
    );
    assert_eq!(
        env.ticker.tick(s.campaign.id, &stale).await,
        (WAIT, Outcome::Waiting("stale_tick"))
    );
    assert_eq!(env.calls_of(s.campaign.id).await.len(), 1);
    assert_eq!(
        env.ts
            .store
            .dials
            .fence(s.campaign.id)
            .await
            .expect("fence"),
        fresh.seq
    );
    assert_eq!(
        env.metrics
            .dial_refused_total
            .with_label_values(&["stale_tick"])
            .get(),
        1
    );
}

#[tokio::test]
async fn a_tick_past_its_deadline_records_no_dial() {
    let s = setup(CampaignType::Call);
    let mut m = Mocks::new();
    offer(&mut m, s.campaign.outdial_id, target(), 1);
    m.outdial.expect_set_target_progressing().times(0);
    m.call.expect_create_call().times(0);
    let env = env_with(&s, m).await;

    let late = Fence {
        deadline: Utc::now() - ChronoDuration::seconds(1),
        ..fresh_fence()
    };
    assert_eq!(
        env.ticker.tick(s.campaign.id, &late).await,
        (WAIT, Outcome::Waiting("late_tick"))
    );
    assert!(env.calls_of(s.campaign.id).await.is_empty());
}

#[tokio::test]
async fn a_tick_whose_local_deadline_passed_after_recording_abandons_before_the_claim() {
    // MySQL's deadline still allowed the record, but the process stalled past its own
    // deadline: it must not claim or call, and it gives the try back.
    let s = setup(CampaignType::Call);
    let mut m = Mocks::new();
    let t = target();
    let target_id = t.id;
    offer(&mut m, s.campaign.outdial_id, t, 1);
    m.outdial.expect_set_target_progressing().times(0);
    m.call.expect_create_call().times(0);
    m.outdial
        .expect_set_target_status()
        .withf(move |id, st| *id == target_id && *st == TargetStatus::Idle)
        .times(1)
        .returning(|_, _| Ok(()));
    let env = env_with(&s, m).await;

    let expired_locally = Fence {
        local_deadline: std::time::Instant::now(),
        ..fresh_fence()
    };
    assert_eq!(
        env.ticker.tick(s.campaign.id, &expired_locally).await,
        (WAIT, Outcome::Waiting("late_tick"))
    );
    let calls = env.calls_of(s.campaign.id).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].status, calls[0].result),
        (CampaigncallStatus::Done, CampaigncallResult::Fail)
    );
}

#[tokio::test]
async fn one_try_is_recorded_once_whatever_the_ticks() {
    // Two ticks (say a stale one and a fresh one, both inside their fence) read the same
    // snapshot of a target: the second record of (target, destination, try) is refused by the
    // database, and the tick looks at the next target instead.
    let s = setup(CampaignType::Call);
    let mut m = Mocks::new();
    let same = target();
    let other = target();
    let other_id = other.id;
    let rounds = Arc::new(Mutex::new(vec![
        vec![same.clone(), other.clone()],
        vec![same.clone()],
    ]));
    m.outdial
        .expect_available_targets()
        .times(2)
        .returning(move |_, _, _| Ok(rounds.lock().expect("lock").pop().expect("round")));
    accepting_dials(&mut m);
    let env = env_with(&s, m).await;

    let fence = fresh_fence();
    assert_eq!(
        env.ticker.tick(s.campaign.id, &fence).await.1,
        Outcome::Dialed
    );
    assert_eq!(
        env.ticker.tick(s.campaign.id, &fence).await.1,
        Outcome::Dialed
    );
    let calls = env.calls_of(s.campaign.id).await;
    assert_eq!(calls.len(), 2);
    let mut targets: Vec<Uuid> = calls.iter().map(|c| c.outdial_target_id).collect();
    targets.sort();
    let mut want = vec![same.id, other_id];
    want.sort();
    assert_eq!(targets, want, "the same try was not recorded twice");
}

#[tokio::test]
async fn a_target_inside_its_retry_interval_does_not_hold_back_a_never_tried_one() {
    // docs/go-differences.md item 12: the outdial orders by tm_update, so a recently tried target A comes
    // before a never-tried B. The tick asks for a batch and dials B.
    let s = setup(CampaignType::Call);
    let mut a = target();
    a.destination_1 = Some(Address::tel("+15550002000"));
    a.try_count_0 = 1;
    a.tm_create = Some(Utc::now() - ChronoDuration::hours(1));
    a.tm_update = Some(Utc::now() - ChronoDuration::seconds(5));
    let b = target();
    let b_id = b.id;
    let mut m = Mocks::new();
    m.outdial
        .expect_available_targets()
        .withf(|_, _, limit| *limit == DEFAULT_TARGET_BATCH)
        .times(1)
        .returning(move |_, _, _| Ok(vec![a.clone(), b.clone()]));
    m.outdial
        .expect_set_target_progressing()
        .withf(move |id, index| *id == b_id && *index == 0)
        .times(1)
        .returning(|_, _| Ok(()));
    m.call.expect_create_call().times(1).returning(|_| Ok(()));
    let env = env_with(&s, m).await;

    assert_eq!(env.tick(s.campaign.id).await, (AFTER_DIAL, Outcome::Dialed));
    let calls = env.calls_of(s.campaign.id).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].outdial_target_id, b_id);
}

#[tokio::test]
async fn a_stopped_campaign_records_no_dial_even_if_the_tick_read_run() {
    // The stop lands between the tick's read and its record: the record transaction sees it.
    let s = setup(CampaignType::Call);
    let mut m = Mocks::new();
    let campaign_id = s.campaign.id;
    let db_url: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let url_in = db_url.clone();
    let t = target();
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(move |_, _, _| {
            // "Meanwhile" a stop request is served, by another connection.
            let url = url_in.lock().expect("lock").clone().expect("url");
            let id = campaign_id;
            std::thread::spawn(move || {
                let rt = tokio::runtime::Runtime::new().expect("runtime");
                rt.block_on(async {
                    let pool = sqlx::MySqlPool::connect(&url).await.expect("connect");
                    sqlx::query(
                        "UPDATE campaign_campaigns SET status = 'stopping', execute = 'stop' WHERE id = ?",
                    )
                    .bind(id.as_bytes().to_vec())
                    .execute(&pool)
                    .await
                    .expect("stop");
                    pool.close().await;
                });
            })
            .join()
            .expect("stopper");
            Ok(vec![t.clone()])
        });
    m.outdial.expect_set_target_progressing().times(0);
    m.call.expect_create_call().times(0);
    let env = env_with(&s, m).await;
    *db_url.lock().expect("lock") = Some(env.ts.db.url.clone());

    assert_eq!(
        env.tick(s.campaign.id).await,
        (WAIT, Outcome::Waiting("not_running"))
    );
    assert!(env.calls_of(s.campaign.id).await.is_empty());
}

#[tokio::test]
async fn a_tick_that_read_stopping_cannot_undo_a_run_that_landed_meanwhile() {
    // The tick read `stopping`; before it ends the execution, `PUT status=run` lands. Ending
    // the execution is conditional on what the tick saw, so the campaign stays running.
    let s = setup(CampaignType::Call);
    let env = env_with(&s, Mocks::new()).await;
    let id = s.campaign.id;
    env.ts
        .store
        .campaigns
        .transition(id, &[CampaignStatus::Run], CampaignStatus::Stopping, None)
        .await
        .expect("stopping");
    // What the tick read:
    let seen = env.campaign(id).await;
    assert_eq!(
        (seen.status, seen.execute),
        (CampaignStatus::Stopping, Execute::Run)
    );
    // Meanwhile the user runs it again.
    env.ts
        .store
        .campaigns
        .transition(
            id,
            &[CampaignStatus::Stopping],
            CampaignStatus::Run,
            Some(Execute::Run),
        )
        .await
        .expect("run");
    let ended = env
        .ticker
        .service()
        .end_execution_seen(id, seen.status, seen.execute)
        .await
        .expect("end");
    assert!(!ended);
    let c = env.campaign(id).await;
    assert_eq!((c.status, c.execute), (CampaignStatus::Run, Execute::Run));
    // Without the race it does end.
    env.ts
        .store
        .campaigns
        .transition(id, &[CampaignStatus::Run], CampaignStatus::Stopping, None)
        .await
        .expect("stopping");
    assert!(
        env.ticker
            .service()
            .end_execution_seen(id, CampaignStatus::Stopping, Execute::Run)
            .await
            .expect("end")
    );
    let c = env.campaign(id).await;
    assert_eq!((c.status, c.execute), (CampaignStatus::Stop, Execute::Stop));
}
