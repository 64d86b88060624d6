//! Calling hours (docs/calling_hours.md): the weekly windows, in one IANA time zone, inside which a
//! campaign may dial, and the pure arithmetic over them (is an instant inside, when does the
//! next window open). No clock is read here: every question takes `now`, so the tick's sleep
//! is tested with any instant, DST transitions included.
//!
//! The wire form keeps the strings the user gave ([`CallingHours`]), so a campaign reads back
//! byte for byte what was set; [`CallingHours::schedule`] validates it into a [`Schedule`],
//! and its error names the field. Rules: `start` < `end`, both 24 h `HH:MM`; `end` may be
//! `24:00` (until midnight); a window across midnight is refused (split it in two, one ending
//! `24:00` and one starting `00:00` on the next days). Windows are wall-clock times: on the
//! day clocks go forward, a window starting inside the skipped hour opens when the clock
//! jumps past it (one lying wholly inside it does not open that day); on the day they go
//! back, the repeated hour counts as inside each time it is on the clock.
//!
//! `destination_local: true` reads the same windows in the callee's zone instead
//! ([`Schedule::for_destination`]): the zone of an E.164 number of a single-zone country
//! (`destination_zone.rs`), otherwise the campaign's `time_zone`.

use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Day names in the order of `chrono::Weekday::num_days_from_monday`.
pub const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The campaign field `calling_hours`, as given and returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallingHours {
    /// IANA time zone name the windows are read in (e.g. `Asia/Seoul`).
    pub time_zone: String,
    /// The weekly windows; dialing is allowed inside any of them.
    pub windows: Vec<CallingWindow>,
    /// Check the windows in the callee's local time when the destination is an E.164 number
    /// of a single-zone country (`time_zone` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_local: Option<bool>,
}

/// One weekly window: on each of `days`, from `start` (inclusive) to `end` (exclusive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallingWindow {
    /// Day names, `mon`..`sun`.
    pub days: Vec<String>,
    /// Opening time, `HH:MM`.
    pub start: String,
    /// Closing time, `HH:MM` after `start` (`24:00` is midnight at the day's end).
    pub end: String,
}

/// Validated calling hours, ready for arithmetic.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    tz: Tz,
    windows: Vec<Span>,
    destination_local: bool,
}

/// A validated window: weekday bit set (bit 0 = Monday) and minutes since local midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    days: u8,
    start: u32,
    end: u32,
}

/// Where an instant stands against a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Inside a window: dial.
    Open,
    /// Outside every window; the next one opens at this instant (`None`: none in the coming
    /// week, which only happens if every occurrence falls into a skipped DST hour).
    Closed(Option<DateTime<Utc>>),
}

/// `HH:MM` → minutes since midnight; `24:00` only when `allow_24` (an `end`).
fn parse_hhmm(s: &str, allow_24: bool) -> Option<u32> {
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' || ![0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit()) {
        return None;
    }
    let h = u32::from(b[0] - b'0') * 10 + u32::from(b[1] - b'0');
    let m = u32::from(b[3] - b'0') * 10 + u32::from(b[4] - b'0');
    match (h, m) {
        (0..=23, 0..=59) => Some(h * 60 + m),
        (24, 0) if allow_24 => Some(24 * 60),
        _ => None,
    }
}

impl CallingHours {
    /// Validates into a [`Schedule`]; the error is a message naming the bad field (e.g.
    /// `calling_hours.windows[0].days[2]: ...`).
    pub fn schedule(&self) -> Result<Schedule, String> {
        let tz = Tz::from_str(&self.time_zone).map_err(|_| {
            format!(
                "calling_hours.time_zone: {:?} is not an IANA time zone name",
                self.time_zone
            )
        })?;
        if self.windows.is_empty() {
            return Err("calling_hours.windows: at least one window is required".into());
        }
        let mut windows = Vec::with_capacity(self.windows.len());
        for (i, w) in self.windows.iter().enumerate() {
            let field = format!("calling_hours.windows[{i}]");
            if w.days.is_empty() {
                return Err(format!("{field}.days: at least one day is required"));
            }
            let mut days = 0u8;
            for (j, d) in w.days.iter().enumerate() {
                let Some(n) = DAY_NAMES.iter().position(|name| name == d) else {
                    return Err(format!(
                        "{field}.days[{j}]: {d:?} is not a day name (mon, tue, wed, thu, fri, sat, sun)"
                    ));
                };
                days |= 1 << n;
            }
            let start = parse_hhmm(&w.start, false)
                .ok_or_else(|| format!("{field}.start: {:?} is not a 24 h time HH:MM", w.start))?;
            let end = parse_hhmm(&w.end, true).ok_or_else(|| {
                format!(
                    "{field}.end: {:?} is not a 24 h time HH:MM (24:00 allowed)",
                    w.end
                )
            })?;
            if end <= start {
                return Err(format!(
                    "{field}.end: must be after start ({} >= {}); a window across midnight must be split in two",
                    w.start, w.end
                ));
            }
            windows.push(Span { days, start, end });
        }
        Ok(Schedule {
            tz,
            windows,
            destination_local: self.destination_local == Some(true),
        })
    }
}

/// Local minutes since midnight as a time of day (`24:00` is the next day's `00:00`).
fn local_at(date: NaiveDate, minutes: u32) -> Option<chrono::NaiveDateTime> {
    let day = date.checked_add_signed(Duration::days(i64::from(minutes / (24 * 60))))?;
    let t = NaiveTime::from_hms_opt((minutes % (24 * 60)) / 60, minutes % 60, 0)?;
    Some(day.and_time(t))
}

impl Schedule {
    /// The zone the windows are read in.
    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// Whether the windows are read in each callee's local time.
    pub fn destination_local(&self) -> bool {
        self.destination_local
    }

    /// The schedule to check before dialing `destination`: with `destination_local`, the same
    /// windows in the callee's zone when it is known; otherwise this schedule.
    pub fn for_destination(&self, destination: &super::Address) -> Schedule {
        let tz = if self.destination_local {
            super::destination_zone::destination_zone(destination).unwrap_or(self.tz)
        } else {
            self.tz
        };
        Schedule {
            tz,
            windows: self.windows.clone(),
            destination_local: self.destination_local,
        }
    }

    /// Whether `now` is inside a window or, if not, when the next one opens.
    pub fn gate(&self, now: DateTime<Utc>) -> Gate {
        if self.is_open(now) {
            Gate::Open
        } else {
            Gate::Closed(self.next_opening(now))
        }
    }

    /// Whether the local wall-clock time at `now` lies inside a window of its weekday.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.tz);
        let day = 1u8 << local.weekday().num_days_from_monday();
        let minute = local
            .time()
            .signed_duration_since(NaiveTime::MIN)
            .num_minutes() as u32;
        self.windows
            .iter()
            .any(|w| w.days & day != 0 && w.start <= minute && minute < w.end)
    }

    /// The first instant after `now` at which a window opens, looking a week and a day ahead.
    pub fn next_opening(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = now.with_timezone(&self.tz).date_naive();
        let mut best: Option<DateTime<Utc>> = None;
        for offset in 0..=8 {
            let Some(date) = today.checked_add_signed(Duration::days(offset)) else {
                continue;
            };
            let day = 1u8 << date.weekday().num_days_from_monday();
            for w in self.windows.iter().filter(|w| w.days & day != 0) {
                if let Some(at) = self.opening_on(date, *w, now) {
                    best = Some(best.map_or(at, |b| b.min(at)));
                }
            }
            if best.is_some() {
                // Later days open later still.
                break;
            }
        }
        best
    }

    /// When window `w` opens on local `date`, if that is after `now`. A start that the
    /// clock skips (spring forward) opens at the first minute that exists, unless the whole
    /// window was skipped; of a repeated time (fall back), the first occurrence after `now`.
    fn opening_on(&self, date: NaiveDate, w: Span, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        for minute in w.start..w.end {
            let local = local_at(date, minute)?;
            let found = match self.tz.from_local_datetime(&local) {
                LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
                LocalResult::Ambiguous(a, b) => [a, b]
                    .into_iter()
                    .map(|t| t.with_timezone(&Utc))
                    .find(|t| *t > now),
                LocalResult::None => continue,
            };
            // The first existing minute decides: it is the window's opening.
            return found.filter(|t| *t > now);
        }
        None
    }

    /// How long a closed campaign sleeps at `now`: until the next opening, at most `cap`
    /// (the chain then looks again, so a changed setting or clock is picked up), at least
    /// `floor` (a tick firing a hair early does not spin).
    pub fn sleep(
        &self,
        now: DateTime<Utc>,
        floor: std::time::Duration,
        cap: std::time::Duration,
    ) -> Option<std::time::Duration> {
        match self.gate(now) {
            Gate::Open => None,
            Gate::Closed(None) => Some(cap),
            Gate::Closed(Some(at)) => {
                let d = (at - now).to_std().unwrap_or_default();
                Some(d.clamp(floor, cap.max(floor)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(tz: &str, windows: &[(&[&str], &str, &str)]) -> CallingHours {
        CallingHours {
            time_zone: tz.into(),
            windows: windows
                .iter()
                .map(|(days, start, end)| CallingWindow {
                    days: days.iter().map(|d| d.to_string()).collect(),
                    start: start.to_string(),
                    end: end.to_string(),
                })
                .collect(),
            destination_local: None,
        }
    }

    fn schedule(tz: &str, windows: &[(&[&str], &str, &str)]) -> Schedule {
        hours(tz, windows).schedule().expect("valid")
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("rfc3339")
            .with_timezone(&Utc)
    }

    const WEEKDAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri"];

    #[test]
    fn inside_and_outside_a_seoul_office_day() {
        // Seoul is UTC+9 all year. 2026-11-30 is a Monday.
        let s = schedule("Asia/Seoul", &[(WEEKDAYS, "09:00", "20:00")]);
        assert!(s.is_open(utc("2026-11-30T00:00:00Z")), "09:00 local opens");
        assert!(s.is_open(utc("2026-11-30T10:59:00Z")), "19:59 local");
        assert!(
            !s.is_open(utc("2026-11-30T11:00:00Z")),
            "20:00 local is closed"
        );
        assert!(!s.is_open(utc("2026-11-29T23:59:00Z")), "08:59 local");
        assert_eq!(s.gate(utc("2026-11-30T03:00:00Z")), Gate::Open);
    }

    #[test]
    fn next_opening_same_day_later() {
        let s = schedule("Asia/Seoul", &[(WEEKDAYS, "09:00", "20:00")]);
        // Monday 07:30 local → 09:00 the same day.
        assert_eq!(
            s.gate(utc("2026-11-29T22:30:00Z")),
            Gate::Closed(Some(utc("2026-11-30T00:00:00Z")))
        );
    }

    #[test]
    fn next_opening_the_next_day_and_the_next_week() {
        let s = schedule("Asia/Seoul", &[(WEEKDAYS, "09:00", "20:00")]);
        // Monday 21:00 local → Tuesday 09:00.
        assert_eq!(
            s.next_opening(utc("2026-11-30T12:00:00Z")),
            Some(utc("2026-12-01T00:00:00Z"))
        );
        // Friday 20:00 local → Monday 09:00 (weekend skipped).
        assert_eq!(
            s.next_opening(utc("2026-12-04T11:00:00Z")),
            Some(utc("2026-12-07T00:00:00Z"))
        );
        // A Monday-only window, asked on Monday after it closed → next Monday.
        let m = schedule("UTC", &[(&["mon"], "09:00", "10:00")]);
        assert_eq!(
            m.next_opening(utc("2026-11-30T10:00:00Z")),
            Some(utc("2026-12-07T09:00:00Z"))
        );
        // The earliest of several windows wins.
        let two = schedule(
            "UTC",
            &[
                (&["tue"], "15:00", "16:00"),
                (&["mon", "tue"], "08:00", "09:00"),
            ],
        );
        assert_eq!(
            two.next_opening(utc("2026-11-30T12:00:00Z")),
            Some(utc("2026-12-01T08:00:00Z"))
        );
        assert!(two.is_open(utc("2026-12-01T15:30:00Z")));
    }

    #[test]
    fn every_day_name_means_its_weekday() {
        // 2026-11-30 is a Monday; day i of that week is 2026-11-30 + i.
        for (i, name) in DAY_NAMES.iter().enumerate() {
            let s = schedule("UTC", &[(&[name], "00:00", "24:00")]);
            for d in 0..7 {
                let noon = utc("2026-11-30T12:00:00Z") + Duration::days(d);
                assert_eq!(s.is_open(noon), d as usize == i, "{name} on day {d}");
            }
            let expected = utc("2026-11-30T00:00:00Z") + Duration::days(i as i64);
            let from = utc("2026-11-29T12:00:00Z");
            assert_eq!(s.next_opening(from), Some(expected), "{name}");
        }
    }

    #[test]
    fn end_of_day_midnight_is_exclusive() {
        let s = schedule("UTC", &[(&["mon"], "22:00", "24:00")]);
        assert!(s.is_open(utc("2026-11-30T23:59:59Z")));
        assert!(!s.is_open(utc("2026-12-01T00:00:00Z")), "Tuesday 00:00");
    }

    #[test]
    fn new_york_spring_forward() {
        // 2026-03-08 (Sunday): 02:00 EST jumps to 03:00 EDT (07:00 UTC).
        let s = schedule("America/New_York", &[(&["sun"], "02:30", "04:00")]);
        // Opens when the clock jumps past the skipped start: 03:00 EDT = 07:00 UTC.
        assert_eq!(
            s.next_opening(utc("2026-03-08T05:00:00Z")),
            Some(utc("2026-03-08T07:00:00Z"))
        );
        assert!(s.is_open(utc("2026-03-08T07:00:00Z")));
        assert!(!s.is_open(utc("2026-03-08T06:59:00Z")), "01:59 EST");
        // A window wholly inside the skipped hour does not open that day: next Sunday.
        let gap = schedule("America/New_York", &[(&["sun"], "02:10", "02:50")]);
        assert_eq!(
            gap.next_opening(utc("2026-03-08T05:00:00Z")),
            Some(utc("2026-03-15T06:10:00Z")),
            "02:10 EDT a week later"
        );
        // A normal window that day: 09:00 EDT = 13:00 UTC (not 14:00).
        let day = schedule("America/New_York", &[(&["sun"], "09:00", "17:00")]);
        assert_eq!(
            day.next_opening(utc("2026-03-08T05:00:00Z")),
            Some(utc("2026-03-08T13:00:00Z"))
        );
    }

    #[test]
    fn new_york_fall_back() {
        // 2026-11-01 (Sunday): 02:00 EDT goes back to 01:00 EST (06:00 UTC).
        let s = schedule("America/New_York", &[(&["sun"], "01:15", "01:45")]);
        // Before the first 01:15 (EDT, 05:15 UTC).
        assert_eq!(
            s.next_opening(utc("2026-11-01T04:00:00Z")),
            Some(utc("2026-11-01T05:15:00Z"))
        );
        assert!(s.is_open(utc("2026-11-01T05:20:00Z")), "01:20 EDT");
        // After the first pass, the repeated 01:15 EST (06:15 UTC) opens it again.
        assert_eq!(
            s.next_opening(utc("2026-11-01T05:50:00Z")),
            Some(utc("2026-11-01T06:15:00Z"))
        );
        assert!(s.is_open(utc("2026-11-01T06:20:00Z")), "01:20 EST");
        // A window after the change reads EST: 09:00 EST = 14:00 UTC.
        let day = schedule("America/New_York", &[(&["sun"], "09:00", "17:00")]);
        assert_eq!(
            day.next_opening(utc("2026-11-01T04:00:00Z")),
            Some(utc("2026-11-01T14:00:00Z"))
        );
    }

    #[test]
    fn sleep_is_capped_and_floored() {
        let s = schedule("UTC", &[(&["mon"], "09:00", "10:00")]);
        let floor = std::time::Duration::from_millis(100);
        let cap = std::time::Duration::from_secs(3600);
        assert_eq!(s.sleep(utc("2026-11-30T09:30:00Z"), floor, cap), None);
        assert_eq!(
            s.sleep(utc("2026-11-30T08:59:58Z"), floor, cap),
            Some(std::time::Duration::from_secs(2))
        );
        assert_eq!(s.sleep(utc("2026-11-30T05:00:00Z"), floor, cap), Some(cap));
        let hair = utc("2026-11-30T09:00:00Z") - Duration::milliseconds(1);
        assert_eq!(s.sleep(hair, floor, cap), Some(floor));
    }

    #[test]
    fn bad_fields_are_named() {
        let err = |h: CallingHours| h.schedule().expect_err("invalid");
        assert!(
            err(hours("Mars/Olympus", &[(WEEKDAYS, "09:00", "20:00")]))
                .starts_with("calling_hours.time_zone:")
        );
        assert!(
            err(hours("UTC", &[(&["mon", "funday"], "09:00", "20:00")]))
                .starts_with("calling_hours.windows[0].days[1]:")
        );
        assert!(
            err(hours("UTC", &[(&["Mon"], "09:00", "20:00")]))
                .starts_with("calling_hours.windows[0].days[0]:")
        );
        assert!(
            err(hours("UTC", &[(&[], "09:00", "20:00")]))
                .starts_with("calling_hours.windows[0].days:")
        );
        for bad in ["9:00", "24:00", "12:60", "ab:cd", "", "09:00:00"] {
            assert!(
                err(hours("UTC", &[(&["mon"], bad, "20:00")]))
                    .starts_with("calling_hours.windows[0].start:"),
                "{bad:?}"
            );
        }
        assert!(
            err(hours("UTC", &[(&["mon"], "09:00", "24:01")]))
                .starts_with("calling_hours.windows[0].end:")
        );
        // Across midnight and empty windows are refused.
        let across = err(hours(
            "UTC",
            &[(&["mon"], "08:00", "09:00"), (&["mon"], "22:00", "06:00")],
        ));
        assert!(
            across.starts_with("calling_hours.windows[1].end:"),
            "{across}"
        );
        assert!(
            err(hours("UTC", &[(&["mon"], "09:00", "09:00")]))
                .starts_with("calling_hours.windows[0].end:")
        );
        assert!(err(hours("UTC", &[])).starts_with("calling_hours.windows:"));
    }

    #[test]
    fn destination_local_reads_the_windows_in_the_callees_zone() {
        use crate::Address;
        let mut h = hours("America/New_York", &[(&["mon"], "09:00", "18:00")]);
        h.destination_local = Some(true);
        let s = h.schedule().unwrap();
        assert!(s.destination_local());
        // Monday 2026-11-30 01:00 UTC: 10:00 in Seoul (inside), Sunday 20:00 in New York.
        let now = utc("2026-11-30T01:00:00Z");
        let seoul = s.for_destination(&Address::tel("+821012345678"));
        assert_eq!(seoul.time_zone(), chrono_tz::Tz::Asia__Seoul);
        assert!(seoul.is_open(now));
        // London opens at 09:00 GMT that Monday.
        let london = s.for_destination(&Address::tel("+442071234567"));
        assert_eq!(
            london.gate(now),
            Gate::Closed(Some(utc("2026-11-30T09:00:00Z")))
        );
        // +1 spans several zones: the campaign's zone (09:00 EST = 14:00 UTC).
        let us = s.for_destination(&Address::tel("+12125551234"));
        assert_eq!(us.time_zone(), chrono_tz::Tz::America__New_York);
        assert_eq!(
            us.gate(now),
            Gate::Closed(Some(utc("2026-11-30T14:00:00Z")))
        );
        // Not E.164: the campaign's zone too.
        let mut sip = Address::tel("alice@example.com");
        sip.kind = "sip".into();
        assert_eq!(
            s.for_destination(&sip).time_zone(),
            chrono_tz::Tz::America__New_York
        );
        // Without destination_local every destination uses the campaign's zone.
        h.destination_local = Some(false);
        let plain = h.schedule().unwrap();
        assert!(!plain.destination_local());
        assert!(
            !plain
                .for_destination(&Address::tel("+821012345678"))
                .is_open(now)
        );
    }

    #[test]
    fn destination_local_across_a_dst_change_in_the_callees_zone() {
        use crate::Address;
        // London goes back on 2026-10-25 (02:00 BST → 01:00 GMT): a 09:00 window opens at
        // 08:00 UTC on Saturday the 24th and at 09:00 UTC on Monday the 26th.
        let mut h = hours("Asia/Seoul", &[(&["sat", "mon"], "09:00", "10:00")]);
        h.destination_local = Some(true);
        let london = h
            .schedule()
            .unwrap()
            .for_destination(&Address::tel("+442071234567"));
        assert_eq!(
            london.next_opening(utc("2026-10-24T00:00:00Z")),
            Some(utc("2026-10-24T08:00:00Z"))
        );
        assert_eq!(
            london.next_opening(utc("2026-10-25T00:00:00Z")),
            Some(utc("2026-10-26T09:00:00Z"))
        );
    }

    #[test]
    fn wire_form_round_trips_and_omits_destination_local() {
        let raw = r#"{"time_zone":"Asia/Seoul","windows":[{"days":["mon","tue","wed","thu","fri"],"start":"09:00","end":"20:00"}]}"#;
        let h: CallingHours = serde_json::from_str(raw).expect("parse");
        assert_eq!(serde_json::to_string(&h).expect("json"), raw);
        let raw_local = r#"{"time_zone":"UTC","windows":[{"days":["sun"],"start":"00:00","end":"24:00"}],"destination_local":false}"#;
        let h: CallingHours = serde_json::from_str(raw_local).expect("parse");
        assert!(h.schedule().is_ok());
        assert_eq!(serde_json::to_string(&h).expect("json"), raw_local);
    }
}
