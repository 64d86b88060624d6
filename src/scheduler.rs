//! Glue between the campaign domain and the generic chain scheduler (`campaign-workers`):
//! the campaign tick is the chain runner, campaigns with `execute = run` are the chains the
//! reconciler keeps alive, the tick namespace's row in `campaign_tick_switches` is the durable
//! off switch every worker reads, and the service starts chains through [`ChainControl`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use campaign_workers::{BoxError, ChainRunner, ChainSource, Chains, Tick, TickOutcome};
use uuid::Uuid;

use crate::service::ChainControl;
use crate::service::tick::{Fence, Next, Ticker};
use crate::store::Store;

/// Starts chains through the scheduler's Redis state.
pub struct SchedulerChains(pub Chains);

#[async_trait]
impl ChainControl for SchedulerChains {
    async fn start_chain(&self, campaign_id: Uuid, delay: Duration) -> Result<bool, String> {
        self.0
            .start(&campaign_id.to_string(), delay)
            .await
            .map_err(|e| e.to_string())
    }

    async fn wake_chain(&self, campaign_id: Uuid, delay: Duration) -> Result<bool, String> {
        let id = campaign_id.to_string();
        self.0.stop(&id).await.map_err(|e| e.to_string())?;
        self.0.start(&id, delay).await.map_err(|e| e.to_string())
    }
}

/// Runs campaign ticks for the scheduler. The chain's sequence number and deadline become the
/// tick's [`Fence`], checked in the transaction that records a dial.
pub struct CampaignRunner(pub Arc<Ticker>);

#[async_trait]
impl ChainRunner for CampaignRunner {
    async fn tick(&self, id: &str) -> TickOutcome {
        // The scheduler always calls `run_tick`; a tick without its identity cannot be fenced.
        tracing::error!(chain = id, "unfenced tick refused");
        TickOutcome::Continue(self.0.service().delays().wait)
    }

    async fn run_tick(&self, tick: &Tick) -> TickOutcome {
        let Ok(campaign_id) = Uuid::parse_str(&tick.id) else {
            tracing::warn!(chain = %tick.id, "chain id is not a campaign id; ending it");
            return TickOutcome::Stop;
        };
        // The deadline on this process' clocks only (the record uses the time left until it;
        // Redis' clock, which set it, is compared with nothing here).
        let left = tick
            .deadline
            .saturating_duration_since(std::time::Instant::now());
        let fence = Fence {
            seq: tick.seq,
            deadline: chrono::TimeDelta::from_std(left)
                .ok()
                .and_then(|left| chrono::Utc::now().checked_add_signed(left))
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC),
            local_deadline: tick.deadline,
        };
        match self.0.tick(campaign_id, &fence).await.0 {
            Next::Continue(d) => TickOutcome::Continue(d),
            Next::Stop => TickOutcome::Stop,
        }
    }
}

/// The campaigns that must have a chain (`execute = run`, not deleted), and the durable off
/// switch of the tick namespace they run in.
pub struct ExecutingCampaigns {
    /// Where campaigns and switches are.
    pub store: Store,
    /// The tick namespace (`--tick_namespace`), the switch's key.
    pub namespace: String,
}

#[async_trait]
impl ChainSource for ExecutingCampaigns {
    async fn wanted(&self) -> Result<Vec<String>, BoxError> {
        let ids = self.store.campaigns.ids_executing().await?;
        Ok(ids.into_iter().map(|id| id.to_string()).collect())
    }

    async fn switched_off(&self) -> Result<bool, BoxError> {
        Ok(self.store.tick_switch.is_off(&self.namespace).await?)
    }
}
