//! Redis read-through cache by id (CONTRACT.md §9.2): `campaign:<uuid>`, `campaigncall:<uuid>`,
//! `outplan:<uuid>`, JSON values, 24 h TTL, refreshed after every write.
//!
//! The cache is an optimisation, never a dependency: every Redis error (down, slow, bad
//! value) is logged at debug level and the caller falls back to MySQL. Timeouts are short so
//! an outage costs milliseconds, and the connection is lazy and reconnects by itself.

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// Time to live of a cached record.
pub const TTL: Duration = Duration::from_secs(24 * 3600);

/// A handle on the cache; cheap to clone. `Cache::disabled()` caches nothing.
#[derive(Clone)]
pub struct Cache {
    conn: Option<ConnectionManager>,
    prefix: String,
}

impl Cache {
    /// A cache on `redis_url` whose keys start with `prefix` (empty in production, so the
    /// keys are the platform's; tests use a unique prefix).
    pub fn new(redis_url: &str, prefix: &str) -> Result<Cache, redis::RedisError> {
        let client = redis::Client::open(redis_url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(250)))
            .set_response_timeout(Some(Duration::from_millis(250)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Cache {
            conn: Some(conn),
            prefix: prefix.to_owned(),
        })
    }

    /// A cache that stores nothing (every read misses).
    pub fn disabled() -> Cache {
        Cache {
            conn: None,
            prefix: String::new(),
        }
    }

    /// The key of a record: `<prefix><kind>:<uuid>`.
    pub fn key(&self, kind: &str, id: Uuid) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    /// Reads a record; any failure is a miss.
    pub async fn get<T: DeserializeOwned>(&self, kind: &str, id: Uuid) -> Option<T> {
        let mut conn = self.conn.clone()?;
        let key = self.key(kind, id);
        let raw: Option<String> = match conn.get(&key).await {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(key, error = %e, "cache read failed");
                return None;
            }
        };
        let raw = raw?;
        match serde_json::from_str(&raw) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::debug!(key, error = %e, "cache value unreadable");
                None
            }
        }
    }

    /// Stores a record; failures are logged and ignored.
    pub async fn set<T: Serialize>(&self, kind: &str, id: Uuid, value: &T) {
        let Some(mut conn) = self.conn.clone() else {
            return;
        };
        let key = self.key(kind, id);
        let Ok(json) = serde_json::to_string(value) else {
            return;
        };
        let res: redis::RedisResult<()> = conn.set_ex(&key, json, TTL.as_secs()).await;
        if let Err(e) = res {
            tracing::debug!(key, error = %e, "cache write failed");
        }
    }

    /// Removes a record (used when a write's re-read fails, so no stale copy outlives it).
    pub async fn forget(&self, kind: &str, id: Uuid) {
        let Some(mut conn) = self.conn.clone() else {
            return;
        };
        let key = self.key(kind, id);
        let res: redis::RedisResult<()> = conn.del(&key).await;
        if let Err(e) = res {
            tracing::debug!(key, error = %e, "cache delete failed");
        }
    }

    /// Whether Redis answers a PING.
    pub async fn ping(&self) -> bool {
        let Some(mut conn) = self.conn.clone() else {
            return false;
        };
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_ok()
    }
}
