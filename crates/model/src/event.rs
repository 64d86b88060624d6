//! The domain events the service emits when a record changes (docs/contract.md#events-published): one enum, so the
//! set of events is a type the compiler checks rather than string literals spread over the
//! service. Each event carries the record as it is after the change.
//!
//! The wire form belongs to the contract: [`DomainEvent::name`] is the event's `type` on the
//! event exchange and in webhooks, [`DomainEvent::record_json`] its `data` there (serialized
//! straight from [`DomainEvent::record`], the same bytes without a `Value` in between), and
//! [`DomainEvent::webhook_json`] the customer-facing shape sent to webhook-manager. Publishing
//! them is the job of an adapter outside this crate.

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::{Callback, Campaign, Campaigncall, CustomerDialLimits, Outplan, Suppression};

/// The record an event carries, borrowed; serializes as the record itself.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EventRecord<'a> {
    /// A campaign.
    Campaign(&'a Campaign),
    /// A campaigncall.
    Campaigncall(&'a Campaigncall),
    /// An outplan.
    Outplan(&'a Outplan),
    /// A suppression list entry.
    Suppression(&'a Suppression),
    /// A callback.
    Callback(&'a Callback),
    /// A customer's dial limits.
    CustomerDialLimits(&'a CustomerDialLimits),
}

/// A change to a campaign, campaigncall, outplan, suppression list entry or callback, with the
/// record after it.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    /// `campaign_created`: a campaign was created.
    CampaignCreated(Campaign),
    /// `campaign_updated`: a campaign's settings, resources, pacing, calling hours or
    /// sequence changed.
    CampaignUpdated(Campaign),
    /// `campaign_deleted`: a campaign was deleted (the record has `tm_delete`).
    CampaignDeleted(Campaign),
    /// `campaign_status_run`: a campaign went to `run`.
    CampaignStatusRun(Campaign),
    /// `campaign_status_stopping`: a running campaign waits for its calls before stopping.
    CampaignStatusStopping(Campaign),
    /// `campaign_status_stop`: a campaign stopped.
    CampaignStatusStop(Campaign),
    /// `campaigncall_created`: a dial attempt was recorded.
    CampaigncallCreated(Campaigncall),
    /// `campaigncall_updated`: a dial attempt progressed or finished.
    CampaigncallUpdated(Campaigncall),
    /// `campaigncall_deleted`: a finished dial attempt was deleted.
    CampaigncallDeleted(Campaigncall),
    /// `outplan_created`: an outplan was created.
    OutplanCreated(Outplan),
    /// `outplan_updated`: an outplan's settings or dial settings changed.
    OutplanUpdated(Outplan),
    /// `outplan_deleted`: an outplan was deleted (the record has `tm_delete`).
    OutplanDeleted(Outplan),
    /// `suppression_created`: a target was put on a customer's suppression list (one event
    /// per new entry; an import publishes one per target it added).
    SuppressionCreated(Suppression),
    /// `suppression_deleted`: an entry was removed from the list (the record as it was).
    SuppressionDeleted(Suppression),
    /// `callback_created`: a callback was set for one of a campaign's targets.
    CallbackCreated(Callback),
    /// `callback_deleted`: a callback was removed (the record as it was).
    CallbackDeleted(Callback),
    /// `customer_dial_limits_updated`: a customer's dial limits across all its campaigns were
    /// set or cleared (the limits after it; both `null` once cleared).
    CustomerDialLimitsUpdated(CustomerDialLimits),
}

impl DomainEvent {
    /// Every event's contract name, in the order of the variants.
    pub const NAMES: &'static [&'static str] = &[
        "campaign_created",
        "campaign_updated",
        "campaign_deleted",
        "campaign_status_run",
        "campaign_status_stopping",
        "campaign_status_stop",
        "campaigncall_created",
        "campaigncall_updated",
        "campaigncall_deleted",
        "outplan_created",
        "outplan_updated",
        "outplan_deleted",
        "suppression_created",
        "suppression_deleted",
        "callback_created",
        "callback_deleted",
        "customer_dial_limits_updated",
    ];

    /// The event's contract name: its `type` on the event exchange and in webhooks.
    pub fn name(&self) -> &'static str {
        match self {
            DomainEvent::CampaignCreated(_) => "campaign_created",
            DomainEvent::CampaignUpdated(_) => "campaign_updated",
            DomainEvent::CampaignDeleted(_) => "campaign_deleted",
            DomainEvent::CampaignStatusRun(_) => "campaign_status_run",
            DomainEvent::CampaignStatusStopping(_) => "campaign_status_stopping",
            DomainEvent::CampaignStatusStop(_) => "campaign_status_stop",
            DomainEvent::CampaigncallCreated(_) => "campaigncall_created",
            DomainEvent::CampaigncallUpdated(_) => "campaigncall_updated",
            DomainEvent::CampaigncallDeleted(_) => "campaigncall_deleted",
            DomainEvent::OutplanCreated(_) => "outplan_created",
            DomainEvent::OutplanUpdated(_) => "outplan_updated",
            DomainEvent::OutplanDeleted(_) => "outplan_deleted",
            DomainEvent::SuppressionCreated(_) => "suppression_created",
            DomainEvent::SuppressionDeleted(_) => "suppression_deleted",
            DomainEvent::CallbackCreated(_) => "callback_created",
            DomainEvent::CallbackDeleted(_) => "callback_deleted",
            DomainEvent::CustomerDialLimitsUpdated(_) => "customer_dial_limits_updated",
        }
    }

    /// The customer whose record changed (nil for records without one: no webhook then).
    pub fn customer_id(&self) -> Uuid {
        match self {
            DomainEvent::CampaignCreated(c)
            | DomainEvent::CampaignUpdated(c)
            | DomainEvent::CampaignDeleted(c)
            | DomainEvent::CampaignStatusRun(c)
            | DomainEvent::CampaignStatusStopping(c)
            | DomainEvent::CampaignStatusStop(c) => c.customer_id,
            DomainEvent::CampaigncallCreated(c)
            | DomainEvent::CampaigncallUpdated(c)
            | DomainEvent::CampaigncallDeleted(c) => c.customer_id,
            DomainEvent::OutplanCreated(o)
            | DomainEvent::OutplanUpdated(o)
            | DomainEvent::OutplanDeleted(o) => o.customer_id,
            DomainEvent::SuppressionCreated(x) | DomainEvent::SuppressionDeleted(x) => {
                x.customer_id
            }
            DomainEvent::CallbackCreated(x) | DomainEvent::CallbackDeleted(x) => x.customer_id,
            DomainEvent::CustomerDialLimitsUpdated(x) => x.customer_id,
        }
    }

    /// The id of the record that changed.
    pub fn record_id(&self) -> Uuid {
        match self {
            DomainEvent::CampaignCreated(c)
            | DomainEvent::CampaignUpdated(c)
            | DomainEvent::CampaignDeleted(c)
            | DomainEvent::CampaignStatusRun(c)
            | DomainEvent::CampaignStatusStopping(c)
            | DomainEvent::CampaignStatusStop(c) => c.id,
            DomainEvent::CampaigncallCreated(c)
            | DomainEvent::CampaigncallUpdated(c)
            | DomainEvent::CampaigncallDeleted(c) => c.id,
            DomainEvent::OutplanCreated(o)
            | DomainEvent::OutplanUpdated(o)
            | DomainEvent::OutplanDeleted(o) => o.id,
            DomainEvent::SuppressionCreated(x) | DomainEvent::SuppressionDeleted(x) => x.id,
            DomainEvent::CallbackCreated(x) | DomainEvent::CallbackDeleted(x) => x.id,
            DomainEvent::CustomerDialLimitsUpdated(x) => x.customer_id,
        }
    }

    /// The id subscribers follow this event by (its address on the platform's topic exchange):
    /// the campaign's id for campaign events **and for campaigncall events** (a campaigncall is
    /// addressed by its parent campaign, as the platform addresses it), the outplan's id for
    /// outplan events, the entry's id for suppression events, the campaign's id for callback
    /// events (like a campaigncall, a callback belongs to its campaign), the customer's id for
    /// its dial limits.
    pub fn subscription_id(&self) -> Uuid {
        match self {
            DomainEvent::CampaigncallCreated(c)
            | DomainEvent::CampaigncallUpdated(c)
            | DomainEvent::CampaigncallDeleted(c) => c.campaign_id,
            DomainEvent::CallbackCreated(x) | DomainEvent::CallbackDeleted(x) => x.campaign_id,
            other => other.record_id(),
        }
    }

    /// The campaign, if this is a campaign event.
    pub fn campaign(&self) -> Option<&Campaign> {
        match self {
            DomainEvent::CampaignCreated(c)
            | DomainEvent::CampaignUpdated(c)
            | DomainEvent::CampaignDeleted(c)
            | DomainEvent::CampaignStatusRun(c)
            | DomainEvent::CampaignStatusStopping(c)
            | DomainEvent::CampaignStatusStop(c) => Some(c),
            _ => None,
        }
    }

    /// The full record as JSON: the event's `data` on the event exchange (JSON `null` if the
    /// record cannot be encoded, which its types rule out).
    pub fn record_json(&self) -> Value {
        let encoded = match self {
            DomainEvent::CampaignCreated(c)
            | DomainEvent::CampaignUpdated(c)
            | DomainEvent::CampaignDeleted(c)
            | DomainEvent::CampaignStatusRun(c)
            | DomainEvent::CampaignStatusStopping(c)
            | DomainEvent::CampaignStatusStop(c) => serde_json::to_value(c),
            DomainEvent::CampaigncallCreated(c)
            | DomainEvent::CampaigncallUpdated(c)
            | DomainEvent::CampaigncallDeleted(c) => serde_json::to_value(c),
            DomainEvent::OutplanCreated(o)
            | DomainEvent::OutplanUpdated(o)
            | DomainEvent::OutplanDeleted(o) => serde_json::to_value(o),
            DomainEvent::SuppressionCreated(x) | DomainEvent::SuppressionDeleted(x) => {
                serde_json::to_value(x)
            }
            DomainEvent::CallbackCreated(x) | DomainEvent::CallbackDeleted(x) => {
                serde_json::to_value(x)
            }
            DomainEvent::CustomerDialLimitsUpdated(x) => serde_json::to_value(x),
        };
        encoded.unwrap_or(Value::Null)
    }

    /// The full record, to serialize as the event's `data` straight away: the same JSON text
    /// as [`DomainEvent::record_json`] (fields in model order), without building a `Value` first.
    pub fn record(&self) -> EventRecord<'_> {
        match self {
            DomainEvent::CampaignCreated(c)
            | DomainEvent::CampaignUpdated(c)
            | DomainEvent::CampaignDeleted(c)
            | DomainEvent::CampaignStatusRun(c)
            | DomainEvent::CampaignStatusStopping(c)
            | DomainEvent::CampaignStatusStop(c) => EventRecord::Campaign(c),
            DomainEvent::CampaigncallCreated(c)
            | DomainEvent::CampaigncallUpdated(c)
            | DomainEvent::CampaigncallDeleted(c) => EventRecord::Campaigncall(c),
            DomainEvent::OutplanCreated(o)
            | DomainEvent::OutplanUpdated(o)
            | DomainEvent::OutplanDeleted(o) => EventRecord::Outplan(o),
            DomainEvent::SuppressionCreated(x) | DomainEvent::SuppressionDeleted(x) => {
                EventRecord::Suppression(x)
            }
            DomainEvent::CallbackCreated(x) | DomainEvent::CallbackDeleted(x) => {
                EventRecord::Callback(x)
            }
            DomainEvent::CustomerDialLimitsUpdated(x) => EventRecord::CustomerDialLimits(x),
        }
    }

    /// The customer-facing shape sent to the customer's webhook: a campaign's webhook view
    /// ([`Campaign::webhook`]), the full record for the others.
    pub fn webhook_json(&self) -> Value {
        match self.campaign() {
            Some(c) => serde_json::to_value(c.webhook()).unwrap_or(Value::Null),
            None => self.record_json(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Address, CampaignStatus, CampaignType, CampaignWebhook, CampaigncallResult,
        CampaigncallStatus, EndHandle, Execute, ReferenceType,
    };

    fn campaign() -> Campaign {
        Campaign {
            id: Uuid::new_v4(),
            customer_id: Uuid::new_v4(),
            kind: CampaignType::Call,
            execute: Execute::Stop,
            name: "spring".into(),
            detail: String::new(),
            status: CampaignStatus::Stop,
            service_level: 100,
            end_handle: EndHandle::Stop,
            flow_id: Uuid::new_v4(),
            actions: None,
            outplan_id: Uuid::nil(),
            outdial_id: Uuid::nil(),
            queue_id: Uuid::nil(),
            next_campaign_id: Uuid::nil(),
            tm_create: None,
            tm_update: None,
            tm_delete: None,
            calling_hours: None,
            pacing: None,
        }
    }

    fn campaigncall() -> Campaigncall {
        Campaigncall {
            id: Uuid::new_v4(),
            customer_id: Uuid::new_v4(),
            campaign_id: Uuid::new_v4(),
            outplan_id: Uuid::new_v4(),
            outdial_id: Uuid::new_v4(),
            outdial_target_id: Uuid::new_v4(),
            queue_id: Uuid::nil(),
            activeflow_id: Uuid::new_v4(),
            flow_id: Uuid::new_v4(),
            reference_type: ReferenceType::Call,
            reference_id: Uuid::new_v4(),
            status: CampaigncallStatus::Dialing,
            result: CampaigncallResult::None,
            source: Some(Address::tel("+15550001000")),
            destination: Some(Address::tel("+15550002000")),
            destination_index: 0,
            try_count: 1,
            tm_create: None,
            tm_update: None,
            tm_delete: None,
        }
    }

    fn outplan() -> Outplan {
        Outplan {
            id: Uuid::new_v4(),
            customer_id: Uuid::new_v4(),
            name: "plan".into(),
            detail: String::new(),
            source: Some(Address::tel("+15550001000")),
            dial_timeout: 30_000,
            try_interval: 0,
            max_try_count_0: 1,
            max_try_count_1: 1,
            max_try_count_2: 1,
            max_try_count_3: 1,
            max_try_count_4: 1,
            tm_create: None,
            tm_update: None,
            tm_delete: None,
            retry_rules: None,
            min_talk_ms: None,
        }
    }

    fn suppression() -> Suppression {
        Suppression {
            id: Uuid::new_v4(),
            customer_id: Uuid::new_v4(),
            target: "+15550002000".into(),
            reason: "opt-out".into(),
            tm_expire: None,
            tm_create: None,
        }
    }

    fn callback() -> Callback {
        Callback {
            id: Uuid::new_v4(),
            customer_id: Uuid::new_v4(),
            campaign_id: Uuid::new_v4(),
            outdial_target_id: Uuid::new_v4(),
            destination_index: 0,
            at: chrono::Utc::now(),
            campaigncall_id: None,
            tm_create: None,
        }
    }

    fn every_event(c: &Campaign, cc: &Campaigncall, o: &Outplan) -> Vec<DomainEvent> {
        let (c, cc, o) = (c.clone(), cc.clone(), o.clone());
        vec![
            DomainEvent::CampaignCreated(c.clone()),
            DomainEvent::CampaignUpdated(c.clone()),
            DomainEvent::CampaignDeleted(c.clone()),
            DomainEvent::CampaignStatusRun(c.clone()),
            DomainEvent::CampaignStatusStopping(c.clone()),
            DomainEvent::CampaignStatusStop(c),
            DomainEvent::CampaigncallCreated(cc.clone()),
            DomainEvent::CampaigncallUpdated(cc.clone()),
            DomainEvent::CampaigncallDeleted(cc),
            DomainEvent::OutplanCreated(o.clone()),
            DomainEvent::OutplanUpdated(o.clone()),
            DomainEvent::OutplanDeleted(o),
            DomainEvent::SuppressionCreated(suppression()),
            DomainEvent::SuppressionDeleted(suppression()),
            DomainEvent::CallbackCreated(callback()),
            DomainEvent::CallbackDeleted(callback()),
            DomainEvent::CustomerDialLimitsUpdated(CustomerDialLimits {
                customer_id: Uuid::new_v4(),
                max_concurrent_calls: Some(3),
                dials_per_second: None,
                tm_update: None,
            }),
        ]
    }

    #[test]
    fn names_lists_every_variant_once_in_order() {
        let events = every_event(&campaign(), &campaigncall(), &outplan());
        let names: Vec<&str> = events.iter().map(DomainEvent::name).collect();
        assert_eq!(names, DomainEvent::NAMES);
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
    }

    #[test]
    fn every_event_carries_its_records_customer_and_json() {
        let (c, cc, o) = (campaign(), campaigncall(), outplan());
        for e in every_event(&c, &cc, &o) {
            let (customer, record) = match (e.name(), e.record()) {
                (_, EventRecord::Suppression(x)) => (x.customer_id, serde_json::to_value(x)),
                (_, EventRecord::Callback(x)) => (x.customer_id, serde_json::to_value(x)),
                (_, EventRecord::CustomerDialLimits(x)) => (x.customer_id, serde_json::to_value(x)),
                (n, _) if n.starts_with("campaigncall_") => {
                    (cc.customer_id, serde_json::to_value(&cc))
                }
                (n, _) if n.starts_with("campaign_") => (c.customer_id, serde_json::to_value(&c)),
                _ => (o.customer_id, serde_json::to_value(&o)),
            };
            assert_eq!(e.customer_id(), customer, "{}", e.name());
            assert_eq!(e.record_json(), record.expect("json"), "{}", e.name());
            assert_eq!(
                serde_json::to_string(&e.record()).expect("json"),
                serde_json::to_string(&e.record_json()).expect("json"),
                "{}: the same bytes",
                e.name()
            );
            if e.campaign().is_none() {
                assert_eq!(e.webhook_json(), e.record_json(), "{}", e.name());
            }
        }
    }

    #[test]
    fn campaigncall_events_are_addressed_by_their_campaign() {
        let (c, cc, o) = (campaign(), campaigncall(), outplan());
        for e in every_event(&c, &cc, &o) {
            let want = match e.name() {
                n if n.starts_with("suppression_") => e.record_id(),
                n if n.starts_with("callback_") => match e.record() {
                    EventRecord::Callback(x) => x.campaign_id,
                    _ => Uuid::nil(),
                },
                n if n.starts_with("customer_") => e.customer_id(),
                n if n.starts_with("campaigncall_") => cc.campaign_id,
                n if n.starts_with("campaign_") => c.id,
                _ => o.id,
            };
            assert_eq!(e.subscription_id(), want, "{}", e.name());
        }
        assert_ne!(cc.campaign_id, cc.id);
    }

    #[test]
    fn a_campaign_event_sends_the_webhook_view_to_customers() {
        let c = campaign();
        let e = DomainEvent::CampaignStatusRun(c.clone());
        assert_eq!(e.customer_id(), c.customer_id);
        assert_eq!(e.campaign(), Some(&c));
        assert_eq!(e.record_json(), serde_json::to_value(&c).expect("json"));
        let view: CampaignWebhook<'_> = c.webhook();
        assert_eq!(e.webhook_json(), serde_json::to_value(view).expect("json"));
        assert_ne!(e.webhook_json(), e.record_json());
    }
}
