//! Events in (docs/contract.md#events-consumed): `call_hangup` from call-manager and `activeflow_deleted` from
//! flow-manager finish the matching campaigncall, then let a `stopping` campaign stop.
//!
//! Idempotent: finishing is a compare-and-set in the store, so a repeated or late event
//! changes nothing twice. The one late event that does change something is a `success` for a
//! campaigncall stored as `fail` (call-manager closes a never-answered call with `failed`
//! before its real hangup, and the repair may have failed a dial whose call did come up): it is
//! finished again as `success`, with its target `done`. Either way the campaign's stop check
//! runs, so a `stopping` campaign whose last event arrives late still stops. A hangup only ever finishes a `call` campaigncall: flow campaigncalls
//! carry the nil reference id, so a hangup without a call id (missing or nil) is ignored
//! before the lookup, and the reference type is checked after it. An unknown hangup reason is a `fail` with a warning, never a
//! crash. A transient failure (database, outdial-manager) is returned as an error so the
//! bus retries the event; an event about something we don't know is acknowledged and ignored.

pub mod changes;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::bus::routing::pattern_for_event_type;
use crate::bus::{BoxError, Event, EventHandler};
use crate::model::{Activeflow, Call, CallTalk, CampaigncallResult, ReferenceType};
use crate::service::Service;

/// `call_hangup` from call-manager, as `(publisher, type)`.
pub const CALL_HANGUP: (&str, &str) = ("call-manager", "call_hangup");
/// `activeflow_deleted` from flow-manager, as `(publisher, type)`.
pub const ACTIVEFLOW_DELETED: (&str, &str) = ("flow-manager", "activeflow_deleted");
/// Every event this service consumes, as `(publisher, type)`; any other pair is acknowledged
/// and ignored. `docs/asyncapi.yaml` lists the same (checked by `tests/it/contract_docs.rs`).
pub const CONSUMED: [(&str, &str); 2] = [CALL_HANGUP, ACTIVEFLOW_DELETED];

/// What the subscribe queue binds on the platform's topic exchange: one pattern per consumed
/// event, in the order of [`CONSUMED`] (`call-manager.call.*.hangup`,
/// `flow-manager.activeflow.*.deleted`, as the platform's campaign-manager binds).
pub fn topic_patterns() -> Vec<String> {
    CONSUMED
        .iter()
        .map(|(publisher, event_type)| pattern_for_event_type(publisher, event_type))
        .collect()
}

/// Handles subscribed events.
pub struct Subscriptions {
    service: Service,
}

impl Subscriptions {
    /// Handlers over the service.
    pub fn new(service: Service) -> Arc<Subscriptions> {
        Arc::new(Subscriptions { service })
    }

    /// `call_hangup`: finish the call's campaigncall with the result of its hangup reason.
    pub async fn call_hangup(&self, call: Call) -> Result<(), BoxError> {
        self.call_hangup_talked(call, CallTalk::default()).await
    }

    /// [`Subscriptions::call_hangup`] with the call's answer and hangup times, which decide
    /// whether a `normal` hangup was long enough (`min_talk_ms`, docs/contact-strategy.md).
    pub async fn call_hangup_talked(&self, call: Call, talk: CallTalk) -> Result<(), BoxError> {
        let s = &self.service;
        // A missing id decodes as nil, the reference id of every flow campaigncall.
        if call.id.is_nil() {
            tracing::warn!("call_hangup without a call id; ignored");
            return Ok(());
        }
        let Some(cc) = s.campaigncall_by_call(call.id).await? else {
            return Ok(());
        };
        // Flow campaigncalls end with their activeflow, never with a hangup.
        if cc.reference_type != ReferenceType::Call {
            return Ok(());
        }
        s.finish_hangup(&cc, &call.hangup_reason, talk).await?;
        s.campaigncall_ended(cc.campaign_id).await?;
        Ok(())
    }

    /// `activeflow_deleted`: a flow campaigncall is done (always `success`).
    pub async fn activeflow_deleted(&self, af: Activeflow) -> Result<(), BoxError> {
        let s = &self.service;
        let Some(cc) = s.campaigncall_by_activeflow(af.id).await? else {
            return Ok(());
        };
        // Call campaigncalls end with their hangup, not with their flow.
        if cc.reference_type == ReferenceType::Call {
            return Ok(());
        }
        s.finish_from_event(&cc, CampaigncallResult::Success, "flow_ended")
            .await?;
        s.campaigncall_ended(cc.campaign_id).await?;
        Ok(())
    }
}

#[async_trait]
impl EventHandler for Subscriptions {
    async fn handle(&self, ev: Event) -> Result<(), BoxError> {
        let started = Instant::now();
        // The metric's labels are the handled pair as constants, never the event's own strings:
        // anyone on the bus can publish any `type`, and each new value would be a new series.
        let (labels, handled): ([&'static str; 2], _) =
            match (ev.publisher.as_str(), ev.r#type.as_str()) {
                CALL_HANGUP => (
                    [CALL_HANGUP.0, CALL_HANGUP.1],
                    match ev.data_as::<Call>() {
                        Ok(call) => {
                            let talk = ev.data_as::<CallTalk>().unwrap_or_default();
                            self.call_hangup_talked(call, talk).await
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "unreadable call_hangup; ignored");
                            Ok(())
                        }
                    },
                ),
                ACTIVEFLOW_DELETED => (
                    [ACTIVEFLOW_DELETED.0, ACTIVEFLOW_DELETED.1],
                    match ev.data_as::<Activeflow>() {
                        Ok(af) => self.activeflow_deleted(af).await,
                        Err(e) => {
                            tracing::warn!(error = %e, "unreadable activeflow_deleted; ignored");
                            Ok(())
                        }
                    },
                ),
                _ => return Ok(()),
            };
        self.service
            .metrics()
            .receive_subscribe_event_process_time
            .with_label_values(&labels)
            .observe(started.elapsed().as_secs_f64() * 1000.0);
        handled
    }
}

#[cfg(test)]
mod tests {
    /// The platform's bind set for campaign-manager (`binding_golden_test.go`): exactly these,
    /// in this order.
    #[test]
    fn the_topic_bindings_are_the_platforms() {
        assert_eq!(
            super::topic_patterns(),
            [
                "call-manager.call.*.hangup",
                "flow-manager.activeflow.*.deleted"
            ]
        );
    }
}
