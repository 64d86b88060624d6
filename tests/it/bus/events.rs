//! Events on the fanout bus: a published event reaches a bound queue as the platform sends it;
//! a subscriber retries a failing event, then dead-letters it, and leaves it queued while the
//! dead-letter queue is missing.

use super::*;

#[tokio::test]
async fn event_publish_reaches_bound_queue() {
    let p = uniq();
    let (bus, _reg, names) = start(&p, options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    let raw = raw().await;
    raw.ch
        .exchange_declare(
            names.event_exchange.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let (q, mut msgs) = raw.reply_queue().await;
    raw.ch
        .queue_bind(
            q.as_str().into(),
            names.event_exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let ev = Event::json(
        "campaign_created",
        &serde_json::json!({"id": "abc", "n": 1}),
    )
    .unwrap();
    bus.publisher().publish(&ev).await.unwrap();
    assert_delivered(
        &mut msgs,
        (&names.event_exchange, ""),
        r#"{"type":"campaign_created","publisher":"campaign-manager","data_type":"application/json","data":{"id":"abc","n":1}}"#,
    )
    .await;
    bus.shutdown().await;
    // After shutdown publishing fails fast with a typed error.
    let e = bus.publisher().publish(&ev).await.unwrap_err();
    assert!(
        matches!(e, BusError::Unavailable(_) | BusError::Shutdown),
        "{e:?}"
    );
    raw.cleanup(&names, &[]).await;
}

#[tokio::test]
async fn subscriber_retries_then_dead_letters() {
    let p = uniq();
    let (bus, reg, names) = start(&p, options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    let rec = Arc::new(Recorder::default());
    // Exchanges are declared by subscribe itself (empty broker).
    bus.subscribe(rec.clone()).await.unwrap();
    let raw = raw().await;
    let event = |t: &str| {
        format!(
            r#"{{"type":"{t}","publisher":"call-manager","data_type":"application/json","data":{{"id":"x"}}}}"#
        )
    };
    raw.publish(
        &names.call_event_exchange,
        "",
        event("call_hangup").as_bytes(),
        text_plain(),
    )
    .await;
    raw.publish(
        &names.flow_event_exchange,
        "",
        event("activeflow_deleted").as_bytes(),
        text_plain(),
    )
    .await;
    // Poison first, then a good event: the good one must still be handled.
    raw.publish(
        &names.flow_event_exchange,
        "",
        b"{{{ not json",
        text_plain(),
    )
    .await;
    raw.publish(
        &names.call_event_exchange,
        "",
        event("after_poison").as_bytes(),
        text_plain(),
    )
    .await;
    let mut origin = FieldTable::default();
    origin.insert(
        "x-test-origin".into(),
        lapin::types::AMQPValue::LongString("kept".into()),
    );
    raw.publish(
        &names.call_event_exchange,
        "",
        event("fail").as_bytes(),
        text_plain()
            .with_headers(origin)
            .with_message_id("m-1".into()),
    )
    .await;

    let q = names.subscribe_queue.as_str();
    let dead = || {
        metric(
            &reg,
            "campaign_manager_event_dead_lettered_total",
            &[("queue", q)],
        )
    };
    wait_until("2 dead letters", Duration::from_secs(15), || async {
        dead() >= 2.0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = rec.seen.lock().await.clone();
    for t in ["call_hangup", "activeflow_deleted", "after_poison"] {
        assert_eq!(seen.iter().filter(|s| *s == t).count(), 1, "{t}: {seen:?}");
    }
    // One first attempt plus three retries.
    assert_eq!(seen.iter().filter(|s| *s == "fail").count(), 4, "{seen:?}");
    assert_eq!(dead(), 2.0);
    // Nothing is dropped any more.
    assert_eq!(
        metric(&reg, "rabbitmqhandler_event_dropped_total", &[("queue", q)]),
        0.0
    );
    for n in ["1", "2", "3"] {
        // The failing event and the poison body were each retried once per level.
        assert_eq!(
            metric(
                &reg,
                "rabbitmqhandler_event_retried_total",
                &[("queue", q), ("retry_count", n)]
            ),
            2.0
        );
    }
    // Both wait in the durable dead-letter queue with their body, headers and why/when.
    assert_eq!(raw.message_count(&names.subscribe_dead_queue).await, 2);
    let letters = drain_queue(&raw, &names.subscribe_dead_queue).await;
    assert_eq!(letters.len(), 2);
    let by_body = |body: &[u8]| {
        letters
            .iter()
            .find(|d| d.data == body)
            .unwrap_or_else(|| panic!("no dead letter {}", String::from_utf8_lossy(body)))
    };
    let (failed, poison) = (by_body(event("fail").as_bytes()), by_body(b"{{{ not json"));
    assert_eq!(header_text(failed, "x-test-origin"), "kept");
    assert_eq!(
        failed.properties.message_id().as_ref().map(|m| m.as_str()),
        Some("m-1")
    );
    assert_eq!(failed.properties.delivery_mode(), &Some(2));
    for d in [failed, poison] {
        assert_eq!(
            header(d, "x-retry-count"),
            Some(&lapin::types::AMQPValue::LongLongInt(3))
        );
        let first = header_text(d, "x-first-failed-at");
        let at = header_text(d, "x-dead-lettered-at");
        let (first, at) = (
            chrono::DateTime::parse_from_rfc3339(&first).expect("RFC 3339"),
            chrono::DateTime::parse_from_rfc3339(&at).expect("RFC 3339"),
        );
        assert!(first <= at, "{first} > {at}");
        assert_eq!(header_text(d, "x-original-queue"), q);
    }
    assert_eq!(header_text(failed, "x-death-reason"), "induced failure");
    assert!(!header_text(poison, "x-death-reason").is_empty());
    bus.shutdown().await;
    raw.cleanup(&names, &[]).await;
}

#[tokio::test]
async fn event_stays_queued_while_the_dead_letter_queue_is_missing() {
    let p = uniq();
    let (bus, reg, names) = start(&p, options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    let rec = Arc::new(Recorder::default());
    bus.subscribe(rec.clone()).await.unwrap();
    let raw = raw().await;
    // An operator deleted the dead-letter queue: the publish to it is unroutable.
    raw.ch
        .queue_delete(
            names.subscribe_dead_queue.as_str().into(),
            QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    raw.publish(
        &names.call_event_exchange,
        "",
        br#"{"type":"fail","publisher":"call-manager","data_type":"application/json"}"#,
        text_plain(),
    )
    .await;
    // Four attempts, then each failed dead-lettering puts it back and it is handled again.
    let attempts = || {
        let rec = rec.clone();
        async move { rec.seen.lock().await.len() }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while attempts().await < 6 {
        assert!(Instant::now() < deadline, "event not redelivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let q = names.subscribe_queue.as_str();
    assert_eq!(
        metric(
            &reg,
            "campaign_manager_event_dead_lettered_total",
            &[("queue", q)]
        ),
        0.0
    );
    // The queue is back: the next attempt lands there.
    raw.declare_queue(&names.subscribe_dead_queue).await;
    wait_until("dead letter", Duration::from_secs(15), || async {
        metric(
            &reg,
            "campaign_manager_event_dead_lettered_total",
            &[("queue", q)],
        ) >= 1.0
    })
    .await;
    bus.shutdown().await;
    let letters = drain_queue(&raw, &names.subscribe_dead_queue).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(
        header(&letters[0], "x-retry-count"),
        Some(&lapin::types::AMQPValue::LongLongInt(3))
    );
    raw.cleanup(&names, &[]).await;
}
