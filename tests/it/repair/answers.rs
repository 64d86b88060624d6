//! What the repair does with each thing a peer can say about an overdue campaigncall, as
//! tables: a test per answer family (call-manager's typed 404, a call it knows, flow-manager's
//! answers, a peer that cannot say, no peer asked), a row per case named by what breaks. Each
//! row records one campaigncall on its own database (its dial step, its age), runs the scripted
//! passes and one more straight away, and must come out as its line says, in this form:
//!
//! `<each pass> | <status> <result> | target <told> | <counters> | asked <n> | <event> | try <t>`
//!
//! - each pass: `<checked>/<finished> <dial step or "free"> c<checks>[+: next check set] [404:
//!   a first typed 404 noted]`, comma-separated;
//! - the campaigncall's status and result at the end; what outdial-manager was told about the
//!   target (`-`: nothing); the non-zero `campaigncall_repair_total` counts;
//! - how often the peer was asked; whether `campaigncall_updated` was published (`event` or
//!   `no event`); what recording the same (target, destination, try) again gives (`taken` or
//!   `dialed`: the try was freed).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::table::{TableRow, check_table, table_row};

use super::*;

/// What the peer says about the campaigncall, each time it is asked.
#[derive(Clone)]
enum Answer {
    /// Nothing asked: any question to a peer fails the row.
    NotAsked,
    /// call-manager's answer for the call.
    Call(Result<Option<Call>, PeerError>),
    /// flow-manager's answer for the activeflow.
    Flow(Result<Option<Activeflow>, PeerError>),
}

/// The campaigncall as the repair finds it.
#[derive(Clone, Copy, PartialEq)]
enum Dial {
    /// Recorded by a tick, nothing more.
    Recorded,
    /// Its target claimed, the call request perhaps sent.
    Claimed,
    /// The peer answered the create.
    Requested,
    /// The create's outcome is unknown (a timeout or a 5xx).
    Unknown,
    /// The create answered and the call confirmed (`progressing`).
    Confirmed,
    /// Left by the Go service: no dial row.
    Legacy,
}

/// When a scripted pass runs.
#[derive(Clone, Copy)]
enum Before {
    /// Straight after the one before.
    Now,
    /// Once the campaigncall's next check is due.
    Due,
    /// Once its next check is due and its first typed 404 (if noted) is older than the margin.
    PastMargin,
}

use Before::{Due, Now, PastMargin};

/// A row: the campaigncall (`dial`, dialed `age` seconds ago), the peer's `answer`, the
/// `passes` (then one more straight away), and the line it must come out as.
fn case(
    name: &'static str,
    answer: Answer,
    dial: Dial,
    age: i64,
    passes: &'static [Before],
    want: &str,
) -> TableRow<String> {
    table_row(name, want.to_string(), run(answer, dial, age, passes))
}

fn call(reply: Result<Option<Call>, PeerError>) -> Answer {
    Answer::Call(reply)
}

fn flow(reply: Result<Option<Activeflow>, PeerError>) -> Answer {
    Answer::Flow(reply)
}

/// A dial step as a row writes it.
fn step_name(step: Option<DialStep>) -> &'static str {
    match step {
        None => "free",
        Some(DialStep::Recorded) => "recorded",
        Some(DialStep::TargetClaimed) => "target_claimed",
        Some(DialStep::Requested) => "requested",
        Some(DialStep::Unknown) => "unknown",
    }
}

/// A value's name, lowercase (`Done` → `done`).
fn lower(v: impl std::fmt::Debug) -> String {
    format!("{v:?}").to_lowercase()
}

/// The non-zero `campaigncall_repair_total` counts, as `label=n`, sorted.
fn found_counts(env: &Env) -> Vec<String> {
    use prometheus::core::Collector;
    let mut found = Vec::new();
    for family in env.metrics.campaigncall_repair_total.collect() {
        for m in family.get_metric() {
            let n = m.get_counter().get_value();
            let label = m.get_label().first().map(|l| l.value()).unwrap_or("");
            if n > 0.0 {
                found.push(format!("{label}={n}"));
            }
        }
    }
    found.sort();
    found
}

/// A peer's reply to every question, each question counted.
fn counted<T: Clone + Send + 'static>(
    asked: &Arc<AtomicUsize>,
    reply: T,
) -> impl Fn(Uuid) -> T + Send + 'static {
    let asked = asked.clone();
    move |_| {
        asked.fetch_add(1, Ordering::SeqCst);
        reply.clone()
    }
}

/// Records the row's campaigncall as `dial` says, for the planned ids.
async fn record_as(
    env: &Env,
    s: &Setup,
    p: &Planned,
    dial: Dial,
    kind: ReferenceType,
) -> Campaigncall {
    if dial == Dial::Legacy {
        let mut legacy =
            support::records::campaigncall_of(&s.campaign, CampaigncallStatus::Dialing);
        legacy.id = p.id;
        legacy.outdial_target_id = p.target;
        legacy.reference_id = p.reference;
        legacy.outplan_id = s.outplan.id;
        let cc = env
            .ts
            .store
            .campaigncalls
            .create(&legacy)
            .await
            .expect("campaigncall");
        assert_eq!(env.step(cc.id).await, None, "no dial row");
        return cc;
    }
    let cc = env.dial_planned(&s.campaign, p, kind, 0).await;
    assert_eq!(
        env.step(cc.id).await,
        Some(DialStep::Recorded),
        "recorded as a tick does"
    );
    let step = match dial {
        Dial::Claimed => Some(DialStep::TargetClaimed),
        Dial::Requested | Dial::Confirmed => Some(DialStep::Requested),
        Dial::Unknown => Some(DialStep::Unknown),
        Dial::Recorded | Dial::Legacy => None,
    };
    if let Some(step) = step {
        env.set_step(cc.id, step).await;
    }
    if dial == Dial::Confirmed {
        env.ts
            .store
            .campaigncalls
            .set_progressing(cc.id)
            .await
            .expect("progressing");
    }
    cc
}

/// One pass as a row writes it.
async fn pass_line(env: &Env, id: Uuid, r: &RepairReport) -> String {
    assert!(r.ran && r.campaigns == 0 && r.outbox == 0, "pass: {r:?}");
    let checks = match env.dial_checks(id).await {
        Some((n, next)) => format!(" c{n}{}", if next { "+" } else { "" }),
        None => String::new(),
    };
    let noted = if env.not_found_noted(id).await {
        " 404"
    } else {
        ""
    };
    let step = step_name(env.step(id).await);
    format!("{}/{} {step}{checks}{noted}", r.checked, r.finished)
}

/// Runs one row on a database of its own; returns its line.
async fn run(answer: Answer, dial: Dial, age: i64, passes: &'static [Before]) -> String {
    let s = setup();
    let p = planned();
    let asked = Arc::new(AtomicUsize::new(0));
    let told = Arc::new(Mutex::new(Vec::new()));
    let mut m = Mocks::new();
    let kind = match answer {
        Answer::Flow(_) => ReferenceType::Flow,
        _ => ReferenceType::Call,
    };
    match answer {
        Answer::NotAsked => {}
        Answer::Call(reply) => {
            m.call
                .expect_get_call()
                .withf(move |id| *id == p.reference)
                .returning(counted(&asked, reply));
        }
        Answer::Flow(reply) => {
            m.flow
                .expect_get_activeflow()
                .withf(move |id| *id == p.activeflow)
                .returning(counted(&asked, reply));
        }
    }
    let targets = told.clone();
    m.outdial
        .expect_set_target_status()
        .withf(move |id, _| *id == p.target)
        .returning(move |_, status| {
            targets.lock().expect("targets").push(lower(status));
            Ok(())
        });
    let env = env_with(&s, m).await;
    let cc = record_as(&env, &s, &p, dial, kind).await;
    env.age(cc.id, age).await;

    let mut seen = Vec::new();
    for before in passes.iter().chain([&Now]) {
        match before {
            Now => {}
            Due => env.wait_for_next_check(cc.id, false).await,
            PastMargin => env.wait_for_next_check(cc.id, true).await,
        }
        let r = env.pass().await;
        seen.push(pass_line(&env, cc.id, &r).await);
    }
    let done = env.call(cc.id).await;
    let found = found_counts(&env);
    let event = if env.events().contains(&"campaigncall_updated".to_string()) {
        "event"
    } else {
        "no event"
    };
    let same_try = match record(&env, &same_try(&cc), fence()).await {
        Recorded::Dial(_) => "dialed".to_string(),
        Recorded::TryTaken => "taken".to_string(),
        other => format!("{other:?}"),
    };
    let told = told.lock().expect("targets").join(",");
    format!(
        "{} | {} {} | target {} | {} | asked {} | {event} | try {same_try}",
        seen.join(", "),
        lower(done.status),
        lower(done.result),
        if told.is_empty() { "-" } else { &told },
        if found.is_empty() {
            "-".to_string()
        } else {
            found.join(" ")
        },
        asked.load(Ordering::SeqCst),
    )
}

/// call-manager's typed 404: never created only when the create was never answered, and then
/// only on the second 404 more than the margin after the first (one within the margin is not
/// enough: a request a stalled consumer took may still land). After an answered create a 404
/// is never trusted (older call-manager versions answer 404 for any read error): the call is
/// looked at later like one still up, and given up only past the longest call, its try kept.
#[rustfmt::skip]
#[tokio::test]
async fn call_not_found_rows() {
    use Dial::*;
    check_table(vec![
        case("call_never_created_fails_and_frees_the_try", call(Ok(None)), Recorded, OVERDUE_SECS, &[Now, PastMargin],
             "1/0 recorded c1+ 404, 1/1 free, 0/0 free | done fail | target idle | never_created=1 not_found_once=1 | asked 2 | event | try dialed"),
        case("unknown_dial_needs_two_not_founds_more_than_the_margin_apart", call(Ok(None)), Unknown, OVERDUE_SECS, &[Now, Now, Due, PastMargin],
             "1/0 unknown c1+ 404, 0/0 unknown c1+ 404, 1/0 unknown c2+ 404, 1/1 free, 0/0 free | done fail | target idle | never_created=1 not_found_once=2 | asked 3 | event | try dialed"),
        case("answered_call_is_never_judged_never_created_by_a_404", call(Ok(None)), Requested, OVERDUE_SECS, &[Now, PastMargin],
             "1/0 requested c1+, 1/0 requested c2+, 0/0 requested c2+ | dialing none | target - | not_found_after_answer=2 | asked 2 | no event | try taken"),
        case("answered_call_not_found_past_the_longest_call_is_given_up_keeping_its_try", call(Ok(None)), Requested, OVER_MAX_SECS, &[Now],
             "1/1 requested c0, 0/0 requested c0 | done fail | target idle | not_found_after_answer=1 over_max_duration=1 | asked 1 | event | try taken"),
    ]).await;
}

/// call-manager knows the call: hung up (its event lost) finishes it with its hangup reason's
/// result and keeps the try, as a placed call (also when the tick died after sending the
/// request, before noting it); still up it is looked at later (also a campaigncall the Go
/// service left without a dial row, asked once only); up longer than the longest call (answered
/// and confirmed long ago, never heard of since) it is given up.
#[rustfmt::skip]
#[tokio::test]
async fn call_found_rows() {
    use Dial::*;
    check_table(vec![
        case("call_hung_up_with_lost_event_finishes_with_its_reason", call(Ok(Some(call_in("hangup", "normal")))), Requested, OVERDUE_SECS, &[Now],
             "1/1 requested c0, 0/0 requested c0 | done success | target done | hangup_lost=1 | asked 1 | event | try taken"),
        case("call_found_at_the_peer_keeps_its_try_taken", call(Ok(Some(call_in("hangup", "busy")))), Claimed, OVERDUE_SECS, &[Now],
             "1/1 requested c0, 0/0 requested c0 | done fail | target idle | hangup_lost=1 | asked 1 | event | try taken"),
        case("call_still_up_is_looked_at_later", call(Ok(Some(call_in("progressing", "")))), Unknown, OVERDUE_SECS, &[Now],
             "1/0 requested c1+, 0/0 requested c1+ | dialing none | target - | still_up=1 | asked 1 | no event | try taken"),
        case("legacy_call_still_up_is_looked_at_later", call(Ok(Some(call_in("ringing", "")))), Legacy, OVERDUE_SECS, &[Now],
             "1/0 requested c1+, 0/0 requested c1+ | dialing none | target - | still_up=1 | asked 1 | no event | try taken"),
        case("call_up_longer_than_the_longest_call_is_given_up", call(Ok(Some(call_in("progressing", "")))), Confirmed, OVER_MAX_SECS, &[Now],
             "1/1 requested c0, 0/0 requested c0 | done fail | target idle | over_max_duration=1 | asked 1 | event | try taken"),
    ]).await;
}

/// flow-manager's answers for a flow campaigncall: never created as for a call; ended or
/// deleted is a success; running stays open and is looked at later.
#[rustfmt::skip]
#[tokio::test]
async fn flow_rows() {
    use Dial::*;
    let deleted = Activeflow { tm_delete: Some(Utc::now()), ..activeflow_in("running") };
    check_table(vec![
        case("flow_never_created_fails_and_frees_the_try", flow(Ok(None)), Recorded, OVERDUE_SECS, &[Now, PastMargin],
             "1/0 recorded c1+ 404, 1/1 free, 0/0 free | done fail | target idle | never_created=1 not_found_once=1 | asked 2 | event | try dialed"),
        case("flow_ended_with_lost_event_succeeds", flow(Ok(Some(activeflow_in("ended")))), Recorded, OVERDUE_SECS, &[Now],
             "1/1 requested c0, 0/0 requested c0 | done success | target done | flow_ended=1 | asked 1 | event | try taken"),
        case("flow_deleted_counts_as_ended", flow(Ok(Some(deleted))), Recorded, OVERDUE_SECS, &[Now],
             "1/1 requested c0, 0/0 requested c0 | done success | target done | flow_ended=1 | asked 1 | event | try taken"),
        case("flow_running_stays_open", flow(Ok(Some(activeflow_in("running")))), Recorded, OVERDUE_SECS, &[Now],
             "1/0 requested c1+, 0/0 requested c1+ | dialing none | target - | still_up=1 | asked 1 | no event | try taken"),
    ]).await;
}

/// A peer that cannot say (a timeout, call-manager's bare 500, a bare 404) postpones the
/// campaigncall with the backoff of one still up, no 404 noted; past the longest call it is
/// given up, its try kept when the target was claimed (perhaps placed: flow-manager's bare 400
/// for a failed read after the activeflow was asked for without an answer) and freed when it
/// was never claimed (outdial-manager counted no try and offers the same try again, which a
/// kept row would refuse forever, so the campaign would never end).
#[rustfmt::skip]
#[tokio::test]
async fn peer_error_rows() {
    use Dial::*;
    let postponed = "1/0 recorded c1+, 1/0 recorded c2+, 0/0 recorded c2+ | dialing none | target - | peer_error=2 | asked 2 | no event | try taken";
    check_table(vec![
        case("peer_error_postpones_it_with_the_backoff: timeout", call(Err(timeout())), Recorded, OVERDUE_SECS, &[Now, PastMargin], postponed),
        case("peer_error_postpones_it_with_the_backoff: bare 500", call(Err(bare(500))), Recorded, OVERDUE_SECS, &[Now, PastMargin], postponed),
        case("peer_error_postpones_it_with_the_backoff: bare 404", call(Err(bare(404))), Recorded, OVERDUE_SECS, &[Now, PastMargin], postponed),
        case("flow_peer_error_past_the_longest_call_is_given_up", flow(Err(bare(400))), Unknown, OVER_MAX_SECS, &[Now],
             "1/1 requested c0, 0/0 requested c0 | done fail | target idle | over_max_duration=1 peer_error=1 | asked 1 | event | try taken"),
        case("unclaimed_dial_given_up_frees_its_try", call(Err(bare(500))), Recorded, OVER_MAX_SECS, &[Now],
             "1/1 free, 0/0 free | done fail | target idle | over_max_duration=1 peer_error=1 | asked 1 | event | try dialed"),
    ]).await;
}

/// No peer is asked about a campaigncall not yet overdue (past the margin but not past the
/// dial timeout + the margin), nor about a confirmed call younger than the longest call.
#[rustfmt::skip]
#[tokio::test]
async fn not_asked_rows() {
    use Dial::*;
    check_table(vec![
        case("recent_campaigncall_is_not_asked", Answer::NotAsked, Recorded, MARGIN_MS / 1000 + 5, &[Now],
             "0/0 recorded c0, 0/0 recorded c0 | dialing none | target - | - | asked 0 | no event | try taken"),
        case("confirmed_call_younger_than_the_longest_call_is_not_asked", Answer::NotAsked, Confirmed, OVERDUE_SECS, &[Now],
             "0/0 requested c0, 0/0 requested c0 | progressing none | target - | - | asked 0 | no event | try taken"),
    ]).await;
}
