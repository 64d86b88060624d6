//! List filters: a JSON object of `column: value` pairs, checked against a whitelist per
//! table and typed per column (docs/contract.md#lists, with the Go service's SQL injection fixed). Keys
//! never reach SQL text except as one of the whitelist's `&'static str` column names.

use serde_json::Value;
use sqlx::{MySql, QueryBuilder};
use uuid::Uuid;

use super::{StoreError, StoreResult};

/// How a filterable column's value is typed.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// `BINARY(16)`; the value is a UUID string (`""` means the nil UUID).
    Uuid,
    /// Free text; the value is a string.
    Text,
    /// One of a fixed set of strings.
    Enum(&'static [&'static str]),
    /// Integer; the value is a JSON number without fraction.
    Int,
}

/// A whitelisted column.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Column name, used verbatim in SQL.
    pub name: &'static str,
    /// Value type.
    pub kind: Kind,
}

/// Columns that exist but cannot be filtered on (JSON documents and timestamps).
pub type Unfilterable = &'static [&'static str];

#[derive(Debug, Clone, PartialEq)]
enum Condition {
    Eq(&'static str, Bound),
    Deleted(bool),
}

#[derive(Debug, Clone, PartialEq)]
enum Bound {
    Bytes(Vec<u8>),
    Text(String),
    Int(i64),
}

/// Parsed, typed filters, AND-ed together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters(Vec<Condition>);

impl Filters {
    /// No filter.
    pub fn none() -> Filters {
        Filters::default()
    }

    /// Parses a filter object against a table's whitelist.
    pub fn parse(
        columns: &'static [Column],
        unfilterable: Unfilterable,
        object: &serde_json::Map<String, Value>,
    ) -> StoreResult<Filters> {
        let mut out = Vec::with_capacity(object.len());
        for (key, value) in object {
            if key == "deleted" {
                out.push(Condition::Deleted(parse_deleted(value)?));
                continue;
            }
            let Some(column) = columns.iter().find(|c| c.name == key) else {
                return Err(if unfilterable.contains(&key.as_str()) {
                    StoreError::InvalidFilter(format!("filtering on {key:?} is not supported"))
                } else {
                    StoreError::InvalidFilter(format!("unknown filter key {key:?}"))
                });
            };
            out.push(Condition::Eq(column.name, typed(column, value)?));
        }
        Ok(Filters(out))
    }

    /// Adds a `column = uuid` condition (for callers that filter by code, not by request).
    pub fn and_uuid(mut self, column: &'static str, id: Uuid) -> Filters {
        self.0
            .push(Condition::Eq(column, Bound::Bytes(id.as_bytes().to_vec())));
        self
    }

    /// Adds a `column = text` condition (for callers that filter by code, not by request).
    pub fn and_text(mut self, column: &'static str, value: &str) -> Filters {
        self.0
            .push(Condition::Eq(column, Bound::Text(value.to_owned())));
        self
    }

    /// Adds a `deleted` condition.
    pub fn and_deleted(mut self, deleted: bool) -> Filters {
        self.0.push(Condition::Deleted(deleted));
        self
    }

    /// Appends ` AND <cond>` for each filter.
    pub fn push_sql(&self, q: &mut QueryBuilder<MySql>) {
        for c in &self.0 {
            match c {
                Condition::Deleted(true) => {
                    q.push(" AND tm_delete IS NOT NULL");
                }
                Condition::Deleted(false) => {
                    q.push(" AND tm_delete IS NULL");
                }
                Condition::Eq(col, bound) => {
                    q.push(" AND ").push(*col).push(" = ");
                    match bound {
                        Bound::Bytes(b) => q.push_bind(b.clone()),
                        Bound::Text(s) => q.push_bind(s.clone()),
                        Bound::Int(i) => q.push_bind(*i),
                    };
                }
            }
        }
    }
}

fn parse_deleted(value: &Value) -> StoreResult<bool> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => Ok(s == "true"),
        other => Err(StoreError::InvalidFilter(format!(
            "filter \"deleted\" must be a boolean, got {other}"
        ))),
    }
}

fn typed(column: &Column, value: &Value) -> StoreResult<Bound> {
    let wrong = |want: &str| {
        StoreError::InvalidFilter(format!(
            "filter {:?} must be {want}, got {value}",
            column.name
        ))
    };
    match (column.kind, value) {
        (Kind::Uuid, Value::String(s)) if s.is_empty() => Ok(Bound::Bytes(vec![0; 16])),
        (Kind::Uuid, Value::String(s)) => Uuid::parse_str(s)
            .map(|u| Bound::Bytes(u.as_bytes().to_vec()))
            .map_err(|_| wrong("a UUID")),
        (Kind::Uuid, _) => Err(wrong("a UUID string")),
        (Kind::Text, Value::String(s)) => Ok(Bound::Text(s.clone())),
        (Kind::Text, _) => Err(wrong("a string")),
        (Kind::Enum(allowed), Value::String(s)) if allowed.contains(&s.as_str()) => {
            Ok(Bound::Text(s.clone()))
        }
        (Kind::Enum(allowed), _) => Err(wrong(&format!("one of {allowed:?}"))),
        (Kind::Int, Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .map(Bound::Int)
            .ok_or_else(|| wrong("an integer")),
        (Kind::Int, _) => Err(wrong("an integer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const COLS: &[Column] = &[
        Column {
            name: "customer_id",
            kind: Kind::Uuid,
        },
        Column {
            name: "name",
            kind: Kind::Text,
        },
        Column {
            name: "status",
            kind: Kind::Enum(&["run", "stop"]),
        },
        Column {
            name: "service_level",
            kind: Kind::Int,
        },
    ];
    const NOPE: Unfilterable = &["actions", "tm_create"];

    fn parse(v: Value) -> StoreResult<Filters> {
        Filters::parse(COLS, NOPE, v.as_object().unwrap())
    }

    #[test]
    fn typed_values() {
        let f = parse(
            json!({"customer_id": "60f76478-c454-11ec-969b-13906a5eea9d", "name": "x",
            "status": "run", "service_level": 100.0, "deleted": "false"}),
        )
        .unwrap();
        assert_eq!(f.0.len(), 5);
        assert!(f.0.contains(&Condition::Deleted(false)));
        assert!(f.0.contains(&Condition::Eq("service_level", Bound::Int(100))));
    }

    #[test]
    fn rejects_bad_keys_and_types() {
        for bad in [
            json!({"id = id OR 1=1 --": "x"}),
            json!({"actions": "x"}),
            json!({"customer_id": "nope"}),
            json!({"customer_id": 5}),
            json!({"status": "flying"}),
            json!({"service_level": 1.5}),
            json!({"service_level": "100"}),
            json!({"deleted": 1}),
        ] {
            assert!(
                matches!(parse(bad.clone()), Err(StoreError::InvalidFilter(_))),
                "{bad}"
            );
        }
    }
}
