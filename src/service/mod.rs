//! The business rules (docs/contract.md#campaign-lifecycle; fixes: docs/go-differences.md): outplans,
//! campaigns and their status machine, campaigncalls, and the campaign tick.
//!
//! The service talks to the outside only through traits: [`Peers`](crate::peers::Peers) for
//! other managers, [`EventSink`] for the domain events it emits, [`ChainControl`] for the tick
//! scheduler. That keeps it free of AMQP and apalis and testable with mocks. Its fields are
//! private: the layers above (api, events, scheduler) reach the store only through its methods.

mod callbacks;
mod calling_hours;
mod campaign_cache;
mod campaigncalls;
mod campaigns;
mod customer_limits;
mod error;
mod event_sink;
mod flow_reconcile;
mod outbox;
mod outplans;
mod pacing;
mod repair;
mod resources;
mod retry_rules;
mod sequence;
mod stats;
mod suppressions;
pub mod tick;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::peers::Peers;
use crate::store::Store;

pub use crate::model::{
    CampaignCreate, CampaignUpdate, OutplanCreate, OutplanDials, OutplanUpdate,
};
pub use callbacks::{DUE_PER_TICK, DueCallbacks};
pub use campaign_cache::{Changed, SAFETY_TTL, TickCache};
pub use campaigncalls::hangup_result;
pub use error::{ServiceError, ServiceResult};
pub use event_sink::{EventSink, RecordingEvents};
pub use flow_reconcile::{DEFAULT_RECENT_INTERVAL, ReconcileLimits};
pub use repair::{RepairReport, RepairSettings, run_repair};
pub use suppressions::SuppressionQuery;

/// Refuses text that does not fit its column: `name` is `VARCHAR(255)` (characters),
/// `detail` is `TEXT` (65,535 bytes).
pub(crate) fn check_text(name: &str, detail: &str) -> ServiceResult<()> {
    if name.chars().count() > 255 {
        return Err(ServiceError::Invalid(
            "name is longer than 255 characters".into(),
        ));
    }
    if detail.len() > 65_535 {
        return Err(ServiceError::Invalid(
            "detail is longer than 65,535 bytes".into(),
        ));
    }
    Ok(())
}

/// Starts and ends tick chains (implemented by the apalis-redis scheduler).
#[async_trait]
pub trait ChainControl: Send + Sync {
    /// Makes sure a chain runs for the campaign, first tick after `delay`; does nothing if
    /// one is live. Returns whether it started one.
    async fn start_chain(&self, campaign_id: Uuid, delay: Duration) -> Result<bool, String>;

    /// Makes the campaign's next tick come after `delay` even if its chain is live and
    /// sleeping (outside calling hours, until a window opens): the live chain is replaced by
    /// a new one (its pending tick becomes stale; dials stay fenced). By default the same as
    /// [`start_chain`](ChainControl::start_chain).
    async fn wake_chain(&self, campaign_id: Uuid, delay: Duration) -> Result<bool, String> {
        self.start_chain(campaign_id, delay).await
    }
}

/// A [`ChainControl`] that only records the calls (for tests and for processes that run no
/// scheduler: the reconciler of any worker process seeds chains from MySQL anyway).
#[derive(Default)]
pub struct RecordingChains {
    /// Every `start_chain` call.
    pub started: std::sync::Mutex<Vec<(Uuid, Duration)>>,
}

#[async_trait]
impl ChainControl for RecordingChains {
    async fn start_chain(&self, campaign_id: Uuid, delay: Duration) -> Result<bool, String> {
        if let Ok(mut s) = self.started.lock() {
            s.push((campaign_id, delay));
        }
        Ok(true)
    }
}

/// Tick delays (docs/contract.md#campaign-lifecycle; the platform's values are the defaults).
#[derive(Debug, Clone, Copy)]
pub struct Delays {
    /// First tick after `run`.
    pub first: Duration,
    /// After a dial.
    pub after_dial: Duration,
    /// When waiting (no capacity, target in its retry interval, empty list with continue).
    pub wait: Duration,
    /// Longest back-off after repeated transient failures.
    pub max_backoff: Duration,
}

impl Default for Delays {
    fn default() -> Self {
        Delays {
            first: Duration::from_millis(1000),
            after_dial: Duration::from_millis(500),
            wait: Duration::from_millis(5000),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// The service: every business operation hangs off this.
#[derive(Clone)]
pub struct Service {
    /// Storage.
    store: Store,
    /// Other managers.
    peers: Peers,
    /// Where domain events go.
    events: Arc<dyn EventSink>,
    /// Tick chains.
    chains: Arc<dyn ChainControl>,
    /// Metrics.
    metrics: Metrics,
    /// Tick delays.
    delays: Delays,
}

impl Service {
    /// The service over its storage, peers, event sink and tick chains.
    pub fn new(
        store: Store,
        peers: Peers,
        events: Arc<dyn EventSink>,
        chains: Arc<dyn ChainControl>,
        metrics: Metrics,
        delays: Delays,
    ) -> Service {
        Service {
            store,
            peers,
            events,
            chains,
            metrics,
            delays,
        }
    }

    /// The process's metrics (the api and the event handlers record their timings here).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The tick delays.
    pub fn delays(&self) -> Delays {
        self.delays
    }
}
