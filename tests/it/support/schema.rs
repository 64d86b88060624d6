//! A database's schema as `information_schema` describes it, to compare two databases built
//! different ways (old and new migration texts, sqlx and Alembic): every table with its columns
//! (name, type, nullability, default) and indexes (name, uniqueness, columns in order). The
//! migration bookkeeping tables (`_sqlx_migrations`, Alembic's `alembic_version`) are left out.

#![allow(dead_code)]

use std::collections::BTreeMap;

use sqlx::MySqlPool;

/// One column: `(type, nullable, default)`.
pub type Column = (String, String, Option<String>);

/// One index: `(unique, columns in order)`.
pub type Index = (bool, Vec<String>);

/// A table's columns (by name, in table order) and indexes (by name).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Table {
    /// Columns in ordinal order: `(name, column)`.
    pub columns: Vec<(String, Column)>,
    /// Indexes by name (`PRIMARY` included).
    pub indexes: BTreeMap<String, Index>,
}

/// Every table of the connection's database but the migration bookkeeping.
pub async fn snapshot(pool: &MySqlPool) -> BTreeMap<String, Table> {
    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    let columns: Vec<(String, String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT CAST(table_name AS CHAR), CAST(column_name AS CHAR), CAST(column_type AS CHAR), \
                CAST(is_nullable AS CHAR), CAST(column_default AS CHAR) \
         FROM information_schema.columns WHERE table_schema = DATABASE() \
         ORDER BY table_name, ordinal_position",
    )
    .fetch_all(pool)
    .await
    .expect("read information_schema.columns");
    for (table, name, kind, nullable, default) in columns {
        // MariaDB says `NULL` for "no default" where MySQL says NULL.
        let default = default.filter(|d| d != "NULL");
        tables
            .entry(table)
            .or_default()
            .columns
            .push((name, (kind.to_lowercase(), nullable, default)));
    }
    let index_columns: Vec<(String, String, i64, String)> = sqlx::query_as(
        "SELECT CAST(table_name AS CHAR), CAST(index_name AS CHAR), CAST(non_unique AS SIGNED), \
                CAST(column_name AS CHAR) \
         FROM information_schema.statistics WHERE table_schema = DATABASE() \
         ORDER BY table_name, index_name, seq_in_index",
    )
    .fetch_all(pool)
    .await
    .expect("read information_schema.statistics");
    for (table, index, non_unique, column) in index_columns {
        let entry = tables
            .entry(table)
            .or_default()
            .indexes
            .entry(index)
            .or_insert((non_unique == 0, Vec::new()));
        entry.1.push(column);
    }
    tables.remove("_sqlx_migrations");
    tables.remove("alembic_version");
    tables
}
