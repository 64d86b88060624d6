//! Change notices: each process that runs ticks drops its tick cache's copy
//! (`service::campaign_cache`) of a campaign or outplan when the service reports a change to
//! it, whichever process made the change.
//!
//! Beside each `campaign_*` / `outplan_*` event on the public event exchange, the notifier
//! (`crate::notify`) publishes a short [`notice`] (the event's envelope with only the record's
//! id as data) to the service's own change exchange (`Names::change_exchange`, internal: no
//! other service reads it). Each process binds a private queue ([`ExchangeListener`]:
//! server-named, exclusive, auto-delete, so it dies with the connection) to that exchange, no
//! acks: a lost notice only delays freshness to the cache's safety TTL. Every
//! (re)subscription first drops every copy, since notices may have passed while the queue was
//! gone. Campaigncall events (two per dial) never reach these queues.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::watch;
use uuid::Uuid;

use crate::bus::{BusConnection, Event, ExchangeListener};
use crate::service::{Changed, TickCache};

/// Pause before subscribing again after a failure on a live connection.
const RETRY: Duration = Duration::from_secs(1);

/// The part of an event this listener reads.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(default, rename = "type")]
    kind: &'a str,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

/// The id of the record an event carries.
#[derive(Serialize, Deserialize)]
struct WithId {
    id: Uuid,
}

/// The change notice of an event of type `event_type` about record `id`, if that type is one
/// the tick cache cares about (`campaign_*`, `outplan_*`).
pub fn notice(event_type: &str, id: Uuid) -> Option<Event> {
    Changed::of(event_type)?;
    Event::json(event_type, &WithId { id }).ok()
}

/// What a notice (or an event) body says changed: `None` for other events and bodies without an id.
pub fn changed_by(body: &[u8]) -> Option<(Changed, Uuid)> {
    let head: Head = serde_json::from_slice(body).ok()?;
    let changed = Changed::of(head.kind)?;
    let with: WithId = serde_json::from_str(head.data?.get()).ok()?;
    Some((changed, with.id))
}

/// Listens on the change exchange `exchange` until `stop` turns true, forgetting changed records in `cache`.
pub async fn listen(
    conn: BusConnection,
    exchange: String,
    cache: Arc<TickCache>,
    mut stop: watch::Receiver<bool>,
) {
    let mut generation = 0;
    loop {
        if *stop.borrow() {
            return;
        }
        let live = tokio::select! {
            live = conn.wait_live(generation) => live,
            _ = stop.changed() => return,
        };
        let Some(live) = live else { return };
        match ExchangeListener::bind(&conn, &exchange).await {
            Ok((listener, g)) => {
                generation = g.max(live.generation);
                cache.forget_all();
                tokio::select! {
                    _ = consume(listener, &cache) => {}
                    _ = stop.changed() => return,
                }
                // The stream ended: the connection or channel went away; copies may be stale.
                cache.forget_all();
                tracing::info!("campaign change notices interrupted; subscribing again");
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to campaign change notices; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(RETRY) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

async fn consume(mut listener: ExchangeListener, cache: &TickCache) {
    while let Some(body) = listener.next().await {
        if let Some((changed, id)) = changed_by(&body) {
            cache.forget(changed, id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_changed_record_from_the_event() {
        let id = Uuid::new_v4();
        let body = format!(
            r#"{{"type":"campaign_updated","publisher":"campaign-manager","data_type":"application/json","data":{{"id":"{id}","name":"x"}}}}"#
        );
        assert_eq!(changed_by(body.as_bytes()), Some((Changed::Campaign, id)));
        let body = format!(r#"{{"type":"outplan_deleted","data":{{"id":"{id}"}}}}"#);
        assert_eq!(changed_by(body.as_bytes()), Some((Changed::Outplan, id)));
        let body = format!(r#"{{"type":"campaigncall_updated","data":{{"id":"{id}"}}}}"#);
        assert_eq!(changed_by(body.as_bytes()), None);
        assert_eq!(changed_by(br#"{"type":"campaign_updated"}"#), None);
        assert_eq!(
            changed_by(br#"{"type":"campaign_updated","data":{}}"#),
            None
        );
        assert_eq!(changed_by(b"not json"), None);
    }

    #[test]
    fn a_notice_carries_the_type_and_id_only_for_campaigns_and_outplans() {
        let id = Uuid::new_v4();
        let body = notice_of("campaign_status_stop", id);
        assert_eq!(changed_by(&body), Some((Changed::Campaign, id)));
        let body = notice_of("outplan_updated", id);
        assert_eq!(changed_by(&body), Some((Changed::Outplan, id)));
        assert!(notice("campaigncall_updated", id).is_none());
    }

    fn notice_of(event_type: &str, id: Uuid) -> Vec<u8> {
        serde_json::to_vec(&notice(event_type, id).expect("a notice")).expect("encodable")
    }
}
