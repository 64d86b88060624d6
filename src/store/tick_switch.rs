//! The durable off switch of a tick namespace (`campaign_tick_switches`, one row per namespace).
//!
//! Ticking can be paused in Redis (`campaign-control queue drain`), which every worker sees within
//! 10 ms. But Redis is not the place for the one switch that must never be lost: a flush, a
//! restart without persistence or a failover to an empty replica takes that pause with it, and
//! tick workers that all restarted after the loss no longer remember it. This row in MySQL is the
//! switch that outlives Redis: every worker process reads it once a second (see
//! `crate::scheduler::ExecutingCampaigns` and the workers crate's `switch` module) and holds its
//! ticks while it says `paused`. `campaign-control queue pause --durable` sets it,
//! `queue resume` clears it. A namespace without a row is not switched off.

use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::MySqlPool;

use super::StoreResult;

/// The switch of one namespace as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchState {
    /// Ticking is switched off.
    pub paused: bool,
    /// What the operator gave as the reason (may be empty).
    pub reason: String,
    /// When it was last set or cleared (MySQL's clock).
    pub since: DateTime<Utc>,
}

/// Reads and writes the switches.
#[derive(Clone)]
pub struct TickSwitch {
    pool: MySqlPool,
}

impl TickSwitch {
    /// The switches in the database of `pool`.
    pub fn new(pool: MySqlPool) -> TickSwitch {
        TickSwitch { pool }
    }

    /// The switch of `namespace`; `None` when it was never set.
    pub async fn state(&self, namespace: &str) -> StoreResult<Option<SwitchState>> {
        let row: Option<(bool, String, NaiveDateTime)> = sqlx::query_as(
            "SELECT paused, reason, tm_update FROM campaign_tick_switches WHERE namespace = ?",
        )
        .bind(namespace)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(paused, reason, since)| SwitchState {
            paused,
            reason,
            since: since.and_utc(),
        }))
    }

    /// Whether ticking in `namespace` is switched off.
    pub async fn is_off(&self, namespace: &str) -> StoreResult<bool> {
        Ok(self.state(namespace).await?.is_some_and(|s| s.paused))
    }

    /// Switches ticking in `namespace` off (or on), with the operator's reason.
    pub async fn set(&self, namespace: &str, paused: bool, reason: &str) -> StoreResult<()> {
        // Portable upsert (MySQL 8.0 and MariaDB): no `VALUES()` / row alias, the values bound twice.
        sqlx::query(
            "INSERT INTO campaign_tick_switches (namespace, paused, reason, tm_update) \
             VALUES (?, ?, ?, UTC_TIMESTAMP(6)) \
             ON DUPLICATE KEY UPDATE paused = ?, reason = ?, tm_update = UTC_TIMESTAMP(6)",
        )
        .bind(namespace)
        .bind(paused)
        .bind(reason)
        .bind(paused)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
