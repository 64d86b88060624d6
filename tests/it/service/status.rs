//! Run and stop: the chain started (again), events published once, `stopping` while a call is
//! up, what cannot run refused.

use super::*;

fn outdial_owned_by(m: &mut Mocks, c: &Campaign, times: usize) {
    let od = Outdial {
        id: c.outdial_id,
        customer_id: c.customer_id,
        campaign_id: c.id,
        ..Outdial::default()
    };
    m.outdial
        .expect_get_outdial()
        .times(times)
        .returning(move |_| Ok(od.clone()));
}

/// A stored, stopped campaign whose outplan is stored; `configure` sets the mocks knowing
/// the campaign's ids.
async fn runnable_with(configure: impl FnOnce(&mut Mocks, &Campaign)) -> (Env, Campaign) {
    let customer = Uuid::new_v4();
    let plan = records::outplan(customer);
    let c = campaign(customer, plan.id, Uuid::new_v4());
    let mut m = Mocks::new();
    configure(&mut m, &c);
    let env = Env::new(m).await;
    env.ts.store.outplans.create(&plan).await.expect("outplan");
    let c = env.insert_campaign(&c).await;
    (env, c)
}

#[tokio::test]
async fn run_starts_the_campaign_and_its_chain() {
    let (env, c) = runnable_with(|m, c| outdial_owned_by(m, c, 1)).await;

    let u = env.service.update_status(c.id, "run").await.expect("run");
    assert_eq!(u.status, CampaignStatus::Run);
    assert_eq!(u.execute, Execute::Run);
    let row = env.campaign(c.id).await;
    assert_eq!(
        (row.status, row.execute),
        (CampaignStatus::Run, Execute::Run)
    );
    assert_eq!(env.events(), vec!["campaign_status_run"]);
    let payload = env.notifier.events.lock().expect("lock")[0].record_json();
    assert_eq!(payload["status"], json!("run"));
    assert_eq!(env.started(), vec![(c.id, Duration::from_secs(1))]);
    assert_eq!(env.metrics.campaign_status_run_total.get(), 1);
}

#[tokio::test]
async fn run_twice_publishes_once_and_ensures_the_chain_again() {
    let (env, c) = runnable_with(|m, c| outdial_owned_by(m, c, 1)).await;

    env.service.update_status(c.id, "run").await.expect("run");
    let again = env.service.update_status(c.id, "run").await.expect("run");
    assert_eq!(again.status, CampaignStatus::Run);
    assert_eq!(env.events(), vec!["campaign_status_run"]);
    assert_eq!(
        env.started(),
        vec![
            (c.id, Duration::from_secs(1)),
            (c.id, Duration::from_secs(1))
        ]
    );
    assert_eq!(env.metrics.campaign_status_run_total.get(), 1);
}

#[tokio::test]
async fn run_a_stopping_campaign_runs_it_again() {
    let (env, mut c) = runnable_with(|m, c| outdial_owned_by(m, c, 1)).await;
    env.ts
        .store
        .campaigns
        .transition(
            c.id,
            &[CampaignStatus::Stop],
            CampaignStatus::Stopping,
            Some(Execute::Run),
        )
        .await
        .expect("stopping");
    c = env.service.update_status(c.id, "run").await.expect("run");
    assert_eq!((c.status, c.execute), (CampaignStatus::Run, Execute::Run));
    assert_eq!(env.events(), vec!["campaign_status_run"]);
    assert_eq!(env.started().len(), 1);
}

#[tokio::test]
async fn run_without_outplan_or_outdial_is_invalid() {
    let env = Env::new(Mocks::new()).await;
    let c = env.stopped_campaign().await;
    let err = env
        .service
        .update_status(c.id, "run")
        .await
        .expect_err("no resources");
    assert!(matches!(err, ServiceError::Invalid(_)), "{err:?}");
    assert_eq!(env.campaign(c.id).await.status, CampaignStatus::Stop);
    assert!(env.events().is_empty());
    assert!(env.started().is_empty());
}

#[tokio::test]
async fn run_with_an_outdial_taken_by_another_campaign_is_invalid() {
    let (env, c) = runnable_with(|m, c| {
        let od = Outdial {
            id: c.outdial_id,
            customer_id: c.customer_id,
            campaign_id: Uuid::new_v4(),
            ..Outdial::default()
        };
        m.outdial
            .expect_get_outdial()
            .times(1)
            .returning(move |_| Ok(od.clone()));
    })
    .await;
    let err = env
        .service
        .update_status(c.id, "run")
        .await
        .expect_err("taken outdial");
    assert!(matches!(err, ServiceError::Invalid(_)), "{err:?}");
    let row = env.campaign(c.id).await;
    assert_eq!(
        (row.status, row.execute),
        (CampaignStatus::Stop, Execute::Stop)
    );
    assert!(env.started().is_empty());
}

#[tokio::test]
async fn unsupported_status_values_are_invalid() {
    let (env, c) = runnable_with(|_, _| {}).await;
    for status in ["stopping", "", "RUN"] {
        let err = env
            .service
            .update_status(c.id, status)
            .await
            .expect_err("unsupported");
        assert!(matches!(err, ServiceError::Invalid(_)), "{status}: {err:?}");
    }
    let err = env
        .service
        .update_status(Uuid::new_v4(), "stop")
        .await
        .expect_err("unknown campaign");
    assert!(matches!(err, ServiceError::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn stop_while_the_chain_runs_goes_stopping() {
    let (env, c) = runnable_with(|m, c| outdial_owned_by(m, c, 1)).await;
    env.service.update_status(c.id, "run").await.expect("run");

    let u = env.service.update_status(c.id, "stop").await.expect("stop");
    assert_eq!(u.status, CampaignStatus::Stopping);
    assert_eq!(u.execute, Execute::Run);
    assert_eq!(
        env.events(),
        vec!["campaign_status_run", "campaign_status_stopping"]
    );
    // Asking again changes nothing.
    let again = env.service.update_status(c.id, "stop").await.expect("stop");
    assert_eq!(again.status, CampaignStatus::Stopping);
    assert_eq!(env.events().len(), 2);
}

#[tokio::test]
async fn stop_without_chain_or_calls_stops_now() {
    let customer = Uuid::new_v4();
    let env = Env::new(Mocks::new()).await;
    let mut c = campaign(customer, Uuid::nil(), Uuid::nil());
    c.status = CampaignStatus::Run;
    let c = env.insert_campaign(&c).await;

    let u = env.service.update_status(c.id, "stop").await.expect("stop");
    assert_eq!(u.status, CampaignStatus::Stop);
    assert_eq!(env.events(), vec!["campaign_status_stop"]);
    assert_eq!(env.metrics.campaign_status_stop_total.get(), 1);
    // Stopping a stopped campaign is a no-op.
    env.service.update_status(c.id, "stop").await.expect("stop");
    assert_eq!(env.events().len(), 1);
}

#[tokio::test]
async fn stopping_campaign_stops_when_its_last_call_ends() {
    let customer = Uuid::new_v4();
    let mut m = Mocks::new();
    m.outdial
        .expect_set_target_status()
        .times(1)
        .returning(|_, _| Ok(()));
    let env = Env::new(m).await;
    let mut c = campaign(customer, Uuid::nil(), Uuid::nil());
    c.status = CampaignStatus::Run;
    let c = env.insert_campaign(&c).await;
    let cc = env.insert_call(&c, CampaigncallStatus::Progressing).await;

    let u = env.service.update_status(c.id, "stop").await.expect("stop");
    assert_eq!(u.status, CampaignStatus::Stopping, "a call is in progress");

    env.service
        .finish_campaigncall(cc.id, CampaigncallResult::Success)
        .await
        .expect("finish");
    env.service
        .campaigncall_ended(c.id)
        .await
        .expect("call ended");
    assert_eq!(env.campaign(c.id).await.status, CampaignStatus::Stop);
    assert_eq!(
        env.events(),
        vec![
            "campaign_status_stopping",
            "campaigncall_updated",
            "campaign_status_stop"
        ]
    );
}
