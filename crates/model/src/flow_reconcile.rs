//! The orphaned-flow reconcile pass's wire data (`POST /v1/campaigns/flows/reconcile`,
//! docs/contract.md#orphaned-flows): the request body's one setting and the reply, with the
//! platform's keys in the platform's order.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What one pass did. Counts are of the candidates examined (campaigns deleted in the scan
/// window, newest first); the flags say how complete the pass was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowReconcile {
    /// Flows still live under a deleted campaign, deleted now.
    pub cleaned: u64,
    /// Candidates needing nothing: the flow is deleted already or does not exist.
    pub skipped: u64,
    /// Candidates whose flow could not be read (anything but a typed 404) or deleted; tried
    /// again by the next pass.
    pub failed: u64,
    /// The scan returned its limit: the window holds more deleted campaigns than one pass
    /// reads (informational).
    pub saturated: bool,
    /// The campaigns deleted within `recent_interval_sec` alone fill the limit: deletions
    /// outpace the passes (act on it: shorten the interval).
    pub recent_saturated: bool,
    /// The pass's time cap cut it short; the counts cover what was examined.
    pub partial: bool,
}

/// `recent_interval_sec` of a request body: `Ok(None)` when the body, the key or its value is
/// absent or `null`, or the value is 0 (the caller's default then applies); an integer number
/// of seconds otherwise. Anything else is an error naming the field.
pub fn recent_interval_sec(body: Option<&Value>) -> Result<Option<u64>, String> {
    let object = match body {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(_) => return Err("the request body must be a JSON object".into()),
    };
    match object.get("recent_interval_sec") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
            (Some(0), _) => Ok(None),
            (Some(secs), _) => Ok(Some(secs)),
            (None, Some(_)) => Err(
                "recent_interval_sec must not be negative (leave it out, or 0, for 24 hours)"
                    .into(),
            ),
            (None, None) => Err("recent_interval_sec must be a whole number of seconds".into()),
        },
        Some(_) => Err("recent_interval_sec must be a whole number of seconds".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_reply_has_the_platforms_keys_in_order() {
        let r = FlowReconcile {
            cleaned: 2,
            skipped: 3,
            recent_saturated: true,
            ..FlowReconcile::default()
        };
        assert_eq!(
            serde_json::to_string(&r).expect("json"),
            r#"{"cleaned":2,"skipped":3,"failed":0,"saturated":false,"recent_saturated":true,"partial":false}"#
        );
    }

    #[test]
    fn recent_interval_is_read_like_the_platform_and_bad_values_name_the_field() {
        for (body, want) in [
            (None, None),
            (Some(json!(null)), None),
            (Some(json!({})), None),
            (Some(json!({"recent_interval_sec": null})), None),
            (Some(json!({"recent_interval_sec": 0})), None),
            (
                Some(json!({"recent_interval_sec": 21600, "other": "x"})),
                Some(21600),
            ),
        ] {
            assert_eq!(recent_interval_sec(body.as_ref()), Ok(want), "{body:?}");
        }
        for body in [
            json!({"recent_interval_sec": -1}),
            json!({"recent_interval_sec": 1.5}),
            json!({"recent_interval_sec": "3600"}),
            json!({"recent_interval_sec": [3600]}),
            json!({"recent_interval_sec": 1e30}),
        ] {
            let e = recent_interval_sec(Some(&body)).unwrap_err();
            assert!(e.contains("recent_interval_sec"), "{body}: {e}");
        }
        let e = recent_interval_sec(Some(&json!([1]))).unwrap_err();
        assert!(e.contains("JSON object"), "{e}");
    }
}
