//! `campaign_campaigncalls`: dial attempts, their progress and result, and the capacity
//! queries the tick needs (how many are dialing, whether any is still going).
//!
//! A finish is one transaction: the dial's step `requested` (when the call existed), the
//! compare-and-set on the campaigncall, the outbox row for its target. In that order: the dial
//! record's transaction locks the dial row before the campaigncall (its unique-violation path),
//! and a finish locking them the other way round could deadlock with it. A finish of a row the
//! caller has just read ([`Campaigncalls::finish_read`]) costs the least: its compare-and-set
//! also requires the `tm_update` read and binds the next one, so when it wins the stored row is
//! known (nothing read inside or after the transaction), and a dial read at `requested` is not
//! written. Any change since the read makes it lose, and it decides again by id, on what is
//! stored. A lock conflict (1213, 1205) runs the transaction again (`store::retry`).

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use prometheus::IntCounterVec;
use sqlx::mysql::MySqlArguments;
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, MySql, MySqlPool};
use uuid::Uuid;

use super::filter::{Column, Kind, Unfilterable};
use super::outbox::{self, OutboxEntry, OutboxKind};
use super::retry;
use super::row::{RowReader, db_time, json_text, now, uuid_bytes};
use super::table::{self, Record};
use super::{Cache, Filters, Page, StoreResult};
use crate::model::{Campaigncall, CampaigncallResult, CampaigncallStatus, enum_str};

impl Record for Campaigncall {
    const TABLE: &'static str = "campaign_campaigncalls";
    const CACHE_KIND: &'static str = "campaigncall";
    const COLUMNS: &'static str = "id, customer_id, campaign_id, outplan_id, outdial_id, \
        outdial_target_id, queue_id, activeflow_id, flow_id, reference_type, reference_id, \
        status, result, source, destination, destination_index, try_count, tm_create, \
        tm_update, tm_delete";
    const FILTERS: &'static [Column] = &[
        Column {
            name: "id",
            kind: Kind::Uuid,
        },
        Column {
            name: "customer_id",
            kind: Kind::Uuid,
        },
        Column {
            name: "campaign_id",
            kind: Kind::Uuid,
        },
        Column {
            name: "outplan_id",
            kind: Kind::Uuid,
        },
        Column {
            name: "outdial_id",
            kind: Kind::Uuid,
        },
        Column {
            name: "outdial_target_id",
            kind: Kind::Uuid,
        },
        Column {
            name: "queue_id",
            kind: Kind::Uuid,
        },
        Column {
            name: "activeflow_id",
            kind: Kind::Uuid,
        },
        Column {
            name: "flow_id",
            kind: Kind::Uuid,
        },
        Column {
            name: "reference_type",
            kind: Kind::Enum(&["none", "call", "flow"]),
        },
        Column {
            name: "reference_id",
            kind: Kind::Uuid,
        },
        Column {
            name: "status",
            kind: Kind::Enum(&["dialing", "progressing", "done"]),
        },
        Column {
            name: "result",
            kind: Kind::Enum(&["", "success", "fail"]),
        },
        Column {
            name: "destination_index",
            kind: Kind::Int,
        },
        Column {
            name: "try_count",
            kind: Kind::Int,
        },
    ];
    const UNFILTERABLE: Unfilterable = &[
        "source",
        "destination",
        "tm_create",
        "tm_update",
        "tm_delete",
    ];

    fn from_row(r: &RowReader<'_>) -> StoreResult<Campaigncall> {
        Ok(Campaigncall {
            id: r.uuid("id")?,
            customer_id: r.uuid("customer_id")?,
            campaign_id: r.uuid("campaign_id")?,
            outplan_id: r.uuid("outplan_id")?,
            outdial_id: r.uuid("outdial_id")?,
            outdial_target_id: r.uuid("outdial_target_id")?,
            queue_id: r.uuid("queue_id")?,
            activeflow_id: r.uuid("activeflow_id")?,
            flow_id: r.uuid("flow_id")?,
            reference_type: r.enumeration("reference_type")?,
            reference_id: r.uuid("reference_id")?,
            status: r.enumeration("status")?,
            result: r.enumeration("result")?,
            source: r.json("source")?,
            destination: r.json("destination")?,
            destination_index: r.int("destination_index")?,
            try_count: r.int("try_count")?,
            tm_create: r.time("tm_create")?,
            tm_update: r.time("tm_update")?,
            tm_delete: r.time("tm_delete")?,
        })
    }
}

/// The INSERT of a new campaigncall (`tm_create` as given, else now), for the pool or a
/// transaction.
pub(super) fn insert(c: &Campaigncall) -> Query<'static, MySql, MySqlArguments> {
    insert_at(c, db_time(c.tm_create.unwrap_or_else(now)))
}

/// [`insert`] with the creation time given (a paced dial's, see `store::dials`).
pub(super) fn insert_at(
    c: &Campaigncall,
    tm_create: NaiveDateTime,
) -> Query<'static, MySql, MySqlArguments> {
    sqlx::query(
        "INSERT INTO campaign_campaigncalls (id, customer_id, campaign_id, outplan_id, \
         outdial_id, outdial_target_id, queue_id, activeflow_id, flow_id, reference_type, \
         reference_id, status, result, source, destination, destination_index, try_count, \
         tm_create, tm_update, tm_delete) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
    )
    .bind(uuid_bytes(c.id))
    .bind(uuid_bytes(c.customer_id))
    .bind(uuid_bytes(c.campaign_id))
    .bind(uuid_bytes(c.outplan_id))
    .bind(uuid_bytes(c.outdial_id))
    .bind(uuid_bytes(c.outdial_target_id))
    .bind(uuid_bytes(c.queue_id))
    .bind(uuid_bytes(c.activeflow_id))
    .bind(uuid_bytes(c.flow_id))
    .bind(enum_str(&c.reference_type))
    .bind(uuid_bytes(c.reference_id))
    .bind(enum_str(&c.status))
    .bind(enum_str(&c.result))
    .bind(json_text(&c.source))
    .bind(json_text(&c.destination))
    .bind(c.destination_index)
    .bind(c.try_count)
    .bind(tm_create)
}

/// Name of the counter of [`Campaigncalls::retries`].
pub const FINISH_RETRIES_METRIC: &str = "campaign_manager_campaigncall_finish_retries_total";

/// A campaigncall read straight from MySQL, with whether its dial row (`campaign_dials`) is at
/// step `requested`, in one statement: what a finish needs to know to write no more than it
/// must (the stored row is then known without reading it back, and a dial already noted
/// `requested` is not written again). Derefs to the campaigncall.
#[derive(Debug, Clone, PartialEq)]
pub struct FreshCampaigncall {
    /// The row as read.
    pub row: Campaigncall,
    /// Its dial row is at step `requested` (false: another step, or no dial row).
    pub dial_requested: bool,
}

impl std::ops::Deref for FreshCampaigncall {
    type Target = Campaigncall;
    fn deref(&self) -> &Campaigncall {
        &self.row
    }
}

/// The change a finish makes, compare-and-set on the campaigncall's stored state.
#[derive(Debug, Clone, Copy)]
enum Decision<'a> {
    /// An open campaigncall becomes `done` with `result` and `reason` (`status <> 'done'`).
    Finish {
        result: CampaigncallResult,
        reason: Option<&'a str>,
    },
    /// A `done`/`fail` one becomes `success` with `reason` (`status = 'done' AND result = 'fail'`).
    Refinish { reason: &'a str },
}

impl Decision<'_> {
    fn result(self) -> CampaigncallResult {
        match self {
            Decision::Finish { result, .. } => result,
            Decision::Refinish { .. } => CampaigncallResult::Success,
        }
    }

    /// The row as this decision stores it over `read` (`reason` is no column of the model).
    fn applied(self, read: &Campaigncall, tm_update: DateTime<Utc>) -> Campaigncall {
        let mut row = read.clone();
        row.status = CampaigncallStatus::Done;
        row.result = self.result();
        row.tm_update = Some(tm_update);
        row
    }

    /// `UPDATE ... SET <this> WHERE id = ? <condition>`, with `tm_update` as `stamp` pushes it.
    fn update(
        self,
        id: Uuid,
        stamp: impl FnOnce(&mut sqlx::QueryBuilder<MySql>),
    ) -> sqlx::QueryBuilder<MySql> {
        let mut q = sqlx::QueryBuilder::<MySql>::new("UPDATE campaign_campaigncalls SET ");
        match self {
            Decision::Finish { result, reason } => {
                q.push("status = 'done', result = ")
                    .push_bind(enum_str(&result))
                    .push(", reason = ")
                    .push_bind(reason.map(|r| r.chars().take(64).collect::<String>()));
            }
            Decision::Refinish { reason } => {
                q.push("result = 'success', reason = ")
                    .push_bind(reason.chars().take(64).collect::<String>());
            }
        }
        q.push(", ");
        stamp(&mut q);
        q.push(" WHERE id = ").push_bind(uuid_bytes(id));
        q.push(match self {
            Decision::Finish { .. } => " AND status <> 'done'",
            Decision::Refinish { .. } => " AND status = 'done' AND result = 'fail'",
        });
        q
    }
}

/// The `tm_update` a write stores over a row whose `tm_update` is `read` (`table.rs`: now, or
/// 1 µs after the stored value if that is not earlier).
fn next_tm_update(read: Option<DateTime<Utc>>) -> DateTime<Utc> {
    let now = now();
    match read {
        Some(t) => now.max(t + TimeDelta::microseconds(1)),
        None => now,
    }
}

/// The campaigncall repository.
#[derive(Clone)]
pub struct Campaigncalls {
    pool: MySqlPool,
    cache: Cache,
    retries: IntCounterVec,
}

impl Campaigncalls {
    pub(super) fn new(pool: MySqlPool, cache: Cache, retries: IntCounterVec) -> Campaigncalls {
        Campaigncalls {
            pool,
            cache,
            retries,
        }
    }

    /// The counter of finish transactions (and outbox deletes) run again after MySQL rolled
    /// them back for a lock conflict (`campaign_manager_campaigncall_finish_retries_total{reason}`,
    /// registered by the process; `store::retry`).
    pub fn retries(&self) -> IntCounterVec {
        self.retries.clone()
    }

    /// Inserts a campaigncall (`tm_create` now); returns the stored row.
    pub async fn create(&self, c: &Campaigncall) -> StoreResult<Campaigncall> {
        insert(c).execute(&self.pool).await?;
        self.refresh(c.id).await
    }

    /// Refreshes the cache entry of a row just written whose stored form is known.
    pub(super) async fn cache_written(&self, c: &Campaigncall) {
        self.cache.set(Campaigncall::CACHE_KIND, c.id, c).await;
    }

    /// Re-reads a row just written and refreshes its cache entry.
    pub(super) async fn refresh(&self, id: Uuid) -> StoreResult<Campaigncall> {
        table::refresh::<Campaigncall>(&self.pool, &self.cache, id)
            .await?
            .ok_or(super::StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// Read-through get (deleted rows included).
    pub async fn get(&self, id: Uuid) -> StoreResult<Option<Campaigncall>> {
        table::get(&self.pool, &self.cache, id).await
    }

    /// Get straight from MySQL (for decisions that must not act on a stale copy).
    pub async fn get_fresh(&self, id: Uuid) -> StoreResult<Option<Campaigncall>> {
        table::fetch(&self.pool, id).await
    }

    /// The campaigncall of a call (`reference_id`) with its dial's step, straight from MySQL in
    /// one statement (what a hangup finishes).
    pub async fn fresh_by_reference_id(
        &self,
        reference_id: Uuid,
    ) -> StoreResult<Option<FreshCampaigncall>> {
        self.fresh_by("reference_id", reference_id).await
    }

    /// The campaigncall of an activeflow with its dial's step, straight from MySQL in one
    /// statement (what an `activeflow_deleted` finishes).
    pub async fn fresh_by_activeflow_id(
        &self,
        activeflow_id: Uuid,
    ) -> StoreResult<Option<FreshCampaigncall>> {
        self.fresh_by("activeflow_id", activeflow_id).await
    }

    /// The first campaigncall whose `column` is `id` (no order, deleted rows included, as
    /// `table::fetch_by`) with whether its dial row is at `requested`.
    async fn fresh_by(
        &self,
        column: &'static str,
        id: Uuid,
    ) -> StoreResult<Option<FreshCampaigncall>> {
        let columns: Vec<String> = Campaigncall::COLUMNS
            .split(',')
            .map(|c| format!("c.{}", c.trim()))
            .collect();
        let sql = format!(
            "SELECT {}, COALESCE(d.step = 'requested', 0) AS dial_requested \
             FROM campaign_campaigncalls c LEFT JOIN campaign_dials d \
             ON d.campaigncall_id = c.id WHERE c.{column} = ? LIMIT 1",
            columns.join(", ")
        );
        let Some(row) = sqlx::query(AssertSqlSafe(sql))
            .bind(uuid_bytes(id))
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let requested: i64 = sqlx::Row::try_get(&row, "dial_requested")?;
        Ok(Some(FreshCampaigncall {
            row: Campaigncall::from_row(&RowReader {
                row: &row,
                table: Campaigncall::TABLE,
            })?,
            dial_requested: requested == 1,
        }))
    }

    /// The campaigncall of a call (`reference_id`), straight from MySQL.
    pub async fn get_by_reference_id(
        &self,
        reference_id: Uuid,
    ) -> StoreResult<Option<Campaigncall>> {
        table::fetch_by(&self.pool, "reference_id", reference_id).await
    }

    /// The campaigncall of an activeflow, straight from MySQL.
    pub async fn get_by_activeflow_id(
        &self,
        activeflow_id: Uuid,
    ) -> StoreResult<Option<Campaigncall>> {
        table::fetch_by(&self.pool, "activeflow_id", activeflow_id).await
    }

    /// Parses list filters against the campaigncall whitelist.
    pub fn filters(
        &self,
        object: &serde_json::Map<String, serde_json::Value>,
    ) -> StoreResult<Filters> {
        table::filters::<Campaigncall>(object)
    }

    /// One page of campaigncalls.
    pub async fn list(&self, filters: &Filters, page: Page) -> StoreResult<Vec<Campaigncall>> {
        table::list(&self.pool, filters, page).await
    }

    /// Campaigncalls of a campaign still `dialing` or `progressing`, newest first.
    pub async fn list_ongoing(
        &self,
        campaign_id: Uuid,
        limit: u32,
    ) -> StoreResult<Vec<Campaigncall>> {
        let sql = format!(
            "SELECT {} FROM campaign_campaigncalls WHERE campaign_id = ? \
             AND status IN ('dialing', 'progressing') AND tm_delete IS NULL \
             ORDER BY tm_create DESC, id DESC LIMIT ?",
            Campaigncall::COLUMNS
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(uuid_bytes(campaign_id))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Campaigncall::from_row(&RowReader {
                    row,
                    table: Campaigncall::TABLE,
                })
            })
            .collect()
    }

    /// How many campaigncalls of a campaign have the given status (exact, no limit: the Go
    /// service capped this at 100 and so under-counted large queues).
    pub async fn count_status(
        &self,
        campaign_id: Uuid,
        status: CampaigncallStatus,
    ) -> StoreResult<i64> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM campaign_campaigncalls \
             WHERE campaign_id = ? AND status = ? AND tm_delete IS NULL",
        )
        .bind(uuid_bytes(campaign_id))
        .bind(enum_str(&status))
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }

    /// How many campaigncalls of a campaign are up (`dialing` or `progressing`): the count
    /// the pacing cap `max_concurrent_calls` is held against.
    pub async fn count_ongoing(&self, campaign_id: Uuid) -> StoreResult<i64> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM campaign_campaigncalls WHERE campaign_id = ? \
             AND status IN ('dialing', 'progressing') AND tm_delete IS NULL",
        )
        .bind(uuid_bytes(campaign_id))
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }

    /// Whether any campaigncall of the campaign is still dialing or progressing.
    pub async fn has_ongoing(&self, campaign_id: Uuid) -> StoreResult<bool> {
        Ok(!self.list_ongoing(campaign_id, 1).await?.is_empty())
    }

    /// `dialing` → `progressing`; returns the row if it changed.
    pub async fn set_progressing(&self, id: Uuid) -> StoreResult<Option<Campaigncall>> {
        let changed = table::update_where::<Campaigncall>(
            &self.pool,
            id,
            |q| {
                q.push("status = 'progressing'");
            },
            |q| {
                q.push(" AND status = 'dialing'");
            },
        )
        .await?;
        let row = table::refresh(&self.pool, &self.cache, id).await?;
        Ok(if changed == 1 { row } else { None })
    }

    /// Marks a campaigncall `done` with `result`, only if it is not done yet, so a repeated
    /// or late event finishes it once. Returns the row if this call finished it.
    pub async fn finish(
        &self,
        id: Uuid,
        result: CampaigncallResult,
    ) -> StoreResult<Option<Campaigncall>> {
        self.finish_because(id, result, None).await
    }

    /// [`Campaigncalls::finish`], also storing why it ended in the column `reason` (not part
    /// of the campaigncall JSON; counted by the live stats). At most 64 characters are kept.
    pub async fn finish_because(
        &self,
        id: Uuid,
        result: CampaigncallResult,
        reason: Option<&str>,
    ) -> StoreResult<Option<Campaigncall>> {
        let reason: Option<String> = reason.map(|r| r.chars().take(64).collect());
        let changed = table::update_where::<Campaigncall>(
            &self.pool,
            id,
            |q| {
                q.push("status = 'done', result = ")
                    .push_bind(enum_str(&result))
                    .push(", reason = ")
                    .push_bind(reason.clone());
            },
            |q| {
                q.push(" AND status <> 'done'");
            },
        )
        .await?;
        let row = table::refresh(&self.pool, &self.cache, id).await?;
        Ok(if changed == 1 { row } else { None })
    }

    /// [`Campaigncalls::finish_because`] with the target status that follows (`result`'s) as an
    /// outbox row written in the same transaction (`store::outbox`): the compare-and-set on the
    /// campaigncall decides, and only its winner ever writes the target. Returns the row and the
    /// outbox entry if this call finished it.
    ///
    /// With `placed` (the call existed: a hangup, the peer's word), the dial's step becomes
    /// `requested` in the same transaction, so its try is never freed for a second dial.
    ///
    /// For a caller that knows only the id: the transaction reads the target inside and the row
    /// is read back after it. [`Campaigncalls::finish_read`] spares both.
    pub async fn finish_settling(
        &self,
        id: Uuid,
        result: CampaigncallResult,
        reason: Option<&str>,
        placed: bool,
    ) -> StoreResult<Option<(Campaigncall, OutboxEntry)>> {
        self.decide_by_id(id, Decision::Finish { result, reason }, placed)
            .await
    }

    /// [`Campaigncalls::finish_settling`] of `read`, a row the caller has just read from MySQL
    /// (`dial_requested`: its dial row is known to be at `requested` already, so it is not
    /// written). The compare-and-set also requires the stored `tm_update` to be the one read:
    /// then nothing changed the row since, and the stored row is `read` with this finish's
    /// change, returned (and cached) without reading it back. If anything changed it, this
    /// falls back to [`Campaigncalls::finish_settling`], which decides on what is stored.
    pub async fn finish_read(
        &self,
        read: &Campaigncall,
        dial_requested: bool,
        result: CampaigncallResult,
        reason: Option<&str>,
        placed: bool,
    ) -> StoreResult<Option<(Campaigncall, OutboxEntry)>> {
        let decision = Decision::Finish { result, reason };
        match self
            .decide_read(read, dial_requested, decision, placed)
            .await?
        {
            Some(done) => Ok(Some(done)),
            None => self.decide_by_id(read.id, decision, placed).await,
        }
    }

    /// A late `success` for a campaigncall stored `done`/`fail`: its result becomes `success`
    /// (and its reason `reason`), only if it is still `done`/`fail` in MySQL, with the target's
    /// `done` as an outbox row in the same transaction. Returns the row and the entry if this
    /// call changed it, so two late events change it once.
    pub async fn refinish_success(
        &self,
        id: Uuid,
        reason: &str,
    ) -> StoreResult<Option<(Campaigncall, OutboxEntry)>> {
        self.decide_by_id(id, Decision::Refinish { reason }, true)
            .await
    }

    /// [`Campaigncalls::refinish_success`] of `read`, just read from MySQL (as
    /// [`Campaigncalls::finish_read`]: no read inside or after the transaction unless the row
    /// changed since `read`).
    pub async fn refinish_success_read(
        &self,
        read: &Campaigncall,
        dial_requested: bool,
        reason: &str,
    ) -> StoreResult<Option<(Campaigncall, OutboxEntry)>> {
        let decision = Decision::Refinish { reason };
        match self
            .decide_read(read, dial_requested, decision, true)
            .await?
        {
            Some(done) => Ok(Some(done)),
            None => self.decide_by_id(read.id, decision, true).await,
        }
    }

    /// The finish of a row known only by its id, in one transaction: when `placed`, the dial's
    /// step `requested` first ([`mark_placed_in`]); one compare-and-set on the campaigncall and,
    /// if it won, the target (read inside the transaction) and the outbox row setting it to the
    /// decision's status (if it lost, all is rolled back); then the row is read back. Run again
    /// on a lock conflict (`store::retry`).
    async fn decide_by_id(
        &self,
        id: Uuid,
        decision: Decision<'_>,
        placed: bool,
    ) -> StoreResult<Option<(Campaigncall, OutboxEntry)>> {
        let entry = retry::run(&self.retries, "campaigncall finish", || async {
            let mut tx = self.pool.begin().await?;
            if placed {
                mark_placed_in(&mut tx, id).await?;
            }
            let changed = decision
                .update(id, table::push_tm_update)
                .build()
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let target: Option<(Vec<u8>, Vec<u8>)> = if changed == 1 {
                sqlx::query_as(
                    "SELECT campaign_id, outdial_target_id FROM campaign_campaigncalls \
                     WHERE id = ?",
                )
                .bind(uuid_bytes(id))
                .fetch_optional(&mut *tx)
                .await?
            } else {
                None
            };
            let Some((campaign_id, target_id)) = target else {
                tx.rollback().await?;
                return Ok(None);
            };
            let entry = target_entry(
                Uuid::from_slice(&campaign_id).unwrap_or_default(),
                id,
                Uuid::from_slice(&target_id).unwrap_or_default(),
                decision.result(),
            );
            outbox::insert_in(&mut tx, &entry).await?;
            tx.commit().await?;
            Ok(Some(entry))
        })
        .await?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        let row = table::refresh(&self.pool, &self.cache, id).await?;
        Ok(row.map(|r| (r, entry)))
    }

    /// The finish of `read` (just read from MySQL): as [`Campaigncalls::decide_by_id`], with the
    /// compare-and-set also on the `tm_update` read and the new `tm_update` bound, so when it
    /// wins the stored row is known (`None`: it did not win, the row changed since `read`; the
    /// caller decides again on what is stored). The target comes from `read`; the dial's step
    /// is written only when `placed` and not known to be `requested`. Run again on a lock
    /// conflict.
    async fn decide_read(
        &self,
        read: &Campaigncall,
        dial_requested: bool,
        decision: Decision<'_>,
        placed: bool,
    ) -> StoreResult<Option<(Campaigncall, OutboxEntry)>> {
        let stored = retry::run(&self.retries, "campaigncall finish", || async {
            let tm_update = next_tm_update(read.tm_update);
            let mut tx = self.pool.begin().await?;
            if placed && !dial_requested {
                mark_placed_in(&mut tx, read.id).await?;
            }
            let changed = decision
                .update(read.id, |q| {
                    q.push("tm_update = ").push_bind(db_time(tm_update));
                })
                .push(" AND tm_update <=> ")
                .push_bind(read.tm_update.map(db_time))
                .build()
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if changed != 1 {
                tx.rollback().await?;
                return Ok(None);
            }
            let entry = target_entry(
                read.campaign_id,
                read.id,
                read.outdial_target_id,
                decision.result(),
            );
            outbox::insert_in(&mut tx, &entry).await?;
            tx.commit().await?;
            Ok(Some((decision.applied(read, tm_update), entry)))
        })
        .await?;
        if let Some((row, _)) = &stored {
            self.cache_written(row).await;
        }
        Ok(stored)
    }

    /// Soft-deletes; returns the row (None if unknown).
    pub async fn delete(&self, id: Uuid) -> StoreResult<Option<Campaigncall>> {
        table::soft_delete::<Campaigncall>(&self.pool, id).await?;
        table::refresh(&self.pool, &self.cache, id).await
    }

    /// Soft-deletes only a campaigncall whose status is `done` in MySQL (checked in the
    /// `UPDATE`, not on a possibly stale copy).
    pub async fn delete_if_done(&self, id: Uuid) -> StoreResult<super::Deletion<Campaigncall>> {
        table::delete_if::<Campaigncall>(
            &self.pool,
            &self.cache,
            id,
            |q| {
                q.push(" AND status = 'done'");
            },
            |c| c.tm_delete.is_some(),
        )
        .await
    }
    /// The finished attempts of `targets` in `campaign_id`, oldest first, as `(target,
    /// destination_index, reason)`: what the retry rules read once per tick batch
    /// (`service::retry_rules`). One query on the target index.
    pub async fn finished_attempts(
        &self,
        campaign_id: Uuid,
        targets: &[Uuid],
    ) -> StoreResult<Vec<(Uuid, i32, Option<String>)>> {
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = sqlx::QueryBuilder::<MySql>::new(
            "SELECT outdial_target_id, destination_index, reason FROM campaign_campaigncalls \
             WHERE status = 'done' AND campaign_id = ",
        );
        q.push_bind(uuid_bytes(campaign_id));
        q.push(" AND outdial_target_id IN (");
        let mut ids = q.separated(", ");
        for t in targets {
            ids.push_bind(uuid_bytes(*t));
        }
        q.push(") ORDER BY tm_create, try_count");
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let r = RowReader {
                    row,
                    table: Campaigncall::TABLE,
                };
                let reason: Option<String> = sqlx::Row::try_get(row, "reason")?;
                Ok((
                    r.uuid("outdial_target_id")?,
                    r.int("destination_index")?,
                    reason,
                ))
            })
            .collect()
    }
}

/// The outbox row setting `target_id` to `result`'s target status.
fn target_entry(
    campaign_id: Uuid,
    campaigncall_id: Uuid,
    target_id: Uuid,
    result: CampaigncallResult,
) -> OutboxEntry {
    OutboxEntry::new(
        OutboxKind::TargetStatus,
        campaign_id,
        campaigncall_id,
        target_id,
        &enum_str(&result.target_status()),
    )
}

/// The dial of `campaigncall_id` is marked placed (step `requested`; one already there is not
/// changed), first in a finish's transaction (rolled back with it if its compare-and-set
/// loses). First, because of the lock order: the dial record's transaction, on its
/// unique-violation path, locks the dial row and then reads the campaigncall with a share lock
/// (`DELETE d ... JOIN c`); a finish that locked the campaigncall and then the dial row could
/// deadlock with it (tests/it/finish_tx.rs `a_finish_and_a_record_of_the_same_try_do_not_deadlock`).
async fn mark_placed_in(tx: &mut sqlx::MySqlConnection, campaigncall_id: Uuid) -> StoreResult<()> {
    sqlx::query(
        "UPDATE campaign_dials SET step = 'requested', tm_step = ? \
         WHERE campaigncall_id = ? AND step <> 'requested'",
    )
    .bind(db_time(now()))
    .bind(uuid_bytes(campaigncall_id))
    .execute(&mut *tx)
    .await?;
    Ok(())
}
