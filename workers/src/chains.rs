//! [`Chains`]: the cheap, cloneable handle the API side and the operator CLI use to start, stop,
//! pause and inspect chains. It only talks to Redis (one multiplexed connection); it never runs
//! ticks, so any process can hold one without being a worker.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::chain_state::ChainState;
use crate::keys::Keys;
use crate::stats::{Stats, read_stats};
use crate::{SchedulerConfig, SchedulerError};

/// Handle on the chains of one namespace.
#[derive(Clone)]
pub struct Chains {
    pub(crate) state: ChainState,
    orphan_after: Duration,
}

impl std::fmt::Debug for Chains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chains")
            .field("namespace", &self.state.keys.namespace)
            .finish()
    }
}

/// Open a Redis connection manager with bounded connect and response times.
pub(crate) async fn connect_redis(url: &str) -> Result<ConnectionManager, SchedulerError> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(10)));
    Ok(client.get_connection_manager_with_config(config).await?)
}

impl Chains {
    /// Connect to Redis for `cfg.namespace`.
    pub async fn connect(cfg: &SchedulerConfig) -> Result<Chains, SchedulerError> {
        cfg.validate()?;
        let conn = connect_redis(&cfg.redis_url).await?;
        Ok(Chains {
            state: ChainState::new(conn, Arc::new(Keys::new(&cfg.namespace))),
            orphan_after: cfg.heartbeat_interval * cfg.missed_heartbeats as u32,
        })
    }

    /// The namespace this handle works in.
    pub fn namespace(&self) -> &str {
        &self.state.keys.namespace
    }

    /// Start a chain whose first tick is due after `delay`, unless a live chain exists
    /// (idempotent; returns whether it started one). A chain whose lease expired counts as dead
    /// and is re-seeded.
    pub async fn start(&self, id: &str, delay: Duration) -> Result<bool, SchedulerError> {
        let started = self.state.seed(&[(id.to_owned(), delay)]).await?;
        Ok(started.first().copied().unwrap_or(false))
    }

    /// End a chain now: its pending tick becomes stale and is dropped when delivered; a running
    /// tick finishes but schedules nothing. Returns whether a chain existed.
    pub async fn stop(&self, id: &str) -> Result<bool, SchedulerError> {
        Ok(self.state.clear(&[id.to_owned()], None).await? > 0)
    }

    /// Whether chain `id` is live (has state; a lost chain stays live until re-seeded or stopped).
    pub async fn is_live(&self, id: &str) -> Result<bool, SchedulerError> {
        let mut conn = self.state.conn.clone();
        Ok(conn.hexists(&self.state.keys.seq, id).await?)
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
        let mut conn = self.state.conn.clone();
        // Resume writes "0" rather than deleting: the record's presence tells workers that the
        // namespace was not wiped.
        let () = conn
            .hset(
                &self.state.keys.control,
                "paused",
                if paused { "1" } else { "0" },
            )
            .await?;
        Ok(())
    }

    /// Whether the cluster is paused. A namespace without its control record (never run, or
    /// just wiped) reads as not paused; a worker restores the record within a moment.
    pub async fn is_paused(&self) -> Result<bool, SchedulerError> {
        let mut conn = self.state.conn.clone();
        let paused: Option<String> = conn.hget(&self.state.keys.control, "paused").await?;
        Ok(paused.as_deref() == Some("1"))
    }

    /// Ticks running now, cluster-wide.
    pub async fn running_ticks(&self) -> Result<u64, SchedulerError> {
        let mut conn = self.state.conn.clone();
        Ok(conn.zcard(&self.state.keys.running).await?)
    }

    /// A snapshot of the namespace: chains, queue, workers, recent throughput.
    pub async fn stats(&self) -> Result<Stats, SchedulerError> {
        read_stats(&self.state.conn, &self.state.keys, self.orphan_after).await
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
        let mut conn = self.state.conn.clone();
        let keys = &self.state.keys;
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

    /// Remove finished apalis jobs now (the workers also do it on a schedule).
    /// Returns how many were removed.
    pub async fn vacuum(&self) -> Result<usize, SchedulerError> {
        crate::vacuum::vacuum_once(&self.state.conn, &self.state.keys).await
    }
}
