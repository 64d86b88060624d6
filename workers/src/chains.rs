//! [`Chains`]: the cheap, cloneable handle the API side and the operator CLI use to start, stop,
//! pause and inspect chains. It only talks to Redis (one multiplexed connection, or one cluster
//! client); it never runs ticks, so any process can hold one without being a worker.
//!
//! With several shards ([`SchedulerConfig::shards`]) a chain's operations go to the shard its id
//! belongs to, and the namespace-wide ones (pause, stats, upcoming, vacuum) visit every shard, so
//! callers see one namespace whatever K is.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;

use crate::chain_state::ChainState;
use crate::keys::Keys;
use crate::redis_conn;
use crate::stats::{Stats, read_stats};
use crate::{SchedulerConfig, SchedulerError};

/// Handle on the chains of one namespace, over all its shards.
#[derive(Clone)]
pub struct Chains {
    /// One chain state per shard, in shard order (never empty).
    pub(crate) shards: Vec<ChainState>,
    /// Routes ids to shards ([`SchedulerConfig::shard_of`]).
    router: Arc<SchedulerConfig>,
    orphan_after: Duration,
}

impl std::fmt::Debug for Chains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chains")
            .field("namespace", &self.router.namespace)
            .field("shards", &self.shards.len())
            .finish()
    }
}

impl Chains {
    /// Connect to Redis (or the Redis Cluster) for `cfg.namespace`, every shard of it.
    pub async fn connect(cfg: &SchedulerConfig) -> Result<Chains, SchedulerError> {
        cfg.validate()?;
        let conn = redis_conn::connect(&cfg.redis_url, &cfg.cluster_nodes).await?;
        let shards = cfg
            .shard_configs()
            .iter()
            .map(|shard| ChainState::new(conn.clone(), Arc::new(Keys::new(&shard.namespace))))
            .collect();
        Ok(Chains {
            shards,
            router: Arc::new(cfg.clone()),
            orphan_after: cfg.heartbeat_interval * cfg.missed_heartbeats as u32,
        })
    }

    /// The namespace this handle works in (the shards' namespaces derive from it).
    pub fn namespace(&self) -> &str {
        &self.router.namespace
    }

    /// How many shards the chains are spread over.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// The Redis clock (of the first shard's node), ms since the Unix epoch.
    pub async fn now_ms(&self) -> Result<u64, SchedulerError> {
        self.shards[0].redis_now_ms().await
    }

    /// The chain state of the shard `id` belongs to.
    fn shard(&self, id: &str) -> &ChainState {
        let i = self.router.shard_of(id).min(self.shards.len() - 1);
        &self.shards[i]
    }

    /// Start a chain whose first tick is due after `delay`, unless a live chain exists
    /// (idempotent; returns whether it started one). A chain whose lease expired counts as dead
    /// and is re-seeded.
    pub async fn start(&self, id: &str, delay: Duration) -> Result<bool, SchedulerError> {
        let started = self.shard(id).seed(&[(id.to_owned(), delay)]).await?;
        Ok(started.first().copied().unwrap_or(false))
    }

    /// End a chain now: its pending tick becomes stale and is dropped when delivered; a running
    /// tick finishes but schedules nothing. Returns whether a chain existed.
    pub async fn stop(&self, id: &str) -> Result<bool, SchedulerError> {
        Ok(self.shard(id).clear(&[id.to_owned()], None).await? > 0)
    }

    /// Whether chain `id` is live (has state; a lost chain stays live until re-seeded or stopped).
    pub async fn is_live(&self, id: &str) -> Result<bool, SchedulerError> {
        let state = self.shard(id);
        let mut conn = state.conn.clone();
        Ok(conn.hexists(&state.keys.seq, id).await?)
    }

    /// Pause the whole cluster: no new tick starts; delivered ticks go back to the feed; running
    /// ticks finish and schedule their successors; chains keep their state. Every worker process
    /// remembers the pause and re-asserts it if the namespace is wiped (`FLUSHDB`, a Redis restart
    /// without persistence, deleted keys); see [`feeder`](crate::feeder) for the limits.
    pub async fn pause(&self) -> Result<(), SchedulerError> {
        self.set_paused(true).await
    }

    /// Resume after [`Chains::pause`]; overdue ticks start at once (in bounded slices).
    pub async fn resume(&self) -> Result<(), SchedulerError> {
        self.set_paused(false).await
    }

    async fn set_paused(&self, paused: bool) -> Result<(), SchedulerError> {
        for state in &self.shards {
            let mut conn = state.conn.clone();
            // Resume writes "0" rather than deleting: the record's presence tells workers that
            // the namespace was not wiped.
            let () = conn
                .hset(
                    &state.keys.control,
                    "paused",
                    if paused { "1" } else { "0" },
                )
                .await?;
            // Idle feeders read the record at their next step: make that now.
            state.publish_wake().await;
        }
        Ok(())
    }

    /// Whether the cluster is paused (in any shard, so a pause or resume that failed half-way
    /// reads as paused). A namespace without its control record (never run, or just wiped)
    /// reads as not paused; a worker restores the record within a moment.
    pub async fn is_paused(&self) -> Result<bool, SchedulerError> {
        for state in &self.shards {
            let mut conn = state.conn.clone();
            let paused: Option<String> = conn.hget(&state.keys.control, "paused").await?;
            if paused.as_deref() == Some("1") {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Ticks running now, cluster-wide.
    pub async fn running_ticks(&self) -> Result<u64, SchedulerError> {
        let mut total = 0;
        for state in &self.shards {
            let mut conn = state.conn.clone();
            let running: u64 = conn.zcard(&state.keys.running).await?;
            total += running;
        }
        Ok(total)
    }

    /// A snapshot of the namespace: chains, queue, workers, recent throughput (summed over the
    /// shards).
    pub async fn stats(&self) -> Result<Stats, SchedulerError> {
        let mut parts = Vec::with_capacity(self.shards.len());
        for state in &self.shards {
            parts.push(read_stats(&state.conn, &state.keys, self.orphan_after).await?);
        }
        Ok(Stats::merge(parts))
    }

    /// The next pending ticks, soonest first: `(chain id, due at in ms since the Unix epoch, seq)`.
    /// With `id`, only that chain's pending tick (if any).
    pub async fn upcoming(
        &self,
        limit: usize,
        id: Option<&str>,
    ) -> Result<Vec<(String, u64, u64)>, SchedulerError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let states: Vec<&ChainState> = match id {
            Some(id) => vec![self.shard(id)],
            None => self.shards.iter().collect(),
        };
        let mut all = Vec::new();
        for state in states {
            all.extend(upcoming_in(state, limit, id).await?);
        }
        all.sort_by_key(|(_, due, _)| *due);
        all.truncate(limit);
        Ok(all)
    }

    /// Remove finished apalis jobs now (the workers also do it on a schedule).
    /// Returns how many were removed.
    pub async fn vacuum(&self) -> Result<usize, SchedulerError> {
        let mut removed = 0;
        for state in &self.shards {
            removed += crate::vacuum::vacuum_once(&state.conn, &state.keys).await?;
        }
        Ok(removed)
    }
}

/// [`Chains::upcoming`] within one shard.
async fn upcoming_in(
    state: &ChainState,
    limit: usize,
    id: Option<&str>,
) -> Result<Vec<(String, u64, u64)>, SchedulerError> {
    let mut conn = state.conn.clone();
    let keys = &state.keys;
    let pending: Vec<(String, f64)> = match id {
        Some(id) => {
            let due: Option<f64> = conn.zscore(&keys.next, id).await?;
            due.map(|d| vec![(id.to_owned(), d)]).unwrap_or_default()
        }
        None => {
            let last = isize::try_from(limit).unwrap_or(isize::MAX) - 1;
            conn.zrange_withscores(&keys.next, 0, last).await?
        }
    };
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = pending.iter().map(|(id, _)| id.as_str()).collect();
    let seqs: Vec<Option<u64>> = redis::cmd("HMGET")
        .arg(&keys.seq)
        .arg(&ids)
        .query_async(&mut conn)
        .await?;
    Ok(pending
        .into_iter()
        .zip(seqs)
        .filter_map(|((id, due), seq)| seq.map(|seq| (id, due as u64, seq)))
        .collect())
}
