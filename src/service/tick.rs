//! One campaign tick (CONTRACT.md §10.7), returning what the chain should do next.
//!
//! Order: campaign (must be `run`) → outplan → next available target → capacity → target
//! retry interval → destination → campaigncall (`dialing`) + target progressing → dial.
//! An empty list ends an `end_handle = stop` campaign only once none of its calls is still
//! up (their targets may come back with tries left; the Go service ended early and never
//! made those retries).
//!
//! Fixed against the Go service: a transient failure (peer timeout, open breaker, database
//! error) backs off (5 s doubling to a cap) and keeps the campaign running; only what can
//! never work stops it (campaign or outplan gone, outdial gone, call campaign whose outplan
//! has no source), with the reason logged and counted in `tick_stop_total{reason}`. A failed
//! dial finishes its campaigncall as `fail` and puts the target back to `idle`: no
//! campaigncall is left `dialing` without a call behind it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use uuid::Uuid;

use super::campaigncalls::NewCampaigncall;
use super::{Service, ServiceError};
use crate::model::{
    Address, Campaign, CampaignStatus, CampaignType, CampaigncallStatus, EndHandle, Execute,
    OutdialTarget, Outplan, ReferenceType,
};
use crate::peers::{CallRequest, PeerError};

/// What the chain does after a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Run the next tick after this delay.
    Continue(Duration),
    /// End the chain.
    Stop,
}

/// Why a tick did what it did (logged, counted, and asserted by tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A dial was made.
    Dialed,
    /// Nothing to do now; try again after the wait delay.
    Waiting(&'static str),
    /// A transient failure; back off.
    Backoff(String),
    /// The chain ends (the campaign is no longer running, or can never run).
    Ended(&'static str),
}

/// Runs ticks; remembers consecutive transient failures per campaign for the back-off.
pub struct Ticker {
    service: Service,
    failures: Mutex<HashMap<Uuid, u32>>,
}

enum Fail {
    Transient(String),
    Permanent(&'static str),
}

impl From<ServiceError> for Fail {
    fn from(e: ServiceError) -> Fail {
        match e {
            ServiceError::Peer(p) => p.into(),
            other => Fail::Transient(other.to_string()),
        }
    }
}

impl From<PeerError> for Fail {
    fn from(e: PeerError) -> Fail {
        if e.is_transient() {
            Fail::Transient(e.to_string())
        } else {
            Fail::Transient(format!("peer refused: {e}"))
        }
    }
}

impl From<crate::store::StoreError> for Fail {
    fn from(e: crate::store::StoreError) -> Fail {
        Fail::Transient(e.to_string())
    }
}

/// Whether the target may be dialed now given the outplan's retry interval (ms).
pub fn target_ready(
    target: &OutdialTarget,
    try_interval_ms: i32,
    now: chrono::DateTime<Utc>,
) -> bool {
    match (target.tm_create, target.tm_update) {
        // Never tried (outdial-manager creates targets with tm_update unset or equal to tm_create).
        (None, None) | (Some(_), None) => true,
        (Some(c), Some(u)) if c == u => true,
        (_, Some(u)) => {
            u <= now - chrono::Duration::milliseconds(i64::from(try_interval_ms.max(0)))
        }
    }
}

/// The first destination with tries left: `(address, index, try_count)`.
pub fn pick_destination(target: &OutdialTarget, outplan: &Outplan) -> Option<(Address, i32, i32)> {
    let max = outplan.max_try_counts();
    target
        .destinations()
        .iter()
        .zip(max)
        .enumerate()
        .find_map(|(i, ((dest, tries), max))| match dest {
            Some(a) if *tries < max => Some(((*a).clone(), i as i32, tries + 1)),
            _ => None,
        })
}

impl Ticker {
    /// A ticker over the service.
    pub fn new(service: Service) -> Ticker {
        Ticker {
            service,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The service it runs on.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Runs one tick of campaign `id`.
    pub async fn tick(&self, id: Uuid) -> (Next, Outcome) {
        let started = Instant::now();
        let m = &self.service.metrics;
        m.campaign_execute_total.inc();
        let result = self.run(id).await;
        let delays = self.service.delays;
        let out = match result {
            Ok(outcome) => {
                self.reset_failures(id);
                let next = match &outcome {
                    Outcome::Dialed => Next::Continue(delays.after_dial),
                    Outcome::Waiting(_) => Next::Continue(delays.wait),
                    Outcome::Ended(_) | Outcome::Backoff(_) => Next::Stop,
                };
                if let Outcome::Ended(reason) = &outcome {
                    m.tick_stop_total.with_label_values(&[reason]).inc();
                    tracing::info!(campaign_id = %id, reason, "campaign chain ended");
                }
                (next, outcome)
            }
            Err(Fail::Transient(reason)) => {
                let n = self.bump_failures(id);
                let delay = delays
                    .wait
                    .saturating_mul(1 << n.min(6).saturating_sub(1))
                    .min(delays.max_backoff);
                m.tick_backoff_total.with_label_values(&["transient"]).inc();
                tracing::warn!(campaign_id = %id, failures = n, delay_ms = delay.as_millis() as u64, reason, "tick backs off");
                (Next::Continue(delay), Outcome::Backoff(reason))
            }
            Err(Fail::Permanent(reason)) => {
                self.reset_failures(id);
                m.tick_stop_total.with_label_values(&[reason]).inc();
                tracing::warn!(campaign_id = %id, reason, "campaign cannot run; stopping it");
                match self.service.end_execution(id).await {
                    Ok(()) => (Next::Stop, Outcome::Ended(reason)),
                    Err(e) => {
                        // Could not record the stop: keep the chain and try again later.
                        tracing::warn!(campaign_id = %id, error = %e, "could not stop the campaign");
                        (Next::Continue(delays.wait), Outcome::Backoff(e.to_string()))
                    }
                }
            }
        };
        m.tick_process_time
            .observe(started.elapsed().as_secs_f64() * 1000.0);
        out
    }

    fn bump_failures(&self, id: Uuid) -> u32 {
        let Ok(mut f) = self.failures.lock() else {
            return 1;
        };
        let n = f.entry(id).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    fn reset_failures(&self, id: Uuid) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(&id);
        }
    }

    async fn run(&self, id: Uuid) -> Result<Outcome, Fail> {
        let s = &self.service;
        let Some(campaign) = s.store.campaigns.get_fresh(id).await? else {
            return Ok(Outcome::Ended("campaign_gone"));
        };
        if campaign.tm_delete.is_some() {
            return Err(Fail::Permanent("campaign_deleted"));
        }
        if campaign.status != CampaignStatus::Run || campaign.execute != Execute::Run {
            s.end_execution(id).await?;
            return Ok(Outcome::Ended("not_running"));
        }
        if campaign.kind == CampaignType::Unset {
            return Err(Fail::Permanent("invalid_type"));
        }
        let outplan = match s.store.outplans.get(campaign.outplan_id).await? {
            Some(o) if o.tm_delete.is_none() => o,
            _ => return Err(Fail::Permanent("outplan_gone")),
        };
        if campaign.kind == CampaignType::Call && outplan.source.is_none() {
            return Err(Fail::Permanent("outplan_without_source"));
        }
        let targets = match s
            .peers
            .outdial
            .available_targets(campaign.outdial_id, outplan.max_try_counts(), 1)
            .await
        {
            Ok(t) => t,
            Err(e) if e.is_not_found() => return Err(Fail::Permanent("outdial_gone")),
            Err(e) => return Err(e.into()),
        };
        let Some(target) = targets.into_iter().next() else {
            // Legacy "" behaves as continue, as on the platform (only `stop` stops).
            if campaign.end_handle != EndHandle::Stop {
                return Ok(Outcome::Waiting("list_empty"));
            }
            // Targets of calls still up are hidden from "available" but may come back idle
            // with tries left: the list is only exhausted once no call is in progress.
            if s.store.campaigncalls.has_ongoing(id).await? {
                return Ok(Outcome::Waiting("calls_in_flight"));
            }
            s.end_execution(id).await?;
            return Ok(Outcome::Ended("list_exhausted"));
        };
        if !self.has_capacity(&campaign).await? {
            return Ok(Outcome::Waiting("no_capacity"));
        }
        if !target_ready(&target, outplan.try_interval, Utc::now()) {
            return Ok(Outcome::Waiting("retry_interval"));
        }
        let Some((destination, index, try_count)) = pick_destination(&target, &outplan) else {
            tracing::warn!(campaign_id = %id, target_id = %target.id, "outdial offered a target without destination tries left");
            return Ok(Outcome::Waiting("no_destination"));
        };
        match campaign.kind {
            CampaignType::Call => {
                self.dial_call(
                    &campaign,
                    &outplan,
                    target.id,
                    destination,
                    index,
                    try_count,
                )
                .await?
            }
            CampaignType::Flow => {
                self.dial_flow(
                    &campaign,
                    &outplan,
                    target.id,
                    destination,
                    index,
                    try_count,
                )
                .await?
            }
            CampaignType::Unset => return Err(Fail::Permanent("invalid_type")),
        }
        Ok(Outcome::Dialed)
    }

    /// Queue capacity: `agents × service_level / 100` must exceed the campaign's dialing calls.
    async fn has_capacity(&self, c: &Campaign) -> Result<bool, Fail> {
        if c.queue_id.is_nil() {
            return Ok(true);
        }
        let s = &self.service;
        let agents = s.peers.queue.available_agents(c.queue_id).await? as i64;
        let capacity = agents * i64::from(c.service_level) / 100;
        let dialing = s
            .store
            .campaigncalls
            .count_status(c.id, CampaigncallStatus::Dialing)
            .await?;
        Ok(capacity > dialing)
    }

    async fn dial_call(
        &self,
        c: &Campaign,
        o: &Outplan,
        target_id: Uuid,
        destination: Address,
        index: i32,
        try_count: i32,
    ) -> Result<(), Fail> {
        let s = &self.service;
        let source = o
            .source
            .clone()
            .ok_or(Fail::Permanent("outplan_without_source"))?;
        let call_id = Uuid::new_v4();
        let activeflow_id = Uuid::new_v4();
        let cc = s
            .create_campaigncall(NewCampaigncall {
                campaign: c,
                outplan: o,
                target_id,
                destination: destination.clone(),
                destination_index: index,
                try_count,
                reference_type: ReferenceType::Call,
                reference_id: call_id,
                activeflow_id,
            })
            .await?;
        let call = CallRequest {
            call_id,
            customer_id: c.customer_id,
            flow_id: c.flow_id,
            activeflow_id,
            source,
            destination,
        };
        if let Err(e) = s.peers.call.create_call(&call).await {
            tracing::warn!(campaign_id = %c.id, campaigncall_id = %cc.id, error = %e, "dial failed");
            s.abandon_campaigncall(cc.id).await?;
            return Err(e.into());
        }
        Ok(())
    }

    async fn dial_flow(
        &self,
        c: &Campaign,
        o: &Outplan,
        target_id: Uuid,
        destination: Address,
        index: i32,
        try_count: i32,
    ) -> Result<(), Fail> {
        let s = &self.service;
        let activeflow_id = Uuid::new_v4();
        let cc = s
            .create_campaigncall(NewCampaigncall {
                campaign: c,
                outplan: o,
                target_id,
                destination,
                destination_index: index,
                try_count,
                reference_type: ReferenceType::Flow,
                reference_id: Uuid::nil(),
                activeflow_id,
            })
            .await?;
        let started = async {
            s.campaigncall_progressing(cc.id).await?;
            s.peers
                .flow
                .create_activeflow(activeflow_id, c.customer_id, c.flow_id, cc.id)
                .await?;
            s.peers.flow.execute_activeflow(activeflow_id).await?;
            Ok::<(), ServiceError>(())
        }
        .await;
        if let Err(e) = started {
            tracing::warn!(campaign_id = %c.id, campaigncall_id = %cc.id, error = %e, "flow start failed");
            s.abandon_campaigncall(cc.id).await?;
            return Err(e.into());
        }
        Ok(())
    }
}
