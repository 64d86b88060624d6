//! `campaign_customer_limits`: each customer's dial limits across all of its campaigns
//! (docs/contact-strategy.md "Customer-wide limits"), and the check the dial's transaction
//! makes against them ([`admit_in`]).
//!
//! One row per customer that has a limit; clearing both limits deletes the row, so a customer
//! without limits costs each dial no statement of its own (its missing key is read in the
//! dial's first statement). A set or a clear is one statement, so
//! a process dying around it leaves the limits either as they were or as asked.
//!
//! The check runs inside the transaction that records a dial (`store::dials`). The customer's
//! row is locked by the transaction's first statement, with the campaign's fence row and
//! campaign row (`FOR UPDATE`; for a customer without limits, the missing key's gap), before any
//! plain read; that lock serialises the dials of all the customer's campaigns. Then
//! - counts the customer's open campaigncalls (`dialing`, `progressing`): at
//!   `max_concurrent_calls` the dial is refused ([`Recorded::CustomerLimit`]);
//! - applies [`DialRate::next_allowed`] (the campaign's rule) to the customer's newest
//!   creation times against MySQL's now (read with the campaign's fence row): a dial before
//!   its instant is refused with it ([`Recorded::CustomerPaced`], on the caller's clock); the
//!   tick waits and records again, nothing waits inside the transaction.
//!
//! Both reads are plain reads, and the first plain reads of the transaction: its snapshot is
//! taken once the customer's row lock is granted, so they see every dial of the customer that
//! committed before (each held that lock until its commit). Plain reads take no row locks, so a
//! hangup finishing one of the customer's calls never waits for a dial, and the two cannot
//! deadlock. A creation time is MySQL's now read with the fence row, before the customer's lock:
//! a dial whose time is earlier than one committed meanwhile is refused by the rule (its allowed
//! instant lies after that one), so the rule holds on the stored times. Nothing is written here:
//! a dial refused, or a process dying anywhere in the transaction, leaves nothing to repair.

use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::{MySql, MySqlPool, Row};
use uuid::Uuid;

use super::StoreResult;
use super::dials::Recorded;
use super::row::{db_time, now, uuid_bytes};
use crate::model::{CustomerDialLimits, DialRate, Pacing};

/// The customer's open campaigncalls (index `(customer_id, status)`).
const OPEN_CALLS: &str = "SELECT COUNT(*) FROM campaign_campaigncalls WHERE customer_id = ? \
     AND status IN ('dialing', 'progressing') AND tm_delete IS NULL";

/// The customer's newest dial times (index `(customer_id, tm_create)`).
const RECENT_DIALS: &str = "SELECT tm_create FROM campaign_campaigncalls WHERE customer_id = ? \
     AND tm_create IS NOT NULL ORDER BY tm_create DESC LIMIT ?";

/// Holds a dial about to be recorded at MySQL's `now` (read with the fence row) to its
/// customer's `limits` (read and locked with the fence row, `store::dials`), inside the dial's
/// transaction (module doc): the refusal, if any. `local_now` is the caller's clock at that
/// instant, to which a paced refusal's instant is converted (as for the campaign's own rate:
/// nothing waits inside the transaction).
pub(super) async fn admit_in(
    tx: &mut sqlx::Transaction<'_, MySql>,
    customer_id: Uuid,
    limits: Pacing,
    now: NaiveDateTime,
    local_now: DateTime<Utc>,
) -> StoreResult<Option<Recorded>> {
    let customer = uuid_bytes(customer_id);
    if let Some(max) = limits.max_concurrent_calls {
        let (open,): (i64,) = sqlx::query_as(OPEN_CALLS)
            .bind(&customer)
            .fetch_one(&mut **tx)
            .await?;
        if open >= max {
            return Ok(Some(Recorded::CustomerLimit));
        }
    }
    let Some(rate) = limits.rate() else {
        return Ok(None);
    };
    let rows: Vec<(NaiveDateTime,)> = sqlx::query_as(RECENT_DIALS)
        .bind(&customer)
        .bind(rate.window_dials() as u64)
        .fetch_all(&mut **tx)
        .await?;
    let recent: Vec<DateTime<Utc>> = rows.into_iter().map(|(r,)| r.and_utc()).collect();
    Ok(paced(rate, &recent, now, local_now))
}

/// The customer's rate applied to MySQL's `now`: a refusal with the allowed instant on the
/// caller's clock, or `None` when the dial may go now.
fn paced(
    rate: DialRate,
    recent: &[DateTime<Utc>],
    now: NaiveDateTime,
    local_now: DateTime<Utc>,
) -> Option<Recorded> {
    let allowed = rate.next_allowed(recent)?;
    let now = now.and_utc();
    (now < allowed).then(|| Recorded::CustomerPaced(local_now + (allowed - now)))
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
