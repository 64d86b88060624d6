//! What the repair does with each thing a peer can say about an overdue campaigncall, as
//! tables: a test per answer family (call-manager's typed 404, a call it knows, flow-manager's
//! answers, a peer that cannot say, no peer asked), a row per case named by what breaks. Each
//! row records one campaigncall (its dial step, its age, confirmed or not) on its own database,
//! runs the scripted passes and one more straight away, and is compared as a whole with what
//! it must come out as: each pass's report and dial row, the campaigncall's status and result,
//! what outdial-manager was told, the repair's counters, how often the peer was asked, the
//! `campaigncall_updated` event, and whether the same try can be recorded again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use support::table::{check_table, table_row};

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

/// One campaigncall the repair looks at.
struct Case {
    case: &'static str,
    answer: Answer,
    /// The dial row's step before the repair (`None`: no dial row, as the Go service left it).
    step: Option<DialStep>,
    /// Answered and confirmed (`progressing`) before it was aged.
    confirmed: bool,
    /// How long ago it was dialed, in seconds.
    age: i64,
    /// The passes before the one more straight away every row ends with.
    passes: &'static [Before],
    want: Outcome,
}

/// A pass as seen right after it.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    checked: usize,
    finished: usize,
    /// The dial row's step (`None`: no row, the try is free).
    step: Option<DialStep>,
    /// The dial row's checks and whether a next check is set (`None`: no row).
    checks: Option<(i32, bool)>,
    /// Whether a first typed 404 is noted.
    noted_404: bool,
}

fn seen(
    (checked, finished): (usize, usize),
    step: Option<DialStep>,
    checks: Option<(i32, bool)>,
    noted_404: bool,
) -> Seen {
    Seen {
        checked,
        finished,
        step,
        checks,
        noted_404,
    }
}

/// What a row comes out as.
#[derive(Clone, Debug, PartialEq)]
struct Outcome {
    /// Each scripted pass, then the one more straight away.
    passes: Vec<Seen>,
    /// The campaigncall's status and result at the end.
    call: (CampaigncallStatus, CampaigncallResult),
    /// What outdial-manager was told about the target, in order.
    target: Vec<TargetStatus>,
    /// The repair's non-zero `campaigncall_repair_total` counts.
    found: Vec<(&'static str, u64)>,
    /// How often the peer was asked.
    asked: usize,
    /// Whether a `campaigncall_updated` event was published.
    updated: bool,
    /// What recording the same (target, destination, try) again gives at the end.
    same_try: &'static str,
}

const OPEN: (CampaigncallStatus, CampaigncallResult) =
    (CampaigncallStatus::Dialing, CampaigncallResult::None);
const FAILED: (CampaigncallStatus, CampaigncallResult) =
    (CampaigncallStatus::Done, CampaigncallResult::Fail);
const SUCCEEDED: (CampaigncallStatus, CampaigncallResult) =
    (CampaigncallStatus::Done, CampaigncallResult::Success);

/// The values of `campaigncall_repair_total`'s label.
const FOUND: [&str; 9] = [
    "never_created",
    "not_found_once",
    "not_found_after_answer",
    "hangup_lost",
    "flow_ended",
    "still_up",
    "over_max_duration",
    "peer_error",
    "no_reference",
];

const RECORDED: Option<DialStep> = Some(DialStep::Recorded);
const REQUESTED: Option<DialStep> = Some(DialStep::Requested);
const UNKNOWN: Option<DialStep> = Some(DialStep::Unknown);
/// One check done, the next one set.
const POSTPONED: Option<(i32, bool)> = Some((1, true));

/// Runs one row on a database of its own.
async fn run(case: Case) -> Outcome {
    let s = setup();
    let p = planned();
    let asked = Arc::new(AtomicUsize::new(0));
    let told = Arc::new(Mutex::new(Vec::new()));
    let mut m = Mocks::new();
    let counter = asked.clone();
    match case.answer.clone() {
        Answer::NotAsked => {}
        Answer::Call(reply) => {
            m.call
                .expect_get_call()
                .withf(move |id| *id == p.reference)
                .returning(move |_| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    reply.clone()
                });
        }
        Answer::Flow(reply) => {
            m.flow
                .expect_get_activeflow()
                .withf(move |id| *id == p.activeflow)
                .returning(move |_| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    reply.clone()
                });
        }
    }
    let targets = told.clone();
    m.outdial
        .expect_set_target_status()
        .withf(move |id, _| *id == p.target)
        .returning(move |_, status| {
            targets.lock().expect("targets").push(status);
            Ok(())
        });
    let env = env_with(&s, m).await;
    let kind = match case.answer {
        Answer::Flow(_) => ReferenceType::Flow,
        _ => ReferenceType::Call,
    };
    let cc = match case.step {
        Some(step) => {
            let cc = env.dial_planned(&s.campaign, &p, kind, 0).await;
            assert_eq!(env.step(cc.id).await, RECORDED, "recorded as a tick does");
            if step != DialStep::Recorded {
                env.ts
                    .store
                    .dials
                    .set_step(cc.id, step)
                    .await
                    .expect("step");
            }
            cc
        }
        None => {
            // Left by the Go service: a campaigncall without a dial row.
            let mut legacy =
                support::records::campaigncall_of(&s.campaign, CampaigncallStatus::Dialing);
            legacy.id = p.id;
            legacy.outdial_target_id = p.target;
            legacy.reference_id = p.reference;
            legacy.outplan_id = s.outplan.id;
            env.ts
                .store
                .campaigncalls
                .create(&legacy)
                .await
                .expect("campaigncall")
        }
    };
    if case.confirmed {
        env.ts
            .store
            .campaigncalls
            .set_progressing(cc.id)
            .await
            .expect("progressing");
    }
    env.age(cc.id, case.age).await;
    assert_eq!(env.step(cc.id).await, case.step, "the dial step before");

    let mut passes = Vec::new();
    for before in case.passes.iter().chain([&Before::Now]) {
        match before {
            Before::Now => {}
            Before::Due => env.wait_for_next_check(cc.id, false).await,
            Before::PastMargin => env.wait_for_next_check(cc.id, true).await,
        }
        let r = env.pass().await;
        assert!(r.ran && r.campaigns == 0 && r.outbox == 0, "pass: {r:?}");
        passes.push(Seen {
            checked: r.checked,
            finished: r.finished,
            step: env.step(cc.id).await,
            checks: env.dial_checks(cc.id).await,
            noted_404: env.not_found_noted(cc.id).await,
        });
    }
    let done = env.call(cc.id).await;
    let found = FOUND
        .iter()
        .map(|f| (*f, env.found(f)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let updated = env.events().contains(&"campaigncall_updated".to_string());
    let same_try = match record(&env, &same_try(&cc), fence()).await {
        Recorded::Dial(_) => "dialed",
        Recorded::TryTaken => "taken",
        _ => "refused otherwise",
    };
    let target = told.lock().expect("targets").clone();
    Outcome {
        passes,
        call: (done.status, done.result),
        target,
        found,
        asked: asked.load(Ordering::SeqCst),
        updated,
        same_try,
    }
}

/// Runs every row of a family as a table.
async fn check(cases: Vec<Case>) {
    check_table(
        cases
            .into_iter()
            .map(|c| table_row(c.case, c.want.clone(), run(c)))
            .collect(),
    )
    .await;
}

/// call-manager's typed 404: never created only when the create was never answered, and then
/// only on the second 404 more than the margin after the first; after an answered create a
/// 404 is never trusted, and the call is given up only past the longest call, its try kept.
#[tokio::test]
async fn call_not_found_rows() {
    check(vec![
        Case {
            case: "call_never_created_fails_and_frees_the_try",
            answer: Answer::Call(Ok(None)),
            step: RECORDED,
            confirmed: false,
            age: OVERDUE_SECS,
            passes: &[Before::Now, Before::PastMargin],
            want: Outcome {
                passes: vec![
                    seen((1, 0), RECORDED, POSTPONED, true),
                    seen((1, 1), None, None, false),
                    seen((0, 0), None, None, false),
                ],
                call: FAILED,
                target: vec![TargetStatus::Idle],
                found: vec![("never_created", 1), ("not_found_once", 1)],
                asked: 2,
                updated: true,
                same_try: "dialed",
            },
        },
        Case {
            case: "unknown_dial_needs_two_not_founds_more_than_the_margin_apart",
            answer: Answer::Call(Ok(None)),
            step: UNKNOWN,
            confirmed: false,
            age: OVERDUE_SECS,
            // One 404; not looked at before the margin; a second 404 within the margin; a
            // second 404 past the margin.
            passes: &[Before::Now, Before::Now, Before::Due, Before::PastMargin],
            want: Outcome {
                passes: vec![
                    seen((1, 0), UNKNOWN, POSTPONED, true),
                    seen((0, 0), UNKNOWN, POSTPONED, true),
                    seen((1, 0), UNKNOWN, Some((2, true)), true),
                    seen((1, 1), None, None, false),
                    seen((0, 0), None, None, false),
                ],
                call: FAILED,
                target: vec![TargetStatus::Idle],
                found: vec![("never_created", 1), ("not_found_once", 2)],
                asked: 3,
                updated: true,
                same_try: "dialed",
            },
        },
        Case {
            // Older call-manager versions answer 404 for any read error: looked at later, like
            // a call still up, however often and however far apart; the target is told nothing.
            case: "answered_call_is_never_judged_never_created_by_a_404",
            answer: Answer::Call(Ok(None)),
            step: REQUESTED,
            confirmed: false,
            age: OVERDUE_SECS,
            passes: &[Before::Now, Before::PastMargin],
            want: Outcome {
                passes: vec![
                    seen((1, 0), REQUESTED, POSTPONED, false),
                    seen((1, 0), REQUESTED, Some((2, true)), false),
                    seen((0, 0), REQUESTED, Some((2, true)), false),
                ],
                call: OPEN,
                target: vec![],
                found: vec![("not_found_after_answer", 2)],
                asked: 2,
                updated: false,
                same_try: "taken",
            },
        },
        Case {
            case: "answered_call_not_found_past_the_longest_call_is_given_up_keeping_its_try",
            answer: Answer::Call(Ok(None)),
            step: REQUESTED,
            confirmed: false,
            age: OVER_MAX_SECS,
            passes: &[Before::Now],
            want: Outcome {
                passes: vec![
                    seen((1, 1), REQUESTED, Some((0, false)), false),
                    seen((0, 0), REQUESTED, Some((0, false)), false),
                ],
                call: FAILED,
                target: vec![TargetStatus::Idle],
                found: vec![("not_found_after_answer", 1), ("over_max_duration", 1)],
                asked: 1,
                updated: true,
                same_try: "taken",
            },
        },
    ])
    .await;
}

/// call-manager knows the call: hung up (its event lost) finishes it with its hangup reason's
/// result and keeps the try, as a placed call; still up it is looked at later (also a
/// campaigncall the Go service left without a dial row); up longer than the longest call it is
/// given up.
#[tokio::test]
async fn call_found_rows() {
    check(vec![
        Case {
            case: "call_hung_up_with_lost_event_finishes_with_its_reason",
            answer: Answer::Call(Ok(Some(call_in("hangup", "normal")))),
            step: REQUESTED,
            confirmed: false,
            age: OVERDUE_SECS,
            passes: &[Before::Now],
            want: Outcome {
                passes: vec![
                    seen((1, 1), REQUESTED, Some((0, false)), false),
                    seen((0, 0), REQUESTED, Some((0, false)), false),
                ],
                call: SUCCEEDED,
                target: vec![TargetStatus::Done],
                found: vec![("hangup_lost", 1)],
                asked: 1,
                updated: true,
                same_try: "taken",
            },
        },
        Case {
            // The tick claimed the target and sent the call, then died before noting the
            // request: the peer knew the call, so it was placed and its try is not free again.
            case: "call_found_at_the_peer_keeps_its_try_taken",
            answer: Answer::Call(Ok(Some(call_in("hangup", "busy")))),
            step: Some(DialStep::TargetClaimed),
            confirmed: false,
            age: OVERDUE_SECS,
            passes: &[Before::Now],
            want: Outcome {
                passes: vec![
                    seen((1, 1), REQUESTED, Some((0, false)), false),
                    seen((0, 0), REQUESTED, Some((0, false)), false),
                ],
                call: FAILED,
                target: vec![TargetStatus::Idle],
                found: vec![("hangup_lost", 1)],
                asked: 1,
                updated: true,
                same_try: "taken",
            },
        },
        Case {
            case: "call_still_up_is_looked_at_later",
            answer: Answer::Call(Ok(Some(call_in("progressing", "")))),
            step: UNKNOWN,
            confirmed: false,
            age: OVERDUE_SECS,
            passes: &[Before::Now],
            want: Outcome {
                passes: vec![
                    seen((1, 0), REQUESTED, POSTPONED, false),
                    seen((0, 0), REQUESTED, POSTPONED, false),
                ],
                call: OPEN,
                target: vec![],
                found: vec![("still_up", 1)],
                asked: 1,
                updated: false,
                same_try: "taken",
            },
        },
        Case {
            // Asked once only, although the Go service recorded no dial row for it.
            case: "legacy_call_still_up_is_looked_at_later",
            answer: Answer::Call(Ok(Some(call_in("ringing", "")))),
            step: None,
            confirmed: false,
            age: OVERDUE_SECS,
            passes: &[Before::Now],
            want: Outcome {
                passes: vec![
                    seen((1, 0), REQUESTED, POSTPONED, false),
                    seen((0, 0), REQUESTED, POSTPONED, false),
                ],
                call: OPEN,
                target: vec![],
                found: vec![("still_up", 1)],
                asked: 1,
                updated: false,
                same_try: "taken",
            },
        },
        Case {
            // Answered and confirmed long ago, never heard of since.
            case: "call_up_longer_than_the_longest_call_is_given_up",
            answer: Answer::Call(Ok(Some(call_in("progressing", "")))),
            step: REQUESTED,
            confirmed: true,
            age: OVER_MAX_SECS,
            passes: &[Before::Now],
            want: Outcome {
                passes: vec![
                    seen((1, 1), REQUESTED, Some((0, false)), false),
                    seen((0, 0), REQUESTED, Some((0, false)), false),
                ],
                call: FAILED,
                target: vec![TargetStatus::Idle],
                found: vec![("over_max_duration", 1)],
                asked: 1,
                updated: true,
                same_try: "taken",
            },
        },
    ])
    .await;
}

/// flow-manager's answers for a flow campaigncall: never created as for a call; ended or
/// deleted is a success; running stays open and is looked at later.
#[tokio::test]
async fn flow_rows() {
    check(vec![
        Case {
            case: "flow_never_created_fails_and_frees_the_try",
            answer: Answer::Flow(Ok(None)),
            step: RECORDED,
            confirmed: false,
            age: OVERDUE_SECS,
            passes: &[Before::Now, Before::PastMargin],
            want: Outcome {
                passes: vec![
                    seen((1, 0), RECORDED, POSTPONED, true),
                    seen((1, 1), None, None, false),
                    seen((0, 0), None, None, false),
                ],
                call: FAILED,
                target: vec![TargetStatus::Idle],
                found: vec![("never_created", 1), ("not_found_once", 1)],
                asked: 2,
                updated: true,
                same_try: "dialed",
            },
        },
        Case {
            case: "flow_ended_with_lost_event_succeeds",
            answer: Answer::Flow(Ok(Some(activeflow_in("ended")))),
            step: RECORDED,
            confirmed: false,
            age: OVERDUE_SECS,
            passes: &[Before::Now],
            want: Outcome {
                passes: vec![
                    seen((1, 1), REQUESTED, Some((0, false)), false),
                    seen((0, 0), REQUESTED, Some((0, false)), false),
                ],
                call: SUCCEEDED,
                target: vec![TargetStatus::Done],
                found: vec![("flow_ended", 1)],
                asked: 1,
                updated: true,
                same_try: "taken",
            },
        },
        Case {
            case: "flow_deleted_counts_as_ended",
            answer: Answer::Flow(Ok(Some(Activeflow {
                tm_delete: Some(Utc::now()),
                ..activeflow_in("running")
            }))),
            step: RECORDED,
            confirmed: false,
            age: OVERDUE_SECS,
            passes: &[Before::Now],
            want: Outcome {
                passes: vec![
                    seen((1, 1), REQUESTED, Some((0, false)), false),
                    seen((0, 0), REQUESTED, Some((0, false)), false),
                ],
                call: SUCCEEDED,
                target: vec![TargetStatus::Done],
                found: vec![("flow_ended", 1)],
                asked: 1,
                updated: true,
                same_try: "taken",
            },
        },
        Case {
            case: "flow_running_stays_open",
            answer: Answer::Flow(Ok(Some(activeflow_in("running")))),
            step: RECORDED,
            confirmed: false,
            age: OVERDUE_SECS,
            passes: &[Before::Now],
            want: Outcome {
                passes: vec![
                    seen((1, 0), REQUESTED, POSTPONED, false),
                    seen((0, 0), REQUESTED, POSTPONED, false),
                ],
                call: OPEN,
                target: vec![],
                found: vec![("still_up", 1)],
                asked: 1,
                updated: false,
                same_try: "taken",
            },
        },
    ])
    .await;
}

/// A peer that cannot say (a timeout, call-manager's bare 500, a bare 404) postpones the
/// campaigncall with the backoff of one still up, no 404 noted; past the longest call it is
/// given up, its try kept when the target was claimed (perhaps placed) and freed when it was
/// never claimed (outdial-manager counted no try and offers the same try again, which a kept
/// row would refuse forever, so the campaign would never end).
#[tokio::test]
async fn peer_error_rows() {
    let postponed = |case: &'static str, err: PeerError| Case {
        case,
        answer: Answer::Call(Err(err)),
        step: RECORDED,
        confirmed: false,
        age: OVERDUE_SECS,
        passes: &[Before::Now, Before::PastMargin],
        want: Outcome {
            passes: vec![
                seen((1, 0), RECORDED, POSTPONED, false),
                seen((1, 0), RECORDED, Some((2, true)), false),
                seen((0, 0), RECORDED, Some((2, true)), false),
            ],
            call: OPEN,
            target: vec![],
            found: vec![("peer_error", 2)],
            asked: 2,
            updated: false,
            same_try: "taken",
        },
    };
    check(vec![
        postponed(
            "peer_error_postpones_it_with_the_backoff: timeout",
            timeout(),
        ),
        postponed(
            "peer_error_postpones_it_with_the_backoff: bare 500",
            bare(500),
        ),
        postponed(
            "peer_error_postpones_it_with_the_backoff: bare 404",
            bare(404),
        ),
        Case {
            // flow-manager's bare 400 for a failed read, after the activeflow was asked for
            // without an answer.
            case: "flow_peer_error_past_the_longest_call_is_given_up",
            answer: Answer::Flow(Err(bare(400))),
            step: UNKNOWN,
            confirmed: false,
            age: OVER_MAX_SECS,
            passes: &[Before::Now],
            want: Outcome {
                passes: vec![
                    seen((1, 1), REQUESTED, Some((0, false)), false),
                    seen((0, 0), REQUESTED, Some((0, false)), false),
                ],
                call: FAILED,
                target: vec![TargetStatus::Idle],
                found: vec![("over_max_duration", 1), ("peer_error", 1)],
                asked: 1,
                updated: true,
                same_try: "taken",
            },
        },
        Case {
            case: "unclaimed_dial_given_up_frees_its_try",
            answer: Answer::Call(Err(bare(500))),
            step: RECORDED,
            confirmed: false,
            age: OVER_MAX_SECS,
            passes: &[Before::Now],
            want: Outcome {
                passes: vec![
                    seen((1, 1), None, None, false),
                    seen((0, 0), None, None, false),
                ],
                call: FAILED,
                target: vec![TargetStatus::Idle],
                found: vec![("over_max_duration", 1), ("peer_error", 1)],
                asked: 1,
                updated: true,
                same_try: "dialed",
            },
        },
    ])
    .await;
}

/// No peer is asked about a campaigncall not yet overdue (past the margin but not past the
/// dial timeout + the margin), nor about a confirmed call younger than the longest call.
#[tokio::test]
async fn not_asked_rows() {
    check(vec![
        Case {
            case: "recent_campaigncall_is_not_asked",
            answer: Answer::NotAsked,
            step: RECORDED,
            confirmed: false,
            age: (MARGIN_MS / 1000) + 5,
            passes: &[Before::Now],
            want: Outcome {
                passes: vec![
                    seen((0, 0), RECORDED, Some((0, false)), false),
                    seen((0, 0), RECORDED, Some((0, false)), false),
                ],
                call: OPEN,
                target: vec![],
                found: vec![],
                asked: 0,
                updated: false,
                same_try: "taken",
            },
        },
        Case {
            case: "confirmed_call_younger_than_the_longest_call_is_not_asked",
            answer: Answer::NotAsked,
            step: REQUESTED,
            confirmed: true,
            age: OVERDUE_SECS,
            passes: &[Before::Now],
            want: Outcome {
                passes: vec![
                    seen((0, 0), REQUESTED, Some((0, false)), false),
                    seen((0, 0), REQUESTED, Some((0, false)), false),
                ],
                call: (CampaigncallStatus::Progressing, CampaigncallResult::None),
                target: vec![],
                found: vec![],
                asked: 0,
                updated: false,
                same_try: "taken",
            },
        },
    ])
    .await;
}
