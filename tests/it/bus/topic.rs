//! The topic bus (the platform's `bin-manager.event`): a subscriber hears exactly its patterns and
//! declares no fanout, retries then dead-letters, a publisher sends keyed events to the topic
//! exchange only, an exchange of another kind fails the declare, no patterns is refused.

use super::*;

/// Whether `exchange` exists on the broker.
async fn exchange_exists(raw: &Raw, exchange: &str) -> bool {
    crate::support::amqp::exchange_exists(&raw._conn, exchange).await
}

fn peer_event(kind: &str) -> Vec<u8> {
    format!(r#"{{"type":"{kind}","publisher":"peer","data_type":"application/json","data":{{}}}}"#)
        .into_bytes()
}

#[tokio::test]
async fn topic_subscriber_hears_exactly_its_patterns_and_declares_no_fanout() {
    let p = uniq();
    let (bus, _reg, names) = start(&p, topic_options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    let rec = Arc::new(Recorder::default());
    bus.subscribe(rec.clone())
        .await
        .expect("subscribe on the topic bus");
    let raw = raw().await;
    // Routed in publish order: anything not matching would arrive before the last two.
    for (key, kind) in [
        ("call-manager.call.c1.created", "call_created"),
        ("call-manager.call.c1", "short_key"),
        ("campaign-manager.campaign.x.created", "campaign_created"),
        ("flow-manager.activeflow.a1.created", "activeflow_created"),
        ("call-manager.call.c1.hangup", "call_hangup"),
        ("flow-manager.activeflow.-.deleted", "activeflow_deleted"),
    ] {
        raw.publish(&names.topic_exchange, key, &peer_event(kind), text_plain())
            .await;
    }
    wait_until("both matching events", Duration::from_secs(10), || async {
        rec.seen.lock().await.len() >= 2
    })
    .await;
    assert_eq!(
        *rec.seen.lock().await,
        ["call_hangup", "activeflow_deleted"]
    );
    // The peers' fanout exchanges were neither declared nor bound.
    assert!(!exchange_exists(&raw, &names.call_event_exchange).await);
    assert!(!exchange_exists(&raw, &names.flow_event_exchange).await);
    assert!(exchange_exists(&raw, &names.topic_exchange).await);
    bus.shutdown().await;
    raw.cleanup(&names, &[]).await;
}

#[tokio::test]
async fn topic_subscriber_retries_then_dead_letters() {
    let p = uniq();
    let (bus, reg, names) = start(&p, topic_options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    let rec = Arc::new(Recorder::default());
    bus.subscribe(rec.clone()).await.unwrap();
    let raw = raw().await;
    raw.publish(
        &names.topic_exchange,
        "call-manager.call.c2.hangup",
        &peer_event("fail"),
        text_plain(),
    )
    .await;
    let q = names.subscribe_queue.as_str();
    wait_until("the dead letter", Duration::from_secs(15), || async {
        metric(
            &reg,
            "campaign_manager_event_dead_lettered_total",
            &[("queue", q)],
        ) >= 1.0
    })
    .await;
    // One first attempt plus three retries through the retry queues.
    assert_eq!(*rec.seen.lock().await, ["fail"; 4]);
    let letters = drain_queue(&raw, &names.subscribe_dead_queue).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].data, peer_event("fail"));
    assert_eq!(
        header(&letters[0], "x-retry-count"),
        Some(&lapin::types::AMQPValue::LongLongInt(3))
    );
    bus.shutdown().await;
    raw.cleanup(&names, &[]).await;
}

#[tokio::test]
async fn topic_publisher_sends_keyed_events_to_the_topic_exchange_only() {
    let p = uniq();
    let (bus, _reg, names) = start(&p, topic_options(&p)).await;
    let _cleanup = PanicCleanup::new(&names);
    bus.declare_event_exchange().await.expect("declare");
    let raw = raw().await;
    let (q, mut msgs) = raw.reply_queue().await;
    raw.ch
        .queue_bind(
            q.as_str().into(),
            names.topic_exchange.as_str().into(),
            "campaign-manager.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let campaign = "7c41a9e0-0000-4000-8000-000000000001";
    let ev = Event::json("campaigncall_created", &serde_json::json!({"id": "cc"})).unwrap();
    let key = bus
        .publisher()
        .publish_addressed(&ev, campaign)
        .await
        .unwrap();
    assert_eq!(
        key,
        format!("campaign-manager.campaigncall.{campaign}.created")
    );
    assert_delivered(
        &mut msgs,
        (&names.topic_exchange, &key),
        r#"{"type":"campaigncall_created","publisher":"campaign-manager","data_type":"application/json","data":{"id":"cc"}}"#,
    )
    .await;
    // The nil address goes out under the placeholder.
    let nil = uuid::Uuid::nil().to_string();
    let key = bus.publisher().publish_addressed(&ev, &nil).await.unwrap();
    assert_eq!(key, "campaign-manager.campaigncall.-.created");
    // Our fanout exchange was never declared.
    assert!(!exchange_exists(&raw, &names.event_exchange).await);
    bus.shutdown().await;
    raw.cleanup(&names, &[]).await;
}

#[tokio::test]
async fn a_topic_exchange_of_another_kind_fails_the_declare_and_the_subscription() {
    let p = uniq();
    let mut o = topic_options(&p);
    o.ready_timeout = Duration::from_secs(2);
    let (bus, _reg, names) = start(&p, o).await;
    let _cleanup = PanicCleanup::new(&names);
    let raw = raw().await;
    // Someone declared the platform's exchange name with the wrong kind.
    crate::support::peer_events::declare(&raw.ch, &names.topic_exchange, ExchangeKind::Fanout)
        .await;
    let e = bus.declare_event_exchange().await.unwrap_err();
    assert!(e.to_string().contains("PRECONDITION_FAILED"), "{e}");
    let e = bus
        .subscribe(Arc::new(Recorder::default()))
        .await
        .unwrap_err();
    assert!(matches!(e, BusError::NotRegistered { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains(&names.subscribe_queue) && text.contains("PRECONDITION_FAILED"),
        "{text}"
    );
    bus.shutdown().await;
    raw.cleanup(&names, &[]).await;
}

#[tokio::test]
async fn subscribing_on_the_topic_bus_without_patterns_is_refused() {
    let p = uniq();
    let mut o = topic_options(&p);
    o.subscriber.topic_patterns.clear();
    let (bus, _reg, names) = start(&p, o).await;
    let _cleanup = PanicCleanup::new(&names);
    let e = bus
        .subscribe(Arc::new(Recorder::default()))
        .await
        .unwrap_err();
    assert!(matches!(e, BusError::Config(_)), "{e:?}");
    bus.shutdown().await;
}
