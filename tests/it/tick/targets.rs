//! Which target a tick dials, and when it waits instead: the queue's capacity (agents ×
//! service level against calls dialing), the retry interval of a target tried before, and the
//! destination with tries left.

use super::*;

/// A queue for the campaign, at `service_level` %.
fn with_queue(s: &mut Setup, service_level: i32) {
    s.campaign.queue_id = Uuid::new_v4();
    s.campaign.service_level = service_level;
}

/// queue-manager answers `reply` for the campaign's queue once, after a target is offered.
fn agents(m: &mut Mocks, s: &Setup, reply: Result<usize, PeerError>) {
    offer(m, s.campaign.outdial_id, target(), 1);
    let queue_id = s.campaign.queue_id;
    m.queue
        .expect_available_agents()
        .withf(move |q| *q == queue_id)
        .times(1)
        .returning(move |_| reply.clone());
}

/// A target tried `minutes` ago (created an hour ago), offered once.
fn tried_minutes_ago(m: &mut Mocks, s: &Setup, minutes: i64) {
    let mut t = target();
    let now = Utc::now().trunc_subsecs(6);
    t.tm_create = Some(now - ChronoDuration::hours(1));
    t.tm_update = Some(now - ChronoDuration::minutes(minutes));
    offer(m, s.campaign.outdial_id, t, 1);
}

/// One call dial expected, answered.
fn dials(m: &mut Mocks) {
    expect_call_dial(m, Arc::new(Mutex::new(Vec::new())));
}

/// No dial: neither a claim nor a call.
fn no_dial(m: &mut Mocks) {
    m.call.expect_create_call().times(0);
    m.outdial.expect_set_target_progressing().times(0);
}

/// Queue capacity: agents × service level (integer division) against the calls dialing
/// (progressing calls do not count): 3 × 50 % = 1 with one dialing waits, 3 × 100 % = 3 with
/// two dialing dials; no agent or a failed lookup dials nothing.
#[rustfmt::skip]
#[tokio::test]
async fn queue_capacity_rows() {
    use CampaigncallStatus::{Dialing, Progressing};
    let call = CampaignType::Call;
    check_table(vec![
        tick_row("no_queue_capacity_waits_without_dialing", call, |s| with_queue(s, 50), Change::Nothing, &[Dialing], |m, s| { agents(m, s, Ok(3)); no_dial(m) },
                 "after 5s waiting no_capacity | campaign run/run | stops 0 | unknown dials 0 | events - | calls dialing none - | references 1"),
        tick_row("no_available_agents_waits", call, |s| s.campaign.queue_id = Uuid::new_v4(), Change::Nothing, &[], |m, s| agents(m, s, Ok(0)),
                 "after 5s waiting no_capacity | campaign run/run | stops 0 | unknown dials 0 | events - | calls - | references 0"),
        tick_row("queue_capacity_left_dials", call, |s| with_queue(s, 100), Change::Nothing, &[Dialing, Dialing, Progressing], |m, s| { agents(m, s, Ok(3)); dials(m) },
                 "after 500ms dialed | campaign run/run | stops 0 | unknown dials 0 | events campaigncall_created | calls dialing none requested, progressing none -, dialing none -, dialing none - | references 4"),
        tick_row("queue_agent_lookup_failure_backs_off", call, |s| s.campaign.queue_id = Uuid::new_v4(), Change::Nothing, &[], |m, s| agents(m, s, Err(timeout())),
                 "after 5s backoff | campaign run/run | stops 0 | unknown dials 0 | events - | calls - | references 0"),
    ]).await;
}

/// The retry interval (10 min in the outplan): a target tried within it waits; one tried
/// before it, or never tried (`tm_update` null, or equal to `tm_create`: created just now, well
/// inside the interval, but never tried), is dialed.
#[rustfmt::skip]
#[tokio::test]
async fn retry_interval_rows() {
    let call = CampaignType::Call;
    let dialed = "after 500ms dialed | campaign run/run | stops 0 | unknown dials 0 | events campaigncall_created | calls dialing none requested | references 1";
    check_table(vec![
        tick_row("target_inside_its_retry_interval_waits", call, as_is, Change::Nothing, &[], |m, s| { tried_minutes_ago(m, s, 1); no_dial(m) },
                 "after 5s waiting retry_interval | campaign run/run | stops 0 | unknown dials 0 | events - | calls - | references 0"),
        tick_row("target_past_its_retry_interval_dials", call, as_is, Change::Nothing, &[], |m, s| { tried_minutes_ago(m, s, 11); dials(m) }, dialed),
        tick_row("never_tried_target_with_null_tm_update_dials", call, as_is, Change::Nothing, &[], |m, s| {
            let t = OutdialTarget { tm_update: None, ..target() };
            offer(m, s.campaign.outdial_id, t, 1);
            dials(m)
        }, dialed),
        tick_row("never_tried_target_with_tm_update_equal_to_tm_create_dials", call, as_is, Change::Nothing, &[], |m, s| {
            let t = target();
            assert_eq!(t.tm_create, t.tm_update);
            offer(m, s.campaign.outdial_id, t, 1);
            dials(m)
        }, dialed),
    ]).await;
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
