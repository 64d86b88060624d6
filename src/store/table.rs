//! What the three repositories share: reading a record by id (through the cache), the list
//! query with filters and pagination, soft delete, and the write-then-refresh step.
//!
//! Every write sets `tm_update = GREATEST(now, previous tm_update + 1 µs)`: the row lock
//! makes that strictly increasing in commit order even when two processes' clocks disagree,
//! and the cache relies on it to never replace a newer record with an older one
//! (`cache.rs`). Writes that depend on a record's state (delete only a stopped campaign, a
//! done campaigncall) put the condition in the `WHERE` clause, so a stale read cannot let
//! them through.
//!
//! SQL text here is assembled only from the `&'static str` table and column names of the
//! `Record` impls and the filter whitelist (hence `AssertSqlSafe`); every value is bound.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::mysql::MySqlRow;
use sqlx::{AssertSqlSafe, MySql, MySqlPool, QueryBuilder};
use uuid::Uuid;

use super::filter::{Column, Unfilterable};
use super::row::{RowReader, db_time, now, uuid_bytes};
use super::{Cache, Filters, Page, StoreResult};

/// A model stored in one table.
pub trait Record: Serialize + DeserializeOwned + Send + Sync + Unpin + Sized {
    /// Table name.
    const TABLE: &'static str;
    /// Cache key kind (`campaign`, ...).
    const CACHE_KIND: &'static str;
    /// The select list, in model order.
    const COLUMNS: &'static str;
    /// Filterable columns.
    const FILTERS: &'static [Column];
    /// Columns that exist but cannot be filtered on.
    const UNFILTERABLE: Unfilterable;
    /// Decodes a row.
    fn from_row(r: &RowReader<'_>) -> StoreResult<Self>;
}

fn decode<T: Record>(row: &MySqlRow) -> StoreResult<T> {
    T::from_row(&RowReader {
        row,
        table: T::TABLE,
    })
}

/// Reads a record from MySQL (bypassing the cache).
pub async fn fetch<T: Record>(pool: &MySqlPool, id: Uuid) -> StoreResult<Option<T>> {
    let sql = format!("SELECT {} FROM {} WHERE id = ?", T::COLUMNS, T::TABLE);
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(uuid_bytes(id))
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(decode::<T>).transpose()
}

/// Reads the first record whose `column` equals `id` (no order, deleted rows included, as the
/// platform's reference lookups do).
pub async fn fetch_by<T: Record>(
    pool: &MySqlPool,
    column: &'static str,
    id: Uuid,
) -> StoreResult<Option<T>> {
    let sql = format!(
        "SELECT {} FROM {} WHERE {column} = ? LIMIT 1",
        T::COLUMNS,
        T::TABLE
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(uuid_bytes(id))
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(decode::<T>).transpose()
}

/// Read-through get: cache, else MySQL and fill the cache.
pub async fn get<T: Record>(pool: &MySqlPool, cache: &Cache, id: Uuid) -> StoreResult<Option<T>> {
    if let Some(hit) = cache.get::<T>(T::CACHE_KIND, id).await {
        return Ok(Some(hit));
    }
    let found = fetch::<T>(pool, id).await?;
    if let Some(record) = &found {
        cache.set(T::CACHE_KIND, id, record).await;
    }
    Ok(found)
}

/// After a write: re-read from MySQL and refresh the cache (write-through).
pub async fn refresh<T: Record>(
    pool: &MySqlPool,
    cache: &Cache,
    id: Uuid,
) -> StoreResult<Option<T>> {
    match fetch::<T>(pool, id).await {
        Ok(Some(record)) => {
            cache.set(T::CACHE_KIND, id, &record).await;
            Ok(Some(record))
        }
        Ok(None) => {
            cache.forget(T::CACHE_KIND, id).await;
            Ok(None)
        }
        Err(e) => {
            cache.forget(T::CACHE_KIND, id).await;
            Err(e)
        }
    }
}

/// Parses a filter object against `T`'s whitelist.
pub fn filters<T: Record>(
    object: &serde_json::Map<String, serde_json::Value>,
) -> StoreResult<Filters> {
    Filters::parse(T::FILTERS, T::UNFILTERABLE, object)
}

/// One page of records, newest first; never ends inside a group of equal `tm_create`
/// (see `page.rs`).
pub async fn list<T: Record>(
    pool: &MySqlPool,
    filters: &Filters,
    page: Page,
) -> StoreResult<Vec<T>> {
    let mut q = QueryBuilder::<MySql>::new(format!("SELECT {} FROM {}", T::COLUMNS, T::TABLE));
    q.push(" WHERE tm_create < ").push_bind(page.token_or_now());
    filters.push_sql(&mut q);
    q.push(" ORDER BY tm_create DESC, id DESC LIMIT ")
        .push_bind(page.size);
    let rows = q.build().fetch_all(pool).await?;
    let mut out = rows
        .iter()
        .map(decode::<T>)
        .collect::<StoreResult<Vec<T>>>()?;

    if rows.len() == page.size as usize
        && let Some(last) = rows.last()
    {
        // Complete the group of rows sharing the last row's tm_create.
        let reader = RowReader {
            row: last,
            table: T::TABLE,
        };
        if let Some(boundary) = reader.time("tm_create")? {
            let last_id = reader.uuid("id")?;
            let mut q =
                QueryBuilder::<MySql>::new(format!("SELECT {} FROM {}", T::COLUMNS, T::TABLE));
            q.push(" WHERE tm_create = ").push_bind(db_time(boundary));
            q.push(" AND id < ").push_bind(uuid_bytes(last_id));
            filters.push_sql(&mut q);
            q.push(" ORDER BY id DESC LIMIT ")
                .push_bind(super::page::MAX_SIZE);
            for row in q.build().fetch_all(pool).await? {
                out.push(decode::<T>(&row)?);
            }
        }
    }
    Ok(out)
}

/// The records deleted at or after `since`, most recently deleted first, at most `limit` (a
/// short range of an index on `tm_delete`).
pub async fn deleted_since<T: Record>(
    pool: &MySqlPool,
    since: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<T>> {
    let sql = format!(
        "SELECT {} FROM {} WHERE tm_delete >= ? ORDER BY tm_delete DESC, id DESC LIMIT ?",
        T::COLUMNS,
        T::TABLE
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(db_time(since))
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows.iter().map(decode::<T>).collect()
}

/// Runs an `UPDATE <table> SET ... WHERE id = ?` built by `build` (which pushes the SET
/// list, starting right after `SET `); `tm_update` is set to now. Returns rows affected.
pub async fn update<T: Record>(
    pool: &MySqlPool,
    id: Uuid,
    build: impl FnOnce(&mut QueryBuilder<MySql>),
) -> StoreResult<u64> {
    update_where::<T>(pool, id, build, |_| {}).await
}

/// Like [`update`], with extra ` AND ...` conditions pushed by `condition`.
pub async fn update_where<T: Record>(
    pool: &MySqlPool,
    id: Uuid,
    build: impl FnOnce(&mut QueryBuilder<MySql>),
    condition: impl FnOnce(&mut QueryBuilder<MySql>),
) -> StoreResult<u64> {
    let mut q = update_query::<T>(id, build, condition);
    Ok(q.build().execute(pool).await?.rows_affected())
}

/// [`update_where`] inside a transaction (or on one connection).
pub async fn update_where_in<T: Record>(
    conn: &mut sqlx::MySqlConnection,
    id: Uuid,
    build: impl FnOnce(&mut QueryBuilder<MySql>),
    condition: impl FnOnce(&mut QueryBuilder<MySql>),
) -> StoreResult<u64> {
    let mut q = update_query::<T>(id, build, condition);
    Ok(q.build().execute(conn).await?.rows_affected())
}

fn update_query<T: Record>(
    id: Uuid,
    build: impl FnOnce(&mut QueryBuilder<MySql>),
    condition: impl FnOnce(&mut QueryBuilder<MySql>),
) -> QueryBuilder<MySql> {
    let mut q = QueryBuilder::<MySql>::new(format!("UPDATE {} SET ", T::TABLE));
    build(&mut q);
    q.push(", ");
    push_tm_update(&mut q);
    q.push(" WHERE id = ").push_bind(uuid_bytes(id));
    condition(&mut q);
    q
}

/// Pushes `tm_update = <now, or 1 µs after the stored value if that is not earlier>`.
pub(super) fn push_tm_update(q: &mut QueryBuilder<MySql>) {
    push_stamp(q, "tm_update", now());
}

/// Pushes `<column> = GREATEST(now, tm_update + 1 µs)`, reading the `tm_update` stored
/// before this statement as long as it comes before the `tm_update` assignment.
fn push_stamp(q: &mut QueryBuilder<MySql>, column: &'static str, at: DateTime<Utc>) {
    let t = db_time(at);
    q.push(column)
        .push(" = GREATEST(")
        .push_bind(t)
        .push(", COALESCE(tm_update + INTERVAL 1 MICROSECOND, ")
        .push_bind(t)
        .push("))");
}

/// Soft delete: `tm_update = tm_delete = now`, only if not deleted yet (the Go service
/// re-stamped `tm_delete` on every repeat). Returns whether a row changed.
pub async fn soft_delete<T: Record>(pool: &MySqlPool, id: Uuid) -> StoreResult<bool> {
    soft_delete_where::<T>(pool, id, |_| {}).await
}

/// Like [`soft_delete`], with extra ` AND ...` conditions pushed by `condition` (e.g. the
/// status a record must have to be deleted). Returns whether a row changed.
pub async fn soft_delete_where<T: Record>(
    pool: &MySqlPool,
    id: Uuid,
    condition: impl FnOnce(&mut QueryBuilder<MySql>),
) -> StoreResult<bool> {
    // tm_delete first: both read the previous tm_update, so they are equal.
    let mut q = QueryBuilder::<MySql>::new(format!("UPDATE {} SET ", T::TABLE));
    let at = now();
    push_stamp(&mut q, "tm_delete", at);
    q.push(", ");
    push_stamp(&mut q, "tm_update", at);
    q.push(" WHERE id = ").push_bind(uuid_bytes(id));
    q.push(" AND tm_delete IS NULL");
    condition(&mut q);
    Ok(q.build().execute(pool).await?.rows_affected() == 1)
}

/// What a conditional delete did.
#[derive(Debug, Clone, PartialEq)]
pub enum Deletion<T> {
    /// Deleted; the row as it is now.
    Deleted(T),
    /// Not deleted because the condition did not hold; the row as it is now.
    Refused(T),
    /// No such row, or it was deleted already.
    Missing,
}

/// Soft-deletes when `condition` holds, then refreshes the cache and says what happened.
pub async fn delete_if<T: Record>(
    pool: &MySqlPool,
    cache: &Cache,
    id: Uuid,
    condition: impl FnOnce(&mut QueryBuilder<MySql>),
    is_deleted: impl Fn(&T) -> bool,
) -> StoreResult<Deletion<T>> {
    let deleted = soft_delete_where::<T>(pool, id, condition).await?;
    Ok(match refresh::<T>(pool, cache, id).await? {
        Some(row) if deleted => Deletion::Deleted(row),
        Some(row) if !is_deleted(&row) => Deletion::Refused(row),
        _ => Deletion::Missing,
    })
}

/// Removes the row for good (the service's own tables, which keep no deleted rows) and returns
/// it as it was, in one transaction: read under a row lock, then deleted (`None`: no such row).
pub async fn delete_returning<T: Record>(pool: &MySqlPool, id: Uuid) -> StoreResult<Option<T>> {
    let mut tx = pool.begin().await?;
    let sql = format!(
        "SELECT {} FROM {} WHERE id = ? FOR UPDATE",
        T::COLUMNS,
        T::TABLE
    );
    let Some(row) = sqlx::query(AssertSqlSafe(sql))
        .bind(uuid_bytes(id))
        .fetch_optional(&mut *tx)
        .await?
    else {
        tx.rollback().await?;
        return Ok(None);
    };
    let gone = decode::<T>(&row)?;
    sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {} WHERE id = ?",
        T::TABLE
    )))
    .bind(uuid_bytes(id))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(gone))
}
