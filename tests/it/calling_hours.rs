//! Calling hours (docs/calling_hours.md): the tick against a real test
//! store with mocked peers and an injected clock (the sleep until the next window is exact),
//! and black-box over RabbitMQ with `campaign-sim`: the route, the campaign JSON, a campaign
//! that does not dial for 10 s outside its window (stats `outside_calling_hours`), one whose
//! first dial is recorded within 1 s of its window opening, and `destination_local`.

use crate::support;
use crate::support::wait_until;

use std::sync::Arc;
use std::time::Duration;

use campaign_manager::model::*;
use campaign_manager::service::Delays;
use campaign_manager::service::tick::{
    CALLING_HOURS_MAX_SLEEP, DEFAULT_TARGET_BATCH, Next, Outcome, Ticker,
};
use campaign_sim::{Outcome as SimOutcome, Scenario};
use chrono::{DateTime, Duration as ChronoDuration, SubsecRound, Timelike, Utc};
use serde_json::{Value, json};
use support::TestSystem;
use support::black_box::{create_campaign, expect_400, expect_404, id_of, set_status};
use support::mocked::{Mocked, fresh_fence};
use support::mocks::Mocks;
use uuid::Uuid;

// ---------------------------------------------------------------- the tick, injected clock

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("rfc3339")
        .with_timezone(&Utc)
}

/// Monday to Friday 09:00-20:00 in Seoul (UTC+9, no DST).
fn seoul_office() -> CallingHours {
    CallingHours {
        time_zone: "Asia/Seoul".into(),
        windows: vec![CallingWindow {
            days: ["mon", "tue", "wed", "thu", "fri"]
                .iter()
                .map(|d| d.to_string())
                .collect(),
            start: "09:00".into(),
            end: "20:00".into(),
        }],
        destination_local: None,
        closed_dates: None,
    }
}

/// A running call campaign with `hours`, its outplan, stored; a ticker whose clock reads `now`.
struct TickEnv {
    mocked: Mocked,
    ticker: Ticker,
    campaign: Campaign,
}

impl TickEnv {
    async fn new(m: Mocks, hours: Option<CallingHours>, now: DateTime<Utc>) -> TickEnv {
        let (mocked, campaign) = Mocked::with_running_call(m, |c| c.calling_hours = hours).await;
        let ticker = mocked.ticker().with_clock(Arc::new(move || now));
        TickEnv {
            ticker,
            mocked,
            campaign,
        }
    }

    async fn tick(&self) -> (Next, Outcome) {
        self.ticker.tick(self.campaign.id, &fresh_fence()).await
    }

    async fn stored(&self) -> Campaign {
        self.mocked.campaign(self.campaign.id).await
    }
}

#[tokio::test]
async fn tick_outside_the_window_sleeps_exactly_until_it_opens_and_asks_no_peer() {
    // Monday 08:59:58 in Seoul; the window opens 2 s later. Mocks without expectations: any
    // peer call (available targets, dial) fails the test.
    let now = at("2026-11-30T08:59:58+09:00");
    let env = TickEnv::new(Mocks::new(), Some(seoul_office()), now).await;
    let two = Duration::from_secs(2);
    assert_eq!(
        env.tick().await,
        (
            Next::Continue(two),
            Outcome::Sleeping("outside_calling_hours", two)
        )
    );
    let c = env.stored().await;
    assert_eq!(c.status, CampaignStatus::Run);
    assert_eq!(c.execute, Execute::Run);
}

#[tokio::test]
async fn tick_long_before_the_window_sleeps_at_most_the_cap() {
    // Friday 20:00 in Seoul: the next window is Monday 09:00, far beyond the cap.
    let now = at("2026-12-04T20:00:00+09:00");
    let env = TickEnv::new(Mocks::new(), Some(seoul_office()), now).await;
    assert_eq!(
        env.tick().await,
        (
            Next::Continue(CALLING_HOURS_MAX_SLEEP),
            Outcome::Sleeping("outside_calling_hours", CALLING_HOURS_MAX_SLEEP)
        )
    );
}

#[tokio::test]
async fn tick_inside_the_window_dials() {
    let now = at("2026-11-30T09:00:00+09:00");
    let mut m = Mocks::new();
    let t = {
        let created = Utc::now().trunc_subsecs(6);
        OutdialTarget {
            id: Uuid::new_v4(),
            destination_0: Some(Address::tel("+15550001000")),
            tm_create: Some(created),
            tm_update: Some(created),
            ..OutdialTarget::default()
        }
    };
    m.outdial
        .expect_available_targets()
        .withf(|_, _, limit| *limit == DEFAULT_TARGET_BATCH)
        .times(1)
        .returning(move |_, _, _| Ok(vec![t.clone()]));
    m.outdial
        .expect_set_target_progressing()
        .times(1)
        .returning(|_, _| Ok(()));
    m.call.expect_create_call().times(1).returning(|_| Ok(()));
    let env = TickEnv::new(m, Some(seoul_office()), now).await;
    assert_eq!(
        env.tick().await,
        (
            Next::Continue(Delays::default().after_dial),
            Outcome::Dialed
        )
    );
}

#[tokio::test]
async fn stored_hours_that_do_not_validate_dial_nothing() {
    // Written past the API (by hand in MySQL): the tick does not dial and looks again later.
    let mut bad = seoul_office();
    bad.time_zone = "Nowhere/Atlantis".into();
    let env = TickEnv::new(Mocks::new(), Some(bad), Utc::now()).await;
    assert_eq!(
        env.tick().await,
        (
            Next::Continue(CALLING_HOURS_MAX_SLEEP),
            Outcome::Sleeping("outside_calling_hours", CALLING_HOURS_MAX_SLEEP)
        )
    );
}

/// A never-tried target calling `number`.
fn target_calling(number: &str) -> OutdialTarget {
    let created = Utc::now().trunc_subsecs(6);
    OutdialTarget {
        id: Uuid::new_v4(),
        destination_0: Some(Address::tel(number)),
        tm_create: Some(created),
        tm_update: Some(created),
        ..OutdialTarget::default()
    }
}

/// Monday to Friday 09:00-20:00, read in each callee's zone (New York for unknown ones).
fn callee_office() -> CallingHours {
    CallingHours {
        time_zone: "America/New_York".into(),
        destination_local: Some(true),
        ..seoul_office()
    }
}

#[tokio::test]
async fn destination_local_dials_the_targets_inside_their_local_hours_and_skips_the_others() {
    // Monday 10:00 in Seoul = 01:00 in London = Sunday 20:00 in New York.
    let now = at("2026-11-30T10:00:00+09:00");
    let london = target_calling("+442071234567");
    let us = target_calling("+12125551234");
    let seoul = target_calling("+821012345678");
    let seoul_id = seoul.id;
    let mut m = Mocks::new();
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(move |_, _, _| Ok(vec![london.clone(), us.clone(), seoul.clone()]));
    m.outdial
        .expect_set_target_progressing()
        .withf(move |id, _| *id == seoul_id)
        .times(1)
        .returning(|_, _| Ok(()));
    m.call
        .expect_create_call()
        .withf(|c| c.destination.target == "+821012345678")
        .times(1)
        .returning(|_| Ok(()));
    let env = TickEnv::new(m, Some(callee_office()), now).await;
    assert_eq!(env.tick().await.1, Outcome::Dialed);
}

#[tokio::test]
async fn destination_local_sleeps_until_the_first_local_opening_when_all_are_closed() {
    // Monday 01:00 UTC: London opens at 09:00 UTC (8 h, past the cap), New York at 14:00 UTC;
    // with a Tokyo target the first opening is Monday 09:00 JST = 00:00 UTC... already past,
    // so take Sunday 23:59:58 UTC: Tokyo (Monday 08:59:58) opens in 2 s.
    let now = at("2026-11-29T23:59:58Z");
    let targets = vec![
        target_calling("+442071234567"),
        target_calling("+81312345678"),
        target_calling("+12125551234"),
    ];
    let mut m = Mocks::new();
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(move |_, _, _| Ok(targets.clone()));
    let env = TickEnv::new(m, Some(callee_office()), now).await;
    let two = Duration::from_secs(2);
    assert_eq!(
        env.tick().await,
        (
            Next::Continue(two),
            Outcome::Sleeping("outside_calling_hours", two)
        )
    );
}

#[tokio::test]
async fn a_new_york_number_is_not_dialed_while_new_york_is_closed_though_seoul_is_open() {
    // Monday 10:00 in Seoul (the campaign's zone, open) is Sunday 20:00 in New York: the +1 212
    // number is read in New York by its area code, so nothing is dialed; New York opens on
    // Monday at 09:00 EST (14:00 UTC), beyond the cap. Mocks without a dial expectation: a call
    // request fails the test.
    let now = at("2026-11-30T10:00:00+09:00");
    let us = target_calling("+12125551234");
    let mut m = Mocks::new();
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(move |_, _, _| Ok(vec![us.clone()]));
    let hours = CallingHours {
        destination_local: Some(true),
        ..seoul_office()
    };
    let env = TickEnv::new(m, Some(hours), now).await;
    assert_eq!(
        env.tick().await.1,
        Outcome::Sleeping("outside_calling_hours", CALLING_HOURS_MAX_SLEEP)
    );
}

#[tokio::test]
async fn a_closed_date_dials_nothing_inside_its_windows() {
    // Monday 2026-11-30 10:00 in Seoul is inside the office window, but the date is closed:
    // no peer is asked (mocks without expectations) and the chain sleeps (next opening on
    // Tuesday 09:00, past the cap).
    let now = at("2026-11-30T10:00:00+09:00");
    let hours = CallingHours {
        closed_dates: Some(vec!["2026-11-30".into()]),
        ..seoul_office()
    };
    let env = TickEnv::new(Mocks::new(), Some(hours), now).await;
    assert_eq!(
        env.tick().await.1,
        Outcome::Sleeping("outside_calling_hours", CALLING_HOURS_MAX_SLEEP)
    );
    // The day after, the same hours dial.
    let mut m = Mocks::new();
    let t = target_calling("+821012345678");
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(move |_, _, _| Ok(vec![t.clone()]));
    m.outdial
        .expect_set_target_progressing()
        .times(1)
        .returning(|_, _| Ok(()));
    m.call.expect_create_call().times(1).returning(|_| Ok(()));
    let hours = CallingHours {
        closed_dates: Some(vec!["2026-11-30".into()]),
        ..seoul_office()
    };
    let env = TickEnv::new(m, Some(hours), at("2026-12-01T10:00:00+09:00")).await;
    assert_eq!(env.tick().await.1, Outcome::Dialed);
}

#[tokio::test]
async fn destination_local_does_not_gate_the_campaign_as_a_whole() {
    // Sunday in New York (the campaign's zone) but Monday office hours in Seoul: the Seoul
    // target is dialed although the campaign's own zone is closed.
    let now = at("2026-11-30T10:00:00+09:00");
    let seoul = target_calling("+821012345678");
    let mut m = Mocks::new();
    m.outdial
        .expect_available_targets()
        .times(1)
        .returning(move |_, _, _| Ok(vec![seoul.clone()]));
    m.outdial
        .expect_set_target_progressing()
        .times(1)
        .returning(|_, _| Ok(()));
    m.call.expect_create_call().times(1).returning(|_| Ok(()));
    let env = TickEnv::new(m, Some(callee_office()), now).await;
    assert_eq!(env.tick().await.1, Outcome::Dialed);
    // The same hours without destination_local sleep (Sunday in New York).
    let mut plain = callee_office();
    plain.destination_local = Some(false);
    let env = TickEnv::new(Mocks::new(), Some(plain), now).await;
    assert!(matches!(
        env.tick().await.1,
        Outcome::Sleeping("outside_calling_hours", _)
    ));
}

// ---------------------------------------------------------------- black box over RabbitMQ

const ALL_DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Every day, one hour far from now (UTC): a window that excludes now for hours.
fn window_excluding_now() -> Value {
    let (start, end) = if Utc::now().hour() < 12 {
        ("20:00", "21:00")
    } else {
        ("02:00", "03:00")
    };
    json!({"time_zone": "UTC", "windows": [{"days": ALL_DAYS, "start": start, "end": end}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_sets_and_clears_calling_hours_and_refuses_bad_fields() {
    let sys = TestSystem::start(Scenario::instant(SimOutcome::Answered), |_| {}).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 1, 1);
    let created = create_campaign(&sys, "hours", customer, outdial, json!({})).await;
    let id = id_of(&created);
    assert!(created.get("calling_hours").is_none(), "{created}");
    let uri = format!("/v1/campaigns/{id}");
    let got = sys.ok("GET", &uri, None).await;
    assert!(
        got.get("calling_hours").is_none(),
        "unset is omitted: {got}"
    );

    let route = format!("/v1/campaigns/{id}/calling_hours");
    let hours = json!({"time_zone": "Asia/Seoul", "windows": [
        {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "20:00"},
        {"days": ["sat"], "start": "10:00", "end": "24:00"}]});
    let set = sys
        .ok("PUT", &route, Some(json!({ "calling_hours": hours })))
        .await;
    assert_eq!(set["calling_hours"], hours);
    let got = sys.ok("GET", &uri, None).await;
    assert_eq!(got["calling_hours"], hours, "read back as given");
    assert_eq!(got["status"], "stop");

    // Bad fields: 400 naming the field; the stored value is untouched.
    let bad = |tz: &str, day: &str, start: &str, end: &str| {
        json!({"calling_hours": {"time_zone": tz,
            "windows": [{"days": ["mon", day], "start": start, "end": end}]}})
    };
    let cases = [
        (
            bad("Mars/Olympus", "tue", "09:00", "10:00"),
            "calling_hours.time_zone",
        ),
        (
            bad("UTC", "someday", "09:00", "10:00"),
            "calling_hours.windows[0].days[1]",
        ),
        (
            bad("UTC", "tue", "9am", "10:00"),
            "calling_hours.windows[0].start",
        ),
        (
            bad("UTC", "tue", "09:00", "25:00"),
            "calling_hours.windows[0].end",
        ),
        (
            bad("UTC", "tue", "22:00", "06:00"),
            "calling_hours.windows[0].end",
        ),
        (
            json!({"calling_hours": {"time_zone": "UTC", "windows": []}}),
            "calling_hours.windows",
        ),
        (json!({}), "calling_hours"),
        (json!({"calling_hours": {"windows": []}}), "time_zone"),
        (
            json!({"calling_hours": {"time_zone": "UTC", "closed_dates": ["2026-12-25", "12/26"],
                "windows": [{"days": ["mon"], "start": "09:00", "end": "10:00"}]}}),
            "calling_hours.closed_dates[1]",
        ),
    ];
    for (body, field) in cases {
        expect_400(&sys, "PUT", &route, body, field).await;
    }
    let got = sys.ok("GET", &uri, None).await;
    assert_eq!(got["calling_hours"], hours, "unchanged by refused PUTs");

    // destination_local: true and closed dates are accepted and kept as given.
    let local = json!({"time_zone": "Asia/Seoul", "destination_local": true,
        "windows": [{"days": ["mon"], "start": "09:00", "end": "10:00"}],
        "closed_dates": ["2026-12-25", "2027-01-01"]});
    let set = sys
        .ok("PUT", &route, Some(json!({ "calling_hours": local })))
        .await;
    assert_eq!(set["calling_hours"], local);
    sys.ok("PUT", &route, Some(json!({ "calling_hours": hours })))
        .await;

    // null clears: the field is gone again.
    let cleared = sys
        .ok("PUT", &route, Some(json!({ "calling_hours": null })))
        .await;
    assert!(cleared.get("calling_hours").is_none(), "{cleared}");
    let got = sys.ok("GET", &uri, None).await;
    assert!(got.get("calling_hours").is_none(), "{got}");

    // Accepted at create; refused there too when bad (and nothing is created).
    let with = create_campaign(
        &sys,
        "hours",
        customer,
        Uuid::nil(),
        json!({ "calling_hours": hours }),
    )
    .await;
    assert_eq!(with["calling_hours"], hours);
    let got = sys
        .ok("GET", &format!("/v1/campaigns/{}", id_of(&with)), None)
        .await;
    assert_eq!(got["calling_hours"], hours);
    expect_400(
        &sys,
        "POST",
        "/v1/campaigns",
        json!({"customer_id": customer, "type": "call", "name": "bad",
                "calling_hours": {"time_zone": "Europe/Nowhere",
                    "windows": [{"days": ["mon"], "start": "09:00", "end": "10:00"}]}}),
        "calling_hours.time_zone",
    )
    .await;

    // Unknown campaign: 404.
    expect_404(
        &sys,
        "PUT",
        &format!("/v1/campaigns/{}/calling_hours", Uuid::new_v4()),
        Some(json!({ "calling_hours": null })),
    )
    .await;
    sys.stop().await;
}

/// Short delays and a few tick workers.
fn fast(s: &mut campaign_manager::config::Settings) {
    s.workers = 2;
    s.first_tick_ms = 100;
    s.dial_tick_ms = 50;
    s.wait_tick_ms = 300;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_its_window_a_running_campaign_dials_nothing_until_the_hours_are_cleared() {
    let sys = TestSystem::start(Scenario::instant(SimOutcome::Answered), fast).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 3, 1);
    let c = create_campaign(
        &sys,
        "hours",
        customer,
        outdial,
        json!({ "calling_hours": window_excluding_now() }),
    )
    .await;
    let id = id_of(&c);
    let run = set_status(&sys, id, "run").await;
    assert_eq!(run["status"], "run");

    // Ten seconds (over thirty wait delays): nothing reaches the simulator, and the stats
    // say why.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        sys.sim.attempts().is_empty(),
        "dialed outside calling hours"
    );
    assert!(sys.sim.calls().is_empty(), "a call outside calling hours");
    let got = sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await;
    assert_eq!(got["status"], "run");
    assert_eq!(got["execute"], "run");
    let stats = sys
        .ok("GET", &format!("/v1/campaigns/{id}/stats"), None)
        .await;
    assert_eq!(stats["waiting_reason"], "outside_calling_hours", "{stats}");
    assert_eq!(stats["dials"], 0, "{stats}");

    // Clearing the hours wakes the sleeping chain: the list is dialed and the campaign ends.
    sys.ok(
        "PUT",
        &format!("/v1/campaigns/{id}/calling_hours"),
        Some(json!({ "calling_hours": null })),
    )
    .await;
    wait_until(
        "the three targets dialed",
        Duration::from_secs(20),
        || async { sys.sim.attempts().len() == 3 },
    )
    .await;
    sys.stop().await;
}

/// The creation time of the campaign's first campaigncall, read through the RPC API.
async fn first_dial_at(sys: &TestSystem, campaign: Uuid) -> Option<DateTime<Utc>> {
    let list = sys
        .ok(
            "GET",
            "/v1/campaigncalls?page_size=100",
            Some(json!({ "campaign_id": campaign.to_string() })),
        )
        .await;
    list.as_array()?
        .iter()
        .filter_map(|c| c["tm_create"].as_str())
        .filter_map(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .min()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_put_to_run_two_seconds_before_its_window_dials_within_a_second_of_opening() {
    // Windows have minute granularity: the window opens at the next full minute at least 8 s
    // away, every day, in UTC; the campaign is put to run 2 s before it opens.
    let now = Utc::now();
    let next_minute = now.trunc_subsecs(0) - ChronoDuration::seconds(i64::from(now.second()))
        + ChronoDuration::minutes(1);
    let opens = if next_minute - now < ChronoDuration::seconds(8) {
        next_minute + ChronoDuration::minutes(1)
    } else {
        next_minute
    };
    let start = opens.format("%H:%M").to_string();
    let end = if opens.hour() == 23 && opens.minute() == 59 {
        "24:00".to_string()
    } else {
        (opens + ChronoDuration::minutes(1))
            .format("%H:%M")
            .to_string()
    };
    let hours = json!({"time_zone": "UTC",
        "windows": [{"days": ALL_DAYS, "start": start, "end": end}]});

    let sys = TestSystem::start(Scenario::instant(SimOutcome::Answered), fast).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 2, 1);
    let c = create_campaign(
        &sys,
        "hours",
        customer,
        outdial,
        json!({ "calling_hours": hours }),
    )
    .await;
    let id = id_of(&c);
    let run_at = opens - ChronoDuration::seconds(2);
    if let Ok(wait) = (run_at - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
    set_status(&sys, id, "run").await;

    // Nothing before the window opens (checked until 100 ms before it).
    while Utc::now() < opens - ChronoDuration::milliseconds(100) {
        assert!(
            sys.sim.attempts().is_empty(),
            "dialed before the window opened at {opens}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The chain sleeps until the opening, then dials both targets inside the minute.
    wait_until(
        "dials after the opening",
        Duration::from_secs(20),
        || async { sys.sim.attempts().len() == 2 },
    )
    .await;
    for a in sys.sim.attempts() {
        let when = a.at.expect("attempt time");
        assert!(
            when >= opens,
            "dialed at {when}, before the opening at {opens}"
        );
    }
    let first = first_dial_at(&sys, id).await.expect("a campaigncall");
    eprintln!("window opened at {opens}; first dial recorded at {first}");
    assert!(
        first >= opens && first - opens <= ChronoDuration::seconds(1),
        "first dial recorded at {first}, the window opened at {opens}"
    );
    let got = sys.ok("GET", &format!("/v1/campaigns/{id}"), None).await;
    assert_eq!(got["calling_hours"]["windows"][0]["start"], start.as_str());
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_local_dials_callees_inside_their_own_hours_only() {
    // The window is the current hour and the next in Seoul; read in New York (the campaign's
    // zone, 14 h behind) or London (9 h behind) it excludes now. The simulator's numbers are
    // Seoul mobiles (+8210...); one target calls London.
    // Near midnight in Seoul a second window from 00:00 keeps it open across the date change,
    // so now is at least an hour inside the windows whatever the time of day the test runs.
    let seoul_hour = Utc::now().with_timezone(&chrono_tz::Asia::Seoul).hour();
    let start = format!("{seoul_hour:02}:00");
    let mut windows = vec![json!({"days": ALL_DAYS, "start": start,
        "end": format!("{:02}:00", (seoul_hour + 2).min(24))})];
    if seoul_hour >= 22 {
        windows.push(json!({"days": ALL_DAYS, "start": "00:00", "end": "02:00"}));
    }
    let hours = json!({"time_zone": "America/New_York", "destination_local": true,
        "windows": windows});
    let sys = TestSystem::start(Scenario::instant(SimOutcome::Answered), fast).await;
    let customer = Uuid::new_v4();
    let outdial = sys.sim.create_outdial(customer, 2, 1);
    sys.sim
        .add_target(
            outdial,
            campaign_sim::TargetSpec {
                destinations: vec![Some(Address::tel("+442071234567"))],
                ..Default::default()
            },
        )
        .expect("london target");
    let c = create_campaign(
        &sys,
        "hours",
        customer,
        outdial,
        json!({ "calling_hours": hours }),
    )
    .await;
    let id = id_of(&c);
    set_status(&sys, id, "run").await;

    wait_until(
        "the two Seoul targets dialed",
        Duration::from_secs(20),
        || async { sys.sim.attempts().len() >= 2 },
    )
    .await;
    // A few more seconds: London is never dialed, and the campaign says why it waits.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let attempts = sys.sim.attempts();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    for c in sys.sim.calls() {
        let to = c.destination.target.clone();
        assert!(to.starts_with("+8210"), "called {to} outside its hours");
    }
    let stats = sys
        .ok("GET", &format!("/v1/campaigns/{id}/stats"), None)
        .await;
    assert_eq!(stats["waiting_reason"], "outside_calling_hours", "{stats}");
    sys.stop().await;
}
