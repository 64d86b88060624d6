//! outdial-manager's state: outdials and their targets, with the platform's "available" query.
//!
//! Pure in-memory data with an explicit `now` on every mutation, so the ordering and try-count
//! rules are unit-testable without a clock. Targets keep an insertion sequence number to break
//! `tm_update` ties deterministically (MySQL would return them in an unspecified order).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::scenario::Outcome;
use crate::model::json::opt_time;
use crate::model::{Address, Outdial, OutdialTarget};

/// Target status as outdial-manager stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    /// Waiting to be dialed (again).
    Idle,
    /// A dial attempt is under way.
    Progressing,
    /// Finished (reached, or given up).
    Done,
}

/// A target as the simulator keeps it: the platform record plus its owner and status.
#[derive(Debug, Clone, PartialEq)]
pub struct SimTarget {
    /// The outdial it belongs to.
    pub outdial_id: Uuid,
    /// Current status.
    pub status: TargetState,
    /// Destinations, try counts and timestamps (shared model type).
    pub target: OutdialTarget,
    /// Insertion order (tie-break of the available query).
    pub seq: u64,
}

/// The JSON outdial-manager returns for a target (its full `OutdialTarget` shape).
#[derive(Debug, Clone, Serialize)]
pub struct TargetJson<'a> {
    /// Target id.
    pub id: Uuid,
    /// Owner outdial.
    pub outdial_id: Uuid,
    /// Name (always empty here).
    pub name: &'a str,
    /// Free text (always empty here).
    pub detail: &'a str,
    /// Free data (always empty here).
    pub data: &'a str,
    /// `idle`, `progressing` or `done`.
    pub status: TargetState,
    /// Destination 0.
    pub destination_0: &'a Option<Address>,
    /// Destination 1.
    pub destination_1: &'a Option<Address>,
    /// Destination 2.
    pub destination_2: &'a Option<Address>,
    /// Destination 3.
    pub destination_3: &'a Option<Address>,
    /// Destination 4.
    pub destination_4: &'a Option<Address>,
    /// Try count 0.
    pub try_count_0: i32,
    /// Try count 1.
    pub try_count_1: i32,
    /// Try count 2.
    pub try_count_2: i32,
    /// Try count 3.
    pub try_count_3: i32,
    /// Try count 4.
    pub try_count_4: i32,
    /// Created at.
    #[serde(with = "opt_time")]
    pub tm_create: Option<DateTime<Utc>>,
    /// Updated at.
    #[serde(with = "opt_time")]
    pub tm_update: Option<DateTime<Utc>>,
    /// Never deleted in the simulator.
    #[serde(with = "opt_time")]
    pub tm_delete: Option<DateTime<Utc>>,
}

impl SimTarget {
    /// The wire JSON of this target.
    pub fn json(&self) -> TargetJson<'_> {
        let t = &self.target;
        TargetJson {
            id: t.id,
            outdial_id: self.outdial_id,
            name: "",
            detail: "",
            data: "",
            status: self.status,
            destination_0: &t.destination_0,
            destination_1: &t.destination_1,
            destination_2: &t.destination_2,
            destination_3: &t.destination_3,
            destination_4: &t.destination_4,
            try_count_0: t.try_count_0,
            try_count_1: t.try_count_1,
            try_count_2: t.try_count_2,
            try_count_3: t.try_count_3,
            try_count_4: t.try_count_4,
            tm_create: t.tm_create,
            tm_update: t.tm_update,
            tm_delete: None,
        }
    }

    fn try_count_mut(&mut self, index: usize) -> Option<&mut i32> {
        let t = &mut self.target;
        match index {
            0 => Some(&mut t.try_count_0),
            1 => Some(&mut t.try_count_1),
            2 => Some(&mut t.try_count_2),
            3 => Some(&mut t.try_count_3),
            4 => Some(&mut t.try_count_4),
            _ => None,
        }
    }

    /// Whether some non-null destination `i` still has `try_count_i < max[i]`.
    pub fn has_tries_left(&self, max: &[i32; 5]) -> bool {
        self.target
            .destinations()
            .iter()
            .zip(max)
            .any(|((dest, tries), max)| dest.is_some() && tries < max)
    }
}

/// The JSON outdial-manager returns for an outdial.
#[derive(Debug, Clone, Serialize)]
pub struct OutdialJson<'a> {
    /// Outdial id.
    pub id: Uuid,
    /// Owner.
    pub customer_id: Uuid,
    /// Owning campaign (nil: free).
    pub campaign_id: Uuid,
    /// Name.
    pub name: &'a str,
    /// Free text.
    pub detail: &'a str,
    /// Free data.
    pub data: &'a str,
    /// Created at.
    #[serde(with = "opt_time")]
    pub tm_create: Option<DateTime<Utc>>,
    /// Updated at.
    #[serde(with = "opt_time")]
    pub tm_update: Option<DateTime<Utc>>,
    /// Soft-deleted at.
    #[serde(with = "opt_time")]
    pub tm_delete: Option<DateTime<Utc>>,
}

/// An outdial with its bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct SimOutdial {
    /// The platform record (shared model type).
    pub outdial: Outdial,
    /// Created at.
    pub tm_create: DateTime<Utc>,
    /// Updated at.
    pub tm_update: Option<DateTime<Utc>>,
    /// Target ids in insertion order.
    pub targets: Vec<Uuid>,
}

impl SimOutdial {
    /// The wire JSON of this outdial.
    pub fn json(&self) -> OutdialJson<'_> {
        let o = &self.outdial;
        OutdialJson {
            id: o.id,
            customer_id: o.customer_id,
            campaign_id: o.campaign_id,
            name: &o.name,
            detail: &o.detail,
            data: "",
            tm_create: Some(self.tm_create),
            tm_update: self.tm_update,
            tm_delete: o.tm_delete,
        }
    }
}

/// How to create one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TargetSpec {
    /// Target id (random when `None`).
    pub id: Option<Uuid>,
    /// Up to five destinations; missing entries are null.
    pub destinations: Vec<Option<Address>>,
    /// Initial try counts (missing: 0).
    pub try_counts: Vec<i32>,
    /// Set `tm_update = NULL` instead of the platform's `tm_update = tm_create` (legacy rows).
    pub null_tm_update: bool,
}

/// Why an outdial operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutdialError {
    /// No such outdial or target.
    NotFound,
    /// Bad argument (index out of range, too many destinations, ...).
    Invalid(String),
}

/// An entry of the progressing log: one dial attempt as outdial-manager saw it, with the call
/// call-manager placed for it (once placed) and how that call ended (once ended).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// Target id.
    pub target_id: Uuid,
    /// Destination index.
    pub destination_index: usize,
    /// Try count of that destination after the increment (1-based attempt number).
    pub try_count: i32,
    /// When.
    #[serde(with = "opt_time")]
    pub at: Option<DateTime<Utc>>,
    /// The call placed for it (none for a flow campaign's attempt, or before the call).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<Uuid>,
    /// The destination's address `target` the call went to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// The call's planned outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Its `hangup_reason`, once it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hangup_reason: Option<String>,
    /// Answer to hangup, ms, once an answered call ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub talk_ms: Option<i64>,
    /// When it ended.
    #[serde(with = "opt_time", skip_serializing_if = "Option::is_none")]
    pub tm_hangup: Option<DateTime<Utc>>,
}

/// All outdials and targets.
#[derive(Debug, Default)]
pub struct Outdials {
    outdials: HashMap<Uuid, SimOutdial>,
    targets: HashMap<Uuid, SimTarget>,
    /// Destination `target` string → (target id, destination index).
    by_address: HashMap<String, Vec<(Uuid, usize)>>,
    attempts: Vec<Attempt>,
    next_seq: u64,
}

impl Outdials {
    /// Create an outdial (id random when `None`).
    pub fn create(
        &mut self,
        id: Option<Uuid>,
        customer_id: Uuid,
        name: &str,
        now: DateTime<Utc>,
    ) -> Uuid {
        let id = id.unwrap_or_else(Uuid::new_v4);
        self.outdials.insert(
            id,
            SimOutdial {
                outdial: Outdial {
                    id,
                    customer_id,
                    campaign_id: Uuid::nil(),
                    name: name.to_string(),
                    detail: String::new(),
                    tm_delete: None,
                },
                tm_create: now,
                tm_update: None,
                targets: Vec::new(),
            },
        );
        id
    }

    /// Add a target to an outdial.
    pub fn add_target(
        &mut self,
        outdial_id: Uuid,
        spec: TargetSpec,
        now: DateTime<Utc>,
    ) -> Result<Uuid, OutdialError> {
        if spec.destinations.len() > 5 || spec.try_counts.len() > 5 {
            return Err(OutdialError::Invalid("at most 5 destinations".into()));
        }
        let outdial = self
            .outdials
            .get_mut(&outdial_id)
            .ok_or(OutdialError::NotFound)?;
        let id = spec.id.unwrap_or_else(Uuid::new_v4);
        if self.targets.contains_key(&id) {
            return Err(OutdialError::Invalid(format!("target {id} exists")));
        }
        let dest = |i: usize| spec.destinations.get(i).cloned().flatten();
        let tries = |i: usize| spec.try_counts.get(i).copied().unwrap_or(0);
        let target = OutdialTarget {
            id,
            destination_0: dest(0),
            destination_1: dest(1),
            destination_2: dest(2),
            destination_3: dest(3),
            destination_4: dest(4),
            try_count_0: tries(0),
            try_count_1: tries(1),
            try_count_2: tries(2),
            try_count_3: tries(3),
            try_count_4: tries(4),
            tm_create: Some(now),
            tm_update: if spec.null_tm_update { None } else { Some(now) },
            ..OutdialTarget::default()
        };
        for (i, (d, _)) in target.destinations().iter().enumerate() {
            if let Some(d) = d {
                self.by_address
                    .entry(d.target.clone())
                    .or_default()
                    .push((id, i));
            }
        }
        outdial.targets.push(id);
        self.next_seq += 1;
        self.targets.insert(
            id,
            SimTarget {
                outdial_id,
                status: TargetState::Idle,
                target,
                seq: self.next_seq,
            },
        );
        Ok(id)
    }

    /// Soft-delete an outdial (GET still returns it, with `tm_delete`).
    pub fn delete(&mut self, id: Uuid, now: DateTime<Utc>) -> Result<(), OutdialError> {
        let o = self.outdials.get_mut(&id).ok_or(OutdialError::NotFound)?;
        o.outdial.tm_delete = Some(now);
        o.tm_update = Some(now);
        Ok(())
    }

    /// One outdial.
    pub fn get(&self, id: Uuid) -> Option<&SimOutdial> {
        self.outdials.get(&id)
    }

    /// Set the owning campaign.
    pub fn set_campaign(
        &mut self,
        id: Uuid,
        campaign_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<&SimOutdial, OutdialError> {
        let o = self.outdials.get_mut(&id).ok_or(OutdialError::NotFound)?;
        o.outdial.campaign_id = campaign_id;
        o.tm_update = Some(now);
        Ok(o)
    }

    /// One target.
    pub fn target(&self, id: Uuid) -> Option<&SimTarget> {
        self.targets.get(&id)
    }

    /// The targets of an outdial in insertion order.
    pub fn targets_of(&self, outdial_id: Uuid) -> Option<Vec<&SimTarget>> {
        let o = self.outdials.get(&outdial_id)?;
        Some(
            o.targets
                .iter()
                .filter_map(|t| self.targets.get(t))
                .collect(),
        )
    }

    /// The platform's available query: idle targets with a destination left under `max`,
    /// ordered by `tm_update` ascending (NULL first), at most `limit`.
    pub fn available(
        &self,
        outdial_id: Uuid,
        max: &[i32; 5],
        limit: usize,
    ) -> Result<Vec<&SimTarget>, OutdialError> {
        let mut found: Vec<&SimTarget> = self
            .targets_of(outdial_id)
            .ok_or(OutdialError::NotFound)?
            .into_iter()
            .filter(|t| t.status == TargetState::Idle && t.has_tries_left(max))
            .collect();
        // `Option` orders `None` before `Some`, as MySQL orders NULL first in ASC.
        found.sort_by_key(|t| (t.target.tm_update, t.seq));
        found.truncate(limit);
        Ok(found)
    }

    /// A dial attempt starts: `try_count_<index> += 1`, status progressing, `tm_update = now`.
    pub fn progressing(
        &mut self,
        id: Uuid,
        index: usize,
        now: DateTime<Utc>,
    ) -> Result<&SimTarget, OutdialError> {
        let t = self.targets.get_mut(&id).ok_or(OutdialError::NotFound)?;
        let count = t
            .try_count_mut(index)
            .ok_or_else(|| OutdialError::Invalid(format!("destination_index {index}")))?;
        *count += 1;
        let try_count = *count;
        t.status = TargetState::Progressing;
        t.target.tm_update = Some(now);
        self.attempts.push(Attempt {
            target_id: id,
            destination_index: index,
            try_count,
            at: Some(now),
            call_id: None,
            destination: None,
            outcome: None,
            hangup_reason: None,
            talk_ms: None,
            tm_hangup: None,
        });
        Ok(t)
    }

    /// Set a target's status (`tm_update = now`, as outdial-manager's update does).
    pub fn set_status(
        &mut self,
        id: Uuid,
        status: TargetState,
        now: DateTime<Utc>,
    ) -> Result<&SimTarget, OutdialError> {
        let t = self.targets.get_mut(&id).ok_or(OutdialError::NotFound)?;
        t.status = status;
        t.target.tm_update = Some(now);
        Ok(t)
    }

    /// Which target/destination index a call to `address` is most likely for: the matching
    /// target in `progressing` with the latest `tm_update` (else any match).
    pub fn locate(&self, address: &Address) -> Option<(Uuid, usize)> {
        let candidates = self.by_address.get(&address.target)?;
        candidates
            .iter()
            .filter_map(|(id, i)| self.targets.get(id).map(|t| (t, *id, *i)))
            .max_by_key(|(t, _, _)| (t.status == TargetState::Progressing, t.target.tm_update))
            .map(|(_, id, i)| (id, i))
    }

    /// Every progressing call, in order.
    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// Notes the call placed for the newest attempt on `(target, index)` that has none yet.
    pub fn note_call(
        &mut self,
        target: Uuid,
        index: usize,
        call_id: Uuid,
        destination: &str,
        outcome: Outcome,
    ) {
        if let Some(a) =
            self.attempts.iter_mut().rev().find(|a| {
                a.target_id == target && a.destination_index == index && a.call_id.is_none()
            })
        {
            a.call_id = Some(call_id);
            a.destination = Some(destination.to_owned());
            a.outcome = Some(outcome);
        }
    }

    /// Number of targets in each status: (idle, progressing, done).
    pub fn status_counts(&self, outdial_id: Option<Uuid>) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for t in self.targets.values() {
            if outdial_id.is_some_and(|o| o != t.outdial_id) {
                continue;
            }
            match t.status {
                TargetState::Idle => c.0 += 1,
                TargetState::Progressing => c.1 += 1,
                TargetState::Done => c.2 += 1,
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap()
    }

    fn spec(n: usize) -> TargetSpec {
        TargetSpec {
            destinations: (0..n)
                .map(|i| Some(Address::tel(&format!("+1{i}{}", rand_digits()))))
                .collect(),
            ..TargetSpec::default()
        }
    }

    fn rand_digits() -> String {
        Uuid::new_v4().simple().to_string()[..6].to_string()
    }

    const MAX: [i32; 5] = [2, 2, 2, 2, 2];

    #[test]
    fn available_orders_by_tm_update_nulls_first_and_limits() {
        let mut o = Outdials::default();
        let od = o.create(None, Uuid::nil(), "list", t0());
        let a = o.add_target(od, spec(1), t0()).unwrap();
        let b = o.add_target(od, spec(1), t0()).unwrap();
        let c = o
            .add_target(
                od,
                TargetSpec {
                    null_tm_update: true,
                    ..spec(1)
                },
                t0() + chrono::Duration::seconds(5),
            )
            .unwrap();
        let ids = |v: Vec<&SimTarget>| v.iter().map(|t| t.target.id).collect::<Vec<_>>();
        assert_eq!(ids(o.available(od, &MAX, 10).unwrap()), vec![c, a, b]);
        // a tried later → moves to the back once idle again.
        o.progressing(a, 0, t0() + chrono::Duration::seconds(1))
            .unwrap();
        assert_eq!(ids(o.available(od, &MAX, 10).unwrap()), vec![c, b]);
        o.set_status(a, TargetState::Idle, t0() + chrono::Duration::seconds(2))
            .unwrap();
        assert_eq!(ids(o.available(od, &MAX, 10).unwrap()), vec![c, b, a]);
        assert_eq!(ids(o.available(od, &MAX, 1).unwrap()), vec![c]);
        assert!(o.available(od, &MAX, 0).unwrap().is_empty());
        assert_eq!(
            o.available(Uuid::new_v4(), &MAX, 1).unwrap_err(),
            OutdialError::NotFound
        );
    }

    #[test]
    fn max_tries_and_null_destinations() {
        let mut o = Outdials::default();
        let od = o.create(None, Uuid::nil(), "list", t0());
        let t = o
            .add_target(
                od,
                TargetSpec {
                    destinations: vec![None, Some(Address::tel("+2"))],
                    try_counts: vec![0, 1],
                    ..TargetSpec::default()
                },
                t0(),
            )
            .unwrap();
        // destination 0 is null: its zero try count does not make the target available.
        assert_eq!(o.available(od, &[5, 1, 5, 5, 5], 1).unwrap().len(), 0);
        assert_eq!(o.available(od, &[5, 2, 5, 5, 5], 1).unwrap().len(), 1);
        o.progressing(t, 1, t0()).unwrap();
        o.set_status(t, TargetState::Idle, t0()).unwrap();
        assert_eq!(o.target(t).unwrap().target.try_count_1, 2);
        assert!(o.available(od, &[5, 2, 5, 5, 5], 1).unwrap().is_empty());
        assert_eq!(
            o.available(od, &[0, 0, 0, 0, 0], 1).unwrap().len(),
            0,
            "max 0 disables all"
        );
    }

    #[test]
    fn progressing_and_status() {
        let mut o = Outdials::default();
        let od = o.create(None, Uuid::nil(), "list", t0());
        let t = o.add_target(od, spec(3), t0()).unwrap();
        let later = t0() + chrono::Duration::seconds(9);
        let st = o.progressing(t, 2, later).unwrap();
        assert_eq!(st.status, TargetState::Progressing);
        assert_eq!(st.target.try_count_2, 1);
        assert_eq!(st.target.tm_update, Some(later));
        assert!(matches!(
            o.progressing(t, 5, later),
            Err(OutdialError::Invalid(_))
        ));
        assert_eq!(
            o.progressing(Uuid::nil(), 0, later).unwrap_err(),
            OutdialError::NotFound
        );
        o.set_status(t, TargetState::Done, later).unwrap();
        assert!(o.available(od, &MAX, 5).unwrap().is_empty());
        assert_eq!(o.attempts().len(), 1);
        assert_eq!(o.attempts()[0].try_count, 1);
        assert_eq!(o.status_counts(Some(od)), (0, 0, 1));
        let addr = o.target(t).unwrap().target.destination_2.clone().unwrap();
        assert_eq!(o.locate(&addr), Some((t, 2)));
    }

    #[test]
    fn target_json_shape() {
        let mut o = Outdials::default();
        let od = o.create(None, Uuid::nil(), "list", t0());
        let t = o
            .add_target(
                od,
                TargetSpec {
                    destinations: vec![Some(Address::tel("+1"))],
                    ..TargetSpec::default()
                },
                t0(),
            )
            .unwrap();
        let v = serde_json::to_value(o.target(t).unwrap().json()).unwrap();
        assert_eq!(v["status"], "idle");
        assert_eq!(v["destination_0"]["target"], "+1");
        assert!(v["destination_1"].is_null());
        assert_eq!(v["tm_update"], "2026-11-25T10:00:00Z");
        let back: OutdialTarget = serde_json::from_value(v).unwrap();
        assert_eq!(back.id, t);
        let ov = serde_json::to_value(o.get(od).unwrap().json()).unwrap();
        assert_eq!(ov["campaign_id"], "00000000-0000-0000-0000-000000000000");
        assert!(ov["tm_delete"].is_null());
    }
}
