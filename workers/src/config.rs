//! Scheduler settings. One struct with production defaults; tests override a few fields
//! (namespace above all, so parallel tests never share keys).

use std::time::Duration;

/// Settings for [`Chains`](crate::Chains) and [`run_workers`](crate::run_workers).
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Redis URL, e.g. `redis://127.0.0.1:6379`. Unused when `cluster_nodes` is set.
    pub redis_url: String,
    /// Seed node URLs of a Redis Cluster (`redis://host:port`, any reachable node will do); when
    /// not empty the scheduler runs on that cluster instead of `redis_url` (see
    /// [`SchedulerConfig::shard_configs`] for where the keys go).
    pub cluster_nodes: Vec<String>,
    /// Key prefix for the chain state and the apalis queue name. Everything this crate (and the
    /// apalis queue it uses) stores lives under `"{namespace}:"`.
    pub namespace: String,
    /// Shards the chains are spread over; see [`SchedulerConfig::shard_configs`]. 1 (the default)
    /// keeps every key under `namespace` exactly as before shards existed.
    pub shards: usize,
    /// Ticks one process runs at once (claimed and inside the runner).
    pub concurrency: usize,
    /// apalis jobs one process holds while their ticks wait for their due time (they are handed
    /// over up to `lead` early), on top of the running ticks. A job holds up to `ticks_per_job`
    /// ticks. Should cover `tick rate × lead`; a process at
    /// the limit stops fetching, leaving ticks to other processes.
    pub max_waiting: usize,
    /// How often an idle apalis worker polls Redis for jobs (DESIGN: 5-10 ms works, 0-2 ms stalls).
    pub poll_interval: Duration,
    /// Shortest pause between two feeder steps (unless a step filled a whole `feed_batch`).
    /// The feeder sleeps until the earliest pending tick is `lead` from due, or a wake notice
    /// (see `wake`) arrives, but never longer than `idle_poll_interval`.
    pub feed_interval: Duration,
    /// Longest the feeder and the apalis fetch sleep when nothing is due and no wake notice
    /// came: the safety net for a lost notice. The apalis fetch polls every `poll_interval`
    /// while it finds jobs and slows down to this when it finds none.
    pub idle_poll_interval: Duration,
    /// How long before its due time a tick is handed to apalis. The worker then waits in the
    /// handler until the tick is due, which keeps lateness small despite apalis' whole-second
    /// schedule and its polling.
    pub lead: Duration,
    /// Most ticks handed to apalis in one feeder step.
    pub feed_batch: usize,
    /// Most ticks the feeder puts into one apalis job. Ticks taken together (due within the
    /// same `lead`) share a job, so apalis' own per-job bookkeeping (~10 Redis commands: payload,
    /// metadata, queue, in-flight and done sets) is paid per group rather than per tick; the
    /// worker runs each tick of a job on its own, with its own wait, claim and finish, exactly
    /// as a job of one. 1: one job per tick.
    pub ticks_per_job: usize,
    /// Most jobs allowed inside the apalis queue (scheduled + active, not yet fetched). apalis-redis
    /// fails with more than ~8,000 jobs due at once, so this must stay well below that.
    pub max_queued: usize,
    /// How long a chain's tick may sit in apalis past its due time, or run without its lease
    /// being renewed, before the chain counts as lost and the reconciler re-seeds it. Must exceed
    /// the shortest tick cadence. Running ticks are renewed every `lease / 3`.
    pub lease: Duration,
    /// Longest a tick may run. Past it its lease is no longer renewed (so a hung tick's chain is
    /// re-seeded within one more `lease`), and [`Tick::deadline_ms`](crate::Tick) tells the runner
    /// that its remaining writes must be refused.
    pub max_tick: Duration,
    /// How often the reconciler compares chains with [`ChainSource::wanted`](crate::ChainSource)
    /// and the cluster-wide gauges are read, while some chain is live or wanted.
    pub reconcile_interval: Duration,
    /// The same while no chain is live and none was wanted at the last reconciliation (a wake
    /// notice brings the next pass forward).
    pub quiet_reconcile_interval: Duration,
    /// Re-seeded chains get their first tick spread over this window, so a flushed Redis does not
    /// make every chain due in the same millisecond.
    pub reseed_spread: Duration,
    /// How often finished apalis jobs are removed from Redis.
    pub vacuum_interval: Duration,
    /// How long [`run_workers`](crate::run_workers) waits for running ticks after shutdown.
    pub shutdown_timeout: Duration,
    /// apalis worker heartbeat; a worker missing `missed_heartbeats` of them counts as dead and
    /// its jobs are re-queued by the others.
    pub heartbeat_interval: Duration,
    /// See `heartbeat_interval`.
    pub missed_heartbeats: usize,
    /// How long a worker process that has not read the namespace's pause state yet waits, when
    /// it finds none (a brand-new namespace, or one wiped while no worker ran), for a process that
    /// remembers it to restore it, before declaring the cluster not paused. No tick is handed to
    /// apalis meanwhile. The module doc of `feeder` has the details.
    pub unknown_pause_grace: Duration,
    /// How often a worker process reads [`ChainSource::switched_off`](crate::ChainSource), the
    /// durable off switch.
    pub switch_interval: Duration,
    /// Unique name of this process' apalis worker; default `host-pid-random`.
    pub worker_name: Option<String>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            cluster_nodes: Vec::new(),
            namespace: "campaign-manager:ticks".to_owned(),
            shards: 1,
            concurrency: 500,
            max_waiting: 2000,
            poll_interval: Duration::from_millis(5),
            feed_interval: Duration::from_millis(10),
            idle_poll_interval: Duration::from_secs(1),
            lead: Duration::from_millis(150),
            feed_batch: 500,
            ticks_per_job: 32,
            max_queued: 2000,
            lease: Duration::from_secs(3),
            max_tick: Duration::from_secs(30),
            reconcile_interval: Duration::from_secs(2),
            quiet_reconcile_interval: Duration::from_secs(30),
            reseed_spread: Duration::from_millis(500),
            vacuum_interval: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(1),
            missed_heartbeats: 3,
            unknown_pause_grace: Duration::from_millis(500),
            switch_interval: Duration::from_secs(1),
            worker_name: None,
        }
    }
}

impl SchedulerConfig {
    /// A default configuration for `namespace` on `redis_url`.
    pub fn new(redis_url: impl Into<String>, namespace: impl Into<String>) -> Self {
        Self {
            redis_url: redis_url.into(),
            namespace: namespace.into(),
            ..Self::default()
        }
    }

    /// Rejects settings that cannot work.
    pub(crate) fn validate(&self) -> Result<(), crate::SchedulerError> {
        let fail = |m: &str| Err(crate::SchedulerError::Config(m.to_owned()));
        if self.namespace.is_empty() {
            return fail("namespace must not be empty");
        }
        if self.shards == 0 || self.shards > 1024 {
            return fail("shards must be between 1 and 1024");
        }
        if self.concurrency == 0 {
            return fail("concurrency must be at least 1");
        }
        if self.concurrency + self.max_waiting > 7000 {
            // apalis re-queues a dead worker's in-flight jobs with one `unpack` (~8,000 max).
            return fail("concurrency + max_waiting must stay below 7000");
        }
        if self.feed_batch == 0 || self.max_queued == 0 {
            return fail("feed_batch and max_queued must be at least 1");
        }
        if self.ticks_per_job == 0 || self.ticks_per_job > 500 {
            return fail("ticks_per_job must be between 1 and 500");
        }
        if self.max_queued > 7000 {
            return fail("max_queued above 7000 risks apalis-redis' unpack limit (~8000)");
        }
        if self.lease < Duration::from_millis(100) {
            return fail("lease must be at least 100 ms");
        }
        if self.max_tick < self.lease {
            return fail("max_tick must be at least one lease");
        }
        if self.poll_interval.is_zero() || self.feed_interval.is_zero() {
            return fail("poll_interval and feed_interval must be non-zero");
        }
        if self.heartbeat_interval < Duration::from_secs(1) {
            // apalis-redis stores heartbeats in whole seconds.
            return fail("heartbeat_interval must be at least 1 s");
        }
        Ok(())
    }

    /// One configuration per shard, each with its own namespace: with one shard on a single
    /// Redis, `namespace` itself; with K > 1 shards, or on a cluster, `{namespace:0}` ..
    /// `{namespace:K-1}`. The braces are a Redis Cluster hash tag: every key of a shard (its chain
    /// state and its apalis queue) hashes to one slot, so each multi-key script touches one slot,
    /// and different shards land on different slots (and so on different nodes of a cluster). A
    /// single shard whose namespace already carries a tag (`{campaign-manager:ticks}`) keeps it.
    /// Each shard is run like a namespace of its own ([`run_workers`](crate::run_workers),
    /// [`Chains`](crate::Chains)), with the chains whose [`shard_of`](Self::shard_of) is its index.
    pub fn shard_configs(&self) -> Vec<SchedulerConfig> {
        let tagged = self.namespace.contains('{') && self.namespace.contains('}');
        if self.shards <= 1 && (self.cluster_nodes.is_empty() || tagged) {
            return vec![SchedulerConfig {
                shards: 1,
                ..self.clone()
            }];
        }
        (0..self.shards.max(1))
            .map(|i| SchedulerConfig {
                namespace: format!("{{{}:{i}}}", self.namespace),
                shards: 1,
                ..self.clone()
            })
            .collect()
    }

    /// The shard chain `id` belongs to: FNV-1a of the id modulo `shards`, so every process (and
    /// every version) agrees without asking Redis.
    pub fn shard_of(&self, id: &str) -> usize {
        if self.shards <= 1 {
            return 0;
        }
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in id.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        usize::try_from(hash % self.shards as u64).unwrap_or(0)
    }

    /// `idle_poll_interval`, never shorter than the busy intervals it relaxes.
    pub(crate) fn idle_poll(&self) -> Duration {
        self.idle_poll_interval
            .max(self.poll_interval)
            .max(self.feed_interval)
    }

    /// `quiet_reconcile_interval`, never shorter than `reconcile_interval`.
    pub(crate) fn quiet_reconcile(&self) -> Duration {
        self.quiet_reconcile_interval.max(self.reconcile_interval)
    }

    /// Jobs one apalis worker holds at once: the running ticks plus the waiting ones.
    pub(crate) fn jobs_in_flight(&self) -> usize {
        self.concurrency + self.max_waiting
    }

    /// The apalis fetch batch. apalis' event channel holds `4 × batch` completions; a graceful
    /// stop only drains it after every in-flight job finished, so it must hold all of them or the
    /// stop deadlocks (DESIGN §3: "a graceful stop ... hung").
    pub(crate) fn fetch_batch(&self) -> usize {
        self.jobs_in_flight().div_ceil(2).clamp(16, 2000)
    }

    /// The `worker_name` or a fresh `host-pid-random` name.
    pub(crate) fn base_worker_name(&self) -> String {
        if let Some(name) = &self.worker_name {
            return name.clone();
        }
        let host = hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "host".to_owned());
        format!(
            "{host}-{}-{:06x}",
            std::process::id(),
            rand::random::<u32>() & 0xff_ffff
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shard_keeps_the_namespace_as_it_was() {
        let cfg = SchedulerConfig::new("redis://x", "campaign-manager:ticks");
        let shards = cfg.shard_configs();
        assert_eq!(shards.len(), 1);
        assert_eq!(shards[0].namespace, "campaign-manager:ticks");
        assert_eq!(cfg.shard_of("any"), 0);
    }

    #[test]
    fn on_a_cluster_one_shard_gets_a_hash_tag_unless_it_has_one() {
        let cfg = SchedulerConfig {
            cluster_nodes: vec!["redis://n1:7000".into()],
            ..SchedulerConfig::new("", "cm:ticks")
        };
        let names = |c: &SchedulerConfig| -> Vec<String> {
            c.shard_configs().into_iter().map(|c| c.namespace).collect()
        };
        assert_eq!(names(&cfg), ["{cm:ticks:0}"]);
        let tagged = SchedulerConfig {
            namespace: "{cm:ticks}".into(),
            ..cfg.clone()
        };
        assert_eq!(names(&tagged), ["{cm:ticks}"]);
        let three = SchedulerConfig { shards: 3, ..cfg };
        assert_eq!(
            names(&three),
            ["{cm:ticks:0}", "{cm:ticks:1}", "{cm:ticks:2}"]
        );
    }

    #[test]
    fn shards_get_hash_tagged_namespaces_and_ids_spread_over_them() {
        let cfg = SchedulerConfig {
            shards: 3,
            ..SchedulerConfig::new("redis://x", "cm:ticks")
        };
        let names: Vec<String> = cfg
            .shard_configs()
            .into_iter()
            .map(|c| c.namespace)
            .collect();
        assert_eq!(names, ["{cm:ticks:0}", "{cm:ticks:1}", "{cm:ticks:2}"]);
        let mut per_shard = [0usize; 3];
        for i in 0..3000 {
            per_shard[cfg.shard_of(&format!("campaign-{i}"))] += 1;
        }
        assert!(per_shard.iter().all(|n| *n > 800), "{per_shard:?}");
        // Stable: the same id always maps to the same shard (FNV-1a of "a" is 0xaf63dc4c8601ec8c).
        assert_eq!(cfg.shard_of("a"), (0xaf63_dc4c_8601_ec8c_u64 % 3) as usize);
        assert!(
            SchedulerConfig {
                shards: 0,
                ..cfg.clone()
            }
            .validate()
            .is_err()
        );
    }
}
