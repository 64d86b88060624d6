//! The escape hatches through the service: `campaigncall finish` and `campaign stop --force`.

use super::*;

/// The escape hatches go through the service: `campaigncall finish` ends one stuck
/// campaigncall (target and campaign follow), `campaign stop --force` ends a campaign stuck in
/// `stopping` whose calls the peer still reports up (hung up: answered, so `success`). A
/// running campaign is not force-stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_and_force_stop_end_stuck_records() {
    let sys =
        support::TestSystem::start(support::scenarios::silent(), support::scenarios::fast_ticks)
            .await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 3, 1);
    let outplan = sys
        .ok(
            "POST",
            "/v1/outplans",
            Some(serde_json::json!({
                "customer_id": customer, "name": "p", "detail": "",
                "source": {"type": "tel", "target": "+15550001000"},
                "dial_timeout": 30000, "try_interval": 0,
                "max_try_count_0": 1, "max_try_count_1": 0, "max_try_count_2": 0,
                "max_try_count_3": 0, "max_try_count_4": 0,
            })),
        )
        .await;
    let created = sys
        .ok(
            "POST",
            "/v1/campaigns",
            Some(serde_json::json!({
                "customer_id": customer, "type": "call", "name": "stuck",
                "actions": [{"type": "answer"}], "service_level": 100, "end_handle": "continue",
                "outplan_id": outplan["id"], "outdial_id": outdial,
            })),
        )
        .await;
    let id = created["id"].as_str().expect("campaign id").to_owned();
    let control = |args: Vec<String>| {
        let sys = &sys;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            support::control_json(sys, &args).await
        }
    };
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (code, out, err) = control(v(&["campaign", "run", "--id", &id])).await;
    assert_eq!(code, 0, "{out}{err}");

    // Wait for the three calls (they never hang up).
    let calls_uri = "/v1/campaigncalls?page_size=10";
    let filter = serde_json::json!({"campaign_id": id});
    let deadline = Instant::now() + Duration::from_secs(30);
    let calls = loop {
        let calls = sys.ok("GET", calls_uri, Some(filter.clone())).await;
        if calls.as_array().map(Vec::len) == Some(3) {
            break calls;
        }
        assert!(Instant::now() < deadline, "never dialed 3 calls: {calls}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // A running campaign is not force-stopped.
    let (code, _, err) = control(v(&["campaign", "stop", "--id", &id, "--force"])).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("stop it first"), "{err}");
    let (code, out, err) = control(v(&["campaign", "stop", "--id", &id])).await;
    assert_eq!(code, 0, "{err}");
    let stopping: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(stopping["status"], "stopping", "{stopping}");

    // finish: one call, as success; its target is done; twice → 409, exit 1.
    let first = calls[0]["id"].as_str().expect("id").to_owned();
    let target: Uuid = calls[0]["outdial_target_id"]
        .as_str()
        .expect("target")
        .parse()
        .expect("uuid");
    let (code, out, err) = control(v(&[
        "campaigncall",
        "finish",
        "--id",
        &first,
        "--result",
        "success",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    let done: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        (&done["status"], &done["result"]),
        (&serde_json::json!("done"), &serde_json::json!("success"))
    );
    assert_eq!(
        sys.sim.target(target).expect("target").status,
        campaign_sim::TargetState::Done
    );
    let (code, _, err) = control(v(&[
        "campaigncall",
        "finish",
        "--id",
        &first,
        "--result",
        "fail",
    ]))
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already done (result success)"), "{err}");
    let (code, _, err) = control(v(&[
        "campaigncall",
        "finish",
        "--id",
        &Uuid::new_v4().to_string(),
        "--result",
        "fail",
    ]))
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("CAMPAIGNCALL_NOT_FOUND"), "{err}");
    let c = sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await;
    assert_eq!(c["status"], "stopping", "two calls are still up: {c}");
    // The routes refuse what cannot be meant, changing nothing.
    let second = calls[1]["id"].as_str().expect("id").to_owned();
    for bad in [
        serde_json::json!({"result": ""}),
        serde_json::json!({"result": "maybe"}),
        serde_json::json!({}),
    ] {
        let (status, _, data) = sys
            .rpc(
                "POST",
                &format!("/v1/campaigncalls/{second}/finish"),
                Some(bad),
            )
            .await;
        assert_eq!(status, 400, "{data}");
    }
    let (status, _, _) = sys
        .rpc(
            "POST",
            &format!("/v1/campaigns/{}/force_stop", Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let cc = sys
        .ok("GET", &format!("/v1/campaigncalls/{second}"), None)
        .await;
    assert_ne!(cc["status"], "done", "{cc}");

    // force: the other two are still up (answered) at call-manager: they are hung up and end
    // as call-manager ends them, `success` (the person was reached), their targets `done`.
    let (code, out, err) = control(v(&["campaign", "stop", "--id", &id, "--force"])).await;
    assert_eq!(code, 0, "{err}");
    let stopped: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        (&stopped["status"], &stopped["execute"]),
        (&serde_json::json!("stop"), &serde_json::json!("stop")),
        "{stopped}"
    );
    let calls = sys.ok("GET", calls_uri, Some(filter.clone())).await;
    for cc in calls.as_array().expect("calls") {
        assert_eq!(cc["status"], "done", "{cc}");
        assert_eq!(cc["result"], "success", "{cc}");
        let t: Uuid = cc["outdial_target_id"]
            .as_str()
            .expect("target")
            .parse()
            .expect("uuid");
        // Written by force_stop or by the hangup event, whichever finished the call.
        support::wait_until("target done", Duration::from_secs(10), || {
            let st = sys.sim.target(t).map(|t| t.status);
            async move { st == Some(campaign_sim::TargetState::Done) }
        })
        .await;
    }
    // Stopped: force again returns it as it is.
    let (code, out, err) = control(v(&["campaign", "stop", "--id", &id, "--force"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"stop\""), "{out}");
    sys.stop().await;
}
