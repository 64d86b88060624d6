//! What the live stats and campaign sequences read and write besides the platform's rows:
//! grouped counts of one campaign's campaigncalls (covering index, see the migration
//! `20261129060000_stats_sequences.sql`), the last tick's decision, and when a campaign was
//! last put to `run`.
//!
//! The tick record lives in Redis, not MySQL: every tick of every campaign writes it (one
//! pipelined `DEL`+`HSET`+`EXPIRE`, one round trip), any process reads it, and losing it costs
//! only a `null` `waiting_reason` until the next tick. Key `<prefix>campaign_tick:<uuid>`,
//! TTL [`TICK_RECORD_TTL`]. The run start is in MySQL (`campaign_runs`) because the sequence
//! rule that keeps a cycle from running forever depends on it.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::MySqlPool;
use uuid::Uuid;

use super::row::{db_time, now, uuid_bytes};
use super::{Cache, StoreResult};
use crate::model::TickRecord;

/// How long a tick record outlives its tick (a running chain rewrites it every few seconds).
pub const TICK_RECORD_TTL: Duration = Duration::from_secs(3600);

const TICK_KIND: &str = "campaign_tick";

/// Counts of one campaign's (not deleted) campaigncalls for one `(status, result)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    /// `dialing`, `progressing` or `done`.
    pub status: String,
    /// `success`, `fail` or `""`.
    pub result: String,
    /// Why it ended (`None` for open ones and rows written without it, e.g. by the Go service).
    pub reason: Option<String>,
    /// How many.
    pub count: i64,
}

/// Stats queries and the tick and run records.
#[derive(Clone)]
pub struct Stats {
    pool: MySqlPool,
    cache: Cache,
}

impl Stats {
    pub(super) fn new(pool: MySqlPool, cache: Cache) -> Stats {
        Stats { pool, cache }
    }

    /// The campaign's campaigncalls grouped by status, result and reason (reads only the
    /// covering index `(campaign_id, status, result, reason, tm_delete)`).
    pub async fn status_counts(&self, campaign_id: Uuid) -> StoreResult<Vec<StatusCount>> {
        let rows: Vec<(String, String, Option<String>, i64)> = sqlx::query_as(
            "SELECT status, result, reason, COUNT(*) FROM campaign_campaigncalls \
             WHERE campaign_id = ? AND tm_delete IS NULL GROUP BY status, result, reason",
        )
        .bind(uuid_bytes(campaign_id))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(status, result, reason, count)| StatusCount {
                status,
                result,
                reason,
                count,
            })
            .collect())
    }

    /// Campaigncalls created since `since`, and when the latest one was created (a range and
    /// one end of the index `(campaign_id, tm_create)`).
    pub async fn recent_dials(
        &self,
        campaign_id: Uuid,
        since: DateTime<Utc>,
    ) -> StoreResult<(i64, Option<DateTime<Utc>>)> {
        let id = uuid_bytes(campaign_id);
        let (n, last): (i64, Option<NaiveDateTime>) = sqlx::query_as(
            "SELECT \
               (SELECT COUNT(*) FROM campaign_campaigncalls WHERE campaign_id = ? AND tm_create >= ?), \
               (SELECT MAX(tm_create) FROM campaign_campaigncalls WHERE campaign_id = ?)",
        )
        .bind(&id)
        .bind(db_time(since))
        .bind(&id)
        .fetch_one(&self.pool)
        .await?;
        Ok((n, last.map(|t| t.and_utc())))
    }

    /// Records what the campaign's last tick decided (best effort, see the module header).
    pub async fn record_tick(&self, campaign_id: Uuid, t: &TickRecord) {
        let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
        let fields = [
            ("outcome", t.outcome.clone()),
            (
                "waiting_reason",
                t.waiting_reason.clone().unwrap_or_default(),
            ),
            ("next_tick_at", time(t.next_tick_at)),
            ("at", time(Some(t.at))),
        ];
        self.cache
            .set_fields(TICK_KIND, campaign_id, &fields, TICK_RECORD_TTL)
            .await;
    }

    /// The campaign's last tick record, if one is known.
    pub async fn last_tick(&self, campaign_id: Uuid) -> Option<TickRecord> {
        let m = self.cache.get_fields(TICK_KIND, campaign_id).await?;
        Some(tick_record(&m))
    }

    /// Notes that the campaign is being put to `run` now.
    pub async fn record_run(&self, campaign_id: Uuid) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO campaign_runs (campaign_id, tm_run) VALUES (?, ?) \
             ON DUPLICATE KEY UPDATE tm_run = VALUES(tm_run)",
        )
        .bind(uuid_bytes(campaign_id))
        .bind(db_time(now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// When the campaign was last put to `run` by this service (`None`: never recorded).
    pub async fn run_started(&self, campaign_id: Uuid) -> StoreResult<Option<DateTime<Utc>>> {
        let row: Option<(NaiveDateTime,)> =
            sqlx::query_as("SELECT tm_run FROM campaign_runs WHERE campaign_id = ?")
                .bind(uuid_bytes(campaign_id))
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(t,)| t.and_utc()))
    }

    /// Whether the campaign has a campaigncall created at or after `since` (any, when `None`).
    pub async fn dialed_since(
        &self,
        campaign_id: Uuid,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<bool> {
        let since = since.map(db_time).unwrap_or_default();
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT 1 FROM campaign_campaigncalls WHERE campaign_id = ? AND tm_create >= ? LIMIT 1",
        )
        .bind(uuid_bytes(campaign_id))
        .bind(since)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }
}

fn tick_record(m: &HashMap<String, String>) -> TickRecord {
    let text = |k: &str| m.get(k).filter(|v| !v.is_empty()).cloned();
    let time = |k: &str| {
        text(k)
            .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    TickRecord {
        outcome: text("outcome").unwrap_or_default(),
        waiting_reason: text("waiting_reason"),
        next_tick_at: time("next_tick_at"),
        at: time("at").unwrap_or_default(),
    }
}
