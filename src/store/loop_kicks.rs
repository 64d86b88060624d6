//! The Go service's execute loops started by an operator on a rollback (`campaign_loop_kicks`).
//!
//! After a rollback the Go service runs, but its running campaigns already have `execute = run`,
//! so Go starts no loop for them; `campaign-control campaign execute --all-running` sends one
//! `POST /v1/campaigns/<id>/execute` per running campaign, and each starts a loop. A second
//! `/execute` would start a second loop (twice the dial rate), and nothing on the Go side shows
//! whether a loop runs. So each kick is written here *before* it is sent: a campaign with a row
//! is never kicked again by `--all-running`, also when a run was cut short between the row and
//! the request (the operator sees it as not confirmed and decides). `confirmed` is set once Go
//! answered. The rows are cleared when this service takes the campaigns back (`queue resume`).

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::MySqlPool;
use uuid::Uuid;

use super::StoreResult;
use super::row::uuid_bytes;

/// One recorded kick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopKick {
    /// The Go service answered the `/execute`.
    pub confirmed: bool,
    /// When it was recorded (MySQL's clock).
    pub at: DateTime<Utc>,
}

/// Reads and writes the kicks.
#[derive(Clone)]
pub struct LoopKicks {
    pool: MySqlPool,
}

impl LoopKicks {
    /// The kicks in the database of `pool`.
    pub fn new(pool: MySqlPool) -> LoopKicks {
        LoopKicks { pool }
    }

    /// Every recorded kick, by campaign.
    pub async fn all(&self) -> StoreResult<HashMap<Uuid, LoopKick>> {
        let rows: Vec<(Vec<u8>, bool, NaiveDateTime)> =
            sqlx::query_as("SELECT campaign_id, confirmed, tm_kick FROM campaign_loop_kicks")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, confirmed, at)| {
                let id = Uuid::from_slice(&id).ok()?;
                Some((
                    id,
                    LoopKick {
                        confirmed,
                        at: at.and_utc(),
                    },
                ))
            })
            .collect())
    }

    /// Records a kick of `campaign_id` about to be sent. False when one is already recorded
    /// (another run got there first): then it must not be sent.
    pub async fn record(&self, campaign_id: Uuid) -> StoreResult<bool> {
        let inserted = sqlx::query(
            "INSERT INTO campaign_loop_kicks (campaign_id, confirmed, tm_kick) \
             VALUES (?, FALSE, UTC_TIMESTAMP(6))",
        )
        .bind(uuid_bytes(campaign_id))
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Marks the kick of `campaign_id` as answered by the Go service.
    pub async fn confirm(&self, campaign_id: Uuid) -> StoreResult<()> {
        sqlx::query("UPDATE campaign_loop_kicks SET confirmed = TRUE WHERE campaign_id = ?")
            .bind(uuid_bytes(campaign_id))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets every kick (this service drives the campaigns again). Returns how many there were.
    pub async fn clear(&self) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM campaign_loop_kicks")
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
