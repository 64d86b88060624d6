//! What a dial costs the shared MySQL, counted statement by statement: the record transaction
//! on a pool of one connection, whose session counters (`Com_*`, `Questions`) are read before
//! and after (`store::dials` module doc: six statements for a tick's first dial, five for a
//! further dial of the same tick, refusals included), and the `requested` marks written
//! together a window later, all of them by one statement (`store::soon`). And no dial path
//! holds a pooled connection while it waits for another: on a pool of one connection each
//! of them completes (one that did would wait out the pool's acquire timeout, and under load
//! every holder would wait on the next, as the finish once did).

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use campaign_manager::model::*;
use campaign_manager::store::{Cache, DialFence, DialStep, Recorded, Store};
use chrono::{Duration as ChronoDuration, Utc};
use sqlx::MySqlPool;
use support::mocked::Mocked;
use support::mocks::Mocks;
use support::records::campaigncall_of;
use uuid::Uuid;

/// A fence with 30 s to run, numbered `seq`.
fn fence(seq: u64) -> DialFence {
    DialFence {
        seq,
        deadline: Utc::now() + ChronoDuration::seconds(30),
    }
}

/// The statement counters of the pool's one session (the `SHOW` itself left out).
async fn counters(pool: &MySqlPool) -> BTreeMap<String, i64> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SHOW SESSION STATUS WHERE Variable_name = 'Questions' \
         OR Variable_name LIKE 'Com\\_%'",
    )
    .fetch_all(pool)
    .await
    .expect("session status");
    rows.into_iter()
        // The statements by kind; pings and the prepare/execute protocol counters aside.
        .filter(|(k, _)| {
            k != "Com_show_status" && k != "Com_admin_commands" && !k.starts_with("Com_stmt_")
        })
        .map(|(k, v)| (k.to_lowercase(), v.parse().unwrap_or(0)))
        .collect()
}

/// What ran between two readings: the counters that moved (`questions` less the `SHOW`).
fn ran(before: &BTreeMap<String, i64>, after: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    after
        .iter()
        .map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0);
            (k.clone(), if k == "questions" { d - 1 } else { d })
        })
        .filter(|(_, d)| *d != 0)
        .collect()
}

fn counts(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// A running call campaign, and a store over a pool of one connection on its database (an
/// acquire that has to wait for a second one fails after 2 s).
async fn one_session() -> (Mocked, Campaign, Store, MySqlPool) {
    let (mocked, campaign) = Mocked::with_running_call(Mocks::new(), |c| {
        c.end_handle = EndHandle::Continue;
    })
    .await;
    let dsn = campaign_manager::dsn::DatabaseDsn::parse(&mocked.ts.db.url).expect("test DSN");
    let pool = Store::pool_options(&dsn)
        .max_connections(1)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect_with(dsn.options)
        .await
        .expect("pool of one");
    let store = Store::with_pool(pool.clone(), Cache::disabled());
    (mocked, campaign, store, pool)
}

#[tokio::test]
async fn a_recorded_dial_is_six_statements_and_a_further_dial_of_its_tick_five() {
    let (_mocked, campaign, store, pool) = one_session().await;
    let seq = u64::try_from(Utc::now().timestamp_micros()).unwrap_or(1);
    // Warm-up: the fence row created, every statement prepared on the session.
    let first = campaigncall_of(&campaign, CampaigncallStatus::Dialing);
    let r = store
        .dials
        .record(&first, fence(seq))
        .await
        .expect("record");
    assert!(matches!(r, Recorded::Dial(_)), "{r:?}");

    let cases = [
        (
            "first dial of a new tick",
            seq + 1,
            6,
            Some(("com_update", 1)),
        ),
        ("further dial of the same tick", seq + 1, 5, None),
    ];
    for (what, seq, total, update) in cases {
        let cc = campaigncall_of(&campaign, CampaigncallStatus::Dialing);
        let before = counters(&pool).await;
        let r = store.dials.record(&cc, fence(seq)).await.expect("record");
        let after = counters(&pool).await;
        assert!(matches!(r, Recorded::Dial(_)), "{what}: {r:?}");
        let mut want = vec![
            ("questions", total),
            ("com_begin", 1),
            ("com_select", 1),
            ("com_insert_select", 1),
            ("com_insert", 1),
            ("com_commit", 1),
        ];
        want.extend(update);
        assert_eq!(ran(&before, &after), counts(&want), "{what}");
    }
}

#[tokio::test]
async fn a_suppressed_destination_is_refused_by_the_guarded_insert_and_one_more_read() {
    let (_mocked, campaign, store, pool) = one_session().await;
    let seq = u64::try_from(Utc::now().timestamp_micros()).unwrap_or(1);
    let warm = campaigncall_of(&campaign, CampaigncallStatus::Dialing);
    store.dials.record(&warm, fence(seq)).await.expect("record");
    let mut cc = campaigncall_of(&campaign, CampaigncallStatus::Dialing);
    cc.destination = Some(Address::tel("+15550009999"));
    sqlx::query(
        "INSERT INTO campaign_suppressions (id, customer_id, target, reason, tm_create) \
         VALUES (?, ?, '+15550009999', 'test', UTC_TIMESTAMP(6))",
    )
    .bind(Uuid::new_v4().as_bytes().to_vec())
    .bind(campaign.customer_id.as_bytes().to_vec())
    .execute(&pool)
    .await
    .expect("suppression entry");

    let before = counters(&pool).await;
    let r = store.dials.record(&cc, fence(seq)).await.expect("record");
    let after = counters(&pool).await;
    assert_eq!(r, Recorded::Suppressed);
    // begin, the locking read, the guarded insert (nothing inserted), the read that says
    // which check refused, rollback.
    assert_eq!(
        ran(&before, &after),
        counts(&[
            ("questions", 5),
            ("com_begin", 1),
            ("com_select", 2),
            ("com_insert_select", 1),
            ("com_rollback", 1),
        ])
    );
}

#[tokio::test]
async fn requested_marks_are_written_together_a_window_later() {
    let (_mocked, campaign, store, pool) = one_session().await;
    let seq = u64::try_from(Utc::now().timestamp_micros()).unwrap_or(1);
    let mut ids = Vec::new();
    for _ in 0..5 {
        let cc = campaigncall_of(&campaign, CampaigncallStatus::Dialing);
        let r = store.dials.record(&cc, fence(seq)).await.expect("record");
        assert!(matches!(r, Recorded::Dial(_)), "{r:?}");
        store
            .dials
            .set_step(cc.id, DialStep::TargetClaimed)
            .await
            .expect("claimed");
        ids.push(cc.id);
    }
    // A row already past the mark and one that is gone are left as they are.
    store
        .dials
        .set_step(ids[0], DialStep::Requested)
        .await
        .expect("requested");
    let gone = Uuid::new_v4();

    let before = counters(&pool).await;
    for id in ids.iter().chain([&gone]) {
        store.dials.mark_requested_soon(*id);
    }
    let mut steps = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        steps.clear();
        for id in &ids {
            steps.push(store.dials.step(*id).await.expect("step"));
        }
        if steps.iter().all(|s| *s == Some(DialStep::Requested)) {
            break;
        }
    }
    assert!(
        steps.iter().all(|s| *s == Some(DialStep::Requested)),
        "every dial marked: {steps:?}"
    );
    let after = counters(&pool).await;
    // The marks: one UPDATE; the rest are this test's reads of the steps.
    let ran = ran(&before, &after);
    assert_eq!(ran.get("com_update"), Some(&1), "{ran:?}");
}

#[tokio::test]
async fn every_dial_path_completes_on_a_pool_of_one_connection() {
    let (_mocked, campaign, store, _pool) = one_session().await;
    let seq = u64::try_from(Utc::now().timestamp_micros()).unwrap_or(1);
    let cc = campaigncall_of(&campaign, CampaigncallStatus::Dialing);
    let r = store.dials.record(&cc, fence(seq)).await.expect("record");
    assert!(matches!(r, Recorded::Dial(_)), "{r:?}");
    let (done, entry) = store
        .campaigncalls
        .finish_settling(cc.id, CampaigncallResult::Success, Some("normal"), true)
        .await
        .expect("finish on one connection")
        .expect("finished");
    assert_eq!(done.status, CampaigncallStatus::Done);
    let settled = store
        .outbox
        .settle_target(&entry, || async { Ok::<(), ()>(()) })
        .await
        .expect("settle on one connection");
    assert!(settled.is_ok());
    let stopped = store
        .campaigns
        .stop_execute_if(campaign.id, CampaignStatus::Run, Execute::Run, None)
        .await
        .expect("conditional stop on one connection");
    assert!(stopped);
}
