//! Decoding of the platform's column encodings into model values, with errors that name the
//! table and column instead of panicking on a surprising row.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::mysql::MySqlRow;
use uuid::Uuid;

use super::{StoreError, StoreResult};

/// Reads one row of `table`, keeping the table name for error messages.
pub struct RowReader<'a> {
    /// The row.
    pub row: &'a MySqlRow,
    /// Its table.
    pub table: &'static str,
}

impl RowReader<'_> {
    fn corrupt(&self, column: &'static str, reason: impl ToString) -> StoreError {
        StoreError::Corrupt {
            table: self.table,
            column,
            reason: reason.to_string(),
        }
    }

    /// `BINARY(16)`; NULL or empty reads as the nil UUID.
    pub fn uuid(&self, column: &'static str) -> StoreResult<Uuid> {
        let bytes: Option<Vec<u8>> = self.row.try_get(column)?;
        match bytes {
            None => Ok(Uuid::nil()),
            Some(b) if b.is_empty() => Ok(Uuid::nil()),
            Some(b) => Uuid::from_slice(&b).map_err(|e| self.corrupt(column, e)),
        }
    }

    /// A text column; NULL reads as empty.
    pub fn text(&self, column: &'static str) -> StoreResult<String> {
        let s: Option<String> = self.row.try_get(column)?;
        Ok(s.unwrap_or_default())
    }

    /// An integer column; NULL reads as 0.
    pub fn int(&self, column: &'static str) -> StoreResult<i32> {
        let v: Option<i32> = self.row.try_get(column)?;
        Ok(v.unwrap_or_default())
    }

    /// A `DATETIME(6)` in UTC.
    pub fn time(&self, column: &'static str) -> StoreResult<Option<DateTime<Utc>>> {
        let v: Option<NaiveDateTime> = self.row.try_get(column)?;
        Ok(v.map(|t| t.and_utc()))
    }

    /// A platform enum stored as its string.
    pub fn enumeration<T: DeserializeOwned>(&self, column: &'static str) -> StoreResult<T> {
        let s = self.text(column)?;
        crate::model::parse_enum(column, &s).map_err(|e| self.corrupt(column, e))
    }

    /// A JSON column; SQL NULL, empty and JSON `null` all read as `None`.
    pub fn json<T: DeserializeOwned>(&self, column: &'static str) -> StoreResult<Option<T>> {
        // MariaDB's JSON is LONGTEXT; MySQL's is a JSON type that sqlx returns as bytes.
        let raw: Option<Vec<u8>> = self.row.try_get_unchecked(column)?;
        match raw {
            None => Ok(None),
            Some(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(None),
            Some(b) => serde_json::from_slice::<Option<T>>(&b).map_err(|e| self.corrupt(column, e)),
        }
    }
}

/// A UUID as the 16 bytes stored in `BINARY(16)`.
pub fn uuid_bytes(id: Uuid) -> Vec<u8> {
    id.as_bytes().to_vec()
}

/// A timestamp as the naive UTC value stored in `DATETIME(6)` (microseconds kept).
pub fn db_time(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

/// Now, truncated to the microseconds `DATETIME(6)` keeps, so what we return equals what we stored.
pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    let micros = t.timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or(t)
}

/// JSON text for a JSON column; `None` is SQL NULL.
pub fn json_text<T: serde::Serialize>(value: &Option<T>) -> Option<String> {
    value.as_ref().and_then(|v| serde_json::to_string(v).ok())
}
