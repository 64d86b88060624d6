//! `events dead list/replay/purge` against an in-process subscriber whose handler fails on
//! demand: dead events listed, replayed into the handler, purged.

use super::*;

/// Fails every event while `failing` is set; records the types it handled successfully.
#[derive(Default)]
struct Flaky {
    failing: std::sync::atomic::AtomicBool,
    handled: Mutex<Vec<String>>,
}

#[async_trait]
impl campaign_manager::bus::EventHandler for Flaky {
    async fn handle(
        &self,
        ev: campaign_manager::bus::Event,
    ) -> Result<(), campaign_manager::bus::BoxError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(format!("induced failure of {}", ev.r#type).into());
        }
        self.handled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ev.r#type);
        Ok(())
    }
}

/// A raw channel (confirm mode) for publishing peer events and reading queue depths.
async fn raw_channel() -> (lapin::Connection, lapin::Channel) {
    let conn = lapin::Connection::connect(AMQP, lapin::ConnectionProperties::default())
        .await
        .expect("raw connect");
    let ch = conn.create_channel().await.expect("raw channel");
    ch.confirm_select(Default::default())
        .await
        .expect("confirm mode");
    (conn, ch)
}

/// A call_hangup's key on the platform's topic exchange (the subscribe queue binds it).
const HANGUP_KEY: &str = "call-manager.call.x.hangup";

async fn publish_raw(ch: &lapin::Channel, exchange: &str, key: &str, kind: &str) {
    let body = format!(
        r#"{{"type":"{kind}","publisher":"call-manager","data_type":"application/json","data":{{"id":"x"}}}}"#
    );
    let mut headers = lapin::types::FieldTable::default();
    headers.insert(
        "x-test-origin".into(),
        lapin::types::AMQPValue::LongString("kept".into()),
    );
    ch.basic_publish(
        exchange.into(),
        key.into(),
        Default::default(),
        body.as_bytes(),
        lapin::BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_headers(headers),
    )
    .await
    .expect("publish")
    .await
    .expect("confirm");
}

/// Messages ready in `queue` (declared durable if absent, as the service declares it).
async fn depth(ch: &lapin::Channel, queue: &str) -> u32 {
    ch.queue_declare(
        queue.into(),
        lapin::options::QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        Default::default(),
    )
    .await
    .expect("declare")
    .message_count()
}

#[tokio::test]
async fn events_dead_list_replay_and_purge() {
    let prefix = TestPrefix::new();
    let ctx = Ctx::new(&prefix);
    let names = Names::prefixed(&ctx.queue_prefix);
    let dead = names.subscribe_dead_queue.clone();
    let mut options = campaign_manager::bus::BusOptions::default();
    options.subscriber.retry_delays = vec![Duration::from_millis(50); 3];
    options.subscriber.topic_patterns = campaign_manager::events::topic_patterns();
    let bus = campaign_manager::bus::Bus::connect_with(
        AMQP,
        names.clone(),
        &prometheus::Registry::new(),
        options,
    )
    .await
    .expect("bus");
    let flaky = Arc::new(Flaky::default());
    flaky
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    bus.subscribe(flaky.clone()).await.expect("subscribe");
    let (_raw_conn, ch) = raw_channel().await;
    for kind in ["first", "second"] {
        publish_raw(&ch, &names.topic_exchange, HANGUP_KEY, kind).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while depth(&ch, &dead).await < 2 {
        assert!(Instant::now() < deadline, "events never reached {dead}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // list: both, oldest first, with why and when; twice, because it does not consume.
    for _ in 0..2 {
        let l = ctx
            .run(&["--json", "events", "dead", "list"])
            .await
            .ok()
            .json();
        assert_eq!(l["queue"], dead.as_str());
        assert_eq!(l["total"], 2, "{l}");
        let events = l["events"].as_array().expect("events");
        assert_eq!(events.len(), 2, "{l}");
        let mut kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        kinds.sort_unstable();
        assert_eq!(kinds, ["first", "second"]);
        for e in events {
            assert_eq!(e["publisher"], "call-manager");
            assert_eq!(e["retry_count"], 3, "{e}");
            let reason = e["reason"].as_str().expect("reason");
            assert!(reason.starts_with("induced failure of "), "{reason}");
            for at in ["first_failed_at", "dead_lettered_at"] {
                let t = e[at].as_str().expect(at);
                chrono::DateTime::parse_from_rfc3339(t).expect("RFC 3339");
            }
            assert_eq!(e["headers"]["x-test-origin"], "kept", "{e}");
            assert_eq!(
                e["headers"]["x-original-queue"],
                names.subscribe_queue.as_str()
            );
            assert_eq!(e["body"]["data"]["id"], "x");
        }
    }
    let l = ctx
        .run(&["--json", "events", "dead", "list", "--limit", "1"])
        .await
        .ok()
        .json();
    assert_eq!(
        (l["total"].as_u64(), l["events"].as_array().map(Vec::len)),
        (Some(2), Some(1))
    );
    let human = ctx.run(&["events", "dead", "list"]).await.ok().stdout;
    assert!(
        human.contains(&format!("queue {dead}: 2 event(s)")),
        "{human}"
    );
    assert!(human.contains("induced failure of"), "{human}");

    // Replay needs a selection and, without a terminal, --yes; neither changes anything.
    ctx.run(&["events", "dead", "replay"])
        .await
        .fails(2, "Usage:");
    ctx.run(&["events", "dead", "replay", "--count", "1"])
        .await
        .fails(2, "pass --yes");
    assert_eq!(depth(&ch, &dead).await, 2);

    // The handler works again: replay one, then the rest; each reaches it once.
    flaky
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let r = ctx
        .run(&[
            "--json", "events", "dead", "replay", "--count", "1", "--yes",
        ])
        .await
        .ok()
        .json();
    assert_eq!(
        (r["found"].as_u64(), r["replayed"].as_u64()),
        (Some(2), Some(1)),
        "{r}"
    );
    assert_eq!(r["subscribe_queue"], names.subscribe_queue.as_str());
    let l = ctx
        .run(&["--json", "events", "dead", "list"])
        .await
        .ok()
        .json();
    assert_eq!(l["total"], 1, "{l}");
    let r = ctx
        .run(&["events", "dead", "replay", "--all", "--yes"])
        .await
        .ok();
    assert!(r.stdout.contains("replayed 1 of 1"), "{}", r.stdout);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut got = flaky
            .handled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        got.sort_unstable();
        if got == ["first", "second"] {
            break;
        }
        assert!(got.len() < 2, "handled twice: {got:?}");
        assert!(
            Instant::now() < deadline,
            "replayed events not handled: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(depth(&ch, &dead).await, 0);
    let r = ctx
        .run(&["--json", "events", "dead", "replay", "--all", "--yes"])
        .await
        .ok()
        .json();
    assert_eq!(r["replayed"], 0);

    // purge: asks (refused without a terminal), then deletes.
    flaky
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    publish_raw(&ch, &names.topic_exchange, HANGUP_KEY, "third").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while depth(&ch, &dead).await < 1 {
        assert!(Instant::now() < deadline, "third event never dead-lettered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ctx.run(&["events", "dead", "purge"])
        .await
        .fails(2, "pass --yes");
    let p = ctx
        .run(&["--json", "events", "dead", "purge", "--yes"])
        .await
        .ok()
        .json();
    assert_eq!(p["purged"], 1);
    assert_eq!(depth(&ch, &dead).await, 0);
    bus.shutdown().await;

    // Without a subscribe queue (service never ran) a replay fails and keeps the event.
    let orphan = TestNames::new();
    let odead = orphan.names.subscribe_dead_queue.clone();
    depth(&ch, &odead).await;
    publish_raw(&ch, "", &odead, "orphan").await;
    let r = cli(&[
        "--rabbitmq_address",
        AMQP,
        "--queue_prefix",
        &orphan.prefix,
        "events",
        "dead",
        "replay",
        "--all",
        "--yes",
    ])
    .await;
    r.fails(1, "replay stopped after 0 event(s)")
        .fails(1, &orphan.names.subscribe_queue);
    assert_eq!(depth(&ch, &odead).await, 1);

    // No broker.
    cli(&[
        "--rabbitmq_address",
        "amqp://guest:guest@127.0.0.1:1",
        "events",
        "dead",
        "list",
    ])
    .await
    .fails(1, "cannot reach RabbitMQ at 127.0.0.1:1");
    for help in [
        &["events", "--help"][..],
        &["events", "dead", "replay", "--help"][..],
    ] {
        let r = cli(help).await.ok();
        assert!(r.stdout.contains("Usage: campaign-control"), "{}", r.stdout);
    }
}
