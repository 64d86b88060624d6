//! `campaign_customer_limits`: each customer's dial limits across all of its campaigns
//! (docs/contact-strategy.md "Customer-wide limits"), and the check the dial's transaction
//! makes against them ([`admit_in`]).
//!
//! One row per customer that has a limit; clearing both limits deletes the row, so a customer
//! without limits costs each dial one primary-key read and no lock. A set or a clear is one
//! statement, so a process dying around it leaves the limits either as they were or as asked.
//!
//! The check runs inside the transaction that records a dial (`store::dials`), after the
//! campaign's own checks: it locks the customer's row (`FOR UPDATE`), which serialises the
//! dials of all the customer's campaigns, then
//! - counts the customer's open campaigncalls (`dialing`, `progressing`): at
//!   `max_concurrent_calls` the dial is refused ([`Recorded::CustomerLimit`]);
//! - applies [`DialRate::next_allowed`] (the campaign's rule) to the customer's newest
//!   creation times: a dial due within [`PACING_WAIT_IN_TRANSACTION`] waits for its instant
//!   here, a later one is refused with it ([`Recorded::CustomerPaced`]).
//!
//! Both reads are locking reads (`LOCK IN SHARE MODE`): they see every campaigncall committed
//! before the row lock was granted, whatever snapshot the transaction read before. Since every
//! dial of the customer passes the row lock, each creation time written is later than all the
//! customer's earlier ones and satisfies the rule against them: the rule holds on the stored
//! times. Nothing is written here: a dial refused, or a process dying anywhere in the
//! transaction, leaves nothing to repair.

use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::{MySql, MySqlPool, Row};
use uuid::Uuid;

use super::StoreResult;
use super::dials::{PACING_WAIT_IN_TRANSACTION, Recorded};
use super::row::{db_time, now, uuid_bytes};
use crate::model::{CustomerDialLimits, DialRate, Pacing};

/// The customer's limit row, read under its lock.
const LOCK_LIMITS: &str = "SELECT max_concurrent_calls, dials_per_second \
     FROM campaign_customer_limits WHERE customer_id = ? FOR UPDATE";

/// The customer's open campaigncalls (index `(customer_id, status)`).
const OPEN_CALLS: &str = "SELECT COUNT(*) FROM campaign_campaigncalls WHERE customer_id = ? \
     AND status IN ('dialing', 'progressing') AND tm_delete IS NULL LOCK IN SHARE MODE";

/// The customer's newest dial times (index `(customer_id, tm_create)`).
const RECENT_DIALS: &str = "SELECT tm_create FROM campaign_campaigncalls WHERE customer_id = ? \
     AND tm_create IS NOT NULL ORDER BY tm_create DESC LIMIT ? LOCK IN SHARE MODE";

/// Holds a dial about to be recorded at `t` to its customer's limits, inside the dial's
/// transaction (module doc). Returns the creation time to write (`t`, or the customer's
/// allowed instant if the transaction waited for it) or the refusal; past `deadline` after
/// such a wait, [`Recorded::Late`].
pub(super) async fn admit_in(
    tx: &mut sqlx::Transaction<'_, MySql>,
    customer_id: Uuid,
    t: NaiveDateTime,
    deadline: DateTime<Utc>,
) -> StoreResult<Result<NaiveDateTime, Recorded>> {
    let customer = uuid_bytes(customer_id);
    let any: Option<(i64,)> =
        sqlx::query_as("SELECT 1 FROM campaign_customer_limits WHERE customer_id = ?")
            .bind(&customer)
            .fetch_optional(&mut **tx)
            .await?;
    if any.is_none() {
        return Ok(Ok(t));
    }
    let Some(row) = sqlx::query(LOCK_LIMITS)
        .bind(&customer)
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(Ok(t));
    };
    let limits = Pacing {
        max_concurrent_calls: row.try_get("max_concurrent_calls")?,
        dials_per_second: row.try_get("dials_per_second")?,
    };
    if let Some(max) = limits.max_concurrent_calls {
        let (open,): (i64,) = sqlx::query_as(OPEN_CALLS)
            .bind(&customer)
            .fetch_one(&mut **tx)
            .await?;
        if open >= max {
            return Ok(Err(Recorded::CustomerLimit));
        }
    }
    let Some(rate) = limits.rate() else {
        return Ok(Ok(t));
    };
    let rows: Vec<(NaiveDateTime,)> = sqlx::query_as(RECENT_DIALS)
        .bind(&customer)
        .bind(rate.window_dials() as u64)
        .fetch_all(&mut **tx)
        .await?;
    let recent: Vec<DateTime<Utc>> = rows.into_iter().map(|(r,)| r.and_utc()).collect();
    allowed_at(tx, rate, &recent, t, deadline).await
}

/// `t` if the rate allows it, else the allowed instant waited for when near enough.
async fn allowed_at(
    tx: &mut sqlx::Transaction<'_, MySql>,
    rate: DialRate,
    recent: &[DateTime<Utc>],
    t: NaiveDateTime,
    deadline: DateTime<Utc>,
) -> StoreResult<Result<NaiveDateTime, Recorded>> {
    let Some(allowed) = rate.next_allowed(recent) else {
        return Ok(Ok(t));
    };
    if t.and_utc() >= allowed {
        return Ok(Ok(t));
    }
    loop {
        let at = now();
        if at >= allowed {
            break;
        }
        let wait = (allowed - at).to_std().unwrap_or_default();
        if wait > PACING_WAIT_IN_TRANSACTION {
            return Ok(Err(Recorded::CustomerPaced(allowed)));
        }
        tokio::time::sleep(wait).await;
    }
    let (in_time,): (i64,) = sqlx::query_as("SELECT UTC_TIMESTAMP(6) < ?")
        .bind(db_time(deadline))
        .fetch_one(&mut **tx)
        .await?;
    if in_time != 1 {
        return Ok(Err(Recorded::Late));
    }
    Ok(Ok(db_time(now())))
}

/// The customer limits repository.
#[derive(Clone)]
pub struct CustomerLimits {
    pool: MySqlPool,
}

impl CustomerLimits {
    pub(super) fn new(pool: MySqlPool) -> CustomerLimits {
        CustomerLimits { pool }
    }

    /// The customer's limits ([`CustomerDialLimits::none`] when none are set).
    pub async fn get(&self, customer_id: Uuid) -> StoreResult<CustomerDialLimits> {
        let row = sqlx::query(
            "SELECT max_concurrent_calls, dials_per_second, tm_update \
             FROM campaign_customer_limits WHERE customer_id = ?",
        )
        .bind(uuid_bytes(customer_id))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(CustomerDialLimits::none(customer_id));
        };
        let tm_update: NaiveDateTime = row.try_get("tm_update")?;
        Ok(CustomerDialLimits {
            customer_id,
            max_concurrent_calls: row.try_get("max_concurrent_calls")?,
            dials_per_second: row.try_get("dials_per_second")?,
            tm_update: Some(tm_update.and_utc()),
        })
    }

    /// Sets the customer's limits (`limits` must be validated); with neither set, clears them
    /// (deletes the row). Returns the limits as stored.
    pub async fn set(&self, customer_id: Uuid, limits: Pacing) -> StoreResult<CustomerDialLimits> {
        if limits.max_concurrent_calls.is_none() && limits.dials_per_second.is_none() {
            self.clear(customer_id).await?;
            return Ok(CustomerDialLimits::none(customer_id));
        }
        let t = db_time(now());
        sqlx::query(
            "INSERT INTO campaign_customer_limits \
             (customer_id, max_concurrent_calls, dials_per_second, tm_update) VALUES (?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE max_concurrent_calls = ?, dials_per_second = ?, \
             tm_update = ?",
        )
        .bind(uuid_bytes(customer_id))
        .bind(limits.max_concurrent_calls)
        .bind(limits.dials_per_second)
        .bind(t)
        .bind(limits.max_concurrent_calls)
        .bind(limits.dials_per_second)
        .bind(t)
        .execute(&self.pool)
        .await?;
        self.get(customer_id).await
    }

    /// Clears the customer's limits; whether there were any.
    pub async fn clear(&self, customer_id: Uuid) -> StoreResult<bool> {
        let n = sqlx::query("DELETE FROM campaign_customer_limits WHERE customer_id = ?")
            .bind(uuid_bytes(customer_id))
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }
}
