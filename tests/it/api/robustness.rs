//! The request queue under stress: a broker-side close of the service's connection (answers
//! again within 5 s, on a new connection), 3,000 random, truncated and corrupted envelopes (each
//! answered once, or not at all without `reply_to`), and metric labels that stay a fixed set
//! under hostile methods, URIs and event types.

use super::*;

/// The broker-side pid of the connection whose channel consumes `queue`.
async fn connection_consuming(queue: &str) -> Option<String> {
    let consumers = rabbitmqctl(&[
        "list_consumers",
        "-q",
        "--no-table-headers",
        "queue_name",
        "channel_pid",
    ])
    .await;
    let channel = consumers.lines().find_map(|l| {
        let mut it = l.split('\t');
        (it.next() == Some(queue)).then(|| it.next().unwrap_or_default().to_owned())
    })?;
    let channels = rabbitmqctl(&[
        "list_channels",
        "-q",
        "--no-table-headers",
        "pid",
        "connection",
    ])
    .await;
    channels.lines().find_map(|l| {
        let mut it = l.split('\t');
        (it.next() == Some(channel.as_str())).then(|| it.next().unwrap_or_default().to_owned())
    })
}

#[tokio::test]
async fn requests_answered_again_after_broker_side_close() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let (c, _, _) = new_campaign(&sys, customer, 0).await;
    let id = c["id"].as_str().unwrap().to_owned();
    let app = sys.app.as_ref().unwrap();
    let queue = sys.names.names.request_queue.clone();
    let conn = connection_consuming(&queue)
        .await
        .expect("the service's connection");
    // It is the service's connection (its client properties carry its connection_name).
    let listing = rabbitmqctl(&[
        "list_connections",
        "-q",
        "--no-table-headers",
        "pid",
        "client_properties",
    ])
    .await;
    let line = listing
        .lines()
        .find(|l| l.starts_with(&format!("{conn}\t")))
        .expect("listed");
    assert!(line.contains(app.bus.connection_name()), "{line}");
    let generation = app.bus.connection().current().map(|l| l.generation);

    rabbitmqctl(&["close_connection", &conn, "test: broker-side close"]).await;
    let closed = Instant::now();
    let req = Request::new("GET", format!("/v1/campaigns/{id}"));
    let mut answered = false;
    while closed.elapsed() < Duration::from_secs(5) {
        match sys
            .client
            .rpc()
            .call_with(
                &queue,
                &req,
                CallOptions::timeout(Duration::from_millis(500)),
            )
            .await
        {
            Ok(r) if r.status_code == 200 => {
                answered = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(answered, "no answer within 5 s of the forced close");
    // A new connection, and a full round trip through the peers (flow create) works again.
    let new_conn = connection_consuming(&queue).await.expect("reconnected");
    assert_ne!(new_conn, conn);
    assert!(app.bus.connection().current().map(|l| l.generation) > generation);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = sys
            .rpc(
                "POST",
                "/v1/campaigns",
                Some(json!({"customer_id": customer, "type": "flow"})),
            )
            .await;
        if r.0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "create after reconnect: {r:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sys.stop().await;
}

fn random_json(rng: &mut impl rand::Rng, depth: u32) -> Value {
    let pick = if depth > 3 {
        rng.random_range(0..5)
    } else {
        rng.random_range(0..8)
    };
    match pick {
        0 => Value::Null,
        1 => json!(rng.random::<bool>()),
        2 => json!(rng.random_range(-1_000_000i64..1_000_000)),
        3 => json!(rng.random::<f64>() * 1e6),
        4 => {
            let words = [
                "",
                "run",
                "stop",
                "call",
                "flow",
                "continue",
                "x",
                "é\u{1F600}",
                "'; DROP",
                NIL,
            ];
            json!(words[rng.random_range(0..words.len())])
        }
        5 => json!(Uuid::new_v4().to_string()),
        6 => Value::Array(
            (0..rng.random_range(0..4))
                .map(|_| random_json(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let keys = [
                "customer_id",
                "type",
                "name",
                "detail",
                "actions",
                "service_level",
                "end_handle",
                "outplan_id",
                "outdial_id",
                "queue_id",
                "next_campaign_id",
                "status",
                "source",
                "dial_timeout",
                "try_interval",
                "max_try_count_0",
                "id",
                "deleted",
                "zzz",
            ];
            let mut m = serde_json::Map::new();
            for _ in 0..rng.random_range(0..6) {
                m.insert(
                    keys[rng.random_range(0..keys.len())].into(),
                    random_json(rng, depth + 1),
                );
            }
            Value::Object(m)
        }
    }
}

#[tokio::test]
async fn fuzz_random_and_truncated_envelopes() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let (c, outplan, _) = new_campaign(&sys, customer, 0).await;
    let cid = c["id"].as_str().unwrap().to_owned();
    let mut raw = RawClient::new().await;
    let q = sys.names.names.request_queue.clone();
    let routes: Vec<(&str, String)> = vec![
        ("POST", "/v1/campaigns".into()),
        ("GET", "/v1/campaigns?page_size=3".into()),
        ("GET", format!("/v1/campaigns/{cid}")),
        ("PUT", format!("/v1/campaigns/{cid}")),
        ("POST", format!("/v1/campaigns/{cid}/execute")),
        ("PUT", format!("/v1/campaigns/{cid}/status")),
        ("PUT", format!("/v1/campaigns/{cid}/service_level")),
        ("PUT", format!("/v1/campaigns/{cid}/actions")),
        ("PUT", format!("/v1/campaigns/{cid}/resource_info")),
        ("PUT", format!("/v1/campaigns/{cid}/next_campaign_id")),
        ("GET", format!("/v1/campaigns/{cid}/stats")),
        ("GET", "/v1/campaigncalls?page_size=2".into()),
        ("GET", format!("/v1/campaigncalls/{}", rand_id())),
        ("DELETE", format!("/v1/campaigncalls/{}", rand_id())),
        ("POST", "/v1/outplans".into()),
        (
            "GET",
            "/v1/outplans?page_size=2&page_token=2020-01-01T00:00:00Z".into(),
        ),
        ("GET", format!("/v1/outplans/{outplan}")),
        ("PUT", format!("/v1/outplans/{outplan}")),
        ("PUT", format!("/v1/outplans/{outplan}/dials")),
        ("DELETE", format!("/v1/campaigns/{}", rand_id())),
        ("DELETE", format!("/v1/outplans/{}", rand_id())),
    ];
    let chars: Vec<char> = "/v1campaignsoutplans?=&-0123456789abcdefABCDEF%._~ \u{e9}"
        .chars()
        .collect();
    let mut rng = seeded_rng("fuzz_random_and_truncated_envelopes");
    let total = 3000usize;
    let mut expected = 0usize;
    let props = |i: usize, reply: bool, reply_q: &str| {
        let mut p = BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_correlation_id(format!("fz{i}").as_str().into());
        if reply {
            p = p.with_reply_to(reply_q.into());
        }
        p
    };
    let reply_q = raw.reply_q.clone();
    for i in 0..total {
        let (m, uri) = &routes[rng.random_range(0..routes.len())];
        let body = random_json(&mut rng, 0).to_string();
        let valid = envelope(m, uri, Some(&body));
        let bytes: Vec<u8> = match i % 6 {
            // A real route with a random JSON body.
            0 | 1 => valid,
            // Truncated.
            2 => valid[..rng.random_range(0..valid.len())].to_vec(),
            // A random URI (and method).
            3 => {
                let uri: String = (0..rng.random_range(0..60))
                    .map(|_| chars[rng.random_range(0..chars.len())])
                    .collect();
                let methods = ["GET", "POST", "PUT", "DELETE", "HEAD", ""];
                envelope(
                    methods[rng.random_range(0..methods.len())],
                    &uri,
                    Some(&body),
                )
            }
            // Random bytes.
            4 => (0..rng.random_range(0..300))
                .map(|_| rng.random::<u8>())
                .collect(),
            // One byte flipped.
            _ => {
                let mut b = valid;
                let k = rng.random_range(0..b.len());
                b[k] = rng.random::<u8>();
                b
            }
        };
        let reply = i % 7 != 0;
        if reply {
            expected += 1;
        }
        raw.publish("", &q, &bytes, props(i, reply, &reply_q)).await;
    }
    let mut got = 0usize;
    let mut seen = std::collections::HashSet::new();
    let mut counts = std::collections::BTreeMap::new();
    while got < expected {
        let d = match tokio::time::timeout(Duration::from_secs(30), raw.replies.next()).await {
            Ok(Some(Ok(d))) => d,
            _ => panic!("only {got}/{expected} replies"),
        };
        let r: Response = serde_json::from_slice(&d.data).expect("a Response");
        assert!(
            matches!(r.status_code, 200 | 400 | 404 | 409),
            "status {}: {}",
            r.status_code,
            String::from_utf8_lossy(&d.data)
        );
        *counts.entry(r.status_code).or_insert(0usize) += 1;
        let corr = d
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.to_string());
        assert!(seen.insert(corr.clone()), "duplicate reply {corr:?}");
        got += 1;
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(500), raw.replies.next())
            .await
            .is_err(),
        "no extra replies"
    );
    assert!(counts.get(&400).copied().unwrap_or(0) > 0, "{counts:?}");
    assert!(counts.get(&404).copied().unwrap_or(0) > 0, "{counts:?}");
    // Still answering normally.
    let g = sys.ok("GET", &format!("/v1/campaigns/{cid}"), None).await;
    assert_eq!(g["id"], cid);
    let o = new_outplan(&sys, customer).await;
    assert_eq!(o["customer_id"], customer.to_string());
    sys.stop().await;
}

/// Every series of `family` in the service's registry, as its label pairs.
fn series(sys: &TestSystem, family: &str) -> Vec<Vec<(String, String)>> {
    let app = sys.app.as_ref().expect("service running");
    app.metrics
        .registry
        .gather()
        .iter()
        .filter(|f| f.name() == family)
        .flat_map(|f| f.get_metric().iter())
        .map(|m| {
            m.get_label()
                .iter()
                .map(|l| (l.name().to_owned(), l.value().to_owned()))
                .collect()
        })
        .collect()
}

/// Distinct values of `label` over the series of `family`.
fn label_values(sys: &TestSystem, family: &str, label: &str) -> std::collections::BTreeSet<String> {
    series(sys, family)
        .into_iter()
        .flatten()
        .filter(|(k, _)| k == label)
        .map(|(_, v)| v)
        .collect()
}

/// Number of series in the whole registry.
fn all_series(sys: &TestSystem) -> usize {
    let app = sys.app.as_ref().expect("service running");
    app.metrics
        .registry
        .gather()
        .iter()
        .map(|f| f.get_metric().len())
        .sum()
}

fn random_text(rng: &mut impl rand::Rng, max: usize) -> String {
    let chars: Vec<char> = "abcXYZ/?=&-_.0123456789 %\u{e9}\u{1F600}\"\\"
        .chars()
        .collect();
    (0..rng.random_range(0..max))
        .map(|_| chars[rng.random_range(0..chars.len())])
        .collect()
}

#[tokio::test]
async fn metric_labels_stay_bounded_under_hostile_envelopes() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |s| {
        // One event at a time, so a last sentinel event is handled after all the others.
        s.event_concurrency = 1;
    })
    .await;
    let mut raw = RawClient::new().await;
    let q = sys.names.names.request_queue.clone();
    // A few legitimate requests so every label the service uses exists before the flood.
    let customer = Uuid::new_v4();
    new_outplan(&sys, customer).await;
    let (status, _, _) = sys
        .rpc("GET", &format!("/v1/campaigns/{}", rand_id()), None)
        .await;
    assert_eq!(status, 404, "an unknown campaign");
    let before = all_series(&sys);

    let mut rng = seeded_rng("metric_labels_stay_bounded_under_hostile_envelopes");
    let methods = ["GET", "POST", "PUT", "DELETE", "get", "HEAD", "PATCH", ""];
    let paths = [
        "/v1/campaigns",
        "/v1/campaigns?page_size=1",
        "/v1/campaigncalls?",
        "/v1/outplans?",
    ];
    let rounds = 600;
    for i in 0..rounds {
        let method = if i % 2 == 0 {
            random_text(&mut rng, 40)
        } else {
            methods[rng.random_range(0..methods.len())].to_owned()
        };
        let uri = match i % 3 {
            0 => random_text(&mut rng, 80),
            1 => format!("/v1/campaigns/{}", rand_id()),
            _ => paths[rng.random_range(0..paths.len())].to_owned(),
        };
        let reply = raw.send(&q, &envelope(&method, &uri, None)).await;
        let r: Response = serde_json::from_str(&reply).expect("a Response");
        assert!(r.status_code < 500, "{method:?} {uri:?} → {reply}");
    }
    // Events of random types and publishers (also the handled publishers with other types).
    let publishers = ["call-manager", "flow-manager", "", "x"];
    for i in 0..rounds {
        let publisher = if i % 2 == 0 {
            publishers[rng.random_range(0..publishers.len())].to_owned()
        } else {
            random_text(&mut rng, 30)
        };
        let ev = json!({"type": random_text(&mut rng, 30), "publisher": publisher,
            "data_type": "application/json", "data": {"id": rand_id()}});
        // Routed to the subscribe queue whatever the envelope says: on the topic bus the key
        // decides, and it is the handled events'.
        let (exchange, key) = if i % 2 == 0 {
            peer_events::route_in(&sys, "call-manager", "call_hangup", &rand_id())
        } else {
            peer_events::route_in(&sys, "flow-manager", "activeflow_deleted", "")
        };
        raw.publish(
            &exchange,
            &key,
            ev.to_string().as_bytes(),
            BasicProperties::default().with_content_type("text/plain".into()),
        )
        .await;
    }
    publish_hangup(&sys, &raw, &rand_id(), "normal").await;
    let hangups = || {
        series(
            &sys,
            "campaign_manager_receive_subscribe_event_process_time",
        )
        .iter()
        .any(|s| s.contains(&("type".to_owned(), "call_hangup".to_owned())))
    };
    wait_until(
        "the sentinel hangup handled",
        Duration::from_secs(30),
        || {
            let done = hangups();
            async move { done }
        },
    )
    .await;

    let family = "campaign_manager_receive_request_process_time";
    let methods_seen = label_values(&sys, family, "method");
    let allowed: std::collections::BTreeSet<String> = ["GET", "POST", "PUT", "DELETE", "other"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(methods_seen.is_subset(&allowed), "{methods_seen:?}");
    assert!(methods_seen.contains("other"), "{methods_seen:?}");
    let statuses_seen = label_values(&sys, family, "status");
    let classes: std::collections::BTreeSet<String> = ["2xx", "3xx", "4xx", "5xx", "other"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(statuses_seen.is_subset(&classes), "{statuses_seen:?}");
    let routes_seen = label_values(&sys, family, "type");
    assert!(routes_seen.contains("notfound"), "{routes_seen:?}");
    assert!(
        routes_seen
            .iter()
            .all(|t| t == "notfound" || t.starts_with("/v1/")),
        "{routes_seen:?}"
    );
    // 14 route labels (the 13 of the platform + stats) + notfound, 5 methods.
    assert!(
        series(&sys, family).len() <= 15 * 5,
        "{:?}",
        series(&sys, family)
    );
    let events_seen = series(
        &sys,
        "campaign_manager_receive_subscribe_event_process_time",
    );
    assert_eq!(
        events_seen,
        vec![vec![
            ("publisher".to_owned(), "call-manager".to_owned()),
            ("type".to_owned(), "call_hangup".to_owned()),
        ]]
    );
    // 1,200 hostile messages added at most the fixed sets above to the whole registry.
    let after = all_series(&sys);
    assert!(
        after <= before + 15 * 5 + 2,
        "series grew from {before} to {after}"
    );
    sys.stop().await;
}
