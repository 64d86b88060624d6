//! `PUT /v1/campaigns/<id>/pacing` (docs/pacing.md). The field validates while it is parsed
//! ([`crate::model::Pacing`]), so this only stores it and tells subscribers. The tick reads it
//! on every run: a lowered cap takes effect at the next tick, a new rate after the next dial.
//! The chain is not woken: waking it early could run a dial sooner than the old rate allows.

use uuid::Uuid;

use super::{Service, ServiceError, ServiceResult};
use crate::model::{Campaign, DomainEvent, Pacing};

/// Refuses pacing that does not validate (values built in code, not parsed).
pub(crate) fn check(pacing: &Option<Pacing>) -> ServiceResult<()> {
    match pacing {
        Some(p) => p.validate().map_err(ServiceError::Invalid),
        None => Ok(()),
    }
}

impl Service {
    /// `PUT /v1/campaigns/<id>/pacing`: sets it, or clears it with `None`.
    pub async fn update_pacing(&self, id: Uuid, pacing: Option<Pacing>) -> ServiceResult<Campaign> {
        check(&pacing)?;
        self.campaign(id).await?;
        let u = self
            .store
            .campaigns
            .update_pacing(id, &pacing)
            .await?
            .ok_or(ServiceError::NotFound("campaign"))?;
        self.emit(DomainEvent::CampaignUpdated(u.clone())).await;
        Ok(u)
    }
}
