//! Callbacks (docs/contact-strategy.md): a callee who said "call me at 6" is dialed at 6.
//!
//! Owns the routes' operations (create, list, get, delete, each publishing `callback_created`
//! / `callback_deleted` after its commit), what a campaign's delete does to its callbacks, and
//! what the tick asks of them ([`DueCallbacks`]): the targets a pending callback holds back
//! (no rule dials them before the callback's time), the due callbacks' targets to dial first on
//! their asked destination (whatever the retry interval and the tries used), and how soon the
//! chain must tick again for the next one. Calling hours and the suppression list still apply:
//! the tick is closed, or the dial is refused, and the callback waits.
//!
//! The dial's transaction is what makes this exact (`store::callbacks`): a dial that is not
//! the callback's own is refused while the callback is pending, and the callback's dial takes
//! it with a compare-and-set, so it is dialed once. A dial that places no call frees it again.
//!
//! Tries: a callback's dial is recorded as the next try of its destination (one more than
//! outdial-manager's count), so the dial row's unique (target, destination, try) key holds as
//! for any dial. Its target claim (`progressing`) adds that try at outdial-manager, whose
//! counter only goes up: a callback on a destination with tries left uses one of them there,
//! and one on a destination with none left takes it past the outplan's maximum (the target is
//! then never offered again for that destination, as before).

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use super::tick::{CALLING_HOURS_MIN_SLEEP, Next};
use super::{Service, ServiceError, ServiceResult};
use crate::model::{Address, Callback, CallbackCreate, Campaign, DomainEvent, OutdialTarget};
use crate::store::{Page, TickCallbacks};

/// Most due callbacks whose targets one tick reads from outdial-manager.
pub const DUE_PER_TICK: usize = 5;

/// A campaign's callbacks as one tick uses them.
#[derive(Debug, Clone, Default)]
pub struct DueCallbacks {
    /// Due callbacks with their targets as outdial-manager has them now.
    due: Vec<(Callback, OutdialTarget)>,
    /// Targets with a pending callback (due or not).
    held: HashSet<Uuid>,
    /// How long until the next pending callback is due.
    next_in: Option<Duration>,
}

impl DueCallbacks {
    /// Puts the due callbacks' targets first in the tick's batch and drops the targets a
    /// pending callback holds back.
    pub fn arrange(&self, targets: &mut Vec<OutdialTarget>) {
        targets.retain(|t| !self.held.contains(&t.id));
        let due: Vec<OutdialTarget> = self.due.iter().map(|(_, t)| t.clone()).collect();
        targets.splice(0..0, due);
    }

    /// Whether the campaign has a pending callback (its list is then not exhausted).
    pub fn any_pending(&self) -> bool {
        !self.held.is_empty()
    }

    /// The due callback of a target in the batch.
    pub fn due_for(&self, target_id: Uuid) -> Option<&Callback> {
        self.due
            .iter()
            .find(|(c, _)| c.outdial_target_id == target_id)
            .map(|(c, _)| c)
    }

    /// The next tick after `next`, but no later than the next callback's time.
    pub fn next_tick(next_in: Option<Duration>, next: Next) -> Next {
        match (next, next_in) {
            (Next::Continue(d), Some(at)) => Next::Continue(d.min(at.max(CALLING_HOURS_MIN_SLEEP))),
            (next, _) => next,
        }
    }

    /// How long until the next pending callback is due.
    pub fn next_in(&self) -> Option<Duration> {
        self.next_in
    }
}

/// What a callback's dial dials: its destination with the next try, whatever the outplan's
/// maximum (`None`: the target no longer has that destination, or `after` is set: the
/// destination is suppressed, and the callback waits).
pub fn callback_destination(
    callback: &Callback,
    target: &OutdialTarget,
    after: Option<i32>,
) -> Option<(Address, i32, i32)> {
    if after.is_some() {
        return None;
    }
    let i = usize::try_from(callback.destination_index).ok()?;
    let (dest, tries) = target.destinations().get(i).copied()?;
    Some((
        dest?.clone(),
        callback.destination_index,
        tries.saturating_add(1),
    ))
}

impl Service {
    /// `POST /v1/campaigns/<id>/callbacks`. The target must be in the campaign's outdial
    /// (outdial-manager's typed 404, a deleted target or one of another outdial: 404
    /// `OUTDIAL_TARGET_NOT_FOUND`) and have the destination (400 naming `destination_index`).
    pub async fn create_callback(
        &self,
        campaign_id: Uuid,
        body: &serde_json::Map<String, Value>,
    ) -> ServiceResult<Callback> {
        let req = CallbackCreate::parse(body, chrono::Utc::now()).map_err(ServiceError::Invalid)?;
        let campaign = self.campaign(campaign_id).await?;
        let target = match self.peers.outdial.get_target(req.outdial_target_id).await {
            Ok(t) if t.tm_delete.is_none() && t.outdial_id == campaign.outdial_id => t,
            Ok(_) => return Err(ServiceError::NotFound("outdial_target")),
            Err(e) if e.is_typed_not_found() => {
                return Err(ServiceError::NotFound("outdial_target"));
            }
            Err(e) => return Err(e.into()),
        };
        let index = req.destination_index;
        if target
            .destinations()
            .get(index as usize)
            .and_then(|(d, _)| *d)
            .is_none()
        {
            return Err(ServiceError::Invalid(format!(
                "destination_index {index}: the target has no destination_{index}"
            )));
        }
        let stored = self
            .store
            .callbacks
            .create(&Callback {
                id: Uuid::new_v4(),
                customer_id: campaign.customer_id,
                campaign_id,
                outdial_target_id: target.id,
                destination_index: index,
                at: req.at,
                campaigncall_id: None,
                tm_create: None,
            })
            .await?;
        self.emit(DomainEvent::CallbackCreated(stored.clone()))
            .await;
        self.wake_for_callback(&campaign).await;
        Ok(stored)
    }

    /// A running campaign's chain may be asleep (waiting, or paced) past the new callback's
    /// time: it ticks now, and that tick schedules the next by the callback. If the wake
    /// fails, the chain still sees the callback at its next tick (at the latest after its
    /// longest sleep).
    async fn wake_for_callback(&self, c: &Campaign) {
        if c.execute == crate::model::Execute::Run
            && let Err(e) = self.chains.wake_chain(c.id, self.delays.after_dial).await
        {
            tracing::warn!(campaign_id = %c.id, error = %e, "could not wake the campaign's chain for a callback");
        }
    }

    /// `GET /v1/campaigns/<id>/callbacks?page_size=&page_token=`: newest first.
    pub async fn callbacks(&self, campaign_id: Uuid, page: Page) -> ServiceResult<Vec<Callback>> {
        self.campaign(campaign_id).await?;
        Ok(self.store.callbacks.list(campaign_id, page).await?)
    }

    /// `GET /v1/campaigns/<id>/callbacks/<callback id>`.
    pub async fn callback(&self, campaign_id: Uuid, id: Uuid) -> ServiceResult<Callback> {
        self.campaign(campaign_id).await?;
        match self.store.callbacks.get(id).await? {
            Some(c) if c.campaign_id == campaign_id => Ok(c),
            _ => Err(ServiceError::NotFound("callback")),
        }
    }

    /// `DELETE /v1/campaigns/<id>/callbacks/<callback id>`: the callback as it was. A dial
    /// that is recording it meanwhile either took it first (the call goes ahead) or finds it
    /// gone and records nothing.
    pub async fn delete_callback(&self, campaign_id: Uuid, id: Uuid) -> ServiceResult<Callback> {
        self.callback(campaign_id, id).await?;
        let gone = self
            .store
            .callbacks
            .delete(id)
            .await?
            .ok_or(ServiceError::NotFound("callback"))?;
        self.emit(DomainEvent::CallbackDeleted(gone.clone())).await;
        Ok(gone)
    }

    /// Deletes a deleted campaign's callbacks (after the campaign; the repair pass removes
    /// what a process that died in between left: [`Service::sweep_callbacks`]).
    pub(super) async fn delete_campaign_callbacks(&self, campaign_id: Uuid) {
        match self.store.callbacks.delete_of_campaign(campaign_id).await {
            Ok(gone) => {
                for c in gone {
                    self.emit(DomainEvent::CallbackDeleted(c)).await;
                }
            }
            Err(e) => {
                tracing::warn!(%campaign_id, error = %e, "the deleted campaign's callbacks stay until the repair pass");
            }
        }
    }

    /// The repair pass's part: removes the callbacks of deleted campaigns.
    pub(super) async fn sweep_callbacks(&self) {
        match self.store.callbacks.sweep_deleted_campaigns().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "callbacks of deleted campaigns removed"),
            Err(e) => tracing::warn!(error = %e, "could not remove deleted campaigns' callbacks"),
        }
    }

    /// The campaign's callbacks for one tick: which targets they hold back, and the targets of
    /// up to [`DUE_PER_TICK`] due ones from outdial-manager. A due callback whose target has a
    /// call up (`progressing`) or cannot be read now waits for a later tick; one whose target
    /// is gone from the campaign's outdial is deleted (`callback_deleted`).
    pub async fn due_callbacks(&self, c: &Campaign) -> ServiceResult<DueCallbacks> {
        let TickCallbacks { due, held, next_in } = self.store.callbacks.for_tick(c.id).await?;
        let mut out = DueCallbacks {
            due: Vec::new(),
            held,
            next_in,
        };
        for callback in due.into_iter().take(DUE_PER_TICK) {
            match self
                .peers
                .outdial
                .get_target(callback.outdial_target_id)
                .await
            {
                Ok(t) if t.tm_delete.is_none() && t.outdial_id == c.outdial_id => {
                    if t.status != "progressing" {
                        out.due.push((callback, t));
                    }
                }
                Ok(_) => self.drop_callback(callback).await,
                Err(e) if e.is_typed_not_found() => self.drop_callback(callback).await,
                Err(e) => {
                    tracing::warn!(campaign_id = %c.id, callback_id = %callback.id, error = %e, "callback's target not read; a later tick dials it");
                }
            }
        }
        Ok(out)
    }

    /// Deletes a callback whose target left the campaign's outdial.
    async fn drop_callback(&self, callback: Callback) {
        tracing::info!(campaign_id = %callback.campaign_id, callback_id = %callback.id, "callback's target is gone; callback deleted");
        match self.store.callbacks.delete(callback.id).await {
            Ok(Some(gone)) => self.emit(DomainEvent::CallbackDeleted(gone)).await,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(callback_id = %callback.id, error = %e, "could not delete the callback now; a later tick does");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callback(index: i32) -> Callback {
        Callback {
            id: Uuid::new_v4(),
            customer_id: Uuid::new_v4(),
            campaign_id: Uuid::new_v4(),
            outdial_target_id: Uuid::new_v4(),
            destination_index: index,
            at: chrono::Utc::now(),
            campaigncall_id: None,
            tm_create: None,
        }
    }

    #[test]
    fn a_callback_dials_its_destination_past_the_tries() {
        let t = OutdialTarget {
            destination_0: Some(Address::tel("+1")),
            try_count_0: 9,
            ..OutdialTarget::default()
        };
        assert_eq!(
            callback_destination(&callback(0), &t, None),
            Some((Address::tel("+1"), 0, 10))
        );
        assert_eq!(callback_destination(&callback(1), &t, None), None);
        assert_eq!(callback_destination(&callback(0), &t, Some(0)), None);
    }

    #[test]
    fn the_next_tick_comes_by_the_next_callback() {
        let d = Duration::from_secs(5);
        assert_eq!(
            DueCallbacks::next_tick(Some(Duration::from_secs(2)), Next::Continue(d)),
            Next::Continue(Duration::from_secs(2))
        );
        assert_eq!(
            DueCallbacks::next_tick(Some(Duration::ZERO), Next::Continue(d)),
            Next::Continue(CALLING_HOURS_MIN_SLEEP)
        );
        assert_eq!(
            DueCallbacks::next_tick(None, Next::Continue(d)),
            Next::Continue(d)
        );
        assert_eq!(
            DueCallbacks::next_tick(Some(Duration::ZERO), Next::Stop),
            Next::Stop
        );
    }

    #[test]
    fn held_targets_leave_the_batch_and_due_ones_come_first() {
        let cb = callback(0);
        let due_target = OutdialTarget {
            id: cb.outdial_target_id,
            ..OutdialTarget::default()
        };
        let held_only = Uuid::new_v4();
        let free = OutdialTarget {
            id: Uuid::new_v4(),
            ..OutdialTarget::default()
        };
        let d = DueCallbacks {
            due: vec![(cb.clone(), due_target.clone())],
            held: [cb.outdial_target_id, held_only].into_iter().collect(),
            next_in: None,
        };
        let mut batch = vec![
            free.clone(),
            OutdialTarget {
                id: held_only,
                ..OutdialTarget::default()
            },
            due_target.clone(),
        ];
        d.arrange(&mut batch);
        let ids: Vec<Uuid> = batch.iter().map(|t| t.id).collect();
        assert_eq!(ids, vec![cb.outdial_target_id, free.id]);
        assert_eq!(d.due_for(cb.outdial_target_id), Some(&cb));
        assert!(d.any_pending());
    }
}
