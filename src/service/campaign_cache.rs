//! In-process copies of the campaigns and outplans that ticks read, so a running campaign's
//! tick reads them from MySQL/Redis once per change instead of once per tick
//! (docs/benchmarks.md, "End to end").
//!
//! Freshness comes from events, not from time: every process that runs ticks hears the
//! change notice the service publishes with each of its `campaign_*` / `outplan_*` events (on
//! its internal change exchange, `events::changes`) and drops its copy of that id, and every
//! write of a campaign or outplan publishes such an event, so an update through the API
//! reaches the next tick of every process one notice later. A copy also
//! expires after a short safety TTL (an event lost in a broker outage), and the listener drops
//! everything whenever its subscription is (re)established, since events may have passed
//! while it was away.
//!
//! A copy a little stale never breaks the dial invariant: the dial's fenced transaction
//! (`store::dials`) checks again in MySQL that the campaign is `run`, so a stopped campaign
//! records no dial even if a tick acted on an old copy; ending an execution is conditional on
//! the state read (`end_execution_seen`) for the same reason.
//!
//! A read that raced with an invalidation is not kept: every forget bumps a generation, and a
//! read keeps its result only if no forget happened since it started (else a copy read just
//! before an update could outlive the update's event).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::model::{Campaign, Outplan};
use crate::store::{Store, StoreResult};

/// How long a copy is used without any event about it (the fallback when an event is lost).
pub const SAFETY_TTL: Duration = Duration::from_secs(10);

/// Which kind of record an event of the service is about, by its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// `campaign_created`, `campaign_updated`, `campaign_deleted`, ...
    Campaign,
    /// `outplan_created`, `outplan_updated`, `outplan_deleted`, ...
    Outplan,
}

impl Changed {
    /// The kind of record an event type is about; `None` for every other event (campaigncall
    /// events among them: `campaigncall_…` does not start with `campaign_`).
    pub fn of(event_type: &str) -> Option<Changed> {
        if event_type.starts_with("campaign_") {
            Some(Changed::Campaign)
        } else if event_type.starts_with("outplan_") {
            Some(Changed::Outplan)
        } else {
            None
        }
    }
}

#[derive(Default)]
struct Copies {
    generation: u64,
    campaigns: HashMap<Uuid, (Instant, Campaign)>,
    outplans: HashMap<Uuid, (Instant, Outplan)>,
}

/// The tick's copies of campaigns and outplans (module doc); one per process, shared by its
/// tick workers and its event listener.
pub struct TickCache {
    copies: Mutex<Copies>,
    ttl: Duration,
}

impl Default for TickCache {
    fn default() -> Self {
        TickCache::new(SAFETY_TTL)
    }
}

impl TickCache {
    /// An empty cache whose copies expire after `ttl` (zero: nothing is kept).
    pub fn new(ttl: Duration) -> TickCache {
        TickCache {
            copies: Mutex::new(Copies::default()),
            ttl,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Copies) -> R) -> R {
        // A poisoned lock only means a panic elsewhere; the map itself is always consistent.
        let mut guard = match self.copies.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// The campaign, from the copy if fresh, else from MySQL (kept for the next ticks).
    pub async fn campaign(&self, store: &Store, id: Uuid) -> StoreResult<Option<Campaign>> {
        let now = Instant::now();
        let ttl = self.ttl;
        let (hit, generation) = self.with(|c| {
            let hit = c
                .campaigns
                .get(&id)
                .filter(|(at, _)| now.duration_since(*at) < ttl)
                .map(|(_, v)| v.clone());
            (hit, c.generation)
        });
        if let Some(c) = hit {
            return Ok(Some(c));
        }
        let read = store.campaigns.get_fresh(id).await?;
        if let Some(c) = &read {
            self.with(|copies| {
                if copies.generation == generation {
                    copies.campaigns.insert(id, (now, c.clone()));
                }
            });
        }
        Ok(read)
    }

    /// The outplan, from the copy if fresh, else through the store's read-through cache.
    pub async fn outplan(&self, store: &Store, id: Uuid) -> StoreResult<Option<Outplan>> {
        let now = Instant::now();
        let ttl = self.ttl;
        let (hit, generation) = self.with(|c| {
            let hit = c
                .outplans
                .get(&id)
                .filter(|(at, _)| now.duration_since(*at) < ttl)
                .map(|(_, v)| v.clone());
            (hit, c.generation)
        });
        if let Some(o) = hit {
            return Ok(Some(o));
        }
        let read = store.outplans.get(id).await?;
        if let Some(o) = &read {
            self.with(|copies| {
                if copies.generation == generation {
                    copies.outplans.insert(id, (now, o.clone()));
                }
            });
        }
        Ok(read)
    }

    /// Drops the copy of the changed record `id`.
    pub fn forget(&self, changed: Changed, id: Uuid) {
        self.with(|c| {
            c.generation += 1;
            match changed {
                Changed::Campaign => {
                    c.campaigns.remove(&id);
                }
                Changed::Outplan => {
                    c.outplans.remove(&id);
                }
            }
        });
    }

    /// Drops every copy (the event stream was interrupted).
    pub fn forget_all(&self) {
        self.with(|c| {
            c.generation += 1;
            c.campaigns.clear();
            c.outplans.clear();
        });
    }

    /// How many invalidations happened so far (0 until the listener first subscribed and
    /// dropped everything).
    pub fn generation(&self) -> u64 {
        self.with(|c| c.generation)
    }

    /// Whether a copy of campaign `id` is held (fresh or not).
    pub fn holds_campaign(&self, id: Uuid) -> bool {
        self.with(|c| c.campaigns.contains_key(&id))
    }

    /// Whether a copy of outplan `id` is held (fresh or not).
    pub fn holds_outplan(&self, id: Uuid) -> bool {
        self.with(|c| c.outplans.contains_key(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_name_the_record() {
        assert_eq!(Changed::of("campaign_updated"), Some(Changed::Campaign));
        assert_eq!(Changed::of("campaign_deleted"), Some(Changed::Campaign));
        assert_eq!(Changed::of("outplan_created"), Some(Changed::Outplan));
        assert_eq!(Changed::of("campaigncall_updated"), None);
        assert_eq!(Changed::of("call_hangup"), None);
        assert_eq!(Changed::of(""), None);
    }
}
