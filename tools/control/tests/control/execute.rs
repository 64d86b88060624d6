//! `campaign execute --all-running`, the rollback tool: refused while the durable tick switch is
//! on, a dry run, one `/execute` per running campaign across pages and customers, none again.

use super::*;

/// Rollback tooling: `campaign execute --all-running` needs the durable switch off (`queue pause
/// --durable`), has a dry run, sends exactly one `/execute` per running campaign of every
/// customer, across pages, none to other campaigns, and none at all when run again (the kicks are
/// recorded in MySQL); `queue resume` clears both. Here the service is the receiver: campaigns
/// whose loop is gone (`execute = stop`, no chain) get it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_all_running_sends_one_execute_per_running_campaign() {
    use campaign_manager::model::{CampaignStatus, Execute};
    let db = TestDb::migrated().await;
    let prefix = TestPrefix::new();
    let ctx = Ctx::with_db(&prefix, &db);
    let app = service(&ctx, &db, &prefix).await;
    let store = campaign_manager::store::Store::with_pool(db.pool.clone(), prefix.cache());
    let executes = || {
        app.metrics
            .receive_request_process_time
            .with_label_values(&["/v1/campaigns/<campaign-id>/execute", "POST", "2xx"])
            .get_sample_count()
    };
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut running = Vec::new();
    let mut others = Vec::new();
    for (customer, status) in [
        (a, CampaignStatus::Run),
        (a, CampaignStatus::Run),
        (a, CampaignStatus::Stop),
        (b, CampaignStatus::Run),
        (b, CampaignStatus::Stopping),
    ] {
        let mut c = support::records::campaign_row(customer);
        c.status = status;
        c.execute = Execute::Stop;
        let c = store.campaigns.create(&c).await.expect("campaign");
        if status == CampaignStatus::Run {
            running.push(c.id);
        } else {
            others.push(c.id);
        }
    }
    running.sort();
    let ids = |v: &serde_json::Value| -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = v
            .as_array()
            .expect("a list")
            .iter()
            .map(|x| {
                x.as_str()
                    .or(x["id"].as_str())
                    .expect("id")
                    .parse()
                    .expect("uuid")
            })
            .collect();
        ids.sort();
        ids
    };

    // Refused while this service's ticking is not switched off durably: nothing is sent.
    ctx.run(&["campaign", "execute", "--all-running", "--yes"])
        .await
        .fails(1, "not switched off durably");
    assert_eq!(executes(), 0);
    // `queue pause --durable` switches it off in MySQL and pauses Redis.
    let paused = ctx
        .run(&[
            "--json",
            "queue",
            "pause",
            "--durable",
            "--reason",
            "rollback test",
        ])
        .await
        .ok()
        .json();
    assert_eq!(
        (&paused["paused"], &paused["durable"]),
        (&json!(true), &json!(true))
    );
    let switch = store
        .tick_switch
        .state(&ctx.namespace)
        .await
        .expect("read the switch")
        .expect("a row");
    assert!(
        switch.paused && switch.reason == "rollback test",
        "{switch:?}"
    );
    assert!(app.chains.is_paused().await.expect("paused"));

    // Without a terminal it needs --yes; nothing is sent.
    ctx.run(&["campaign", "execute", "--all-running"])
        .await
        .fails(2, "pass --yes");
    assert_eq!(executes(), 0);
    // A dry run lists and sends nothing.
    let dry = ctx
        .run(&[
            "--json",
            "campaign",
            "execute",
            "--all-running",
            "--dry-run",
            "--page-size",
            "1",
        ])
        .await
        .ok()
        .json();
    assert_eq!(ids(&dry["would_execute"]), running, "{dry}");
    assert_eq!(dry["skipped"], json!([]));
    assert_eq!(executes(), 0);

    let out = ctx
        .run(&[
            "--json",
            "campaign",
            "execute",
            "--all-running",
            "--page-size",
            "1",
            "--yes",
        ])
        .await
        .ok()
        .json();
    assert_eq!(ids(&out["executed"]), running, "{out}");
    assert_eq!(out["failed"], json!([]));
    assert_eq!(executes(), 3, "one request per running campaign");
    for id in &running {
        let c = store
            .campaigns
            .get_fresh(*id)
            .await
            .expect("get")
            .expect("row");
        assert_eq!(c.execute, Execute::Run, "campaign {id}");
        assert!(
            app.chains.is_live(&id.to_string()).await.expect("is_live"),
            "campaign {id} has its chain back"
        );
    }
    for id in &others {
        let c = store
            .campaigns
            .get_fresh(*id)
            .await
            .expect("get")
            .expect("row");
        assert_eq!(c.execute, Execute::Stop, "campaign {id}");
        assert!(!app.chains.is_live(&id.to_string()).await.expect("is_live"));
    }

    // Run again: every campaign was kicked already, nothing is sent (no second Go loop).
    let again = ctx
        .run(&["--json", "campaign", "execute", "--all-running", "--yes"])
        .await
        .ok()
        .json();
    assert_eq!(again["executed"], json!([]), "{again}");
    assert_eq!(ids(&again["skipped"]), running, "{again}");
    assert!(
        again["skipped"]
            .as_array()
            .expect("skipped")
            .iter()
            .all(|s| s["confirmed"] == true),
        "{again}"
    );
    assert_eq!(executes(), 3);
    let table = ctx
        .run(&["campaign", "execute", "--all-running", "--dry-run"])
        .await
        .ok();
    assert!(
        table.stdout.contains("would send /execute to 0"),
        "{}",
        table.stdout
    );

    // One campaign by id (a stopped one: the service leaves it alone).
    let one = ctx
        .run(&[
            "--json",
            "campaign",
            "execute",
            "--id",
            &others[0].to_string(),
        ])
        .await
        .ok()
        .json();
    assert_eq!(ids(&one["executed"]), [others[0]]);
    assert_eq!(executes(), 4);
    // A campaign kicked already: --id asks before a second /execute.
    let first = running[0].to_string();
    ctx.run(&["campaign", "execute", "--id", &first])
        .await
        .fails(2, "pass --yes");
    assert_eq!(executes(), 4);
    ctx.run(&["campaign", "execute", "--id", &first, "--yes"])
        .await
        .ok();
    assert_eq!(executes(), 5);
    ctx.run(&["campaign", "execute", "--id", &Uuid::new_v4().to_string()])
        .await
        .fails(1, "CAMPAIGN_NOT_FOUND");

    // resume clears the switch and forgets the kicks (this service drives the campaigns again).
    let resumed = ctx
        .run(&["--json", "queue", "resume", "--yes"])
        .await
        .ok()
        .json();
    assert_eq!(resumed["durable_switch_cleared"], true, "{resumed}");
    assert_eq!(resumed["go_loop_kicks_forgotten"], 4, "{resumed}");
    assert!(
        !store
            .tick_switch
            .is_off(&ctx.namespace)
            .await
            .expect("switch")
    );
    assert!(!app.chains.is_paused().await.expect("paused"));
    assert!(store.loop_kicks.all().await.expect("kicks").is_empty());
    app.stop().await;
}
