//! A campaign's updates: omitted keys read as the platform means them, actions sent to the
//! flow with the queue join, the outdial claim moved with the resource info.

use super::*;

#[tokio::test]
async fn update_reads_omitted_keys_as_the_platform_means_them() {
    let env = Env::new(Mocks::new()).await;
    let c = env.stopped_campaign().await;
    assert!(!c.detail.is_empty() && c.service_level != 0);

    // api-manager omits empty values: name/detail/service_level omitted are ""/""/0;
    // end_handle and type omitted are kept.
    let body: CampaignUpdate =
        serde_json::from_value(json!({"name": "autumn sale"})).expect("body");
    let u = env
        .service
        .update_campaign(c.id, body)
        .await
        .expect("update");
    assert_eq!(u.name, "autumn sale");
    assert_eq!(u.detail, "");
    assert_eq!(u.service_level, 0);
    assert_eq!(u.kind, c.kind);
    assert_eq!(u.end_handle, c.end_handle);
    assert_eq!(u.actions, c.actions);
    assert_eq!(env.campaign(c.id).await, u);
    assert_eq!(env.events(), vec!["campaign_updated"]);

    let body: CampaignUpdate =
        serde_json::from_value(json!({"service_level": 5, "end_handle": "continue"}))
            .expect("body");
    let u = env
        .service
        .update_campaign(c.id, body)
        .await
        .expect("update");
    assert_eq!(u.name, "");
    assert_eq!(u.service_level, 5);
    assert_eq!(u.end_handle, EndHandle::Continue);

    for bad in [
        json!({"service_level": -3}),
        json!({"type": "", "service_level": 7}),
        json!({"end_handle": "", "service_level": 7}),
    ] {
        let body: CampaignUpdate = serde_json::from_value(bad).expect("body");
        let err = env
            .service
            .update_campaign(c.id, body)
            .await
            .expect_err("refused");
        assert!(matches!(err, ServiceError::Invalid(_)), "{err:?}");
    }
    let now = env.campaign(c.id).await;
    assert_eq!(
        (now.service_level, now.end_handle),
        (5, EndHandle::Continue)
    );
}

#[tokio::test]
async fn update_actions_sends_queue_join_to_the_flow_and_stores_raw_actions() {
    let customer = Uuid::new_v4();
    let mut c = campaign(customer, Uuid::nil(), Uuid::nil());
    c.queue_id = Uuid::new_v4();
    let (flow_id, queue_id) = (c.flow_id, c.queue_id);
    let new = vec![
        Action {
            kind: "talk".into(),
            ..Action::default()
        },
        answer(),
    ];
    let expected = {
        let mut a = new.clone();
        a.push(Action::queue_join(queue_id));
        a
    };
    let mut m = Mocks::new();
    m.flow
        .expect_update_flow_actions()
        .withf(move |id, actions: &[Action]| *id == flow_id && actions == expected.as_slice())
        .times(1)
        .returning(|_, _| Ok(()));
    let env = Env::new(m).await;
    let c = env.insert_campaign(&c).await;

    let u = env
        .service
        .update_actions(c.id, Some(new.clone()))
        .await
        .expect("update actions");
    assert_eq!(u.actions, Some(new));
    assert_eq!(env.events(), vec!["campaign_updated"]);
}

#[tokio::test]
async fn update_resource_info_moves_the_outdial_claim() {
    let customer = Uuid::new_v4();
    let mut c = campaign(customer, Uuid::nil(), Uuid::nil());
    let old = Outdial {
        campaign_id: c.id,
        ..outdial(customer)
    };
    let new = outdial(customer);
    c.outdial_id = old.id;
    let mut m = Mocks::new();
    let (old_owner, _) = stateful_outdial(&mut m, old);
    let (new_owner, _) = stateful_outdial(&mut m, new.clone());
    m.flow.expect_update_flow_actions().times(0);
    let env = Env::new(m).await;
    let c = env.insert_campaign(&c).await;

    let u = env
        .service
        .update_resource_info(
            c.id,
            ResourceInfo {
                outplan_id: Uuid::nil(),
                outdial_id: new.id,
                queue_id: Uuid::nil(),
                next_campaign_id: Uuid::nil(),
            },
        )
        .await
        .expect("resource info");
    assert_eq!(u.outdial_id, new.id);
    assert_eq!(*new_owner.lock().expect("lock"), c.id);
    assert!(old_owner.lock().expect("lock").is_nil());
    assert_eq!(env.events(), vec!["campaign_updated"]);
}
