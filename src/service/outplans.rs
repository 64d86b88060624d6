//! Outplans: dial settings CRUD. Unlike the Go service, outplan changes publish
//! `outplan_created/updated/deleted`, and values that cannot work (negative intervals or
//! try counts, a retry rule for an unknown hangup reason or with a negative delay) are refused.
//! The retry settings (`retry_rules`, `min_talk_ms`, docs/contact-strategy.md) are written on
//! create and by `PUT .../dials` only when the body has them.

use serde_json::Value;
use uuid::Uuid;

use super::{Service, ServiceError, ServiceResult};
use crate::model::{
    DomainEvent, Outplan, OutplanCreate, OutplanDials, OutplanUpdate, check_min_talk_ms,
};
use crate::store::{Deletion, Dials, Filters, Page, RetryUpdate};

/// The retry settings of a request, checked (each message names its field).
fn checked_retry(req: &OutplanDials) -> ServiceResult<RetryUpdate> {
    if let Some(Some(rules)) = &req.retry_rules {
        rules.check().map_err(ServiceError::Invalid)?;
    }
    if let Some(Some(min)) = req.min_talk_ms {
        check_min_talk_ms(min).map_err(ServiceError::Invalid)?;
    }
    Ok(RetryUpdate {
        // An empty object is no rule at all: stored as NULL.
        retry_rules: req
            .retry_rules
            .clone()
            .map(|r| r.filter(|r| !r.0.is_empty())),
        min_talk_ms: req.min_talk_ms,
    })
}

/// The dial settings of a request, checked: negative times or try counts cannot work.
fn checked_dials(req: OutplanDials) -> ServiceResult<Dials> {
    let max = req.max_try_counts();
    for (name, v) in [
        ("dial_timeout", req.dial_timeout),
        ("try_interval", req.try_interval),
    ] {
        if v < 0 {
            return Err(ServiceError::Invalid(format!(
                "{name} must not be negative, got {v}"
            )));
        }
    }
    if let Some((i, v)) = max.iter().enumerate().find(|(_, v)| **v < 0) {
        return Err(ServiceError::Invalid(format!(
            "max_try_count_{i} must not be negative, got {v}"
        )));
    }
    Ok(Dials {
        source: req.source,
        dial_timeout: req.dial_timeout,
        try_interval: req.try_interval,
        max_try_counts: max,
    })
}

impl Service {
    /// `POST /v1/outplans` (the id is always generated).
    pub async fn create_outplan(&self, req: OutplanCreate) -> ServiceResult<Outplan> {
        if req.customer_id.is_nil() {
            return Err(ServiceError::Invalid("customer_id is required".into()));
        }
        super::check_text(&req.name, &req.detail)?;
        let retry = checked_retry(&req.dials)?;
        let d = checked_dials(req.dials)?;
        let [m0, m1, m2, m3, m4] = d.max_try_counts;
        let o = Outplan {
            id: Uuid::new_v4(),
            customer_id: req.customer_id,
            name: req.name,
            detail: req.detail,
            source: d.source,
            dial_timeout: d.dial_timeout,
            try_interval: d.try_interval,
            max_try_count_0: m0,
            max_try_count_1: m1,
            max_try_count_2: m2,
            max_try_count_3: m3,
            max_try_count_4: m4,
            tm_create: None,
            tm_update: None,
            tm_delete: None,
            retry_rules: retry.retry_rules.flatten(),
            min_talk_ms: retry.min_talk_ms.flatten(),
        };
        let stored = self.store.outplans.create(&o).await?;
        self.emit(DomainEvent::OutplanCreated(stored.clone())).await;
        Ok(stored)
    }

    /// `GET /v1/outplans/<id>`.
    pub async fn outplan(&self, id: Uuid) -> ServiceResult<Outplan> {
        match self.store.outplans.get(id).await? {
            Some(o) if o.tm_delete.is_none() => Ok(o),
            _ => Err(ServiceError::NotFound("outplan")),
        }
    }

    /// `GET /v1/outplans?...`.
    pub async fn outplans(
        &self,
        filters: &serde_json::Map<String, Value>,
        page: Page,
    ) -> ServiceResult<Vec<Outplan>> {
        let f: Filters = self.store.outplans.filters(filters)?;
        Ok(self.store.outplans.list(&f, page).await?)
    }

    /// `PUT /v1/outplans/<id>`.
    pub async fn update_outplan(&self, id: Uuid, req: OutplanUpdate) -> ServiceResult<Outplan> {
        let o = self.outplan(id).await?;
        let name = req.name.unwrap_or(o.name);
        let detail = req.detail.unwrap_or(o.detail);
        super::check_text(&name, &detail)?;
        let u = self
            .store
            .outplans
            .update_basic_info(id, &name, &detail)
            .await?
            .ok_or(ServiceError::NotFound("outplan"))?;
        self.emit(DomainEvent::OutplanUpdated(u.clone())).await;
        Ok(u)
    }

    /// `PUT /v1/outplans/<id>/dials`.
    pub async fn update_outplan_dials(
        &self,
        id: Uuid,
        req: OutplanDials,
    ) -> ServiceResult<Outplan> {
        let retry = checked_retry(&req)?;
        let d = checked_dials(req)?;
        self.outplan(id).await?;
        let u = self
            .store
            .outplans
            .update_dials_and_retry(id, &d, &retry)
            .await?
            .ok_or(ServiceError::NotFound("outplan"))?;
        self.emit(DomainEvent::OutplanUpdated(u.clone())).await;
        Ok(u)
    }

    /// `DELETE /v1/outplans/<id>`: refused while a campaign that is not stopped uses it.
    pub async fn delete_outplan(&self, id: Uuid) -> ServiceResult<Outplan> {
        self.outplan(id).await?;
        let users = self
            .store
            .campaigns
            .list(
                &Filters::none()
                    .and_uuid("outplan_id", id)
                    .and_deleted(false),
                Page {
                    token: None,
                    size: 1000,
                },
            )
            .await?;
        if let Some(c) = users
            .iter()
            .find(|c| c.status != crate::model::CampaignStatus::Stop)
        {
            return Err(ServiceError::Precondition(format!(
                "outplan is used by campaign {} which is not stopped",
                c.id
            )));
        }
        // The same condition again in the UPDATE: a campaign started since the list above
        // still blocks the delete.
        let d = match self.store.outplans.delete_if_unused(id).await? {
            Deletion::Deleted(d) => d,
            Deletion::Refused(_) => {
                return Err(ServiceError::Precondition(
                    "outplan is used by a campaign which is not stopped".into(),
                ));
            }
            Deletion::Missing => return Err(ServiceError::NotFound("outplan")),
        };
        self.emit(DomainEvent::OutplanDeleted(d.clone())).await;
        Ok(d)
    }
}
