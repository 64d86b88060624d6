//! One clock per comparison (docs/storage.md, "Which clock decides what"): a service whose
//! MySQL sessions run 40 s ahead of this process' clock, and one whose sessions run 40 s
//! behind it, still records dials (no `late_tick`), writes MySQL's time as the dial's creation
//! time, paces at the rate, and the repair's overdue rule judges ages right.
//!
//! How the skew is made: the test's pool sets each session's `@@timestamp` to this process'
//! clock ± 40 s when a connection is opened and every time it is taken from the pool. A fixed
//! `@@timestamp` freezes `UTC_TIMESTAMP()`, so setting it again at every checkout keeps MySQL's
//! clock going; within one checkout (at most one transaction, a few ms) it stands still. The
//! skew is on the MySQL side, so it reaches every comparison MySQL makes and every time it
//! writes; the service runs on this process' clock as in production.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use campaign_manager::metrics::Metrics;
use campaign_manager::model::*;
use campaign_manager::service::tick::{Next, Outcome, Ticker};
use campaign_manager::service::{Delays, RecordingChains, RecordingEvents, Service};
use campaign_manager::store::{DialFence, OverdueRule, Recorded, Store};
use chrono::{DateTime, Duration as ChronoDuration, SubsecRound, Utc};
use sqlx::MySqlPool;
use sqlx::mysql::MySqlPoolOptions;
use support::mocked::{Mocked, fresh_fence};
use support::mocks::Mocks;
use support::{MYSQL8_SQL_MODE, TestDb, TestPrefix, TestStore};
use uuid::Uuid;

/// MySQL ahead of this process.
const AHEAD: i64 = 40;
/// MySQL behind this process.
const BEHIND: i64 = -40;

/// `@@timestamp` for a session whose clock is `skew_s` seconds off this process' clock.
fn skewed_timestamp(skew_s: i64) -> f64 {
    let t = Utc::now() + ChronoDuration::seconds(skew_s);
    t.timestamp_micros() as f64 / 1e6
}

/// A pool on `db` whose sessions' clock is `skew_s` seconds off this process' clock.
async fn skewed_pool(db: &TestDb, skew_s: i64) -> MySqlPool {
    let dsn = campaign_manager::dsn::DatabaseDsn::parse(&db.url).expect("test DSN");
    MySqlPoolOptions::new()
        .max_connections(8)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                sqlx::query("SET SESSION sql_mode = ?")
                    .bind(MYSQL8_SQL_MODE)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("SET @@timestamp = ?")
                    .bind(skewed_timestamp(skew_s))
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .before_acquire(move |conn, _| {
            Box::pin(async move {
                sqlx::query("SET @@timestamp = ?")
                    .bind(skewed_timestamp(skew_s))
                    .execute(&mut *conn)
                    .await?;
                Ok(true)
            })
        })
        .connect_with(dsn.options)
        .await
        .expect("connect the skewed pool")
}

/// The service over a migrated test database seen through a pool skewed by `skew_s`, with a
/// running call campaign (`pacing` as given, outplan `dial_timeout` 1 s).
async fn skewed_service(m: Mocks, skew_s: i64, pacing: Option<Pacing>) -> (Mocked, Campaign) {
    let db = TestDb::migrated().await;
    let prefix = TestPrefix::new();
    let pool = skewed_pool(&db, skew_s).await;
    // The skew reaches MySQL: its clock reads this process' clock + skew.
    let (mysql_now,): (chrono::NaiveDateTime,) = sqlx::query_as("SELECT UTC_TIMESTAMP(6)")
        .fetch_one(&pool)
        .await
        .expect("MySQL's now");
    let off = (mysql_now.and_utc() - Utc::now()).num_seconds();
    assert!(
        (off - skew_s).abs() <= 2,
        "MySQL is {off} s off, not {skew_s}"
    );
    let store = Store::with_pool(pool, prefix.cache());
    let ts = TestStore { store, db, prefix };
    let notifier = Arc::new(RecordingEvents::default());
    let chains = Arc::new(RecordingChains::default());
    let metrics = Metrics::standalone();
    let service = Service::new(
        ts.store.clone(),
        m.into_peers(),
        notifier.clone(),
        chains.clone(),
        metrics.clone(),
        Delays::default(),
    );
    let mocked = Mocked {
        ts,
        service,
        notifier,
        chains,
        metrics,
    };
    let customer = Uuid::new_v4();
    let mut plan = support::records::outplan(customer);
    plan.dial_timeout = 1_000;
    let outplan = mocked.insert_outplan(&plan).await;
    let mut c = support::records::campaign_row(customer);
    c.outplan_id = outplan.id;
    c.kind = CampaignType::Call;
    c.status = CampaignStatus::Run;
    c.execute = Execute::Run;
    c.queue_id = Uuid::nil();
    c.end_handle = EndHandle::Continue;
    c.pacing = pacing;
    let campaign = mocked.insert_campaign(&c).await;
    (mocked, campaign)
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

/// Every offer is `n` new never-tried targets; every claim and call succeeds.
fn dial_anything(m: &mut Mocks, n: usize) {
    m.outdial
        .expect_available_targets()
        .returning(move |_, _, _| Ok((0..n).map(|_| never_tried_target()).collect()));
    m.outdial
        .expect_set_target_progressing()
        .returning(|_, _| Ok(()));
    m.call.expect_create_call().returning(|_| Ok(()));
}

/// The campaign's dial times as stored, oldest first.
async fn dial_times(m: &Mocked, campaign: Uuid) -> Vec<DateTime<Utc>> {
    let mut t =
        m.ts.store
            .dials
            .recent_dial_times(campaign, 10_000)
            .await
            .expect("dial times");
    t.sort();
    t
}

async fn records_dials_with_mysql_skewed(skew_s: i64) {
    let mut m = Mocks::new();
    dial_anything(&mut m, 1);
    let (mocked, campaign) = skewed_service(m, skew_s, None).await;
    let ticker = mocked.ticker();
    let before = Utc::now();
    let (next, outcome) = ticker.tick(campaign.id, &fresh_fence()).await;
    let after = Utc::now();
    assert_eq!(
        (next, outcome),
        (
            Next::Continue(Delays::default().after_dial),
            Outcome::Dialed
        )
    );
    assert_eq!(
        mocked
            .metrics
            .dial_refused_total
            .with_label_values(&["late_tick"])
            .get(),
        0
    );
    // The campaigncall's creation time is MySQL's (this process' clock + skew), in the row
    // and in what the service returned (its `campaigncall_created` event carries the row).
    let calls = mocked
        .ts
        .store
        .campaigncalls
        .list_ongoing(campaign.id, 10)
        .await
        .expect("calls");
    assert_eq!(calls.len(), 1);
    let created = calls[0].tm_create.expect("tm_create");
    let skew = ChronoDuration::seconds(skew_s);
    let slack = ChronoDuration::seconds(2);
    assert!(
        created >= before + skew - slack && created <= after + skew + slack,
        "tm_create {created} is not MySQL's time ({before} .. {after} + {skew_s} s)"
    );
}

#[tokio::test]
async fn a_mysql_clock_40_s_ahead_still_records_dials_at_its_own_time() {
    records_dials_with_mysql_skewed(AHEAD).await;
}

#[tokio::test]
async fn a_mysql_clock_40_s_behind_still_records_dials_at_its_own_time() {
    records_dials_with_mysql_skewed(BEHIND).await;
}

/// Two paced ticks back to back at R = 10 with MySQL skewed: each dials several targets (a tick
/// that compared MySQL's times with its own clock would sleep ~40 s or be refused), and the
/// stored times keep the rate's rule: never more than 10 in any 1 s, no two closer than the
/// spacing less its tolerance.
async fn paces_with_mysql_skewed(skew_s: i64) {
    let mut m = Mocks::new();
    dial_anything(&mut m, 20);
    let rate = 10.0;
    let pacing = Some(Pacing {
        max_concurrent_calls: None,
        dials_per_second: Some(rate),
    });
    let (mocked, campaign) = skewed_service(m, skew_s, pacing).await;
    let ticker: Ticker = mocked.ticker();
    let mut dialed = Vec::new();
    for _ in 0..2 {
        let (next, outcome) = ticker.tick(campaign.id, &fresh_fence()).await;
        assert_eq!(outcome, Outcome::Dialed);
        let Next::Continue(delay) = next else {
            panic!("{next:?}")
        };
        assert!(delay < Duration::from_secs(1), "next tick in {delay:?}");
        dialed.push(dial_times(&mocked, campaign.id).await.len());
        tokio::time::sleep(delay).await;
    }
    assert!(dialed[0] >= 2, "first tick dialed {dialed:?}");
    assert!(dialed[1] >= dialed[0] + 2, "second tick dialed {dialed:?}");
    let times = dial_times(&mocked, campaign.id).await;
    let r = DialRate::new(rate).expect("rate");
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= r.spacing() - r.tolerance(),
            "{pair:?} closer than the spacing"
        );
    }
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..]
            .iter()
            .take_while(|u| **u < *t + ChronoDuration::seconds(1))
            .count();
        assert!(in_window <= 10, "{in_window} dials in the second from {t}");
    }
    // Every dial time is MySQL's.
    let skew = ChronoDuration::seconds(skew_s);
    for t in &times {
        assert!((*t - (Utc::now() + skew)).num_seconds().abs() <= 10, "{t}");
    }
}

#[tokio::test]
async fn a_mysql_clock_40_s_ahead_still_paces_at_the_rate() {
    paces_with_mysql_skewed(AHEAD).await;
}

#[tokio::test]
async fn a_mysql_clock_40_s_behind_still_paces_at_the_rate() {
    paces_with_mysql_skewed(BEHIND).await;
}

/// A dial recorded now is not overdue (dial_timeout 1 s + margin 1.5 s); 3 s later it is, and
/// the oldest overdue age is about those 3 s, not the skew.
async fn overdue_with_mysql_skewed(skew_s: i64) {
    let (mocked, campaign) = skewed_service(Mocks::new(), skew_s, None).await;
    let dials = &mocked.ts.store.dials;
    let cc = support::records::campaigncall_of(&campaign, CampaigncallStatus::Dialing);
    let fence = DialFence {
        seq: 1,
        deadline: Utc::now() + ChronoDuration::seconds(30),
    };
    let recorded = dials.record(&cc, fence).await.expect("record");
    assert!(matches!(recorded, Recorded::Dial(_)), "{recorded:?}");
    let rule = OverdueRule {
        margin_ms: 1_500,
        max_call_ms: 3_600_000,
    };
    let overdue = dials.overdue(rule, 10).await.expect("overdue");
    assert!(
        overdue.is_empty(),
        "a dial just recorded is overdue: {overdue:?}"
    );
    let age = dials.oldest_overdue(rule).await.expect("oldest");
    assert_eq!(age, Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let overdue = dials.overdue(rule, 10).await.expect("overdue");
    assert_eq!(
        overdue
            .iter()
            .map(|o| o.campaigncall.id)
            .collect::<Vec<_>>(),
        vec![cc.id],
        "a dial 3 s old (dial_timeout 1 s + margin 1.5 s) is not overdue"
    );
    let age = dials.oldest_overdue(rule).await.expect("oldest");
    assert!(
        age >= Duration::from_millis(2_900) && age < Duration::from_secs(20),
        "oldest overdue age {age:?}"
    );
}

#[tokio::test]
async fn a_mysql_clock_40_s_ahead_judges_overdue_ages_right() {
    overdue_with_mysql_skewed(AHEAD).await;
}

#[tokio::test]
async fn a_mysql_clock_40_s_behind_judges_overdue_ages_right() {
    overdue_with_mysql_skewed(BEHIND).await;
}
