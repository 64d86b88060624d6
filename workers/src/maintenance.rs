//! Operator maintenance on a namespace: dropping every pending tick (`queue drain --purge`)
//! and requeueing apalis' dead or failed jobs (`queue retry-dead`). Kept here, next to the
//! key layout they work on, so no other crate needs to know it.
//!
//! * Purge: each pending chain's `seq` is bumped so any job already handed to apalis turns
//!   stale (a claim compares `seq`), the tick leaves the pending sets, and its lease is set to 0
//!   (expired) — so the reconciler re-seeds every chain that is still wanted and clears the
//!   others. No chain is lost and none can fork.
//! * Retry dead: back onto apalis' ready list with a fresh attempt count. A tick claims before
//!   it acts, so a requeued job that is out of date is dropped as stale.

use redis::Script;

use crate::chain_state::ChainState;
use crate::{Chains, SchedulerError};

/// Drops up to ARGV[1] pending ticks. KEYS: seq, next, feed, lease.
/// Returns {ids looked at, chains whose tick was dropped}.
const PURGE_PENDING: &str = r#"
local ids = redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[1]) - 1)
local purged = 0
for _, id in ipairs(ids) do
  local cur = redis.call('HGET', KEYS[1], id)
  if cur then
    redis.call('HSET', KEYS[1], id, string.format('%.0f', tonumber(cur) + 1))
    redis.call('ZADD', KEYS[4], 0, id)
    purged = purged + 1
  end
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end
return {#ids, purged}
"#;

/// Requeue up to ARGV[1] jobs from each of apalis' dead and failed sets.
/// KEYS: dead, failed, data, meta prefix, active, signal. Returns {requeued, dropped (no payload)}.
const RETRY_DEAD: &str = r#"
local requeued, dropped = 0, 0
for k = 1, 2 do
  local ids = redis.call('SRANDMEMBER', KEYS[k], tonumber(ARGV[1]))
  for _, id in ipairs(ids) do
    redis.call('SREM', KEYS[k], id)
    if redis.call('HEXISTS', KEYS[3], id) == 1 then
      redis.call('HSET', KEYS[4] .. ':' .. id, 'attempts', 0, 'status', 'Pending')
      redis.call('RPUSH', KEYS[5], id)
      requeued = requeued + 1
    else
      dropped = dropped + 1
    end
  end
end
if requeued > 0 then
  redis.call('DEL', KEYS[6])
  redis.call('LPUSH', KEYS[6], 1)
end
return {requeued, dropped}
"#;

/// Ids handled per script call.
const SLICE: usize = 1000;

impl Chains {
    /// Drops every pending tick (chains stay owned; the reconciler re-seeds wanted ones).
    /// Returns how many chains lost their tick.
    pub async fn purge_pending(&self) -> Result<u64, SchedulerError> {
        let script = Script::new(PURGE_PENDING);
        let mut purged = 0;
        for state in &self.shards {
            purged += purge_shard(&script, state).await?;
        }
        Ok(purged)
    }

    /// Requeues apalis' dead and failed jobs. Returns (requeued, dropped without payload).
    pub async fn retry_dead(&self) -> Result<(u64, u64), SchedulerError> {
        let script = Script::new(RETRY_DEAD);
        let (mut requeued, mut dropped) = (0, 0);
        for state in &self.shards {
            let (r, d) = retry_dead_in_shard(&script, state).await?;
            requeued += r;
            dropped += d;
        }
        Ok((requeued, dropped))
    }
}

/// [`Chains::purge_pending`] in one shard.
async fn purge_shard(script: &Script, state: &ChainState) -> Result<u64, SchedulerError> {
    let keys = &state.keys;
    let mut conn = state.conn.clone();
    let mut purged = 0;
    loop {
        let (seen, n): (u64, u64) = script
            .key(&keys.seq)
            .key(&keys.next)
            .key(&keys.feed)
            .key(&keys.lease)
            .arg(SLICE)
            .invoke_async(&mut conn)
            .await?;
        purged += n;
        if seen < SLICE as u64 {
            return Ok(purged);
        }
    }
}

/// [`Chains::retry_dead`] in one shard.
async fn retry_dead_in_shard(
    script: &Script,
    state: &ChainState,
) -> Result<(u64, u64), SchedulerError> {
    let keys = &state.keys;
    let mut conn = state.conn.clone();
    let (mut requeued, mut dropped) = (0, 0);
    loop {
        let (r, d): (u64, u64) = script
            .key(&keys.apalis_dead)
            .key(&keys.apalis_failed)
            .key(&keys.apalis_data)
            .key(&keys.apalis_meta)
            .key(&keys.apalis_active)
            .key(&keys.apalis_signal)
            .arg(SLICE)
            .invoke_async(&mut conn)
            .await?;
        requeued += r;
        dropped += d;
        if r + d == 0 {
            return Ok((requeued, dropped));
        }
    }
}
