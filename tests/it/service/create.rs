//! A campaign's create: the flow gets the queue join and the stored actions do not, the
//! outdial is claimed, and each failing step undoes the ones before (the flow deleted, the
//! outdial released), a claim taken over meanwhile left alone.

use super::*;

#[tokio::test]
async fn create_with_queue_adds_queue_join_to_the_flow_only() {
    let customer = Uuid::new_v4();
    let od = outdial(customer);
    let q = queue(customer);
    let flow_id = Uuid::new_v4();
    let mut m = Mocks::new();
    let (owner, _) = stateful_outdial(&mut m, od.clone());
    let queue_id = q.id;
    m.queue
        .expect_get_queue()
        .withf(move |id| *id == queue_id)
        .times(1)
        .returning(move |_| Ok(q.clone()));
    m.flow
        .expect_create_flow()
        .withf(move |cust, actions: &[Action]| {
            *cust == customer && actions == [answer(), Action::queue_join(queue_id)]
        })
        .times(1)
        .returning(move |_, _| {
            Ok(Flow {
                id: flow_id,
                ..Flow::default()
            })
        });
    m.flow.expect_delete_flow().times(0);
    let env = Env::new(m).await;
    let plan = env.insert_outplan_of(customer).await;

    let req = CampaignCreate {
        outplan_id: plan.id,
        outdial_id: od.id,
        queue_id,
        ..create_req(customer)
    };
    let c = env.service.create_campaign(req).await.expect("create");

    assert!(!c.id.is_nil());
    assert_eq!(c.flow_id, flow_id);
    assert_eq!(c.status, CampaignStatus::Stop);
    assert_eq!(c.execute, Execute::Stop);
    assert_eq!(c.end_handle, EndHandle::Stop, "default end handle");
    assert_eq!(c.actions, Some(vec![answer()]), "stored without queue_join");
    assert_eq!(c.queue_id, queue_id);
    assert_eq!(env.campaign(c.id).await, c);
    assert_eq!(*owner.lock().expect("lock"), c.id, "outdial claimed");
    assert_eq!(env.events(), vec!["campaign_created"]);
    assert_eq!(env.metrics.campaign_create_total.get(), 1);
}

#[tokio::test]
async fn create_without_queue_sends_the_actions_unchanged() {
    let customer = Uuid::new_v4();
    let mut m = Mocks::new();
    m.flow
        .expect_create_flow()
        .withf(|_, actions: &[Action]| actions == [answer()])
        .times(1)
        .returning(|_, _| {
            Ok(Flow {
                id: Uuid::new_v4(),
                ..Flow::default()
            })
        });
    let env = Env::new(m).await;
    let given = Uuid::new_v4();
    let c = env
        .service
        .create_campaign(CampaignCreate {
            id: given,
            end_handle: Some(EndHandle::Continue),
            ..create_req(customer)
        })
        .await
        .expect("create");
    assert_eq!(c.id, given);
    assert_eq!(c.end_handle, EndHandle::Continue);
    assert_eq!(c.kind, CampaignType::Call);
    assert_eq!(c.name, "spring sale");
    assert_eq!(c.service_level, 100);
}

#[tokio::test]
async fn create_with_an_existing_id_is_refused_before_any_flow() {
    let customer = Uuid::new_v4();
    let mut m = Mocks::new();
    m.flow.expect_create_flow().times(0);
    m.flow.expect_delete_flow().times(0);
    let env = Env::new(m).await;
    let existing = env
        .insert_campaign(&campaign(customer, Uuid::nil(), Uuid::nil()))
        .await;

    let err = env
        .service
        .create_campaign(CampaignCreate {
            id: existing.id,
            ..create_req(customer)
        })
        .await
        .expect_err("duplicate id");
    assert!(matches!(err, ServiceError::AlreadyExists(_)), "{err:?}");
    assert_eq!(env.campaign(existing.id).await, existing, "untouched");
    assert!(env.events().is_empty());
}

#[tokio::test]
async fn create_that_fails_in_the_store_deletes_the_flow_and_releases_the_outdial() {
    let customer = Uuid::new_v4();
    let od = outdial(customer);
    let flow_id = Uuid::new_v4();
    let mut m = Mocks::new();
    let (owner, sets) = stateful_outdial(&mut m, od.clone());
    flow_created(&mut m, flow_id);
    flow_deleted(&mut m, flow_id);
    let env = Env::new(m).await;
    // Make the INSERT (and only the INSERT) fail.
    sqlx::query("ALTER TABLE campaign_campaigns ADD CONSTRAINT no_boom CHECK (name <> 'boom')")
        .execute(&env.ts.db.pool)
        .await
        .expect("add check constraint");

    let id = Uuid::new_v4();
    let err = env
        .service
        .create_campaign(CampaignCreate {
            id,
            name: "boom".into(),
            outdial_id: od.id,
            ..create_req(customer)
        })
        .await
        .expect_err("insert fails");
    assert!(matches!(err, ServiceError::Store(_)), "{err:?}");
    assert!(env.row(id).await.is_none());
    assert!(owner.lock().expect("lock").is_nil(), "outdial released");
    assert_eq!(sets.lock().expect("lock").as_slice(), &[id, Uuid::nil()]);
    assert!(env.events().is_empty());
    assert_eq!(env.metrics.campaign_create_total.get(), 0);
}

#[tokio::test]
async fn create_whose_outdial_claim_fails_deletes_the_flow() {
    let customer = Uuid::new_v4();
    let od = outdial(customer);
    let flow_id = Uuid::new_v4();
    let mut m = Mocks::new();
    let od_ret = od.clone();
    m.outdial
        .expect_get_outdial()
        .returning(move |_| Ok(od_ret.clone()));
    m.outdial
        .expect_set_outdial_campaign()
        .times(1)
        .returning(|_, _| Err(timeout()));
    flow_created(&mut m, flow_id);
    flow_deleted(&mut m, flow_id);
    let env = Env::new(m).await;

    let id = Uuid::new_v4();
    let err = env
        .service
        .create_campaign(CampaignCreate {
            id,
            outdial_id: od.id,
            ..create_req(customer)
        })
        .await
        .expect_err("outdial claim fails");
    assert!(matches!(err, ServiceError::Peer(_)), "{err:?}");
    assert!(env.row(id).await.is_none());
    assert!(env.events().is_empty());
}

/// outdial-manager has no conditional claim: a campaign that claims an outdial reads it
/// back, and when another campaign's claim landed right after its own it refuses, without
/// clearing the other campaign's claim and without writing its row.
#[tokio::test]
async fn a_claim_taken_over_meanwhile_is_refused_and_left_alone() {
    let customer = Uuid::new_v4();
    let od = outdial(customer);
    let other = Uuid::new_v4();
    let mut m = Mocks::new();
    let owner = Arc::new(Mutex::new(Uuid::nil()));
    let sets = Arc::new(Mutex::new(Vec::new()));
    let (get_owner, set_owner, set_log) = (owner.clone(), owner.clone(), sets.clone());
    let od_ret = od.clone();
    m.outdial.expect_get_outdial().returning(move |_| {
        let mut o = od_ret.clone();
        o.campaign_id = *get_owner.lock().expect("lock");
        Ok(o)
    });
    m.outdial
        .expect_set_outdial_campaign()
        .returning(move |_, campaign| {
            set_log.lock().expect("lock").push(campaign);
            // Another campaign's claim arrives right after ours.
            *set_owner.lock().expect("lock") = if campaign.is_nil() { campaign } else { other };
            Ok(())
        });
    m.flow.expect_update_flow_actions().times(0);
    let env = Env::new(m).await;
    let c = env
        .insert_campaign(&campaign(customer, Uuid::nil(), Uuid::nil()))
        .await;

    let err = env
        .service
        .update_resource_info(
            c.id,
            ResourceInfo {
                outdial_id: od.id,
                ..ResourceInfo::default()
            },
        )
        .await
        .expect_err("taken over");
    assert!(
        matches!(&err, ServiceError::Invalid(m) if m.contains("another campaign")),
        "{err:?}"
    );
    assert_eq!(
        sets.lock().expect("lock").as_slice(),
        &[c.id],
        "no release of the other's claim"
    );
    assert_eq!(*owner.lock().expect("lock"), other);
    assert_eq!(env.campaign(c.id).await.outdial_id, Uuid::nil());
    assert!(env.events().is_empty());
}
