//! RPC over the bus: a round trip keeps the correlation id, an unparseable request gets a 400 and
//! one without `reply_to` gets nothing, a silent peer times out, the circuit breaker opens, rejects
//! and recovers, and random or truncated requests each get one answer.

use super::*;

#[tokio::test]
async fn rpc_round_trip_and_correlation_id() {
    let p = uniq();
    let (bus, _reg, names) = start(&p, options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    let echo = Arc::new(Echo::default());
    bus.serve_requests(echo.clone(), 10).await.unwrap();

    // Through our own client, many in parallel: each call gets its own reply.
    let rpc = bus.rpc();
    let calls = (0..50).map(|i| {
        let rpc = rpc.clone();
        let q = names.request_queue.clone();
        async move {
            let resp = rpc
                .call(&q, &Request::new("GET", format!("/v1/things/{i}")))
                .await
                .unwrap();
            (i, resp)
        }
    });
    for (i, resp) in futures::future::join_all(calls).await {
        assert_eq!(resp.status_code, 200);
        assert_eq!(resp.data_type, "application/json");
        let v: serde_json::Value = resp.data_as().unwrap();
        assert_eq!(v["uri"], format!("/v1/things/{i}"));
        assert_eq!(v["publisher"], "campaign-manager");
    }
    assert_eq!(rpc.pending_calls(), 0);

    // Raw request: correlation id copied, text/plain, exact body bytes.
    let raw = raw().await;
    let (reply_q, mut replies) = raw.reply_queue().await;
    raw.publish(
        "",
        &names.request_queue,
        br#"{"uri":"/v1/x","method":"POST","publisher":"api-manager","data_type":"application/json","data":{"a":1}}"#,
        text_plain()
            .with_reply_to(reply_q.as_str().into())
            .with_correlation_id("corr-42".into()),
    )
    .await;
    let d = next_msg(&mut replies, Duration::from_secs(5))
        .await
        .expect("reply");
    assert_eq!(
        d.properties.correlation_id().as_ref().map(|c| c.as_str()),
        Some("corr-42")
    );
    assert_eq!(
        d.properties.content_type().as_ref().map(|c| c.as_str()),
        Some("text/plain")
    );
    assert_eq!(
        std::str::from_utf8(&d.data).unwrap(),
        r#"{"status_code":200,"data_type":"application/json","data":{"uri":"/v1/x","method":"POST","publisher":"api-manager"}}"#
    );
    bus.shutdown().await;
    raw.cleanup(&names, &[]).await;
}

#[tokio::test]
async fn unparseable_request_gets_400_and_no_reply_to_gets_nothing() {
    let p = uniq();
    let (bus, _reg, names) = start(&p, options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    let echo = Arc::new(Echo::default());
    bus.serve_requests(echo.clone(), 1).await.unwrap();
    let raw = raw().await;
    let (reply_q, mut replies) = raw.reply_queue().await;
    let with_reply = || {
        text_plain()
            .with_reply_to(reply_q.as_str().into())
            .with_correlation_id("c1".into())
    };

    // Each request that does not parse gets a bare 400 with its own correlation id.
    let unparseable: [(&str, &[u8]); 2] = [
        ("not JSON", b"{not json"),
        ("uri a number", br#"{"uri":5,"method":"GET"}"#),
    ];
    for (case, body) in unparseable {
        let props = text_plain()
            .with_reply_to(reply_q.as_str().into())
            .with_correlation_id(case.into());
        raw.publish("", &names.request_queue, body, props).await;
        let d = next_msg(&mut replies, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("{case}: no 400 reply"));
        assert_eq!(
            &d.data[..],
            br#"{"status_code":400,"data_type":""}"#,
            "{case}"
        );
        assert_eq!(
            d.properties.correlation_id().as_ref().map(|c| c.as_str()),
            Some(case),
            "{case}"
        );
    }
    assert_eq!(echo.calls.load(Ordering::SeqCst), 0);

    // No reply_to: a valid request is handled but not answered; garbage is acked and dropped.
    raw.publish(
        "",
        &names.request_queue,
        br#"{"uri":"/v1/quiet","method":"POST","publisher":"p","data_type":""}"#,
        text_plain(),
    )
    .await;
    raw.publish("", &names.request_queue, b"garbage", text_plain())
        .await;
    // Concurrency 1 => requests are processed in order; this marker comes back last.
    raw.publish(
        "",
        &names.request_queue,
        br#"{"uri":"/v1/marker","method":"GET","publisher":"p","data_type":""}"#,
        with_reply(),
    )
    .await;
    let d = next_msg(&mut replies, Duration::from_secs(5))
        .await
        .expect("marker reply");
    let r: Response = serde_json::from_slice(&d.data).unwrap();
    assert_eq!(
        r.data_as::<serde_json::Value>().unwrap()["uri"],
        "/v1/marker"
    );
    assert!(
        next_msg(&mut replies, Duration::from_millis(300))
            .await
            .is_none()
    );
    assert_eq!(echo.calls.load(Ordering::SeqCst), 2);
    // Everything was acked: nothing left in the queue.
    assert_eq!(raw.message_count(&names.request_queue).await, 0);
    bus.shutdown().await;
    raw.cleanup(&names, &[]).await;
}

#[tokio::test]
async fn rpc_timeout() {
    let p = uniq();
    let (bus, reg, names) = start(&p, options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    let raw = raw().await;
    let silent = format!("{p}.silent");
    raw.declare_queue(&silent).await;
    let started = Instant::now();
    let err = bus
        .rpc()
        .call_with(
            &silent,
            &Request::new("GET", "/v1/nothing"),
            CallOptions::timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(bus.rpc().pending_calls(), 0);
    // The histogram observed the call.
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&reg.gather())
        .unwrap();
    assert!(text.contains("campaign_manager_request_process_time_count"));
    assert!(text.contains(r#"resource="/v1/nothing""#));
    bus.shutdown().await;
    raw.cleanup(&names, &[silent]).await;
}

#[tokio::test]
async fn circuit_breaker_opens_rejects_and_recovers() {
    let p = uniq();
    let mut o = options(&p);
    o.rpc.default_timeout = Duration::from_millis(100);
    o.rpc.breaker = BreakerConfig {
        failure_threshold: 5,
        open_duration: Duration::from_millis(700),
    };
    let (bus, reg, names) = start(&p, o).await;
    let _cleanup = PanicCleanup::new(&names);
    let raw = raw().await;
    let target = format!("{p}.peer");
    raw.declare_queue(&target).await;
    let rpc = bus.rpc();
    let req = Request::new("GET", "/v1/ping");
    for _ in 0..5 {
        let e = rpc.call(&target, &req).await.unwrap_err();
        assert!(matches!(e, RpcError::Timeout { .. }), "{e:?}");
    }
    assert_eq!(rpc.breaker_state(&target), BreakerState::Open);
    let e = rpc.call(&target, &req).await.unwrap_err();
    assert!(matches!(e, RpcError::BreakerOpen { .. }));
    assert_eq!(
        e.to_string(),
        format!("circuit breaker is open for target: {target}")
    );
    let t = target.as_str();
    assert_eq!(
        metric(
            &reg,
            "campaign_manager_circuitbreaker_rejected_total",
            &[("target", t)]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &reg,
            "campaign_manager_circuitbreaker_state",
            &[("target", t)]
        ),
        1.0
    );

    // The peer comes up; after the open period the probe succeeds and closes the breaker.
    let peer_names = Names {
        request_queue: target.clone(),
        ..Names::prefixed(&format!("{p}.peer"))
    };
    let peer_reg = prometheus::Registry::new();
    let mut po = options(&format!("{p}-peer"));
    po.connection.connection_name = format!("cm-bus-test-{p}-peer");
    let peer = Bus::connect_with(URL, peer_names, &peer_reg, po)
        .await
        .unwrap();
    peer.serve_requests(Arc::new(Echo::default()), 2)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let resp = rpc
        .call_with(&target, &req, CallOptions::timeout(Duration::from_secs(3)))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 200);
    assert_eq!(rpc.breaker_state(&target), BreakerState::Closed);
    let tr = |from, to| {
        metric(
            &reg,
            "campaign_manager_circuitbreaker_state_transitions_total",
            &[("target", t), ("from", from), ("to", to)],
        )
    };
    assert_eq!(tr("closed", "open"), 1.0);
    assert_eq!(tr("open", "half-open"), 1.0);
    assert_eq!(tr("half-open", "closed"), 1.0);
    assert_eq!(
        metric(
            &reg,
            "campaign_manager_circuitbreaker_state",
            &[("target", t)]
        ),
        0.0
    );
    // Non-2xx replies are successes for the breaker.
    struct NotFound;
    #[async_trait]
    impl RequestHandler for NotFound {
        async fn handle(&self, _req: Request) -> Response {
            Response::status(404)
        }
    }
    let nf = format!("{p}.nf");
    peer.serve_requests_on(&nf, Arc::new(NotFound), 2)
        .await
        .unwrap();
    for _ in 0..7 {
        let r = rpc
            .call_with(&nf, &req, CallOptions::timeout(Duration::from_secs(3)))
            .await
            .unwrap();
        assert_eq!((r.status_code, r.data_type.as_str()), (404, ""));
    }
    assert_eq!(rpc.breaker_state(&nf), BreakerState::Closed);
    peer.shutdown().await;
    bus.shutdown().await;
    raw.cleanup(&names, &[target, nf]).await;
}

#[tokio::test]
async fn fuzz_random_and_truncated_requests() {
    let p = uniq();
    let (bus, _reg, names) = start(&p, options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    let echo = Arc::new(Echo::default());
    bus.serve_requests(echo.clone(), 10).await.unwrap();
    let raw = raw().await;
    let (reply_q, mut replies) = raw.reply_queue().await;
    let valid = br#"{"uri":"/v1/campaigns?page_size=10","method":"GET","publisher":"api-manager","data_type":"application/json","data":{"customer_id":"60f76478-c454-11ec-969b-13906a5eea9d"},"request_id":"r"}"#;
    let mut rng = seeded_rng("fuzz_random_and_truncated_requests");
    let total = 3000usize;
    let mut expected_replies = 0usize;
    let mut valid_sent = 0usize;
    for i in 0..total {
        let body: Vec<u8> = match i % 4 {
            0 => {
                let n = rng.random_range(0..200);
                (0..n).map(|_| rng.random::<u8>()).collect()
            }
            1 => valid[..rng.random_range(0..valid.len())].to_vec(),
            2 => {
                let mut b = valid.to_vec();
                let k = rng.random_range(0..b.len());
                b[k] = rng.random::<u8>();
                b
            }
            _ => {
                valid_sent += 1;
                valid.to_vec()
            }
        };
        let mut props = text_plain().with_correlation_id(format!("f{i}").into());
        if i % 5 != 0 {
            props = props.with_reply_to(reply_q.as_str().into());
            expected_replies += 1;
        }
        raw.publish("", &names.request_queue, &body, props).await;
    }
    let mut got = 0usize;
    let mut seen = std::collections::HashSet::new();
    while got < expected_replies {
        let d = next_msg(&mut replies, Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("only {got}/{expected_replies} replies"));
        let r: Response = serde_json::from_slice(&d.data).expect("reply is a Response");
        assert!(matches!(r.status_code, 200 | 400), "{r:?}");
        let corr = d.properties.correlation_id().clone().unwrap().to_string();
        assert!(seen.insert(corr), "duplicate reply");
        got += 1;
    }
    assert!(
        next_msg(&mut replies, Duration::from_millis(300))
            .await
            .is_none()
    );
    // Every intact request reached the handler (mutated ones may or may not parse).
    assert!(echo.calls.load(Ordering::SeqCst) >= valid_sent);
    // Still serving.
    let r = bus
        .rpc()
        .call(
            &names.request_queue,
            &Request::new("GET", "/v1/still-alive"),
        )
        .await
        .unwrap();
    assert_eq!(r.status_code, 200);
    bus.shutdown().await;
    raw.cleanup(&names, &[]).await;
}
