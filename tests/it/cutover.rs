//! What the cut-over and the rollback (docs/cutover.md) rely on, against the real broker, MySQL
//! and Redis:
//!
//! * the service consumes the request and subscribe queues under its own consumer tag
//!   (`campaign-manager-rs`, the Go service's is `campaign-manager`) on a connection whose name
//!   says it is ours, so `rabbitmqctl list_consumers` tells the two apart;
//! * the durable off switch (`queue pause --durable`, a row in MySQL): with it set, this test's
//!   Redis keys deleted (as a flush would) and every worker process restarted, nothing ticks
//!   until it is cleared; then ticking comes back by itself.

use crate::support;

use std::time::{Duration, Instant};

use campaign_manager::bus::identity;
use campaign_sim::{Outcome, Scenario};
use serde_json::json;
use support::black_box::{create_campaign, id_of, set_status};
use support::{TestSystem, spawn_worker};
use uuid::Uuid;

async fn rabbitmqctl(args: &[&str]) -> String {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .await
        .expect("rabbitmqctl");
    assert!(out.status.success(), "rabbitmqctl {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn the_service_consumes_under_its_own_tag_and_connection_name() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let app = sys.app.as_ref().expect("running");
    let names = &sys.names.names;
    let consumers = rabbitmqctl(&[
        "list_consumers",
        "-q",
        "--no-table-headers",
        "queue_name",
        "consumer_tag",
    ])
    .await;
    for queue in [&names.request_queue, &names.subscribe_queue] {
        let tags: Vec<&str> = consumers
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .filter(|(q, _)| q == queue)
            .map(|(_, tag)| tag.trim())
            .collect();
        assert_eq!(tags, [identity::CONSUMER_TAG], "consumers of {queue}");
        assert_eq!(identity::CONSUMER_TAG, "campaign-manager-rs");
    }
    let name = app.bus.connection_name();
    assert!(
        name.starts_with(&format!("campaign-manager-rs-{}-", std::process::id())),
        "{name}"
    );
    let connections = rabbitmqctl(&[
        "list_connections",
        "-q",
        "--no-table-headers",
        "client_properties",
    ])
    .await;
    assert!(
        connections.contains(name),
        "the broker does not list the connection {name}"
    );
    sys.stop().await;
}

/// The calls the simulator has been asked for (this test's only campaign).
fn calls(sys: &TestSystem) -> usize {
    sys.sim.calls().len()
}

/// Deletes this test's Redis keys (tick namespace and cache), as `FLUSHDB` would for it.
fn flush_our_keys(sys: &TestSystem) {
    let client = redis::Client::open(support::redis_url()).expect("redis");
    let mut conn = client.get_connection().expect("redis connection");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", sys.prefix.0))
        .query(&mut conn)
        .expect("keys");
    assert!(!keys.is_empty(), "the test's keys exist");
    let _: () = redis::cmd("DEL").arg(keys).query(&mut conn).expect("del");
}

async fn wait_for_calls(sys: &TestSystem, more_than: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let n = calls(sys);
        if n > more_than {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "no call beyond {more_than} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const WORKER_FLAGS: [&str; 8] = [
    "--workers",
    "4",
    "--first_tick_ms",
    "100",
    "--dial_tick_ms",
    "100",
    "--wait_tick_ms",
    "300",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_pause_holds_every_tick_through_a_redis_flush_and_worker_restarts() {
    // The service answers RPCs only; ticks run in two worker processes, as in the kit.
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |s| s.workers = 0).await;
    let app = sys.app.as_ref().expect("running");
    let mut workers = vec![
        spawn_worker(&sys, &WORKER_FLAGS),
        spawn_worker(&sys, &WORKER_FLAGS),
    ];
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 400, 1);
    let campaign = create_campaign(&sys, "durable pause", customer, outdial, json!({})).await;
    set_status(&sys, id_of(&campaign), "run").await;
    wait_for_calls(&sys, 2, Duration::from_secs(30)).await;

    // `campaign-control queue pause --durable`: MySQL first, then Redis.
    let namespace = &sys.settings.tick_namespace;
    app.store
        .tick_switch
        .set(namespace, true, "test: durable pause")
        .await
        .expect("switch off");
    app.chains.pause().await.expect("pause");
    // Every worker process dies; Redis loses this test's keys (the Redis pause with them).
    for w in &mut workers {
        let _ = w.start_kill();
        let _ = w.wait().await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // calls already on the bus land
    flush_our_keys(&sys);
    let held = calls(&sys);
    workers = vec![
        spawn_worker(&sys, &WORKER_FLAGS),
        spawn_worker(&sys, &WORKER_FLAGS),
    ];
    // Long enough for the new workers to start, read the switch, re-seed the chain (reconcile
    // every 2 s) and, without the switch, restore an unknown pause as "not paused" (500 ms) and
    // dial at 10 calls a second.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        calls(&sys),
        held,
        "a call was placed while ticking was switched off durably"
    );
    assert!(
        app.chains
            .is_live(&id_of(&campaign).to_string())
            .await
            .expect("is_live"),
        "the reconciler re-seeded the chain (held, not lost)"
    );

    // `queue resume`: MySQL first, then Redis. Ticking comes back by itself.
    app.store
        .tick_switch
        .set(namespace, false, "")
        .await
        .expect("switch on");
    app.chains.resume().await.expect("resume");
    wait_for_calls(&sys, held, Duration::from_secs(30)).await;

    for w in &mut workers {
        let _ = w.start_kill();
        let _ = w.wait().await;
    }
    sys.stop().await;
}
