//! `GET|PUT|DELETE /v1/customers/<id>/dial_limits` (docs/contact-strategy.md "Customer-wide
//! limits"): a customer's dial limits across all its campaigns. The body validates like a
//! campaign's pacing (`model::parse_dial_limits`). The limits are enforced where each dial is
//! recorded (`store::customer_limits`), so a change applies from the next dial of any of the
//! customer's campaigns; no chain is woken. Each set or clear publishes
//! `customer_dial_limits_updated` after it is stored (as every setting route publishes its
//! record); a process dying in between leaves the limits right and the event unsent.

use serde_json::Value;
use uuid::Uuid;

use super::{Service, ServiceError, ServiceResult};
use crate::model::{CustomerDialLimits, DomainEvent, parse_dial_limits};

impl Service {
    /// The customer's limits; both `null` when none are set (a customer without limits is not
    /// an error: its campaigns dial under their own pacing only).
    pub async fn customer_dial_limits(
        &self,
        customer_id: Uuid,
    ) -> ServiceResult<CustomerDialLimits> {
        Ok(self.store.customer_limits.get(customer_id).await?)
    }

    /// Sets both limits from the body (an absent or `null` key clears that limit; both unset
    /// clears the customer's limits). A bad value is a 400 naming its field.
    pub async fn set_customer_dial_limits(
        &self,
        customer_id: Uuid,
        body: Value,
    ) -> ServiceResult<CustomerDialLimits> {
        let limits = parse_dial_limits(body).map_err(ServiceError::Invalid)?;
        let stored = self.store.customer_limits.set(customer_id, limits).await?;
        self.emit(DomainEvent::CustomerDialLimitsUpdated(stored.clone()))
            .await;
        Ok(stored)
    }

    /// Clears the customer's limits; the (empty) limits after it.
    pub async fn clear_customer_dial_limits(
        &self,
        customer_id: Uuid,
    ) -> ServiceResult<CustomerDialLimits> {
        self.store.customer_limits.clear(customer_id).await?;
        let none = CustomerDialLimits::none(customer_id);
        self.emit(DomainEvent::CustomerDialLimitsUpdated(none.clone()))
            .await;
        Ok(none)
    }
}
