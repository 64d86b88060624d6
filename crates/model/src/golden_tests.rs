//! Golden JSON: the platform's record examples (docs/contract.md#json-records), byte for byte, both ways.

use super::*;
use serde_json::json;

const CAMPAIGN: &str = r#"{"id":"3653adb2-c454-11ec-8c9f-7bcd6924ee69","customer_id":"60f76478-c454-11ec-969b-13906a5eea9d","type":"call","execute":"stop","name":"test name","detail":"test detail","status":"stop","service_level":100,"end_handle":"stop","flow_id":"9574a6d6-c402-11ec-829f-33bd6e27d95f","actions":[{"id":"00000000-0000-0000-0000-000000000000","next_id":"00000000-0000-0000-0000-000000000000","type":"answer","tm_execute":null}],"outplan_id":"612a9186-c454-11ec-8afa-4327f7ed3a4e","outdial_id":"615dce2a-c454-11ec-aefb-a32f5d072685","queue_id":"00000000-0000-0000-0000-000000000000","next_campaign_id":"00000000-0000-0000-0000-000000000000","tm_create":"2022-04-25T10:11:12.123456Z","tm_update":null,"tm_delete":null}"#;

const OUTPLAN: &str = r#"{"id":"3ca9708e-c463-11ec-95e7-53d07a0e8bb2","customer_id":"99f40c64-c462-11ec-b1e4-57c64041ff4e","name":"test name","detail":"test detail","source":{"type":"tel","target":"+821100000001"},"dial_timeout":30000,"try_interval":600000,"max_try_count_0":5,"max_try_count_1":5,"max_try_count_2":5,"max_try_count_3":5,"max_try_count_4":5,"tm_create":"2022-04-25T10:11:12.123456Z","tm_update":null,"tm_delete":null}"#;

const CAMPAIGNCALL: &str = r#"{"id":"a1b2c3d4-c454-11ec-8c9f-7bcd6924ee69","customer_id":"60f76478-c454-11ec-969b-13906a5eea9d","campaign_id":"3653adb2-c454-11ec-8c9f-7bcd6924ee69","outplan_id":"612a9186-c454-11ec-8afa-4327f7ed3a4e","outdial_id":"615dce2a-c454-11ec-aefb-a32f5d072685","outdial_target_id":"7d1f9a5e-c454-11ec-9a3f-9ba245ef6dec","queue_id":"00000000-0000-0000-0000-000000000000","activeflow_id":"8e2a0b6f-c454-11ec-9a3f-9ba245ef6dec","flow_id":"9574a6d6-c402-11ec-829f-33bd6e27d95f","reference_type":"call","reference_id":"9f3b1c70-c454-11ec-9a3f-9ba245ef6dec","status":"done","result":"","source":{"type":"tel","target":"+821100000001"},"destination":{"type":"tel","target":"+821100000002"},"destination_index":0,"try_count":1,"tm_create":"2020-04-18T03:22:17.995Z","tm_update":"2020-10-10T03:30:17Z","tm_delete":null}"#;

fn roundtrip<T: serde::Serialize + serde::de::DeserializeOwned>(golden: &str) -> T {
    let parsed: T = serde_json::from_str(golden).expect("parse golden");
    assert_eq!(serde_json::to_string(&parsed).expect("serialize"), golden);
    parsed
}

#[test]
fn campaign_is_byte_compatible() {
    let c: Campaign = roundtrip(CAMPAIGN);
    assert_eq!(c.kind, CampaignType::Call);
    assert_eq!(c.tm_update, None);
}

#[test]
fn campaign_webhook_drops_execute_and_flow_id() {
    let c: Campaign = serde_json::from_str(CAMPAIGN).unwrap();
    let hook = serde_json::to_string(&c.webhook()).unwrap();
    let expected = CAMPAIGN
        .replace(r#""execute":"stop","#, "")
        .replace(r#""flow_id":"9574a6d6-c402-11ec-829f-33bd6e27d95f","#, "");
    assert_eq!(hook, expected);
}

#[test]
fn outplan_is_byte_compatible() {
    let o: Outplan = roundtrip(OUTPLAN);
    assert_eq!(o.max_try_counts(), [5; 5]);
}

#[test]
fn campaigncall_is_byte_compatible() {
    let c: Campaigncall = roundtrip(CAMPAIGNCALL);
    assert_eq!(c.result, CampaigncallResult::None);
    assert_eq!(c.status, CampaigncallStatus::Done);
}

#[test]
fn address_omits_empty_fields() {
    assert_eq!(serde_json::to_string(&Address::default()).unwrap(), "{}");
    let a: Address = serde_json::from_str(r#"{"type":"sip","target":"a@b","name":"n"}"#).unwrap();
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        r#"{"type":"sip","target":"a@b","name":"n"}"#
    );
}

#[test]
fn queue_join_action_matches_contract() {
    let id = uuid::Uuid::parse_str("8de92286-c3f6-11ec-bade-ff667a1ea0af").unwrap();
    assert_eq!(
        serde_json::to_string(&Action::queue_join(id)).unwrap(),
        r#"{"id":"00000000-0000-0000-0000-000000000000","next_id":"00000000-0000-0000-0000-000000000000","type":"queue_join","option":{"queue_id":"8de92286-c3f6-11ec-bade-ff667a1ea0af"},"tm_execute":null}"#
    );
    // An action given as just a type reads with nil ids.
    let a: Action = serde_json::from_str(r#"{"type":"answer","id":null}"#).unwrap();
    assert_eq!(a.id, uuid::Uuid::nil());
}

#[test]
fn unknown_enum_values_are_errors_not_panics() {
    let bad = CAMPAIGN.replace(r#""type":"call""#, r#""type":"sms""#);
    let err = serde_json::from_str::<Campaign>(&bad).unwrap_err();
    assert!(err.to_string().contains("unknown variant"), "{err}");
    assert!(parse_enum::<CampaignStatus>("status", "flying").is_err());
    assert_eq!(
        parse_enum::<EndHandle>("end_handle", "continue"),
        Ok(EndHandle::Continue)
    );
    assert_eq!(enum_str(&CampaigncallResult::None), "");
}

#[test]
fn peer_records_tolerate_extra_and_missing_fields() {
    let t: OutdialTarget = serde_json::from_value(json!({
        "id": "7d1f9a5e-c454-11ec-9a3f-9ba245ef6dec", "status": "idle",
        "destination_0": {"type": "tel", "target": "+1"}, "destination_1": null,
        "try_count_0": 2, "tm_create": "2022-04-25T10:11:12.123456Z", "tm_update": null,
        "something_new": [1, 2]
    }))
    .unwrap();
    assert_eq!(t.try_count_0, 2);
    assert!(t.destination_1.is_none());
    let call: Call =
        serde_json::from_value(json!({"id": "7d1f9a5e-c454-11ec-9a3f-9ba245ef6dec"})).unwrap();
    assert_eq!(call.hangup_reason, "");
}

#[test]
fn uuid_inputs_like_gofrs() {
    for s in [
        "\"3653adb2-c454-11ec-8c9f-7bcd6924ee69\"",
        "\"{3653adb2-c454-11ec-8c9f-7bcd6924ee69}\"",
        "\"urn:uuid:3653adb2-c454-11ec-8c9f-7bcd6924ee69\"",
        "\"3653adb2c45411ec8c9f7bcd6924ee69\"",
    ] {
        let a: Activeflow = serde_json::from_str(&format!("{{\"id\":{s}}}")).unwrap();
        assert_eq!(a.id.to_string(), "3653adb2-c454-11ec-8c9f-7bcd6924ee69");
    }
    let a: Activeflow = serde_json::from_str(r#"{"id":null}"#).unwrap();
    assert!(a.id.is_nil());
    assert!(serde_json::from_str::<Activeflow>(r#"{"id":""}"#).is_err());
}
