//! The campaigncall repair (src/service/repair.rs) against a real MariaDB/Redis test store,
//! with mockall mocks for the peers, and the rig its tests share (the outplan and campaign, a
//! campaigncall recorded with ids the mocks know beforehand, readers of the dial row and of the
//! repair's counters). A file per concern:
//! - `answers.rs`: what the repair does with each peer answer, a table per answer family;
//! - `passes.rs`: how a pass goes (order of erroring rows, backoff, the oldest-overdue gauge,
//!   the named lock);
//! - `campaigns.rs`: campaigns left `stopping` or `run` with `execute = stop`;
//! - `operator.rs`: the operator's force stop and finish, which settle without waiting;
//! - `dial_records.rs`: the dial record's refusals (src/store/dials.rs) the repair relies on to
//!   free a try.

mod answers;
mod campaigns;
mod dial_records;
mod operator;
mod passes;

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

    /// Sets the campaign's `execute` to `stop` (as a stop request does first).
    async fn tell_to_stop(&self, id: Uuid) {
        let store = &self.ts.store;
        assert!(
            store
                .campaigns
                .set_execute(id, Execute::Stop)
                .await
                .expect("execute")
        );
    }

    /// Moves the running campaign to `stopping`.
    async fn set_stopping(&self, id: Uuid) {
        let (from, to) = (&[CampaignStatus::Run], CampaignStatus::Stopping);
        let store = &self.ts.store;
        assert!(
            store
                .campaigns
                .transition(id, from, to, None)
                .await
                .expect("stopping")
        );
    }

    /// Sets the campaigncall's dial step.
    async fn set_step(&self, id: Uuid, step: DialStep) {
        self.ts.store.dials.set_step(id, step).await.expect("step");
    }

    /// Finishes the open campaigncall with `result` (its try left as it is).
    async fn finish(&self, id: Uuid, result: CampaigncallResult) {
        let store = &self.ts.store;
        let open = store
            .campaigncalls
            .finish(id, result)
            .await
            .expect("finish");
        open.expect("was open");
    }

    /// Whether a campaigncall of this id is stored.
    async fn stored(&self, id: Uuid) -> bool {
        let store = &self.ts.store;
        store
            .campaigncalls
            .get_fresh(id)
            .await
            .expect("read")
            .is_some()
    }

    /// The campaign's dial fence (the newest tick sequence that recorded a dial).
    async fn fence_of(&self, id: Uuid) -> u64 {
        self.ts.store.dials.fence(id).await.expect("fence")
    }

    /// Records a first try of `c` for a new target under `f`; it must be recorded.
    async fn first_try(&self, c: &Campaign, f: DialFence) -> Campaigncall {
        let first = support::records::campaigncall_of(c, CampaigncallStatus::Dialing);
        assert!(matches!(record(self, &first, f).await, Recorded::Dial(_)));
        first
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

    /// `(checks, tm_next_check is set)` of the campaigncall's dial row, if it has one.
    async fn dial_checks(&self, id: Uuid) -> Option<(i32, bool)> {
        let row: Option<(i32, Option<chrono::NaiveDateTime>)> = sqlx::query_as(
            "SELECT checks, tm_next_check FROM campaign_dials WHERE campaigncall_id = ?",
        )
        .bind(id.as_bytes().to_vec())
        .fetch_optional(&self.ts.db.pool)
        .await
        .expect("dial row");
        row.map(|(checks, next)| (checks, next.is_some()))
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

    /// Whether the repair noted a first typed 404 for the campaigncall (no dial row: no).
    async fn not_found_noted(&self, id: Uuid) -> bool {
        let row: Option<(Option<chrono::NaiveDateTime>,)> =
            sqlx::query_as("SELECT tm_not_found FROM campaign_dials WHERE campaigncall_id = ?")
                .bind(id.as_bytes().to_vec())
                .fetch_optional(&self.ts.db.pool)
                .await
                .expect("dial row");
        row.is_some_and(|(t,)| t.is_some())
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

fn bare(status: u16) -> PeerError {
    PeerError::Status {
        target: "peer".into(),
        status,
        typed: None,
    }
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
