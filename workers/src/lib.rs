//! `campaign-workers`: durable chains of ticks keyed by an id, run by apalis-redis workers.
//!
//! This crate owns the *tick chain* of DESIGN §3 and nothing of campaigns: the domain implements
//! [`ChainRunner`] (what one tick does) and [`ChainSource`] (which ids must have a live chain),
//! and this crate guarantees, on top of an at-least-once queue:
//!
//! * at most one live chain per id, and a tick (`id`, `seq`) runs at most once
//!   (claim-first compare-and-set in Redis, see [`chain_state`](crate::chain_state));
//! * no tick starts before it is due (the claim refuses early ticks against the Redis clock);
//! * a lost chain (worker killed, Redis flushed, job lost) is re-seeded within a few seconds
//!   (leases + [`reconciler`](crate::reconciler));
//! * no more than a bounded number of jobs is ever due at once inside apalis-redis
//!   (the [`feeder`](crate::feeder) hands ticks over in slices, shortly before they are due);
//! * a paused cluster stays paused when its namespace is wiped, as long as one worker process
//!   lives through the wipe (the feeder restores the pause state it last read); and whatever
//!   happens to Redis while the embedding application's durable off switch
//!   ([`ChainSource::switched_off`]) is set, or before a process has read it (`switch`).
//!
//! The per-tick Redis calls (claim, finish) of a process are sent in batches, one script call
//! per batch (see `batcher`), which keeps Redis round trips per tick far below one under load.
//! Chains can be split over shards whose keys each sit in one Redis Cluster slot
//! ([`SchedulerConfig::shard_configs`]).
//!
//! Entry points: [`Chains`] (a cheap handle for the API side and the operator CLI) and
//! [`run_workers`] (worker tasks until shutdown; [`run_workers_reporting`] also keeps a
//! [`WorkerHealth`] up to date for a readiness probe).

mod batcher;
mod chain_state;
mod chains;
mod config;
mod error;
mod feeder;
mod health;
mod keys;
mod lease_keeper;
mod maintenance;
mod metrics;
mod permits;
mod reconciler;
mod redis_conn;
mod runner;
mod stats;
mod switch;
mod tick_job;
mod vacuum;
mod wake;
mod workers;

pub use chains::Chains;
pub use config::SchedulerConfig;
pub use error::SchedulerError;
pub use health::{STALL_GRACE, WorkerHealth};
pub use runner::{BoxError, ChainRunner, ChainSource, Tick, TickOutcome};
pub use stats::{Stats, WorkerBeat};
pub use workers::{run_workers, run_workers_reporting};
