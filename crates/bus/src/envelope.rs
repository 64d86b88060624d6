//! The bus's wire envelopes (docs/contract.md#envelopes): `Request`, `Response` and `Event`.
//!
//! These are the only types that cross the AMQP boundary, so their serde shape is the contract:
//! field order is the Go struct order, `data` is an embedded raw JSON value (never base64) that is
//! omitted when absent, and `request_id` is omitted when empty. Decoding is as lenient as Go's
//! `encoding/json` for missing fields (they become `""`), so a peer omitting e.g. `data_type`
//! is still understood.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

/// Service name used as `publisher` in every envelope we produce.
pub const PUBLISHER: &str = "campaign-manager";

/// `data_type` of JSON bodies.
pub const DATA_TYPE_JSON: &str = "application/json";

/// Keeps an explicit JSON `null` as `Some(raw "null")` (Go's `json.RawMessage` does the same);
/// an absent field stays `None` through `#[serde(default)]`.
fn raw_keep_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

fn is_none_or_empty(v: &Option<String>) -> bool {
    v.as_deref().is_none_or(str::is_empty)
}

/// Serialize `value` into a raw JSON value.
pub fn to_raw<T: Serialize + ?Sized>(value: &T) -> Result<Box<RawValue>, serde_json::Error> {
    serde_json::value::to_raw_value(value)
}

/// An RPC request (`sock.Request`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// Path plus optional query, e.g. `/v1/campaigns?page_size=10`.
    #[serde(default)]
    pub uri: String,
    /// `POST`, `GET`, `PUT` or `DELETE`.
    #[serde(default)]
    pub method: String,
    /// Name of the sending service.
    #[serde(default)]
    pub publisher: String,
    /// Usually `application/json`; never checked.
    #[serde(default)]
    pub data_type: String,
    /// Raw JSON body; omitted when `None`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "raw_keep_null"
    )]
    pub data: Option<Box<RawValue>>,
    /// Optional request id; omitted when `None` or empty.
    #[serde(default, skip_serializing_if = "is_none_or_empty")]
    pub request_id: Option<String>,
}

impl Request {
    /// A request without body, `publisher = campaign-manager`, `data_type = application/json`.
    pub fn new(method: impl Into<String>, uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            method: method.into(),
            publisher: PUBLISHER.to_string(),
            data_type: DATA_TYPE_JSON.to_string(),
            data: None,
            request_id: None,
        }
    }

    /// Attach `body` serialized as the raw JSON `data`.
    pub fn with_json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Self, serde_json::Error> {
        self.data = Some(to_raw(body)?);
        Ok(self)
    }

    /// Replace `data_type` (e.g. `""` for activeflow execute).
    pub fn with_data_type(mut self, data_type: impl Into<String>) -> Self {
        self.data_type = data_type.into();
        self
    }

    /// Decode `data` into `T`; a missing body decodes as JSON `null`.
    pub fn data_as<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.data.as_deref().map_or("null", RawValue::get))
    }
}

/// An RPC response (`sock.Response`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    /// HTTP-like status code.
    #[serde(default)]
    pub status_code: u16,
    /// `application/json`, `voipbin_error` or `""`.
    #[serde(default)]
    pub data_type: String,
    /// Raw JSON body; omitted when `None`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "raw_keep_null"
    )]
    pub data: Option<Box<RawValue>>,
}

impl Response {
    /// A bare status reply: `{"status_code":<code>,"data_type":""}`.
    pub fn status(status_code: u16) -> Self {
        Self {
            status_code,
            data_type: String::new(),
            data: None,
        }
    }

    /// A reply with `data_type = application/json` and `body` as `data`.
    ///
    /// Serialization of a plain data struct cannot realistically fail; if it does, the failure is
    /// logged and a bare `500` is returned instead of panicking.
    pub fn json<T: Serialize + ?Sized>(status_code: u16, body: &T) -> Self {
        match to_raw(body) {
            Ok(raw) => Self {
                status_code,
                data_type: DATA_TYPE_JSON.to_string(),
                data: Some(raw),
            },
            Err(error) => {
                tracing::error!(%error, "cannot serialize response body");
                Self::status(500)
            }
        }
    }

    /// A reply with an explicit `data_type` and optional raw data.
    pub fn new(
        status_code: u16,
        data_type: impl Into<String>,
        data: Option<Box<RawValue>>,
    ) -> Self {
        Self {
            status_code,
            data_type: data_type.into(),
            data,
        }
    }

    /// `true` for 2xx status codes.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status_code)
    }

    /// Decode `data` into `T`; a missing body decodes as JSON `null`.
    pub fn data_as<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.data.as_deref().map_or("null", RawValue::get))
    }
}

/// An event published on a fanout exchange (`sock.Event`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// Event type, e.g. `campaign_created`.
    #[serde(default, rename = "type")]
    pub r#type: String,
    /// Name of the publishing service.
    #[serde(default)]
    pub publisher: String,
    /// Usually `application/json`.
    #[serde(default)]
    pub data_type: String,
    /// Raw JSON resource; omitted when `None`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "raw_keep_null"
    )]
    pub data: Option<Box<RawValue>>,
}

impl Event {
    /// An event from `campaign-manager` with `body` as JSON `data`.
    pub fn json<T: Serialize + ?Sized>(
        event_type: impl Into<String>,
        body: &T,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            r#type: event_type.into(),
            publisher: PUBLISHER.to_string(),
            data_type: DATA_TYPE_JSON.to_string(),
            data: Some(to_raw(body)?),
        })
    }

    /// Decode `data` into `T`; a missing body decodes as JSON `null`.
    pub fn data_as<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.data.as_deref().map_or("null", RawValue::get))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_shape() {
        let r = Request::new("POST", "/v1/campaigns/x/execute");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"uri":"/v1/campaigns/x/execute","method":"POST","publisher":"campaign-manager","data_type":"application/json"}"#
        );
        let mut r = r.with_json(&serde_json::json!({"a":1})).unwrap();
        r.request_id = Some(String::new());
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"uri":"/v1/campaigns/x/execute","method":"POST","publisher":"campaign-manager","data_type":"application/json","data":{"a":1}}"#
        );
        r.request_id = Some("rid".into());
        assert!(
            serde_json::to_string(&r)
                .unwrap()
                .ends_with(r#","request_id":"rid"}"#)
        );
    }

    #[test]
    fn response_shape() {
        assert_eq!(
            serde_json::to_string(&Response::status(404)).unwrap(),
            r#"{"status_code":404,"data_type":""}"#
        );
        assert_eq!(
            serde_json::to_string(&Response::json(200, &serde_json::json!({"id":"x"}))).unwrap(),
            r#"{"status_code":200,"data_type":"application/json","data":{"id":"x"}}"#
        );
        let r: Response = serde_json::from_str(r#"{"status_code":200,"data":null}"#).unwrap();
        assert_eq!(r.data.as_deref().map(RawValue::get), Some("null"));
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"status_code":200,"data_type":"","data":null}"#
        );
        let r: Response = serde_json::from_str(r#"{"status_code":204}"#).unwrap();
        assert!(r.data.is_none());
        assert!(r.is_success());
    }

    #[test]
    fn event_shape() {
        let e = Event::json("campaign_created", &serde_json::json!({"id":"x"})).unwrap();
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"campaign_created","publisher":"campaign-manager","data_type":"application/json","data":{"id":"x"}}"#
        );
        let back: Event = serde_json::from_slice(&serde_json::to_vec(&e).unwrap()).unwrap();
        assert_eq!(back.r#type, "campaign_created");
    }
}
