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

use std::time::Duration;

use campaign_manager::bus::identity;
use campaign_sim::{Outcome, Scenario};
use serde_json::json;
use support::black_box::{create_campaign, id_of, set_status};
use support::{TestSystem, rabbitmqctl, spawn_worker};
use uuid::Uuid;

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

async fn wait_for_calls(sys: &TestSystem, more_than: usize, within: Duration) {
    let what = format!("a call beyond {more_than}");
    support::wait_until(&what, within, || async { calls(sys) > more_than }).await;
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
    sys.prefix.flush();
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

/// The gauges the RPC-path and ticking alerts read: consumers and depth of the service's queues
/// from the broker, executing campaigns and the durable switch from MySQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_reports_its_queues_and_the_durable_switch() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |s| s.workers = 0).await;
    let app = sys.app.as_ref().expect("running");
    let request = sys.names.names.request_queue.clone();
    let gauge = |text: &str, family: &str, queue: &str| -> Option<i64> {
        let needle = format!("{family}{{queue=\"{queue}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(needle.as_str()))
            .and_then(|v| v.trim().parse().ok())
    };
    let metrics = app.metrics.clone();
    let consumers = move || {
        let text = metrics.render();
        gauge(&text, "campaign_manager_queue_consumers", &request)
    };
    support::wait_until(
        "the request queue's consumers reported",
        Duration::from_secs(30),
        || {
            let n = consumers();
            async move { n >= Some(1) }
        },
    )
    .await;
    let text = app.metrics.render();
    let dead = &sys.names.names.subscribe_dead_queue;
    assert_eq!(
        gauge(&text, "campaign_manager_queue_messages", dead),
        Some(0),
        "{text}"
    );

    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 5, 1);
    let campaign = create_campaign(&sys, "gauges", customer, outdial, json!({})).await;
    set_status(&sys, id_of(&campaign), "run").await;
    app.store
        .tick_switch
        .set(&sys.settings.tick_namespace, true, "test")
        .await
        .expect("switch off");
    campaign_manager::gauges::read_once(&app.store, &sys.settings.tick_namespace, &app.metrics)
        .await;
    assert_eq!(app.metrics.tick_switch_off.get(), 1);
    assert_eq!(app.metrics.campaigns_executing.get(), 1);
    sys.stop().await;
}
