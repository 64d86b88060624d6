//! The two traits the domain implements: what one tick does ([`ChainRunner`]) and which ids must
//! have a live chain ([`ChainSource`]). They are kept free of Redis and apalis types so the root
//! crate depends on nothing but these signatures.

use async_trait::async_trait;
use std::time::Duration;

/// Boxed error used at the crate's trait boundaries: tower's (already here through apalis), the
/// same type as `campaign_bus::BoxError`, so the project has one.
pub use tower::BoxError;

/// What a tick asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickOutcome {
    /// Run the next tick of this chain after the given delay.
    Continue(Duration),
    /// End the chain: its state is cleared and no further tick is scheduled.
    Stop,
}

/// The identity and timing of one tick, for runners that want more than the chain id
/// (recording runners in tests and benchmarks, tracing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    /// The chain id (a campaign id for the root crate).
    pub id: String,
    /// The tick's sequence number inside its chain; unique per chain across restarts and re-seeds.
    pub seq: u64,
    /// When the tick was due, in milliseconds since the Unix epoch (Redis clock).
    pub due_at_ms: u64,
    /// When the tick was claimed, in milliseconds since the Unix epoch (Redis clock);
    /// always `>= due_at_ms`.
    pub claimed_at_ms: u64,
    /// The tick's deadline, ms since the Unix epoch (Redis clock): `claimed_at_ms + max_tick`.
    /// Its lease is not renewed past it, so the chain may then be re-seeded and run by another
    /// tick: a runner must not commit side effects after it (the campaign tick hands it to
    /// MySQL, which refuses the dial of a late tick, together with [`Tick::seq`] as a fencing
    /// token).
    pub deadline_ms: u64,
    /// The same deadline on this process' monotonic clock, for checks made without a server.
    pub deadline: std::time::Instant,
}

impl Tick {
    /// Whether the deadline has passed by this process' monotonic clock.
    pub fn expired(&self) -> bool {
        std::time::Instant::now() >= self.deadline
    }
}

/// Runs one tick of a chain. Implemented by the domain (the campaign tick).
#[async_trait]
pub trait ChainRunner: Send + Sync + 'static {
    /// Run one tick for chain `id`. Never errors: transient trouble is `Continue(longer delay)`.
    async fn tick(&self, id: &str) -> TickOutcome;

    /// Run one tick, with its sequence number and timing. The scheduler calls this; the default
    /// forwards to [`ChainRunner::tick`], so most runners implement only that.
    async fn run_tick(&self, tick: &Tick) -> TickOutcome {
        self.tick(&tick.id).await
    }
}

/// The source of truth for which chains must exist.
#[async_trait]
pub trait ChainSource: Send + Sync + 'static {
    /// Ids that must have a live chain (the source of truth, e.g. campaigns with execute=run).
    /// Used by the reconciler.
    async fn wanted(&self) -> Result<Vec<String>, BoxError>;

    /// Whether an operator switched ticking off in a store that outlives Redis (the service: a
    /// row in MySQL). Read by every worker process once per `switch_interval`; while it says so,
    /// or until it was read once, the process starts no tick and hands none to apalis (see
    /// `switch`). The default: never switched off.
    async fn switched_off(&self) -> Result<bool, BoxError> {
        Ok(false)
    }
}
