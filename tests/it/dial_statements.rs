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
use campaign_manager::store::{DialFence, DialStep, Recorded};
use chrono::{Duration as ChronoDuration, Utc};
use support::TestStore;
use support::mocked::Mocked;
use support::mocks::Mocks;
use support::records::{self, campaigncall_of};
use uuid::Uuid;

/// A fence with 30 s to run, numbered `seq`.
fn fence(seq: u64) -> DialFence {
    DialFence {
        seq,
        deadline: Utc::now() + ChronoDuration::seconds(30),
    }
}

/// What the store's one session has run so far: its statements ([`TestStore::statements`])
/// and their kinds (`Com_*`), pings and the prepare/execute protocol counters aside.
async fn counters(ts: &TestStore) -> BTreeMap<String, i64> {
    let mut out: BTreeMap<String, i64> = ts
        .statement_kinds()
        .await
        .into_iter()
        .filter(|(k, _)| {
            !k.eq_ignore_ascii_case("Com_show_status")
                && !k.eq_ignore_ascii_case("Com_admin_commands")
                && !k.to_lowercase().starts_with("com_stmt_")
        })
        .map(|(k, v)| (k.to_lowercase(), v.parse().unwrap_or(0)))
        .collect();
    out.insert("questions".into(), ts.statements().await);
    out
}

/// What ran between two readings: the counters that moved.
fn ran(before: &BTreeMap<String, i64>, after: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, d)| *d != 0)
        .collect()
}

fn counts(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// A running call campaign on a store whose pool has one connection (an acquire that has to
/// wait for a second one fails after the pool's acquire timeout).
async fn one_session() -> (Mocked, Campaign) {
    let m = Mocked::over(TestStore::on_one_connection().await, Mocks::new());
    let customer = Uuid::new_v4();
    let o = m.insert_outplan(&records::outplan(customer)).await;
    let c = m
        .insert_campaign(&records::running_campaign(customer, o.id))
        .await;
    (m, c)
}

#[tokio::test]
async fn a_recorded_dial_is_six_statements_and_a_further_dial_of_its_tick_five() {
    let (m, campaign) = one_session().await;
    let store = &m.ts.store;
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
        let before = counters(&m.ts).await;
        let r = store.dials.record(&cc, fence(seq)).await.expect("record");
        let after = counters(&m.ts).await;
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
    let (m, campaign) = one_session().await;
    let store = &m.ts.store;
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
    .execute(&m.ts.db.pool)
    .await
    .expect("suppression entry");

    let before = counters(&m.ts).await;
    let r = store.dials.record(&cc, fence(seq)).await.expect("record");
    let after = counters(&m.ts).await;
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
    let (m, campaign) = one_session().await;
    let store = &m.ts.store;
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

    let before = counters(&m.ts).await;
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
    let after = counters(&m.ts).await;
    // The marks: one UPDATE; the rest are this test's reads of the steps.
    let ran = ran(&before, &after);
    assert_eq!(ran.get("com_update"), Some(&1), "{ran:?}");
}

#[tokio::test]
async fn every_dial_path_completes_on_a_pool_of_one_connection() {
    let (m, campaign) = one_session().await;
    let store = &m.ts.store;
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
