//! Pacing (CONTRACT.md §15, README "Pacing"): the tick against a real test store with mocked
//! peers (the cap's `Waiting("pacing")`, the after-dial delay `1000 / R` ms), and black-box over
//! RabbitMQ with `campaign-sim`: the route and the campaign JSON, a campaign that never has
//! more calls up than its cap, one whose dials are spaced by its rate, and the operator CLI.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use campaign_manager::metrics::Metrics;
use campaign_manager::model::*;
use campaign_manager::service::tick::{Fence, Next, Outcome, Ticker};
use campaign_manager::service::{Delays, RecordingChains, RecordingNotifier, Service};
use campaign_manager::sim::{MsRange, Outcome as SimOutcome, Scenario};
use chrono::{DateTime, Duration as ChronoDuration, SubsecRound, Utc};
use serde_json::{Value, json};
use support::mocks::Mocks;
use support::{TestStore, TestSystem};
use uuid::Uuid;

// ---------------------------------------------------------------- the tick, mocked peers

fn fresh_fence() -> Fence {
    let seq = u64::try_from(Utc::now().timestamp_micros()).unwrap_or(0);
    Fence {
        seq,
        deadline: Utc::now() + ChronoDuration::seconds(30),
        local_deadline: Instant::now() + Duration::from_secs(30),
    }
}

/// A running call campaign with `pacing` and its outplan, stored, on a ticker over `m`.
struct TickEnv {
    ts: TestStore,
    ticker: Ticker,
    campaign: Campaign,
}

impl TickEnv {
    async fn new(m: Mocks, pacing: Option<Pacing>, queue: bool) -> TickEnv {
        let ts = TestStore::new().await;
        let customer = Uuid::new_v4();
        let outplan = Outplan {
            id: Uuid::new_v4(),
            customer_id: customer,
            name: "plan".into(),
            detail: String::new(),
            source: Some(Address::tel("+15551230000")),
            dial_timeout: 30000,
            try_interval: 600_000,
            max_try_count_0: 3,
            max_try_count_1: 3,
            max_try_count_2: 3,
            max_try_count_3: 3,
            max_try_count_4: 3,
            tm_create: None,
            tm_update: None,
            tm_delete: None,
        };
        let mut c = support::records::campaign_row(customer);
        c.outplan_id = outplan.id;
        c.kind = CampaignType::Call;
        c.status = CampaignStatus::Run;
        c.execute = Execute::Run;
        c.service_level = 100;
        c.queue_id = if queue { Uuid::new_v4() } else { Uuid::nil() };
        c.pacing = pacing;
        c.end_handle = EndHandle::Continue;
        ts.store.outplans.create(&outplan).await.expect("outplan");
        let campaign = ts.store.campaigns.create(&c).await.expect("campaign");
        let service = Service {
            store: ts.store.clone(),
            peers: m.into_peers(),
            notifier: Arc::new(RecordingNotifier::default()),
            chains: Arc::new(RecordingChains::default()),
            metrics: Metrics::standalone(),
            delays: Delays::default(),
        };
        TickEnv {
            ts,
            ticker: Ticker::new(service),
            campaign,
        }
    }

    async fn tick(&self) -> (Next, Outcome) {
        self.ticker.tick(self.campaign.id, &fresh_fence()).await
    }

    /// Stores a campaigncall of the campaign in `status`.
    async fn insert_call(&self, status: CampaigncallStatus) {
        let cc = support::records::campaigncall_of(&self.campaign, status);
        self.ts
            .store
            .campaigncalls
            .create(&cc)
            .await
            .expect("campaigncall");
    }
}

fn limits(max: Option<i64>, rate: Option<f64>) -> Option<Pacing> {
    Some(Pacing {
        max_concurrent_calls: max,
        dials_per_second: rate,
    })
}

fn never_tried_target() -> OutdialTarget {
    let created = Utc::now().trunc_subsecs(6);
    OutdialTarget {
        id: Uuid::new_v4(),
        destination_0: Some(Address::tel("+15550001000")),
        tm_create: Some(created),
        tm_update: Some(created),
        ..OutdialTarget::default()
    }
}

/// The outdial offers one never-tried target once.
fn offer_one(m: &mut Mocks) {
    let t = never_tried_target();
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(move |_, _, _| Ok(vec![t.clone()]));
}

/// Expects exactly one dial.
fn expect_dial(m: &mut Mocks) {
    m.outdial
        .expect_set_target_progressing()
        .times(1)
        .returning(|_, _| Ok(()));
    m.call.expect_create_call().times(1).returning(|_| Ok(()));
}

fn waiting(reason: &'static str) -> (Next, Outcome) {
    (Next::Continue(Delays::default().wait), Outcome::Waiting(reason))
}

#[tokio::test]
async fn at_the_cap_the_tick_waits_for_pacing_without_dialing() {
    // Cap 2: one dialing and one progressing call are up. Mocks expect no dial.
    let mut m = Mocks::new();
    offer_one(&mut m);
    let env = TickEnv::new(m, limits(Some(2), None), false).await;
    env.insert_call(CampaigncallStatus::Dialing).await;
    env.insert_call(CampaigncallStatus::Progressing).await;
    env.insert_call(CampaigncallStatus::Done).await;
    assert_eq!(env.tick().await, waiting("pacing"));
}

#[tokio::test]
async fn below_the_cap_the_tick_dials() {
    // Cap 2, one call up (a finished one does not count).
    let mut m = Mocks::new();
    offer_one(&mut m);
    expect_dial(&mut m);
    let env = TickEnv::new(m, limits(Some(2), None), false).await;
    env.insert_call(CampaigncallStatus::Progressing).await;
    env.insert_call(CampaigncallStatus::Done).await;
    assert_eq!(
        env.tick().await,
        (Next::Continue(Delays::default().after_dial), Outcome::Dialed)
    );
}

#[tokio::test]
async fn a_cap_of_zero_dials_nothing() {
    let mut m = Mocks::new();
    offer_one(&mut m);
    let env = TickEnv::new(m, limits(Some(0), None), false).await;
    assert_eq!(env.tick().await, waiting("pacing"));
}

#[tokio::test]
async fn the_cap_applies_with_a_queue_whose_capacity_is_larger() {
    // 10 agents × 100 % leave room for 10 dialing calls; the cap of 1 is reached first and
    // the queue is not even asked.
    let mut m = Mocks::new();
    offer_one(&mut m);
    m.queue.expect_available_agents().times(0);
    let env = TickEnv::new(m, limits(Some(1), None), true).await;
    env.insert_call(CampaigncallStatus::Dialing).await;
    assert_eq!(env.tick().await, waiting("pacing"));
}

#[tokio::test]
async fn the_queue_capacity_still_applies_under_the_cap() {
    // Cap 5 not reached, but 1 agent × 100 % = 1 ≤ 1 dialing: the queue's limit wins.
    let mut m = Mocks::new();
    offer_one(&mut m);
    m.queue
        .expect_available_agents()
        .times(1)
        .returning(|_| Ok(1));
    let env = TickEnv::new(m, limits(Some(5), None), true).await;
    env.insert_call(CampaigncallStatus::Dialing).await;
    assert_eq!(env.tick().await, waiting("no_capacity"));
}

#[tokio::test]
async fn after_a_dial_the_chain_waits_a_thousand_over_the_rate_ms() {
    let mut m = Mocks::new();
    offer_one(&mut m);
    expect_dial(&mut m);
    let env = TickEnv::new(m, limits(None, Some(4.0)), false).await;
    assert_eq!(
        env.tick().await,
        (Next::Continue(Duration::from_millis(250)), Outcome::Dialed)
    );
}

#[tokio::test]
async fn the_rate_does_not_shorten_waiting() {
    // Nothing to dial (end_handle continue): the wait delay, not the shorter pacing delay.
    let mut m = Mocks::new();
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(|_, _, _| Ok(vec![]));
    let env = TickEnv::new(m, limits(None, Some(50.0)), false).await;
    assert_eq!(env.tick().await, waiting("list_empty"));
}
