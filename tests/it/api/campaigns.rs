//! Campaign create (C1) and get (C3), byte-exact, with the flow made at the flow-manager and the
//! outdial claimed; and a delete that goes by the row in MySQL, not by a stale cached copy. The
//! other campaign routes: `campaign_updates.rs`, `campaign_status.rs`; what they all refuse:
//! `campaign_refusals.rs`.

use super::*;

#[tokio::test]
async fn campaign_create_and_get() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let outplan = id_of(&new_outplan(&sys, customer).await);
    let outdial = sys.sim.create_outdial(customer, 3, 1);
    let queue = sys.sim.create_queue(customer, 2);
    let id = Uuid::new_v4();
    let body = json!({
        "id": id, "customer_id": customer, "type": "call", "name": "test name",
        "detail": "test detail", "actions": [{"type": "answer"}], "service_level": 100,
        "end_handle": "continue", "outplan_id": outplan, "outdial_id": outdial, "queue_id": queue
    });
    let flows_before = sys.sim.flows().len();
    let r = call(&sys, "POST", "/v1/campaigns", Some(body)).await;
    assert_eq!(r.status_code, 200, "{}", raw_data(&r));
    assert_eq!(r.data_type, "application/json");
    let c: Value = serde_json::from_str(raw_data(&r)).unwrap();
    assert_eq!(raw_data(&r), canonical(&c, CAMPAIGN_KEYS));
    let flow_id = c["flow_id"].as_str().unwrap().to_owned();
    let tm = c["tm_create"].as_str().unwrap().to_owned();
    // Byte-exact, with the values we sent.
    let expected = format!(
        concat!(
            r#"{{"id":"{id}","customer_id":"{cu}","type":"call","execute":"stop","name":"test name","#,
            r#""detail":"test detail","status":"stop","service_level":100,"end_handle":"continue","#,
            r#""flow_id":"{fl}","actions":[{{"id":"{nil}","next_id":"{nil}","type":"answer","tm_execute":null}}],"#,
            r#""outplan_id":"{op}","outdial_id":"{od}","queue_id":"{q}","next_campaign_id":"{nil}","#,
            r#""tm_create":"{tm}","tm_update":null,"tm_delete":null}}"#
        ),
        id = id,
        cu = customer,
        fl = flow_id,
        nil = NIL,
        op = outplan,
        od = outdial,
        q = queue,
        tm = tm
    );
    assert_eq!(raw_data(&r), expected);

    // The flow was created in the sim with queue_join appended; the outdial is claimed.
    assert_eq!(sys.sim.flows().len(), flows_before + 1);
    let flow = sys
        .sim
        .flows()
        .into_iter()
        .find(|f| f.id.to_string() == flow_id)
        .expect("flow in the sim");
    assert_eq!(flow.customer_id, customer);
    assert_eq!(flow.kind, "campaign");
    let kinds: Vec<&str> = flow.actions.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["answer", "queue_join"]);
    assert_eq!(
        flow.actions[1].option.as_ref().unwrap()["queue_id"],
        queue.to_string()
    );
    assert_eq!(sys.sim.outdial(outdial).unwrap().outdial.campaign_id, id);

    // C3 get (byte-exact too).
    let g = call(&sys, "GET", &format!("/v1/campaigns/{id}"), None).await;
    assert_eq!(g.status_code, 200);
    assert_eq!(raw_data(&g), expected);

    // Minimal create: generated id, no actions, no queue → no queue_join; defaults.
    let m = sys
        .ok(
            "POST",
            "/v1/campaigns",
            Some(json!({"customer_id": customer, "type": "flow"})),
        )
        .await;
    assert_eq!(id_of(&m).get_version_num(), 4);
    assert_eq!(m["type"], "flow");
    assert_eq!(m["actions"], Value::Null);
    assert_eq!(m["end_handle"], "stop");
    assert_eq!(m["service_level"], 0);
    assert_eq!(m["outdial_id"], NIL);
    let mflow = sys
        .sim
        .flows()
        .into_iter()
        .find(|f| Some(f.id.to_string().as_str()) == m["flow_id"].as_str())
        .expect("flow");
    assert!(mflow.actions.is_empty());

    // Same id again → 409 ALREADY_EXISTS, and no extra flow.
    let flows = sys.sim.flows().len();
    assert_typed(
        sys.rpc(
            "POST",
            "/v1/campaigns",
            Some(json!({"id": id, "customer_id": customer, "type": "call"})),
        )
        .await,
        409,
        "ALREADY_EXISTS",
    );
    assert_eq!(sys.sim.flows().len(), flows);

    // The row in MySQL.
    let (name, status, execute): (String, String, String) = sqlx::query_as(
        "SELECT name, status, execute FROM campaign_campaigns WHERE id = UNHEX(REPLACE(?, '-', ''))",
    )
    .bind(id.to_string())
    .fetch_one(&sys.db.pool)
    .await
    .unwrap();
    assert_eq!(
        (name.as_str(), status.as_str(), execute.as_str()),
        ("test name", "stop", "stop")
    );
    sys.stop().await;
}

/// The cached copy says `stop` but MySQL says `run` (a stale cache entry).
/// DELETE must go by MySQL: 409, nothing deleted, no event. Same for a campaigncall that the
/// cache shows `done` while it is still dialing.
#[tokio::test]
async fn delete_goes_by_the_row_not_a_stale_cached_copy() {
    use campaign_manager::model::{Campaign, CampaigncallStatus};
    let sys = TestSystem::start(silent(), |_| {}).await;
    let customer = Uuid::new_v4();
    let c = sys
        .ok(
            "POST",
            "/v1/campaigns",
            Some(
                json!({"customer_id": customer, "type": "call", "name": "c", "end_handle": "stop"}),
            ),
        )
        .await;
    let id = id_of(&c);
    // Running in MySQL, behind the cache's back: the cached copy still says stop.
    sqlx::query("UPDATE campaign_campaigns SET status = 'run' WHERE id = ?")
        .bind(id.as_bytes().to_vec())
        .execute(&sys.db.pool)
        .await
        .expect("update row");
    let cached = sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await;
    assert_eq!(
        cached["status"], "stop",
        "the planted stale copy is what GET serves"
    );

    let (code, _, data) = sys
        .rpc("DELETE", &format!("/v1/campaigns/{id}"), None)
        .await;
    assert_eq!(code, 409, "{data}");
    assert_eq!(data["status"], "FAILED_PRECONDITION", "{data}");
    let row: (Option<chrono::NaiveDateTime>, String) =
        sqlx::query_as("SELECT tm_delete, status FROM campaign_campaigns WHERE id = ?")
            .bind(id.as_bytes().to_vec())
            .fetch_one(&sys.db.pool)
            .await
            .expect("row");
    assert_eq!(row, (None, "run".to_owned()), "nothing deleted");
    let flow_id = Uuid::parse_str(c["flow_id"].as_str().expect("flow id")).expect("uuid");
    assert!(
        sys.sim
            .flows()
            .iter()
            .any(|f| f.id == flow_id && f.tm_delete.is_none()),
        "the flow is not deleted"
    );

    // A campaigncall cached as done while MySQL says dialing.
    let store = campaign_manager::store::Store::with_pool(sys.db.pool.clone(), sys.prefix.cache());
    let campaign: Campaign = serde_json::from_value(cached).expect("campaign");
    let mut cc = support::records::campaigncall_of(&campaign, CampaigncallStatus::Done);
    cc = store.campaigncalls.create(&cc).await.expect("campaigncall");
    sqlx::query("UPDATE campaign_campaigncalls SET status = 'dialing' WHERE id = ?")
        .bind(cc.id.as_bytes().to_vec())
        .execute(&sys.db.pool)
        .await
        .expect("update row");
    let (code, _, data) = sys
        .rpc("DELETE", &format!("/v1/campaigncalls/{}", cc.id), None)
        .await;
    assert_eq!(code, 409, "{data}");
    assert!(
        store
            .campaigncalls
            .get_fresh(cc.id)
            .await
            .expect("read")
            .expect("row")
            .tm_delete
            .is_none()
    );
    sys.stop().await;
}
