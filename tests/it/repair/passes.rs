//! How a repair pass goes: the longest-due row first so erroring rows never starve newer ones,
//! the backoff of a postponed row, the oldest-overdue gauge after each pass, and the named lock
//! (waited for, and a pass that loses it stopping).

use super::*;

/// Rows that keep erroring never starve newer ones: the longest-due row is asked first, and
/// a postponed row comes due only at its next check.
#[tokio::test]
async fn erroring_rows_do_not_starve_newer_ones() {
    let s = setup();
    let (old, new) = (planned(), planned());
    let mut m = Mocks::new();
    expect_get_call(&mut m, old.reference, 1, || Err(bare(500)));
    expect_get_call(&mut m, new.reference, 1, || {
        Ok(Some(call_in("hangup", "normal")))
    });
    expect_target(&mut m, new.target, TargetStatus::Done);
    let env = env_with(&s, m).await;
    let a = env
        .dial_planned(&s.campaign, &old, ReferenceType::Call, OVERDUE_SECS + 60)
        .await;
    let b = env
        .dial_planned(&s.campaign, &new, ReferenceType::Call, OVERDUE_SECS)
        .await;
    let one = RepairSettings {
        batch: 1,
        ..settings()
    };
    let first = env.service.repair_pass(&one).await.expect("pass");
    assert_eq!(
        (first.checked, first.finished),
        (1, 0),
        "the older row first"
    );
    // The erroring row is due again, but since just now: the newer row, due longer, goes first.
    env.wait_for_next_check(a.id, false).await;
    let second = env.service.repair_pass(&one).await.expect("pass");
    assert_eq!((second.checked, second.finished), (1, 1));
    assert_eq!(env.call(b.id).await.status, CampaigncallStatus::Done);
    assert_eq!(env.call(a.id).await.status, CampaigncallStatus::Dialing);
}

/// The backoff: 30 s doubling to 10 min by default.
#[test]
fn repair_backoff_doubles_to_its_cap() {
    let s = RepairSettings::default();
    let secs: Vec<u64> = (0..8).map(|n| s.delay(n).as_secs()).collect();
    assert_eq!(secs, [30, 60, 120, 240, 480, 600, 600, 600]);
    assert_eq!(s.delay(i32::MAX).as_secs(), 600);
}

/// `campaign_manager_repair_oldest_overdue_seconds`: after each pass, the age of the oldest
/// open campaigncall past its rule, postponed ones included (by MySQL's clock); 0 with none.
#[tokio::test]
async fn oldest_overdue_age_is_exported_after_each_pass() {
    let s = setup();
    let p = planned();
    let mut m = Mocks::new();
    m.call
        .expect_get_call()
        .returning(|_| Ok(Some(call_in("progressing", ""))));
    let env = env_with(&s, m).await;
    let rule = settings().rule;
    let none = env.ts.store.dials.oldest_overdue(rule).await.expect("read");
    assert_eq!(none, std::time::Duration::ZERO);
    env.metrics.repair_oldest_overdue_seconds.set(-1);
    let cc = env
        .dial_planned(&s.campaign, &p, ReferenceType::Call, OVERDUE_SECS)
        .await;
    // A young one is not overdue and does not count.
    env.dial(&s.campaign, ReferenceType::Call).await;

    let service = env.service.clone();
    let stop = async {
        while env.metrics.repair_oldest_overdue_seconds.get() < 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    campaign_manager::service::run_repair(
        service,
        settings(),
        std::time::Duration::from_millis(20),
        stop,
    )
    .await;
    let age = env.metrics.repair_oldest_overdue_seconds.get();
    assert!((OVERDUE_SECS..OVERDUE_SECS + 60).contains(&age), "{age}");
    // Postponed (still up) it still counts.
    assert_eq!(env.checks(cc.id).await.0, 1);
    let again = env.ts.store.dials.oldest_overdue(rule).await.expect("read");
    assert!(again.as_secs() >= u64::try_from(OVERDUE_SECS).unwrap_or(0));
}

#[tokio::test]
async fn pass_waits_for_the_lock_holder() {
    let s = setup();
    let p = planned();
    let mut m = Mocks::new();
    // Asked only by the pass after the lock is released.
    expect_get_call(&mut m, p.reference, 1, || Ok(Some(call_in("ringing", ""))));
    let env = env_with(&s, m).await;
    env.dial_planned(&s.campaign, &p, ReferenceType::Call, OVERDUE_SECS)
        .await;
    let mut other = s.campaign.clone();
    other.id = Uuid::new_v4();
    other.execute = Execute::Stop;
    env.ts
        .store
        .campaigns
        .create(&other)
        .await
        .expect("campaign");
    env.age_campaign(other.id, 60).await;

    // Another process: its own pool on the same database.
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&env.ts.db.url)
        .await
        .expect("second pool");
    let second = campaign_manager::store::Store::with_pool(pool.clone(), env.ts.prefix.cache());
    let lock = second
        .try_lock("campaigncall-repair")
        .await
        .expect("try lock")
        .expect("lock is free");

    let r = env.pass().await;
    assert_eq!(r, RepairReport::default(), "nothing done without the lock");
    assert!(!r.ran);
    assert_eq!(env.campaign(other.id).await.status, CampaignStatus::Run);
    assert_eq!(env.found("still_up"), 0);

    lock.release().await;
    let r = env.pass().await;
    assert!(r.ran);
    assert_eq!((r.checked, r.campaigns), (1, 1));
    assert_eq!(env.found("still_up"), 1);
    assert_eq!(env.campaign(other.id).await.status, CampaignStatus::Stop);
    pool.close().await;
}

/// Kills, from another session, the session holding the repair's named lock in database `db`
/// (as a dropped connection would end it). Blocking: it runs on its own thread and runtime, so
/// it can be called from a mock.
fn kill_repair_lock_holder(url: String, db: String) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            use sqlx::Connection;
            let mut conn = sqlx::MySqlConnection::connect(&url).await.expect("connect");
            let name: String = format!("{db}.campaigncall-repair")
                .chars()
                .take(64)
                .collect();
            let (holder,): (Option<i64>,) = sqlx::query_as("SELECT IS_USED_LOCK(?)")
                .bind(name)
                .fetch_one(&mut conn)
                .await
                .expect("lock holder");
            let holder = holder.expect("the pass holds the lock");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("KILL {holder}")))
                .execute(&mut conn)
                .await
                .expect("kill");
        });
    })
    .join()
    .expect("kill thread");
}

/// A pass whose lock session dies mid-pass (another process may then take the lock) stops
/// before the next campaigncall instead of repairing alongside the new holder.
#[tokio::test]
async fn pass_stops_when_its_lock_is_lost() {
    let s = setup();
    let (first, second) = (planned(), planned());
    let mut m = Mocks::new();
    let env_url = std::sync::Arc::new(std::sync::Mutex::new(None::<(String, String)>));
    let killer = env_url.clone();
    m.call
        .expect_get_call()
        .withf(move |id| *id == first.reference)
        .times(1)
        .returning(move |_| {
            let target = killer.lock().expect("mutex").clone();
            let (url, db) = target.expect("set before the pass");
            kill_repair_lock_holder(url, db);
            Ok(Some(call_in("progressing", "")))
        });
    // No expectation for the second campaigncall: asking about it fails the test.
    let env = env_with(&s, m).await;
    *env_url.lock().expect("mutex") = Some((env.ts.db.url.clone(), env.ts.db.name.clone()));
    env.dial_planned(&s.campaign, &first, ReferenceType::Call, OVERDUE_SECS + 60)
        .await;
    let later = env
        .dial_planned(&s.campaign, &second, ReferenceType::Call, OVERDUE_SECS)
        .await;

    let r = env.pass().await;
    assert!(r.ran);
    assert_eq!((r.checked, r.finished), (1, 0), "stopped after the first");
    assert_eq!(env.call(later.id).await.status, CampaigncallStatus::Dialing);
}
