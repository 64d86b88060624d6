//! The suppression (do-not-call) list's operations (docs/contact-strategy.md): create, list,
//! remove, import, each publishing `suppression_created` / `suppression_deleted` after its
//! commit. The check at dial time is the store's (`store::dials`), inside the fenced
//! transaction that records the dial.

use serde_json::Value;
use uuid::Uuid;

use super::{Service, ServiceError, ServiceResult};
use crate::model::{
    DomainEvent, Suppression, SuppressionCreate, SuppressionImport, SuppressionImported,
    normalise_target,
};
use crate::store::{Listed, Page};

/// The query of `GET /v1/suppressions?...`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct SuppressionQuery {
    /// The customer (required).
    pub customer_id: Uuid,
    /// One target only (normalised), if given.
    pub target: Option<String>,
}

impl SuppressionQuery {
    /// Reads `customer_id` and `target` from the query string; a bad one is a 400 naming it.
    pub fn parse(query: &str) -> ServiceResult<SuppressionQuery> {
        let mut customer = None;
        let mut target = None;
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "customer_id" => customer = Some(v.into_owned()),
                "target" if !v.is_empty() => target = Some(v.into_owned()),
                _ => {}
            }
        }
        let customer_id = match customer.as_deref() {
            None | Some("") => {
                return Err(ServiceError::Invalid("customer_id is required".into()));
            }
            Some(s) => Uuid::parse_str(s).map_err(|_| {
                ServiceError::Invalid(format!("customer_id must be a UUID, got {s:?}"))
            })?,
        };
        let target = target
            .map(|t| normalise_target(&t).map_err(|e| ServiceError::Invalid(format!("target {e}"))))
            .transpose()?;
        Ok(SuppressionQuery {
            customer_id,
            target,
        })
    }
}

impl Service {
    /// `POST /v1/suppressions`: lists the target, or returns its live entry.
    pub async fn create_suppression(
        &self,
        body: &serde_json::Map<String, Value>,
    ) -> ServiceResult<Suppression> {
        let req =
            SuppressionCreate::parse(body, chrono::Utc::now()).map_err(ServiceError::Invalid)?;
        match self
            .store
            .suppressions
            .create(req.customer_id, &req.target, &req.reason, req.tm_expire)
            .await?
        {
            Listed::Created(s) => {
                self.emit(DomainEvent::SuppressionCreated(s.clone())).await;
                Ok(s)
            }
            Listed::Existing(s) => Ok(s),
        }
    }

    /// `GET /v1/suppressions?customer_id=&target=&page_size=&page_token=`.
    pub async fn suppressions(
        &self,
        query: &SuppressionQuery,
        page: Page,
    ) -> ServiceResult<Vec<Suppression>> {
        Ok(self
            .store
            .suppressions
            .list(query.customer_id, query.target.as_deref(), page)
            .await?)
    }

    /// `DELETE /v1/suppressions/<id>`: the entry as it was.
    pub async fn delete_suppression(&self, id: Uuid) -> ServiceResult<Suppression> {
        let gone = self
            .store
            .suppressions
            .delete(id)
            .await?
            .ok_or(ServiceError::NotFound("suppression"))?;
        self.emit(DomainEvent::SuppressionDeleted(gone.clone()))
            .await;
        Ok(gone)
    }

    /// `POST /v1/suppressions/import`: every target listed, or none (a bad target is a 400
    /// naming its index, before anything is written). The events of the new entries are
    /// published after the answer is decided, in a task of their own, so a large import
    /// answers within its caller's timeout.
    pub async fn import_suppressions(
        &self,
        body: &serde_json::Map<String, Value>,
    ) -> ServiceResult<SuppressionImported> {
        let req = SuppressionImport::parse(body).map_err(ServiceError::Invalid)?;
        let created = self
            .store
            .suppressions
            .import(req.customer_id, &req.reason, &req.targets)
            .await?;
        let events = self.events.clone();
        tokio::spawn(async move {
            for s in created {
                events.emit(DomainEvent::SuppressionCreated(s)).await;
            }
        });
        Ok(SuppressionImported {
            count: req.targets.len(),
        })
    }
}
