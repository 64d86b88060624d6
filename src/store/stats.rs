//! What the live stats and campaign sequences read and write besides the platform's rows:
//! every MySQL figure of one campaign's stats in one statement ([`Stats::snapshot`]: grouped
//! counts of its campaigncalls on a covering index, see the migration
//! `20261129060000_stats_sequences.sql`, its recent dials and its target marks), the target
//! marks themselves (`campaign_target_marks`, migration `20261207060000_target_marks.sql`: what
//! is counted once per target), the last tick's decision, and when a campaign was last put to
//! `run`.
//!
//! The tick record lives in Redis, not MySQL: every tick of every campaign writes it (one
//! pipelined `DEL`+`HSET`+`EXPIRE`, one round trip), any process reads it, and losing it costs
//! only a `null` `waiting_reason` until the next tick. Key `<prefix>campaign_tick:<uuid>`,
//! TTL [`TICK_RECORD_TTL`]. The run start is in MySQL (`campaign_runs`) because the sequence
//! rule that keeps a cycle from running forever depends on it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::MySqlPool;
use uuid::Uuid;

use super::row::{db_time, now, uuid_bytes};
use super::{Cache, StoreResult};
use crate::model::{TargetMark, TickRecord};

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

/// Every MySQL figure of one campaign's stats, read at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Its (not deleted) campaigncalls by status, result and reason.
    pub counts: Vec<StatusCount>,
    /// Campaigncalls created in the 60 s before the read (MySQL's clock).
    pub dials_last_minute: i64,
    /// When the latest campaigncall was created.
    pub last_dial_at: Option<DateTime<Utc>>,
    /// Targets marked [`TargetMark::Suppressed`].
    pub suppressed: i64,
    /// Targets marked [`TargetMark::ZoneFallback`].
    pub zone_fallback_targets: i64,
}

/// The stats in one statement. The first part is the `GROUP BY` over the covering index
/// `(campaign_id, status, result, reason, tm_delete)` (`part` 0, a row per group); the second
/// is one row (`part` 1) of scalar reads: the range count and `MAX` on
/// `(campaign_id, tm_create)`, the minute measured on MySQL's clock, and the two target mark
/// counts on the primary key of `campaign_target_marks`. A `UNION ALL` of subqueries is still
/// one statement, so InnoDB reads all of it from one read view (also under `READ COMMITTED`,
/// where two statements of one transaction would each see their own). The string columns come
/// from `campaign_campaigncalls` alone, so no collations of two tables are mixed.
const SNAPSHOT: &str = "\
    SELECT 0 AS part, status, result, reason, COUNT(*) AS n, 0 AS recent, \
           CAST(NULL AS DATETIME(6)) AS last_dial, 0 AS suppressed, 0 AS fallback \
      FROM campaign_campaigncalls WHERE campaign_id = ? AND tm_delete IS NULL \
     GROUP BY status, result, reason \
    UNION ALL \
    SELECT 1, '', '', NULL, 0, \
           (SELECT COUNT(*) FROM campaign_campaigncalls WHERE campaign_id = ? \
               AND tm_create >= UTC_TIMESTAMP(6) - INTERVAL 60 SECOND), \
           (SELECT MAX(tm_create) FROM campaign_campaigncalls WHERE campaign_id = ?), \
           (SELECT COUNT(*) FROM campaign_target_marks WHERE campaign_id = ? AND mark = ?), \
           (SELECT COUNT(*) FROM campaign_target_marks WHERE campaign_id = ? AND mark = ?)";

/// A row of [`SNAPSHOT`].
type SnapshotRow = (
    i64,
    String,
    String,
    Option<String>,
    i64,
    i64,
    Option<NaiveDateTime>,
    i64,
    i64,
);

/// How many target marks a process remembers having written (then it forgets them all and
/// the next repeats write again, finding their rows).
const MARKS_REMEMBERED: usize = 100_000;

/// Stats queries, the target marks, and the tick and run records.
#[derive(Clone)]
pub struct Stats {
    pool: MySqlPool,
    cache: Cache,
    /// Target marks this process wrote: a tick that sees the same target again (a
    /// `destination_local` fall-back target skipped every tick until its hours open) writes
    /// nothing.
    marked: Arc<Mutex<HashSet<(Uuid, TargetMark, Uuid)>>>,
}

impl Stats {
    pub(super) fn new(pool: MySqlPool, cache: Cache) -> Stats {
        Stats {
            pool,
            cache,
            marked: Arc::default(),
        }
    }

    /// Every MySQL figure of the campaign's stats, from one statement: one statement reads
    /// one consistent view of the data under any isolation level, so the counts agree with each
    /// other whatever commits meanwhile (see [`SNAPSHOT`]).
    pub async fn snapshot(&self, campaign_id: Uuid) -> StoreResult<StatsSnapshot> {
        let id = uuid_bytes(campaign_id);
        let rows: Vec<SnapshotRow> = sqlx::query_as(SNAPSHOT)
            .bind(&id)
            .bind(&id)
            .bind(&id)
            .bind(&id)
            .bind(TargetMark::Suppressed.as_str())
            .bind(&id)
            .bind(TargetMark::ZoneFallback.as_str())
            .fetch_all(&self.pool)
            .await?;
        let mut snap = StatsSnapshot::default();
        for (part, status, result, reason, count, recent, last, suppressed, fallback) in rows {
            if part == 0 {
                snap.counts.push(StatusCount {
                    status,
                    result,
                    reason,
                    count,
                });
            } else {
                snap.dials_last_minute = recent;
                snap.last_dial_at = last.map(|t| t.and_utc());
                snap.suppressed = suppressed;
                snap.zone_fallback_targets = fallback;
            }
        }
        Ok(snap)
    }

    /// Counts `target_id` under `mark` for the campaign, once however often it is called (a
    /// row per campaign, mark and target; a repeat is skipped in this process, and a repeat
    /// from another process finds the row).
    pub async fn mark_target(
        &self,
        campaign_id: Uuid,
        mark: TargetMark,
        target_id: Uuid,
    ) -> StoreResult<()> {
        let key = (campaign_id, mark, target_id);
        if self.marked.lock().is_ok_and(|m| m.contains(&key)) {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO campaign_target_marks (campaign_id, mark, target_id, tm_create) \
             VALUES (?, ?, ?, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE campaign_id = campaign_id",
        )
        .bind(uuid_bytes(campaign_id))
        .bind(mark.as_str())
        .bind(uuid_bytes(target_id))
        .execute(&self.pool)
        .await?;
        if let Ok(mut m) = self.marked.lock() {
            if m.len() >= MARKS_REMEMBERED {
                m.clear();
            }
            m.insert(key);
        }
        Ok(())
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
