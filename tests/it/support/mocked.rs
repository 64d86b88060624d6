//! The service with mocked peers: a `Service` over a fresh MariaDB/Redis test store, the peer
//! managers as mockall mocks the test configures first, and recorders for the events it
//! publishes and the tick chains it starts. The tick, repair, pacing, calling-hours and
//! service-rule tests all start from this one fixture and add their own helpers around it.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use campaign_manager::metrics::Metrics;
use campaign_manager::model::{
    Campaign, CampaignStatus, CampaignType, Campaigncall, CampaigncallStatus, Execute, Outplan,
};
use campaign_manager::service::tick::{Fence, Ticker};
use campaign_manager::service::{Delays, RecordingChains, RecordingEvents, Service};
use chrono::{Duration as ChronoDuration, Utc};
use uuid::Uuid;

use super::TestStore;
use super::mocks::Mocks;
use super::records;

/// A service over a fresh test store and the given mocks, with what it publishes recorded.
pub struct Mocked {
    /// The test's own database and key prefix.
    pub ts: TestStore,
    /// The service under test.
    pub service: Service,
    /// The events the service published.
    pub notifier: Arc<RecordingEvents>,
    /// The tick chains the service started.
    pub chains: Arc<RecordingChains>,
    /// The service's metrics (a registry of its own).
    pub metrics: Metrics,
}

impl Mocked {
    /// The service over a fresh store, talking to the peers through `m`.
    pub async fn new(m: Mocks) -> Mocked {
        Mocked::over(TestStore::new().await, m)
    }

    /// The service over `ts`, talking to the peers through `m`.
    pub fn over(ts: TestStore, m: Mocks) -> Mocked {
        let notifier = Arc::new(RecordingEvents::default());
        let chains = Arc::new(RecordingChains::default());
        let metrics = Metrics::standalone();
        let service = Service::new(
            ts.store.clone(),
            m.into_peers(),
            notifier.clone(),
            chains.clone(),
            metrics.clone(),
            Delays::default(),
        );
        Mocked {
            ts,
            service,
            notifier,
            chains,
            metrics,
        }
    }

    /// The service with a stored outplan ([`records::outplan`]) and a stored running call
    /// campaign over it ([`records::campaign_row`] with `run`/`run`, no queue), changed by
    /// `tweak` before it is stored.
    pub async fn with_running_call(
        m: Mocks,
        tweak: impl FnOnce(&mut Campaign),
    ) -> (Mocked, Campaign) {
        let mocked = Mocked::new(m).await;
        let customer = Uuid::new_v4();
        let outplan = mocked.insert_outplan(&records::outplan(customer)).await;
        let mut c = records::campaign_row(customer);
        c.outplan_id = outplan.id;
        c.kind = CampaignType::Call;
        c.status = CampaignStatus::Run;
        c.execute = Execute::Run;
        c.queue_id = Uuid::nil();
        tweak(&mut c);
        let campaign = mocked.insert_campaign(&c).await;
        (mocked, campaign)
    }

    /// A ticker running this service's ticks.
    pub fn ticker(&self) -> Ticker {
        Ticker::new(self.service.clone())
    }

    /// Stores `o` as given.
    pub async fn insert_outplan(&self, o: &Outplan) -> Outplan {
        self.ts.store.outplans.create(o).await.expect("outplan")
    }

    /// Stores `c` as given.
    pub async fn insert_campaign(&self, c: &Campaign) -> Campaign {
        self.ts.store.campaigns.create(c).await.expect("campaign")
    }

    /// Stores a campaigncall of `c` in `status` for a new target ([`records::campaigncall_of`]).
    pub async fn insert_call(&self, c: &Campaign, status: CampaigncallStatus) -> Campaigncall {
        let cc = records::campaigncall_of(c, status);
        self.ts
            .store
            .campaigncalls
            .create(&cc)
            .await
            .expect("campaigncall")
    }

    /// The campaign as MySQL holds it, if it exists (not deleted).
    pub async fn row(&self, id: Uuid) -> Option<Campaign> {
        self.ts
            .store
            .campaigns
            .get_fresh(id)
            .await
            .expect("read campaign")
    }

    /// The campaign as MySQL holds it; it must exist.
    pub async fn campaign(&self, id: Uuid) -> Campaign {
        self.row(id).await.expect("campaign exists")
    }

    /// The types of the events published so far, in order.
    pub fn events(&self) -> Vec<String> {
        self.notifier.types()
    }
}

/// A fence newer than any issued before in this process (sequence numbers from the clock in
/// microseconds, as the scheduler's), with 30 s to run.
pub fn fresh_fence() -> Fence {
    let seq = u64::try_from(Utc::now().timestamp_micros()).unwrap_or(0);
    Fence {
        seq,
        deadline: Utc::now() + ChronoDuration::seconds(30),
        local_deadline: Instant::now() + Duration::from_secs(30),
    }
}
