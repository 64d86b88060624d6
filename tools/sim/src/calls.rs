//! call-manager's state: every call campaign-manager created, and how and when it ended.
//!
//! Creation plans the call's whole life at once (outcome, ring time and hangup delay from the
//! scenario); the transport later calls `hang_up` when the delay has passed, which returns the
//! `call_hangup` payload. Records are never removed so tests can compare them 1:1 with
//! campaigncalls, and `GET /v1/calls/<id>` answers for every call ever created.
//!
//! The call-manager `status` is derived from that plan and the clock, not stored, so it can never
//! disagree with the timers: the create reply says `dialing`; then `ringing` until the ring time
//! has passed; then `progressing` for an answered call (and for a `Silent` one, forever) or
//! `terminating` for a busy, unanswered or failed call whose hangup is due but has not fired yet;
//! `hangup` once ended.
//!
//! `POST /v1/calls/<id>/hangup` ends a live call at once the way call-manager's `HangingUp`
//! does: an answered call goes `terminating` and ends with `normal`; one not answered yet goes
//! `canceling` and ends with `cancel`; an ended call is answered as it is. The reply carries
//! that `terminating` / `canceling` status; the call is `hangup` right after.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::scenario::Outcome;
use crate::model::Address;
use crate::model::json::{format_time, opt_time, uuid_or_nil};

/// Body of `POST /v1/calls/<id>` (docs/contract.md#outbound-calls).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CallCreate {
    /// Flow the call runs.
    #[serde(deserialize_with = "uuid_or_nil")]
    pub flow_id: Uuid,
    /// Activeflow id chosen by the caller.
    #[serde(deserialize_with = "uuid_or_nil")]
    pub activeflow_id: Uuid,
    /// Owner.
    #[serde(deserialize_with = "uuid_or_nil")]
    pub customer_id: Uuid,
    /// Master call (nil).
    #[serde(deserialize_with = "uuid_or_nil")]
    pub master_call_id: Uuid,
    /// Caller id.
    pub source: Option<Address>,
    /// Callee (required).
    pub destination: Option<Address>,
    /// Group call (nil).
    #[serde(deserialize_with = "uuid_or_nil")]
    pub groupcall_id: Uuid,
}

/// One simulated call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRecord {
    /// Call id (chosen by the caller).
    pub id: Uuid,
    /// Owner.
    pub customer_id: Uuid,
    /// Flow id from the request.
    pub flow_id: Uuid,
    /// Activeflow id from the request.
    pub activeflow_id: Uuid,
    /// Caller id.
    pub source: Option<Address>,
    /// Callee.
    pub destination: Address,
    /// Outdial target the destination belongs to, when the simulator knows it.
    pub target_id: Option<Uuid>,
    /// Destination index within that target.
    pub destination_index: Option<usize>,
    /// Planned outcome.
    pub outcome: Outcome,
    /// Planned time from creation to answer (or to the end of ringing, for calls not answered).
    #[serde(serialize_with = "ser_ms")]
    pub ring: Duration,
    /// Planned time from creation to hangup.
    #[serde(serialize_with = "ser_ms")]
    pub duration: Duration,
    /// Created at.
    #[serde(with = "opt_time")]
    pub tm_create: Option<DateTime<Utc>>,
    /// Hung up at (`None` while up, forever for a `Silent` call nobody hangs up).
    #[serde(with = "opt_time")]
    pub tm_hangup: Option<DateTime<Utc>>,
    /// The reason a `POST /v1/calls/<id>/hangup` ends it with (`normal` when it was answered,
    /// `cancel` when not yet), whatever the plan; `None` when nobody asked.
    pub requested_hangup: Option<&'static str>,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl CallRecord {
    /// The `hangup_reason` this call ends with.
    pub fn hangup_reason(&self) -> &'static str {
        self.requested_hangup
            .unwrap_or_else(|| self.outcome.hangup_reason())
    }

    /// Whether the call has hung up.
    pub fn is_ended(&self) -> bool {
        self.tm_hangup.is_some()
    }

    /// call-manager's `status` of this call at `now` (see the module doc).
    pub fn status_at(&self, now: DateTime<Utc>) -> &'static str {
        if self.is_ended() {
            return "hangup";
        }
        if !self.ring_over_at(now) {
            return "ringing";
        }
        if self.outcome.answers() {
            "progressing"
        } else {
            "terminating"
        }
    }

    fn ring_over_at(&self, now: DateTime<Utc>) -> bool {
        let Some(created) = self.tm_create else {
            return true;
        };
        let ring = chrono::Duration::from_std(self.ring).unwrap_or(chrono::Duration::MAX);
        created.checked_add_signed(ring).is_some_and(|t| now >= t)
    }

    fn is_answered_at(&self, now: DateTime<Utc>) -> bool {
        self.outcome.answers() && self.ring_over_at(now)
    }

    /// When the call was answered, if it was by `now`.
    pub fn tm_progressing(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let answered = match self.tm_hangup {
            // An ended call was answered iff its outcome says so (its ring time had passed).
            Some(_) => self.outcome.answers() || self.requested_hangup == Some("normal"),
            None => self.is_answered_at(now),
        };
        if !answered {
            return None;
        }
        let ring = chrono::Duration::from_std(self.ring).ok()?;
        self.tm_create?.checked_add_signed(ring)
    }

    /// call-manager's Call JSON as of `now` (what `GET /v1/calls/<id>` and events carry).
    pub fn json(&self, now: DateTime<Utc>) -> Value {
        self.json_with_status(self.status_at(now), now)
    }

    /// The Call JSON of the create reply: the new call is `dialing`.
    pub fn created_json(&self) -> Value {
        let now = self.tm_create.unwrap_or_default();
        self.json_with_status("dialing", now)
    }

    fn json_with_status(&self, status: &str, now: DateTime<Utc>) -> Value {
        let ts = |t: &Option<DateTime<Utc>>| t.as_ref().map(format_time);
        let (reason, hangup_by) = if self.is_ended() {
            (
                self.hangup_reason(),
                match self.outcome {
                    // The call's own detection ended it.
                    Outcome::Amd => "local",
                    o if o.answers() => "remote",
                    _ => "",
                },
            )
        } else {
            ("", "")
        };
        let tm_progressing = if status == "dialing" {
            None
        } else {
            self.tm_progressing(now)
        };
        json!({
            "id": self.id,
            "customer_id": self.customer_id,
            "owner_type": "",
            "owner_id": Uuid::nil(),
            "channel_id": "",
            "bridge_id": "",
            "flow_id": self.flow_id,
            "activeflow_id": self.activeflow_id,
            "type": "flow",
            "master_call_id": Uuid::nil(),
            "chained_call_ids": [],
            "recording_id": Uuid::nil(),
            "recording_ids": [],
            "groupcall_id": Uuid::nil(),
            "source": self.source.clone().unwrap_or_default(),
            "destination": self.destination,
            "status": status,
            "direction": "outgoing",
            "mute_direction": "",
            "hangup_by": hangup_by,
            "hangup_reason": reason,
            "tm_progressing": ts(&tm_progressing),
            "tm_ringing": ts(&self.tm_create),
            "tm_hangup": ts(&self.tm_hangup),
            "tm_create": ts(&self.tm_create),
            "tm_update": ts(&self.tm_hangup.or(tm_progressing).or(self.tm_create)),
            "tm_delete": null,
        })
    }
}

/// Why a call could not be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// Same id used twice.
    Duplicate,
}

/// All calls, in creation order.
#[derive(Debug, Default)]
pub struct Calls {
    calls: HashMap<Uuid, CallRecord>,
    order: Vec<Uuid>,
}

impl Calls {
    /// Store a new call (already planned by the caller).
    pub fn insert(&mut self, record: CallRecord) -> Result<&CallRecord, CallError> {
        if self.calls.contains_key(&record.id) {
            return Err(CallError::Duplicate);
        }
        let id = record.id;
        self.order.push(id);
        Ok(self.calls.entry(id).or_insert(record))
    }

    /// End a call now; `None` if unknown, already ended or `Silent`.
    pub fn hang_up(&mut self, id: Uuid, now: DateTime<Utc>) -> Option<&CallRecord> {
        let c = self.calls.get_mut(&id)?;
        if c.is_ended() || (c.outcome == Outcome::Silent && c.requested_hangup.is_none()) {
            return None;
        }
        c.tm_hangup = Some(now);
        Some(c)
    }

    /// `POST /v1/calls/<id>/hangup` at `now`: a live call is marked to end at once (whatever
    /// its plan, a `Silent` call too; the transport's [`Calls::hang_up`] then ends it) with
    /// `normal` if it was answered, `cancel` if not. Returns the reply's Call JSON (status
    /// `terminating` / `canceling`, or the ended call as it is), or `None` when there is no such
    /// call.
    pub fn request_hangup(&mut self, id: Uuid, now: DateTime<Utc>) -> Option<Value> {
        let c = self.calls.get_mut(&id)?;
        if c.is_ended() {
            return Some(c.json(now));
        }
        let (reason, status) = if c.is_answered_at(now) {
            ("normal", "terminating")
        } else {
            ("cancel", "canceling")
        };
        c.requested_hangup = Some(reason);
        Some(c.json_with_status(status, now))
    }

    /// One call.
    pub fn get(&self, id: Uuid) -> Option<&CallRecord> {
        self.calls.get(&id)
    }

    /// All calls in creation order.
    pub fn all(&self) -> Vec<CallRecord> {
        self.order
            .iter()
            .filter_map(|id| self.calls.get(id).cloned())
            .collect()
    }

    /// Number of calls.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no call was made yet.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Calls not hung up yet (including `Silent` ones).
    pub fn live(&self) -> usize {
        self.calls.values().filter(|c| !c.is_ended()).count()
    }

    /// Ended calls per outcome.
    pub fn ended_by_outcome(&self) -> HashMap<Outcome, usize> {
        let mut m = HashMap::new();
        for c in self.calls.values().filter(|c| c.is_ended()) {
            *m.entry(c.outcome).or_insert(0) += 1;
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: Outcome) -> CallRecord {
        record_ringing(outcome, Duration::from_millis(10))
    }

    fn record_ringing(outcome: Outcome, ring: Duration) -> CallRecord {
        CallRecord {
            id: Uuid::new_v4(),
            customer_id: Uuid::nil(),
            flow_id: Uuid::new_v4(),
            activeflow_id: Uuid::new_v4(),
            source: None,
            destination: Address::tel("+1"),
            target_id: None,
            destination_index: None,
            outcome,
            ring,
            duration: ring + Duration::from_millis(10),
            tm_create: Some(Utc::now()),
            tm_hangup: None,
            requested_hangup: None,
        }
    }

    #[test]
    fn lifecycle() {
        let mut c = Calls::default();
        let r = record(Outcome::Busy);
        let id = r.id;
        c.insert(r.clone()).unwrap();
        assert_eq!(c.insert(r).unwrap_err(), CallError::Duplicate);
        assert_eq!(c.get(id).unwrap().created_json()["status"], "dialing");
        assert_eq!(c.live(), 1);
        let ended = c.hang_up(id, Utc::now()).unwrap();
        let j = ended.json(Utc::now());
        assert_eq!(j["hangup_reason"], "busy");
        assert_eq!(j["status"], "hangup");
        assert_eq!(j["id"], id.to_string());
        assert!(c.hang_up(id, Utc::now()).is_none(), "hangs up once");
        assert_eq!(c.live(), 0);
        assert_eq!(c.ended_by_outcome()[&Outcome::Busy], 1);
        let silent = record(Outcome::Silent);
        let sid = silent.id;
        c.insert(silent).unwrap();
        assert!(c.hang_up(sid, Utc::now()).is_none());
        assert_eq!(c.len(), 2);
        assert_eq!(c.all()[0].id, id);
    }

    #[test]
    fn status_follows_the_planned_life() {
        let ring = Duration::from_secs(10);
        let at = |r: &CallRecord, secs: i64| r.tm_create.unwrap() + chrono::Duration::seconds(secs);
        for (outcome, after_ring) in [
            (Outcome::Answered, "progressing"),
            (Outcome::Silent, "progressing"),
            (Outcome::Busy, "terminating"),
            (Outcome::NoAnswer, "terminating"),
            (Outcome::Failed, "terminating"),
            (Outcome::Amd, "progressing"),
            (Outcome::Voicemail, "progressing"),
            (Outcome::Talk(5), "progressing"),
        ] {
            let mut r = record_ringing(outcome, ring);
            assert_eq!(r.created_json()["status"], "dialing");
            let ringing = r.json(at(&r, 1));
            assert_eq!(ringing["status"], "ringing", "{outcome:?}");
            assert_eq!(ringing["hangup_reason"], "");
            assert!(ringing["tm_hangup"].is_null());
            assert!(ringing["tm_progressing"].is_null());
            let later = r.json(at(&r, 3600));
            assert_eq!(later["status"], after_ring, "{outcome:?}");
            assert_eq!(
                later["tm_progressing"].is_null(),
                after_ring == "terminating",
                "{outcome:?}"
            );
            if outcome == Outcome::Silent {
                continue;
            }
            r.tm_hangup = Some(at(&r, 20));
            let ended = r.json(at(&r, 30));
            assert_eq!(ended["status"], "hangup");
            assert_eq!(ended["hangup_reason"], outcome.hangup_reason());
            assert!(ended["tm_hangup"].is_string());
        }
    }

    #[test]
    fn create_body_decodes_contract_example() {
        let b: CallCreate = serde_json::from_str(
            r#"{"flow_id":"9574a6d6-c402-11ec-829f-33bd6e27d95f","activeflow_id":"9574a6d6-c402-11ec-829f-33bd6e27d95e","customer_id":"9574a6d6-c402-11ec-829f-33bd6e27d95d",
 "master_call_id":"00000000-0000-0000-0000-000000000000",
 "source":{"type":"tel","target":"+821100000001"},"destination":{"type":"tel","target":"+821100000002"},
 "groupcall_id":"00000000-0000-0000-0000-000000000000"}"#,
        )
        .unwrap();
        assert_eq!(b.destination.unwrap().target, "+821100000002");
        assert!(b.master_call_id.is_nil());
    }
}
