//! `campaign_outbox`: follow-up work that must outlive the process that decided it. A row is
//! written in the same transaction as the change it follows (a campaigncall's finish, a
//! campaign's end), so the change never happens without it; whoever made the change does the
//! work right away and deletes the row; a row left behind (the process died, a peer failed) is
//! done by the campaigncall repair once it is older than the repair's margin. A finish's row is
//! deleted a moment later with the others of the process, by one statement ([`Outbox::delete_soon`],
//! `store::soon`): a delete lost to a death leaves the row to the repair, which writes the
//! target again only if it has not moved on, as for any row left behind.
//!
//! Times here are MySQL's (`UTC_TIMESTAMP(6)`), written and compared by the same clock.

use prometheus::IntCounterVec;
use sqlx::{Acquire, MySqlConnection, MySqlPool, Row};
use uuid::Uuid;

use super::StoreResult;
use super::retry;
use super::row::uuid_bytes;
use super::soon::Soon;

/// What an outbox row asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    /// Set the outdial target `subject_id` to `value` (`idle` or `done`).
    TargetStatus,
    /// Start the campaign `subject_id`, next in the sequence of `campaign_id`.
    NextCampaign,
}

impl OutboxKind {
    fn as_str(self) -> &'static str {
        match self {
            OutboxKind::TargetStatus => "target_status",
            OutboxKind::NextCampaign => "next_campaign",
        }
    }

    fn parse(s: &str) -> Option<OutboxKind> {
        match s {
            "target_status" => Some(OutboxKind::TargetStatus),
            "next_campaign" => Some(OutboxKind::NextCampaign),
            _ => None,
        }
    }
}

/// One row of follow-up work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The row's id.
    pub id: Uuid,
    /// What to do.
    pub kind: OutboxKind,
    /// The campaign the change belongs to.
    pub campaign_id: Uuid,
    /// The finished campaigncall (`target_status`), nil otherwise.
    pub campaigncall_id: Uuid,
    /// The target or the next campaign.
    pub subject_id: Uuid,
    /// The target status to set (`target_status`), empty otherwise.
    pub value: String,
    /// How often doing it failed.
    pub attempts: i32,
}

impl OutboxEntry {
    /// A new row (a fresh id, no attempt yet).
    pub fn new(
        kind: OutboxKind,
        campaign_id: Uuid,
        campaigncall_id: Uuid,
        subject_id: Uuid,
        value: &str,
    ) -> OutboxEntry {
        OutboxEntry {
            id: Uuid::new_v4(),
            kind,
            campaign_id,
            campaigncall_id,
            subject_id,
            value: value.to_owned(),
            attempts: 0,
        }
    }
}

/// Writes `e` inside the caller's transaction (due at once; the repair waits its margin).
pub(super) async fn insert_in(conn: &mut MySqlConnection, e: &OutboxEntry) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO campaign_outbox (id, kind, campaign_id, campaigncall_id, subject_id, value, \
         attempts, tm_create, tm_due) VALUES (?, ?, ?, ?, ?, ?, 0, UTC_TIMESTAMP(6), \
         UTC_TIMESTAMP(6))",
    )
    .bind(uuid_bytes(e.id))
    .bind(e.kind.as_str())
    .bind(uuid_bytes(e.campaign_id))
    .bind(uuid_bytes(e.campaigncall_id))
    .bind(uuid_bytes(e.subject_id))
    .bind(&e.value)
    .execute(conn)
    .await?;
    Ok(())
}

const COLUMNS: &str = "id, kind, campaign_id, campaigncall_id, subject_id, value, attempts";

fn uuid_of(row: &sqlx::mysql::MySqlRow, column: &str) -> StoreResult<Uuid> {
    let bytes: Vec<u8> = row.try_get(column)?;
    Ok(Uuid::from_slice(&bytes).unwrap_or_default())
}

fn entry_of(row: &sqlx::mysql::MySqlRow) -> StoreResult<Option<OutboxEntry>> {
    let kind: String = row.try_get("kind")?;
    let Some(kind) = OutboxKind::parse(&kind) else {
        return Ok(None);
    };
    Ok(Some(OutboxEntry {
        id: uuid_of(row, "id")?,
        kind,
        campaign_id: uuid_of(row, "campaign_id")?,
        campaigncall_id: uuid_of(row, "campaigncall_id")?,
        subject_id: uuid_of(row, "subject_id")?,
        value: row.try_get("value")?,
        attempts: row.try_get("attempts")?,
    }))
}

/// What [`Outbox::settle_target`] did (a failed write is returned as the writer's error, the
/// row left for the caller to postpone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetSettle {
    /// The target was written and the row deleted.
    Written,
    /// The target has moved on (an open or newer campaigncall): nothing written, row deleted.
    MovedOn,
}

/// The outbox repository.
#[derive(Clone)]
pub struct Outbox {
    pool: MySqlPool,
    /// Deletes run again after a lock conflict (shared with the finish's transactions).
    retries: IntCounterVec,
    deletes: Soon,
}

impl Outbox {
    pub(super) fn new(pool: MySqlPool, retries: IntCounterVec) -> Outbox {
        Outbox {
            deletes: Soon::new(
                pool.clone(),
                "DELETE FROM campaign_outbox WHERE id IN",
                "outbox deletes",
            ),
            pool,
            retries,
        }
    }

    /// Writes `e` on its own (not following a change in the same transaction).
    pub async fn insert(&self, e: &OutboxEntry) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        insert_in(&mut conn, e).await
    }

    /// Up to `limit` rows due longer than `margin_ms` ago (oldest first): work nobody is still
    /// doing.
    pub async fn due(&self, margin_ms: i64, limit: u32) -> StoreResult<Vec<OutboxEntry>> {
        // Rows this process has done are not work left behind.
        self.flush_deletes().await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM campaign_outbox \
             WHERE tm_due < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND ORDER BY tm_due LIMIT ?"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(margin_ms.max(0) * 1000)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(entry_of)
            .collect::<StoreResult<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect())
    }

    /// The rows of `kind` for `campaign_id`.
    pub async fn of_campaign(
        &self,
        campaign_id: Uuid,
        kind: OutboxKind,
    ) -> StoreResult<Vec<OutboxEntry>> {
        // Rows this process has done are not pending.
        self.flush_deletes().await?;
        let sql =
            format!("SELECT {COLUMNS} FROM campaign_outbox WHERE campaign_id = ? AND kind = ?");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uuid_bytes(campaign_id))
            .bind(kind.as_str())
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(entry_of)
            .collect::<StoreResult<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect())
    }

    /// Whether the row still exists.
    pub async fn exists(&self, id: Uuid) -> StoreResult<bool> {
        let row: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM campaign_outbox WHERE id = ?")
            .bind(uuid_bytes(id))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// The work is done: deletes the row a moment later, with the others of the process (one
    /// statement). Until then the row is as if the work were not done, which only the repair
    /// reads, after its margin (and [`Outbox::due`] writes this process' pending deletes first).
    pub fn delete_soon(&self, id: Uuid) {
        self.deletes.note(id);
    }

    /// Writes the deletes [`Outbox::delete_soon`] noted and not written yet, now.
    pub async fn flush_deletes(&self) -> StoreResult<()> {
        self.deletes.flush().await
    }

    /// The work is done: deletes the row (run again at once on a lock conflict,
    /// `store::retry`).
    pub async fn delete(&self, id: Uuid) -> StoreResult<()> {
        retry::run(&self.retries, "outbox delete", || async {
            sqlx::query("DELETE FROM campaign_outbox WHERE id = ?")
                .bind(uuid_bytes(id))
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    /// A target's `idle` (the row `e` of a `fail` finish) is written: deletes the row unless
    /// its campaigncall is `success` by now (a late success landed), in one statement (it reads
    /// the campaigncall as committed when it runs, after the write). Returns whether it
    /// deleted the row (`false`: a success landed, or the row is gone already). Run again at
    /// once on a lock conflict (`store::retry`).
    pub async fn delete_unless_success(&self, e: &OutboxEntry) -> StoreResult<bool> {
        retry::run(&self.retries, "outbox delete", || async {
            let deleted = sqlx::query(
                "DELETE FROM campaign_outbox WHERE id = ? AND NOT EXISTS \
                 (SELECT 1 FROM campaign_campaigncalls c WHERE c.id = ? AND c.result = 'success')",
            )
            .bind(uuid_bytes(e.id))
            .bind(uuid_bytes(e.campaigncall_id))
            .execute(&self.pool)
            .await?
            .rows_affected();
            Ok(deleted == 1)
        })
        .await
    }

    /// The work failed: one more attempt counted, due again in `secs` (by MySQL's clock).
    pub async fn postpone(&self, id: Uuid, secs: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE campaign_outbox SET attempts = attempts + 1, \
             tm_due = UTC_TIMESTAMP(6) + INTERVAL ? SECOND WHERE id = ?",
        )
        .bind(secs)
        .bind(uuid_bytes(id))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets a target as `e` asks, by `write`, only while it has not moved on: with the
    /// campaign's dial fence row locked (no dial of the campaign is recorded meanwhile, and a
    /// dial's claim follows its record), and no campaigncall of the target open or created after
    /// the finished one. So a target a later dial has claimed is never set back.
    pub async fn settle_target<E, F, Fut>(
        &self,
        e: &OutboxEntry,
        write: F,
    ) -> StoreResult<Result<TargetSettle, E>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
    {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        sqlx::query("SELECT seq FROM campaign_dial_fences WHERE campaign_id = ? FOR UPDATE")
            .bind(uuid_bytes(e.campaign_id))
            .fetch_optional(&mut *tx)
            .await?;
        let moved_on: Option<(i32,)> = sqlx::query_as(
            "SELECT 1 FROM campaign_campaigncalls c WHERE c.outdial_target_id = ? \
             AND c.id <> ? AND c.tm_delete IS NULL \
             AND (c.status IN ('dialing', 'progressing') OR c.tm_create > COALESCE( \
               (SELECT f.tm_create FROM campaign_campaigncalls f WHERE f.id = ?), \
               '1970-01-01 00:00:00')) LIMIT 1",
        )
        .bind(uuid_bytes(e.subject_id))
        .bind(uuid_bytes(e.campaigncall_id))
        .bind(uuid_bytes(e.campaigncall_id))
        .fetch_optional(&mut *tx)
        .await?;
        if moved_on.is_some() {
            sqlx::query("DELETE FROM campaign_outbox WHERE id = ?")
                .bind(uuid_bytes(e.id))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(Ok(TargetSettle::MovedOn));
        }
        let written = write().await;
        tx.commit().await?;
        // Returned before the delete below takes one (no task holds two connections).
        drop(conn);
        match written {
            Ok(()) => {
                self.delete(e.id).await?;
                Ok(Ok(TargetSettle::Written))
            }
            Err(err) => Ok(Err(err)),
        }
    }
}
