//! Pacing (docs/pacing.md): how hard a campaign may dial. Two independent limits, each
//! optional (omitted or `null`: no limit of that kind):
//! - `max_concurrent_calls`: an integer ≥ 0, the most calls of the campaign up at once
//!   (campaigncalls `dialing` or `progressing`); `0` dials nothing.
//! - `dials_per_second`: a number in `0.1..=50`; the tick waits `1000 / R` ms after a dial.
//!
//! Validation happens while parsing (`TryFrom<serde_json::Value>`), so a bad value is refused
//! wherever the field arrives (`POST /v1/campaigns`, `PUT .../pacing`, a stored row) with a
//! message naming the field, e.g. `pacing.dials_per_second: ...`. Unknown keys are refused too,
//! so a misspelt limit is not silently ignored.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Smallest accepted `dials_per_second`.
pub const MIN_DIALS_PER_SECOND: f64 = 0.1;
/// Largest accepted `dials_per_second`.
pub const MAX_DIALS_PER_SECOND: f64 = 50.0;

/// The campaign field `pacing`, as given and returned.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(try_from = "Value")]
pub struct Pacing {
    /// Most calls up at once (`None`: no cap; `0`: dial nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_calls: Option<i64>,
    /// Most dials per second (`None`: the tick's default after-dial delay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dials_per_second: Option<f64>,
}

impl Pacing {
    /// Checks both limits; the error names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(n) = self.max_concurrent_calls
            && n < 0
        {
            return Err(format!(
                "pacing.max_concurrent_calls: {n} is negative (an integer >= 0; 0 dials nothing)"
            ));
        }
        if let Some(r) = self.dials_per_second
            && !(MIN_DIALS_PER_SECOND..=MAX_DIALS_PER_SECOND).contains(&r)
        {
            return Err(format!(
                "pacing.dials_per_second: {r} is out of range \
                 ({MIN_DIALS_PER_SECOND}..={MAX_DIALS_PER_SECOND})"
            ));
        }
        Ok(())
    }

    /// The wait after a dial, `1000 / dials_per_second` ms (`None`: no rate limit).
    pub fn dial_delay(&self) -> Option<Duration> {
        self.dials_per_second
            .filter(|r| *r > 0.0 && r.is_finite())
            .map(|r| Duration::from_secs_f64(1.0 / r))
    }
}

impl TryFrom<Value> for Pacing {
    type Error = String;

    fn try_from(v: Value) -> Result<Pacing, String> {
        let Value::Object(map) = v else {
            return Err("pacing must be an object or null".into());
        };
        let mut p = Pacing::default();
        for (key, value) in map {
            match key.as_str() {
                "max_concurrent_calls" => {
                    p.max_concurrent_calls = match value {
                        Value::Null => None,
                        Value::Number(n) => Some(n.as_i64().ok_or_else(|| {
                            format!("pacing.max_concurrent_calls: {n} is not an integer >= 0")
                        })?),
                        other => {
                            return Err(format!(
                                "pacing.max_concurrent_calls: {other} is not an integer >= 0"
                            ));
                        }
                    }
                }
                "dials_per_second" => {
                    p.dials_per_second = match value {
                        Value::Null => None,
                        Value::Number(n) => n.as_f64(),
                        other => {
                            return Err(format!(
                                "pacing.dials_per_second: {other} is not a number"
                            ));
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "pacing.{other}: unknown field (max_concurrent_calls, dials_per_second)"
                    ));
                }
            }
        }
        p.validate()?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Pacing, String> {
        Pacing::try_from(v)
    }

    #[test]
    fn accepts_both_limits_either_or_none() {
        let p = parse(json!({"max_concurrent_calls": 3, "dials_per_second": 2.5})).unwrap();
        assert_eq!(p.max_concurrent_calls, Some(3));
        assert_eq!(p.dials_per_second, Some(2.5));
        let p = parse(json!({"max_concurrent_calls": 0})).unwrap();
        assert_eq!(p.max_concurrent_calls, Some(0));
        assert_eq!(p.dials_per_second, None);
        let p = parse(json!({"dials_per_second": null})).unwrap();
        assert_eq!(p, Pacing::default());
        assert_eq!(parse(json!({})).unwrap(), Pacing::default());
        parse(json!({"dials_per_second": 0.1})).unwrap();
        parse(json!({"dials_per_second": 50})).unwrap();
    }

    #[test]
    fn refuses_out_of_range_values_naming_the_field() {
        for (body, field) in [
            (
                json!({"max_concurrent_calls": -1}),
                "pacing.max_concurrent_calls",
            ),
            (
                json!({"max_concurrent_calls": 1.5}),
                "pacing.max_concurrent_calls",
            ),
            (
                json!({"max_concurrent_calls": "3"}),
                "pacing.max_concurrent_calls",
            ),
            (json!({"dials_per_second": 0.05}), "pacing.dials_per_second"),
            (json!({"dials_per_second": 0}), "pacing.dials_per_second"),
            (json!({"dials_per_second": 50.5}), "pacing.dials_per_second"),
            (
                json!({"dials_per_second": "fast"}),
                "pacing.dials_per_second",
            ),
            (json!({"dial_per_second": 1}), "pacing.dial_per_second"),
            (json!([1]), "pacing must be an object"),
        ] {
            let e = parse(body.clone()).unwrap_err();
            assert!(e.starts_with(field), "{body}: {e}");
        }
    }

    #[test]
    fn serializes_only_the_set_limits_and_round_trips() {
        let p = Pacing {
            max_concurrent_calls: Some(3),
            dials_per_second: None,
        };
        let v = serde_json::to_value(p).unwrap();
        assert_eq!(v, json!({"max_concurrent_calls": 3}));
        assert_eq!(serde_json::from_value::<Pacing>(v).unwrap(), p);
    }

    #[test]
    fn dial_delay_is_a_thousand_over_the_rate_in_ms() {
        let p = |r| Pacing {
            max_concurrent_calls: None,
            dials_per_second: Some(r),
        };
        assert_eq!(p(10.0).dial_delay(), Some(Duration::from_millis(100)));
        assert_eq!(p(0.5).dial_delay(), Some(Duration::from_secs(2)));
        assert_eq!(Pacing::default().dial_delay(), None);
    }
}
