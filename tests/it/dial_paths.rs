//! The paths that end, stop and claim a dial, where two actors race (mockall peers over a real
//! MariaDB/Redis test store): late hangups for a campaigncall already done, the finish's
//! compare-and-set against a racing give-up, the conditional stop against a concurrent `run`,
//! targets a late claim left `progressing`, and the durable start of a sequence's next
//! campaign.

use crate::support;

use std::sync::Arc;

use campaign_manager::events::Subscriptions;
use campaign_manager::model::*;
use campaign_manager::peers::{DialGate, DialPeer, PeerError};
use campaign_manager::service::tick::Outcome;
use support::mocked::{Mocked, fresh_fence};
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
            .finish_settling(open.id, CampaigncallResult::Success, Some("normal"), true)
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

// ---------------------------------------------------------------- the claim

/// A gate whose call-manager breaker is open.
struct RefusingCalls;

impl DialGate for RefusingCalls {
    fn is_refusing(&self, peer: DialPeer) -> bool {
        peer == DialPeer::Call
    }
}

/// A never-tried target.
fn target() -> OutdialTarget {
    OutdialTarget {
        id: Uuid::new_v4(),
        destination_0: Some(Address::tel("+15550001000")),
        ..OutdialTarget::default()
    }
}

/// outdial-manager offers `t` once.
fn offer_once(m: &mut Mocks, t: OutdialTarget) {
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(move |_, _, _| Ok(vec![t.clone()]));
}

/// The campaign's campaigncalls.
async fn calls_of(m: &Mocked, campaign_id: Uuid) -> Vec<Campaigncall> {
    let mut filters = serde_json::Map::new();
    filters.insert("campaign_id".into(), campaign_id.to_string().into());
    let f = m.ts.store.campaigncalls.filters(&filters).expect("filters");
    m.ts.store
        .campaigncalls
        .list(
            &f,
            campaign_manager::store::Page {
                token: None,
                size: 100,
            },
        )
        .await
        .expect("list")
}

/// With call-manager's breaker open the request could not be sent: the target is not claimed
/// (the claim would add a try outdial-manager never takes back), the dial is abandoned and its
/// try freed. (Before, the claim was made and the create then refused by the breaker: a try
/// lost for every dial of the outage.) The mock has no claim expectation: a claim fails the test.
#[tokio::test]
async fn claim_not_made_under_an_open_breaker() {
    let t = target();
    let mut mocks = Mocks::new();
    offer_once(&mut mocks, t.clone());
    expect_target(&mut mocks, t.id, TargetStatus::Idle, 1);
    mocks.gate = Arc::new(RefusingCalls);
    let (m, c) = Mocked::with_running_call(mocks, |_| {}).await;

    let (_, outcome) = m.ticker().tick(c.id, &fresh_fence()).await;

    assert!(matches!(outcome, Outcome::Backoff(_)), "{outcome:?}");
    let calls = calls_of(&m, c.id).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].result, CampaigncallResult::Fail);
    assert_eq!(
        m.ts.store.dials.step(calls[0].id).await.expect("step"),
        None,
        "try freed"
    );
}

/// A claim whose reply was lost may land after the dial was given up, leaving the target
/// `progressing` with no open campaigncall (never offered again). The give-up keeps its outbox
/// row, and the repair sets the target `idle` again once the row is older than the margin.
#[tokio::test]
async fn claim_landing_after_give_up_is_set_back_by_the_repair() {
    let t = target();
    let mut mocks = Mocks::new();
    offer_once(&mut mocks, t.clone());
    mocks
        .outdial
        .expect_set_target_progressing()
        .times(1)
        .returning(|_, _| {
            Err(PeerError::Timeout {
                target: "outdial".into(),
            })
        });
    // Once by the give-up, once more by the repair after the late claim.
    expect_target(&mut mocks, t.id, TargetStatus::Idle, 2);
    let (m, c) = Mocked::with_running_call(mocks, |_| {}).await;

    m.ticker().tick(c.id, &fresh_fence()).await;
    let calls = calls_of(&m, c.id).await;
    assert_eq!(calls[0].status, CampaigncallStatus::Done);

    assert_eq!(
        m.service.settle_outbox(60_000).await,
        0,
        "not before the margin"
    );
    assert_eq!(m.service.settle_outbox(0).await, 1, "set back to idle");
    assert_eq!(m.service.settle_outbox(0).await, 0, "once");
}

/// The same, but a later dial has taken the target meanwhile (open campaigncall): the repair
/// leaves the target alone (setting it `idle` would offer a person being called) and drops its
/// row. The mock allows only the give-up's one write.
#[tokio::test]
async fn claim_set_back_leaves_a_target_a_later_dial_has() {
    let t = target();
    let mut mocks = Mocks::new();
    offer_once(&mut mocks, t.clone());
    mocks
        .outdial
        .expect_set_target_progressing()
        .times(1)
        .returning(|_, _| {
            Err(PeerError::Timeout {
                target: "outdial".into(),
            })
        });
    expect_target(&mut mocks, t.id, TargetStatus::Idle, 1);
    let (m, c) = Mocked::with_running_call(mocks, |_| {}).await;

    m.ticker().tick(c.id, &fresh_fence()).await;
    let mut later = records::campaigncall_of(&c, CampaigncallStatus::Dialing);
    later.outdial_target_id = t.id;
    m.ts.store
        .campaigncalls
        .create(&later)
        .await
        .expect("later dial");

    assert_eq!(m.service.settle_outbox(0).await, 1, "settled: moved on");
    assert_eq!(m.service.settle_outbox(0).await, 0, "row dropped");
}

// ---------------------------------------------------------------- sequences

/// A campaign that dialed and is about to end with its list exhausted, and its next campaign
/// (stopped, same customer), both stored; outdial-manager answers `get_outdial` with `replies`
/// in order.
async fn sequence(replies: Vec<Result<Outdial, PeerError>>) -> (Mocked, Campaign, Campaign) {
    let customer = Uuid::new_v4();
    let mut mocks = Mocks::new();
    let mut seq = mockall::Sequence::new();
    for reply in replies {
        mocks
            .outdial
            .expect_get_outdial()
            .times(1)
            .in_sequence(&mut seq)
            .returning(move |id| {
                reply.clone().map(|o| Outdial {
                    id,
                    customer_id: customer,
                    ..o
                })
            });
    }
    let m = Mocked::new(mocks).await;
    let o = m.insert_outplan(&records::outplan(customer)).await;
    let mut next = records::running_campaign(customer, o.id);
    next.status = CampaignStatus::Stop;
    next.execute = Execute::Stop;
    let next = m.insert_campaign(&next).await;
    let mut ended = records::running_campaign(customer, o.id);
    ended.next_campaign_id = next.id;
    let ended = m.insert_campaign(&ended).await;
    m.insert_call(&ended, CampaigncallStatus::Done).await;
    (m, ended, next)
}

/// The end of `ended` as the tick makes it when its list is exhausted.
async fn end_exhausted(m: &Mocked, ended: &Campaign) {
    assert!(
        m.service
            .end_execution_seen_then(
                ended.id,
                CampaignStatus::Run,
                Execute::Run,
                ended.next_campaign_id
            )
            .await
            .expect("end")
    );
}

/// The process dies right after the campaign's end (before it starts the next campaign): the
/// start was recorded with the end, and the repair does it once the row is older than the
/// margin. (Before, nothing recorded it: the next campaign never ran.)
#[tokio::test]
async fn sequence_start_survives_a_death_between_end_and_start() {
    let (m, ended, next) = sequence(vec![Ok(Outdial::default())]).await;
    end_exhausted(&m, &ended).await;
    assert_eq!(m.campaign(ended.id).await.execute, Execute::Stop);

    assert_eq!(
        m.service.settle_outbox(60_000).await,
        0,
        "not before the margin"
    );
    assert_eq!(m.campaign(next.id).await.status, CampaignStatus::Stop);
    assert_eq!(m.service.settle_outbox(0).await, 1, "started by the repair");
    assert_eq!(m.campaign(next.id).await.status, CampaignStatus::Run);
    assert_eq!(m.service.settle_outbox(0).await, 0, "once");
}

/// outdial-manager times out while the ending tick starts the next campaign: the row stays,
/// postponed, and the repair starts it when due. (Before, the start was logged and lost.)
#[tokio::test]
async fn sequence_start_after_a_peer_timeout_is_retried_by_the_repair() {
    let timeout = PeerError::Timeout {
        target: "outdial".into(),
    };
    let (m, ended, next) = sequence(vec![Err(timeout), Ok(Outdial::default())]).await;
    end_exhausted(&m, &ended).await;
    m.service.start_next_campaign(&ended).await;
    assert_eq!(m.campaign(next.id).await.status, CampaignStatus::Stop);

    assert_eq!(m.service.settle_outbox(0).await, 0, "postponed");
    sqlx::query("UPDATE campaign_outbox SET tm_due = tm_due - INTERVAL 10 MINUTE")
        .execute(&m.ts.db.pool)
        .await
        .expect("age the row");
    assert_eq!(m.service.settle_outbox(0).await, 1, "started by the repair");
    assert_eq!(m.campaign(next.id).await.status, CampaignStatus::Run);
}

// ---------------------------------------------------------------- smaller

/// A dial fence newer than any before in this process, with 30 s to run.
fn fence() -> campaign_manager::store::DialFence {
    campaign_manager::store::DialFence {
        seq: u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(0),
        deadline: chrono::Utc::now() + chrono::Duration::seconds(30),
    }
}

/// A hangup proves the call was placed: the finish marks the dial `requested` in its
/// transaction, so its try is never freed for a second dial (before, a dial whose tick died
/// before noting `requested` kept `recorded` and a later record freed its try). An operator's
/// finish stores why it ended (`operator_finish`).
#[tokio::test]
async fn hangup_marks_the_dial_placed_and_operator_finish_stores_its_reason() {
    let mut mocks = Mocks::new();
    mocks
        .call
        .expect_get_call()
        .times(1)
        .returning(|_| Ok(None));
    mocks
        .outdial
        .expect_set_target_status()
        .times(2)
        .returning(|_, _| Ok(()));
    let m = Mocked::new(mocks).await;
    let c = campaign_in(&m, CampaignStatus::Run, Execute::Run).await;
    let dialed = records::campaigncall_of(&c, CampaigncallStatus::Dialing);
    let dialed = match m.ts.store.dials.record(&dialed, fence()).await {
        Ok(campaign_manager::store::Recorded::Dial(d)) => *d,
        other => panic!("not recorded: {other:?}"),
    };
    Subscriptions::new(m.service.clone())
        .call_hangup(hangup(dialed.reference_id, "busy"))
        .await
        .expect("hangup");
    assert_eq!(
        m.ts.store.dials.step(dialed.id).await.expect("step"),
        Some(campaign_manager::store::DialStep::Requested)
    );

    let open = m.insert_call(&c, CampaigncallStatus::Dialing).await;
    m.service
        .operator_finish_campaigncall(open.id, CampaigncallResult::Fail, false)
        .await
        .expect("operator finish");
    let (reason,): (Option<String>,) =
        sqlx::query_as("SELECT reason FROM campaign_campaigncalls WHERE id = ?")
            .bind(open.id.as_bytes().to_vec())
            .fetch_one(&m.ts.db.pool)
            .await
            .expect("reason");
    assert_eq!(reason.as_deref(), Some("operator_finish"));
}

/// `force_stop` stores why it ended the campaigncalls it settled (`force_stop`); a call it
/// hangs up that call-manager answers `terminating` (it was answered) ends `success`, its
/// target `done`.
#[tokio::test]
async fn force_stop_stores_its_reason() {
    let mut mocks = Mocks::new();
    mocks.call.expect_get_call().times(1).returning(|id| {
        Ok(Some(Call {
            id,
            status: "progressing".into(),
            hangup_reason: String::new(),
        }))
    });
    // The call is up: force_stop hangs it up at call-manager too (answered: `terminating`).
    mocks.call.expect_hangup_call().times(1).returning(|id| {
        Ok(Call {
            id,
            status: "terminating".into(),
            hangup_reason: String::new(),
        })
    });
    mocks
        .outdial
        .expect_set_target_status()
        .withf(|_, s| *s == TargetStatus::Done)
        .times(1)
        .returning(|_, _| Ok(()));
    let m = Mocked::new(mocks).await;
    let c = campaign_in(&m, CampaignStatus::Stopping, Execute::Stop).await;
    let open = m.insert_call(&c, CampaigncallStatus::Dialing).await;

    m.service
        .force_stop_campaign(c.id)
        .await
        .expect("force stop");

    let (reason,): (Option<String>,) =
        sqlx::query_as("SELECT reason FROM campaign_campaigncalls WHERE id = ?")
            .bind(open.id.as_bytes().to_vec())
            .fetch_one(&m.ts.db.pool)
            .await
            .expect("reason");
    assert_eq!(reason.as_deref(), Some("force_stop"));
    let done =
        m.ts.store
            .campaigncalls
            .get_fresh(open.id)
            .await
            .expect("read")
            .expect("campaigncall");
    assert_eq!(
        (done.status, done.result),
        (CampaigncallStatus::Done, CampaigncallResult::Success)
    );
    assert_eq!(m.campaign(c.id).await.status, CampaignStatus::Stop);
}

/// `finish --result fail` asks call-manager first: a call it reports up is refused (409; a
/// `fail` would set the target `idle` while the person may be talking), as is one it cannot
/// say about; `force` finishes it anyway. (Before, the campaigncall was failed at once.)
#[tokio::test]
async fn operator_fail_asks_the_peer_unless_forced() {
    let mut mocks = Mocks::new();
    let mut seq = mockall::Sequence::new();
    mocks
        .call
        .expect_get_call()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|id| {
            Ok(Some(Call {
                id,
                status: "progressing".into(),
                hangup_reason: String::new(),
            }))
        });
    mocks
        .call
        .expect_get_call()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| {
            Err(PeerError::Timeout {
                target: "call".into(),
            })
        });
    mocks
        .outdial
        .expect_set_target_status()
        .times(1)
        .returning(|_, _| Ok(()));
    let m = Mocked::new(mocks).await;
    let c = campaign_in(&m, CampaignStatus::Run, Execute::Run).await;
    let open = m.insert_call(&c, CampaigncallStatus::Dialing).await;

    for said in ["still up", "could not say"] {
        let err = m
            .service
            .operator_finish_campaigncall(open.id, CampaigncallResult::Fail, false)
            .await
            .expect_err(said);
        assert!(
            matches!(
                err,
                campaign_manager::service::ServiceError::Precondition(_)
            ),
            "{said}: {err:?}"
        );
        assert_eq!(
            fresh(&m, open.id).await.status,
            CampaigncallStatus::Dialing,
            "{said}"
        );
    }
    let done = m
        .service
        .operator_finish_campaigncall(open.id, CampaigncallResult::Fail, true)
        .await
        .expect("forced");
    assert_eq!(done.result, CampaigncallResult::Fail);
}

/// The dial's step cannot be noted after the claim (the database fails that write): the dial
/// is abandoned before call-manager is asked, rather than a call placed whose record says it
/// never got past `recorded`. (Before, the error was only logged and the call requested: the
/// mock has no `create_call` expectation, so a request fails the test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_write_failure_fails_the_dial_before_the_request() {
    let t = target();
    let mut mocks = Mocks::new();
    offer_once(&mut mocks, t.clone());
    let pool: Arc<std::sync::Mutex<Option<sqlx::MySqlPool>>> = Arc::default();
    let in_claim = pool.clone();
    mocks
        .outdial
        .expect_set_target_progressing()
        .times(1)
        .returning(move |_, _| {
            // The claim succeeds; meanwhile the dial table becomes unwritable.
            let pool = in_claim.lock().expect("pool").clone().expect("pool set");
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    sqlx::query("RENAME TABLE campaign_dials TO campaign_dials_away")
                        .execute(&pool)
                        .await
                        .expect("rename");
                })
            });
            Ok(())
        });
    expect_target(&mut mocks, t.id, TargetStatus::Idle, 1);
    let (m, c) = Mocked::with_running_call(mocks, |_| {}).await;
    *pool.lock().expect("pool") = Some(m.ts.db.pool.clone());

    let (_, outcome) = m.ticker().tick(c.id, &fresh_fence()).await;

    assert!(matches!(outcome, Outcome::Backoff(_)), "{outcome:?}");
    let calls = calls_of(&m, c.id).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].status, calls[0].result),
        (CampaigncallStatus::Done, CampaigncallResult::Fail)
    );
}
