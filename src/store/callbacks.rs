//! `campaign_callbacks`: the callbacks of each campaign (docs/contact-strategy.md), what the
//! tick reads of them ([`Callbacks::for_tick`]), and the two checks the dial's transaction
//! makes in them ([`push_held`], [`take_in`]).
//!
//! A callback is *pending* until a dial of it placed a call. Nothing is stored for that: the
//! dial's transaction writes the callback's `campaigncall_id` (a compare-and-set, so one
//! callback is taken by one dial only), and whether that campaigncall placed a call is what its
//! own dial record says ([`PENDING`]). So every state a dying process leaves is read right
//! without a repair of its own:
//! - died before the dial's commit: nothing was written, the callback is pending;
//! - died after it, before or during the target claim or the peer request: the campaigncall is
//!   open, so the callback is not pending (its target is not dialed twice); the campaigncall
//!   repair finishes it `fail` and frees its try (`DialRecords::release_try`) or leaves it at
//!   step `recorded`/`target_claimed`, and either makes the callback pending again;
//! - the call was placed: the dial row says `requested` (or `unknown`, until the repair
//!   learns the call existed), and the callback is served for good.
//!
//! A deleted campaign's callbacks are deleted after it ([`Callbacks::delete_of_campaign`]); a
//! process that dies in between leaves rows no route nor tick reads, removed by the repair
//! pass ([`Callbacks::sweep_deleted_campaigns`]).

use std::collections::HashSet;
use std::time::Duration;

use chrono::SubsecRound;

use sqlx::{MySql, MySqlPool, Row};
use uuid::Uuid;

use super::filter::{Column, Kind, Unfilterable};
use super::row::{RowReader, db_time, now, uuid_bytes};
use super::table::{self, Record};
use super::{Filters, Page, StoreResult};
use crate::model::Callback;

impl Record for Callback {
    const TABLE: &'static str = "campaign_callbacks";
    const CACHE_KIND: &'static str = "callback";
    const COLUMNS: &'static str = "id, customer_id, campaign_id, outdial_target_id, \
         destination_index, tm_due, campaigncall_id, tm_create";
    const FILTERS: &'static [Column] = &[Column {
        name: "campaign_id",
        kind: Kind::Uuid,
    }];
    const UNFILTERABLE: Unfilterable = &[
        "id",
        "customer_id",
        "outdial_target_id",
        "destination_index",
        "tm_due",
        "campaigncall_id",
        "tm_create",
    ];

    fn from_row(r: &RowReader<'_>) -> StoreResult<Callback> {
        let campaigncall_id = r.uuid("campaigncall_id")?;
        Ok(Callback {
            id: r.uuid("id")?,
            customer_id: r.uuid("customer_id")?,
            campaign_id: r.uuid("campaign_id")?,
            outdial_target_id: r.uuid("outdial_target_id")?,
            destination_index: r.int("destination_index")?,
            at: r.time("tm_due")?.unwrap_or_default(),
            campaigncall_id: (!campaigncall_id.is_nil()).then_some(campaigncall_id),
            tm_create: r.time("tm_create")?,
        })
    }
}

/// A callback (alias `cb`) still to be dialed: no dial taken it, or the one that did placed
/// no call (its campaigncall is done and its dial row is gone, freed, or never got past the
/// target claim).
pub(super) const PENDING: &str = "(cb.campaigncall_id IS NULL OR EXISTS ( \
     SELECT 1 FROM campaign_campaigncalls c \
     LEFT JOIN campaign_dials d ON d.campaigncall_id = c.id \
     WHERE c.id = cb.campaigncall_id AND c.status = 'done' \
       AND (d.campaigncall_id IS NULL OR d.step IN ('recorded', 'target_claimed'))))";

/// Most pending callbacks of one campaign a tick reads (the earliest first).
pub const TICK_READ_LIMIT: u32 = 1000;

/// A campaign's pending callbacks as one tick sees them (by MySQL's clock).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TickCallbacks {
    /// Due now, the earliest first.
    pub due: Vec<Callback>,
    /// The targets with a pending callback, due or not: no other dial of them is made.
    pub held: HashSet<Uuid>,
    /// How long until the earliest pending callback not yet due.
    pub next_in: Option<Duration>,
}

/// Pushes the check whether the target has a pending callback in the campaign as a subquery:
/// the dial row's insert is made on its `NOT EXISTS` (`store::dials`), so a dial that is not
/// the callback's own is refused, and no rule dials the target before the callback's time (and
/// from then on the callback's dial is the one). Read with shared next-key locks, so a
/// callback being created waits for the dial's commit.
pub(super) fn push_held(q: &mut sqlx::QueryBuilder<MySql>, campaign_id: Uuid, target_id: Uuid) {
    q.push("SELECT 1 FROM campaign_callbacks cb WHERE cb.campaign_id = ")
        .push_bind(uuid_bytes(campaign_id))
        .push(" AND cb.outdial_target_id = ")
        .push_bind(uuid_bytes(target_id))
        .push(" AND ")
        .push(PENDING);
}

/// Takes the callback for the dial `campaigncall_id` inside the dial's transaction, if it is
/// still pending and due (by MySQL's clock): a compare-and-set, so two dials never take one
/// callback. `false`: it was taken, deleted, or is not due.
pub(super) async fn take_in(
    tx: &mut sqlx::Transaction<'_, MySql>,
    callback_id: Uuid,
    campaigncall_id: Uuid,
) -> StoreResult<bool> {
    let sql = format!(
        "UPDATE campaign_callbacks cb SET cb.campaigncall_id = ? WHERE cb.id = ? \
         AND cb.tm_due <= UTC_TIMESTAMP(6) AND {PENDING}"
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(uuid_bytes(campaigncall_id))
        .bind(uuid_bytes(callback_id))
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(done == 1)
}

/// The callback repository.
#[derive(Clone)]
pub struct Callbacks {
    pool: MySqlPool,
}

impl Callbacks {
    pub(super) fn new(pool: MySqlPool) -> Callbacks {
        Callbacks { pool }
    }

    /// Stores a new callback (its `tm_create` is now) and returns it as stored.
    pub async fn create(&self, c: &Callback) -> StoreResult<Callback> {
        // Stored to the microsecond (truncated, not rounded by the database).
        let mut stored = c.clone();
        stored.at = stored.at.trunc_subsecs(6);
        stored.campaigncall_id = None;
        stored.tm_create = Some(now().trunc_subsecs(6));
        sqlx::query(
            "INSERT INTO campaign_callbacks (id, customer_id, campaign_id, outdial_target_id, \
             destination_index, tm_due, campaigncall_id, tm_create) \
             VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
        )
        .bind(uuid_bytes(stored.id))
        .bind(uuid_bytes(stored.customer_id))
        .bind(uuid_bytes(stored.campaign_id))
        .bind(uuid_bytes(stored.outdial_target_id))
        .bind(stored.destination_index)
        .bind(db_time(stored.at))
        .bind(stored.tm_create.map(db_time))
        .execute(&self.pool)
        .await?;
        Ok(stored)
    }

    /// The callback.
    pub async fn get(&self, id: Uuid) -> StoreResult<Option<Callback>> {
        table::fetch(&self.pool, id).await
    }

    /// One page of the campaign's callbacks, newest first.
    pub async fn list(&self, campaign_id: Uuid, page: Page) -> StoreResult<Vec<Callback>> {
        let f = Filters::none().and_uuid("campaign_id", campaign_id);
        table::list(&self.pool, &f, page).await
    }

    /// Removes the callback; returns it as it was (`None`: there was none).
    pub async fn delete(&self, id: Uuid) -> StoreResult<Option<Callback>> {
        table::delete_returning::<Callback>(&self.pool, id).await
    }

    /// Removes every callback of the campaign; returns them as they were.
    pub async fn delete_of_campaign(&self, campaign_id: Uuid) -> StoreResult<Vec<Callback>> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "SELECT {} FROM campaign_callbacks WHERE campaign_id = ? FOR UPDATE",
            Callback::COLUMNS
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uuid_bytes(campaign_id))
            .fetch_all(&mut *tx)
            .await?;
        let gone = rows
            .iter()
            .map(|row| {
                Callback::from_row(&RowReader {
                    row,
                    table: Callback::TABLE,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        sqlx::query("DELETE FROM campaign_callbacks WHERE campaign_id = ?")
            .bind(uuid_bytes(campaign_id))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(gone)
    }

    /// Removes the callbacks of deleted campaigns (left by a process that died between a
    /// campaign's delete and its callbacks'); returns how many.
    pub async fn sweep_deleted_campaigns(&self) -> StoreResult<u64> {
        Ok(sqlx::query(
            "DELETE cb FROM campaign_callbacks cb JOIN campaign_campaigns c \
             ON c.id = cb.campaign_id WHERE c.tm_delete IS NOT NULL",
        )
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// The campaign's pending callbacks as a tick sees them: which are due, which targets
    /// they hold, how long until the next one is due (module doc). One read, by MySQL's clock.
    pub async fn for_tick(&self, campaign_id: Uuid) -> StoreResult<TickCallbacks> {
        let columns: Vec<String> = Callback::COLUMNS
            .split(',')
            .map(|c| format!("cb.{}", c.trim()))
            .collect();
        let sql = format!(
            "SELECT {}, TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), cb.tm_due) AS due_in \
             FROM campaign_callbacks cb WHERE cb.campaign_id = ? AND {PENDING} \
             ORDER BY cb.tm_due LIMIT ?",
            columns.join(", ")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uuid_bytes(campaign_id))
            .bind(TICK_READ_LIMIT)
            .fetch_all(&self.pool)
            .await?;
        let mut out = TickCallbacks::default();
        for row in &rows {
            let c = Callback::from_row(&RowReader {
                row,
                table: Callback::TABLE,
            })?;
            let due_in: i64 = row.try_get("due_in")?;
            out.held.insert(c.outdial_target_id);
            if due_in <= 0 {
                out.due.push(c);
            } else if out.next_in.is_none() {
                out.next_in = Some(Duration::from_micros(due_in.unsigned_abs()));
            }
        }
        Ok(out)
    }
}
