//! The dial transaction checks everything it decides on inside it (`store::dials`): the
//! campaign's pacing as MySQL has it (a rate lowered in MySQL with no change notice applies to
//! the very next dial, whatever the tick cached), the concurrency cap and the queue's capacity
//! counted under the locked fence row (two records racing at cap − 1: exactly one is
//! recorded), and a deadlock (1213) that MySQL resolves by rolling the record back is run again
//! at once and counted.

use crate::support;

use std::time::Duration;

use campaign_manager::model::*;
use campaign_manager::service::tick::{Next, Outcome};
use campaign_manager::store::{DialFence, Recorded};
use chrono::{Duration as ChronoDuration, SubsecRound, Utc};
use sqlx::Connection;
use support::mocked::{Mocked, fresh_fence};
use support::mocks::Mocks;
use uuid::Uuid;

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

/// A fence newer than any before, with 30 s to run.
fn fence() -> DialFence {
    DialFence {
        seq: u64::try_from(Utc::now().timestamp_micros()).unwrap_or(0),
        deadline: Utc::now() + ChronoDuration::seconds(30),
    }
}

/// A running call campaign with `pacing` (and a queue when `queue`), on a service over `m`.
async fn running(m: Mocks, pacing: Option<Pacing>, queue: bool) -> (Mocked, Campaign) {
    Mocked::with_running_call(m, |c| {
        c.pacing = pacing;
        c.service_level = 100;
        c.queue_id = if queue { Uuid::new_v4() } else { Uuid::nil() };
        c.end_handle = EndHandle::Continue;
    })
    .await
}

#[tokio::test]
async fn a_rate_lowered_in_mysql_without_a_change_notice_applies_to_the_next_dial() {
    // The tick caches the campaign at 50 dials/s; the rate is then lowered to one dial every
    // 5 s in MySQL directly (no change notice: the cached copy stays at 50). The next tick's
    // record is refused with the new rate's instant: it sleeps for pacing and dials nothing.
    let mut m = Mocks::new();
    m.outdial
        .expect_available_targets()
        .times(2)
        .returning(|_, _, _| Ok(vec![never_tried_target()]));
    m.outdial
        .expect_set_target_progressing()
        .times(1)
        .returning(|_, _| Ok(()));
    m.call.expect_create_call().times(1).returning(|_| Ok(()));
    let pacing = Pacing {
        max_concurrent_calls: None,
        dials_per_second: Some(50.0),
    };
    let (mocked, campaign) = running(m, Some(pacing), false).await;
    let ticker = mocked.ticker();
    assert_eq!(
        ticker.tick(campaign.id, &fresh_fence()).await.1,
        Outcome::Dialed
    );
    sqlx::query("UPDATE campaign_campaigns SET pacing = ? WHERE id = ?")
        .bind(r#"{"dials_per_second": 0.2}"#)
        .bind(campaign.id.as_bytes().to_vec())
        .execute(&mocked.ts.db.pool)
        .await
        .expect("lower the rate behind the service's back");
    let cached = ticker
        .cache()
        .campaign(&mocked.ts.store, campaign.id)
        .await
        .expect("cached campaign")
        .expect("campaign");
    assert_eq!(
        cached.pacing.and_then(|p| p.dials_per_second),
        Some(50.0),
        "the tick's copy must still have the old rate for this test to mean anything"
    );
    let (next, outcome) = ticker.tick(campaign.id, &fresh_fence()).await;
    let Outcome::Sleeping("pacing", sleep) = outcome else {
        panic!("the next tick did not wait for the lowered rate: {outcome:?}")
    };
    assert!(sleep > Duration::from_secs(3), "{sleep:?}");
    assert_eq!(next, Next::Continue(sleep));
    let calls = mocked
        .ts
        .store
        .campaigncalls
        .list_ongoing(campaign.id, 10)
        .await
        .expect("calls");
    assert_eq!(calls.len(), 1);
}

/// Records two dials of the campaign at once (two targets), returning both outcomes.
async fn two_at_once(mocked: &Mocked, campaign: &Campaign, agents: Option<i64>) -> Vec<Recorded> {
    let dials = &mocked.ts.store.dials;
    let a = support::records::campaigncall_of(campaign, CampaigncallStatus::Dialing);
    let b = support::records::campaigncall_of(campaign, CampaigncallStatus::Dialing);
    let f = fence();
    let (ra, rb) = tokio::join!(
        dials.record_with(&a, f, agents, None),
        dials.record_with(&b, f, agents, None)
    );
    vec![ra.expect("record a"), rb.expect("record b")]
}

fn count(outcomes: &[Recorded], pred: impl Fn(&Recorded) -> bool) -> usize {
    outcomes.iter().filter(|r| pred(r)).count()
}

#[tokio::test]
async fn two_records_racing_at_one_below_the_cap_record_exactly_one() {
    let pacing = Pacing {
        max_concurrent_calls: Some(2),
        dials_per_second: None,
    };
    for round in 0..5 {
        let (mocked, campaign) = running(Mocks::new(), Some(pacing), false).await;
        mocked
            .insert_call(&campaign, CampaigncallStatus::Progressing)
            .await;
        let outcomes = two_at_once(&mocked, &campaign, None).await;
        assert_eq!(
            count(&outcomes, |r| matches!(r, Recorded::Dial(_))),
            1,
            "round {round}: {outcomes:?}"
        );
        assert_eq!(
            count(&outcomes, |r| *r == Recorded::AtCap),
            1,
            "round {round}: {outcomes:?}"
        );
    }
}

#[tokio::test]
async fn two_records_racing_at_one_below_the_queue_capacity_record_exactly_one() {
    // 2 agents × 100 % = 2, one call dialing: room for exactly one more.
    for round in 0..5 {
        let (mocked, campaign) = running(Mocks::new(), None, true).await;
        mocked
            .insert_call(&campaign, CampaigncallStatus::Dialing)
            .await;
        let outcomes = two_at_once(&mocked, &campaign, Some(2)).await;
        assert_eq!(
            count(&outcomes, |r| matches!(r, Recorded::Dial(_))),
            1,
            "round {round}: {outcomes:?}"
        );
        assert_eq!(
            count(&outcomes, |r| *r == Recorded::NoCapacity),
            1,
            "round {round}: {outcomes:?}"
        );
    }
}

#[tokio::test]
async fn a_cap_lowered_in_mysql_applies_to_the_next_record() {
    let pacing = Pacing {
        max_concurrent_calls: Some(5),
        dials_per_second: None,
    };
    let (mocked, campaign) = running(Mocks::new(), Some(pacing), false).await;
    let dials = &mocked.ts.store.dials;
    let first = support::records::campaigncall_of(&campaign, CampaigncallStatus::Dialing);
    assert!(matches!(
        dials.record(&first, fence()).await.expect("record"),
        Recorded::Dial(_)
    ));
    sqlx::query("UPDATE campaign_campaigns SET pacing = ? WHERE id = ?")
        .bind(r#"{"max_concurrent_calls": 1}"#)
        .bind(campaign.id.as_bytes().to_vec())
        .execute(&mocked.ts.db.pool)
        .await
        .expect("lower the cap");
    let second = support::records::campaigncall_of(&campaign, CampaigncallStatus::Dialing);
    assert_eq!(
        dials.record(&second, fence()).await.expect("record"),
        Recorded::AtCap
    );
}

// Multi-threaded: were the test to fail with the record's transaction open, its database's
// drop (which blocks its thread) must not stop the record from ending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_rolled_back_by_a_deadlock_is_run_again_and_counted() {
    // The record locks the fence row, then wants a share lock on the campaign row. A test
    // transaction holds the campaign row (with a change, so MySQL rolls the record back, the
    // smaller transaction) and then asks for the fence row: a deadlock (1213). The record is
    // run again at once, waits for the test transaction to end, and records.
    let (mocked, campaign) = running(Mocks::new(), None, false).await;
    let dials = &mocked.ts.store.dials;
    let warm = support::records::campaigncall_of(&campaign, CampaigncallStatus::Dialing);
    assert!(matches!(
        dials.record(&warm, fence()).await.expect("first record"),
        Recorded::Dial(_)
    ));
    let id = campaign.id.as_bytes().to_vec();
    let mut conn = mocked.ts.db.pool.acquire().await.expect("connection");
    let mut other = conn.begin().await.expect("begin");
    // Changes enough rows that MySQL rolls back the record (fewer changes), not this one.
    let elsewhere = support::records::campaign_row(campaign.customer_id);
    for _ in 0..20 {
        mocked
            .insert_call(&elsewhere, CampaigncallStatus::Done)
            .await;
    }
    sqlx::query(
        "UPDATE campaign_campaigncalls SET try_count = try_count + 1 WHERE campaign_id = ?",
    )
    .bind(elsewhere.id.as_bytes().to_vec())
    .execute(&mut *other)
    .await
    .expect("weigh the test transaction");
    sqlx::query("UPDATE campaign_campaigns SET detail = CONCAT(detail, '.') WHERE id = ?")
        .bind(&id)
        .execute(&mut *other)
        .await
        .expect("hold the campaign row");
    let cc = support::records::campaigncall_of(&campaign, CampaigncallStatus::Dialing);
    let store = mocked.ts.store.clone();
    let record = tokio::spawn(async move { store.dials.record(&cc, fence()).await });
    // Wait until the record waits for the campaign row (it holds the fence row then).
    let waiting = mocked.ts.db.until_waiting(1).await;
    let fence_row = if waiting {
        Some(
            sqlx::query("SELECT seq FROM campaign_dial_fences WHERE campaign_id = ? FOR UPDATE")
                .bind(&id)
                .fetch_optional(&mut *other)
                .await,
        )
    } else {
        None
    };
    // End both transactions, and let the record end, before any assertion: a test that fails
    // with a transaction open would hang its database's drop (which waits for its tables).
    let _ = other.rollback().await;
    drop(conn);
    let recorded = tokio::time::timeout(Duration::from_secs(60), record)
        .await
        .expect("the record ends")
        .expect("join");
    let fence_row = fence_row.expect("the record never waited for the campaign row");
    assert!(
        fence_row.is_ok(),
        "the test transaction was the deadlock's victim: {fence_row:?}"
    );
    let recorded = recorded.expect("the record is run again");
    assert!(matches!(recorded, Recorded::Dial(_)), "{recorded:?}");
    assert_eq!(dials.retries().with_label_values(&["deadlock"]).get(), 1);
}
