//! `campaign-control callback add|list|remove` against the service and the simulator over
//! RabbitMQ: each verb reaches the campaign's callbacks, a field the service refuses is named
//! and adds nothing. (They spawn the binary, so they live in the package that builds it.)

#[path = "../../../tests/it/support/mod.rs"]
mod support;

use campaign_sim::{Outcome, Scenario};
use serde_json::{Value, json};
use support::TestSystem;
use support::black_box::{create_campaign, id_of};
use uuid::Uuid;

async fn control(sys: &TestSystem, args: &[&str]) -> Value {
    let (code, out, err) = support::control_json(sys, args).await;
    assert_eq!(code, 0, "{args:?}\nstdout {out}\nstderr {err}");
    serde_json::from_str(&out).expect("JSON output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_adds_lists_and_removes_callbacks() {
    let sys = TestSystem::start(Scenario::instant(Outcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 1, 1);
    let target = sys.sim.targets(outdial)[0].target.id.to_string();
    let campaign = id_of(&create_campaign(&sys, "cb", customer, outdial, json!({})).await);
    let c = campaign.to_string();
    let at = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();

    let added = control(
        &sys,
        &[
            "callback",
            "add",
            "--campaign-id",
            &c,
            "--target-id",
            &target,
            "--destination-index",
            "0",
            "--at",
            &at,
        ],
    )
    .await;
    assert_eq!(added["campaign_id"], c);
    assert_eq!(added["outdial_target_id"], target);
    assert_eq!(added["destination_index"], 0);
    let id = added["id"].as_str().expect("id").to_owned();

    // Refused fields are named and add nothing.
    for (flag, value, field) in [
        ("--at", "2020-01-01T00:00:00Z", "at"),
        ("--destination-index", "3", "destination_index"),
    ] {
        let mut args = vec![
            "callback",
            "add",
            "--campaign-id",
            &c,
            "--target-id",
            &target,
            "--at",
            &at,
        ];
        if flag == "--at" {
            args[7] = value;
        } else {
            args.extend([flag, value]);
        }
        let (code, out, err) = support::control_json(&sys, &args).await;
        assert_ne!(code, 0, "stdout {out}");
        assert!(format!("{out}{err}").contains(field), "stderr {err}");
    }
    let list = control(&sys, &["callback", "list", "--campaign-id", &c]).await;
    assert_eq!(list, json!([added.clone()]), "only the good one");
    let page = control(
        &sys,
        &["callback", "list", "--campaign-id", &c, "--page-size", "1"],
    )
    .await;
    assert_eq!(page.as_array().expect("a list").len(), 1);

    let removed = control(
        &sys,
        &[
            "callback",
            "remove",
            "--campaign-id",
            &c,
            "--id",
            &id,
            "--yes",
        ],
    )
    .await;
    assert_eq!(removed, added);
    let list = control(&sys, &["callback", "list", "--campaign-id", &c]).await;
    assert_eq!(list, json!([]));
    sys.stop().await;
}
