//! Live stats of one campaign (`GET /v1/campaigns/<id>/stats`, docs/stats-and-sequences.md) and the tick
//! record they read.
//!
//! Cost per request, whatever the campaign's size: the campaign by id (cache), one `GROUP BY`
//! over the campaign's entries of a covering index (no row reads; a campaign with 1 million
//! campaigncalls answers in well under the RPC timeout, see docs/benchmarks.md), one range
//! count and one `MAX` on `(campaign_id, tm_create)`, and one Redis `HGETALL`. Cost per tick:
//! one pipelined Redis write ([`Service::record_tick`]).

use std::collections::BTreeMap;

use chrono::Utc;
use uuid::Uuid;

use super::tick::{Next, Outcome};
use super::{Service, ServiceResult};
use crate::model::{CampaignStats, TickRecord};
use crate::store::StatusCount;

impl Service {
    /// `GET /v1/campaigns/<id>/stats`: 404 for an unknown or deleted campaign.
    pub async fn campaign_stats(&self, id: Uuid) -> ServiceResult<CampaignStats> {
        let c = self.campaign(id).await?;
        let counts = self.store.stats.status_counts(id).await?;
        let minute_ago = Utc::now() - chrono::Duration::seconds(60);
        let (dials_last_minute, last_dial_at) =
            self.store.stats.recent_dials(id, minute_ago).await?;
        let tick = self.store.stats.last_tick(id).await;

        let mut s = CampaignStats {
            campaign_id: id,
            status: c.status,
            execute: c.execute,
            dials: 0,
            dialing: 0,
            progressing: 0,
            done_success: 0,
            done_fail: 0,
            by_reason: BTreeMap::new(),
            calls_up: 0,
            dials_last_minute,
            last_dial_at,
            next_tick_at: None,
            waiting_reason: None,
        };
        for n in counts {
            s.dials += n.count;
            match (n.status.as_str(), n.result.as_str()) {
                ("dialing", _) => s.dialing += n.count,
                ("progressing", _) => s.progressing += n.count,
                ("done", result) => {
                    match result {
                        "success" => s.done_success += n.count,
                        "fail" => s.done_fail += n.count,
                        _ => {}
                    }
                    *s.by_reason.entry(reason_key(&n)).or_default() += n.count;
                }
                _ => {}
            }
        }
        s.calls_up = s.dialing + s.progressing;
        // A tick record only describes a chain that may still run: once the campaign stopped
        // executing, no tick is due and nothing is waited for.
        if let Some(t) = tick.filter(|_| c.execute == crate::model::Execute::Run) {
            s.next_tick_at = t.next_tick_at;
            s.waiting_reason = t.waiting_reason;
        }
        Ok(s)
    }

    /// Records what a tick decided, for the stats (best effort: one Redis write).
    pub async fn record_tick(&self, id: Uuid, next: Next, outcome: &Outcome) {
        let (kind, reason) = match outcome {
            Outcome::Dialed => ("dialed", None),
            Outcome::Waiting(r) | Outcome::Sleeping(r, _) => ("waiting", Some((*r).to_owned())),
            Outcome::Backoff(_) => ("backoff", Some("backoff".to_owned())),
            Outcome::Ended(_) => ("ended", None),
        };
        let now = Utc::now();
        let next_tick_at = match next {
            Next::Continue(d) => chrono::Duration::from_std(d).ok().map(|d| now + d),
            Next::Stop => None,
        };
        let record = TickRecord {
            outcome: kind.to_owned(),
            waiting_reason: reason,
            next_tick_at,
            at: now,
        };
        self.store.stats.record_tick(id, &record).await;
    }
}

/// The `by_reason` key of a done campaigncall: its stored reason; for rows without one (the Go
/// service's, or finished before reasons were stored) its result, `unknown` if empty.
fn reason_key(n: &StatusCount) -> String {
    match (n.reason.as_deref(), n.result.as_str()) {
        (Some(r), _) if !r.is_empty() => r.to_owned(),
        (_, "") => "unknown".to_owned(),
        (_, result) => result.to_owned(),
    }
}
