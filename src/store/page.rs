//! Pagination: rows newest first by `(tm_create, id)`; the next page's token is the
//! `tm_create` of the last row returned (what the platform's callers send back).
//!
//! The Go service compared `tm_create < token` only, so rows sharing the boundary timestamp
//! were skipped. We keep the timestamp-only token (callers build it) and instead never end a
//! page inside a group of equal `tm_create`: the page is completed with the rest of that
//! group (see `list` in the repositories), so the next `tm_create < token` page skips nothing.

use chrono::{DateTime, NaiveDateTime, Utc};

use super::{StoreError, StoreResult};

/// Default page size when the request gives none.
pub const DEFAULT_SIZE: u32 = 100;
/// Largest page size served; larger requests are clamped.
pub const MAX_SIZE: u32 = 1000;

/// A page request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Page {
    /// Return rows created strictly before this (None: now).
    pub token: Option<NaiveDateTime>,
    /// Number of rows wanted.
    pub size: u32,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            token: None,
            size: DEFAULT_SIZE,
        }
    }
}

impl Page {
    /// Parses the `page_token` and `page_size` query parameters.
    ///
    /// Token: empty → now; RFC 3339 (`2020-10-10T03:30:17.000000Z`) or MySQL's
    /// `2020-10-10 03:30:17.000000`. Size: empty → 100; above 1000 → 1000; 0, negative or
    /// non-numeric → error.
    pub fn parse(token: Option<&str>, size: Option<&str>) -> StoreResult<Page> {
        let token = match token.map(str::trim) {
            None | Some("") => None,
            Some(t) => Some(parse_token(t)?),
        };
        let size = match size.map(str::trim) {
            None | Some("") => DEFAULT_SIZE,
            Some(s) => match s.parse::<i64>() {
                Ok(n) if n >= 1 => n.min(i64::from(MAX_SIZE)) as u32,
                _ => {
                    return Err(StoreError::InvalidPage(format!(
                        "page_size must be a whole number from 1 to {MAX_SIZE}, got {s:?}"
                    )));
                }
            },
        };
        Ok(Page { token, size })
    }

    /// The token to bind: the given one, or now.
    pub fn token_or_now(&self) -> NaiveDateTime {
        self.token.unwrap_or_else(|| Utc::now().naive_utc())
    }
}

fn parse_token(t: &str) -> StoreResult<NaiveDateTime> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc).naive_utc());
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(dt);
        }
    }
    Err(StoreError::InvalidPage(format!(
        "page_token must be a timestamp like 2020-10-10T03:30:17.000000Z, got {t:?}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tokens_and_sizes() {
        let p = Page::parse(Some("2020-10-10T03:30:17.000001Z"), Some("10")).unwrap();
        assert_eq!(p.size, 10);
        assert_eq!(p.token.unwrap().to_string(), "2020-10-10 03:30:17.000001");
        let p = Page::parse(Some("2020-10-10 03:30:17.5"), None).unwrap();
        assert_eq!(p.size, DEFAULT_SIZE);
        assert_eq!(p.token.unwrap().to_string(), "2020-10-10 03:30:17.500");
        assert_eq!(Page::parse(None, Some("5000")).unwrap().size, MAX_SIZE);
        assert!(Page::parse(None, Some("0")).is_err());
        assert!(Page::parse(None, Some("-1")).is_err());
        assert!(Page::parse(None, Some("ten")).is_err());
        assert!(Page::parse(Some("yesterday"), None).is_err());
        assert!(Page::parse(Some("' OR 1=1"), None).is_err());
    }
}
