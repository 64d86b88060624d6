//! A campaign's status (C7), execute (C6) and delete (C4) without ticks, and with ticks: a run
//! that ends by itself, then a delete that releases the flow and the outdial. What the status
//! route refuses: `campaign_refusals.rs`.

use super::*;

#[tokio::test]
async fn campaign_status_execute_and_delete_without_ticks() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let (c, _, outdial) = new_campaign(&sys, customer, 2).await;
    let id = id_of(&c);
    let mut raw = RawClient::new().await;
    let q = sys.names.names.request_queue.clone();
    let exec = envelope("POST", &format!("/v1/campaigns/{id}/execute"), None);

    execute_leaves_a_stopped_campaign(&sys, &mut raw, &q, id, &exec).await;
    runs_and_runs_again(&sys, &mut raw, &q, id, &exec).await;
    delete_refused_while_running(&sys, id).await;
    stop_leaves_it_stopping(&sys, &mut raw, &q, id, &exec, outdial).await;
    deletes_a_stopped_campaign(&sys, customer).await;
    sys.stop().await;
}

/// Step of `campaign_status_execute_and_delete_without_ticks`: `POST /v1/campaigns/<id>/execute`
/// (C6) on a stopped campaign and on an unknown one.
async fn execute_leaves_a_stopped_campaign(
    sys: &TestSystem,
    raw: &mut RawClient,
    q: &str,
    id: Uuid,
    exec: &[u8],
) {
    // C6 on a stopped campaign: bare 200 with no data, nothing changes.
    assert_eq!(
        raw.send(q, exec).await,
        r#"{"status_code":200,"data_type":"application/json"}"#
    );
    let g = sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await;
    assert_eq!(
        (g["status"].as_str(), g["execute"].as_str()),
        (Some("stop"), Some("stop"))
    );
    // Unknown id: the same bare 200.
    assert_eq!(
        raw.send(
            q,
            &envelope(
                "POST",
                &format!("/v1/campaigns/{}/execute", rand_id()),
                None
            )
        )
        .await,
        r#"{"status_code":200,"data_type":"application/json"}"#
    );
}

/// Step of `campaign_status_execute_and_delete_without_ticks`: status `run`, twice, and execute on
/// a running campaign.
async fn runs_and_runs_again(
    sys: &TestSystem,
    raw: &mut RawClient,
    q: &str,
    id: Uuid,
    exec: &[u8],
) {
    // Run.
    let r = call(
        sys,
        "PUT",
        &format!("/v1/campaigns/{id}/status"),
        Some(json!({"status": "run"})),
    )
    .await;
    assert_eq!(r.status_code, 200);
    let rv: Value = serde_json::from_str(raw_data(&r)).unwrap();
    assert_eq!(raw_data(&r), canonical(&rv, CAMPAIGN_KEYS));
    assert_eq!(
        (rv["status"].as_str(), rv["execute"].as_str()),
        (Some("run"), Some("run"))
    );
    // Run again: still run, no error.
    let again = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}/status"),
            Some(json!({"status": "run"})),
        )
        .await;
    assert_eq!(again["status"], "run");
    assert_eq!(
        raw.send(q, exec).await,
        r#"{"status_code":200,"data_type":"application/json"}"#
    );
}

/// Step of `campaign_status_execute_and_delete_without_ticks`: `DELETE` (C4) of a running campaign
/// is refused.
async fn delete_refused_while_running(sys: &TestSystem, id: Uuid) {
    // C4 delete of a running campaign: typed 409, nothing deleted.
    let (status, data_type, data) = sys
        .rpc("DELETE", &format!("/v1/campaigns/{id}"), None)
        .await;
    let reason = assert_typed(
        (status, data_type, data.clone()),
        409,
        "FAILED_PRECONDITION",
    );
    assert_eq!(reason, "CAMPAIGN_NOT_STOPPED");
    assert_eq!(
        data["message"],
        "The campaign must be stopped before it can be deleted."
    );
    assert_eq!(
        sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await["tm_delete"],
        Value::Null
    );
}

/// Step of `campaign_status_execute_and_delete_without_ticks`: stop while the chain is alive, then
/// run again.
async fn stop_leaves_it_stopping(
    sys: &TestSystem,
    raw: &mut RawClient,
    q: &str,
    id: Uuid,
    exec: &[u8],
    outdial: Uuid,
) {
    // Stop with the chain still marked alive (no tick runs here) → stopping, execute run.
    let s = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}/status"),
            Some(json!({"status": "stop"})),
        )
        .await;
    assert_eq!(
        (s["status"].as_str(), s["execute"].as_str()),
        (Some("stopping"), Some("run"))
    );
    // Still not deletable while stopping.
    assert_typed(
        sys.rpc("DELETE", &format!("/v1/campaigns/{id}"), None)
            .await,
        409,
        "FAILED_PRECONDITION",
    );
    // Execute on a stopping campaign changes nothing.
    assert_eq!(
        raw.send(q, exec).await,
        r#"{"status_code":200,"data_type":"application/json"}"#
    );
    assert_eq!(
        sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await["status"],
        "stopping"
    );
    // Run from stopping → run again.
    let r = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}/status"),
            Some(json!({"status": "run"})),
        )
        .await;
    assert_eq!(r["status"], "run");
    assert_eq!(sys.sim.outdial(outdial).unwrap().outdial.campaign_id, id);
}

/// Step of `campaign_status_execute_and_delete_without_ticks`: `DELETE` of a stopped campaign that
/// never ran (no outplan, no outdial).
async fn deletes_a_stopped_campaign(sys: &TestSystem, customer: Uuid) {
    let bare = sys
        .ok(
            "POST",
            "/v1/campaigns",
            Some(json!({"customer_id": customer, "type": "call"})),
        )
        .await;
    // Deleting a stopped (never run) campaign works at once.
    let bid = bare["id"].as_str().unwrap();
    let d = sys
        .ok("DELETE", &format!("/v1/campaigns/{bid}"), None)
        .await;
    assert!(d["tm_delete"].is_string());
    assert_not_found(
        sys.rpc("GET", &format!("/v1/campaigns/{bid}"), None).await,
        "campaign",
    );
}

#[tokio::test]
async fn campaign_stop_then_delete_releases_flow_and_outdial() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), fast_ticks).await;
    let customer = Uuid::new_v4();
    // No targets: the chain's first tick finds the list exhausted and stops the campaign.
    let (c, _, outdial) = new_campaign(&sys, customer, 0).await;
    let id = id_of(&c);
    let flow_id = Uuid::parse_str(c["flow_id"].as_str().unwrap()).unwrap();
    let r = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}/status"),
            Some(json!({"status": "run"})),
        )
        .await;
    assert_eq!(r["status"], "run");
    wait_until("the campaign to stop", Duration::from_secs(15), || async {
        let g = sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await;
        g["status"] == "stop" && g["execute"] == "stop"
    })
    .await;
    let d = call(&sys, "DELETE", &format!("/v1/campaigns/{id}"), None).await;
    assert_eq!(d.status_code, 200, "{}", raw_data(&d));
    let dv: Value = serde_json::from_str(raw_data(&d)).unwrap();
    assert_eq!(raw_data(&d), canonical(&dv, CAMPAIGN_KEYS));
    assert!(dv["tm_delete"].is_string());
    assert_eq!(dv["id"], id.to_string());
    // The flow is deleted in the sim, the outdial released.
    let flow = sys
        .sim
        .flows()
        .into_iter()
        .find(|f| f.id == flow_id)
        .unwrap();
    assert!(flow.tm_delete.is_some(), "flow deleted");
    assert_eq!(
        sys.sim.outdial(outdial).unwrap().outdial.campaign_id,
        Uuid::nil()
    );
    // Soft-deleted: 404 for GET/DELETE/updates, listed with deleted=true.
    let uri = format!("/v1/campaigns/{id}");
    let gone = Want::NotFound("campaign");
    check_rows(
        &sys,
        &[
            row("get a deleted campaign", "GET", &uri, None, gone),
            row("delete it again", "DELETE", &uri, None, gone),
            row(
                "run it",
                "PUT",
                format!("{uri}/status"),
                Some(json!({"status": "run"})),
                gone,
            ),
        ],
    )
    .await;
    let l = sys
        .ok(
            "GET",
            "/v1/campaigns?page_size=10",
            Some(json!({"customer_id": customer, "deleted": true})),
        )
        .await;
    assert_eq!(l.as_array().unwrap().len(), 1);
    // The released outdial can be used by a new campaign.
    sys.ok(
        "POST",
        "/v1/campaigns",
        Some(json!({"customer_id": customer, "type": "call", "outdial_id": outdial})),
    )
    .await;
    sys.stop().await;
}
