//! End-to-end campaigns: campaign-manager (RPC routes, event subscriptions, tick workers) and
//! the peer simulator `campaign-sim`, on the real MariaDB, Redis and RabbitMQ of this machine,
//! with unique names per test (see `support::TestSystem`).
//!
//! Everything the platform would do goes through the RPC API: outplan create, campaign create,
//! status changes, campaign and campaigncall reads. The simulator plays outdial-, call-, flow-
//! and queue-manager and is inspected directly (its calls, activeflows, dial attempts and
//! targets are the ground truth the service's records are checked against).
//!
//! Delays are short (first tick 100 ms, 50 ms after a dial, 300 ms when waiting) and lists
//! small, so the whole module runs in well under two minutes.
//!
//! Every scenario runs on the platform's topic exchange (the default); the central ones (a call
//! campaign, a flow campaign, stop while calls are up) also run on the fanout bus of older
//! platforms (`..._on_the_fanout_bus`).
//!
//! A file per concern: `campaigns.rs` (whole call and flow campaigns, on tick shards, stop and
//! run again, a `continue` campaign), `targets.rs` (queue capacity, retries and the retry
//! interval), `workers.rs` (a killed worker process), `sequences.rs` (sequences and cycles of
//! campaigns, live stats); the rig they share is here.

mod campaigns;
mod sequences;
mod targets;
mod workers;

use crate::support;
use crate::support::wait_until;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use campaign_manager::bus::EventBus;
use campaign_manager::config::Settings;
use campaign_sim::{MsRange, Outcome, Scenario, SimTarget, TargetState, Weights};
use serde_json::{Value, json};
use support::TestSystem;
use support::black_box::set_status;
use uuid::Uuid;

/// Short delays and a few tick workers in the service process.
fn fast(s: &mut Settings) {
    s.workers = 8;
    s.first_tick_ms = 100;
    s.dial_tick_ms = 50;
    s.wait_tick_ms = 300;
}

/// [`fast`] on the event bus `bus`.
fn fast_on(bus: EventBus) -> impl FnOnce(&mut Settings) {
    move |s| {
        fast(s);
        s.event_bus = bus;
    }
}

/// What a test campaign is made of.
struct Plan {
    kind: &'static str,
    end_handle: &'static str,
    try_interval_ms: i64,
    max_tries: [i32; 5],
    queue: Option<(Uuid, i32)>,
}

impl Plan {
    fn call() -> Plan {
        Plan {
            kind: "call",
            end_handle: "stop",
            try_interval_ms: 0,
            max_tries: [1, 1, 1, 1, 1],
            queue: None,
        }
    }
}

/// An outplan and a campaign (status `stop`) over `outdial`, created through the RPC API.
async fn create_campaign(sys: &TestSystem, customer: Uuid, outdial: Uuid, plan: &Plan) -> Uuid {
    let m = plan.max_tries;
    let outplan = sys
        .ok(
            "POST",
            "/v1/outplans",
            Some(json!({
                "customer_id": customer, "name": "e2e", "detail": "e2e outplan",
                "source": {"type": "tel", "target": "+15550001000"},
                "dial_timeout": 30000, "try_interval": plan.try_interval_ms,
                "max_try_count_0": m[0], "max_try_count_1": m[1], "max_try_count_2": m[2],
                "max_try_count_3": m[3], "max_try_count_4": m[4],
            })),
        )
        .await;
    let (queue_id, service_level) = plan.queue.unwrap_or((Uuid::nil(), 100));
    let campaign = sys
        .ok(
            "POST",
            "/v1/campaigns",
            Some(json!({
                "customer_id": customer, "type": plan.kind, "name": "e2e", "detail": "",
                "actions": [{"type": "answer"}], "service_level": service_level,
                "end_handle": plan.end_handle, "outplan_id": outplan["id"],
                "outdial_id": outdial, "queue_id": queue_id,
            })),
        )
        .await;
    assert_eq!(campaign["status"], "stop");
    uuid(&campaign["id"])
}

fn uuid(v: &Value) -> Uuid {
    Uuid::parse_str(v.as_str().unwrap_or_default()).expect("uuid field")
}

async fn campaign(sys: &TestSystem, id: Uuid) -> Value {
    sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await
}

/// Polls the campaign until `status` (and `execute`, when given) hold; panics after `timeout`.
async fn wait_campaign(
    sys: &TestSystem,
    id: Uuid,
    status: &str,
    execute: Option<&str>,
    timeout: Duration,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let c = campaign(sys, id).await;
        if c["status"] == status && execute.is_none_or(|e| c["execute"] == e) {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "campaign never reached status {status} / execute {execute:?}: {c}\nsim stats: {:?}",
            sys.sim.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every campaigncall of a campaign through K1 (all pages), with optional extra filters.
async fn campaigncalls(sys: &TestSystem, campaign_id: Uuid, extra: Value) -> Vec<Value> {
    let mut filters = json!({ "campaign_id": campaign_id });
    if let (Some(f), Some(x)) = (filters.as_object_mut(), extra.as_object()) {
        f.extend(x.clone());
    }
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let uri = format!("/v1/campaigncalls?page_size=1000&page_token={token}");
        let page = sys.ok("GET", &uri, Some(filters.clone())).await;
        let rows = page.as_array().cloned().unwrap_or_default();
        if rows.is_empty() {
            return all;
        }
        token = rows
            .last()
            .and_then(|r| r["tm_create"].as_str())
            .unwrap_or_default()
            .to_owned();
        all.extend(rows);
    }
}

fn tries_left(t: &SimTarget, max: &[i32; 5]) -> bool {
    t.has_tries_left(max)
}

/// Every target is `done`, or `idle` with no destination tries left.
fn assert_targets_finished(sys: &TestSystem, outdial: Uuid, max: &[i32; 5]) {
    for t in sys.sim.targets(outdial) {
        let finished = t.status == TargetState::Done
            || (t.status == TargetState::Idle && !tries_left(&t, max));
        assert!(finished, "target not finished: {:?}", t);
    }
}

/// Campaigncalls of a call campaign and the simulator's calls match 1:1 (reference id = call
/// id), all done, with the result of the call's outcome and the call's target/destination.
fn assert_calls_match(sys: &TestSystem, ccs: &[Value]) {
    let calls: HashMap<Uuid, _> = sys.sim.calls().into_iter().map(|c| (c.id, c)).collect();
    assert_eq!(ccs.len(), calls.len(), "campaigncalls vs sim calls");
    let mut seen = HashSet::new();
    for cc in ccs {
        assert_eq!(cc["reference_type"], "call");
        let call_id = uuid(&cc["reference_id"]);
        assert!(seen.insert(call_id), "two campaigncalls for call {call_id}");
        let call = calls
            .get(&call_id)
            .unwrap_or_else(|| panic!("campaigncall without sim call: {cc}"));
        assert_eq!(cc["status"], "done", "{cc}");
        let want = if call.outcome == Outcome::Answered {
            "success"
        } else {
            "fail"
        };
        assert_eq!(cc["result"], want, "{cc} vs {:?}", call.outcome);
        assert_eq!(call.target_id, Some(uuid(&cc["outdial_target_id"])));
        assert_eq!(
            call.destination_index.map(|i| i as i64),
            cc["destination_index"].as_i64()
        );
        assert_eq!(uuid(&cc["activeflow_id"]), call.activeflow_id);
    }
}

/// (target, destination index, try count) of every campaigncall is unique and matches the
/// simulator's dial attempts exactly.
fn assert_attempts_match(sys: &TestSystem, ccs: &[Value]) {
    let mut from_cc: Vec<(Uuid, i64, i64)> = ccs
        .iter()
        .map(|c| {
            (
                uuid(&c["outdial_target_id"]),
                c["destination_index"].as_i64().unwrap_or(-1),
                c["try_count"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    let mut from_sim: Vec<(Uuid, i64, i64)> = sys
        .sim
        .attempts()
        .iter()
        .map(|a| {
            (
                a.target_id,
                a.destination_index as i64,
                i64::from(a.try_count),
            )
        })
        .collect();
    from_cc.sort();
    from_sim.sort();
    let unique: HashSet<_> = from_cc.iter().collect();
    assert_eq!(unique.len(), from_cc.len(), "a try was dialed twice");
    assert_eq!(from_cc, from_sim, "campaigncalls vs sim attempts");
}
