//! What finishing a campaigncall costs MySQL and what it reports (`store::campaigncalls`
//! `decide_with_target`): the statements of one hangup finish, counted on a store whose pool
//! has a single connection; the `campaigncall_updated` event and the cache carrying exactly the
//! stored row, also when the row changed between the event's read and the finish.

use crate::support;

use campaign_manager::events::Subscriptions;
use campaign_manager::model::*;
use campaign_manager::store::{DialFence, DialStep, Recorded};
use support::TestStore;
use support::mocked::Mocked;
use support::mocks::Mocks;
use support::records;
use uuid::Uuid;

/// A dial fence newer than any before in this process, with 30 s to run.
fn fence() -> DialFence {
    DialFence {
        seq: u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(0),
        deadline: chrono::Utc::now() + chrono::Duration::seconds(30),
    }
}

/// A running call campaign (with its outplan) of a new customer.
async fn running(m: &Mocked) -> Campaign {
    let customer = Uuid::new_v4();
    let o = m.insert_outplan(&records::outplan(customer)).await;
    m.insert_campaign(&records::running_campaign(customer, o.id))
        .await
}

/// A dial of `c` recorded as the tick does and advanced to `step`.
async fn dialed(m: &Mocked, c: &Campaign, step: DialStep) -> Campaigncall {
    let cc = records::campaigncall_of(c, CampaigncallStatus::Dialing);
    let cc = match m.ts.store.dials.record(&cc, fence()).await {
        Ok(Recorded::Dial(d)) => *d,
        other => panic!("not recorded: {other:?}"),
    };
    m.ts.store.dials.set_step(cc.id, step).await.expect("step");
    cc
}

/// A running campaign on a fresh service whose target writes succeed, and a dial of it at
/// `step`.
async fn dial_at(step: DialStep) -> (Mocked, Campaign, Campaigncall) {
    let mut mocks = Mocks::new();
    mocks
        .outdial
        .expect_set_target_status()
        .returning(|_, _| Ok(()));
    let m = Mocked::new(mocks).await;
    let c = running(&m).await;
    let cc = dialed(&m, &c, step).await;
    (m, c, cc)
}

fn hangup(call_id: Uuid, reason: &str) -> Call {
    Call {
        id: call_id,
        status: "hangup".into(),
        hangup_reason: reason.into(),
    }
}

/// The statements one `call_hangup` with `reason` costs, the handler's own read and stop check
/// included, for a dial at `step`; and the session's statement kinds after it (to show where a
/// count comes from). A first hangup warms the session (its statements prepared).
async fn statements_of_a_hangup(step: DialStep, reason: &str) -> (i64, Vec<(String, String)>) {
    let mut mocks = Mocks::new();
    mocks
        .outdial
        .expect_set_target_status()
        .times(2)
        .returning(|_, _| Ok(()));
    let m = Mocked::over(TestStore::on_one_connection().await, mocks);
    let c = running(&m).await;
    let events = Subscriptions::new(m.service.clone());
    let warm = dialed(&m, &c, step).await;
    events
        .call_hangup(hangup(warm.reference_id, reason))
        .await
        .expect("hangup");
    // A `done` target's outbox row is deleted a moment later with the process' others
    // (`Outbox::delete_soon`): written now, so that each hangup's delete is counted as one
    // statement of its own (with other finishes in the same window, they share it).
    let flush = || async { m.ts.store.outbox.flush_deletes().await.expect("deletes") };
    flush().await;
    let cc = dialed(&m, &c, step).await;
    let before = m.ts.statements().await;
    events
        .call_hangup(hangup(cc.reference_id, reason))
        .await
        .expect("hangup");
    flush().await;
    let spent = m.ts.statements().await - before;
    let kinds = m.ts.statement_kinds().await;
    let stored =
        m.ts.store
            .campaigncalls
            .get_fresh(cc.id)
            .await
            .expect("read")
            .expect("row");
    assert_eq!(stored.status, CampaigncallStatus::Done);
    assert_eq!(
        m.ts.store.dials.step(cc.id).await.expect("step"),
        Some(DialStep::Requested)
    );
    (spent, kinds)
}

/// One `normal` hangup of a dial the tick noted `requested` (the common case): the read of the
/// campaigncall (with its dial's step), the finish transaction (BEGIN, the compare-and-set,
/// the outbox INSERT, COMMIT), the outbox DELETE after the target write (written a moment later,
/// with the process' other finishes of that window, by one statement), and the stop check.
/// (Before: 10, with a SELECT in the transaction, the step UPDATE and the read-back.)
#[tokio::test]
async fn a_hangup_finish_costs_seven_statements() {
    let (spent, kinds) = statements_of_a_hangup(DialStep::Requested, "normal").await;
    eprintln!("statements per call_hangup (normal, dial requested): {spent}");
    assert_eq!(spent, 7, "session counters after: {kinds:?}");
}

/// A `fail` hangup sets the target `idle`, and a late success may have landed meanwhile
/// (`Service::settle_target`): the outbox row's DELETE checks that in the same statement, so
/// it costs the same. (Before: 11, a read of the campaigncall after the DELETE.)
#[tokio::test]
async fn a_failed_hangup_finish_costs_seven_statements_too() {
    let (spent, kinds) = statements_of_a_hangup(DialStep::Requested, "busy").await;
    eprintln!("statements per call_hangup (busy, dial requested): {spent}");
    assert_eq!(spent, 7, "session counters after: {kinds:?}");
}

/// A hangup of a dial the tick had not noted `requested` yet: one statement more, the step's
/// UPDATE in the finish transaction (what keeps its try from being freed). (Before: 10.)
#[tokio::test]
async fn a_hangup_of_a_dial_not_noted_requested_also_marks_it() {
    let (spent, kinds) = statements_of_a_hangup(DialStep::TargetClaimed, "normal").await;
    eprintln!("statements per call_hangup (normal, dial target_claimed): {spent}");
    assert_eq!(spent, 8, "session counters after: {kinds:?}");
}

/// The last `campaigncall_updated` the service published.
fn last_update(m: &Mocked) -> Campaigncall {
    let events = m.notifier.events.lock().expect("events");
    events
        .iter()
        .rev()
        .find_map(|e| match e {
            DomainEvent::CampaigncallUpdated(c) => Some(c.clone()),
            _ => None,
        })
        .expect("a campaigncall_updated")
}

/// What MySQL and the cache hold for `id`.
async fn stored_and_cached(m: &Mocked, id: Uuid) -> (Campaigncall, Campaigncall) {
    let calls = &m.ts.store.campaigncalls;
    let stored = calls.get_fresh(id).await.expect("read").expect("row");
    let cached = calls.get(id).await.expect("cache").expect("row");
    (stored, cached)
}

/// A hangup's finish is not read back, yet its event and the cache carry exactly the stored
/// row (its `tm_update` the one MySQL holds); a late success's too.
#[tokio::test]
async fn the_finished_rows_event_and_cache_are_the_stored_row() {
    let (m, _, cc) = dial_at(DialStep::Requested).await;
    // A row written more than once (its tm_update is then the stored one plus 1 µs or now).
    m.ts.store
        .campaigncalls
        .set_progressing(cc.id)
        .await
        .expect("progressing")
        .expect("changed");
    let events = Subscriptions::new(m.service.clone());
    events
        .call_hangup(hangup(cc.reference_id, "busy"))
        .await
        .expect("hangup");
    let (stored, cached) = stored_and_cached(&m, cc.id).await;
    assert_eq!(stored.result, CampaigncallResult::Fail);
    assert_eq!(last_update(&m), stored, "the finish's event");
    assert_eq!(cached, stored, "the finish's cache entry");
    // A late `normal`: the read finds it done/fail, the refinish is not read back either.
    events
        .call_hangup(hangup(cc.reference_id, "normal"))
        .await
        .expect("hangup");
    let (stored, cached) = stored_and_cached(&m, cc.id).await;
    assert_eq!(stored.result, CampaigncallResult::Success);
    assert_eq!(last_update(&m), stored, "the late success's event");
    assert_eq!(cached, stored, "the late success's cache entry");
}

/// The row changed between the event's read and the finish (here it went `progressing` by a
/// process whose clock is an hour ahead, so its `tm_update` is later than this finish's now):
/// the finish does not write over it as if it were the read (its `tm_update` would go back, and
/// the cache, which never replaces a newer row, would keep the old one): it decides again on
/// what is stored and reports that (read back).
#[tokio::test]
async fn a_row_changed_since_the_read_is_finished_and_reported_as_stored() {
    let (m, _, cc) = dial_at(DialStep::Requested).await;
    let read = m
        .service
        .campaigncall_by_call(cc.reference_id)
        .await
        .expect("read")
        .expect("campaigncall");
    assert!(read.dial_requested);
    sqlx::query(
        "UPDATE campaign_campaigncalls SET status = 'progressing', \
         tm_update = UTC_TIMESTAMP(6) + INTERVAL 1 HOUR WHERE id = ?",
    )
    .bind(cc.id.as_bytes().to_vec())
    .execute(&m.ts.db.pool)
    .await
    .expect("a change by a clock an hour ahead");
    let changed =
        m.ts.store
            .campaigncalls
            .get_fresh(cc.id)
            .await
            .expect("read")
            .expect("row");
    assert_eq!(changed.status, CampaigncallStatus::Progressing);
    let done = m
        .service
        .finish_from_event(&read, CampaigncallResult::Fail, "busy")
        .await
        .expect("finish")
        .expect("finished");
    let (stored, cached) = stored_and_cached(&m, cc.id).await;
    assert_eq!(done, stored, "the finish's return");
    assert_eq!(last_update(&m), stored, "the finish's event");
    assert_eq!(cached, stored, "the finish's cache entry");
    assert!(stored.tm_update > changed.tm_update);
    assert_eq!(
        m.events()
            .iter()
            .filter(|e| *e == "campaigncall_updated")
            .count(),
        1
    );
}

/// The lock order of a hangup's finish against a dial record of the same try (the record's
/// unique-violation path: `INSERT campaign_dials` refused, then `DELETE d ... JOIN c`, which
/// locks the dial row and then reads the campaigncall with a share lock), forced: a test
/// transaction holds the campaigncall's row, so the finish stops between its statements; the
/// record is started while it waits; then the test transaction ends. The finish locks the dial
/// row (marking it `requested`) before the campaigncall, the record's order, so the record waits
/// for it and then finds the try placed: no deadlock, nothing run again. (A finish that locked
/// the campaigncall first, like the two-table UPDATE tried before, holds it while the record
/// holds the dial row: MySQL kills one of them with 1213 and a retry is counted, which this
/// test refuses.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finish_and_a_record_of_the_same_try_do_not_deadlock() {
    // Placed, but the tick has not noted `requested` yet: the finish writes the step.
    let (m, c, placed) = dial_at(DialStep::TargetClaimed).await;
    let mut held = m.ts.db.pool.begin().await.expect("begin");
    sqlx::query("SELECT id FROM campaign_campaigncalls WHERE id = ? FOR UPDATE")
        .bind(placed.id.as_bytes().to_vec())
        .fetch_one(&mut *held)
        .await
        .expect("hold the campaigncall");
    let events = Subscriptions::new(m.service.clone());
    let call = placed.reference_id;
    let finish = tokio::spawn(async move { events.call_hangup(hangup(call, "normal")).await });
    let finish_waits = m.ts.db.until_waiting(1).await;

    let mut same_try = records::campaigncall_of(&c, CampaigncallStatus::Dialing);
    same_try.outdial_target_id = placed.outdial_target_id;
    same_try.destination_index = placed.destination_index;
    same_try.try_count = placed.try_count;
    let store = m.ts.store.clone();
    let record = tokio::spawn(async move { store.dials.record(&same_try, fence()).await });
    let both_wait = finish_waits && m.ts.db.until_waiting(2).await;
    // End the test transaction before any assertion (an open one would hang the drop).
    held.rollback().await.expect("rollback");
    assert!(finish_waits, "the finish never waited for the campaigncall");
    assert!(both_wait, "the record never waited");
    finish.await.expect("join").expect("hangup");
    let recorded = record.await.expect("join").expect("record");
    assert_eq!(
        recorded,
        Recorded::TryTaken,
        "the placed try is never freed"
    );
    let deadlocks =
        m.ts.store
            .campaigncalls
            .retries()
            .with_label_values(&["deadlock"])
            .get()
            + m.ts
                .store
                .dials
                .retries()
                .with_label_values(&["deadlock"])
                .get();
    assert_eq!(deadlocks, 0, "the finish and the record deadlocked");
    let (stored, _) = stored_and_cached(&m, placed.id).await;
    assert_eq!(stored.result, CampaigncallResult::Success);
    assert_eq!(
        m.ts.store.dials.step(placed.id).await.expect("step"),
        Some(DialStep::Requested)
    );
}

/// A finish transaction MySQL rolls back for a deadlock is run again at once and counted: a
/// test transaction (the heavier: it changed 20 rows, so MySQL picks the finish as the victim)
/// holds the campaigncall; the finish marks the dial row and waits for the campaigncall; the
/// test transaction then asks for the dial row: 1213 for the finish, which is run again, waits
/// for the test transaction to end, and finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finish_rolled_back_by_a_deadlock_is_run_again_and_counted() {
    let (m, c, placed) = dial_at(DialStep::TargetClaimed).await;
    let elsewhere = records::campaign_row(c.customer_id);
    for _ in 0..20 {
        m.insert_call(&elsewhere, CampaigncallStatus::Done).await;
    }
    let id = placed.id.as_bytes().to_vec();
    let mut held = m.ts.db.pool.begin().await.expect("begin");
    sqlx::query(
        "UPDATE campaign_campaigncalls SET try_count = try_count + 1 WHERE campaign_id = ?",
    )
    .bind(elsewhere.id.as_bytes().to_vec())
    .execute(&mut *held)
    .await
    .expect("weigh the test transaction");
    sqlx::query("SELECT id FROM campaign_campaigncalls WHERE id = ? FOR UPDATE")
        .bind(&id)
        .fetch_one(&mut *held)
        .await
        .expect("hold the campaigncall");
    let events = Subscriptions::new(m.service.clone());
    let call = placed.reference_id;
    let finish = tokio::spawn(async move { events.call_hangup(hangup(call, "normal")).await });
    let waiting = m.ts.db.until_waiting(1).await;
    let dial_row = if waiting {
        Some(
            sqlx::query("SELECT step FROM campaign_dials WHERE campaigncall_id = ? FOR UPDATE")
                .bind(&id)
                .fetch_optional(&mut *held)
                .await,
        )
    } else {
        None
    };
    // End the test transaction and let the finish end before any assertion.
    held.rollback().await.expect("rollback");
    let finished = tokio::time::timeout(std::time::Duration::from_secs(60), finish)
        .await
        .expect("the finish ends")
        .expect("join");
    let dial_row = dial_row.expect("the finish never waited for the campaigncall");
    assert!(
        dial_row.is_ok(),
        "the test transaction was the deadlock's victim: {dial_row:?}"
    );
    finished.expect("the finish is run again");
    let retries = m.ts.store.campaigncalls.retries();
    assert_eq!(retries.with_label_values(&["deadlock"]).get(), 1);
    let (stored, _) = stored_and_cached(&m, placed.id).await;
    assert_eq!(stored.result, CampaigncallResult::Success);
    assert_eq!(
        m.ts.store.dials.step(placed.id).await.expect("step"),
        Some(DialStep::Requested)
    );
}
