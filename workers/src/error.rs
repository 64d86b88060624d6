//! The crate's one error type. Redis and apalis errors are kept as sources; callers mostly log
//! them, so the variants say which part failed rather than mirroring every backend error.

/// Errors returned by [`Chains`](crate::Chains) and [`run_workers`](crate::run_workers).
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// Redis could not be reached or a command/script failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// apalis-redis reported an error (pushing jobs, worker registration).
    #[error("apalis-redis: {0}")]
    Apalis(#[from] apalis_redis::Error),
    /// A Lua script answered something this crate does not understand.
    #[error("unexpected reply from {script}: {detail}")]
    Protocol {
        /// Which script or command answered.
        script: &'static str,
        /// What was wrong with the answer.
        detail: String,
    },
    /// A batched script call failed; every request of its batch gets this.
    #[error("{script} (batched): {detail}")]
    Batch {
        /// Which batched call failed.
        script: &'static str,
        /// The failure, as text (one failure answers many requests).
        detail: String,
    },
    /// Metrics could not be registered (e.g. registered twice in one registry).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The configuration cannot work (e.g. zero concurrency).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Encoding a job payload failed.
    #[error("job payload: {0}")]
    Payload(#[from] serde_json::Error),
}
