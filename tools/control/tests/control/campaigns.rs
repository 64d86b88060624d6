//! `campaign create/get/list/update*/run/stop/delete` against the simulator (every flag, bad
//! references refused, delete refused while running), and `campaign update` sending every field
//! it keeps, also on a legacy row without type and end handle.

use super::*;
use rig::{Failing, check_failing};

#[tokio::test]
async fn campaign_lifecycle_against_the_simulator() {
    let db = TestDb::migrated().await;
    let prefix = TestPrefix::new();
    let ctx = Ctx::new(&prefix);
    let sim = Sim::start(
        Names::prefixed(&ctx.queue_prefix),
        AMQP,
        Scenario::instant(Outcome::Answered),
    )
    .await
    .expect("start simulator");
    let app = service(&ctx, &db, &prefix).await;
    let customer = Uuid::new_v4();
    let outdial = sim.create_outdial(customer, 3, 1).to_string();
    let queue = sim.create_queue(customer, 2).to_string();
    let customer = customer.to_string();

    let id = creates_a_campaign(&ctx, &customer, &outdial, &queue).await;
    refuses_bad_references(&ctx, &customer).await;
    reads_it_back(&ctx, &customer, &id).await;
    updates_every_setting(&ctx, &id, &outdial, &queue).await;
    runs_then_stops(&ctx, &customer, &id).await;
    app.stop().await;
    sim.shutdown_and_delete().await;
}

/// Step of `campaign_lifecycle_against_the_simulator`: `outplan create` and `campaign create` with
/// every flag; returns the campaign's id.
async fn creates_a_campaign(ctx: &Ctx, customer: &str, outdial: &str, queue: &str) -> String {
    let outplan = ctx
        .run(&[
            "--json",
            "outplan",
            "create",
            "--customer-id",
            customer,
            "--name",
            "p",
            "--source-type",
            "tel",
            "--source-target",
            "+1",
        ])
        .await
        .ok()
        .json()["id"]
        .as_str()
        .expect("outplan id")
        .to_owned();
    let created = ctx
        .run(&[
            "--json",
            "campaign",
            "create",
            "--customer-id",
            customer,
            "--name",
            "c1",
            "--type",
            "call",
            "--detail",
            "first",
            "--service-level",
            "80",
            "--end-handle",
            "continue",
            "--outplan-id",
            &outplan,
            "--outdial-id",
            outdial,
            "--queue-id",
            queue,
            "--actions-json",
            r#"[{"type":"answer"}]"#,
        ])
        .await
        .ok()
        .json();
    let id = created["id"].as_str().expect("campaign id").to_owned();
    assert_eq!(created["status"], "stop");
    assert_eq!(created["service_level"], 80);
    assert_eq!(created["end_handle"], "continue");
    assert_eq!(created["actions"][0]["type"], "answer");
    id
}

/// Step of `campaign_lifecycle_against_the_simulator`: `campaign create` refuses what it cannot
/// use.
async fn refuses_bad_references(ctx: &Ctx, customer: &str) {
    // A reference the peers do not know is rejected (exit 1, with what to check); actions that
    // are not JSON are a usage error.
    let unknown = Uuid::new_v4().to_string();
    let create = [
        "campaign",
        "create",
        "--customer-id",
        customer,
        "--name",
        "bad",
    ];
    let with = |extra: [&'static str; 1], value| {
        let mut args = create.to_vec();
        args.extend(extra);
        args.push(value);
        args
    };
    let rows = [
        Failing {
            case: "an outdial the peer does not know",
            args: with(["--outdial-id"], &unknown),
            code: 1,
            needles: &["create campaign"],
        },
        Failing {
            case: "actions that are not JSON",
            args: with(["--actions-json"], "{"),
            code: 2,
            needles: &["--actions-json"],
        },
    ];
    check_failing(&rows, async |args| ctx.run(args).await).await;
}

/// Step of `campaign_lifecycle_against_the_simulator`: `campaign get` and `campaign list` show it.
async fn reads_it_back(ctx: &Ctx, customer: &str, id: &str) {
    let got = ctx
        .run(&["--json", "campaign", "get", "--id", id])
        .await
        .ok()
        .json();
    assert_eq!(got["name"], "c1");
    let list = ctx
        .run(&["campaign", "list", "--customer-id", customer])
        .await
        .ok();
    assert!(
        list.stdout.contains(id) && list.stdout.contains("(1 rows)"),
        "{}",
        list.stdout
    );
}

/// Step of `campaign_lifecycle_against_the_simulator`: every `campaign update*` command.
async fn updates_every_setting(ctx: &Ctx, id: &str, outdial: &str, queue: &str) {
    let upd = ctx
        .run(&[
            "--json", "campaign", "update", "--id", id, "--name", "c2", "--type", "flow",
        ])
        .await
        .ok()
        .json();
    assert_eq!(
        (upd["name"].as_str(), upd["type"].as_str()),
        (Some("c2"), Some("flow"))
    );
    assert_eq!(upd["detail"], "first", "unset flags keep their value");
    assert_eq!(upd["service_level"], 80);
    let upd = ctx
        .run(&["--json", "campaign", "update", "--id", id, "--type", "call"])
        .await
        .ok()
        .json();
    assert_eq!(upd["type"], "call");
    let upd = ctx
        .run(&[
            "--json",
            "campaign",
            "update-service-level",
            "--id",
            id,
            "--service-level",
            "100",
        ])
        .await
        .ok()
        .json();
    assert_eq!(upd["service_level"], 100);
    let upd = ctx
        .run(&[
            "--json",
            "campaign",
            "update-actions",
            "--id",
            id,
            "--actions-json",
            r#"[{"type":"answer"},{"type":"hangup"}]"#,
        ])
        .await
        .ok()
        .json();
    assert_eq!(upd["actions"].as_array().map(Vec::len), Some(2));
    let next = Uuid::nil().to_string();
    let upd = ctx
        .run(&[
            "--json",
            "campaign",
            "update-resource-info",
            "--id",
            id,
            "--next-campaign-id",
            &next,
        ])
        .await
        .ok()
        .json();
    assert_eq!(upd["outdial_id"].as_str(), Some(outdial), "kept");
    assert_eq!(upd["queue_id"].as_str(), Some(queue), "kept");
    let upd = ctx
        .run(&[
            "--json",
            "campaign",
            "update-next-campaign",
            "--id",
            id,
            "--next-campaign-id",
            &next,
        ])
        .await
        .ok()
        .json();
    assert_eq!(upd["next_campaign_id"].as_str(), Some(next.as_str()));
}

/// Step of `campaign_lifecycle_against_the_simulator`: `campaign run`, the tick queue, delete
/// refused while running, `campaign stop`, its campaigncalls, and delete once stopped.
async fn runs_then_stops(ctx: &Ctx, customer: &str, id: &str) {
    // run: the service starts the chain; the queue commands see it.
    let run = ctx
        .run(&["--json", "campaign", "run", "--id", id])
        .await
        .ok()
        .json();
    assert_eq!(run["status"], "run");
    let ticks = ctx
        .run(&["--json", "queue", "list", "--campaign", id])
        .await
        .ok()
        .json();
    assert_eq!(ticks[0]["campaign"].as_str(), Some(id), "{ticks}");
    // A running campaign cannot be deleted: exit 1 with what to do.
    let rows = [
        Failing {
            case: "delete without a terminal nor --yes",
            args: vec!["campaign", "delete", "--id", id],
            code: 2,
            needles: &["pass --yes"],
        },
        Failing {
            case: "delete while running",
            args: vec!["campaign", "delete", "--id", id, "--yes"],
            code: 1,
            needles: &["must be stopped before it can be deleted"],
        },
    ];
    check_failing(&rows, async |args| ctx.run(args).await).await;

    let stopped = ctx
        .run(&["--json", "campaign", "stop", "--id", id])
        .await
        .ok()
        .json();
    assert!(
        matches!(stopped["status"].as_str(), Some("stop" | "stopping")),
        "{stopped}"
    );
    let calls = ctx
        .run(&[
            "--json",
            "campaigncall",
            "list",
            "--campaign-id",
            id,
            "--customer-id",
            customer,
        ])
        .await
        .ok()
        .json();
    assert!(calls.is_array(), "{calls}");
    if stopped["status"] == "stop" {
        let deleted = ctx
            .run(&["--json", "campaign", "delete", "--id", id, "--yes"])
            .await
            .ok()
            .json();
        assert!(deleted["tm_delete"].is_string(), "{deleted}");
    }
}

/// `campaign update` sends every field it keeps (the route reads an omitted name, detail or
/// service level as empty/0), and keeps a legacy `""` type or end handle by leaving it out
/// (sending `""` back is refused).
#[tokio::test]
async fn campaign_update_keeps_what_no_flag_changes() {
    use campaign_manager::model::{CampaignType, EndHandle};
    let db = TestDb::migrated().await;
    let prefix = TestPrefix::new();
    let ctx = Ctx::new(&prefix);
    let app = service(&ctx, &db, &prefix).await;
    let store = campaign_manager::store::Store::with_pool(db.pool.clone(), prefix.cache());
    let customer = Uuid::new_v4();

    let mut c = support::records::campaign_row(customer);
    c.kind = CampaignType::Flow;
    c.end_handle = EndHandle::Continue;
    c.detail = "first".into();
    c.service_level = 80;
    let c = store.campaigns.create(&c).await.expect("campaign");
    let id = c.id.to_string();
    let upd = ctx
        .run(&["--json", "campaign", "update", "--id", &id, "--name", "c2"])
        .await
        .ok()
        .json();
    assert_eq!(
        (
            &upd["name"],
            &upd["detail"],
            &upd["type"],
            &upd["service_level"],
            &upd["end_handle"]
        ),
        (
            &serde_json::json!("c2"),
            &serde_json::json!("first"),
            &serde_json::json!("flow"),
            &serde_json::json!(80),
            &serde_json::json!("continue")
        ),
        "{upd}"
    );
    let upd = ctx
        .run(&[
            "--json",
            "campaign",
            "update",
            "--id",
            &id,
            "--detail",
            "",
            "--service-level",
            "0",
        ])
        .await
        .ok()
        .json();
    assert_eq!(
        (&upd["name"], &upd["detail"]),
        (&serde_json::json!("c2"), &serde_json::json!(""))
    );
    assert_eq!(upd["service_level"], 0);

    // A row the Go service wrote without type and end handle.
    let mut legacy = support::records::campaign_row(customer);
    legacy.kind = CampaignType::Unset;
    legacy.end_handle = EndHandle::Unset;
    let legacy = store
        .campaigns
        .create(&legacy)
        .await
        .expect("legacy campaign");
    let lid = legacy.id.to_string();
    let upd = ctx
        .run(&[
            "--json", "campaign", "update", "--id", &lid, "--name", "fixed",
        ])
        .await
        .ok()
        .json();
    assert_eq!(upd["name"], "fixed");
    assert_eq!(upd["detail"], legacy.detail);
    assert_eq!(upd["service_level"], legacy.service_level);
    assert_eq!(
        (&upd["type"], &upd["end_handle"]),
        (&serde_json::json!(""), &serde_json::json!(""))
    );
    let upd = ctx
        .run(&[
            "--json",
            "campaign",
            "update",
            "--id",
            &lid,
            "--type",
            "call",
            "--end-handle",
            "stop",
        ])
        .await
        .ok()
        .json();
    assert_eq!(
        (&upd["name"], &upd["type"], &upd["end_handle"]),
        (
            &serde_json::json!("fixed"),
            &serde_json::json!("call"),
            &serde_json::json!("stop")
        )
    );

    app.stop().await;
}
