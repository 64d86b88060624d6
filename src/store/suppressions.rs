//! `campaign_suppressions`: each customer's do-not-call list (docs/contact-strategy.md), and
//! the lookup the dial's transaction makes in it ([`push_suppressed`], [`suppressed_in`]).
//!
//! One row per (customer, normalised target), held so by the unique key: creating an entry that
//! is there returns the one that is there. An entry whose `tm_expire` has passed (by MySQL's
//! clock) no longer suppresses; creating the same target again replaces it. Removing an entry
//! deletes its row.
//!
//! Each write is one transaction, so a process dying in the middle leaves the list as it was
//! (an import is all or nothing). The domain events are published after the commit, by the
//! service: a process that dies in between leaves the list right and the event unsent, as for
//! every other event of this service.

use chrono::{DateTime, Utc};
use sqlx::{MySql, MySqlPool, QueryBuilder};
use uuid::Uuid;

use super::filter::{Column, Kind, Unfilterable};
use super::row::{RowReader, db_time, now, uuid_bytes};
use super::table::{self, Record};
use super::{Filters, Page, StoreResult};
use crate::model::Suppression;

impl Record for Suppression {
    const TABLE: &'static str = "campaign_suppressions";
    const CACHE_KIND: &'static str = "suppression";
    const COLUMNS: &'static str = "id, customer_id, target, reason, tm_expire, tm_create";
    const FILTERS: &'static [Column] = &[
        Column {
            name: "customer_id",
            kind: Kind::Uuid,
        },
        Column {
            name: "target",
            kind: Kind::Text,
        },
    ];
    const UNFILTERABLE: Unfilterable = &["id", "reason", "tm_expire", "tm_create"];

    fn from_row(r: &RowReader<'_>) -> StoreResult<Suppression> {
        Ok(Suppression {
            id: r.uuid("id")?,
            customer_id: r.uuid("customer_id")?,
            target: r.text("target")?,
            reason: r.text("reason")?,
            tm_expire: r.time("tm_expire")?,
            tm_create: r.time("tm_create")?,
        })
    }
}

/// Rows per statement of an import (one multi-row INSERT each).
const IMPORT_CHUNK: usize = 1000;

/// An entry that suppresses: not expired by MySQL's clock.
const LIVE: &str = "(tm_expire IS NULL OR tm_expire > UTC_TIMESTAMP(6))";

/// Pushes the lookup of `target` on the customer's list (unexpired) as a subquery: the dial
/// row's insert is made on its `NOT EXISTS` (`store::dials`), which reads it with a shared
/// next-key lock as [`suppressed_in`] does.
pub(super) fn push_suppressed(q: &mut QueryBuilder<MySql>, customer_id: Uuid, target: &str) {
    q.push("SELECT 1 FROM campaign_suppressions WHERE customer_id = ")
        .push_bind(uuid_bytes(customer_id))
        .push(" AND target = ")
        .push_bind(target.to_owned())
        .push(" AND ")
        .push(LIVE);
}

/// Whether `target` is on the customer's list, unexpired, read inside the dial's transaction.
///
/// A locking read (`LOCK IN SHARE MODE`), so it sees the newest committed entries whatever
/// the transaction read before, and an entry being added waits for the dial to commit (the
/// lock covers the key's gap): an entry committed before this read stops the dial, one
/// committed after it came after the dial. One lookup on the unique key.
pub(super) async fn suppressed_in(
    tx: &mut sqlx::Transaction<'_, MySql>,
    customer_id: Uuid,
    target: &str,
) -> StoreResult<bool> {
    let sql = format!(
        "SELECT 1 FROM campaign_suppressions WHERE customer_id = ? AND target = ? \
         AND {LIVE} LOCK IN SHARE MODE"
    );
    let row: Option<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(uuid_bytes(customer_id))
        .bind(target)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.is_some())
}

/// The suppression list repository.
#[derive(Clone)]
pub struct Suppressions {
    pool: MySqlPool,
}

/// What [`Suppressions::create`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Listed {
    /// A new entry.
    Created(Suppression),
    /// The target was listed already; the entry that is there.
    Existing(Suppression),
}

impl Suppressions {
    pub(super) fn new(pool: MySqlPool) -> Suppressions {
        Suppressions { pool }
    }

    /// Lists `target` for the customer, or returns its live entry. An expired entry of the
    /// target is replaced. `target` must be normalised.
    pub async fn create(
        &self,
        customer_id: Uuid,
        target: &str,
        reason: &str,
        tm_expire: Option<DateTime<Utc>>,
    ) -> StoreResult<Listed> {
        let id = Uuid::new_v4();
        let mut tx = self.pool.begin().await?;
        drop_expired(&mut tx, customer_id, &[target.to_owned()]).await?;
        insert_new(
            &mut tx,
            customer_id,
            reason,
            tm_expire,
            &[(id, target.to_owned())],
        )
        .await?;
        // A locking read: the newest committed row, whoever inserted it.
        let sql = format!(
            "SELECT {} FROM campaign_suppressions WHERE customer_id = ? AND target = ? \
             LOCK IN SHARE MODE",
            Suppression::COLUMNS
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uuid_bytes(customer_id))
            .bind(target)
            .fetch_one(&mut *tx)
            .await?;
        let stored = Suppression::from_row(&RowReader {
            row: &row,
            table: Suppression::TABLE,
        })?;
        tx.commit().await?;
        Ok(if stored.id == id {
            Listed::Created(stored)
        } else {
            Listed::Existing(stored)
        })
    }

    /// Lists every target (normalised, distinct) for the customer in one transaction: all or
    /// none. Returns the entries it created (targets already listed and live are left as
    /// they are). Each new row gets its own creation time (1 µs apart), so pages never split
    /// an import's rows on one timestamp.
    pub async fn import(
        &self,
        customer_id: Uuid,
        reason: &str,
        targets: &[String],
    ) -> StoreResult<Vec<Suppression>> {
        let mut tx = self.pool.begin().await?;
        let mut created = Vec::new();
        for chunk in targets.chunks(IMPORT_CHUNK) {
            drop_expired(&mut tx, customer_id, chunk).await?;
            let rows: Vec<(Uuid, String)> =
                chunk.iter().map(|t| (Uuid::new_v4(), t.clone())).collect();
            insert_new(&mut tx, customer_id, reason, None, &rows).await?;
            let mut q = QueryBuilder::<MySql>::new(format!(
                "SELECT {} FROM campaign_suppressions WHERE customer_id = ",
                Suppression::COLUMNS
            ));
            q.push_bind(uuid_bytes(customer_id)).push(" AND id IN (");
            let mut ids = q.separated(", ");
            for (id, _) in &rows {
                ids.push_bind(uuid_bytes(*id));
            }
            q.push(")");
            for row in q.build().fetch_all(&mut *tx).await? {
                created.push(Suppression::from_row(&RowReader {
                    row: &row,
                    table: Suppression::TABLE,
                })?);
            }
        }
        tx.commit().await?;
        Ok(created)
    }

    /// The entry, expired or not.
    pub async fn get(&self, id: Uuid) -> StoreResult<Option<Suppression>> {
        table::fetch(&self.pool, id).await
    }

    /// One page of the customer's entries (of one target if given), newest first.
    pub async fn list(
        &self,
        customer_id: Uuid,
        target: Option<&str>,
        page: Page,
    ) -> StoreResult<Vec<Suppression>> {
        let mut f = Filters::none().and_uuid("customer_id", customer_id);
        if let Some(t) = target {
            f = f.and_text("target", t);
        }
        table::list(&self.pool, &f, page).await
    }

    /// Removes the entry; returns it as it was (`None`: there was none).
    pub async fn delete(&self, id: Uuid) -> StoreResult<Option<Suppression>> {
        table::delete_returning::<Suppression>(&self.pool, id).await
    }
}

/// Deletes the customer's expired entries of these targets (they are replaced by new ones).
async fn drop_expired(
    tx: &mut sqlx::Transaction<'_, MySql>,
    customer_id: Uuid,
    targets: &[String],
) -> StoreResult<()> {
    let mut q =
        QueryBuilder::<MySql>::new("DELETE FROM campaign_suppressions WHERE customer_id = ");
    q.push_bind(uuid_bytes(customer_id))
        .push(" AND tm_expire IS NOT NULL AND tm_expire <= UTC_TIMESTAMP(6) AND target IN (");
    let mut list = q.separated(", ");
    for t in targets {
        list.push_bind(t.clone());
    }
    q.push(")");
    q.build().execute(&mut **tx).await?;
    Ok(())
}

/// Inserts the rows whose target is not listed yet (a listed one keeps its row: the unique
/// key turns the insert into a no-op). Creation times are now + i µs.
async fn insert_new(
    tx: &mut sqlx::Transaction<'_, MySql>,
    customer_id: Uuid,
    reason: &str,
    tm_expire: Option<DateTime<Utc>>,
    rows: &[(Uuid, String)],
) -> StoreResult<()> {
    let base = now();
    let mut q = QueryBuilder::<MySql>::new(
        "INSERT INTO campaign_suppressions (id, customer_id, target, reason, tm_expire, tm_create) ",
    );
    q.push_values(rows.iter().enumerate(), |mut b, (i, (id, target))| {
        b.push_bind(uuid_bytes(*id))
            .push_bind(uuid_bytes(customer_id))
            .push_bind(target.clone())
            .push_bind(reason.to_owned())
            .push_bind(tm_expire.map(db_time))
            .push_bind(db_time(base + chrono::Duration::microseconds(i as i64)));
    });
    q.push(" ON DUPLICATE KEY UPDATE id = id");
    q.build().execute(&mut **tx).await?;
    Ok(())
}
