//! Live stats (docs/stats-and-sequences.md) against a real test store: one answer is one
//! consistent read (many reads while a writer commits campaigncalls, finishes and target marks
//! always satisfy the invariants, and the same check fails on reads split the old way with a
//! commit forced between them), the reply's keys, and the two per-target counts written by the
//! tick with mockall peers: targets ended suppressed (once, also when the end is retried, when
//! two ticks of two processes race, and when the count itself failed first) and
//! `destination_local` zone fall-backs (once per target whatever the number of ticks).

use crate::support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use campaign_manager::metrics::Metrics;
use campaign_manager::model::{
    Address, CallingHours, CallingWindow, Campaign, CampaignStats, CampaigncallResult,
    CampaigncallStatus, OutdialTarget, TargetStatus,
};
use campaign_manager::peers::PeerError;
use campaign_manager::service::tick::{Outcome, Ticker};
use campaign_manager::service::{Delays, RecordingChains, RecordingEvents, Service};
use campaign_manager::store::Store;
use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use support::mocked::{Mocked, fresh_fence};
use support::mocks::Mocks;
use support::records;
use uuid::Uuid;

/// The first invariant of any stats reply that `s` breaks, named with its numbers.
fn broken(s: &CampaignStats) -> Option<String> {
    let in_reasons = s.by_reason.get("suppressed").copied().unwrap_or(0);
    if in_reasons != s.suppressed {
        return Some(format!(
            "by_reason.suppressed {in_reasons} != suppressed {}",
            s.suppressed
        ));
    }
    let done: i64 = s.by_reason.values().sum::<i64>() - s.suppressed;
    if s.dials != s.dialing + s.progressing + done {
        return Some(format!(
            "dials {} != dialing {} + progressing {} + done {done}",
            s.dials, s.dialing, s.progressing
        ));
    }
    if done < s.done_success + s.done_fail {
        return Some(format!(
            "done {done} < done_success {} + done_fail {}",
            s.done_success, s.done_fail
        ));
    }
    if s.calls_up != s.dialing + s.progressing {
        return Some(format!("calls_up {} != dialing + progressing", s.calls_up));
    }
    if s.dials_last_minute > s.dials {
        return Some(format!(
            "dials_last_minute {} > dials {}",
            s.dials_last_minute, s.dials
        ));
    }
    None
}

/// [`broken`], and what holds for the writer of these tests: it never deletes a campaigncall
/// and marks a target only after its campaigncall, so `last_dial_at` is set exactly when there
/// are dials and `suppressed <= dials`.
fn broken_under_writer(s: &CampaignStats) -> Option<String> {
    if let Some(why) = broken(s) {
        return Some(why);
    }
    if s.last_dial_at.is_some() != (s.dials > 0) {
        return Some(format!(
            "last_dial_at {:?} with dials {}",
            s.last_dial_at, s.dials
        ));
    }
    if s.suppressed > s.dials {
        return Some(format!(
            "suppressed {} > dials {} (marks follow their campaigncall)",
            s.suppressed, s.dials
        ));
    }
    None
}

/// One step of the writer: a campaigncall created `dialing`, made `progressing`, finished
/// (success or fail by `i`), and every third one's target marked suppressed after it.
async fn write_one(service: &Service, store: &Store, c: &Campaign, i: usize) {
    let cc = records::campaigncall_of(c, CampaigncallStatus::Dialing);
    let cc = store.campaigncalls.create(&cc).await.expect("create");
    store
        .campaigncalls
        .set_progressing(cc.id)
        .await
        .expect("progressing");
    let (result, reason) = if i.is_multiple_of(2) {
        (CampaigncallResult::Success, "normal")
    } else {
        (CampaigncallResult::Fail, "busy")
    };
    store
        .campaigncalls
        .finish_because(cc.id, result, Some(reason))
        .await
        .expect("finish");
    if i.is_multiple_of(3) {
        service
            .mark_suppressed(c.id, cc.outdial_target_id)
            .await
            .expect("mark");
    }
}

/// Two readers read the stats while a writer commits (until each made its reads and the writer
/// its writes). With the readers calling [`split_read`] instead, this failed in 3 runs of 3
/// within the first 10 reads (`dials_last_minute 1 > dials 0`, `dials_last_minute 2 > dials 1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_under_a_concurrent_writer_always_satisfy_the_invariants() {
    const WRITES: usize = 200;
    const READS_EACH: usize = 150;
    let (mocked, campaign) = Mocked::with_running_call(Mocks::new(), |_| {}).await;
    let written = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let writer = {
        let (service, store) = (mocked.service.clone(), mocked.ts.store.clone());
        let (campaign, written, stop) = (campaign.clone(), written.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                write_one(&service, &store, &campaign, i).await;
                i += 1;
                written.store(i, Ordering::SeqCst);
            }
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let service = mocked.service.clone();
            let written = written.clone();
            let id = campaign.id;
            tokio::spawn(async move {
                let mut seen = HashSet::new();
                let mut reads = 0;
                while reads < READS_EACH || written.load(Ordering::SeqCst) < WRITES {
                    let s = service.campaign_stats(id).await.expect("stats");
                    if let Some(why) = broken_under_writer(&s) {
                        panic!("read {reads} broke an invariant: {why}: {s:?}");
                    }
                    seen.insert((s.dials, s.calls_up, s.suppressed));
                    reads += 1;
                }
                (reads, seen)
            })
        })
        .collect();
    let mut distinct = HashSet::new();
    let mut reads = 0;
    for r in readers {
        let (n, seen) = r.await.expect("reader");
        reads += n;
        distinct.extend(seen);
    }
    stop.store(true, Ordering::SeqCst);
    writer.await.expect("writer");
    let n = written.load(Ordering::SeqCst);
    println!(
        "{reads} consistent reads during {n} writes, {} distinct states seen",
        distinct.len()
    );
    // The reads overlapped the writes (else the test proves nothing).
    assert!(distinct.len() > 2, "{distinct:?}");

    let last = mocked
        .service
        .campaign_stats(campaign.id)
        .await
        .expect("stats");
    let n = i64::try_from(n).expect("count");
    assert_eq!(broken_under_writer(&last), None);
    assert_eq!(
        (last.dials, last.calls_up, last.dials_last_minute),
        (n, 0, n)
    );
    assert_eq!(last.done_success, (n + 1) / 2);
    assert_eq!(last.suppressed, (n + 2) / 3);
}

/// The stats read the old way, in separate statements (the counts, then the recent dials and
/// the marks), with `between` run between them.
async fn split_read(
    pool: &sqlx::MySqlPool,
    c: &Campaign,
    between: impl std::future::Future<Output = ()>,
) -> CampaignStats {
    let id = c.id.as_bytes().to_vec();
    let counts: Vec<(String, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT status, result, reason, COUNT(*) FROM campaign_campaigncalls \
         WHERE campaign_id = ? AND tm_delete IS NULL GROUP BY status, result, reason",
    )
    .bind(&id)
    .fetch_all(pool)
    .await
    .expect("counts");
    between.await;
    let since = (Utc::now() - chrono::Duration::seconds(60)).naive_utc();
    let (recent, last, suppressed): (i64, Option<NaiveDateTime>, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM campaign_campaigncalls WHERE campaign_id = ? \
           AND tm_create >= ?), \
         (SELECT MAX(tm_create) FROM campaign_campaigncalls WHERE campaign_id = ?), \
         (SELECT COUNT(*) FROM campaign_target_marks WHERE campaign_id = ? \
           AND mark = 'suppressed')",
    )
    .bind(&id)
    .bind(since)
    .bind(&id)
    .bind(&id)
    .fetch_one(pool)
    .await
    .expect("recent");
    let mut s = CampaignStats {
        campaign_id: c.id,
        status: c.status,
        execute: c.execute,
        dials: 0,
        dialing: 0,
        progressing: 0,
        done_success: 0,
        done_fail: 0,
        by_reason: Default::default(),
        calls_up: 0,
        dials_last_minute: recent,
        last_dial_at: last.map(|t| t.and_utc()),
        next_tick_at: None,
        waiting_reason: None,
        suppressed,
        zone_fallback_targets: 0,
    };
    for (status, result, reason, n) in counts {
        s.dials += n;
        match status.as_str() {
            "dialing" => s.dialing += n,
            "progressing" => s.progressing += n,
            _ => {
                if result == "success" {
                    s.done_success += n;
                } else if result == "fail" {
                    s.done_fail += n;
                }
                *s.by_reason.entry(reason.unwrap_or(result)).or_default() += n;
            }
        }
    }
    if suppressed > 0 {
        *s.by_reason.entry("suppressed".into()).or_default() += suppressed;
    }
    s.calls_up = s.dialing + s.progressing;
    s
}

#[tokio::test]
async fn split_reads_with_a_commit_between_them_break_the_invariants() {
    // What the check above catches: the counts read before a dial commits, the recent dials
    // and the marks after it. The stats route reads all of them in one statement.
    let (mocked, campaign) = Mocked::with_running_call(Mocks::new(), |_| {}).await;
    let (service, store) = (&mocked.service, &mocked.ts.store);
    let split = split_read(
        &mocked.ts.db.pool,
        &campaign,
        write_one(service, store, &campaign, 0),
    )
    .await;
    let why = broken_under_writer(&split).expect("the split read is inconsistent");
    assert!(why.starts_with("dials_last_minute 1 > dials 0"), "{why}");

    let one = service.campaign_stats(campaign.id).await.expect("stats");
    assert_eq!(broken_under_writer(&one), None, "{one:?}");
    assert_eq!(
        (one.dials, one.dials_last_minute, one.suppressed),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn the_reply_has_every_count_also_when_zero_in_order() {
    let (mocked, campaign) = Mocked::with_running_call(Mocks::new(), |_| {}).await;
    let s = mocked
        .service
        .campaign_stats(campaign.id)
        .await
        .expect("stats");
    let json = serde_json::to_string(&s).expect("json");
    assert!(
        json.ends_with(r#""waiting_reason":null,"suppressed":0,"zone_fallback_targets":0}"#),
        "{json}"
    );
    assert!(json.contains(r#""by_reason":{}"#), "{json}");
    // A reply of a service without the two counts still reads.
    let mut older: serde_json::Value = serde_json::from_str(&json).expect("value");
    let map = older.as_object_mut().expect("object");
    map.remove("suppressed");
    map.remove("zone_fallback_targets");
    let read: CampaignStats = serde_json::from_value(older).expect("older reply");
    assert_eq!(read, s);
}

// ------------------------------------------------------------ the tick's per-target counts

/// A never-tried target whose only destination is `destination`.
fn target_to(destination: Address) -> OutdialTarget {
    let created = Utc::now().trunc_subsecs(6);
    OutdialTarget {
        id: Uuid::new_v4(),
        destination_0: Some(destination),
        tm_create: Some(created),
        tm_update: Some(created),
        ..OutdialTarget::default()
    }
}

/// Another process' service over the same database and Redis prefix (its own memory of the
/// marks it wrote), with `m` as peers.
fn second_process(mocked: &Mocked, m: Mocks) -> Service {
    let store = Store::with_pool(mocked.ts.db.pool.clone(), mocked.ts.prefix.cache());
    Service::new(
        store,
        m.into_peers(),
        Arc::new(RecordingEvents::default()),
        Arc::new(RecordingChains::default()),
        Metrics::standalone(),
        Delays::default(),
    )
}

/// Peers offering `target` on every tick and ending targets as `end` says (counted in `ends`).
fn offering(
    target: &OutdialTarget,
    ends: Arc<AtomicUsize>,
    end: fn(usize) -> Result<(), PeerError>,
) -> Mocks {
    let mut m = Mocks::new();
    let offered = target.clone();
    m.outdial
        .expect_available_targets()
        .returning(move |_, _, _| Ok(vec![offered.clone()]));
    let id = target.id;
    m.outdial
        .expect_set_target_status()
        .withf(move |t, s| *t == id && *s == TargetStatus::Done)
        .returning(move |_, _| end(ends.fetch_add(1, Ordering::SeqCst)));
    m
}

fn timeout() -> PeerError {
    PeerError::Timeout {
        target: "bin-manager.outdial-manager.request".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suppressed_target_counts_once_when_its_end_is_retried_or_two_ticks_race() {
    let target = target_to(Address::tel("+15550000001"));
    let ends = Arc::new(AtomicUsize::new(0));
    // outdial-manager does not answer the first end in time; later ones succeed.
    let end = |n| if n == 0 { Err(timeout()) } else { Ok(()) };
    let (mocked, campaign) =
        Mocked::with_running_call(offering(&target, ends.clone(), end), |_| {}).await;
    mocked
        .ts
        .store
        .suppressions
        .create(campaign.customer_id, "+15550000001", "opt-out", None)
        .await
        .expect("suppression");

    let ticker = mocked.ticker();
    ticker.tick(campaign.id, &fresh_fence()).await;
    assert_eq!(ends.load(Ordering::SeqCst), 1, "the end was asked");
    let s = mocked.service.campaign_stats(campaign.id).await.unwrap();
    assert_eq!(s.suppressed, 1, "counted before the end: {s:?}");
    // outdial-manager still offers the target: the next tick ends it again.
    ticker.tick(campaign.id, &fresh_fence()).await;
    assert_eq!(ends.load(Ordering::SeqCst), 2);

    // Two processes' ticks (one fence: a job delivered twice) see the target at once.
    let other = Ticker::new(second_process(
        &mocked,
        offering(&target, ends.clone(), |_| Ok(())),
    ));
    let fence = fresh_fence();
    let (a, b) = tokio::join!(
        ticker.tick(campaign.id, &fence),
        other.tick(campaign.id, &fence)
    );
    assert!(!matches!(a.1, Outcome::Dialed) && !matches!(b.1, Outcome::Dialed));
    assert_eq!(ends.load(Ordering::SeqCst), 4);

    let s = mocked.service.campaign_stats(campaign.id).await.unwrap();
    assert_eq!((s.suppressed, s.dials), (1, 0), "{s:?}");
    assert_eq!(s.by_reason.get("suppressed"), Some(&1), "{s:?}");
    assert_eq!(s.by_reason.len(), 1, "{s:?}");
    assert_eq!(broken(&s), None);
}

#[tokio::test]
async fn a_suppressed_target_not_counted_is_not_ended_and_the_next_tick_does_both() {
    // The count is the first step: if it fails, outdial-manager is not asked, so no target
    // ends uncounted; the next tick offered the target counts it and ends it.
    let target = target_to(Address::tel("+15550000002"));
    let ends = Arc::new(AtomicUsize::new(0));
    let (mocked, campaign) =
        Mocked::with_running_call(offering(&target, ends.clone(), |_| Ok(())), |_| {}).await;
    mocked
        .ts
        .store
        .suppressions
        .create(campaign.customer_id, "+15550000002", "opt-out", None)
        .await
        .expect("suppression");
    let pool = &mocked.ts.db.pool;
    sqlx::query("RENAME TABLE campaign_target_marks TO campaign_target_marks_away")
        .execute(pool)
        .await
        .expect("hide the marks");
    let ticker = mocked.ticker();
    ticker.tick(campaign.id, &fresh_fence()).await;
    assert_eq!(ends.load(Ordering::SeqCst), 0, "not ended while uncounted");

    sqlx::query("RENAME TABLE campaign_target_marks_away TO campaign_target_marks")
        .execute(pool)
        .await
        .expect("restore the marks");
    ticker.tick(campaign.id, &fresh_fence()).await;
    assert_eq!(ends.load(Ordering::SeqCst), 1);
    let s = mocked.service.campaign_stats(campaign.id).await.unwrap();
    assert_eq!(s.suppressed, 1, "{s:?}");
}

fn sip(user: &str) -> Address {
    Address {
        kind: "sip".into(),
        target: format!("{user}@example.com"),
        ..Address::default()
    }
}

/// Monday to Friday 09:00-20:00 in each callee's zone, New York's for numbers without one.
fn callee_office() -> CallingHours {
    CallingHours {
        time_zone: "America/New_York".into(),
        windows: vec![CallingWindow {
            days: ["mon", "tue", "wed", "thu", "fri"]
                .iter()
                .map(|d| d.to_string())
                .collect(),
            start: "09:00".into(),
            end: "20:00".into(),
        }],
        destination_local: Some(true),
        closed_dates: None,
    }
}

#[tokio::test]
async fn zone_fallback_targets_count_each_target_without_a_zone_once() {
    // Sunday 20:00 in New York, Monday 01:00 in London: every callee is closed, so each tick
    // looks at all four targets and dials none. The two SIP addresses have no zone and fall
    // back to the campaign's (New York); the New York and London numbers have their own.
    let now: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-11-30T01:00:00Z")
        .expect("time")
        .with_timezone(&Utc);
    let targets = vec![
        target_to(sip("alice")),
        target_to(Address::tel("+12125551234")),
        target_to(sip("bob")),
        target_to(Address::tel("+442071234567")),
    ];
    let peers = |targets: Vec<OutdialTarget>| {
        let mut m = Mocks::new();
        m.outdial
            .expect_available_targets()
            .returning(move |_, _, _| Ok(targets.clone()));
        m
    };
    let (mocked, campaign) = Mocked::with_running_call(peers(targets.clone()), |c| {
        c.calling_hours = Some(callee_office())
    })
    .await;
    let clock = Arc::new(move || now);
    let ticker = mocked.ticker().with_clock(clock.clone());
    for _ in 0..3 {
        let (_, outcome) = ticker.tick(campaign.id, &fresh_fence()).await;
        assert!(
            matches!(outcome, Outcome::Sleeping("outside_calling_hours", _)),
            "{outcome:?}"
        );
    }
    // Another process looking at the same targets counts nothing new.
    let other = Ticker::new(second_process(&mocked, peers(targets))).with_clock(clock);
    other.tick(campaign.id, &fresh_fence()).await;

    let s = mocked.service.campaign_stats(campaign.id).await.unwrap();
    assert_eq!(s.zone_fallback_targets, 2, "{s:?}");
    assert_eq!((s.suppressed, s.dials), (0, 0));
}
