//! `flows reconcile`: one pass that deletes the flows of deleted campaigns, and what it did, as
//! JSON and as text.

use super::*;

#[tokio::test]
async fn flows_reconcile_runs_one_pass_and_says_what_it_did() {
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
    // A campaign deleted an hour ago whose flow flow-manager still has.
    let flow = sim.with_state(|st| {
        st.flows
            .create(
                campaign_sim::flows::FlowCreate::default(),
                chrono::Utc::now(),
            )
            .id
    });
    let mut c = support::records::campaign_row(Uuid::new_v4());
    c.flow_id = flow;
    app.store.campaigns.create(&c).await.expect("campaign");
    let hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1)).naive_utc();
    sqlx::query("UPDATE campaign_campaigns SET tm_delete = ?, tm_update = ? WHERE id = ?")
        .bind(hour_ago)
        .bind(hour_ago)
        .bind(c.id.as_bytes().to_vec())
        .execute(&db.pool)
        .await
        .expect("delete the campaign");

    let first = ctx
        .run(&[
            "--json",
            "flows",
            "reconcile",
            "--recent-interval-sec",
            "21600",
        ])
        .await
        .ok()
        .json();
    assert_eq!(
        first,
        json!({"cleaned": 1, "skipped": 0, "failed": 0, "saturated": false,
               "recent_saturated": false, "partial": false})
    );
    assert!(
        sim.flows()
            .iter()
            .any(|f| f.id == flow && f.tm_delete.is_some())
    );
    let human = ctx.run(&["flows", "reconcile"]).await.ok().stdout;
    assert!(human.contains("skipped") && human.contains('1'), "{human}");
    ctx.run(&["flows", "reconcile", "--recent-interval-sec", "0"])
        .await
        .fails(2, "recent-interval-sec");
    app.stop().await;
    sim.shutdown_and_delete().await;
}
