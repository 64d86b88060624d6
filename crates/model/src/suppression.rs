//! The suppression (do-not-call) list: per customer, the targets no campaign of the customer
//! may dial (docs/contact-strategy.md). This module owns the record, the two requests that
//! create entries, and how a target is normalised, so that what an operator types and what a
//! campaign dials compare equal: the same function keys the stored entry and the dial's lookup.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::Address;
use super::json::opt_time;

/// Most targets one import takes (the whole import is one transaction).
pub const MAX_IMPORT_TARGETS: usize = 10_000;

/// Longest normalised target, in characters (the column is `VARCHAR(250)`).
pub const MAX_TARGET_CHARS: usize = 250;

/// Longest reason, in characters (the column is `VARCHAR(255)`).
pub const MAX_REASON_CHARS: usize = 255;

/// One entry of a customer's suppression list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    /// Entry id.
    pub id: Uuid,
    /// The customer whose campaigns may not dial the target.
    pub customer_id: Uuid,
    /// The normalised target ([`normalise_target`]).
    pub target: String,
    /// Why it is listed (free text, e.g. `opt-out`).
    pub reason: String,
    /// When the entry stops suppressing (by the database's clock); omitted: never.
    #[serde(default, with = "opt_time", skip_serializing_if = "Option::is_none")]
    pub tm_expire: Option<DateTime<Utc>>,
    /// When it was listed.
    #[serde(default, with = "opt_time")]
    pub tm_create: Option<DateTime<Utc>>,
}

/// The body of `POST /v1/suppressions`, its fields checked ([`SuppressionCreate::parse`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SuppressionCreate {
    /// The customer.
    pub customer_id: Uuid,
    /// The normalised target.
    pub target: String,
    /// Why it is listed.
    pub reason: String,
    /// When the entry stops suppressing; `None`: never.
    pub tm_expire: Option<DateTime<Utc>>,
}

/// The body of `POST /v1/suppressions/import`, checked ([`SuppressionImport::parse`]): all
/// targets are listed, or none.
#[derive(Debug, Clone, PartialEq)]
pub struct SuppressionImport {
    /// The customer.
    pub customer_id: Uuid,
    /// Why they are listed (the same for every target).
    pub reason: String,
    /// The normalised targets, duplicates removed, in the request's order.
    pub targets: Vec<String>,
}

type Body = serde_json::Map<String, Value>;

/// A required, non-nil customer id.
fn customer_id(body: &Body) -> Result<Uuid, String> {
    let id = match body.get("customer_id") {
        Some(Value::String(s)) => {
            Uuid::parse_str(s).map_err(|_| format!("customer_id must be a UUID, got {s:?}"))?
        }
        None | Some(Value::Null) => Uuid::nil(),
        Some(other) => return Err(format!("customer_id must be a UUID string, got {other}")),
    };
    if id.is_nil() {
        return Err("customer_id is required".into());
    }
    Ok(id)
}

/// Free text of at most [`MAX_REASON_CHARS`] characters (absent: empty).
fn reason(body: &Body) -> Result<String, String> {
    match body.get("reason") {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) if s.chars().count() <= MAX_REASON_CHARS => Ok(s.clone()),
        Some(Value::String(_)) => Err(format!(
            "reason is longer than {MAX_REASON_CHARS} characters"
        )),
        Some(other) => Err(format!("reason must be a string, got {other}")),
    }
}

/// A target string, normalised; `field` names it in the error.
fn target(field: &str, value: Option<&Value>) -> Result<String, String> {
    match value {
        Some(Value::String(s)) => normalise_target(s).map_err(|e| format!("{field} {e}")),
        None | Some(Value::Null) => Err(format!("{field} is required")),
        Some(other) => Err(format!("{field} must be a string, got {other}")),
    }
}

impl SuppressionCreate {
    /// Checks every field of the request body, naming the first bad one. `now` is the
    /// caller's clock, only to refuse an expiry already past (the entry itself expires by the
    /// database's clock).
    pub fn parse(body: &Body, now: DateTime<Utc>) -> Result<SuppressionCreate, String> {
        let tm_expire = match body.get("tm_expire") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                let t = DateTime::parse_from_rfc3339(s)
                    .map_err(|_| format!("tm_expire must be an RFC 3339 time, got {s:?}"))?
                    .with_timezone(&Utc);
                if t <= now {
                    return Err(format!("tm_expire {s:?} is in the past"));
                }
                Some(t)
            }
            Some(other) => {
                return Err(format!("tm_expire must be an RFC 3339 string, got {other}"));
            }
        };
        Ok(SuppressionCreate {
            customer_id: customer_id(body)?,
            target: target("target", body.get("target"))?,
            reason: reason(body)?,
            tm_expire,
        })
    }
}

impl SuppressionImport {
    /// Checks every field of the request body, naming the first bad one (a bad target by its
    /// index: `targets[17]`).
    pub fn parse(body: &Body) -> Result<SuppressionImport, String> {
        let customer_id = customer_id(body)?;
        let reason = reason(body)?;
        let raw = match body.get("targets") {
            Some(Value::Array(a)) => a,
            None | Some(Value::Null) => return Err("targets is required".into()),
            Some(other) => return Err(format!("targets must be an array, got {other}")),
        };
        if raw.is_empty() {
            return Err("targets must not be empty".into());
        }
        if raw.len() > MAX_IMPORT_TARGETS {
            return Err(format!(
                "targets holds {} entries, at most {MAX_IMPORT_TARGETS} are taken",
                raw.len()
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(raw.len());
        let mut targets = Vec::with_capacity(raw.len());
        for (i, v) in raw.iter().enumerate() {
            let t = target(&format!("targets[{i}]"), Some(v))?;
            if seen.insert(t.clone()) {
                targets.push(t);
            }
        }
        Ok(SuppressionImport {
            customer_id,
            reason,
            targets,
        })
    }
}

/// The answer of an import: how many targets are listed (new ones and ones already there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuppressionImported {
    /// Distinct targets of the request now on the list (new ones and ones already there).
    pub count: usize,
}

/// Characters a phone number may carry besides its digits (dropped by normalisation).
const PHONE_SEPARATORS: &[char] = &[' ', '-', '.', '(', ')'];

/// The form a target is stored and looked up in, or why it cannot be one.
///
/// - A target starting with `+` is an E.164 number: separators (space, `-`, `.`, `(`, `)`)
///   are dropped and the rest must be `+` and 1 to 15 digits, the first not 0
///   (`+1 (212) 555-0100` → `+12125550100`).
/// - Any other address target (SIP URI, e-mail, extension, agent id) is trimmed and
///   lower-cased; it must not be empty nor hold control characters.
///
/// Either way the result is at most [`MAX_TARGET_CHARS`] characters.
pub fn normalise_target(raw: &str) -> Result<String, String> {
    let t = raw.trim();
    let out = if let Some(number) = t.strip_prefix('+') {
        let digits: String = number
            .chars()
            .filter(|c| !PHONE_SEPARATORS.contains(c))
            .collect();
        let ok = (1..=15).contains(&digits.len())
            && digits.chars().all(|c| c.is_ascii_digit())
            && !digits.starts_with('0');
        if !ok {
            return Err(format!(
                "{raw:?} is not an E.164 number (+ and 1 to 15 digits, the first not 0)"
            ));
        }
        format!("+{digits}")
    } else {
        if t.is_empty() {
            return Err("must not be empty".into());
        }
        if t.chars().any(char::is_control) {
            return Err(format!("{raw:?} holds control characters"));
        }
        t.to_lowercase()
    };
    if out.chars().count() > MAX_TARGET_CHARS {
        return Err(format!("is longer than {MAX_TARGET_CHARS} characters"));
    }
    Ok(out)
}

impl Address {
    /// The key a dial to this address is checked against the suppression list by: its
    /// normalised target, or `None` when the target cannot be one (such an address matches
    /// no entry, as no entry can hold it).
    pub fn suppression_key(&self) -> Option<String> {
        normalise_target(&self.target).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_addresses_normalise_to_one_key() {
        assert_eq!(
            normalise_target(" +1 (212) 555-0100 ").as_deref(),
            Ok("+12125550100")
        );
        assert_eq!(
            normalise_target("+44.20.7946.0000").as_deref(),
            Ok("+442079460000")
        );
        assert_eq!(
            normalise_target("SIP:Alice@Example.com").as_deref(),
            Ok("sip:alice@example.com")
        );
        assert_eq!(normalise_target("1001").as_deref(), Ok("1001"));
        assert_eq!(
            Address::tel("+1 212 555 0100").suppression_key().as_deref(),
            Some("+12125550100")
        );
    }

    #[test]
    fn bad_targets_say_why() {
        for bad in [
            "",
            "  ",
            "+",
            "+0123",
            "+1234567890123456",
            "+12a4",
            "a\u{7}b",
        ] {
            assert!(normalise_target(bad).is_err(), "{bad:?}");
        }
        assert!(normalise_target(&"x".repeat(251)).is_err());
        assert!(normalise_target(&"x".repeat(250)).is_ok());
    }

    fn body(v: Value) -> Body {
        v.as_object().expect("object").clone()
    }

    #[test]
    fn every_bad_field_is_named() {
        let now = Utc::now();
        let c = "3653adb2-c454-11ec-8c9f-7bcd6924ee69";
        let cases = [
            (serde_json::json!({"target": "+1"}), "customer_id"),
            (
                serde_json::json!({"customer_id": "x", "target": "+1"}),
                "customer_id",
            ),
            (serde_json::json!({"customer_id": c}), "target"),
            (
                serde_json::json!({"customer_id": c, "target": "+0"}),
                "target",
            ),
            (serde_json::json!({"customer_id": c, "target": 5}), "target"),
            (
                serde_json::json!({"customer_id": c, "target": "+1", "reason": 1}),
                "reason",
            ),
            (
                serde_json::json!({"customer_id": c, "target": "+1", "tm_expire": "soon"}),
                "tm_expire",
            ),
            (
                serde_json::json!({"customer_id": c, "target": "+1", "tm_expire": "2020-01-01T00:00:00Z"}),
                "tm_expire",
            ),
        ];
        for (b, field) in cases {
            let e = SuppressionCreate::parse(&body(b.clone()), now).expect_err(&b.to_string());
            assert!(e.starts_with(field), "{b}: {e}");
        }
        let ok = SuppressionCreate::parse(
            &body(serde_json::json!({"customer_id": c, "target": "+1 555", "reason": "opt-out"})),
            now,
        )
        .expect("valid");
        assert_eq!(ok.target, "+1555");
        let e = SuppressionImport::parse(&body(
            serde_json::json!({"customer_id": c, "targets": ["+1", "+2", "bad\u{7}"]}),
        ))
        .expect_err("bad index");
        assert!(e.starts_with("targets[2]"), "{e}");
        let many: Vec<String> = (0..=MAX_IMPORT_TARGETS).map(|i| format!("+1{i}")).collect();
        let e = SuppressionImport::parse(&body(
            serde_json::json!({"customer_id": c, "targets": many}),
        ))
        .expect_err("too many");
        assert!(e.starts_with("targets"), "{e}");
        let i = SuppressionImport::parse(&body(
            serde_json::json!({"customer_id": c, "targets": ["+1 2", "+12"]}),
        ))
        .expect("valid");
        assert_eq!(i.targets, vec!["+12".to_string()]);
    }

    #[test]
    fn tm_expire_is_omitted_when_absent() {
        let s = Suppression {
            id: Uuid::nil(),
            customer_id: Uuid::nil(),
            target: "+1".into(),
            reason: "r".into(),
            tm_expire: None,
            tm_create: None,
        };
        let v = serde_json::to_value(&s).expect("json");
        assert!(v.get("tm_expire").is_none());
        let keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 5);
    }
}
