//! Redis read-through cache by id (docs/storage.md#redis): `campaign:<uuid>`, `campaigncall:<uuid>`,
//! `outplan:<uuid>`, JSON values, 24 h TTL, refreshed after every write.
//!
//! The cache is an optimisation, never a dependency: every Redis error (down, slow, bad
//! value) is logged at debug level and the caller falls back to MySQL. Timeouts are short so
//! an outage costs milliseconds, and the connection is lazy and reconnects by itself.
//!
//! **A store never replaces a newer record with an older one.** Both kinds of store, a read's
//! fill (cache miss → MySQL → cache) and a write's refresh (write → re-read → cache), go
//! through one Lua script that compares the records' `tm_update` and refuses the older one.
//! Every write moves `tm_update` forward in commit order (see `table::update_where`: it is
//! `GREATEST(now, previous + 1 µs)`, evaluated under the row lock), so "newer `tm_update`"
//! means "written later". Interleavings (R = a reader filling, W = a writer refreshing):
//!
//! - R reads v1, W writes v2 and caches v2, R stores v1: refused (v1 is older). This was
//!   the Go service's bug: the stale v1 stayed for 24 h.
//! - R reads v1, R stores v1, W writes v2 and caches v2: v2 replaces v1.
//! - W1 writes v2, W2 writes v3, W2 caches v3, W1 re-read v2 before W2's write and stores
//!   it: refused. Had W1 re-read after W2's write it stores v3 (equal versions overwrite).
//! - W1 and W2 with clocks out of order: the later commit still gets the larger `tm_update`.
//! - An unreadable cached value (or one without a parsable `tm_update`) is overwritten.
//!
//! Left open, on purpose: a write whose re-read fails deletes the key, and a reader that
//! read the old row before that write can then store it (until the next write or the TTL);
//! that needs MySQL to fail between two statements of one request. A write that does not
//! move `tm_update` (none in this crate; a hand edit in SQL) is not ordered against fills.
//! The values stay the platform's plain JSON strings, so the Go service can share the keys.

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// Time to live of a cached record.
pub const TTL: Duration = Duration::from_secs(24 * 3600);

/// `SET key json EX ttl` unless the cached record's `tm_update` is later than the new one's.
/// Timestamps are RFC 3339 UTC with the fraction trimmed (`…:17Z`, `…:17.5Z`), so each is
/// normalised to nine fraction digits before the string comparison; `null` sorts first.
static STORE_UNLESS_NEWER: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local function version(json)
  local ok, record = pcall(cjson.decode, json)
  if not ok or type(record) ~= 'table' then return nil end
  local t = record['tm_update']
  if type(t) ~= 'string' or t == '' then return '' end
  local base, frac = string.match(t, '^(%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d)%.?(%d*)Z$')
  if not base or #frac > 9 then return nil end
  return base .. '.' .. frac .. string.rep('0', 9 - #frac)
end
local cached = redis.call('GET', KEYS[1])
if cached then
  local old = version(cached)
  local new = version(ARGV[1])
  if old and new and new < old then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
",
    )
});

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

    /// Stores a record unless the cache holds a newer version of it (by `tm_update`, see the
    /// module header); failures are logged and ignored. Returns whether it was stored.
    pub async fn set<T: Serialize>(&self, kind: &str, id: Uuid, value: &T) -> bool {
        let Some(mut conn) = self.conn.clone() else {
            return false;
        };
        let key = self.key(kind, id);
        let Ok(json) = serde_json::to_string(value) else {
            return false;
        };
        let res: redis::RedisResult<i64> = STORE_UNLESS_NEWER
            .key(&key)
            .arg(json)
            .arg(TTL.as_secs())
            .invoke_async(&mut conn)
            .await;
        match res {
            Ok(stored) => stored == 1,
            Err(e) => {
                tracing::debug!(key, error = %e, "cache write failed");
                false
            }
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

    /// Replaces the fields of the hash `<prefix><kind>:<uuid>` and sets its TTL, in one
    /// round trip (`DEL`, `HSET`, `EXPIRE` in a transaction); failures are logged and ignored.
    pub async fn set_fields(&self, kind: &str, id: Uuid, fields: &[(&str, String)], ttl: Duration) {
        let Some(mut conn) = self.conn.clone() else {
            return;
        };
        let key = self.key(kind, id);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(&key)
            .ignore()
            .hset_multiple(&key, fields)
            .ignore()
            .expire(&key, ttl.as_secs() as i64)
            .ignore();
        let res: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
        if let Err(e) = res {
            tracing::debug!(key, error = %e, "cache hash write failed");
        }
    }

    /// Reads the hash `<prefix><kind>:<uuid>`; a failure or a missing key is `None`.
    pub async fn get_fields(
        &self,
        kind: &str,
        id: Uuid,
    ) -> Option<std::collections::HashMap<String, String>> {
        let mut conn = self.conn.clone()?;
        let key = self.key(kind, id);
        let res: redis::RedisResult<std::collections::HashMap<String, String>> =
            conn.hgetall(&key).await;
        match res {
            Ok(m) if !m.is_empty() => Some(m),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(key, error = %e, "cache hash read failed");
                None
            }
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
