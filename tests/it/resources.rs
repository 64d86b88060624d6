//! Black-box tests of a campaign's resources over RabbitMQ: the order of the peer requests of
//! `PUT /v1/campaigns/<id>/resource_info`, create and delete, and what is undone when a step
//! fails. A recording peer (`support/recorder.rs`) stands in front of the simulator and logs
//! every request; faults are the simulator's; a failing row write is a MySQL trigger.

use crate::support;

use campaign_sim::{Fault, Outcome, Scenario, Service};
use serde_json::{Value, json};
use sqlx::AssertSqlSafe;
use support::recorder::RecordedSystem;
use uuid::Uuid;

const NIL: &str = "00000000-0000-0000-0000-000000000000";

/// A stopped call campaign on outdial o1 and queue q1, and what the tests need around it.
struct Fixture {
    rs: RecordedSystem,
    customer: Uuid,
    id: Uuid,
    flow_id: Uuid,
    o1: Uuid,
    q1: Uuid,
    campaign: Value,
}

impl Fixture {
    async fn new() -> Fixture {
        let rs = RecordedSystem::start(Scenario::instant(Outcome::Answered)).await;
        let customer = Uuid::new_v4();
        let outplan = rs
            .sys
            .ok(
                "POST",
                "/v1/outplans",
                Some(json!({"customer_id": customer, "name": "p",
                            "source": {"type": "tel", "target": "+1"}})),
            )
            .await;
        let o1 = rs.sys.sim.create_outdial(customer, 1, 1);
        let q1 = rs.sys.sim.create_queue(customer, 1);
        let campaign = rs
            .sys
            .ok(
                "POST",
                "/v1/campaigns",
                Some(json!({
                    "customer_id": customer, "type": "call", "name": "c",
                    "actions": [{"type": "answer"}], "service_level": 100, "end_handle": "stop",
                    "outplan_id": outplan["id"], "outdial_id": o1, "queue_id": q1
                })),
            )
            .await;
        let id = uuid(&campaign["id"]);
        let flow_id = uuid(&campaign["flow_id"]);
        assert_eq!(owner(&rs, o1), id);
        rs.clear();
        Fixture {
            rs,
            customer,
            id,
            flow_id,
            o1,
            q1,
            campaign,
        }
    }

    /// The queue ids of the `queue_join` actions of the campaign's flow at flow-manager.
    fn flow_queues(&self) -> Vec<String> {
        let flow = self
            .rs
            .sys
            .sim
            .flows()
            .into_iter()
            .find(|f| f.id == self.flow_id)
            .expect("flow at the simulator");
        flow.actions
            .iter()
            .filter(|a| a.kind == "queue_join")
            .filter_map(|a| {
                a.option
                    .as_ref()?
                    .get("queue_id")?
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    }

    async fn get(&self) -> Value {
        self.rs
            .sys
            .ok("GET", &format!("/v1/campaigns/{}", self.id), None)
            .await
    }

    /// The row straight from MySQL (outdial, queue), not through the cache.
    async fn row(&self) -> (Uuid, Uuid) {
        let (o, q): (Vec<u8>, Vec<u8>) =
            sqlx::query_as("SELECT outdial_id, queue_id FROM campaign_campaigns WHERE id = ?")
                .bind(self.id.as_bytes().to_vec())
                .fetch_one(&self.rs.sys.db.pool)
                .await
                .expect("campaign row");
        (
            Uuid::from_slice(&o).expect("uuid"),
            Uuid::from_slice(&q).expect("uuid"),
        )
    }

    async fn move_to(&self, outdial: Uuid, queue: Uuid) -> (u16, String, Value) {
        let outplan = self.campaign["outplan_id"].clone();
        self.rs
            .sys
            .rpc(
                "PUT",
                &format!("/v1/campaigns/{}/resource_info", self.id),
                Some(
                    json!({"outplan_id": outplan, "outdial_id": outdial, "queue_id": queue,
                            "next_campaign_id": NIL}),
                ),
            )
            .await
    }

    /// Makes every UPDATE (or INSERT) of campaign rows fail until `allow_writes`.
    async fn refuse_writes(&self, event: &str) {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TRIGGER refuse_campaign_writes BEFORE {event} ON campaign_campaigns \
             FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'"
        )))
        .execute(&self.rs.sys.db.pool)
        .await
        .expect("create trigger");
    }

    async fn allow_writes(&self) {
        sqlx::raw_sql("DROP TRIGGER IF EXISTS refuse_campaign_writes")
            .execute(&self.rs.sys.db.pool)
            .await
            .expect("drop trigger");
    }
}

fn uuid(v: &Value) -> Uuid {
    Uuid::parse_str(v.as_str().expect("uuid string")).expect("uuid")
}

/// Which campaign the simulator's outdial says owns it.
fn owner(rs: &RecordedSystem, outdial: Uuid) -> Uuid {
    rs.sys
        .sim
        .outdial(outdial)
        .expect("outdial")
        .outdial
        .campaign_id
}

/// The scenario: the claim of the new outdial fails (500). Nothing after it, so the
/// flow still joins q1 and the row still says o1/q1 (before, the flow was already moved to
/// q2 while the row kept q1).
#[tokio::test]
async fn a_refused_outdial_claim_changes_nothing() {
    let f = Fixture::new().await;
    let o_bad = f.rs.sys.sim.create_outdial(f.customer, 1, 1);
    let q2 = f.rs.sys.sim.create_queue(f.customer, 1);
    f.rs.sys.sim.inject(
        Fault::status(Service::Outdial, 500, 1)
            .on_uri(&format!("/v1/outdials/{o_bad}/campaign_id")),
    );
    let before = f.get().await;

    let (code, _, data) = f.move_to(o_bad, q2).await;
    assert_ne!(code, 200, "{data}");
    assert_eq!(
        f.rs.lines(),
        vec![
            format!("GET /v1/outdials/{o_bad}"),
            format!("GET /v1/queues/{q2}"),
            format!(
                "PUT /v1/outdials/{o_bad}/campaign_id campaign_id={} -> 500",
                f.id
            ),
        ]
    );
    assert_eq!(
        f.flow_queues(),
        vec![f.q1.to_string()],
        "the flow still joins q1"
    );
    assert_eq!(f.row().await, (f.o1, f.q1), "the row is unchanged");
    assert_eq!(f.get().await, before);
    assert_eq!(owner(&f.rs, f.o1), f.id, "o1 still ours");
    assert_eq!(owner(&f.rs, o_bad), Uuid::nil());
    f.rs.stop().await;
}

/// The flow update fails after the new outdial was claimed: the claim is released (after
/// reading that it is still ours).
#[tokio::test]
async fn a_failed_flow_update_releases_the_new_claim() {
    let f = Fixture::new().await;
    let o2 = f.rs.sys.sim.create_outdial(f.customer, 1, 1);
    let q2 = f.rs.sys.sim.create_queue(f.customer, 1);
    f.rs.sys
        .sim
        .inject(Fault::status(Service::Flow, 500, 1).on_uri("/actions"));

    let (code, _, data) = f.move_to(o2, q2).await;
    assert_ne!(code, 200, "{data}");
    let (id, flow) = (f.id, f.flow_id);
    assert_eq!(
        f.rs.lines(),
        vec![
            format!("GET /v1/outdials/{o2}"),
            format!("GET /v1/queues/{q2}"),
            format!("PUT /v1/outdials/{o2}/campaign_id campaign_id={id}"),
            format!("GET /v1/outdials/{o2}"),
            format!("PUT /v1/flows/{flow}/actions queue_join={q2} -> 500"),
            format!("GET /v1/outdials/{o2}"),
            format!("PUT /v1/outdials/{o2}/campaign_id campaign_id={NIL}"),
        ]
    );
    assert_eq!(owner(&f.rs, o2), Uuid::nil(), "the new claim is released");
    assert_eq!(owner(&f.rs, f.o1), id);
    assert_eq!(f.flow_queues(), vec![f.q1.to_string()]);
    assert_eq!(f.row().await, (f.o1, f.q1));
    f.rs.stop().await;
}

/// The row write fails after the claim and the flow update: the flow gets its old actions
/// back and the claim is released; the old outdial is never touched.
#[tokio::test]
async fn a_failed_row_write_undoes_the_flow_and_the_claim() {
    let f = Fixture::new().await;
    let o2 = f.rs.sys.sim.create_outdial(f.customer, 1, 1);
    let q2 = f.rs.sys.sim.create_queue(f.customer, 1);
    f.refuse_writes("UPDATE").await;

    let (code, _, data) = f.move_to(o2, q2).await;
    assert_ne!(code, 200, "{data}");
    f.allow_writes().await;
    let (id, flow, q1) = (f.id, f.flow_id, f.q1);
    assert_eq!(
        f.rs.lines(),
        vec![
            format!("GET /v1/outdials/{o2}"),
            format!("GET /v1/queues/{q2}"),
            format!("PUT /v1/outdials/{o2}/campaign_id campaign_id={id}"),
            format!("GET /v1/outdials/{o2}"),
            format!("PUT /v1/flows/{flow}/actions queue_join={q2}"),
            format!("PUT /v1/flows/{flow}/actions queue_join={q1}"),
            format!("GET /v1/outdials/{o2}"),
            format!("PUT /v1/outdials/{o2}/campaign_id campaign_id={NIL}"),
        ]
    );
    assert_eq!(
        f.flow_queues(),
        vec![q1.to_string()],
        "flow actions put back"
    );
    assert_eq!(f.row().await, (f.o1, q1));
    assert_eq!(owner(&f.rs, o2), Uuid::nil());
    assert_eq!(owner(&f.rs, f.o1), id);
    f.rs.stop().await;
}

/// The successful move, in order: claim (and read back) the new outdial, flow, row, then
/// release the old outdial after reading that it is still ours.
#[tokio::test]
async fn a_move_claims_first_and_releases_the_old_outdial_last() {
    let f = Fixture::new().await;
    let o2 = f.rs.sys.sim.create_outdial(f.customer, 1, 1);
    let q2 = f.rs.sys.sim.create_queue(f.customer, 1);

    let (code, _, data) = f.move_to(o2, q2).await;
    assert_eq!(code, 200, "{data}");
    let (id, flow, o1) = (f.id, f.flow_id, f.o1);
    assert_eq!(
        f.rs.lines(),
        vec![
            format!("GET /v1/outdials/{o2}"),
            format!("GET /v1/queues/{q2}"),
            format!("PUT /v1/outdials/{o2}/campaign_id campaign_id={id}"),
            format!("GET /v1/outdials/{o2}"),
            format!("PUT /v1/flows/{flow}/actions queue_join={q2}"),
            format!("GET /v1/outdials/{o1}"),
            format!("PUT /v1/outdials/{o1}/campaign_id campaign_id={NIL}"),
        ]
    );
    assert_eq!(
        (uuid(&data["outdial_id"]), uuid(&data["queue_id"])),
        (o2, q2)
    );
    assert_eq!(f.row().await, (o2, q2));
    assert_eq!(f.flow_queues(), vec![q2.to_string()]);
    assert_eq!((owner(&f.rs, o1), owner(&f.rs, o2)), (Uuid::nil(), id));
    f.rs.stop().await;
}

/// Create whose row insert fails: the flow is deleted and the claim released.
#[tokio::test]
async fn a_failed_create_undoes_the_flow_and_the_claim() {
    let f = Fixture::new().await;
    let o2 = f.rs.sys.sim.create_outdial(f.customer, 1, 1);
    f.refuse_writes("INSERT").await;
    let id = Uuid::new_v4();
    let (code, _, data) =
        f.rs.sys
            .rpc(
                "POST",
                "/v1/campaigns",
                Some(
                    json!({"id": id, "customer_id": f.customer, "type": "call", "name": "c2",
                        "end_handle": "stop", "outdial_id": o2}),
                ),
            )
            .await;
    assert_ne!(code, 200, "{data}");
    f.allow_writes().await;
    let flows = f.rs.sys.sim.flows();
    let new_flow = flows
        .iter()
        .find(|fl| fl.id != f.flow_id)
        .expect("a flow was created");
    assert!(new_flow.tm_delete.is_some(), "the new flow is deleted");
    let nf = new_flow.id;
    assert_eq!(
        f.rs.lines(),
        vec![
            format!("GET /v1/outdials/{o2}"),
            "POST /v1/flows queue_join=".to_owned(),
            format!("PUT /v1/outdials/{o2}/campaign_id campaign_id={id}"),
            format!("GET /v1/outdials/{o2}"),
            format!("DELETE /v1/flows/{nf}"),
            format!("GET /v1/outdials/{o2}"),
            format!("PUT /v1/outdials/{o2}/campaign_id campaign_id={NIL}"),
        ]
    );
    assert_eq!(owner(&f.rs, o2), Uuid::nil());
    f.rs.stop().await;
}

/// Deleting a campaign whose outdial cannot be read leaves the outdial alone (before, the
/// claim was cleared blind); an outdial another campaign owns by now is left alone too.
#[tokio::test]
async fn release_never_clears_a_claim_it_could_not_read_or_does_not_own() {
    let f = Fixture::new().await;
    f.rs.sys
        .sim
        .inject(Fault::status(Service::Outdial, 500, 1).on_uri(&format!("/v1/outdials/{}", f.o1)));
    f.rs.sys
        .ok("DELETE", &format!("/v1/campaigns/{}", f.id), None)
        .await;
    let (flow, o1) = (f.flow_id, f.o1);
    assert_eq!(
        f.rs.lines(),
        vec![
            format!("DELETE /v1/flows/{flow}"),
            format!("GET /v1/outdials/{o1} -> 500"),
        ]
    );
    assert_eq!(owner(&f.rs, o1), f.id, "not cleared blind");

    // Another campaign's claim is not ours to clear.
    let g = Fixture::new().await;
    let other = Uuid::new_v4();
    g.rs.sys.sim.with_state(|s| {
        s.outdials
            .set_campaign(g.o1, other, chrono::Utc::now())
            .map(|_| ())
            .expect("set owner")
    });
    g.rs.sys
        .ok("DELETE", &format!("/v1/campaigns/{}", g.id), None)
        .await;
    assert_eq!(
        g.rs.lines(),
        vec![
            format!("DELETE /v1/flows/{}", g.flow_id),
            format!("GET /v1/outdials/{}", g.o1),
        ]
    );
    assert_eq!(owner(&g.rs, g.o1), other);
    f.rs.stop().await;
    g.rs.stop().await;
}
