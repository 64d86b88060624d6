//! The campaigncall routes K1–K3 (docs/contract.md#routes): a real campaigncall made by a tick,
//! listed and read byte-exact, not deletable while dialing, deleted once its call hung up; and
//! the typed 404s of a deleted or unknown campaigncall, as a table.

use super::*;

#[tokio::test]
async fn campaigncall_routes() {
    let sys = TestSystem::start(silent(), fast_ticks).await;
    let customer = Uuid::new_v4();
    let (c, outplan, outdial) = new_campaign(&sys, customer, 1).await;
    let id = id_of(&c);
    sys.ok(
        "PUT",
        &format!("/v1/campaigns/{id}/status"),
        Some(json!({"status": "run"})),
    )
    .await;
    let list_uri = "/v1/campaigncalls?page_size=10";
    let filter = json!({"campaign_id": id});
    wait_until("a campaigncall", Duration::from_secs(15), || async {
        sys.ok("GET", list_uri, Some(filter.clone()))
            .await
            .as_array()
            .map(Vec::len)
            == Some(1)
    })
    .await;
    // K1.
    let r = call(&sys, "GET", list_uri, Some(filter.clone())).await;
    assert_eq!(r.status_code, 200);
    let list: Value = serde_json::from_str(raw_data(&r)).unwrap();
    let cc = list[0].clone();
    assert_eq!(
        raw_data(&r),
        format!("[{}]", canonical(&cc, CAMPAIGNCALL_KEYS))
    );
    let ccid = id_of(&cc);
    let target = sys.sim.targets(outdial)[0].target.id;
    assert_eq!(cc["customer_id"], customer.to_string());
    assert_eq!(cc["campaign_id"], id.to_string());
    assert_eq!(cc["outplan_id"], outplan.to_string());
    assert_eq!(cc["outdial_id"], outdial.to_string());
    assert_eq!(cc["outdial_target_id"], target.to_string());
    assert_eq!(cc["flow_id"], c["flow_id"]);
    assert_eq!(cc["reference_type"], "call");
    assert_eq!(cc["status"], "dialing");
    assert_eq!(cc["result"], "");
    assert_eq!(cc["source"], json!({"type":"tel","target":"+821100000001"}));
    assert_eq!(cc["destination_index"], 0);
    assert_eq!(cc["try_count"], 1);
    let call_id = cc["reference_id"].as_str().unwrap().to_owned();
    // The call is placed right after the campaigncall is stored.
    wait_until("the call in the sim", Duration::from_secs(10), || {
        let placed = sys.sim.calls().iter().any(|k| k.id.to_string() == call_id);
        async move { placed }
    })
    .await;
    let none = sys
        .ok("GET", list_uri, Some(json!({"campaign_id": rand_id()})))
        .await;
    assert_eq!(none, json!([]));
    let by_status = sys
        .ok(
            "GET",
            list_uri,
            Some(json!({"status": "dialing", "customer_id": customer})),
        )
        .await;
    assert_eq!(by_status.as_array().unwrap().len(), 1);

    // K2.
    let g = call(&sys, "GET", &format!("/v1/campaigncalls/{ccid}"), None).await;
    assert_eq!(g.status_code, 200);
    assert_eq!(raw_data(&g), canonical(&cc, CAMPAIGNCALL_KEYS));

    // K3 while dialing → 409; after the hangup → deleted.
    assert_typed(
        sys.rpc("DELETE", &format!("/v1/campaigncalls/{ccid}"), None)
            .await,
        409,
        "FAILED_PRECONDITION",
    );
    let raw = RawClient::new().await;
    publish_hangup(&sys, &raw, &call_id, "normal").await;
    wait_until(
        "the campaigncall to finish",
        Duration::from_secs(10),
        || async {
            sys.ok("GET", &format!("/v1/campaigncalls/{ccid}"), None)
                .await["status"]
                == "done"
        },
    )
    .await;
    let g = sys
        .ok("GET", &format!("/v1/campaigncalls/{ccid}"), None)
        .await;
    assert_eq!(g["result"], "success");
    assert_eq!(sys.sim.target(target).unwrap().status, TargetState::Done);
    let d = call(&sys, "DELETE", &format!("/v1/campaigncalls/{ccid}"), None).await;
    assert_eq!(d.status_code, 200);
    let dv: Value = serde_json::from_str(raw_data(&d)).unwrap();
    assert_eq!(raw_data(&d), canonical(&dv, CAMPAIGNCALL_KEYS));
    assert!(dv["tm_delete"].is_string());
    let deleted = format!("/v1/campaigncalls/{ccid}");
    let unknown = format!("/v1/campaigncalls/{}", rand_id());
    let gone = Want::NotFound("campaigncall");
    check_rows(
        &sys,
        &[
            row("get a deleted campaigncall", "GET", &deleted, None, gone),
            row("delete it again", "DELETE", &deleted, None, gone),
            row("get an unknown id", "GET", &unknown, None, gone),
            row("delete an unknown id", "DELETE", &unknown, None, gone),
        ],
    )
    .await;
    let l = sys
        .ok(
            "GET",
            list_uri,
            Some(json!({"campaign_id": id, "deleted": false})),
        )
        .await;
    assert_eq!(l, json!([]));
    sys.stop().await;
}
