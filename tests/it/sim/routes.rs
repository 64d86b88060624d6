//! Every peer route of the simulator over the bus: available targets with the platform's
//! semantics, calls ending with the scenario's hangup reason (also on the fanout bus), an
//! executed activeflow's deleted event, and errors, queues, webhooks and faults.

use super::*;

#[tokio::test]
async fn available_targets_follow_platform_semantics() {
    let env = Env::start(Scenario::instant(Outcome::Answered)).await;
    let customer = Uuid::new_v4();
    let od = env.sim.create_outdial(customer, 0, 1);
    let legacy = env
        .sim
        .add_target(
            od,
            TargetSpec {
                destinations: vec![Some(Address::tel("+1000"))],
                null_tm_update: true,
                ..TargetSpec::default()
            },
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let ids = env.sim.add_targets(od, 3, 2).unwrap();
    let exhausted = env
        .sim
        .add_target(
            od,
            TargetSpec {
                destinations: vec![Some(Address::tel("+2000")), None],
                try_counts: vec![2, 0],
                ..TargetSpec::default()
            },
        )
        .unwrap();

    let r = env
        .get(Service::Outdial, &format!("/v1/outdials/{od}"))
        .await;
    assert_eq!(r.status_code, 200);
    assert_eq!(body(&r)["customer_id"], customer.to_string());

    let avail = |limit: usize| format!("/v1/outdials/{od}/available?{ALL2}&limit={limit}");
    let list = |r: &Response| -> Vec<Uuid> {
        r.data_as::<Vec<OutdialTarget>>()
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect()
    };
    // NULL tm_update first, then by tm_update; the exhausted target never.
    let r = env.get(Service::Outdial, &avail(10)).await;
    assert_eq!(list(&r), vec![legacy, ids[0], ids[1], ids[2]]);
    assert_eq!(
        list(&env.get(Service::Outdial, &avail(1)).await),
        vec![legacy]
    );
    assert!(!list(&env.get(Service::Outdial, &avail(10)).await).contains(&exhausted));

    // Dial ids[0] on destination 1 twice → progressing hides it; back to idle it goes last;
    // with max 2 on destination 1 and 0 tries on destination 0 it stays available.
    for expected in 1..=2 {
        let r = env
            .send(
                Service::Outdial,
                "POST",
                &format!("/v1/outdialtargets/{}/progressing", ids[0]),
                json!({"destination_index": 1}),
            )
            .await;
        assert_eq!(r.status_code, 200);
        let t: OutdialTarget = r.data_as().unwrap();
        assert_eq!(t.try_count_1, expected);
        assert!(!list(&env.get(Service::Outdial, &avail(10)).await).contains(&ids[0]));
        let r = env
            .send(
                Service::Outdial,
                "PUT",
                &format!("/v1/outdialtargets/{}/status", ids[0]),
                json!({"status": "idle"}),
            )
            .await;
        assert_eq!(body(&r)["status"], "idle");
    }
    assert_eq!(
        list(&env.get(Service::Outdial, &avail(10)).await),
        vec![legacy, ids[1], ids[2], ids[0]]
    );
    // Only destination 1 allowed, max 2: ids[0] used both tries there.
    let only1 = format!(
        "/v1/outdials/{od}/available?try_count_0=0&try_count_1=2&try_count_2=0&try_count_3=0&try_count_4=0&limit=10"
    );
    assert_eq!(
        list(&env.get(Service::Outdial, &only1).await),
        vec![ids[1], ids[2]]
    );
    // done removes it for good.
    env.send(
        Service::Outdial,
        "PUT",
        &format!("/v1/outdialtargets/{legacy}/status"),
        json!({"status": "done"}),
    )
    .await;
    assert_eq!(env.sim.target(legacy).unwrap().status, TargetState::Done);
    assert!(!list(&env.get(Service::Outdial, &avail(10)).await).contains(&legacy));
    // campaign_id is stored.
    let camp = Uuid::new_v4();
    let r = env
        .send(
            Service::Outdial,
            "PUT",
            &format!("/v1/outdials/{od}/campaign_id"),
            json!({"campaign_id": camp}),
        )
        .await;
    assert_eq!(r.status_code, 200);
    assert_eq!(env.sim.outdial(od).unwrap().outdial.campaign_id, camp);
    assert_eq!(env.sim.attempts().len(), 2);
    env.finish().await;
}

#[tokio::test]
async fn calls_end_with_the_scenario_hangup_reason() {
    calls_end_with_the_scenario_hangup_reason_on(EventBus::Topic).await;
}

#[tokio::test]
async fn calls_end_with_the_scenario_hangup_reason_on_the_fanout_bus() {
    calls_end_with_the_scenario_hangup_reason_on(EventBus::Fanout).await;
}

async fn calls_end_with_the_scenario_hangup_reason_on(bus: EventBus) {
    let scenario = Scenario {
        ring_ms: campaign_sim::MsRange::fixed(50),
        ..Scenario::instant(Outcome::Answered).with_index_override(0, Outcome::Busy)
    };
    let env = Env::start_on(scenario, BusOptions::default().rpc.default_timeout, bus).await;
    let (_ch, mut events) = env.listen("call-manager").await;
    let od = env.sim.create_outdial(Uuid::new_v4(), 1, 2);
    let target = env.sim.targets(od).remove(0);
    let dest0 = target.target.destination_0.clone().unwrap();
    let dest1 = target.target.destination_1.clone().unwrap();
    let mut expected = Vec::new();
    for (dest, reason) in [(dest0, "busy"), (dest1, "normal")] {
        let call_id = Uuid::new_v4();
        let af = Uuid::new_v4();
        let r = env
            .send(
                Service::Call,
                "POST",
                &format!("/v1/calls/{call_id}"),
                json!({"flow_id": Uuid::new_v4(), "activeflow_id": af, "customer_id": Uuid::new_v4(),
                       "master_call_id": Uuid::nil(), "source": {"type":"tel","target":"+1"},
                       "destination": dest, "groupcall_id": Uuid::nil()}),
            )
            .await;
        assert_eq!(r.status_code, 200);
        expected.push((call_id, af, reason));
    }
    let mut got = Vec::new();
    for _ in 0..2 {
        let ev = next_event(&mut events, Duration::from_secs(5))
            .await
            .expect("call_hangup event");
        assert_eq!(
            (ev.r#type.as_str(), ev.publisher.as_str()),
            ("call_hangup", "call-manager")
        );
        let call: Call = ev.data_as().unwrap();
        got.push((call.id, call.hangup_reason));
    }
    got.sort();
    let mut want: Vec<_> = expected
        .iter()
        .map(|(c, _, r)| (*c, r.to_string()))
        .collect();
    want.sort();
    assert_eq!(got, want);
    let calls = env.sim.calls();
    assert_eq!(calls.len(), 2);
    for ((id, af, reason), rec) in expected.iter().zip(&calls) {
        assert_eq!((rec.id, rec.activeflow_id), (*id, *af));
        assert_eq!(rec.hangup_reason(), *reason);
        assert_eq!(rec.target_id, Some(target.target.id));
        assert!(rec.tm_hangup.is_some());
    }
    assert_eq!(calls[0].destination_index, Some(0));
    assert_eq!(calls[1].destination_index, Some(1));
    assert_eq!(env.sim.live_calls(), 0);
    env.finish().await;
}

#[tokio::test]
async fn activeflow_execute_publishes_activeflow_deleted() {
    let env = Env::start(Scenario::instant(Outcome::Answered)).await;
    let (_ch, mut events) = env.listen("flow-manager").await;
    let r = env
        .send(
            Service::Flow,
            "POST",
            "/v1/flows",
            json!({"customer_id": Uuid::new_v4(), "type": "campaign", "name": "", "detail": "",
                   "actions": [{"type": "answer"}], "on_complete_flow_id": Uuid::nil(), "persist": true}),
        )
        .await;
    assert_eq!(r.status_code, 200);
    let flow = body(&r)["id"].as_str().unwrap().to_string();
    let r = env
        .send(
            Service::Flow,
            "PUT",
            &format!("/v1/flows/{flow}/actions"),
            json!({"actions": [{"type": "answer"}, {"type": "queue_join", "option": {"queue_id": Uuid::nil()}}]}),
        )
        .await;
    assert_eq!(body(&r)["actions"].as_array().unwrap().len(), 2);
    let af = Uuid::new_v4();
    let cc = Uuid::new_v4();
    let r = env
        .send(
            Service::Flow,
            "POST",
            "/v1/activeflows",
            json!({"id": af, "customer_id": Uuid::new_v4(), "flow_id": flow, "reference_type": "campaign",
                   "reference_id": cc, "reference_activeflow_id": Uuid::nil()}),
        )
        .await;
    assert_eq!(body(&r)["id"], af.to_string());
    let exec = Request::new("POST", format!("/v1/activeflows/{af}/execute")).with_data_type("");
    assert_eq!(env.call(Service::Flow, exec.clone()).await.status_code, 200);
    let ev = next_event(&mut events, Duration::from_secs(5))
        .await
        .expect("activeflow_deleted");
    assert_eq!(
        (ev.r#type.as_str(), ev.publisher.as_str()),
        ("activeflow_deleted", "flow-manager")
    );
    let data: Value = ev.data_as().unwrap();
    assert_eq!(data["id"], af.to_string());
    assert_eq!(data["reference_id"], cc.to_string());
    assert_eq!(env.call(Service::Flow, exec).await.status_code, 409);
    let r = env
        .call(
            Service::Flow,
            Request::new("DELETE", format!("/v1/flows/{flow}")),
        )
        .await;
    assert_eq!(r.status_code, 200);
    assert!(env.sim.flows()[0].tm_delete.is_some());
    assert!(
        next_event(&mut events, Duration::from_millis(200))
            .await
            .is_none()
    );
    env.finish().await;
}

#[tokio::test]
async fn errors_queues_webhooks_and_faults() {
    let env = Env::start(Scenario::instant(Outcome::Answered)).await;
    let unknown = Uuid::new_v4();
    let od = env.sim.create_outdial(Uuid::new_v4(), 1, 1);
    for (service, req, code) in [
        (
            Service::Outdial,
            Request::new("GET", format!("/v1/outdials/{unknown}")),
            404,
        ),
        (
            Service::Outdial,
            Request::new(
                "GET",
                format!("/v1/outdials/{unknown}/available?{ALL2}&limit=1"),
            ),
            404,
        ),
        (
            Service::Outdial,
            Request::new("GET", format!("/v1/outdials/{od}/available?limit=1")),
            400,
        ),
        (
            Service::Outdial,
            Request::new("POST", format!("/v1/outdialtargets/{unknown}/progressing")),
            400,
        ),
        (Service::Outdial, Request::new("GET", "/v2/nothing"), 404),
        (
            Service::Call,
            Request::new("POST", format!("/v1/calls/{unknown}")),
            400,
        ),
        (
            Service::Flow,
            Request::new("POST", format!("/v1/activeflows/{unknown}/execute")),
            404,
        ),
        (
            Service::Queue,
            Request::new("GET", format!("/v1/queues/{unknown}/agents")),
            404,
        ),
        (
            Service::Webhook,
            Request::new("DELETE", "/v1/webhooks"),
            404,
        ),
    ] {
        let r = env.call(service, req.clone()).await;
        assert_eq!(
            (r.status_code, r.data_type.as_str()),
            (code, ""),
            "{} {}",
            req.method,
            req.uri
        );
        assert!(r.data.is_none());
    }
    let status = env
        .send(
            Service::Outdial,
            "PUT",
            &format!("/v1/outdialtargets/{unknown}/status"),
            json!({"status":"idle"}),
        )
        .await;
    assert_eq!(status.status_code, 404);

    // Queue agents change at run time.
    let q = env.sim.create_queue(Uuid::new_v4(), 3);
    let agents = || {
        Request::new("GET", format!("/v1/queues/{q}/agents"))
            .with_json(&json!({"status": "available"}))
            .unwrap()
    };
    assert_eq!(
        body(&env.call(Service::Queue, agents()).await)
            .as_array()
            .unwrap()
            .len(),
        3
    );
    env.sim.set_queue_agents(q, 7).unwrap();
    assert_eq!(
        body(&env.call(Service::Queue, agents()).await)
            .as_array()
            .unwrap()
            .len(),
        7
    );
    let r = env.get(Service::Queue, &format!("/v1/queues/{q}")).await;
    assert!(body(&r)["tm_delete"].is_null());

    // Webhooks are counted.
    for _ in 0..3 {
        let r = env
            .send(
                Service::Webhook,
                "POST",
                "/v1/webhooks",
                json!({"customer_id": Uuid::nil(), "data": {"type": "campaign_created"}}),
            )
            .await;
        assert_eq!(r.status_code, 200);
    }
    assert_eq!(env.sim.webhook_count(), 3);

    // Injected failures: 500 twice, then a request held past the caller's timeout.
    env.sim.inject(Fault::status(Service::Queue, 500, 2));
    assert_eq!(env.call(Service::Queue, agents()).await.status_code, 500);
    assert_eq!(env.call(Service::Queue, agents()).await.status_code, 500);
    assert_eq!(env.call(Service::Queue, agents()).await.status_code, 200);
    env.sim.inject(Fault::no_reply(
        Service::Queue,
        Duration::from_millis(1500),
        1,
    ));
    let rpc = env.client.rpc();
    let res = rpc
        .call_with(
            env.sim.queue_of(Service::Queue),
            &agents(),
            campaign_manager::bus::CallOptions::timeout(Duration::from_millis(300)),
        )
        .await;
    assert!(
        matches!(res, Err(campaign_manager::bus::RpcError::Timeout { .. })),
        "{res:?}"
    );
    assert_eq!(env.call(Service::Queue, agents()).await.status_code, 200);
    env.finish().await;
}
