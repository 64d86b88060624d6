//! The campaigncall repair (src/service/repair.rs) against a real MariaDB/Redis test store,
//! with mockall mocks for the peers: one test per thing the peer can say, the overdue rule, the
//! named lock and the campaign states it completes; the operator's force stop, which settles
//! open campaigncalls the same way without waiting; then the dial record's refusals
//! (src/store/dials.rs) the repair relies on to free a try.

use crate::support;

use std::ops::Deref;

use campaign_manager::model::*;
use campaign_manager::peers::PeerError;
use campaign_manager::service::{RepairReport, RepairSettings};
use campaign_manager::store::{DialFence, DialStep, OverdueRule, Recorded};
use chrono::{Duration as ChronoDuration, Utc};
use support::mocked::Mocked;
use support::mocks::Mocks;
use support::records;
use uuid::Uuid;

/// The outplan's dial timeout: a `dialing` campaigncall is overdue after this + the margin.
const DIAL_TIMEOUT_MS: i32 = 30_000;
const MARGIN_MS: i64 = 60_000;
/// The longest call the repair waits for (one hour in these tests).
const MAX_CALL_MS: i64 = 3_600_000;
/// Old enough to be overdue while dialing, young enough to be under the longest call.
const OVERDUE_SECS: i64 = 600;
/// Older than the longest call.
const OVER_MAX_SECS: i64 = 7_200;

fn settings() -> RepairSettings {
    RepairSettings {
        rule: OverdueRule {
            margin_ms: MARGIN_MS,
            max_call_ms: MAX_CALL_MS,
        },
        batch: 100,
        settle: std::time::Duration::from_secs(10),
        ..RepairSettings::default()
    }
}

/// A fence newer than any issued before in this process, with 30 s to run.
fn fence() -> DialFence {
    DialFence {
        seq: u64::try_from(Utc::now().timestamp_micros()).unwrap_or(0),
        deadline: Utc::now() + ChronoDuration::seconds(30),
    }
}

fn timeout() -> PeerError {
    PeerError::Timeout {
        target: "bin-manager.call-manager.request".into(),
    }
}

fn call_in(status: &str, hangup_reason: &str) -> Call {
    Call {
        id: Uuid::new_v4(),
        status: status.into(),
        hangup_reason: hangup_reason.into(),
    }
}

fn activeflow_in(status: &str) -> Activeflow {
    Activeflow {
        id: Uuid::new_v4(),
        status: status.into(),
        tm_delete: None,
    }
}

/// A stored outplan and campaign (the campaign as given, default `run`/`run`).
struct Setup {
    outplan: Outplan,
    campaign: Campaign,
}

fn setup() -> Setup {
    let customer = Uuid::new_v4();
    let o = Outplan {
        dial_timeout: DIAL_TIMEOUT_MS,
        ..records::outplan(customer)
    };
    let c = records::running_campaign(customer, o.id);
    Setup {
        outplan: o,
        campaign: c,
    }
}

/// The mocked-peers service ([`Mocked`]) the repair runs on.
struct Env {
    mocked: Mocked,
}

impl Deref for Env {
    type Target = Mocked;

    fn deref(&self) -> &Mocked {
        &self.mocked
    }
}

impl Env {
    async fn new(m: Mocks) -> Env {
        Env {
            mocked: Mocked::new(m).await,
        }
    }

    async fn pass(&self) -> RepairReport {
        self.service
            .repair_pass(&settings())
            .await
            .expect("repair pass")
    }

    /// Records a `dialing` campaigncall of `c` through the dial store (as a tick does), for
    /// a new target, and returns it as stored.
    async fn dial(&self, c: &Campaign, kind: ReferenceType) -> Campaigncall {
        let mut cc = support::records::campaigncall_of(c, CampaigncallStatus::Dialing);
        cc.reference_type = kind;
        if kind == ReferenceType::Flow {
            cc.reference_id = cc.activeflow_id;
        }
        match self.ts.store.dials.record(&cc, fence()).await {
            Ok(Recorded::Dial(stored)) => *stored,
            other => panic!("dial not recorded: {other:?}"),
        }
    }

    /// Moves the campaigncall's creation (and last update) `secs` into the past.
    async fn age(&self, id: Uuid, secs: i64) {
        sqlx::query(
            "UPDATE campaign_campaigncalls SET tm_create = UTC_TIMESTAMP(6) - INTERVAL ? SECOND, \
             tm_update = UTC_TIMESTAMP(6) - INTERVAL ? SECOND WHERE id = ?",
        )
        .bind(secs)
        .bind(secs)
        .bind(id.as_bytes().to_vec())
        .execute(&self.ts.db.pool)
        .await
        .expect("age campaigncall");
    }

    /// Moves the campaign's last change `secs` into the past.
    async fn age_campaign(&self, id: Uuid, secs: i64) {
        sqlx::query(
            "UPDATE campaign_campaigns SET tm_update = UTC_TIMESTAMP(6) - INTERVAL ? SECOND \
             WHERE id = ?",
        )
        .bind(secs)
        .bind(id.as_bytes().to_vec())
        .execute(&self.ts.db.pool)
        .await
        .expect("age campaign");
    }

    /// The campaigncall as MySQL holds it.
    async fn call(&self, id: Uuid) -> Campaigncall {
        self.ts
            .store
            .campaigncalls
            .get_fresh(id)
            .await
            .expect("read campaigncall")
            .expect("campaigncall exists")
    }

    async fn step(&self, id: Uuid) -> Option<DialStep> {
        self.ts.store.dials.step(id).await.expect("read dial step")
    }

    /// `(checks, tm_next_check is set)` of the campaigncall's dial row.
    async fn checks(&self, id: Uuid) -> (i32, bool) {
        let (checks, next): (i32, Option<chrono::NaiveDateTime>) = sqlx::query_as(
            "SELECT checks, tm_next_check FROM campaign_dials WHERE campaigncall_id = ?",
        )
        .bind(id.as_bytes().to_vec())
        .fetch_one(&self.ts.db.pool)
        .await
        .expect("dial row");
        (checks, next.is_some())
    }

    /// Makes the campaigncall's next check due now and, with `past_margin`, its first typed 404
    /// (if noted) older than the margin: what waiting that long would do.
    async fn wait_for_next_check(&self, id: Uuid, past_margin: bool) {
        sqlx::query(
            "UPDATE campaign_dials SET tm_next_check = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND, \
             tm_not_found = CASE WHEN ? THEN tm_not_found - INTERVAL ? SECOND \
               ELSE tm_not_found END WHERE campaigncall_id = ?",
        )
        .bind(past_margin)
        .bind(MARGIN_MS / 1000 + 1)
        .bind(id.as_bytes().to_vec())
        .execute(&self.ts.db.pool)
        .await
        .expect("next check due");
    }

    /// Whether the repair noted a first typed 404 for the campaigncall.
    async fn not_found_noted(&self, id: Uuid) -> bool {
        let (t,): (Option<chrono::NaiveDateTime>,) =
            sqlx::query_as("SELECT tm_not_found FROM campaign_dials WHERE campaigncall_id = ?")
                .bind(id.as_bytes().to_vec())
                .fetch_one(&self.ts.db.pool)
                .await
                .expect("dial row");
        t.is_some()
    }

    fn found(&self, found: &str) -> u64 {
        self.metrics
            .campaigncall_repair_total
            .with_label_values(&[found])
            .get()
    }

    fn repaired(&self, repair: &str) -> u64 {
        self.metrics
            .campaign_repair_total
            .with_label_values(&[repair])
            .get()
    }
}

async fn env_with(s: &Setup, m: Mocks) -> Env {
    let env = Env::new(m).await;
    env.insert_outplan(&s.outplan).await;
    env.insert_campaign(&s.campaign).await;
    env
}

/// The repair's usual scenario: a running campaign with a planned campaigncall of `kind`
/// dialed `secs` ago, the peers answering as `expect` sets for it, and one repair pass.
async fn one_pass(
    kind: ReferenceType,
    secs: i64,
    expect: impl FnOnce(&mut Mocks, &Planned),
) -> (Env, Campaigncall, RepairReport) {
    let s = setup();
    let p = planned();
    let mut m = Mocks::new();
    expect(&mut m, &p);
    let env = env_with(&s, m).await;
    let cc = env.dial_planned(&s.campaign, &p, kind, secs).await;
    let r = env.pass().await;
    (env, cc, r)
}

/// call-manager answers `reply` for `call_id`, `times` times.
fn expect_get_call(
    m: &mut Mocks,
    call_id: Uuid,
    times: usize,
    reply: impl Fn() -> Result<Option<Call>, PeerError> + Send + 'static,
) {
    m.call
        .expect_get_call()
        .withf(move |id| *id == call_id)
        .times(times)
        .returning(move |_| reply());
}

/// flow-manager answers `reply` for `activeflow_id`, once.
fn expect_get_activeflow(
    m: &mut Mocks,
    activeflow_id: Uuid,
    reply: impl Fn() -> Result<Option<Activeflow>, PeerError> + Send + 'static,
) {
    m.flow
        .expect_get_activeflow()
        .withf(move |id| *id == activeflow_id)
        .times(1)
        .returning(move |_| reply());
}

/// outdial-manager is told once that `target_id` is `status`.
fn expect_target(m: &mut Mocks, target_id: Uuid, status: TargetStatus) {
    m.outdial
        .expect_set_target_status()
        .withf(move |id, s| *id == target_id && *s == status)
        .times(1)
        .returning(|_, _| Ok(()));
}

/// Ids of a campaigncall known before the env (and so the mocks) is built: the env is built
/// once with mocks configured for a campaigncall recorded afterwards, so the test records it
/// with these ids.
struct Planned {
    id: Uuid,
    target: Uuid,
    reference: Uuid,
    activeflow: Uuid,
}

fn planned() -> Planned {
    Planned {
        id: Uuid::new_v4(),
        target: Uuid::new_v4(),
        reference: Uuid::new_v4(),
        activeflow: Uuid::new_v4(),
    }
}

impl Env {
    /// Records the planned campaigncall of `c` (of `kind`) and ages it `secs`.
    async fn dial_planned(
        &self,
        c: &Campaign,
        p: &Planned,
        kind: ReferenceType,
        secs: i64,
    ) -> Campaigncall {
        let mut cc = support::records::campaigncall_of(c, CampaigncallStatus::Dialing);
        cc.id = p.id;
        cc.outdial_target_id = p.target;
        cc.reference_type = kind;
        cc.reference_id = if kind == ReferenceType::Flow {
            p.activeflow
        } else {
            p.reference
        };
        cc.activeflow_id = p.activeflow;
        let stored = match self.ts.store.dials.record(&cc, fence()).await {
            Ok(Recorded::Dial(stored)) => *stored,
            other => panic!("dial not recorded: {other:?}"),
        };
        self.age(stored.id, secs).await;
        stored
    }
}

// ---------------------------------------------------------------- call campaigncalls

/// A dial whose create was never answered (here only recorded) is judged never created on
/// the second typed 404 more than the margin after the first: fail, target idle, try free.
#[tokio::test]
async fn call_never_created_fails_and_frees_the_try() {
    let s = setup();
    let p = planned();
    let mut m = Mocks::new();
    expect_get_call(&mut m, p.reference, 2, || Ok(None));
    expect_target(&mut m, p.target, TargetStatus::Idle);
    let env = env_with(&s, m).await;
    let cc = env
        .dial_planned(&s.campaign, &p, ReferenceType::Call, OVERDUE_SECS)
        .await;
    assert_eq!(env.step(cc.id).await, Some(DialStep::Recorded));

    let first = env.pass().await;
    assert_eq!((first.checked, first.finished), (1, 0));
    assert_eq!(env.call(cc.id).await.status, CampaigncallStatus::Dialing);
    assert!(env.not_found_noted(cc.id).await);
    assert_eq!(env.found("not_found_once"), 1);
    env.wait_for_next_check(cc.id, true).await;

    let r = env.pass().await;
    assert_eq!(
        r,
        RepairReport {
            checked: 1,
            finished: 1,
            campaigns: 0,
            outbox: 0,
            ran: true
        }
    );
    let done = env.call(cc.id).await;
    assert_eq!(done.status, CampaigncallStatus::Done);
    assert_eq!(done.result, CampaigncallResult::Fail);
    assert_eq!(env.step(cc.id).await, None, "the try is released");
    assert_eq!(env.found("never_created"), 1);
    assert!(env.events().contains(&"campaigncall_updated".to_string()));
    // Done now: the next pass has nothing to ask.
    assert_eq!(env.pass().await.checked, 0);
}

/// The create's outcome is unknown (a timeout or a 5xx): one typed 404 is not enough, nor two
/// within the margin (a request a stalled consumer took may still land); two more than the
/// margin apart are.
#[tokio::test]
async fn unknown_dial_needs_two_not_founds_more_than_the_margin_apart() {
    let s = setup();
    let p = planned();
    let mut m = Mocks::new();
    expect_get_call(&mut m, p.reference, 3, || Ok(None));
    expect_target(&mut m, p.target, TargetStatus::Idle);
    let env = env_with(&s, m).await;
    let cc = env
        .dial_planned(&s.campaign, &p, ReferenceType::Call, OVERDUE_SECS)
        .await;
    env.ts
        .store
        .dials
        .set_step(cc.id, DialStep::Unknown)
        .await
        .expect("step");

    assert_eq!(env.pass().await.finished, 0, "one 404");
    assert_eq!(env.checks(cc.id).await, (1, true));
    assert_eq!(
        env.pass().await.checked,
        0,
        "not looked at before the margin"
    );
    env.wait_for_next_check(cc.id, false).await;
    assert_eq!(
        env.pass().await.finished,
        0,
        "a second 404 within the margin"
    );
    assert_eq!(env.call(cc.id).await.status, CampaigncallStatus::Dialing);
    assert_eq!(env.step(cc.id).await, Some(DialStep::Unknown));
    assert_eq!(env.found("not_found_once"), 2);
    env.wait_for_next_check(cc.id, true).await;

    assert_eq!(env.pass().await.finished, 1, "a second 404 past the margin");
    assert_eq!(env.call(cc.id).await.result, CampaigncallResult::Fail);
    assert_eq!(env.step(cc.id).await, None, "the try is released");
    assert_eq!(env.found("never_created"), 1);
}

/// call-manager answered the create (step `requested`): a 404 then is never taken for "never
/// created" (older call-manager versions answer 404 for any read error), however often and
/// however far apart. The call is looked at later, like one still up, and the person is not
/// dialed again while they may be talking.
#[tokio::test]
async fn answered_call_is_never_judged_never_created_by_a_404() {
    let s = setup();
    let p = planned();
    let mut m = Mocks::new();
    expect_get_call(&mut m, p.reference, 2, || Ok(None));
    // No target expectation: telling outdial-manager anything fails the test.
    let env = env_with(&s, m).await;
    let cc = env
        .dial_planned(&s.campaign, &p, ReferenceType::Call, OVERDUE_SECS)
        .await;
    env.ts
        .store
        .dials
        .set_step(cc.id, DialStep::Requested)
        .await
        .expect("step");

    for _ in 0..2 {
        let r = env.pass().await;
        assert_eq!((r.checked, r.finished), (1, 0));
        env.wait_for_next_check(cc.id, true).await;
    }
    assert_eq!(env.call(cc.id).await.status, CampaigncallStatus::Dialing);
    assert_eq!(env.step(cc.id).await, Some(DialStep::Requested));
    assert_eq!(env.found("not_found_after_answer"), 2);
    assert_eq!(env.found("never_created"), 0);
    assert_eq!(env.checks(cc.id).await.0, 2);
}

/// ... until the longest call: then it is given up as any call still reported up, its try kept.
#[tokio::test]
async fn answered_call_not_found_past_the_longest_call_is_given_up_keeping_its_try() {
    let s = setup();
    let p = planned();
    let mut m = Mocks::new();
    expect_get_call(&mut m, p.reference, 1, || Ok(None));
    expect_target(&mut m, p.target, TargetStatus::Idle);
    let env = env_with(&s, m).await;
    let cc = env
        .dial_planned(&s.campaign, &p, ReferenceType::Call, OVER_MAX_SECS)
        .await;
    env.ts
        .store
        .dials
        .set_step(cc.id, DialStep::Requested)
        .await
        .expect("step");

    let r = env.pass().await;
    assert_eq!((r.checked, r.finished), (1, 1));
    assert_eq!(env.call(cc.id).await.result, CampaigncallResult::Fail);
    assert_eq!(env.found("over_max_duration"), 1);
    assert_eq!(env.step(cc.id).await, Some(DialStep::Requested), "try kept");
    assert_eq!(
        record(&env, &same_try(&cc), fence()).await,
        Recorded::TryTaken
    );
}

#[tokio::test]
async fn call_hung_up_with_lost_event_finishes_with_its_reason() {
    let s = setup();
    let p = planned();
    let mut m = Mocks::new();
    expect_get_call(&mut m, p.reference, 1, || {
        Ok(Some(call_in("hangup", "normal")))
    });
    expect_target(&mut m, p.target, TargetStatus::Done);
    let env = env_with(&s, m).await;
    let cc = env
        .dial_planned(&s.campaign, &p, ReferenceType::Call, OVERDUE_SECS)
        .await;
    env.ts
        .store
        .dials
        .set_step(cc.id, DialStep::Requested)
        .await
        .expect("step");

    let r = env.pass().await;
    assert_eq!((r.checked, r.finished), (1, 1));
    let done = env.call(cc.id).await;
    assert_eq!(done.status, CampaigncallStatus::Done);
    assert_eq!(done.result, CampaigncallResult::Success);
    // A placed call keeps its try taken.
    assert_eq!(env.step(cc.id).await, Some(DialStep::Requested));
    assert_eq!(env.found("hangup_lost"), 1);
    assert_eq!(env.found("never_created"), 0);
}

#[tokio::test]
async fn call_still_up_is_looked_at_later() {
    let s = setup();
    let p = planned();
    let mut m = Mocks::new();
    // Asked once only: the second pass right after finds the next check not due.
    expect_get_call(&mut m, p.reference, 1, || {
        Ok(Some(call_in("progressing", "")))
    });
    let env = env_with(&s, m).await;
    let cc = env
        .dial_planned(&s.campaign, &p, ReferenceType::Call, OVERDUE_SECS)
        .await;
    env.ts
        .store
        .dials
        .set_step(cc.id, DialStep::Unknown)
        .await
        .expect("step");

    let r = env.pass().await;
    assert_eq!((r.checked, r.finished), (1, 0));
    assert_eq!(env.call(cc.id).await.status, CampaigncallStatus::Dialing);
    assert_eq!(env.checks(cc.id).await, (1, true));
    assert_eq!(env.found("still_up"), 1);

    let again = env.pass().await;
    assert_eq!((again.checked, again.finished, again.ran), (0, 0, true));
    assert_eq!(env.call(cc.id).await.status, CampaigncallStatus::Dialing);
    assert_eq!(env.found("still_up"), 1);
}

#[tokio::test]
async fn call_up_longer_than_the_longest_call_is_given_up() {
    let s = setup();
    let p = planned();
    let mut m = Mocks::new();
    expect_get_call(&mut m, p.reference, 1, || {
        Ok(Some(call_in("progressing", "")))
    });
    expect_target(&mut m, p.target, TargetStatus::Idle);
    let env = env_with(&s, m).await;
    let cc = env
        .dial_planned(&s.campaign, &p, ReferenceType::Call, 0)
        .await;
    // Answered and confirmed long ago, never heard of since.
    env.ts
        .store
        .campaigncalls
        .set_progressing(cc.id)
        .await
        .expect("progressing");
    env.ts
        .store
        .dials
        .set_step(cc.id, DialStep::Requested)
        .await
        .expect("step");
    env.age(cc.id, OVER_MAX_SECS).await;

    let r = env.pass().await;
    assert_eq!((r.checked, r.finished), (1, 1));
    let done = env.call(cc.id).await;
    assert_eq!(done.status, CampaigncallStatus::Done);
    assert_eq!(done.result, CampaigncallResult::Fail);
    assert_eq!(env.found("over_max_duration"), 1);
    assert_eq!(env.found("still_up"), 0);
}

#[tokio::test]
async fn confirmed_call_younger_than_the_longest_call_is_not_asked() {
    let s = setup();
    let p = planned();
    // No expectation: asking any peer fails the test.
    let env = env_with(&s, Mocks::new()).await;
    let cc = env
        .dial_planned(&s.campaign, &p, ReferenceType::Call, 0)
        .await;
    env.ts
        .store
        .campaigncalls
        .set_progressing(cc.id)
        .await
        .expect("progressing");
    env.ts
        .store
        .dials
        .set_step(cc.id, DialStep::Requested)
        .await
        .expect("step");
    env.age(cc.id, OVERDUE_SECS).await;

    let r = env.pass().await;
    assert_eq!((r.checked, r.finished, r.ran), (0, 0, true));
    assert_eq!(
        env.call(cc.id).await.status,
        CampaigncallStatus::Progressing
    );
}

// ---------------------------------------------------------------- flow campaigncalls

#[tokio::test]
async fn flow_never_created_fails_and_frees_the_try() {
    let s = setup();
    let p = planned();
    let mut m = Mocks::new();
    m.flow
        .expect_get_activeflow()
        .withf(move |id| *id == p.activeflow)
        .times(2)
        .returning(|_| Ok(None));
    expect_target(&mut m, p.target, TargetStatus::Idle);
    let env = env_with(&s, m).await;
    let cc = env
        .dial_planned(&s.campaign, &p, ReferenceType::Flow, OVERDUE_SECS)
        .await;
    assert_eq!(env.pass().await.finished, 0, "one 404");
    env.wait_for_next_check(cc.id, true).await;
    let r = env.pass().await;
    assert_eq!((r.checked, r.finished), (1, 1));
    let done = env.call(cc.id).await;
    assert_eq!(
        (done.status, done.result),
        (CampaigncallStatus::Done, CampaigncallResult::Fail)
    );
    assert_eq!(env.step(cc.id).await, None);
    assert_eq!(env.found("never_created"), 1);
}

#[tokio::test]
async fn flow_ended_with_lost_event_succeeds() {
    let (env, cc, r) = one_pass(ReferenceType::Flow, OVERDUE_SECS, |m, p| {
        expect_get_activeflow(m, p.activeflow, || Ok(Some(activeflow_in("ended"))));
        expect_target(m, p.target, TargetStatus::Done);
    })
    .await;
    assert_eq!((r.checked, r.finished), (1, 1));
    let done = env.call(cc.id).await;
    assert_eq!(
        (done.status, done.result),
        (CampaigncallStatus::Done, CampaigncallResult::Success)
    );
    assert_eq!(env.found("flow_ended"), 1);
}

#[tokio::test]
async fn flow_deleted_counts_as_ended() {
    let (env, cc, r) = one_pass(ReferenceType::Flow, OVERDUE_SECS, |m, p| {
        expect_get_activeflow(m, p.activeflow, || {
            Ok(Some(Activeflow {
                tm_delete: Some(Utc::now()),
                ..activeflow_in("running")
            }))
        });
        expect_target(m, p.target, TargetStatus::Done);
    })
    .await;
    assert_eq!((r.checked, r.finished), (1, 1));
    assert_eq!(env.call(cc.id).await.result, CampaigncallResult::Success);
    assert_eq!(env.found("flow_ended"), 1);
}

#[tokio::test]
async fn flow_running_stays_open() {
    let (env, cc, r) = one_pass(ReferenceType::Flow, OVERDUE_SECS, |m, p| {
        expect_get_activeflow(m, p.activeflow, || Ok(Some(activeflow_in("running"))));
    })
    .await;
    assert_eq!((r.checked, r.finished), (1, 0));
    assert_eq!(env.call(cc.id).await.status, CampaigncallStatus::Dialing);
    assert_eq!(env.checks(cc.id).await, (1, true));
    assert_eq!(env.found("still_up"), 1);
    assert_eq!(env.pass().await.checked, 0, "next check not due yet");
}

// ---------------------------------------------------------------- overdue rule and errors

#[tokio::test]
async fn recent_campaigncall_is_not_asked() {
    let s = setup();
    // No expectation: asking any peer fails the test.
    let env = env_with(&s, Mocks::new()).await;
    let cc = env.dial(&s.campaign, ReferenceType::Call).await;
    // Past the margin but not past dial_timeout + margin.
    env.age(cc.id, (MARGIN_MS / 1000) + 5).await;

    let r = env.pass().await;
    assert_eq!((r.checked, r.finished, r.ran), (0, 0, true));
    assert_eq!(env.call(cc.id).await.status, CampaigncallStatus::Dialing);
    assert_eq!(env.step(cc.id).await, Some(DialStep::Recorded));
}

fn bare(status: u16) -> PeerError {
    PeerError::Status {
        target: "peer".into(),
        status,
        typed: None,
    }
}

/// A peer that cannot say (a timeout, call-manager's bare 500, a bare 404) postpones the
/// campaigncall with the backoff of one still up: it is not asked again on every pass.
#[tokio::test]
async fn peer_error_postpones_it_with_the_backoff() {
    for err in [timeout(), bare(500), bare(404)] {
        let (env, cc, r) = one_pass(ReferenceType::Call, OVERDUE_SECS, |m, p| {
            let e = err.clone();
            expect_get_call(m, p.reference, 2, move || Err(e.clone()));
        })
        .await;
        assert_eq!((r.checked, r.finished, r.ran), (1, 0, true), "{err}");
        assert_eq!(env.call(cc.id).await.status, CampaigncallStatus::Dialing);
        assert_eq!(env.checks(cc.id).await, (1, true), "postponed: {err}");
        assert_eq!(env.found("peer_error"), 1);
        assert!(!env.not_found_noted(cc.id).await, "{err}");
        assert_eq!(env.pass().await.checked, 0, "next check not due yet: {err}");

        env.wait_for_next_check(cc.id, true).await;
        assert_eq!(env.pass().await.finished, 0, "{err}");
        assert_eq!(env.checks(cc.id).await, (2, true));
        assert_eq!(env.step(cc.id).await, Some(DialStep::Recorded));
    }
}

/// flow-manager's bare 400 for a failed read, past the longest call: given up (failed, target
/// idle, try kept as perhaps placed) rather than asked forever, so the campaign can end.
#[tokio::test]
async fn flow_peer_error_past_the_longest_call_is_given_up() {
    let s = setup();
    let p = planned();
    let mut m = Mocks::new();
    expect_get_activeflow(&mut m, p.activeflow, || Err(bare(400)));
    expect_target(&mut m, p.target, TargetStatus::Idle);
    let env = env_with(&s, m).await;
    let cc = env
        .dial_planned(&s.campaign, &p, ReferenceType::Flow, OVER_MAX_SECS)
        .await;
    // Claimed, and the activeflow asked for without an answer.
    env.ts
        .store
        .dials
        .set_step(cc.id, DialStep::Unknown)
        .await
        .expect("step");
    let r = env.pass().await;
    assert_eq!((r.checked, r.finished), (1, 1));
    let done = env.call(cc.id).await;
    assert_eq!(
        (done.status, done.result),
        (CampaigncallStatus::Done, CampaigncallResult::Fail)
    );
    assert_eq!(env.found("over_max_duration"), 1);
    assert_eq!(env.step(cc.id).await, Some(DialStep::Requested));
}

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

// ---------------------------------------------------------------- campaigns

#[tokio::test]
async fn stopping_campaign_stops_when_its_last_call_is_repaired() {
    let s = setup();
    let p = planned();
    let mut m = Mocks::new();
    expect_get_call(&mut m, p.reference, 1, || {
        Ok(Some(call_in("hangup", "normal")))
    });
    expect_target(&mut m, p.target, TargetStatus::Done);
    let env = env_with(&s, m).await;
    let cc = env
        .dial_planned(&s.campaign, &p, ReferenceType::Call, OVERDUE_SECS)
        .await;
    let id = s.campaign.id;
    assert!(
        env.ts
            .store
            .campaigns
            .set_execute(id, Execute::Stop)
            .await
            .expect("execute")
    );
    assert!(
        env.ts
            .store
            .campaigns
            .transition(id, &[CampaignStatus::Run], CampaignStatus::Stopping, None)
            .await
            .expect("stopping")
    );

    let r = env.pass().await;
    assert_eq!((r.checked, r.finished), (1, 1));
    assert_eq!(env.call(cc.id).await.status, CampaigncallStatus::Done);
    let c = env.campaign(id).await;
    assert_eq!((c.status, c.execute), (CampaignStatus::Stop, Execute::Stop));
    assert!(env.events().contains(&"campaign_status_stop".to_string()));
}

#[tokio::test]
async fn stopping_campaign_with_nothing_up_is_stopped() {
    let mut s = setup();
    s.campaign.status = CampaignStatus::Stopping;
    s.campaign.execute = Execute::Stop;
    let env = env_with(&s, Mocks::new()).await;
    let id = s.campaign.id;
    env.age_campaign(id, 60).await;

    let r = env.pass().await;
    assert_eq!((r.checked, r.campaigns), (0, 1));
    assert_eq!(env.campaign(id).await.status, CampaignStatus::Stop);
    assert_eq!(env.repaired("stopping_stopped"), 1);
    assert_eq!(env.events(), vec!["campaign_status_stop"]);
}

#[tokio::test]
async fn stopping_campaign_with_a_call_up_stays_stopping() {
    let s = setup();
    let env = env_with(&s, Mocks::new()).await;
    let id = s.campaign.id;
    // A fresh dial, not overdue: nothing to ask, and it keeps the campaign stopping.
    let cc = env.dial(&s.campaign, ReferenceType::Call).await;
    env.ts
        .store
        .campaigns
        .transition(
            id,
            &[CampaignStatus::Run],
            CampaignStatus::Stopping,
            Some(Execute::Stop),
        )
        .await
        .expect("stopping");
    env.age_campaign(id, 60).await;

    let r = env.pass().await;
    assert_eq!((r.checked, r.campaigns), (0, 0));
    assert_eq!(env.campaign(id).await.status, CampaignStatus::Stopping);
    assert_eq!(env.call(cc.id).await.status, CampaigncallStatus::Dialing);
    assert_eq!(env.repaired("stopping_stopped"), 0);
}

#[tokio::test]
async fn run_campaign_without_execution_is_stopped_once_settled() {
    let mut s = setup();
    s.campaign.execute = Execute::Stop;
    let env = env_with(&s, Mocks::new()).await;
    let id = s.campaign.id;
    env.age_campaign(id, 60).await;

    let r = env.pass().await;
    assert_eq!(r.campaigns, 1);
    let c = env.campaign(id).await;
    assert_eq!((c.status, c.execute), (CampaignStatus::Stop, Execute::Stop));
    assert_eq!(env.repaired("run_without_execution"), 1);
    assert_eq!(env.events(), vec!["campaign_status_stop"]);
}

#[tokio::test]
async fn run_campaign_just_changed_is_left_alone() {
    let s = setup();
    let env = env_with(&s, Mocks::new()).await;
    let id = s.campaign.id;
    // `execute = stop` written just now: its `end_execution` may still be running.
    assert!(
        env.ts
            .store
            .campaigns
            .set_execute(id, Execute::Stop)
            .await
            .expect("execute")
    );

    let r = env.pass().await;
    assert_eq!((r.campaigns, r.ran), (0, true));
    let c = env.campaign(id).await;
    assert_eq!((c.status, c.execute), (CampaignStatus::Run, Execute::Stop));
    assert_eq!(env.repaired("run_without_execution"), 0);
    assert!(env.events().is_empty());
}

// ---------------------------------------------------------------- the named lock

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

// ---------------------------------------------------------------- dial records

/// `force_stop` settles every open campaigncall of a `stopping` campaign at once, young ones
/// included, by what its peer says: never created → fail and the try freed; hung up → its
/// reason's result; still up or no answer → fail (the operator's word). Then the campaign
/// stops. A running campaign is refused, a stopped one returned as it is.
#[tokio::test]
async fn force_stop_settles_open_calls_by_their_peer_and_stops() {
    let s = setup();
    let (never, ended, up, silent) = (planned(), planned(), planned(), planned());
    let mut m = Mocks::new();
    expect_get_call(&mut m, never.reference, 1, || Ok(None));
    expect_get_call(&mut m, ended.reference, 1, || {
        Ok(Some(call_in("hangup", "normal")))
    });
    expect_get_call(&mut m, up.reference, 1, || {
        Ok(Some(call_in("progressing", "")))
    });
    expect_get_call(&mut m, silent.reference, 1, || Err(timeout()));
    expect_target(&mut m, never.target, TargetStatus::Idle);
    expect_target(&mut m, ended.target, TargetStatus::Done);
    expect_target(&mut m, up.target, TargetStatus::Idle);
    expect_target(&mut m, silent.target, TargetStatus::Idle);
    let env = env_with(&s, m).await;
    let id = s.campaign.id;
    let mut calls = Vec::new();
    for p in [&never, &ended, &up, &silent] {
        calls.push(
            env.dial_planned(&s.campaign, p, ReferenceType::Call, 0)
                .await,
        );
    }
    // The silent one was claimed and asked for; its reply was lost.
    env.ts
        .store
        .dials
        .set_step(silent.id, DialStep::Unknown)
        .await
        .expect("step");
    let refused = env.service.force_stop_campaign(id).await.unwrap_err();
    assert!(refused.to_string().contains("stop it first"), "{refused}");
    assert!(
        env.ts
            .store
            .campaigns
            .transition(id, &[CampaignStatus::Run], CampaignStatus::Stopping, None)
            .await
            .expect("stopping")
    );
    assert_eq!(env.pass().await.checked, 0, "too young for the repair");

    let c = env
        .service
        .force_stop_campaign(id)
        .await
        .expect("force stop");
    assert_eq!((c.status, c.execute), (CampaignStatus::Stop, Execute::Stop));
    let results: Vec<CampaigncallResult> = {
        let mut r = Vec::new();
        for cc in &calls {
            let done = env.call(cc.id).await;
            assert_eq!(done.status, CampaigncallStatus::Done, "{}", cc.id);
            r.push(done.result);
        }
        r
    };
    assert_eq!(
        results,
        [
            CampaigncallResult::Fail,
            CampaigncallResult::Success,
            CampaigncallResult::Fail,
            CampaigncallResult::Fail
        ]
    );
    assert_eq!(
        env.step(never.id).await,
        None,
        "a never-created call frees its try"
    );
    for p in [&ended, &up, &silent] {
        assert_eq!(
            env.step(p.id).await,
            Some(DialStep::Requested),
            "a placed (or perhaps placed) call keeps its try"
        );
    }
    assert!(env.events().contains(&"campaign_status_stop".to_string()));
    // Stopped: returned as it is, nothing asked again (the mocks allow one call each).
    let again = env.service.force_stop_campaign(id).await.expect("again");
    assert_eq!(again.status, CampaignStatus::Stop);
}

/// An operator's `finish` ends one campaigncall as a hangup would (target, event), keeps its
/// try used, and stops a `stopping` campaign with nothing else up; a second finish and a
/// result of `""` are refused without changing anything.
#[tokio::test]
async fn operator_finish_keeps_the_try_and_stops_a_stopping_campaign() {
    let s = setup();
    let p = planned();
    let mut m = Mocks::new();
    expect_target(&mut m, p.target, TargetStatus::Done);
    let env = env_with(&s, m).await;
    let id = s.campaign.id;
    let cc = env
        .dial_planned(&s.campaign, &p, ReferenceType::Call, 0)
        .await;
    assert!(
        env.ts
            .store
            .campaigns
            .set_execute(id, Execute::Stop)
            .await
            .expect("execute")
    );
    assert!(
        env.ts
            .store
            .campaigns
            .transition(id, &[CampaignStatus::Run], CampaignStatus::Stopping, None)
            .await
            .expect("stopping")
    );
    let refused = env
        .service
        .operator_finish_campaigncall(cc.id, CampaigncallResult::None, false)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("success or fail"), "{refused}");

    let done = env
        .service
        .operator_finish_campaigncall(cc.id, CampaigncallResult::Success, false)
        .await
        .expect("finish");
    assert_eq!(
        (done.status, done.result),
        (CampaigncallStatus::Done, CampaigncallResult::Success)
    );
    assert_eq!(env.step(cc.id).await, Some(DialStep::Requested));
    assert_eq!(env.campaign(id).await.status, CampaignStatus::Stop);
    let events = env.events();
    assert!(
        events.contains(&"campaigncall_updated".to_string()),
        "{events:?}"
    );
    assert!(
        events.contains(&"campaign_status_stop".to_string()),
        "{events:?}"
    );
    let again = env
        .service
        .operator_finish_campaigncall(cc.id, CampaigncallResult::Fail, false)
        .await
        .unwrap_err();
    assert!(
        again.to_string().contains("already done (result success)"),
        "{again}"
    );
    assert_eq!(env.call(cc.id).await.result, CampaigncallResult::Success);
}

/// A running campaign's try, recorded under `fence`.
async fn record(env: &Env, cc: &Campaigncall, fence: DialFence) -> Recorded {
    env.ts
        .store
        .dials
        .record(cc, fence)
        .await
        .expect("record dial")
}

/// The same (target, destination, try) as `cc`, as a new campaigncall.
fn same_try(cc: &Campaigncall) -> Campaigncall {
    Campaigncall {
        id: Uuid::new_v4(),
        reference_id: Uuid::new_v4(),
        activeflow_id: Uuid::new_v4(),
        status: CampaigncallStatus::Dialing,
        result: CampaigncallResult::None,
        tm_create: None,
        tm_update: None,
        tm_delete: None,
        ..cc.clone()
    }
}

#[tokio::test]
async fn abandoned_try_can_be_recorded_again() {
    let s = setup();
    let env = env_with(&s, Mocks::new()).await;
    let f = fence();
    let first = support::records::campaigncall_of(&s.campaign, CampaigncallStatus::Dialing);
    assert!(matches!(record(&env, &first, f).await, Recorded::Dial(_)));
    // Finished without its try released (a crash between the two): step still `recorded`.
    env.ts
        .store
        .campaigncalls
        .finish(first.id, CampaigncallResult::Fail)
        .await
        .expect("finish")
        .expect("was open");
    assert_eq!(env.step(first.id).await, Some(DialStep::Recorded));

    let again = same_try(&first);
    match record(&env, &again, f).await {
        Recorded::Dial(stored) => assert_eq!(stored.id, again.id),
        other => panic!("abandoned try not freed: {other:?}"),
    }
    assert_eq!(env.step(first.id).await, None);
    assert_eq!(env.step(again.id).await, Some(DialStep::Recorded));
}

#[tokio::test]
async fn done_try_whose_call_was_placed_stays_taken() {
    let s = setup();
    let env = env_with(&s, Mocks::new()).await;
    let f = fence();
    let first = support::records::campaigncall_of(&s.campaign, CampaigncallStatus::Dialing);
    assert!(matches!(record(&env, &first, f).await, Recorded::Dial(_)));
    env.ts
        .store
        .dials
        .set_step(first.id, DialStep::Requested)
        .await
        .expect("step");
    env.ts
        .store
        .campaigncalls
        .finish(first.id, CampaigncallResult::Success)
        .await
        .expect("finish")
        .expect("was open");

    let again = same_try(&first);
    assert_eq!(record(&env, &again, f).await, Recorded::TryTaken);
    assert_eq!(env.step(first.id).await, Some(DialStep::Requested));
    assert!(
        env.ts
            .store
            .campaigncalls
            .get_fresh(again.id)
            .await
            .expect("read")
            .is_none()
    );
}

#[tokio::test]
async fn open_try_is_taken() {
    let s = setup();
    let env = env_with(&s, Mocks::new()).await;
    let f = fence();
    let first = support::records::campaigncall_of(&s.campaign, CampaigncallStatus::Dialing);
    assert!(matches!(record(&env, &first, f).await, Recorded::Dial(_)));

    let again = same_try(&first);
    assert_eq!(record(&env, &again, f).await, Recorded::TryTaken);
    assert_eq!(env.step(again.id).await, None);
    assert!(
        env.ts
            .store
            .campaigncalls
            .get_fresh(again.id)
            .await
            .expect("read")
            .is_none(),
        "nothing written for a taken try"
    );
    assert_eq!(env.call(first.id).await.status, CampaigncallStatus::Dialing);
}

#[tokio::test]
async fn stale_fence_records_nothing() {
    let s = setup();
    let env = env_with(&s, Mocks::new()).await;
    let f = fence();
    let first = support::records::campaigncall_of(&s.campaign, CampaigncallStatus::Dialing);
    assert!(matches!(record(&env, &first, f).await, Recorded::Dial(_)));
    assert_eq!(
        env.ts
            .store
            .dials
            .fence(s.campaign.id)
            .await
            .expect("fence"),
        f.seq
    );

    // Another target, by a tick older than the one that dialed.
    let stale = support::records::campaigncall_of(&s.campaign, CampaigncallStatus::Dialing);
    let older = DialFence {
        seq: f.seq - 1,
        ..f
    };
    assert_eq!(record(&env, &stale, older).await, Recorded::Stale);
    assert_eq!(env.step(stale.id).await, None);
    // The same tick may dial several targets.
    let sibling = support::records::campaigncall_of(&s.campaign, CampaigncallStatus::Dialing);
    assert!(matches!(record(&env, &sibling, f).await, Recorded::Dial(_)));
    assert_eq!(
        env.ts
            .store
            .dials
            .fence(s.campaign.id)
            .await
            .expect("fence"),
        f.seq
    );
}

#[tokio::test]
async fn late_tick_records_nothing() {
    let s = setup();
    let env = env_with(&s, Mocks::new()).await;
    let cc = support::records::campaigncall_of(&s.campaign, CampaigncallStatus::Dialing);
    let late = DialFence {
        deadline: Utc::now() - ChronoDuration::seconds(1),
        ..fence()
    };
    assert_eq!(record(&env, &cc, late).await, Recorded::Late);
    assert_eq!(env.step(cc.id).await, None);
    assert_eq!(
        env.ts
            .store
            .dials
            .fence(s.campaign.id)
            .await
            .expect("fence"),
        0
    );
}

#[tokio::test]
async fn campaign_not_running_records_nothing() {
    let mut s = setup();
    s.campaign.status = CampaignStatus::Stopping;
    s.campaign.execute = Execute::Stop;
    let env = env_with(&s, Mocks::new()).await;
    let cc = support::records::campaigncall_of(&s.campaign, CampaigncallStatus::Dialing);
    assert_eq!(record(&env, &cc, fence()).await, Recorded::NotRunning);

    // `run` but told to stop: refused too.
    let id = s.campaign.id;
    env.ts
        .store
        .campaigns
        .transition(id, &[CampaignStatus::Stopping], CampaignStatus::Run, None)
        .await
        .expect("run");
    assert_eq!(env.campaign(id).await.execute, Execute::Stop);
    assert_eq!(record(&env, &cc, fence()).await, Recorded::NotRunning);
    assert_eq!(env.step(cc.id).await, None);
    assert!(
        env.ts
            .store
            .campaigncalls
            .get_fresh(cc.id)
            .await
            .expect("read")
            .is_none()
    );
}

#[tokio::test]
async fn legacy_call_still_up_is_looked_at_later() {
    let s = setup();
    let mut m = Mocks::new();
    let mut legacy = support::records::campaigncall_of(&s.campaign, CampaigncallStatus::Dialing);
    legacy.outplan_id = s.outplan.id;
    // Asked once only, although the Go service recorded no dial row for it.
    expect_get_call(&mut m, legacy.reference_id, 1, || {
        Ok(Some(call_in("ringing", "")))
    });
    let env = env_with(&s, m).await;
    env.ts
        .store
        .campaigncalls
        .create(&legacy)
        .await
        .expect("campaigncall");
    env.age(legacy.id, OVERDUE_SECS).await;
    assert_eq!(env.step(legacy.id).await, None);

    let r = env.pass().await;
    assert_eq!((r.checked, r.finished), (1, 0));
    assert_eq!(env.found("still_up"), 1);
    assert_eq!(env.checks(legacy.id).await, (1, true));

    let again = env.pass().await;
    assert_eq!(again.checked, 0, "next check not due yet");
    assert_eq!(
        env.call(legacy.id).await.status,
        CampaigncallStatus::Dialing
    );
}

#[tokio::test]
async fn call_found_at_the_peer_keeps_its_try_taken() {
    let s = setup();
    let p = planned();
    let mut m = Mocks::new();
    expect_get_call(&mut m, p.reference, 1, || {
        Ok(Some(call_in("hangup", "busy")))
    });
    expect_target(&mut m, p.target, TargetStatus::Idle);
    let env = env_with(&s, m).await;
    let cc = env
        .dial_planned(&s.campaign, &p, ReferenceType::Call, OVERDUE_SECS)
        .await;
    // The tick claimed the target and sent the call, then crashed before noting the request.
    env.ts
        .store
        .dials
        .set_step(cc.id, DialStep::TargetClaimed)
        .await
        .expect("step");

    let r = env.pass().await;
    assert_eq!((r.checked, r.finished), (1, 1));
    assert_eq!(env.call(cc.id).await.result, CampaigncallResult::Fail);
    assert_eq!(env.found("hangup_lost"), 1);
    // The peer knew the call: it was placed, so its try is not free again.
    assert_eq!(env.step(cc.id).await, Some(DialStep::Requested));
    let again = same_try(&cc);
    assert_eq!(record(&env, &again, fence()).await, Recorded::TryTaken);
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

/// A dial never claimed (step `recorded`: outdial-manager counted no try) that the repair
/// cannot resolve before the longest call (its peer kept failing) is given up with its try
/// freed: outdial-manager offers the target again with that same try, which a kept row would
/// refuse forever, so the target would never be dialed and the campaign never end.
#[tokio::test]
async fn unclaimed_dial_given_up_frees_its_try() {
    let (env, cc, r) = one_pass(ReferenceType::Call, OVER_MAX_SECS, |m, p| {
        expect_get_call(m, p.reference, 1, || Err(bare(500)));
        expect_target(m, p.target, TargetStatus::Idle);
    })
    .await;
    assert_eq!((r.checked, r.finished), (1, 1));
    assert_eq!(env.call(cc.id).await.result, CampaigncallResult::Fail);
    assert_eq!(env.found("over_max_duration"), 1);
    assert_eq!(env.step(cc.id).await, None, "the try is released");
    assert!(matches!(
        record(&env, &same_try(&cc), fence()).await,
        Recorded::Dial(_)
    ));
}

/// `force_stop` of a dial never claimed (step `recorded`) whose peer cannot be asked frees its
/// try rather than keeping a try outdial-manager never counted.
#[tokio::test]
async fn force_stop_frees_the_try_of_a_dial_never_claimed() {
    let s = setup();
    let p = planned();
    let mut m = Mocks::new();
    expect_get_call(&mut m, p.reference, 1, || Err(timeout()));
    expect_target(&mut m, p.target, TargetStatus::Idle);
    let env = env_with(&s, m).await;
    let cc = env
        .dial_planned(&s.campaign, &p, ReferenceType::Call, 0)
        .await;
    let id = s.campaign.id;
    assert!(
        env.ts
            .store
            .campaigns
            .transition(id, &[CampaignStatus::Run], CampaignStatus::Stopping, None)
            .await
            .expect("stopping")
    );
    let c = env
        .service
        .force_stop_campaign(id)
        .await
        .expect("force stop");
    assert_eq!(c.status, CampaignStatus::Stop);
    assert_eq!(env.call(cc.id).await.result, CampaigncallResult::Fail);
    assert_eq!(env.step(cc.id).await, None, "the try is released");
}
