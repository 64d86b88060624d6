//! Steps the black-box tests share: they talk to a running [`TestSystem`] over RabbitMQ only,
//! as the platform would, so a test reads as its scenario instead of the request bodies.

#![allow(dead_code)]

use serde_json::{Value, json};
use uuid::Uuid;

use super::TestSystem;

/// Creates, through the RPC API, an outplan (one try per destination, no retry interval) and a
/// stopped call campaign named `name` over it and `outdial`, with the fields of `extra` added to
/// (or replacing those of) the create body; returns the campaign JSON.
pub async fn create_campaign(
    sys: &TestSystem,
    name: &str,
    customer: Uuid,
    outdial: Uuid,
    extra: Value,
) -> Value {
    let outplan = sys
        .ok(
            "POST",
            "/v1/outplans",
            Some(json!({
                "customer_id": customer, "name": name, "detail": "",
                "source": {"type": "tel", "target": "+15550001000"},
                "dial_timeout": 30000, "try_interval": 0,
                "max_try_count_0": 1, "max_try_count_1": 1, "max_try_count_2": 1,
                "max_try_count_3": 1, "max_try_count_4": 1,
            })),
        )
        .await;
    let mut body = json!({
        "customer_id": customer, "type": "call", "name": name, "detail": "",
        "actions": [{"type": "answer"}], "service_level": 100, "end_handle": "stop",
        "outplan_id": outplan["id"], "outdial_id": outdial,
    });
    if let (Some(b), Some(x)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(x.clone());
    }
    sys.ok("POST", "/v1/campaigns", Some(body)).await
}

/// The `id` of a resource's JSON.
pub fn id_of(v: &Value) -> Uuid {
    Uuid::parse_str(v["id"].as_str().unwrap_or_default()).expect("id")
}

/// Sends `method uri` with `body` and asserts a 400 whose error names `field`.
pub async fn expect_400(sys: &TestSystem, method: &str, uri: &str, body: Value, field: &str) {
    let (status, data_type, data) = sys.rpc(method, uri, Some(body.clone())).await;
    assert_eq!(status, 400, "{body} → {status} {data_type} {data}");
    assert!(
        data.to_string().contains(field),
        "{body}: error does not name {field}: {data}"
    );
}

/// Sends `method uri` with `body` and asserts a 404.
pub async fn expect_404(sys: &TestSystem, method: &str, uri: &str, body: Option<Value>) {
    let (status, data_type, data) = sys.rpc(method, uri, body).await;
    assert_eq!(status, 404, "{method} {uri} → {status} {data_type} {data}");
}

/// `PUT /v1/campaigns/<id>/status` to `status`; returns the campaign as answered.
pub async fn set_status(sys: &TestSystem, id: Uuid, status: &str) -> Value {
    sys.ok(
        "PUT",
        &format!("/v1/campaigns/{id}/status"),
        Some(json!({ "status": status })),
    )
    .await
}
