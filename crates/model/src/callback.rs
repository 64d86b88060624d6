//! Callbacks: a callee who said "call me at 6" is dialed at 6 (docs/contact-strategy.md). This
//! module owns the record and the checked create request; the rules of when it is dialed are
//! the tick's (`service::callbacks`) and the dial's transaction's (`store::callbacks`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

use super::json::{format_time, opt_time, uuid_or_nil};

/// Destinations an outdial target has (`destination_0` to `destination_4`).
pub const DESTINATIONS: i32 = 5;

/// A callback of a campaign: one destination of one of its outdial's targets, dialed at `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callback {
    /// Callback id.
    pub id: Uuid,
    /// The campaign's customer.
    pub customer_id: Uuid,
    /// The campaign that dials it.
    pub campaign_id: Uuid,
    /// The target of the campaign's outdial to call back.
    pub outdial_target_id: Uuid,
    /// Which of the target's destinations (0 to 4) is dialed.
    pub destination_index: i32,
    /// The time asked for: the target is not dialed before it, and is dialed from it.
    #[serde(serialize_with = "write_at", deserialize_with = "read_at")]
    pub at: DateTime<Utc>,
    /// The campaigncall of its dial, once one is recorded; omitted before. A dial that placed
    /// no call (refused, abandoned) leaves it set but frees the callback for the next tick.
    #[serde(
        default,
        deserialize_with = "opt_uuid",
        skip_serializing_if = "Option::is_none"
    )]
    pub campaigncall_id: Option<Uuid>,
    /// When it was created.
    #[serde(default, with = "opt_time")]
    pub tm_create: Option<DateTime<Utc>>,
}

fn write_at<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(t))
}

fn read_at<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    opt_time::deserialize(d)?.ok_or_else(|| serde::de::Error::custom("at is required"))
}

fn opt_uuid<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Uuid>, D::Error> {
    let id = uuid_or_nil(d)?;
    Ok((!id.is_nil()).then_some(id))
}

/// The body of `POST /v1/campaigns/<id>/callbacks`, checked ([`CallbackCreate::parse`]).
/// Whether the target is in the campaign's outdial and has the destination is the service's
/// to check (it asks outdial-manager).
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackCreate {
    /// The target to call back.
    pub outdial_target_id: Uuid,
    /// Its destination to dial (0 to 4).
    pub destination_index: i32,
    /// When.
    pub at: DateTime<Utc>,
}

impl CallbackCreate {
    /// Checks every field of the request body, naming the first bad one. `now` is the caller's
    /// clock, only to refuse a time already past.
    pub fn parse(
        body: &serde_json::Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<CallbackCreate, String> {
        let outdial_target_id = match body.get("outdial_target_id") {
            Some(Value::String(s)) => Uuid::parse_str(s)
                .ok()
                .filter(|id| !id.is_nil())
                .ok_or_else(|| format!("outdial_target_id must be a non-nil UUID, got {s:?}"))?,
            None | Some(Value::Null) => return Err("outdial_target_id is required".into()),
            Some(other) => {
                return Err(format!(
                    "outdial_target_id must be a UUID string, got {other}"
                ));
            }
        };
        let destination_index = match body.get("destination_index") {
            Some(Value::Number(n)) => n
                .as_i64()
                .filter(|i| (0..i64::from(DESTINATIONS)).contains(i))
                .map(|i| i as i32)
                .ok_or_else(|| format!("destination_index must be 0 to 4, got {n}"))?,
            None | Some(Value::Null) => return Err("destination_index is required".into()),
            Some(other) => {
                return Err(format!(
                    "destination_index must be an integer 0 to 4, got {other}"
                ));
            }
        };
        let at = match body.get("at") {
            Some(Value::String(s)) => {
                let t = DateTime::parse_from_rfc3339(s)
                    .map_err(|_| format!("at must be an RFC 3339 time, got {s:?}"))?
                    .with_timezone(&Utc);
                if t <= now {
                    return Err(format!("at {s:?} is in the past"));
                }
                t
            }
            None | Some(Value::Null) => return Err("at is required".into()),
            Some(other) => return Err(format!("at must be an RFC 3339 string, got {other}")),
        };
        Ok(CallbackCreate {
            outdial_target_id,
            destination_index,
            at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().expect("object").clone()
    }

    #[test]
    fn every_bad_field_is_named() {
        let now = Utc::now();
        let t = "3653adb2-c454-11ec-8c9f-7bcd6924ee69";
        let later = (now + chrono::Duration::hours(1)).to_rfc3339();
        let cases = [
            (
                serde_json::json!({"destination_index": 0, "at": later}),
                "outdial_target_id",
            ),
            (
                serde_json::json!({"outdial_target_id": "x", "destination_index": 0, "at": later}),
                "outdial_target_id",
            ),
            (
                serde_json::json!({"outdial_target_id": Uuid::nil(), "destination_index": 0, "at": later}),
                "outdial_target_id",
            ),
            (
                serde_json::json!({"outdial_target_id": t, "at": later}),
                "destination_index",
            ),
            (
                serde_json::json!({"outdial_target_id": t, "destination_index": 5, "at": later}),
                "destination_index",
            ),
            (
                serde_json::json!({"outdial_target_id": t, "destination_index": -1, "at": later}),
                "destination_index",
            ),
            (
                serde_json::json!({"outdial_target_id": t, "destination_index": "0", "at": later}),
                "destination_index",
            ),
            (
                serde_json::json!({"outdial_target_id": t, "destination_index": 0}),
                "at",
            ),
            (
                serde_json::json!({"outdial_target_id": t, "destination_index": 0, "at": "6pm"}),
                "at",
            ),
            (
                serde_json::json!({"outdial_target_id": t, "destination_index": 0, "at": "2020-01-01T00:00:00Z"}),
                "at",
            ),
        ];
        for (b, field) in cases {
            let e = CallbackCreate::parse(&body(b.clone()), now).expect_err(&b.to_string());
            assert!(e.starts_with(field), "{b}: {e}");
        }
        let ok = CallbackCreate::parse(
            &body(serde_json::json!({"outdial_target_id": t, "destination_index": 4, "at": later})),
            now,
        )
        .expect("valid");
        assert_eq!(ok.destination_index, 4);
    }

    #[test]
    fn campaigncall_id_is_omitted_until_dialed() {
        let mut c = Callback {
            id: Uuid::new_v4(),
            customer_id: Uuid::new_v4(),
            campaign_id: Uuid::new_v4(),
            outdial_target_id: Uuid::new_v4(),
            destination_index: 1,
            at: Utc::now(),
            campaigncall_id: None,
            tm_create: Some(Utc::now()),
        };
        let v = serde_json::to_value(&c).expect("json");
        let keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "id",
                "customer_id",
                "campaign_id",
                "outdial_target_id",
                "destination_index",
                "at",
                "tm_create"
            ]
        );
        c.campaigncall_id = Some(Uuid::new_v4());
        let back: Callback =
            serde_json::from_value(serde_json::to_value(&c).expect("json")).expect("read");
        assert_eq!(back.campaigncall_id, c.campaigncall_id);
        assert_eq!(back.at.timestamp_micros(), c.at.timestamp_micros());
    }
}
