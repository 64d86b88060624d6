//! A campaign's delete: refused unless stopped; its flow deleted and outdial released, and a
//! flow-manager failure survived and counted by reason.

use super::*;

#[tokio::test]
async fn delete_of_a_campaign_that_is_not_stopped_is_a_precondition_failure() {
    let mut m = Mocks::new();
    m.flow.expect_delete_flow().times(0);
    let env = Env::new(m).await;
    for status in [CampaignStatus::Run, CampaignStatus::Stopping] {
        let mut c = campaign(Uuid::new_v4(), Uuid::nil(), Uuid::nil());
        c.status = status;
        let c = env.insert_campaign(&c).await;
        let err = env
            .service
            .delete_campaign(c.id)
            .await
            .expect_err("not stopped");
        let typed = err.to_voipbin();
        assert_eq!(
            (
                typed.status.as_str(),
                typed.reason.as_str(),
                typed.message.as_str(),
                typed.status_code()
            ),
            (
                "FAILED_PRECONDITION",
                "CAMPAIGN_NOT_STOPPED",
                "The campaign must be stopped before it can be deleted.",
                409
            ),
            "{err:?}"
        );
        assert!(env.campaign(c.id).await.tm_delete.is_none());
    }
    assert!(env.events().is_empty());
}

#[tokio::test]
async fn delete_of_a_stopped_campaign_deletes_its_flow_and_releases_its_outdial() {
    let customer = Uuid::new_v4();
    let mut c = campaign(customer, Uuid::nil(), Uuid::nil());
    let od = Outdial {
        campaign_id: c.id,
        ..outdial(customer)
    };
    c.outdial_id = od.id;
    let flow_id = c.flow_id;
    let mut m = Mocks::new();
    let (owner, _) = stateful_outdial(&mut m, od);
    flow_deleted(&mut m, flow_id);
    let env = Env::new(m).await;
    let c = env.insert_campaign(&c).await;

    let d = env.service.delete_campaign(c.id).await.expect("delete");
    assert!(d.tm_delete.is_some());
    assert!(env.campaign(c.id).await.tm_delete.is_some());
    assert_eq!(env.events(), vec!["campaign_deleted"]);
    assert!(owner.lock().expect("lock").is_nil(), "outdial released");
    let err = env.service.campaign(c.id).await.expect_err("deleted");
    assert!(matches!(err, ServiceError::NotFound(_)), "{err:?}");
    let err = env
        .service
        .delete_campaign(c.id)
        .await
        .expect_err("deleted twice");
    assert!(matches!(err, ServiceError::NotFound(_)), "{err:?}");
}

/// `campaign_manager_campaign_flow_delete_failed_total{reason}`.
fn flow_delete_failed(env: &Env, reason: &str) -> u64 {
    env.metrics
        .campaign_flow_delete_failed_total
        .with_label_values(&[reason])
        .get()
}

#[tokio::test]
async fn delete_survives_a_flow_manager_failure_and_counts_it_by_reason() {
    let typed_404 = || PeerError::Status {
        target: "flow".into(),
        status: 404,
        typed: Some(Box::new(VoipbinError {
            domain: "flow-manager".into(),
            ..VoipbinError::new("NOT_FOUND", "FLOW_NOT_FOUND", "The flow was not found.")
        })),
    };
    let bare_500 = || PeerError::Status {
        target: "flow".into(),
        status: 500,
        typed: None,
    };
    let mut m = Mocks::new();
    let mut answers = vec![Err(timeout()), Err(bare_500()), Err(typed_404())].into_iter();
    m.flow
        .expect_delete_flow()
        .times(3)
        .returning(move |_| answers.next().unwrap_or(Ok(())));
    let env = Env::new(m).await;
    // Both series exist from the start.
    assert_eq!(
        (
            flow_delete_failed(&env, "not_found"),
            flow_delete_failed(&env, "error")
        ),
        (0, 0)
    );
    let text = env.metrics.render();
    for reason in ["not_found", "error"] {
        let series =
            format!("campaign_manager_campaign_flow_delete_failed_total{{reason=\"{reason}\"}} 0");
        assert!(text.contains(&series), "{series}");
    }
    for _ in 0..3 {
        let c = env.stopped_campaign().await;
        let d = env.service.delete_campaign(c.id).await.expect("delete");
        assert!(d.tm_delete.is_some());
    }
    assert_eq!(flow_delete_failed(&env, "error"), 2);
    assert_eq!(flow_delete_failed(&env, "not_found"), 1);
}
