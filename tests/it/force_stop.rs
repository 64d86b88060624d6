//! `force_stop` (src/service/repair.rs) and the calls it hangs up: every open campaigncall is
//! settled page after page, and a call call-manager still reports up is hung up and finished
//! with the result its `call_hangup` will carry. That finish and the hangup event race; these
//! tests pin each order and check the final state is the same:
//! * with mockall peers over a real MariaDB/Redis store, the event is run at a chosen step
//!   (inside the hangup request, after force_stop, or read before force_stop's finish and
//!   applied after it);
//! * over RabbitMQ with the simulator answering the hangup as call-manager does.

use crate::support;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use campaign_manager::events::Subscriptions;
use campaign_manager::model::*;
use campaign_manager::peers::PeerError;
use campaign_manager::store::{DialFence, Recorded};
use chrono::{Duration as ChronoDuration, Utc};
use serde_json::{Value, json};
use support::mocked::Mocked;
use support::mocks::Mocks;
use support::{TestSystem, records, wait_until};
use uuid::Uuid;

/// A fence newer than any issued before in this process, with 30 s to run.
fn fence() -> DialFence {
    DialFence {
        seq: u64::try_from(Utc::now().timestamp_micros()).unwrap_or(0),
        deadline: Utc::now() + ChronoDuration::seconds(30),
    }
}

fn timeout() -> PeerError {
    PeerError::Timeout {
        target: "bin-manager.call-manager.request".into(),
    }
}

fn call(id: Uuid, status: &str, hangup_reason: &str) -> Call {
    Call {
        id,
        status: status.into(),
        hangup_reason: hangup_reason.into(),
    }
}

/// Every target status written to outdial-manager, in order.
type Writes = Arc<Mutex<Vec<(Uuid, TargetStatus)>>>;

/// The `call_hangup` handler of the service under test, set once the service exists (the
/// mocks are made before it).
type Handler = Arc<OnceLock<Arc<Subscriptions>>>;

/// Runs the `call_hangup` of `call_id` with `reason` through the real handler, from inside a
/// mock (a synchronous closure): the event lands at that step of force_stop.
fn hangup_event_now(handler: &Handler, call_id: Uuid, reason: &str) {
    let subs = handler.get().expect("handler set").clone();
    let ev = call(call_id, "hangup", reason);
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(subs.call_hangup(ev))
    })
    .expect("call_hangup handled");
}

/// A `stopping` call campaign with `n` open campaigncalls whose dials were recorded as a tick
/// does; the mocks are `m`, with every target write recorded in the returned [`Writes`].
struct Stuck {
    mocked: Mocked,
    campaign: Campaign,
    calls: Vec<Campaigncall>,
    writes: Writes,
    handler: Handler,
}

impl Stuck {
    async fn new(n: usize, mut m: Mocks, handler: Handler) -> Stuck {
        let writes: Writes = Arc::default();
        let seen = writes.clone();
        m.outdial
            .expect_set_target_status()
            .returning(move |target, status| {
                seen.lock().expect("writes").push((target, status));
                Ok(())
            });
        let (mocked, campaign) = Mocked::with_running_call(m, |_| {}).await;
        let mut calls = Vec::new();
        for _ in 0..n {
            let cc = records::campaigncall_of(&campaign, CampaigncallStatus::Dialing);
            match mocked.ts.store.dials.record(&cc, fence()).await {
                Ok(Recorded::Dial(stored)) => calls.push(*stored),
                other => panic!("dial not recorded: {other:?}"),
            }
        }
        assert!(
            mocked
                .ts
                .store
                .campaigns
                .transition(
                    campaign.id,
                    &[CampaignStatus::Run],
                    CampaignStatus::Stopping,
                    None
                )
                .await
                .expect("stopping")
        );
        let _ = handler.set(Subscriptions::new(mocked.service.clone()));
        Stuck {
            mocked,
            campaign,
            calls,
            writes,
            handler,
        }
    }

    async fn force_stop(&self) -> Campaign {
        self.mocked
            .service
            .force_stop_campaign(self.campaign.id)
            .await
            .expect("force stop")
    }

    /// `(status, result)` of the campaigncall as MySQL holds it.
    async fn state(&self, id: Uuid) -> (CampaigncallStatus, CampaigncallResult) {
        let cc = self
            .mocked
            .ts
            .store
            .campaigncalls
            .get_fresh(id)
            .await
            .expect("read campaigncall")
            .expect("campaigncall exists");
        (cc.status, cc.result)
    }

    /// The last status written for `target`: what outdial-manager holds.
    fn target(&self, target: Uuid) -> Option<TargetStatus> {
        self.writes
            .lock()
            .expect("writes")
            .iter()
            .rev()
            .find(|(t, _)| *t == target)
            .map(|(_, s)| *s)
    }

    fn writes(&self) -> Vec<TargetStatus> {
        self.writes
            .lock()
            .expect("writes")
            .iter()
            .map(|(_, s)| *s)
            .collect()
    }

    /// The `call_hangup` of campaigncall `cc` through the real handler, now.
    async fn hangup_event(&self, cc: &Campaigncall, reason: &str) {
        self.handler
            .get()
            .expect("handler")
            .call_hangup(call(cc.reference_id, "hangup", reason))
            .await
            .expect("call_hangup handled");
    }
}

/// call-manager reports every call up (`progressing`: answered) when asked.
fn calls_up(m: &mut Mocks) {
    m.call
        .expect_get_call()
        .returning(|id| Ok(Some(call(id, "progressing", ""))));
}

/// Which of force_stop's finish and the call's `call_hangup` lands first.
#[derive(Debug, Clone, Copy, PartialEq)]
enum First {
    /// The event, inside the hangup request (after force_stop asked, before it finishes).
    Event,
    /// force_stop's finish; the event after force_stop returned.
    ForceStop,
}

/// An answered call force_stop hangs up ends `success`, its target `done`, written once,
/// whichever of force_stop's finish and its `call_hangup` (`normal`) lands first; the
/// campaign stops.
async fn answered_call_ends_success(first: First) {
    let handler: Handler = Arc::default();
    let mut m = Mocks::new();
    calls_up(&mut m);
    let h = handler.clone();
    m.call.expect_hangup_call().times(1).returning(move |id| {
        if first == First::Event {
            hangup_event_now(&h, id, "normal");
        }
        Ok(call(id, "terminating", ""))
    });
    let s = Stuck::new(1, m, handler).await;
    let cc = s.calls[0].clone();
    let stopped = s.force_stop().await;
    assert_eq!(stopped.status, CampaignStatus::Stop, "{first:?}");
    if first == First::ForceStop {
        s.hangup_event(&cc, "normal").await;
    }
    assert_eq!(
        s.state(cc.id).await,
        (CampaigncallStatus::Done, CampaigncallResult::Success),
        "{first:?}"
    );
    assert_eq!(s.writes(), [TargetStatus::Done], "{first:?}: written once");
    assert_eq!(
        s.mocked.campaign(s.campaign.id).await.status,
        CampaignStatus::Stop
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_call_ends_success_when_its_hangup_event_lands_first() {
    answered_call_ends_success(First::Event).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_call_ends_success_when_force_stop_finishes_first() {
    answered_call_ends_success(First::ForceStop).await;
}

/// A call still ringing force_stop hangs up (call-manager cancels it: `canceling`, then
/// `call_hangup` with `cancel`) ends `fail`, its target `idle`, in both orders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ringing_call_ends_fail_in_both_orders() {
    for first in [First::Event, First::ForceStop] {
        let handler: Handler = Arc::default();
        let mut m = Mocks::new();
        m.call
            .expect_get_call()
            .returning(|id| Ok(Some(call(id, "ringing", ""))));
        let h = handler.clone();
        m.call.expect_hangup_call().times(1).returning(move |id| {
            if first == First::Event {
                hangup_event_now(&h, id, "cancel");
            }
            Ok(call(id, "canceling", ""))
        });
        let s = Stuck::new(1, m, handler).await;
        let cc = s.calls[0].clone();
        s.force_stop().await;
        if first == First::ForceStop {
            s.hangup_event(&cc, "cancel").await;
        }
        assert_eq!(
            s.state(cc.id).await,
            (CampaigncallStatus::Done, CampaigncallResult::Fail),
            "{first:?}"
        );
        assert_eq!(s.writes(), [TargetStatus::Idle], "{first:?}: written once");
    }
}

/// The race that once left a hung-up call `fail`: call-manager does not answer the hangup
/// (force_stop stores `fail`, the operator's word), and the call's `call_hangup` (`normal`)
/// was read by its handler while the campaigncall was still open, then applied after
/// force_stop's finish. Its own finish loses the compare-and-set; the late-success rule still
/// applies: `success`, target `done` last. Also when the event is read after the finish.
#[tokio::test]
async fn unanswered_hangup_then_normal_event_read_before_the_finish_ends_success() {
    for stale in [true, false] {
        let mut m = Mocks::new();
        calls_up(&mut m);
        m.call
            .expect_hangup_call()
            .times(1)
            .returning(|_| Err(timeout()));
        let s = Stuck::new(1, m, Arc::default()).await;
        let cc = s.calls[0].clone();
        let service = &s.mocked.service;
        let early = service
            .campaigncall_by_call(cc.reference_id)
            .await
            .expect("read")
            .expect("campaigncall");
        assert_ne!(early.status, CampaigncallStatus::Done);
        s.force_stop().await;
        assert_eq!(
            s.state(cc.id).await,
            (CampaigncallStatus::Done, CampaigncallResult::Fail),
            "force_stop's own word"
        );
        let read = if stale {
            early
        } else {
            service
                .campaigncall_by_call(cc.reference_id)
                .await
                .expect("read")
                .expect("campaigncall")
        };
        let changed = service
            .finish_from_event(&read, CampaigncallResult::Success, "normal")
            .await
            .expect("event");
        assert!(changed.is_some(), "stale {stale}: finished again");
        assert_eq!(
            s.state(cc.id).await,
            (CampaigncallStatus::Done, CampaigncallResult::Success),
            "stale {stale}"
        );
        assert_eq!(
            s.target(cc.outdial_target_id),
            Some(TargetStatus::Done),
            "stale {stale}: writes {:?}",
            s.writes()
        );
        // A second copy of the event changes nothing.
        let again = service
            .finish_from_event(&read, CampaigncallResult::Success, "normal")
            .await
            .expect("event");
        assert!(again.is_none(), "stale {stale}: once");
    }
}

/// force_stop's `idle` write for a call whose hangup it could not confirm reaches
/// outdial-manager *after* the `done` of a late `normal` hangup: the finish reads the
/// campaigncall again once `idle` is written and writes `done` after it, so the target ends
/// `done`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_success_written_before_the_idle_of_force_stop_still_ends_done() {
    let handler: Handler = Arc::default();
    let writes: Writes = Arc::default();
    let mut m = Mocks::new();
    calls_up(&mut m);
    m.call
        .expect_hangup_call()
        .times(1)
        .returning(|_| Err(timeout()));
    let (seen_idle, h) = (writes.clone(), handler.clone());
    let call_of: Arc<OnceLock<Uuid>> = Arc::default();
    let call_id = call_of.clone();
    // The idle write is slow: the event (and its `done`) lands while it is on its way.
    m.outdial
        .expect_set_target_status()
        .withf(|_, s| *s == TargetStatus::Idle)
        .times(1)
        .returning(move |target, status| {
            hangup_event_now(&h, *call_id.get().expect("call id"), "normal");
            seen_idle.lock().expect("writes").push((target, status));
            Ok(())
        });
    let seen_done = writes.clone();
    m.outdial
        .expect_set_target_status()
        .withf(|_, s| *s == TargetStatus::Done)
        .returning(move |target, status| {
            seen_done.lock().expect("writes").push((target, status));
            Ok(())
        });
    let (mocked, campaign) = Mocked::with_running_call(m, |_| {}).await;
    let cc = records::campaigncall_of(&campaign, CampaigncallStatus::Dialing);
    let cc = match mocked.ts.store.dials.record(&cc, fence()).await {
        Ok(Recorded::Dial(stored)) => *stored,
        other => panic!("dial not recorded: {other:?}"),
    };
    call_of.set(cc.reference_id).expect("set once");
    let _ = handler.set(Subscriptions::new(mocked.service.clone()));
    assert!(
        mocked
            .ts
            .store
            .campaigns
            .transition(
                campaign.id,
                &[CampaignStatus::Run],
                CampaignStatus::Stopping,
                None
            )
            .await
            .expect("stopping")
    );
    mocked
        .service
        .force_stop_campaign(campaign.id)
        .await
        .expect("force stop");
    let written: Vec<TargetStatus> = writes
        .lock()
        .expect("writes")
        .iter()
        .map(|(_, s)| *s)
        .collect();
    assert_eq!(
        written,
        [TargetStatus::Done, TargetStatus::Idle, TargetStatus::Done],
        "the late done, the slow idle, then done again"
    );
    let done = mocked
        .ts
        .store
        .campaigncalls
        .get_fresh(cc.id)
        .await
        .expect("read")
        .expect("campaigncall");
    assert_eq!(done.result, CampaigncallResult::Success);
}

/// `force_stop` goes on past one page of open campaigncalls (500) until none is left, and
/// hangs up every call call-manager still reports up, each once, even when one hangup is not
/// answered (that one ends `fail`, target `idle`; the others `success`, target `done`).
#[tokio::test]
async fn force_stop_settles_more_than_a_page_and_hangs_up_every_live_call() {
    const OPEN: usize = 503;
    let mut m = Mocks::new();
    m.call
        .expect_get_call()
        .times(OPEN)
        .returning(|id| Ok(Some(call(id, "progressing", ""))));
    let hung_up: Arc<Mutex<Vec<Uuid>>> = Arc::default();
    let seen = hung_up.clone();
    let unanswered: Arc<OnceLock<Uuid>> = Arc::default();
    let first = unanswered.clone();
    m.call
        .expect_hangup_call()
        .times(OPEN)
        .returning(move |id| {
            seen.lock().expect("lock").push(id);
            if first.get() == Some(&id) {
                Err(timeout())
            } else {
                Ok(call(id, "terminating", ""))
            }
        });
    let s = Stuck::new(OPEN, m, Arc::default()).await;
    let odd = s.calls[0].clone();
    unanswered.set(odd.reference_id).expect("set once");
    let c = s.force_stop().await;
    assert_eq!(c.status, CampaignStatus::Stop);
    let mut asked = hung_up.lock().expect("lock").clone();
    asked.sort();
    let mut want: Vec<Uuid> = s.calls.iter().map(|cc| cc.reference_id).collect();
    want.sort();
    assert_eq!(asked, want, "every live call hung up once");
    assert!(
        !s.mocked
            .ts
            .store
            .campaigncalls
            .has_ongoing(c.id)
            .await
            .expect("ongoing"),
        "nothing left open"
    );
    for cc in &s.calls {
        let want = if cc.id == odd.id {
            (CampaigncallResult::Fail, TargetStatus::Idle)
        } else {
            (CampaigncallResult::Success, TargetStatus::Done)
        };
        assert_eq!(
            (s.state(cc.id).await.1, s.target(cc.outdial_target_id)),
            (want.0, Some(want.1)),
            "{}",
            cc.id
        );
    }
}

// ---------------------------------------------------------------- over RabbitMQ

async fn campaigncalls(sys: &TestSystem, campaign: Uuid) -> Vec<Value> {
    sys.ok(
        "GET",
        "/v1/campaigncalls?page_size=100",
        Some(json!({ "campaign_id": campaign })),
    )
    .await
    .as_array()
    .cloned()
    .unwrap_or_default()
}

/// How many `call_hangup` events the service has handled (its per-event histogram).
fn hangups_handled(sys: &TestSystem) -> u64 {
    let app = sys.app.as_ref().expect("service running");
    app.metrics
        .registry
        .gather()
        .iter()
        .filter(|f| f.name() == "campaign_manager_receive_subscribe_event_process_time")
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| {
            m.get_label()
                .iter()
                .any(|l| l.name() == "type" && l.value() == "call_hangup")
        })
        .map(|m| m.get_histogram().get_sample_count())
        .sum()
}

/// How the calls of an over-RabbitMQ force stop end.
struct Ending {
    /// The campaigncalls' result.
    result: &'static str,
    /// The targets' status at outdial-manager.
    target: campaign_sim::TargetState,
    /// The calls' `hangup_reason` at call-manager.
    hangup_reason: &'static str,
}

/// Over RabbitMQ with the simulator (`scenario`, `faults` injected before the force stop): two
/// calls that never end by themselves keep a stopped campaign `stopping`; force_stop hangs
/// both up (call-manager's `POST /v1/calls/<id>/hangup`) and stops the campaign. Once both
/// `call_hangup` events have been handled, the campaigncalls and targets are as `want` says:
/// force_stop's finish and the event race, and the final state does not depend on which lands
/// first.
async fn force_stop_over_rabbitmq(
    scenario: campaign_sim::Scenario,
    faults: &[campaign_sim::Fault],
    want: Ending,
) {
    const CALLS: usize = 2;
    let sys = TestSystem::start(scenario, support::scenarios::fast_ticks).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, CALLS, 1);
    let c = support::black_box::create_campaign(
        &sys,
        "force-stop",
        customer,
        outdial,
        json!({"end_handle": "continue"}),
    )
    .await;
    let id = support::black_box::id_of(&c);
    support::black_box::set_status(&sys, id, "run").await;
    wait_until("both calls up", Duration::from_secs(30), || async {
        sys.sim.live_calls() == CALLS && campaigncalls(&sys, id).await.len() == CALLS
    })
    .await;
    let stopping = support::black_box::set_status(&sys, id, "stop").await;
    assert_eq!(stopping["status"], "stopping");
    wait_until("the chain ended", Duration::from_secs(20), || async {
        sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await["execute"] == "stop"
    })
    .await;
    let before = hangups_handled(&sys);
    for f in faults {
        sys.sim.inject(f.clone());
    }

    if faults.is_empty() {
        let stopped = sys
            .ok("POST", &format!("/v1/campaigns/{id}/force_stop"), None)
            .await;
        assert_eq!(stopped["status"], "stop");
    } else {
        // Each unanswered hangup costs force_stop the RPC timeout, longer than this client
        // waits for its reply: the service is called in process.
        let app = sys.app.as_ref().expect("service running");
        let stopped = app
            .service
            .force_stop_campaign(id)
            .await
            .expect("force stop");
        assert_eq!(stopped.status, CampaignStatus::Stop);
    }
    wait_until("both calls hung up", Duration::from_secs(10), || {
        let live = sys.sim.live_calls();
        async move { live == 0 }
    })
    .await;
    wait_until("both hangups handled", Duration::from_secs(30), || {
        let n = hangups_handled(&sys);
        async move { n >= before + CALLS as u64 }
    })
    .await;
    let ccs = campaigncalls(&sys, id).await;
    assert_eq!(ccs.len(), CALLS);
    for cc in &ccs {
        assert_eq!(
            (cc["status"].as_str(), cc["result"].as_str()),
            (Some("done"), Some(want.result)),
            "{cc}"
        );
    }
    for t in sys.sim.targets(outdial) {
        let target = t.target.id;
        wait_until("the target's status", Duration::from_secs(10), || {
            let st = sys.sim.target(target).map(|t| t.status);
            async move { st == Some(want.target) }
        })
        .await;
    }
    let calls = sys.sim.calls();
    assert_eq!(calls.len(), CALLS);
    for call in &calls {
        assert_eq!(call.hangup_reason(), want.hangup_reason, "{call:?}");
    }
    sys.stop().await;
}

/// Two answered calls hung up: `success`, targets `done` (the people were reached).
#[tokio::test]
async fn over_rabbitmq_force_stop_hangs_up_answered_calls_and_they_end_success() {
    force_stop_over_rabbitmq(
        support::scenarios::silent(),
        &[],
        Ending {
            result: "success",
            target: campaign_sim::TargetState::Done,
            hangup_reason: "normal",
        },
    )
    .await;
}

/// Two calls still ringing hung up: call-manager cancels them, `fail`, targets `idle`.
#[tokio::test]
async fn over_rabbitmq_force_stop_cancels_ringing_calls_and_they_end_fail() {
    force_stop_over_rabbitmq(
        campaign_sim::Scenario {
            ring_ms: campaign_sim::MsRange::fixed(3_600_000),
            ..support::scenarios::silent()
        },
        &[],
        Ending {
            result: "fail",
            target: campaign_sim::TargetState::Idle,
            hangup_reason: "cancel",
        },
    )
    .await;
}

/// Two answered calls whose hangup replies are lost (they take effect; the replies come after
/// the RPC timeout): force_stop cannot tell and stores `fail`, the `normal` hangups say
/// otherwise, and both end `success`, targets `done`, whichever landed first.
#[tokio::test]
async fn over_rabbitmq_force_stop_with_lost_hangup_replies_still_ends_success() {
    let lost =
        campaign_sim::Fault::late_reply(campaign_sim::Service::Call, Duration::from_secs(10), 2)
            .on_method("POST")
            .on_uri("/hangup");
    force_stop_over_rabbitmq(
        support::scenarios::silent(),
        &[lost],
        Ending {
            result: "success",
            target: campaign_sim::TargetState::Done,
            hangup_reason: "normal",
        },
    )
    .await;
}
