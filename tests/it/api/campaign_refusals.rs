//! What the campaign routes refuse, as tables: one row per bad field of a create and of each
//! update route (C1, C5, C7–C11), and one per route on an unknown id (C3–C11); nothing refused
//! changes anything.

use super::*;

/// What `POST /v1/campaigns` (C1) refuses, one row per case: unknown or foreign references, each
/// bad field, bodies that are not objects. Nothing refused leaves a flow, a row or a claimed
/// outdial; an outdial another campaign owns and a deleted outplan are refused too.
#[tokio::test]
async fn campaign_create_refuses_each_bad_body() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let other = Uuid::new_v4();
    let outplan = id_of(&new_outplan(&sys, customer).await);
    let foreign_outplan = id_of(&new_outplan(&sys, other).await);
    let outdial = sys.sim.create_outdial(customer, 1, 1);
    let foreign_outdial = sys.sim.create_outdial(other, 1, 1);
    let foreign_queue = sys.sim.create_queue(other, 1);
    let flows_before = sys.sim.flows().len();
    let base = |extra: Value| {
        let mut b = json!({"customer_id": customer, "type": "call", "name": "x"});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let rows = rows_of(
        "create",
        "POST",
        "/v1/campaigns",
        Want::Invalid,
        [
            ("unknown outdial", base(json!({"outdial_id": rand_id()}))),
            ("unknown outplan", base(json!({"outplan_id": rand_id()}))),
            (
                "another customer's outplan",
                base(json!({"outplan_id": foreign_outplan})),
            ),
            (
                "another customer's outdial",
                base(json!({"outdial_id": foreign_outdial})),
            ),
            ("unknown queue", base(json!({"queue_id": rand_id()}))),
            (
                "another customer's queue",
                base(json!({"queue_id": foreign_queue})),
            ),
            (
                "unknown next campaign",
                base(json!({"next_campaign_id": rand_id()})),
            ),
            ("type sms", base(json!({"type": "sms"}))),
            ("type null", base(json!({"type": null}))),
            ("end_handle restart", base(json!({"end_handle": "restart"}))),
            (
                "service_level a string",
                base(json!({"service_level": "high"})),
            ),
            ("service_level negative", base(json!({"service_level": -1}))),
            (
                "outplan_id not a uuid",
                base(json!({"outplan_id": "not-a-uuid"})),
            ),
            ("outdial_id empty", base(json!({"outdial_id": ""}))),
            ("name an array", base(json!({"name": ["a"]}))),
            (
                "actions an object",
                base(json!({"actions": {"type": "answer"}})),
            ),
            ("customer_id null", base(json!({"customer_id": null}))),
            ("no customer_id", json!({"type": "call"})),
            ("body an array", json!([])),
            ("body a number", json!(17)),
        ],
    );
    check_rows(&sys, &rows).await;
    // Nothing was created anywhere.
    assert_eq!(sys.sim.flows().len(), flows_before, "no orphan flow");
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM campaign_campaigns")
        .fetch_one(&sys.db.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(
        sys.sim.outdial(outdial).unwrap().outdial.campaign_id,
        Uuid::nil()
    );

    // An outdial owned by another campaign is refused.
    let first = sys
        .ok(
            "POST",
            "/v1/campaigns",
            Some(base(json!({"outplan_id": outplan, "outdial_id": outdial}))),
        )
        .await;
    let r = sys
        .rpc(
            "POST",
            "/v1/campaigns",
            Some(base(json!({"outdial_id": outdial}))),
        )
        .await;
    assert_typed(r, 400, "INVALID_ARGUMENT");
    assert_eq!(
        sys.sim.outdial(outdial).unwrap().outdial.campaign_id,
        id_of(&first)
    );
    // A deleted outplan is refused.
    sys.ok("DELETE", &format!("/v1/outplans/{outplan}"), None)
        .await;
    assert_typed(
        sys.rpc(
            "POST",
            "/v1/campaigns",
            Some(base(json!({"outplan_id": outplan}))),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
    );
    sys.stop().await;
}

/// What the update routes of a campaign (C5, C7–C11) refuse, one row per bad field, and what every
/// campaign route answers for an unknown id. The campaign is as it was after all of them.
#[tokio::test]
async fn campaign_routes_refuse_each_bad_body_and_unknown_id() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let (c, _, _) = new_campaign(&sys, customer, 1).await;
    let id = id_of(&c);
    let uri = format!("/v1/campaigns/{id}");
    let foreign_outdial = sys.sim.create_outdial(Uuid::new_v4(), 1, 1);
    let (foreign_c, _, _) = new_campaign(&sys, Uuid::new_v4(), 0).await;
    let bare = sys
        .ok(
            "POST",
            "/v1/campaigns",
            Some(json!({"customer_id": customer, "type": "call"})),
        )
        .await;

    let mut rows = update_rows(&uri, id, foreign_outdial, &foreign_c);
    rows.extend(rows_of(
        "status",
        "PUT",
        &format!("{uri}/status"),
        Want::Invalid,
        [
            ("stopping", json!({"status": "stopping"})),
            ("upper case", json!({"status": "RUN"})),
            ("a number", json!({"status": 1})),
            ("missing", json!({})),
        ],
    ));
    rows.push(row(
        "status: run without an outplan and an outdial",
        "PUT",
        format!("/v1/campaigns/{}/status", id_of(&bare)),
        Some(json!({"status": "run"})),
        Want::Invalid,
    ));
    rows.extend(unknown_id_rows());
    check_rows(&sys, &rows).await;

    assert_eq!(
        sys.ok("GET", &uri, None).await,
        c,
        "a refused update changes nothing"
    );
    sys.stop().await;
}

/// The bad bodies of C5 and C8–C11 on the campaign `id` at `uri`.
fn update_rows(uri: &str, id: Uuid, foreign_outdial: Uuid, foreign_c: &Value) -> Vec<Row> {
    let mut rows = rows_of(
        "update",
        "PUT",
        uri,
        Want::Invalid,
        [
            ("type sms", json!({"type": "sms"})),
            ("end_handle a number", json!({"end_handle": 1})),
            ("service_level a string", json!({"service_level": "x"})),
            ("service_level negative", json!({"service_level": -3})),
            (
                "name null, detail a number",
                json!({"name": null, "detail": 5}),
            ),
            ("body a string", json!("name")),
        ],
    );
    rows.extend(rows_of(
        "service_level",
        "PUT",
        &format!("{uri}/service_level"),
        Want::Invalid,
        [
            ("missing", json!({})),
            ("a string", json!({"service_level": "150"})),
            ("negative", json!({"service_level": -1})),
            ("too large", json!({"service_level": 1e20})),
        ],
    ));
    rows.extend(rows_of(
        "resource_info",
        "PUT",
        &format!("{uri}/resource_info"),
        Want::Invalid,
        [
            (
                "another customer's outdial",
                json!({"outdial_id": foreign_outdial}),
            ),
            ("unknown outplan", json!({"outplan_id": rand_id()})),
            ("unknown queue", json!({"queue_id": rand_id()})),
            ("outdial_id not a uuid", json!({"outdial_id": "zzz"})),
            ("next campaign itself", json!({"next_campaign_id": id})),
        ],
    ));
    rows.extend(rows_of(
        "actions",
        "PUT",
        &format!("{uri}/actions"),
        Want::Invalid,
        [
            ("a string", json!({"actions": "answer"})),
            ("type a number", json!({"actions": [{"type": 3}]})),
            ("id not a uuid", json!({"actions": [{"id": "bad"}]})),
        ],
    ));
    rows.extend(rows_of(
        "next_campaign_id",
        "PUT",
        &format!("{uri}/next_campaign_id"),
        Want::Invalid,
        [
            ("unknown", json!({"next_campaign_id": rand_id()})),
            ("itself", json!({"next_campaign_id": id})),
            (
                "another customer's",
                json!({"next_campaign_id": foreign_c["id"]}),
            ),
            ("a number", json!({"next_campaign_id": 12})),
        ],
    ));
    rows
}

/// Every campaign route on an unknown id: the typed 404.
fn unknown_id_rows() -> Vec<Row> {
    let uri = format!("/v1/campaigns/{}", rand_id());
    let gone = Want::NotFound("campaign");
    let put = |case: &str, tail: &str, body: Value| {
        row(case, "PUT", format!("{uri}{tail}"), Some(body), gone)
    };
    vec![
        row("get an unknown id", "GET", &uri, None, gone),
        put("update an unknown id", "", json!({"name": "x"})),
        put(
            "service_level of an unknown id",
            "/service_level",
            json!({"service_level": 1}),
        ),
        put(
            "resource_info of an unknown id",
            "/resource_info",
            json!({}),
        ),
        put(
            "actions of an unknown id",
            "/actions",
            json!({"actions": []}),
        ),
        put(
            "next_campaign_id of an unknown id",
            "/next_campaign_id",
            json!({"next_campaign_id": null}),
        ),
        put(
            "status of an unknown id",
            "/status",
            json!({"status": "run"}),
        ),
        row("delete an unknown id", "DELETE", &uri, None, gone),
    ]
}
