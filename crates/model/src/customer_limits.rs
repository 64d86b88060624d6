//! Customer-wide dial limits (docs/contact-strategy.md "Customer-wide limits"): the same two
//! limits as a campaign's [`Pacing`], applied to all of one customer's campaigns together.
//! This module owns the record and the parse of `PUT /v1/customers/<id>/dial_limits`, which
//! reuses the pacing's validation so both refuse the same values with the same messages (here
//! naming the body's field, e.g. `dials_per_second: ...`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::Pacing;
use super::json::opt_time;

/// A customer's dial limits. Both `None`: no limits (nothing is stored then).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerDialLimits {
    /// The customer.
    pub customer_id: Uuid,
    /// Most calls of all the customer's campaigns up at once; `null`: no cap.
    pub max_concurrent_calls: Option<i64>,
    /// Most dials per second of all the customer's campaigns; `null`: no rate.
    pub dials_per_second: Option<f64>,
    /// When the limits were last set; `null` when none are set.
    #[serde(default, with = "opt_time")]
    pub tm_update: Option<DateTime<Utc>>,
}

impl CustomerDialLimits {
    /// No limits for the customer.
    pub fn none(customer_id: Uuid) -> CustomerDialLimits {
        CustomerDialLimits {
            customer_id,
            max_concurrent_calls: None,
            dials_per_second: None,
            tm_update: None,
        }
    }

    /// The limits as a campaign's pacing (the same rules apply).
    pub fn pacing(&self) -> Pacing {
        Pacing {
            max_concurrent_calls: self.max_concurrent_calls,
            dials_per_second: self.dials_per_second,
        }
    }

    /// Whether any limit is set.
    pub fn is_set(&self) -> bool {
        self.max_concurrent_calls.is_some() || self.dials_per_second.is_some()
    }
}

/// Parses the body of `PUT /v1/customers/<id>/dial_limits`: an object with the optional,
/// nullable keys `max_concurrent_calls` and `dials_per_second` (an absent key is `null`: the
/// body replaces both). A bad value is an error naming its field; unknown keys are refused.
pub fn parse_dial_limits(body: Value) -> Result<Pacing, String> {
    if !body.is_object() {
        return Err("request body must be a JSON object".into());
    }
    Pacing::try_from(body).map_err(|e| e.strip_prefix("pacing.").map(str::to_owned).unwrap_or(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_like_pacing_and_names_the_bare_field() {
        let p =
            parse_dial_limits(json!({"max_concurrent_calls": 4, "dials_per_second": 2})).unwrap();
        assert_eq!(p.max_concurrent_calls, Some(4));
        assert_eq!(p.dials_per_second, Some(2.0));
        assert_eq!(parse_dial_limits(json!({})).unwrap(), Pacing::default());
        for (body, field) in [
            (json!({"max_concurrent_calls": -1}), "max_concurrent_calls:"),
            (
                json!({"max_concurrent_calls": 1.5}),
                "max_concurrent_calls:",
            ),
            (json!({"dials_per_second": 0}), "dials_per_second:"),
            (json!({"dials_per_second": 51}), "dials_per_second:"),
            (json!({"dials_per_second": "x"}), "dials_per_second:"),
            (json!({"rate": 1}), "rate:"),
            (json!([1]), "request body must be a JSON object"),
        ] {
            let e = parse_dial_limits(body.clone()).unwrap_err();
            assert!(e.starts_with(field), "{body}: {e}");
        }
    }

    #[test]
    fn serializes_both_limits_even_when_unset() {
        let id = Uuid::nil();
        let v = serde_json::to_value(CustomerDialLimits::none(id)).unwrap();
        assert_eq!(
            v,
            json!({"customer_id": id, "max_concurrent_calls": null,
                   "dials_per_second": null, "tm_update": null})
        );
    }
}
