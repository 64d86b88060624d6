//! What every route answers to requests it cannot take, at the level of the envelope: URIs that
//! match no route (bare 404), envelopes that are not JSON (bare 400), bodies of the wrong type or
//! shape, arrays for objects, bodies over 1 MiB, names and details over their column's size
//! (typed 400); each a table whose rows say which request failed.

use super::*;

#[tokio::test]
async fn uri_matching_and_bare_404() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let (c, outplan, _) = new_campaign(&sys, Uuid::new_v4(), 0).await;
    let id = c["id"].as_str().unwrap().to_owned();
    let up = id.to_uppercase();
    let mut raw = RawClient::new().await;
    let q = sys.names.names.request_queue.clone();
    let bare404 = r#"{"status_code":404,"data_type":""}"#;
    let campaign = format!("/v1/campaigns/{id}");
    let cases: Vec<(&str, &str, String, Option<&str>)> = vec![
        (
            "get, id upper case",
            "GET",
            format!("/v1/campaigns/{up}"),
            None,
        ),
        (
            "delete, id upper case",
            "DELETE",
            format!("/v1/campaigns/{up}"),
            None,
        ),
        (
            "status, id upper case",
            "PUT",
            format!("/v1/campaigns/{up}/status"),
            Some(r#"{"status":"run"}"#),
        ),
        (
            "execute, id upper case",
            "POST",
            format!("/v1/campaigns/{up}/execute"),
            None,
        ),
        (
            "outplan get, id upper case",
            "GET",
            format!("/v1/outplans/{}", outplan.to_string().to_uppercase()),
            None,
        ),
        (
            "id not a uuid",
            "GET",
            "/v1/campaigns/not-a-uuid".into(),
            None,
        ),
        (
            "id one char short",
            "GET",
            format!("/v1/campaigns/{}", &id[..35]),
            None,
        ),
        ("id one char long", "GET", format!("{campaign}0"), None),
        (
            "id in braces",
            "GET",
            format!("/v1/campaigns/{{{id}}}"),
            None,
        ),
        (
            "id without dashes",
            "GET",
            format!("/v1/campaigns/{}", id.replace('-', "")),
            None,
        ),
        (
            "campaigncall get, id upper case",
            "GET",
            format!("/v1/campaigncalls/{}", rand_id().to_uppercase()),
            None,
        ),
        (
            "campaign list without ?",
            "GET",
            "/v1/campaigns".into(),
            None,
        ),
        ("outplan list without ?", "GET", "/v1/outplans".into(), None),
        (
            "campaigncall list without ?",
            "GET",
            "/v1/campaigncalls".into(),
            None,
        ),
        ("PATCH", "PATCH", campaign.clone(), None),
        ("method lower case", "get", campaign.clone(), None),
        ("POST on a campaign", "POST", campaign.clone(), None),
        (
            "unknown sub-route",
            "PUT",
            format!("{campaign}/nope"),
            Some("{}"),
        ),
        ("GET of execute", "GET", format!("{campaign}/execute"), None),
        (
            "two more segments",
            "GET",
            format!("{campaign}/extra/more"),
            None,
        ),
        ("query on a get", "GET", format!("{campaign}?x=1"), None),
        ("version 2", "GET", "/v2/campaigns?page_size=1".into(), None),
        ("unknown resource", "GET", "/v1/foo".into(), None),
        (
            "another service's resource",
            "GET",
            "/v1/outdials?page_size=1".into(),
            None,
        ),
        ("empty uri", "GET", "".into(), None),
        ("root", "GET", "/".into(), None),
        ("empty method and uri", "", "".into(), None),
        (
            "DELETE of outplan dials",
            "DELETE",
            format!("/v1/outplans/{id}/dials"),
            None,
        ),
    ];
    let mut wrong = Vec::new();
    for (case, method, uri, data) in &cases {
        let reply = raw.send(&q, &envelope(method, uri, *data)).await;
        if reply != bare404 {
            wrong.push(format!("  {case}: {method:?} {uri:?} → {reply}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} unmatched requests were not a bare 404:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    // The lowercase form of the same id works.
    assert_eq!(
        sys.rpc("GET", &format!("/v1/campaigns/{id}"), None).await.0,
        200
    );
    sys.stop().await;
}

#[tokio::test]
async fn malformed_wrong_typed_and_oversized_bodies() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let (c, _, _) = new_campaign(&sys, customer, 0).await;
    let id = c["id"].as_str().unwrap().to_owned();
    let mut raw = RawClient::new().await;
    let q = sys.names.names.request_queue.clone();

    // An envelope that is not JSON (or whose data is broken JSON) → bare 400.
    let bare400 = r#"{"status_code":400,"data_type":""}"#;
    let broken: Vec<Vec<u8>> = vec![
        br#"{"uri":"/v1/outplans","method":"POST","publisher":"api-manager","data_type":"application/json","data":{"customer_id":}"#.to_vec(),
        br#"{"uri":"/v1/outplans","method":"POST","data":{"name":"x"#.to_vec(),
        b"not json at all".to_vec(),
        b"".to_vec(),
        br#"{"uri":5,"method":"GET"}"#.to_vec(),
        vec![0xff, 0xfe, 0x00, 0x7b],
    ];
    for b in &broken {
        assert_eq!(
            raw.send(&q, b).await,
            bare400,
            "{}",
            String::from_utf8_lossy(b)
        );
    }

    // Valid envelopes with bodies of the wrong shape → typed 400 naming the problem.
    let typed: Vec<(&str, String, &str)> = vec![
        ("POST", "/v1/outplans".into(), r#""a string""#),
        ("POST", "/v1/outplans".into(), r#"{"customer_id":true}"#),
        (
            "POST",
            "/v1/campaigns".into(),
            r#"{"customer_id":"x","type":"call"}"#,
        ),
        (
            "PUT",
            format!("/v1/campaigns/{id}"),
            r#"{"service_level":"100"}"#,
        ),
        (
            "PUT",
            format!("/v1/campaigns/{id}/status"),
            r#"{"status":["run"]}"#,
        ),
        ("PUT", format!("/v1/campaigns/{id}/status"), "null"),
        ("GET", "/v1/campaigns?page_size=1".into(), "42"),
    ];
    for (m, uri, data) in typed {
        let reply = raw.send(&q, &envelope(m, &uri, Some(data))).await;
        let r: Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(r["status_code"], 400, "{m} {uri} {data}: {reply}");
        assert_eq!(r["data_type"], "voipbin_error");
        assert_eq!(r["data"]["status"], "INVALID_ARGUMENT");
        assert_eq!(r["data"]["domain"], "campaign-manager");
        assert!(!reply.contains("sqlx") && !reply.contains("SQL"), "{reply}");
    }
    // A body-less update → typed 400.
    assert_typed(
        sys.rpc("PUT", &format!("/v1/campaigns/{id}/service_level"), None)
            .await,
        400,
        "INVALID_ARGUMENT",
    );

    // Over 1 MiB → 400, for creates and updates; nothing stored.
    let big = "x".repeat(1024 * 1024 + 10);
    let r = sys
        .rpc(
            "POST",
            "/v1/outplans",
            Some(json!({"customer_id": customer, "name": "big", "detail": big})),
        )
        .await;
    assert_eq!(r.0, 400, "{}", r.1);
    assert_eq!(r.2["status"], "INVALID_ARGUMENT");
    let r = sys
        .rpc(
            "PUT",
            &format!("/v1/campaigns/{id}"),
            Some(json!({"detail": big})),
        )
        .await;
    assert_eq!(r.0, 400);
    assert_eq!(
        sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await["detail"],
        "d"
    );
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM campaign_outplans WHERE name = 'big'")
        .fetch_one(&sys.db.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    // A large body under the limit is fine.
    let ok_detail = "y".repeat(60 * 1000);
    let o = sys
        .ok(
            "POST",
            "/v1/outplans",
            Some(json!({"customer_id": customer, "name": "almost", "detail": ok_detail})),
        )
        .await;
    assert_eq!(o["detail"].as_str().map(str::len), Some(60 * 1000));

    // Without reply_to nothing comes back, and the service keeps answering.
    raw.publish(
        "",
        &q,
        b"garbage without reply_to",
        BasicProperties::default(),
    )
    .await;
    assert_eq!(
        sys.rpc("GET", &format!("/v1/campaigns/{id}"), None).await.0,
        200
    );
    sys.stop().await;
}

#[tokio::test]
async fn array_bodies_are_refused() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let (c, outplan, outdial) = new_campaign(&sys, customer, 0).await;
    let id = c["id"].as_str().unwrap().to_owned();
    let mut raw = RawClient::new().await;
    let q = sys.names.names.request_queue.clone();
    // Go's encoding/json refuses an array for a struct: these must be 400 and change nothing.
    let campaign = format!("/v1/campaigns/{id}");
    let arr =
        |case: &str, uri: String, body: Value| row(case, "PUT", uri, Some(body), Want::Invalid);
    check_rows(
        &sys,
        &[
            arr(
                "resource_info",
                format!("{campaign}/resource_info"),
                json!([]),
            ),
            arr("status", format!("{campaign}/status"), json!(["run"])),
            arr("actions", format!("{campaign}/actions"), json!([])),
            arr(
                "service_level",
                format!("{campaign}/service_level"),
                json!([5]),
            ),
            arr("campaign update", campaign.clone(), json!(["renamed"])),
            arr(
                "outplan update",
                format!("/v1/outplans/{outplan}"),
                json!(["renamed"]),
            ),
        ],
    )
    .await;
    let g = sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await;
    assert_eq!(g["outdial_id"], outdial.to_string());
    assert_eq!(g["status"], "stop");
    // An envelope that is an array is not a request.
    assert_eq!(
        raw.send(&q, br#"["GET","/v1/outplans?"]"#).await,
        r#"{"status_code":400,"data_type":""}"#
    );
    sys.stop().await;
}

#[tokio::test]
async fn overlong_name_or_detail_is_a_400() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let (c, outplan, _) = new_campaign(&sys, customer, 0).await;
    let id = c["id"].as_str().unwrap().to_owned();
    let long_name = "n".repeat(300);
    let long_detail = "d".repeat(100 * 1000);
    let flows = sys.sim.flows().len();
    let long = |case: &str, method: &'static str, uri: String, body: Value| {
        row(case, method, uri, Some(body), Want::Invalid)
    };
    let outplans = "/v1/outplans".to_owned();
    let campaigns = "/v1/campaigns".to_owned();
    check_rows(
        &sys,
        &[
            long(
                "outplan create, long name",
                "POST",
                outplans.clone(),
                json!({"customer_id": customer, "name": long_name}),
            ),
            long(
                "outplan create, long detail",
                "POST",
                outplans,
                json!({"customer_id": customer, "detail": long_detail}),
            ),
            long(
                "outplan update, long detail",
                "PUT",
                format!("/v1/outplans/{outplan}"),
                json!({"detail": long_detail}),
            ),
            long(
                "campaign create, long detail",
                "POST",
                campaigns.clone(),
                json!({"customer_id": customer, "type": "call", "detail": long_detail}),
            ),
            long(
                "campaign create, long name",
                "POST",
                campaigns,
                json!({"customer_id": customer, "type": "call", "name": long_name}),
            ),
            long(
                "campaign update, long name",
                "PUT",
                format!("/v1/campaigns/{id}"),
                json!({"name": long_name}),
            ),
        ],
    )
    .await;
    assert_eq!(sys.sim.flows().len(), flows, "no orphan flow");
    sys.stop().await;
}
