//! The live figures of one campaign (`GET /v1/campaigns/<id>/stats`, docs/stats-and-sequences.md): counts
//! from its campaigncalls and what its last tick decided. A read model only: nothing stores it
//! as a whole, the service assembles it per request from one consistent read of MySQL and the
//! tick record. [`TargetMark`] names what is counted once per target.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::json::opt_time;
use super::{CampaignStatus, Execute};

/// Live figures of one campaign. Counts exclude deleted campaigncalls, except
/// `dials_last_minute` and `last_dial_at`, which count every dial made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignStats {
    /// The campaign.
    pub campaign_id: Uuid,
    /// Its status (`stop`, `stopping`, `run`).
    pub status: CampaignStatus,
    /// Whether its tick chain is meant to run.
    pub execute: Execute,
    /// Campaigncalls made (one per dial attempt).
    pub dials: i64,
    /// Campaigncalls `dialing`.
    pub dialing: i64,
    /// Campaigncalls `progressing` (the call is up or the flow runs).
    pub progressing: i64,
    /// Campaigncalls `done` with result `success`.
    pub done_success: i64,
    /// Campaigncalls `done` with result `fail`.
    pub done_fail: i64,
    /// `done` campaigncalls by why they ended: the call's hangup reason (`normal`, `busy`,
    /// `noanswer`, ...), `flow_ended` for flow campaigncalls, or what the service decided
    /// (`not_placed`, `hangup_lost`, `over_max_duration`, ...). Rows finished
    /// without a stored reason (the Go service's) count under their result (`success`, `fail`,
    /// `unknown` when empty).
    pub by_reason: BTreeMap<String, i64>,
    /// `dialing` + `progressing`.
    pub calls_up: i64,
    /// Campaigncalls created in the last 60 s.
    pub dials_last_minute: i64,
    /// When the latest campaigncall was created.
    #[serde(with = "opt_time")]
    pub last_dial_at: Option<DateTime<Utc>>,
    /// When the next tick is due, as the last tick scheduled it (`null`: none scheduled).
    #[serde(with = "opt_time")]
    pub next_tick_at: Option<DateTime<Utc>>,
    /// Why the last tick did not dial (`no_capacity`, `retry_interval`, `list_empty`,
    /// `backoff`, ...); `null` when it dialed, when the chain ended, or when no tick is known.
    pub waiting_reason: Option<String>,
    /// Targets ended untried because every destination with tries left is on the suppression
    /// list (also `by_reason["suppressed"]`; such a target has no campaigncall). Counted once
    /// per target.
    #[serde(default)]
    pub suppressed: i64,
    /// Targets checked against `destination_local` calling hours in the campaign's zone
    /// because their number has no zone in the E.164 zone table. Counted once per target.
    #[serde(default)]
    pub zone_fallback_targets: i64,
}

/// What the stats count once per target rather than per campaigncall (a row per campaign,
/// mark and target, so a retried or racing tick counts a target once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetMark {
    /// Ended untried: every destination with tries left is suppressed.
    Suppressed,
    /// Its destination's zone is unknown: `destination_local` used the campaign's zone.
    ZoneFallback,
}

impl TargetMark {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetMark::Suppressed => "suppressed",
            TargetMark::ZoneFallback => "zone_fallback",
        }
    }
}

/// What the last tick of a campaign decided, as recorded for the stats (any process writes it,
/// any process reads it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickRecord {
    /// `dialed`, `waiting`, `backoff` or `ended`.
    pub outcome: String,
    /// Why it did not dial, if it waits or backs off.
    pub waiting_reason: Option<String>,
    /// When the next tick is due (`None`: the chain ended).
    pub next_tick_at: Option<DateTime<Utc>>,
    /// When the tick ran.
    pub at: DateTime<Utc>,
}
