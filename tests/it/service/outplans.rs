//! Outplans: negative values refused, every change published, one used by a running campaign
//! kept.

use super::*;

fn outplan_req(customer: Uuid) -> OutplanCreate {
    OutplanCreate {
        customer_id: customer,
        name: "plan".into(),
        detail: "detail".into(),
        dials: OutplanDials {
            source: Some(Address::tel("+15551230000")),
            dial_timeout: 30000,
            try_interval: 60000,
            max_try_count_0: 3,
            max_try_count_1: 2,
            max_try_count_2: 1,
            max_try_count_3: 0,
            max_try_count_4: 0,
            ..OutplanDials::default()
        },
    }
}

#[tokio::test]
async fn outplan_create_rejects_negative_values() {
    let env = Env::new(Mocks::new()).await;
    let customer = Uuid::new_v4();
    let cases: Vec<fn(&mut OutplanDials)> = vec![
        |d| d.dial_timeout = -1,
        |d| d.try_interval = -1,
        |d| d.max_try_count_0 = -1,
        |d| d.max_try_count_1 = -1,
        |d| d.max_try_count_2 = -1,
        |d| d.max_try_count_3 = -1,
        |d| d.max_try_count_4 = -1,
    ];
    for (i, set) in cases.into_iter().enumerate() {
        let mut req = outplan_req(customer);
        set(&mut req.dials);
        let err = env.service.create_outplan(req).await.expect_err("negative");
        assert!(matches!(err, ServiceError::Invalid(_)), "case {i}: {err:?}");
    }
    let err = env
        .service
        .create_outplan(outplan_req(Uuid::nil()))
        .await
        .expect_err("no customer");
    assert!(matches!(err, ServiceError::Invalid(_)), "{err:?}");
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM campaign_outplans")
        .fetch_one(&env.ts.db.pool)
        .await
        .expect("count");
    assert_eq!(n, 0);
    assert!(env.events().is_empty());
}

#[tokio::test]
async fn outplan_changes_publish_events() {
    let env = Env::new(Mocks::new()).await;
    let customer = Uuid::new_v4();
    let o = env
        .service
        .create_outplan(outplan_req(customer))
        .await
        .expect("create");
    assert_eq!(o.max_try_counts(), [3, 2, 1, 0, 0]);
    assert_eq!(env.events(), vec!["outplan_created"]);

    let body: OutplanUpdate = serde_json::from_value(json!({"name": "renamed"})).expect("body");
    let u = env
        .service
        .update_outplan(o.id, body)
        .await
        .expect("update");
    assert_eq!(u.name, "renamed");
    assert_eq!(u.detail, "detail", "partial body keeps detail");

    let mut dials = outplan_req(customer).dials;
    dials.try_interval = 1000;
    dials.source = None;
    let u = env
        .service
        .update_outplan_dials(o.id, dials)
        .await
        .expect("dials");
    assert_eq!(u.try_interval, 1000);
    assert_eq!(u.source, None);

    let mut bad = outplan_req(customer).dials;
    bad.max_try_count_2 = -2;
    let err = env
        .service
        .update_outplan_dials(o.id, bad)
        .await
        .expect_err("negative");
    assert!(matches!(err, ServiceError::Invalid(_)), "{err:?}");

    let d = env.service.delete_outplan(o.id).await.expect("delete");
    assert!(d.tm_delete.is_some());
    assert_eq!(
        env.events(),
        vec![
            "outplan_created",
            "outplan_updated",
            "outplan_updated",
            "outplan_deleted"
        ]
    );
    let payload = env.notifier.events.lock().expect("lock")[0].record_json();
    assert_eq!(payload["id"], json!(o.id.to_string()));
    let err = env.service.outplan(o.id).await.expect_err("deleted");
    assert!(matches!(err, ServiceError::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn outplan_used_by_a_running_campaign_cannot_be_deleted() {
    let env = Env::new(Mocks::new()).await;
    let customer = Uuid::new_v4();
    let o = env
        .service
        .create_outplan(outplan_req(customer))
        .await
        .expect("create");
    let mut c = campaign(customer, o.id, Uuid::nil());
    c.status = CampaignStatus::Run;
    env.insert_campaign(&c).await;

    let err = env.service.delete_outplan(o.id).await.expect_err("in use");
    assert!(matches!(err, ServiceError::Precondition(_)), "{err:?}");
    assert!(env.service.outplan(o.id).await.is_ok());
}
