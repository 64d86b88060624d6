//! `POST /v1/campaigns/flows/reconcile` over RabbitMQ against the simulated flow-manager: live
//! flows of recently deleted campaigns are deleted, deleted or unknown ones skipped, failures
//! counted and tried again by the next pass; the reply's keys and flags are the platform's; bad
//! bodies are 400s naming the field; an unreadable database is a bare 400; the time cap cuts a
//! pass short.

use crate::support;

use std::time::Duration;

use campaign_manager::service::ReconcileLimits;
use campaign_sim::flows::FlowCreate;
use campaign_sim::{Fault, Outcome, Scenario, Service};
use chrono::Utc;
use serde_json::{Value, json};
use support::black_box::expect_400;
use support::{TestSystem, records};
use uuid::Uuid;

const ROUTE: &str = "/v1/campaigns/flows/reconcile";

async fn system() -> TestSystem {
    TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await
}

/// A live flow at the simulated flow-manager.
fn live_flow(sys: &TestSystem) -> Uuid {
    sys.sim.with_state(|st| {
        st.flows
            .create(
                FlowCreate {
                    kind: "campaign".into(),
                    persist: true,
                    ..FlowCreate::default()
                },
                Utc::now(),
            )
            .id
    })
}

/// A campaign over `flow_id`, deleted `ago` before now (or not deleted for `None`).
async fn campaign(sys: &TestSystem, flow_id: Uuid, ago: Option<Duration>) -> Uuid {
    let mut c = records::campaign_row(Uuid::new_v4());
    c.flow_id = flow_id;
    let app = sys.app.as_ref().expect("running");
    app.store.campaigns.create(&c).await.expect("campaign");
    if let Some(ago) = ago {
        let at = (Utc::now() - chrono::Duration::from_std(ago).expect("span")).naive_utc();
        sqlx::query("UPDATE campaign_campaigns SET tm_delete = ?, tm_update = ? WHERE id = ?")
            .bind(at)
            .bind(at)
            .bind(c.id.as_bytes().to_vec())
            .execute(&sys.db.pool)
            .await
            .expect("delete the campaign");
    }
    c.id
}

fn flow_deleted(sys: &TestSystem, flow_id: Uuid) -> bool {
    sys.sim
        .with_state(|st| st.flows.get_any(flow_id).and_then(|f| f.tm_delete))
        .is_some()
}

fn counter(sys: &TestSystem, name: &str) -> u64 {
    let m = &sys.app.as_ref().expect("running").metrics;
    match name {
        "cleaned" => m.campaign_flow_reconcile_cleaned_total.get(),
        _ => m.campaign_flow_reconcile_failed_total.get(),
    }
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn live_flows_of_deleted_campaigns_are_deleted_and_failures_are_tried_again() {
    let sys = system().await;
    let orphan = live_flow(&sys);
    campaign(&sys, orphan, Some(HOUR)).await;
    let gone = live_flow(&sys);
    sys.sim
        .with_state(|st| st.flows.delete(gone, Utc::now()).map(|_| ()))
        .expect("delete the flow");
    campaign(&sys, gone, Some(2 * HOUR)).await;
    campaign(&sys, Uuid::new_v4(), Some(3 * HOUR)).await; // flow-manager never had it
    campaign(&sys, Uuid::nil(), Some(4 * HOUR)).await;
    let too_old = live_flow(&sys);
    campaign(&sys, too_old, Some(8 * 24 * HOUR)).await;
    let in_use = live_flow(&sys);
    campaign(&sys, in_use, None).await;
    // flow-manager fails once on the read of one orphan and on the delete of another.
    let unreadable = live_flow(&sys);
    campaign(&sys, unreadable, Some(HOUR / 2)).await;
    sys.sim.inject(
        Fault::status(Service::Flow, 500, 1)
            .on_method("GET")
            .on_uri(&unreadable.to_string()),
    );
    let undeletable = live_flow(&sys);
    campaign(&sys, undeletable, Some(HOUR / 3)).await;
    sys.sim.inject(
        Fault::status(Service::Flow, 500, 1)
            .on_method("DELETE")
            .on_uri(&undeletable.to_string()),
    );

    let first = sys
        .ok("POST", ROUTE, Some(json!({"recent_interval_sec": 3600})))
        .await;
    assert_eq!(
        first.to_string(),
        r#"{"cleaned":1,"skipped":3,"failed":2,"saturated":false,"recent_saturated":false,"partial":false}"#
    );
    assert!(flow_deleted(&sys, orphan));
    assert!(!flow_deleted(&sys, too_old), "outside the 7-day window");
    assert!(!flow_deleted(&sys, in_use), "its campaign is not deleted");
    assert!(!flow_deleted(&sys, unreadable) && !flow_deleted(&sys, undeletable));
    assert_eq!((counter(&sys, "cleaned"), counter(&sys, "failed")), (1, 2));

    // The next pass (no body: the defaults) finishes what failed; what is done is skipped.
    let second = sys.ok("POST", ROUTE, None).await;
    assert_eq!(
        second,
        json!({"cleaned": 2, "skipped": 4, "failed": 0, "saturated": false,
               "recent_saturated": false, "partial": false})
    );
    assert!(flow_deleted(&sys, unreadable) && flow_deleted(&sys, undeletable));
    assert_eq!((counter(&sys, "cleaned"), counter(&sys, "failed")), (3, 2));
    sys.stop().await;
}

#[tokio::test]
async fn bad_bodies_are_400s_naming_the_field_and_missing_values_mean_24_hours() {
    let sys = system().await;
    for bad in [
        json!("3600"),
        json!(-5),
        json!(1.5),
        json!([3600]),
        json!(true),
    ] {
        let body = json!({ "recent_interval_sec": bad });
        expect_400(&sys, "POST", ROUTE, body, "recent_interval_sec").await;
    }
    expect_400(&sys, "POST", ROUTE, json!([1]), "JSON object").await;
    let idle = json!({"cleaned": 0, "skipped": 0, "failed": 0, "saturated": false,
                      "recent_saturated": false, "partial": false});
    for body in [
        None,
        Some(Value::Null),
        Some(json!({})),
        Some(json!({"recent_interval_sec": 0})),
        Some(json!({"recent_interval_sec": null, "extra": 1})),
    ] {
        assert_eq!(sys.ok("POST", ROUTE, body).await, idle);
    }
    sys.stop().await;
}

#[tokio::test]
async fn an_unreadable_database_is_a_bare_400() {
    let sys = system().await;
    sqlx::query("RENAME TABLE campaign_campaigns TO campaign_campaigns_away")
        .execute(&sys.db.pool)
        .await
        .expect("hide the table");
    let (status, data_type, data) = sys.rpc("POST", ROUTE, None).await;
    sqlx::query("RENAME TABLE campaign_campaigns_away TO campaign_campaigns")
        .execute(&sys.db.pool)
        .await
        .expect("put the table back");
    assert_eq!((status, data_type.as_str(), data), (400, "", Value::Null));
    assert_eq!(sys.rpc("POST", ROUTE, None).await.0, 200);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_reads_500_campaigns_newest_first_and_says_when_that_is_saturated() {
    let sys = system().await;
    let store = &sys.app.as_ref().expect("running").store;
    for _ in 0..501 {
        let mut c = records::campaign_row(Uuid::new_v4());
        c.flow_id = Uuid::new_v4();
        store.campaigns.create(&c).await.expect("campaign");
    }
    let set_deleted = |ago: Duration| {
        let at = (Utc::now() - chrono::Duration::from_std(ago).expect("span")).naive_utc();
        sqlx::query("UPDATE campaign_campaigns SET tm_delete = ?, tm_update = ?")
            .bind(at)
            .bind(at)
            .execute(&sys.db.pool)
    };
    // All deleted ten minutes ago: 500 read (unknown flows, skipped), all of them recent.
    set_deleted(Duration::from_secs(600)).await.expect("delete");
    let r = sys
        .ok("POST", ROUTE, Some(json!({"recent_interval_sec": 3600})))
        .await;
    assert_eq!(
        r,
        json!({"cleaned": 0, "skipped": 500, "failed": 0, "saturated": true,
               "recent_saturated": true, "partial": false})
    );
    // Deleted two hours ago: still a full scan, but none within the last hour.
    set_deleted(2 * HOUR).await.expect("delete");
    let r = sys
        .ok("POST", ROUTE, Some(json!({"recent_interval_sec": 3600})))
        .await;
    assert_eq!(
        (r["saturated"].clone(), r["recent_saturated"].clone()),
        (json!(true), json!(false))
    );
    sys.stop().await;
}

#[tokio::test]
async fn the_time_cap_cuts_a_pass_short_and_says_so() {
    let sys = system().await;
    let (newest, stuck, oldest) = (live_flow(&sys), live_flow(&sys), live_flow(&sys));
    campaign(&sys, newest, Some(Duration::from_secs(60))).await;
    campaign(&sys, stuck, Some(Duration::from_secs(120))).await;
    campaign(&sys, oldest, Some(Duration::from_secs(180))).await;
    // flow-manager takes the read of the second one and does not answer in time.
    sys.sim.inject(
        Fault::no_reply(Service::Flow, Duration::from_secs(10), 1)
            .on_method("GET")
            .on_uri(&stuck.to_string()),
    );
    let limits = ReconcileLimits {
        pass_timeout: Duration::from_secs(1),
        ..ReconcileLimits::default()
    };
    let service = &sys.app.as_ref().expect("running").service;
    let r = service
        .reconcile_flows_with(limits, None)
        .await
        .expect("pass");
    assert_eq!((r.cleaned, r.skipped, r.failed, r.partial), (1, 0, 1, true));
    assert!(flow_deleted(&sys, newest));
    assert!(!flow_deleted(&sys, oldest), "never examined");
    sys.stop().await;
}
