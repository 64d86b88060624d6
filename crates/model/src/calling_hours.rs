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
//! `closed_dates` are whole local dates on which no window opens (holidays), in the zone the
//! windows are read in.
//!
//! `destination_local: true` reads the same windows in the callee's zones instead
//! ([`Schedule::for_destination`]): the zones of the number's longest known prefix
//! (`destination_zone.rs`); a callee is reachable only when the window is open in every one of
//! its zones. A number with no zone at all uses the campaign's `time_zone`.

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
    /// whose prefix has a known zone (`time_zone` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_local: Option<bool>,
    /// Local dates (`YYYY-MM-DD`) on which nothing is dialed, read in the windows' zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_dates: Option<Vec<String>>,
}

/// Most `closed_dates` a campaign may list.
pub const MAX_CLOSED_DATES: usize = 1000;

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
    /// The zones the windows are read in: the campaign's, or a callee's (one or several); the
    /// schedule is open only when it is open in each.
    zones: Vec<Tz>,
    windows: Vec<Span>,
    destination_local: bool,
    /// Sorted, without duplicates.
    closed: Vec<NaiveDate>,
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
            zones: vec![tz],
            windows,
            destination_local: self.destination_local == Some(true),
            closed: self.closed()?,
        })
    }

    /// The validated `closed_dates`, sorted and without duplicates.
    fn closed(&self) -> Result<Vec<NaiveDate>, String> {
        let Some(dates) = &self.closed_dates else {
            return Ok(Vec::new());
        };
        if dates.len() > MAX_CLOSED_DATES {
            return Err(format!(
                "calling_hours.closed_dates: at most {MAX_CLOSED_DATES} dates ({} given)",
                dates.len()
            ));
        }
        let mut closed = Vec::with_capacity(dates.len());
        for (i, d) in dates.iter().enumerate() {
            let date = NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .ok()
                .filter(|_| d.len() == 10)
                .ok_or_else(|| {
                    format!("calling_hours.closed_dates[{i}]: {d:?} is not a date YYYY-MM-DD")
                })?;
            closed.push(date);
        }
        closed.sort_unstable();
        closed.dedup();
        Ok(closed)
    }
}

/// Local minutes since midnight as a time of day (`24:00` is the next day's `00:00`).
fn local_at(date: NaiveDate, minutes: u32) -> Option<chrono::NaiveDateTime> {
    let day = date.checked_add_signed(Duration::days(i64::from(minutes / (24 * 60))))?;
    let t = NaiveTime::from_hms_opt((minutes % (24 * 60)) / 60, minutes % 60, 0)?;
    Some(day.and_time(t))
}

/// When window `w` opens on local `date` in `tz`, if that is after `now`. A start that the
/// clock skips (spring forward) opens at the first minute that exists, unless the whole window
/// was skipped; of a repeated time (fall back), the first occurrence after `now`.
fn opening_on(tz: Tz, date: NaiveDate, w: Span, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    for minute in w.start..w.end {
        let local = local_at(date, minute)?;
        let found = match tz.from_local_datetime(&local) {
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

impl Schedule {
    /// The zone the windows are read in (the first, for a callee with several).
    pub fn time_zone(&self) -> Tz {
        self.zones[0]
    }

    /// Every zone the windows are read in; open means open in each.
    pub fn time_zones(&self) -> &[Tz] {
        &self.zones
    }

    /// Whether the windows are read in each callee's local time.
    pub fn destination_local(&self) -> bool {
        self.destination_local
    }

    /// The schedule to check before dialing `destination`: with `destination_local`, the same
    /// windows and closed dates in the callee's zones when they are known; otherwise this
    /// schedule.
    pub fn for_destination(&self, destination: &super::Address) -> Schedule {
        let zones = match self.callee_zones(destination) {
            Some(z) => z.to_vec(),
            None => self.zones.clone(),
        };
        Schedule {
            zones,
            windows: self.windows.clone(),
            destination_local: self.destination_local,
            closed: self.closed.clone(),
        }
    }

    /// Whether `destination_local` falls back to the campaign's zone for `destination` (its
    /// number has no known zone). Always false without `destination_local`.
    pub fn falls_back(&self, destination: &super::Address) -> bool {
        self.destination_local && self.callee_zones(destination).is_none()
    }

    fn callee_zones(&self, destination: &super::Address) -> Option<&'static [Tz]> {
        if self.destination_local {
            super::destination_zone::destination_zones(destination)
        } else {
            None
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

    /// Whether the local wall-clock time at `now` lies inside a window of its weekday, on a
    /// date that is not closed, in every zone.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.zones.iter().all(|tz| self.is_open_in(*tz, now))
    }

    fn is_open_in(&self, tz: Tz, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&tz);
        if self.closed.binary_search(&local.date_naive()).is_ok() {
            return false;
        }
        let day = 1u8 << local.weekday().num_days_from_monday();
        let minute = local
            .time()
            .signed_duration_since(NaiveTime::MIN)
            .num_minutes() as u32;
        self.windows
            .iter()
            .any(|w| w.days & day != 0 && w.start <= minute && minute < w.end)
    }

    /// The first instant after `now` at which the schedule is open (in every zone), looking a
    /// week and a day ahead, plus the closed dates. With several zones the candidate is the
    /// latest of their next openings, checked again until all agree (a few rounds at most;
    /// `None` when they never do in that span, and the caller looks again later).
    pub fn next_opening(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if let [tz] = self.zones.as_slice() {
            return self.next_opening_in(*tz, now);
        }
        let mut at = now;
        for _ in 0..16 {
            let mut latest = at;
            for tz in &self.zones {
                if !self.is_open_in(*tz, at) {
                    latest = latest.max(self.next_opening_in(*tz, at)?);
                }
            }
            if latest > now && self.is_open(latest) {
                return Some(latest);
            }
            if latest == at {
                // Open everywhere at `at` only if `at` is `now` itself; step past it.
                latest = at + Duration::minutes(1);
            }
            at = latest;
        }
        None
    }

    /// [`Schedule::next_opening`] in one zone.
    fn next_opening_in(&self, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = now.with_timezone(&tz).date_naive();
        let mut best: Option<DateTime<Utc>> = None;
        let days_ahead = 8 + self.closed.len() as i64;
        for offset in 0..=days_ahead {
            let Some(date) = today.checked_add_signed(Duration::days(offset)) else {
                continue;
            };
            if self.closed.binary_search(&date).is_ok() {
                continue;
            }
            let day = 1u8 << date.weekday().num_days_from_monday();
            for w in self.windows.iter().filter(|w| w.days & day != 0) {
                if let Some(at) = opening_on(tz, date, *w, now) {
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
            closed_dates: None,
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
    const DAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

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
    fn a_new_york_number_waits_for_new_york_while_the_campaign_zone_is_open() {
        use crate::Address;
        // A Seoul campaign (09:00-20:00 every day) dialing New York: Monday 2026-11-30 10:00
        // in Seoul is Sunday 20:00 in New York, outside; New York opens at 09:00 EST = 14:00 UTC.
        let mut h = hours("Asia/Seoul", &[(DAYS, "09:00", "20:00")]);
        h.destination_local = Some(true);
        let s = h.schedule().unwrap();
        let now = utc("2026-11-30T01:00:00Z");
        assert!(s.is_open(now), "open in the campaign's zone");
        let ny = s.for_destination(&Address::tel("+12125551234"));
        assert_eq!(ny.time_zones(), [chrono_tz::Tz::America__New_York]);
        assert_eq!(
            ny.gate(now),
            Gate::Closed(Some(utc("2026-11-30T14:00:00Z")))
        );
        assert!(!s.falls_back(&Address::tel("+12125551234")));
    }

    #[test]
    fn a_number_with_several_zones_is_open_only_where_all_are() {
        use crate::Address;
        // +972 59 (Palestinian mobiles): Hebron and Gaza keep the same clock, so the window
        // is the same; a made-up mixed schedule below checks the intersection rule itself.
        let mut h = hours("UTC", &[(DAYS, "09:00", "17:00")]);
        h.destination_local = Some(true);
        let s = h.schedule().unwrap();
        let pal = s.for_destination(&Address::tel("+972591234567"));
        assert_eq!(pal.time_zones().len(), 2);
        // 2026-11-30 08:30 UTC = 10:30 in Hebron and Gaza (UTC+2 in winter): open.
        assert!(pal.is_open(utc("2026-11-30T08:30:00Z")));

        // Seoul (UTC+9) and London (UTC+0 in winter), 09:00-17:00 each: they overlap nowhere
        // (17:00 Seoul = 08:00 London), so the schedule never opens.
        let both = Schedule {
            zones: vec![chrono_tz::Tz::Asia__Seoul, chrono_tz::Tz::Europe__London],
            ..s.clone()
        };
        assert!(!both.is_open(utc("2026-11-30T05:00:00Z")));
        assert_eq!(both.next_opening(utc("2026-11-30T05:00:00Z")), None);
        // Tokyo and Seoul share a clock: open together, opening at 09:00 local = 00:00 UTC.
        let same = Schedule {
            zones: vec![chrono_tz::Tz::Asia__Seoul, chrono_tz::Tz::Asia__Tokyo],
            ..s.clone()
        };
        assert_eq!(
            same.next_opening(utc("2026-11-29T20:00:00Z")),
            Some(utc("2026-11-30T00:00:00Z"))
        );
        // London and Lisbon (same winter clock) with windows 09:00-17:00 and Paris (UTC+1):
        // the intersection is 09:00-16:00 London time, opening at 09:00 UTC.
        let eu = Schedule {
            zones: vec![chrono_tz::Tz::Europe__London, chrono_tz::Tz::Europe__Paris],
            ..s
        };
        assert_eq!(
            eu.next_opening(utc("2026-11-30T07:00:00Z")),
            Some(utc("2026-11-30T09:00:00Z"))
        );
        assert!(eu.is_open(utc("2026-11-30T15:59:00Z")));
        assert!(!eu.is_open(utc("2026-11-30T16:00:00Z")), "17:00 in Paris");
    }

    #[test]
    fn numbers_without_a_zone_fall_back_to_the_campaign_zone() {
        use crate::Address;
        let mut h = hours("Asia/Seoul", &[(DAYS, "09:00", "20:00")]);
        h.destination_local = Some(true);
        let s = h.schedule().unwrap();
        let mut sip = Address::tel("alice@example.com");
        sip.kind = "sip".into();
        assert!(s.falls_back(&sip));
        assert_eq!(
            s.for_destination(&sip).time_zones(),
            [chrono_tz::Tz::Asia__Seoul]
        );
        assert!(!s.falls_back(&Address::tel("+821012345678")));
        h.destination_local = None;
        assert!(
            !h.schedule().unwrap().falls_back(&sip),
            "only with destination_local"
        );
    }

    #[test]
    fn closed_dates_dial_nothing_and_the_next_opening_skips_them() {
        // Every day 09:00-18:00 in Seoul, closed on Christmas and the day after.
        let mut h = hours("Asia/Seoul", &[(DAYS, "09:00", "18:00")]);
        h.closed_dates = Some(vec![
            "2026-12-26".into(),
            "2026-12-25".into(),
            "2026-12-25".into(),
        ]);
        let s = h.schedule().unwrap();
        // 2026-12-25 10:00 Seoul = 01:00 UTC: closed.
        assert!(!s.is_open(utc("2026-12-25T01:00:00Z")));
        assert!(
            s.is_open(utc("2026-12-24T01:00:00Z")),
            "the day before is open"
        );
        // Next opening: the 27th at 09:00 Seoul = 00:00 UTC.
        assert_eq!(
            s.gate(utc("2026-12-24T10:00:00Z")),
            Gate::Closed(Some(utc("2026-12-27T00:00:00Z")))
        );
        // Read in the callee's zone with destination_local: a London callee on the 25th.
        h.destination_local = Some(true);
        let london = h
            .schedule()
            .unwrap()
            .for_destination(&crate::Address::tel("+442071234567"));
        assert!(!london.is_open(utc("2026-12-25T10:00:00Z")));
        assert!(london.is_open(utc("2026-12-24T10:00:00Z")));
        // A long run of closed dates is still crossed.
        let mut long = hours("UTC", &[(DAYS, "09:00", "18:00")]);
        long.closed_dates = Some((1..=20).map(|d| format!("2027-01-{d:02}")).collect());
        assert_eq!(
            long.schedule()
                .unwrap()
                .next_opening(utc("2026-12-31T20:00:00Z")),
            Some(utc("2027-01-21T09:00:00Z"))
        );
    }

    #[test]
    fn bad_closed_dates_are_named() {
        let err = |dates: Vec<&str>| {
            let mut h = hours("UTC", &[(DAYS, "09:00", "18:00")]);
            h.closed_dates = Some(dates.into_iter().map(String::from).collect());
            h.schedule().unwrap_err()
        };
        for bad in ["2026-13-01", "2026-02-30", "2026-1-05", "25/12/2026", ""] {
            let e = err(vec!["2026-12-25", bad]);
            assert!(
                e.starts_with("calling_hours.closed_dates[1]:"),
                "{bad}: {e}"
            );
        }
        let many: Vec<String> = (0..=MAX_CLOSED_DATES)
            .map(|_| "2026-12-25".into())
            .collect();
        let mut h = hours("UTC", &[(DAYS, "09:00", "18:00")]);
        h.closed_dates = Some(many);
        assert!(
            h.schedule()
                .unwrap_err()
                .starts_with("calling_hours.closed_dates:")
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
        let raw_closed = r#"{"time_zone":"UTC","windows":[{"days":["sun"],"start":"00:00","end":"24:00"}],"closed_dates":["2026-12-25"]}"#;
        let h: CallingHours = serde_json::from_str(raw_closed).expect("parse");
        assert!(h.schedule().is_ok());
        assert_eq!(serde_json::to_string(&h).expect("json"), raw_closed);
    }
}
