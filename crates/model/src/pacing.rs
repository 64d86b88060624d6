//! Pacing (docs/pacing.md): how hard a campaign may dial. Two independent limits, each
//! optional (omitted or `null`: no limit of that kind):
//! - `max_concurrent_calls`: an integer ≥ 0, the most calls of the campaign up at once
//!   (campaigncalls `dialing` or `progressing`); `0` dials nothing.
//! - `dials_per_second`: a number in `0.1..=50`, enforced by [`DialRate`] on the recorded
//!   creation times of the campaign's campaigncalls.
//!
//! Validation happens while parsing (`TryFrom<serde_json::Value>`), so a bad value is refused
//! wherever the field arrives (`POST /v1/campaigns`, `PUT .../pacing`, a stored row) with a
//! message naming the field, e.g. `pacing.dials_per_second: ...`. Unknown keys are refused too,
//! so a misspelt limit is not silently ignored.

use chrono::{DateTime, TimeDelta, Utc};
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

    /// The dial-rate rule of `dials_per_second` (`None`: no rate limit).
    pub fn rate(&self) -> Option<DialRate> {
        self.dials_per_second.and_then(DialRate::new)
    }
}

/// The rule behind `dials_per_second` R, applied to the creation times of the campaign's
/// campaigncalls (its dials). A dial may be recorded at instant `t` only if both hold:
///
/// 1. **Window**: with `n = ⌈R⌉`, the campaign's `n`-th most recent dial is at least `n / R`
///    seconds before `t`. So no half-open window of `n / R` s holds more than `n` dials: for
///    an integer R, never more than R in any 1 s window; for a fractional R, never more than
///    `⌈R⌉` in any 1 s window.
/// 2. **Spacing** (virtual scheduling, as in a cell-rate limiter): replaying the recent dials,
///    each one moves a theoretical instant `tat = max(tat, dial) + 1 / R` forward; `t` must be
///    no earlier than `tat`, less a tolerance of `1 / (4R)` once a full window of dials exists.
///    This keeps the dials evenly spaced instead of bunched at the start of each window, while
///    a dial that came a little late lets the next one come a little early, so a late dial
///    costs the rate only through the window rule (which no schedule may break).
///
/// When every dial is recorded at the instant it is allowed, the rule gives exactly R dials per
/// second, evenly spaced. A dial recorded `d` after its allowed instant delays the dial `n`
/// later by `d` too (rule 1), so the long-run rate is `n / (n / R + d̄)`: the tick therefore
/// waits for the allowed instant and the transaction that records the dial refuses an early one
/// (`store::dials`).
///
/// Both read only the last `n` dial times, which MySQL has on the index
/// `(campaign_id, tm_create)`, so the rule needs no state of its own and holds across worker
/// processes and re-seeded chains.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DialRate {
    per_second: f64,
}

impl DialRate {
    /// The rule for `per_second` dials per second (`None` unless finite and positive).
    pub fn new(per_second: f64) -> Option<DialRate> {
        (per_second.is_finite() && per_second > 0.0).then_some(DialRate { per_second })
    }

    /// `n = ⌈R⌉`: the most dials in one window, and how many recent dials the rule reads.
    pub fn window_dials(&self) -> usize {
        (self.per_second.ceil() as usize).max(1)
    }

    /// The window's length `n / R` (exactly 1 s for an integer R), rounded up to the µs.
    pub fn window(&self) -> TimeDelta {
        micros(self.window_dials() as f64 * 1e6 / self.per_second)
    }

    /// The nominal spacing `1 / R`, rounded up to the µs.
    pub fn spacing(&self) -> TimeDelta {
        micros(1e6 / self.per_second)
    }

    /// How early a dial may come against its theoretical instant: a quarter of the spacing.
    pub fn tolerance(&self) -> TimeDelta {
        self.spacing() / 4
    }

    /// The earliest instant the next dial may be recorded, given the campaign's most recent
    /// dial times (any order; only the newest [`DialRate::window_dials`] count). `None`: no
    /// dial yet, so at once.
    pub fn next_allowed(&self, recent: &[DateTime<Utc>]) -> Option<DateTime<Utc>> {
        let mut times = recent.to_vec();
        times.sort_unstable();
        let n = self.window_dials();
        let times = &times[times.len().saturating_sub(n)..];
        let (first, rest) = times.split_first()?;
        let spacing = self.spacing();
        let mut tat = *first + spacing;
        for t in rest {
            tat = tat.max(*t) + spacing;
        }
        if times.len() < n {
            // The first window is still filling: plain spacing.
            return Some(tat);
        }
        Some((tat - self.tolerance()).max(*first + self.window()))
    }
}

fn micros(us: f64) -> TimeDelta {
    TimeDelta::microseconds(us.ceil() as i64)
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

    fn rate(r: f64) -> DialRate {
        DialRate::new(r).unwrap()
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn ms(n: i64) -> DateTime<Utc> {
        t0() + TimeDelta::milliseconds(n)
    }

    /// Dials every time the rule allows, `late_ms(k)` after the allowed instant.
    fn simulate(r: f64, dials: usize, late_ms: impl Fn(usize) -> i64) -> Vec<DateTime<Utc>> {
        let rule = rate(r);
        let mut times: Vec<DateTime<Utc>> = vec![];
        for k in 0..dials {
            let allowed = rule.next_allowed(&times).unwrap_or(t0());
            times.push(allowed + TimeDelta::milliseconds(late_ms(k)));
        }
        times
    }

    /// The most dials in any half-open window `[t, t + len)`.
    fn busiest(times: &[DateTime<Utc>], len: TimeDelta) -> usize {
        (0..times.len())
            .map(|i| {
                times[i..]
                    .iter()
                    .take_while(|t| **t < times[i] + len)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn the_window_and_spacing_follow_the_rate() {
        assert_eq!(rate(10.0).window_dials(), 10);
        assert_eq!(rate(10.0).window(), TimeDelta::seconds(1));
        assert_eq!(rate(10.0).spacing(), TimeDelta::milliseconds(100));
        assert_eq!(rate(2.5).window_dials(), 3);
        assert_eq!(rate(2.5).window(), TimeDelta::milliseconds(1200));
        assert_eq!(rate(0.5).window_dials(), 1);
        assert_eq!(rate(0.5).window(), TimeDelta::seconds(2));
        assert_eq!(rate(50.0).tolerance(), TimeDelta::milliseconds(5));
        assert!(DialRate::new(0.0).is_none());
        assert!(DialRate::new(f64::NAN).is_none());
        assert_eq!(Pacing::default().rate(), None);
    }

    #[test]
    fn the_first_dial_is_at_once_and_then_evenly_spaced() {
        let rule = rate(10.0);
        assert_eq!(rule.next_allowed(&[]), None);
        assert_eq!(rule.next_allowed(&[ms(0)]), Some(ms(100)));
        // On time: every 100 ms (a quarter of the spacing early at most).
        let times = simulate(10.0, 30, |_| 0);
        for pair in times.windows(2).skip(1) {
            assert_eq!(pair[1] - pair[0], TimeDelta::milliseconds(100));
        }
    }

    #[test]
    fn dials_on_time_make_exactly_the_rate_and_never_more_in_a_window() {
        for r in [1.0, 2.0, 10.0, 50.0] {
            let times = simulate(r, (r * 20.0) as usize + 1, |_| 0);
            let span = times[times.len() - 1] - times[0];
            // n dials after the first take n / R seconds, up to the tolerance.
            let ideal = TimeDelta::microseconds((20.0 * 1e6) as i64);
            assert!((span - ideal).abs() <= rate(r).tolerance(), "{r}: {span}");
            assert!(busiest(&times, TimeDelta::seconds(1)) <= r as usize, "{r}");
        }
    }

    #[test]
    fn late_dials_cost_only_their_lateness_and_never_break_the_window() {
        // Every dial 20 ms late: about R / (1 + 0.02) per second, 10 per 1 s window at most.
        let times = simulate(10.0, 201, |_| 20);
        assert!(busiest(&times, TimeDelta::seconds(1)) <= 10);
        let per_second = 200.0 / (times[200] - times[0]).as_seconds_f64();
        assert!(per_second > 9.7, "{per_second} per second");
        // Stalls of 300 ms and irregular lateness: the window still holds.
        let times = simulate(10.0, 201, |k| if k % 37 == 5 { 300 } else { 20 });
        assert!(busiest(&times, TimeDelta::seconds(1)) <= 10);
        let times = simulate(10.0, 300, |k| ((k * 7919) % 53) as i64);
        assert!(busiest(&times, TimeDelta::seconds(1)) <= 10);
        let times = simulate(50.0, 300, |k| ((k * 7919) % 11) as i64);
        assert!(busiest(&times, TimeDelta::seconds(1)) <= 50);
    }

    #[test]
    fn a_fractional_rate_keeps_its_window_and_long_run_rate() {
        let times = simulate(2.5, 101, |_| 0);
        assert!(busiest(&times, TimeDelta::seconds(1)) <= 3);
        assert!(busiest(&times, TimeDelta::milliseconds(1200)) <= 3);
        let secs = (times[100] - times[0]).as_seconds_f64();
        assert!((secs - 40.0).abs() < 0.2, "{secs}");
        // Below one per second: one dial per 1 / R.
        let times = simulate(0.5, 4, |_| 0);
        assert_eq!(times[3] - times[2], TimeDelta::seconds(2));
    }

    #[test]
    fn only_the_newest_dials_count_in_any_order() {
        let rule = rate(2.0);
        let old = [ms(-60_000), ms(-59_000)];
        let recent = [ms(500), ms(0)];
        let all: Vec<_> = old.iter().chain(recent.iter()).copied().collect();
        assert_eq!(rule.next_allowed(&all), rule.next_allowed(&recent));
        assert_eq!(rule.next_allowed(&recent), Some(ms(1000)));
    }
}
