//! `PUT /v1/campaigns/<id>/calling_hours` and the validation shared with `POST /v1/campaigns`
//! (docs/calling_hours.md). The arithmetic lives in [`crate::model::Schedule`]; the tick asks it
//! on every run. A chain sleeping until a window opens would only see a change when it wakes
//! (up to an hour later), so setting or clearing the hours of a running campaign wakes its
//! chain for a tick now.

use uuid::Uuid;

use super::{Service, ServiceError, ServiceResult};
use crate::model::{CallingHours, Campaign, DomainEvent, Execute};

/// Refuses calling hours that do not validate; the 400's message names the field.
pub(crate) fn check(hours: &Option<CallingHours>) -> ServiceResult<()> {
    match hours {
        Some(h) => h.schedule().map(|_| ()).map_err(ServiceError::Invalid),
        None => Ok(()),
    }
}

impl Service {
    /// `PUT /v1/campaigns/<id>/calling_hours`: sets them, or clears them with `None`.
    pub async fn update_calling_hours(
        &self,
        id: Uuid,
        hours: Option<CallingHours>,
    ) -> ServiceResult<Campaign> {
        check(&hours)?;
        self.campaign(id).await?;
        let u = self
            .store
            .campaigns
            .update_calling_hours(id, &hours)
            .await?
            .ok_or(ServiceError::NotFound("campaign"))?;
        if u.execute == Execute::Run
            && let Err(e) = self.chains.wake_chain(id, self.delays.after_dial).await
        {
            // The chain still wakes by itself at the latest after its capped sleep.
            tracing::warn!(campaign_id = %id, error = %e, "could not wake the campaign's chain");
        }
        self.emit(DomainEvent::CampaignUpdated(u.clone())).await;
        Ok(u)
    }
}
