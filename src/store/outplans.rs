//! `campaign_outplans`: dial settings, and this product's retry rules and minimum talk time
//! (`retry_rules` JSON, `min_talk_ms` INTEGER; both NULL when unset, as in the Go service's rows).

use sqlx::{MySqlPool, Row};
use uuid::Uuid;

use super::filter::{Column, Kind, Unfilterable};
use super::row::{RowReader, db_time, json_text, now, uuid_bytes};
use super::table::{self, Record};
use super::{Cache, Filters, Page, StoreResult};
use crate::model::{Address, Outplan, RetryRules};

impl Record for Outplan {
    const TABLE: &'static str = "campaign_outplans";
    const CACHE_KIND: &'static str = "outplan";
    const COLUMNS: &'static str = "id, customer_id, name, detail, source, dial_timeout, \
        try_interval, max_try_count_0, max_try_count_1, max_try_count_2, max_try_count_3, \
        max_try_count_4, tm_create, tm_update, tm_delete, retry_rules, min_talk_ms";
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
            name: "name",
            kind: Kind::Text,
        },
        Column {
            name: "detail",
            kind: Kind::Text,
        },
        Column {
            name: "dial_timeout",
            kind: Kind::Int,
        },
        Column {
            name: "try_interval",
            kind: Kind::Int,
        },
        Column {
            name: "max_try_count_0",
            kind: Kind::Int,
        },
        Column {
            name: "max_try_count_1",
            kind: Kind::Int,
        },
        Column {
            name: "max_try_count_2",
            kind: Kind::Int,
        },
        Column {
            name: "max_try_count_3",
            kind: Kind::Int,
        },
        Column {
            name: "max_try_count_4",
            kind: Kind::Int,
        },
    ];
    const UNFILTERABLE: Unfilterable = &[
        "source",
        "tm_create",
        "tm_update",
        "tm_delete",
        "retry_rules",
        "min_talk_ms",
    ];

    fn from_row(r: &RowReader<'_>) -> StoreResult<Outplan> {
        Ok(Outplan {
            id: r.uuid("id")?,
            customer_id: r.uuid("customer_id")?,
            name: r.text("name")?,
            detail: r.text("detail")?,
            source: r.json("source")?,
            dial_timeout: r.int("dial_timeout")?,
            try_interval: r.int("try_interval")?,
            max_try_count_0: r.int("max_try_count_0")?,
            max_try_count_1: r.int("max_try_count_1")?,
            max_try_count_2: r.int("max_try_count_2")?,
            max_try_count_3: r.int("max_try_count_3")?,
            max_try_count_4: r.int("max_try_count_4")?,
            tm_create: r.time("tm_create")?,
            tm_update: r.time("tm_update")?,
            tm_delete: r.time("tm_delete")?,
            retry_rules: r.json("retry_rules")?,
            // NULL (unset) stays `None` here, unlike `RowReader::int`.
            min_talk_ms: r.row.try_get("min_talk_ms")?,
        })
    }
}

/// The dial-settings fields `PUT /v1/outplans/<id>/dials` overwrites.
#[derive(Debug, Clone, PartialEq)]
pub struct Dials {
    /// Caller id (None stores NULL).
    pub source: Option<Address>,
    /// Ring timeout, ms.
    pub dial_timeout: i32,
    /// Retry interval, ms.
    pub try_interval: i32,
    /// Max tries per destination.
    pub max_try_counts: [i32; 5],
}

/// What a dials update does to the retry settings: each `None` keeps the stored value,
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetryUpdate {
    /// The retry rules.
    pub retry_rules: Option<Option<RetryRules>>,
    /// The minimum talk time, ms.
    pub min_talk_ms: Option<Option<i32>>,
}

/// The outplan repository.
#[derive(Clone)]
pub struct Outplans {
    pool: MySqlPool,
    cache: Cache,
}

impl Outplans {
    pub(super) fn new(pool: MySqlPool, cache: Cache) -> Outplans {
        Outplans { pool, cache }
    }

    /// Inserts an outplan (`tm_create` now); returns the stored row.
    pub async fn create(&self, o: &Outplan) -> StoreResult<Outplan> {
        sqlx::query(
            "INSERT INTO campaign_outplans (id, customer_id, name, detail, source, dial_timeout, \
             try_interval, max_try_count_0, max_try_count_1, max_try_count_2, max_try_count_3, \
             max_try_count_4, tm_create, tm_update, tm_delete, retry_rules, min_talk_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?)",
        )
        .bind(uuid_bytes(o.id))
        .bind(uuid_bytes(o.customer_id))
        .bind(&o.name)
        .bind(&o.detail)
        .bind(json_text(&o.source))
        .bind(o.dial_timeout)
        .bind(o.try_interval)
        .bind(o.max_try_count_0)
        .bind(o.max_try_count_1)
        .bind(o.max_try_count_2)
        .bind(o.max_try_count_3)
        .bind(o.max_try_count_4)
        .bind(db_time(now()))
        .bind(json_text(&o.retry_rules))
        .bind(o.min_talk_ms)
        .execute(&self.pool)
        .await?;
        table::refresh::<Outplan>(&self.pool, &self.cache, o.id)
            .await?
            .ok_or(super::StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// Read-through get (deleted rows included).
    pub async fn get(&self, id: Uuid) -> StoreResult<Option<Outplan>> {
        table::get(&self.pool, &self.cache, id).await
    }

    /// Parses list filters against the outplan whitelist.
    pub fn filters(
        &self,
        object: &serde_json::Map<String, serde_json::Value>,
    ) -> StoreResult<Filters> {
        table::filters::<Outplan>(object)
    }

    /// One page of outplans.
    pub async fn list(&self, filters: &Filters, page: Page) -> StoreResult<Vec<Outplan>> {
        table::list(&self.pool, filters, page).await
    }

    /// Overwrites name and detail.
    pub async fn update_basic_info(
        &self,
        id: Uuid,
        name: &str,
        detail: &str,
    ) -> StoreResult<Option<Outplan>> {
        table::update::<Outplan>(&self.pool, id, |q| {
            q.push("name = ").push_bind(name.to_owned());
            q.push(", detail = ").push_bind(detail.to_owned());
        })
        .await?;
        table::refresh(&self.pool, &self.cache, id).await
    }

    /// Overwrites the dial settings (the retry settings are kept).
    pub async fn update_dials(&self, id: Uuid, d: &Dials) -> StoreResult<Option<Outplan>> {
        self.update_dials_and_retry(id, d, &RetryUpdate::default())
            .await
    }

    /// Overwrites the dial settings and the retry settings `retry` gives, in one `UPDATE`.
    pub async fn update_dials_and_retry(
        &self,
        id: Uuid,
        d: &Dials,
        retry: &RetryUpdate,
    ) -> StoreResult<Option<Outplan>> {
        let source = json_text(&d.source);
        table::update::<Outplan>(&self.pool, id, |q| {
            q.push("source = ").push_bind(source);
            q.push(", dial_timeout = ").push_bind(d.dial_timeout);
            q.push(", try_interval = ").push_bind(d.try_interval);
            for (i, n) in d.max_try_counts.iter().enumerate() {
                q.push(format!(", max_try_count_{i} = ")).push_bind(*n);
            }
            if let Some(rules) = &retry.retry_rules {
                q.push(", retry_rules = ").push_bind(json_text(rules));
            }
            if let Some(min) = retry.min_talk_ms {
                q.push(", min_talk_ms = ").push_bind(min);
            }
        })
        .await?;
        table::refresh(&self.pool, &self.cache, id).await
    }

    /// Soft-deletes unconditionally; returns the row (None if unknown). The service deletes
    /// with [`Outplans::delete_if_unused`].
    pub async fn delete(&self, id: Uuid) -> StoreResult<Option<Outplan>> {
        table::soft_delete::<Outplan>(&self.pool, id).await?;
        table::refresh(&self.pool, &self.cache, id).await
    }

    /// Soft-deletes only while no campaign that is not stopped (and not deleted) uses the
    /// outplan, checked in the same `UPDATE`.
    pub async fn delete_if_unused(&self, id: Uuid) -> StoreResult<super::Deletion<Outplan>> {
        table::delete_if::<Outplan>(
            &self.pool,
            &self.cache,
            id,
            |q| {
                q.push(" AND NOT EXISTS (SELECT 1 FROM campaign_campaigns WHERE outplan_id = ")
                    .push_bind(uuid_bytes(id))
                    .push(" AND status <> 'stop' AND tm_delete IS NULL)");
            },
            |o| o.tm_delete.is_some(),
        )
        .await
    }
}
