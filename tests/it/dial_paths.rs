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

// ---------------------------------------------------------------- the finish

/// outdial-manager is told `status` for `target` exactly `times` times (any other target write
/// fails the test: the mock has no other expectation).
fn expect_target(m: &mut Mocks, target: Uuid, status: TargetStatus, times: usize) {
    m.outdial
        .expect_set_target_status()
        .withf(move |id, s| *id == target && *s == status)
        .times(times)
        .returning(|_, _| Ok(()));
}

/// A give-up (the repair's or an operator's `finish fail`) that read the campaigncall open, then
/// lost the race to a `normal` hangup: the compare-and-set comes first and the loser writes no
/// target, so the campaigncall ends `success` with its target `done` (before, the loser had
/// already set the target `idle`: a reached person was offered again).
#[tokio::test]
async fn finish_loser_never_writes_the_target() {
    let target = Uuid::new_v4();
    let mut mocks = Mocks::new();
    expect_target(&mut mocks, target, TargetStatus::Done, 1);
    let m = Mocked::new(mocks).await;
    let c = campaign_in(&m, CampaignStatus::Run, Execute::Run).await;
    let mut cc = records::campaigncall_of(&c, CampaigncallStatus::Dialing);
    cc.outdial_target_id = target;
    let open =
        m.ts.store
            .campaigncalls
            .create(&cc)
            .await
            .expect("campaigncall");
    let subs = Subscriptions::new(m.service.clone());

    // The give-up has read `open`; the hangup lands first.
    subs.call_hangup(hangup(open.reference_id, "normal"))
        .await
        .expect("hangup");
    let lost = m
        .service
        .finish_read_campaigncall(&open, CampaigncallResult::Fail, Some("over_max_duration"))
        .await
        .expect("give-up");

    assert!(lost.is_none(), "the give-up lost the compare-and-set");
    assert_eq!(fresh(&m, open.id).await.result, CampaigncallResult::Success);
    assert_eq!(count(&m.events(), "campaigncall_updated"), 1);
    assert_eq!(m.service.settle_outbox(0).await, 0, "nothing left to write");
}

/// The process dies between the finish's commit and its target write: the outbox row written
/// with the finish is found by the repair and the target set as the finish decided.
#[tokio::test]
async fn finish_cut_before_its_target_write_is_completed_by_the_repair() {
    let target = Uuid::new_v4();
    let mut mocks = Mocks::new();
    expect_target(&mut mocks, target, TargetStatus::Done, 1);
    let m = Mocked::new(mocks).await;
    let c = campaign_in(&m, CampaignStatus::Run, Execute::Run).await;
    let mut cc = records::campaigncall_of(&c, CampaigncallStatus::Dialing);
    cc.outdial_target_id = target;
    let open =
        m.ts.store
            .campaigncalls
            .create(&cc)
            .await
            .expect("campaigncall");

    // The store half of the finish, as a process that dies right after its commit leaves it.
    let (done, _) =
        m.ts.store
            .campaigncalls
            .finish_settling(open.id, CampaigncallResult::Success, Some("normal"))
            .await
            .expect("finish")
            .expect("won");
    assert_eq!(done.result, CampaigncallResult::Success);

    assert_eq!(
        m.service.settle_outbox(60_000).await,
        0,
        "younger than the margin"
    );
    assert_eq!(
        m.service.settle_outbox(0).await,
        1,
        "the repair writes the target"
    );
    assert_eq!(m.service.settle_outbox(0).await, 0, "once");
}

// ---------------------------------------------------------------- stop

/// A `stop` decided on `stopping`/`execute = stop` with nothing up, racing a `run` that lands
/// before its UPDATE: the UPDATE re-checks `execute` and open calls, so the run stays (before,
/// it checked only the status and set `stop` under a running chain).
#[tokio::test]
async fn stop_decided_before_a_concurrent_run_does_not_undo_it() {
    let m = Mocked::new(Mocks::new()).await;
    let c = campaign_in(&m, CampaignStatus::Stopping, Execute::Stop).await;
    let campaigns = &m.ts.store.campaigns;
    // The concurrent `run` (its transition, as run_campaign makes it).
    assert!(
        campaigns
            .transition(
                c.id,
                &[CampaignStatus::Stop, CampaignStatus::Stopping],
                CampaignStatus::Run,
                Some(Execute::Run),
            )
            .await
            .expect("run")
    );
    // The stop's write, decided on the state read before the run.
    assert!(!campaigns.stop_if_stoppable(c.id).await.expect("stop"));
    let after = m.campaign(c.id).await;
    assert_eq!(
        (after.status, after.execute),
        (CampaignStatus::Run, Execute::Run)
    );

    // Nor is a dial that lands between the check and the write undone.
    let d = campaign_in(&m, CampaignStatus::Stopping, Execute::Stop).await;
    m.insert_call(&d, CampaigncallStatus::Dialing).await;
    assert!(!campaigns.stop_if_stoppable(d.id).await.expect("stop"));
    assert_eq!(m.campaign(d.id).await.status, CampaignStatus::Stopping);

    // With nothing racing it, it stops.
    let e = campaign_in(&m, CampaignStatus::Stopping, Execute::Stop).await;
    assert!(campaigns.stop_if_stoppable(e.id).await.expect("stop"));
    assert_eq!(m.campaign(e.id).await.status, CampaignStatus::Stop);
}
