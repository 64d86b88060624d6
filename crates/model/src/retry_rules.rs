//! Retry rules by outcome (docs/contact-strategy.md#retry-rules): how long a target waits after
//! each hangup reason, which reasons end a destination at once, and when a `normal` hangup was
//! too short to count as reached (`min_talk_ms`).
//!
//! Pure: the outplan carries the rules, the finish stores the reason on the campaigncall, and
//! the tick asks [`RetryRules::delay_ms`] and [`TargetHistory`] what a target's record means.
//! A reason without a rule keeps the outplan's `try_interval` and is not final, so an outplan
//! without rules behaves exactly as the platform's.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::json::opt_time;

/// The hangup reasons call-manager reports (`bin-call-manager/models/call`, `HangupReason`).
pub const HANGUP_REASONS: [&str; 8] = [
    "normal", "failed", "busy", "cancel", "timeout", "noanswer", "dialout", "amd",
];

/// The reason stored for a `normal` hangup whose talk time was below the outplan's
/// `min_talk_ms` (voicemail reached without detection): result `fail`, retried under the
/// `noanswer` rule.
pub const SHORT_CALL: &str = "short_call";

/// What follows one hangup reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryRule {
    /// How long the target waits before its next attempt, in ms (instead of `try_interval`).
    #[serde(default)]
    pub delay_ms: i32,
    /// The destination is not dialed again: the target moves to its next destination with
    /// tries left, or is done.
    #[serde(default, rename = "final")]
    pub is_final: bool,
}

/// The outplan's rules, by hangup reason (a JSON object; keys sorted when written).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RetryRules(pub BTreeMap<String, RetryRule>);

impl RetryRules {
    /// Rules from `(reason, rule)` pairs.
    pub fn of<'a>(rules: impl IntoIterator<Item = (&'a str, RetryRule)>) -> RetryRules {
        RetryRules(
            rules
                .into_iter()
                .map(|(r, rule)| (r.to_owned(), rule))
                .collect(),
        )
    }

    /// Checks every rule; the error starts with the field it is about
    /// (`retry_rules.<reason>...`).
    pub fn check(&self) -> Result<(), String> {
        for (reason, rule) in &self.0 {
            if reason == "normal" {
                return Err(
                    "retry_rules.normal: a normal hangup is a success and ends the target; a \
                     short one (min_talk_ms) follows the noanswer rule"
                        .into(),
                );
            }
            if !HANGUP_REASONS.contains(&reason.as_str()) {
                return Err(format!(
                    "retry_rules.{reason}: unknown hangup reason (one of {})",
                    HANGUP_REASONS[1..].join(", ")
                ));
            }
            if rule.delay_ms < 0 {
                return Err(format!(
                    "retry_rules.{reason}.delay_ms must not be negative, got {}",
                    rule.delay_ms
                ));
            }
        }
        Ok(())
    }

    /// The rule that applies to a campaigncall that ended for `reason` ([`SHORT_CALL`]
    /// follows `noanswer`).
    pub fn rule(&self, reason: &str) -> Option<RetryRule> {
        let key = if reason == SHORT_CALL {
            "noanswer"
        } else {
            reason
        };
        self.0.get(key).copied()
    }

    /// How long a target whose last attempt ended for `reason` waits, in ms: the rule's delay,
    /// else `try_interval` (also when the reason is unknown, as for the platform).
    pub fn delay_ms(&self, reason: Option<&str>, try_interval: i32) -> i32 {
        reason
            .and_then(|r| self.rule(r))
            .map_or(try_interval, |r| r.delay_ms)
    }

    /// Whether `reason` ends its destination.
    pub fn is_final(&self, reason: &str) -> bool {
        self.rule(reason).is_some_and(|r| r.is_final)
    }
}

/// Checks `min_talk_ms`: the error names the field.
pub fn check_min_talk_ms(v: i32) -> Result<(), String> {
    if v < 0 {
        return Err(format!("min_talk_ms must not be negative, got {v}"));
    }
    Ok(())
}

/// The reason to store for a hangup: [`SHORT_CALL`] for a `normal` one that talked less than
/// `min_talk_ms` (answer `tm_progressing` → `tm_hangup`), the hangup reason otherwise. A
/// `normal` hangup without both times keeps `normal`: nothing shows it was short.
pub fn stored_reason(
    reason: &str,
    tm_progressing: Option<DateTime<Utc>>,
    tm_hangup: Option<DateTime<Utc>>,
    min_talk_ms: Option<i32>,
) -> &str {
    match (reason, min_talk_ms, tm_progressing, tm_hangup) {
        ("normal", Some(min), Some(answer), Some(hangup))
            if (hangup - answer).num_milliseconds() < i64::from(min) =>
        {
            SHORT_CALL
        }
        _ => reason,
    }
}

/// The talk-time fields of a `call_hangup` (call-manager's call record), read beside
/// [`crate::Call`] from the same event: unset when the event does not carry them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CallTalk {
    /// When the call was answered (unset: never answered).
    #[serde(with = "opt_time", skip_serializing_if = "Option::is_none")]
    pub tm_progressing: Option<DateTime<Utc>>,
    /// When it ended.
    #[serde(with = "opt_time", skip_serializing_if = "Option::is_none")]
    pub tm_hangup: Option<DateTime<Utc>>,
}

/// Destination indexes (0..=4) that must not be dialed again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Finals(u8);

impl Finals {
    /// Marks destination `index` (indexes outside 0..=4 are ignored).
    pub fn insert(&mut self, index: i32) {
        if (0..5).contains(&index) {
            self.0 |= 1 << index;
        }
    }

    /// Whether destination `index` is final.
    pub fn contains(self, index: i32) -> bool {
        (0..5).contains(&index) && self.0 & (1 << index) != 0
    }

    /// Whether no destination is final.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// What a target's finished attempts mean under the rules: the reason of its newest one (its
/// wait) and the destinations a final reason ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetHistory {
    /// Reason of the newest finished attempt (`None`: none, or finished without a reason).
    pub last_reason: Option<String>,
    /// Destinations not to dial again.
    pub finals: Finals,
}

impl TargetHistory {
    /// Folds a target's finished attempts, oldest first, as `(destination_index, reason)`.
    pub fn of<'a>(
        rules: &RetryRules,
        attempts: impl IntoIterator<Item = (i32, Option<&'a str>)>,
    ) -> TargetHistory {
        let mut h = TargetHistory::default();
        for (index, reason) in attempts {
            if let Some(r) = reason
                && rules.is_final(r)
            {
                h.finals.insert(index);
            }
            h.last_reason = reason.map(str::to_owned);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn rule(delay_ms: i32, is_final: bool) -> RetryRule {
        RetryRule { delay_ms, is_final }
    }

    fn rules() -> RetryRules {
        RetryRules::of([
            ("busy", rule(60_000, false)),
            ("noanswer", rule(3_600_000, false)),
            ("failed", rule(0, true)),
            ("amd", rule(86_400_000, true)),
        ])
    }

    #[test]
    fn delay_by_reason_table() {
        let r = rules();
        // (last reason, expected delay) with try_interval 600 000.
        let table: [(Option<&str>, i32); 9] = [
            (None, 600_000),
            (Some("busy"), 60_000),
            (Some("noanswer"), 3_600_000),
            (Some(SHORT_CALL), 3_600_000),
            (Some("failed"), 0),
            (Some("amd"), 86_400_000),
            (Some("cancel"), 600_000),
            (Some("not_placed"), 600_000),
            (Some("something new"), 600_000),
        ];
        for (reason, want) in table {
            assert_eq!(r.delay_ms(reason, 600_000), want, "{reason:?}");
        }
        assert_eq!(RetryRules::default().delay_ms(Some("busy"), 7), 7);
    }

    #[test]
    fn final_by_reason_table() {
        let r = rules();
        for (reason, want) in [
            ("failed", true),
            ("amd", true),
            ("busy", false),
            ("noanswer", false),
            (SHORT_CALL, false),
            ("timeout", false),
            ("", false),
        ] {
            assert_eq!(r.is_final(reason), want, "{reason}");
        }
        let short_final = RetryRules::of([("noanswer", rule(5, true))]);
        assert!(short_final.is_final(SHORT_CALL));
    }

    #[test]
    fn check_names_the_field() {
        assert_eq!(rules().check(), Ok(()));
        for (bad, starts) in [
            (
                RetryRules::of([("bussy", rule(0, false))]),
                "retry_rules.bussy: unknown hangup reason",
            ),
            (
                RetryRules::of([("busy", rule(-1, false))]),
                "retry_rules.busy.delay_ms must not be negative",
            ),
            (
                RetryRules::of([("normal", rule(0, false))]),
                "retry_rules.normal:",
            ),
            (
                RetryRules::of([(SHORT_CALL, rule(0, false))]),
                "retry_rules.short_call: unknown",
            ),
        ] {
            let e = bad.check().unwrap_err();
            assert!(e.starts_with(starts), "{e}");
        }
        assert!(check_min_talk_ms(0).is_ok());
        assert!(
            check_min_talk_ms(-1)
                .unwrap_err()
                .starts_with("min_talk_ms")
        );
    }

    #[test]
    fn json_shape() {
        let r: RetryRules =
            serde_json::from_str(r#"{"busy":{"delay_ms":60000},"failed":{"final":true}}"#).unwrap();
        assert_eq!(r.rule("busy"), Some(rule(60_000, false)));
        assert_eq!(r.rule("failed"), Some(rule(0, true)));
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"busy":{"delay_ms":60000,"final":false},"failed":{"delay_ms":0,"final":true}}"#
        );
        assert!(serde_json::from_str::<RetryRules>(r#"{"busy":{"delay":1}}"#).is_err());
        assert!(serde_json::from_str::<RetryRules>(r#"{"busy":{"delay_ms":"x"}}"#).is_err());
    }

    #[test]
    fn outplan_shows_them_last_and_only_when_set() {
        let platform = r#"{"id":"3ca9708e-c463-11ec-95e7-53d07a0e8bb2","customer_id":"99f40c64-c462-11ec-b1e4-57c64041ff4e","name":"n","detail":"","source":null,"dial_timeout":30000,"try_interval":600000,"max_try_count_0":5,"max_try_count_1":5,"max_try_count_2":5,"max_try_count_3":5,"max_try_count_4":5,"tm_create":"2022-04-25T10:11:12.123456Z","tm_update":null,"tm_delete":null"#;
        let plain = format!("{platform}}}");
        let o: crate::Outplan = serde_json::from_str(&plain).unwrap();
        assert_eq!((o.retry_rules.as_ref(), o.min_talk_ms), (None, None));
        assert_eq!(serde_json::to_string(&o).unwrap(), plain);
        let with = format!(
            r#"{platform},"retry_rules":{{"amd":{{"delay_ms":0,"final":true}},"busy":{{"delay_ms":60000,"final":false}}}},"min_talk_ms":5000}}"#
        );
        let o: crate::Outplan = serde_json::from_str(&with).unwrap();
        assert_eq!(o.min_talk_ms, Some(5000));
        assert!(o.retry_rules.as_ref().is_some_and(|r| r.is_final("amd")));
        assert_eq!(serde_json::to_string(&o).unwrap(), with);
    }

    #[test]
    fn short_normal_table() {
        let t = |s: i64| Some(Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap());
        // (reason, answer, hangup, min_talk_ms, stored)
        let table = [
            ("normal", t(0), t(3), Some(5_000), SHORT_CALL),
            ("normal", t(0), t(5), Some(5_000), "normal"),
            ("normal", t(0), t(60), Some(5_000), "normal"),
            ("normal", t(0), t(3), None, "normal"),
            ("normal", None, t(3), Some(5_000), "normal"),
            ("normal", t(0), None, Some(5_000), "normal"),
            ("busy", t(0), t(1), Some(5_000), "busy"),
            ("amd", t(0), t(1), Some(5_000), "amd"),
        ];
        for (reason, answer, hangup, min, want) in table {
            assert_eq!(
                stored_reason(reason, answer, hangup, min),
                want,
                "{reason} {answer:?} {hangup:?} {min:?}"
            );
        }
    }

    #[test]
    fn talk_times_from_a_hangup() {
        let t: CallTalk = serde_json::from_str(
            r#"{"id":"x","hangup_reason":"normal","tm_progressing":"2026-12-07T06:00:00.5Z","tm_hangup":"2026-12-07T06:00:03Z","tm_ringing":null}"#,
        )
        .unwrap();
        assert_eq!(
            stored_reason("normal", t.tm_progressing, t.tm_hangup, Some(3_000)),
            SHORT_CALL
        );
        let none: CallTalk = serde_json::from_str(r#"{"tm_progressing":null}"#).unwrap();
        assert_eq!(none, CallTalk::default());
    }

    #[test]
    fn history_table() {
        let r = rules();
        let h = TargetHistory::of(&r, []);
        assert_eq!(h, TargetHistory::default());
        let h = TargetHistory::of(
            &r,
            [(0, Some("busy")), (0, Some("failed")), (1, Some("busy"))],
        );
        assert_eq!(h.last_reason.as_deref(), Some("busy"));
        assert!(h.finals.contains(0) && !h.finals.contains(1));
        let h = TargetHistory::of(&r, [(2, Some("amd")), (3, None)]);
        assert_eq!(h.last_reason, None);
        assert!(h.finals.contains(2) && !h.finals.is_empty());
        let mut f = Finals::default();
        f.insert(9);
        f.insert(-1);
        assert!(f.is_empty() && !f.contains(9));
    }
}
