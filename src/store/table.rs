//! What the three repositories share: reading a record by id (through the cache), the list
//! query with filters and pagination, soft delete, and the write-then-refresh step.
//!
//! SQL text here is assembled only from the `&'static str` table and column names of the
//! `Record` impls and the filter whitelist (hence `AssertSqlSafe`); every value is bound.

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
    let mut q = QueryBuilder::<MySql>::new(format!("UPDATE {} SET ", T::TABLE));
    build(&mut q);
    q.push(", tm_update = ").push_bind(db_time(now()));
    q.push(" WHERE id = ").push_bind(uuid_bytes(id));
    condition(&mut q);
    Ok(q.build().execute(pool).await?.rows_affected())
}

/// Soft delete: `tm_update = tm_delete = now`, only if not deleted yet (the Go service
/// re-stamped `tm_delete` on every repeat). Returns whether a row changed.
pub async fn soft_delete<T: Record>(pool: &MySqlPool, id: Uuid) -> StoreResult<bool> {
    let t = db_time(now());
    let sql = format!(
        "UPDATE {} SET tm_update = ?, tm_delete = ? WHERE id = ? AND tm_delete IS NULL",
        T::TABLE
    );
    let done = sqlx::query(AssertSqlSafe(sql))
        .bind(t)
        .bind(t)
        .bind(uuid_bytes(id))
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}
