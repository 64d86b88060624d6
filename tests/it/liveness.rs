//! A campaign keeps dialing while one of its dials has an unknown outcome (src/service/tick/,
//! docs/architecture.md "A tick's failures"): the tick against a real MariaDB/Redis test store
//! with mockall peers. An unknown outcome (timeout, transport error, 5xx on create) holds back
//! only its target, which stays claimed with its campaigncall open at step `unknown`; the tick
//! dials the others and its chain keeps the normal pace. The chain backs off only when the
//! peer looks down: its breaker is open, or the campaign's last `UNKNOWN_STREAK_LIMIT` dials
//! all ended unknown.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use campaign_manager::model::*;
use campaign_manager::peers::{DialGate, DialPeer, PeerError};
use campaign_manager::service::Delays;
use campaign_manager::service::tick::{Next, Outcome, Ticker, UNKNOWN_STREAK_LIMIT};
use campaign_manager::store::DialStep;
use chrono::{SubsecRound, Utc};
use support::mocked::{Mocked, fresh_fence};
use support::mocks::Mocks;
use uuid::Uuid;

const AFTER_DIAL: Next = Next::Continue(Duration::from_millis(500));

/// A never-tried target (tm_update == tm_create, as outdial-manager creates them).
fn target() -> OutdialTarget {
    let now = Utc::now().trunc_subsecs(6);
    OutdialTarget {
        id: Uuid::new_v4(),
        destination_0: Some(Address::tel("+15550001000")),
        tm_create: Some(now),
        tm_update: Some(now),
        ..OutdialTarget::default()
    }
}

fn timeout() -> PeerError {
    PeerError::Timeout {
        target: "bin-manager.call-manager.request".into(),
    }
}

/// A gate whose call-manager breaker is open.
struct RefusingCalls;

impl DialGate for RefusingCalls {
    fn is_refusing(&self, peer: DialPeer) -> bool {
        peer == DialPeer::Call
    }
}

/// A running call campaign (`pacing` as given, list end `continue`) on a ticker over `m`.
async fn running(m: Mocks, pacing: Option<Pacing>) -> (Mocked, Campaign, Ticker) {
    let (mocked, campaign) = Mocked::with_running_call(m, |c| {
        c.pacing = pacing;
        c.end_handle = EndHandle::Continue;
    })
    .await;
    let ticker = mocked.ticker();
    (mocked, campaign, ticker)
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

/// The dial step of the campaigncall whose call id is `reference`.
async fn step_of_call(m: &Mocked, campaign_id: Uuid, reference: Uuid) -> Option<DialStep> {
    let calls = calls_of(m, campaign_id).await;
    let cc = calls
        .iter()
        .find(|c| c.reference_id == reference)
        .expect("the campaigncall of the call");
    // As written once the tick's `requested` marks land (a window after the tick).
    m.ts.store
        .dials
        .flush_requested_marks()
        .await
        .expect("requested marks");
    m.ts.store.dials.step(cc.id).await.expect("step")
}

fn backoffs(m: &Mocked, reason: &str) -> u64 {
    m.metrics
        .tick_backoff_total
        .with_label_values(&[reason])
        .get()
}

/// call-manager's answers to creates, in order (the call ids asked are recorded).
fn creates(m: &mut Mocks, answers: Vec<Result<(), PeerError>>) -> Arc<Mutex<Vec<Uuid>>> {
    let asked: Arc<Mutex<Vec<Uuid>>> = Arc::default();
    let seen = asked.clone();
    let answers = Mutex::new(answers.into_iter());
    let n = answers.lock().expect("answers").len();
    m.call.expect_create_call().times(n).returning(move |c| {
        seen.lock().expect("asked").push(c.call_id);
        answers
            .lock()
            .expect("answers")
            .next()
            .expect("an answer for each create")
    });
    asked
}

#[tokio::test]
async fn a_paced_tick_whose_first_create_times_out_still_dials_the_other_two() {
    // Three ready targets, 10 dials a second: one tick dials all three, 100 ms apart. The first
    // create times out; the other two are dialed by the same tick, which ends `Dialed` with its
    // next tick at the rate's pace (well under the wait delay the back-off starts from).
    let mut m = Mocks::new();
    let targets: Vec<OutdialTarget> = (0..3).map(|_| target()).collect();
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(move |_, _, _| Ok(targets.clone()));
    m.outdial
        .expect_set_target_progressing()
        .times(3)
        .returning(|_, _| Ok(()));
    m.outdial.expect_set_target_status().times(0);
    let asked = creates(&mut m, vec![Err(timeout()), Ok(()), Ok(())]);
    let pacing = Some(Pacing {
        max_concurrent_calls: None,
        dials_per_second: Some(10.0),
    });
    let (m, c, ticker) = running(m, pacing).await;

    let (next, outcome) = ticker.tick(c.id, &fresh_fence()).await;

    assert_eq!(outcome, Outcome::Dialed);
    match next {
        Next::Continue(d) => assert!(d < Delays::default().wait, "{d:?}"),
        Next::Stop => panic!("the chain goes on"),
    }
    let asked = asked.lock().expect("asked").clone();
    assert_eq!(asked.len(), 3, "all three dialed in this tick");
    assert_eq!(
        step_of_call(&m, c.id, asked[0]).await,
        Some(DialStep::Unknown),
        "the timed-out dial is left open for the repair"
    );
    for call in &asked[1..] {
        assert_eq!(
            step_of_call(&m, c.id, *call).await,
            Some(DialStep::Requested)
        );
    }
    let calls = calls_of(&m, c.id).await;
    assert_eq!(calls.len(), 3);
    assert!(
        calls
            .iter()
            .all(|cc| cc.status == CampaigncallStatus::Dialing),
        "{calls:?}"
    );
    assert_eq!(m.metrics.dial_unknown_total.get(), 1);
    assert_eq!(backoffs(&m, "transient") + backoffs(&m, "unknown"), 0);
    let row = m.campaign(c.id).await;
    assert_eq!(
        (row.status, row.execute),
        (CampaignStatus::Run, Execute::Run)
    );
}

#[tokio::test]
async fn an_unknown_outcome_keeps_the_chain_at_the_dial_pace() {
    // One dial per tick (no rate): the first create times out and the next tick is due after
    // the normal after-dial delay; the outdial no longer offers the held target, and the next
    // tick dials the next one.
    let mut m = Mocks::new();
    let (held, other) = (target(), target());
    let mut seq = mockall::Sequence::new();
    for offered in [vec![held.clone(), other.clone()], vec![other.clone()]] {
        m.outdial
            .expect_available_targets()
            .times(1)
            .in_sequence(&mut seq)
            .returning(move |_, _, _| Ok(offered.clone()));
    }
    let claimed: Arc<Mutex<Vec<Uuid>>> = Arc::default();
    let claims = claimed.clone();
    m.outdial
        .expect_set_target_progressing()
        .times(2)
        .returning(move |id, _| {
            claims.lock().expect("claims").push(id);
            Ok(())
        });
    m.outdial.expect_set_target_status().times(0);
    creates(&mut m, vec![Err(timeout()), Ok(())]);
    let (m, c, ticker) = running(m, None).await;

    assert_eq!(
        ticker.tick(c.id, &fresh_fence()).await,
        (AFTER_DIAL, Outcome::Dialed)
    );
    assert_eq!(
        ticker.tick(c.id, &fresh_fence()).await,
        (AFTER_DIAL, Outcome::Dialed)
    );
    assert_eq!(*claimed.lock().expect("claims"), vec![held.id, other.id]);
    assert_eq!(m.metrics.dial_unknown_total.get(), 1);
    assert_eq!(backoffs(&m, "transient") + backoffs(&m, "unknown"), 0);
}

#[tokio::test]
async fn unknown_outcomes_in_a_row_back_the_campaign_off_until_a_dial_is_placed() {
    // UNKNOWN_STREAK_LIMIT dials in a row end unknown: the ticks before the last keep the pace,
    // the last backs off (`unknown`) and the next one backs off longer. A placed dial ends the
    // run: the unknown outcome after it keeps the pace again.
    let limit = UNKNOWN_STREAK_LIMIT as usize;
    let ticks = limit + 3;
    let mut m = Mocks::new();
    m.outdial
        .expect_available_targets()
        .times(ticks)
        .returning(|_, _, _| Ok(vec![target()]));
    m.outdial
        .expect_set_target_progressing()
        .times(ticks)
        .returning(|_, _| Ok(()));
    m.outdial.expect_set_target_status().times(0);
    let mut answers: Vec<Result<(), PeerError>> = (0..=limit).map(|_| Err(timeout())).collect();
    answers.push(Ok(()));
    answers.push(Err(timeout()));
    creates(&mut m, answers);
    let (m, c, ticker) = running(m, None).await;

    for i in 1..limit {
        assert_eq!(
            ticker.tick(c.id, &fresh_fence()).await,
            (AFTER_DIAL, Outcome::Dialed),
            "unknown outcome {i} of {limit}"
        );
    }
    let wait = Delays::default().wait;
    let (next, outcome) = ticker.tick(c.id, &fresh_fence()).await;
    assert!(matches!(outcome, Outcome::Backoff(_)), "{outcome:?}");
    assert_eq!(next, Next::Continue(wait));
    let (next, outcome) = ticker.tick(c.id, &fresh_fence()).await;
    assert!(matches!(outcome, Outcome::Backoff(_)), "{outcome:?}");
    assert_eq!(next, Next::Continue(wait * 2), "the back-off grows");
    assert_eq!(backoffs(&m, "unknown"), 2);

    assert_eq!(
        ticker.tick(c.id, &fresh_fence()).await,
        (AFTER_DIAL, Outcome::Dialed),
        "placed"
    );
    assert_eq!(
        ticker.tick(c.id, &fresh_fence()).await,
        (AFTER_DIAL, Outcome::Dialed),
        "a new run of unknown outcomes starts at one"
    );
    assert_eq!(backoffs(&m, "unknown"), 2);
    assert_eq!(backoffs(&m, "transient"), 0);
    assert_eq!(m.metrics.dial_unknown_total.get(), limit as u64 + 2);
    // Every dial with an unknown outcome is still open for the repair.
    let open = calls_of(&m, c.id)
        .await
        .iter()
        .filter(|cc| cc.status == CampaigncallStatus::Dialing)
        .count();
    assert_eq!(open, ticks);
}

#[tokio::test]
async fn an_open_breaker_backs_the_campaign_off() {
    // call-manager's breaker is open: the target is not claimed (no expectation: a claim fails
    // the test), the dial is abandoned and the chain backs off, longer on the second tick.
    let mut m = Mocks::new();
    m.outdial
        .expect_available_targets()
        .times(2)
        .returning(|_, _, _| Ok(vec![target()]));
    m.outdial
        .expect_set_target_status()
        .withf(|_, st| *st == TargetStatus::Idle)
        .times(2)
        .returning(|_, _| Ok(()));
    m.gate = Arc::new(RefusingCalls);
    let (m, c, ticker) = running(m, None).await;

    let wait = Delays::default().wait;
    let (next, outcome) = ticker.tick(c.id, &fresh_fence()).await;
    assert!(matches!(outcome, Outcome::Backoff(_)), "{outcome:?}");
    assert_eq!(next, Next::Continue(wait));
    let (next, _) = ticker.tick(c.id, &fresh_fence()).await;
    assert_eq!(next, Next::Continue(wait * 2));
    assert_eq!(backoffs(&m, "transient"), 2);
    assert_eq!(m.metrics.dial_unknown_total.get(), 0);
    let calls = calls_of(&m, c.id).await;
    assert_eq!(calls.len(), 2);
    assert!(
        calls.iter().all(|cc| cc.result == CampaigncallResult::Fail),
        "{calls:?}"
    );
    let row = m.campaign(c.id).await;
    assert_eq!(
        (row.status, row.execute),
        (CampaignStatus::Run, Execute::Run)
    );
}

#[tokio::test]
async fn a_refusal_beside_an_unknown_outcome_still_backs_off() {
    // A paced tick: one create times out, the other is refused (a definite 4xx). The refusal
    // backs the chain off as it always did; the unknown dial stays open, the refused one fails.
    let mut m = Mocks::new();
    let targets: Vec<OutdialTarget> = (0..2).map(|_| target()).collect();
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(move |_, _, _| Ok(targets.clone()));
    m.outdial
        .expect_set_target_progressing()
        .times(2)
        .returning(|_, _| Ok(()));
    m.outdial
        .expect_set_target_status()
        .withf(|_, st| *st == TargetStatus::Idle)
        .times(1)
        .returning(|_, _| Ok(()));
    let refused = PeerError::Status {
        target: "bin-manager.call-manager.request".into(),
        status: 400,
        typed: None,
    };
    let asked = creates(&mut m, vec![Err(timeout()), Err(refused)]);
    let pacing = Some(Pacing {
        max_concurrent_calls: None,
        dials_per_second: Some(10.0),
    });
    let (m, c, ticker) = running(m, pacing).await;

    let (next, outcome) = ticker.tick(c.id, &fresh_fence()).await;
    assert!(matches!(outcome, Outcome::Backoff(_)), "{outcome:?}");
    assert_eq!(next, Next::Continue(Delays::default().wait));
    assert_eq!(backoffs(&m, "transient"), 1);
    let asked = asked.lock().expect("asked").clone();
    assert_eq!(
        step_of_call(&m, c.id, asked[0]).await,
        Some(DialStep::Unknown)
    );
    assert_eq!(step_of_call(&m, c.id, asked[1]).await, None, "try freed");
}
