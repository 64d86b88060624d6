//! Per-chain state in Redis and the only code that changes it: small Lua scripts, each one atomic.
//!
//! State of chain `id` (key names in [`Keys`]):
//! * `seq[id]`: the sequence number of the chain's next tick. The chain is live iff it is set.
//! * `next[id]` / `feed[id]`: due time (ms) of the pending tick; `feed` only while it has not yet
//!   been handed to apalis (the [`feeder`](crate::feeder) moves it).
//! * `lease[id]`: while the tick is inside apalis or running, the time until which it is trusted
//!   to be alive. Past it, the chain counts as lost and may be re-seeded.
//! * `running[id]`: claim time of the running tick.
//!
//! And one record for the whole namespace, `control` (field `paused`): no tick is claimed while it
//! says `"1"`, and none is handed to apalis unless it exists and says `"0"`, so after a wipe (which
//! also takes every chain's `seq`, making ticks already in flight stale) nothing runs until a
//! worker has restored the pause state it last saw (see [`feeder`](crate::feeder)).
//!
//! A job carries `(id, seq, due)`. [`ChainState::claim_many`] moves `seq → seq + 1` only if the chain
//! is still at `seq`, the cluster is not paused and the Redis clock has reached `due`, so a tick
//! runs at most once however often apalis delivers it, and never early. After the tick,
//! [`ChainState::finish_many`] schedules `seq + 1` (or clears the chain) only if nobody moved the chain
//! meanwhile. Seeding picks a fresh `seq` from the Redis clock in microseconds (and above any
//! current one): a chain advances by one per tick, far slower than the clock, so a re-seeded chain
//! never reuses a `seq` of an earlier incarnation, even after a flush. All times come from the
//! Redis `TIME` so that processes on different hosts share one clock.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::Script;

use crate::SchedulerError;
use crate::keys::Keys;
use crate::redis_conn::RedisConn;

/// Computes `now_us` and `now` (ms) from the Redis clock; prepended to scripts that need time.
macro_rules! lua_with_clock {
    ($body:literal) => {
        concat!(
            "local t = redis.call('TIME')\n",
            "local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])\n",
            "local now = math.floor(now_us / 1000)\n",
            $body
        )
    };
}

/// Seed chains that are missing or whose lease expired.
/// KEYS: seq, born, next, feed, lease, running. ARGV: (id, delay_ms)... Returns 1/0 per id.
static SEED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(lua_with_clock!(
        r#"
local out = {}
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  local cur = redis.call('HGET', KEYS[1], id)
  local seed = true
  if cur then
    local lease = redis.call('ZSCORE', KEYS[5], id)
    if (not lease) or tonumber(lease) >= now then seed = false end
  end
  if seed then
    local seq = now_us
    if cur and tonumber(cur) >= seq then seq = tonumber(cur) + 1 end
    local due = now + tonumber(ARGV[i + 1])
    redis.call('HSET', KEYS[1], id, string.format('%.0f', seq))
    redis.call('HSETNX', KEYS[2], id, now)
    redis.call('ZADD', KEYS[3], due, id)
    redis.call('ZADD', KEYS[4], due, id)
    redis.call('ZREM', KEYS[5], id)
    redis.call('ZREM', KEYS[6], id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"#
    ))
});

/// Claim a batch of ticks. KEYS: seq, next, feed, lease, running, control.
/// ARGV: lease_ms, then (id, seq, due_ms) per tick. Returns per tick a pair: {1, now} claimed,
/// {-1, 0} stale, {-2, 0} paused, {-3, wait_ms} not due yet. The writes of all claimed ticks go
/// out as one command per key at the end; `moved` keeps a second delivery of the same tick inside
/// one batch stale. The current seqs of the whole batch are read with one `HMGET`.
static CLAIM_MANY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(lua_with_clock!(
        r#"
local paused = redis.call('HGET', KEYS[6], 'paused') == '1'
local lease_until = now + tonumber(ARGV[1])
local out, moved, seqs, ids, leases, runs = {}, {}, {}, {}, {}, {}
local want = {}
for i = 2, #ARGV, 3 do want[#want + 1] = ARGV[i] end
local current = {}
if #want > 0 then current = redis.call('HMGET', KEYS[1], unpack(want)) end
for i = 2, #ARGV, 3 do
  local id = ARGV[i]
  local seq = tonumber(ARGV[i + 1])
  local cur = moved[id]
  if not cur then
    cur = current[(i + 1) / 3]
    if cur then cur = tonumber(cur) end
  end
  local due = tonumber(ARGV[i + 2])
  if (not cur) or cur ~= seq then
    out[#out + 1] = -1; out[#out + 1] = 0
  elseif paused then
    out[#out + 1] = -2; out[#out + 1] = 0
  elseif now < due then
    out[#out + 1] = -3; out[#out + 1] = due - now
  else
    moved[id] = seq + 1
    seqs[#seqs + 1] = id; seqs[#seqs + 1] = string.format('%.0f', seq + 1)
    ids[#ids + 1] = id
    leases[#leases + 1] = lease_until; leases[#leases + 1] = id
    runs[#runs + 1] = now; runs[#runs + 1] = id
    out[#out + 1] = 1; out[#out + 1] = now
  end
end
if #ids > 0 then
  redis.call('HSET', KEYS[1], unpack(seqs))
  redis.call('ZREM', KEYS[2], unpack(ids))
  redis.call('ZREM', KEYS[3], unpack(ids))
  redis.call('ZADD', KEYS[4], unpack(leases))
  redis.call('ZADD', KEYS[5], unpack(runs))
end
return out
"#
    ))
});

/// After a batch of ticks: for each, schedule the next tick or end the chain, unless the chain
/// moved meanwhile. KEYS: seq, born, next, feed, lease, running, ticks counter.
/// ARGV: (id, claimed seq (the seq of the next tick), delay_ms or -1 to stop, ended_at_ms) per
/// tick; the next tick is due `delay` after `ended_at`, and never before `now`.
/// Returns per tick a pair: {1, due} scheduled, {2, 0} stopped, {-1, 0} stale. As in
/// [`CLAIM_MANY`], the writes go out as one command per key; a chain finished twice in one batch
/// is stale the second time.
static FINISH_MANY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(lua_with_clock!(
        r#"
local out, seen, ended, dues, done = {}, {}, {}, {}, {}
local want = {}
for i = 1, #ARGV, 4 do want[#want + 1] = ARGV[i] end
local current = {}
if #want > 0 then current = redis.call('HMGET', KEYS[1], unpack(want)) end
for i = 1, #ARGV, 4 do
  local id = ARGV[i]
  local cur = nil
  if not seen[id] then cur = current[(i + 3) / 4] end
  if (not cur) or tonumber(cur) ~= tonumber(ARGV[i + 1]) then
    out[#out + 1] = -1; out[#out + 1] = 0
  else
    seen[id] = true
    done[#done + 1] = id
    local delay = tonumber(ARGV[i + 2])
    if delay < 0 then
      ended[#ended + 1] = id
      out[#out + 1] = 2; out[#out + 1] = 0
    else
      local due = math.max(now, tonumber(ARGV[i + 3]) + delay)
      dues[#dues + 1] = due; dues[#dues + 1] = id
      out[#out + 1] = 1; out[#out + 1] = due
    end
  end
end
if #done > 0 then
  redis.call('ZREM', KEYS[5], unpack(done))
  redis.call('ZREM', KEYS[6], unpack(done))
  redis.call('INCRBY', KEYS[7], #done)
  redis.call('EXPIRE', KEYS[7], 120)
end
if #ended > 0 then
  redis.call('HDEL', KEYS[1], unpack(ended))
  redis.call('HDEL', KEYS[2], unpack(ended))
  redis.call('ZREM', KEYS[3], unpack(ended))
  redis.call('ZREM', KEYS[4], unpack(ended))
end
if #dues > 0 then
  redis.call('ZADD', KEYS[3], unpack(dues))
  redis.call('ZADD', KEYS[4], unpack(dues))
end
return out
"#
    ))
});

/// Hand an unclaimed tick back to the feed (shutdown, pause). KEYS: seq, next, feed, lease.
/// ARGV: id, seq, due_ms. Returns 1 if handed back, 0 if the tick was stale.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local id = ARGV[1]
local cur = redis.call('HGET', KEYS[1], id)
if (not cur) or tonumber(cur) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], id)
redis.call('ZADD', KEYS[3], ARGV[3], id)
redis.call('ZREM', KEYS[4], id)
return 1
"#,
    )
});

/// Take up to `limit` ticks due within `lead_ms` out of the feed, leasing them, unless paused,
/// the control record is missing, or apalis already holds `max_queued` jobs not yet fetched.
/// KEYS: feed, seq, lease, control, apalis scheduled, apalis active.
/// ARGV: lead_ms, limit, lease_ms, max_queued.
/// Returns {control, id, seq, due, id, seq, due...} with control 'absent', 'paused' or 'running';
/// after 'running' comes how many ms until the earliest tick left in the feed is `lead_ms` from
/// due ('-1': the feed holds no other tick, '': not read because apalis is full).
static TAKE_DUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(lua_with_clock!(
        r#"
local paused = redis.call('HGET', KEYS[4], 'paused')
if not paused then return {'absent'} end
if paused ~= '0' then return {'paused'} end
local queued = redis.call('ZCARD', KEYS[5]) + redis.call('LLEN', KEYS[6])
local room = tonumber(ARGV[4]) - queued
if room <= 0 then return {'running', ''} end
local limit = math.min(tonumber(ARGV[2]), room)
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now + tonumber(ARGV[1]),
  'WITHSCORES', 'LIMIT', 0, limit)
local out = {'running', '-1'}
local rest = redis.call('ZRANGE', KEYS[1], #items / 2, #items / 2, 'WITHSCORES')
if #rest > 0 then
  out[2] = string.format('%.0f', math.max(0, tonumber(rest[2]) - tonumber(ARGV[1]) - now))
end
if #items == 0 then return out end
local lease_ms = tonumber(ARGV[3])
local ids = {}
for i = 1, #items, 2 do ids[#ids + 1] = items[i] end
redis.call('ZREM', KEYS[1], unpack(ids))
local seqs = redis.call('HMGET', KEYS[2], unpack(ids))
local leases = {}
for j = 1, #ids do
  local seq = seqs[j]
  if seq then
    local due = tonumber(items[2 * j])
    leases[#leases + 1] = math.max(due, now) + lease_ms
    leases[#leases + 1] = ids[j]
    out[#out + 1] = ids[j]
    out[#out + 1] = seq
    out[#out + 1] = string.format('%.0f', due)
  end
end
if #leases > 0 then redis.call('ZADD', KEYS[3], unpack(leases)) end
return out
"#
    ))
});

/// Write the control record unless it exists (a wiped namespace). KEYS: control.
/// ARGV: paused ("1"/"0"). Returns 1 if written, 0 if the record was there.
static RESTORE_CONTROL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'paused', ARGV[1])
return 1
"#,
    )
});

/// Extend the leases of running ticks. KEYS: seq, lease. ARGV: lease_ms, (id, claimed seq)...
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(lua_with_clock!(
        r#"
local until_ms = now + tonumber(ARGV[1])
local renewed = 0
for i = 2, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if cur and tonumber(cur) == tonumber(ARGV[i + 1]) then
    redis.call('ZADD', KEYS[2], until_ms, ARGV[i])
    renewed = renewed + 1
  end
end
return renewed
"#
    ))
});

/// Clear chains, optionally only those seeded before `born_before` ms (-1: any).
/// KEYS: seq, born, next, feed, lease, running. ARGV: born_before, ids... Returns how many.
static CLEAR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local before = tonumber(ARGV[1])
local cleared = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local born = redis.call('HGET', KEYS[2], id)
  if before < 0 or (not born) or tonumber(born) < before then
    if redis.call('HDEL', KEYS[1], id) == 1 then cleared = cleared + 1 end
    redis.call('HDEL', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
    redis.call('ZREM', KEYS[4], id)
    redis.call('ZREM', KEYS[5], id)
    redis.call('ZREM', KEYS[6], id)
  end
end
return cleared
"#,
    )
});

/// Result of [`ChainState::claim_many`] for one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The tick is ours; the Redis clock read `now_ms` at the claim.
    Claimed { now_ms: u64 },
    /// The chain is not at this seq any more (duplicate delivery, stopped or re-seeded chain).
    Stale,
    /// The cluster is paused; hand the tick back.
    Paused,
    /// Not due yet by the Redis clock; try again after this long.
    Early(Duration),
}

/// Result of [`ChainState::finish_many`] for one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// The next tick is due at this time (ms).
    Scheduled { due_ms: u64 },
    /// The chain was cleared.
    Stopped,
    /// The chain moved while the tick ran (stopped, re-seeded); nothing was written.
    Stale,
}

/// What one feeder step found: the pause state, the ticks it took, and when the next one is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Taken {
    pub(crate) control: Control,
    pub(crate) ticks: Vec<DueTick>,
    pub(crate) ahead: FeedAhead,
}

/// How long until the earliest tick left in the feed is within the feeder's lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FeedAhead {
    /// Not read (paused, no control record, or apalis full).
    Unknown,
    /// No other tick in the feed.
    Empty,
    /// The earliest is within the lead after this long (zero: already).
    In(Duration),
}

impl FeedAhead {
    fn parse(field: &str) -> Result<FeedAhead, SchedulerError> {
        match field {
            "" => Ok(FeedAhead::Unknown),
            "-1" => Ok(FeedAhead::Empty),
            ms => ms
                .parse::<u64>()
                .map(|ms| FeedAhead::In(Duration::from_millis(ms)))
                .map_err(|_| protocol("take_due", format!("feed head {ms:?}"))),
        }
    }
}

/// The cluster's pause state as the control record gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// Ticks run.
    Running,
    /// Paused by an operator.
    Paused,
    /// No control record: the namespace was wiped (or never run). Nothing runs until a worker
    /// restores the record.
    Absent,
}

/// A tick handed over by the feeder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DueTick {
    pub(crate) id: String,
    pub(crate) seq: u64,
    pub(crate) due_ms: u64,
}

/// One tick to claim: chain `id` must be at `seq`, and the Redis clock past `due_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClaimRequest {
    pub(crate) id: String,
    pub(crate) seq: u64,
    pub(crate) due_ms: u64,
}

/// One finished tick: chain `id` is at `claimed_seq` (the seq of its next tick) unless it moved;
/// `delay` until that tick, or `None` to end the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FinishRequest {
    pub(crate) id: String,
    pub(crate) claimed_seq: u64,
    pub(crate) delay: Option<Duration>,
    /// When the tick ended, ms since the Unix epoch on the Redis clock as this process
    /// estimates it: the delay counts from here, so time the finish spends waiting for its
    /// batch does not stretch the chain's cadence. 0: from the finish itself.
    pub(crate) ended_at_ms: u64,
}

/// Split a flat `{code, value, code, value...}` reply into `expected` pairs.
fn pairs<'a>(
    script: &'static str,
    flat: &'a [i64],
    expected: usize,
) -> Result<impl Iterator<Item = (i64, i64)> + 'a, SchedulerError> {
    if flat.len() != expected * 2 {
        return Err(protocol(
            script,
            format!("{} values for {expected} ticks", flat.len()),
        ));
    }
    Ok(flat.chunks_exact(2).map(|c| (c[0], c[1])))
}

/// Handle on the chain state of one namespace.
#[derive(Clone)]
pub(crate) struct ChainState {
    pub(crate) conn: RedisConn,
    pub(crate) keys: Arc<Keys>,
}

fn protocol(script: &'static str, detail: impl Into<String>) -> SchedulerError {
    SchedulerError::Protocol {
        script,
        detail: detail.into(),
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl ChainState {
    pub(crate) fn new(conn: RedisConn, keys: Arc<Keys>) -> Self {
        Self { conn, keys }
    }

    /// Seed each `(id, delay)` whose chain is missing or whose lease expired.
    /// Returns, per id, whether a chain was seeded.
    pub(crate) async fn seed(
        &self,
        chains: &[(String, Duration)],
    ) -> Result<Vec<bool>, SchedulerError> {
        if chains.is_empty() {
            return Ok(Vec::new());
        }
        let k = &self.keys;
        let mut inv = SEED.prepare_invoke();
        inv.key(&k.seq)
            .key(&k.born)
            .key(&k.next)
            .key(&k.feed)
            .key(&k.lease)
            .key(&k.running);
        for (id, delay) in chains {
            inv.arg(id).arg(ms(*delay));
        }
        let flags: Vec<i64> = inv.invoke_async(&mut self.conn.clone()).await?;
        if flags.len() != chains.len() {
            return Err(protocol(
                "seed",
                format!("{} flags for {}", flags.len(), chains.len()),
            ));
        }
        if flags.contains(&1) {
            self.publish_wake().await;
        }
        Ok(flags.into_iter().map(|f| f == 1).collect())
    }

    /// Try to claim each tick, leasing the claimed ones for `lease`; one answer per request, in
    /// order. One script call for the whole batch (see [`batcher`](crate::batcher)).
    pub(crate) async fn claim_many(
        &self,
        reqs: &[ClaimRequest],
        lease: Duration,
    ) -> Result<Vec<Claim>, SchedulerError> {
        if reqs.is_empty() {
            return Ok(Vec::new());
        }
        let k = &self.keys;
        let mut inv = CLAIM_MANY.prepare_invoke();
        inv.key(&k.seq)
            .key(&k.next)
            .key(&k.feed)
            .key(&k.lease)
            .key(&k.running)
            .key(&k.control)
            .arg(ms(lease));
        for r in reqs {
            inv.arg(&r.id).arg(r.seq).arg(r.due_ms);
        }
        let flat: Vec<i64> = inv.invoke_async(&mut self.conn.clone()).await?;
        pairs("claim", &flat, reqs.len())?
            .map(|(code, value)| {
                let value = u64::try_from(value).unwrap_or(0);
                match code {
                    1 => Ok(Claim::Claimed { now_ms: value }),
                    -1 => Ok(Claim::Stale),
                    -2 => Ok(Claim::Paused),
                    -3 => Ok(Claim::Early(Duration::from_millis(value.max(1)))),
                    other => Err(protocol("claim", format!("code {other}"))),
                }
            })
            .collect()
    }

    /// After the ticks that claimed their chains: schedule each chain's next tick after its
    /// delay, or end it when the delay is `None`, unless the chain moved meanwhile. One answer
    /// per request, in order; `unix_second` names the per-second tick counter they count in.
    pub(crate) async fn finish_many(
        &self,
        reqs: &[FinishRequest],
        unix_second: u64,
    ) -> Result<Vec<Finish>, SchedulerError> {
        if reqs.is_empty() {
            return Ok(Vec::new());
        }
        let k = &self.keys;
        let mut inv = FINISH_MANY.prepare_invoke();
        inv.key(&k.seq)
            .key(&k.born)
            .key(&k.next)
            .key(&k.feed)
            .key(&k.lease)
            .key(&k.running)
            .key(k.ticks_at(unix_second));
        for r in reqs {
            let delay: i64 = match r.delay {
                Some(d) => i64::try_from(ms(d)).unwrap_or(i64::MAX),
                None => -1,
            };
            inv.arg(&r.id)
                .arg(r.claimed_seq)
                .arg(delay)
                .arg(r.ended_at_ms);
        }
        let flat: Vec<i64> = inv.invoke_async(&mut self.conn.clone()).await?;
        pairs("finish", &flat, reqs.len())?
            .map(|(code, value)| match code {
                1 => Ok(Finish::Scheduled {
                    due_ms: u64::try_from(value).unwrap_or(0),
                }),
                2 => Ok(Finish::Stopped),
                -1 => Ok(Finish::Stale),
                other => Err(protocol("finish", format!("code {other}"))),
            })
            .collect()
    }

    /// Hand the unclaimed tick `(id, seq)` back to the feed. Returns false if it was stale.
    pub(crate) async fn release(
        &self,
        id: &str,
        seq: u64,
        due_ms: u64,
    ) -> Result<bool, SchedulerError> {
        let k = &self.keys;
        let released: i64 = RELEASE
            .key(&k.seq)
            .key(&k.next)
            .key(&k.feed)
            .key(&k.lease)
            .arg(id)
            .arg(seq)
            .arg(due_ms)
            .invoke_async(&mut self.conn.clone())
            .await?;
        if released == 1 {
            self.publish_wake().await;
        }
        Ok(released == 1)
    }

    /// Take up to `limit` ticks due within `lead` out of the feed (see [`TAKE_DUE`]), and read
    /// the control record on the way.
    pub(crate) async fn take_due(
        &self,
        lead: Duration,
        limit: usize,
        lease: Duration,
        max_queued: usize,
    ) -> Result<Taken, SchedulerError> {
        let k = &self.keys;
        let flat: Vec<String> = TAKE_DUE
            .key(&k.feed)
            .key(&k.seq)
            .key(&k.lease)
            .key(&k.control)
            .key(&k.apalis_scheduled)
            .key(&k.apalis_active)
            .arg(ms(lead))
            .arg(limit)
            .arg(ms(lease))
            .arg(max_queued)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let Some((control, flat)) = flat.split_first() else {
            return Err(protocol("take_due", "empty reply"));
        };
        let control = match control.as_str() {
            "running" => Control::Running,
            "paused" => Control::Paused,
            "absent" => Control::Absent,
            other => return Err(protocol("take_due", format!("control {other:?}"))),
        };
        let (ahead, flat) = match (control, flat.split_first()) {
            (Control::Running, Some((ahead, rest))) => (FeedAhead::parse(ahead)?, rest),
            (Control::Running, None) => return Err(protocol("take_due", "no feed head")),
            _ => (FeedAhead::Unknown, flat),
        };
        if !flat.len().is_multiple_of(3) {
            return Err(protocol("take_due", format!("{} fields", flat.len())));
        }
        let ticks = flat
            .chunks_exact(3)
            .map(|c| {
                let seq = c[1]
                    .parse()
                    .map_err(|_| protocol("take_due", format!("seq {:?}", c[1])))?;
                let due_ms = c[2]
                    .parse()
                    .map_err(|_| protocol("take_due", format!("due {:?}", c[2])))?;
                Ok(DueTick {
                    id: c[0].clone(),
                    seq,
                    due_ms,
                })
            })
            .collect::<Result<Vec<_>, SchedulerError>>()?;
        Ok(Taken {
            control,
            ticks,
            ahead,
        })
    }

    /// Write the control record with `paused` unless it exists. Returns whether it was written.
    pub(crate) async fn restore_control(&self, paused: bool) -> Result<bool, SchedulerError> {
        let written: i64 = RESTORE_CONTROL
            .key(&self.keys.control)
            .arg(if paused { "1" } else { "0" })
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(written == 1)
    }

    /// Extend the leases of running ticks `(id, claimed seq)`. Returns how many were renewed.
    pub(crate) async fn renew(
        &self,
        running: &[(String, u64)],
        lease: Duration,
    ) -> Result<usize, SchedulerError> {
        if running.is_empty() {
            return Ok(0);
        }
        let k = &self.keys;
        let mut inv = RENEW.prepare_invoke();
        inv.key(&k.seq).key(&k.lease).arg(ms(lease));
        for (id, seq) in running {
            inv.arg(id).arg(*seq);
        }
        let renewed: i64 = inv.invoke_async(&mut self.conn.clone()).await?;
        Ok(usize::try_from(renewed).unwrap_or(0))
    }

    /// Clear chains; with `born_before_ms`, only those seeded before it. Returns how many existed.
    pub(crate) async fn clear(
        &self,
        ids: &[String],
        born_before_ms: Option<u64>,
    ) -> Result<usize, SchedulerError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let k = &self.keys;
        let mut inv = CLEAR.prepare_invoke();
        inv.key(&k.seq)
            .key(&k.born)
            .key(&k.next)
            .key(&k.feed)
            .key(&k.lease)
            .key(&k.running);
        match born_before_ms {
            Some(before) => inv.arg(before),
            None => inv.arg(-1),
        };
        for id in ids {
            inv.arg(id);
        }
        let cleared: i64 = inv.invoke_async(&mut self.conn.clone()).await?;
        Ok(usize::try_from(cleared).unwrap_or(0))
    }

    /// Tell every worker process of the namespace that a tick may be due sooner than they
    /// think (see `wake`). A failure is only logged: notices are hints, the loops also wake on
    /// their own.
    pub(crate) async fn publish_wake(&self) {
        let sent: Result<i64, redis::RedisError> = redis::cmd("PUBLISH")
            .arg(&self.keys.wake)
            .arg(1)
            .query_async(&mut self.conn.clone())
            .await;
        if let Err(e) = sent {
            tracing::debug!(error = %e, "publishing a wake notice failed");
        }
    }

    /// Redis clock, in ms since the Unix epoch.
    pub(crate) async fn redis_now_ms(&self) -> Result<u64, SchedulerError> {
        let (secs, micros): (u64, u64) = redis::cmd("TIME")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(secs * 1000 + micros / 1000)
    }
}

#[cfg(test)]
mod tests {
    //! The batch scripts against the local Redis, each test on its own namespace.
    use super::*;

    async fn state(test: &str) -> ChainState {
        let ns = format!("cw-unit-{test}-{:08x}", rand::random::<u32>());
        let conn = crate::redis_conn::connect("redis://127.0.0.1:6379", &[])
            .await
            .unwrap();
        ChainState::new(conn, Arc::new(Keys::new(&ns)))
    }

    async fn cleanup(state: &ChainState) {
        let k = &state.keys;
        let mut conn = state.conn.clone();
        let _: () = redis::cmd("DEL")
            .arg(&k.seq)
            .arg(&k.born)
            .arg(&k.next)
            .arg(&k.feed)
            .arg(&k.lease)
            .arg(&k.running)
            .arg(&k.control)
            .query_async(&mut conn)
            .await
            .unwrap();
        let counters: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", k.ticks_prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        for key in counters {
            let _: () = redis::cmd("DEL")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }

    async fn seeded(state: &ChainState, id: &str) -> (u64, u64) {
        assert_eq!(
            state.seed(&[(id.into(), Duration::ZERO)]).await.unwrap(),
            vec![true]
        );
        let mut conn = state.conn.clone();
        let seq: u64 = redis::cmd("HGET")
            .arg(&state.keys.seq)
            .arg(id)
            .query_async(&mut conn)
            .await
            .unwrap();
        let due: u64 = redis::cmd("ZSCORE")
            .arg(&state.keys.next)
            .arg(id)
            .query_async(&mut conn)
            .await
            .unwrap();
        (seq, due)
    }

    #[tokio::test]
    async fn one_batch_claims_a_tick_delivered_twice_once_and_refuses_early_ones() {
        let s = state("claim").await;
        s.restore_control(false).await.unwrap();
        let (seq_a, due_a) = seeded(&s, "a").await;
        let (seq_b, _) = seeded(&s, "b").await;
        let req = |id: &str, seq, due_ms| ClaimRequest {
            id: id.into(),
            seq,
            due_ms,
        };
        let far = s.redis_now_ms().await.unwrap() + 60_000;
        let answers = s
            .claim_many(
                &[
                    req("a", seq_a, due_a),
                    req("a", seq_a, due_a),
                    req("b", seq_b, far),
                    req("gone", 1, due_a),
                ],
                Duration::from_secs(2),
            )
            .await
            .unwrap();
        assert!(matches!(answers[0], Claim::Claimed { .. }), "{answers:?}");
        assert_eq!(answers[1], Claim::Stale);
        assert!(matches!(answers[2], Claim::Early(d) if d > Duration::from_secs(50)));
        assert_eq!(answers[3], Claim::Stale);
        // The successor's seq is claimable by nobody but its own tick.
        let again = s
            .claim_many(&[req("a", seq_a + 1, due_a)], Duration::from_secs(2))
            .await
            .unwrap();
        assert!(matches!(again[0], Claim::Claimed { .. }), "{again:?}");
        cleanup(&s).await;
    }

    #[tokio::test]
    async fn one_batch_finishes_each_chain_once_and_ends_stopped_ones() {
        let s = state("finish").await;
        s.restore_control(false).await.unwrap();
        let (seq_a, due_a) = seeded(&s, "a").await;
        let (seq_b, due_b) = seeded(&s, "b").await;
        let claims = [
            ClaimRequest {
                id: "a".into(),
                seq: seq_a,
                due_ms: due_a,
            },
            ClaimRequest {
                id: "b".into(),
                seq: seq_b,
                due_ms: due_b,
            },
        ];
        let claimed = s.claim_many(&claims, Duration::from_secs(2)).await.unwrap();
        assert!(claimed.iter().all(|c| matches!(c, Claim::Claimed { .. })));
        let fin = |id: &str, claimed_seq, delay| FinishRequest {
            id: id.into(),
            claimed_seq,
            delay,
            ended_at_ms: 0,
        };
        let second = 1_000;
        let answers = s
            .finish_many(
                &[
                    fin("a", seq_a + 1, Some(Duration::from_millis(500))),
                    fin("a", seq_a + 1, Some(Duration::from_millis(500))),
                    fin("b", seq_b + 1, None),
                    fin("b", seq_b, None),
                ],
                second,
            )
            .await
            .unwrap();
        assert!(
            matches!(answers[0], Finish::Scheduled { .. }),
            "{answers:?}"
        );
        assert_eq!(answers[1], Finish::Stale);
        assert_eq!(answers[2], Finish::Stopped);
        assert_eq!(answers[3], Finish::Stale);
        let mut conn = s.conn.clone();
        let live: Vec<String> = redis::cmd("HKEYS")
            .arg(&s.keys.seq)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(live, vec!["a".to_owned()]);
        let counted: u64 = redis::cmd("GET")
            .arg(s.keys.ticks_at(second))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(counted, 2, "one count per tick that finished");
        cleanup(&s).await;
    }
}
