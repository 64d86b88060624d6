//! Serde helpers that reproduce the Go service's JSON encodings.
//!
//! - UUIDs: `null` or absent read as the nil UUID; the nil UUID is written as the zero string.
//! - Timestamps: RFC 3339 in UTC with trailing fractional zeros trimmed (Go's `time.RFC3339Nano`),
//!   `null` when unset.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serializer};
use uuid::Uuid;

/// Deserializes a UUID where `null` means the nil UUID (absent is handled by `#[serde(default)]`).
pub fn uuid_or_nil<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
    Ok(Option::<Uuid>::deserialize(d)?.unwrap_or(Uuid::nil()))
}

/// Formats a timestamp as Go's RFC3339Nano does: UTC `Z`, fractional digits without trailing zeros.
pub fn format_time(t: &DateTime<Utc>) -> String {
    let full = t.to_rfc3339_opts(SecondsFormat::Nanos, true);
    // `full` ends with ".nnnnnnnnnZ"; trim zeros from the fraction, and the dot if nothing is left.
    let Some(body) = full.strip_suffix('Z') else {
        return full;
    };
    let trimmed = body.trim_end_matches('0').trim_end_matches('.');
    format!("{trimmed}Z")
}

/// Serde `with` module for `Option<DateTime<Utc>>` timestamps.
pub mod opt_time {
    use super::*;

    /// Writes `null` or the trimmed RFC 3339 form.
    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format_time(t)),
            None => s.serialize_none(),
        }
    }

    /// Reads `null`/absent as unset, otherwise any RFC 3339 timestamp.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let raw = Option::<String>::deserialize(d)?;
        match raw {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => DateTime::parse_from_rfc3339(&s)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|e| serde::de::Error::custom(format!("invalid timestamp {s:?}: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn trims_fraction_like_go() {
        let t = Utc.with_ymd_and_hms(2020, 4, 18, 3, 22, 17).unwrap();
        assert_eq!(format_time(&t), "2020-04-18T03:22:17Z");
        let t = t + chrono::Duration::microseconds(995_000);
        assert_eq!(format_time(&t), "2020-04-18T03:22:17.995Z");
        let t = Utc.with_ymd_and_hms(2022, 4, 25, 10, 11, 12).unwrap()
            + chrono::Duration::microseconds(123_456);
        assert_eq!(format_time(&t), "2022-04-25T10:11:12.123456Z");
    }
}
