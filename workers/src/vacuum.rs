//! Removes finished apalis jobs from Redis, in slices.
//!
//! apalis-redis keeps every finished job (payload, metadata hash, id in `{ns}:done`) until
//! vacuumed. Its own `vacuum()` walks the whole payload hash with `HGETALL` in one script, which at
//! thousands of ticks per second blocks Redis for long enough to show up as tick lateness, and it
//! never trims the `done` set. This vacuum pops finished ids from `done` a slice at a time and
//! deletes exactly their payload and metadata, so each script stays short and memory stays flat.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use tokio::sync::watch;

use crate::SchedulerError;
use crate::keys::Keys;
use crate::redis_conn::RedisConn;

/// Pop up to ARGV[1] finished job ids and delete their payload and metadata.
/// KEYS: done set, payload hash, metadata prefix. Returns how many jobs were removed.
static VACUUM_SLICE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local ids = redis.call('SPOP', KEYS[1], tonumber(ARGV[1]))
for _, id in ipairs(ids) do
  redis.call('HDEL', KEYS[2], id)
  redis.call('DEL', KEYS[3] .. ':' .. id)
end
return #ids
"#,
    )
});

const SLICE: usize = 1000;
/// Most slices per vacuum pass, so one pass never monopolises Redis for long.
const MAX_SLICES: usize = 200;

/// Remove finished jobs now. Returns how many were removed.
pub(crate) async fn vacuum_once(conn: &RedisConn, keys: &Keys) -> Result<usize, SchedulerError> {
    let mut conn = conn.clone();
    let mut removed = 0;
    for _ in 0..MAX_SLICES {
        let n: usize = VACUUM_SLICE
            .key(&keys.apalis_done)
            .key(&keys.apalis_data)
            .key(&keys.apalis_meta)
            .arg(SLICE)
            .invoke_async(&mut conn)
            .await?;
        removed += n;
        if n < SLICE {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(removed)
}

/// Vacuum every `interval` until `stopping` turns true.
pub(crate) async fn run_vacuum(
    conn: RedisConn,
    keys: std::sync::Arc<Keys>,
    interval: Duration,
    mut stopping: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        match vacuum_once(&conn, &keys).await {
            Ok(n) if n > 0 => tracing::debug!(removed = n, "vacuumed finished jobs"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "vacuum failed"),
        }
    }
}
