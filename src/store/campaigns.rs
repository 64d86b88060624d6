//! `campaign_campaigns`: campaigns and their two state fields.

use sqlx::{Acquire, MySqlPool};
use uuid::Uuid;

use super::filter::{Column, Kind, Unfilterable};
use super::outbox::{self, OutboxEntry};
use super::row::{RowReader, db_time, json_text, now, uuid_bytes};
use super::table::{self, Record};
use super::{Cache, Deletion, Filters, Page, StoreResult};
use crate::model::{
    Action, CallingHours, Campaign, CampaignStatus, CampaignType, EndHandle, Execute, Pacing,
    enum_str,
};

impl Record for Campaign {
    const TABLE: &'static str = "campaign_campaigns";
    const CACHE_KIND: &'static str = "campaign";
    const COLUMNS: &'static str = "id, customer_id, type, execute, name, detail, status, \
        service_level, end_handle, flow_id, actions, outplan_id, outdial_id, queue_id, \
        next_campaign_id, tm_create, tm_update, tm_delete, calling_hours, pacing";
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
            name: "type",
            kind: Kind::Enum(&["call", "flow", ""]),
        },
        Column {
            name: "execute",
            kind: Kind::Enum(&["run", "stop"]),
        },
        Column {
            name: "name",
            kind: Kind::Text,
        },
        Column {
            name: "detail",
            kind: Kind::Text,
        },
        Column {
            name: "status",
            kind: Kind::Enum(&["stop", "stopping", "run"]),
        },
        Column {
            name: "service_level",
            kind: Kind::Int,
        },
        Column {
            name: "end_handle",
            kind: Kind::Enum(&["stop", "continue", ""]),
        },
        Column {
            name: "flow_id",
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
            name: "queue_id",
            kind: Kind::Uuid,
        },
        Column {
            name: "next_campaign_id",
            kind: Kind::Uuid,
        },
    ];
    const UNFILTERABLE: Unfilterable = &[
        "actions",
        "tm_create",
        "tm_update",
        "tm_delete",
        "calling_hours",
        "pacing",
    ];

    fn from_row(r: &RowReader<'_>) -> StoreResult<Campaign> {
        Ok(Campaign {
            id: r.uuid("id")?,
            customer_id: r.uuid("customer_id")?,
            kind: r.enumeration("type")?,
            execute: r.enumeration("execute")?,
            name: r.text("name")?,
            detail: r.text("detail")?,
            status: r.enumeration("status")?,
            service_level: r.int("service_level")?,
            end_handle: r.enumeration("end_handle")?,
            flow_id: r.uuid("flow_id")?,
            actions: r.json("actions")?,
            outplan_id: r.uuid("outplan_id")?,
            outdial_id: r.uuid("outdial_id")?,
            queue_id: r.uuid("queue_id")?,
            next_campaign_id: r.uuid("next_campaign_id")?,
            tm_create: r.time("tm_create")?,
            tm_update: r.time("tm_update")?,
            tm_delete: r.time("tm_delete")?,
            calling_hours: r.json("calling_hours")?,
            pacing: r.json("pacing")?,
        })
    }
}

/// The ids of `SELECT id` rows (a row that is not a UUID is skipped).
fn ids_of(rows: Vec<(Vec<u8>,)>) -> Vec<Uuid> {
    rows.into_iter()
        .filter_map(|(b,)| Uuid::from_slice(&b).ok())
        .collect()
}

/// The campaign repository.
#[derive(Clone)]
pub struct Campaigns {
    pool: MySqlPool,
    cache: Cache,
}

/// What `PUT /v1/campaigns/<id>` writes: name, detail and service level always; type and
/// end handle only when given (`None` keeps the stored value, decided in SQL so a concurrent
/// write of them is not undone by a stale read).
#[derive(Debug, Clone, PartialEq)]
pub struct BasicInfo {
    /// Name.
    pub name: String,
    /// Detail.
    pub detail: String,
    /// Type (`None`: keep).
    pub kind: Option<CampaignType>,
    /// Service level in percent.
    pub service_level: i32,
    /// End handle (`None`: keep).
    pub end_handle: Option<EndHandle>,
}

/// The four resource ids `PUT /v1/campaigns/<id>/resource_info` sets.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ResourceInfo {
    /// Outplan.
    pub outplan_id: Uuid,
    /// Outdial.
    pub outdial_id: Uuid,
    /// Queue.
    pub queue_id: Uuid,
    /// Next campaign.
    pub next_campaign_id: Uuid,
}

impl ResourceInfo {
    /// The resource ids of a campaign.
    pub fn of(c: &Campaign) -> ResourceInfo {
        ResourceInfo {
            outplan_id: c.outplan_id,
            outdial_id: c.outdial_id,
            queue_id: c.queue_id,
            next_campaign_id: c.next_campaign_id,
        }
    }
}

impl Campaigns {
    pub(super) fn new(pool: MySqlPool, cache: Cache) -> Campaigns {
        Campaigns { pool, cache }
    }

    /// Inserts a campaign; `tm_create` is set to now, `tm_update`/`tm_delete` left NULL.
    /// Returns the stored row.
    pub async fn create(&self, c: &Campaign) -> StoreResult<Campaign> {
        sqlx::query(
            "INSERT INTO campaign_campaigns (id, customer_id, type, execute, name, detail, \
             status, service_level, end_handle, flow_id, actions, outplan_id, outdial_id, \
             queue_id, next_campaign_id, tm_create, tm_update, tm_delete, calling_hours, \
             pacing) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?)",
        )
        .bind(uuid_bytes(c.id))
        .bind(uuid_bytes(c.customer_id))
        .bind(enum_str(&c.kind))
        .bind(enum_str(&c.execute))
        .bind(&c.name)
        .bind(&c.detail)
        .bind(enum_str(&c.status))
        .bind(c.service_level)
        .bind(enum_str(&c.end_handle))
        .bind(uuid_bytes(c.flow_id))
        .bind(json_text(&c.actions))
        .bind(uuid_bytes(c.outplan_id))
        .bind(uuid_bytes(c.outdial_id))
        .bind(uuid_bytes(c.queue_id))
        .bind(uuid_bytes(c.next_campaign_id))
        .bind(db_time(now()))
        .bind(json_text(&c.calling_hours))
        .bind(json_text(&c.pacing))
        .execute(&self.pool)
        .await?;
        self.reread(c.id).await
    }

    async fn reread(&self, id: Uuid) -> StoreResult<Campaign> {
        table::refresh::<Campaign>(&self.pool, &self.cache, id)
            .await?
            .ok_or(super::StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// Read-through get (deleted campaigns included).
    pub async fn get(&self, id: Uuid) -> StoreResult<Option<Campaign>> {
        table::get(&self.pool, &self.cache, id).await
    }

    /// Get straight from MySQL (for decisions that must not act on a stale copy).
    pub async fn get_fresh(&self, id: Uuid) -> StoreResult<Option<Campaign>> {
        table::fetch(&self.pool, id).await
    }

    /// Whether the campaign is `stopping`, straight from MySQL (one column, not the whole
    /// record: asked after every campaigncall that ends). `false` for an unknown campaign.
    pub async fn is_stopping(&self, id: Uuid) -> StoreResult<bool> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT 1 FROM campaign_campaigns WHERE id = ? AND status = 'stopping'")
                .bind(uuid_bytes(id))
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some())
    }

    /// Parses list filters against the campaign whitelist.
    pub fn filters(
        &self,
        object: &serde_json::Map<String, serde_json::Value>,
    ) -> StoreResult<Filters> {
        table::filters::<Campaign>(object)
    }

    /// One page of campaigns.
    pub async fn list(&self, filters: &Filters, page: Page) -> StoreResult<Vec<Campaign>> {
        table::list(&self.pool, filters, page).await
    }

    /// Ids of campaigns that should have a tick chain (`execute = run`, not deleted).
    pub async fn ids_executing(&self) -> StoreResult<Vec<Uuid>> {
        let rows: Vec<(Vec<u8>,)> = sqlx::query_as(
            "SELECT id FROM campaign_campaigns WHERE execute = 'run' AND tm_delete IS NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(ids_of(rows))
    }

    /// Writes name, detail and service level, and type and end handle when given.
    pub async fn update_basic_info(
        &self,
        id: Uuid,
        info: &BasicInfo,
    ) -> StoreResult<Option<Campaign>> {
        table::update::<Campaign>(&self.pool, id, |q| {
            q.push("name = ").push_bind(info.name.clone());
            q.push(", detail = ").push_bind(info.detail.clone());
            q.push(", service_level = ").push_bind(info.service_level);
            if let Some(kind) = info.kind {
                q.push(", type = ").push_bind(enum_str(&kind));
            }
            if let Some(end_handle) = info.end_handle {
                q.push(", end_handle = ").push_bind(enum_str(&end_handle));
            }
        })
        .await?;
        table::refresh(&self.pool, &self.cache, id).await
    }

    /// Sets the service level.
    pub async fn update_service_level(
        &self,
        id: Uuid,
        level: i32,
    ) -> StoreResult<Option<Campaign>> {
        table::update::<Campaign>(&self.pool, id, |q| {
            q.push("service_level = ").push_bind(level);
        })
        .await?;
        table::refresh(&self.pool, &self.cache, id).await
    }

    /// Sets the stored actions.
    pub async fn update_actions(
        &self,
        id: Uuid,
        actions: &Option<Vec<Action>>,
    ) -> StoreResult<Option<Campaign>> {
        let json = json_text(actions);
        table::update::<Campaign>(&self.pool, id, |q| {
            q.push("actions = ").push_bind(json);
        })
        .await?;
        table::refresh(&self.pool, &self.cache, id).await
    }

    /// Sets outplan, outdial, queue and next campaign.
    pub async fn update_resource_info(
        &self,
        id: Uuid,
        r: ResourceInfo,
    ) -> StoreResult<Option<Campaign>> {
        table::update::<Campaign>(&self.pool, id, |q| {
            q.push("outplan_id = ").push_bind(uuid_bytes(r.outplan_id));
            q.push(", outdial_id = ")
                .push_bind(uuid_bytes(r.outdial_id));
            q.push(", queue_id = ").push_bind(uuid_bytes(r.queue_id));
            q.push(", next_campaign_id = ")
                .push_bind(uuid_bytes(r.next_campaign_id));
        })
        .await?;
        table::refresh(&self.pool, &self.cache, id).await
    }

    /// Sets or clears (`None`) the calling hours.
    pub async fn update_calling_hours(
        &self,
        id: Uuid,
        hours: &Option<CallingHours>,
    ) -> StoreResult<Option<Campaign>> {
        let json = json_text(hours);
        table::update::<Campaign>(&self.pool, id, |q| {
            q.push("calling_hours = ").push_bind(json);
        })
        .await?;
        table::refresh(&self.pool, &self.cache, id).await
    }

    /// Sets or clears (`None`) the pacing.
    pub async fn update_pacing(
        &self,
        id: Uuid,
        pacing: &Option<Pacing>,
    ) -> StoreResult<Option<Campaign>> {
        let json = json_text(pacing);
        table::update::<Campaign>(&self.pool, id, |q| {
            q.push("pacing = ").push_bind(json);
        })
        .await?;
        table::refresh(&self.pool, &self.cache, id).await
    }

    /// Sets the next campaign id.
    pub async fn update_next_campaign_id(
        &self,
        id: Uuid,
        next: Uuid,
    ) -> StoreResult<Option<Campaign>> {
        table::update::<Campaign>(&self.pool, id, |q| {
            q.push("next_campaign_id = ").push_bind(uuid_bytes(next));
        })
        .await?;
        table::refresh(&self.pool, &self.cache, id).await
    }

    /// Sets the flow id (used when a flow is re-created).
    pub async fn update_flow_id(&self, id: Uuid, flow_id: Uuid) -> StoreResult<Option<Campaign>> {
        table::update::<Campaign>(&self.pool, id, |q| {
            q.push("flow_id = ").push_bind(uuid_bytes(flow_id));
        })
        .await?;
        table::refresh(&self.pool, &self.cache, id).await
    }

    /// Sets `status` (and `execute` when given) only if the current status is one of `from`;
    /// returns whether the row changed. Status transitions go through this compare-and-set
    /// so two concurrent requests cannot both perform the same transition.
    pub async fn transition(
        &self,
        id: Uuid,
        from: &[CampaignStatus],
        to: CampaignStatus,
        execute: Option<Execute>,
    ) -> StoreResult<bool> {
        if from.is_empty() {
            return Ok(false);
        }
        let from: Vec<String> = from.iter().map(enum_str).collect();
        let changed = table::update_where::<Campaign>(
            &self.pool,
            id,
            |q| {
                q.push("status = ").push_bind(enum_str(&to));
                if let Some(e) = execute {
                    q.push(", execute = ").push_bind(enum_str(&e));
                }
            },
            |q| {
                q.push(" AND tm_delete IS NULL AND status IN (");
                let mut sep = q.separated(", ");
                for s in from {
                    sep.push_bind(s);
                }
                q.push(")");
            },
        )
        .await?;
        table::refresh::<Campaign>(&self.pool, &self.cache, id).await?;
        Ok(changed == 1)
    }

    /// `run`/`stopping` → `stop` only if the campaign is still stoppable in MySQL when the
    /// `UPDATE` runs: `execute = stop` and no campaigncall `dialing` or `progressing`. So a
    /// `run` (which sets `execute = run`) or a dial that lands between the caller's check and
    /// this statement is never undone. Returns whether it changed.
    pub async fn stop_if_stoppable(&self, id: Uuid) -> StoreResult<bool> {
        let changed = table::update_where::<Campaign>(
            &self.pool,
            id,
            |q| {
                q.push("status = 'stop'");
            },
            |q| {
                q.push(
                    " AND tm_delete IS NULL AND status IN ('run', 'stopping') \
                     AND execute = 'stop' AND NOT EXISTS (SELECT 1 FROM campaign_campaigncalls cc \
                     WHERE cc.campaign_id = campaign_campaigns.id \
                     AND cc.status IN ('dialing', 'progressing') AND cc.tm_delete IS NULL)",
                );
            },
        )
        .await?;
        table::refresh::<Campaign>(&self.pool, &self.cache, id).await?;
        Ok(changed == 1)
    }

    /// `run` → `stopping` only while `execute` is still what the caller saw (a `run` that
    /// landed meanwhile is not undone). Returns whether it changed.
    pub async fn stopping_if(&self, id: Uuid, seen_execute: Execute) -> StoreResult<bool> {
        let changed = table::update_where::<Campaign>(
            &self.pool,
            id,
            |q| {
                q.push("status = 'stopping'");
            },
            |q| {
                q.push(" AND tm_delete IS NULL AND status = 'run' AND execute = ")
                    .push_bind(enum_str(&seen_execute));
            },
        )
        .await?;
        table::refresh::<Campaign>(&self.pool, &self.cache, id).await?;
        Ok(changed == 1)
    }

    /// Sets `execute`; returns whether it changed.
    pub async fn set_execute(&self, id: Uuid, execute: Execute) -> StoreResult<bool> {
        let value = enum_str(&execute);
        let changed = table::update_where::<Campaign>(
            &self.pool,
            id,
            |q| {
                q.push("execute = ").push_bind(value.clone());
            },
            |q| {
                q.push(" AND execute <> ").push_bind(value.clone());
            },
        )
        .await?;
        table::refresh::<Campaign>(&self.pool, &self.cache, id).await?;
        Ok(changed == 1)
    }

    /// Campaigns left `stopping` with their execution ended and no campaigncall up, last
    /// changed before `before` (the repair stops them).
    pub async fn ids_stopping_idle(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<Uuid>> {
        self.ids_where(
            "status = 'stopping' AND execute = 'stop' AND NOT EXISTS (SELECT 1 FROM \
             campaign_campaigncalls cc WHERE cc.campaign_id = campaign_campaigns.id \
             AND cc.status IN ('dialing', 'progressing') AND cc.tm_delete IS NULL)",
            before,
        )
        .await
    }

    /// Campaigns left `run` with `execute = stop` (an `end_execution` cut short), last changed
    /// before `before`.
    pub async fn ids_run_not_executing(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<Uuid>> {
        self.ids_where("status = 'run' AND execute = 'stop'", before)
            .await
    }

    async fn ids_where(
        &self,
        condition: &'static str,
        before: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<Uuid>> {
        let sql = format!(
            "SELECT id FROM campaign_campaigns WHERE {condition} AND tm_delete IS NULL \
             AND (tm_update IS NULL OR tm_update < ?) LIMIT 1000"
        );
        let rows: Vec<(Vec<u8>,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(db_time(before))
            .fetch_all(&self.pool)
            .await?;
        Ok(ids_of(rows))
    }

    /// Sets `execute = stop` only if the campaign still has the status and execute the caller
    /// saw, so a tick that read `stopping` cannot undo a `run` that landed meanwhile. With
    /// `then`, its outbox row (a sequence's next start) is written in the same transaction, so
    /// the end is never recorded without it. Returns whether it changed.
    pub async fn stop_execute_if(
        &self,
        id: Uuid,
        seen_status: CampaignStatus,
        seen_execute: Execute,
        then: Option<&OutboxEntry>,
    ) -> StoreResult<bool> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let changed = table::update_where_in::<Campaign>(
            &mut tx,
            id,
            |q| {
                q.push("execute = 'stop'");
            },
            |q| {
                q.push(" AND status = ")
                    .push_bind(enum_str(&seen_status))
                    .push(" AND execute = ")
                    .push_bind(enum_str(&seen_execute));
            },
        )
        .await?;
        if changed == 1
            && let Some(entry) = then
        {
            outbox::insert_in(&mut tx, entry).await?;
        }
        tx.commit().await?;
        // Returned before the read below takes one (no task holds two connections).
        drop(conn);
        table::refresh::<Campaign>(&self.pool, &self.cache, id).await?;
        Ok(changed == 1)
    }

    /// Soft-deletes unconditionally; returns the deleted row (None if unknown). Deleting
    /// twice does not re-stamp `tm_delete`. The service deletes with
    /// [`Campaigns::delete_if_stopped`].
    pub async fn delete(&self, id: Uuid) -> StoreResult<Option<Campaign>> {
        table::soft_delete::<Campaign>(&self.pool, id).await?;
        table::refresh(&self.pool, &self.cache, id).await
    }

    /// The campaigns deleted at or after `since`, most recently deleted first, at most `limit`
    /// (the orphaned-flow reconcile pass; `idx_campaign_campaigns_tm_delete`).
    pub async fn deleted_since(
        &self,
        since: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Campaign>> {
        table::deleted_since::<Campaign>(&self.pool, since, limit).await
    }

    /// Soft-deletes only a campaign whose status is `stop` in MySQL (the condition is in
    /// the `UPDATE`, so a stale cached copy cannot let a running campaign be deleted).
    pub async fn delete_if_stopped(&self, id: Uuid) -> StoreResult<Deletion<Campaign>> {
        table::delete_if::<Campaign>(
            &self.pool,
            &self.cache,
            id,
            |q| {
                q.push(" AND status = ")
                    .push_bind(enum_str(&CampaignStatus::Stop));
            },
            |c| c.tm_delete.is_some(),
        )
        .await
    }
}
