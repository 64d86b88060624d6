//! The paths that end, stop and claim a dial, where two actors race (mockall peers over a real
//! MariaDB/Redis test store): late hangups for a campaigncall already done, the finish's
//! compare-and-set against a racing give-up, the conditional stop against a concurrent `run`,
//! targets a late claim left `progressing`, and the durable start of a sequence's next
//! campaign.

use crate::support;

use campaign_manager::events::Subscriptions;
use campaign_manager::model::*;
use support::mocked::Mocked;
use support::mocks::Mocks;
use support::records;
use uuid::Uuid;

/// A stored campaign of a new customer in `status`/`execute`, with an outplan.
async fn campaign_in(m: &Mocked, status: CampaignStatus, execute: Execute) -> Campaign {
    let customer = Uuid::new_v4();
    let o = m.insert_outplan(&records::outplan(customer)).await;
    let mut c = records::running_campaign(customer, o.id);
    c.status = status;
    c.execute = execute;
    m.insert_campaign(&c).await
}

/// A call campaigncall of `c`, stored `done` with `result`, for `target`.
async fn done_call(
    m: &Mocked,
    c: &Campaign,
    target: Uuid,
    result: CampaigncallResult,
) -> Campaigncall {
    let mut cc = records::campaigncall_of(c, CampaigncallStatus::Done);
    cc.outdial_target_id = target;
    cc.result = result;
    m.ts.store
        .campaigncalls
        .create(&cc)
        .await
        .expect("campaigncall")
}

/// call-manager's `call_hangup` for `call_id` with `reason`.
fn hangup(call_id: Uuid, reason: &str) -> Call {
    Call {
        id: call_id,
        status: "hangup".into(),
        hangup_reason: reason.into(),
    }
}

async fn fresh(m: &Mocked, id: Uuid) -> Campaigncall {
    m.ts.store
        .campaigncalls
        .get_fresh(id)
        .await
        .expect("read")
        .expect("campaigncall exists")
}

fn count(events: &[String], name: &str) -> usize {
    events.iter().filter(|e| *e == name).count()
}

// ---------------------------------------------------------------- late hangups

/// A `normal` hangup for a campaigncall stored `fail` (call-manager's early `failed`, or a dial
/// the repair failed) finishes it again as `success`, once however often it arrives, with its
/// target `done`; and the stop check runs, so the `stopping` campaign stops.
#[tokio::test]
async fn late_success_after_fail_finishes_again_as_success_once() {
    let target = Uuid::new_v4();
    let mut mocks = Mocks::new();
    mocks
        .outdial
        .expect_set_target_status()
        .withf(move |id, s| *id == target && *s == TargetStatus::Done)
        .times(1)
        .returning(|_, _| Ok(()));
    let m = Mocked::new(mocks).await;
    let c = campaign_in(&m, CampaignStatus::Stopping, Execute::Stop).await;
    let cc = done_call(&m, &c, target, CampaigncallResult::Fail).await;
    let subs = Subscriptions::new(m.service.clone());

    subs.call_hangup(hangup(cc.reference_id, "normal"))
        .await
        .expect("first");
    subs.call_hangup(hangup(cc.reference_id, "normal"))
        .await
        .expect("repeat");

    let after = fresh(&m, cc.id).await;
    assert_eq!(after.status, CampaigncallStatus::Done);
    assert_eq!(after.result, CampaigncallResult::Success);
    let events = m.events();
    assert_eq!(count(&events, "campaigncall_updated"), 1, "{events:?}");
    assert_eq!(
        m.campaign(c.id).await.status,
        CampaignStatus::Stop,
        "{events:?}"
    );
}

/// Any other late event for a done campaigncall changes nothing and publishes nothing (no
/// target write: the mock has no expectation), but the stop check still runs.
#[tokio::test]
async fn late_hangup_for_a_done_campaigncall_changes_nothing_but_the_stop_check_runs() {
    let m = Mocked::new(Mocks::new()).await;
    let c = campaign_in(&m, CampaignStatus::Stopping, Execute::Stop).await;
    let success = done_call(&m, &c, Uuid::new_v4(), CampaigncallResult::Success).await;
    let failed = done_call(&m, &c, Uuid::new_v4(), CampaigncallResult::Fail).await;
    let subs = Subscriptions::new(m.service.clone());

    subs.call_hangup(hangup(success.reference_id, "busy"))
        .await
        .expect("fail after success");
    subs.call_hangup(hangup(failed.reference_id, "noanswer"))
        .await
        .expect("fail after fail");
    let mut flow = records::campaigncall_of(&c, CampaigncallStatus::Done);
    flow.reference_type = ReferenceType::Flow;
    flow.reference_id = Uuid::nil();
    flow.result = CampaigncallResult::Success;
    let flow =
        m.ts.store
            .campaigncalls
            .create(&flow)
            .await
            .expect("flow campaigncall");
    subs.activeflow_deleted(Activeflow {
        id: flow.activeflow_id,
        status: "ended".into(),
        tm_delete: None,
    })
    .await
    .expect("success after success");

    assert_eq!(
        fresh(&m, success.id).await.result,
        CampaigncallResult::Success
    );
    assert_eq!(fresh(&m, failed.id).await.result, CampaigncallResult::Fail);
    let events = m.events();
    assert_eq!(count(&events, "campaigncall_updated"), 0, "{events:?}");
    assert_eq!(
        m.campaign(c.id).await.status,
        CampaignStatus::Stop,
        "{events:?}"
    );
}
