//! The three lists (docs/contract.md#lists): pages newest first with the creation time as the
//! token, filters, the page size's default and clamp, and a table of the page parameters and
//! filters every list refuses (a hostile filter key among them, which does nothing to the table).

use super::*;

#[tokio::test]
async fn lists_filters_and_pagination() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let a = Uuid::new_v4();
    let b = Uuid::new_v4();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(new_outplan(&sys, a).await["id"].clone());
    }
    new_outplan(&sys, b).await;
    new_outplan(&sys, b).await;

    pages_newest_first(&sys, a, &ids).await;
    filters_select_rows(&sys, a, b).await;
    bad_list_queries_refused(&sys).await;
    page_size_clamped(&sys, a).await;
    sys.stop().await;
}

/// Step of `lists_filters_and_pagination`: customer `a`'s outplans `ids` (oldest first) come back
/// in pages of 2, newest first, each once.
async fn pages_newest_first(sys: &TestSystem, a: Uuid, ids: &[Value]) {
    // Pages of 2, newest first, token = tm_create of the last row: all 5, no duplicates.
    let mut seen: Vec<Value> = Vec::new();
    let mut token = String::new();
    for _ in 0..10 {
        let uri = format!(
            "/v1/outplans?page_size=2&page_token={}",
            form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
        );
        let page = sys.ok("GET", &uri, Some(json!({"customer_id": a}))).await;
        let rows = page.as_array().unwrap().clone();
        if rows.is_empty() {
            break;
        }
        assert!(rows.len() <= 2);
        token = rows.last().unwrap()["tm_create"]
            .as_str()
            .unwrap()
            .to_owned();
        seen.extend(rows);
    }
    let mut got: Vec<Value> = seen.iter().map(|r| r["id"].clone()).collect();
    assert_eq!(got.len(), 5, "{got:?}");
    let mut want = ids.to_vec();
    want.reverse();
    assert_eq!(got, want, "newest first");
    got.sort_by_key(|v| v.to_string());
    got.dedup();
    assert_eq!(got.len(), 5);
    for w in seen.windows(2) {
        assert!(w[0]["tm_create"].as_str() >= w[1]["tm_create"].as_str());
    }
}

/// Step of `lists_filters_and_pagination`: the default page size and the filters (`a` has 5
/// outplans, `b` 2).
async fn filters_select_rows(sys: &TestSystem, a: Uuid, b: Uuid) {
    // Missing page_size → default (all 7 here); no filter → everyone.
    let all = sys.ok("GET", "/v1/outplans?", None).await;
    assert_eq!(all.as_array().unwrap().len(), 7);
    let all = sys
        .ok("GET", "/v1/outplans?page_token=", Some(Value::Null))
        .await;
    assert_eq!(all.as_array().unwrap().len(), 7);
    let onlyb = sys
        .ok(
            "GET",
            "/v1/outplans?page_size=100",
            Some(json!({"customer_id": b, "name": "plan"})),
        )
        .await;
    assert_eq!(onlyb.as_array().unwrap().len(), 2);
    let none = sys
        .ok(
            "GET",
            "/v1/outplans?page_size=100",
            Some(json!({"customer_id": b, "name": "other"})),
        )
        .await;
    assert_eq!(none, json!([]));
    let by_int = sys
        .ok(
            "GET",
            "/v1/outplans?page_size=100",
            Some(json!({"dial_timeout": 30000, "customer_id": a})),
        )
        .await;
    assert_eq!(by_int.as_array().unwrap().len(), 5);
}

/// Step of `lists_filters_and_pagination`: bad page parameters and filters are refused on all three
/// lists, and a hostile filter key does nothing to the table (7 outplans).
async fn bad_list_queries_refused(sys: &TestSystem) {
    // Bad page parameters and filters → typed 400, on all three lists.
    let hostile = "name = name OR 1=1; DROP TABLE campaign_outplans; --";
    let mut rows = Vec::new();
    for list in ["/v1/outplans", "/v1/campaigns", "/v1/campaigncalls"] {
        for q in [
            "page_size=0",
            "page_size=-1",
            "page_size=abc",
            "page_size=1.5",
            "page_token=yesterday",
        ] {
            rows.push(row(
                format!("{list}: {q}"),
                "GET",
                format!("{list}?{q}"),
                None,
                Want::Invalid,
            ));
        }
        rows.extend(rows_of(
            list,
            "GET",
            &format!("{list}?page_size=10"),
            Want::Invalid,
            [
                ("unknown filter key", json!({"no_such_field": "x"})),
                ("hostile filter key", json!({hostile: "x"})),
                ("customer_id a number", json!({"customer_id": 5})),
                (
                    "customer_id not a uuid",
                    json!({"customer_id": "not-a-uuid"}),
                ),
                ("deleted a number", json!({"deleted": 3})),
                (
                    "filter on tm_create",
                    json!({"tm_create": "2020-01-01T00:00:00Z"}),
                ),
                ("filters an array", json!([1])),
                ("filters a string", json!("customer_id")),
            ],
        ));
    }
    check_rows(sys, &rows).await;
    for list in ["/v1/outplans", "/v1/campaigns", "/v1/campaigncalls"] {
        assert_eq!(
            sys.rpc("GET", &format!("{list}?page_size=5000"), None)
                .await
                .0,
            200,
            "{list}?page_size=5000"
        );
    }
    // The hostile key did nothing to the table.
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM campaign_outplans")
        .fetch_one(&sys.db.pool)
        .await
        .unwrap();
    assert_eq!(n, 7);
}

/// Step of `lists_filters_and_pagination`: the page size is clamped to 1000 and defaults to 100.
async fn page_size_clamped(sys: &TestSystem, a: Uuid) {
    // page_size > 1000 is clamped to 1000; missing is 100.
    sqlx::query(
        "INSERT INTO campaign_outplans (id, customer_id, name, detail, dial_timeout, try_interval, \
         max_try_count_0, max_try_count_1, max_try_count_2, max_try_count_3, max_try_count_4, tm_create) \
         SELECT UNHEX(REPLACE(UUID(), '-', '')), UNHEX(REPLACE(?, '-', '')), 'bulk', '', 0, 0, 0, 0, 0, 0, 0, \
         NOW(6) - INTERVAL (seq + 10) SECOND FROM seq_1_to_1100",
    )
    .bind(a.to_string())
    .execute(&sys.db.pool)
    .await
    .unwrap();
    let big = sys
        .ok(
            "GET",
            "/v1/outplans?page_size=5000",
            Some(json!({"customer_id": a})),
        )
        .await;
    assert_eq!(big.as_array().unwrap().len(), 1000);
    let dflt = sys
        .ok("GET", "/v1/outplans?", Some(json!({"customer_id": a})))
        .await;
    assert_eq!(dflt.as_array().unwrap().len(), 100);
    let dflt = sys
        .ok(
            "GET",
            "/v1/outplans?page_size=",
            Some(json!({"customer_id": a})),
        )
        .await;
    assert_eq!(dflt.as_array().unwrap().len(), 100);
}

#[tokio::test]
async fn campaign_list_filters() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let a = Uuid::new_v4();
    let (c1, _, _) = new_campaign(&sys, a, 0).await;
    let (c2, _, _) = new_campaign(&sys, a, 0).await;
    new_campaign(&sys, Uuid::new_v4(), 0).await;
    let l = sys
        .ok(
            "GET",
            "/v1/campaigns?page_size=10",
            Some(json!({"customer_id": a})),
        )
        .await;
    let ids: Vec<&Value> = l.as_array().unwrap().iter().map(|c| &c["id"]).collect();
    assert_eq!(ids, vec![&c2["id"], &c1["id"]]);
    let r = call(
        &sys,
        "GET",
        "/v1/campaigns?page_size=1",
        Some(json!({"customer_id": a})),
    )
    .await;
    let one: Value = serde_json::from_str(raw_data(&r)).unwrap();
    assert_eq!(
        raw_data(&r),
        format!("[{}]", canonical(&one[0], CAMPAIGN_KEYS))
    );
    assert_eq!(one[0], c2);
    let l = sys
        .ok(
            "GET",
            "/v1/campaigns?page_size=10",
            Some(json!({"customer_id": a, "status": "stop", "type": "call", "deleted": "true"})),
        )
        .await;
    assert_eq!(l, json!([]));
    let l = sys
        .ok(
            "GET",
            "/v1/campaigns?page_size=10",
            Some(json!({"outdial_id": c1["outdial_id"]})),
        )
        .await;
    assert_eq!(l.as_array().unwrap().len(), 1);
    sys.stop().await;
}
