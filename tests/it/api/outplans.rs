//! The outplan routes O1–O6 (docs/contract.md#routes): the happy path of each, byte-exact, one
//! table of what they refuse (each bad field, each unknown id), and what a deleted outplan answers.

use super::*;

#[tokio::test]
async fn outplan_routes() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();

    let (o, id) = outplan_create(&sys, customer).await;
    outplan_get(&sys, id, &o).await;
    outplan_update(&sys, id, &o).await;
    outplan_dials(&sys, id).await;
    // O2 list (details in lists_filters_and_pagination).
    let l = sys
        .ok(
            "GET",
            "/v1/outplans?page_size=10",
            Some(json!({"customer_id": customer, "deleted": false})),
        )
        .await;
    assert_eq!(l.as_array().unwrap().len(), 2);

    outplan_delete(&sys, customer, id).await;
    sys.stop().await;
}

/// Step of `outplan_routes`: `POST /v1/outplans` (O1); returns the outplan and its id.
async fn outplan_create(sys: &TestSystem, customer: Uuid) -> (Value, Uuid) {
    // O1 create: every field, byte-exact order.
    let r = call(sys, "POST", "/v1/outplans", Some(outplan_body(customer))).await;
    assert_eq!(r.status_code, 200);
    assert_eq!(r.data_type, "application/json");
    let o: Value = serde_json::from_str(raw_data(&r)).unwrap();
    assert_eq!(raw_data(&r), canonical(&o, OUTPLAN_KEYS));
    let id = id_of(&o);
    assert_eq!(id.get_version_num(), 4);
    assert_eq!(o["customer_id"], customer.to_string());
    assert_eq!(o["name"], "plan");
    assert_eq!(o["detail"], "plan detail");
    assert_eq!(o["source"], json!({"type":"tel","target":"+821100000001"}));
    assert_eq!(o["dial_timeout"], 30000);
    assert_eq!(o["try_interval"], 0);
    for i in 0..5 {
        assert_eq!(o[format!("max_try_count_{i}")], i + 1);
    }
    assert!(o["tm_create"].as_str().unwrap().ends_with('Z'));
    assert_eq!(o["tm_update"], Value::Null);
    assert_eq!(o["tm_delete"], Value::Null);
    // A given id is ignored (always generated).
    let o2 = sys
        .ok(
            "POST",
            "/v1/outplans",
            Some(json!({"id": rand_id(), "customer_id": customer})),
        )
        .await;
    assert_eq!(o2["source"], Value::Null);
    assert_eq!(o2["name"], "");
    assert_eq!(o2["max_try_count_0"], 0);
    (o, id)
}

/// Step of `outplan_routes`: `GET /v1/outplans/<id>` (O3) of outplan `o`.
async fn outplan_get(sys: &TestSystem, id: Uuid, o: &Value) {
    // O3 get.
    let r = call(sys, "GET", &format!("/v1/outplans/{id}"), None).await;
    assert_eq!(r.status_code, 200);
    assert_eq!(raw_data(&r), canonical(o, OUTPLAN_KEYS));
}

/// Step of `outplan_routes`: `PUT /v1/outplans/<id>` (O5) of outplan `o`.
async fn outplan_update(sys: &TestSystem, id: Uuid, o: &Value) {
    // O5 update: partial body keeps omitted fields.
    let u = sys
        .ok(
            "PUT",
            &format!("/v1/outplans/{id}"),
            Some(json!({"name": "renamed"})),
        )
        .await;
    assert_eq!(u["name"], "renamed");
    assert_eq!(u["detail"], "plan detail");
    assert!(u["tm_update"].is_string());
    assert_eq!(u["tm_create"], o["tm_create"]);
    let u = sys
        .ok(
            "PUT",
            &format!("/v1/outplans/{id}"),
            Some(json!({"name": "n2", "detail": "d2"})),
        )
        .await;
    assert_eq!(
        (u["name"].as_str(), u["detail"].as_str()),
        (Some("n2"), Some("d2"))
    );
    assert_eq!(
        u["dial_timeout"], 30000,
        "dials untouched by a basic update"
    );
}

/// Step of `outplan_routes`: `PUT /v1/outplans/<id>/dials` (O6).
async fn outplan_dials(sys: &TestSystem, id: Uuid) {
    // O6 dials: all overwritten, missing source → null.
    let d = sys
        .ok(
            "PUT",
            &format!("/v1/outplans/{id}/dials"),
            Some(json!({"dial_timeout": 1000, "try_interval": 60000, "max_try_count_0": 3})),
        )
        .await;
    assert_eq!(d["source"], Value::Null);
    assert_eq!(d["dial_timeout"], 1000);
    assert_eq!(d["try_interval"], 60000);
    assert_eq!(d["max_try_count_0"], 3);
    assert_eq!(d["max_try_count_4"], 0);
    assert_eq!(d["name"], "n2", "basic info untouched by dials");
    let d = sys
        .ok(
            "PUT",
            &format!("/v1/outplans/{id}/dials"),
            Some(json!({"source": {"type": "sip", "target": "a@b"}, "dial_timeout": 5})),
        )
        .await;
    assert_eq!(d["source"], json!({"type":"sip","target":"a@b"}));
    // The reply is what is stored.
    assert_eq!(sys.ok("GET", &format!("/v1/outplans/{id}"), None).await, d);
}

/// Step of `outplan_routes`: `DELETE /v1/outplans/<id>` (O4), then what a deleted outplan answers
/// and how lists see it.
async fn outplan_delete(sys: &TestSystem, customer: Uuid, id: Uuid) {
    // O4 delete.
    let del = call(sys, "DELETE", &format!("/v1/outplans/{id}"), None).await;
    assert_eq!(del.status_code, 200);
    let dv: Value = serde_json::from_str(raw_data(&del)).unwrap();
    assert_eq!(raw_data(&del), canonical(&dv, OUTPLAN_KEYS));
    assert!(dv["tm_delete"].is_string());
    assert_eq!(dv["tm_update"], dv["tm_delete"]);
    assert_eq!(dv["name"], "n2");
    // Deleted: GET/PUT/DELETE are typed 404, the row stays (soft delete).
    let uri = format!("/v1/outplans/{id}");
    let gone = Want::NotFound("outplan");
    check_rows(
        sys,
        &[
            row("get a deleted outplan", "GET", &uri, None, gone),
            row("delete it again", "DELETE", &uri, None, gone),
            row("update it", "PUT", &uri, Some(json!({"name": "z"})), gone),
        ],
    )
    .await;
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM campaign_outplans WHERE tm_delete IS NOT NULL AND name = 'n2'",
    )
    .fetch_one(&sys.db.pool)
    .await
    .unwrap();
    assert_eq!(n, 1);
    let l = sys
        .ok(
            "GET",
            "/v1/outplans?page_size=10",
            Some(json!({"customer_id": customer, "deleted": false})),
        )
        .await;
    assert_eq!(l.as_array().unwrap().len(), 1);
    let l = sys
        .ok(
            "GET",
            "/v1/outplans?page_size=10",
            Some(json!({"customer_id": customer, "deleted": true})),
        )
        .await;
    assert_eq!(l.as_array().unwrap().len(), 1);
    assert_eq!(l[0]["id"], id.to_string());
}

#[tokio::test]
async fn outplan_delete_refused_while_a_campaign_runs_on_it() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let (c, outplan, _) = new_campaign(&sys, customer, 1).await;
    let cid = id_of(&c);
    sys.ok(
        "PUT",
        &format!("/v1/campaigns/{cid}/status"),
        Some(json!({"status": "run"})),
    )
    .await;
    assert_eq!(
        assert_typed(
            sys.rpc("DELETE", &format!("/v1/outplans/{outplan}"), None)
                .await,
            409,
            "FAILED_PRECONDITION"
        ),
        "FAILED_PRECONDITION"
    );
    assert_eq!(
        sys.ok("GET", &format!("/v1/outplans/{outplan}"), None)
            .await["tm_delete"],
        Value::Null
    );
    sys.stop().await;
}

/// What the outplan routes refuse, one row per case: each bad field of a create (refused by the
/// service itself), of an update and of a dials update, and each route on an unknown id. Nothing
/// refused is stored or changed.
#[tokio::test]
async fn outplan_routes_refuse_each_bad_body_and_unknown_id() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let o = new_outplan(&sys, customer).await;
    let uri = format!("/v1/outplans/{}", id_of(&o));
    let dials = format!("{uri}/dials");
    let with = |k: &str, v: Value| json!({"customer_id": customer, k: v});

    let mut rows = rows_of(
        "create",
        "POST",
        "/v1/outplans",
        Want::InvalidHere,
        [
            ("no customer_id", json!({"name": "no customer"})),
            ("customer_id a number", json!({"customer_id": 5})),
            (
                "customer_id not a uuid",
                json!({"customer_id": "not-a-uuid"}),
            ),
            ("dial_timeout a string", with("dial_timeout", json!("long"))),
            ("try_interval negative", with("try_interval", json!(-1))),
            (
                "max_try_count_3 negative",
                with("max_try_count_3", json!(-2)),
            ),
            ("source a string", with("source", json!("tel"))),
            ("name a number", with("name", json!(7))),
            ("body an array", json!([1, 2])),
            ("body a string", json!("text")),
            ("body null", Value::Null),
        ],
    );
    rows.push(row(
        "create: no body",
        "POST",
        "/v1/outplans",
        None,
        Want::Invalid,
    ));
    rows.extend(rows_of(
        "update",
        "PUT",
        &uri,
        Want::Invalid,
        [("name a number", json!({"name": 1}))],
    ));
    rows.extend(rows_of(
        "dials",
        "PUT",
        &dials,
        Want::Invalid,
        [
            ("dial_timeout a string", json!({"dial_timeout": "x"})),
            ("try_interval negative", json!({"try_interval": -5})),
            (
                "max_try_count_1 a fraction",
                json!({"max_try_count_1": 1.5}),
            ),
        ],
    ));
    let unknown = format!("/v1/outplans/{}", rand_id());
    let gone = Want::NotFound("outplan");
    rows.extend([
        row("get an unknown id", "GET", &unknown, None, gone),
        row(
            "update an unknown id",
            "PUT",
            &unknown,
            Some(json!({"name": "x"})),
            gone,
        ),
        row(
            "dials of an unknown id",
            "PUT",
            format!("{unknown}/dials"),
            Some(json!({})),
            gone,
        ),
        row("delete an unknown id", "DELETE", &unknown, None, gone),
    ]);
    check_rows(&sys, &rows).await;

    assert_eq!(
        sys.ok("GET", &uri, None).await,
        o,
        "refused updates change nothing"
    );
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM campaign_outplans")
        .fetch_one(&sys.db.pool)
        .await
        .expect("count");
    assert_eq!(n, 1, "refused creates store nothing");
    sys.stop().await;
}
