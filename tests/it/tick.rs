//! The campaign tick (docs/contract.md#campaign-lifecycle, src/service/tick.rs) against a real
//! MariaDB/Redis test store, with mockall mocks for the peer managers: one test per branch.

use crate::support;

use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use campaign_manager::model::*;
use campaign_manager::peers::{CallRequest, PeerError};
use campaign_manager::service::Delays;
use campaign_manager::service::tick::{
    DEFAULT_TARGET_BATCH, Fence, Next, Outcome, Ticker, pick_destination, target_ready,
};
use campaign_manager::store::DialStep;
use chrono::{Duration as ChronoDuration, SubsecRound, Utc};
use support::mocked::{Mocked, fresh_fence};
use support::mocks::Mocks;
use support::records;
use uuid::Uuid;

const WAIT: Next = Next::Continue(Duration::from_millis(5000));
const AFTER_DIAL: Next = Next::Continue(Duration::from_millis(500));

/// The mocked-peers service ([`Mocked`]) and a ticker over it.
struct Env {
    mocked: Mocked,
    ticker: Ticker,
}

impl Deref for Env {
    type Target = Mocked;

    fn deref(&self) -> &Mocked {
        &self.mocked
    }
}

impl Env {
    async fn new(m: Mocks) -> Env {
        let mocked = Mocked::new(m).await;
        Env {
            ticker: mocked.ticker(),
            mocked,
        }
    }

    /// One tick with a fresh fence (a higher sequence number than any before, 30 s to run).
    async fn tick(&self, id: Uuid) -> (Next, Outcome) {
        self.ticker.tick(id, &fresh_fence()).await
    }

    /// Every campaigncall of the campaign, newest first.
    async fn calls_of(&self, campaign_id: Uuid) -> Vec<Campaigncall> {
        let mut filters = serde_json::Map::new();
        filters.insert(
            "campaign_id".into(),
            serde_json::Value::String(campaign_id.to_string()),
        );
        let f = self
            .ts
            .store
            .campaigncalls
            .filters(&filters)
            .expect("filters");
        self.ts
            .store
            .campaigncalls
            .list(
                &f,
                campaign_manager::store::Page {
                    token: None,
                    size: 100,
                },
            )
            .await
            .expect("list campaigncalls")
    }

    fn stop_metric(&self, reason: &str) -> u64 {
        self.metrics
            .tick_stop_total
            .with_label_values(&[reason])
            .get()
    }
}

/// A running campaign of `kind` ([`records::running_campaign`]).
fn campaign(customer: Uuid, outplan_id: Uuid, kind: CampaignType) -> Campaign {
    Campaign {
        kind,
        ..records::running_campaign(customer, outplan_id)
    }
}

/// A never-tried target (as outdial-manager creates them: tm_update == tm_create).
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

fn status_err(status: u16) -> PeerError {
    PeerError::Status {
        target: "peer".into(),
        status,
        typed: None,
    }
}

fn timeout() -> PeerError {
    PeerError::Timeout {
        target: "peer".into(),
    }
}

/// Outdial offers `t` on every call (expected `times`).
fn offer(m: &mut Mocks, outdial_id: Uuid, t: OutdialTarget, times: usize) {
    m.outdial
        .expect_available_targets()
        .withf(move |id, _, limit| *id == outdial_id && *limit == DEFAULT_TARGET_BATCH)
        .times(times)
        .returning(move |_, _, _| Ok(vec![t.clone()]));
}

/// A stored outplan + running campaign, and mocks with ids known up front.
struct Setup {
    outplan: Outplan,
    campaign: Campaign,
}

fn setup(kind: CampaignType) -> Setup {
    let customer = Uuid::new_v4();
    let o = records::outplan(customer);
    let c = campaign(customer, o.id, kind);
    Setup {
        outplan: o,
        campaign: c,
    }
}

async fn env_with(s: &Setup, m: Mocks) -> Env {
    let env = Env::new(m).await;
    env.insert_outplan(&s.outplan).await;
    env.insert_campaign(&s.campaign).await;
    env
}

/// Expects one successful call dial; records the request sent to call-manager.
fn expect_call_dial(m: &mut Mocks, sent: Arc<Mutex<Vec<CallRequest>>>) {
    m.outdial
        .expect_set_target_progressing()
        .times(1)
        .returning(|_, _| Ok(()));
    m.call
        .expect_create_call()
        .withf(move |req: &CallRequest| {
            sent.lock().expect("lock").push(req.clone());
            true
        })
        .times(1)
        .returning(|_| Ok(()));
}

/// Expects one successful call dial to destination `index` of target `target_id`; returns
/// where the request sent to call-manager is recorded.
fn expect_call_dial_to(m: &mut Mocks, target_id: Uuid, index: i32) -> Arc<Mutex<Vec<CallRequest>>> {
    m.outdial
        .expect_set_target_progressing()
        .withf(move |id, i| *id == target_id && *i == index)
        .times(1)
        .returning(|_, _| Ok(()));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let sent_in = sent.clone();
    m.call
        .expect_create_call()
        .withf(move |req: &CallRequest| {
            sent_in.lock().expect("lock").push(req.clone());
            true
        })
        .times(1)
        .returning(|_| Ok(()));
    sent
}

// ---------------------------------------------------------------- campaign state

#[tokio::test]
async fn missing_campaign_stops_the_chain() {
    let env = Env::new(Mocks::new()).await;
    let (next, outcome) = env.tick(Uuid::new_v4()).await;
    assert_eq!(next, Next::Stop);
    assert_eq!(outcome, Outcome::Ended("campaign_gone"));
    assert_eq!(env.stop_metric("campaign_gone"), 1);
    assert!(env.events().is_empty());
}

#[tokio::test]
async fn stopping_campaign_without_ongoing_calls_ends_stopped() {
    let mut s = setup(CampaignType::Call);
    s.campaign.status = CampaignStatus::Stopping;
    let env = env_with(&s, Mocks::new()).await;

    let (next, outcome) = env.tick(s.campaign.id).await;
    assert_eq!(next, Next::Stop);
    assert_eq!(outcome, Outcome::Ended("not_running"));
    let c = env.campaign(s.campaign.id).await;
    assert_eq!(c.status, CampaignStatus::Stop);
    assert_eq!(c.execute, Execute::Stop);
    assert_eq!(env.events(), vec!["campaign_status_stop"]);
}

#[tokio::test]
async fn stopping_campaign_with_a_dialing_call_stays_stopping() {
    let mut s = setup(CampaignType::Call);
    s.campaign.status = CampaignStatus::Stopping;
    let env = env_with(&s, Mocks::new()).await;
    env.insert_call(&s.campaign, CampaigncallStatus::Dialing)
        .await;

    let (next, outcome) = env.tick(s.campaign.id).await;
    assert_eq!(next, Next::Stop);
    assert_eq!(outcome, Outcome::Ended("not_running"));
    let c = env.campaign(s.campaign.id).await;
    assert_eq!(c.status, CampaignStatus::Stopping);
    assert_eq!(c.execute, Execute::Stop);
    assert!(!env.events().contains(&"campaign_status_stop".to_string()));
}

#[tokio::test]
async fn stopped_campaign_with_a_live_chain_ends_the_chain() {
    let mut s = setup(CampaignType::Call);
    s.campaign.status = CampaignStatus::Stop;
    let env = env_with(&s, Mocks::new()).await;

    let (next, outcome) = env.tick(s.campaign.id).await;
    assert_eq!((next, outcome), (Next::Stop, Outcome::Ended("not_running")));
    let c = env.campaign(s.campaign.id).await;
    assert_eq!(c.status, CampaignStatus::Stop);
    assert_eq!(c.execute, Execute::Stop);
    // Already stopped: no second stop event.
    assert!(env.events().is_empty());
}

#[tokio::test]
async fn deleted_campaign_ends_the_chain() {
    let s = setup(CampaignType::Call);
    let env = env_with(&s, Mocks::new()).await;
    env.ts
        .store
        .campaigns
        .delete(s.campaign.id)
        .await
        .expect("delete");

    let (next, outcome) = env.tick(s.campaign.id).await;
    assert_eq!(
        (next, outcome),
        (Next::Stop, Outcome::Ended("campaign_deleted"))
    );
    assert_eq!(env.campaign(s.campaign.id).await.execute, Execute::Stop);
    assert_eq!(env.stop_metric("campaign_deleted"), 1);
}

// ---------------------------------------------------------------- outplan / outdial

#[tokio::test]
async fn deleted_outplan_stops_the_campaign_for_good() {
    let s = setup(CampaignType::Call);
    let env = env_with(&s, Mocks::new()).await;
    env.ts
        .store
        .outplans
        .delete(s.outplan.id)
        .await
        .expect("delete outplan");

    let (next, outcome) = env.tick(s.campaign.id).await;
    assert_eq!(next, Next::Stop);
    assert_eq!(outcome, Outcome::Ended("outplan_gone"));
    let c = env.campaign(s.campaign.id).await;
    assert_eq!(c.status, CampaignStatus::Stop);
    assert_eq!(c.execute, Execute::Stop);
    assert_eq!(env.stop_metric("outplan_gone"), 1);
    assert_eq!(env.events(), vec!["campaign_status_stop"]);
}

#[tokio::test]
async fn legacy_campaign_without_type_stops_for_good() {
    let mut s = setup(CampaignType::Call);
    s.campaign.kind = CampaignType::Unset;
    let env = env_with(&s, Mocks::new()).await;

    let (next, outcome) = env.tick(s.campaign.id).await;
    assert_eq!(
        (next, outcome),
        (Next::Stop, Outcome::Ended("invalid_type"))
    );
    let c = env.campaign(s.campaign.id).await;
    assert_eq!((c.status, c.execute), (CampaignStatus::Stop, Execute::Stop));
    assert_eq!(env.stop_metric("invalid_type"), 1);
}

#[tokio::test]
async fn legacy_empty_end_handle_continues_like_the_platform() {
    let mut s = setup(CampaignType::Call);
    s.campaign.end_handle = EndHandle::Unset;
    let mut m = Mocks::new();
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(|_, _, _| Ok(vec![]));
    let env = env_with(&s, m).await;

    let (next, outcome) = env.tick(s.campaign.id).await;
    assert_eq!(next, WAIT);
    assert_eq!(outcome, Outcome::Waiting("list_empty"));
    assert_eq!(
        env.campaign(s.campaign.id).await.status,
        CampaignStatus::Run
    );
}

#[tokio::test]
async fn unknown_outplan_stops_the_campaign_for_good() {
    let mut s = setup(CampaignType::Flow);
    s.campaign.outplan_id = Uuid::nil();
    let env = env_with(&s, Mocks::new()).await;

    let (next, outcome) = env.tick(s.campaign.id).await;
    assert_eq!(
        (next, outcome),
        (Next::Stop, Outcome::Ended("outplan_gone"))
    );
    assert_eq!(
        env.campaign(s.campaign.id).await.status,
        CampaignStatus::Stop
    );
}

#[tokio::test]
async fn call_campaign_whose_outplan_has_no_source_stops_without_dialing() {
    let mut s = setup(CampaignType::Call);
    s.outplan.source = None;
    // No outdial/call expectations: any dial attempt fails the test.
    let env = env_with(&s, Mocks::new()).await;

    let (next, outcome) = env.tick(s.campaign.id).await;
    assert_eq!(next, Next::Stop);
    assert_eq!(outcome, Outcome::Ended("outplan_without_source"));
    let c = env.campaign(s.campaign.id).await;
    assert_eq!(c.status, CampaignStatus::Stop);
    assert_eq!(c.execute, Execute::Stop);
    assert_eq!(env.stop_metric("outplan_without_source"), 1);
    assert!(env.calls_of(s.campaign.id).await.is_empty());
}

#[tokio::test]
async fn outdial_not_found_stops_the_campaign_for_good() {
    let s = setup(CampaignType::Call);
    let mut m = Mocks::new();
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(|_, _, _| Err(status_err(404)));
    let env = env_with(&s, m).await;

    let (next, outcome) = env.tick(s.campaign.id).await;
    assert_eq!(
        (next, outcome),
        (Next::Stop, Outcome::Ended("outdial_gone"))
    );
    let c = env.campaign(s.campaign.id).await;
    assert_eq!(c.status, CampaignStatus::Stop);
    assert_eq!(c.execute, Execute::Stop);
    assert_eq!(env.stop_metric("outdial_gone"), 1);
}

#[tokio::test]
async fn transient_outdial_errors_back_off_and_keep_the_campaign_running() {
    let s = setup(CampaignType::Call);
    let mut m = Mocks::new();
    let mut seq = mockall::Sequence::new();
    m.outdial
        .expect_available_targets()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Err(timeout()));
    m.outdial
        .expect_available_targets()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| {
            Err(PeerError::BreakerOpen {
                target: "bin-manager.outdial-manager.request".into(),
            })
        });
    m.outdial
        .expect_available_targets()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Err(status_err(503)));
    let env = env_with(&s, m).await;

    for _ in 0..3 {
        let (next, outcome) = env.tick(s.campaign.id).await;
        assert!(matches!(outcome, Outcome::Backoff(_)), "{outcome:?}");
        match next {
            Next::Continue(d) => assert!(d >= Duration::from_secs(5), "{d:?}"),
            Next::Stop => panic!("a transient error must not end the chain"),
        }
        let c = env.campaign(s.campaign.id).await;
        assert_eq!(c.status, CampaignStatus::Run);
        assert_eq!(c.execute, Execute::Run);
    }
    assert_eq!(
        env.metrics
            .tick_backoff_total
            .with_label_values(&["transient"])
            .get(),
        3
    );
    assert!(env.events().is_empty());
}

#[tokio::test]
async fn available_targets_is_asked_with_the_outplan_max_tries() {
    let mut s = setup(CampaignType::Call);
    s.outplan.max_try_count_0 = 1;
    s.outplan.max_try_count_1 = 2;
    s.outplan.max_try_count_2 = 0;
    s.outplan.max_try_count_3 = 4;
    s.outplan.max_try_count_4 = 5;
    s.campaign.end_handle = EndHandle::Continue;
    let outdial_id = s.campaign.outdial_id;
    let mut m = Mocks::new();
    m.outdial
        .expect_available_targets()
        .withf(move |id, max, limit| {
            *id == outdial_id && *max == [1, 2, 0, 4, 5] && *limit == DEFAULT_TARGET_BATCH
        })
        .times(1)
        .returning(|_, _, _| Ok(vec![]));
    let env = env_with(&s, m).await;
    assert_eq!(
        env.tick(s.campaign.id).await,
        (WAIT, Outcome::Waiting("list_empty"))
    );
}

// ---------------------------------------------------------------- empty list

#[tokio::test]
async fn empty_list_with_end_handle_stop_stops_the_campaign() {
    let s = setup(CampaignType::Call);
    let mut m = Mocks::new();
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(|_, _, _| Ok(vec![]));
    let env = env_with(&s, m).await;

    let (next, outcome) = env.tick(s.campaign.id).await;
    assert_eq!(
        (next, outcome),
        (Next::Stop, Outcome::Ended("list_exhausted"))
    );
    let c = env.campaign(s.campaign.id).await;
    assert_eq!(c.status, CampaignStatus::Stop);
    assert_eq!(c.execute, Execute::Stop);
    assert_eq!(env.events(), vec!["campaign_status_stop"]);
    assert_eq!(env.stop_metric("list_exhausted"), 1);
}

#[tokio::test]
async fn empty_list_with_end_handle_stop_waits_while_a_call_is_in_progress() {
    let s = setup(CampaignType::Call);
    let mut m = Mocks::new();
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(|_, _, _| Ok(vec![]));
    let env = env_with(&s, m).await;
    env.insert_call(&s.campaign, CampaigncallStatus::Progressing)
        .await;

    // The call's target may come back with tries left: not exhausted yet.
    let (next, outcome) = env.tick(s.campaign.id).await;
    assert_eq!(next, WAIT);
    assert_eq!(outcome, Outcome::Waiting("calls_in_flight"));
    let c = env.campaign(s.campaign.id).await;
    assert_eq!(c.status, CampaignStatus::Run);
    assert_eq!(c.execute, Execute::Run);
    assert!(env.events().is_empty());
}

#[tokio::test]
async fn empty_list_with_end_handle_continue_waits() {
    let mut s = setup(CampaignType::Call);
    s.campaign.end_handle = EndHandle::Continue;
    let mut m = Mocks::new();
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(|_, _, _| Ok(vec![]));
    let env = env_with(&s, m).await;

    let (next, outcome) = env.tick(s.campaign.id).await;
    assert_eq!(next, WAIT);
    assert_eq!(outcome, Outcome::Waiting("list_empty"));
    let c = env.campaign(s.campaign.id).await;
    assert_eq!(c.status, CampaignStatus::Run);
    assert_eq!(c.execute, Execute::Run);
    assert!(env.events().is_empty());
}

// ---------------------------------------------------------------- queue capacity

#[tokio::test]
async fn no_queue_capacity_waits_without_dialing() {
    // 3 agents × 50 % = 1 (integer division); 1 call already dialing.
    let mut s = setup(CampaignType::Call);
    s.campaign.queue_id = Uuid::new_v4();
    s.campaign.service_level = 50;
    let queue_id = s.campaign.queue_id;
    let mut m = Mocks::new();
    offer(&mut m, s.campaign.outdial_id, target(), 1);
    m.queue
        .expect_available_agents()
        .withf(move |q| *q == queue_id)
        .times(1)
        .returning(|_| Ok(3));
    m.call.expect_create_call().times(0);
    m.outdial.expect_set_target_progressing().times(0);
    let env = env_with(&s, m).await;
    env.insert_call(&s.campaign, CampaigncallStatus::Dialing)
        .await;

    let (next, outcome) = env.tick(s.campaign.id).await;
    assert_eq!(next, WAIT);
    assert_eq!(outcome, Outcome::Waiting("no_capacity"));
    assert_eq!(env.calls_of(s.campaign.id).await.len(), 1);
    assert_eq!(
        env.campaign(s.campaign.id).await.status,
        CampaignStatus::Run
    );
}

#[tokio::test]
async fn no_available_agents_waits() {
    let mut s = setup(CampaignType::Call);
    s.campaign.queue_id = Uuid::new_v4();
    let mut m = Mocks::new();
    offer(&mut m, s.campaign.outdial_id, target(), 1);
    m.queue
        .expect_available_agents()
        .times(1)
        .returning(|_| Ok(0));
    let env = env_with(&s, m).await;

    assert_eq!(
        env.tick(s.campaign.id).await,
        (WAIT, Outcome::Waiting("no_capacity"))
    );
    assert!(env.calls_of(s.campaign.id).await.is_empty());
}

#[tokio::test]
async fn queue_capacity_left_dials() {
    // 3 agents × 100 % = 3 > 2 dialing (progressing calls do not count).
    let mut s = setup(CampaignType::Call);
    s.campaign.queue_id = Uuid::new_v4();
    s.campaign.service_level = 100;
    let mut m = Mocks::new();
    offer(&mut m, s.campaign.outdial_id, target(), 1);
    m.queue
        .expect_available_agents()
        .times(1)
        .returning(|_| Ok(3));
    let sent = Arc::new(Mutex::new(Vec::new()));
    expect_call_dial(&mut m, sent.clone());
    let env = env_with(&s, m).await;
    env.insert_call(&s.campaign, CampaigncallStatus::Dialing)
        .await;
    env.insert_call(&s.campaign, CampaigncallStatus::Dialing)
        .await;
    env.insert_call(&s.campaign, CampaigncallStatus::Progressing)
        .await;

    assert_eq!(env.tick(s.campaign.id).await, (AFTER_DIAL, Outcome::Dialed));
    assert_eq!(sent.lock().expect("lock").len(), 1);
    assert_eq!(env.calls_of(s.campaign.id).await.len(), 4);
}

#[tokio::test]
async fn queue_agent_lookup_failure_backs_off() {
    let mut s = setup(CampaignType::Call);
    s.campaign.queue_id = Uuid::new_v4();
    let mut m = Mocks::new();
    offer(&mut m, s.campaign.outdial_id, target(), 1);
    m.queue
        .expect_available_agents()
        .times(1)
        .returning(|_| Err(timeout()));
    let env = env_with(&s, m).await;

    let (next, outcome) = env.tick(s.campaign.id).await;
    assert!(matches!(outcome, Outcome::Backoff(_)), "{outcome:?}");
    assert_eq!(next, WAIT);
    assert_eq!(
        env.campaign(s.campaign.id).await.status,
        CampaignStatus::Run
    );
}

// ---------------------------------------------------------------- retry interval

#[tokio::test]
async fn target_inside_its_retry_interval_waits() {
    let s = setup(CampaignType::Call); // try_interval 10 min
    let mut t = target();
    let now = Utc::now().trunc_subsecs(6);
    t.tm_create = Some(now - ChronoDuration::hours(1));
    t.tm_update = Some(now - ChronoDuration::minutes(1));
    let mut m = Mocks::new();
    offer(&mut m, s.campaign.outdial_id, t, 1);
    m.call.expect_create_call().times(0);
    let env = env_with(&s, m).await;

    assert_eq!(
        env.tick(s.campaign.id).await,
        (WAIT, Outcome::Waiting("retry_interval"))
    );
    assert!(env.calls_of(s.campaign.id).await.is_empty());
}

#[tokio::test]
async fn target_past_its_retry_interval_dials() {
    let s = setup(CampaignType::Call);
    let mut t = target();
    let now = Utc::now().trunc_subsecs(6);
    t.tm_create = Some(now - ChronoDuration::hours(1));
    t.tm_update = Some(now - ChronoDuration::minutes(11));
    let mut m = Mocks::new();
    offer(&mut m, s.campaign.outdial_id, t, 1);
    expect_call_dial(&mut m, Arc::new(Mutex::new(Vec::new())));
    let env = env_with(&s, m).await;

    assert_eq!(env.tick(s.campaign.id).await, (AFTER_DIAL, Outcome::Dialed));
}

#[tokio::test]
async fn never_tried_target_with_null_tm_update_dials() {
    let s = setup(CampaignType::Call);
    let mut t = target();
    t.tm_update = None;
    let mut m = Mocks::new();
    offer(&mut m, s.campaign.outdial_id, t, 1);
    expect_call_dial(&mut m, Arc::new(Mutex::new(Vec::new())));
    let env = env_with(&s, m).await;

    assert_eq!(env.tick(s.campaign.id).await, (AFTER_DIAL, Outcome::Dialed));
    assert_eq!(env.calls_of(s.campaign.id).await.len(), 1);
}

#[tokio::test]
async fn never_tried_target_with_tm_update_equal_to_tm_create_dials() {
    // Created just now (well inside try_interval), but never tried.
    let s = setup(CampaignType::Call);
    let t = target();
    assert_eq!(t.tm_create, t.tm_update);
    let mut m = Mocks::new();
    offer(&mut m, s.campaign.outdial_id, t, 1);
    expect_call_dial(&mut m, Arc::new(Mutex::new(Vec::new())));
    let env = env_with(&s, m).await;

    assert_eq!(env.tick(s.campaign.id).await, (AFTER_DIAL, Outcome::Dialed));
}

#[test]
fn target_ready_rules() {
    let now = Utc::now();
    let mut t = OutdialTarget::default();
    assert!(target_ready(&t, 600_000, now), "both null: never tried");
    t.tm_create = Some(now);
    assert!(
        target_ready(&t, 600_000, now),
        "tm_update null: never tried"
    );
    t.tm_update = Some(now);
    assert!(target_ready(&t, 600_000, now), "equal: never tried");
    t.tm_create = Some(now - ChronoDuration::hours(1));
    t.tm_update = Some(now - ChronoDuration::seconds(599));
    assert!(!target_ready(&t, 600_000, now), "inside the interval");
    t.tm_update = Some(now - ChronoDuration::seconds(600));
    assert!(target_ready(&t, 600_000, now), "exactly at the interval");
    t.tm_update = Some(now);
    assert!(target_ready(&t, 0, now), "no interval");
    assert!(
        target_ready(&t, -5, now),
        "negative interval counts as none"
    );
}

// ---------------------------------------------------------------- destination choice

#[test]
fn pick_destination_skips_null_and_exhausted_destinations() {
    let o = records::outplan(Uuid::new_v4()); // max 3 everywhere
    let d = |n: &str| Some(Address::tel(n));
    let mut t = OutdialTarget {
        destination_0: None,
        destination_1: d("+1"),
        try_count_1: 3,
        destination_2: d("+2"),
        try_count_2: 1,
        destination_3: d("+3"),
        destination_4: d("+4"),
        ..OutdialTarget::default()
    };
    assert_eq!(pick_destination(&t, &o), Some((Address::tel("+2"), 2, 2)));
    t.try_count_2 = 3;
    assert_eq!(pick_destination(&t, &o), Some((Address::tel("+3"), 3, 1)));
    t.try_count_3 = 7; // more than max also counts as exhausted
    assert_eq!(pick_destination(&t, &o), Some((Address::tel("+4"), 4, 1)));
    t.try_count_4 = 3;
    assert_eq!(pick_destination(&t, &o), None);

    // max_try_count 0 disables a destination.
    let mut o0 = o.clone();
    o0.max_try_count_0 = 0;
    let t0 = OutdialTarget {
        destination_0: d("+0"),
        destination_1: d("+1"),
        ..OutdialTarget::default()
    };
    assert_eq!(pick_destination(&t0, &o0), Some((Address::tel("+1"), 1, 1)));
    assert_eq!(
        pick_destination(&OutdialTarget::default(), &o),
        None,
        "no destinations at all"
    );
}

#[tokio::test]
async fn dial_goes_to_the_first_destination_with_tries_left() {
    let s = setup(CampaignType::Call); // max 3 everywhere
    let mut t = target();
    t.destination_0 = None;
    t.destination_1 = Some(Address::tel("+15550000011"));
    t.try_count_1 = 3; // exhausted
    t.destination_2 = Some(Address::tel("+15550000022"));
    t.try_count_2 = 2;
    t.destination_3 = Some(Address::tel("+15550000033"));
    t.destination_4 = Some(Address::tel("+15550000044"));
    let target_id = t.id;
    let mut m = Mocks::new();
    offer(&mut m, s.campaign.outdial_id, t, 1);
    let sent = expect_call_dial_to(&mut m, target_id, 2);
    let env = env_with(&s, m).await;

    assert_eq!(env.tick(s.campaign.id).await, (AFTER_DIAL, Outcome::Dialed));
    let calls = env.calls_of(s.campaign.id).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].destination_index, 2);
    assert_eq!(calls[0].try_count, 3);
    assert_eq!(calls[0].destination, Some(Address::tel("+15550000022")));
    assert_eq!(
        sent.lock().expect("lock")[0].destination,
        Address::tel("+15550000022")
    );
}

#[tokio::test]
async fn target_without_destination_tries_left_waits() {
    let s = setup(CampaignType::Call);
    let mut t = target();
    t.try_count_0 = 3; // the only destination is exhausted
    let mut m = Mocks::new();
    offer(&mut m, s.campaign.outdial_id, t, 1);
    m.outdial.expect_set_target_progressing().times(0);
    m.call.expect_create_call().times(0);
    let env = env_with(&s, m).await;

    assert_eq!(
        env.tick(s.campaign.id).await,
        (WAIT, Outcome::Waiting("no_destination"))
    );
    assert_eq!(
        env.campaign(s.campaign.id).await.status,
        CampaignStatus::Run
    );
    assert!(env.calls_of(s.campaign.id).await.is_empty());
}

// ---------------------------------------------------------------- dialing

#[tokio::test]
async fn call_campaign_dials_through_call_manager() {
    let s = setup(CampaignType::Call);
    let mut t = target();
    t.destination_0 = None;
    t.destination_1 = Some(Address::tel("+15550009999"));
    t.try_count_1 = 1;
    let target_id = t.id;
    let mut m = Mocks::new();
    offer(&mut m, s.campaign.outdial_id, t, 1);
    let sent = expect_call_dial_to(&mut m, target_id, 1);
    m.outdial.expect_set_target_status().times(0);
    let env = env_with(&s, m).await;

    let (next, outcome) = env.tick(s.campaign.id).await;
    assert_eq!(next, AFTER_DIAL);
    assert_eq!(outcome, Outcome::Dialed);

    let req = sent.lock().expect("lock")[0].clone();
    let calls = env.calls_of(s.campaign.id).await;
    assert_eq!(calls.len(), 1);
    let cc = &calls[0];
    assert_eq!(cc.status, CampaigncallStatus::Dialing);
    assert_eq!(cc.result, CampaigncallResult::None);
    assert_eq!(cc.reference_type, ReferenceType::Call);
    assert_eq!(cc.reference_id, req.call_id);
    assert!(!req.call_id.is_nil());
    assert_eq!(cc.activeflow_id, req.activeflow_id);
    assert_eq!(cc.outdial_target_id, target_id);
    assert_eq!(cc.outplan_id, s.outplan.id);
    assert_eq!(cc.outdial_id, s.campaign.outdial_id);
    assert_eq!(cc.flow_id, s.campaign.flow_id);
    assert_eq!(cc.customer_id, s.campaign.customer_id);
    assert_eq!(cc.destination_index, 1);
    assert_eq!(cc.try_count, 2);
    assert_eq!(cc.source, s.outplan.source);
    assert_eq!(cc.destination, Some(Address::tel("+15550009999")));

    assert_eq!(req.customer_id, s.campaign.customer_id);
    assert_eq!(req.flow_id, s.campaign.flow_id);
    assert_eq!(Some(req.source), s.outplan.source);
    assert_eq!(req.destination, Address::tel("+15550009999"));

    assert_eq!(env.events(), vec!["campaigncall_created"]);
    let payload = env.notifier.events.lock().expect("lock")[0].record_json();
    assert_eq!(payload["id"], serde_json::json!(cc.id.to_string()));
    assert_eq!(
        env.metrics
            .campaigncall_create_total
            .with_label_values(&["call"])
            .get(),
        1
    );
    let c = env.campaign(s.campaign.id).await;
    assert_eq!((c.status, c.execute), (CampaignStatus::Run, Execute::Run));
}

#[tokio::test]
async fn flow_campaign_starts_an_activeflow() {
    let s = setup(CampaignType::Flow);
    let t = target();
    let target_id = t.id;
    let customer = s.campaign.customer_id;
    let flow_id = s.campaign.flow_id;
    let mut m = Mocks::new();
    offer(&mut m, s.campaign.outdial_id, t, 1);
    m.outdial
        .expect_set_target_progressing()
        .withf(move |id, index| *id == target_id && *index == 0)
        .times(1)
        .returning(|_, _| Ok(()));
    let created = Arc::new(Mutex::new(Vec::<(Uuid, Uuid)>::new()));
    let created_in = created.clone();
    m.flow
        .expect_create_activeflow()
        .withf(move |af, cust, flow, cc| {
            created_in.lock().expect("lock").push((*af, *cc));
            *cust == customer && *flow == flow_id
        })
        .times(1)
        .returning(|af, _, _, _| {
            Ok(Activeflow {
                id: af,
                ..Default::default()
            })
        });
    let executed = Arc::new(Mutex::new(Vec::<Uuid>::new()));
    let executed_in = executed.clone();
    m.flow
        .expect_execute_activeflow()
        .withf(move |af| {
            executed_in.lock().expect("lock").push(*af);
            true
        })
        .times(1)
        .returning(|_| Ok(()));
    m.call.expect_create_call().times(0);
    let env = env_with(&s, m).await;

    assert_eq!(env.tick(s.campaign.id).await, (AFTER_DIAL, Outcome::Dialed));

    let calls = env.calls_of(s.campaign.id).await;
    assert_eq!(calls.len(), 1);
    let cc = &calls[0];
    assert_eq!(cc.status, CampaigncallStatus::Progressing);
    assert_eq!(cc.reference_type, ReferenceType::Flow);
    assert!(cc.reference_id.is_nil());
    assert_eq!(cc.destination_index, 0);
    assert_eq!(cc.try_count, 1);
    let (af, reference) = created.lock().expect("lock")[0];
    assert_eq!(af, cc.activeflow_id);
    assert_eq!(reference, cc.id);
    assert_eq!(executed.lock().expect("lock").as_slice(), &[af]);
    assert_eq!(
        env.events(),
        vec!["campaigncall_created", "campaigncall_updated"]
    );
}

#[tokio::test]
async fn flow_campaign_without_source_still_dials() {
    // Only call campaigns need a caller id.
    let mut s = setup(CampaignType::Flow);
    s.outplan.source = None;
    let mut m = Mocks::new();
    offer(&mut m, s.campaign.outdial_id, target(), 1);
    m.outdial
        .expect_set_target_progressing()
        .times(1)
        .returning(|_, _| Ok(()));
    m.flow
        .expect_create_activeflow()
        .times(1)
        .returning(|af, _, _, _| {
            Ok(Activeflow {
                id: af,
                ..Default::default()
            })
        });
    m.flow
        .expect_execute_activeflow()
        .times(1)
        .returning(|_| Ok(()));
    let env = env_with(&s, m).await;

    assert_eq!(env.tick(s.campaign.id).await, (AFTER_DIAL, Outcome::Dialed));
}

// ---------------------------------------------------------------- dial failures

/// Mocks for `n` call dials that call-manager refuses with `err`.
fn failing_call_dials(s: &Setup, n: usize, err: PeerError) -> Mocks {
    let mut m = Mocks::new();
    let t = target();
    let target_id = t.id;
    offer(&mut m, s.campaign.outdial_id, t, n);
    m.outdial
        .expect_set_target_progressing()
        .times(n)
        .returning(|_, _| Ok(()));
    m.call
        .expect_create_call()
        .times(n)
        .returning(move |_| Err(err.clone()));
    m.outdial
        .expect_set_target_status()
        .withf(move |id, st| *id == target_id && *st == TargetStatus::Idle)
        .times(n)
        .returning(|_, _| Ok(()));
    m
}

async fn assert_failed_dial(env: &Env, s: &Setup, (next, outcome): (Next, Outcome)) {
    assert!(matches!(outcome, Outcome::Backoff(_)), "{outcome:?}");
    match next {
        Next::Continue(d) => assert!(d >= Duration::from_secs(5), "{d:?}"),
        Next::Stop => panic!("a failed dial must not end the chain"),
    }
    let calls = env.calls_of(s.campaign.id).await;
    assert!(!calls.is_empty());
    for cc in &calls {
        assert_eq!(cc.status, CampaigncallStatus::Done);
        assert_eq!(cc.result, CampaigncallResult::Fail);
    }
    let c = env.campaign(s.campaign.id).await;
    assert_eq!((c.status, c.execute), (CampaignStatus::Run, Execute::Run));
}

#[tokio::test]
async fn call_manager_500_is_an_unknown_outcome_and_leaves_the_campaigncall_open() {
    // call-manager answers a bare 500 for errors after it inserted the call row: the call may
    // exist and ring. As for a timeout, the campaigncall stays open with its call id, the
    // target stays claimed and the try taken; the hangup or the repair finishes it. Only that
    // target is held back: the chain keeps its pace (tests/it/liveness.rs).
    let s = setup(CampaignType::Call);
    let mut m = Mocks::new();
    offer(&mut m, s.campaign.outdial_id, target(), 1);
    m.outdial
        .expect_set_target_progressing()
        .times(1)
        .returning(|_, _| Ok(()));
    m.call
        .expect_create_call()
        .times(1)
        .returning(|_| Err(status_err(500)));
    m.outdial.expect_set_target_status().times(0);
    let env = env_with(&s, m).await;

    let (next, outcome) = env.tick(s.campaign.id).await;
    assert_eq!((next, outcome), (AFTER_DIAL, Outcome::Dialed));
    let calls = env.calls_of(s.campaign.id).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].status, calls[0].result),
        (CampaigncallStatus::Dialing, CampaigncallResult::None)
    );
    assert_eq!(
        env.ts.store.dials.step(calls[0].id).await.expect("step"),
        Some(DialStep::Unknown)
    );
    assert_eq!(env.metrics.dial_unknown_total.get(), 1);
    assert_eq!(env.events(), vec!["campaigncall_created"]);
}

#[tokio::test]
async fn call_manager_timeout_leaves_the_campaigncall_open_and_keeps_the_pace() {
    // A timeout is an unknown outcome: the call may exist and ring. The campaigncall stays
    // open with its call id (its hangup or the repair finishes it) and the target stays
    // claimed, so the person is not dialed again meanwhile; the chain keeps its pace.
    let s = setup(CampaignType::Call);
    let mut m = Mocks::new();
    offer(&mut m, s.campaign.outdial_id, target(), 1);
    m.outdial
        .expect_set_target_progressing()
        .times(1)
        .returning(|_, _| Ok(()));
    m.call
        .expect_create_call()
        .times(1)
        .returning(|_| Err(timeout()));
    m.outdial.expect_set_target_status().times(0);
    let env = env_with(&s, m).await;

    let (next, outcome) = env.tick(s.campaign.id).await;
    assert_eq!((next, outcome), (AFTER_DIAL, Outcome::Dialed));
    let calls = env.calls_of(s.campaign.id).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].status, CampaigncallStatus::Dialing);
    assert_eq!(calls[0].result, CampaigncallResult::None);
    assert!(!calls[0].reference_id.is_nil());
    assert_eq!(
        env.ts.store.dials.step(calls[0].id).await.expect("step"),
        Some(DialStep::Unknown)
    );
    assert_eq!(env.metrics.dial_unknown_total.get(), 1);
    assert_eq!(env.events(), vec!["campaigncall_created"]);
    let c = env.campaign(s.campaign.id).await;
    assert_eq!((c.status, c.execute), (CampaignStatus::Run, Execute::Run));
}

#[tokio::test]
async fn call_manager_refusal_fails_the_campaigncall_and_backs_off() {
    // A 4xx refusal of one call is not a reason to stop the whole campaign.
    let s = setup(CampaignType::Call);
    let env = env_with(&s, failing_call_dials(&s, 1, status_err(400))).await;

    let r = env.tick(s.campaign.id).await;
    assert_failed_dial(&env, &s, r).await;
}

#[tokio::test]
async fn repeated_dial_failures_grow_the_delay_up_to_the_cap() {
    let s = setup(CampaignType::Call);
    let n = 8;
    let env = env_with(&s, failing_call_dials(&s, n, status_err(400))).await;

    let mut delays = Vec::new();
    for _ in 0..n {
        let (next, outcome) = env.tick(s.campaign.id).await;
        assert!(matches!(outcome, Outcome::Backoff(_)), "{outcome:?}");
        match next {
            Next::Continue(d) => delays.push(d),
            Next::Stop => panic!("a failed dial must not end the chain"),
        }
    }
    let cap = Delays::default().max_backoff;
    assert_eq!(delays[0], Duration::from_secs(5));
    assert!(delays[1] > delays[0], "{delays:?}");
    assert!(delays.windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
    assert!(delays.iter().all(|d| *d <= cap), "{delays:?}");
    assert_eq!(*delays.last().expect("delays"), cap, "{delays:?}");
    assert_eq!(env.calls_of(s.campaign.id).await.len(), n);
    assert_failed_dial(
        &env,
        &s,
        (Next::Continue(cap), Outcome::Backoff(String::new())),
    )
    .await;
}

#[tokio::test]
async fn a_successful_tick_resets_the_back_off() {
    let mut s = setup(CampaignType::Call);
    s.campaign.end_handle = EndHandle::Continue;
    let mut m = Mocks::new();
    let mut seq = mockall::Sequence::new();
    for result in [Err(timeout()), Err(timeout()), Ok(vec![]), Err(timeout())] {
        m.outdial
            .expect_available_targets()
            .times(1)
            .in_sequence(&mut seq)
            .returning(move |_, _, _| result.clone());
    }
    let env = env_with(&s, m).await;

    let id = s.campaign.id;
    assert_eq!(env.tick(id).await.0, Next::Continue(Duration::from_secs(5)));
    assert_eq!(
        env.tick(id).await.0,
        Next::Continue(Duration::from_secs(10))
    );
    assert_eq!(env.tick(id).await, (WAIT, Outcome::Waiting("list_empty")));
    assert_eq!(env.tick(id).await.0, Next::Continue(Duration::from_secs(5)));
}

#[tokio::test]
async fn activeflow_failure_fails_the_campaigncall_and_backs_off() {
    let s = setup(CampaignType::Flow);
    let t = target();
    let target_id = t.id;
    let mut m = Mocks::new();
    offer(&mut m, s.campaign.outdial_id, t, 1);
    m.outdial
        .expect_set_target_progressing()
        .times(1)
        .returning(|_, _| Ok(()));
    m.flow
        .expect_create_activeflow()
        .times(1)
        .returning(|_, _, _, _| Err(status_err(409)));
    m.flow.expect_execute_activeflow().times(0);
    m.outdial
        .expect_set_target_status()
        .withf(move |id, st| *id == target_id && *st == TargetStatus::Idle)
        .times(1)
        .returning(|_, _| Ok(()));
    let env = env_with(&s, m).await;

    let r = env.tick(s.campaign.id).await;
    assert_failed_dial(&env, &s, r).await;
}

#[tokio::test]
async fn target_claim_failure_abandons_the_dial_and_frees_the_target_and_try() {
    // The claim may or may not have happened (timeout), but no call was requested: the
    // target goes back to idle (harmless if it never left it) and the try is free again.
    let s = setup(CampaignType::Call);
    let mut m = Mocks::new();
    let t = target();
    let target_id = t.id;
    offer(&mut m, s.campaign.outdial_id, t, 1);
    m.outdial
        .expect_set_target_progressing()
        .times(1)
        .returning(|_, _| Err(timeout()));
    m.call.expect_create_call().times(0);
    m.outdial
        .expect_set_target_status()
        .withf(move |id, st| *id == target_id && *st == TargetStatus::Idle)
        .times(1)
        .returning(|_, _| Ok(()));
    let env = env_with(&s, m).await;

    let r = env.tick(s.campaign.id).await;
    assert_failed_dial(&env, &s, r).await;
    let calls = env.calls_of(s.campaign.id).await;
    assert_eq!(
        env.ts.store.dials.step(calls[0].id).await.expect("step"),
        None,
        "the try is released"
    );
}

#[tokio::test]
async fn separate_campaigns_back_off_independently() {
    let a = setup(CampaignType::Call);
    let mut b = setup(CampaignType::Call);
    b.campaign.end_handle = EndHandle::Continue;
    let (a_outdial, b_outdial) = (a.campaign.outdial_id, b.campaign.outdial_id);
    let mut m = Mocks::new();
    m.outdial
        .expect_available_targets()
        .withf(move |id, _, _| *id == a_outdial)
        .times(3)
        .returning(|_, _, _| Err(timeout()));
    m.outdial
        .expect_available_targets()
        .withf(move |id, _, _| *id == b_outdial)
        .times(1)
        .returning(|_, _, _| Err(timeout()));
    let env = env_with(&a, m).await;
    env.insert_outplan(&b.outplan).await;
    env.insert_campaign(&b.campaign).await;

    for _ in 0..3 {
        env.tick(a.campaign.id).await;
    }
    assert_eq!(
        env.tick(b.campaign.id).await.0,
        Next::Continue(Duration::from_secs(5))
    );
}

// ---------------------------------------------------------------- fencing

/// Mocks that accept any number of successful call dials of whatever is offered.
fn accepting_dials(m: &mut Mocks) {
    m.outdial
        .expect_set_target_progressing()
        .returning(|_, _| Ok(()));
    m.call.expect_create_call().returning(|_| Ok(()));
}

#[tokio::test]
async fn a_stale_tick_records_no_dial_and_asks_no_peer() {
    // A tick of a re-seeded chain's old incarnation (lower sequence number) wakes up after the
    // new incarnation dialed: MySQL refuses its dial, so it neither claims nor calls.
    let s = setup(CampaignType::Call);
    let mut m = Mocks::new();
    let (first, second) = (target(), target());
    let offers = Arc::new(Mutex::new(vec![second, first]));
    m.outdial
        .expect_available_targets()
        .times(2)
        .returning(move |_, _, _| Ok(vec![offers.lock().expect("lock").pop().expect("offer")]));
    m.outdial
        .expect_set_target_progressing()
        .times(1)
        .returning(|_, _| Ok(()));
    m.call.expect_create_call().times(1).returning(|_| Ok(()));
    let env = env_with(&s, m).await;

    let stale = fresh_fence();
    let fresh = Fence {
        seq: stale.seq + 1_000,
        ..stale
    };
    assert_eq!(
        env.ticker.tick(s.campaign.id, &fresh).await,
        (AFTER_DIAL, Outcome::Dialed)
    );
    assert_eq!(
        env.ticker.tick(s.campaign.id, &stale).await,
        (WAIT, Outcome::Waiting("stale_tick"))
    );
    assert_eq!(env.calls_of(s.campaign.id).await.len(), 1);
    assert_eq!(
        env.ts
            .store
            .dials
            .fence(s.campaign.id)
            .await
            .expect("fence"),
        fresh.seq
    );
    assert_eq!(
        env.metrics
            .dial_refused_total
            .with_label_values(&["stale_tick"])
            .get(),
        1
    );
}

#[tokio::test]
async fn a_tick_past_its_deadline_records_no_dial() {
    let s = setup(CampaignType::Call);
    let mut m = Mocks::new();
    offer(&mut m, s.campaign.outdial_id, target(), 1);
    m.outdial.expect_set_target_progressing().times(0);
    m.call.expect_create_call().times(0);
    let env = env_with(&s, m).await;

    let late = Fence {
        deadline: Utc::now() - ChronoDuration::seconds(1),
        ..fresh_fence()
    };
    assert_eq!(
        env.ticker.tick(s.campaign.id, &late).await,
        (WAIT, Outcome::Waiting("late_tick"))
    );
    assert!(env.calls_of(s.campaign.id).await.is_empty());
}

#[tokio::test]
async fn a_tick_whose_local_deadline_passed_after_recording_abandons_before_the_claim() {
    // MySQL's deadline still allowed the record, but the process stalled past its own
    // deadline: it must not claim or call, and it gives the try back.
    let s = setup(CampaignType::Call);
    let mut m = Mocks::new();
    let t = target();
    let target_id = t.id;
    offer(&mut m, s.campaign.outdial_id, t, 1);
    m.outdial.expect_set_target_progressing().times(0);
    m.call.expect_create_call().times(0);
    m.outdial
        .expect_set_target_status()
        .withf(move |id, st| *id == target_id && *st == TargetStatus::Idle)
        .times(1)
        .returning(|_, _| Ok(()));
    let env = env_with(&s, m).await;

    let expired_locally = Fence {
        local_deadline: std::time::Instant::now(),
        ..fresh_fence()
    };
    assert_eq!(
        env.ticker.tick(s.campaign.id, &expired_locally).await,
        (WAIT, Outcome::Waiting("late_tick"))
    );
    let calls = env.calls_of(s.campaign.id).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].status, calls[0].result),
        (CampaigncallStatus::Done, CampaigncallResult::Fail)
    );
}

#[tokio::test]
async fn one_try_is_recorded_once_whatever_the_ticks() {
    // Two ticks (say a stale one and a fresh one, both inside their fence) read the same
    // snapshot of a target: the second record of (target, destination, try) is refused by the
    // database, and the tick looks at the next target instead.
    let s = setup(CampaignType::Call);
    let mut m = Mocks::new();
    let same = target();
    let other = target();
    let other_id = other.id;
    let rounds = Arc::new(Mutex::new(vec![
        vec![same.clone(), other.clone()],
        vec![same.clone()],
    ]));
    m.outdial
        .expect_available_targets()
        .times(2)
        .returning(move |_, _, _| Ok(rounds.lock().expect("lock").pop().expect("round")));
    accepting_dials(&mut m);
    let env = env_with(&s, m).await;

    let fence = fresh_fence();
    assert_eq!(
        env.ticker.tick(s.campaign.id, &fence).await.1,
        Outcome::Dialed
    );
    assert_eq!(
        env.ticker.tick(s.campaign.id, &fence).await.1,
        Outcome::Dialed
    );
    let calls = env.calls_of(s.campaign.id).await;
    assert_eq!(calls.len(), 2);
    let mut targets: Vec<Uuid> = calls.iter().map(|c| c.outdial_target_id).collect();
    targets.sort();
    let mut want = vec![same.id, other_id];
    want.sort();
    assert_eq!(targets, want, "the same try was not recorded twice");
}

#[tokio::test]
async fn a_target_inside_its_retry_interval_does_not_hold_back_a_never_tried_one() {
    // docs/go-differences.md item 12: the outdial orders by tm_update, so a recently tried target A comes
    // before a never-tried B. The tick asks for a batch and dials B.
    let s = setup(CampaignType::Call);
    let mut a = target();
    a.destination_1 = Some(Address::tel("+15550002000"));
    a.try_count_0 = 1;
    a.tm_create = Some(Utc::now() - ChronoDuration::hours(1));
    a.tm_update = Some(Utc::now() - ChronoDuration::seconds(5));
    let b = target();
    let b_id = b.id;
    let mut m = Mocks::new();
    m.outdial
        .expect_available_targets()
        .withf(|_, _, limit| *limit == DEFAULT_TARGET_BATCH)
        .times(1)
        .returning(move |_, _, _| Ok(vec![a.clone(), b.clone()]));
    m.outdial
        .expect_set_target_progressing()
        .withf(move |id, index| *id == b_id && *index == 0)
        .times(1)
        .returning(|_, _| Ok(()));
    m.call.expect_create_call().times(1).returning(|_| Ok(()));
    let env = env_with(&s, m).await;

    assert_eq!(env.tick(s.campaign.id).await, (AFTER_DIAL, Outcome::Dialed));
    let calls = env.calls_of(s.campaign.id).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].outdial_target_id, b_id);
}

#[tokio::test]
async fn a_stopped_campaign_records_no_dial_even_if_the_tick_read_run() {
    // The stop lands between the tick's read and its record: the record transaction sees it.
    let s = setup(CampaignType::Call);
    let mut m = Mocks::new();
    let campaign_id = s.campaign.id;
    let db_url: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let url_in = db_url.clone();
    let t = target();
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(move |_, _, _| {
            // "Meanwhile" a stop request is served, by another connection.
            let url = url_in.lock().expect("lock").clone().expect("url");
            let id = campaign_id;
            std::thread::spawn(move || {
                let rt = tokio::runtime::Runtime::new().expect("runtime");
                rt.block_on(async {
                    let pool = sqlx::MySqlPool::connect(&url).await.expect("connect");
                    sqlx::query(
                        "UPDATE campaign_campaigns SET status = 'stopping', execute = 'stop' WHERE id = ?",
                    )
                    .bind(id.as_bytes().to_vec())
                    .execute(&pool)
                    .await
                    .expect("stop");
                    pool.close().await;
                });
            })
            .join()
            .expect("stopper");
            Ok(vec![t.clone()])
        });
    m.outdial.expect_set_target_progressing().times(0);
    m.call.expect_create_call().times(0);
    let env = env_with(&s, m).await;
    *db_url.lock().expect("lock") = Some(env.ts.db.url.clone());

    assert_eq!(
        env.tick(s.campaign.id).await,
        (WAIT, Outcome::Waiting("not_running"))
    );
    assert!(env.calls_of(s.campaign.id).await.is_empty());
}

#[tokio::test]
async fn a_tick_that_read_stopping_cannot_undo_a_run_that_landed_meanwhile() {
    // The tick read `stopping`; before it ends the execution, `PUT status=run` lands. Ending
    // the execution is conditional on what the tick saw, so the campaign stays running.
    let s = setup(CampaignType::Call);
    let env = env_with(&s, Mocks::new()).await;
    let id = s.campaign.id;
    env.ts
        .store
        .campaigns
        .transition(id, &[CampaignStatus::Run], CampaignStatus::Stopping, None)
        .await
        .expect("stopping");
    // What the tick read:
    let seen = env.campaign(id).await;
    assert_eq!(
        (seen.status, seen.execute),
        (CampaignStatus::Stopping, Execute::Run)
    );
    // Meanwhile the user runs it again.
    env.ts
        .store
        .campaigns
        .transition(
            id,
            &[CampaignStatus::Stopping],
            CampaignStatus::Run,
            Some(Execute::Run),
        )
        .await
        .expect("run");
    let ended = env
        .ticker
        .service()
        .end_execution_seen(id, seen.status, seen.execute)
        .await
        .expect("end");
    assert!(!ended);
    let c = env.campaign(id).await;
    assert_eq!((c.status, c.execute), (CampaignStatus::Run, Execute::Run));
    // Without the race it does end.
    env.ts
        .store
        .campaigns
        .transition(id, &[CampaignStatus::Run], CampaignStatus::Stopping, None)
        .await
        .expect("stopping");
    assert!(
        env.ticker
            .service()
            .end_execution_seen(id, CampaignStatus::Stopping, Execute::Run)
            .await
            .expect("end")
    );
    let c = env.campaign(id).await;
    assert_eq!((c.status, c.execute), (CampaignStatus::Stop, Execute::Stop));
}

// ---------------------------------------------------------------- sequences (issue 10)

/// The next campaign of `s.campaign`: stopped, same customer and outplan, its own outdial
/// (outdial-manager answers for it, free); `s.campaign` points at it.
fn with_next(s: &mut Setup, m: &mut Mocks) -> Campaign {
    let mut next = campaign(s.campaign.customer_id, s.outplan.id, CampaignType::Call);
    next.status = CampaignStatus::Stop;
    next.execute = Execute::Stop;
    s.campaign.next_campaign_id = next.id;
    let (outdial_id, customer_id) = (next.outdial_id, next.customer_id);
    m.outdial
        .expect_get_outdial()
        .withf(move |id| *id == outdial_id)
        .returning(move |id| {
            Ok(Outdial {
                id,
                customer_id,
                ..Outdial::default()
            })
        });
    next
}

/// Outdial offers no target (any number of times).
fn exhausted(m: &mut Mocks) {
    m.outdial
        .expect_available_targets()
        .returning(|_, _, _| Ok(vec![]));
}

#[tokio::test]
async fn exhausted_list_starts_the_next_campaign_when_this_run_dialed() {
    let mut s = setup(CampaignType::Call);
    let mut m = Mocks::new();
    exhausted(&mut m);
    let next = with_next(&mut s, &mut m);
    let env = env_with(&s, m).await;
    env.insert_campaign(&next).await;
    env.insert_call(&s.campaign, CampaigncallStatus::Done).await;

    assert_eq!(
        env.tick(s.campaign.id).await,
        (Next::Stop, Outcome::Ended("list_exhausted"))
    );
    let a = env.campaign(s.campaign.id).await;
    assert_eq!((a.status, a.execute), (CampaignStatus::Stop, Execute::Stop));
    let b = env.campaign(next.id).await;
    assert_eq!((b.status, b.execute), (CampaignStatus::Run, Execute::Run));
    assert_eq!(
        env.events(),
        vec![
            "campaign_status_stop",
            "campaign_status_run",
            "campaign_updated",
            "campaign_updated"
        ]
    );
    // The run start of B is recorded, so B's own end is judged on B's dials only.
    let run = env.ts.store.stats.run_started(next.id).await.expect("read");
    assert!(run.is_some());
}

#[tokio::test]
async fn exhausted_list_without_a_dial_in_this_run_starts_nothing() {
    let mut s = setup(CampaignType::Call);
    let mut m = Mocks::new();
    exhausted(&mut m);
    let next = with_next(&mut s, &mut m);
    let env = env_with(&s, m).await;
    env.insert_campaign(&next).await;
    // A dial from an earlier run does not count.
    env.insert_call(&s.campaign, CampaigncallStatus::Done).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    env.ts
        .store
        .stats
        .record_run(s.campaign.id)
        .await
        .expect("record run");

    assert_eq!(
        env.tick(s.campaign.id).await,
        (Next::Stop, Outcome::Ended("list_exhausted"))
    );
    assert_eq!(env.campaign(next.id).await.status, CampaignStatus::Stop);
    assert_eq!(env.events(), vec!["campaign_status_stop"]);
}

#[tokio::test]
async fn next_campaign_running_deleted_or_of_another_customer_is_not_started() {
    for case in ["running", "deleted", "other_customer"] {
        let mut s = setup(CampaignType::Call);
        let mut m = Mocks::new();
        exhausted(&mut m);
        let mut next = with_next(&mut s, &mut m);
        match case {
            "running" => {
                next.status = CampaignStatus::Run;
                next.execute = Execute::Run;
            }
            "other_customer" => next.customer_id = Uuid::new_v4(),
            _ => {}
        }
        let env = env_with(&s, m).await;
        env.insert_campaign(&next).await;
        if case == "deleted" {
            env.ts
                .store
                .campaigns
                .delete(next.id)
                .await
                .expect("delete next");
        }
        env.insert_call(&s.campaign, CampaigncallStatus::Done).await;

        assert_eq!(
            env.tick(s.campaign.id).await,
            (Next::Stop, Outcome::Ended("list_exhausted")),
            "{case}"
        );
        let b = env.campaign(next.id).await;
        assert_eq!(b.status, next.status, "{case}: next campaign untouched");
        assert_eq!(b.execute, next.execute, "{case}");
        assert_eq!(env.events(), vec!["campaign_status_stop"], "{case}");
    }
}

// ---------------------------------------------------------------- tick record (live stats)

#[tokio::test]
async fn every_tick_records_its_outcome_for_the_stats() {
    let mut s = setup(CampaignType::Call);
    s.campaign.end_handle = EndHandle::Continue;
    let mut m = Mocks::new();
    exhausted(&mut m);
    let env = env_with(&s, m).await;
    let before = Utc::now();
    assert_eq!(
        env.tick(s.campaign.id).await,
        (WAIT, Outcome::Waiting("list_empty"))
    );
    let t = env
        .ts
        .store
        .stats
        .last_tick(s.campaign.id)
        .await
        .expect("tick recorded");
    assert_eq!(t.outcome, "waiting");
    assert_eq!(t.waiting_reason.as_deref(), Some("list_empty"));
    let due = t.next_tick_at.expect("next tick due");
    assert!(
        due >= before + ChronoDuration::seconds(4),
        "{due} vs {before}"
    );
    let stats = env
        .ticker
        .service()
        .campaign_stats(s.campaign.id)
        .await
        .expect("stats");
    assert_eq!(stats.waiting_reason.as_deref(), Some("list_empty"));
    assert_eq!(stats.next_tick_at, Some(due));
}
