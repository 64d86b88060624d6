//! The campaign update routes C5 and C8–C11 (docs/contract.md#routes): each changes what it
//! names and nothing else, the flow at the flow-manager follows the actions and the queue, the
//! outdial claim moves, and an update as api-manager sends it (Go's `omitempty`). What they
//! refuse: `campaign_refusals.rs`.

use super::*;

#[tokio::test]
async fn campaign_updates() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let (c, outplan, outdial) = new_campaign(&sys, customer, 1).await;
    let id = id_of(&c);
    let flow_id = Uuid::parse_str(c["flow_id"].as_str().unwrap()).unwrap();

    updates_plain_fields(&sys, id, outplan).await;
    updates_service_level(&sys, id).await;
    let queue = updates_resource_info(&sys, customer, id, outplan, outdial, flow_id).await;
    updates_actions(&sys, id, flow_id, queue).await;
    let u = updates_next_campaign(&sys, customer, id).await;

    // Everything above is what GET returns now.
    let g = call(&sys, "GET", &format!("/v1/campaigns/{id}"), None).await;
    let gv: Value = serde_json::from_str(raw_data(&g)).unwrap();
    assert_eq!(raw_data(&g), canonical(&gv, CAMPAIGN_KEYS));
    assert_eq!(gv, u);
    sys.stop().await;
}

/// The flow's actions as the simulated flow-manager holds them: type and queue id, if any.
fn flow_actions(sys: &TestSystem, flow_id: Uuid) -> Vec<(String, Option<String>)> {
    let f = sys
        .sim
        .flows()
        .into_iter()
        .find(|f| f.id == flow_id)
        .unwrap();
    f.actions
        .iter()
        .map(|a| {
            (
                a.kind.clone(),
                a.option
                    .as_ref()
                    .and_then(|o| o.get("queue_id"))
                    .and_then(|v| v.as_str().map(str::to_owned)),
            )
        })
        .collect()
}

/// Step of `campaign_updates`: `PUT /v1/campaigns/<id>` (C5).
async fn updates_plain_fields(sys: &TestSystem, id: Uuid, outplan: Uuid) {
    // C5: omitted keys are api-manager's omitempty: name/detail/service_level ""/""/0,
    // end_handle and type kept (campaign_update_with_omitted_keys has the full story).
    let u = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}"),
            Some(json!({"name": "new name", "type": "call"})),
        )
        .await;
    assert_eq!(u["name"], "new name");
    assert_eq!(u["detail"], "");
    assert_eq!(u["type"], "call");
    assert_eq!(u["service_level"], 0);
    assert_eq!(u["end_handle"], "stop");
    assert!(u["tm_update"].is_string());
    let u = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}"),
            Some(json!({"name": "n", "detail": "dd", "type": "flow", "service_level": 50, "end_handle": "continue"})),
        )
        .await;
    assert_eq!(
        (
            &u["name"],
            &u["detail"],
            &u["type"],
            &u["service_level"],
            &u["end_handle"]
        ),
        (
            &json!("n"),
            &json!("dd"),
            &json!("flow"),
            &json!(50),
            &json!("continue")
        )
    );
    assert_eq!(u["outplan_id"], outplan.to_string(), "resources untouched");
}

/// Step of `campaign_updates`: `PUT /v1/campaigns/<id>/service_level` (C8).
async fn updates_service_level(sys: &TestSystem, id: Uuid) {
    // C8 service_level.
    let u = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}/service_level"),
            Some(json!({"service_level": 150})),
        )
        .await;
    assert_eq!(u["service_level"], 150);
    assert_eq!(u["name"], "n");
}

/// Step of `campaign_updates`: `PUT /v1/campaigns/<id>/resource_info` (C10); returns the queue set.
async fn updates_resource_info(
    sys: &TestSystem,
    customer: Uuid,
    id: Uuid,
    outplan: Uuid,
    outdial: Uuid,
    flow_id: Uuid,
) -> Uuid {
    // C10 resource_info: add a queue (flow gets queue_join), move to a new outdial
    // (claimed; the old one released).
    let queue = sys.sim.create_queue(customer, 3);
    let outdial2 = sys.sim.create_outdial(customer, 1, 1);
    let u = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}/resource_info"),
            Some(json!({"outplan_id": outplan, "outdial_id": outdial2, "queue_id": queue})),
        )
        .await;
    assert_eq!(u["queue_id"], queue.to_string());
    assert_eq!(u["outdial_id"], outdial2.to_string());
    assert_eq!(u["next_campaign_id"], NIL);
    assert_eq!(sys.sim.outdial(outdial2).unwrap().outdial.campaign_id, id);
    assert_eq!(
        sys.sim.outdial(outdial).unwrap().outdial.campaign_id,
        Uuid::nil()
    );
    assert_eq!(
        flow_actions(sys, flow_id),
        vec![
            ("answer".to_owned(), None),
            ("queue_join".to_owned(), Some(queue.to_string()))
        ]
    );
    queue
}

/// Step of `campaign_updates`: `PUT /v1/campaigns/<id>/actions` (C9), with `queue` set before.
async fn updates_actions(sys: &TestSystem, id: Uuid, flow_id: Uuid, queue: Uuid) {
    // C9 actions: stored as given; the flow gets them plus queue_join.
    let u = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}/actions"),
            Some(json!({"actions": [{"type": "talk", "option": {"text": "hi"}}, {"type": "hangup"}]})),
        )
        .await;
    let acts = u["actions"].as_array().unwrap();
    assert_eq!(acts.len(), 2);
    assert_eq!(
        acts[0],
        json!({"id": NIL, "next_id": NIL, "type": "talk", "option": {"text": "hi"}, "tm_execute": null})
    );
    assert_eq!(
        flow_actions(sys, flow_id),
        vec![
            ("talk".to_owned(), None),
            ("hangup".to_owned(), None),
            ("queue_join".to_owned(), Some(queue.to_string()))
        ]
    );
}

/// Step of `campaign_updates`: `PUT /v1/campaigns/<id>/next_campaign_id` (C11); returns the
/// campaign as the last update answered.
async fn updates_next_campaign(sys: &TestSystem, customer: Uuid, id: Uuid) -> Value {
    // C11 next_campaign_id: validated (exists, same customer, not itself).
    let (next, _, _) = new_campaign(sys, customer, 0).await;
    let u = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}/next_campaign_id"),
            Some(json!({"next_campaign_id": next["id"]})),
        )
        .await;
    assert_eq!(u["next_campaign_id"], next["id"]);
    let u = sys
        .ok(
            "PUT",
            &format!("/v1/campaigns/{id}/next_campaign_id"),
            Some(json!({"next_campaign_id": null})),
        )
        .await;
    assert_eq!(u["next_campaign_id"], NIL);
    u
}

/// `PUT /v1/campaigns/<id>` as api-manager sends it: Go's `omitempty` drops `""` and `0`,
/// so an omitted name/detail/service_level means ""/""/0, while an omitted end_handle (and
/// type) keeps the current value; `""` for either is refused and changes nothing.
#[tokio::test]
async fn campaign_update_with_omitted_keys() {
    let sys = TestSystem::start(silent(), |_| {}).await;
    let customer = Uuid::new_v4();
    let c = sys
        .ok(
            "POST",
            "/v1/campaigns",
            Some(json!({
                "customer_id": customer, "type": "flow", "name": "spring", "detail": "long text",
                "service_level": 80, "end_handle": "continue"
            })),
        )
        .await;
    let id = id_of(&c);
    let uri = format!("/v1/campaigns/{id}");

    // api-manager clearing the detail and the service level of a renamed campaign.
    let u = sys
        .ok("PUT", &uri, Some(json!({"name": "summer", "type": "flow"})))
        .await;
    assert_eq!(u["name"], "summer");
    assert_eq!(u["detail"], "", "omitted detail is the empty detail");
    assert_eq!(u["service_level"], 0, "omitted service_level is 0");
    assert_eq!(u["end_handle"], "continue", "omitted end_handle is kept");
    assert_eq!(u["type"], "flow");
    assert_eq!(sys.ok("GET", &uri, None).await, u, "stored as returned");

    // Everything omitted but the type: the name is cleared too; no type keeps the type.
    let u = sys.ok("PUT", &uri, Some(json!({"type": "call"}))).await;
    assert_eq!((&u["name"], &u["type"]), (&json!(""), &json!("call")));
    let u = sys
        .ok("PUT", &uri, Some(json!({"name": "x", "service_level": 5})))
        .await;
    assert_eq!(
        (&u["type"], &u["end_handle"], &u["service_level"]),
        (&json!("call"), &json!("continue"), &json!(5))
    );

    let rows = rows_of(
        "update",
        "PUT",
        &uri,
        Want::Invalid,
        [
            (
                "end_handle empty",
                json!({"name": "y", "type": "call", "end_handle": ""}),
            ),
            ("type empty", json!({"name": "y", "type": ""})),
        ],
    );
    check_rows(&sys, &rows).await;
    assert_eq!(
        sys.ok("GET", &uri, None).await,
        u,
        "a refused update changes nothing"
    );
    sys.stop().await;
}
