//! Exactly-once dials and self-healing campaigns, end to end: campaign-manager (in process),
//! `campaign-worker` child processes and the simulator, on the real MariaDB, Redis and
//! RabbitMQ, with faults injected where a dial is most fragile: a process killed at each step
//! of a dial, a process stopped past its lease, a reply that comes after the timeout, a hangup
//! that never comes, and all of that at once over a hundred campaigns.
//!
//! What must hold after each run (see docs/architecture.md "Reliability"): every campaign ends by itself,
//! no campaigncall is left open, no (target, destination, try) is recorded twice, and no
//! target has two calls up at once.
//!
//! Only this test's own processes, keys and connections are disturbed.

use crate::support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use campaign_manager::config::Settings;
use campaign_sim::{Fault, MsRange, Outcome, Scenario, Service, Weights};
use serde_json::{Value, json};
use support::TestSystem;
use uuid::Uuid;

/// Repair and tick bounds short enough for a test: ticks may run 4 s, open campaigncalls are
/// looked up 7.5 s after their dial timeout, calls "up" for 20 s are given up.
const MAX_TICK_MS: u64 = 4_000;
const REPAIR_MARGIN_MS: u64 = 7_500;

/// Each test here runs several processes; two at a time keep a 2-core machine responsive
/// enough that the bounds above are not mistaken for stalls.
static HEAVY: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
const MAX_CALL_S: u64 = 20;
/// The repair looks again at what it could not resolve after 1 s, doubling up to 4 s.
const REPAIR_BACKOFF_MS: u64 = 1_000;
const REPAIR_BACKOFF_MAX_MS: u64 = 4_000;
/// The outplans' `dial_timeout`.
const DIAL_TIMEOUT_MS: i64 = 500;

fn fast_repair(s: &mut Settings) {
    s.first_tick_ms = 100;
    s.dial_tick_ms = 100;
    s.wait_tick_ms = 300;
    s.max_tick_ms = MAX_TICK_MS;
    s.repair_margin_ms = REPAIR_MARGIN_MS;
    s.repair_interval_ms = 300;
    s.max_call_duration_s = MAX_CALL_S;
    s.repair_backoff_ms = REPAIR_BACKOFF_MS;
    s.repair_backoff_max_ms = REPAIR_BACKOFF_MAX_MS;
}

/// Calls ring 100 ms and talk `talk_ms`; `busy` of them are busy instead.
fn calls(talk_ms: MsRange, busy: f64) -> Scenario {
    Scenario {
        ring_ms: MsRange::fixed(100),
        talk_ms,
        weights: Weights {
            answered: 1.0 - busy,
            busy,
            noanswer: 0.0,
            failed: 0.0,
        },
        ..Scenario::instant(Outcome::Answered)
    }
}

/// A `campaign-worker` child with the short delays and repair bounds.
fn spawn_worker(sys: &TestSystem) -> tokio::process::Child {
    let (max_tick, margin, max_call, backoff, backoff_max) = (
        MAX_TICK_MS.to_string(),
        REPAIR_MARGIN_MS.to_string(),
        MAX_CALL_S.to_string(),
        REPAIR_BACKOFF_MS.to_string(),
        REPAIR_BACKOFF_MAX_MS.to_string(),
    );
    support::spawn_worker(
        sys,
        &[
            "--migrate",
            "false",
            "--workers",
            "16",
            "--first_tick_ms",
            "100",
            "--dial_tick_ms",
            "100",
            "--wait_tick_ms",
            "300",
            "--max_tick_ms",
            &max_tick,
            "--repair_margin_ms",
            &margin,
            "--repair_interval_ms",
            "300",
            "--max_call_duration_s",
            &max_call,
            "--repair_backoff_ms",
            &backoff,
            "--repair_backoff_max_ms",
            &backoff_max,
        ],
    )
}

async fn kill(child: &mut tokio::process::Child) {
    let _ = child.start_kill();
    let _ = child.wait().await;
}

fn signal(child: &tokio::process::Child, sig: &str) {
    let pid = child.id().expect("running child").to_string();
    let ok = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .expect("kill");
    assert!(ok.success(), "kill {sig} {pid}");
}

/// An outplan (tries per destination `tries`) and a call campaign over `outdial`, set to run.
async fn run_campaign(sys: &TestSystem, customer: Uuid, outdial: Uuid, tries: i32) -> Uuid {
    run_campaign_with(sys, customer, outdial, tries, json!({})).await
}

/// [`run_campaign`] with more campaign fields (`pacing`, ...).
async fn run_campaign_with(
    sys: &TestSystem,
    customer: Uuid,
    outdial: Uuid,
    tries: i32,
    extra: Value,
) -> Uuid {
    let outplan = sys
        .ok(
            "POST",
            "/v1/outplans",
            Some(json!({
                "customer_id": customer, "name": "dials", "detail": "",
                "source": {"type": "tel", "target": "+15550001000"},
                "dial_timeout": DIAL_TIMEOUT_MS, "try_interval": 0,
                "max_try_count_0": tries, "max_try_count_1": tries, "max_try_count_2": 0,
                "max_try_count_3": 0, "max_try_count_4": 0,
            })),
        )
        .await;
    let mut body = json!({
        "customer_id": customer, "type": "call", "name": "dials", "detail": "",
        "actions": [{"type": "answer"}], "service_level": 100,
        "end_handle": "stop", "outplan_id": outplan["id"], "outdial_id": outdial,
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let campaign = sys.ok("POST", "/v1/campaigns", Some(body)).await;
    let id = Uuid::parse_str(campaign["id"].as_str().expect("id")).expect("uuid");
    sys.ok(
        "PUT",
        &format!("/v1/campaigns/{id}/status"),
        Some(json!({"status": "run"})),
    )
    .await;
    id
}

/// Waits until every campaign is `stop`/`stop`; panics after `timeout` naming the stragglers.
async fn wait_all_stopped(sys: &TestSystem, ids: &[Uuid], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut left: Vec<Uuid> = ids.to_vec();
    while !left.is_empty() {
        let mut still = Vec::new();
        for id in &left {
            let c: Value = sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await;
            if !(c["status"] == "stop" && c["execute"] == "stop") {
                still.push(*id);
            }
        }
        left = still;
        if left.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            panic!(
                "{} campaigns never ended, e.g. {}; open campaigncalls: {}; {}",
                left.len(),
                left[0],
                open_campaigncalls(sys).await,
                straggler(sys, left[0]).await
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// (status, result, reason, dial step, destination index, try) of a campaigncall.
type CampaigncallRow = (String, String, Option<String>, Option<String>, i32, i32);

/// What a campaign that never ended left: its state, its campaigncalls with their dial steps,
/// and its targets at the simulator.
async fn straggler(sys: &TestSystem, id: Uuid) -> String {
    let c: Value = sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await;
    let calls: Vec<CampaigncallRow> = sqlx::query_as(
        "SELECT c.status, c.result, c.reason, d.step, c.destination_index, c.try_count \
         FROM campaign_campaigncalls c LEFT JOIN campaign_dials d ON d.campaigncall_id = c.id \
         WHERE c.campaign_id = ? ORDER BY c.tm_create",
    )
    .bind(id.as_bytes().to_vec())
    .fetch_all(&sys.db.pool)
    .await
    .unwrap_or_default();
    let outdial = c["outdial_id"]
        .as_str()
        .and_then(|o| Uuid::parse_str(o).ok())
        .unwrap_or_default();
    let targets: Vec<String> = sys
        .sim
        .targets(outdial)
        .iter()
        .map(|t| {
            format!(
                "{:?} tries {}/{}",
                t.status, t.target.try_count_0, t.target.try_count_1
            )
        })
        .collect();
    // The route answers from the read-through cache; MySQL's row tells a stale copy apart.
    let stored: Option<(String, String)> =
        sqlx::query_as("SELECT status, execute FROM campaign_campaigns WHERE id = ?")
            .bind(id.as_bytes().to_vec())
            .fetch_optional(&sys.db.pool)
            .await
            .unwrap_or_default();
    format!(
        "campaign {}/{} (in MySQL: {stored:?}); campaigncalls (status, result, reason, step, \
         index, try): {calls:?}; targets: {targets:?}",
        c["status"], c["execute"]
    )
}

async fn open_campaigncalls(sys: &TestSystem) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM campaign_campaigncalls WHERE status IN ('dialing', 'progressing')",
    )
    .fetch_one(&sys.db.pool)
    .await
    .expect("count open");
    n
}

async fn waits_for<F: std::future::Future<Output = bool>>(
    what: &str,
    timeout: Duration,
    mut pred: impl FnMut() -> F,
) {
    let deadline = Instant::now() + timeout;
    while !pred().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The dial invariants over everything this test's system recorded and the simulator saw.
async fn assert_dial_invariants(sys: &TestSystem) {
    assert_eq!(open_campaigncalls(sys).await, 0, "campaigncalls left open");
    // A try may be recorded again only after an attempt that placed no call (abandoned before
    // call-manager created anything): among campaigncalls with a call behind them, each try
    // is unique.
    let placed: HashSet<Uuid> = sys.sim.calls().iter().map(|c| c.id).collect();
    let rows: Vec<(Vec<u8>, Vec<u8>, i32, i32)> = sqlx::query_as(
        "SELECT reference_id, outdial_target_id, destination_index, try_count \
         FROM campaign_campaigncalls",
    )
    .fetch_all(&sys.db.pool)
    .await
    .expect("campaigncalls");
    let mut seen = HashSet::new();
    for (reference, target, index, try_count) in rows {
        let reference = Uuid::from_slice(&reference).expect("uuid");
        if placed.contains(&reference) {
            assert!(
                seen.insert((target.clone(), index, try_count)),
                "(target, destination, try) dialed twice: {:?}",
                (Uuid::from_slice(&target), index, try_count)
            );
        }
    }
    assert_eq!(seen.len(), placed.len(), "every call has its campaigncall");
    // A call call-manager has keeps its try taken: its dial row is never released (as it is
    // for a dial judged "nothing placed"), so that try is never dialed again.
    let kept: Vec<(Vec<u8>,)> = sqlx::query_as(
        "SELECT c.reference_id FROM campaign_campaigncalls c \
         JOIN campaign_dials d ON d.campaigncall_id = c.id",
    )
    .fetch_all(&sys.db.pool)
    .await
    .expect("dial rows");
    let kept: HashSet<Uuid> = kept
        .into_iter()
        .filter_map(|(r,)| Uuid::from_slice(&r).ok())
        .collect();
    let freed: Vec<&Uuid> = placed.iter().filter(|c| !kept.contains(c)).collect();
    assert!(
        freed.is_empty(),
        "calls placed but their try freed: {freed:?}"
    );
    // Calls at the simulator: one per try, and never two up at once for one target.
    let mut per_target: HashMap<Uuid, Vec<(i64, i64)>> = HashMap::new();
    for c in sys.sim.calls() {
        let Some(target) = c.target_id else { continue };
        let start = c.tm_create.map(|t| t.timestamp_micros()).unwrap_or(0);
        let end = c
            .tm_hangup
            .map(|t| t.timestamp_micros())
            .unwrap_or(i64::MAX);
        per_target.entry(target).or_default().push((start, end));
    }
    for (target, mut spans) in per_target {
        spans.sort();
        for w in spans.windows(2) {
            assert!(
                w[1].0 >= w[0].1,
                "target {target} had two calls up at once: {spans:?}"
            );
        }
    }
    let mut tries = HashSet::new();
    for a in sys.sim.attempts() {
        assert!(
            tries.insert((a.target_id, a.destination_index, a.try_count)),
            "the simulator saw (target, destination, try) claimed twice: {a:?}"
        );
    }
}

fn metric(sys: &TestSystem, name: &str, label: &str) -> u64 {
    let app = sys.app.as_ref().expect("running");
    app.metrics
        .registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().to_vec())
        .filter(|m| label.is_empty() || m.get_label().iter().any(|l| l.value() == label))
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

// ---------------------------------------------------------------- dial gaps

/// The database's clock now: the fault window is bounded on the clock that stamps the dials.
async fn db_now(sys: &TestSystem) -> chrono::NaiveDateTime {
    let (now,): (chrono::NaiveDateTime,) = sqlx::query_as("SELECT UTC_TIMESTAMP(6)")
        .fetch_one(&sys.db.pool)
        .await
        .expect("database clock");
    now
}

/// The largest gap (ms) between two consecutive dials (campaigncalls, whatever became of them)
/// of each campaign among those that overlap the window `from..to`; campaigns with fewer than
/// two dials are left out.
async fn largest_dial_gaps(
    sys: &TestSystem,
    ids: &[Uuid],
    (from, to): (chrono::NaiveDateTime, chrono::NaiveDateTime),
) -> Vec<(i64, Uuid)> {
    let rows: Vec<(Vec<u8>, chrono::NaiveDateTime)> = sqlx::query_as(
        "SELECT campaign_id, tm_create FROM campaign_campaigncalls ORDER BY tm_create",
    )
    .fetch_all(&sys.db.pool)
    .await
    .expect("dial times");
    let mut per_campaign: HashMap<Uuid, Vec<chrono::NaiveDateTime>> = HashMap::new();
    for (campaign, at) in rows {
        if let Ok(id) = Uuid::from_slice(&campaign) {
            per_campaign.entry(id).or_default().push(at);
        }
    }
    ids.iter()
        .filter_map(|id| {
            let times = per_campaign.get(id)?;
            let gap = times
                .windows(2)
                .filter(|w| w[1] > from && w[0] < to)
                .map(|w| (w[1] - w[0]).num_milliseconds())
                .max()?;
            Some((gap, *id))
        })
        .collect()
}

/// A dial of a campaign: when (ms since its first dial), status, result, reason, dial step.
type DialHistoryRow<T> = (T, String, String, Option<String>, Option<String>);

/// The dials of a campaign, oldest first.
async fn dial_history(sys: &TestSystem, id: Uuid) -> Vec<DialHistoryRow<i64>> {
    let rows: Vec<DialHistoryRow<chrono::NaiveDateTime>> = sqlx::query_as(
        "SELECT c.tm_create, c.status, c.result, c.reason, d.step \
         FROM campaign_campaigncalls c LEFT JOIN campaign_dials d ON d.campaigncall_id = c.id \
         WHERE c.campaign_id = ? ORDER BY c.tm_create",
    )
    .bind(id.as_bytes().to_vec())
    .fetch_all(&sys.db.pool)
    .await
    .unwrap_or_default();
    let first = rows.first().map(|r| r.0);
    rows.into_iter()
        .map(|(at, status, result, reason, step)| {
            let ms = first.map_or(0, |f| (at - f).num_milliseconds());
            (ms, status, result, reason, step)
        })
        .collect()
}

/// Prints the largest dial gap per campaign during the fault window as p50/p99/max (a number
/// to compare runs by, never asserted: the machine is shared).
async fn print_dial_gaps(
    sys: &TestSystem,
    run: &str,
    ids: &[Uuid],
    window: (chrono::NaiveDateTime, chrono::NaiveDateTime),
) {
    let mut worst = largest_dial_gaps(sys, ids, window).await;
    worst.sort_unstable();
    let gaps: Vec<i64> = worst.iter().map(|(gap, _)| *gap).collect();
    let at = |q: f64| {
        let i = ((gaps.len() as f64 * q).ceil() as usize).clamp(1, gaps.len().max(1)) - 1;
        gaps.get(i).copied().unwrap_or(0)
    };
    eprintln!(
        "{run}: largest dial gap per campaign during the fault window ({} ms, {} campaigns): \
         p50 {} ms, p99 {} ms, max {} ms; in-process unknown outcomes {}, tick back-offs {}",
        (window.1 - window.0).num_milliseconds(),
        gaps.len(),
        at(0.5),
        at(0.99),
        gaps.last().copied().unwrap_or(0),
        metric(sys, "campaign_manager_dial_unknown_total", ""),
        metric(sys, "campaign_manager_tick_backoff_total", ""),
    );
    if let Some((gap, id)) = worst.last() {
        eprintln!(
            "{run}: the largest gap, {gap} ms, is campaign {id}'s; its dials (ms since its \
             first, status, result, reason, step): {:?}",
            dial_history(sys, *id).await
        );
    }
}

// ---------------------------------------------------------------- unknown outcomes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_reply_is_not_a_failure_and_the_person_is_not_dialed_again() {
    let _heavy = HEAVY.acquire().await.expect("semaphore");
    // call-manager creates the first call but answers after the 3 s timeout. The dial stays
    // open with its call id; its real hangup finishes it as a success; with two tries per
    // destination the person is not called a second time while (or after) the first call is up.
    let sys = TestSystem::start(calls(MsRange::fixed(5_000), 0.0), |s| {
        fast_repair(s);
        s.workers = 4;
    })
    .await;
    sys.sim.inject(
        Fault::late_reply(Service::Call, Duration::from_millis(4_000), 1).on_method("POST"),
    );
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 3, 1);
    let id = run_campaign(&sys, customer, outdial, 2).await;

    wait_all_stopped(&sys, &[id], Duration::from_secs(120)).await;
    assert_eq!(sys.sim.calls().len(), 3, "one call per person");
    let ccs: Vec<(String, String)> =
        sqlx::query_as("SELECT status, result FROM campaign_campaigncalls WHERE campaign_id = ?")
            .bind(id.as_bytes().to_vec())
            .fetch_all(&sys.db.pool)
            .await
            .expect("campaigncalls");
    assert_eq!(ccs.len(), 3);
    assert!(
        ccs.iter().all(|(s, r)| s == "done" && r == "success"),
        "each ends with its call's real result: {ccs:?}"
    );
    assert_eq!(metric(&sys, "campaign_manager_dial_unknown_total", ""), 1);
    assert_dial_invariants(&sys).await;
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_never_hangs_up_is_resolved_by_the_repair_and_the_campaign_ends() {
    let _heavy = HEAVY.acquire().await.expect("semaphore");
    // `silent` calls never end and send no hangup: the repair looks them up after the dial
    // timeout + margin, finds them "up" past the longest call and gives them up.
    let sys = TestSystem::start(support::scenarios::silent(), |s| {
        fast_repair(s);
        s.max_call_duration_s = 2;
        s.workers = 4;
    })
    .await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 2, 1);
    let id = run_campaign(&sys, customer, outdial, 1).await;

    wait_all_stopped(&sys, &[id], Duration::from_secs(120)).await;
    assert_eq!(open_campaigncalls(&sys).await, 0);
    assert_eq!(
        metric(
            &sys,
            "campaign_manager_campaigncall_repair_total",
            "over_max_duration"
        ),
        2
    );
    sys.stop().await;
}

// ---------------------------------------------------------------- crash points

/// The last step of the dial before the worker is killed.
#[derive(Debug, Clone, Copy)]
enum CrashPoint {
    /// The campaigncall is recorded; the target claim never reaches outdial-manager.
    Recorded,
    /// The target is claimed; the call request never reaches call-manager.
    TargetClaimed,
    /// call-manager created the call; its reply is still on the way.
    Requested,
}

async fn crash_at(point: CrashPoint) {
    let _heavy = HEAVY.acquire().await.expect("semaphore");
    let sys = TestSystem::start(calls(MsRange::fixed(1_000), 0.0), |s| {
        fast_repair(s);
        s.workers = 0;
    })
    .await;
    let fault = match point {
        CrashPoint::Recorded => {
            Fault::no_reply(Service::Outdial, Duration::from_secs(20), 1).on_uri("/progressing")
        }
        CrashPoint::TargetClaimed => {
            Fault::no_reply(Service::Call, Duration::from_secs(20), 1).on_method("POST")
        }
        CrashPoint::Requested => {
            Fault::late_reply(Service::Call, Duration::from_secs(20), 1).on_method("POST")
        }
    };
    sys.sim.inject(fault);
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 3, 1);
    let mut worker = spawn_worker(&sys);
    let id = run_campaign(&sys, customer, outdial, 2).await;

    // Wait until the dial reached the step, then SIGKILL the worker there.
    let pool = sys.db.pool.clone();
    waits_for("the first campaigncall", Duration::from_secs(20), || {
        let pool = pool.clone();
        async move { open_in(&pool).await > 0 }
    })
    .await;
    match point {
        CrashPoint::Recorded => tokio::time::sleep(Duration::from_millis(300)).await,
        CrashPoint::TargetClaimed => {
            waits_for("the claim", Duration::from_secs(10), || async {
                !sys.sim.attempts().is_empty()
            })
            .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        CrashPoint::Requested => {
            waits_for("the call", Duration::from_secs(10), || async {
                !sys.sim.calls().is_empty()
            })
            .await;
        }
    }
    kill(&mut worker).await;
    let calls_at_kill = sys.sim.calls().len();
    assert!(calls_at_kill <= 1, "{point:?}: killed after the first dial");

    let mut replacement = spawn_worker(&sys);
    wait_all_stopped(&sys, &[id], Duration::from_secs(120)).await;
    kill(&mut replacement).await;
    assert_dial_invariants(&sys).await;
    // Every person was reached once, the interrupted one included.
    let calls = sys.sim.calls();
    let targets: HashSet<Uuid> = calls.iter().filter_map(|c| c.target_id).collect();
    assert_eq!(targets.len(), 3, "{point:?}: every target called");
    assert_eq!(calls.len(), 3, "{point:?}: nobody called twice");
    let results: Vec<(String,)> =
        sqlx::query_as("SELECT result FROM campaign_campaigncalls WHERE status = 'done'")
            .fetch_all(&sys.db.pool)
            .await
            .expect("results");
    let successes = results.iter().filter(|(r,)| r == "success").count();
    assert_eq!(
        successes, 3,
        "{point:?}: each call's real result: {results:?}"
    );
    sys.stop().await;
}

async fn open_in(pool: &sqlx::MySqlPool) -> i64 {
    sqlx::query_as::<_, (i64,)>("SELECT COUNT(*) FROM campaign_campaigncalls")
        .fetch_one(pool)
        .await
        .map(|(n,)| n)
        .unwrap_or(0)
}

/// A paced tick places several dials at once (each at its own step when the worker dies):
/// one call request is never answered, the others go through, and the worker is killed while
/// they are in flight. Each interrupted dial is resolved on its own by the repair, and every
/// person is still called exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_worker_killed_with_several_dials_in_flight_leaves_nothing_open() {
    let _heavy = HEAVY.acquire().await.expect("semaphore");
    let sys = TestSystem::start(calls(MsRange::fixed(1_000), 0.0), |s| {
        fast_repair(s);
        s.workers = 0;
    })
    .await;
    sys.sim
        .inject(Fault::no_reply(Service::Call, Duration::from_secs(20), 1).on_method("POST"));
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 6, 1);
    let mut worker = spawn_worker(&sys);
    let id = run_campaign_with(
        &sys,
        customer,
        outdial,
        2,
        json!({"pacing": {"dials_per_second": 10}}),
    )
    .await;
    waits_for("dials in flight", Duration::from_secs(20), || async {
        sys.sim.attempts().len() >= 3
    })
    .await;
    kill(&mut worker).await;

    let mut replacement = spawn_worker(&sys);
    wait_all_stopped(&sys, &[id], Duration::from_secs(120)).await;
    kill(&mut replacement).await;
    assert_dial_invariants(&sys).await;
    let calls = sys.sim.calls();
    let targets: HashSet<Uuid> = calls.iter().filter_map(|c| c.target_id).collect();
    assert_eq!(targets.len(), 6, "every target called: {calls:?}");
    assert_eq!(calls.len(), 6, "nobody called twice: {calls:?}");
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_after_recording_a_dial_leaves_nothing_open() {
    crash_at(CrashPoint::Recorded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_after_claiming_the_target_leaves_nothing_open() {
    crash_at(CrashPoint::TargetClaimed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_after_asking_for_the_call_leaves_nothing_open() {
    crash_at(CrashPoint::Requested).await;
}

// ---------------------------------------------------------------- stall

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_past_its_lease_neither_dials_twice_nor_writes_late() {
    let _heavy = HEAVY.acquire().await.expect("semaphore");
    // One of two workers is SIGSTOPped mid-run for longer than a tick may take: its chains
    // are re-seeded on the other worker; when it resumes, its stale ticks record nothing.
    let sys = TestSystem::start(calls(MsRange::new(300, 1_500), 0.3), |s| {
        fast_repair(s);
        s.workers = 0;
    })
    .await;
    let mut a = spawn_worker(&sys);
    let mut b = spawn_worker(&sys);
    let mut ids = Vec::new();
    for _ in 0..20 {
        let customer = Uuid::new_v4();
        let outdial = sys.sim.create_outdial(customer, 6, 2);
        ids.push(run_campaign(&sys, customer, outdial, 2).await);
    }
    waits_for("dials under way", Duration::from_secs(30), || async {
        sys.sim.calls().len() >= 40
    })
    .await;
    let from = db_now(&sys).await;
    signal(&a, "-STOP");
    tokio::time::sleep(Duration::from_millis(MAX_TICK_MS + 5_000)).await;
    signal(&a, "-CONT");
    let to = db_now(&sys).await;

    wait_all_stopped(&sys, &ids, Duration::from_secs(120)).await;
    print_dial_gaps(&sys, "stall", &ids, (from, to)).await;
    kill(&mut a).await;
    kill(&mut b).await;
    assert_dial_invariants(&sys).await;
    sys.stop().await;
}

// ---------------------------------------------------------------- everything at once

/// Closes the broker connections of this test's processes (the in-process service and the
/// worker children), as a broker restart would; the others' connections are left alone.
async fn close_our_connections(sys: &TestSystem, pids: &[u32]) {
    let app = sys.app.as_ref().expect("running");
    let mut marks: Vec<String> = pids
        .iter()
        .map(|p| campaign_manager::bus::identity::connection_name_prefix(*p))
        .collect();
    marks.push(app.bus.connection_name().to_owned());
    let out = tokio::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "-q",
            "--no-table-headers",
            "pid",
            "client_properties",
        ])
        .output()
        .await
        .expect("rabbitmqctl");
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut closed = 0;
    for line in listing.lines() {
        if marks.iter().any(|m| line.contains(m.as_str())) {
            let pid = line.split('\t').next().unwrap_or_default();
            let _ = tokio::process::Command::new("rabbitmqctl")
                .args(["close_connection", pid, "test: broker restart"])
                .output()
                .await;
            closed += 1;
        }
    }
    assert!(closed >= 2, "closed {closed} connections: {listing}");
}

/// Deletes this test's Redis keys (its tick namespace and cache prefix), as a flush would.
fn flush_our_keys(sys: &TestSystem) {
    let client = redis::Client::open(support::redis_url()).expect("redis");
    let mut conn = client.get_connection().expect("redis connection");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", sys.prefix.0))
        .query(&mut conn)
        .expect("keys");
    assert!(!keys.is_empty(), "the test's keys exist");
    let _: () = redis::cmd("DEL").arg(keys).query(&mut conn).expect("del");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_campaigns_survive_kills_a_flush_and_a_broker_restart() {
    a_hundred_campaigns(false).await;
}

/// The same run with call-manager answering as it really does besides: bare 500s (and the
/// older versions' bare 404s) for reads, a bare 500 after it inserted the call, and creates a
/// stalled consumer took and acts on only seconds later, never answering them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_campaigns_survive_the_peers_realistic_errors_too() {
    a_hundred_campaigns(true).await;
}

/// call-manager's realistic errors, `scale` of each: reads answered with a bare 500 or 404,
/// creates answered 500 after they took effect, and creates that land 4 s or 10 s after they
/// were taken (past the RPC timeout; 10 s is past the repair's first look, so only a second
/// typed 404 a margin later could end such a dial). The stalled ones come first.
fn inject_realistic_errors(sys: &TestSystem, scale: u32) {
    for stall in [4_000, 10_000] {
        sys.sim.inject(
            Fault::late_effect(Service::Call, Duration::from_millis(stall), scale)
                .on_method("POST"),
        );
    }
    sys.sim
        .inject(Fault::status_after_effect(Service::Call, 500, 3 * scale).on_method("POST"));
    sys.sim
        .inject(Fault::status(Service::Call, 500, 6 * scale).on_method("GET"));
    sys.sim
        .inject(Fault::status(Service::Call, 404, 2 * scale).on_method("GET"));
}

/// The faults not used up yet, as `(method, count)`.
fn unused_faults(sys: &TestSystem) -> Vec<(String, u32)> {
    sys.sim.with_state(|s| {
        s.faults
            .pending()
            .iter()
            .map(|f| (f.method.clone().unwrap_or_default(), f.count))
            .collect()
    })
}

async fn a_hundred_campaigns(realistic: bool) {
    let _heavy = HEAVY.acquire().await.expect("semaphore");
    let sys = TestSystem::start(calls(MsRange::new(200, 1_200), 0.3), |s| {
        fast_repair(s);
        s.workers = 16;
    })
    .await;
    let mut workers = vec![spawn_worker(&sys), spawn_worker(&sys)];
    if realistic {
        // Campaigns dial most of their targets within seconds: the faults go in before.
        inject_realistic_errors(&sys, 3);
    }
    // The fault window: from the first campaign's start (the realistic errors are in place by
    // then, and the kills begin as soon as all are started) to the last fault.
    let from = db_now(&sys).await;
    let mut ids = Vec::new();
    for _ in 0..100 {
        let customer = Uuid::new_v4();
        let outdial = sys.sim.create_outdial(customer, 4, 2);
        ids.push(run_campaign(&sys, customer, outdial, 2).await);
    }
    let mut kills = 0;
    let mut faults_done = (false, false);
    let started = Instant::now();
    while kills < 10 {
        tokio::time::sleep(Duration::from_millis(rand::random_range(300..1_200))).await;
        let which = rand::random_range(0..workers.len());
        kill(&mut workers[which]).await;
        workers[which] = spawn_worker(&sys);
        kills += 1;
        if kills == 4 && !faults_done.0 {
            flush_our_keys(&sys);
            faults_done.0 = true;
        }
        if kills == 7 && !faults_done.1 {
            let pids: Vec<u32> = workers.iter().filter_map(|w| w.id()).collect();
            close_our_connections(&sys, &pids).await;
            faults_done.1 = true;
        }
    }
    let to = db_now(&sys).await;
    eprintln!(
        "10 kills, a flush and a broker restart in {:?}; {} calls so far",
        started.elapsed(),
        sys.sim.calls().len()
    );
    wait_all_stopped(&sys, &ids, Duration::from_secs(180)).await;
    for w in &mut workers {
        kill(w).await;
    }
    eprintln!(
        "all ended after {:?}; {} calls; faults left unused: {:?}; repair here: {:?}",
        started.elapsed(),
        sys.sim.calls().len(),
        unused_faults(&sys),
        [
            "never_created",
            "not_found_once",
            "not_found_after_answer",
            "peer_error",
            "hangup_lost",
            "over_max_duration"
        ]
        .map(|f| (
            f,
            metric(&sys, "campaign_manager_campaigncall_repair_total", f)
        ))
    );
    let run = if realistic {
        "a hundred campaigns, realistic errors"
    } else {
        "a hundred campaigns"
    };
    print_dial_gaps(&sys, run, &ids, (from, to)).await;
    if realistic {
        assert!(
            unused_faults(&sys)
                .iter()
                .all(|(method, _)| method != "POST"),
            "every faulted create took effect: {:?}",
            unused_faults(&sys)
        );
    }
    assert_dial_invariants(&sys).await;
    sys.stop().await;
}
