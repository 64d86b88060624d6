//! `outplan create/get/list/update/delete`: JSON and table output, unset flags keeping their
//! value, an update with nothing to change refused (exit 2), delete without a terminal needing
//! `--yes`, deleted outplans listed only `--with-deleted`.

use super::*;

#[tokio::test]
async fn outplan_create_get_list_update_and_delete() {
    let db = TestDb::migrated().await;
    let prefix = TestPrefix::new();
    let ctx = Ctx::new(&prefix);
    let app = service(&ctx, &db, &prefix).await;
    let customer = Uuid::new_v4().to_string();

    // create → get → list → update (name + dials) → delete
    let created = ctx
        .run(&[
            "--json",
            "outplan",
            "create",
            "--customer-id",
            &customer,
            "--name",
            "plan a",
            "--detail",
            "d",
            "--source-type",
            "tel",
            "--source-target",
            "+821100000001",
            "--try-interval",
            "60000",
            "--max-try-count",
            "3",
        ])
        .await
        .ok()
        .json();
    let id = created["id"].as_str().expect("outplan id").to_owned();
    assert_eq!(created["name"], "plan a");
    assert_eq!(created["max_try_count_4"], 3);
    assert_eq!(created["dial_timeout"], 30000);
    assert_eq!(created["source"]["target"], "+821100000001");

    let human = ctx.run(&["outplan", "get", "--id", &id]).await.ok();
    assert!(human.stdout.starts_with("FIELD"), "{}", human.stdout);
    assert!(human.stdout.contains("plan a"), "{}", human.stdout);

    let list = ctx
        .run(&["--json", "outplan", "list", "--customer-id", &customer])
        .await
        .ok()
        .json();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let table = ctx
        .run(&[
            "outplan",
            "list",
            "--customer-id",
            &customer,
            "--page-size",
            "10",
        ])
        .await
        .ok();
    assert!(
        table.stdout.contains(&id) && table.stdout.contains("(1 rows)"),
        "{}",
        table.stdout
    );

    let updated = ctx
        .run(&[
            "--json",
            "outplan",
            "update",
            "--id",
            &id,
            "--name",
            "plan b",
            "--dial-timeout",
            "20000",
            "--max-try-count",
            "1,2,3,4,5",
        ])
        .await
        .ok()
        .json();
    assert_eq!(updated["name"], "plan b");
    assert_eq!(updated["detail"], "d", "unset flags keep their value");
    assert_eq!(updated["dial_timeout"], 20000);
    assert_eq!(updated["try_interval"], 60000);
    assert_eq!(updated["max_try_count_0"], 1);
    assert_eq!(updated["max_try_count_4"], 5);
    assert_eq!(updated["source"]["target"], "+821100000001");
    ctx.run(&["outplan", "update", "--id", &id])
        .await
        .fails(2, "nothing to change");

    // Without a terminal, delete needs --yes: refused with exit 2, the outplan stays.
    ctx.run(&["outplan", "delete", "--id", &id])
        .await
        .fails(2, "pass --yes");
    ctx.run(&["outplan", "get", "--id", &id]).await.ok();
    let deleted = ctx
        .run(&["--json", "outplan", "delete", "--id", &id, "--yes"])
        .await
        .ok()
        .json();
    assert!(deleted["tm_delete"].is_string(), "{deleted}");
    let after = ctx
        .run(&["--json", "outplan", "list", "--customer-id", &customer])
        .await
        .ok()
        .json();
    assert_eq!(after, serde_json::json!([]));
    let with_deleted = ctx
        .run(&[
            "--json",
            "outplan",
            "list",
            "--customer-id",
            &customer,
            "--with-deleted",
        ])
        .await
        .ok()
        .json();
    assert_eq!(with_deleted.as_array().map(Vec::len), Some(1));

    app.stop().await;
}
