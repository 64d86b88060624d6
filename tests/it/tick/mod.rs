//! The campaign tick (docs/contract.md#campaign-lifecycle, src/service/tick/) against a real
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

use crate::table::{TableRow, check_table, table_row};
use campaign_manager::model::*;
use campaign_manager::peers::{CallRequest, PeerError};
use campaign_manager::service::Delays;
use campaign_manager::service::tick::{
    DEFAULT_TARGET_BATCH, Fence, Next, Outcome, Ticker, pick_destination, target_ready,
};
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

/// What is changed in the store after the setup is stored, before the tick.
#[derive(Clone, Copy)]
enum Change {
    Nothing,
    /// The tick runs for a campaign id never stored.
    Missing,
    DeleteCampaign,
    DeleteOutplan,
}

/// A one-tick row: the setup's campaign of `kind` (changed by `tweak` before it is stored,
/// then by `change`), the campaigncalls `calls` already there, the peers as `peers` sets them,
/// and the line it must come out as, in this form:
///
/// `<next> <outcome> | campaign <status>/<execute> | stops <n> | unknown dials <n> | events
/// <types> | calls <status result step>, … | references <n>`
///
/// - the tick's next step (`stop`, or the delay to the next tick) and outcome (a back-off's
///   reason left out); the campaign after it (`gone`: none);
/// - `tick_stop_total` of the reason it ended with (0 when it did not end);
///   `dial_unknown_total`; the events published (`-`: none);
/// - the campaign's campaigncalls, newest first (`-`: none), and how many have a call or
///   activeflow reference.
#[allow(clippy::too_many_arguments)]
fn tick_row(
    name: &'static str,
    kind: CampaignType,
    tweak: fn(&mut Setup),
    change: Change,
    calls: &'static [CampaigncallStatus],
    peers: fn(&mut Mocks, &Setup),
    want: &str,
) -> TableRow<String> {
    table_row(
        name,
        want.to_string(),
        run_tick(kind, tweak, change, calls, peers),
    )
}

/// A setup left as it is.
fn as_is(_: &mut Setup) {}

/// Peers that expect nothing: any question fails the row.
fn no_peer(_: &mut Mocks, _: &Setup) {}

/// A value's name, lowercase (`Done` → `done`).
fn lower(v: impl std::fmt::Debug) -> String {
    format!("{v:?}").to_lowercase()
}

/// `items` joined with `sep`, or `-` when there are none.
fn listed(items: Vec<String>, sep: &str) -> String {
    if items.is_empty() {
        "-".to_string()
    } else {
        items.join(sep)
    }
}

/// Runs one row on a database of its own; returns its line.
async fn run_tick(
    kind: CampaignType,
    tweak: fn(&mut Setup),
    change: Change,
    calls: &'static [CampaigncallStatus],
    peers: fn(&mut Mocks, &Setup),
) -> String {
    let mut s = setup(kind);
    tweak(&mut s);
    let mut m = Mocks::new();
    peers(&mut m, &s);
    let env = env_with(&s, m).await;
    for status in calls {
        env.insert_call(&s.campaign, *status).await;
    }
    let store = &env.ts.store;
    let id = match change {
        Change::Missing => Uuid::new_v4(),
        Change::DeleteCampaign => {
            store.campaigns.delete(s.campaign.id).await.expect("delete");
            s.campaign.id
        }
        Change::DeleteOutplan => {
            store.outplans.delete(s.outplan.id).await.expect("delete");
            s.campaign.id
        }
        Change::Nothing => s.campaign.id,
    };
    let (next, outcome) = env.tick(id).await;
    let stops = match &outcome {
        Outcome::Ended(reason) => env.stop_metric(reason),
        _ => 0,
    };
    let next = match next {
        Next::Stop => "stop".to_string(),
        Next::Continue(d) => format!("after {d:?}"),
    };
    let outcome = match outcome {
        Outcome::Ended(reason) => format!("ended {reason}"),
        Outcome::Waiting(reason) => format!("waiting {reason}"),
        Outcome::Backoff(_) => "backoff".to_string(),
        other => lower(other),
    };
    let campaign = match env.row(id).await {
        Some(c) => format!("{}/{}", lower(c.status), lower(c.execute)),
        None => "gone".to_string(),
    };
    let mut seen = Vec::new();
    let mut references = 0;
    // The `requested` marks are written a window after the tick: write them now.
    store
        .dials
        .flush_requested_marks()
        .await
        .expect("requested marks");
    for cc in env.calls_of(s.campaign.id).await {
        let step = store.dials.step(cc.id).await.expect("step");
        let step = step.map(lower).unwrap_or_else(|| "-".to_string());
        seen.push(format!("{} {} {step}", lower(cc.status), lower(cc.result)));
        references += usize::from(!cc.reference_id.is_nil());
    }
    format!(
        "{next} {outcome} | campaign {campaign} | stops {stops} | unknown dials {} | events {} | calls {} | references {references}",
        env.metrics.dial_unknown_total.get(),
        listed(env.events(), ","),
        listed(seen, ", "),
    )
}
