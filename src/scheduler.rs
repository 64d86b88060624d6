//! Glue between the campaign domain and the generic chain scheduler (`campaign-workers`):
//! the campaign tick is the chain runner, campaigns with `execute = run` are the chains the
//! reconciler keeps alive, and the service starts chains through [`ChainControl`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use campaign_workers::{BoxError, ChainRunner, ChainSource, Chains, TickOutcome};
use uuid::Uuid;

use crate::service::ChainControl;
use crate::service::tick::{Next, Ticker};
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
}

/// Runs campaign ticks for the scheduler.
pub struct CampaignRunner(pub Arc<Ticker>);

#[async_trait]
impl ChainRunner for CampaignRunner {
    async fn tick(&self, id: &str) -> TickOutcome {
        let Ok(campaign_id) = Uuid::parse_str(id) else {
            tracing::warn!(chain = id, "chain id is not a campaign id; ending it");
            return TickOutcome::Stop;
        };
        match self.0.tick(campaign_id).await.0 {
            Next::Continue(d) => TickOutcome::Continue(d),
            Next::Stop => TickOutcome::Stop,
        }
    }
}

/// The campaigns that must have a chain: `execute = run`, not deleted.
pub struct ExecutingCampaigns(pub Store);

#[async_trait]
impl ChainSource for ExecutingCampaigns {
    async fn wanted(&self) -> Result<Vec<String>, BoxError> {
        let ids = self.0.campaigns.ids_executing().await?;
        Ok(ids.into_iter().map(|id| id.to_string()).collect())
    }
}
