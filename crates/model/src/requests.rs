//! Request bodies of the RPC routes and the list filters, shared by the service (which parses
//! them) and by callers such as `campaign-control` (which serialize them), so both sides read
//! one definition and cannot drift.
//!
//! Each body states what an omitted key means, because the routes differ: `PUT
//! /v1/campaigns/<id>` reads an omitted `name`/`detail`/`service_level` as empty/0 (the
//! platform's caller omits empty values), `PUT /v1/outplans/<id>` keeps omitted fields, and
//! `resource_info` and `dials` overwrite every field. Serializing writes every field a caller
//! set, so a body built here means the same thing to the service whatever the route's rule.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::json::uuid_or_nil;
use super::{
    Action, Address, CallingHours, CampaignStatus, CampaignType, CampaigncallResult,
    CampaigncallStatus, EndHandle, Pacing, RetryRules,
};

/// Body of `POST /v1/campaigns`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CampaignCreate {
    /// Id to use (nil: generated).
    #[serde(default, deserialize_with = "uuid_or_nil")]
    pub id: Uuid,
    /// Owner.
    #[serde(default, deserialize_with = "uuid_or_nil")]
    pub customer_id: Uuid,
    /// `call` or `flow` (required).
    #[serde(rename = "type", default)]
    pub kind: Option<CampaignType>,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Detail.
    #[serde(default)]
    pub detail: String,
    /// Flow actions.
    #[serde(default)]
    pub actions: Option<Vec<Action>>,
    /// Service level in percent (default 0).
    #[serde(default)]
    pub service_level: i32,
    /// `stop` (default) or `continue`.
    #[serde(default)]
    pub end_handle: Option<EndHandle>,
    /// Outplan.
    #[serde(default, deserialize_with = "uuid_or_nil")]
    pub outplan_id: Uuid,
    /// Outdial.
    #[serde(default, deserialize_with = "uuid_or_nil")]
    pub outdial_id: Uuid,
    /// Queue.
    #[serde(default, deserialize_with = "uuid_or_nil")]
    pub queue_id: Uuid,
    /// Next campaign.
    #[serde(default, deserialize_with = "uuid_or_nil")]
    pub next_campaign_id: Uuid,
    /// When it may dial (`None`: any time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calling_hours: Option<CallingHours>,
    /// How hard it may dial (`None`: no limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pacing: Option<Pacing>,
}

/// Body of `PUT /v1/campaigns/<id>` (docs/go-differences.md, item 17). The platform's caller,
/// api-manager, encodes this body with Go's `omitempty` on `name`, `detail`, `service_level`
/// and `end_handle`, so it sends `""` and `0` by leaving the key out: an omitted `name` or
/// `detail` is `""` and an omitted `service_level` is `0` (no dialing). An omitted
/// `end_handle` keeps the current one (`""` is not a value it can mean), and so does an
/// omitted `type` (the platform always sends it; keeping is the harmless reading for other
/// callers). A caller that wants to keep a name, detail or service level sends it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CampaignUpdate {
    /// New name; omitted means `""`.
    #[serde(default)]
    pub name: String,
    /// New detail; omitted means `""`.
    #[serde(default)]
    pub detail: String,
    /// New type; omitted keeps the current one.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<CampaignType>,
    /// New service level in percent; omitted means `0`.
    #[serde(default)]
    pub service_level: i32,
    /// New end handle; omitted keeps the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_handle: Option<EndHandle>,
}

/// Body of `PUT /v1/campaigns/<id>/status`: `run` or `stop` (`stopping` is refused, the
/// service decides it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignStatusUpdate {
    /// Wanted status.
    pub status: CampaignStatus,
}

/// Body of `PUT /v1/campaigns/<id>/service_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceLevelUpdate {
    /// Service level in percent.
    pub service_level: i32,
}

/// Body of `PUT /v1/campaigns/<id>/actions` (omitted or `null`: no actions).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionsUpdate {
    /// The flow actions.
    #[serde(default)]
    pub actions: Option<Vec<Action>>,
}

/// Body of `PUT /v1/campaigns/<id>/resource_info`: every field is written; an omitted or
/// `null` id clears it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceInfoUpdate {
    /// Outplan.
    #[serde(default, deserialize_with = "uuid_or_nil")]
    pub outplan_id: Uuid,
    /// Outdial.
    #[serde(default, deserialize_with = "uuid_or_nil")]
    pub outdial_id: Uuid,
    /// Queue.
    #[serde(default, deserialize_with = "uuid_or_nil")]
    pub queue_id: Uuid,
    /// Next campaign.
    #[serde(default, deserialize_with = "uuid_or_nil")]
    pub next_campaign_id: Uuid,
}

/// Body of `PUT /v1/campaigns/<id>/next_campaign_id` (omitted or `null`: cleared).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextCampaignUpdate {
    /// Next campaign.
    #[serde(default, deserialize_with = "uuid_or_nil")]
    pub next_campaign_id: Uuid,
}

/// Body of `PUT /v1/campaigns/<id>/calling_hours`: the key is required, `null` clears.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallingHoursUpdate {
    /// The new calling hours (`None`: dial at any time).
    pub calling_hours: Option<CallingHours>,
}

/// Body of `PUT /v1/campaigns/<id>/pacing`: the key is required, `null` clears.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PacingUpdate {
    /// The new pacing (`None`: no limits).
    pub pacing: Option<Pacing>,
}

/// Body of `POST /v1/campaigncalls/<id>/finish` (this product's addition): the result an
/// operator gives a campaigncall whose call is known to be gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaigncallFinish {
    /// `success` or `fail`.
    pub result: CampaigncallResult,
    /// `fail` without asking the peer whether the call is gone (absent: false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// Body of `POST /v1/outplans` (the id is always generated).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutplanCreate {
    /// Owner.
    #[serde(default, deserialize_with = "uuid_or_nil")]
    pub customer_id: Uuid,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Detail.
    #[serde(default)]
    pub detail: String,
    /// Dial settings.
    #[serde(flatten)]
    pub dials: OutplanDials,
}

/// Body of `PUT /v1/outplans/<id>/dials`: every field of the platform is written (an omitted
/// number is 0, an omitted source stores `null`); `retry_rules` and `min_talk_ms` (this
/// product's) only when given, `null` clearing them, so a client that does not know them keeps
/// them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutplanDials {
    /// Caller id.
    #[serde(default)]
    pub source: Option<Address>,
    /// Ring timeout, ms.
    #[serde(default)]
    pub dial_timeout: i32,
    /// Retry interval, ms.
    #[serde(default)]
    pub try_interval: i32,
    /// Max tries, destination 0.
    #[serde(default)]
    pub max_try_count_0: i32,
    /// Max tries, destination 1.
    #[serde(default)]
    pub max_try_count_1: i32,
    /// Max tries, destination 2.
    #[serde(default)]
    pub max_try_count_2: i32,
    /// Max tries, destination 3.
    #[serde(default)]
    pub max_try_count_3: i32,
    /// Max tries, destination 4.
    #[serde(default)]
    pub max_try_count_4: i32,
    /// Retry rules: absent keeps them, `null` clears them (docs/contact-strategy.md).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_rules: Option<Option<RetryRules>>,
    /// Minimum talk time of a `normal` hangup, ms: absent keeps it, `null` clears it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_talk_ms: Option<Option<i32>>,
}

/// A key that is present, whatever its value (`null` included): `Some`. With
/// `#[serde(default)]` an absent key stays `None`.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

impl OutplanDials {
    /// The five try counts in destination order.
    pub fn max_try_counts(&self) -> [i32; 5] {
        [
            self.max_try_count_0,
            self.max_try_count_1,
            self.max_try_count_2,
            self.max_try_count_3,
            self.max_try_count_4,
        ]
    }

    /// Sets the five try counts in destination order.
    pub fn set_max_try_counts(&mut self, counts: [i32; 5]) {
        [
            self.max_try_count_0,
            self.max_try_count_1,
            self.max_try_count_2,
            self.max_try_count_3,
            self.max_try_count_4,
        ] = counts;
    }
}

/// Body of `PUT /v1/outplans/<id>`: omitted fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutplanUpdate {
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Filter object of `GET /v1/campaigns?...` as a caller builds it (the service accepts any
/// whitelisted column, see `store::filter`; these are the ones callers use). Unset fields
/// are left out, and the filters given are combined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignFilters {
    /// Only this customer's campaigns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<Uuid>,
    /// Only campaigns in this status (e.g. every running campaign, across customers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CampaignStatus>,
    /// `false`: only live rows; `true`: only deleted ones; unset: both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
}

/// Filter object of `GET /v1/campaigncalls?...` as a caller builds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaigncallFilters {
    /// Only calls of this campaign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<Uuid>,
    /// Only calls of this customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<Uuid>,
    /// Only calls in this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CampaigncallStatus>,
    /// `false`: only live rows; `true`: only deleted ones; unset: both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
}

/// Filter object of `GET /v1/outplans?...` as a caller builds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutplanFilters {
    /// Only this customer's outplans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<Uuid>,
    /// `false`: only live rows; `true`: only deleted ones; unset: both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_leave_out_what_is_unset() {
        let f = CampaignFilters {
            status: Some(CampaignStatus::Run),
            deleted: Some(false),
            ..CampaignFilters::default()
        };
        assert_eq!(
            serde_json::to_value(f).unwrap(),
            json!({"status": "run", "deleted": false})
        );
        assert_eq!(
            serde_json::to_value(OutplanUpdate {
                name: Some("n".into()),
                detail: None
            })
            .unwrap(),
            json!({"name": "n"})
        );
    }

    #[test]
    fn bodies_read_what_they_write() {
        let mut d = OutplanDials::default();
        d.set_max_try_counts([1, 2, 3, 4, 5]);
        assert_eq!(d.max_try_counts(), [1, 2, 3, 4, 5]);
        let c = OutplanCreate {
            customer_id: Uuid::new_v4(),
            name: "p".into(),
            detail: String::new(),
            dials: d,
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["max_try_count_4"], 5, "dials are flattened: {v}");
        assert_eq!(serde_json::from_value::<OutplanCreate>(v).unwrap(), c);
        let r: ResourceInfoUpdate = serde_json::from_value(json!({"queue_id": null})).unwrap();
        assert!(r.queue_id.is_nil() && r.outdial_id.is_nil());
        let s: CampaignStatusUpdate = serde_json::from_value(json!({"status": "run"})).unwrap();
        assert_eq!(s.status, CampaignStatus::Run);
        assert!(serde_json::from_value::<CampaignStatusUpdate>(json!({"status": "RUN"})).is_err());
    }
}
