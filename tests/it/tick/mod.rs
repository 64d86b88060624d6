//! The campaign tick (docs/contract.md#campaign-lifecycle, src/service/tick.rs) against a real
//! MariaDB/Redis test store, with mockall mocks for the peer managers, and the rig its tests
//! share: the outplan and running campaign, the offered target, the expected dials, and a
//! table of one-tick runs ([`TickCase`]: a row per branch, failing once with every wrong row).
//! A file per concern:
//! - `campaign_state.rs`: the campaign, outplan and outdial states that end or keep the chain,
//!   the empty list;
//! - `targets.rs`: queue capacity, the retry interval, the destination chosen;
//! - `dialing.rs`: a call or flow dial and each way it fails, the back-off;
//! - `fencing.rs`: stale and late ticks, one record per try, a stop or run landing mid-tick;
//! - `sequences.rs`: the next campaign of a sequence, the tick record of the live stats.

mod campaign_state;
mod dialing;
mod fencing;
mod sequences;
mod targets;

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
use support::table::{check_table, table_row};
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

/// What is changed in the store after the setup is stored, before the tick.
#[derive(Clone, Copy)]
enum Change {
    Nothing,
    /// The tick runs for a campaign id never stored.
    Missing,
    DeleteCampaign,
    DeleteOutplan,
}

/// One tick of the setup's campaign: `tweak` changes the setup before it is stored, `peers`
/// sets what the peers expect and answer, `calls` are campaigncalls already there.
struct TickCase {
    case: &'static str,
    kind: CampaignType,
    tweak: fn(&mut Setup),
    change: Change,
    calls: &'static [CampaigncallStatus],
    peers: fn(&mut Mocks, &Setup),
    want: TickSeen,
}

/// What a one-tick row comes out as.
#[derive(Clone, Debug, PartialEq)]
struct TickSeen {
    /// The tick's next step and outcome (a back-off's reason left out).
    tick: (Next, Outcome),
    /// The campaign's status and execute after the tick (`None`: no such campaign).
    campaign: Option<(CampaignStatus, Execute)>,
    /// `tick_stop_total` of the reason the tick ended with (0 when it did not end).
    stopped: u64,
    /// `dial_unknown_total`: dials whose outcome is unknown.
    unknown: u64,
    /// The events published.
    events: Vec<String>,
    /// The campaign's campaigncalls, newest first: status, result and dial step.
    calls: Vec<(CampaigncallStatus, CampaigncallResult, Option<DialStep>)>,
    /// How many of them have a call or activeflow reference (not nil).
    references: usize,
}

/// A row's campaign left running and unchanged.
const RUNNING: Option<(CampaignStatus, Execute)> = Some((CampaignStatus::Run, Execute::Run));
/// A row's campaign stopped for good.
const STOPPED: Option<(CampaignStatus, Execute)> = Some((CampaignStatus::Stop, Execute::Stop));

/// A row that changes nothing before the tick but what `peers` sets.
fn tick_case(case: &'static str, peers: fn(&mut Mocks, &Setup), want: TickSeen) -> TickCase {
    TickCase {
        case,
        kind: CampaignType::Call,
        tweak: |_| {},
        change: Change::Nothing,
        calls: &[],
        peers,
        want,
    }
}

/// Runs one row on a database of its own.
async fn run_tick(case: TickCase) -> TickSeen {
    let mut s = setup(case.kind);
    (case.tweak)(&mut s);
    let mut m = Mocks::new();
    (case.peers)(&mut m, &s);
    let env = env_with(&s, m).await;
    for status in case.calls {
        env.insert_call(&s.campaign, *status).await;
    }
    let id = match case.change {
        Change::Nothing => s.campaign.id,
        Change::Missing => Uuid::new_v4(),
        Change::DeleteCampaign => {
            env.ts
                .store
                .campaigns
                .delete(s.campaign.id)
                .await
                .expect("delete");
            s.campaign.id
        }
        Change::DeleteOutplan => {
            env.ts
                .store
                .outplans
                .delete(s.outplan.id)
                .await
                .expect("delete outplan");
            s.campaign.id
        }
    };
    let (next, outcome) = env.tick(id).await;
    let stopped = match &outcome {
        Outcome::Ended(reason) => env.stop_metric(reason),
        _ => 0,
    };
    let outcome = match outcome {
        Outcome::Backoff(_) => Outcome::Backoff(String::new()),
        other => other,
    };
    let mut calls = Vec::new();
    let mut references = 0;
    for cc in env.calls_of(s.campaign.id).await {
        let step = env.ts.store.dials.step(cc.id).await.expect("step");
        calls.push((cc.status, cc.result, step));
        references += usize::from(!cc.reference_id.is_nil());
    }
    TickSeen {
        tick: (next, outcome),
        campaign: env.row(id).await.map(|c| (c.status, c.execute)),
        stopped,
        unknown: env.metrics.dial_unknown_total.get(),
        events: env.events(),
        calls,
        references,
    }
}

/// Runs every row as a table.
async fn check_ticks(cases: Vec<TickCase>) {
    check_table(
        cases
            .into_iter()
            .map(|c| table_row(c.case, c.want.clone(), run_tick(c)))
            .collect(),
    )
    .await;
}

/// The events of a row, as `&str`s.
fn events(types: &[&str]) -> Vec<String> {
    types.iter().map(|t| (*t).to_string()).collect()
}
