//! Unknown ids, one row per verb that takes one: each exits 1 and says what was not found (the
//! typed error's message and reason, or "not found" for a bare 404); lists of nothing are empty.

use super::*;
use rig::{Failing, check_failing};

#[tokio::test]
async fn unknown_ids_exit_1_naming_what_was_not_found() {
    let db = TestDb::migrated().await;
    let prefix = TestPrefix::new();
    let ctx = Ctx::new(&prefix);
    let app = service(&ctx, &db, &prefix).await;
    let unknown = Uuid::new_v4().to_string();
    let id = unknown.as_str();
    let fails = |case, args: &[&'static str], needles| {
        let mut args = args.to_vec();
        args.extend(["--id", id]);
        Failing {
            case,
            args,
            code: 1,
            needles,
        }
    };
    let rows = [
        fails("outplan get", &["outplan", "get"], &["OUTPLAN_NOT_FOUND"]),
        fails(
            "outplan update",
            &["outplan", "update", "--name", "x"],
            &["not found"],
        ),
        fails(
            "outplan delete",
            &["outplan", "delete", "--yes"],
            &["not found"],
        ),
        fails(
            "campaign get",
            &["campaign", "get"],
            &["The campaign was not found.", "CAMPAIGN_NOT_FOUND"],
        ),
        fails(
            "campaign run",
            &["campaign", "run"],
            &["CAMPAIGN_NOT_FOUND"],
        ),
        fails(
            "campaign delete",
            &["campaign", "delete", "--yes"],
            &["not found"],
        ),
        fails(
            "campaigncall get",
            &["campaigncall", "get"],
            &["CAMPAIGNCALL_NOT_FOUND"],
        ),
    ];
    check_failing(&rows, async |args| ctx.run(args).await).await;

    let calls = ctx
        .run(&[
            "--json",
            "campaigncall",
            "list",
            "--campaign-id",
            id,
            "--status",
            "done",
        ])
        .await
        .ok()
        .json();
    assert_eq!(calls, json!([]));
    let customer = Uuid::new_v4().to_string();
    let campaigns = ctx
        .run(&["campaign", "list", "--customer-id", &customer])
        .await
        .ok();
    assert!(
        campaigns.stdout.contains("(0 rows)"),
        "{}",
        campaigns.stdout
    );
    app.stop().await;
}
