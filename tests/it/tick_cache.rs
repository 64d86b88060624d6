//! The tick cache (`service::campaign_cache`) and its invalidation by the service's own change
//! notices (`events::changes`): a campaign or outplan changed through the API in one process is
//! read afresh by the ticks of another process once that process has heard the notice, and is
//! not read again until then. The notices travel on their own internal exchange; the public
//! event exchange carries every event whole, as before.

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use campaign_manager::bus::{Bus, ExchangeListener};
use campaign_manager::events::changes;
use campaign_manager::service::{Changed, TickCache};
use campaign_manager::store::Store;
use campaign_sim::{Outcome, Scenario};
use serde_json::json;
use support::{TestSystem, amqp_url};
use uuid::Uuid;

/// Waits (up to 10 s) until `cond` holds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn id(v: &serde_json::Value) -> Uuid {
    Uuid::parse_str(v["id"].as_str().expect("id")).expect("uuid")
}

#[tokio::test]
async fn an_api_update_reaches_another_process_cache_through_its_event() {
    // Process A: the service (API, events). Process B: a tick cache with its own broker
    // connection and listener, and its own store on the same database.
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let outplan = id(&sys
        .ok(
            "POST",
            "/v1/outplans",
            Some(json!({
                "customer_id": customer, "name": "o", "detail": "",
                "source": {"type": "tel", "target": "+15550000000"},
                "dial_timeout": 30000, "try_interval": 0, "max_try_count_0": 1,
            })),
        )
        .await);
    let outdial = sys.sim.create_outdial(customer, 1, 1);
    let campaign = id(&sys
        .ok(
            "POST",
            "/v1/campaigns",
            Some(json!({
                "customer_id": customer, "type": "call", "name": "c", "detail": "",
                "actions": [{"type": "answer"}], "service_level": 100, "end_handle": "stop",
                "outplan_id": outplan, "outdial_id": outdial, "queue_id": Uuid::nil(),
            })),
        )
        .await);

    let b_bus = Bus::connect(
        &amqp_url(),
        sys.names.names.clone(),
        &prometheus::Registry::new(),
    )
    .await
    .expect("process B's bus");
    let b_store = Store::with_pool(sys.db.pool.clone(), sys.prefix.cache());
    let cache = Arc::new(TickCache::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let listener = tokio::spawn(changes::listen(
        b_bus.connection().clone(),
        sys.names.names.change_exchange.clone(),
        cache.clone(),
        stop_rx,
    ));
    // Subscribed once the listener dropped everything for its first subscription.
    eventually("the subscription", || cache.generation() > 0).await;

    // Campaign: read once, then served from the copy (a change made behind the service's
    // back, without an event, is not seen)...
    let c = cache.campaign(&b_store, campaign).await.unwrap().unwrap();
    assert_eq!(c.service_level, 100);
    sqlx::query("UPDATE campaign_campaigns SET service_level = 7 WHERE id = ?")
        .bind(campaign.as_bytes().to_vec())
        .execute(&sys.db.pool)
        .await
        .unwrap();
    let c = cache.campaign(&b_store, campaign).await.unwrap().unwrap();
    assert_eq!(c.service_level, 100, "the second read comes from the copy");
    // A cache whose copies expire at once (the safety TTL) reads MySQL every time.
    let uncached = TickCache::new(Duration::ZERO);
    let c = uncached
        .campaign(&b_store, campaign)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.service_level, 7);
    // ...until an update through the API publishes its event.
    sys.ok(
        "PUT",
        &format!("/v1/campaigns/{campaign}/service_level"),
        Some(json!({"service_level": 60})),
    )
    .await;
    eventually("the campaign copy to be dropped", || {
        !cache.holds_campaign(campaign)
    })
    .await;
    let c = cache.campaign(&b_store, campaign).await.unwrap().unwrap();
    assert_eq!(c.service_level, 60);

    // Outplan: the same through its own event.
    let o = cache.outplan(&b_store, outplan).await.unwrap().unwrap();
    assert_eq!(o.name, "o");
    assert!(cache.holds_outplan(outplan));
    sys.ok(
        "PUT",
        &format!("/v1/outplans/{outplan}"),
        Some(json!({"name": "renamed", "detail": ""})),
    )
    .await;
    eventually("the outplan copy to be dropped", || {
        !cache.holds_outplan(outplan)
    })
    .await;
    let o = cache.outplan(&b_store, outplan).await.unwrap().unwrap();
    assert_eq!(o.name, "renamed");
    // The campaign copy taken since is untouched by the outplan's event.
    assert!(cache.holds_campaign(campaign));

    stop_tx.send_replace(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), listener).await;
    b_bus.shutdown().await;
    sys.stop().await;
}

/// The next message body on `listener`, if one comes within 5 s.
async fn next_body(listener: &mut ExchangeListener) -> Option<serde_json::Value> {
    let body = tokio::time::timeout(Duration::from_secs(5), listener.next())
        .await
        .ok()??;
    Some(serde_json::from_slice(&body).expect("JSON body"))
}

#[tokio::test]
async fn change_notices_have_their_own_exchange_and_events_stay_whole() {
    // On the fanout bus, where a listener can hear the public events with key "" (events.rs
    // checks them on the topic bus); the change exchange is the same on both.
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |s| {
        s.event_bus = campaign_manager::bus::EventBus::Fanout;
    })
    .await;
    let tap = Bus::connect(
        &amqp_url(),
        sys.names.names.clone(),
        &prometheus::Registry::new(),
    )
    .await
    .expect("tap bus");
    let names = &sys.names.names;
    let (mut events, _) = ExchangeListener::bind(tap.connection(), &names.event_exchange)
        .await
        .expect("tap the event exchange");
    let (mut notices, _) = ExchangeListener::bind(tap.connection(), &names.change_exchange)
        .await
        .expect("tap the change exchange");

    let outplan = sys
        .ok(
            "POST",
            "/v1/outplans",
            Some(json!({
                "customer_id": Uuid::new_v4(), "name": "o", "detail": "",
                "source": {"type": "tel", "target": "+15550000000"},
                "dial_timeout": 30000, "try_interval": 0, "max_try_count_0": 1,
            })),
        )
        .await;

    // The public event carries the whole record, as before.
    let event = next_body(&mut events).await.expect("outplan_created event");
    assert_eq!(event["type"], "outplan_created");
    assert_eq!(event["publisher"], "campaign-manager");
    assert_eq!(event["data"], outplan);
    // The notice: the same envelope, with the record's id only.
    let notice = next_body(&mut notices)
        .await
        .expect("outplan_created notice");
    assert_eq!(
        notice,
        json!({
            "type": "outplan_created",
            "publisher": "campaign-manager",
            "data_type": "application/json",
            "data": {"id": outplan["id"]},
        })
    );
    assert_eq!(
        changes::changed_by(&serde_json::to_vec(&notice).expect("encodable")),
        Some((Changed::Outplan, id(&outplan)))
    );
    assert!(
        next_body(&mut notices).await.is_none(),
        "one notice per event"
    );

    tap.shutdown().await;
    sys.stop().await;
}
