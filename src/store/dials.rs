//! `campaign_dials` and `campaign_dial_fences`: the service's own record of each dial attempt,
//! which makes a dial at-most-once per (target, destination, try) whatever the interleaving of
//! stale and fresh ticks, and lets the campaigncall repair find what a crash left behind.
//!
//! A dial is recorded in one transaction ([`DialRecords::record_with`]), and everything it
//! decides on is read inside it. Its first statement ([`lock_dial`]) locks the campaign's fence
//! row, the campaign's row and the customer's limit row (or that missing key's gap) and reads
//! MySQL's clock; the checks that can only refuse ride on the dial row's insert
//! ([`GuardedDial`]). Unpaced, with no customer limit and no callback: six statements (begin,
//! the locking read, the fence update, the guarded dial insert, the campaigncall insert,
//! commit), five for a further dial of the same tick (the fence already holds its number).
//! 1. the fence row is locked and MySQL's clock read (`UTC_TIMESTAMP(6)`); if the row holds a
//!    higher tick sequence number than the tick's own, the tick is stale (its chain was
//!    re-seeded) and nothing is written;
//! 2. the tick's deadline must not have passed (a tick that stalled past it may already have a
//!    successor). The deadline is on the tick's own clock and only the time left until it is
//!    used, once the fence row is held: its image on MySQL's clock is the time just read plus
//!    that budget, so no timestamp of another clock is ever compared with MySQL's;
//! 3. the campaign must still be `run` with `execute = run` (a stop that landed meanwhile wins;
//!    its row is locked by the same statement), and its `pacing` and `service_level` are read
//!    from that row, not from a tick's cached copy (a lowered rate or cap applies to the very
//!    next dial);
//! 4. the customer's dial limits across all its campaigns, if it has any (its row locked by the
//!    same statement; `customer_limits::admit_in`: its open calls counted, its dial rate
//!    applied to MySQL's now, a dial before its instant refused with it like step 5's);
//! 5. with a limit, the campaign's open campaigncalls are counted (and, with a dial rate, its
//!    most recent creation times read, in the same statement): at `max_concurrent_calls` up the
//!    dial is refused ([`Recorded::AtCap`]), and with a queue when `agents × service_level / 100`
//!    (agents asked by the caller just before) does not exceed the `dialing` ones
//!    ([`Recorded::NoCapacity`]); [`DialRate::next_allowed`] is applied to MySQL's now against
//!    the stored creation times, and a dial before its instant is refused with that instant
//!    ([`Recorded::Paced`], converted to the caller's clock: nothing waits inside the
//!    transaction, the tick waits and records again). These counts are read after the fence
//!    row is locked, so two racing ticks of a campaign see each other's dials;
//! 6. the destination must not be on the customer's suppression list (an unexpired entry, by
//!    MySQL's clock), and 7. a callback's dial takes its callback (a compare-and-set,
//!    `callbacks::take_in`), while any other dial of a target with a pending callback is
//!    refused: the suppression and pending-callback checks are the `NOT EXISTS` conditions of
//!    the dial row's `INSERT … SELECT` ([`GuardedDial`]), which reads them with shared next-key
//!    locks, so an entry or a callback committed before is seen and one being added waits for
//!    this dial (`suppressions::push_suppressed`, `callbacks::push_held`); when it inserts
//!    nothing, one more read says which refused;
//! 8. the dial row is inserted: its unique key refuses a second record of one try;
//! 9. the campaigncall is inserted (`dialing`, with the call/activeflow ids chosen up front).
//!
//! The campaigncall's and the dial's `tm_create` and the fence's `tm_update` are the MySQL time
//! read in step 1, and the returned campaigncall carries it: the pacing rule and the repair's
//! overdue rule then compare MySQL's times with MySQL's clock.
//!
//! Either all of it is committed or nothing. A deadlock (1213) or lock wait timeout (1205)
//! rolls the whole transaction back, and it is run again at once, a bounded number of times
//! ([`RECORD_ATTEMPTS`], counted in `campaign_manager_dial_record_retries_total`). Afterwards the
//! tick advances the row's `step` as the dial progresses (target claimed, peer asked); the step
//! tells the repair what may have happened, and the ids tell it whom to ask.
//!
//! The fence compares with `<=`, not `<`: a tick may record several dials (one per target it
//! picks), while any tick older than one that already dialed is refused.

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};
use prometheus::{Histogram, HistogramOpts, IntCounterVec};
use sqlx::{Acquire, AssertSqlSafe, MySqlPool, Row};
use uuid::Uuid;

use super::campaigncalls::{Campaigncalls, insert_at};
use super::retry;
use super::row::{RowReader, db_time, now, uuid_bytes};
use super::soon::Soon;
use super::table::Record;
use super::{StoreError, StoreResult};
use crate::model::{Campaigncall, Pacing};

/// How often a dial's record transaction is run when MySQL rolls it back for a deadlock or a
/// lock wait timeout (the first run included).
pub const RECORD_ATTEMPTS: u32 = retry::ATTEMPTS;

/// The tick's fencing token and deadline, checked when a dial is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialFence {
    /// The tick's sequence number in its chain (grows with every tick and every re-seed).
    pub seq: u64,
    /// After this instant the tick may record nothing. It is on this process' clock
    /// (`Utc::now()`): the record uses only the time left until it (module doc, step 2).
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

/// What recording a dial did ([`DialRecords::record_with`]): the one dial outcome the service
/// and the tick act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// The dial is recorded; here is the campaigncall as stored (`tm_create` by MySQL's clock).
    Dial(Box<Campaigncall>),
    /// A newer tick of the campaign already recorded a dial: this tick is stale.
    Stale,
    /// The tick's deadline has passed.
    Late,
    /// This (target, destination, try) is already recorded.
    TryTaken,
    /// The campaign is no longer `run` (or is gone).
    NotRunning,
    /// The campaign's dial rate allows its next dial only at this instant (on the caller's
    /// clock, `Utc::now()`: MySQL's allowed instant less MySQL's now, added to the caller's now).
    Paced(DateTime<Utc>),
    /// The destination is on the customer's suppression list.
    Suppressed,
    /// The campaign already has `pacing.max_concurrent_calls` calls up.
    AtCap,
    /// The queue's capacity (`agents × service_level / 100`) does not exceed the campaign's
    /// dialing calls.
    NoCapacity,
    /// The target has a pending callback, and this dial is not its own.
    CallbackPending,
    /// The callback of this dial is taken by another dial, deleted, or not due.
    CallbackTaken,
    /// The customer's calls up across all its campaigns are at its `max_concurrent_calls`
    /// (`store::customer_limits`).
    CustomerLimit,
    /// The customer's dial rate across all its campaigns allows its next dial only at this
    /// instant (on the caller's clock, as [`Recorded::Paced`]; `store::customer_limits`).
    CustomerPaced(DateTime<Utc>),
}

impl Recorded {
    /// Why nothing was recorded, as logged and counted (`dial_refused_total`) and as the tick's
    /// waiting reason; `recorded` for a dial.
    pub fn reason(&self) -> &'static str {
        match self {
            Recorded::Dial(_) => "recorded",
            Recorded::Stale => "stale_tick",
            Recorded::Late => "late_tick",
            Recorded::TryTaken => "try_taken",
            Recorded::NotRunning => "not_running",
            Recorded::Paced(_) => "paced",
            Recorded::Suppressed => "suppressed",
            Recorded::AtCap => "pacing",
            Recorded::NoCapacity => "no_capacity",
            Recorded::CallbackPending => "callback_pending",
            Recorded::CallbackTaken => "callback_taken",
            Recorded::CustomerLimit | Recorded::CustomerPaced(_) => "customer_limit",
        }
    }
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

/// The statements of [`DialRecords::record_with`] inside its transaction (module doc), after
/// the one locking read [`lock_dial`]: the creation time written (MySQL's), or a refusal.
async fn record_in(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    cc: &Campaigncall,
    fence: DialFence,
    agents: Option<i64>,
    callback: Option<Uuid>,
    locked: Locked,
) -> StoreResult<Result<NaiveDateTime, Recorded>> {
    let campaign = uuid_bytes(cc.campaign_id);
    let now = locked.now;
    // 1. The fence row is locked and MySQL's now read (`lock_dial`): every time this dial
    // writes, and the `now` of every comparison made on stored times.
    // This process' clock at MySQL's `now` (a hair later: conversions err towards later).
    let local_now = Utc::now();
    if locked.seq > fence.seq {
        return Ok(Err(Recorded::Stale));
    }
    // 2. The time left to the deadline, with the fence row held (a lock wait counts).
    if local_now >= fence.deadline {
        return Ok(Err(Recorded::Late));
    }
    // 3. The campaign as MySQL has it (read and locked with the fence row).
    let Some((pacing, service_level)) = locked.campaign else {
        return Ok(Err(Recorded::NotRunning));
    };
    // 4. The customer's limits, its row locked with the fence row and read before this
    // transaction's first plain read, so the reads after it see every dial of the customer
    // committed before (`customer_limits`).
    if let Some(limits) = locked.customer_limits
        && let Some(refusal) =
            super::customer_limits::admit_in(tx, cc.customer_id, limits, now, local_now).await?
    {
        return Ok(Err(refusal));
    }
    // 5. Its own limits, on what is stored.
    if let Some(refusal) =
        limits(tx, &campaign, pacing, agents, service_level, now, local_now).await?
    {
        return Ok(Err(refusal));
    }
    // 7. A callback's dial takes its callback (the other dials' callback check, and the
    // suppression list's, are in the dial row's insert, step 8).
    if let Some(id) = callback
        && !super::callbacks::take_in(tx, id, cc.id).await?
    {
        return Ok(Err(Recorded::CallbackTaken));
    }
    // The fence moves to this tick's number (a further dial of the same tick leaves it).
    if locked.seq < fence.seq {
        sqlx::query("UPDATE campaign_dial_fences SET seq = ?, tm_update = ? WHERE campaign_id = ?")
            .bind(fence.seq)
            .bind(now)
            .bind(&campaign)
            .execute(&mut **tx)
            .await?;
    }
    // 6.-8. The dial row, inserted only when the destination is not suppressed and (for a dial
    // that is not a callback's) no callback holds the target.
    let key = cc.destination.as_ref().and_then(|d| d.suppression_key());
    let guarded = GuardedDial {
        cc,
        seq: fence.seq,
        now,
        suppression_key: key.as_deref(),
        callback_check: callback.is_none(),
    };
    let inserted = match guarded.insert(tx).await {
        Ok(n) => n,
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
            guarded.insert(tx).await?
        }
        Err(e) => return Err(e.into()),
    };
    if inserted == 0 {
        return Ok(Err(guarded.refusal(tx).await?));
    }
    // 9. The campaigncall.
    insert_at(cc, now).execute(&mut **tx).await?;
    Ok(Ok(now))
}

/// The dial row's insert with the checks that only refuse (steps 6 and 7 of the module doc)
/// as its condition: one statement. An `INSERT … SELECT` reads the tables of its condition
/// with shared next-key locks (InnoDB, at `REPEATABLE READ`, on MySQL and MariaDB alike), as
/// the `LOCK IN SHARE MODE` reads it replaces did: a suppression entry or a callback committed
/// before it is seen, and one being added waits for this dial's commit.
struct GuardedDial<'a> {
    cc: &'a Campaigncall,
    seq: u64,
    now: NaiveDateTime,
    /// The destination's key on the suppression list (none: not checked).
    suppression_key: Option<&'a str>,
    /// Whether a pending callback of the target refuses the dial (not for a callback's own).
    callback_check: bool,
}

impl GuardedDial<'_> {
    /// Inserts the row unless a check refuses it: the rows inserted (0 or 1).
    async fn insert(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    ) -> Result<u64, sqlx::Error> {
        let cc = self.cc;
        let mut q = sqlx::QueryBuilder::<sqlx::MySql>::new(
            "INSERT INTO campaign_dials (campaigncall_id, campaign_id, outdial_target_id, \
             destination_index, try_count, seq, step, checks, tm_create, tm_step, tm_next_check) \
             SELECT ",
        );
        let mut values = q.separated(", ");
        values
            .push_bind(uuid_bytes(cc.id))
            .push_bind(uuid_bytes(cc.campaign_id))
            .push_bind(uuid_bytes(cc.outdial_target_id))
            .push_bind(cc.destination_index)
            .push_bind(cc.try_count)
            .push_bind(self.seq)
            .push_bind(DialStep::Recorded.as_str())
            .push("0")
            .push_bind(self.now)
            .push_bind(self.now)
            .push("NULL");
        q.push(" FROM DUAL WHERE 1 = 1");
        if let Some(key) = self.suppression_key {
            q.push(" AND NOT EXISTS (");
            super::suppressions::push_suppressed(&mut q, cc.customer_id, key);
            q.push(")");
        }
        if self.callback_check {
            q.push(" AND NOT EXISTS (");
            super::callbacks::push_held(&mut q, cc.campaign_id, cc.outdial_target_id);
            q.push(")");
        }
        Ok(q.build().execute(&mut **tx).await?.rows_affected())
    }

    /// Which check refused an insert that wrote nothing (read again inside the transaction: the
    /// rows the insert saw are locked, so they still stand).
    async fn refusal(&self, tx: &mut sqlx::Transaction<'_, sqlx::MySql>) -> StoreResult<Recorded> {
        if let Some(key) = self.suppression_key
            && super::suppressions::suppressed_in(tx, self.cc.customer_id, key).await?
        {
            return Ok(Recorded::Suppressed);
        }
        Ok(Recorded::CallbackPending)
    }
}

/// What [`lock_dial`] read with the fence row's lock.
struct Locked {
    /// The fence's tick number.
    seq: u64,
    /// MySQL's now.
    now: NaiveDateTime,
    /// The campaign's `pacing` and `service_level`, when it is `run` with `execute = run`.
    campaign: Option<(Option<Pacing>, i32)>,
    /// The customer's dial limits, when it has a row of them.
    customer_limits: Option<Pacing>,
}

/// Steps 1, 3 and 4's lock of the record, in one statement: the campaign's fence row locked
/// with its sequence number and MySQL's now, the campaign's row (locked too: the dials of a
/// campaign are serialised by the fence row anyway, and a stop waits for the dial either way)
/// and the customer's limit row (locked; for a customer without limits, the missing key's gap,
/// as its own `FOR UPDATE` did). `None` when the campaign has no fence row yet. That row is then
/// created outside the transaction ([`create_fence`]) and the transaction run again: created
/// inside it, after a locking read of the missing key, the first dials of several campaigns at
/// once would hold the same gap lock and deadlock each other on their inserts.
async fn lock_dial(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    campaign_id: Uuid,
    customer_id: Uuid,
) -> StoreResult<Option<Locked>> {
    let row = sqlx::query(
        "SELECT f.seq, UTC_TIMESTAMP(6) AS now, c.id AS running, c.pacing, c.service_level, \
           l.customer_id AS limited, l.max_concurrent_calls, l.dials_per_second \
         FROM campaign_dial_fences f \
         LEFT JOIN campaign_campaigns c ON c.id = ? AND c.status = 'run' \
           AND c.execute = 'run' AND c.tm_delete IS NULL \
         LEFT JOIN campaign_customer_limits l ON l.customer_id = ? \
         WHERE f.campaign_id = ? FOR UPDATE",
    )
    .bind(uuid_bytes(campaign_id))
    .bind(uuid_bytes(customer_id))
    .bind(uuid_bytes(campaign_id))
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let running: Option<Vec<u8>> = row.try_get("running")?;
    let campaign = match running {
        Some(_) => {
            let pacing: Option<Pacing> = RowReader {
                row: &row,
                table: "campaign_campaigns",
            }
            .json("pacing")?;
            Some((pacing, row.try_get("service_level")?))
        }
        None => None,
    };
    let limited: Option<Vec<u8>> = row.try_get("limited")?;
    let customer_limits = match limited {
        Some(_) => Some(Pacing {
            max_concurrent_calls: row.try_get("max_concurrent_calls")?,
            dials_per_second: row.try_get("dials_per_second")?,
        }),
        None => None,
    };
    Ok(Some(Locked {
        seq: row.try_get("seq")?,
        now: row.try_get("now")?,
        campaign,
        customer_limits,
    }))
}

/// The campaign's fence row at sequence 0, if it has none (one autocommitted statement; a
/// row that exists is left as it is).
async fn create_fence(conn: &mut sqlx::MySqlConnection, campaign_id: Uuid) -> StoreResult<()> {
    sqlx::query(
        "INSERT IGNORE INTO campaign_dial_fences (campaign_id, seq, tm_update) \
         VALUES (?, 0, UTC_TIMESTAMP(6))",
    )
    .bind(uuid_bytes(campaign_id))
    .execute(conn)
    .await?;
    Ok(())
}

/// The campaign's newest campaigncall creation times (index `(campaign_id, tm_create)`).
const RECENT_DIALS: &str = "SELECT tm_create FROM campaign_campaigncalls WHERE campaign_id = ? \
     AND tm_create IS NOT NULL ORDER BY tm_create DESC LIMIT ?";

/// The campaign's calls up, of them `dialing`, and its newest creation times (`LIMIT` of them;
/// 0 for none), in one statement: one row per time, or one row with a NULL time. A plain read:
/// made after the fence row is locked, it sees every dial of the campaign committed before.
const LIMITS: &str = "SELECT n.up, n.dialing, r.tm_create FROM \
     (SELECT COUNT(*) AS up, CAST(COALESCE(SUM(status = 'dialing'), 0) AS SIGNED) AS dialing \
      FROM campaign_campaigncalls WHERE campaign_id = ? \
      AND status IN ('dialing', 'progressing') AND tm_delete IS NULL) n \
     LEFT JOIN (SELECT tm_create FROM campaign_campaigncalls WHERE campaign_id = ? \
      AND tm_create IS NOT NULL ORDER BY tm_create DESC LIMIT ?) r ON 1 = 1";

/// Step 4 of the record (module doc): the refusal the campaign's limits make, if any. No
/// statement when it has none.
async fn limits(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    campaign: &[u8],
    pacing: Option<Pacing>,
    agents: Option<i64>,
    service_level: i32,
    now: NaiveDateTime,
    local_now: DateTime<Utc>,
) -> StoreResult<Option<Recorded>> {
    let cap = pacing.and_then(|p| p.max_concurrent_calls);
    let rate = pacing.and_then(|p| p.rate());
    if cap.is_none() && agents.is_none() && rate.is_none() {
        return Ok(None);
    }
    let rows: Vec<(i64, i64, Option<NaiveDateTime>)> = sqlx::query_as(LIMITS)
        .bind(campaign)
        .bind(campaign)
        .bind(rate.map_or(0, |r| r.window_dials() as u64))
        .fetch_all(&mut **tx)
        .await?;
    let (up, dialing) = rows.first().map_or((0, 0), |(u, d, _)| (*u, *d));
    if let Some(cap) = cap
        && up >= cap
    {
        return Ok(Some(Recorded::AtCap));
    }
    if let Some(agents) = agents
        && agents * i64::from(service_level) / 100 <= dialing
    {
        return Ok(Some(Recorded::NoCapacity));
    }
    let recent: Vec<DateTime<Utc>> = rows
        .iter()
        .filter_map(|(_, _, t)| t.map(|t| t.and_utc()))
        .collect();
    if let Some(allowed) = rate.and_then(|r| r.next_allowed(&recent))
        && now.and_utc() < allowed
    {
        return Ok(Some(Recorded::Paced(local_now + (allowed - now.and_utc()))));
    }
    Ok(None)
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

/// Name of the counter of [`DialRecords::retries`].
pub const RECORD_RETRIES_METRIC: &str = "campaign_manager_dial_record_retries_total";

/// The dial repository.
#[derive(Clone)]
pub struct DialRecords {
    pool: MySqlPool,
    campaigncalls: Campaigncalls,
    pool_wait: Histogram,
    retries: IntCounterVec,
    requested: Soon,
}

/// The histogram of the time a dial's record transaction waits for a pooled MySQL connection (ms).
fn pool_wait_histogram() -> Histogram {
    let opts = HistogramOpts::new(
        POOL_WAIT_METRIC,
        "Time a dial's record transaction waited for a pooled MySQL connection, in ms.",
    )
    .buckets(vec![0.1, 0.5, 1.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0]);
    // Constant name and increasing buckets: the only ways this could fail.
    Histogram::with_opts(opts).expect("constant histogram options are valid")
}

/// The counter of record transactions run again after MySQL rolled them back, by `reason`.
fn retries_counter() -> IntCounterVec {
    retry::counter(
        RECORD_RETRIES_METRIC,
        "Dial record transactions run again after MySQL rolled them back (deadlock, \
         lock_wait_timeout).",
    )
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// The newest creation times of a campaign's campaigncalls with MySQL's now, both by MySQL's
/// clock ([`DialRecords::recent_dials`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RecentDials {
    /// Newest first.
    pub times: Vec<DateTime<Utc>>,
    /// MySQL's `UTC_TIMESTAMP(6)` when they were read.
    pub now: DateTime<Utc>,
}

impl DialRecords {
    pub(super) fn new(pool: MySqlPool, campaigncalls: Campaigncalls) -> DialRecords {
        DialRecords {
            pool: pool.clone(),
            campaigncalls,
            pool_wait: pool_wait_histogram(),
            retries: retries_counter(),
            requested: Soon::new(
                pool,
                "UPDATE campaign_dials SET step = 'requested', tm_step = UTC_TIMESTAMP(6) \
                 WHERE step <> 'requested' AND campaigncall_id IN",
                "requested marks",
            ),
        }
    }

    /// The time each dial's record transaction waited for a pooled MySQL connection
    /// (`campaign_manager_dial_pool_wait_ms`, not registered anywhere: the process registers
    /// it in its registry). With every connection busy, ticks queue here.
    pub fn pool_wait(&self) -> Histogram {
        self.pool_wait.clone()
    }

    /// Record transactions run again after a deadlock or lock wait timeout
    /// (`campaign_manager_dial_record_retries_total{reason}`, registered by the process).
    pub fn retries(&self) -> IntCounterVec {
        self.retries.clone()
    }

    /// Records a dial attempt if the fence, the deadline, the campaign's state and limits and
    /// the try all allow it (module doc), for a campaign without a queue (or whose queue the
    /// caller does not check). The campaigncall's cache entry is refreshed afterwards.
    pub async fn record(&self, cc: &Campaigncall, fence: DialFence) -> StoreResult<Recorded> {
        self.record_with(cc, fence, None, None).await
    }

    /// [`DialRecords::record`], holding a queue campaign to the capacity of `agents` available
    /// agents (asked just before), as the dial of `callback` when given (it takes the callback
    /// in the same transaction), or as a dial that no pending callback holds back. A deadlock or lock wait timeout runs the transaction again,
    /// at most [`RECORD_ATTEMPTS`] times in all; the last one's error is returned.
    pub async fn record_with(
        &self,
        cc: &Campaigncall,
        fence: DialFence,
        agents: Option<i64>,
        callback: Option<Uuid>,
    ) -> StoreResult<Recorded> {
        // Past the deadline already: no transaction at all.
        if Utc::now() >= fence.deadline {
            return Ok(Recorded::Late);
        }
        // The row is wholly known once written (its creation time is MySQL's now, read in the
        // transaction), so it is not read back.
        let mut stored = cc.clone();
        stored.tm_update = None;
        stored.tm_delete = None;
        let waiting = Instant::now();
        let mut conn = self.pool.acquire().await?;
        self.pool_wait
            .observe(waiting.elapsed().as_secs_f64() * 1000.0);
        let mut attempt = 1;
        let created = loop {
            let mut tx = conn.begin().await?;
            let locked = match lock_dial(&mut tx, stored.campaign_id, stored.customer_id).await {
                Ok(Some(locked)) => Ok(locked),
                Ok(None) if attempt < RECORD_ATTEMPTS => {
                    tx.rollback().await?;
                    create_fence(&mut conn, stored.campaign_id).await?;
                    attempt += 1;
                    continue;
                }
                Ok(None) => Err(StoreError::Database(sqlx::Error::RowNotFound)),
                Err(e) => Err(e),
            };
            let outcome = match locked {
                Ok(locked) => record_in(&mut tx, &stored, fence, agents, callback, locked).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(Ok(created)) => match tx.commit().await {
                    Ok(()) => break created,
                    Err(e) => {
                        let e = StoreError::from(e);
                        match retry::rolled_back_by_lock(&e) {
                            Some(reason) if attempt < RECORD_ATTEMPTS => {
                                self.retries.with_label_values(&[reason]).inc();
                                attempt += 1;
                            }
                            _ => return Err(e),
                        }
                    }
                },
                // Roll back right away: a transaction left for the pool to roll back later
                // would hold the fence row's lock until the connection is used again.
                Ok(Err(refusal)) => {
                    tx.rollback().await?;
                    return Ok(refusal);
                }
                Err(e) => {
                    let _ = tx.rollback().await;
                    match retry::rolled_back_by_lock(&e) {
                        Some(reason) if attempt < RECORD_ATTEMPTS => {
                            tracing::info!(campaign_id = %cc.campaign_id, reason, attempt, "dial record rolled back by MySQL; run again");
                            self.retries.with_label_values(&[reason]).inc();
                            attempt += 1;
                        }
                        _ => return Err(e),
                    }
                }
            }
        };
        drop(conn);
        stored.tm_create = Some(created.and_utc());
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

    /// [`DialRecords::recent_dial_times`] with MySQL's now, in one statement: what a paced tick
    /// plans its dial instants on (their difference is clock-free).
    pub async fn recent_dials(&self, campaign_id: Uuid, n: usize) -> StoreResult<RecentDials> {
        let rows: Vec<(NaiveDateTime, Option<NaiveDateTime>)> = sqlx::query_as(
            "SELECT UTC_TIMESTAMP(6), r.tm_create FROM (SELECT 1 AS one) x LEFT JOIN \
             (SELECT tm_create FROM campaign_campaigncalls WHERE campaign_id = ? \
              AND tm_create IS NOT NULL ORDER BY tm_create DESC LIMIT ?) r ON 1 = 1",
        )
        .bind(uuid_bytes(campaign_id))
        .bind(n as u64)
        .fetch_all(&self.pool)
        .await?;
        let now = rows.first().map_or_else(Utc::now, |(now, _)| now.and_utc());
        let mut times: Vec<DateTime<Utc>> = rows
            .into_iter()
            .filter_map(|(_, t)| t.map(|t| t.and_utc()))
            .collect();
        times.sort_unstable_by(|a, b| b.cmp(a));
        Ok(RecentDials { times, now })
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

    /// Notes soon that the dial of `campaigncall_id` reached [`DialStep::Requested`] (the peer
    /// confirmed the call): the marks of all the process' dials within a window are written by
    /// one statement (`store::soon`). Nothing waits for it, because nothing is decided on it
    /// until the campaigncall is overdue or finished: the finish of a placed call writes the
    /// step itself, in its own transaction, and a mark lost to a death or a database error
    /// leaves the step `target_claimed`, which the repair resolves by asking the peer (a call it
    /// knows is marked then).
    pub fn mark_requested_soon(&self, campaigncall_id: Uuid) {
        self.requested.note(campaigncall_id);
    }

    /// Writes every `requested` mark not written yet, now (a graceful stop calls it after its
    /// tasks ended; tests before they read steps).
    pub async fn flush_requested_marks(&self) -> StoreResult<()> {
        self.requested.flush().await
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
            // Only while the campaigncall is still open: a dial abandoned meanwhile (finished
            // `not_placed`, its row deleted to free its try) must not get a `requested` row
            // back, which would keep its try taken forever and its target never dialed again.
            let t = db_time(now());
            sqlx::query(
                "INSERT IGNORE INTO campaign_dials (campaigncall_id, campaign_id, \
                 outdial_target_id, destination_index, try_count, seq, step, checks, tm_create, \
                 tm_step, tm_next_check) SELECT ?, ?, ?, ?, ?, 0, ?, 1, ?, ?, \
                 UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND FROM campaign_campaigncalls \
                 WHERE id = ? AND status <> 'done'",
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
            .bind(uuid_bytes(cc.id))
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
