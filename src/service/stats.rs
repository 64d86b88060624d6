//! Live stats of one campaign (`GET /v1/campaigns/<id>/stats`, docs/stats-and-sequences.md) and the tick
//! record they read.
//!
//! All MySQL figures of one answer come from one statement ([`crate::store::Stats::snapshot`]),
//! so they agree with each other: `dials` is `dialing + progressing +` the done ones, the done
//! ones are `by_reason` without `suppressed`, and `dials_last_minute` never counts a dial the
//! counts do not show. Targets ended suppressed and `destination_local` zone fall-backs have
//! no campaigncall to count: the tick marks them once per target ([`Service::mark_suppressed`],
//! [`Service::mark_zone_fallback`]).
//!
//! Cost per request, whatever the campaign's size: the campaign by id (cache), one statement
//! (a `GROUP BY` over the campaign's entries of a covering index, no row reads; a range count
//! and a `MAX` on `(campaign_id, tm_create)`; two counts on a primary key prefix; a campaign
//! with 1 million campaigncalls answers in well under the RPC timeout, see
//! docs/benchmarks.md), and one Redis `HGETALL`. Cost per tick: one pipelined Redis write
//! ([`Service::record_tick`]); per marked target, one `INSERT` the first time this process
//! sees it.

use std::collections::BTreeMap;

use chrono::Utc;
use uuid::Uuid;

use super::tick::{Next, Outcome};
use super::{Service, ServiceResult};
use crate::model::{CampaignStats, CampaignStatus, Execute, TargetMark, TickRecord};
use crate::store::{StatsSnapshot, StatusCount};

impl Service {
    /// `GET /v1/campaigns/<id>/stats`: 404 for an unknown or deleted campaign.
    pub async fn campaign_stats(&self, id: Uuid) -> ServiceResult<CampaignStats> {
        let c = self.campaign(id).await?;
        let snap = self.store.stats.snapshot(id).await?;
        let tick = self.store.stats.last_tick(id).await;
        let mut s = stats_of(id, c.status, c.execute, snap);
        // A tick record only describes a chain that may still run: once the campaign stopped
        // executing, no tick is due and nothing is waited for.
        if let Some(t) = tick.filter(|_| c.execute == crate::model::Execute::Run) {
            s.next_tick_at = t.next_tick_at;
            s.waiting_reason = t.waiting_reason;
        }
        Ok(s)
    }

    /// Counts a target the tick ends untried because every destination with tries left is
    /// suppressed. Called before the end is asked of outdial-manager: if this fails, the tick
    /// leaves the target as it is and the next tick offered it does both again; if the end
    /// fails or the process dies after this, the next tick's repeat counts nothing new.
    pub async fn mark_suppressed(&self, campaign_id: Uuid, target_id: Uuid) -> ServiceResult<()> {
        self.store
            .stats
            .mark_target(campaign_id, TargetMark::Suppressed, target_id)
            .await?;
        Ok(())
    }

    /// Counts a target whose destination has no known zone, so `destination_local` calling
    /// hours check it in the campaign's zone. Best effort: a failure is logged and the next
    /// tick that looks at the target writes it again (the dial does not wait for the stats).
    pub async fn mark_zone_fallback(&self, campaign_id: Uuid, target_id: Uuid) {
        let marked = self
            .store
            .stats
            .mark_target(campaign_id, TargetMark::ZoneFallback, target_id)
            .await;
        if let Err(e) = marked {
            tracing::warn!(%campaign_id, %target_id, error = %e, "could not count a zone fall-back now; a later tick does");
        }
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

/// The stats from one snapshot (without the tick record's fields).
fn stats_of(
    id: Uuid,
    status: CampaignStatus,
    execute: Execute,
    snap: StatsSnapshot,
) -> CampaignStats {
    let mut s = CampaignStats {
        campaign_id: id,
        status,
        execute,
        dials: 0,
        dialing: 0,
        progressing: 0,
        done_success: 0,
        done_fail: 0,
        by_reason: BTreeMap::new(),
        calls_up: 0,
        dials_last_minute: snap.dials_last_minute,
        last_dial_at: snap.last_dial_at,
        next_tick_at: None,
        waiting_reason: None,
        suppressed: snap.suppressed,
        zone_fallback_targets: snap.zone_fallback_targets,
    };
    for n in &snap.counts {
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
                *s.by_reason.entry(reason_key(n)).or_default() += n.count;
            }
            _ => {}
        }
    }
    if snap.suppressed > 0 {
        *s.by_reason.entry(SUPPRESSED.to_owned()).or_default() += snap.suppressed;
    }
    s.calls_up = s.dialing + s.progressing;
    s
}

/// The `by_reason` key of targets ended suppressed (they have no campaigncall).
const SUPPRESSED: &str = "suppressed";

/// The `by_reason` key of a done campaigncall: its stored reason; for rows without one (the Go
/// service's, or finished before reasons were stored) its result, `unknown` if empty.
fn reason_key(n: &StatusCount) -> String {
    match (n.reason.as_deref(), n.result.as_str()) {
        (Some(r), _) if !r.is_empty() => r.to_owned(),
        (_, "") => "unknown".to_owned(),
        (_, result) => result.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(status: &str, result: &str, reason: Option<&str>, count: i64) -> StatusCount {
        StatusCount {
            status: status.into(),
            result: result.into(),
            reason: reason.map(str::to_owned),
            count,
        }
    }

    #[test]
    fn counts_add_up_and_suppressed_targets_join_by_reason() {
        let snap = StatsSnapshot {
            counts: vec![
                count("dialing", "", None, 2),
                count("progressing", "", None, 3),
                count("done", "success", Some("normal"), 10),
                count("done", "fail", Some("busy"), 4),
                count("done", "fail", None, 1),
                count("done", "", None, 1),
            ],
            dials_last_minute: 5,
            last_dial_at: None,
            suppressed: 6,
            zone_fallback_targets: 7,
        };
        let s = stats_of(Uuid::nil(), CampaignStatus::Run, Execute::Run, snap);
        assert_eq!(
            (s.dials, s.dialing, s.progressing, s.calls_up),
            (21, 2, 3, 5)
        );
        assert_eq!((s.done_success, s.done_fail), (10, 5));
        let reasons: Vec<(&str, i64)> = s.by_reason.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            reasons,
            [
                ("busy", 4),
                ("fail", 1),
                ("normal", 10),
                ("suppressed", 6),
                ("unknown", 1)
            ]
        );
        assert_eq!((s.suppressed, s.zone_fallback_targets), (6, 7));
    }

    #[test]
    fn no_suppressed_key_without_suppressed_targets() {
        let s = stats_of(
            Uuid::nil(),
            CampaignStatus::Stop,
            Execute::Stop,
            StatsSnapshot::default(),
        );
        assert!(s.by_reason.is_empty());
        assert_eq!((s.dials, s.suppressed, s.zone_fallback_targets), (0, 0, 0));
    }
}
