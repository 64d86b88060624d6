//! `campaign_campaigncalls`: dial attempts, their progress and result, and the capacity
//! queries the tick needs (how many are dialing, whether any is still going).

use chrono::NaiveDateTime;
use sqlx::mysql::MySqlArguments;
use sqlx::query::Query;
use sqlx::{Acquire, AssertSqlSafe, MySql, MySqlPool};
use uuid::Uuid;

use super::filter::{Column, Kind, Unfilterable};
use super::outbox::{self, OutboxEntry, OutboxKind};
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

/// The campaigncall repository.
#[derive(Clone)]
pub struct Campaigncalls {
    pool: MySqlPool,
    cache: Cache,
}

impl Campaigncalls {
    pub(super) fn new(pool: MySqlPool, cache: Cache) -> Campaigncalls {
        Campaigncalls { pool, cache }
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
    pub async fn finish_settling(
        &self,
        id: Uuid,
        result: CampaigncallResult,
        reason: Option<&str>,
        placed: bool,
    ) -> StoreResult<Option<(Campaigncall, OutboxEntry)>> {
        let reason: Option<String> = reason.map(|r| r.chars().take(64).collect());
        self.decide_with_target(
            id,
            result,
            placed,
            |q| {
                q.push("status = 'done', result = ")
                    .push_bind(enum_str(&result))
                    .push(", reason = ")
                    .push_bind(reason);
            },
            " AND status <> 'done'",
        )
        .await
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
        let reason: String = reason.chars().take(64).collect();
        self.decide_with_target(
            id,
            CampaigncallResult::Success,
            true,
            |q| {
                q.push("result = 'success', reason = ").push_bind(reason);
            },
            " AND status = 'done' AND result = 'fail'",
        )
        .await
    }

    /// One compare-and-set on the campaigncall (`set` where `condition` holds) and, if it won,
    /// the outbox row setting its target to `result`'s status (and, when `placed`, the dial's
    /// step `requested`), in one transaction.
    async fn decide_with_target(
        &self,
        id: Uuid,
        result: CampaigncallResult,
        placed: bool,
        set: impl FnOnce(&mut sqlx::QueryBuilder<MySql>),
        condition: &'static str,
    ) -> StoreResult<Option<(Campaigncall, OutboxEntry)>> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let changed = table::update_where_in::<Campaigncall>(&mut tx, id, set, |q| {
            q.push(condition);
        })
        .await?;
        let target: Option<(Vec<u8>, Vec<u8>)> = if changed == 1 {
            sqlx::query_as(
                "SELECT campaign_id, outdial_target_id FROM campaign_campaigncalls WHERE id = ?",
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
        let entry = OutboxEntry::new(
            OutboxKind::TargetStatus,
            Uuid::from_slice(&campaign_id).unwrap_or_default(),
            id,
            Uuid::from_slice(&target_id).unwrap_or_default(),
            &enum_str(&result.target_status()),
        );
        outbox::insert_in(&mut tx, &entry).await?;
        if placed {
            sqlx::query(
                "UPDATE campaign_dials SET step = 'requested', tm_step = ? \
                 WHERE campaigncall_id = ? AND step <> 'requested'",
            )
            .bind(db_time(now()))
            .bind(uuid_bytes(id))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        // Back to the pool before the read below takes one: a task holding a connection while
        // it waits for another starves the pool under load (every holder waiting on the next).
        drop(conn);
        let row = table::refresh(&self.pool, &self.cache, id).await?;
        Ok(row.map(|r| (r, entry)))
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
