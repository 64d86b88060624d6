//! `campaign_dials` and `campaign_dial_fences`: the service's own record of each dial attempt,
//! which makes a dial at-most-once per (target, destination, try) whatever the interleaving of
//! stale and fresh ticks, and lets the campaigncall repair find what a crash left behind.
//!
//! A dial is recorded in one transaction ([`DialRecords::record`]):
//! 1. the campaign's fence row is locked; if it holds a higher tick sequence number than the
//!    tick's own, the tick is stale (its chain was re-seeded) and nothing is written;
//! 2. MySQL's clock must not have passed the tick's deadline (a tick that stalled past it may
//!    already have a successor, so it writes nothing);
//! 3. the campaign must still be `run` with `execute = run` (a stop that landed meanwhile wins);
//! 4. the destination must not be on the customer's suppression list (an unexpired entry, by
//!    MySQL's clock; a locking read, so an entry committed before it is seen and one being
//!    added waits for this dial: `suppressions::suppressed_in`);
//! 5. a callback's dial takes its callback (a compare-and-set); any other dial of a target
//!    with a pending callback is refused (`callbacks::take_in`, `callbacks::held_in`);
//! 6. the customer's dial limits across all its campaigns, if it has any
//!    (`customer_limits::admit_in`: the customer's row locked, its open calls counted, its dial
//!    rate applied to the creation time);
//! 7. the dial row is inserted: its unique key refuses a second record of one try;
//! 8. the campaigncall is inserted (`dialing`, with the call/activeflow ids chosen up front).
//!
//! With a dial rate (`pacing.dials_per_second`), between 1 and 2 the campaign's most recent dial
//! times are read and [`DialRate::next_allowed`] is applied to the creation time about to be
//! written: a dial due within [`PACING_WAIT_IN_TRANSACTION`] waits for its instant inside the
//! transaction (the fence row stays locked, so no other dial of the campaign can slip in), a
//! later one is refused with that instant ([`Recorded::Paced`]). The rule is thus checked on
//! exactly the times that are stored, whatever the tick's own clock or delays did; and since the
//! creation time is taken right after the wait, a dial lands at its allowed instant to about a
//! millisecond, which is what keeps the long-run rate at R (see `model::pacing`).
//!
//! Either all of it is committed or nothing. Afterwards the tick advances the row's `step` as the
//! dial progresses (target claimed, peer asked); the step tells the repair what may have
//! happened, and the ids tell it whom to ask.
//!
//! The fence compares with `<=`, not `<`: a tick may record several dials (one per target it
//! picks), while any tick older than one that already dialed is refused.

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use prometheus::{Histogram, HistogramOpts};
use sqlx::{Acquire, AssertSqlSafe, MySqlPool, Row};
use uuid::Uuid;

use super::campaigncalls::{Campaigncalls, insert_at};
use super::row::{RowReader, db_time, now, uuid_bytes};
use super::table::Record;
use super::{StoreError, StoreResult};
use crate::model::{Campaigncall, DialRate};

/// Longest wait for a paced dial's instant inside the recording transaction (the tick wakes
/// this much early at most; a dial due later is refused with its instant).
pub const PACING_WAIT_IN_TRANSACTION: Duration = Duration::from_millis(50);

/// The tick's fencing token and deadline, checked by MySQL when a dial is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialFence {
    /// The tick's sequence number in its chain (grows with every tick and every re-seed).
    pub seq: u64,
    /// After this instant (by the database's clock) the tick may record nothing.
    pub deadline: DateTime<Utc>,
}

/// How far a dial is known to have got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialStep {
    /// The campaigncall is written; the outdial target may or may not be claimed.
    Recorded,
    /// The target is claimed (`progressing` at outdial-manager); the peer is not asked yet, or
    /// its request may be in flight.
    TargetClaimed,
    /// The peer confirmed the call or the executed activeflow.
    Requested,
    /// The peer was asked and its reply was lost (timeout, transport): the call may exist.
    Unknown,
}

impl DialStep {
    fn as_str(self) -> &'static str {
        match self {
            DialStep::Recorded => "recorded",
            DialStep::TargetClaimed => "target_claimed",
            DialStep::Requested => "requested",
            DialStep::Unknown => "unknown",
        }
    }

    fn parse(s: &str) -> Option<DialStep> {
        Some(match s {
            "recorded" => DialStep::Recorded,
            "target_claimed" => DialStep::TargetClaimed,
            "requested" => DialStep::Requested,
            "unknown" => DialStep::Unknown,
            _ => return None,
        })
    }
}

/// What [`DialRecords::record`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// The dial is recorded; here is the campaigncall as stored.
    Dial(Box<Campaigncall>),
    /// A newer tick of the campaign already recorded a dial: this tick is stale.
    Stale,
    /// The tick's deadline has passed.
    Late,
    /// This (target, destination, try) is already recorded.
    TryTaken,
    /// The campaign is no longer `run` (or is gone).
    NotRunning,
    /// The campaign's dial rate allows its next dial only at this instant.
    Paced(DateTime<Utc>),
    /// The destination is on the customer's suppression list.
    Suppressed,
    /// The target has a pending callback, and this dial is not its own.
    CallbackPending,
    /// The callback of this dial is taken by another dial, deleted, or not due.
    CallbackTaken,
    /// The customer's calls up across all its campaigns are at its `max_concurrent_calls`
    /// (`store::customer_limits`).
    CustomerLimit,
    /// The customer's dial rate across all its campaigns allows its next dial only at this
    /// instant (`store::customer_limits`).
    CustomerPaced(DateTime<Utc>),
}

/// An open campaigncall the repair should look at.
#[derive(Debug, Clone, PartialEq)]
pub struct Overdue {
    /// The campaigncall.
    pub campaigncall: Campaigncall,
    /// Its dial step (`None` for campaigncalls this service did not record, e.g. the Go
    /// service's).
    pub step: Option<DialStep>,
    /// How often the repair already postponed it (the backoff's exponent).
    pub checks: i32,
    /// The peer's typed 404 was noted more than the margin ago (by MySQL's clock): with a
    /// second one, a create whose outcome was never answered is known never to have landed.
    pub not_found_past_margin: bool,
    /// Created longer ago than the longest call (by MySQL's clock): the repair stops asking.
    pub past_longest_call: bool,
}

/// When the repair looks at open campaigncalls.
#[derive(Debug, Clone, Copy)]
pub struct OverdueRule {
    /// Added to the outplan's `dial_timeout`: a campaigncall still `dialing` (or whose peer
    /// request is unconfirmed) that long after its creation is checked.
    pub margin_ms: i64,
    /// A `progressing` campaigncall whose peer confirmed it is checked after this long.
    pub max_call_ms: i64,
}

/// The statements of [`DialRecords::record`] inside its transaction: the creation time written,
/// or a refusal.
async fn record_in(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    cc: &Campaigncall,
    fence: DialFence,
    rate: Option<DialRate>,
    callback: Option<Uuid>,
) -> StoreResult<Result<NaiveDateTime, Recorded>> {
    let campaign = uuid_bytes(cc.campaign_id);
    let t = db_time(now());
    sqlx::query(
        "INSERT INTO campaign_dial_fences (campaign_id, seq, tm_update) VALUES (?, 0, ?) \
         ON DUPLICATE KEY UPDATE campaign_id = campaign_id",
    )
    .bind(&campaign)
    .bind(t)
    .execute(&mut **tx)
    .await?;
    let row = sqlx::query(
        "SELECT seq, UTC_TIMESTAMP(6) < ? AS in_time FROM campaign_dial_fences \
         WHERE campaign_id = ? FOR UPDATE",
    )
    .bind(db_time(fence.deadline))
    .bind(&campaign)
    .fetch_one(&mut **tx)
    .await?;
    let current: u64 = row.try_get("seq")?;
    let in_time: i64 = row.try_get("in_time")?;
    if current > fence.seq {
        return Ok(Err(Recorded::Stale));
    }
    if in_time != 1 {
        return Ok(Err(Recorded::Late));
    }
    let t = match rate {
        None => t,
        Some(rate) => match paced_instant(tx, &campaign, rate).await? {
            Ok(at) => at,
            Err(refusal) => return Ok(Err(refusal)),
        },
    };
    if rate.is_some() {
        let (in_time,): (i64,) = sqlx::query_as("SELECT UTC_TIMESTAMP(6) < ?")
            .bind(db_time(fence.deadline))
            .fetch_one(&mut **tx)
            .await?;
        if in_time != 1 {
            return Ok(Err(Recorded::Late));
        }
    }
    let running: Option<(i64,)> = sqlx::query_as(
        "SELECT 1 FROM campaign_campaigns WHERE id = ? AND status = 'run' \
         AND execute = 'run' AND tm_delete IS NULL LOCK IN SHARE MODE",
    )
    .bind(&campaign)
    .fetch_optional(&mut **tx)
    .await?;
    if running.is_none() {
        return Ok(Err(Recorded::NotRunning));
    }
    if let Some(key) = cc.destination.as_ref().and_then(|d| d.suppression_key())
        && super::suppressions::suppressed_in(tx, cc.customer_id, &key).await?
    {
        return Ok(Err(Recorded::Suppressed));
    }
    match callback {
        Some(id) if !super::callbacks::take_in(tx, id, cc.id).await? => {
            return Ok(Err(Recorded::CallbackTaken));
        }
        None if super::callbacks::held_in(tx, cc.campaign_id, cc.outdial_target_id).await? => {
            return Ok(Err(Recorded::CallbackPending));
        }
        _ => {}
    }
    let t = match super::customer_limits::admit_in(tx, cc.customer_id, t, fence.deadline).await? {
        Ok(t) => t,
        Err(refusal) => return Ok(Err(refusal)),
    };
    sqlx::query("UPDATE campaign_dial_fences SET seq = ?, tm_update = ? WHERE campaign_id = ?")
        .bind(fence.seq)
        .bind(t)
        .bind(&campaign)
        .execute(&mut **tx)
        .await?;
    let insert_dial = || {
        sqlx::query(
            "INSERT INTO campaign_dials (campaigncall_id, campaign_id, outdial_target_id, \
             destination_index, try_count, seq, step, checks, tm_create, tm_step, tm_next_check) \
             VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, NULL)",
        )
        .bind(uuid_bytes(cc.id))
        .bind(campaign.clone())
        .bind(uuid_bytes(cc.outdial_target_id))
        .bind(cc.destination_index)
        .bind(cc.try_count)
        .bind(fence.seq)
        .bind(DialStep::Recorded.as_str())
        .bind(t)
        .bind(t)
    };
    match insert_dial().execute(&mut **tx).await {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            // The try is taken. If its campaigncall is done and never got past the target
            // claim, no call was placed for it (a crash or refusal the repair or the tick
            // already resolved): the try is free again.
            let freed = sqlx::query(
                "DELETE d FROM campaign_dials d JOIN campaign_campaigncalls c \
                 ON c.id = d.campaigncall_id WHERE d.outdial_target_id = ? \
                 AND d.destination_index = ? AND d.try_count = ? AND c.status = 'done' \
                 AND d.step IN ('recorded', 'target_claimed')",
            )
            .bind(uuid_bytes(cc.outdial_target_id))
            .bind(cc.destination_index)
            .bind(cc.try_count)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if freed == 0 {
                return Ok(Err(Recorded::TryTaken));
            }
            insert_dial().execute(&mut **tx).await?;
        }
        Err(e) => return Err(e.into()),
    }
    insert_at(cc, t).execute(&mut **tx).await?;
    Ok(Ok(t))
}

/// The campaign's newest campaigncall creation times (index `(campaign_id, tm_create)`).
const RECENT_DIALS: &str = "SELECT tm_create FROM campaign_campaigncalls WHERE campaign_id = ? \
     AND tm_create IS NOT NULL ORDER BY tm_create DESC LIMIT ?";

/// The creation time of a paced dial: now, or its allowed instant if that is at most
/// [`PACING_WAIT_IN_TRANSACTION`] away (waited for here); a later instant is a refusal.
async fn paced_instant(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    campaign: &[u8],
    rate: DialRate,
) -> StoreResult<Result<NaiveDateTime, Recorded>> {
    let rows: Vec<(NaiveDateTime,)> = sqlx::query_as(RECENT_DIALS)
        .bind(campaign)
        .bind(rate.window_dials() as u64)
        .fetch_all(&mut **tx)
        .await?;
    let recent: Vec<DateTime<Utc>> = rows.into_iter().map(|(t,)| t.and_utc()).collect();
    let Some(allowed) = rate.next_allowed(&recent) else {
        return Ok(Ok(db_time(now())));
    };
    loop {
        let t = now();
        if t >= allowed {
            return Ok(Ok(db_time(t)));
        }
        let wait = (allowed - t).to_std().unwrap_or_default();
        if wait > PACING_WAIT_IN_TRANSACTION {
            return Ok(Err(Recorded::Paced(allowed)));
        }
        // Timers round up to the next millisecond, and the wall clock is read again after.
        tokio::time::sleep(wait).await;
    }
}

/// The open campaigncalls past their [`OverdueRule`] (binds: [`bind_rule`]): `dialing` (or
/// with an unconfirmed peer request) longer than the outplan's `dial_timeout` + the margin,
/// `progressing` unchanged longer than the longest call. Every age by MySQL's clock.
const OVERDUE_FROM: &str = "FROM campaign_campaigncalls c \
     LEFT JOIN campaign_dials d ON d.campaigncall_id = c.id \
     LEFT JOIN campaign_outplans o ON o.id = c.outplan_id \
     WHERE c.status IN ('dialing', 'progressing') AND c.tm_delete IS NULL \
       AND c.tm_create < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND \
       AND ( \
         ((c.status = 'dialing' OR (d.step IS NOT NULL AND d.step <> 'requested')) \
           AND c.tm_create < UTC_TIMESTAMP(6) \
             - INTERVAL (GREATEST(COALESCE(o.dial_timeout, 0), 0) + ?) * 1000 MICROSECOND) \
         OR (c.status = 'progressing' \
           AND COALESCE(c.tm_update, c.tm_create) < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND) \
       )";

/// Binds the three parameters of [`OVERDUE_FROM`].
fn bind_rule<'q, Q: BindRule<'q>>(q: Q, rule: OverdueRule) -> Q {
    let smallest = rule.margin_ms.min(rule.max_call_ms).max(0);
    q.bind_i64(smallest * 1000)
        .bind_i64(rule.margin_ms)
        .bind_i64(rule.max_call_ms.max(0) * 1000)
}

/// `bind` of the two query kinds [`bind_rule`] is used with.
trait BindRule<'q> {
    fn bind_i64(self, v: i64) -> Self;
}

impl<'q> BindRule<'q> for sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments> {
    fn bind_i64(self, v: i64) -> Self {
        self.bind(v)
    }
}

impl<'q, O> BindRule<'q> for sqlx::query::QueryAs<'q, sqlx::MySql, O, sqlx::mysql::MySqlArguments> {
    fn bind_i64(self, v: i64) -> Self {
        self.bind(v)
    }
}

/// Name of the histogram of [`DialRecords::pool_wait`].
pub const POOL_WAIT_METRIC: &str = "campaign_manager_dial_pool_wait_ms";

/// The dial repository.
#[derive(Clone)]
pub struct DialRecords {
    pool: MySqlPool,
    campaigncalls: Campaigncalls,
    pool_wait: Histogram,
}

/// The histogram of the time a dial's record waits for a pooled MySQL connection (ms).
fn pool_wait_histogram() -> Histogram {
    let opts = HistogramOpts::new(
        POOL_WAIT_METRIC,
        "Time a dial's record transaction waited for a pooled MySQL connection, in ms.",
    )
    .buckets(vec![0.1, 0.5, 1.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0]);
    // Constant name and increasing buckets: the only ways this could fail.
    Histogram::with_opts(opts).expect("constant histogram options are valid")
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

impl DialRecords {
    pub(super) fn new(pool: MySqlPool, campaigncalls: Campaigncalls) -> DialRecords {
        DialRecords {
            pool,
            campaigncalls,
            pool_wait: pool_wait_histogram(),
        }
    }

    /// The time each dial's record transaction waited for a pooled MySQL connection
    /// (`campaign_manager_dial_pool_wait_ms`, not registered anywhere: the process registers
    /// it in its registry). With every connection busy, ticks queue here.
    pub fn pool_wait(&self) -> Histogram {
        self.pool_wait.clone()
    }

    /// Records a dial attempt if the fence, the deadline, the campaign's state and the try all
    /// allow it (module doc). The campaigncall's cache entry is refreshed afterwards.
    pub async fn record(&self, cc: &Campaigncall, fence: DialFence) -> StoreResult<Recorded> {
        self.record_paced(cc, fence, None).await
    }

    /// [`DialRecords::record`], also holding the campaign to its dial rate (module doc).
    pub async fn record_paced(
        &self,
        cc: &Campaigncall,
        fence: DialFence,
        rate: Option<DialRate>,
    ) -> StoreResult<Recorded> {
        self.record_for(cc, fence, rate, None).await
    }

    /// [`DialRecords::record_paced`], as the dial of `callback` when given (it takes the
    /// callback in the same transaction), or as a dial that no pending callback holds back.
    pub async fn record_for(
        &self,
        cc: &Campaigncall,
        fence: DialFence,
        rate: Option<DialRate>,
        callback: Option<Uuid>,
    ) -> StoreResult<Recorded> {
        // The row is wholly known once written (its creation time is the one the transaction
        // chose, a paced dial's allowed instant or now), so it is not read back.
        let mut stored = cc.clone();
        stored.tm_update = None;
        stored.tm_delete = None;
        let waiting = Instant::now();
        let mut conn = self.pool.acquire().await?;
        self.pool_wait
            .observe(waiting.elapsed().as_secs_f64() * 1000.0);
        let mut tx = conn.begin().await?;
        let outcome = record_in(&mut tx, &stored, fence, rate, callback).await;
        match outcome {
            Ok(Ok(created)) => {
                tx.commit().await?;
                stored.tm_create = Some(created.and_utc().trunc_subsecs(6));
            }
            // Roll back right away: a transaction left for the pool to roll back later would
            // hold the fence row's lock until the connection is used again.
            Ok(Err(refusal)) => {
                tx.rollback().await?;
                return Ok(refusal);
            }
            Err(e) => {
                let _ = tx.rollback().await;
                return Err(e);
            }
        }
        self.campaigncalls.cache_written(&stored).await;
        Ok(Recorded::Dial(Box::new(stored)))
    }

    /// The creation times of the campaign's `n` newest campaigncalls, newest first: what the
    /// dial rate is applied to.
    pub async fn recent_dial_times(
        &self,
        campaign_id: Uuid,
        n: usize,
    ) -> StoreResult<Vec<DateTime<Utc>>> {
        let rows: Vec<(NaiveDateTime,)> = sqlx::query_as(RECENT_DIALS)
            .bind(uuid_bytes(campaign_id))
            .bind(n as u64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(t,)| t.and_utc()).collect())
    }

    /// Records that the dial of `campaigncall_id` reached `step`.
    pub async fn set_step(&self, campaigncall_id: Uuid, step: DialStep) -> StoreResult<()> {
        sqlx::query("UPDATE campaign_dials SET step = ?, tm_step = ? WHERE campaigncall_id = ?")
            .bind(step.as_str())
            .bind(db_time(now()))
            .bind(uuid_bytes(campaigncall_id))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The dial step of a campaigncall (`None`: not recorded by this service).
    pub async fn step(&self, campaigncall_id: Uuid) -> StoreResult<Option<DialStep>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT step FROM campaign_dials WHERE campaigncall_id = ?")
                .bind(uuid_bytes(campaigncall_id))
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|(s,)| DialStep::parse(&s)))
    }

    /// Frees the try of a dial that placed no call (refused, or never sent), so the same
    /// (target, destination, try) can be dialed again. Only for a campaigncall that is done.
    pub async fn release_try(&self, campaigncall_id: Uuid) -> StoreResult<()> {
        sqlx::query("DELETE FROM campaign_dials WHERE campaigncall_id = ?")
            .bind(uuid_bytes(campaigncall_id))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Postpones the repair's next look at a campaigncall by `after` (from MySQL's clock), and
    /// with `not_found` notes the peer's first typed 404 (kept once noted). A campaigncall this
    /// service did not record (the Go service's) gets a dial row here, at step `requested` (the
    /// peer had the call, so its try is never freed), so that it is postponed too rather than
    /// asked about on every pass; if its try is already keyed to another row, it stays without
    /// one.
    pub async fn check_later(
        &self,
        cc: &Campaigncall,
        after: Duration,
        not_found: bool,
    ) -> StoreResult<()> {
        let after_us = i64::try_from(after.as_micros()).unwrap_or(i64::MAX);
        let updated = sqlx::query(
            "UPDATE campaign_dials SET checks = checks + 1, \
             tm_next_check = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, \
             tm_not_found = CASE WHEN ? THEN COALESCE(tm_not_found, UTC_TIMESTAMP(6)) \
               ELSE tm_not_found END \
             WHERE campaigncall_id = ?",
        )
        .bind(after_us)
        .bind(not_found)
        .bind(uuid_bytes(cc.id))
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated == 0 {
            let t = db_time(now());
            sqlx::query(
                "INSERT IGNORE INTO campaign_dials (campaigncall_id, campaign_id, \
                 outdial_target_id, destination_index, try_count, seq, step, checks, tm_create, \
                 tm_step, tm_next_check) VALUES (?, ?, ?, ?, ?, 0, ?, 1, ?, ?, \
                 UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)",
            )
            .bind(uuid_bytes(cc.id))
            .bind(uuid_bytes(cc.campaign_id))
            .bind(uuid_bytes(cc.outdial_target_id))
            .bind(cc.destination_index)
            .bind(cc.try_count)
            .bind(DialStep::Requested.as_str())
            .bind(t)
            .bind(t)
            .bind(after_us)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Up to `limit` open campaigncalls past their rule whose next check is due, the longest
    /// due first (by next check, else by creation): a row postponed again and again never
    /// keeps a newer one from being looked at.
    pub async fn overdue(&self, rule: OverdueRule, limit: u32) -> StoreResult<Vec<Overdue>> {
        let columns: Vec<String> = Campaigncall::COLUMNS
            .split(',')
            .map(|c| format!("c.{}", c.trim()))
            .collect();
        let sql = format!(
            "SELECT {}, d.step AS dial_step, COALESCE(d.checks, 0) AS dial_checks, \
               COALESCE(d.tm_not_found < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND, 0) \
                 AS not_found_past_margin, \
               c.tm_create < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND AS past_longest_call \
             {OVERDUE_FROM} \
               AND (d.tm_next_check IS NULL OR d.tm_next_check <= UTC_TIMESTAMP(6)) \
             ORDER BY COALESCE(d.tm_next_check, c.tm_create) LIMIT ?",
            columns.join(", ")
        );
        let query = sqlx::query(AssertSqlSafe(sql))
            .bind(rule.margin_ms.max(0) * 1000)
            .bind(rule.max_call_ms.max(0) * 1000);
        let rows = bind_rule(query, rule)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let campaigncall = Campaigncall::from_row(&RowReader {
                    row,
                    table: Campaigncall::TABLE,
                })?;
                let step: Option<String> = row.try_get("dial_step")?;
                let checks: i64 = row.try_get("dial_checks")?;
                let past_margin: i64 = row.try_get("not_found_past_margin")?;
                let past_longest: Option<i64> = row.try_get("past_longest_call")?;
                Ok(Overdue {
                    campaigncall,
                    step: step.as_deref().and_then(DialStep::parse),
                    checks: i32::try_from(checks).unwrap_or(i32::MAX),
                    not_found_past_margin: past_margin == 1,
                    past_longest_call: past_longest == Some(1),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()
    }

    /// Age of the oldest open campaigncall past its rule (due or postponed), by MySQL's clock;
    /// zero when there is none.
    pub async fn oldest_overdue(&self, rule: OverdueRule) -> StoreResult<Duration> {
        let sql = format!(
            "SELECT TIMESTAMPDIFF(MICROSECOND, MIN(c.tm_create), UTC_TIMESTAMP(6)) \
             {OVERDUE_FROM}"
        );
        let (age,): (Option<i64>,) = bind_rule(sqlx::query_as(AssertSqlSafe(sql)), rule)
            .fetch_one(&self.pool)
            .await?;
        Ok(Duration::from_micros(
            u64::try_from(age.unwrap_or(0)).unwrap_or(0),
        ))
    }

    /// The highest tick number that recorded a dial of the campaign (0 when none).
    pub async fn fence(&self, campaign_id: Uuid) -> StoreResult<u64> {
        let row: Option<(u64,)> =
            sqlx::query_as("SELECT seq FROM campaign_dial_fences WHERE campaign_id = ?")
                .bind(uuid_bytes(campaign_id))
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(s,)| s).unwrap_or(0))
    }
}
